"""A farm across machines: a master and two slaves on separate addresses, in network namespaces.

Each "machine" is a Linux network namespace (``ip netns``) with its own address on one bridge:
the master at 10.77.0.1, the render machines at 10.77.0.2 and 10.77.0.3, and an artist's machine
at 10.77.0.10.  They share only the file system (which stands in for the farm's shared storage)
and the bridge, so every byte between them crosses a real network link: a process bound to
127.0.0.1 on the master cannot be reached from a slave.

The farm is set up exactly as docs/deploy.md says: the master's ``drqueue.toml`` names its API
and controller address and fixed ports; each slave has its own DRQUEUE_ROOT, a slave token, and
``drqueue slave --master URL``, which fetches the engine connection file from the API; the artist
runs the ``drqueue`` CLI with DRQUEUE_MASTER and DRQUEUE_TOKEN.  Nothing is mocked.

Needs root and iproute2 (``ip netns``); skipped with the reason when either is missing.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from farm import wait_for

from drqueue.procs import stop_process_tree

MASTER_IP = "10.77.0.1"
SLAVES = {"render01": "10.77.0.2", "render02": "10.77.0.3"}
ARTIST_IP = "10.77.0.10"
API_PORT = 7680
CONTROLLER_PORTS = (7681, 7700)
MASTER_URL = f"http://{MASTER_IP}:{API_PORT}"
FRAMES = 8


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


def netns_unusable() -> str | None:
    """Why `ip netns` cannot be used here, or None when it can."""
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed (apt-get install iproute2)"
    if os.geteuid() != 0:
        return "`ip netns` needs root"
    probe = f"drq-probe-{secrets.token_hex(3)}"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


class Network:
    """Namespaces joined by a bridge that lives in a namespace of its own, so the host's own
    network is never touched; deleting the namespaces removes every link."""

    def __init__(self) -> None:
        self.tag = secrets.token_hex(3)
        self.switch = f"drq-{self.tag}-switch"
        self.names: list[str] = []

    def _add_ns(self, name: str) -> str:
        _ip("netns", "add", name)
        self.names.append(name)
        _ip("-n", name, "link", "set", "lo", "up")  # the controller and engines also use 127.0.0.1
        return name

    def start(self) -> None:
        self._add_ns(self.switch)
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")

    def add_host(self, host: str, address: str) -> str:
        ns = self._add_ns(f"drq-{self.tag}-{host}")
        index = len(self.names)
        near, far = f"dq{self.tag}h{index}", f"dq{self.tag}s{index}"  # at most 15 characters
        _ip(
            "link",
            "add",
            near,
            "netns",
            ns,
            "type",
            "veth",
            "peer",
            "name",
            far,
            "netns",
            self.switch,
        )
        _ip("-n", ns, "link", "set", near, "name", "eth0")
        _ip("-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
        _ip("-n", self.switch, "link", "set", far, "master", "br0", "up")
        return ns

    def pids(self, ns: str) -> list[int]:
        out = _ip("netns", "pids", ns, check=False).stdout
        return [int(pid) for pid in out.split()]

    def stop(self) -> None:
        for ns in self.names:
            for pid in self.pids(ns):
                stop_process_tree(pid, timeout=3)
        for ns in reversed(self.names):
            _ip("netns", "del", ns, check=False)
        self.names.clear()


def listening_sockets(pid: int) -> set[tuple[str, int]]:
    """The IPv4 TCP sockets listening in *pid*'s network namespace (psutil reads the caller's)."""
    found = set()
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if state == "0A":  # TCP_LISTEN
            address, port = local.split(":")
            found.add((socket.inet_ntoa(bytes.fromhex(address)[::-1]), int(port, 16)))
    return found


def drqueue_argv() -> list[str]:
    """The `drqueue` command of this Python installation."""
    script = Path(sys.executable).with_name("drqueue")
    return [str(script)] if script.exists() else [sys.executable, "-m", "drqueue.cli.main"]


def machine_env(root: Path, **extra: str) -> dict[str, str]:
    """A machine's environment: nothing DRQUEUE_* leaks in from the test's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRQUEUE_")}
    env.update(DRQUEUE_ROOT=str(root), PYTHONUNBUFFERED="1", **extra)
    return env


@pytest.fixture()
def network():
    reason = netns_unusable()
    if reason:
        pytest.skip(reason)
    net = Network()
    try:
        net.start()
        yield net
    finally:
        net.stop()


