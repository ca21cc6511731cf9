"""The web UI in real headless Chromium, against a real farm.

Debian's ``chromium`` driven by Playwright for Python (Playwright's own browser download does
not work here); the master, its controller and two slaves are real processes (tests/farm.py),
and the jobs render real PNG stills with FFmpeg's test source, so the thumbnails are real.

Every test saves screenshots, at 1280x720 and at a phone's 390x844, under
``<pytest's basetemp>/web-screenshots/`` (the run's summary prints where).  Look at them: a
page that passes its assertions but looks broken is not done.

Nothing here waits for a time: Playwright's ``expect`` waits for each condition, and the
renders that must be seen half-way wait on a gate file the test creates when it is ready.

These tests must run in CI, so a missing chromium (or ffmpeg) fails them; set
``DRQUEUE_ALLOW_SKIP=1`` to skip them instead on a machine without it.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from farm import Farm, stills_command, wait_for

from drqueue.client import Client

try:
    from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    sync_playwright = None

pytestmark = [pytest.mark.timeout(420)]

DESKTOP = {"width": 1280, "height": 720}
PHONE = {"width": 390, "height": 844}
#: How long a condition in the page may take before the test fails (it only bounds a failure).
SLOW = 90_000


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium; a missing one fails the module (or skips it with DRQUEUE_ALLOW_SKIP=1)."""
    path = shutil.which("chromium")
    missing = [
        name
        for name, found in (
            ("chromium", path),
            ("ffmpeg", shutil.which("ffmpeg")),
            ("playwright", sync_playwright),
        )
        if not found
    ]
    if missing:
        why = f"{', '.join(missing)} not installed (make test installs them)"
        if os.environ.get("DRQUEUE_ALLOW_SKIP") == "1":
            pytest.skip(why)
        pytest.fail(f"{why}; DRQUEUE_ALLOW_SKIP=1 skips these tests")
    return path


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Browser]:
    expect.set_options(timeout=SLOW)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def url(farm: Farm) -> str:
    """The master's address: the UI is served at / beside the API."""
    return farm.client.url


@pytest.fixture(scope="module")
def admin_token(farm: Farm) -> str:
    return farm.client.token


@pytest.fixture(scope="module")
def artist(farm: Farm) -> Iterator[Client]:
    """A client with an artist token of ann."""
    token = farm.cli("token", "create", "--role", "artist", "--owner", "ann", check=True)
    client = Client(url=farm.client.url, token=token.stdout.strip())
    yield client
    client.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory, request) -> Path:
    """<basetemp>/web-screenshots; the run's summary says where (tests/conftest.py)."""
    folder = tmp_path_factory.getbasetemp() / "web-screenshots"
    folder.mkdir(exist_ok=True)
    request.config.web_screenshots = folder
    return folder


@pytest.fixture(autouse=True)
def idle_farm(farm: Farm) -> Iterator[None]:
    """Each test starts with both engines up, and leaves nothing running."""
    farm.wait_engines(2, timeout=120)
    yield
    for job in farm.client.jobs():
        if job["counts"]["running"] or job["status"] in ("queued", "waiting"):
            farm.client.job_action(job["id"], "kill")
    wait_for(
        lambda: all(job["counts"]["running"] == 0 for job in farm.client.jobs()),
        60,
        what="every task off its engine",
    )


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport=DESKTOP)
    context.set_default_timeout(SLOW)
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    assert not errors, f"the page threw: {errors}"


@pytest.fixture
def shoot(browser: Browser, screenshots: Path, request) -> Callable[[Page, str, str], None]:
    """shoot(page, name, ready): save the page at 1280x720, then the same address at 390x844
    in a phone-sized window logged in with the same session, once *ready* (a selector) shows."""
    test = "-".join(request.node.name.removeprefix("test_").split("_")[:5])

    def shoot(page: Page, name: str, ready: str = "main") -> None:
        page.screenshot(path=screenshots / f"{test}--{name}--desktop.png")
        phone = browser.new_context(
            viewport=PHONE,
            device_scale_factor=2,
            is_mobile=True,
            has_touch=True,
            storage_state=page.context.storage_state(),
        )
        try:
            small = phone.new_page()
            small.set_default_timeout(SLOW)
            small.goto(page.url)
            expect(small.locator(ready).first).to_be_visible()
            expect(small.get_by_text("Loading…")).to_have_count(0)
            small.screenshot(path=screenshots / f"{test}--{name}--phone.png")
        finally:
            phone.close()

    return shoot


# -- helpers -------------------------------------------------------------------------------------


