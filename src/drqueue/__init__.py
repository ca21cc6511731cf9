"""DrQueue: a render farm manager in pure Python, on ipyparallel.

The public Python API is :class:`drqueue.Client`, the same client the ``drqueue`` command uses
to talk to the master's HTTP API.  It answers typed objects (``drqueue.Job``, ``Task``,
``Computer``, ``Pool``, ``Event``: :mod:`drqueue.api_types`) and raises typed errors
(``drqueue.JobNotFound``, ``Unauthorized``, ``Forbidden``, ``InvalidJob``,
``MasterUnreachable``: :mod:`drqueue.errors`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Where each public name lives; imported on first use (engines import drqueue for every task
#: and probe, and need no HTTP client).
_PUBLIC = {
    "Client": "drqueue.client",
    "JobSpec": "drqueue.models",
    **dict.fromkeys(
        ("Job", "Task", "Computer", "Pool", "Event", "Counts", "Submitted", "RendererInfo"),
        "drqueue.api_types",
    ),
    **dict.fromkeys(
        (
            "DrQueueError",
            "JobNotFound",
            "NotFound",
            "Unauthorized",
            "Forbidden",
            "InvalidJob",
            "UnknownRenderer",
            "SceneNotFound",
            "StoreBusy",
            "MasterUnreachable",
            "Conflict",
        ),
        "drqueue.errors",
    ),
}
__all__ = [  # noqa: RUF022 (grouped as _PUBLIC)
    "Client",
    "JobSpec",
    "Job",
    "Task",
    "Computer",
    "Pool",
    "Event",
    "Counts",
    "Submitted",
    "RendererInfo",
    "DrQueueError",
    "JobNotFound",
    "NotFound",
    "Unauthorized",
    "Forbidden",
    "InvalidJob",
    "UnknownRenderer",
    "SceneNotFound",
    "StoreBusy",
    "MasterUnreachable",
    "Conflict",
    "__version__",
]

if TYPE_CHECKING:
    from drqueue.api_types import (
        Computer,
        Counts,
        Event,
        Job,
        Pool,
        RendererInfo,
        Submitted,
        Task,
    )
    from drqueue.client import Client
    from drqueue.errors import (
        Conflict,
        DrQueueError,
        Forbidden,
        InvalidJob,
        JobNotFound,
        MasterUnreachable,
        NotFound,
        Unauthorized,
    )
    from drqueue.models import JobSpec


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(name)
