"""``drqueue up``: a whole farm on this machine, for trying DrQueue out.

It starts ``drqueue master`` and N ``drqueue slave --name HOST-i`` as child
processes (the same commands an admin runs on real machines), prints the web
UI's address with a one-time login link, submits a sample job with the
built-in fractal renderer, shows its progress, and keeps the farm up until
Ctrl-C, which stops every process it started.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

from drqueue.client import Client
from drqueue.config import Config
from drqueue.errors import DrQueueError, MasterUnreachable
from drqueue.procs import die_with_parent, stop_process_tree

console = Console()


def _die_with_up(parent: int) -> None:
    """In a child, before exec: SIGTERM me when `up` dies however it dies (Linux), so a
    SIGKILLed `up` leaves no farm behind.  The master and the slaves stop their own controller
    and engines on that SIGTERM, and those die with them the same way."""
    die_with_parent()
    if os.getppid() != parent:  # up died before the request took effect
        os._exit(1)


def _spawn(args: list[str], log_path, env: dict[str, str]) -> subprocess.Popen:
    out = open(log_path, "ab")
    linux = sys.platform.startswith("linux")
    proc = subprocess.Popen(
        [sys.executable, "-m", "drqueue.cli.main", *args],
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        # Its own session: a Ctrl-C in the terminal reaches only `up`, which stops the farm
        # in order.
        start_new_session=True,
        preexec_fn=functools.partial(_die_with_up, os.getpid()) if linux else None,
    )
    out.close()
    return proc


def drqueue_command() -> str:
    """How to run drqueue from here: `drqueue` if that is this one on PATH, else its path
    (`make demo` runs .venv/bin/drqueue, which is seldom on PATH)."""
    beside = Path(sys.executable).parent / "drqueue"
    on_path = shutil.which("drqueue")
    if not beside.exists() or (on_path and Path(on_path).resolve() == beside.resolve()):
        return "drqueue"
    relative = os.path.relpath(beside)
    return relative if not relative.startswith("..") else str(beside)


def wait_for_master(client: Client, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DrQueueError(f"the master exited with {proc.returncode}")
        try:
            client.farm()
            return
        except MasterUnreachable:
            time.sleep(0.2)
    raise DrQueueError(f"the master did not answer within {timeout:.0f} s")


def print_dashboard(client: Client, config: Config) -> None:
    """The web UI's address, and a one-time login link to it (it opens a session as the
    master's admin once, within 10 minutes: `drqueue up` is for trying DrQueue on one's own
    machine)."""
    console.print(f"dashboard: [bold]{config.master_url}/[/]", highlight=False)
    try:
        link = client.login_link()
    except DrQueueError as exc:
        console.print(f"[yellow]no login link: {exc}[/]")
        return
    minutes = round(link["expires_in"] / 60)
    console.print(
        f"log in with this one-time link (within {minutes} minutes): {link['url']}",
        highlight=False,
        soft_wrap=True,
    )


def run_local_farm(
    config: Config, slaves: int, frames: int, exit_when_done: bool, demo: bool = True
) -> int:
    from drqueue.cli.main import wait_for_job

    drqueue = drqueue_command()
    config.ensure_token()  # written before the master starts, so our client has it
    try:
        Client(config=config, timeout=2).health()
        raise DrQueueError(
            f"a master already answers at {config.master_url}: stop it, or set DRQUEUE_API_PORT"
        )
    except MasterUnreachable:
        pass
    env = dict(os.environ, DRQUEUE_ROOT=str(config.root), PYTHONUNBUFFERED="1")
    logs = config.logs_dir
    console.print(f"[bold]DrQueue local farm[/] in {config.root} (logs in {logs})")
    procs: list[subprocess.Popen] = []
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        if stopping:  # a second signal while the farm stops: let the stop finish
            return
        stopping = True
        raise KeyboardInterrupt

    # SIGINT and SIGTERM alike, set explicitly: a shell starts a background job with SIGINT
    # ignored, and Python then keeps it ignored.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop)
    try:
        master = _spawn(["master"], logs / "master.log", env)
        procs.append(master)
        client = Client(config=config)
        with console.status("starting the master (controller, store, API)…"):
            wait_for_master(client, master)
        console.print(f"master up at {config.master_url}")
        print_dashboard(client, config)
        host = socket.gethostname()
        for i in range(1, slaves + 1):
            procs.append(
                _spawn(["slave", "--name", f"{host}-{i}"], logs / f"slave-{host}-{i}.out", env)
            )
        with console.status(f"waiting for {slaves} slaves to register…"):
            deadline = time.monotonic() + 120
            while client.farm()["engines"] < slaves and time.monotonic() < deadline:
                time.sleep(0.2)
        console.print(
            f"{client.farm()['engines']} slaves online: {', '.join(c['name'] for c in client.computers() if c['online'])}"
        )
        status = 0
        if demo:
            output = config.root / "renders" / f"demo-{int(time.time())}" / "frame_####.png"
            answer = client.submit(
                "fractal",
                None,
                start=1,
                end=frames,
                block_size=2,
                name="sample: animated Julia set",
                owner=os.environ.get("USER", "demo"),
                params={"output": str(output), "width": 480, "height": 360, "iterations": 250},
            )
            job_id = answer["id"]
            console.print(f"submitted job {job_id}: {frames} frames in {answer['tasks']} tasks")
            status = wait_for_job(client, job_id, console)
            console.print(f"frames: {output.parent}/")
            console.print(
                f"its progress: [bold]{drqueue} job show {job_id}[/]; the log of frame 1: "
                f"[bold]{drqueue} log {job_id} 1[/]",
                highlight=False,
            )
        if exit_when_done:
            return status
        console.print(
            f"the farm is up: open the dashboard above, or try [bold]{drqueue} jobs[/] and "
            f"[bold]{drqueue} computers[/] in another terminal (with the same DRQUEUE_ROOT). "
            "Ctrl-C stops it.",
            highlight=False,
        )
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        console.print("[red]a farm process exited; stopping[/]")
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        with console.status("stopping the farm…"):
            for proc in reversed(procs):
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in reversed(procs):
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    stop_process_tree(proc.pid)
        console.print("farm stopped")
