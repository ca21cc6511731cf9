"""The only code of the GUI that talks to the master: requests on worker threads, answers as
signals on the UI thread, and the live stream on a thread of its own.

A view asks :class:`Controller` for something (``controller.job_action([3, 4], "stop")``) and
returns at once; the request runs on the controller's thread pool through one
:class:`drqueue.Client`, and its answer comes back through a queued signal, so the UI thread
never waits on the network.  Errors come back the same way: a ``DrQueueError`` is one line for
the status bar (``failed``), or goes to the view that asked for it (``on_error``); a 401 also
says so on ``connection_changed``.  Nothing a request raises reaches Qt's event loop.

:class:`LiveStream` reads GET /api/v1/stream (docs/api.md, "The live stream") with a client of
its own and hands each message to the controller, which re-emits ``jobs`` and ``farm`` messages
and reads everything again each time the stream (re)opens.  A master that goes away is retried
every RECONNECT_SECONDS, for ever: the window stays up and says so (``connection_changed``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThread, QThreadPool, QTimer, Signal, Slot

from drqueue.api_types import Job
from drqueue.client import RECONNECT_SECONDS, Client
from drqueue.config import Config
from drqueue.errors import DrQueueError, Unauthorized

log = logging.getLogger(__name__)

#: Connection states (``Controller.connection_changed``).
CONNECTING, CONNECTED, UNREACHABLE, UNAUTHORIZED = (
    "connecting",
    "connected",
    "unreachable",
    "unauthorized",
)
#: Requests run at once (the master answers each quickly; more would only queue there).
WORKER_THREADS = 4
#: Seconds a request may take before it is given up (the live stream has its own limit).
REQUEST_TIMEOUT = 20.0
#: Seconds between two attempts to open the stream with a token the master refused.
UNAUTHORIZED_RETRY_SECONDS = 10.0
#: Seconds an old client stays open after the settings changed, for the requests it still runs.
RETIRED_CLIENT_SECONDS = 30

#: Milliseconds stop() waits for the stream's thread (it sees a stop at the next message, which
#: comes every 2 s, or within 0.1 s while it waits to reconnect).
STOP_WAIT_MS = 5000

Answer = Callable[[Any], None]


class _Request(QRunnable):
    """One request on a worker thread; its answer or error is handed back by signal."""

    def __init__(self, controller: Controller, client: Client, what: str, call, then, on_error):
        super().__init__()
        self.controller, self.client, self.what = controller, client, what
        self.call, self.then, self.on_error = call, then, on_error

    def run(self) -> None:
        try:
            value = self.call(self.client)
        except DrQueueError as exc:
            self.controller._failure.emit(self.what, exc, self.on_error)
        except Exception as exc:  # a bug must be a line in the status bar, not a dead window
            if self.controller.stopped:
                return  # the window closed under it: its client was closed too
            log.exception("%s failed", self.what)
            self.controller._failure.emit(self.what, DrQueueError(repr(exc)), self.on_error)
        else:
            self.controller._answer.emit(self.what, self.then, value)


#: Live streams told to stop whose thread had not ended yet (see LiveStream.stop).
_ENDING: set[LiveStream] = set()


def _typed(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """A ``jobs`` message's jobs as Job objects (read on the stream's thread, not the UI's)."""
    if kind != "jobs":
        return data
    return {
        "jobs": Job.list_from_json(data.get("jobs") or []),
        "deleted": [int(i) for i in data.get("deleted") or []],
    }


