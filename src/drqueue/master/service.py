"""``drqueue master``: the controller, the store, the dispatcher and the API in one process.

Start-up order matters: the store is checked and every task the previous
master left dispatched or running is requeued *before* the dispatcher can send
anything, so a restart never counts a lost task as done.  SIGINT or SIGTERM
stops everything this process started, the controller included.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import uvicorn

from drqueue.config import Config, write_private
from drqueue.errors import DrQueueError, StoreBusy, StoreError
from drqueue.master.api import create_app
from drqueue.master.controller import Controller
from drqueue.master.dispatcher import Dispatcher
from drqueue.master.http_server import api_server, bind_api
from drqueue.master.notify import Notifications, notify_settings
from drqueue.store import open_store, shown_url

log = logging.getLogger("drqueue.master")


#: Seconds between the watchdog's checks of the controller.
WATCHDOG_SECONDS = 0.5


def _watch_controller(
    controller: Controller, server: uvicorn.Server, stopping: threading.Event, died: list[str]
) -> None:
    """Stop the master when its controller dies.

    The dispatcher's ipyparallel Client cannot follow a new controller, so the master does not
    restart one itself: it exits non-zero and its supervisor (systemd ``Restart=on-failure``)
    starts it again; that start requeues every task that was running (docs/reliability.md).
    """
    while not stopping.wait(WATCHDOG_SECONDS):
        why = controller.failure()
        if why and not stopping.is_set():
            log.error(
                "the ipyparallel controller died (%s): the master exits with status 1 so that "
                "its supervisor restarts it",
                why,
            )
            died.append(f"the ipyparallel controller died ({why})")
            server.should_exit = True
            return


#: Seconds a starting master waits for a busy store before it gives up: a master killed in the
#: middle of a MongoDB transaction leaves it open on the server, holding what it wrote, until
#: the server ends it (transactionLifetimeLimitSeconds, 60 s by default).
START_STORE_WAIT_SECONDS = 150.0


def _recover(store: Any) -> None:
    """What a starting master does to its store: check and repair it, and requeue the tasks
    the last master left on engines."""
    for finding in store.check_integrity():
        log.warning("store: %s", finding)
    requeued = store.requeue_all_active("master restarted before the task's result came back")
    if requeued:
        log.warning("requeued %d tasks that were running when the last master stopped", requeued)
        store.add_event("master.restart", f"requeued {requeued} tasks left running")


def _when_store_free(step: Callable[[], None]) -> None:
    """Run *step*, again while the store is busy or away, for up to START_STORE_WAIT_SECONDS:
    each of its changes is whole or not made, so doing it again is safe."""
    deadline = time.monotonic() + START_STORE_WAIT_SECONDS
    while True:
        try:
            step()
            return
        except StoreBusy as exc:
            if time.monotonic() > deadline:
                raise
            log.warning("store busy as the master starts (%s): trying again", exc)
            time.sleep(2)


def master_id(config: Config) -> str:
    """This root's master, as its claim on the store names it (Store.claim_master): the same
    after a restart (the root's master lock says the last one is gone, so it may take its
    claim over at once), another for a master on another root or machine."""
    path = config.etc_dir / "master-id"
    if not path.exists():
        write_private(path, uuid.uuid4().hex)
    return f"{socket.gethostname()}:{path.read_text().strip()}"


def _keep_claim(
    store: Any, holder: str, server: Any, stopping: threading.Event, died: list[str]
) -> None:
    """Renew this master's claim on its store (Store.claim_master) three times a lease; exit
    the master if another took it meanwhile (this one was cut off from the database longer
    than a lease), so two masters never write one farm."""
    while not stopping.wait(store.MASTER_LEASE_SECONDS / 3):
        try:
            store.claim_master(holder)
        except StoreBusy:
            continue  # the store is away: the API and the dispatcher wait for it too
        except StoreError as exc:
            if not stopping.is_set():
                log.error("%s: this master exits", exc)
                died.append(str(exc))
                server.should_exit = True
            return


#: The open master lock files of this process (closing one would release its lock).
_LOCKS: list[Any] = []


def hold_master_lock(config: Config) -> None:
    """Take the root's master lock (drqueue.master.lock), or refuse to start: a second master
    on the same root would requeue the first one's running tasks and kill its controller as
    "left by an earlier master"."""
    from drqueue.master.lock import take_master_lock

    _LOCKS.append(
        take_master_lock(
            config,
            refusal="a master already runs on {root} (pid {pid}): stop it first, or give this "
            "one its own DRQUEUE_ROOT",
        )
    )


def run_master(config: Config) -> None:
    """Run a master until SIGINT or SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    config.port_list()  # a bad controller_ports is refused before anything starts
    config.check_artist_renderers()
    config.check_failure_settings()
    config.check_heartbeat_budget()
    notifying = notify_settings(config)  # a bad SMTP or webhook setting: one line, no start
    config.ensure_dirs()
    hold_master_lock(config)
    api_socket = bind_api(config.api_host, config.api_port)
    store = open_store(config.store_url)  # a store it cannot use: one line, nothing written
    try:
        holder = master_id(config)
        store.claim_master(holder)  # before anything is changed in it
    except BaseException:
        store.close()
        raise
    if config.ensure_config_file():
        log.info("wrote the default settings, all commented out, to %s", config.config_file)
    token = config.ensure_token()
    store.max_lost = config.max_lost
    _when_store_free(lambda: _recover(store))
    controller = Controller(config)
    controller.start()
    dispatcher = Dispatcher(store, config)
    notifications = Notifications(store, config, notifying)
    stopping = threading.Event()
    died: list[str] = []
    try:
        dispatcher.start()
        dispatcher.ready.wait(90)
        if dispatcher.error is not None:
            raise DrQueueError(f"cannot connect to the controller: {dispatcher.error}")
        notifications.start()
        app = create_app(store, dispatcher, config, token)
        (config.tmp_dir / "master.pid").write_text(str(os.getpid()))
        ssl = {}
        if config.tls_cert:
            ssl = {"ssl_certfile": config.tls_cert, "ssl_keyfile": config.tls_key or None}
        server = api_server(
            app, config.api_host, config.api_port, config.api_max_connections, **ssl
        )
        log.info("master API on %s, store %s", config.master_url, shown_url(config.store_url))
        watchdog = threading.Thread(
            target=_watch_controller,
            args=(controller, server, stopping, died),
            name="controller-watchdog",
            daemon=True,
        )
        watchdog.start()
        threading.Thread(
            target=_keep_claim,
            args=(store, holder, server, stopping, died),
            name="store-claim",
            daemon=True,
        ).start()
        server.run(sockets=[api_socket])
        if died:
            raise DrQueueError(f"{died[0]}: the master exits so that its supervisor restarts it")
        if not server.started:
            raise DrQueueError(
                f"cannot serve the API on {config.api_host}:{config.api_port} (port in use?)"
            )
    finally:
        stopping.set()
        notifications.stop()
        dispatcher.stop()
        controller.stop()
        with contextlib.suppress(Exception):
            store.release_master(holder)
        store.close()
        (config.tmp_dir / "master.pid").unlink(missing_ok=True)
