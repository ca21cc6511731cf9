"""DrQueue: a render farm manager in pure Python, on ipyparallel.

The public Python API is :class:`drqueue.Client`, the same client the
``drqueue`` command uses to talk to the master's HTTP API.
"""

__version__ = "0.1.0"

from drqueue.client import Client  # noqa: E402

__all__ = ["Client", "__version__"]
