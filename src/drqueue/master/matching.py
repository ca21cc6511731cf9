"""Which slot may run which job, in what order jobs are served, and one dispatch decision.

Pure functions on stored data, so every scheduling rule is unit-tested, and
benchmarked (``bench/dispatcher.py``), without a farm:

* :func:`unmet_requirement` says which of a job's requirements a computer lacks;
  :func:`mismatch` adds what the slot and the computer's state say (GPU slot,
  disabled, blocked for this job).
* :func:`plan` is one dispatch decision: given the idle slots, the runnable jobs
  and the computers, it returns which job each slot runs.  Jobs are served by
  priority, then, at equal priority, round-robin between owners (the owner with
  the fewest running tasks, then the one served least recently) or first come
  first served (``fair_share = "fifo"``), then by submit time.  It honours
  ``--max-parallel`` and a computer's ``max_tasks``.  Its cost grows with the
  idle slots, the jobs and the computers, never with the number of queued tasks.
* :func:`waiting_reason` explains a job that no online slot can run
  ("waiting: no slave in pool 'gpu' (3 slaves online)");
  :func:`blocked_everywhere` finds a job that failed on every eligible slave.

GPU slots run only jobs that ask for GPUs, so a CPU job never holds a GPU; a job
with ``--gpus N`` holds N GPU slots of one computer.
"""

from __future__ import annotations

import fnmatch
import heapq
from collections import Counter, deque
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter

from drqueue.models import Computer, Job, JobControl

#: Task limit used for a computer without ``max_tasks``.
UNLIMITED = 1 << 30


@dataclass(slots=True)
class Slot:
    """One engine as the dispatcher sees it: a CPU slot, or a GPU slot with its device."""

    engine_id: int
    computer: str
    slot: int = 0
    gpu_device: str | None = None

    @property
    def is_gpu(self) -> bool:
        return self.gpu_device is not None


@dataclass(slots=True)
class Assignment:
    """One task of *job* to run on *slot*; *reserved* are further GPU slots it holds."""

    job: Job
    slot: Slot
    reserved: tuple[Slot, ...] = ()

    @property
    def gpu_devices(self) -> list[str]:
        return [s.gpu_device for s in (self.slot, *self.reserved) if s.gpu_device is not None]


# -- matching ----------------------------------------------------------------------------------


def _matches_any(computer: Computer, patterns: Iterable[str]) -> bool:
    return any(
        fnmatch.fnmatchcase(computer.name, pattern)
        or (computer.hostname and fnmatch.fnmatchcase(computer.hostname, pattern))
        for pattern in patterns
    )


@dataclass(frozen=True, slots=True)
class Unmet:
    """One requirement a computer does not meet, said from the job's side (*need*: "no slave in
    pool 'gpu'", true when no computer meets it) and from the computer's (*lack*: "not in pool
    'gpu'")."""

    need: str
    lack: str
    pool: str | None = None


def unmet_requirements(job: Job, computer: Computer) -> Iterator[Unmet]:
    """Every one of *job*'s requirements *computer* does not meet, in a fixed order (one per
    missing pool).  Ignores the computer's state (enabled, blocked)."""
    req = job.spec.requirements
    if req.os and computer.os != req.os:
        yield Unmet(f"no slave runs {req.os}", f"runs {computer.os or 'an unknown OS'}")
    if req.min_cores and computer.cores < req.min_cores:
        yield Unmet(f"no slave has {req.min_cores} cores", f"has {computer.cores} cores")
    if req.min_ram_gb and computer.ram_mb < req.min_ram_gb * 1024:
        yield Unmet(
            f"no slave has {req.min_ram_gb:g} GB of RAM", f"has {computer.ram_mb / 1024:g} GB"
        )
    for pool in req.pools:
        if pool not in computer.pools:
            yield Unmet(f"no slave in pool {pool!r}", f"not in pool {pool!r}", pool)
    if req.gpus and computer.gpus < req.gpus:
        plural = "s" if req.gpus > 1 else ""
        yield Unmet(f"no slave has {req.gpus} GPU{plural}", f"has {computer.gpus} GPUs")
    if req.hosts and not _matches_any(computer, req.hosts):
        yield Unmet(f"no slave matches --hosts {' '.join(req.hosts)}", "not in --hosts")
    if req.exclude_hosts and _matches_any(computer, req.exclude_hosts):
        yield Unmet("every slave is excluded by --exclude-hosts", "excluded by --exclude-hosts")
    if job.spec.renderer not in computer.renderers:
        yield Unmet(
            f"no slave has the renderer {job.spec.renderer!r}",
            f"lacks the renderer {job.spec.renderer!r}",
        )


