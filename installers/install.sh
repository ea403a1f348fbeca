#!/bin/sh
# Install (or upgrade in place) FaceMe Studio into its own environment; see installers/README.md.
#   sh installers/install.sh [--prefix DIR] [--wheel WHEEL] [--gpu | --cpu] [--dry-run]
# Finds a Python >= 3.11 (or the one in $FACEME_PYTHON) and hands over to faceme_install.py.
set -eu
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)

python_ok() {
    "$1" -c 'import sys, venv; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1
}

python=""
for candidate in ${FACEME_PYTHON:-} python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 && python_ok "$candidate"; then
        python=$candidate
        break
    fi
done
if [ -z "$python" ]; then
    echo "FaceMe Studio needs Python 3.11 or newer with the venv module (Debian/Ubuntu: apt install python3-venv)." >&2
    echo "Set FACEME_PYTHON=/path/to/python3 to choose one." >&2
    exit 2
fi
exec "$python" "$here/faceme_install.py" "$@"
