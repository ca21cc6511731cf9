"""The live stream: GET /api/v1/stream over real HTTP (uvicorn on a free port, a real SQLite
store), read by httpx as a browser's EventSource would.

One fan-out feeds every client: 50 clients cost the store what one does (the store here counts
its own reads).  A client that does not keep up is dropped, and an open stream does not hold the
master's shutdown.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter

import httpx
import pytest
from _live_api import TOKEN, live_api

from drqueue.master.fanout import KEEPALIVE, QUEUE_MESSAGES, RETRY, Fanout, sse
from drqueue.store.sqlite import SQLiteStore

AUTH = {"Authorization": f"Bearer {TOKEN}"}
JOB = {"renderer": "shell", "start": 1, "end": 3, "params": {"cmd": "true"}, "env": {"K": "v"}}


class CountingStore(SQLiteStore):
    """A real SQLite store that counts the calls of the reads the fan-out makes."""

    COUNTED = ("events", "page_jobs", "job_status_counts", "list_computers", "frames_finished")

    def __init__(self, path):
        super().__init__(path)
        self.calls: Counter[str] = Counter()
        self._count_lock = threading.Lock()

    def __getattribute__(self, name):
        attribute = super().__getattribute__(name)
        if name in CountingStore.COUNTED:
            calls, lock = super().__getattribute__("calls"), super().__getattribute__("_count_lock")

            def counted(*args, **kwargs):
                with lock:
                    calls[name] += 1
                return attribute(*args, **kwargs)

            return counted
        return attribute


async def read_events(response: httpx.Response):
    """(event, data) pairs of a server-sent event stream; comments as (":", text)."""
    event, data = None, []
    async for line in response.aiter_lines():
        if line.startswith(":"):
            yield ":", line[1:].strip()
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif line.startswith("retry:"):
            yield "retry", line[6:].strip()
        elif line == "" and event is not None:
            yield event, json.loads("\n".join(data))
            event, data = None, []


async def until(events, wanted, timeout: float = 20.0):
    """The data of the first event for which *wanted(event, data)* holds."""

    async def find():
        async for event, data in events:
            if wanted(event, data):
                return data

    return await asyncio.wait_for(find(), timeout)


def test_a_client_gets_the_farm_at_connect_then_the_jobs_that_change_and_new_events(tmp_path):
    async def main(url: str) -> None:
        async with (
            httpx.AsyncClient(base_url=url, headers=AUTH, timeout=30) as http,
            http.stream("GET", "/api/v1/stream") as stream,
        ):
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            events = read_events(stream)
            assert await anext(events) == ("retry", "2000")
            farm = await until(events, lambda e, d: e == "farm")
            assert farm["computers"] == {"busy": 0, "idle": 0, "offline": 0, "disabled": 0}
            assert farm["jobs"]["queued"] == 0 and set(farm["jobs"]) >= {
                "queued",
                "running",
                "waiting",
                "stopped",
                "finished",
                "error",
            }
            assert farm["engines"] == 0 and farm["frames_per_hour"] == [0] * 24

            job_id = (await http.post("/api/v1/jobs", json=JOB)).json()["id"]
            changed = await until(events, lambda e, d: e == "jobs" and d["jobs"])
            (job,) = changed["jobs"]
            assert job["id"] == job_id and job["status"] == "queued"
            assert job["counts"]["total"] == 3 and "env" not in job  # as GET /jobs lists it
            logged = await until(events, lambda e, d: e == "log")
            assert (logged["kind"], logged["job_id"]) == ("job.submitted", job_id)

            await http.post(f"/api/v1/jobs/{job_id}/stop")
            stopped = await until(events, lambda e, d: e == "jobs" and d["jobs"])
            assert stopped["jobs"][0]["status"] == "stopped"
            farm = await until(events, lambda e, d: e == "farm" and d["jobs"]["stopped"] == 1)

            await http.delete(f"/api/v1/jobs/{job_id}")
            deleted = await until(events, lambda e, d: e == "jobs" and d["deleted"])
            assert deleted == {"jobs": [], "deleted": [job_id]}

    with live_api(tmp_path) as live:
        asyncio.run(main(live.url))


def test_a_web_session_reads_the_stream_with_its_cookie(tmp_path):
    async def main(url: str) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            assert (await http.get("/api/v1/stream")).status_code == 401
            await http.post("/api/v1/session", json={"token": TOKEN})
            async with http.stream("GET", "/api/v1/stream") as stream:
                assert stream.status_code == 200
                await until(read_events(stream), lambda e, d: e == "farm")

    with live_api(tmp_path) as live:
        asyncio.run(main(live.url))


def test_fifty_clients_cost_the_store_what_one_does(tmp_path):
    store = CountingStore(tmp_path / "db.sqlite")
    clients = 50

    async def main(url: str, fanout: Fanout) -> None:
        limits = httpx.Limits(max_connections=clients + 5)
        async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=60, limits=limits) as http:

            async def one_client(ready: asyncio.Event, go: asyncio.Event, job: list[int]) -> dict:
                async with http.stream("GET", "/api/v1/stream") as stream:
                    events = read_events(stream)
                    await until(events, lambda e, d: e == "farm", 60)
                    ready.set()
                    await go.wait()
                    return await until(
                        events, lambda e, d: e == "jobs" and [j["id"] for j in d["jobs"]] == job, 60
                    )

            readies = [asyncio.Event() for _ in range(clients)]
            go, job = asyncio.Event(), []
            tasks = [asyncio.create_task(one_client(r, go, job)) for r in readies]
            await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 60)
            assert len(fanout.clients) == clients
            farm = (await http.get("/api/v1/farm")).json()  # what bench/web.py reads
            assert farm["stream_clients"] == clients and farm["stream_reads"] <= fanout.reads
            reads_before, calls_before = fanout.reads, dict(store.calls)
            job.append((await http.post("/api/v1/jobs", json=JOB)).json()["id"])
            go.set()
            seen = await asyncio.wait_for(asyncio.gather(*tasks), 60)
            assert all(message["jobs"][0]["id"] == job[0] for message in seen)
            reads = fanout.reads - reads_before
            calls = Counter(store.calls) - Counter(calls_before)
            # one read of the store per tick, whatever the number of clients
            assert 1 <= reads <= 60
            assert calls["events"] <= reads
            assert calls["job_status_counts"] <= reads
            assert calls["page_jobs"] <= reads  # the changed job, read once for all 50

    with live_api(tmp_path, store=store) as live:
        asyncio.run(main(live.url, live.app.state.fanout))


def test_a_client_that_falls_behind_is_dropped_and_its_stream_ends(tmp_path):
    from _api import in_process_api

    async def main(fanout: Fanout) -> None:
        slow, reader = fanout.connect(), fanout.connect()
        stream = fanout.stream(slow)
        assert await anext(stream) == RETRY
        message = sse("log", {"id": 1})
        for _ in range(QUEUE_MESSAGES):
            fanout.broadcast([message])
            reader.queue.get_nowait()  # this one keeps up
        assert slow in fanout.clients and slow.queue.full()
        fanout.broadcast([message])
        assert slow.dropped and slow not in fanout.clients and reader in fanout.clients
        assert slow.queue.qsize() == 1  # its backlog freed, only the end left
        with pytest.raises(StopAsyncIteration):
            await anext(stream)
        fanout.close()

    with in_process_api(tmp_path) as (http, _):
        asyncio.run(main(http.app.state.fanout))


def test_a_quiet_stream_sends_keep_alive_comments(tmp_path):
    async def main(url: str) -> None:
        async with (
            httpx.AsyncClient(base_url=url, headers=AUTH, timeout=30) as http,
            http.stream("GET", "/api/v1/stream") as stream,
        ):
            comment = await until(read_events(stream), lambda e, d: e == ":", 10)
            assert comment == "keep-alive" and KEEPALIVE == b": keep-alive\n\n"

    with live_api(tmp_path) as live:
        # a farm message at connect, then none for 60 s: keep-alives after 0.3 s of silence
        live.app.state.fanout = Fanout(
            live.app.state.master, farm_seconds=60, keepalive_seconds=0.3
        )
        asyncio.run(main(live.url))


def test_an_open_stream_does_not_hold_the_masters_shutdown(tmp_path):
    received: list[str] = []
    opened = threading.Event()

    def listen(url: str) -> None:
        with (
            httpx.Client(base_url=url, headers=AUTH, timeout=60) as http,
            http.stream("GET", "/api/v1/stream") as stream,
        ):
            opened.set()
            received.extend(stream.iter_lines())  # until the server ends it

    with live_api(tmp_path) as live:
        listener = threading.Thread(target=listen, args=(live.url,), daemon=True)
        listener.start()
        assert opened.wait(20)
        started = time.monotonic()
    assert time.monotonic() - started < 8  # live_api's exit stopped the server
    listener.join(10)
    assert not listener.is_alive() and "retry: 2000" in received


def test_a_stream_ends_when_its_token_is_revoked_or_its_session_logs_out(tmp_path, monkeypatch):
    """Access ends at once for an open stream too: a revoked bearer token's stream and a logged
    out session's stream are closed by the master within AUTH_CHECK_SECONDS."""
    from drqueue.config import Config
    from drqueue.master import fanout
    from drqueue.master.tokens import create_token, revoke_tokens

    monkeypatch.setattr(fanout, "AUTH_CHECK_SECONDS", 0.3)
    config = Config(root=tmp_path)
    artist = create_token(config, "artist", "mallory")

    async def ended(http: httpx.AsyncClient, end) -> None:
        async with http.stream("GET", "/api/v1/stream") as stream:
            assert stream.status_code == 200
            events = read_events(stream)
            assert await until(events, lambda e, d: e == "farm", 10) is not None
            await end()

            async def rest() -> None:
                async for _ in events:
                    pass

            await asyncio.wait_for(rest(), 20)  # the server ends it: no time-out

    async def main(url: str) -> None:
        headers = {"Authorization": f"Bearer {artist}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as http:
            await ended(http, lambda: asyncio.to_thread(revoke_tokens, config, "mallory"))
            assert (await http.get("/api/v1/jobs")).status_code == 401
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            session = (await http.post("/api/v1/session", json={"token": TOKEN})).json()

            async def log_out() -> None:
                answer = await http.delete(
                    "/api/v1/session", headers={"X-CSRF-Token": session["csrf"]}
                )
                assert answer.status_code == 204

            await ended(http, log_out)

    with live_api(tmp_path) as live:
        asyncio.run(main(live.url))


def test_one_user_may_hold_only_so_many_streams_and_the_master_so_many_in_all(
    tmp_path, monkeypatch
):
    """An artist opening streams without end gets 429 once they hold STREAMS_PER_USER, while
    another user still gets one; beyond the master's share of connections, 503."""
    from drqueue.config import Config
    from drqueue.master import fanout
    from drqueue.master.tokens import create_token

    monkeypatch.setattr(fanout, "STREAMS_PER_USER", 2)
    artist = create_token(Config(root=tmp_path), "artist", "mallory")

    async def main(url: str, hub: Fanout) -> None:
        async with (
            httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {artist}"}) as own,
            httpx.AsyncClient(base_url=url, headers=AUTH) as admin,
            own.stream("GET", "/api/v1/stream") as first,
            own.stream("GET", "/api/v1/stream") as second,
        ):
            assert first.status_code == second.status_code == 200
            refused = await own.get("/api/v1/stream")
            assert refused.status_code == 429, refused.text
            assert "mallory has 2 live streams open" in refused.json()["detail"]
            assert int(refused.headers["Retry-After"]) > 0
            hub.max_clients = 3
            async with admin.stream("GET", "/api/v1/stream") as third:
                assert third.status_code == 200
                full = await admin.get("/api/v1/stream")
                assert full.status_code == 503 and "live streams" in full.json()["detail"]
            assert (await admin.get("/api/v1/health")).status_code == 200

    with live_api(tmp_path) as live:
        asyncio.run(main(live.url, live.app.state.fanout))