def unmet_requirement(job: Job, computer: Computer) -> str | None:
    """The first of *job*'s requirements *computer* does not meet, said from the job's side
    ("no slave in pool 'gpu'"), or None.  Ignores the computer's state (enabled, blocked)."""
    first = next(unmet_requirements(job, computer), None)
    return None if first is None else first.need


def slot_fits(job: Job, slot: Slot) -> bool:
    """GPU jobs run on GPU slots only, and CPU jobs on CPU slots only."""
    return slot.is_gpu == bool(job.spec.requirements.gpus)


def mismatch(
    job: Job, computer: Computer, slot: Slot | None = None, blocked: Collection[str] = ()
) -> str | None:
    """Why *computer* (and *slot*) cannot run *job*'s tasks now, or None if it can."""
    unmet = unmet_requirement(job, computer)
    if unmet:
        return unmet
    if slot is not None and not slot_fits(job, slot):
        return "no GPU slot" if job.spec.requirements.gpus else "a GPU slot runs GPU jobs only"
    if not computer.enabled:
        return f"slave {computer.name} is disabled"
    if computer.name in blocked:
        return f"slave {computer.name} is blocked for this job after repeated failures"
    return None


def signature(job: Job) -> tuple:
    """What decides which computers a job may use, so jobs alike share one lookup."""
    req = job.spec.requirements
    return (
        job.spec.renderer,
        req.os,
        req.min_ram_gb,
        req.min_cores,
        tuple(req.pools),
        req.gpus,
        tuple(req.hosts),
        tuple(req.exclude_hosts),
    )


# -- one dispatch decision -------------------------------------------------------------------------


@dataclass(slots=True)
class _Host:
    """A computer's idle slots during one decision."""

    computer: Computer
    capacity: int
    cpu: list[Slot] = field(default_factory=list)
    gpu: list[Slot] = field(default_factory=list)
    profile: tuple | None = None


def _profile(computer: Computer) -> tuple:
    """What :func:`unmet_requirements` reads of a computer, but its names."""
    return (
        computer.os,
        computer.cores,
        computer.ram_mb,
        tuple(computer.pools),
        computer.gpus,
        tuple(computer.renderers),
    )


def _fitting(job: Job, hosts: list[_Host]) -> list[_Host]:
    """The hosts whose computers meet *job*'s requirements, in order.  Unless the job names
    hosts, a verdict holds for every computer alike (a farm of 4,000 has a handful of kinds),
    so each kind is judged once."""
    req = job.spec.requirements
    if req.hosts or req.exclude_hosts:
        return [h for h in hosts if unmet_requirement(job, h.computer) is None]
    verdicts: dict[tuple, bool] = {}
    found = []
    for host in hosts:
        if host.profile is None:
            host.profile = _profile(host.computer)
        fits = verdicts.get(host.profile)
        if fits is None:
            fits = verdicts[host.profile] = unmet_requirement(job, host.computer) is None
        if fits:
            found.append(host)
    return found


@dataclass(slots=True)
class _Want:
    """A job during one decision: how many tasks it may still get, and what it needs (worked
    out once per job, not once per task: a decision for 32,000 idle slots hands out 32,000)."""

    job: Job
    want: int
    blocked: frozenset[str]
    key: tuple = ()
    need: int = 1
    gpu: bool = False


