"""Waiting for a job to end: the one loop behind ``Client.wait`` and ``drqueue submit --wait``.

A job *ends*, for someone waiting on it, when nothing more will happen without a user's action:

- its tasks all ended (``finished``, ``error``, ``cancelled``: :data:`ENDED`);
- it was stopped and nothing runs any more (``stopped``; ``stopping`` still has tasks running);
- it waits for a dependency that cannot finish by itself: deleted, ended in error or cancelled,
  stopped, or stalled in turn (:func:`stalled_by`, on the rule of
  :func:`drqueue.models.dependency_dead_end`).

The loop reads only the job (``GET /jobs/ID``: its counters), never its task list, so a long wait
on a big job costs the master little; the dependencies are read only while the job waits.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from drqueue.api_types import Job
from drqueue.errors import NotFound
from drqueue.models import dependency_dead_end

if TYPE_CHECKING:
    from rich.console import Console

    from drqueue.client import Client

#: Job statuses after which none of its tasks will run again without a user's action.
ENDED = ("finished", "error", "cancelled")
#: Seconds between two reads of the job while waiting.
POLL_SECONDS = 0.5


@dataclass(frozen=True)
class JobEnd:
    """How a wait ended: the job as last read, and why it will not go on by itself when it did
    not end on its own (stopped, or stalled by a dependency)."""

    job: Job
    why_not: str | None = None

    @property
    def summary(self) -> str:
        """One line for a person: ``job 7 error: 3/4 tasks finished, 1 in error``."""
        job, counts = self.job, self.job.counts
        line = (
            f"job {job.id} {job.status}: {counts.finished}/{counts.total} tasks finished, "
            f"{counts.error} in error"
        )
        return line + (f"; {self.why_not}" if self.why_not else "")


def stalled_by(client: Client, job: Job) -> str | None:
    """Why a waiting *job* cannot go on by itself: a dependency that is deleted, ended without
    finishing, stopped, or stalled itself (the rule of models.dependency_dead_end); or None."""
    seen: set[int] = set()

    def dead_end(dep: int) -> str | None:
        if dep in seen:
            return None
        seen.add(dep)
        try:
            found = client.job(dep)
        except NotFound:
            return f"job {dep} ({dependency_dead_end(None)})"
        why = dependency_dead_end(found.status)
        if why:
            return f"job {dep} ({why})"
        if found.status == "waiting":
            for inner in found.waiting_for:
                if deeper := dead_end(inner):
                    return f"job {dep} (waits for {deeper})"
        return None

    for dep in job.waiting_for:
        if found := dead_end(dep):
            return f"waiting for {found}"
    return None


def frames_stalled(client: Client, job: Job) -> str | None:
    """Why a job that waits frame by frame cannot go on by itself: nothing of it runs, its
    queued tasks are held by upstream frames that ended without finishing (the dispatcher's
    waiting reason says so), and no job it waits for can render more; or None."""
    reason = job.waiting_reason or ""
    if not job.after_frames or job.counts.running or " held (" not in reason:
        return None
    for dep in job.after_frames:
        try:
            status = client.job(dep).status
        except NotFound:
            continue
        if status not in ENDED and status != "stopped":
            return None
    return reason


def end_of(client: Client, job: Job) -> JobEnd | None:
    """The end *job* has reached (see the module docstring), or None while it may go on."""
    if job.status in ENDED:
        return JobEnd(job)
    if job.status == "stopped" and job.first_frame_check and job.counts.error:
        return JobEnd(
            job,
            f"stopped: its first-frame check failed: fix it, then `drqueue job requeue-failed "
            f"{job.id}` and `drqueue job continue {job.id}`",
        )
    if job.status == "stopped":
        return JobEnd(job, f"stopped: `drqueue job continue {job.id}` to go on")
    if job.status == "waiting" and (why := stalled_by(client, job)):
        return JobEnd(job, why)
    if job.status == "queued" and (why := frames_stalled(client, job)):
        return JobEnd(job, why)
    return None


def wait_for_end(
    client: Client, job_id: int, *, console: Console | None, interval: float = POLL_SECONDS
) -> JobEnd:
    """Read the job every *interval* seconds until it ends; with a *console*, show a live
    progress bar on it (tasks finished of all, running, failed, the status and waiting reason)."""
    with progress_bar(console, job_id) as show:
        while True:
            job = client.job(job_id)
            show(job)
            if end := end_of(client, job):
                return end
            time.sleep(interval)


@contextmanager
def progress_bar(console: Console | None, job_id: int) -> Iterator[Callable[[Job], None]]:
    """A function that shows a job's progress on *console* as a rich bar; with no console, one
    that shows nothing."""
    if console is None:
        yield lambda job: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        bar = progress.add_task(f"job {job_id}", total=None, detail="")

        def show(job: Job) -> None:
            counts = job.counts
            detail = f"{counts.running} running, {counts.error} failed · {job.status}"
            if job.waiting_reason:
                detail += f" · {job.waiting_reason}"
            progress.update(bar, total=counts.total, completed=counts.finished, detail=detail)

        yield show


def terminal_console() -> Console | None:
    """A console on stderr if it is a terminal, else on stdout if that is one; None when
    neither is (a script's output in a file or a pipe gets no progress bar)."""
    from rich.console import Console

    for stream, stderr in ((sys.stderr, True), (sys.stdout, False)):
        if stream is not None and stream.isatty():
            return Console(stderr=stderr)
    return None