class LiveStream(QThread):
    """Reads the master's live stream for as long as it runs, reopening it when it breaks."""

    message = Signal(str, object)  # event, data
    state = Signal(str, str)  # one of the connection states, and a line on why

    def __init__(self, url: str, token: str, config: Config | None):
        super().__init__()
        self._client = Client(url, token, config=config, timeout=REQUEST_TIMEOUT)

    def run(self) -> None:
        while not self.isInterruptionRequested():
            pause = RECONNECT_SECONDS
            try:
                with self._client.live_stream() as messages:
                    for kind, data in messages:
                        if self.isInterruptionRequested():
                            return
                        if kind == "open":
                            self.state.emit(CONNECTED, "")
                        self.message.emit(kind, _typed(kind, data))
                self.state.emit(UNREACHABLE, f"the master at {self._client.url} closed the stream")
            except Unauthorized as exc:
                self.state.emit(UNAUTHORIZED, str(exc))
                pause = UNAUTHORIZED_RETRY_SECONDS
            except DrQueueError as exc:
                self.state.emit(UNREACHABLE, str(exc))
            except Exception as exc:  # the client closed under the read by stop(), or a bug
                if self.isInterruptionRequested():
                    return
                self.state.emit(UNREACHABLE, f"the live stream broke ({type(exc).__name__})")
            self._pause(pause)

    def _pause(self, seconds: float) -> None:
        """Wait *seconds*, or less if stop() is called meanwhile."""
        for _ in range(int(seconds * 10)):
            if self.isInterruptionRequested():
                return
            self.msleep(100)

    def stop(self) -> None:
        """Ask the thread to end, and return once it has, or after STOP_WAIT_MS: a read still
        blocked then keeps this object alive until it ends (Qt aborts the process when a
        QThread that still runs is deleted)."""
        self.requestInterruption()
        self._client.close()  # ends a read that waits for the next message
        if not self.wait(STOP_WAIT_MS):
            _ENDING.add(self)
            self.finished.connect(self._ended)  # queued: this object lives on the UI thread

    @Slot()
    def _ended(self) -> None:
        self.wait()  # `finished` comes just before the thread's very end
        _ENDING.discard(self)


