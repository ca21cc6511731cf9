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
2. finished calls are recorded in the store, all of a round's in one transaction; a
   result for an attempt the store no longer expects is a stale duplicate and ignored;
   a host that failed one job ``block_after_failures`` times is blocked for it;
3. kill requests from the API become SIGINTs to engines;
4. idle engines get the next matching task.  The decision is
   :func:`drqueue.master.matching.plan`, a pure function; it runs only when
   something changed (a result, an engine, a wake-up from the API) or every
   :data:`REPLAN_SECONDS`, so an idle farm costs no store reads.  Each task is
   committed as *dispatched* with a fresh attempt id **before** it is sent (a round's
   tasks in one transaction).  Engines running a short job get up to :data:`PREFETCH_MAX`
   more of its tasks queued behind the running one; while every engine has one queued, a
   round waits :data:`GATHER_SECONDS` for the results to gather.

Every :data:`CHORES_INTERVAL` the slow chores run: last-seen times, host info
older than ``info_cache_seconds`` on idle slaves, each waiting job's reason, the
slots each job can use (for its ETA), and jobs that failed on every eligible host.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import json
import logging
import math
import queue
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from drqueue.config import Config
from drqueue.errors import NotFound, StoreBusy
from drqueue.failures import (
    FailureAction,
    FailureClass,
    action_for,
    oom_ram_mb,
    parse_actions,
)
from drqueue.master.changes import JobChanges
from drqueue.master.framedeps import FrameGate, gated
from drqueue.master.matching import (
    Assignment,
    Slot,
    blocked_everywhere,
    plan,
    signature,
    usable_slots,
    waiting_reason,
)
from drqueue.models import Computer, Job, JobControl, Task, dependency_dead_end, task_seconds
from drqueue.procs import gpu_environment
from drqueue.slave.info import collect_info
from drqueue.slave.runner import run_task_json
from drqueue.store.base import Claim, Dispatch, Store

log = logging.getLogger(__name__)

#: Dependencies a waiting reason names (a job may wait for up to 1,000).
REASON_DEPENDENCIES = 5

#: Seconds between progress writes to the store for one task.
PROGRESS_WRITE_INTERVAL = 1.0
#: Seconds between the slow chores (last-seen times, waiting reasons, info refresh).
CHORES_INTERVAL = 2.0
#: Idle slots one decision hands tasks to at most; a farm with more idle gets the rest in the
#: next rounds, at once.  Deciding 32,000 slots at a time took seconds, and the decision was
#: stale long before its 32,000 commits were made (docs/performance.md, "Issue 14").
DECISION_BATCH = 500
#: Keys of an info probe's answer that differ between the engines of one computer.
ENGINE_INFO = frozenset({"slot", "gpu_device", "engine_uuid", "pid"})
#: Seconds after which idle engines are matched again even if nothing said the store changed.
REPLAN_SECONDS = 2.0
#: A job whose tasks take less than this (mean of its last results) gets one more task queued
#: on each engine behind the one running, so the engine never waits for the master's round trip
#: (10-20 ms, a few percent of a task this short; nothing next to a real render's minutes).
PREFETCH_BELOW_SECONDS = 2.0
#: How many tasks are queued behind the running one: enough for PREFETCH_COVER_SECONDS of the
#: job's mean task, one at least and PREFETCH_MAX at most.  One queued task covers the master's
#: round trip only while that round trip is shorter than a task; on a loaded machine a no-op
#: task (5 ms) is shorter, and the engines waited for the master (bench/dispatch.py).
PREFETCH_COVER_SECONDS = 0.05
PREFETCH_MAX = 4
#: Seconds the dispatcher waits before a round while every engine has a task queued behind its
#: running one, so the results that arrive meanwhile are recorded in one transaction and the
#: queues refilled in one decision: a round for each no-op task cost the master ~1 ms a task.
GATHER_SECONDS = 0.01
#: The longest a round waits for something to happen (a result, a registration, an info probe's
#: answer, a submit or a command wake it at once).  What no event announces (a prefetched task's
#: take-back, progress, a hold that expires, the chores) is looked at this often.  It was 20 ms,
#: and each round walked every engine: 4 % of a core with 128 engines idle (issue 14).
IDLE_WAIT_SECONDS = 0.25
#: Seconds between the walks over every task out (progress writes, time-outs, a result whose
#: done-callback is late) and over the Client's engine ids (should a registration notice be
#: missed).  Between walks a round looks only at what changed; the engines with tasks queued
#: behind their running one are looked at every IDLE_WAIT_SECONDS (take-backs).
WALK_SECONDS = PROGRESS_WRITE_INTERVAL
#: A farm with more tasks out than this walks them less often: every (tasks out / this)
#: seconds, so a walk costs a few percent of a core however big the farm (32,000 tasks out,
#: bench/fleet.py: a walk every 3.2 s).
WALK_TASKS_PER_SECOND = 10_000
#: The most of a core the decisions take while tasks keep ending: after a decision that cost c
#: seconds of CPU (reading the runnable jobs and planning: what a decision costs however few
#: tasks it hands out; committing and sending them is not counted), the next waits
#: c x (1 / DECISION_DUTY - 1), at most DECISION_PAUSE_MAX_SECONDS; the results that end
#: meanwhile are decided on together.  With 500 runnable jobs a decision costs ~10 ms, and a
#: farm of 32,000 engines ends a task every 40 ms (bench/fleet.py): a decision for each took a
#: quarter of a core.  A farm with a few jobs decides in well under a millisecond: a pause of a
#: few milliseconds, which the tasks queued behind short ones cover (PREFETCH_COVER_SECONDS).
DECISION_DUTY = 0.05
DECISION_PAUSE_MAX_SECONDS = 0.25
#: Seconds between the chores' reads of every online computer's stored info.  Every change made
#: through the API (and every info probe's answer) already makes the next decision read them.
COMPUTERS_REREAD_SECONDS = 10.0
#: msg_ids the Client and each view remember (trimmed to half when over): they only grow.
HISTORY_KEPT = 10_000
#: A prefetched task is taken back (requeued for any engine) when the task it waits behind has
#: run TAKE_BACK_FACTOR times its job's mean, and at least TAKE_BACK_SECONDS: the job's tasks
#: are not that short after all, and another engine may be free.
TAKE_BACK_SECONDS = 1.0
TAKE_BACK_FACTOR = 4.0
#: A failed info probe is resent after PROBE_RETRY_SECONDS, doubling after each failure up to
#: PROBE_RETRY_MAX_SECONDS (a broken slave must not be probed, and logged, every round).
PROBE_RETRY_SECONDS = 0.5
PROBE_RETRY_MAX_SECONDS = 60.0
#: A job whose task could not run for a reason outside the slave's and the render's control (its
#: task log could not be written on the shared storage) gets no new task for HOLD_SECONDS,
#: doubling after each such failure up to HOLD_MAX_SECONDS; the task goes back to the queue with
#: no failure counted against it, its job or the host, and other jobs run meanwhile.
HOLD_SECONDS = 1.0
HOLD_MAX_SECONDS = 30.0
#: A licence failure's hold grows to this many times ``licence_backoff_seconds``.
LICENCE_HOLD_GROWTH = 16
#: Queued tasks read beyond those a decision needs, so a slot too small for a task that needs
#: more memory (an out-of-memory retry's ``min_ram_mb``) takes the job's next task instead.
RAM_LOOK_AHEAD = 4
#: The most one decision spends searching gated jobs (``--after JOB:frames``, the first-frame
#: check) for their ready tasks; the jobs left count as having none ready until the next.
GATE_BUDGET_SECONDS = 0.05
#: Weight of the newest result in a job's mean task duration.
DURATION_WEIGHT = 0.2
#: Seconds the dispatcher pauses while the store is unavailable, doubling up to the second.
STORE_RETRY_SECONDS = 0.5
STORE_RETRY_MAX_SECONDS = 5.0


@dataclass
class EngineState:
    """One registered engine."""

    engine_id: int
    registered_at: float
    probe: Any = None  # AsyncResult of collect_info while probing
    probe_failures: int = 0
    probe_again_at: float = 0.0  # monotonic; when a failed first probe is resent
    slot: Slot | None = None
    uuid: str = ""
    view: Any = None  # its DirectView, made once
    busy: str | None = None  # attempt id of the task it runs or holds (a multi-GPU task)
    #: Attempt ids of short tasks queued on the engine behind *busy*, in the order the engine
    #: runs them (see PREFETCH_BELOW_SECONDS).
    prefetched: list[str] = field(default_factory=list)

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
    task_index: int = 0
    #: Further engines (GPU slots) the task holds while it runs.
    reserved: tuple[int, ...] = ()
    last_write: float = 0.0
    last_progress: float = -1.0
    interrupted: bool = False
    #: Queued on its engine behind another task (prefetched), so not started yet.
    queued: bool = False
    #: Set when an abort was sent for this queued task and its engine's answer is awaited:
    #: the reason it is requeued with if the engine aborts it (if it started, it ran).
    settling: str | None = None


