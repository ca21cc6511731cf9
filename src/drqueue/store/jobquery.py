"""A page of jobs: which jobs a query keeps, in which order, and how many matched.

``GET /api/v1/jobs?offset=&limit=&sort=&order=&owner=&state=&pool=&renderer=&q=`` (the web UI's
jobs table) asks the store for one page through :meth:`Store.page_jobs`.  This module is the
definition every backend follows: the memory and MongoDB stores run :func:`page_of` itself
over their jobs; the SQLite store does the same in SQL, so that a page of 10,000 jobs costs the
page, and the contract suite (tests/unit/test_store.py) holds it to these functions.

- **Filters** (all optional, all must hold): the owner; the job's status (:attr:`Job.status`);
  a pool the job requires; the renderer; ``name_contains``, a case-insensitive substring of the
  name (``str.casefold``); ``ids``, a set of job ids (the live stream reads the jobs that
  changed this way); ``attention``, the jobs a wrangler should look at
  (:func:`needs_attention`); ``active``, the jobs that have not ended (:data:`ACTIVE_STATUSES`:
  queued, waiting, running, stopping or stopped, i.e. work left), what ``drqueue jobs`` shows
  by default.
- **Sort keys** (:data:`SORTS`): ``id``; ``name`` and ``owner`` (by code point, so ``B`` before
  ``a``); ``priority``; ``status`` (alphabetical); ``submitted`` (submit time); ``progress``
  (finished tasks / tasks); ``eta``, the work left: the job's mean task time times its tasks
  left, 0 when none are left, and unknown (after every known one, as if infinite) before any
  task has finished.  That is the ETA the API shows on equal slots; jobs that can use different
  numbers of slots may show ETAs in another order.  Ties are broken by id, in the same
  direction.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Set
from dataclasses import dataclass
from typing import Any

from drqueue.models import Job, dependency_dead_end

#: The keys a page may be sorted by.
SORTS = ("id", "name", "owner", "priority", "status", "submitted", "progress", "eta")

#: The statuses a job may have (models.job_status), the values of the ``status`` filter.
STATUSES = (
    "queued",
    "running",
    "waiting",
    "stopping",
    "stopped",
    "finished",
    "error",
    "cancelled",
)

#: The statuses of a job that has not ended: it has tasks left to run (a stopped job too,
#: once continued).  Finished, error and cancelled jobs have none.
ACTIVE_STATUSES = ("queued", "running", "waiting", "stopping", "stopped")


@dataclass(frozen=True, slots=True)
class JobQuery:
    """Which jobs, in which order, and which page of them (``limit`` None: all)."""

    owner: str | None = None
    status: str | None = None
    pool: str | None = None
    renderer: str | None = None
    name_contains: str | None = None
    ids: frozenset[int] | None = None
    attention: bool = False
    active: bool = False
    sort: str = "id"
    descending: bool = False
    offset: int = 0
    limit: int | None = None

    def __post_init__(self) -> None:
        if self.sort not in SORTS:
            raise ValueError(f"sort must be one of {', '.join(SORTS)}, not {self.sort!r}")


@dataclass(slots=True)
class JobPage:
    """One page of jobs, and how many jobs the query matched in all."""

    jobs: list[Job]
    total: int


def progress(job: Job) -> float:
    """The share of the job's tasks that finished."""
    return job.counts.finished / job.counts.total if job.counts.total else 0.0


def work_left(job: Job) -> float:
    """Seconds of work left at the job's mean task time; infinite while it has no mean."""
    left = job.counts.queued + job.counts.running
    if not left:
        return 0.0
    if not job.timed_tasks:
        return math.inf
    return job.task_seconds / job.timed_tasks * left


#: The value each sort key orders a job by.
SORT_VALUE: dict[str, Callable[[Job], Any]] = {
    "id": lambda job: job.id,
    "name": lambda job: job.spec.name,
    "owner": lambda job: job.spec.owner,
    "priority": lambda job: job.spec.priority,
    "status": lambda job: job.status,
    "submitted": lambda job: job.submitted_at,
    "progress": progress,
    "eta": work_left,
}


def stalled_jobs(
    status_of: Mapping[int, str], waiting_for: Mapping[int, Iterable[int]]
) -> set[int]:
    """The ids of the waiting jobs that cannot go on without a user: one of their dependencies
    is deleted, ended in error or cancelled, or stopped
    (:func:`drqueue.models.dependency_dead_end`), or is stalled itself, however long the chain.
    *status_of* has every job's status (a dependency missing from it was deleted);
    *waiting_for*, each waiting job's dependencies.

    From the dead ends outwards along the reversed dependencies, each job once: a chain of
    thousands of jobs costs what as many independent jobs do."""
    waiters: dict[int, list[int]] = {}  # a dependency -> the waiting jobs that wait for it
    stalled: set[int] = set()
    for job_id, deps in waiting_for.items():
        for dep in deps:
            waiters.setdefault(dep, []).append(job_id)
            if dependency_dead_end(status_of.get(dep)):
                stalled.add(job_id)
    reached = list(stalled)
    while reached:
        for waiter in waiters.get(reached.pop(), ()):
            if waiter not in stalled:
                stalled.add(waiter)
                reached.append(waiter)
    return stalled


def needs_attention(job: Job, stalled: Set[int]) -> bool:
    """Whether a wrangler should look at *job*: a task of it in error, a host blocked for it,
    or it is one of the *stalled* jobs (:func:`stalled_jobs`)."""
    return bool(job.counts.error or job.blocked_hosts) or job.id in stalled


def matches(job: Job, query: JobQuery, stalled: Set[int] = frozenset()) -> bool:
    """Whether *job* passes every filter of *query* (*stalled* as needs_attention's, for
    ``attention``)."""
    spec = job.spec
    return (
        (query.ids is None or job.id in query.ids)
        and (query.owner is None or spec.owner == query.owner)
        and (query.renderer is None or spec.renderer == query.renderer)
        and (query.pool is None or query.pool in spec.requirements.pools)
        and (query.name_contains is None or query.name_contains.casefold() in spec.name.casefold())
        and (query.status is None or job.status == query.status)
        and (not query.attention or needs_attention(job, stalled))
        and (not query.active or job.status in ACTIVE_STATUSES)
    )


def page_of(jobs: Iterable[Job], query: JobQuery) -> JobPage:
    """The page *query* asks for, of *jobs* (any order; with ``attention``, every job)."""
    jobs = list(jobs)
    stalled: set[int] = set()
    if query.attention:
        stalled = stalled_jobs(
            {job.id: job.status for job in jobs},
            {job.id: job.waiting_for for job in jobs if job.status == "waiting"},
        )
    kept = [job for job in jobs if matches(job, query, stalled)]
    value = SORT_VALUE[query.sort]
    kept.sort(key=lambda job: (value(job), job.id), reverse=query.descending)
    end = None if query.limit is None else query.offset + query.limit
    return JobPage(kept[query.offset : end], len(kept))