@pytest.mark.parametrize("configured_by", ["drqueue.toml", "--ip"])
def test_master_and_slaves_on_separate_addresses_render_a_job_submitted_from_a_third(
    network, tmp_path, configured_by
):
    master_ns = network.add_host("master", MASTER_IP)
    slave_ns = {name: network.add_host(name, address) for name, address in SLAVES.items()}
    artist_ns = network.add_host("artist", ARTIST_IP)
    procs: list[subprocess.Popen] = []

    def spawn(ns: str, args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", ns, *drqueue_argv(), *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        procs.append(proc)
        return proc

    # The master's machine, set up either way docs/deploy.md shows: its drqueue.toml, or
    # `drqueue master --ip` (both addresses) with the default ports 7680 and 7681-7700.
    master_root = tmp_path / "master"
    (master_root / "etc").mkdir(parents=True)
    master_args = ["master"]
    if configured_by == "drqueue.toml":
        (master_root / "etc" / "drqueue.toml").write_text(
            f'api_host = "{MASTER_IP}"\napi_port = {API_PORT}\n'
            f'controller_ip = "{MASTER_IP}"\n'
            f'controller_ports = "{CONTROLLER_PORTS[0]}-{CONTROLLER_PORTS[1]}"\n'
        )
    else:
        master_args += ["--ip", MASTER_IP]
    shared = tmp_path / "shared" / "frames"  # the shared storage the renders write to
    shared.mkdir(parents=True)
    artist_env = machine_env(tmp_path / "artist", DRQUEUE_MASTER=MASTER_URL)

    def artist(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            ["ip", "netns", "exec", artist_ns, *drqueue_argv(), *args],
            capture_output=True,
            text=True,
            env=artist_env,
            timeout=60,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"drqueue {' '.join(args)} (exit {result.returncode}): {result.stderr}"
            )
        return result

    def logs() -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in tmp_path.glob("*.out")
        )

    try:
        master = spawn(master_ns, master_args, machine_env(master_root), tmp_path / "master.out")
        token_file = master_root / "etc" / "token"
        wait_for(
            lambda: master.poll() is not None or token_file.exists(), 60, what="the master's token"
        )
        assert master.poll() is None, logs()
        token = token_file.read_text().strip()  # the admin's, for the artist's machine here
        artist_env["DRQUEUE_TOKEN"] = token

        def api_up() -> bool:
            assert master.poll() is None, logs()
            return artist("jobs", "--json", check=False).returncode == 0

        wait_for(api_up, 90, 0.5, "the master's API from the artist's machine")

        # The master listens on its farm address only, on the configured ports.
        listening = listening_sockets(master.pid)
        print(f"listening in the master's namespace: {sorted(listening)}")
        assert (MASTER_IP, API_PORT) in listening, listening
        public = {(ip, port) for ip, port in listening if ip != "127.0.0.1"}
        assert all(ip == MASTER_IP for ip, _ in public), (
            f"something listens beyond {MASTER_IP}: {public}"
        )
        assert all(
            CONTROLLER_PORTS[0] <= port <= CONTROLLER_PORTS[1]
            for _, port in public - {(MASTER_IP, API_PORT)}
        ), public

        # On the master's machine, the admin makes the slaves' token (never the admin token:
        # renders can read what their slave holds).
        made = subprocess.run(
            [*drqueue_argv(), "token", "create", "--role", "slave", "--name", "slaves"],
            capture_output=True,
            text=True,
            env=machine_env(master_root),
            timeout=60,
        )
        assert made.returncode == 0, made.stderr
        slave_token = made.stdout.strip()
        # It opens nothing but the slave's two routes.
        refused = subprocess.run(
            ["ip", "netns", "exec", artist_ns, *drqueue_argv(), "jobs"],
            capture_output=True,
            text=True,
            env={**artist_env, "DRQUEUE_TOKEN": slave_token},
            timeout=60,
        )
        assert refused.returncode == 1 and "slave token may only heartbeat" in refused.stderr, (
            refused.stderr
        )

        # Each render machine: its own root, the slave token, and --master (fetches the engine
        # file).
        for name, ns in slave_ns.items():
            env = machine_env(tmp_path / name, DRQUEUE_TOKEN=slave_token)
            spawn(
                ns,
                ["slave", "--master", MASTER_URL, "--name", name, "--slots", "1"],
                env,
                tmp_path / f"slave-{name}.out",
            )

        def slaves_online() -> bool:
            for proc in procs:
                assert proc.poll() is None, logs()
            computers = json.loads(artist("computers", "--json").stdout)
            return {c["name"] for c in computers if c["online"]} == set(SLAVES)

        wait_for(slaves_online, 120, 1, "both slaves online in `drqueue computers`")
        for name in SLAVES:
            # Fetched with the slave token and kept in memory: a render could read a file.
            engine_file = tmp_path / name / "ipython" / "security" / "ipcontroller-engine.json"
            assert not engine_file.exists()

        submitted = artist(
            "submit",
            "shell",
            "-s",
            "1",
            "-e",
            str(FRAMES),
            "--name",
            "netns",
            "--cmd",
            f"sh -c 'sleep 0.3; echo \"$DRQUEUE_COMPID\" > {shared}/frame.{{padframe}}.txt'",
            "--param",
            f"output={shared}/frame.####.txt",
            "--json",
        )
        job_id = json.loads(submitted.stdout)["id"]

        def job_ended() -> dict | None:
            job = json.loads(artist("job", "show", str(job_id), "--json").stdout)
            return job if job["status"] in ("finished", "error", "cancelled") else None

        job = wait_for(job_ended, 180, 1, f"job {job_id} to end")
        assert job["status"] == "finished", (job, logs())

        tasks = json.loads(artist("tasks", str(job_id), "--json").stdout)
        assert len(tasks) == FRAMES and all(t["state"] == "finished" for t in tasks), tasks
        rendered_by = {}
        for frame in range(1, FRAMES + 1):
            output = shared / f"frame.{frame:04d}.txt"
            assert output.exists(), f"frame {frame} has no output file"
            rendered_by[frame] = output.read_text().strip()
        assert set(rendered_by.values()) == set(SLAVES), rendered_by
        assert {t["computer"] for t in tasks} == set(SLAVES), tasks
        log = artist("log", str(job_id), "1").stdout  # written by a slave, read through the API
        assert "frame.0001.txt" in log, log

        computers = {c["name"]: c for c in json.loads(artist("computers", "--json").stdout)}
        assert set(computers) == set(SLAVES) and all(c["online"] for c in computers.values()), (
            computers
        )
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 20
        for proc in reversed(procs):
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                stop_process_tree(proc.pid, timeout=3)
