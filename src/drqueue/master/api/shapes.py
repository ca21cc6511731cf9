"""What the API answers: jobs, tasks, computers and events as JSON, and the fast JSON response.

One function per kind of object, used by every route (and the live stream) that shows one, so
a job reads the same in ``GET /jobs``, ``GET /jobs/ID`` and an ``event: jobs`` message.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from fastapi.responses import JSONResponse

from drqueue.master.dispatcher import RunningTask
from drqueue.models import Computer, Job, Task
from drqueue.store.base import Event

#: What another artist sees of each value of a job's env.
HIDDEN = "(hidden)"


def job_dict(job: Job, slots: int) -> dict[str, Any]:
    spec = job.spec
    return {
        "id": job.id,
        "name": spec.name,
        "owner": spec.owner,
        "renderer": spec.renderer,
        "scene": spec.scene,
        "start": spec.start,
        "end": spec.end,
        "step": spec.step,
        "block_size": spec.block_size,
        "priority": spec.priority,
        "retries": spec.retries,
        "timeout": spec.timeout,
        "env": spec.env,
        "params": spec.params,
        "requirements": spec.requirements.to_dict(),
        "after": spec.after,
        "after_frames": spec.after_frames,
        "order": spec.order,
        "first_frame_check": spec.first_frame_check,
        "max_parallel": spec.max_parallel,
        "notify": spec.notify,
        "on_failure": spec.on_failure,
        "status": job.status,
        "control": str(job.control),
        "counts": {
            "total": job.counts.total,
            "queued": job.counts.queued,
            "running": job.counts.running,
            "finished": job.counts.finished,
            "error": job.counts.error,
            "cancelled": job.counts.cancelled,
        },
        "submitted_at": job.submitted_at,
        "finished_at": job.finished_at,
        "eta_seconds": job.eta_seconds(slots),
        "waiting_for": job.waiting_for,
        "waiting_reason": job.waiting_reason,
        "blocked_hosts": job.blocked_hosts,
    }


class JSONBytesResponse(JSONResponse):
    """A JSON answer encoded by orjson, for the long lists the CLI and the web UI poll.

    Returning it from a route skips FastAPI's validation and serialization of the answer
    (pydantic copies every dict of a ``list[dict[str, Any]]`` before dumping it): GET /jobs of
    10,000 jobs took 90 ms of CPU instead of 135.  An integer beyond 64 bits (a job's params
    may hold one) is more than orjson encodes: such an answer is encoded as any other.
    """

    def render(self, content: Any) -> bytes:
        return json_bytes(content)


def json_bytes(content: Any) -> bytes:
    """*content* as compact JSON bytes (orjson; the standard encoder for what it refuses)."""
    try:
        return orjson.dumps(content)
    except orjson.JSONEncodeError:
        # ASCII with escapes: a lone surrogate stored before the rule that refuses it must
        # not turn every listing into a 500.
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode()


def task_dict(task: Task) -> dict[str, Any]:
    return {
        "index": task.index,
        "id": task.id,
        "job_id": task.job_id,
        "start": task.block.start,
        "end": task.block.end,
        "step": task.block.step,
        "frames": len(task.block),
        "state": str(task.state),
        "attempts": task.attempts,
        "failures": task.failures,
        "lost": task.lost,
        "computer": task.computer,
        "engine_id": task.engine_id,
        "started_at": task.started_at,
        "ended_at": task.ended_at,
        "exit_code": task.exit_code,
        "peak_rss_kb": task.peak_rss_kb,
        "cpu_seconds": task.cpu_seconds,
        "progress": task.progress,
        "log_path": task.log_path,
        "tail": task.tail,
        "reason": task.reason,
        "outputs": task.outputs,
        "failure_class": task.failure_class,
        "failure_detail": task.failure_detail,
        "min_ram_mb": task.min_ram_mb,
    }


def computer_dict(computer: Computer, online: bool, running: list[RunningTask]) -> dict[str, Any]:
    """A computer; each of its *running* tasks names its job and task twice: ``job_id``,
    ``task_id``, ``task_index`` (the CLI's) and ``job``, ``task`` (the index), ``progress``
    (the web UI's)."""
    return {
        "name": computer.name,
        "hostname": computer.hostname,
        "os": computer.os,
        "arch": computer.arch,
        "cores": computer.cores,
        "ram_mb": computer.ram_mb,
        "free_ram_mb": computer.free_ram_mb,
        "load": computer.load,
        "gpus": computer.gpus,
        "pools": computer.pools,
        "renderers": computer.renderers,
        "enabled": computer.enabled,
        "max_tasks": computer.max_tasks,
        "slots": computer.slots,
        "online": online,
        "last_seen": computer.last_seen,
        "info_at": computer.info_at,
        "running": [
            {
                "job_id": run.job_id,
                "task_id": run.task_id,
                "task_index": run.task_index,
                "job": run.job_id,
                "task": run.task_index,
                "progress": run.progress,
            }
            for run in running
        ],
    }


def event_dict(event: Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "at": event.at,
        "kind": event.kind,
        "message": event.message,
        "job_id": event.job_id,
        "task_index": event.task_index,
        "computer": event.computer,
        "actor": event.actor,
    }