def log_in(page: Page, url: str, token: str) -> None:
    page.goto(f"{url}/login")
    page.locator("#token").fill(token)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#top")).to_be_visible()
    expect(page.locator("#live")).to_contain_text("Live")


def status_badge(page: Page):
    return page.locator(".job-status .badge")


def percent(page: Page):
    return page.locator(".job-progress .progress")


# -- tests ---------------------------------------------------------------------------------------


def test_a_wrong_token_is_refused_and_a_right_one_shows_the_farm(page, url, admin_token, shoot):
    page.goto(url)
    expect(page).to_have_url(re.compile(r"/login$"))  # no session: the login page
    page.locator("#token").fill("not-a-token-of-this-master")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#login-error")).to_contain_text("Refused")
    expect(page.locator("#top")).to_be_hidden()
    shoot(page, "refused", ready="#token")

    # A next= that a browser reads as another origin ("/\\evil" is "//evil") is not followed.
    page.goto(f"{url}/login?next=/%5Cevil.example/")
    page.locator("#token").fill(admin_token)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#top")).to_be_visible()
    expect(page).to_have_url(f"{url}/")
    expect(page.locator(".page-head")).to_contain_text("2 engines online")
    slaves = page.locator("#slaves .stat-num")
    expect(slaves).to_have_count(4)
    wait_for(
        lambda: sum(int(n) for n in slaves.all_inner_texts()) == 2, 30, what="two slaves counted"
    )
    expect(page.locator(".who")).to_contain_text("admin")
    shoot(page, "dashboard", ready="#slaves .stat")


def test_a_login_link_logs_in_once(browser, url, admin_token, shoot):
    made = httpx.post(
        f"{url}/api/v1/session/link", headers={"Authorization": f"Bearer {admin_token}"}
    )
    assert made.status_code == 201, made.text
    link = made.json()["url"]
    assert "/login?code=" in link
    first = browser.new_context(viewport=DESKTOP)
    second = browser.new_context(viewport=DESKTOP)
    try:
        page = first.new_page()
        page.goto(link)
        expect(page.locator("#top")).to_be_visible(timeout=SLOW)
        expect(page).to_have_url(f"{url}/")  # the code left the address bar
        again = second.new_page()
        again.goto(link)
        expect(again.locator("#login-error")).to_be_visible(timeout=SLOW)
        expect(again.locator("#top")).to_be_hidden()
        shoot(again, "used-twice", ready="#token")
    finally:
        first.close()
        second.close()


