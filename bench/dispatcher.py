"""How long one dispatch decision takes on a simulated farm, as the queue grows.

No processes: 500 idle slots on 125 simulated computers (100 CPU hosts with 4 slots, 25 GPU
hosts with 2 CPU and 2 GPU slots; a third of them in pool ``fx``), and 100 jobs from 7
owners at 3 priorities (some need ``fx``, some GPUs, some Windows, some wait for another
job) holding 1k, 10k or 100k queued tasks.  Three figures per size:

* ``plan``    the pure decision, :func:`drqueue.master.matching.plan`;
* ``decide``  what the dispatcher does before it commits anything: read the runnable jobs
  and the computers from a real SQLite store, ``plan``, and fetch the chosen tasks
  (:meth:`drqueue.master.dispatcher.Dispatcher.decide`);
* ``round``   a whole dispatch round: ``decide``, then commit each task as dispatched (one
  transaction each) and hand it to a stand-in for ipyparallel.

The decision must not grow with the queued tasks: the ratios to the 1k case stay near 1.
A second table shows how ``plan`` grows with the number of *jobs* (it is linear in them).

    python bench/dispatcher.py            # print the figures
    python bench/dispatcher.py --check    # exit 1 if 100k tasks cost over 2x what 1k do
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from drqueue.config import Config
from drqueue.master.dispatcher import Dispatcher, EngineState
from drqueue.master.matching import Slot, plan
from drqueue.models import (
    Computer,
    Counts,
    Job,
    JobControl,
    JobSpec,
    Requirements,
    split_frames,
)
from drqueue.store.sqlite import SQLiteStore

#: Queue sizes measured, in tasks.
SIZES = (1_000, 10_000, 100_000)
#: Jobs the tasks are spread over.
JOBS = 100
#: The largest ratio (100k tasks over 1k) that --check accepts.
MAX_RATIO = 2.0


# -- the simulated farm --------------------------------------------------------------------------


def farm_computers() -> tuple[list[dict[str, Any]], list[Slot]]:
    """Computer infos as slaves report them, and their 500 slots."""
    infos, slots = [], []
    engine = 0
    for index in range(125):
        gpu_host = index >= 100
        name = f"{'gpu' if gpu_host else 'node'}{index:03}"
        cpu, gpus = (2, 2) if gpu_host else (4, 0)
        infos.append(
            {
                "name": name,
                "hostname": name,
                "os": "linux",
                "arch": "x86_64",
                "cores": 32,
                "ram_mb": 128 * 1024,
                "gpus": gpus,
                "pools": ["fx"] if index % 3 == 0 else [],
                "renderers": ["shell", "blender"],
                "slots": cpu + gpus,
            }
        )
        for slot in range(cpu + gpus):
            slots.append(Slot(engine, name, slot, str(slot - cpu) if slot >= cpu else None))
            engine += 1
    return infos, slots


def job_specs(tasks: int, jobs: int = JOBS) -> list[tuple[JobSpec, int]]:
    """*jobs* job specs whose frames add up to *tasks*, with mixed requirements."""
    per_job = max(1, tasks // jobs)
    specs = []
    for index in range(jobs):
        requirements = Requirements()
        if index % 5 == 1:
            requirements.pools = ["fx"]
        if index % 10 == 2:
            requirements.gpus = 1
        if index % 25 == 3:
            requirements.os = "windows"  # nothing can run it: it waits
        spec = JobSpec(
            "shell",
            1,
            per_job,
            name=f"shot{index}",
            owner=f"artist{index % 7}",
            priority=(10, 50, 90)[index % 3],
            params={"cmd": "true"},
            requirements=requirements,
            max_parallel=20 if index % 9 == 4 else None,
        )
        specs.append((spec, per_job))
    return specs


def plain_jobs(tasks: int, jobs: int = JOBS) -> list[Job]:
    """The same jobs as in-memory Job objects, for `plan` alone."""
    return [
        Job(
            id=index + 1,
            spec=spec,
            control=JobControl.ACTIVE,
            counts=Counts(total=count, queued=count),
            submitted_at=float(index),
        )
        for index, (spec, count) in enumerate(job_specs(tasks, jobs))
    ]


def as_computer(info: dict[str, Any]) -> Computer:
    """A Computer as the store would return it for *info*."""
    return Computer(**{k: v for k, v in info.items() if k in Computer.__dataclass_fields__})


class _Sent:
    """What apply_async returns: a result that never comes back (this is one round)."""

    data: dict[str, Any] = {}

    def done(self) -> bool:
        return False


class _Engine:
    def apply_async(self, function, *args):
        return _Sent()


class FakeClient:
    """Stands in for ipyparallel.Client: every engine accepts every task at once."""

    def __getitem__(self, engine_id: int) -> _Engine:
        return _Engine()


def simulated_dispatcher(folder: Path, tasks: int) -> tuple[Dispatcher, list[Slot]]:
    """A Dispatcher over a real SQLite store holding the farm and *tasks* queued tasks."""
    store = SQLiteStore(folder / f"bench-{tasks}.sqlite")
    infos, slots = farm_computers()
    for info in infos:
        store.upsert_computer(info)
    first = None
    for spec, count in job_specs(tasks):
        if first is not None and spec.name.endswith("7"):
            spec.after = [first]  # waits for the first job
        job_id = store.create_job(spec, split_frames(1, count))
        first = first or job_id
    dispatcher = Dispatcher(store, Config(root=folder))
    dispatcher.client = FakeClient()
    for slot in slots:
        dispatcher.engines[slot.engine_id] = EngineState(slot.engine_id, time.time(), slot=slot)
    return dispatcher, slots


def reset(dispatcher: Dispatcher) -> None:
    """Undo a round: every dispatched task back to the queue, every engine idle."""
    dispatcher.store.requeue_all_active("benchmark reset")
    dispatcher.outstanding.clear()
    for engine in dispatcher.engines.values():
        engine.busy = None


# -- measuring -----------------------------------------------------------------------------------


def timed(function, repeat: int) -> float:
    """Best of *repeat* calls, in seconds (as timeit advises: the rest is other processes' noise)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def measure(tasks: int, folder: Path, repeat: int) -> dict[str, float]:
    infos, slots = farm_computers()
    computers = {
        info["name"]: Computer(
            **{k: v for k, v in info.items() if k in Computer.__dataclass_fields__}
        )
        for info in infos
    }
    jobs = plain_jobs(tasks)
    figures = {"plan": timed(lambda: plan(slots, jobs, computers), repeat)}
    dispatcher, slots = simulated_dispatcher(folder, tasks)
    decided = dispatcher.decide(slots)
    figures["assigned"] = len(decided)
    figures["decide"] = timed(lambda: dispatcher.decide(slots), repeat)

    def one_round() -> None:
        dispatcher._dirty = True
        dispatcher._dispatch()

    rounds = []
    for _ in range(max(3, repeat // 4)):
        rounds.append(timed(one_round, 1))
        reset(dispatcher)
    figures["round"] = min(rounds)
    dispatcher.store.close()
    return figures


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Print the tables; return the figures as rows for bench/run_all.py."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeat", type=int, default=20, help="runs per figure (the best is shown)"
    )
    parser.add_argument(
        "--check", action="store_true", help=f"exit 1 if a ratio exceeds {MAX_RATIO}"
    )
    args = parser.parse_args(argv)

    infos, slots = farm_computers()
    print(f"simulated farm: {len(slots)} idle slots on {len(infos)} computers, {JOBS} jobs\n")
    print(
        f"{'queued tasks':>12}  {'assigned':>8}  {'plan ms':>8}  {'decide ms':>9}  {'round ms':>8}"
        f"  {'plan x':>6}  {'decide x':>8}  {'round x':>7}"
    )
    results: dict[int, dict[str, float]] = {}
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        for tasks in SIZES:
            results[tasks] = figures = measure(tasks, Path(folder), args.repeat)
            base = results[SIZES[0]]
            ratios = {key: figures[key] / base[key] for key in ("plan", "decide", "round")}
            print(
                f"{tasks:>12,}  {int(figures['assigned']):>8}  {figures['plan'] * 1e3:>8.2f}  "
                f"{figures['decide'] * 1e3:>9.2f}  {figures['round'] * 1e3:>8.1f}  "
                f"{ratios['plan']:>6.2f}  {ratios['decide']:>8.2f}  {ratios['round']:>7.2f}"
            )
            for key in ("plan", "decide", "round"):
                row = {
                    "benchmark": "dispatcher",
                    "figure": f"{key}, {tasks:,} queued, {len(slots)} idle",
                    "value": round(figures[key] * 1e3, 2),
                    "unit": "ms",
                }
                if key != "round" and tasks != SIZES[0]:
                    row.update(
                        target=f"<= {MAX_RATIO} x the {SIZES[0]:,} case",
                        ok=ratios[key] <= MAX_RATIO,
                    )
                rows.append(row)

    print(f"\nplan alone as the number of jobs grows (10k tasks, {len(slots)} idle slots):")
    print(f"{'jobs':>12}  {'plan ms':>8}")
    computers = {info["name"]: as_computer(info) for info in infos}
    for jobs in (10, 100, 1_000, 10_000):
        job_list = plain_jobs(10_000, jobs)
        seconds = timed(lambda jl=job_list: plan(slots, jl, computers), 5)
        print(f"{jobs:>12,}  {seconds * 1e3:>8.2f}")
        rows.append(
            {
                "benchmark": "dispatcher",
                "figure": f"plan, {jobs:,} jobs",
                "value": round(seconds * 1e3, 2),
                "unit": "ms",
            }
        )

    worst = max(results[SIZES[-1]][k] / results[SIZES[0]][k] for k in ("plan", "decide"))
    verdict = "does not grow" if worst <= MAX_RATIO else "GROWS"
    print(
        f"\ndecision time at {SIZES[-1]:,} vs {SIZES[0]:,} queued tasks: x{worst:.2f} ({verdict})"
    )
    if args.check and worst > MAX_RATIO:
        raise SystemExit(1)
    return rows


if __name__ == "__main__":
    main()