def plan(
    idle: Iterable[Slot],
    jobs: Iterable[Job],
    computers: Mapping[str, Computer],
    *,
    running_by_job: Mapping[int, int] | None = None,
    running_by_owner: Mapping[str, int] | None = None,
    running_by_computer: Mapping[str, int] | None = None,
    fair_share: str = "owner",
    last_served: Mapping[str, int] | None = None,
    limit: int | None = None,
) -> list[Assignment]:
    """Which job each idle slot runs next, in the order the tasks should be sent.

    *limit* stops after that many assignments: the first *limit* of the whole plan, exactly
    (the dispatcher decides a big farm's idle slots a batch at a time; docs/performance.md).

    *jobs* are the runnable jobs with their queued counts (``job.counts.queued``) and
    blocked hosts (``job.blocked_hosts``); jobs that wait for others, are stopped or have
    nothing queued are skipped.  The ``running_*`` maps count the tasks on engines now;
    *last_served* maps an owner to when it last got a task (any increasing number).
    """
    running_by_job = running_by_job or {}
    running_by_owner = running_by_owner or {}
    running_by_computer = running_by_computer or {}

    hosts: dict[str, _Host] = {}
    free = 0
    left = UNLIMITED if limit is None else limit
    for slot in idle:
        host = hosts.get(slot.computer)
        if host is None:
            computer = computers.get(slot.computer)
            if computer is None or not computer.enabled:
                continue
            cap = UNLIMITED if computer.max_tasks is None else computer.max_tasks
            host = hosts[slot.computer] = _Host(
                computer, cap - running_by_computer.get(slot.computer, 0)
            )
        (host.gpu if slot.gpu_device is not None else host.cpu).append(slot)
        free += 1
    # Spread work: the least busy computers first; each hands out its lowest slot first.
    ordered_hosts = sorted(
        (h for h in hosts.values() if h.capacity > 0),
        key=lambda h: (running_by_computer.get(h.computer.name, 0), h.computer.name),
    )
    by_slot = attrgetter("slot")
    for host in ordered_hosts:
        if len(host.cpu) > 1:
            host.cpu.sort(key=by_slot, reverse=True)
        if len(host.gpu) > 1:
            host.gpu.sort(key=by_slot, reverse=True)

    candidates: dict[tuple, list[_Host]] = {}

    def take(want: _Want) -> Assignment | None:
        found = candidates.get(want.key)
        if found is None:
            found = candidates[want.key] = _fitting(want.job, ordered_hosts)
        need, gpu, blocked = want.need, want.gpu, want.blocked
        i = 0
        while i < len(found):
            host = found[i]
            pool = host.gpu if gpu else host.cpu
            if host.capacity <= 0 or len(pool) < need:
                del found[i]  # exhausted for every job of this signature, for this decision
                continue
            if blocked and host.computer.name in blocked:
                i += 1
                continue
            host.capacity -= 1
            if need == 1:
                return Assignment(want.job, pool.pop())
            taken = [pool.pop() for _ in range(need)]
            return Assignment(want.job, taken[0], tuple(taken[1:]))
        return None

    bands: dict[int, dict[str, deque[_Want]]] = {}
    for job in sorted(jobs, key=lambda j: (j.submitted_at, j.id)):
        if job.waiting_for or job.control != JobControl.ACTIVE or job.counts.queued <= 0:
            continue
        want = job.counts.queued
        if job.spec.max_parallel:
            want = min(want, job.spec.max_parallel - running_by_job.get(job.id, 0))
        if want <= 0:
            continue
        group = job.spec.owner if fair_share == "owner" else ""
        gpus = job.spec.requirements.gpus
        bands.setdefault(job.spec.priority, {}).setdefault(group, deque()).append(
            _Want(job, want, frozenset(job.blocked_hosts), signature(job), gpus or 1, bool(gpus))
        )

    served = dict(last_served or {})
    tick = max(served.values(), default=0)
    result: list[Assignment] = []
    for priority in sorted(bands, reverse=True):
        if free <= 0 or left <= 0:
            break
        groups = bands[priority]
        heap = [
            (
                running_by_owner.get(owner, 0) if fair_share == "owner" else 0,
                served.get(owner, -1),
                queue[0].job.submitted_at,
                owner,
            )
            for owner, queue in groups.items()
        ]
        heapq.heapify(heap)
        while heap and free > 0 and left > 0:
            running, _, _, owner = heapq.heappop(heap)
            queue = groups[owner]
            assignment = None
            while queue and assignment is None:
                assignment = take(queue[0])
                if assignment is None:
                    queue.popleft()  # no idle slot fits it; none will in this decision
            if assignment is None:
                continue
            result.append(assignment)
            left -= 1
            free -= 1 + len(assignment.reserved)
            queue[0].want -= 1
            if queue[0].want <= 0:
                queue.popleft()
            if queue:
                tick += 1
                served[owner] = tick
                heapq.heappush(heap, (running + 1, tick, queue[0].job.submitted_at, owner))
    return result


