"""What a slave tells the master about itself, collected on the engine.

The master runs :func:`collect_info` on each engine as it registers (and again
when the info is older than ``info_cache_seconds`` and the engine is idle).
The engine's environment, set by ``drqueue slave``, names the slave, its
slot, its pools and its GPU device.
"""

from __future__ import annotations

import os
import platform
import socket
from typing import Any


def collect_info() -> dict[str, Any]:
    """Hostname, OS, cores, memory, load, pools and renderers of this slave, and this engine's slot."""
    import psutil

    from drqueue.renderers import all_renderers
    from drqueue.slave.runner import host_os, slave_name

    memory = psutil.virtual_memory()
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = psutil.cpu_percent() / 100 * (os.cpu_count() or 1)
    pools = [p.strip() for p in os.environ.get("DRQUEUE_POOL", "").split(",") if p.strip()]
    gpu_device = os.environ.get("DRQUEUE_GPU_DEVICE")
    ram_mb = memory.total // 2**20
    offered = os.environ.get("DRQUEUE_RAM_MB", "")
    if offered.isdigit() and 0 < int(offered) < ram_mb:
        ram_mb = int(offered)  # drqueue slave --ram-mb: what renders may use here
    return {
        "name": slave_name(),
        "hostname": socket.gethostname(),
        "os": host_os(),
        "arch": platform.machine(),
        "cores": psutil.cpu_count(logical=True) or 1,
        "ram_mb": ram_mb,
        "free_ram_mb": min(memory.available // 2**20, ram_mb),
        "load": round(load, 2),
        "gpus": int(os.environ.get("DRQUEUE_GPUS", "0") or 0),
        "pools": pools,
        "renderers": sorted(name for name, cls in all_renderers().items() if cls.available()),
        "slots": int(os.environ.get("DRQUEUE_SLOTS", "1") or 1),
        "slot": int(os.environ.get("DRQUEUE_SLOT", "0") or 0),
        "gpu_device": gpu_device,
        "engine_uuid": os.environ.get("DRQUEUE_ENGINE_UUID", ""),
        "pid": os.getpid(),
    }
