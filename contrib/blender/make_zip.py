"""Zip the DrQueue Blender add-on for installing: ``python3 make_zip.py OUT.zip``.

The zip holds one folder, ``drqueue_submit/``, which both installers take: Preferences →
Add-ons → Install (Blender 3.4 to 4.1) and Get Extensions → Install from Disk (4.2+, which
reads its blender_manifest.toml).  Caches and compiled files are left out.  `make
blender-addon` runs this, and so does tests/e2e/test_blender_addon.py.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

#: The add-on's package, beside this script.
PACKAGE = Path(__file__).resolve().parent / "drqueue_submit"


def make_zip(out: Path) -> Path:
    """Write the add-on's zip to *out* (its folder is made if missing); *out*."""
    out.parent.mkdir(parents=True, exist_ok=True)
    files = sorted(
        path
        for path in PACKAGE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    )
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(path, Path(PACKAGE.name) / path.relative_to(PACKAGE))
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python3 make_zip.py OUT.zip")
    print(make_zip(Path(sys.argv[1])))
