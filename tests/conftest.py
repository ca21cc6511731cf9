import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from farm import Farm  # noqa: E402


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    """A master with two one-slot slaves, shared by one test module."""
    farm = Farm(tmp_path_factory.mktemp("farm"))
    farm.start_master()
    farm.add_slave("alpha")
    farm.add_slave("beta")
    farm.wait_engines(2)
    yield farm
    farm.stop()
