<#
.SYNOPSIS
Install (or upgrade in place) FaceMe Studio into its own environment in %LOCALAPPDATA%\FaceMeStudio.

.DESCRIPTION
Finds a Python >= 3.11 (the py launcher, python on PATH, or -Python), hands over to
faceme_install.py (the same installer install.sh uses), then adds a Start menu shortcut.
See installers\README.md.

.EXAMPLE
powershell -ExecutionPolicy Bypass -File installers\install.ps1
powershell -ExecutionPolicy Bypass -File installers\install.ps1 -Prefix C:\Temp\faceme -DryRun
powershell -ExecutionPolicy Bypass -File installers\install.ps1 -Gpu     # onnxruntime-gpu (NVIDIA)
#>
param(
    [string]$Prefix,
    [string]$Wheel,
    [string]$Python,
    [switch]$Gpu,
    [switch]$Cpu,
    [switch]$DryRun
)
$ErrorActionPreference = 'Stop'
$here = Split-Path -Parent $MyInvocation.MyCommand.Path

function Test-Python([string[]]$Command) {
    try {
        $exe = $Command[0]
        $rest = @($Command | Select-Object -Skip 1)
        & $exe @rest -c "import sys, venv; sys.exit(sys.version_info < (3, 11))" 2>$null | Out-Null
        return ($LASTEXITCODE -eq 0)
    } catch {
        return $false
    }
}

$candidates = @()
if ($Python) { $candidates += , @($Python) }
$candidates += , @('py', '-3.13')
$candidates += , @('py', '-3.12')
$candidates += , @('py', '-3.11')
$candidates += , @('python')
$found = $null
foreach ($candidate in $candidates) {
    if ((Get-Command $candidate[0] -ErrorAction SilentlyContinue) -and (Test-Python $candidate)) {
        $found = $candidate
        break
    }
}
if (-not $found) {
    Write-Error "FaceMe Studio needs Python 3.11 or newer (python.org installer, or: winget install Python.Python.3.12). Use -Python C:\path\to\python.exe to choose one."
    exit 2
}

$installerArgs = @((Join-Path $here 'faceme_install.py'))
if ($Prefix) { $installerArgs += @('--prefix', $Prefix) }
if ($Wheel) { $installerArgs += @('--wheel', $Wheel) }
if ($Gpu) { $installerArgs += '--gpu' }
if ($Cpu) { $installerArgs += '--cpu' }
if ($DryRun) { $installerArgs += '--dry-run' }
$exe = $found[0]
$pyArgs = @($found | Select-Object -Skip 1) + $installerArgs
& $exe @pyArgs
if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }

# Start menu shortcut: pythonw.exe -m app, so no console window opens beside the app.
if ($Prefix) {
    $data = [System.IO.Path]::GetFullPath($Prefix)
    $menu = $data
} else {
    $data = Join-Path $env:LOCALAPPDATA 'FaceMeStudio'
    $menu = Join-Path ([Environment]::GetFolderPath('Programs')) 'FaceMe Studio'
}
$pythonw = Join-Path $data 'env\Scripts\pythonw.exe'
$link = Join-Path $menu 'FaceMe Studio.lnk'
if ($DryRun) {
    Write-Output "Start menu shortcut $link -> $pythonw -m app"
    exit 0
}
New-Item -ItemType Directory -Force -Path $menu | Out-Null
$shell = New-Object -ComObject WScript.Shell
$shortcut = $shell.CreateShortcut($link)
$shortcut.TargetPath = $pythonw
$shortcut.Arguments = '-m app'
$shortcut.WorkingDirectory = $env:USERPROFILE
$shortcut.Description = 'FaceMe Studio: restore the faces in family photos'
$shortcut.Save()
Write-Output "Start menu shortcut $link"
