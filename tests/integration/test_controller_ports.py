"""The controller's fixed port range: the smallest range that holds it, and a smaller one refused.

ipyparallel 9.2's controller names 15 ports in its connection files and binds 3 more for itself;
a restart (``--reuse``) needs those 3 from ports the files do not name (``Controller.argv()``).
With fewer, ipyparallel silently takes random ports, outside the range a firewall rule names.
So ``drqueue master`` refuses a range shorter than ``MIN_CONTROLLER_PORTS``, and with exactly
that many nothing listens outside it, on the first start or after restarts.
"""

from __future__ import annotations

import psutil
from farm import Farm, wait_for

from drqueue.config import (
    CONTROLLER_INTERNAL_PORTS,
    CONTROLLER_PUBLIC_PORTS,
    MIN_CONTROLLER_PORTS,
)


def listening_ports(pid: int) -> set[int]:
    """The TCP ports *pid* and its children (the controller and its schedulers) listen on."""
    found: set[int] = set()
    try:
        parent = psutil.Process(pid)
        procs = [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return found
    for proc in procs:
        try:
            found.update(
                c.laddr.port
                for c in proc.net_connections(kind="tcp")
                if c.status == psutil.CONN_LISTEN
            )
        except psutil.NoSuchProcess:
            continue
    return found


def farm_with_ports(root, count: int) -> tuple[Farm, range]:
    """A farm (not started) whose controller range is *count* ports after its API port."""
    farm = Farm(root)
    api_port = int(farm.env["DRQUEUE_API_PORT"])
    ports = range(api_port + 1, api_port + 1 + count)  # inside Farm's free block of 21
    farm.env["DRQUEUE_CONTROLLER_PORTS"] = f"{ports.start}-{ports.stop - 1}"
    return farm, ports


def test_a_controller_port_range_below_the_minimum_is_refused_with_one_line(tmp_path):
    farm, ports = farm_with_ports(tmp_path, MIN_CONTROLLER_PORTS - 1)
    result = farm.cli("master", timeout=60)
    assert result.returncode == 1, (result.stdout, result.stderr)
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert "controller_ports" in message and f"at least {MIN_CONTROLLER_PORTS}" in message, message
    assert not (tmp_path / "logs" / "controller.log").exists(), "a controller was started"


def test_the_minimum_controller_port_range_holds_every_socket_across_restarts(tmp_path):
    farm, ports = farm_with_ports(tmp_path, MIN_CONTROLLER_PORTS)
    api_port = int(farm.env["DRQUEUE_API_PORT"])
    expected = CONTROLLER_PUBLIC_PORTS + CONTROLLER_INTERNAL_PORTS
    seen: set[int] = set()

    def controller_ports() -> set[int] | None:
        assert farm.master_proc.poll() is None, (tmp_path / "master.out").read_text()
        seen.clear()
        seen.update(listening_ports(farm.master_proc.pid) - {api_port})
        return seen if len(seen) >= expected else None

    try:
        for start in ("first start", "restart", "second restart"):
            farm.start_master()
            try:
                found = wait_for(controller_ports, 60, 0.2, f"{expected} controller sockets")
            except AssertionError:
                log = (tmp_path / "logs" / "controller.log").read_text()[-3000:]
                raise AssertionError(f"{start}: listening on {sorted(seen)}; {log}") from None
            outside = sorted(port for port in found if port not in ports)
            assert not outside, f"{start}: listening outside {ports}: {outside}"
            assert len(found) == expected, (start, sorted(found))
            farm.master_proc.terminate()
            farm.master_proc.wait(30)
            wait_for(lambda: not farm.controller_pids(), 20, what="the controller to stop")
    finally:
        farm.stop()