def test_a_job_submitted_through_the_form_is_watched_to_the_end_without_a_reload(
    page, url, admin_token, farm, tmp_path, shoot
):
    out = tmp_path / "stills"
    out.mkdir()
    gate = tmp_path / "gate"
    log_in(page, url, admin_token)
    page.evaluate("window.__sameDocument = 'yes'")  # gone if the page ever reloads

    page.get_by_role("link", name="Submit", exact=True).click()
    page.locator("#in-renderer").select_option("shell")
    page.locator("#in-name").fill("web stills")
    page.locator("#in-params-cmd").fill(stills_command(out, gate))
    page.locator("#in-params-output").fill(str(out / "still_####.png"))
    page.locator("#in-start").fill("1")
    page.locator("#in-end").fill("0")
    # The API's own message, at its field, before anything is submitted.
    expect(page.locator("#form-error")).to_contain_text("end frame 0 is before start frame 1")
    expect(page.locator("#in-end")).to_have_attribute("aria-invalid", "true")
    page.locator("#in-end").fill("6")
    page.locator("#in-block_size").fill("1")
    expect(page.locator(".preview-count")).to_contain_text("6 tasks")
    expect(page.locator(".blocks li")).to_have_count(6)
    expect(page.locator("#form-error")).to_be_hidden()
    shoot(page, "submit-form", ready=".preview")

    page.get_by_role("button", name="Submit job").click()
    expect(page).to_have_url(re.compile(r"/jobs/\d+$"))
    job_id = int(page.url.rsplit("/", 1)[1])
    expect(page.locator(".job-title")).to_contain_text("web stills")
    # The renders wait on the gate: the page shows the job at 0% with tasks on the slaves ...
    expect(status_badge(page)).to_have_text(re.compile("running"))
    expect(percent(page)).to_have_attribute("data-percent", "0")
    shoot(page, "job-running", ready="canvas.grid-canvas")
    # ... and, the gate open, the stream carries it to 100% with no reload.
    gate.touch()
    expect(percent(page)).to_have_attribute("data-percent", "100", timeout=SLOW)
    expect(status_badge(page)).to_have_text(re.compile("finished"))
    assert page.evaluate("window.__sameDocument") == "yes"
    assert farm.client.job(job_id)["counts"]["finished"] == 6

    # The frame grid: six finished cells; the first one opens task 0 with its log and image.
    expect(page.locator(".legend-item", has_text="finished")).to_contain_text("6")
    grid = page.locator("canvas.grid-canvas")
    pitch = int(grid.get_attribute("data-pitch"))
    grid.click(position={"x": 2 + pitch // 2, "y": 2 + pitch // 2})
    panel = page.locator("#task-panel")
    expect(panel).to_be_visible()
    expect(panel.locator("h2")).to_contain_text("Task 0")
    expect(panel.locator(".task-facts")).to_contain_text(re.compile(r"alpha|beta"))
    expect(panel.locator("pre.log")).to_contain_text("rendering frame 1")
    expect(panel.locator("pre.log")).to_contain_text("wrote frame 1")
    for image in (panel.locator("img.thumb"), page.locator("#thumb img.thumb")):
        expect(image).to_be_visible()
        wait_for(
            lambda image=image: image.evaluate("img => img.complete && img.naturalWidth > 0"),
            30,
            what="the thumbnail to load",
        )
    # The task table says the same, and the address names the open task.
    expect(page).to_have_url(re.compile(rf"/jobs/{job_id}\?task=0$"))
    expect(page.locator(".tasks-table tbody tr")).to_have_count(6)
    assert page.evaluate("window.__sameDocument") == "yes"
    shoot(page, "job-finished-task-open", ready="#task-panel img.thumb")

    # The jobs list shows it finished, and the dashboard counts it.
    page.get_by_role("link", name="Jobs", exact=True).click()
    row = page.locator(f"tr[data-job='{job_id}']")
    expect(row.locator(".badge")).to_have_text(re.compile("finished"))
    expect(row.locator(".progress")).to_have_attribute("data-percent", "100")
    shoot(page, "jobs", ready=".jobs-table tbody tr")


def test_a_job_is_stopped_and_continued_from_its_page_and_its_log_is_tailed_live(
    page, url, admin_token, farm, tmp_path, shoot
):
    out = tmp_path / "stills"
    out.mkdir()
    gate = tmp_path / "gate"
    job = farm.client.submit(
        "shell",
        None,
        start=1,
        end=8,
        name="web stop and continue",
        params={"cmd": stills_command(out, gate), "output": str(out / "still_####.png")},
    )
    log_in(page, url, admin_token)
    page.goto(f"{url}/jobs/{job['id']}")
    expect(status_badge(page)).to_have_text(re.compile("running"))
    expect(page.locator(".legend-item", has_text="running")).to_contain_text("2")

    page.locator(".job-controls").get_by_role("button", name="Stop").click()
    # Stopped, the two running tasks go on (they wait on the gate): "stopping".
    expect(status_badge(page)).to_have_text(re.compile("stopping"))
    expect(page.locator(".job-controls").get_by_role("button", name="Continue")).to_be_visible()
    assert farm.client.job(job["id"])["control"] == "stopped"
    shoot(page, "stopping", ready=".job-controls button")

    page.locator(".job-controls").get_by_role("button", name="Continue").click()
    expect(status_badge(page)).to_have_text(re.compile("running"))
    expect(page.locator(".job-controls").get_by_role("button", name="Stop")).to_be_visible()
    assert farm.client.job(job["id"])["control"] == "active"

    # Open a running task: its log grows on the page while it waits, then shows its end.
    page.locator(".tasks-table tr.task-row", has=page.locator(".badge.st-running")).first.locator(
        "button.link"
    ).click()
    log = page.locator("#task-panel pre.log")
    expect(page.locator("#task-panel .log-info")).to_contain_text("Live")
    expect(log).to_contain_text("waiting")
    grown = log.evaluate("pre => pre.textContent.length")
    wait_for(
        lambda: log.evaluate("pre => pre.textContent.length") > grown,
        30,
        what="the live log tail to grow",
    )
    shoot(page, "live-log", ready="#task-panel pre.log")
    gate.touch()
    expect(log).to_contain_text(re.compile(r"wrote frame \d"))
    expect(percent(page)).to_have_attribute("data-percent", "100", timeout=SLOW)
    expect(page.locator("#task-panel .log-info")).not_to_contain_text("Live")


def test_an_artist_sees_only_their_own_controls(page, url, farm, artist, tmp_path, shoot):
    theirs = farm.client.submit(
        "shell", None, start=1, end=2, name="admin's job", owner="root",
        params={"cmd": "true"},
    )  # fmt: skip
    mine = artist.submit("shell", None, start=1, end=2, name="ann's job", params={"cmd": "true"})
    farm.wait_job(theirs["id"])
    farm.wait_job(mine["id"])
    log_in(page, url, artist.token)
    expect(page.locator(".who .role")).to_have_text("artist")

    page.goto(f"{url}/jobs/{theirs['id']}")
    expect(page.locator(".job-title")).to_contain_text("admin's job")
    expect(page.locator(".job-controls button")).to_have_count(0)
    expect(page.locator(".job-controls input")).to_have_count(0)

    page.goto(f"{url}/jobs/{mine['id']}")
    expect(page.locator(".job-title")).to_contain_text("ann's job")
    expect(page.locator(".job-controls").get_by_role("button", name="Delete")).to_be_visible()
    expect(page.locator(".job-controls").get_by_role("button", name="Rerun all")).to_be_visible()

    page.goto(f"{url}/jobs")
    expect(page.locator(f"tr[data-job='{theirs['id']}'] input[type=checkbox]")).to_be_disabled()
    expect(page.locator(f"tr[data-job='{mine['id']}'] input[type=checkbox]")).to_be_enabled()
    shoot(page, "jobs", ready=".jobs-table tbody tr")

    page.goto(f"{url}/computers")
    expect(page.locator(".computers-table tbody tr")).to_have_count(2)
    expect(page.locator(".computers-table").get_by_role("button")).to_have_count(0)
    expect(page.locator(".computers-table input, .computers-table select")).to_have_count(0)
    expect(page.locator("#new-pool")).to_have_count(0)
    shoot(page, "computers", ready=".computers-table tbody tr")


def test_a_write_without_the_csrf_token_is_refused_and_logging_out_ends_the_session(
    page, url, admin_token, farm, shoot
):
    job = farm.client.submit("shell", None, start=1, end=1, name="csrf", params={"cmd": "true"})
    farm.wait_job(job["id"])
    log_in(page, url, admin_token)
    api = page.context.request  # the page's cookies, none of its script

    refused = api.post(f"{url}/api/v1/jobs/{job['id']}/rerun")
    assert refused.status == 403, refused.text()
    assert "CSRF" in refused.json()["detail"]
    wrong = api.post(
        f"{url}/api/v1/jobs/{job['id']}/rerun", headers={"X-CSRF-Token": "not-the-token"}
    )
    assert wrong.status == 403, wrong.text()
    assert farm.client.job(job["id"])["counts"]["finished"] == 1  # nothing was rerun

    csrf = api.get(f"{url}/api/v1/session").json()["csrf"]
    allowed = api.post(f"{url}/api/v1/jobs/{job['id']}/stop", headers={"X-CSRF-Token": csrf})
    assert allowed.status == 200, allowed.text()

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.locator("#token")).to_be_visible()
    assert api.get(f"{url}/api/v1/session").status == 401
    assert api.get(f"{url}/api/v1/jobs").status == 401
    shoot(page, "logged-out", ready="#token")


def test_an_admin_stops_kills_and_reprioritises_several_jobs_at_once_from_the_jobs_list(
    page, url, admin_token, farm, tmp_path, shoot
):
    gate = tmp_path / "gate"  # never opened: the tasks run until they are killed
    # One task at a time each, so both jobs run on the farm's two slots.
    jobs = [
        farm.client.submit(
            "shell", None, start=1, end=4, name=f"web bulk {n}", max_parallel=1,
            params={"cmd": f"sh -c 'while [ ! -e {gate} ]; do sleep 0.2; done'"},
        )["id"]
        for n in (1, 2)
    ]  # fmt: skip
    wait_for(
        lambda: all(farm.client.job(j)["status"] == "running" for j in jobs),
        60,
        what="both jobs running",
    )
    log_in(page, url, admin_token)
    page.goto(f"{url}/jobs")
    rows = [page.locator(f"tr[data-job='{j}']") for j in jobs]
    for row in rows:
        expect(row.locator(".badge")).to_have_text(re.compile("running"))
        row.locator("input[type=checkbox]").check()
    bulk = page.get_by_role("region", name="Selected jobs")
    expect(bulk).to_contain_text("2 jobs selected")

    bulk.get_by_role("button", name="Stop").click()
    for row in rows:  # the stream brings each row's new status
        expect(row.locator(".badge")).to_have_text(re.compile("stopping"))
    assert [farm.client.job(j)["control"] for j in jobs] == ["stopped", "stopped"]

    bulk.get_by_role("button", name="Kill").click()
    page.get_by_role("dialog").get_by_role("button", name="Kill").click()
    for row in rows:
        expect(row.locator(".badge")).to_have_text(re.compile("stopped"))
    assert [farm.client.job(j)["counts"]["running"] for j in jobs] == [0, 0]

    page.locator("#bulk-priority").fill("77")
    bulk.get_by_role("button", name="Set").click()
    for row in rows:
        expect(row.locator(".col-priority")).to_have_text("77")
    assert [farm.client.job(j)["priority"] for j in jobs] == [77, 77]
    shoot(page, "stopped", ready=".jobs-table tbody tr")


def test_an_admin_disables_a_computer_limits_another_and_edits_a_pool_from_the_computers_page(
    page, url, admin_token, farm, shoot
):
    log_in(page, url, admin_token)
    page.goto(f"{url}/computers")
    alpha = page.locator("tr[data-computer='alpha']")
    beta = page.locator("tr[data-computer='beta']")
    try:
        beta.get_by_role("button", name="Disable").click()
        expect(beta.locator(".badge")).to_have_text(re.compile("disabled"))
        assert farm.client.computer("beta")["enabled"] is False
        beta.get_by_role("button", name="Enable").click()
        expect(beta.locator(".badge")).not_to_have_text(re.compile("disabled"))
        assert farm.client.computer("beta")["enabled"] is True

        alpha.locator("#c-alpha-limit").fill("0")
        alpha.get_by_role("button", name="Set").click()
        wait_for(lambda: farm.client.computer("alpha")["max_tasks"] == 0, 30, what="limit 0")
        expect(alpha.locator("#c-alpha-limit")).to_have_value("0")

        page.locator("#new-pool").fill("webpool")
        page.get_by_role("button", name="Create").click()
        expect(page.locator("#pools")).to_contain_text("webpool")
        alpha.get_by_label("Add alpha to a pool").select_option("webpool")
        expect(alpha.locator(".chip", has_text="webpool")).to_be_visible()
        assert "webpool" in farm.client.computer("alpha")["pools"]
        shoot(page, "edited", ready=".computers-table tbody tr")
        alpha.get_by_role("button", name="Remove alpha from pool webpool").click()
        expect(alpha.locator(".chip", has_text="webpool")).to_have_count(0)
        assert "webpool" not in farm.client.computer("alpha")["pools"]

        alpha.locator("#c-alpha-limit").fill("")
        alpha.get_by_role("button", name="Set").click()
        wait_for(lambda: farm.client.computer("alpha")["max_tasks"] is None, 30, what="no limit")
    finally:
        farm.cli("computer", "enable", "beta")
        farm.cli("computer", "limit", "alpha")


def test_the_frame_grid_opens_a_task_from_the_keyboard(page, url, admin_token, farm):
    job = farm.client.submit("shell", None, start=1, end=3, name="web keys", params={"cmd": "true"})
    farm.wait_job(job["id"])
    log_in(page, url, admin_token)
    page.goto(f"{url}/jobs/{job['id']}")
    expect(page.locator(".legend-item", has_text="finished")).to_contain_text("3")
    grid = page.locator("canvas.grid-canvas")
    grid.focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    expect(page.locator(".frame-grid .sr-only")).to_have_text("Task 2 · frame 3 · finished")
    page.keyboard.press("Enter")
    expect(page.locator("#task-panel h2")).to_contain_text("Task 2")
    expect(page).to_have_url(re.compile(r"\?task=2$"))


def test_losing_the_master_shows_a_banner_and_its_return_asks_for_a_login(
    page, url, admin_token, farm, screenshots
):
    """The master going away was shown only by the header's small word: now a banner says the
    page may be out of date.  Sessions live in the master's memory, so the master back means
    logging in again.  (Last in the module: the master restarts.)"""
    log_in(page, url, admin_token)
    expect(page.locator("#lost")).to_be_hidden()
    farm.master_proc.terminate()
    farm.master_proc.wait(60)
    expect(page.locator("#lost")).to_be_visible(timeout=SLOW)
    expect(page.locator("#main")).to_have_class(re.compile(r"\bstale\b"))
    page.screenshot(path=screenshots / "losing-the-master--banner--desktop.png")
    farm.start_master()
    expect(page.locator("#token")).to_be_visible(timeout=SLOW)
    expect(page.locator("#lost")).to_be_hidden()
    farm.wait_engines(2, timeout=120)