# -- explaining a wait ----------------------------------------------------------------------------


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def waiting_reason(job: Job, computers: Sequence[Computer], slots: Sequence[Slot]) -> str | None:
    """Why no online slot can run *job*, or None when some can (it may just be busy).

    *computers* are the online computers and *slots* their registered engines.
    """
    if not slots or not computers:
        return "waiting: no slave online"
    online = f"({_plural(len(computers), 'slave')} online)"
    unmet = {c.name: list(unmet_requirements(job, c)) for c in computers}
    fitting = [c for c in computers if not unmet[c.name]]
    if not fitting:
        return f"waiting: {_unmet_everywhere(unmet)} {online}"
    names = {c.name for c in fitting}
    need = job.spec.requirements.gpus or 1
    by_host = Counter(s.computer for s in slots if s.computer in names and slot_fits(job, s))
    with_slots = [c for c in fitting if by_host[c.name] >= need]
    if not with_slots:
        if job.spec.requirements.gpus:
            return f"waiting: no matching slave has {_plural(need, 'GPU slot')} online {online}"
        return f"waiting: the matching slaves have GPU slots only {online}"
    blocked = set(job.blocked_hosts)
    states = {}
    for computer in with_slots:
        if not computer.enabled:
            states[computer.name] = "disabled"
        elif computer.name in blocked:
            states[computer.name] = "blocked after repeated failures"
        elif computer.max_tasks == 0:
            states[computer.name] = "limited to 0 tasks"
        else:
            return None
    kinds = set(states.values())
    if len(kinds) == 1:
        return f"waiting: every matching slave is {kinds.pop()} ({', '.join(sorted(states))})"
    detail = ", ".join(f"{name} {state}" for name, state in sorted(states.items()))
    return f"waiting: no matching slave takes tasks ({detail})"


#: Computers named per missing requirement in a waiting reason before "and N more".
NAMES_IN_REASON = 3


def _unmet_everywhere(unmet: Mapping[str, list[Unmet]]) -> str:
    """Why none of the computers in *unmet* (each missing something) can run a job: the
    requirements no computer meets, or, when each is met somewhere but never all on one
    computer, what each computer lacks, grouped."""
    needs_of = [{u.need for u in missing} for missing in unmet.values()]
    everywhere = [u for u in next(iter(unmet.values())) if all(u.need in n for n in needs_of)]
    if everywhere:
        pools = [u.pool for u in everywhere if u.pool is not None]
        needs: list[str] = []
        for u in everywhere:
            if u.pool is None:
                needs.append(u.need)
            elif u.pool == pools[0]:  # the missing pools said once, where the first one is
                needs.append(
                    f"no slave in pools {', '.join(map(repr, pools))}" if len(pools) > 1 else u.need
                )
        return "; ".join(needs)
    lacking: dict[tuple[str, ...], list[str]] = {}
    for name, missing in sorted(unmet.items()):
        lacking.setdefault(tuple(u.lack for u in missing), []).append(name)
    groups = []
    for lacks, names in sorted(lacking.items(), key=lambda item: (-len(item[1]), item[1][0])):
        shown = ", ".join(names[:NAMES_IN_REASON])
        if len(names) > NAMES_IN_REASON:
            shown += f" and {len(names) - NAMES_IN_REASON} more"
        groups.append(f"{shown} {' and '.join(lacks)}")
    return "no one slave meets every requirement: " + "; ".join(groups)


def blocked_everywhere(job: Job, computers: Sequence[Computer]) -> list[str]:
    """The online computers that meet *job*'s requirements, if every one of them is blocked
    for it after repeated failures; otherwise []."""
    blocked = set(job.blocked_hosts)
    if not blocked:
        return []
    fitting = [c.name for c in computers if unmet_requirement(job, c) is None]
    if fitting and all(name in blocked for name in fitting):
        return sorted(fitting)
    return []


def usable_slots(job: Job, computers: Mapping[str, Computer], slots: Iterable[Slot]) -> int:
    """How many of *slots* could run *job*'s tasks at once (for its ETA)."""
    blocked = set(job.blocked_hosts)
    need = job.spec.requirements.gpus or 1
    per_host: Counter[str] = Counter()
    for slot in slots:
        computer = computers.get(slot.computer)
        if computer is not None and mismatch(job, computer, slot, blocked) is None:
            per_host[slot.computer] += 1
    total = 0
    for name, count in per_host.items():
        limit = computers[name].max_tasks
        tasks = count // need
        total += tasks if limit is None else min(tasks, limit)
    return total
