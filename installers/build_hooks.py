"""Build step that puts the top-level `resources/` folder into the wheel as `app/resources/`.

`resources/` stays at the repository's top level (icons, style sheet, default configs), next to the
package folders, which is where `app.theme` finds it in a checkout or an editable install. A wheel
only carries packages, so this build_py adds every file under `resources/` to the `app` package's data
files: `app.theme` then finds `app/resources/` inside the installed package. Named in pyproject.toml's
`[tool.setuptools.cmdclass]`; setuptools loads it from the project folder at build time.
"""

from __future__ import annotations

import os
from pathlib import Path

from setuptools.command.build_py import build_py

#: relative to the project folder (setuptools runs builds there)
RESOURCES = "resources"
#: where the files land inside the installed packages
TARGET_PACKAGE = "app"


class BuildPyWithResources(build_py):
    def _get_data_files(self):  # setuptools' hook: list of (package, src_dir, build_dir, filenames)
        data_files = super()._get_data_files()
        source = Path(RESOURCES)
        if not source.is_dir():
            raise FileNotFoundError(
                f"{source.resolve()}: the app's resources folder is missing; build from a full source tree"
            )
        names = sorted(
            p.relative_to(source).as_posix()
            for p in source.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        )
        build_dir = os.path.join(self.build_lib, TARGET_PACKAGE, RESOURCES)
        data_files.append((TARGET_PACKAGE, RESOURCES, build_dir, names))
        return data_files
