"""The live stream's fan-out: one task in the master reads the store for every browser.

``GET /api/v1/stream`` (server-sent events) gives each client a queue; one asyncio task, the
:class:`Fanout`, reads the store at most every :data:`TICK_SECONDS` for all of them and puts
the same encoded message in every queue, so 50 open dashboards cost the master one store read
per tick, not fifty.  Each tick (only while a client is connected; the reads run in a worker
thread, never on the event loop):

- ``event: jobs`` — the jobs noted changed since the last tick (:class:`JobChanges`, noted by
  the dispatcher and the API after their writes), read in one query each
  :data:`JOBS_PER_MESSAGE`, as ``GET /api/v1/jobs`` lists them, and the ids deleted:
  ``{"jobs": [...], "deleted": [...]}``;
- ``event: log`` — each store event newer than the last one sent, in id order (at most
  :data:`EVENTS_PER_TICK` a tick; in a larger burst the oldest are skipped);
- ``event: farm`` — at connect and every :data:`FARM_SECONDS`: computers busy, idle, offline
  and disabled, jobs by status (one grouped count in the store), engines online, and frames
  finished per hour over the last 24 hours (:class:`FrameChart`).

A client whose queue is full (:data:`QUEUE_MESSAGES`: it does not read) is dropped: its stream
ends at its next read and its queue is freed.  The stream itself sends ``retry: 2000`` and a
``: keep-alive`` comment after :data:`KEEPALIVE_SECONDS` of silence.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from drqueue.errors import DrQueueError, MasterBusy, TooManyRequests
from drqueue.master.api.shapes import event_dict, json_bytes
from drqueue.store.base import Store
from drqueue.store.jobquery import JobQuery

if TYPE_CHECKING:
    from drqueue.master.api.deps import Master

log = logging.getLogger(__name__)

#: Seconds between two reads of the store (while a client is connected).
TICK_SECONDS = 0.5
#: Seconds between two ``farm`` messages.
FARM_SECONDS = 2.0
#: Seconds of silence after which a stream sends a ``: keep-alive`` comment.
KEEPALIVE_SECONDS = 15.0
#: Messages a client's queue holds; a client with a full queue is dropped.
QUEUE_MESSAGES = 1000
#: Jobs one ``jobs`` message holds (and one store query reads).
JOBS_PER_MESSAGE = 500
#: Store events one tick sends at most.
EVENTS_PER_TICK = 500
#: How many seconds behind now the frame chart reads: a result is stamped inside its store
#: transaction, which commits within this.
FRAMES_LAG_SECONDS = 2.0
#: Live streams one artist (a token's name) may hold open at once: their tabs and windows.
STREAMS_PER_USER = 16
#: The share of the master's connections (api_max_connections) live streams may take, so that
#: streams held open never leave the other routes, the slaves' heartbeats included, without one.
STREAMS_SHARE = 0.5
#: Seconds between the checks that an open stream's token or session is still valid: a
#: revoked token, a rotated one or a logout ends its streams within this.
AUTH_CHECK_SECONDS = 5.0
#: What a stream sends first: the browser's EventSource reconnects after 2 s.
RETRY = b"retry: 2000\n\n"
KEEPALIVE = b": keep-alive\n\n"


def sse(event: str, data: Any) -> bytes:
    """One server-sent event, its data JSON on one line."""
    return b"event: " + event.encode() + b"\ndata: " + json_bytes(data) + b"\n\n"


@dataclass(eq=False)
class StreamClient:
    """One open stream: the queue the fan-out fills and the stream empties."""

    queue: asyncio.Queue[bytes | None] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_MESSAGES)
    )
    dropped: bool = False
    #: Whose stream this is (the name of the token that opened it).
    user: str = ""


class FrameChart:
    """Frames finished per hour, the last 24 hours: read from the store once, then only the
    results recorded since the last read (``Store.frames_finished`` over the index of finished
    tasks by end time), each hour summed here."""

    def __init__(self) -> None:
        self.hours: dict[int, int] = {}
        self.read_until: float | None = None

    def update(self, store: Store, now: float) -> list[int]:
        """The 24 hourly counts, oldest first; the last is the hour *now* is in."""
        current = int(now // 3600)
        first = current - 23
        until = now - FRAMES_LAG_SECONDS
        since = max(self.read_until or 0.0, first * 3600.0)
        if until > since:
            for hour, frames in store.frames_finished(since, until).items():
                self.hours[hour] = self.hours.get(hour, 0) + frames
            self.read_until = until
        self.hours = {hour: n for hour, n in self.hours.items() if hour >= first}
        return [self.hours.get(hour, 0) for hour in range(first, current + 1)]


class Fanout:
    """The one reader of the store for every live stream (see the module docstring)."""

    def __init__(
        self,
        master: Master,
        *,
        tick_seconds: float = TICK_SECONDS,
        farm_seconds: float = FARM_SECONDS,
        keepalive_seconds: float = KEEPALIVE_SECONDS,
    ):
        self.master = master
        self.tick_seconds = tick_seconds
        self.farm_seconds = farm_seconds
        self.keepalive_seconds = keepalive_seconds
        #: The most streams open at once (STREAMS_SHARE of the master's connections).
        self.max_clients = max(1, int(master.config.api_max_connections * STREAMS_SHARE))
        self.clients: set[StreamClient] = set()
        #: Ticks that read the store (the cost of the stream, whatever the number of clients).
        self.reads = 0
        self.chart = FrameChart()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event_cursor: int | None = None
        self._farm_at = 0.0  # monotonic time of the last farm message
        self._farm: bytes | None = None
        self._closed = False

    # -- clients (on the event loop) -----------------------------------------------------------

    def connect(self, user: str = "", *, admin: bool = True) -> StreamClient:
        """A new client of *user*, with the last farm message queued (or one due at the next
        tick); TooManyRequests beyond STREAMS_PER_USER of one user who is not an *admin*,
        MasterBusy beyond the streams' share of the master's connections."""
        if not admin and sum(1 for c in self.clients if c.user == user) >= STREAMS_PER_USER:
            raise TooManyRequests(
                f"{user} has {STREAMS_PER_USER} live streams open on this master already: "
                "close a page of the web UI"
            )
        if len(self.clients) >= self.max_clients:
            raise MasterBusy(
                f"the master serves {self.max_clients} live streams already: ask again later"
            )
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._loop is not loop:
            self._loop = loop
            self._task = loop.create_task(self._run(), name="drqueue-stream-fanout")
        client = StreamClient(user=user)
        self.clients.add(client)
        if self._farm is not None:
            client.queue.put_nowait(self._farm)
        else:
            self._farm_at = 0.0
        return client

    def disconnect(self, client: StreamClient) -> None:
        self.clients.discard(client)

    def drop(self, client: StreamClient) -> None:
        """End a client's stream: it is not read fast enough (or the master stops)."""
        client.dropped = True
        self.clients.discard(client)
        while not client.queue.empty():
            client.queue.get_nowait()
        client.queue.put_nowait(None)

    def close(self) -> None:
        """End every stream and the fan-out (the master is stopping); on the event loop."""
        self._closed = True
        for client in list(self.clients):
            self.drop(client)
        if self._task is not None:
            self._task.cancel()

    async def stream(
        self, client: StreamClient, still_valid: Callable[[], bool] = lambda: True
    ) -> AsyncIterator[bytes]:
        """What one client receives, until it goes away, is dropped, or *still_valid* (asked
        every AUTH_CHECK_SECONDS) says its token or session is no longer good."""
        try:
            yield RETRY
            checked = sent = time.monotonic()
            wait = min(self.keepalive_seconds, AUTH_CHECK_SECONDS)
            while True:
                try:
                    message = await asyncio.wait_for(client.queue.get(), wait)
                except TimeoutError:
                    message = b""
                if message is None:
                    return
                now = time.monotonic()
                if now - checked >= AUTH_CHECK_SECONDS:
                    if not still_valid():
                        return
                    checked = now
                if not message:
                    if now - sent < self.keepalive_seconds:
                        continue
                    message = KEEPALIVE
                sent = now
                yield message
        finally:
            self.disconnect(client)

    def broadcast(self, messages: list[bytes]) -> None:
        for client in list(self.clients):
            for message in messages:
                try:
                    client.queue.put_nowait(message)
                except asyncio.QueueFull:
                    log.info(
                        "a live stream client fell %d messages behind: dropped", QUEUE_MESSAGES
                    )
                    self.drop(client)
                    break

    # -- the fan-out task ------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._closed:
            await asyncio.sleep(self.tick_seconds)
            if not self.clients:
                self.master.changes.drain()  # nobody to tell; a new client reads afresh
                self._event_cursor = self._farm = None
                continue
            farm_due = time.monotonic() - self._farm_at >= self.farm_seconds
            try:
                messages, farm = await asyncio.to_thread(self.read, farm_due)
            except DrQueueError as exc:  # the store is busy or gone: try again next tick
                log.warning("live stream: cannot read the store: %s", exc)
                continue
            except Exception:
                log.exception("live stream: a tick failed")
                continue
            if farm is not None:
                self._farm, self._farm_at = farm, time.monotonic()
                messages.append(farm)
            self.broadcast(messages)

    def read(self, farm_due: bool) -> tuple[list[bytes], bytes | None]:
        """One tick's store reads (in a worker thread): its messages, and a farm message if due."""
        self.reads += 1
        m = self.master
        messages: list[bytes] = []
        changed, deleted = m.changes.drain()
        ids = sorted(changed)
        for first in range(0, max(len(ids), 1 if deleted else 0), JOBS_PER_MESSAGE):
            chunk = frozenset(ids[first : first + JOBS_PER_MESSAGE])
            jobs = m.store.page_jobs(JobQuery(ids=chunk)).jobs if chunk else []
            gone = sorted(deleted) if first == 0 else []
            messages.append(sse("jobs", {"jobs": [m.job_listed(j) for j in jobs], "deleted": gone}))
        if self._event_cursor is None:
            newest = m.store.events(limit=1)
            self._event_cursor = newest[-1].id if newest else 0
        else:
            events = m.store.events(since_id=self._event_cursor, limit=EVENTS_PER_TICK)
            for event in events:
                messages.append(sse("log", event_dict(event)))
            if events:
                self._event_cursor = events[-1].id
        return messages, sse("farm", self.farm()) if farm_due else None

    def farm(self) -> dict[str, Any]:
        """The farm at a glance (the ``farm`` message)."""
        m = self.master
        online = m.online_names()
        running = m.dispatcher.running_by_computer() if m.dispatcher else {}
        computers = dict.fromkeys(("busy", "idle", "offline", "disabled"), 0)
        for computer in m.store.list_computers():
            if not computer.enabled:
                computers["disabled"] += 1
            elif computer.name not in online:
                computers["offline"] += 1
            else:
                computers["busy" if running.get(computer.name) else "idle"] += 1
        return {
            "computers": computers,
            "jobs": m.store.job_status_counts(),
            "engines": m.slots(),
            "frames_per_hour": self.chart.update(m.store, time.time()),
        }
