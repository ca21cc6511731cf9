"""Which engine may run which job, and in what order jobs are served.

Pure functions on stored data, so the dispatcher's decisions are unit-tested
without a farm.  :func:`mismatch` says why a computer cannot run a job (None
when it can); :func:`order_jobs` sorts runnable jobs by priority, then fair
share between owners (or FIFO), then submit time.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass

from drqueue.models import Computer, Job


@dataclass(slots=True)
class Slot:
    """One engine as the dispatcher sees it."""

    engine_id: int
    computer: str
    slot: int = 0
    gpu_device: str | None = None


def mismatch(job: Job, computer: Computer, slot: Slot | None = None,
             blocked: Iterable[str] = ()) -> str | None:
    """Why *computer* (and *slot*) cannot run *job*'s tasks, or None if it can."""
    req = job.spec.requirements
    if not computer.enabled:
        return f"slave {computer.name} is disabled"
    if computer.name in blocked:
        return f"slave {computer.name} is blocked for this job after repeated failures"
    if req.os and computer.os != req.os:
        return f"no slave runs {req.os}"
    if req.min_cores and computer.cores < req.min_cores:
        return f"no slave has {req.min_cores} cores"
    if req.min_ram_gb and computer.ram_mb < req.min_ram_gb * 1024:
        return f"no slave has {req.min_ram_gb:g} GB of RAM"
    for pool in req.pools:
        if pool not in computer.pools:
            return f"no slave in pool {pool!r}"
    if req.gpus:
        if slot is None or slot.gpu_device is None:
            return f"no GPU slot ({req.gpus} GPUs wanted)"
        if computer.gpus < req.gpus:
            return f"no slave has {req.gpus} GPUs"
    if req.hosts and not any(
        fnmatch.fnmatchcase(computer.name, pattern) or fnmatch.fnmatchcase(computer.hostname, pattern)
        for pattern in req.hosts
    ):
        return f"no slave matches --hosts {' '.join(req.hosts)}"
    if any(
        fnmatch.fnmatchcase(computer.name, pattern) or fnmatch.fnmatchcase(computer.hostname, pattern)
        for pattern in req.exclude_hosts
    ):
        return f"slave {computer.name} is excluded"
    if job.spec.renderer not in computer.renderers:
        return f"no slave has the renderer {job.spec.renderer!r}"
    return None


def order_jobs(jobs: list[Job], running_by_owner: dict[str, int], fair_share: str = "owner") -> list[Job]:
    """Jobs in the order they are served: priority, then fair share (or FIFO), then submit time."""
    if fair_share == "fifo":
        return sorted(jobs, key=lambda j: (-j.spec.priority, j.submitted_at, j.id))
    return sorted(
        jobs,
        key=lambda j: (-j.spec.priority, running_by_owner.get(j.spec.owner, 0), j.submitted_at, j.id),
    )
