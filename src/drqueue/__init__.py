"""DrQueue: a render farm manager in pure Python, on ipyparallel.

The public Python API is :class:`drqueue.Client`, the same client the
``drqueue`` command uses to talk to the master's HTTP API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Client", "__version__"]

if TYPE_CHECKING:
    from drqueue.client import Client


def __getattr__(name: str) -> Any:
    # Lazy: engines import drqueue for every task and probe, and need no HTTP client.
    if name == "Client":
        from drqueue.client import Client

        return Client
    raise AttributeError(name)
