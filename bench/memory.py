"""Memory: the master's RSS with 1,000,000 stored tasks, and the controller's growth per task.

    python bench/memory.py [--jobs 10] [--job-tasks 100000] [--dispatch 16000] [--chunk 2000]
                           [--engines 2] [--queued 4] [--completed-kept N] [--steady-from N]
                           [--heap] [--tracemalloc DIR] [--no-store] [--no-balanced] [--no-controller]
                           [--controller drqueue|ipyparallel] [--src DIR]

(a) Master RSS with a big store.  A real ``drqueue master`` with no slaves (nothing is
    dispatched) gets ``--jobs`` shell jobs of ``--job-tasks`` one-frame tasks each through
    drqueue.Client (10 x 100,000 = 1,000,000 tasks), then the list and query routes:
    ``GET /jobs``, ``GET /jobs/ID`` of every job, ``GET /jobs/ID/tasks`` (every task) of the
    first and the last job, one task of each, ``GET /events``, ``/farm`` and ``/computers``;
    then it idles through two of the dispatcher's chores rounds.  The RSS of the master's
    Python process (psutil, not its controller child) is sampled with an empty store (the
    baseline, after a first few API calls), after the submits and after the queries; its
    high-water mark (VmHWM) is reported too.
(b) Controller growth per task.  An ``ipyparallel.Cluster`` with ``--engines`` engines whose
    controller is started as the master starts its own: ``python -m drqueue.master.ipcontroller
    --nodb --hwm=1 --completed-kept=N`` (ipyparallel's controller with the Hub's memory of
    completed msg_ids bounded, N the master's ``hub_completed_kept`` unless given;
    ``--controller ipyparallel`` runs ipyparallel's unbounded one instead).
    Tiny tasks are sent the way DrQueue's dispatcher sends them: one ``DirectView`` per
    engine; the function canned and pickled once (``PrePickled``, like the dispatcher's
    ``pickled_runner()``) and sent by reference; the spec, shaped like ``task_spec``'s, as JSON
    text; each engine holds its running task and ``--queued`` more behind it (the dispatcher's
    prefetch of a short job's tasks, ``PREFETCH_MAX``), the next sent as one comes back.  The
    function is ``str``, so the engine answers a JSON text as big as the spec (about the
    runner's result) without running a shell.  The results back together are forgotten as the
    dispatcher forgets a round's (the Client's cached results purged, its msg_id histories
    trimmed at ``HISTORY_KEPT``).  Then the same number through a ``LoadBalancedView``, fed in
    batches of 200, as plain ipyparallel use would (nothing purged).
    After each ``--chunk`` tasks (all results back, ``gc.collect()`` in this process, the hub
    caught up with its copies of the traffic: two half-seconds in a row idle) the RSS of the
    controller's process tree, of its hub process, and of this process (the ipyparallel
    client: what the master's dispatcher holds) is sampled; the growth per task is the
    least-squares slope over the samples from the first chunk on (the first chunk also pays
    one-time allocations), **extrapolated** to 100,000 tasks from the ``--dispatch`` tasks
    actually run per path (16,000 by default).  The first tasks also fill bounded caches:
    each ``Session``'s ``digest_history`` of 65,536 message signatures (the hub checks 4 a
    task, so it is full after ~16,400 tasks; the client's after ~22,000), and the Hub's kept
    completed msg_ids (``--completed-kept`` overall, up to twice as many per engine), so a
    short run overstates the long-run slope.  ``--steady-from N`` reports the slope over the
    samples from N tasks on instead, once they are full (run_all: a small ``--completed-kept``
    so that they are full early); ``--no-store --no-balanced --dispatch 300000 --chunk 10000``
    is the long run of docs/performance.md.  ``--heap`` counts the hub's allocated blocks at
    each sample (bench/_traced_controller.py; free of the allocator's swings that RSS shows),
    ``--tracemalloc DIR`` also traces its heap and prints, per sample, its size and what grew
    most.

Target: (a) <= 300 MB after the queries.  (b) has no target; it is reported (a growth that
does not level off means the controller must be recycled on a long-lived farm).
Everything started here is stopped before it returns.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import dataclasses
import functools
import gc
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    MB,
    api_client,
    drqueue_farm,
    peak_rss_mb,
    print_load,
    raw_cluster,
    report,
    row,
    rss_mb,
    submit_shell,
)

from drqueue.master.dispatcher import HISTORY_KEPT, PREFETCH_MAX  # noqa: E402

TARGET_MB = 300
#: The long run's result, named in the rows of a short run measured once the caches are full.
LONG_RUN = 'the long run of 300,000 tasks: docs/performance.md, "The controller\'s memory"'


# -- (a) the master with a big store ---------------------------------------------------------


def master_rss(args: argparse.Namespace) -> list[dict[str, Any]]:
    total = args.jobs * args.job_tasks
    with drqueue_farm(args.src) as farm:
        farm.start_master()
        config = farm.config
        with api_client(farm, timeout=900) as client:
            pid = farm.master_proc.pid
            client.jobs()
            client.farm()
            client.events()
            time.sleep(2.5)  # one chores round on the empty store
            empty = rss_mb(pid)
            print(f"  master RSS, empty store: {empty:.0f} MB", flush=True)
            ids, submits = [], []
            for i in range(args.jobs):
                t0 = time.perf_counter()
                job = submit_shell(client, f"memory-{i}", tasks=args.job_tasks)
                submits.append(time.perf_counter() - t0)
                assert job["tasks"] == args.job_tasks, job
                ids.append(job["id"])
                print(
                    f"  job {i + 1}/{args.jobs}: {args.job_tasks:,} tasks in {submits[-1]:.2f} s, "
                    f"master RSS {rss_mb(pid):.0f} MB",
                    flush=True,
                )
            submitted = rss_mb(pid)
            t0 = time.perf_counter()
            assert len(client.jobs()) == args.jobs
            for job_id in ids:
                assert client.job(job_id)["counts"]["total"] == args.job_tasks
            for job_id in dict.fromkeys((ids[0], ids[-1])):
                assert len(client.tasks(job_id)) == args.job_tasks
                client._request("GET", f"/jobs/{job_id}/tasks/{args.job_tasks // 2}")
            client.events()
            client.farm()
            client.computers()
            queried_s = time.perf_counter() - t0
            queried = rss_mb(pid)
            print(
                f"  master RSS after the queries ({queried_s:.1f} s): {queried:.0f} MB", flush=True
            )
            time.sleep(4.5)  # two chores rounds on the big store
            idle = rss_mb(pid)
            peak = peak_rss_mb(pid)
            store_mb = sum(
                p.stat().st_size for p in Path(config.store_url.split("://", 1)[1]).parent.glob("*")
            )
            print(
                f"  master RSS after idling {idle:.0f} MB, peak {peak:.0f} MB; store files "
                f"{store_mb / MB:.0f} MB",
                flush=True,
            )
    worst = max(queried, idle)
    label = f"{total:,} stored tasks ({args.jobs} x {args.job_tasks:,})"
    return [
        row("master RSS, empty store (baseline)", round(empty), "MB"),
        row(f"master RSS with {label}, after the submits", round(submitted), "MB"),
        row(
            f"master RSS with {label}, after the list/query routes",
            round(worst),
            "MB",
            f"<= {TARGET_MB}",
            worst <= TARGET_MB,
        ),
        row("master RSS with the big store / empty store", round(worst / empty, 2), "x"),
        row("master peak RSS (VmHWM) during the run", round(peak), "MB"),
        row(
            f"submit {args.job_tasks:,} tasks (median of {len(submits)})",
            round(statistics.median(submits), 2),
            "s",
        ),
    ]


# -- (b) the controller's growth per task ------------------------------------------------------


def fake_spec(index: int) -> str:
    """drqueue.master.dispatcher.task_spec's dict for a shell task, as the JSON text the
    dispatcher sends (``json.dumps(spec)``)."""
    return json.dumps(
        {
            "attempt_id": uuid.uuid4().hex,
            "task_id": 1_000_000 + index,
            "task_index": index,
            "job_id": 17,
            "job_name": "shot_042 lighting v3",
            "owner": "artist3",
            "renderer": "shell",
            "params": {"cmd": "true"},
            "scene": None,
            "start": 1,
            "end": 100_000,
            "step": 1,
            "block_size": 1,
            "task_start": index,
            "task_end": index,
            "padding": 4,
            "env": {},
            "timeout": None,
            "log_path": f"/srv/drqueue/logs/17/{index}.log",
            "path_map": [],
            "failure_rules": [],
        }
    )


@functools.cache
def echo_runner() -> Any:
    """The task's function, canned and pickled once as the dispatcher's ``pickled_runner()``
    is, and sent by reference like ``run_task_json``; it is ``str``, so the engine answers the
    spec's text: a reply of a JSON text about as big as the runner's (its result dict), without
    running a shell (the controller's memory is what is measured, not the engines')."""
    from ipyparallel.serialize import PrePickled

    return PrePickled(str)


class Sampler:
    """RSS of the controller tree, its hub (the parent process) and this process."""

    def __init__(self, controller_pid: int, probes: Path | None = None):
        self.hub = psutil.Process(controller_pid)
        self.me = psutil.Process()
        self.samples: list[tuple[int, float, float, float]] = []
        #: With the hub probed (bench/_traced_controller.py): where it writes its probes, and
        #: (tasks done, the hub's allocated blocks) at each sample.
        self.probes = probes
        self.probe_count = len(list(probes.glob("*.json"))) if probes is not None else 0
        self.blocks: list[tuple[int, int]] = []
        self.snapshot_files: list[tuple[int, Path]] = []

    def sample(self, done: int) -> None:
        gc.collect()
        self.wait_hub_quiet()
        blocks = ""
        if self.probes is not None:
            self.probe(done)
            blocks = f", hub heap {self.blocks[-1][1]:,} blocks"
        tree = [self.hub, *self.hub.children(recursive=True)]
        total = sum(p.memory_info().rss for p in tree) / MB
        hub = self.hub.memory_info().rss / MB
        me = self.me.memory_info().rss / MB
        self.samples.append((done, total, hub, me))
        print(
            f"    {done:6d} tasks: controller tree {total:6.1f} MB (hub {hub:5.1f} MB{blocks}), "
            f"client {me:6.1f} MB",
            flush=True,
        )

    def wait_hub_quiet(self, timeout: float = 120) -> None:
        """Wait until the hub has caught up: it gets a copy of every request and reply from the
        schedulers and may still be reading a backlog of them after the client has its
        results (held in its queues and callbacks, which would count as growth).  Caught up
        is two half-seconds in a row in which it used under 5 ms of CPU (its heartbeats)."""
        deadline = time.monotonic() + timeout
        quiet = 0
        before = sum(self.hub.cpu_times()[:2])
        while quiet < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
            now = sum(self.hub.cpu_times()[:2])
            quiet = quiet + 1 if now - before < 0.005 else 0
            before = now

    def probe(self, done: int) -> None:
        """Ask the probed hub for its heap's facts (and snapshot, if traced); wait for them."""
        facts = self.probes / f"{self.probe_count}.json"
        self.hub.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 300
        while not facts.exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the hub wrote no {facts}")
            time.sleep(0.1)
        self.blocks.append((done, json.loads(facts.read_text())["blocks"]))
        snap = facts.with_suffix(".snap")
        if snap.exists():
            self.snapshot_files.append((done, snap))
        self.probe_count += 1

    def blocks_slope(self, from_tasks: int) -> float:
        """The hub's allocated blocks per 100,000 tasks over the probes from *from_tasks* on."""
        later = [(d, b) for d, b in self.blocks if d >= from_tasks] or self.blocks
        return statistics.linear_regression(*zip(*later, strict=True)).slope * 100_000

    def heap_report(self, from_tasks: int, top: int = 15) -> None:
        """Print the hub's traced heap at each sample and what grew most after *from_tasks*."""
        import tracemalloc

        for done, path in self.snapshot_files:
            size = sum(s.size for s in tracemalloc.Snapshot.load(str(path)).statistics("filename"))
            print(f"    hub heap at {done:7,} tasks: {size / MB:6.2f} MB", flush=True)
        later = [(d, p) for d, p in self.snapshot_files if d >= from_tasks]
        if len(later) < 2:
            return
        (d0, first), (d1, last) = later[0], later[-1]
        diff = tracemalloc.Snapshot.load(str(last)).compare_to(
            tracemalloc.Snapshot.load(str(first)), "traceback"
        )
        print(f"  the hub's heap, {d0:,} -> {d1:,} tasks, most grown first:", flush=True)
        for stat in diff[:top]:
            where = " <- ".join(
                f"{f.filename.rsplit('/', 2)[-1]}:{f.lineno}" for f in stat.traceback
            )
            print(
                f"    {stat.size_diff / 1024:+9.1f} KB {stat.count_diff:+7d}  {where}", flush=True
            )

    def slopes(self, from_tasks: int = 0) -> tuple[float, float, float]:
        """MB per 100,000 tasks: controller tree, hub, client (least squares), over the samples
        taken at *from_tasks* tasks and later.

        Without *from_tasks*, the sample before the first chunk is left out when there are
        three after it: the first chunk also pays one-time allocations (a new view, the
        client's buffers)."""
        if from_tasks:
            samples = [s for s in self.samples if s[0] >= from_tasks]
        else:
            samples = self.samples[1:] if len(self.samples) >= 4 else self.samples
        xs = [s[0] for s in samples]
        out = []
        for col in (1, 2, 3):
            ys = [s[col] for s in samples]
            out.append(statistics.linear_regression(xs, ys).slope * 100_000)
        return out[0], out[1], out[2]


