"""4,000 simulated slaves (issue 14.3): the master's own work for a big farm, without 4,000
real machines.

    python bench/fleet.py [--computers 4000] [--slots 8] [--tasks 100000] [--jobs 500]
                          [--task-seconds 600] [--window 20] [--period SECONDS] [--src DIR]

What is real and what is simulated:

* **Real**: the master's parts, in this process: a SQLite store, the
  :class:`~drqueue.master.dispatcher.Dispatcher` thread, and the HTTP API (``create_app`` under
  the master's own uvicorn server, ``api_server``) on a port of loopback.  This process *is*
  the master: its CPU is what is measured.
* **Simulated**: ipyparallel.  The dispatcher's Client is :class:`SimulatedFarm`
  (``Dispatcher.connect`` returns it): 32,000 engine ids, each answering the info probe at
  once with its computer's info (so every computer is registered by the dispatcher's own
  ``_sync_engines`` → ``store.upsert_computer``, the path a real slave's engines take), and
  each task ending after a random time (uniform, mean ``--task-seconds``) with a finished
  result.  No controller runs: the Hub's share is measured with real engines by
  bench/scale.py and extrapolated in docs/performance.md.
* **The slaves' heartbeats** come over HTTP from another process (this file with
  ``--generate``, so its CPU is not the master's): each simulated slave sends ``POST
  /api/v1/slaves/NAME/heartbeat`` with its 8 engine UUIDs and a slave token, on one of a few
  hundred keep-alive connections (a small asyncio HTTP/1.1 client: an httpx client per slave
  would need more CPU than the machine has), and calls again when the answer's
  ``next_seconds`` says, with the launcher's jitter (``drqueue.slave.launcher.heartbeat_wait``),
  as a real slave whose engines are all registered does.  Their first calls are spread over
  the period the master sets (the steady state of a jittered fleet), which one call learns
  first.  ``--period`` makes them call at a fixed period instead, whatever the answer.  The
  same process asks ``GET /api/v1/jobs``, ``GET /api/v1/farm`` and a job's tasks page in
  turn, 5 times a second, and reports their p50 and p99.

Figures:

Times of a decision are the CPU time of the thread that makes it (``time.thread_time``): on a
machine shared with other work its wall time measures the others too.

1. **registration**: 32,000 engines probed and usable, from the dispatcher's first round;
2. **decision**: ``Dispatcher.decide`` (read the runnable jobs and computers from the store,
   ``matching.plan``, fetch the chosen tasks) with 32,000 idle slots and 100,000 tasks queued
   over 500 jobs, median of 5; it decides ``DECISION_BATCH`` of them (the next round the
   next batch); and ``plan`` alone, for the batch and for all 32,000 at once;
3. **first round**: the time until 90 % of the 32,000 slots have a task committed and sent;
4. **steady state**, ``--window`` seconds with every slot busy, tasks ending and being
   replaced, the API's readers asking, first without the heartbeats, then with them at the
   period the master sets (``heartbeats_per_second``, 100 by default: every 40 s at 4,000
   slaves): the period, the heartbeats answered a second, the master's CPU in % of one core
   in each window (the second one is the figure against the target), and the CPU one
   heartbeat costs (the difference over the heartbeats answered; at 100 a second a few
   percent of a core, so noisy on a loaded machine).  Beside it, computed, what the master
   would need if every slave called every second, as before: the first window plus 4,000
   heartbeats a second at that cost (the machine's two cores, shared with the generator and
   other work, cannot answer 4,000 a second).  The API's p50 and p99 in each.

Targets (issue 14): steady-state master CPU under 25 % of one core; a decision round under
50 ms.  Everything started here is stopped before it returns.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import print_load, report, row  # noqa: E402

#: Issue 14's targets.
CPU_TARGET_PERCENT = 25.0
DECISION_TARGET_MS = 50.0
#: API requests the generator makes each second during the window (all routes together).
PROBES_PER_SECOND = 5
#: The share of the slots busy that starts the steady state.
BUSY_FRACTION = 0.9
#: The routes the generator times, by its names for them.
ROUTES = {
    "heartbeat": "POST /slaves/NAME/heartbeat",
    "jobs": "GET /jobs?limit=50",
    "farm": "GET /farm",
    "tasks": "GET /jobs/ID/tasks?limit=100",
}
#: Keep-alive connections the simulated slaves' heartbeats share.
CONNECTIONS = 200


# -- the simulated ipyparallel ---------------------------------------------------------------------


class SimulatedResult:
    """What ``DirectView.apply_async`` returns, for a call that ends at *done_at* (monotonic)."""

    def __init__(self, done_at: float, value: Any):
        self.done_at = done_at
        self.value = value
        self.data: dict[str, Any] = {}
        self.callbacks: list[Any] = []

    def done(self) -> bool:
        return time.monotonic() >= self.done_at

    def get(self, timeout: float | None = None) -> Any:
        if not self.done():
            raise TimeoutError("not done")
        return self.value

    def add_done_callback(self, callback: Any) -> None:
        self.callbacks.append(callback)


class SimulatedView:
    def __init__(self, farm: SimulatedFarm, engine_id: int):
        self.farm = farm
        self.engine_id = engine_id
        self.history: list[str] = []

    def apply_async(self, function: Any, *args: Any) -> SimulatedResult:
        # The runner comes pre-pickled (dispatcher.pickled_runner: no __name__); the info probe
        # is the plain function.
        return self.farm.call(self.engine_id, getattr(function, "__name__", "runner"), args)


class SimulatedFarm:
    """Stands in for ipyparallel.Client: *computers* x *slots* engines, all registered."""

    def __init__(self, computers: int, slots: int, task_seconds: float, seed: int = 14):
        self.slots = slots
        self.task_seconds = task_seconds
        self.ids = list(range(computers * slots))
        self.history: list[str] = []
        self.random = random.Random(seed)
        self._due: list[tuple[float, int, SimulatedResult]] = []
        self._lock = threading.Lock()
        self._count = 0
        self.results = 0
        self._stop = threading.Event()
        self._timer = threading.Thread(target=self._fire, name="simulated-farm", daemon=True)
        self._timer.start()
        self.timer_thread_id = self._timer.native_id

    def __getitem__(self, engine_id: int) -> SimulatedView:
        return SimulatedView(self, engine_id)

    def info(self, engine_id: int) -> dict[str, Any]:
        computer, slot = divmod(engine_id, self.slots)
        name = f"node{computer:04}"
        return {
            "name": name,
            "hostname": name,
            "os": "linux",
            "arch": "x86_64",
            "cores": 32,
            "ram_mb": 128 * 1024,
            "free_ram_mb": 100 * 1024,
            "load": 1.0,
            "gpus": 0,
            "pools": ["fx"] if computer % 3 == 0 else [],
            "renderers": ["blender", "shell"],
            "slots": self.slots,
            "slot": slot,
            "gpu_device": None,
            "engine_uuid": f"{name}-{slot}",
            "pid": 100000 + engine_id,
        }

    def call(self, engine_id: int, function: str, args: tuple[Any, ...]) -> SimulatedResult:
        now = time.monotonic()
        if function == "collect_info":
            return SimulatedResult(now, self.info(engine_id))
        seconds = self.random.uniform(0, 2 * self.task_seconds)
        result = SimulatedResult(
            now + seconds, {"status": "finished", "exit_code": 0, "seconds": seconds}
        )
        with self._lock:
            self._count += 1
            heapq.heappush(self._due, (result.done_at, self._count, result))
        return result

    def _fire(self) -> None:
        """Call the done-callbacks of the results that have come due, as the Client's I/O
        thread would."""
        while not self._stop.wait(0.01):
            now = time.monotonic()
            fired = []
            with self._lock:
                while self._due and self._due[0][0] <= now:
                    fired.append(heapq.heappop(self._due)[2])
            for result in fired:
                self.results += 1
                for callback in result.callbacks:
                    callback(result)

    def purge_local_results(self, jobs: Any = None) -> None:
        pass

    def send_signal(self, *args: Any, **kwargs: Any) -> None:
        pass

    def abort(self, *args: Any, **kwargs: Any) -> SimulatedResult:
        return SimulatedResult(time.monotonic(), None)

    def close(self) -> None:
        self._stop.set()


# -- the master, in this process -------------------------------------------------------------------


def fleet_jobs(tasks: int, jobs: int) -> list[Any]:
    """*jobs* job specs whose frames add up to *tasks*: 3 priorities, 20 owners, a fifth in
    pool ``fx``."""
    from drqueue.models import JobSpec, Requirements

    per_job = max(1, tasks // jobs)
    specs = []
    for index in range(jobs):
        requirements = Requirements(pools=["fx"] if index % 5 == 1 else [])
        specs.append(
            JobSpec(
                "shell",
                1,
                per_job,
                name=f"shot{index:03}",
                owner=f"artist{index % 20}",
                priority=(10, 50, 90)[index % 3],
                params={"cmd": "true"},
                requirements=requirements,
            )
        )
    return specs


class Master:
    """A store, a dispatcher over a SimulatedFarm and the API, in this process."""

    def __init__(self, root: Path, args: argparse.Namespace):
        from farm import free_port_block

        from drqueue.config import Config
        from drqueue.master.dispatcher import Dispatcher
        from drqueue.store import open_store

        self.config = Config(root=root, api_port=free_port_block(1))
        self.config.ensure_dirs()
        self.store = open_store(self.config.store_url)
        self.farm = SimulatedFarm(args.computers, args.slots, args.task_seconds)
        farm = self.farm

        class FleetDispatcher(Dispatcher):
            def connect(self) -> Any:
                return farm

        self.dispatcher = FleetDispatcher(self.store, self.config)
        self.dispatcher.client = farm
        self.server: Any = None
        self._server_thread: threading.Thread | None = None

    def start_api(self) -> None:
        from drqueue.master.api import create_app
        from drqueue.master.http_server import api_server, bind_api

        token = self.config.ensure_token()
        app = create_app(self.store, self.dispatcher, self.config, token)
        sock = bind_api(self.config.api_host, self.config.api_port)
        self.server = api_server(
            app, self.config.api_host, self.config.api_port, self.config.api_max_connections
        )
        self._server_thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [sock]}, name="api", daemon=True
        )
        self._server_thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the API did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        self.dispatcher.stop()
        if self.server is not None:
            self.server.should_exit = True
            if self._server_thread is not None:
                self._server_thread.join(10)
        self.farm.close()
        self.store.close()


def timed(function: Any, repeat: int) -> list[float]:
    """CPU seconds of this thread for each of *repeat* calls: on a shared machine with a load
    of 10 and more, wall time measures the other processes; a master on a machine of its own
    takes the CPU time in wall time."""
    times = []
    for _ in range(repeat):
        start = time.thread_time()
        function()
        times.append(time.thread_time() - start)
    return times


def busy_slots(dispatcher: Any) -> int:
    """Engines running a task (the dispatcher's own view)."""
    return sum(1 for engine in list(dispatcher.engines.values()) if engine.busy is not None)


def thread_cpu(master: Master) -> dict[str, float]:
    """CPU seconds of this process's threads, by part: the dispatcher's thread, the simulated
    farm's (the stand-in for the Client's I/O thread: counted apart, not as the master's), and
    the rest (the API's event loop and worker threads; the main thread only waits)."""
    roles = {
        master.dispatcher._thread.native_id: "dispatcher",
        master.farm.timer_thread_id: "simulation",
    }
    out = {"dispatcher": 0.0, "simulation": 0.0, "api": 0.0}
    for thread in psutil.Process().threads():
        out[roles.get(thread.id, "api")] += thread.user_time + thread.system_time
    return out


def steady_state(master: Master, settings: dict[str, Any], window: float) -> dict[str, Any]:
    """Run the simulated slaves and the API's readers (another process) for *window* seconds;
    this process's CPU in % of one core meanwhile, results and dispatches a second, and what
    the other process measured."""
    generator = subprocess.Popen(
        [sys.executable, __file__, "--generate", json.dumps(settings)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = generator.stdout.readline()  # "ready": its connections are open
        assert line.strip() == "ready", line
        stats = master.dispatcher.stats
        cpu0, t0, results0 = thread_cpu(master), time.monotonic(), master.farm.results
        dispatched0 = stats.dispatched
        out, _ = generator.communicate(timeout=window + 120)
        seconds = time.monotonic() - t0
        cpu1 = thread_cpu(master)
        figures = json.loads(out.strip().splitlines()[-1])
        figures.update(
            seconds=seconds,
            results=(master.farm.results - results0) / seconds,
            dispatched=(stats.dispatched - dispatched0) / seconds,
            load=os.getloadavg()[0],
            **{f"cpu_{k}": 100 * (cpu1[k] - cpu0[k]) / seconds for k in cpu0},
        )
        figures["cpu"] = figures["cpu_dispatcher"] + figures["cpu_api"]
        return figures
    finally:
        if generator.poll() is None:
            generator.kill()
            generator.wait()


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    from drqueue.master.dispatcher import DECISION_BATCH
    from drqueue.master.matching import plan
    from drqueue.master.tokens import create_token
    from drqueue.models import split_frames

    engines = args.computers * args.slots
    rows: list[dict[str, Any]] = []
    quiet: dict[str, Any] = {}
    busy: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="drqueue-fleet-") as tmp:
        master = Master(Path(tmp) / "root", args)
        dispatcher = master.dispatcher
        try:
            # 1. Registration: the dispatcher's own rounds probe every engine and store its
            # computer (no jobs yet, so it sends nothing else).
            started = time.monotonic()
            while dispatcher.slots_online() < engines:
                dispatcher.step()
            registered = time.monotonic() - started
            print(
                f"{engines:,} engines on {args.computers:,} computers usable in {registered:.1f} s",
                flush=True,
            )
            rows.append(
                row(f"{engines:,} simulated engines probed and stored", round(registered, 1), "s")
            )

            started = time.monotonic()
            for spec in fleet_jobs(args.tasks, args.jobs):
                master.store.create_job(spec, split_frames(spec.start, spec.end))
            print(
                f"{args.tasks:,} tasks in {args.jobs} jobs stored in "
                f"{time.monotonic() - started:.1f} s",
                flush=True,
            )

            # 2. The decision with every slot idle.
            idle = dispatcher._idle_slots()
            assert len(idle) == engines, len(idle)
            decide = timed(lambda: dispatcher.decide(idle), args.repeat)
            decided = len(dispatcher.decide(idle))
            jobs = master.store.runnable_jobs()
            computers = dispatcher._online_computers()
            plans = timed(lambda: plan(idle, jobs, computers, limit=DECISION_BATCH), args.repeat)
            whole = timed(lambda: plan(idle, jobs, computers, limit=None), 1)
            print(
                f"decide, {len(idle):,} idle slots, {args.tasks:,} queued: CPU best "
                f"{min(decide) * 1e3:.0f} ms, median {statistics.median(decide) * 1e3:.0f} ms "
                f"({decided:,} tasks chosen, DECISION_BATCH {DECISION_BATCH}); plan for all "
                f"{len(idle):,} at once {whole[0] * 1e3:.0f} ms",
                flush=True,
            )
            rows.append(
                row(
                    f"decision round (Dispatcher.decide: {decided} of {len(idle):,} idle slots, "
                    f"{args.tasks:,} queued in {args.jobs} jobs), CPU, median of {args.repeat}",
                    round(statistics.median(decide) * 1e3, 1),
                    "ms",
                    f"< {DECISION_TARGET_MS:g}",
                    statistics.median(decide) * 1e3 < DECISION_TARGET_MS,
                )
            )
            rows.append(
                row(
                    f"of it, matching.plan over the {len(idle):,} idle slots",
                    round(statistics.median(plans) * 1e3, 1),
                    "ms",
                )
            )
            rows.append(
                row(
                    f"matching.plan for all {len(idle):,} slots in one decision",
                    round(whole[0] * 1e3, 1),
                    "ms",
                )
            )

            # 3. The first round: every slot gets a task.
            master.start_api()
            started = time.monotonic()
            dispatcher.start()
            # (not every one: tasks keep ending, ~50 a second, and on a loaded machine the
            # master refills their slots only about as fast)
            while busy_slots(dispatcher) < BUSY_FRACTION * engines:
                if time.monotonic() - started > args.first_round_timeout:
                    raise TimeoutError(
                        f"{busy_slots(dispatcher):,} of {engines:,} slots busy after "
                        f"{args.first_round_timeout:.0f} s"
                    )
                time.sleep(1.0)  # (each look walks 32,000 engines, holding the GIL)
            first = time.monotonic() - started
            print(
                f"first round: {BUSY_FRACTION:.0%} of {engines:,} slots busy in {first:.1f} s",
                flush=True,
            )
            rows.append(
                row(
                    f"first round: {BUSY_FRACTION:.0%} of {engines:,} slots busy",
                    round(first, 1),
                    "s",
                )
            )

            # 4. Steady state: first with the API's readers alone, then with the heartbeats
            # too; what the second costs more is the heartbeats' share, per heartbeat.
            settings = {
                "port": master.config.api_port,
                "computers": args.computers,
                "slots": args.slots,
                "period": args.period,
                "window": args.window,
                "src": str(args.src.resolve()) if args.src else "",
                "slave_token": create_token(master.config, "slave", "fleet"),
                "admin_token": master.config.ensure_token(),
                "job_id": jobs[len(jobs) // 2].id,
            }
            quiet = steady_state(master, {**settings, "computers": 0}, args.window)
            busy = steady_state(master, settings, args.window)
        finally:
            master.stop()

    answered = busy["heartbeats_per_second"]
    period = busy["period"]
    # The heartbeats' cost: what the API's threads spent more with them than without, per
    # heartbeat answered (the dispatcher's work is the same in both windows).
    per_beat = (busy["cpu_api"] - quiet["cpu_api"]) / 100 / answered if answered else 0.0
    every_second = quiet["cpu"] + 100 * per_beat * args.computers
    for name, phase in (("without heartbeats", quiet), ("with heartbeats", busy)):
        print(
            f"steady state {name}, {phase['seconds']:.0f} s: master CPU {phase['cpu']:.0f} % of "
            f"one core (dispatcher {phase['cpu_dispatcher']:.0f}, API {phase['cpu_api']:.0f}; the "
            f"simulation's own {phase['cpu_simulation']:.0f}); heartbeats {phase['heartbeats_per_second']:.0f}/s answered; "
            f"{phase['results']:.0f} results and {phase['dispatched']:.0f} dispatches a second; "
            f"load average {phase['load']:.1f}",
            flush=True,
        )
    print(
        f"heartbeat period {period:g} s ({'fixed' if args.period else 'set by the master'}): "
        f"{answered:.0f}/s answered; one costs the master {per_beat * 1e3:.2f} ms of CPU; "
        f"{args.computers:,} a second would take {every_second:.0f} % of one core",
        flush=True,
    )
    results = quiet["results"]
    rows.append(
        row(
            f"steady state master CPU, {engines:,} slots busy, {results:.0f} results/s, "
            "API readers, no heartbeats",
            round(quiet["cpu"], 1),
            "% core",
        )
    )
    rows.append(
        row(
            "of it, the dispatcher's thread / the API's",
            f"{quiet['cpu_dispatcher']:.1f} / {quiet['cpu_api']:.1f}",
            "% core",
        )
    )
    rows.append(
        row(
            f"slave heartbeat period {'fixed by --period' if args.period else 'the master set'} "
            f"({args.computers:,} slaves online)",
            round(period, 2),
            "s",
        )
    )
    rows.append(row("slave heartbeats answered", round(answered, 1), "/s"))
    rows.append(
        row(
            f"master CPU per slave heartbeat (measured at {answered:.0f}/s)",
            round(per_beat * 1e3, 2),
            "ms",
        )
    )
    rows.append(
        row(
            f"steady state master CPU, {args.computers:,} slaves heartbeating every "
            f"{period:g} s ({answered:.0f}/s), measured",
            round(busy["cpu"], 1),
            "% core",
            f"< {CPU_TARGET_PERCENT:g}",
            busy["cpu"] < CPU_TARGET_PERCENT,
        )
    )
    rows.append(
        row(
            f"if every slave called every 1 s (computed: the quiet figure + {args.computers:,} "
            "heartbeats/s at their measured cost)",
            round(every_second, 1),
            "% core",
        )
    )
    for phase, figures, names in (
        ("readers only", quiet, ("jobs", "farm", "tasks")),
        ("with heartbeats", busy, ("heartbeat", "jobs", "farm", "tasks")),
    ):
        for name in names:
            latency = figures[name]
            rows.append(
                row(
                    f"API p50 / p99 in steady state ({phase}), {ROUTES[name]}",
                    f"{latency['p50']:.1f} / {latency['p99']:.1f}",
                    "ms",
                )
            )
    return rows


# -- the simulated slaves and the API's readers (a process of their own) ---------------------------


async def _request(reader: Any, writer: Any, data: bytes) -> tuple[float, bytes]:
    """Send one HTTP/1.1 request on a keep-alive connection and read its answer: (seconds,
    body)."""
    start = time.perf_counter()
    writer.write(data)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    body = await reader.readexactly(length) if length else b""
    if status != 200:
        raise RuntimeError(f"answered {status}: {data.splitlines()[0]!r}")
    return time.perf_counter() - start, body


def _http(method: str, path: str, token: str, body: bytes = b"") -> bytes:
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Length: {len(body)}\r\n"
    )
    if body:
        head += "Content-Type: application/json\r\n"
    return head.encode() + b"\r\n" + body


async def _generate(settings: dict[str, Any]) -> dict[str, Any]:
    if settings.get("src"):
        sys.path.insert(0, settings["src"])
    from drqueue.slave.launcher import heartbeat_wait

    port, fixed, window = settings["port"], settings["period"], settings["window"]
    rng = random.Random(14)
    slaves = []
    for computer in range(settings["computers"]):
        name = f"node{computer:04}"
        body = json.dumps({"engines": [f"{name}-{s}" for s in range(settings["slots"])]})
        slaves.append(
            _http(
                "POST", f"/api/v1/slaves/{name}/heartbeat", settings["slave_token"], body.encode()
            )
        )
    connections = [
        await asyncio.open_connection("127.0.0.1", port)
        for _ in range(min(CONNECTIONS, len(slaves)))
    ]
    reader_connection = await asyncio.open_connection("127.0.0.1", port)
    period = fixed or 1.0
    if slaves and not fixed:  # one call learns the period the master sets, before the window
        _seconds, answer = await _request(*connections[0], slaves[0])
        period = json.loads(answer).get("next_seconds", 1.0)
    print("ready", flush=True)
    latencies: dict[str, list[float]] = {"heartbeat": [], "jobs": [], "farm": [], "tasks": []}
    told: list[float] = []
    start = time.monotonic()
    end = start + window

    async def beat(index: int, reader: Any, writer: Any) -> None:
        # (due, slave): the slaves of this connection, the next due first; the first calls
        # spread over the period, as a fleet's calls are once its jitter has spread them
        due = [
            (start + rng.uniform(0, period), i) for i in range(index, len(slaves), len(connections))
        ]
        heapq.heapify(due)
        while due:
            when, slave = heapq.heappop(due)
            if when >= end:
                return
            now = time.monotonic()
            if when > now:
                await asyncio.sleep(when - now)
            try:
                seconds, answer = await _request(reader, writer, slaves[slave])
            except (asyncio.IncompleteReadError, ConnectionError):
                # The server closes a connection idle for its keep-alive time (uvicorn: 5 s),
                # as a real slave calling every 40 s finds; its HTTP client opens another.
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                seconds, answer = await _request(reader, writer, slaves[slave])
            latencies["heartbeat"].append(seconds)
            wait = 0.0
            if not fixed:
                told.append(json.loads(answer).get("next_seconds", 1.0))
                wait = heartbeat_wait(told[-1], rng)
            heapq.heappush(due, (when + fixed if fixed else time.monotonic() + wait, slave))

    async def read_api() -> None:
        admin = settings["admin_token"]
        requests = [
            ("jobs", _http("GET", "/api/v1/jobs?limit=50", admin)),
            ("farm", _http("GET", "/api/v1/farm", admin)),
            ("tasks", _http("GET", f"/api/v1/jobs/{settings['job_id']}/tasks?limit=100", admin)),
        ]
        i = 0
        while time.monotonic() < end:
            name, data = requests[i % len(requests)]
            latencies[name].append((await _request(*reader_connection, data))[0])
            i += 1
            await asyncio.sleep(1 / PROBES_PER_SECOND)

    await asyncio.gather(*(beat(i, r, w) for i, (r, w) in enumerate(connections)), read_api())
    seconds = time.monotonic() - start
    out: dict[str, Any] = {
        "heartbeats_per_second": len(latencies["heartbeat"]) / seconds,
        # the period the answers set (their median), or the fixed one
        "period": statistics.median(told) if told else period,
    }
    if not slaves:
        del latencies["heartbeat"]
    for name, values in latencies.items():
        values.sort()
        out[name] = {
            "count": len(values),
            "p50": 1000 * values[len(values) // 2] if values else 0.0,
            "p99": 1000 * values[min(len(values) - 1, int(len(values) * 0.99))] if values else 0.0,
        }
    return out


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--computers", type=int, default=4000)
    parser.add_argument("--slots", type=int, default=8, help="slots per computer")
    parser.add_argument("--tasks", type=int, default=100_000, help="queued tasks")
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument(
        "--task-seconds", type=float, default=600.0, help="mean simulated task duration"
    )
    parser.add_argument("--window", type=float, default=20.0, help="seconds of steady state")
    parser.add_argument(
        "--period",
        type=float,
        help="seconds between a slave's heartbeats, whatever the master answers (default: "
        "the answer's next_seconds, as the launcher does)",
    )
    parser.add_argument("--repeat", type=int, default=5, help="decisions timed")
    parser.add_argument("--first-round-timeout", type=float, default=1500.0)
    parser.add_argument("--src", type=Path, help="the master's code from this source tree")
    parser.add_argument("--generate", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.generate:
        print(json.dumps(asyncio.run(_generate(json.loads(args.generate)))), flush=True)
        return []
    if args.src:
        sys.path.insert(0, str(args.src.resolve()))
    os.environ.pop("DRQUEUE_TOKEN", None)
    print_load(
        f"fleet: {args.computers:,} simulated slaves x {args.slots} slots, {args.tasks:,} tasks "
        f"in {args.jobs} jobs"
    )
    return report("fleet", run(args))


if __name__ == "__main__":
    main()