class Outcome(NamedTuple):
    """How an attempt ended, as the dispatcher read it from its AsyncResult: the runner's
    result to record, or a reason to put the task back in the queue (*lost*: held against it)."""

    result: dict[str, Any] | None
    requeue: str | None = None
    lost: bool = False


class RunningTask(NamedTuple):
    """A task on a computer, as of the dispatcher's last chores (for GET /computers)."""

    job_id: int
    task_id: int
    task_index: int
    #: The progress last written to the store (0 before the first write).
    progress: float


@dataclass
class DispatcherStats:
    dispatched: int = 0
    #: Of the dispatched, those queued on an engine behind a running task (PREFETCH_BELOW_SECONDS).
    prefetched: int = 0
    finished: int = 0
    failed: int = 0
    stale: int = 0
    lost: int = 0
    #: Aborts of queued tasks their engine has confirmed (it will not start them).
    aborts_confirmed: int = 0
    #: Store writes owed while the store was unavailable (and written once it was back).
    owed: int = 0
    rounds: int = 0
    decisions: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def aborted(ar: Any) -> bool:
    """Whether a finished AsyncResult is an abort (the engine never started the task)."""
    from ipyparallel import error

    try:
        ar.get(0)
    except error.TaskAborted:
        return True
    except Exception:
        return False
    return False


def engine_died(exc: BaseException) -> bool:
    """Whether a task's exception says its engine died under it (ipyparallel reports that as a
    RemoteError named EngineError, built by the Client for the tasks of an unregistered engine)."""
    from ipyparallel import error

    return isinstance(exc, error.EngineError) or (
        isinstance(exc, error.RemoteError) and exc.ename == "EngineError"
    )


@functools.cache
def pickled_runner() -> Any:
    """The runner's entry point, canned and pickled once: ipyparallel otherwise does it again
    for every task it sends (70 us here)."""
    from ipyparallel.serialize import PrePickled

    return PrePickled(run_task_json)


