"""How long one dispatch decision takes on a simulated farm, as the queue grows.

No processes: 500 idle slots on 125 simulated computers (100 CPU hosts with 4 slots, 25 GPU
hosts with 2 CPU and 2 GPU slots; a third of them in pool ``fx``), and 100 jobs from 7
owners at 3 priorities (some need ``fx``, some GPUs, some Windows, some wait for another
job) holding 1k, 10k or 100k queued tasks.  Three figures per size:

* ``plan``    the pure decision, :func:`drqueue.master.matching.plan`;
* ``decide``  what the dispatcher does before it commits anything: read the runnable jobs
  and the computers from a real store, ``plan``, and fetch the chosen tasks
  (:meth:`drqueue.master.dispatcher.Dispatcher.decide`);
* ``round``   a whole dispatch round: ``decide``, then commit each task as dispatched (one
  transaction each) and hand it to a stand-in for ipyparallel.

``decide`` and ``round`` are measured on each store (``--store``, default both): a SQLite
file, and MongoDB over the wire (the test server, SecantusDB, started here; or
``--mongo-url``), with the ratio MongoDB / SQLite of each.  ``plan`` touches no store.

The decision must not grow with the queued tasks: the ratios to the 1k case stay near 1.
A second table shows how ``plan`` grows with the number of *jobs* (it is linear in them).

    python bench/dispatcher.py            # print the figures
    python bench/dispatcher.py --check    # exit 1 if 100k tasks cost over 2x what 1k do
    python bench/dispatcher.py --store sqlite
"""

from __future__ import annotations

import argparse
import sys
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
from drqueue.store import open_store

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Stores, add_store_options, chosen_stores  # noqa: E402

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


def simulated_dispatcher(store_url: str, folder: Path, tasks: int) -> tuple[Dispatcher, list[Slot]]:
    """A Dispatcher over a new, real store (*store_url*) holding the farm and *tasks* queued
    tasks."""
    store = open_store(store_url)
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
    dispatcher.recount()
    return dispatcher, slots


def reset(dispatcher: Dispatcher) -> None:
    """Undo a round: every dispatched task back to the queue, every engine idle."""
    dispatcher.store.requeue_all_active("benchmark reset")
    dispatcher.outstanding.clear()
    for engine in dispatcher.engines.values():
        engine.busy = None
    dispatcher.recount()


# -- measuring -----------------------------------------------------------------------------------


def timed(function, repeat: int) -> float:
    """Best of *repeat* calls, in seconds (as timeit advises: the rest is other processes' noise)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def measure_plan(tasks: int, repeat: int) -> float:
    """Seconds of one ``plan`` for the simulated farm with *tasks* queued (no store)."""
    infos, slots = farm_computers()
    computers = {info["name"]: as_computer(info) for info in infos}
    jobs = plain_jobs(tasks)
    return timed(lambda: plan(slots, jobs, computers), repeat)


def measure(tasks: int, store_url: str, folder: Path, repeat: int, rounds: int) -> dict[str, float]:
    """``assigned``, ``decide`` (best of *repeat*) and ``round`` (best of *rounds*), in
    seconds, on a new store of *store_url*."""
    dispatcher, slots = simulated_dispatcher(store_url, folder, tasks)
    figures: dict[str, float] = {"assigned": len(dispatcher.decide(slots))}
    figures["decide"] = timed(lambda: dispatcher.decide(slots), repeat)

    def one_round() -> None:
        dispatcher._dirty = True
        dispatcher._dispatch()

    times = []
    for _ in range(rounds):
        times.append(timed(one_round, 1))
        reset(dispatcher)
    figures["round"] = min(times)
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
    parser.add_argument(
        "--rounds",
        type=int,
        help="whole rounds per figure (the best is shown; default repeat/4, at least 3)",
    )
    parser.add_argument(
        "--sizes",
        default=",".join(str(n) for n in SIZES),
        help="queued tasks of each case, comma-separated (the first is the base of the ratios)",
    )
    add_store_options(parser)
    args = parser.parse_args(argv)
    sizes = [int(n) for n in args.sizes.split(",") if n.strip()]
    store_names = chosen_stores(args.store)
    rounds = args.rounds or max(3, args.repeat // 4)

    infos, slots = farm_computers()
    print(f"simulated farm: {len(slots)} idle slots on {len(infos)} computers, {JOBS} jobs\n")
    print(
        f"{'store':>9}  {'queued tasks':>12}  {'assigned':>8}  {'plan ms':>8}  {'decide ms':>9}"
        f"  {'round ms':>8}  {'plan x':>6}  {'decide x':>8}  {'round x':>7}"
    )
    plans: dict[int, float] = {}
    results: dict[str, dict[int, dict[str, float]]] = {name: {} for name in store_names}
    rows: list[dict[str, Any]] = []
    first = sizes[0]
    with tempfile.TemporaryDirectory() as folder, Stores(store_names, args.mongo_url) as stores:
        for tasks in sizes:
            plans[tasks] = measure_plan(tasks, args.repeat)
            plan_x = plans[tasks] / plans[first]
            out = {
                "benchmark": "dispatcher",
                "figure": f"plan, {tasks:,} queued, {len(slots)} idle",
                "value": round(plans[tasks] * 1e3, 2),
                "unit": "ms",
            }
            if tasks != first:
                out.update(target=f"<= {MAX_RATIO} x the {first:,} case", ok=plan_x <= MAX_RATIO)
            rows.append(out)
            for name in store_names:
                label = stores.label(name)
                url = stores.url(name, Path(folder))
                results[name][tasks] = figures = measure(
                    tasks, url, Path(folder), args.repeat, rounds
                )
                base = results[name][first]
                ratios = {key: figures[key] / base[key] for key in ("decide", "round")}
                print(
                    f"{label:>9}  {tasks:>12,}  {int(figures['assigned']):>8}  "
                    f"{plans[tasks] * 1e3:>8.2f}  {figures['decide'] * 1e3:>9.2f}  "
                    f"{figures['round'] * 1e3:>8.1f}  {plan_x:>6.2f}  {ratios['decide']:>8.2f}  "
                    f"{ratios['round']:>7.2f}",
                    flush=True,
                )
                for key in ("decide", "round"):
                    out = {
                        "benchmark": "dispatcher",
                        "store": label,
                        "figure": f"{key}, {tasks:,} queued, {len(slots)} idle",
                        "value": round(figures[key] * 1e3, 2),
                        "unit": "ms",
                    }
                    if key == "decide" and tasks != first:
                        out.update(
                            target=f"<= {MAX_RATIO} x the {first:,} case",
                            ok=ratios[key] <= MAX_RATIO,
                        )
                    rows.append(out)
            if "sqlite" in results and "mongo" in results:
                for key in ("decide", "round"):
                    ratio = results["mongo"][tasks][key] / results["sqlite"][tasks][key]
                    rows.append(
                        {
                            "benchmark": "dispatcher",
                            "store": stores.label("mongo"),
                            "figure": f"MongoDB / SQLite, {key}, {tasks:,} queued",
                            "value": round(ratio, 2),
                            "unit": "x",
                        }
                    )

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

    worst = plans[sizes[-1]] / plans[first]
    for name in store_names:
        worst = max(worst, results[name][sizes[-1]]["decide"] / results[name][first]["decide"])
    verdict = "does not grow" if worst <= MAX_RATIO else "GROWS"
    print(f"\ndecision time at {sizes[-1]:,} vs {first:,} queued tasks: x{worst:.2f} ({verdict})")
    if args.check and worst > MAX_RATIO:
        raise SystemExit(1)
    return rows


if __name__ == "__main__":
    main()