def forget(rc: Any, views: Any, results: list[Any], kept: int = HISTORY_KEPT) -> None:
    """What the master's dispatcher does with the results of a round it recorded
    (Dispatcher._forget): purge the Client's cached results and metadata, trim its and each
    view's msg_id history."""
    with contextlib.suppress(Exception):
        rc.purge_local_results(jobs=results)
    if len(rc.history) > kept:
        del rc.history[: -kept // 2]
        for view in views:
            del view.history[: -kept // 2]


def run_direct(rc: Any, tasks: int, chunk: int, sampler: Sampler, queued: int) -> float:
    """DrQueue's way: each engine gets its tasks through its own DirectView, its running task
    and up to *queued* more behind it (the dispatcher's prefetch of a short job's tasks, at
    most PREFETCH_MAX), the next sent as one comes back; the results back together are read
    and then forgotten together, as a dispatcher round does.  Nothing is sent past the next
    sample's count, so each sample is taken with every task sent done."""
    views = {engine_id: rc[engine_id] for engine_id in rc.ids}
    queues: dict[int, list[Any]] = {engine_id: [] for engine_id in views}
    done = sent = 0
    sampler.sample(0)
    t0 = time.monotonic()
    while done < tasks:
        next_sample = min(tasks, (done // chunk + 1) * chunk)
        for engine_id, queue in queues.items():
            while len(queue) <= queued and sent < next_sample:
                queue.append(views[engine_id].apply_async(echo_runner(), fake_spec(sent)))
                sent += 1
        waiting = [ar for queue in queues.values() for ar in queue]
        back, _ = concurrent.futures.wait(waiting, return_when=concurrent.futures.FIRST_COMPLETED)
        for queue in queues.values():
            queue[:] = [ar for ar in queue if ar not in back]
        for ar in back:
            assert ar.get().startswith('{"attempt_id"'), ar.get()
        forget(rc, views.values(), list(back))
        done += len(back)
        if done == next_sample:
            sampler.sample(done)
    return tasks / (time.monotonic() - t0)


def run_balanced(rc: Any, tasks: int, chunk: int, sampler: Sampler, batch: int = 200) -> float:
    view = rc.load_balanced_view()
    done = 0
    sampler.sample(0)
    t0 = time.monotonic()
    while done < tasks:
        n = min(batch, tasks - done)
        results = [view.apply_async(echo_runner(), fake_spec(done + i)) for i in range(n)]
        view.wait(results)
        for ar in results:
            ar.get()
        del results
        done += n
        if done % chunk == 0:
            sampler.sample(done)
    return tasks / (time.monotonic() - t0)


def controller_command(which: str, kept: int | None) -> tuple[list[str], list[str], str]:
    """(command, arguments, label) of the controller: the master's own (its module and its
    bound on the Hub's completed msg_ids, *kept* or the master's default, when this commit has
    them) or ipyparallel's."""
    args = ["--nodb", "--hwm=1"]
    if which == "drqueue":
        from drqueue.config import Config
        from drqueue.master import controller

        module = getattr(controller, "CONTROLLER_MODULE", None)
        if module is not None:
            if kept is None:
                defaults = {f.name: f.default for f in dataclasses.fields(Config)}
                kept = defaults.get("hub_completed_kept")
            if kept is not None:
                args.append(f"--completed-kept={kept}")
            return [sys.executable, "-m", module], args, f"the master's controller ({module})"
    return [sys.executable, "-m", "ipyparallel.controller"], args, "ipyparallel's controller"


def controller_growth(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    cmd, controller_args, label = controller_command(args.controller, args.completed_kept)
    controller_name = cmd[-1]
    probes = args.tracemalloc
    if args.heap and probes is None:
        probes = Path(tempfile.mkdtemp(prefix="hub-probes-"))
    if probes is not None:
        probes.mkdir(parents=True, exist_ok=True)
        os.environ["DRQUEUE_HUB_PROBES"] = str(probes.resolve())
        os.environ["DRQUEUE_HUB_TRACE"] = "1" if args.tracemalloc is not None else "0"
        cmd = [sys.executable, str(Path(__file__).resolve().parent / "_traced_controller.py")]
        label += ", its hub's heap probed" + (" and traced" if args.tracemalloc else "")
    print(f"  {label}: {' '.join(cmd[1:] + controller_args)}", flush=True)
    with raw_cluster(args.engines, controller_args=tuple(controller_args), controller_cmd=cmd) as (
        cluster,
        rc,
    ):
        controller_pid = cluster.controller.pid
        warm = rc.load_balanced_view()
        warm.wait([warm.apply_async(echo_runner(), fake_spec(i)) for i in range(100)])
        direct = functools.partial(run_direct, queued=args.queued)
        paths = [
            (
                f"DirectView per engine, {args.queued} queued behind the running task, results "
                "purged (DrQueue's way)",
                direct,
            )
        ]
        if not args.no_balanced:
            paths.append(("LoadBalancedView", run_balanced))
        for name, run in paths:
            print(f"  {name}:", flush=True)
            sampler = Sampler(controller_pid, probes)
            rate = run(rc, args.dispatch, args.chunk, sampler)
            if args.tracemalloc is not None:
                sampler.heap_report(args.steady_from)
            tree, hub, client = sampler.slopes()
            first, last = sampler.samples[0], sampler.samples[-1]
            print(
                f"  {name}: {rate:.0f} tasks/s; per 100,000 tasks: controller tree "
                f"{tree:+.0f} MB (hub {hub:+.0f} MB), client {client:+.0f} MB "
                f"(measured over {args.dispatch:,}: tree {first[1]:.0f} -> {last[1]:.0f} MB)",
                flush=True,
            )
            if args.steady_from:
                # The growth once ipyparallel's bounded caches and the Hub's kept ids are full.
                tree, hub, client = sampler.slopes(args.steady_from)
                span = f"{args.steady_from // 1000}k -> {args.dispatch // 1000}k tasks"
                print(
                    f"  {name}, from {args.steady_from:,} tasks on: per 100,000 tasks: "
                    f"controller tree {tree:+.1f} MB (hub {hub:+.1f} MB), client {client:+.1f} MB",
                    flush=True,
                )
                measured = f"measured {span}, the caches full; {LONG_RUN}"
            else:
                measured = f"extrapolated from {args.dispatch // 1000}k"
            rows.append(
                row(
                    f"controller ({controller_name}) RSS growth per 100k tasks, {name} ({measured})",
                    round(tree, 1),
                    "MB",
                )
            )
            rows.append(row(f"  of which its hub process, {name}", round(hub, 1), "MB"))
            rows.append(
                row(
                    f"client (master) RSS growth per 100k tasks, {name} ({measured})",
                    round(client, 1),
                    "MB",
                )
            )
            if sampler.blocks:
                blocks = sampler.blocks_slope(args.steady_from)
                print(f"  the hub's heap: {blocks:+,.0f} allocated blocks per 100,000 tasks")
                rows.append(
                    row(
                        f"  its hub's heap, allocated blocks per 100k tasks, {name} ({measured})",
                        round(blocks),
                        "blocks",
                    )
                )
        print(
            f"  the client's history: {len(rc.history):,} msg_ids; results cached "
            f"{len(rc.results):,}; metadata {len(rc.metadata):,}",
            flush=True,
        )
    if args.heap and args.tracemalloc is None:
        shutil.rmtree(probes, ignore_errors=True)
    return rows


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10, help="jobs submitted in (a)")
    parser.add_argument("--job-tasks", type=int, default=100_000, help="one-frame tasks per job")
    parser.add_argument("--dispatch", type=int, default=16_000, help="tasks per path in (b)")
    parser.add_argument("--chunk", type=int, default=2000, help="tasks between samples in (b)")
    parser.add_argument("--engines", type=int, default=2, help="engines in (b)")
    parser.add_argument(
        "--completed-kept",
        type=int,
        help="(b): completed msg_ids the Hub keeps (default: the master's hub_completed_kept)",
    )
    parser.add_argument(
        "--steady-from",
        type=int,
        default=0,
        help="(b): report the growth over the samples from this many tasks on (the caches full)",
    )
    parser.add_argument(
        "--queued",
        type=int,
        default=PREFETCH_MAX,
        help="(b): tasks queued behind each engine's running one (the dispatcher's prefetch)",
    )
    parser.add_argument("--no-store", action="store_true", help="skip (a)")
    parser.add_argument(
        "--no-balanced", action="store_true", help="skip the LoadBalancedView path of (b)"
    )
    parser.add_argument(
        "--controller",
        choices=("drqueue", "ipyparallel"),
        default="drqueue",
        help="(b): the controller as the master runs it (default), or ipyparallel's own",
    )
    parser.add_argument("--no-controller", action="store_true", help="skip (b)")
    parser.add_argument(
        "--tracemalloc",
        type=Path,
        metavar="DIR",
        help="(b): trace the hub's heap (bench/_traced_controller.py), snapshots into DIR",
    )
    parser.add_argument(
        "--heap",
        action="store_true",
        help="(b): count the hub's allocated blocks at each sample (bench/_traced_controller.py)",
    )
    parser.add_argument(
        "--src", type=Path, help="run the master from this source tree (PYTHONPATH)"
    )
    args = parser.parse_args(argv)
    args.dispatch = max(args.chunk, args.dispatch // args.chunk * args.chunk)
    print_load("memory")
    rows = []
    if not args.no_store:
        rows += master_rss(args)
    if not args.no_controller:
        rows += controller_growth(args)
    return report("memory", rows)


if __name__ == "__main__":
    main()