def task_spec(
    job: Job,
    task: Task,
    attempt_id: str,
    log_path: str,
    config: Config,
    gpu_devices: list[str] | None = None,
) -> dict[str, Any]:
    """The plain dict the runner gets for one task (see drqueue.slave.runner.run_task).

    A task that holds several GPU slots gets all their devices in its environment; a task on
    one GPU slot gets its device from the engine's DRQUEUE_GPU_DEVICE (the runner sets it).
    """
    spec = job.spec
    env = dict(spec.env)
    if gpu_devices and len(gpu_devices) > 1:
        env.update(gpu_environment(gpu_devices))
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
        "padding": int(spec.params.get("padding", 4))
        if isinstance(spec.params.get("padding"), int)
        else 4,
        "env": env,
        "timeout": spec.timeout,
        "log_path": log_path,
        "path_map": config.path_map,
        # The farm's failure rules, for the runner's classification (drqueue.failures): it
        # sees the whole tail, the exit and the memory, and the master checked them at start.
        "failure_rules": config.failure_rules,
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
        self._online_names: frozenset[str] = frozenset()
        #: (monotonic time, value) of the last answer of running_by_computer().
        self._running_shown: tuple[float, dict[str, list[RunningTask]]] = (-math.inf, {})
        self._computers_read_at = 0.0
        # What changed since the last round, so that a round costs what changed rather than what
        # exists (issue 14: 32,000 engines).  The engines ready with nothing to run, in engine
        # id order at the time they became idle; the engines with an info probe out, or waiting
        # to be probed again; the attempts whose results arrived (appended on the Client's I/O
        # thread); whether the Client's engine ids may have changed.
        self._idle: dict[int, None] = {}
        self._queued_behind: set[int] = set()
        self._probing: set[int] = set()
        self._ended: collections.deque[tuple[str, Any]] = collections.deque()
        #: (when, attempt id) of the tasks started and not yet written running, in start
        #: order: each is written running PROGRESS_WRITE_INTERVAL after it started, not at the
        #: next walk (users, and tests, see a task running a second after it starts).
        self._first_marks: collections.deque[tuple[float, str]] = collections.deque()
        self._ids_changed = True
        self._walked_at = 0.0
        self._ids_at = 0.0
        self._queues_checked_at = 0.0
        #: No decision before this (monotonic): see DECISION_DUTY.
        self._decide_after = 0.0
        #: Tasks out per job, owner and computer (kept as tasks go out and come back).
        self._out_by_job: Counter[int] = Counter()
        self._out_by_owner: Counter[str] = Counter()
        self._out_by_computer: Counter[str] = Counter()
        #: The jobs whose stored state this dispatcher changed, for the live stream (noted after
        #: each write; the API notes its own changes here too).
        self.changed_jobs = JobChanges()
        # Matching state: set _dirty whenever the store or the engines may have changed.
        self._dirty = True
        self._planned_at = 0.0
        self._gate_turn = 0
        self._computers: dict[str, Computer] | None = None
        #: Grows at each wake(): a computers read that began before one is not kept.
        self._computers_generation = 0
        #: Owner -> a number that grows each time the owner gets a task (fair-share tie-break).
        self._last_served: dict[str, int] = {}
        self._serve_count = 0
        #: Computer -> when its info was last collected (monotonic).
        self._info_at: dict[str, float] = {}
        #: Job id -> the waiting reason last written to the store.
        self._reasons: dict[int, str] | None = None
        #: What the last pass over the waiting reasons was made from (the store's data version
        #: and the online slots): the next is skipped while both are the same.
        self._reasons_from: tuple[Any, ...] | None = None
        #: Frame-by-frame dependencies and first-frame checks (drqueue.master.framedeps).
        self.frame_gate = FrameGate(store)
        #: Job id -> the reasons last written to its tasks held by upstream frames.
        self._held_tasks: dict[int, dict[int, str]] = {}
        #: What the API reads for ETAs: online computers, ready slots, and a cache per job kind.
        self._online: tuple[dict[str, Computer], list[Slot]] = ({}, [])
        self._usable: dict[tuple, int] = {}
        #: Job id -> (results seen, mean task seconds): which jobs' tasks are short enough to prefetch.
        self._durations: dict[int, tuple[int, float]] = {}
        #: Job id -> (held until, hold seconds): no tasks after an infrastructure or licence
        #: failure.
        self._held: dict[int, tuple[float, float]] = {}
        #: The farm's actions by failure class (checked at the master's start).
        self._failure_actions = parse_actions(config.failure_actions, "failure_actions")
        #: Set when the store changed: queued-behind tasks may belong to a job that was stopped.
        self._recheck_prefetched = False
        #: Store writes owed while the store was unavailable (a MongoDB gone away, a lock held
        #: too long), in order: each records what this dispatcher already dropped from memory
        #: (a result collected, an engine lost), so none may be skipped.  Paid at each round.
        self._owed: list[Callable[[], Any]] = []
        #: Since when the store has been unavailable (monotonic), or None.
        self._store_down_since: float | None = None
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
        """Something changed in the store (a submit, a priority, a computer): dispatch now."""
        self._dirty = True
        self._computers_generation += 1
        self._computers = None
        self._recheck_prefetched = True
        self._wake.set()

    def kill(self, dispatches: list[Dispatch]) -> None:
        """Interrupt the engines running these attempts (already requeued in the store)."""
        if dispatches:
            self._commands.put(("kill", [d.attempt_id for d in dispatches]))
            self._wake.set()

    def _result_arrived(self, attempt_id: str, result: Any) -> None:
        # Called on the Client's I/O thread: a finished task frees an engine, so the next
        # round starts now rather than after the idle wait, and collects this result without
        # looking at every other task out.
        self._ended.append((attempt_id, result))
        self._wake.set()

    def _engines_changed(self, _event: Any = None) -> None:
        # Called on the Client's I/O thread when an engine registers or unregisters.
        self._ids_changed = True
        self._wake.set()

    def _probe_answered(self, _probe: Any) -> None:
        self._wake.set()

    def engine_uuids(self) -> frozenset[str]:
        """UUIDs (DRQUEUE_ENGINE_UUID) of the engines registered and probed now."""
        return self._engine_uuids

    def running_by_computer(self) -> dict[str, list[RunningTask]]:
        """The tasks running on each computer, at most CHORES_INTERVAL old (made when asked:
        32,000 tasks out every 2 s cost the dispatcher more than GET /computers asks for)."""
        made_at, running = self._running_shown
        if time.monotonic() - made_at >= CHORES_INTERVAL:
            running = {}
            for out in list(self.outstanding.values()):  # (one C call: safe from this thread)
                running.setdefault(out.computer, []).append(
                    RunningTask(
                        out.job_id, out.task_id, out.task_index, max(out.last_progress, 0.0)
                    )
                )
            self._running_shown = (time.monotonic(), running)
        return running

    def online_computers(self) -> frozenset[str]:
        """Names of the computers with an engine registered and probed (kept as engines come
        and go: GET /computers asks once per computer, and a walk of 32,000 engines each time
        cost 6 s of CPU a request at 4,000 computers)."""
        return self._online_names

    def slots_online(self) -> int:
        return sum(1 for e in list(self.engines.values()) if e.ready)

    def usable_slots(self, job: Job) -> int:
        """How many online slots could run *job*'s tasks at once (for its ETA)."""
        key = (signature(job), tuple(job.blocked_hosts), job.spec.max_parallel)
        count = self._usable.get(key)
        if count is None:
            computers, slots = self._online
            count = usable_slots(job, computers, slots)
            if job.spec.max_parallel:
                count = min(count, job.spec.max_parallel)
            self._usable[key] = count
        return count

    def computers_online(self) -> int:
        """How many computers have a registered, probed engine (read per slave heartbeat, for
        its period: a set kept, not a walk of the engines)."""
        return len(self._online_names)

    # -- the dispatcher thread -----------------------------------------------------------------

    def connect(self) -> Any:
        """The ipyparallel Client this dispatcher sends through (bench/fleet.py gives a
        simulated farm of its own here)."""
        import ipyparallel

        # Positional: Client(url_file=...) silently ignores the argument (ARCHITECTURE.md).
        return ipyparallel.Client(str(self.config.client_file), timeout=60)

    def _main(self) -> None:
        try:
            self.client = self.connect()
        except BaseException as exc:
            self.error = exc
            self.ready.set()
            log.exception("cannot connect to the controller")
            return
        # ipyparallel calls these on (un)registration (Client.wait_for_engines uses the same
        # list); a Client without it is polled every WALK_SECONDS instead.
        callbacks = getattr(self.client, "_registration_callbacks", None)
        if callbacks is not None:
            callbacks.append(self._engines_changed)
        self.ready.set()
        pause = STORE_RETRY_SECONDS
        while not self._stop.is_set():
            try:
                busy = self.step()
            except StoreBusy as exc:
                # The store is unavailable: pause, and try again with what is owed to it.
                self._store_down(exc)
                busy = False
                self._dirty = True
                self._stop.wait(pause)
                pause = min(STORE_RETRY_MAX_SECONDS, pause * 2)
                continue
            except Exception:
                log.exception("dispatcher round failed")
                busy = False
                self._dirty = True
                time.sleep(0.5)
            if self._store_down_since is not None and not self._owed:
                log.warning(
                    "store back after %.1f s: dispatching again",
                    time.monotonic() - self._store_down_since,
                )
                self._store_down_since = None
                pause = STORE_RETRY_SECONDS
            if not busy:
                self._wake.wait(self._idle_wait())
                self._wake.clear()
            if self._work_queued_everywhere():
                # No engine can run dry meanwhile: let results gather, to record them in one
                # transaction and refill the engines' queues in one decision.
                self._stop.wait(GATHER_SECONDS)
        with contextlib.suppress(Exception):
            self.client.close()

    def _work_queued_everywhere(self) -> bool:
        """Whether every ready engine has a task queued behind the one it runs."""
        if self._idle:
            return False
        ready = False
        for engine in self.engines.values():
            if engine.ready:
                if not engine.prefetched:
                    return False
                ready = True
        return ready

    def _note_idle(self, engine: EngineState) -> None:
        """Keep :attr:`_idle` true for *engine*, after its state changed."""
        if engine.ready and engine.busy is None and self.engines.get(engine.engine_id) is engine:
            self._idle[engine.engine_id] = None
        else:
            self._idle.pop(engine.engine_id, None)

    def recount(self) -> None:
        """Make the kept sets and counts again from the engines and the tasks out, walking
        both: for a tool that sets :attr:`engines` or :attr:`outstanding` itself
        (bench/dispatcher.py).  A round keeps them true by itself."""
        self._idle = {}
        for engine_id in sorted(self.engines):
            self._note_idle(self.engines[engine_id])
        self._probing = {e.engine_id for e in self.engines.values() if e.probe is not None}
        self._queued_behind = {e.engine_id for e in self.engines.values() if e.prefetched}
        self._online_names = frozenset(e.slot.computer for e in self.engines.values() if e.slot)
        self._out_by_job = Counter(out.job_id for out in self.outstanding.values())
        self._out_by_owner = Counter(out.owner for out in self.outstanding.values())
        self._out_by_computer = Counter(out.computer for out in self.outstanding.values())

    def _probe(self, state: EngineState) -> None:
        """Send *state*'s engine an info probe (answered in :meth:`_sync_engines`)."""
        state.probe = self._view(state.engine_id).apply_async(collect_info)
        with contextlib.suppress(AttributeError):
            state.probe.add_done_callback(self._probe_answered)
        self._probing.add(state.engine_id)
        self._note_idle(state)

    def step(self) -> bool:
        """One round; True if it did anything (then the next round starts at once)."""
        self.stats.rounds += 1
        self._pay_owed()
        did = self._sync_engines()
        did |= self._collect()
        did |= self._run_commands()
        if self._recheck_prefetched:
            self._recheck_prefetched = False
            did |= self._check_prefetched()
        if did:
            self._dirty = True
        did |= self._dispatch()
        now = time.monotonic()
        if now - self._chores_at >= CHORES_INTERVAL:
            self._chores_at = now
            self._chores()
        return did

    # -- store writes that must not be lost --------------------------------------------------------

    def _must_write(self, write: Callable[[], Any]) -> None:
        """Do a store write that follows state this dispatcher already dropped from memory;
        while the store is unavailable, owe it (in order) and go on."""
        if self._owed:
            self._owe(write)
            return
        try:
            write()
        except StoreBusy as exc:
            self._owe(write)
            self._store_down(exc)

    def _owe(self, write: Callable[[], Any]) -> None:
        self._owed.append(write)
        self.stats.owed += 1

    def _store_down(self, exc: StoreBusy) -> None:
        """Note (and log, once an outage) that the store is unavailable."""
        if self._store_down_since is None:
            self._store_down_since = time.monotonic()
            log.warning(
                "store unavailable, dispatching paused and writes kept until it is back: %s", exc
            )

    def _pay_owed(self) -> None:
        """Make the writes owed to the store, in order; StoreBusy (the round ends) if it is
        still unavailable, with the rest still owed."""
        while self._owed:
            self._owed[0]()
            self._owed.pop(0)

    # -- engines ---------------------------------------------------------------------------------

    def _sync_engines(self) -> bool:
        """Take in the engines that registered (an info probe each) and the answers of the
        probes out, and let go of the engines that unregistered.  Looks at every engine id only
        when a registration notice came, or every WALK_SECONDS."""
        changed = False
        now = time.monotonic()
        if self._ids_changed or now - self._ids_at >= WALK_SECONDS:
            self._ids_changed = False  # before reading: a notice from now on means read again
            self._ids_at = now
            ids = set(self.client.ids)
            known = set(self.engines)
            for engine_id in sorted(ids - known):
                state = self.engines[engine_id] = EngineState(engine_id, time.time())
                self._probe(state)
                changed = True
            for engine_id in sorted(known - ids):
                self._engine_lost(engine_id, "unregistered")
                changed = True
        if not self._probing:
            return changed
        # A computer's info as stored this pass, without what differs between its engines:
        # its other engines' answers, alike but for those, are not written again (a slave of 8
        # slots registers with 8 answers at once; 4,000 of them made 32,000 writes).
        written: dict[str, tuple[dict[str, Any], Computer]] = {}
        for engine_id in sorted(self._probing):
            state = self.engines.get(engine_id)
            if state is None:
                self._probing.discard(engine_id)
                continue
            if state.probe is None:
                # Its first probe failed: probe again once the back-off is over.
                if state.slot is None and state.probe_again_at <= now:
                    self._probe(state)
                continue
            if not state.probe.done():
                continue
            probe, state.probe = state.probe, None
            try:
                info = probe.get(0)
                if not isinstance(info, dict) or not isinstance(info.get("name"), str):
                    raise TypeError(f"the info probe answered {type(info).__name__}")
            except Exception as exc:
                self._probe_failed(state, exc)
                if state.slot is not None:  # a refresh: the engine keeps its last info
                    self._probing.discard(engine_id)
                    self._note_idle(state)
                continue
            self._probing.discard(engine_id)
            state.probe_failures = 0
            if state.slot is not None:
                # A refresh: pools come from the store now, so a member an admin removed
                # stays removed until the slave itself restarts with that pool.
                info = {k: v for k, v in info.items() if k != "pools"}
            else:
                log.info(
                    "engine %d (slot %s of %s) ready %.2f s after it registered",
                    state.engine_id,
                    info.get("slot"),
                    info.get("name"),
                    time.time() - state.registered_at,
                )
            shared = {k: v for k, v in info.items() if k not in ENGINE_INFO}
            seen = written.get(info["name"])
            if seen is not None and seen[0] == shared:
                computer = seen[1]
            else:
                computer = self.store.upsert_computer(info)
                written[info["name"]] = (shared, computer)
            self._computers = None
            self._info_at[computer.name] = time.monotonic()
            state.slot = Slot(
                state.engine_id, computer.name, info.get("slot", 0), info.get("gpu_device")
            )
            state.uuid = info.get("engine_uuid", "")
            self._note_idle(state)
            changed = True
        if changed:
            self._engine_uuids = frozenset(e.uuid for e in self.engines.values() if e.uuid)
            self._online_names = frozenset(e.slot.computer for e in self.engines.values() if e.slot)
        return changed

    def _probe_failed(self, state: EngineState, exc: Exception) -> None:
        """Back off before probing again; say so loudly the first time and on each doubling."""
        state.probe_failures += 1
        delay = min(PROBE_RETRY_MAX_SECONDS, PROBE_RETRY_SECONDS * 2 ** (state.probe_failures - 1))
        state.probe_again_at = time.monotonic() + delay
        failures = state.probe_failures
        level = logging.WARNING if failures & (failures - 1) == 0 else logging.DEBUG
        log.log(
            level,
            "engine %d info probe failed (%d time%s, next in %.1f s): %s",
            state.engine_id,
            failures,
            "" if failures == 1 else "s",
            delay,
            exc,
        )

    def _view(self, engine_id: int) -> Any:
        """The engine's DirectView (made once: making one costs more than sending a task)."""
        state = self.engines[engine_id]
        if state.view is None:
            state.view = self.client[engine_id]
        return state.view

    def _engine_lost(self, engine_id: int, why: str) -> None:
        state = self.engines.pop(engine_id, None)
        self._idle.pop(engine_id, None)
        self._probing.discard(engine_id)
        self._queued_behind.discard(engine_id)
        if state is None:
            return
        self._computers = None
        name = state.slot.computer if state.slot else f"engine {engine_id}"
        for attempt_id in (state.busy, *state.prefetched):
            out = self.outstanding.get(attempt_id) if attempt_id else None
            if out is None or out.engine_id != engine_id:
                continue  # a merely reserved GPU slot runs nothing
            self._release(out)
            if attempt_id == state.busy:
                reason, started = f"engine {engine_id} on {name} was lost ({why})", True
                self.stats.lost += 1
            else:
                # It was queued behind the running task: most likely it never started, so the
                # loss is not held against it (max_lost); the attempt still counts, as it may
                # have begun in the moment before the engine died.
                reason, started = (
                    f"engine {engine_id} on {name} was lost (task queued there)",
                    False,
                )
            self._must_write(
                functools.partial(
                    self.store.requeue_attempts, [out.attempt_id], reason, lost=started
                )
            )
            self.changed_jobs.note(out.job_id)
        log.info("engine %d on %s lost (%s)", engine_id, name, why)
        computer = state.slot.computer if state.slot else None
        if computer and not any(
            e.slot and e.slot.computer == computer for e in self.engines.values()
        ):
            self._must_write(
                functools.partial(
                    self.store.add_event,
                    "computer.lost",
                    f"{computer} lost its last engine ({why})",
                    computer=computer,
                )
            )

    def _release(self, out: Outstanding) -> None:
        """Forget an attempt and free every engine it held; a task queued behind it starts."""
        if self.outstanding.pop(out.attempt_id, None) is not None:
            for counter, key in (
                (self._out_by_job, out.job_id),
                (self._out_by_owner, out.owner),
                (self._out_by_computer, out.computer),
            ):
                counter[key] -= 1
                if counter[key] <= 0:
                    del counter[key]
        for engine_id in (out.engine_id, *out.reserved):
            engine = self.engines.get(engine_id)
            if engine is None:
                continue
            if out.attempt_id in engine.prefetched:
                engine.prefetched.remove(out.attempt_id)
            elif engine.busy == out.attempt_id:
                engine.busy = engine.prefetched.pop(0) if engine.prefetched else None
                following = self.outstanding.get(engine.busy) if engine.busy else None
                if following is not None:
                    following.sent_at = time.monotonic()  # its time-out runs from now
                    following.queued = False
                    self._first_marks.append(
                        (following.sent_at + PROGRESS_WRITE_INTERVAL, following.attempt_id)
                    )
                self._note_idle(engine)
            if not engine.prefetched:
                self._queued_behind.discard(engine_id)

    def _take_back(self, engine: EngineState, attempt_id: str, reason: str | None) -> None:
        """Abort the task *attempt_id* queued on *engine* behind its running one and requeue it
        now (with *reason*, unless the store already requeued it), so another engine may take
        it.

        Used where speed matters (a running task turned out long) or where the abort is sure to
        arrive first (a kill: the abort goes out before the SIGINT, on the same control
        channel).  If the engine started it anyway, the store no longer expects its attempt,
        and whatever it returns is ignored as stale."""
        engine.prefetched.remove(attempt_id)
        if not engine.prefetched:
            self._queued_behind.discard(engine.engine_id)
        out = self.outstanding.get(attempt_id)
        if out is None:
            return
        self._release(out)
        if reason or out.settling:
            self._must_write(
                functools.partial(
                    self.store.requeue_attempts,
                    [out.attempt_id],
                    reason or out.settling,
                    lost=False,
                )
            )
            self.changed_jobs.note(out.job_id)
        self._abort(out)

    def _settle_prefetched(self, out: Outstanding, reason: str) -> None:
        """Abort the task *out* queued on its engine, but leave it dispatched until the engine
        answers: aborted, it is requeued with *reason*; started (the tasks before it ended in
        the moment before the abort arrived), it runs and its result counts.  A stop or a host
        block is in no hurry, and this way the store never says queued of a task that is
        running."""
        if not out.settling:
            out.settling = reason
            self._abort(out)

    def _abort(self, out: Outstanding) -> None:
        try:
            answer = self.client.abort(out.result, targets=[out.engine_id], block=False)
        except Exception as exc:
            log.warning("cannot abort a queued task on engine %d: %s", out.engine_id, exc)
            return
        answer.add_done_callback(self._abort_answered)

    def _abort_answered(self, answer: Any) -> None:
        # On the Client's I/O thread.  Once the engine answers, it will not start the task.
        if answer.exception() is None:
            self.stats.aborts_confirmed += 1

    def _check_prefetched(self) -> bool:
        """Take back each task queued behind another whose job may not start tasks now: the job
        was stopped or deleted, or the engine's host was blocked for it.  True if any."""
        jobs: dict[int, Job | None] = {}
        taken = False
        for engine_id in list(self._queued_behind):
            engine = self.engines[engine_id]
            for attempt_id in list(engine.prefetched):
                out = self.outstanding.get(attempt_id)
                if out is None or out.settling:
                    continue
                why = self._may_not_start(out, jobs)
                if why:
                    self._settle_prefetched(out, f"requeued before it started: {why}")
                    taken = True
        return taken

    def _may_not_start(self, out: Outstanding, jobs: dict[int, Job | None]) -> str | None:
        """Why the queued attempt *out* may not start now (its job stopped or deleted, its host
        blocked for the job), or None; *jobs* keeps the jobs read for one check."""
        if out.job_id not in jobs:
            try:
                jobs[out.job_id] = self.store.get_job(out.job_id)
            except NotFound:
                jobs[out.job_id] = None
        job = jobs[out.job_id]
        if job is None:
            return "its job was deleted"
        if job.control != JobControl.ACTIVE:
            return "its job was stopped"
        if out.computer in job.blocked_hosts:
            return f"{out.computer} is blocked for its job"
        return None

    def _interrupt_attempt(self, out: Outstanding) -> None:
        """Stop one attempt: abort it if it waits in its engine's queue, else SIGINT the engine
        (after taking back the tasks queued behind it, which the signal must not hit)."""
        out.interrupted = True
        engine = self.engines.get(out.engine_id)
        if engine is not None and out.attempt_id in engine.prefetched:
            self._take_back(engine, out.attempt_id, None)
            return
        if engine is not None:
            for queued in list(engine.prefetched):
                self._take_back(
                    engine, queued, f"requeued: the task before it on {out.computer} was stopped"
                )
        self._interrupt(out.engine_id)

    # -- results -------------------------------------------------------------------------------

    def _collect(self) -> bool:
        """Note every ended attempt, and record them all in one store transaction; every
        WALK_SECONDS, also take back the tasks queued behind one that runs long and write
        progress (at most once a second a task).  Between walks, only the attempts whose
        done-callbacks fired are looked at."""
        did = False
        now = time.monotonic()
        ended: list[tuple[Outstanding, Outcome]] = []
        forgotten = []
        while self._ended:
            attempt_id, result = self._ended.popleft()
            out = self.outstanding.get(attempt_id)
            if out is None:
                # Taken back, or its engine lost: nothing to record, but the Client keeps
                # every result until told to drop it (~1 KB each).
                forgotten.append(result)
            elif out.result.done():
                did = True
                self._release(out)
                ended.append((out, self._outcome(out, out.result)))
        if forgotten:
            self._forget(forgotten)
        check_queues = now - self._queues_checked_at >= IDLE_WAIT_SECONDS
        if check_queues:
            self._queues_checked_at = now
        for engine_id in list(self._queued_behind) if check_queues else ():
            engine = self.engines.get(engine_id)
            out = self.outstanding.get(engine.busy) if engine and engine.busy else None
            if out is None or out.engine_id != engine_id:
                continue
            waiting = [
                attempt_id
                for attempt_id in engine.prefetched
                if not getattr(self.outstanding.get(attempt_id), "settling", None)
            ]
            if waiting and now - out.sent_at > self._take_back_after(out.job_id):
                # Its job's tasks were short, this one is not: free the ones behind it for
                # other engines.
                for attempt_id in waiting:
                    self._take_back(
                        engine,
                        attempt_id,
                        f"requeued: task {out.task_index} before it on {out.computer} runs long",
                    )
                # Not short after all: no more prefetching until short results bring it back.
                count, mean = self._durations.get(out.job_id, (0, 0.0))
                self._durations[out.job_id] = (
                    count,
                    max(mean, now - out.sent_at, PREFETCH_BELOW_SECONDS),
                )
                did = True
        while self._first_marks and self._first_marks[0][0] <= now:
            out = self.outstanding.get(self._first_marks.popleft()[1])
            if out is not None and not out.queued and out.last_progress < 0:
                self._write_progress(out, now)
        walk = now - self._walked_at >= max(
            WALK_SECONDS, len(self.outstanding) / WALK_TASKS_PER_SECOND
        )
        if walk:
            self._walked_at = now
        for out in list(self.outstanding.values()) if walk else ():
            if out.attempt_id not in self.outstanding:
                continue  # taken back during this loop
            ar = out.result
            if ar.done():  # (a result whose callback is still to come)
                did = True
                self._release(out)
                ended.append((out, self._outcome(out, ar)))
                continue
            if out.timeout and not out.interrupted and now - out.sent_at > out.timeout + 60:
                # The runner enforces the time-out itself; this catches a runner that cannot.
                self._interrupt_attempt(out)
            if now - max(out.last_write, out.sent_at) >= PROGRESS_WRITE_INTERVAL:
                # (not in a task's first second: most tasks of a short job end before that)
                self._write_progress(out, now)
        if ended:
            self._must_write(functools.partial(self._conclude, ended))
        return did

    def _write_progress(self, out: Outstanding, now: float) -> None:
        """Write *out* running, with the progress its engine published, if that changed."""
        ar = out.result
        data = ar.data if isinstance(ar.data, dict) else {}
        progress = float(data.get("progress", 0.0) or 0.0)
        if data and (progress != out.last_progress or out.last_progress < 0):
            out.last_progress = progress
            out.last_write = now
            self.store.mark_running(out.attempt_id, progress, str(data.get("tail", "")))
            # Running (from dispatched) and its progress: the live pages show both.
            self.changed_jobs.note(out.job_id)

    def _outcome(self, out: Outstanding, ar: Any) -> Outcome:
        """What an ended attempt's AsyncResult means, read at once (the engine's and the job's
        state in memory follow it now; the store is written in :meth:`_conclude`)."""
        if out.settling and aborted(ar):
            return Outcome(None, requeue=out.settling)
        try:
            result = ar.get(0)
            if isinstance(result, str):  # runner.run_task_json's answer
                result = json.loads(result)
            self._note_duration(out.job_id, result)
        except Exception as exc:
            name = type(exc).__name__
            if engine_died(exc):
                engine = self.engines.get(out.engine_id)
                following = self.outstanding.get(engine.busy) if engine and engine.busy else None
                if following is not None:
                    following.queued = True  # it waited behind this one on a dead engine
                if out.queued:
                    reason = f"engine {out.engine_id} on {out.computer} died (task queued there)"
                    return Outcome(None, requeue=reason)
                self.stats.lost += 1
                return Outcome(
                    None, requeue=f"engine {out.engine_id} on {out.computer} died", lost=True
                )
            result = {"status": "failed", "reason": f"runner error: {name}: {exc}"[:1000]}
        if not isinstance(result, dict):
            result = {"status": "failed", "reason": f"runner returned {type(result).__name__}"}
        return Outcome(result)

    def _conclude(self, ended: list[tuple[Outstanding, Outcome]]) -> None:
        """Write the outcomes of the attempts that ended in one round to the store (the plain
        results in one transaction), then drop the Client's copies of them."""
        recorded: list[tuple[Outstanding, dict[str, Any], FailureAction | None, bool]] = []
        for out, outcome in ended:
            result = outcome.result
            if outcome.requeue is not None:
                self.store.requeue_attempts([out.attempt_id], outcome.requeue, lost=outcome.lost)
            elif result.get("status") == "finished":
                recorded.append((out, result, None, False))
            elif result.get("infrastructure"):
                self._infrastructure_failed(out, str(result.get("reason") or "no reason given"))
            else:
                # A copy: a write owed while the store is away runs this again on the same result.
                result = dict(result)
                recorded.append((out, result, *self._failure_action(out, result)))
        if recorded:
            states = self.store.record_results([(out.attempt_id, r) for out, r, *_ in recorded])
            for (out, result, action, stops_job), state in zip(recorded, states, strict=True):
                self._recorded(out, state, result, action, stops_job)
        for out, _outcome in ended:
            self.changed_jobs.note(out.job_id)
        self._forget([out.result for out, _outcome in ended])

    def _recorded(
        self,
        out: Outstanding,
        state: str | None,
        result: dict[str, Any],
        action: FailureAction | None,
        stops_job: bool,
    ) -> None:
        """Count a recorded result, and do what a failure's class asks of the farm: hold the
        job back (licence), end its queued tasks (an action of ``fail``), or block a host that
        keeps failing it (retry)."""
        if state is None:
            self.stats.stale += 1
            log.info("ignored a stale result for attempt %s", out.attempt_id)
            return
        if state == "finished":
            self.stats.finished += 1
            self._held.pop(out.job_id, None)
            return
        self.stats.failed += 1
        if action == FailureAction.BACKOFF:
            self._hold_job(
                out,
                f"licence failure: {result.get('failure_detail') or result.get('reason')}",
                self.config.licence_backoff_seconds,
                self.config.licence_backoff_seconds * LICENCE_HOLD_GROWTH,
            )
        elif stops_job:
            self._fail_job_for(out, result)
        elif action == FailureAction.RETRY:
            self._maybe_block_host(out)

    def _failure_action(
        self, out: Outstanding, result: dict[str, Any]
    ) -> tuple[FailureAction, bool]:
        """Decide what a failed attempt's class (the runner's classification) does, and write
        it into *result* for the store (drqueue.store.policy.after_failed_result): the job's
        action for the class, else the farm's.  An out-of-memory retry needs a bigger host:
        its memory is raised (``min_ram_mb``), or, when no known slave has that much, the task
        is an error saying so.  Returns the action, and whether the job stops taking tasks
        (the class's action is ``fail``: every frame would fail the same way)."""
        try:
            klass = FailureClass(result.get("failure_class") or "unknown")
        except ValueError:
            klass = FailureClass.UNKNOWN
        try:
            job_actions = self.store.get_job(out.job_id).spec.on_failure
        except NotFound:
            job_actions = {}
        action = action_for(klass, job_actions, self._failure_actions)
        result["failure_class"] = klass.value
        stops_job = action == FailureAction.FAIL
        result.pop("min_ram_mb", None)  # the master's decision, never the engine's
        if action == FailureAction.RETRY_BIGGER:
            computers = {c.name: c for c in self.store.list_computers()}
            host = computers.get(out.computer)
            need = oom_ram_mb(result.get("peak_rss_kb"), host.ram_mb if host else 0)
            # Every known slave, enabled or not: a disabled one is back at a word.
            biggest = max((c.ram_mb for c in computers.values()), default=0)
            if need > biggest:
                action = FailureAction.FAIL
                result["reason"] = (
                    f"needs {need} MB: no slave is that big (out of memory on "
                    f"{out.computer}: {result.get('reason') or 'no reason given'})"
                )
            else:
                result["min_ram_mb"] = need
                result["reason"] = (
                    f"out of memory on {out.computer}; retried on a slave with more than "
                    f"{need - 1} MB: {result.get('reason') or 'no reason given'}"
                )
        result["failure_action"] = action.value
        return action, stops_job

    def _fail_job_for(self, out: Outstanding, result: dict[str, Any]) -> None:
        """A failure whose class's action is ``fail`` (a missing asset): every frame would fail
        the same way, so the job's queued tasks are errors too, with the path; its running
        tasks end by themselves.  ``drqueue job requeue-failed`` runs them again once fixed."""
        detail = result.get("failure_detail") or result.get("reason") or "no reason given"
        reason = (
            f"{result['failure_class']} on task {out.task_index}: {detail}; every task would "
            f"fail the same way: fix it, then `drqueue job requeue-failed {out.job_id}`"
        )
        count = self.store.fail_queued_tasks(out.job_id, reason)
        log.warning("job %d: %d queued tasks in error: %s", out.job_id, count, reason)
        self._dirty = True

    def _infrastructure_failed(self, out: Outstanding, why: str) -> None:
        """The task could not run for a reason that is neither the slave's nor the render's
        (its log could not be written): requeue it without a failure against the task, the job
        or the host, and hold the job back a while so a broken share is not hammered every
        round.  Other jobs keep the host busy meanwhile."""
        reason = f"not started on {out.computer}: {why} (not counted as a failure; retried)"
        self.store.requeue_attempts([out.attempt_id], reason, lost=False)
        self._hold_job(out, why, HOLD_SECONDS, HOLD_MAX_SECONDS)

    def _hold_job(self, out: Outstanding, why: str, first: float, longest: float) -> None:
        """Give the job no new task for *first* seconds, doubling up to *longest* while the
        cause lasts (a finished task of the job ends the hold); an event says so once."""
        held = out.job_id in self._held
        _until, seconds = self._held.get(out.job_id, (0.0, 0.0))
        seconds = min(longest, seconds * 2) if seconds else first
        self._held[out.job_id] = (time.monotonic() + seconds, seconds)
        if not held:
            self.store.add_event(
                "job.held",
                f"no new tasks for {seconds:g} s, doubling to {longest:g} s while it lasts: {why}",
                job_id=out.job_id,
                computer=out.computer,
            )
        log.warning("job %d held for %.1f s: %s", out.job_id, seconds, why)
        self._dirty = True

    def _held_jobs(self) -> set[int]:
        if not self._held:
            return set()
        now = time.monotonic()
        return {job_id for job_id, (until, _seconds) in self._held.items() if until > now}

    def _forget(self, results: list[Any]) -> None:
        """Drop the Client's copies of recorded results: it keeps every result, its metadata and
        every msg_id it sent (also in each view) for good, which grows the master ~1 KB a task."""
        try:
            self.client.purge_local_results(jobs=results)
        except Exception:  # one of them still outstanding in the Client: purge the others
            for result in results:
                with contextlib.suppress(Exception):
                    self.client.purge_local_results(jobs=result)
        if len(self.client.history) > HISTORY_KEPT:
            del self.client.history[: -HISTORY_KEPT // 2]
            for engine in self.engines.values():
                if engine.view is not None:
                    del engine.view.history[: -HISTORY_KEPT // 2]

    def _note_duration(self, job_id: int, result: Any) -> None:
        if not isinstance(result, dict):
            return
        seconds = task_seconds(result, math.inf)
        if not math.isfinite(seconds):
            return
        count, mean = self._durations.get(job_id, (0, seconds))
        self._durations[job_id] = (count + 1, mean + DURATION_WEIGHT * (seconds - mean))

    def _take_back_after(self, job_id: int) -> float:
        """Seconds a task of *job_id* may run before the task queued behind it is taken back."""
        _count, mean = self._durations.get(job_id, (0, 0.0))
        return max(TAKE_BACK_SECONDS, TAKE_BACK_FACTOR * mean)

    def _short_jobs(self) -> set[int]:
        """Jobs whose tasks take under PREFETCH_BELOW_SECONDS, from at least two results."""
        return {
            job_id
            for job_id, (count, mean) in self._durations.items()
            if count >= 2 and mean < PREFETCH_BELOW_SECONDS
        }

    def _maybe_block_host(self, out: Outstanding) -> None:
        """Block a host that failed this job block_after_failures times; a job blocked on every
        eligible host ends its queued tasks in error instead of waiting forever."""
        threshold = self.config.block_after_failures
        if not threshold:
            return
        failures = self.store.host_failures(out.job_id).get(out.computer, 0)
        if failures < threshold:
            return
        try:
            job = self.store.get_job(out.job_id)
        except NotFound:
            return
        if out.computer not in job.blocked_hosts:
            self.store.block_host(out.job_id, out.computer)
            self.store.add_event(
                "host.blocked",
                f"{out.computer} failed {failures} tasks of this job: it gets no more "
                f"(`drqueue job unblock {out.job_id} {out.computer}` to undo)",
                job_id=out.job_id,
                computer=out.computer,
            )
            job.blocked_hosts = sorted({*job.blocked_hosts, out.computer})
            self._check_prefetched()  # tasks of this job queued on that host must not start
            log.info("blocked %s for job %d after %d failures", out.computer, out.job_id, failures)
        self._fail_if_blocked_everywhere(job, list(self._online_computers().values()))

    def _fail_if_blocked_everywhere(self, job: Job, online: list[Computer]) -> bool:
        hosts = blocked_everywhere(job, online)
        if not hosts or not job.counts.queued:
            return False
        reason = (
            f"failed on every eligible slave ({', '.join(hosts)}: blocked after repeated failures); "
            f"`drqueue job requeue-failed {job.id}` tries again"
        )
        count = self.store.fail_queued_tasks(job.id, reason)
        self.changed_jobs.note(job.id)
        log.warning("job %d: %d queued tasks in error: %s", job.id, count, reason)
        self._dirty = True
        return True

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
                        self._interrupt_attempt(out)

    def _interrupt(self, engine_id: int) -> None:
        try:
            self.client.send_signal(signal.SIGINT, targets=[engine_id], block=False)
        except Exception as exc:
            log.warning("cannot interrupt engine %d: %s", engine_id, exc)

    # -- dispatching ------------------------------------------------------------------------------

    def _idle_slots(self) -> list[Slot]:
        return [self.engines[engine_id].slot for engine_id in sorted(self._idle)]

    def _online_computers(self) -> dict[str, Computer]:
        """Stored info of the computers with a registered engine (cached until a change)."""
        computers = self._computers  # wake() may reset it from another thread at any time
        if computers is None:
            generation = self._computers_generation
            online = self._online_names
            computers = {c.name: c for c in self.store.list_computers() if c.name in online}
            # Not kept if a wake() came meanwhile: the read may predate its change (a computer
            # disabled as it was read would take tasks until the next chores; issue 14's run).
            if generation == self._computers_generation:
                self._computers = computers
                self._computers_read_at = time.monotonic()
        return computers

    def _prefetch_slots(self, short: set[int]) -> list[Slot]:
        """Engines running a short job's task with fewer tasks queued behind it than
        :meth:`_prefetch_depth` says, each once per task it may still queue."""
        slots = []
        now = time.monotonic()
        for engine in self.engines.values():
            if not engine.ready or engine.busy is None:
                continue
            out = self.outstanding.get(engine.busy)
            if (
                out
                and out.job_id in short
                and out.engine_id == engine.engine_id
                and not out.reserved
                and now - out.sent_at < self._take_back_after(out.job_id)
            ):
                slots += [engine.slot] * (self._prefetch_depth(out.job_id) - len(engine.prefetched))
        return slots

    def _prefetch_depth(self, job_id: int) -> int:
        """How many tasks may wait behind a running task of *job_id* on its engine."""
        _count, mean = self._durations.get(job_id, (0, PREFETCH_BELOW_SECONDS))
        cover = math.ceil(PREFETCH_COVER_SECONDS / max(mean, 0.001))
        return max(1, min(PREFETCH_MAX, cover))

    def _dispatch(self) -> bool:
        idle = self._idle_slots()
        short = self._short_jobs() if self._durations else set()
        if not idle and not short:
            return False
        now = time.monotonic()
        if not self._dirty and now - self._planned_at < REPLAN_SECONDS:
            return False
        if now < self._decide_after:
            return False  # (the round's wait ends when this pause does)
        self._dirty = False  # before reading: a wake-up from now on means another decision
        self._planned_at = now
        spent = 0.0
        sent = 0
        if idle:
            cpu = time.thread_time()
            decided = self.decide(idle)
            spent += time.thread_time() - cpu
            sent += self._send_all(decided)
        prefetch = self._prefetch_slots(short) if short else []
        if prefetch:
            cpu = time.thread_time()
            decided = self.decide(prefetch, only=short)
            spent += time.thread_time() - cpu
            sent += self._send_all(decided, prefetch=True)
        self._decide_after = time.monotonic() + min(
            DECISION_PAUSE_MAX_SECONDS, spent * (1 / DECISION_DUTY - 1)
        )
        return sent > 0

    def _idle_wait(self) -> float:
        """Seconds a round with nothing to do waits for an event: the idle wait, or less if a
        decision is due when its pause ends."""
        if self._dirty and self._decide_after > 0:
            return max(0.0, min(IDLE_WAIT_SECONDS, self._decide_after - time.monotonic()))
        return IDLE_WAIT_SECONDS

    def decide(
        self, idle: list[Slot], only: set[int] | None = None
    ) -> list[tuple[Assignment, Task]]:
        """One dispatch decision: the task each idle slot runs next (nothing is committed).

        *only* limits the choice to these jobs (the short ones, for prefetch slots).
        """
        self.stats.decisions += 1
        jobs = self.store.runnable_jobs()
        if only is not None:
            jobs = [job for job in jobs if job.id in only]
        held = self._held_jobs()
        if held:
            jobs = [job for job in jobs if job.id not in held]
        if not jobs:
            return []
        jobs, ready = self._gate_jobs(jobs, idle)
        # Copies: the second pass below counts this decision's tasks in them.
        running_by_owner = self._out_by_owner.copy()
        running_by_job = self._out_by_job.copy()
        running_by_computer = self._out_by_computer.copy()
        computers = self._online_computers()
        decided: list[tuple[Assignment, Task]] = []
        for _pass in range(2):
            assignments = plan(
                idle,
                jobs,
                computers,
                running_by_job=running_by_job,
                running_by_owner=running_by_owner,
                running_by_computer=running_by_computer,
                fair_share=self.config.fair_share,
                last_served=self._last_served,
                limit=DECISION_BATCH,
            )
            if len(assignments) == DECISION_BATCH:
                self._dirty = True  # more idle slots may be left for the next round
            unfilled = self._take_tasks(assignments, ready, computers, decided)
            if not unfilled:
                break
            # The slots planned for a job none of whose next tasks fits them (a task that ran
            # out of memory waits for a bigger slave) go to the other jobs: once more, without
            # those jobs, with what this decision took counted as running.
            skip = {a.job.id for a in unfilled}
            took = Counter(a.job.id for a, _task in decided)
            for assignment, _task in decided:
                running_by_owner[assignment.job.spec.owner] += 1
                running_by_job[assignment.job.id] += 1
                running_by_computer[assignment.slot.computer] += 1
            jobs = [
                dataclasses.replace(
                    job,
                    counts=dataclasses.replace(job.counts, queued=job.counts.queued - took[job.id]),
                )
                for job in jobs
                if job.id not in skip and job.counts.queued > took[job.id]
            ]
            idle = [slot for a in unfilled for slot in (a.slot, *a.reserved)]
            if not jobs:
                break
        return decided

    def _take_tasks(
        self,
        assignments: list[Assignment],
        ready: dict[int, list[Task]],
        computers: dict[str, Computer],
        decided: list[tuple[Assignment, Task]],
    ) -> list[Assignment]:
        """Give each assignment its job's next task that fits its slot, appended to *decided*
        (a task already there is not taken twice); the assignments left without one."""
        taken = {task.id for _a, task in decided}
        took = Counter(task.job_id for _a, task in decided)
        per_job = Counter(a.job.id for a in assignments)
        tasks = {
            job_id: [
                task
                for task in (
                    ready[job_id]
                    if job_id in ready
                    else self.store.next_queued(job_id, count + took[job_id] + RAM_LOOK_AHEAD)
                )
                if task.id not in taken
            ]
            for job_id, count in per_job.items()
        }
        unfilled = []
        for assignment in assignments:
            queued = tasks[assignment.job.id]
            host = computers.get(assignment.slot.computer)
            ram_mb = host.ram_mb if host else 0
            # A task that ran out of memory waits for a slave with more than it needs.
            task = next((t for t in queued if not t.min_ram_mb or t.min_ram_mb <= ram_mb), None)
            if task is None:
                unfilled.append(assignment)
            else:
                queued.remove(task)
                decided.append((assignment, task))
        return unfilled

    def _gate_jobs(
        self, jobs: list[Job], idle: list[Slot]
    ) -> tuple[list[Job], dict[int, list[Task]]]:
        """The jobs with frame-by-frame dependencies or a first-frame check, counted as
        queued only by their tasks ready now (:mod:`drqueue.master.framedeps`), so that no
        slot is planned for a task that may not run; and those ready tasks by job.

        Searching for ready tasks costs up to a scan of the job's queue, so a decision spends
        at most GATE_BUDGET_SECONDS on it (a job not searched counts as having none ready this
        time; the search starts with a different job each decision), and never searches a job
        none of the *idle* slots could run."""
        ready: dict[int, list[Task]] = {}
        gated_jobs = [job for job in jobs if gated(job)]
        if not gated_jobs:
            return jobs, ready
        self.frame_gate.new_round()
        self._gate_turn = (self._gate_turn + 1) % len(gated_jobs)
        computers = self._online_computers()
        deadline = time.monotonic() + GATE_BUDGET_SECONDS
        for job in gated_jobs[self._gate_turn :] + gated_jobs[: self._gate_turn]:
            if time.monotonic() > deadline or not usable_slots(job, computers, idle):
                ready[job.id] = []
            else:
                ready[job.id] = self.frame_gate.ready_tasks(job, len(idle))
        shown = [
            dataclasses.replace(
                job, counts=dataclasses.replace(job.counts, queued=len(ready[job.id]))
            )
            if job.id in ready
            else job
            for job in jobs
        ]
        return shown, ready

    def _send_all(self, decided: list[tuple[Assignment, Task]], prefetch: bool = False) -> int:
        """Commit every decided task as dispatched, in one store transaction, then send each
        one the store took; how many were sent.  *prefetch* queues each behind its engine's
        running task (see _prefetch_slots)."""
        if not decided:
            return 0
        claims = []
        for assignment, task in decided:
            attempt_id = uuid.uuid4().hex
            # One log per attempt, named by the random attempt id: no render can plant it
            # beforehand (drqueue.slave.runner.open_task_log never appends to a file it did not
            # create).
            log_path = (
                self.config.logs_dir / str(task.job_id) / f"{task.index}.{attempt_id[:12]}.log"
            )
            slot = assignment.slot
            claims.append(Claim(task.id, attempt_id, slot.engine_id, slot.computer, str(log_path)))
        try:
            taken = self.store.mark_dispatched_many(claims)
        except StoreBusy:
            # The writes may have been made and only the answer lost: once the store is back,
            # put the tasks back in the queue (nothing, for a write that was not made).
            self._owe(
                functools.partial(
                    self.store.requeue_attempts,
                    [claim.attempt_id for claim in claims],
                    "the store went away as the task was dispatched; it was not sent",
                    lost=False,
                )
            )
            raise
        sent = 0
        for (assignment, task), claim, dispatched in zip(decided, claims, taken, strict=True):
            if not dispatched:
                self._dirty = True  # the store changed under us: decide again
            elif self._send(assignment, task, claim, prefetch):
                sent += 1
        return sent

    def _send(self, assignment: Assignment, task: Task, claim: Claim, prefetch: bool) -> bool:
        """Send *task*, committed dispatched as *claim*, to its engine."""
        job, slot = assignment.job, assignment.slot
        attempt_id, log_path = claim.attempt_id, claim.log_path
        self.changed_jobs.note(job.id)
        spec = task_spec(job, task, attempt_id, log_path, self.config, assignment.gpu_devices)
        try:
            result = self._view(slot.engine_id).apply_async(pickled_runner(), json.dumps(spec))
            result.add_done_callback(functools.partial(self._result_arrived, attempt_id))
        except Exception as exc:
            self._must_write(
                functools.partial(
                    self.store.requeue_attempts,
                    [attempt_id],
                    f"could not send to engine: {exc}",
                    lost=False,
                )
            )
            self.changed_jobs.note(job.id)
            self._dirty = True
            return False
        reserved = tuple(s.engine_id for s in assignment.reserved)
        if prefetch:
            self.engines[slot.engine_id].prefetched.append(attempt_id)
            self._queued_behind.add(slot.engine_id)
        for engine_id in () if prefetch else (slot.engine_id, *reserved):
            self.engines[engine_id].busy = attempt_id
            self._note_idle(self.engines[engine_id])
        self._out_by_job[job.id] += 1
        self._out_by_owner[job.spec.owner] += 1
        self._out_by_computer[slot.computer] += 1
        if not prefetch:
            self._first_marks.append((time.monotonic() + PROGRESS_WRITE_INTERVAL, attempt_id))
        self.outstanding[attempt_id] = Outstanding(
            attempt_id,
            task.id,
            job.id,
            job.spec.owner,
            slot.engine_id,
            slot.computer,
            result,
            time.monotonic(),
            job.spec.timeout,
            task.index,
            reserved,
            queued=prefetch,
        )
        self._serve_count += 1
        self._last_served[job.spec.owner] = self._serve_count
        if self._reasons and self._reasons.get(job.id):
            self._reasons[job.id] = None  # it runs: its waiting reason is out of date
            self.store.set_job_waiting_reason({job.id: None})
        self.stats.dispatched += 1
        self.stats.prefetched += prefetch
        return True

    # -- slow chores -------------------------------------------------------------------------------

    def _chores(self) -> None:
        now = time.time()
        online = sorted(self._online_names)
        self.store.touch_computers(online, now)
        self._refresh_info()
        if time.monotonic() - self._computers_read_at >= COMPUTERS_REREAD_SECONDS:
            self._computers = None  # changes made other than through the API, if any
        computers = self._online_computers()
        # Engines busy with an info probe still count: they are online.
        slots = [e.slot for e in self.engines.values() if e.slot]
        if computers is not self._online[0] or slots != self._online[1]:
            self._online = (computers, slots)
            self._usable = {}  # the ETAs' usable slots, per kind of job: count them again
        self._update_waiting_reasons()

    def _refresh_info(self) -> None:
        """Re-probe one engine of each idle slave whose info is older than the cache time.

        A slave with a task running keeps its last info: the probe would queue behind the task
        on a busy engine and measure the render's own load.  The probe is asynchronous, so the
        master never waits for it.
        """
        cutoff = time.monotonic() - self.config.info_cache_seconds
        # Only an idle engine is probed: look at every engine only when one's info is stale.
        stale = {
            self.engines[engine_id].slot.computer
            for engine_id in self._idle
            if self._info_at.get(self.engines[engine_id].slot.computer, 0.0) < cutoff
        }
        if not stale:
            return
        busy = {e.slot.computer for e in self.engines.values() if e.slot and (e.busy or e.probe)}
        for engine_id in list(self._idle):
            engine = self.engines[engine_id]
            computer = engine.slot.computer
            if computer in stale and computer not in busy:
                busy.add(computer)
                self._probe(engine)

    def _update_waiting_reasons(self) -> None:
        """Write why each runnable job waits (or None), and end jobs blocked on every host.

        Skipped while nothing was written to the store since the last pass (its data version
        is the same) and the same slots are online: reading 10,001 runnable jobs costs 0.1 s,
        during which the API's requests wait for the GIL (issue 14).  A farm with engines
        writes their last-seen times each chores pass, so it is never skipped there."""
        computers, slots = self._online
        made_from = (self.store.data_version(), tuple(slots), tuple(computers))
        if made_from[0] is not None and made_from == self._reasons_from:
            return
        self._reasons_from = made_from
        if self._reasons is None:  # first time: reasons a previous master left behind
            self._reasons = {
                job.id: job.waiting_reason for job in self.store.list_jobs() if job.waiting_reason
            }
        online = list(computers.values())
        jobs = self.store.runnable_jobs()
        reasons: dict[int, str | None] = {}
        dependency_ends: dict[int, tuple[int, str] | None] = {}
        by_kind: dict[tuple, str | None] = {}
        self.frame_gate.new_round()
        frame_reasons: dict[int, str | None] = {}
        for job in jobs:
            if gated(job):
                frame_reasons[job.id] = self._frame_holds(job)
        for job in jobs:
            if job.id in frame_reasons and (job.waiting_for or job.counts.running):
                pass  # the usual reasons below
            elif frame_reasons.get(job.id):
                reasons[job.id] = frame_reasons[job.id]
                continue
            if job.waiting_for:
                shown = [self._dependency(d, dependency_ends) for d in job.waiting_for]
                shown.sort(key=lambda text: "(" not in text)  # the ones stalling it first
                reason = "waiting for " + ", ".join(shown[:REASON_DEPENDENCIES])
                if len(shown) > REASON_DEPENDENCIES:
                    reason += f" and {len(shown) - REASON_DEPENDENCIES} more jobs"
            elif job.counts.running:
                reason = None  # it runs, so something can run it
            else:
                kind = (signature(job), tuple(job.blocked_hosts))
                if kind not in by_kind:
                    by_kind[kind] = waiting_reason(job, online, slots)
                reason = by_kind[kind]
                if reason and job.blocked_hosts and self._fail_if_blocked_everywhere(job, online):
                    reason = None
            reasons[job.id] = reason
        runnable = set(reasons)
        self._durations = {job_id: d for job_id, d in self._durations.items() if job_id in runnable}
        for job_id, reason in self._reasons.items():
            if job_id not in runnable and reason:
                reasons[job_id] = None  # no longer queued: nothing to explain
        changed = {job_id: r for job_id, r in reasons.items() if self._reasons.get(job_id) != r}
        for job in jobs:  # the store may hold a reason this master did not write
            if job.waiting_reason != reasons[job.id]:
                changed[job.id] = reasons[job.id]
        self.store.set_job_waiting_reason(changed)
        for job_id in changed:
            self.changed_jobs.note(job_id)
        self._reasons = {job_id: r for job_id, r in reasons.items() if r}

    def _frame_holds(self, job: Job) -> str | None:
        """A gated job's waiting reason (None: the usual ones apply), after writing the
        reasons of its tasks held by upstream frames in error, and stopping it if its
        first-frame check failed."""
        failed = self.frame_gate.failed_check(job)
        if failed:
            self.store.set_job_control(job.id, str(JobControl.STOPPED), actor="first-frame-check")
            self.store.add_event(
                "job.first-frame-failed",
                f"first frame check failed, job stopped: {failed}"[:1000],
                job_id=job.id,
                actor="first-frame-check",
            )
            self.changed_jobs.note(job.id)
            log.info("job %d stopped: first frame check failed: %s", job.id, failed)
            return None
        reason, held = self.frame_gate.holds(job)
        written = self._held_tasks.get(job.id, {})
        if held != written:
            changed: dict[int, str | None] = {
                index: why for index, why in held.items() if written.get(index) != why
            }
            changed.update({index: None for index in written.keys() - held.keys()})
            self.store.hold_tasks(job.id, changed)
            self._held_tasks[job.id] = held
        return reason

    def _dependency(self, dep: int, ends: dict[int, tuple[int, str] | None]) -> str:
        """How a dependency reads in a waiting reason: "job 3", "job 3 (ended in error: ...)",
        or "job 3 (waits for job 2 (stopped: ...))" when it is stalled itself, naming the job
        at the end of its chain however long the chain (so the text stays one line).
        *ends* is :meth:`_dead_end`'s memo for this pass."""
        found = self._dead_end(dep, ends)
        if found is None:
            return f"job {dep}"
        end, why = found
        return f"job {dep} ({why})" if end == dep else f"job {dep} (waits for job {end} ({why}))"

    def _dead_end(
        self, start: int, ends: dict[int, tuple[int, str] | None]
    ) -> tuple[int, str] | None:
        """(the job, why) that keeps *start* from ever finishing without a user: *start* itself
        if models.dependency_dead_end says so, else the first such job down its chain of
        waiting dependencies; None if there is none.

        Depth first with a stack of its own, not recursion: an artist's chain of thousands of
        jobs once passed Python's recursion limit and failed every chores pass.  *ends* keeps
        each job's answer for the pass, so each job is read once; a cycle (refused at submit)
        ends in None."""
        visiting: set[int] = set()
        read: dict[int, Job | None] = {}
        stack = [start]
        while stack:
            job_id = stack[-1]
            if job_id in ends:
                stack.pop()
                continue
            if job_id not in read:
                try:
                    read[job_id] = self.store.get_job(job_id)
                except NotFound:
                    read[job_id] = None
            job = read[job_id]
            why = dependency_dead_end(job.status if job else None)
            if why or job is None or job.status != "waiting":
                ends[job_id] = (job_id, why) if why else None
                stack.pop()
            elif job_id not in visiting:  # its dependencies first, then itself again
                visiting.add(job_id)
                stack += [d for d in job.waiting_for if d not in ends and d not in visiting]
            else:
                ends[job_id] = next((ends[d] for d in job.waiting_for if ends.get(d)), None)
                stack.pop()
        return ends[start]
