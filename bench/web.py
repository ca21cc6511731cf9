"""The web UI: the jobs page with 10,000 jobs, the job page of a 10,000-frame job, and the
master's CPU with 50 live event-stream clients against none.

    python bench/web.py [--jobs 10000] [--frames 10000] [--repeat 3] [--window 8]
                        [--clients 0,1,10,50] [--browsers 1,3] [--quick]

Three real masters (tests/farm.py), in one run, each figure against a baseline of the same run:

- **Pages**, in real headless Chromium (Debian's ``chromium`` driven by Playwright, as
  tests/e2e/test_web.py does).  A *big* farm (``--jobs`` ten-frame jobs and one job of
  ``--frames`` one-frame tasks) and a *small* one (10 jobs and one of 100 frames), both filled
  through the store's own ``create_job`` before the master starts (bench/query.py's
  :func:`fill_store`).  Each page is opened ``--repeat`` times in a fresh browser context (a cold
  cache, logged in with a session cookie), the farms alternating; times are the page's own
  (``performance.now()``, from navigation start), marked by a MutationObserver the page runs
  from its first script:

  - ``/jobs``: first content, the first job row in the table; and the bytes the page had fetched
    by then (Resource Timing's ``transferSize``: the page, its scripts, its API answers);
  - ``/jobs/ID``: the frame grid laid out and drawn (its canvas gets ``data-cols`` in the same
    task that draws every cell, so the mark is taken once they are drawn), its last cell scrolled
    to and clicked, and that task's facts shown in the task panel.

  The figures are medians; the ratios are big / small.

- **The live stream's cost**: a third master with one slave of 2 slots runs a shell job of short
  tasks (``sleep 0.25``), so the fan-out sends a ``jobs`` message most ticks and a ``farm``
  message every 2 s.  Then 0, 1, 10 and 50 clients (plain httpx streams on
  ``GET /api/v1/stream``, read in a thread of this process) are kept connected for ``--window``
  seconds each, in that order and back (50, 10, 1, 0), and the master process's CPU time
  (psutil) is read over each window; the two windows of each count are summed.  Printed: the
  master's CPU for each count, the ratio 50 clients / none, the extra CPU per message a client
  received, and the store reads of the fan-out (``GET /api/v1/farm``'s ``stream_reads``) per
  second for each count, which is flat when the store is not polled per client.  With
  ``--browsers 1,3`` the same window is measured again with 1, then 3, Chromium pages open on
  the running job's page and no other client: a page does more than listen (it reads the
  job's grid, tasks and thumbnail again after each change it is told of), and the API requests
  each page made per second are printed.

``--quick``: 2,000 jobs and a 2,000-frame job, 2 repeats, 4 s windows, 1 browser page.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import re
import shutil
import statistics
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import drqueue_farm, print_load, report, row, submit_shell  # noqa: E402
from query import fill_store  # noqa: E402

#: The small farm, the baseline of the pages: its jobs, and the frames of its one big job.
SMALL_JOBS = 10
SMALL_FRAMES = 100
#: Seconds a page may take to show what is waited for before the benchmark fails.
PAGE_TIMEOUT_MS = 120_000
VIEWPORT = {"width": 1280, "height": 720}
#: Tasks of the live job (0.25 s each on 2 engines: more than the windows can run).
LIVE_TASKS = 5000

#: Run in every page before its own scripts: marks, in ``window.__bench``, when the first job
#: row shows, when the frame grid is drawn, a click, and when the open task's facts show.
MARKS = """
(() => {
  const marks = (window.__bench = {});
  const check = () => {
    if (marks.row === undefined && document.querySelector(".jobs-table tbody tr[data-job]")) {
      marks.row = performance.now();
    }
    if (marks.grid === undefined && document.querySelector("canvas.grid-canvas[data-cols]")) {
      marks.grid = performance.now();
    }
    if (marks.click !== undefined && marks.task === undefined
        && document.querySelector("#task-panel .task-facts dd")) {
      marks.task = performance.now();
      marks.title = document.querySelector("#task-panel-title").textContent;
    }
  };
  new MutationObserver(check).observe(document, {
    subtree: true, childList: true, attributes: true, attributeFilter: ["data-cols"],
  });
  document.addEventListener("click", (event) => { marks.click = event.timeStamp; }, true);
})();
"""

#: The bytes the page has fetched so far (the page itself and every finished resource).
FETCHED_BYTES = """
() => performance.getEntriesByType("navigation")
  .concat(performance.getEntriesByType("resource"))
  .reduce((sum, entry) => sum + (entry.transferSize || 0), 0)
