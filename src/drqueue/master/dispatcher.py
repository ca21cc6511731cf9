"""The dispatcher: matches queued tasks to idle engines and records every result.

It is the only code that talks to ipyparallel on the master, from one thread
that owns the :class:`ipyparallel.Client`.  The queue lives in the store; the
dispatcher feeds ipyparallel one task per idle engine it chose itself, so a
high-priority job submitted later overtakes a big low-priority one and
nothing waits inside a process that can die (ARCHITECTURE.md, "ipyparallel").

Each round:

1. engines that registered are probed for their computer info
   (:func:`drqueue.slave.info.collect_info`); engines that vanished lose their
   task back to the queue;
2. finished calls are recorded in the store, one transaction each; a result
   for an attempt the store no longer expects is a stale duplicate and ignored;
3. kill requests from the API become SIGINTs to engines;
4. idle engines get the next matching task: the task is committed as
   *dispatched* with a fresh attempt id **before** it is sent.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from drqueue.config import Config
from drqueue.master.matching import Slot, mismatch, order_jobs
from drqueue.models import Job, Task
from drqueue.slave.info import collect_info
from drqueue.slave.runner import run_task
from drqueue.store.base import Dispatch, Store

log = logging.getLogger(__name__)

#: Seconds between progress writes to the store for one task.
PROGRESS_WRITE_INTERVAL = 1.0
#: Seconds between the slow chores (last-seen times, waiting reasons, info refresh).
CHORES_INTERVAL = 2.0


@dataclass
class EngineState:
    """One registered engine."""

    engine_id: int
    registered_at: float
    probe: Any = None  # AsyncResult of collect_info while probing
    slot: Slot | None = None
    uuid: str = ""
    info_at: float = 0.0
    busy: str | None = None  # attempt id of the task it runs

    @property
    def ready(self) -> bool:
        return self.slot is not None and self.probe is None


@dataclass
class Outstanding:
    """A task sent to an engine whose result has not come back."""

    attempt_id: str
    task_id: int
    job_id: int
    owner: str
    engine_id: int
    computer: str
    result: Any  # ipyparallel AsyncResult
    sent_at: float
    timeout: float | None
    last_write: float = 0.0
    last_progress: float = -1.0
    interrupted: bool = False


@dataclass
class DispatcherStats:
    dispatched: int = 0
    finished: int = 0
    failed: int = 0
    stale: int = 0
    lost: int = 0
    rounds: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def task_spec(job: Job, task: Task, attempt_id: str, log_path: str, config: Config) -> dict[str, Any]:
    """The plain dict the runner gets for one task (see drqueue.slave.runner.run_task)."""
    spec = job.spec
    return {
        "attempt_id": attempt_id,
        "task_id": task.id,
        "task_index": task.index,
        "job_id": job.id,
        "job_name": spec.name,
        "owner": spec.owner,
        "renderer": spec.renderer,
        "params": spec.params,
        "scene": spec.scene,
        "start": spec.start,
        "end": spec.end,
        "step": spec.step,
        "block_size": spec.block_size,
        "task_start": task.block.start,
        "task_end": task.block.end,
        "padding": int(spec.params.get("padding", 4)) if isinstance(spec.params.get("padding"), int) else 4,
        "env": spec.env,
        "timeout": spec.timeout,
        "log_path": log_path,
        "path_map": config.path_map,
    }


class Dispatcher:
    """Runs in its own thread; other threads talk to it through the thread-safe methods."""

    def __init__(self, store: Store, config: Config):
        self.store = store
        self.config = config
        self.client = None
        self.engines: dict[int, EngineState] = {}
        self.outstanding: dict[str, Outstanding] = {}
        self.stats = DispatcherStats()
        self.instance_id = uuid.uuid4().hex
        self._commands: queue.Queue = queue.Queue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._chores_at = 0.0
        self._engine_uuids: frozenset[str] = frozenset()
        self._running_by_computer: dict[str, list[tuple[int, int]]] = {}
        self.ready = threading.Event()
        self.error: BaseException | None = None

    # -- thread-safe API ------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name="dispatcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=10)

    def wake(self) -> None:
        """Something changed in the store (a submit, a priority): dispatch now."""
        self._wake.set()

    def kill(self, dispatches: list[Dispatch]) -> None:
        """Interrupt the engines running these attempts (already requeued in the store)."""
        if dispatches:
            self._commands.put(("kill", [d.attempt_id for d in dispatches]))
            self._wake.set()

    def engine_uuids(self) -> frozenset[str]:
        """UUIDs (DRQUEUE_ENGINE_UUID) of the engines registered and probed now."""
        return self._engine_uuids

    def running_by_computer(self) -> dict[str, list[tuple[int, int]]]:
        """(job id, task id) pairs running on each computer, as of the last round."""
        return self._running_by_computer

    def slots_online(self) -> int:
        return sum(1 for e in list(self.engines.values()) if e.ready)

    # -- the dispatcher thread -----------------------------------------------------------------

    def _main(self) -> None:
        import ipyparallel

        try:
            # Positional: Client(url_file=...) silently ignores the argument (ARCHITECTURE.md).
            self.client = ipyparallel.Client(str(self.config.client_file), timeout=60)
        except BaseException as exc:
            self.error = exc
            self.ready.set()
            log.exception("cannot connect to the controller")
            return
        self.ready.set()
        while not self._stop.is_set():
            try:
                busy = self.step()
            except Exception:
                log.exception("dispatcher round failed")
                busy = False
                time.sleep(0.5)
            if not busy:
                self._wake.wait(0.02)
                self._wake.clear()
        try:
            self.client.close()
        except Exception:
            pass

    def step(self) -> bool:
        """One round; True if it did anything (then the next round starts at once)."""
        self.stats.rounds += 1
        did = self._sync_engines()
        did |= self._collect()
        did |= self._run_commands()
        did |= self._dispatch()
        now = time.monotonic()
        if now - self._chores_at >= CHORES_INTERVAL:
            self._chores_at = now
            self._chores()
        return did

    # -- engines ---------------------------------------------------------------------------------

    def _sync_engines(self) -> bool:
        ids = set(self.client.ids)
        known = set(self.engines)
        changed = False
        for engine_id in sorted(ids - known):
            state = EngineState(engine_id, time.time())
            state.probe = self.client[engine_id].apply_async(collect_info)
            self.engines[engine_id] = state
            changed = True
        for engine_id in sorted(known - ids):
            self._engine_lost(engine_id, "unregistered")
            changed = True
        for state in list(self.engines.values()):
            if state.probe is not None and state.probe.done():
                probe, state.probe = state.probe, None
                try:
                    info = probe.get(0)
                except Exception as exc:
                    log.warning("engine %d info probe failed: %s", state.engine_id, exc)
                    if state.slot is None:
                        state.probe = self.client[state.engine_id].apply_async(collect_info)
                    continue
                computer = self.store.upsert_computer(info)
                state.slot = Slot(state.engine_id, computer.name, info.get("slot", 0), info.get("gpu_device"))
                state.uuid = info.get("engine_uuid", "")
                state.info_at = time.monotonic()
                changed = True
        if changed:
            self._engine_uuids = frozenset(e.uuid for e in self.engines.values() if e.uuid)
        return changed

    def _engine_lost(self, engine_id: int, why: str) -> None:
        state = self.engines.pop(engine_id, None)
        if state is None:
            return
        name = state.slot.computer if state.slot else f"engine {engine_id}"
        if state.busy and state.busy in self.outstanding:
            outstanding = self.outstanding.pop(state.busy)
            self.store.requeue_attempts(
                [outstanding.attempt_id], f"engine {engine_id} on {name} was lost ({why})", lost=True
            )
            self.stats.lost += 1
        log.info("engine %d on %s lost (%s)", engine_id, name, why)

    # -- results -------------------------------------------------------------------------------

    def _collect(self) -> bool:
        did = False
        now = time.monotonic()
        for attempt_id, out in list(self.outstanding.items()):
            ar = out.result
            if ar.done():
                did = True
                self.outstanding.pop(attempt_id, None)
                engine = self.engines.get(out.engine_id)
                if engine is not None and engine.busy == attempt_id:
                    engine.busy = None
                self._record(out, ar)
                continue
            if out.timeout and not out.interrupted and now - out.sent_at > out.timeout + 60:
                # The runner enforces the time-out itself; this catches a runner that cannot.
                out.interrupted = True
                self._interrupt(out.engine_id)
            if now - out.last_write >= PROGRESS_WRITE_INTERVAL:
                data = ar.data if isinstance(ar.data, dict) else {}
                progress = float(data.get("progress", 0.0) or 0.0)
                if data and (progress != out.last_progress or out.last_progress < 0):
                    out.last_progress = progress
                    out.last_write = now
                    self.store.mark_running(attempt_id, progress, str(data.get("tail", "")))
        return did

    def _record(self, out: Outstanding, ar: Any) -> None:
        try:
            result = ar.get(0)
        except Exception as exc:
            name = type(exc).__name__
            if name in ("EngineError", "TimeoutError") or "EngineError" in str(exc):
                self.store.requeue_attempts(
                    [out.attempt_id], f"engine {out.engine_id} on {out.computer} died", lost=True
                )
                self.stats.lost += 1
                return
            result = {"status": "failed", "reason": f"runner error: {name}: {exc}"[:1000]}
        if not isinstance(result, dict):
            result = {"status": "failed", "reason": f"runner returned {type(result).__name__}"}
        state = self.store.record_result(out.attempt_id, result)
        if state is None:
            self.stats.stale += 1
            log.info("ignored a stale result for attempt %s", out.attempt_id)
            return
        if state == "finished":
            self.stats.finished += 1
        else:
            self.stats.failed += 1
            self._maybe_block_host(out)

    def _maybe_block_host(self, out: Outstanding) -> None:
        failures = self.store.host_failures(out.job_id).get(out.computer, 0)
        threshold = self.config.block_after_failures
        if threshold and failures >= threshold:
            self.store.block_host(out.job_id, out.computer)

    # -- commands from other threads --------------------------------------------------------------

    def _run_commands(self) -> bool:
        did = False
        while True:
            try:
                command, arg = self._commands.get_nowait()
            except queue.Empty:
                return did
            did = True
            if command == "kill":
                for attempt_id in arg:
                    out = self.outstanding.get(attempt_id)
                    if out is not None and not out.interrupted:
                        out.interrupted = True
                        self._interrupt(out.engine_id)

    def _interrupt(self, engine_id: int) -> None:
        try:
            self.client.send_signal(signal.SIGINT, targets=[engine_id], block=False)
        except Exception as exc:
            log.warning("cannot interrupt engine %d: %s", engine_id, exc)

    # -- dispatching ------------------------------------------------------------------------------

    def _idle_engines(self) -> list[EngineState]:
        return sorted(
            (e for e in self.engines.values() if e.ready and e.busy is None),
            key=lambda e: (e.slot.slot, e.slot.computer),
        )

    def _dispatch(self) -> bool:
        idle = self._idle_engines()
        if not idle:
            return False
        jobs = [job for job in self.store.runnable_jobs() if not job.waiting_for]
        if not jobs:
            return False
        computers = {c.name: c for c in self.store.list_computers()}
        blocked = self.store.blocked_hosts()
        running_by_owner = Counter(out.owner for out in self.outstanding.values())
        running_by_job = Counter(out.job_id for out in self.outstanding.values())
        running_by_computer = Counter(out.computer for out in self.outstanding.values())
        ordered = order_jobs(jobs, running_by_owner, self.config.fair_share)
        queued: dict[int, list[Task]] = {}
        sent = 0
        for engine in idle:
            computer = computers.get(engine.slot.computer)
            if computer is None or not computer.enabled:
                continue
            if computer.max_tasks is not None and running_by_computer[computer.name] >= computer.max_tasks:
                continue
            for job in ordered:
                if job.spec.max_parallel and running_by_job[job.id] >= job.spec.max_parallel:
                    continue
                if mismatch(job, computer, engine.slot, blocked.get(job.id, ())):
                    continue
                if job.id not in queued:
                    queued[job.id] = self.store.next_queued(job.id, len(idle))
                if not queued[job.id]:
                    continue
                task = queued[job.id].pop(0)
                if self._send(job, task, engine):
                    sent += 1
                    running_by_owner[job.spec.owner] += 1
                    running_by_job[job.id] += 1
                    running_by_computer[computer.name] += 1
                    if self.config.fair_share == "owner":
                        ordered = order_jobs(ordered, running_by_owner, "owner")
                    break
        return sent > 0

    def _send(self, job: Job, task: Task, engine: EngineState) -> bool:
        attempt_id = uuid.uuid4().hex
        log_path = str(self.config.logs_dir / str(job.id) / f"{task.index}.log")
        if not self.store.mark_dispatched(task.id, attempt_id, engine.engine_id, engine.slot.computer, log_path):
            return False
        spec = task_spec(job, task, attempt_id, log_path, self.config)
        try:
            result = self.client[engine.engine_id].apply_async(run_task, spec)
        except Exception as exc:
            self.store.requeue_attempts([attempt_id], f"could not send to engine: {exc}", lost=False)
            return False
        engine.busy = attempt_id
        self.outstanding[attempt_id] = Outstanding(
            attempt_id, task.id, job.id, job.spec.owner, engine.engine_id, engine.slot.computer,
            result, time.monotonic(), job.spec.timeout,
        )
        self.stats.dispatched += 1
        return True

    # -- slow chores -------------------------------------------------------------------------------

    def _chores(self) -> None:
        now = time.time()
        online = sorted({e.slot.computer for e in self.engines.values() if e.slot})
        self.store.touch_computers(online, now)
        running: dict[str, list[tuple[int, int]]] = {}
        for out in self.outstanding.values():
            running.setdefault(out.computer, []).append((out.job_id, out.task_id))
        self._running_by_computer = running
        self._refresh_info()
        self._update_waiting_reasons(online)

    def _refresh_info(self) -> None:
        """Re-probe idle engines whose info is older than the cache time (one per computer)."""
        cutoff = time.monotonic() - self.config.info_cache_seconds
        seen: set[str] = set()
        for engine in self.engines.values():
            if not engine.ready or engine.busy or engine.slot.computer in seen:
                continue
            if engine.info_at < cutoff:
                seen.add(engine.slot.computer)
                engine.probe = self.client[engine.engine_id].apply_async(collect_info)

    def _update_waiting_reasons(self, online: list[str]) -> None:
        jobs = self.store.runnable_jobs()
        if not jobs:
            return
        computers = [c for c in self.store.list_computers() if c.name in online]
        slots = [e.slot for e in self.engines.values() if e.ready]
        by_name = {c.name: c for c in computers}
        blocked = self.store.blocked_hosts()
        reasons: dict[int, str | None] = {}
        for job in jobs:
            reason = None
            if job.waiting_for:
                reason = "waiting for job " + ", ".join(str(d) for d in job.waiting_for)
            elif not slots:
                reason = "waiting: no slave online"
            else:
                why = [
                    mismatch(job, by_name[slot.computer], slot, blocked.get(job.id, ()))
                    for slot in slots
                    if slot.computer in by_name
                ]
                if why and all(why):
                    common = Counter(why).most_common(1)[0][0]
                    reason = f"waiting: {common} ({len(computers)} slaves online)"
            if reason != job.waiting_reason:
                reasons[job.id] = reason
        self.store.set_job_waiting_reason(reasons)
