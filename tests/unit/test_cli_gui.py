"""`drqueue gui` without PySide6 says how to install it, in one line; with it, --help works."""

from __future__ import annotations

import subprocess
import sys

#: Runs `drqueue gui` in a Python where importing PySide6 fails, as it does where it is not
#: installed (None in sys.modules is the import system's own "not importable").
WITHOUT_PYSIDE = (
    "import sys; sys.modules['PySide6'] = None; sys.argv = ['drqueue', 'gui'];"
    "from drqueue.cli.main import main; main()"
)


def test_gui_without_pyside6_names_the_extra_to_install_in_one_line():
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_PYSIDE], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: the desktop GUI needs PySide6, which is not installed: pip install 'drqueue[gui]'"
    ]
    assert "Traceback" not in result.stderr


def test_gui_help_says_where_it_connects_and_what_it_needs():
    result = subprocess.run(
        [sys.executable, "-m", "drqueue.cli.main", "gui", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    assert "drqueue[gui]" in result.stdout
