"""`drqueue up`: a local farm that stops on SIGINT and SIGTERM alike, even started in the
background by a script, and leaves nothing running when it is SIGKILLed (issue 10, 3h)."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from farm import Farm, wait_for

from drqueue.errors import MasterUnreachable


def start_up(farm: Farm, ignore_sigint: bool = False) -> subprocess.Popen:
    """`drqueue up --slaves 1 --no-demo`; *ignore_sigint* starts it as `sh -c 'drqueue up &'`
    does (a background job of a non-interactive shell inherits SIGINT ignored)."""
    farm.root.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "drqueue.cli.main", "up", "--slaves", "1", "--no-demo"],
        stdout=open(farm.root / "up.out", "ab"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=farm.env,
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
        if ignore_sigint
        else None,
    )


def farm_of(up: subprocess.Popen, farm: Farm) -> list[psutil.Process]:
    """Once its engine is registered: every process `up` started, and theirs."""

    def engines() -> int:
        if up.poll() is not None:
            raise AssertionError(f"up exited: {(farm.root / 'up.out').read_text()[-2000:]}")
        try:
            return farm.client.farm()["engines"]
        except MasterUnreachable:
            farm._client = None  # the token file may have been written since
            return 0

    wait_for(lambda: engines() >= 1, 120, 0.2, "the local farm's engine")
    tree = psutil.Process(up.pid).children(recursive=True)
    names = " ".join(" ".join(p.cmdline()) for p in tree)
    assert "master" in names and "slave" in names and "ipcontroller" in names, names
    assert "ipyparallel.engine" in names, names
    return tree


def gone(procs: list[psutil.Process]) -> bool:
    for proc in procs:
        try:
            if proc.status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            pass
    return True


@pytest.mark.parametrize(
    ("signum", "ignore_sigint"),
    [(signal.SIGINT, True), (signal.SIGTERM, True), (signal.SIGINT, False)],
    ids=["sigint-background", "sigterm-background", "sigint"],
)
def test_up_stops_the_whole_farm_on_sigint_and_sigterm(tmp_path, signum, ignore_sigint):
    farm = Farm(tmp_path)
    up = start_up(farm, ignore_sigint)
    tree: list[psutil.Process] = []
    try:
        tree += farm_of(up, farm)
        up.send_signal(signum)
        assert up.wait(60) == 0
        wait_for(lambda: gone(tree), 30, 0.2, "every farm process to stop")
    finally:
        clean_up(up, tree, farm)


def test_a_sigkilled_up_leaves_no_farm_running(tmp_path):
    farm = Farm(tmp_path)
    up = start_up(farm)
    tree: list[psutil.Process] = []
    try:
        tree += farm_of(up, farm)
        up.kill()
        up.wait(10)
        wait_for(lambda: gone(tree), 60, 0.2, "the farm to die with up")
    finally:
        clean_up(up, tree, farm)


def clean_up(up: subprocess.Popen, tree: list[psutil.Process], farm: Farm) -> None:
    """What a failed test left running: up and every process it had started."""
    if up.poll() is None:
        up.kill()
        up.wait(10)
    for proc in tree:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    farm.stop()


def test_a_second_up_prints_the_commands_for_its_own_job(tmp_path):
    # The second demo in the same root renders job 2: the commands it prints say so.
    farm = Farm(tmp_path)
    outputs = []
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-m", "drqueue.cli.main", "up", "--slaves", "1", "--frames", "2"]
            + ["--exit-when-done"],
            capture_output=True,
            text=True,
            env={**farm.env, "COLUMNS": "200"},
            timeout=240,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        outputs.append(done.stdout)
    drqueue = str(Path(sys.executable).parent / "drqueue")
    for job_id, output in enumerate(outputs, start=1):
        assert f"submitted job {job_id}:" in output
        assert f"log {job_id} 1" in output and f"job show {job_id}" in output
        command = output.split(f" log {job_id} 1")[0].split()[-1]
        assert command == "drqueue" or Path(command).resolve() == Path(drqueue).resolve()


def test_up_prints_the_dashboard_and_a_login_link_that_works_once(tmp_path):
    import re

    import httpx

    farm = Farm(tmp_path)
    up = start_up(farm)
    tree: list[psutil.Process] = []
    try:
        tree += farm_of(up, farm)
        out = farm.root / "up.out"
        wait_for(lambda: "one-time link" in out.read_text(), 30, 0.2, "the login link")
        text = out.read_text()
        dashboard = re.search(r"dashboard: (http://\S+)/", text).group(1)
        link = re.search(r"(http://\S+/login\?code=\S+)", text).group(1)
        assert link.startswith(dashboard + "/login?code=")
        code = link.split("code=", 1)[1]
        with httpx.Client(base_url=dashboard, timeout=30) as browser:
            session = browser.post("/api/v1/session", json={"code": code})
            assert session.status_code == 200, session.text
            assert session.json()["role"] == "admin"
            assert browser.get("/api/v1/jobs").status_code == 200  # the cookie logs it in
            browser.cookies.clear()
            assert browser.post("/api/v1/session", json={"code": code}).status_code == 401
        up.send_signal(signal.SIGINT)
        assert up.wait(60) == 0
    finally:
        clean_up(up, tree, farm)