"""

#: Scroll the grid to its last cell; that cell's centre in the viewport, and the task count.
LAST_CELL = """
() => {
  const canvas = document.querySelector("canvas.grid-canvas");
  const scroller = canvas.parentElement;
  const cols = Number(canvas.dataset.cols), pitch = Number(canvas.dataset.pitch);
  const count = Number(canvas.getAttribute("aria-label").match(/of ([\\d,]+) task/)[1]
    .replaceAll(",", ""));
  const last = count - 1;
  const x = 2 + (last % cols) * pitch + (pitch - 2) / 2;
  const y = 2 + Math.floor(last / cols) * pitch + (pitch - 2) / 2;
  scroller.scrollIntoView({ block: "center" });
  scroller.scrollTop = Math.max(0, y - scroller.clientHeight / 2);
  const box = canvas.getBoundingClientRect();
  return { x: box.left + x, y: box.top + y, count, last };
}
"""


# -- the pages -----------------------------------------------------------------------------------


@dataclass
class Site:
    """One master's pages: its address and admin token, the jobs it holds, the job whose page
    is opened and its frames, and a logged-in browser state (:func:`log_in`)."""

    name: str
    url: str
    token: str
    jobs: int = 0
    job_id: int = 0
    frames: int = 0
    storage: dict[str, Any] = field(default_factory=dict)


def log_in(browser: Any, site: Site) -> None:
    """Give *site* a browser storage state holding a session cookie of its token (POST
    /api/v1/session, as the login page does)."""
    context = browser.new_context()
    try:
        answer = context.request.post(f"{site.url}/api/v1/session", data={"token": site.token})
        assert answer.ok, answer.text()
        site.storage = context.storage_state()
    finally:
        context.close()


@contextlib.contextmanager
def fresh_page(browser: Any, site: Site) -> Iterator[Any]:
    """A page in a new context (a cold cache), logged in, with the marks script."""
    context = browser.new_context(viewport=VIEWPORT, storage_state=site.storage)
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    context.add_init_script(MARKS)
    errors: list[str] = []
    try:
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        yield page
        assert not errors, f"the page threw: {errors}"
    finally:
        context.close()


def wait_mark(page: Any, name: str) -> float:
    """Wait for mark *name*; its time in seconds from navigation start."""
    page.wait_for_function(f"() => window.__bench.{name} !== undefined", timeout=PAGE_TIMEOUT_MS)
    return page.evaluate(f"window.__bench.{name}") / 1000


def jobs_page(browser: Any, site: Site) -> tuple[float, int]:
    """(seconds to the first job row, bytes fetched by then)."""
    with fresh_page(browser, site) as page:
        page.goto(f"{site.url}/jobs", wait_until="commit")
        seconds = wait_mark(page, "row")
        return seconds, page.evaluate(FETCHED_BYTES)


def job_page(browser: Any, site: Site) -> tuple[float, float]:
    """(seconds to the frame grid drawn, seconds from a click on its last cell to that task's
    facts shown)."""
    with fresh_page(browser, site) as page:
        page.goto(f"{site.url}/jobs/{site.job_id}", wait_until="commit")
        grid = wait_mark(page, "grid")
        cell = page.evaluate(LAST_CELL)
        page.mouse.click(cell["x"], cell["y"])
        opened = wait_mark(page, "task")
        clicked = page.evaluate("window.__bench.click") / 1000
        title = page.evaluate("window.__bench.title")
        assert title.startswith(f"Task {cell['last']} "), (title, cell)
        return grid, opened - clicked


def measure_pages(browser: Any, small: Site, big: Site, repeat: int) -> list[dict[str, Any]]:
    first: dict[str, list[float]] = {small.name: [], big.name: []}
    fetched: dict[str, list[int]] = {small.name: [], big.name: []}
    grid: dict[str, list[float]] = {small.name: [], big.name: []}
    opened: dict[str, list[float]] = {small.name: [], big.name: []}
    for round_ in range(repeat):  # the farms alternate, so load hits them alike
        for site in (small, big) if round_ % 2 == 0 else (big, small):
            seconds, size = jobs_page(browser, site)
            first[site.name].append(seconds)
            fetched[site.name].append(size)
            drawn, click = job_page(browser, site)
            grid[site.name].append(drawn)
            opened[site.name].append(click)
            print(
                f"  [{site.name}] jobs page first row {seconds:.3f} s ({size / 1024:.0f} KiB); "
                f"grid drawn {drawn:.3f} s, click -> task {click:.3f} s",
                flush=True,
            )
    rows = []
    median = statistics.median
    cases = (
        ("jobs page: first job row shown, from navigation start", first, "s", 1),
        ("jobs page: bytes fetched by its first row", fetched, "KiB", 1024),
        ("job page: frame grid drawn, from navigation start", grid, "s", 1),
        ("job page: click on the grid's last cell -> its task shown", opened, "s", 1),
    )
    sizes = {small.name: f"{small.jobs:,} jobs", big.name: f"{big.jobs:,} jobs"}
    for figure, values, unit, scale in cases:
        what = sizes if figure.startswith("jobs page") else None
        for site in (small, big):
            label = what[site.name] if what else f"a {site.frames:,}-frame job"
            value = median(values[site.name]) / scale
            rows.append(row(f"{figure}, {label} (median of {repeat})", round(value, 3), unit))
        ratio = median(values[big.name]) / median(values[small.name])
        rows.append(row(f"{figure}: {big.name} / {small.name}", round(ratio, 2), "x"))
    return rows


# -- the live stream -------------------------------------------------------------------------------


class StreamClients:
    """Plain httpx streams on GET /api/v1/stream, read in a thread of their own; counts the
    messages (``event:`` lines) they receive."""

    def __init__(self, url: str, token: str):
        self.url, self.token = url, token
        self.messages = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._http = self._call(self._open())

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(120)

    async def _open(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=httpx.Timeout(30, read=None),
            limits=httpx.Limits(max_connections=200),
        )

    async def _one(self) -> None:
        async with self._http.stream("GET", "/api/v1/stream") as stream:
            stream.raise_for_status()
            async for line in stream.aiter_lines():
                if line.startswith("event:"):
                    self.messages += 1

    async def _resize(self, count: int) -> None:
        while len(self._tasks) < count:
            self._tasks.append(asyncio.create_task(self._one()))
        while len(self._tasks) > count:
            task = self._tasks.pop()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def resize(self, count: int) -> None:
        self._call(self._resize(count))

    def close(self) -> None:
        self.resize(0)
        self._call(self._http.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def wait_stream_clients(client: Any, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while client.farm()["stream_clients"] != count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{count} stream clients not connected after {timeout:.0f} s")
        time.sleep(0.1)


class Window:
    """What the master spent over one timed window: CPU seconds, wall seconds, fan-out store
    reads, messages the httpx clients received."""

    def __init__(self, master: psutil.Process, client: Any, streams: StreamClients):
        self.master, self.client, self.streams = master, client, streams

    def __enter__(self) -> Window:
        self._cpu = sum(self.master.cpu_times()[:2])
        self._reads = self.client.farm()["stream_reads"]
        self._messages = self.streams.messages
        self._wall = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.monotonic() - self._wall
        self.cpu = sum(self.master.cpu_times()[:2]) - self._cpu
        self.reads = self.client.farm()["stream_reads"] - self._reads
        self.messages = self.streams.messages - self._messages


def measure_stream(
    farm: Any,
    counts: list[int],
    window: float,
    browser: Any,
    browsers: list[int],
    site: Site | None,
) -> list[dict[str, Any]]:
    client = farm.client
    job = submit_shell(client, "web-live", tasks=LIVE_TASKS, cmd="sleep 0.25")
    if site is not None:
        site.job_id = job["id"]
    master = psutil.Process(farm.master_proc.pid)
    deadline = time.monotonic() + 120
    while client.job(job["id"])["counts"]["finished"] < 10:  # a steady state: tasks flowing
        if time.monotonic() > deadline:
            raise TimeoutError("the live job's tasks are not running")
        time.sleep(0.2)
    spent: dict[int, list[Window]] = {n: [] for n in counts}
    streams = StreamClients(client.url, client.token)
    try:
        for count in [*counts, *reversed(counts)]:
            streams.resize(count)
            wait_stream_clients(client, count)
            time.sleep(1.0)  # the connection's own work (farm message, first reads) settles
            with Window(master, client, streams) as spent_now:
                time.sleep(window)
            spent[count].append(spent_now)
            print(
                f"  {count:3d} clients: master CPU {spent_now.cpu:.2f} s in {spent_now.wall:.1f} s,"
                f" {spent_now.reads} store reads, {spent_now.messages} messages received",
                flush=True,
            )
        streams.resize(0)
        wait_stream_clients(client, 0)
        with_pages: dict[int, Window] = {}
        for pages in browsers if site is not None else []:
            with_pages[pages] = browser_window(
                browser, site, pages, window, master, client, streams
            )
    finally:
        streams.close()
        client.job_action(job["id"], "kill")

    def total(count: int, what: str) -> float:
        return sum(getattr(w, what) for w in spent[count])

    rows = []
    base = total(0, "cpu") / total(0, "wall")
    for count in counts:
        share = total(count, "cpu") / total(count, "wall")
        reads = total(count, "reads") / total(count, "wall")
        rows.append(
            row(f"master CPU, job running, {count} stream clients", round(share * 100, 1), "%")
        )
        rows.append(
            row(f"fan-out store reads per second, {count} stream clients", round(reads, 2), "/s")
        )
        if count:
            messages = total(count, "messages")
            extra = total(count, "cpu") - base * total(count, "wall")
            rows.append(
                row(
                    f"master CPU per message a client received, {count} clients, above none",
                    round(extra / messages * 1000, 3) if messages else 0.0,
                    "ms",
                )
            )
    top = max(counts)
    if 0 in counts and top:
        share = total(top, "cpu") / total(top, "wall")
        rows.append(row(f"master CPU, {top} stream clients / none", round(share / base, 2), "x"))
    for pages, spent_now in with_pages.items():
        share = spent_now.cpu / spent_now.wall
        figure = f"master CPU, job running, {pages} browser pages on its job page"
        rows.append(row(figure, round(share * 100, 1), "%"))
        rows.append(
            row(f"{figure}, per page above none", round((share - base) / pages * 100, 1), "%")
        )
    return rows


def browser_window(
    browser: Any,
    site: Site,
    pages: int,
    window: float,
    master: psutil.Process,
    client: Any,
    streams: StreamClients,
) -> Window:
    """The master's spending over one window with *pages* Chromium pages on the job page."""
    requests: collections.Counter[str] = collections.Counter()
    counting = False

    def count(request: Any) -> None:
        path = urllib.parse.urlsplit(request.url).path
        if counting and path.startswith("/api/v1/") and path != "/api/v1/stream":
            requests[re.sub(r"/\d+", "/N", path.removeprefix("/api/v1"))] += 1

    with contextlib.ExitStack() as stack:
        for _ in range(pages):
            page = stack.enter_context(fresh_page(browser, site))
            page.on("request", count)
            page.goto(f"{site.url}/jobs/{site.job_id}", wait_until="commit")
            wait_mark(page, "grid")
        wait_stream_clients(client, pages)
        page.wait_for_timeout(1000)
        counting = True
        with Window(master, client, streams) as spent:
            page.wait_for_timeout(window * 1000)  # not time.sleep: this delivers page events
        counting = False
    asked = ", ".join(f"{path} {n / pages / spent.wall:.2f}" for path, n in requests.most_common())
    print(
        f"  {pages} browser pages: master CPU {spent.cpu:.2f} s in {spent.wall:.1f} s, "
        f"{spent.reads} store reads; API requests per page per second: {asked}",
        flush=True,
    )
    return spent


