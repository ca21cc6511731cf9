"""The matcher and the serving order: which slot may run which job, and who goes first.

Everything here is pure (:mod:`drqueue.master.matching`); the same rules run on a real
farm in tests/integration/test_scheduling.py.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter, deque
from collections.abc import Iterable, Mapping

import pytest

from drqueue.master.matching import (
    UNLIMITED,
    Assignment,
    Slot,
    _Host,
    _Want,
    blocked_everywhere,
    mismatch,
    plan,
    signature,
    unmet_requirement,
    usable_slots,
    waiting_reason,
)
from drqueue.models import Computer, Counts, Job, JobControl, JobSpec, Requirements

_next_id = iter(range(1, 1_000_000))


def make_job(
    *,
    owner: str = "ann",
    priority: int = 50,
    queued: int = 10,
    running: int = 0,
    submitted_at: float | None = None,
    renderer: str = "shell",
    max_parallel: int | None = None,
    waiting_for: list[int] | None = None,
    blocked: list[str] | None = None,
    control: JobControl = JobControl.ACTIVE,
    **requirements,
) -> Job:
    job_id = next(_next_id)
    spec = JobSpec(
        renderer,
        1,
        queued + running or 1,
        owner=owner,
        priority=priority,
        max_parallel=max_parallel,
        requirements=Requirements(**requirements),
    )
    return Job(
        id=job_id,
        spec=spec,
        control=control,
        counts=Counts(total=queued + running, queued=queued, running=running),
        submitted_at=float(job_id) if submitted_at is None else submitted_at,
        waiting_for=waiting_for or [],
        blocked_hosts=sorted(blocked or []),
    )


def make_computer(
    name: str,
    *,
    os: str = "linux",
    cores: int = 8,
    ram_gb: float = 32,
    pools: list[str] | None = None,
    gpus: int = 0,
    enabled: bool = True,
    max_tasks: int | None = None,
    renderers: list[str] | None = None,
    hostname: str = "",
) -> Computer:
    return Computer(
        name=name,
        hostname=hostname or name,
        os=os,
        cores=cores,
        ram_mb=int(ram_gb * 1024),
        gpus=gpus,
        pools=pools or [],
        renderers=renderers or ["shell", "blender"],
        enabled=enabled,
        max_tasks=max_tasks,
    )


class Farm:
    """Computers and their slots: `Farm().add("a", cpu=2, gpu=1, pools=["x"])`."""

    def __init__(self):
        self.computers: dict[str, Computer] = {}
        self.slots: list[Slot] = []
        self._engine = 0

    def add(self, name: str, cpu: int = 1, gpu: int = 0, **info) -> Farm:
        self.computers[name] = make_computer(name, gpus=gpu, **info)
        for index in range(cpu + gpu):
            self.slots.append(
                Slot(self._engine, name, index, str(index - cpu) if index >= cpu else None)
            )
            self._engine += 1
        return self

    def plan(self, jobs, slots=None, **kwargs):
        return plan(self.slots if slots is None else slots, jobs, self.computers, **kwargs)


def hosts_of(assignments) -> Counter:
    return Counter(a.slot.computer for a in assignments)


# -- requirements ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requirements", "computer", "expected"),
    [
        ({"os": "windows"}, {}, "no slave runs windows"),
        ({"os": "linux"}, {}, None),
        ({"min_cores": 16}, {"cores": 8}, "no slave has 16 cores"),
        ({"min_cores": 8}, {"cores": 8}, None),
        ({"min_ram_gb": 64}, {"ram_gb": 32}, "no slave has 64 GB of RAM"),
        ({"min_ram_gb": 32}, {"ram_gb": 32}, None),
        ({"min_ram_gb": 0.5}, {"ram_gb": 0.25}, "no slave has 0.5 GB of RAM"),
        ({"pools": ["gpu"]}, {"pools": ["fx"]}, "no slave in pool 'gpu'"),
        ({"pools": ["gpu"]}, {"pools": ["gpu", "fx"]}, None),
        ({"pools": ["gpu", "fx"]}, {"pools": ["gpu"]}, "no slave in pool 'fx'"),
        ({"pools": ["gpu"]}, {"pools": ["GPU"]}, "no slave in pool 'gpu'"),
        ({"pools": ["gpu"]}, {"pools": ["gpu2"]}, "no slave in pool 'gpu'"),
        ({"gpus": 2}, {"gpus": 1}, "no slave has 2 GPUs"),
        ({"gpus": 1}, {"gpus": 0}, "no slave has 1 GPU"),
        ({"gpus": 2}, {"gpus": 2}, None),
        ({"hosts": ["render*"]}, {}, None),
        ({"hosts": ["comp*"]}, {}, "no slave matches --hosts comp*"),
        ({"hosts": ["comp*", "render0?"]}, {}, None),
        ({"hosts": ["box.studio"]}, {"hostname": "box.studio"}, None),
        ({"exclude_hosts": ["render0*"]}, {}, "every slave is excluded by --exclude-hosts"),
        ({"exclude_hosts": ["comp*"]}, {}, None),
        ({}, {"renderers": ["shell"]}, None),
    ],
)
def test_each_requirement_is_matched_against_the_stored_computer_info(
    requirements, computer, expected
):
    job = make_job(**requirements)
    assert unmet_requirement(job, make_computer("render07", **computer)) == expected


def test_a_renderer_missing_on_the_host_is_a_mismatch():
    job = make_job(renderer="blender")
    assert (
        unmet_requirement(job, make_computer("a", renderers=["shell"]))
        == "no slave has the renderer 'blender'"
    )


def test_the_first_unmet_requirement_is_named():
    job = make_job(os="windows", pools=["gpu"])
    assert unmet_requirement(job, make_computer("a")) == "no slave runs windows"


def test_gpu_jobs_need_a_gpu_slot_and_cpu_jobs_a_cpu_slot():
    computer = make_computer("a", gpus=2)
    cpu, gpu = Slot(1, "a", 0), Slot(2, "a", 1, "0")
    assert mismatch(make_job(gpus=1), computer, gpu) is None
    assert mismatch(make_job(gpus=1), computer, cpu) == "no GPU slot"
    assert mismatch(make_job(), computer, cpu) is None
    assert mismatch(make_job(), computer, gpu) == "a GPU slot runs GPU jobs only"


def test_disabled_and_blocked_hosts_are_mismatches_after_the_requirements():
    assert mismatch(make_job(), make_computer("a", enabled=False)) == "slave a is disabled"
    assert (
        mismatch(make_job(os="windows"), make_computer("a", enabled=False))
        == "no slave runs windows"
    )
    assert "blocked" in mismatch(make_job(), make_computer("a"), blocked={"a"})
    assert mismatch(make_job(), make_computer("a"), blocked={"b"}) is None


# -- order ------------------------------------------------------------------------------------------


def served(jobs, slots: int = 3, **kwargs) -> list[Job]:
    """The jobs a farm of *slots* CPU slots serves, in order, one queued task each."""
    return [a.job for a in Farm().add("a", cpu=slots).plan(jobs, **kwargs)]


def test_order_is_priority_then_fewest_running_owner_then_submit_time():
    early = make_job(owner="ann", submitted_at=1, queued=1)
    late = make_job(owner="bob", submitted_at=2, queued=1)
    urgent = make_job(owner="ann", priority=90, submitted_at=3, queued=1)
    assert served([early, late, urgent]) == [urgent, early, late]
    assert served([early, late, urgent], running_by_owner={"ann": 3}) == [urgent, late, early]
    assert served([early, late, urgent], running_by_owner={"ann": 3}, fair_share="fifo") == [
        urgent,
        early,
        late,
    ]


def test_at_equal_running_the_owner_served_least_recently_goes_first():
    ann, bob = make_job(owner="ann", submitted_at=1), make_job(owner="bob", submitted_at=2)
    assert served([ann, bob], slots=1) == [ann]
    assert served([ann, bob], slots=1, last_served={"ann": 5, "bob": 4}) == [bob]
    assert served([ann, bob], slots=1, last_served={"ann": 5}) == [bob]


# -- plan: matching ------------------------------------------------------------------------------------


def test_tasks_go_only_to_slots_that_match():
    farm = (
        Farm()
        .add("cpu1", cpu=2)
        .add("fx1", cpu=2, pools=["fx"])
        .add("gpubox", cpu=1, gpu=2, pools=["gpu"])
    )
    fx = make_job(pools=["fx"], queued=10)
    assignments = farm.plan([fx])
    assert hosts_of(assignments) == {"fx1": 2}


def test_a_job_nothing_matches_gets_no_slot_and_others_still_run():
    farm = Farm().add("a", cpu=2)
    impossible = make_job(os="windows", priority=100)
    normal = make_job(queued=5)
    assignments = farm.plan([impossible, normal])
    assert [a.job for a in assignments] == [normal, normal]


def test_gpu_jobs_get_only_gpu_slots_and_cpu_jobs_only_cpu_slots():
    farm = Farm().add("gpubox", cpu=1, gpu=2)
    gpu_job, cpu_job = make_job(gpus=1, queued=5), make_job(queued=5)
    assignments = farm.plan([gpu_job, cpu_job])
    by_job = {
        job.id: sorted(a.slot.gpu_device or "cpu" for a in assignments if a.job is job)
        for job in (gpu_job, cpu_job)
    }
    assert by_job == {gpu_job.id: ["0", "1"], cpu_job.id: ["cpu"]}


def test_a_cpu_job_alone_leaves_gpu_slots_idle():
    farm = Farm().add("gpubox", cpu=1, gpu=2)
    assert len(farm.plan([make_job(queued=5)])) == 1


def test_a_multi_gpu_task_holds_that_many_gpu_slots_of_one_computer():
    farm = Farm().add("one", gpu=1).add("two", gpu=2)
    assignments = farm.plan([make_job(gpus=2, queued=5)])
    assert len(assignments) == 1
    (a,) = assignments
    assert a.slot.computer == "two" and len(a.reserved) == 1
    assert sorted(a.gpu_devices) == ["0", "1"]


def test_a_disabled_computer_takes_nothing():
    farm = Farm().add("a", cpu=2, enabled=False).add("b", cpu=1)
    assert hosts_of(farm.plan([make_job()])) == {"b": 1}


def test_max_tasks_caps_a_computer_counting_what_it_runs():
    farm = Farm().add("a", cpu=4, max_tasks=3)
    assert len(farm.plan([make_job()])) == 3
    assert len(farm.plan([make_job()], running_by_computer={"a": 2})) == 1
    assert farm.plan([make_job()], running_by_computer={"a": 3}) == []
    assert Farm().add("z", cpu=2, max_tasks=0).plan([make_job()]) == []


def test_blocked_hosts_get_nothing_from_that_job_only():
    farm = Farm().add("bad", cpu=2).add("good", cpu=1)
    flaky = make_job(blocked=["bad"], queued=5, submitted_at=1)
    other = make_job(queued=5, submitted_at=2, owner="ann")
    assignments = farm.plan([flaky, other], fair_share="fifo")
    assert {(a.job.id, a.slot.computer) for a in assignments} == {
        (flaky.id, "good"),
        (other.id, "bad"),
    }


def test_jobs_that_wait_for_others_or_are_stopped_or_empty_get_nothing():
    farm = Farm().add("a", cpu=4)
    jobs = [make_job(waiting_for=[1]), make_job(control=JobControl.STOPPED), make_job(queued=0)]
    assert farm.plan(jobs) == []


def test_never_more_tasks_than_queued():
    farm = Farm().add("a", cpu=8)
    assert len(farm.plan([make_job(queued=3)])) == 3


def test_max_parallel_caps_a_jobs_running_tasks():
    farm = Farm().add("a", cpu=8)
    job = make_job(queued=20, max_parallel=3)
    assert len(farm.plan([job])) == 3
    assert len(farm.plan([job], running_by_job={job.id: 2})) == 1
    assert farm.plan([job], running_by_job={job.id: 3}) == []


def test_unknown_computers_and_empty_farms_plan_nothing():
    assert plan([Slot(1, "ghost")], [make_job()], {}) == []
    assert plan([], [make_job()], {"a": make_computer("a")}) == []
    assert Farm().add("a").plan([]) == []


def test_work_spreads_over_the_least_busy_computers_first():
    farm = Farm().add("a", cpu=2).add("b", cpu=2)
    (first,) = farm.plan([make_job(queued=1)], running_by_computer={"a": 1})
    assert first.slot.computer == "b"


# -- plan: priority and fair share ------------------------------------------------------------------------


def test_higher_priority_is_served_first_even_if_submitted_later():
    farm = Farm().add("a", cpu=2)
    big = make_job(priority=10, queued=5000, submitted_at=1)
    urgent = make_job(priority=90, queued=5, submitted_at=2)
    assert [a.job for a in farm.plan([big, urgent])] == [urgent, urgent]


def test_equal_priority_owners_share_round_robin():
    farm = Farm().add("a", cpu=6)
    ann = make_job(owner="ann", queued=5000, submitted_at=1)
    bob = make_job(owner="bob", queued=10, submitted_at=2)
    owners = [a.job.spec.owner for a in farm.plan([ann, bob])]
    assert owners == ["ann", "bob"] * 3


def test_the_owner_with_fewer_running_tasks_catches_up_first():
    farm = Farm().add("a", cpu=4)
    ann = make_job(owner="ann", queued=50, submitted_at=1)
    bob = make_job(owner="bob", queued=50, submitted_at=2)
    owners = [a.job.spec.owner for a in farm.plan([ann, bob], running_by_owner={"ann": 3})]
    assert owners == ["bob", "bob", "bob", "ann"]


def test_with_one_slot_owners_alternate_across_decisions():
    farm = Farm().add("a", cpu=1)
    ann = make_job(owner="ann", queued=5, submitted_at=1)
    bob = make_job(owner="bob", queued=2, submitted_at=2)
    served: dict[str, int] = {}
    order = []
    for tick in range(1, 8):
        (a,) = farm.plan([j for j in (ann, bob) if j.counts.queued], last_served=served)
        order.append(a.job.spec.owner)
        a.job.counts.queued -= 1
        served[a.job.spec.owner] = tick
    assert order == ["ann", "bob", "ann", "bob", "ann", "ann", "ann"]


def test_fifo_serves_the_earliest_job_first():
    farm = Farm().add("a", cpu=4)
    ann = make_job(owner="ann", queued=5000, submitted_at=1)
    bob = make_job(owner="bob", queued=10, submitted_at=2)
    assert [a.job.spec.owner for a in farm.plan([ann, bob], fair_share="fifo")] == ["ann"] * 4


def test_an_owners_jobs_go_in_submit_order():
    farm = Farm().add("a", cpu=3)
    first = make_job(owner="ann", queued=2, submitted_at=1)
    second = make_job(owner="ann", queued=2, submitted_at=2)
    assert [a.job for a in farm.plan([second, first])] == [first, first, second]


def test_an_owner_whose_jobs_cannot_run_does_not_hold_back_the_others():
    farm = Farm().add("a", cpu=3)
    stuck = make_job(owner="ann", pools=["gpu"], submitted_at=1)
    fine = make_job(owner="bob", queued=5, submitted_at=2)
    assert [a.job for a in farm.plan([stuck, fine])] == [fine] * 3


def test_lower_priority_work_fills_slots_the_urgent_job_cannot_use():
    farm = Farm().add("fx1", cpu=1, pools=["fx"]).add("plain", cpu=2)
    urgent = make_job(priority=90, pools=["fx"], queued=10)
    low = make_job(priority=1, queued=10)
    placed = {(a.job.id, a.slot.computer) for a in farm.plan([urgent, low])}
    assert placed == {(urgent.id, "fx1"), (low.id, "plain")}


# -- waiting reasons, blocked everywhere, usable slots ---------------------------------------------------


def test_a_job_no_online_slave_can_run_says_why():
    farm = Farm().add("a").add("b").add("c", pools=["fx"])
    reason = waiting_reason(make_job(pools=["gpu"]), list(farm.computers.values()), farm.slots)
    assert reason == "waiting: no slave in pool 'gpu' (3 slaves online)"


def test_every_requirement_no_slave_meets_is_named():
    farm = Farm().add("a", os="darwin").add("b").add("c")
    reason = waiting_reason(
        make_job(os="windows", pools=["fx"]), list(farm.computers.values()), farm.slots
    )
    assert reason == "waiting: no slave runs windows; no slave in pool 'fx' (3 slaves online)"


def test_a_job_needing_two_pools_names_the_pool_no_slave_is_in():
    # The pool most slaves miss is 'comp', but alpha is in it: only 'fx' is missing.
    farm = Farm().add("alpha", pools=["comp"]).add("beta").add("gamma")
    reason = waiting_reason(
        make_job(pools=["comp", "fx"]), list(farm.computers.values()), farm.slots
    )
    assert reason == "waiting: no slave in pool 'fx' (3 slaves online)"


def test_a_job_needing_two_pools_no_slave_is_in_names_both():
    farm = Farm().add("alpha", pools=["comp"]).add("beta")
    reason = waiting_reason(
        make_job(pools=["lighting", "fx"]), list(farm.computers.values()), farm.slots
    )
    assert reason == "waiting: no slave in pools 'lighting', 'fx' (2 slaves online)"


def test_pools_each_served_but_never_together_say_what_each_slave_lacks():
    farm = Farm().add("alpha", pools=["comp"]).add("beta", pools=["fx"]).add("gamma", pools=["fx"])
    reason = waiting_reason(
        make_job(pools=["comp", "fx"]), list(farm.computers.values()), farm.slots
    )
    assert reason == (
        "waiting: no one slave meets every requirement: beta, gamma not in pool 'comp'; "
        "alpha not in pool 'fx' (3 slaves online)"
    )


def test_requirements_met_apart_are_grouped_per_slave_and_long_lists_cut():
    farm = Farm().add("w1", os="windows")
    for index in range(5):
        farm.add(f"l{index}", pools=["fx"])
    reason = waiting_reason(
        make_job(os="windows", pools=["fx"]), list(farm.computers.values()), farm.slots
    )
    assert reason == (
        "waiting: no one slave meets every requirement: l0, l1, l2 and 2 more runs linux; "
        "w1 not in pool 'fx' (6 slaves online)"
    )


def test_no_reason_when_a_slave_could_run_it():
    farm = Farm().add("a", pools=["gpu"]).add("b")
    assert (
        waiting_reason(make_job(pools=["gpu"]), list(farm.computers.values()), farm.slots) is None
    )


def test_reasons_for_disabled_blocked_or_missing_slots():
    farm = Farm().add("a", enabled=False).add("b", enabled=False)
    computers = list(farm.computers.values())
    assert (
        waiting_reason(make_job(), computers, farm.slots)
        == "waiting: every matching slave is disabled (a, b)"
    )
    farm = Farm().add("a").add("b", enabled=False)
    reason = waiting_reason(make_job(blocked=["a"]), list(farm.computers.values()), farm.slots)
    assert (
        reason
        == "waiting: no matching slave takes tasks (a blocked after repeated failures, b disabled)"
    )
    assert waiting_reason(make_job(), [], []) == "waiting: no slave online"
    gpu_only = Farm().add("g", cpu=0, gpu=2)
    assert "GPU slots only" in waiting_reason(
        make_job(), list(gpu_only.computers.values()), gpu_only.slots
    )
    cpu_only = Farm().add("c", cpu=2, gpu=0)
    cpu_only.computers["c"].gpus = 1  # declared, but its GPU engine has not registered
    assert "no matching slave has 1 GPU slot" in waiting_reason(
        make_job(gpus=1), list(cpu_only.computers.values()), cpu_only.slots
    )


def test_blocked_everywhere_means_every_online_host_that_fits_is_blocked():
    computers = [make_computer("a"), make_computer("b"), make_computer("w", os="windows")]
    assert blocked_everywhere(make_job(os="linux", blocked=["a", "b"]), computers) == ["a", "b"]
    assert blocked_everywhere(make_job(os="linux", blocked=["a"]), computers) == []
    assert blocked_everywhere(make_job(os="linux"), computers) == []
    assert blocked_everywhere(make_job(blocked=["a"]), []) == []


def test_usable_slots_count_what_can_run_the_job_at_once():
    farm = Farm().add("a", cpu=2).add("b", cpu=4, max_tasks=1).add("g", cpu=1, gpu=2, pools=["gpu"])
    assert usable_slots(make_job(), farm.computers, farm.slots) == 2 + 1 + 1
    assert usable_slots(make_job(gpus=1), farm.computers, farm.slots) == 2
    assert usable_slots(make_job(gpus=2), farm.computers, farm.slots) == 1
    assert usable_slots(make_job(blocked=["a"]), farm.computers, farm.slots) == 2
    assert usable_slots(make_job(pools=["none"]), farm.computers, farm.slots) == 0


def test_eta_uses_the_mean_task_time_and_the_slots_the_job_can_use():
    job = make_job(queued=9, running=1)
    job.task_seconds, job.timed_tasks = 100.0, 10  # 10 s per task
    assert job.eta_seconds(5) == 20.0
    assert job.eta_seconds(3) == 40.0
    assert job.eta_seconds(0) is None
    job.spec.max_parallel = 2
    assert job.eta_seconds(5) == 50.0
    job.control = JobControl.STOPPED  # it will not end by itself: no ETA
    assert job.eta_seconds(5) is None


# -- the decision does not depend on the number of queued tasks ---------------------------------------


def test_the_plan_is_the_same_for_ten_or_a_million_queued_tasks():
    def decide(queued: int):
        farm = Farm()
        for i in range(20):
            farm.add(f"n{i:02}", cpu=4, pools=["fx"] if i % 2 else [])
        jobs = [
            make_job(
                owner=f"o{i % 3}", queued=queued, submitted_at=i, pools=["fx"] if i % 4 == 0 else []
            )
            for i in range(30)
        ]
        return [(a.job.submitted_at, a.slot.engine_id) for a in farm.plan(jobs)]

    assert decide(100) == decide(1_000_000)


# -- the fast path decides what the old one did (issue 14) -------------------------------------------


def reference_plan(
    idle: Iterable[Slot],
    jobs: Iterable[Job],
    computers: Mapping[str, Computer],
    *,
    running_by_job: Mapping[int, int] | None = None,
    running_by_owner: Mapping[str, int] | None = None,
    running_by_computer: Mapping[str, int] | None = None,
    fair_share: str = "owner",
    last_served: Mapping[str, int] | None = None,
) -> list[Assignment]:
    """matching.plan before the 32,000-slot work (issue 14): the oracle of the fast path."""
    running_by_job = running_by_job or {}
    running_by_owner = running_by_owner or {}
    running_by_computer = running_by_computer or {}

    hosts: dict[str, _Host] = {}
    free = 0
    for slot in idle:
        computer = computers.get(slot.computer)
        if computer is None or not computer.enabled:
            continue
        host = hosts.get(slot.computer)
        if host is None:
            limit = UNLIMITED if computer.max_tasks is None else computer.max_tasks
            host = hosts[slot.computer] = _Host(
                computer, limit - running_by_computer.get(slot.computer, 0)
            )
        (host.gpu if slot.is_gpu else host.cpu).append(slot)
        free += 1
    # Spread work: the least busy computers first; each hands out its lowest slot first.
    ordered_hosts = sorted(
        (h for h in hosts.values() if h.capacity > 0),
        key=lambda h: (running_by_computer.get(h.computer.name, 0), h.computer.name),
    )
    for host in ordered_hosts:
        host.cpu.sort(key=lambda s: s.slot, reverse=True)
        host.gpu.sort(key=lambda s: s.slot, reverse=True)

    candidates: dict[tuple, list[_Host]] = {}

    def take(want: _Want) -> Assignment | None:
        job = want.job
        key = signature(job)
        found = candidates.get(key)
        if found is None:
            found = candidates[key] = [
                h for h in ordered_hosts if unmet_requirement(job, h.computer) is None
            ]
        need = job.spec.requirements.gpus or 1
        gpu = bool(job.spec.requirements.gpus)
        i = 0
        while i < len(found):
            host = found[i]
            pool = host.gpu if gpu else host.cpu
            if host.capacity <= 0 or len(pool) < need:
                del found[i]  # exhausted for every job of this signature, for this decision
                continue
            if host.computer.name in want.blocked:
                i += 1
                continue
            taken = [pool.pop() for _ in range(need)]
            host.capacity -= 1
            return Assignment(job, taken[0], tuple(taken[1:]))
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
        bands.setdefault(job.spec.priority, {}).setdefault(group, deque()).append(
            _Want(job, want, frozenset(job.blocked_hosts))
        )

    served = dict(last_served or {})
    tick = max(served.values(), default=0)
    result: list[Assignment] = []
    for priority in sorted(bands, reverse=True):
        if free <= 0:
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
        while heap and free > 0:
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
            free -= 1 + len(assignment.reserved)
            queue[0].want -= 1
            if queue[0].want <= 0:
                queue.popleft()
            if queue:
                tick += 1
                served[owner] = tick
                heapq.heappush(heap, (running + 1, tick, queue[0].job.submitted_at, owner))
    return result


def random_case(seed: int) -> tuple[list[Slot], list[Job], dict[str, Computer], dict]:
    """A random farm, queue and history: pools, GPUs, OSes, disabled and limited hosts, host
    patterns, blocked hosts, waiting and stopped jobs, max-parallel, tasks running, owners
    served before."""
    rng = random.Random(seed)
    farm = Farm()
    names = [f"h{i:02}" for i in range(rng.randint(1, 12))]
    for name in names:
        farm.add(
            name,
            cpu=rng.randint(0, 4),
            gpu=rng.choice((0, 0, 1, 2)),
            pools=rng.sample(["fx", "comp", "lit"], rng.randint(0, 2)),
            os=rng.choice(("linux", "linux", "windows")),
            enabled=rng.random() > 0.1,
            max_tasks=rng.choice((None, None, 0, 1, 3)),
        )
    slots = [s for s in farm.slots if rng.random() > 0.2]  # some busy
    owners = ["ann", "bob", "cy", "dee"]
    jobs = []
    for _ in range(rng.randint(0, 15)):
        requirements: dict = {}
        if rng.random() < 0.3:
            requirements["pools"] = [rng.choice(["fx", "comp", "lit"])]
        if rng.random() < 0.2:
            requirements["gpus"] = rng.choice((1, 2))
        if rng.random() < 0.1:
            requirements["os"] = "windows"
        if rng.random() < 0.1:
            requirements["hosts"] = [rng.choice(["h0*", "h1?", "h05"])]
        if rng.random() < 0.1:
            requirements["exclude_hosts"] = [rng.choice(["h0*", "h1?", "h05"])]
        jobs.append(
            make_job(
                owner=rng.choice(owners),
                priority=rng.choice((10, 50, 50, 90)),
                queued=rng.choice((0, 1, 2, 5, 40)),
                submitted_at=float(rng.randint(0, 20)),
                max_parallel=rng.choice((None, None, 1, 2)),
                waiting_for=[1] if rng.random() < 0.1 else None,
                blocked=rng.sample(names, min(len(names), rng.choice((0, 0, 1, 2)))),
                control=JobControl.ACTIVE if rng.random() > 0.1 else JobControl.STOPPED,
                **requirements,
            )
        )
    history = {
        "running_by_job": {j.id: rng.randint(0, 2) for j in jobs if rng.random() < 0.3},
        "running_by_owner": {o: rng.randint(0, 5) for o in owners if rng.random() < 0.5},
        "running_by_computer": {n: rng.randint(0, 3) for n in names if rng.random() < 0.3},
        "fair_share": rng.choice(("owner", "fifo")),
        "last_served": {o: rng.randint(0, 9) for o in owners if rng.random() < 0.5},
    }
    rng.shuffle(slots)
    rng.shuffle(jobs)
    return slots, jobs, farm.computers, history


def decisions(assignments) -> list[tuple]:
    return [
        (a.job.id, a.slot.engine_id, tuple(s.engine_id for s in a.reserved)) for a in assignments
    ]


@pytest.mark.parametrize("seed", range(300))
def test_plan_decides_exactly_what_the_reference_plan_decided(seed):
    slots, jobs, computers, history = random_case(seed)
    expected = decisions(reference_plan(slots, jobs, computers, **history))
    assert decisions(plan(slots, jobs, computers, **history)) == expected


@pytest.mark.parametrize("seed", range(100))
def test_a_limited_plan_is_the_first_assignments_of_the_whole_plan(seed):
    slots, jobs, computers, history = random_case(seed)
    whole = decisions(plan(slots, jobs, computers, **history))
    for limit in (0, 1, 2, len(whole) // 2, len(whole), len(whole) + 5):
        assert decisions(plan(slots, jobs, computers, limit=limit, **history)) == whole[:limit]


def test_random_cases_assign_something_and_leave_something_out():
    """The property tests above mean something: their cases are neither all empty nor all
    trivially full."""
    sizes = [len(plan(*case[:3], **case[3])) for case in map(random_case, range(300))]
    assert sum(1 for n in sizes if n == 0) > 10
    assert sum(1 for n in sizes if n >= 5) > 50
