"""Processes, for the master and the slaves alike: process trees and what a task's GPUs are.

Both sides start children in process groups of their own and must stop them whole: the master
its controller, a slave its engines, an engine its renders.  :func:`stop_process_tree` is the
one way they do it (psutil, so it works on every OS).  :func:`gpu_environment` is the one rule
for which variables give a render its GPUs, used by the dispatcher (a task on several GPU slots)
and the runner (a task on one).  This module imports nothing else of DrQueue's.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from typing import Any

import psutil

#: Environment variables that name a task's GPUs, one per vendor, each a comma-separated list
#: of device numbers (oneAPI's ONEAPI_DEVICE_SELECTOR, spelt its own way, comes on top).
GPU_VARIABLES = (
    "CUDA_VISIBLE_DEVICES",
    "HIP_VISIBLE_DEVICES",
    "ROCR_VISIBLE_DEVICES",
    "GPU_DEVICE_ORDINAL",
)
#: Seconds stop_process_tree waits for SIGKILLed processes to go.
KILL_WAIT_SECONDS = 2.0


def gpu_environment(devices: list[str]) -> dict[str, str]:
    """The variables that give a task exactly *devices* (each vendor's spelling)."""
    listed = ",".join(devices)
    env = {name: listed for name in GPU_VARIABLES}
    env["ONEAPI_DEVICE_SELECTOR"] = "*:" + listed
    return env


def new_process_group() -> dict[str, Any]:
    """Popen keyword arguments that start a child in a process group of its own (POSIX: a new
    session; Windows: a new process group), so signals to this process do not reach it and its
    tree can be stopped whole."""
    if sys.platform == "win32":
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
    return {"start_new_session": True}


#: prctl(2) options (linux/prctl.h).
_PR_SET_DUMPABLE = 4
_PR_SET_PDEATHSIG = 1
_PR_GET_DUMPABLE = 3
_PR_SET_CHILD_SUBREAPER = 36


def _prctl(option: int, value: int) -> int | None:
    """prctl(*option*, *value*) on Linux: its return value, None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    result = libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0)
    return None if result < 0 else result


def make_undumpable() -> bool:
    """Make this process non-dumpable (Linux: PR_SET_DUMPABLE 0), so a process of the same user
    that is not root (a render) cannot read its /proc/PID/environ, memory or file descriptors,
    nor ptrace it: the slave and its engines hold what renders must not read (the slave token,
    the engine connection info).  Children get it back at exec.  False where it cannot."""
    return _prctl(_PR_SET_DUMPABLE, 0) is not None


def dumpable() -> bool | None:
    """Whether this process is dumpable (Linux), None where that cannot be told."""
    result = _prctl(_PR_GET_DUMPABLE, 0)
    return None if result is None else bool(result)


def become_subreaper() -> bool:
    """Make this process the child subreaper of its descendants (Linux): an orphan among them,
    a daemon's double fork included, becomes its child rather than init's, so it can still be
    found and stopped.  False where it cannot."""
    return _prctl(_PR_SET_CHILD_SUBREAPER, 1) is not None


def die_with_parent() -> None:
    """Ask Linux to SIGTERM this child when its parent dies, however it dies (a Popen
    ``preexec_fn``; elsewhere a no-op)."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def child_pids() -> set[int]:
    """The ids of this process's children.

    On Linux they are read from ``/proc/self/task/*/children`` (one small file per thread),
    whatever the number of processes on the machine; psutil's ``children()`` reads the stat
    file of every process there is, which cost each no-op task ~10 ms of an engine's CPU on a
    shared machine (bench/dispatch.py).  Elsewhere, or on a kernel without that file, psutil.
    """
    try:
        threads = os.listdir("/proc/self/task")
    except OSError:
        threads = []
    pids: set[int] = set()
    for thread in threads:
        try:
            fd = os.open(f"/proc/self/task/{thread}/children", os.O_RDONLY | os.O_CLOEXEC)
            try:
                listing = b""
                while chunk := os.read(fd, 65536):
                    listing += chunk
            finally:
                os.close(fd)
            pids.update(int(pid) for pid in listing.split())
        except FileNotFoundError:
            if not os.path.exists(f"/proc/self/task/{thread}"):
                continue  # the thread ended meanwhile
            break  # the kernel has no children file (CONFIG_PROC_CHILDREN): ask psutil
        except (OSError, ValueError):
            break
    else:
        if threads:
            return pids
    try:
        return {child.pid for child in psutil.Process().children()}
    except psutil.Error:
        return set()


def _group_members(leaders: set[int]) -> list[psutil.Process]:
    """Processes of the process groups or sessions *leaders* lead (POSIX), found one by one so
    a group id freed and reused meanwhile is never signalled as a whole.  A member that moved
    to a group of its own (``set -m``, setpgid) is still found by its session."""
    if not leaders or not hasattr(os, "getpgid"):
        return []

    def member(pid: int) -> bool:
        return os.getpgid(pid) in leaders or os.getsid(pid) in leaders

    members = []
    # Two system calls per process id, and a psutil.Process only for a member (making one per
    # process, as process_iter does, cost 9 times more: a render's end paid it on every task).
    # A member is checked again once its Process is made, so an id reused in between is left.
    for pid in psutil.pids():
        with contextlib.suppress(OSError, psutil.Error):
            if member(pid):
                proc = psutil.Process(pid)
                if member(pid):
                    members.append(proc)
    return members


def _tree(pids: tuple[int, ...], leaders: set[int], skip: set[int]) -> list[psutil.Process]:
    """The processes *pids*, their descendants, and the members of the groups they lead (added
    to *leaders*, which also names groups found earlier), but none of *skip*: a render's child
    that was reparented (its parent exited) stays in the render's group, one that left the
    group (setsid) stays a descendant."""
    found: dict[int, psutil.Process] = {}
    own_group = os.getpgrp() if hasattr(os, "getpgrp") else None
    leaders.discard(own_group)
    for pid in pids:
        try:
            parent = psutil.Process(pid)
            for proc in (parent, *parent.children(recursive=True)):
                found.setdefault(proc.pid, proc)
        except psutil.Error:
            continue
        with contextlib.suppress(OSError):
            if hasattr(os, "getpgid") and os.getpgid(pid) == pid and pid != own_group:
                leaders.add(pid)
    for proc in _group_members(leaders):
        found.setdefault(proc.pid, proc)
    for pid in (os.getpid(), *skip):
        found.pop(pid, None)
    return list(found.values())


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait up to *timeout* s for *procs* to end (reaping those that are our children); the
    ones still running.  A zombie counts as gone: its parent, not us, must reap it."""
    deadline = time.monotonic() + timeout
    while True:
        _, alive = psutil.wait_procs(procs, timeout=0)
        procs = [proc for proc in alive if _running(proc)]
        if not procs or time.monotonic() >= deadline:
            return procs
        time.sleep(0.02)


def stop_process_tree(*pids: int, groups: Iterable[int] = (), timeout: float = 5.0) -> None:
    """Terminate processes with their whole trees (descendants, and on POSIX the other members
    of the process groups and sessions they lead), then kill what is left after *timeout*
    seconds.

    *groups* names process groups (POSIX) whose members are stopped too, though their leader
    is not: one that has exited, not yet reaped by its parent (so its id cannot have been
    reused) and left alone here.  All at once, so stopping many takes as long as stopping the
    slowest.  POSIX: SIGTERM, then SIGKILL.  Windows: psutil's terminate is already
    TerminateProcess.  Children of the caller are reaped (their Popen's ``poll()`` then says 0).
    """
    skip = set(groups)
    leaders: set[int] = set(skip)
    procs = _tree(pids, leaders, skip)
    if not procs:
        return
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    survivors = {proc.pid: proc for proc in _wait_gone(procs, timeout)}
    # What the trees gained meanwhile (a child forked while its parent ignored SIGTERM) goes too.
    survivors.update({proc.pid: proc for proc in _tree(pids, leaders, skip) if _running(proc)})
    for proc in survivors.values():
        with contextlib.suppress(psutil.Error):
            proc.kill()
    _wait_gone(list(survivors.values()), KILL_WAIT_SECONDS)