# -- the run ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000, help="ten-frame jobs of the big farm")
    parser.add_argument("--frames", type=int, default=10_000, help="frames of its big job")
    parser.add_argument("--repeat", type=int, default=3, help="times each page is opened")
    parser.add_argument("--window", type=float, default=8.0, help="seconds of each CPU window")
    parser.add_argument("--clients", default="0,1,10,50", help="stream clients of each window")
    parser.add_argument(
        "--browsers", default="1,3", help="Chromium pages of each browser window ('' for none)"
    )
    parser.add_argument("--quick", action="store_true", help="a smaller, shorter run")
    parser.add_argument(
        "--src", type=Path, help="run the masters from this source tree (PYTHONPATH)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.jobs, args.frames, args.repeat, args.window, args.browsers = 2000, 2000, 2, 4.0, "1"
    counts = [int(n) for n in args.clients.split(",")]
    browsers = [int(n) for n in args.browsers.split(",") if n.strip()]
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("web: Debian's chromium is not installed (apt-get install chromium)")
    print_load("web")

    rows: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        sites: dict[str, Site] = {}
        for name, jobs, frames in (
            ("small", SMALL_JOBS, SMALL_FRAMES),
            ("big", args.jobs, args.frames),
        ):
            farm = stack.enter_context(drqueue_farm(args.src))
            url = f"sqlite:///{farm.root / 'filled.sqlite'}"
            farm.root.mkdir(parents=True, exist_ok=True)
            started = time.perf_counter()
            job_id = fill_store(url, jobs, frames)
            print(f"  [{name}] store filled in {time.perf_counter() - started:.1f} s", flush=True)
            farm.env["DRQUEUE_STORE"] = url
            farm.start_master()
            sites[name] = Site(name, farm.client.url, farm.client.token, jobs + 1, job_id, frames)
        live = stack.enter_context(drqueue_farm(args.src))
        live.start_master()
        live.add_slave("web-bench", slots=2)
        live.wait_engines(2, timeout=120)

        playwright = stack.enter_context(sync_playwright())
        browser = playwright.chromium.launch(executable_path=chromium)
        stack.callback(browser.close)
        live_site = Site("live", live.client.url, live.client.token)
        for site in (*sites.values(), live_site):
            log_in(browser, site)
        rows += measure_pages(browser, sites["small"], sites["big"], args.repeat)
        rows += measure_stream(live, counts, args.window, browser, browsers, live_site)
    return report("web", rows)


if __name__ == "__main__":
    main()