class Controller(QObject):
    """The master, as the views see it: methods that return at once, signals that answer."""

    jobs_loaded = Signal(list)  # every job (Client.jobs)
    jobs_changed = Signal(list, list)  # jobs that changed, ids deleted (the stream's `jobs`)
    computers_loaded = Signal(list)
    pools_loaded = Signal(list)
    renderers_loaded = Signal(list)
    farm_changed = Signal(dict)  # the stream's `farm` message
    connection_changed = Signal(str, str)  # a connection state, and a line on why
    failed = Signal(str)  # a request that failed, one line for the status bar
    done = Signal(str)  # an action that worked, one line for the status bar

    _answer = Signal(str, object, object)
    _failure = Signal(str, object, object)

    def __init__(self, url: str, token: str, *, config: Config | None = None):
        super().__init__()
        self.config = config
        self.url, self.token = url, token
        self.state = CONNECTING
        #: Set by stop(): answers still on their way are dropped (the window is closing).
        self.stopped = False
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(WORKER_THREADS)
        self._client = Client(url, token, config=config, timeout=REQUEST_TIMEOUT)
        self._stream: LiveStream | None = None
        self._loading: set[str] = set()
        self._answer.connect(self._deliver)
        self._failure.connect(self._report)

    # -- the connection ------------------------------------------------------------------------

    def start(self) -> None:
        """Open the live stream; each time it opens, everything is read again."""
        self._stream = LiveStream(self.url, self.token, self.config)
        self._stream.message.connect(self._on_message)
        self._stream.state.connect(self._on_state)
        self._stream.start()

    def stop(self) -> None:
        self.stopped = True
        if self._stream is not None:
            self._stream.stop()
            self._stream = None
        self._pool.waitForDone(int(REQUEST_TIMEOUT * 1000))
        self._client.close()

    def reconnect(self, url: str, token: str) -> None:
        """Talk to *url* with *token* from now on (the settings changed)."""
        if self._stream is not None:
            self._stream.stop()
            self._stream = None
        retired = self._client
        QTimer.singleShot(RETIRED_CLIENT_SECONDS * 1000, retired.close)
        self.url, self.token = url, token
        self._client = Client(url, token, config=self.config, timeout=REQUEST_TIMEOUT)
        self._on_state(CONNECTING, "")
        self.start()

    @Slot(str, str)
    def _on_state(self, state: str, why: str) -> None:
        if self.stopped or (state == self.state and state == CONNECTED):
            return
        self.state = state
        self.connection_changed.emit(state, why)

    @Slot(str, object)
    def _on_message(self, kind: str, data: dict[str, Any]) -> None:
        if self.stopped:
            return
        if kind == "open":
            self.reload()
        elif kind == "jobs":
            self.jobs_changed.emit(data["jobs"], data["deleted"])
        elif kind == "farm":
            self.farm_changed.emit(data)
            self.load_computers()

    # -- requests ------------------------------------------------------------------------------

    def request(
        self,
        what: str,
        call: Callable[[Client], Any],
        then: Answer | None = None,
        on_error: Callable[[DrQueueError], None] | None = None,
    ) -> None:
        """Run ``call(client)`` on a worker thread; ``then(answer)`` on the UI thread after.
        An error goes to *on_error* if given, else to ``failed`` as "what: message"."""
        self._pool.start(_Request(self, self._client, what, call, then, on_error))

    @Slot(str, object, object)
    def _deliver(self, what: str, then: Answer | None, value: Any) -> None:
        if self.stopped:
            return
        if self.state == UNAUTHORIZED:
            self._on_state(CONNECTING, "")  # a request with the token worked
        if then is not None:
            self._hand_over(what, then, value)

    @Slot(str, object, object)
    def _report(self, what: str, exc: DrQueueError, on_error) -> None:
        if self.stopped:
            return
        if isinstance(exc, Unauthorized):
            self._on_state(UNAUTHORIZED, str(exc))
        if on_error is not None:
            self._hand_over(what, on_error, exc)
        else:
            self.failed.emit(f"{what}: {exc}")

    def _hand_over(self, what: str, receiver: Callable[[Any], None], value: Any) -> None:
        """``receiver(value)``; a view that fails on it is a line in the status bar (and a
        traceback in the log), never an exception in Qt's event loop."""
        try:
            receiver(value)
        except Exception as exc:
            if isinstance(exc, RuntimeError) and "already deleted" in str(exc):
                return  # the widget that asked was closed meanwhile: nobody to show it to
            log.exception("showing the answer to %s failed", what)
            self.failed.emit(f"{what}: the window could not show the answer ({exc!r})")

    def _once(self, what: str, call: Callable[[Client], Any], signal) -> None:
        """A read the stream asks for often: never two of the same in flight."""
        if what in self._loading:
            return
        self._loading.add(what)

        def answered(value: Any) -> None:
            self._loading.discard(what)
            signal.emit(value)

        def refused(exc: DrQueueError) -> None:
            self._loading.discard(what)
            if not isinstance(exc, Unauthorized):
                self.failed.emit(f"{what}: {exc}")

        self.request(what, call, answered, refused)

    def reload(self) -> None:
        """Read the jobs, computers, pools and renderers again."""
        self._once("jobs", lambda c: c.jobs(), self.jobs_loaded)
        self.load_computers()
        self.load_pools()
        self._once("renderers", lambda c: c.renderers(), self.renderers_loaded)

    def load_computers(self) -> None:
        self._once("computers", lambda c: c.computers(), self.computers_loaded)

    def load_pools(self) -> None:
        self._once("pools", lambda c: c.pools(), self.pools_loaded)

    # -- jobs ----------------------------------------------------------------------------------

    def _each(
        self,
        label: str,
        items: Iterable[Any],
        call: Callable[[Client, Any], Any],
        after: Callable[[list[Any]], None] | None = None,
    ) -> None:
        """``call(client, item)`` for each item, one request each, then one line: how many
        worked and why the others were refused."""
        items = list(items)

        def run(client: Client) -> tuple[list[Any], list[str]]:
            answers, refusals = [], []
            for item in items:
                try:
                    answers.append(call(client, item))
                except Unauthorized:
                    raise
                except DrQueueError as exc:
                    refusals.append(f"{item}: {exc}")
            return answers, refusals

        def report(result: tuple[list[Any], list[str]]) -> None:
            answers, refusals = result
            if answers:
                self.done.emit(f"{label}: {len(answers)} of {len(items)} done")
            if refusals:
                self.failed.emit(f"{label} refused for " + "; ".join(refusals))
            if after is not None:
                after(answers)

        self.request(label, run, report)

    def _jobs_answered(self, answers: list[Any]) -> None:
        jobs = [a for a in answers if isinstance(a, Job)]
        if jobs:
            self.jobs_changed.emit(jobs, [])

    def job_action(self, job_ids: Iterable[int], action: str) -> None:
        """stop, continue, kill, rerun or requeue-failed each job."""
        self._each(
            action.capitalize(),
            job_ids,
            lambda c, j: c.job_action(j, action),
            self._jobs_answered,
        )

    def delete_jobs(self, job_ids: Iterable[int], *, force: bool = False) -> None:
        ids = list(job_ids)

        def gone(answers: list[Any]) -> None:
            deleted = [int(a.deleted) for a in answers]
            if deleted:
                self.jobs_changed.emit([], deleted)

        self._each("Delete", ids, lambda c, j: c.delete_job(j, force=force), gone)

    def set_priority(self, job_ids: Iterable[int], priority: int) -> None:
        self._each(
            f"Priority {priority}",
            job_ids,
            lambda c, j: c.set_priority(j, priority),
            self._jobs_answered,
        )

    def unblock(self, job_id: int, host: str) -> None:
        self._each(
            f"Unblock {host}", [job_id], lambda c, j: c.unblock(j, host), self._jobs_answered
        )

    def task_action(self, job_id: int, indexes: Iterable[int], action: str, then=None) -> None:
        """requeue or kill tasks of one job."""
        self._each(f"Task {action}", indexes, lambda c, i: c.task_action(job_id, i, action), then)

    def submit(self, body: dict[str, Any], then: Answer, on_error) -> None:
        self.request("Submit", lambda c: c.submit(None, **body), then, on_error)

    def preview(self, body: dict[str, Any], then: Answer, on_error) -> None:
        self.request("Preview", lambda c: c.preview(body), then, on_error)

    # -- computers and pools -------------------------------------------------------------------

    def _computers_answered(self, _answers: list[Any]) -> None:
        self.load_computers()

    def computer_action(self, names: Iterable[str], action: str) -> None:
        """enable or disable each computer."""
        self._each(
            action.capitalize(),
            names,
            lambda c, n: c.computer_action(n, action),
            self._computers_answered,
        )

    def computer_limit(self, names: Iterable[str], max_tasks: int | None) -> None:
        label = f"Task limit {max_tasks if max_tasks is not None else 'none'}"
        self._each(
            label, names, lambda c, n: c.computer_limit(n, max_tasks), self._computers_answered
        )

    def _pools_answered(self, _answers: list[Any]) -> None:
        self.load_computers()
        self.load_pools()

    def pool_member(self, pool: str, names: Iterable[str], member: bool) -> None:
        label = f"{'Add to' if member else 'Remove from'} pool {pool}"
        self._each(label, names, lambda c, n: c.pool_member(pool, n, member), self._pools_answered)

    def create_pool(self, name: str, description: str = "") -> None:
        self._each(
            "Create pool",
            [name],
            lambda c, n: c.create_pool(n, description),
            self._pools_answered,
        )

    def delete_pool(self, name: str) -> None:
        self._each("Delete pool", [name], lambda c, n: c.delete_pool(n), self._pools_answered)
