"""``drqueue up``: a whole farm on this machine, for trying DrQueue out.

It starts ``drqueue master`` and N ``drqueue slave --name HOST-i`` as child
processes (the same commands an admin runs on real machines), submits a
sample job with the built-in fractal renderer, shows its progress, and keeps
the farm up until Ctrl-C, which stops every process it started.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from rich.console import Console

from drqueue.client import Client
from drqueue.config import Config
from drqueue.errors import DrQueueError, MasterUnreachable
from drqueue.procs import stop_process_tree

console = Console()


def _spawn(args: list[str], log_path, env: dict[str, str]) -> subprocess.Popen:
    out = open(log_path, "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "drqueue.cli.main", *args],
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    out.close()
    return proc


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


def run_local_farm(
    config: Config, slaves: int, frames: int, exit_when_done: bool, demo: bool = True
) -> int:
    from drqueue.cli.main import wait_for_job

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
        stopping = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        master = _spawn(["master"], logs / "master.log", env)
        procs.append(master)
        client = Client(config=config)
        with console.status("starting the master (controller, store, API)…"):
            wait_for_master(client, master)
        console.print(f"master up at {config.master_url}")
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
            console.print(
                f"submitted job {answer['id']}: {frames} frames in {answer['tasks']} tasks"
            )
            status = wait_for_job(client, answer["id"], console)
            console.print(f"frames: {output.parent}/")
            console.print(f"a frame's log: [bold]drqueue log {answer['id']} 1[/]")
        if exit_when_done:
            return status
        console.print(
            "the farm is up: try [bold]drqueue jobs[/] and [bold]drqueue computers[/] in another "
            "terminal (with the same DRQUEUE_ROOT). Ctrl-C stops it."
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
