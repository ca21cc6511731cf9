"""A render cannot read what its slave holds, with the slave run as an unprivileged user (the
tests run as root, and root reads any process's /proc): the slave token, and the engine
connection info, which is code execution on the master (docs/deploy.md).

The slave is started as deploy.md says (its own DRQUEUE_ROOT, `--master URL`, a slave token),
as user nobody; its render, also nobody, tries /proc/<slave>/environ and the slave's files.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from farm import Farm, wait_for

import drqueue

NOBODY = 65534


def system_python() -> str:
    """An interpreter user nobody can run, of this one's version."""
    for candidate in (
        sys.executable,
        f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}",
    ):
        probe = subprocess.run(
            ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
             candidate, "-c", "import subprocess, sys; subprocess.run([sys.executable, '-V'], check=True)"],
            capture_output=True, cwd="/tmp",
        )  # fmt: skip
        if probe.returncode == 0:
            return candidate
    pytest.skip("no Python interpreter user nobody can run")


pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv"
)


@pytest.fixture(scope="module")
def farm():
    root = Path(tempfile.mkdtemp(prefix="drqueue-isolation-", dir="/tmp"))
    root.chmod(0o755)
    (root / "logs").mkdir()
    (root / "logs").chmod(0o777)  # the slave, as nobody, writes its tasks' logs here
    farm = Farm(root / "farm")
    farm.root.mkdir()
    farm.root.chmod(0o755)
    (farm.root / "logs").mkdir()
    (farm.root / "logs").chmod(0o777)
    farm.start_master()
    yield farm
    farm.stop()
    if not os.environ.get("KEEP"):
        shutil.rmtree(root, ignore_errors=True)


def test_a_render_reads_neither_the_slave_token_nor_the_engine_connection(farm):
    token = farm.cli("token", "create", "--role", "slave", "--name", "nob", check=True)
    token = token.stdout.strip()
    slave_root = Path(tempfile.mkdtemp(prefix="drqueue-slave-", dir="/tmp"))
    os.chown(slave_root, NOBODY, NOBODY)
    spy = Path(tempfile.mkdtemp(prefix="drqueue-spy-", dir="/tmp"))
    spy.chmod(0o777)
    env = {k: v for k, v in farm.env.items() if k not in ("DRQUEUE_ROOT", "DRQUEUE_API_PORT")}
    env.update(
        DRQUEUE_ROOT=str(slave_root),
        DRQUEUE_TOKEN=token,
        HOME=str(slave_root),
        # nobody may not reach this interpreter (a virtualenv's python often links into a
        # home folder): run the system's with this one's packages, if it is the same version.
        PYTHONPATH=os.pathsep.join(
            [str(Path(drqueue.__file__).parents[1]), *site.getsitepackages()]
        ),
    )
    out = open(farm.root / "slave-nobody.out", "ab")
    slave = subprocess.Popen(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
         system_python(), "-m", "drqueue.cli.main",
         "slave", "--master", farm.config.master_url, "--name", "nob", "--slots", "1"],
        env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
    )  # fmt: skip
    out.close()
    try:
        farm.wait_engines(1, timeout=40)
        report = spy / "report.txt"
        cmd = (
            f"sh -c 'cat /proc/{slave.pid}/environ > {spy}/slave-environ 2>&1; "
            f"echo slave=$? >> {report}; "
            f"ls -R {slave_root} >> {report} 2>&1; env >> {report}'"
        )
        job = farm.client.submit("shell", None, start=1, end=1, params={"cmd": cmd})
        assert farm.wait_job(job["id"], 120)["status"] == "finished"
        text = report.read_text()
        assert "slave=1" in text, text  # cat failed: Permission denied
        leaked = (spy / "slave-environ").read_bytes()
        assert token.encode() not in leaked
        assert b"Permission denied" in leaked
        assert token not in text and "IPP_CONNECTION_INFO" not in text
        assert "ipcontroller-engine.json" not in text  # never written on the slave's disk
    finally:
        slave.terminate()
        slave.wait(30)
        wait_for(lambda: farm.client.farm()["engines"] == 0, 60, 0.2, "the slave's engines gone")
        if not os.environ.get("KEEP"):
            shutil.rmtree(slave_root, ignore_errors=True)
        shutil.rmtree(spy, ignore_errors=True)
