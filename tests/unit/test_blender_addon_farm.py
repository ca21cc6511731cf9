"""The Blender add-on's HTTP module (contrib/blender/drqueue_submit/farm.py), in plain Python.

farm.py imports nothing of Blender, so it is loaded here from its file and run against the
real API on a loopback port (_live_api): the job body the panel makes, the submit with its
Idempotency-Key, the master's refusals as one line, and the Watch area's line.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import sys
from pathlib import Path

import pytest
from _live_api import TOKEN, live_api

FARM_PY = Path(__file__).resolve().parents[2] / "contrib/blender/drqueue_submit/farm.py"
_spec = importlib.util.spec_from_file_location("drqueue_blender_farm", FARM_PY)
farm = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(farm)


@pytest.fixture
def api(tmp_path):
    # A master that mails ann (its server is never reached: these jobs never end).
    mail = {"smtp_host": "127.0.0.1", "mail_addresses": {"ann": "ann@example.com"}}
    with live_api(tmp_path, **mail) as api:
        yield api


@pytest.fixture
def blend(tmp_path) -> Path:
    path = tmp_path / "shot.blend"
    path.write_bytes(b"BLENDER-v304")
    return path


def settings(blend: Path, **changes) -> farm.JobSettings:
    values = {
        "blend_file": str(blend),
        "scene_name": "Scene",
        "start": 1,
        "end": 10,
        "step": 1,
        "output": "//render/frame_####",
        "file_format": "PNG",
        "block_size": 5,
        "name": "shot",
        "owner": "ann",
    }
    return farm.JobSettings(**{**values, **changes})


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


# -- the job body ---------------------------------------------------------------------------------


def test_job_body_renders_the_blend_with_the_scenes_output_format_and_scene():
    body = farm.job_body(settings(Path("/proj/shot.blend"), step=2, priority=70))
    assert body == {
        "renderer": "blender",
        "scene": "/proj/shot.blend",
        "start": 1,
        "end": 10,
        "step": 2,
        "block_size": 5,
        "priority": 70,
        "name": "shot",
        "owner": "ann",
        "params": {"output": "//render/frame_####", "format": "PNG", "scene_name": "Scene"},
    }


def test_notify_is_sent_only_when_asked_for_in_a_fixed_order():
    assert "notify" not in farm.job_body(settings(Path("/s.blend")))
    body = farm.job_body(settings(Path("/s.blend"), notify_on=["first-frame", "finished"]))
    assert body["notify"] == {"on": ["finished", "first-frame"]}
    with pytest.raises(farm.FarmError, match="unknown notify event 'done'"):
        farm.job_body(settings(Path("/s.blend"), notify_on=["done"]))


def test_a_pool_becomes_a_requirement():
    assert "requirements" not in farm.job_body(settings(Path("/s.blend"), pool="  "))
    body = farm.job_body(settings(Path("/s.blend"), pool=" lighting "))
    assert body["requirements"] == {"pools": ["lighting"]}


@pytest.mark.parametrize(
    ("blender_name", "renderer_name"),
    [("PNG", "PNG"), ("OPEN_EXR", "OPEN_EXR"), ("TARGA", "TGA"), ("TARGA_RAW", "RAWTGA"),
     ("JPEG2000", "JP2")],
)  # fmt: skip
def test_blenders_image_formats_get_the_names_blender_dash_f_takes(blender_name, renderer_name):
    assert farm.render_format(blender_name) == renderer_name


@pytest.mark.parametrize("movie", farm.MOVIE_FORMATS)
def test_a_movie_format_is_refused_with_what_to_do(movie):
    with pytest.raises(farm.FarmError, match="choose an image format in Output Properties"):
        farm.job_body(settings(Path("/s.blend"), file_format=movie))


def test_a_scene_without_an_output_path_is_refused():
    with pytest.raises(farm.FarmError, match="the scene has no output path"):
        farm.job_body(settings(Path("/s.blend"), output=" "))


def test_blank_settings_fall_back_to_the_environment(monkeypatch):
    monkeypatch.delenv("DRQUEUE_MASTER", raising=False)
    monkeypatch.delenv("DRQUEUE_TOKEN", raising=False)
    assert farm.master_url("") == "http://127.0.0.1:7680"
    assert farm.api_token("") == ""
    monkeypatch.setenv("DRQUEUE_MASTER", "http://master:7680/")
    monkeypatch.setenv("DRQUEUE_TOKEN", "from-env")
    assert (farm.master_url(""), farm.api_token("")) == ("http://master:7680", "from-env")
    assert (farm.master_url(" http://mine:1 "), farm.api_token("mine")) == ("http://mine:1", "mine")


# -- against the master's API ---------------------------------------------------------------------


def test_submit_makes_the_job_the_panel_describes(api, blend):
    api.store.create_pool("lighting")
    body = farm.job_body(settings(blend, notify_on=["error"], pool="lighting"))
    answer = farm.submit_job(api.url, TOKEN, body, key="k1")
    assert answer == {"id": 1, "tasks": 2}
    job = farm.get_job(api.url, TOKEN, answer["id"])
    assert (job["scene"], job["owner"], job["block_size"]) == (str(blend), "ann", 5)
    assert job["params"].items() >= body["params"].items()  # and the renderer's defaults
    assert job["requirements"]["pools"] == ["lighting"]
    assert farm.job_progress(job) == (0.0, "queued: 0/2 tasks done")


def test_a_submit_sent_again_with_its_key_answers_the_same_job(api, blend):
    body = farm.job_body(settings(blend))
    first = farm.submit_job(api.url, TOKEN, body, key="same-key")
    assert farm.submit_job(api.url, TOKEN, body, key="same-key") == first
    assert len(api.store.list_jobs()) == 1


def test_a_wrong_token_is_the_masters_one_line_with_where_to_set_it(api, blend):
    with pytest.raises(farm.FarmError) as refused:
        farm.submit_job(api.url, "wrong", farm.job_body(settings(blend)), key="k")
    assert refused.value.status == 401 and refused.value.answered
    assert str(refused.value) == (
        "missing or wrong API token: set DRQUEUE_TOKEN to a token of this master "
        "(the DrQueue token is set in Preferences → Add-ons → DrQueue Submit)"
    )
    assert api.store.list_jobs() == []


def test_no_token_is_refused_before_asking_the_master(api, blend):
    with pytest.raises(farm.FarmError, match="no DrQueue token: set one in Preferences"):
        farm.submit_job(api.url, "", farm.job_body(settings(blend)), key="k")


def test_an_invalid_job_is_the_masters_one_line(api, blend, tmp_path):
    cases = {
        "end": (settings(blend, start=5, end=1), "end frame 1 is before start frame 5"),
        "scene": (settings(tmp_path / "gone.blend"), "gone.blend"),
        "format": (settings(blend, file_format="NOPE"), "format"),
    }
    for name, (job, words) in cases.items():
        with pytest.raises(farm.FarmError) as refused:
            farm.submit_job(api.url, TOKEN, farm.job_body(job), key=name)
        assert refused.value.status in (400, 422) and refused.value.answered, name
        assert words in str(refused.value) and "\n" not in str(refused.value), name
    assert api.store.list_jobs() == []


def test_an_unreachable_master_is_unanswered_after_its_attempts(blend):
    url = closed_port_url()
    with pytest.raises(farm.FarmError) as failed:
        farm.submit_job(url, TOKEN, farm.job_body(settings(blend)), key="k", attempts=2)
    assert not failed.value.answered and failed.value.status is None
    assert str(failed.value).startswith(f"cannot reach the DrQueue master at {url}: ")


def test_an_unanswered_submit_keeps_its_key_for_the_next_press_and_an_answered_one_not():
    pending = farm.PendingSubmits()
    body = {"renderer": "blender", "start": 1, "end": 2}
    first = pending.key("http://m", body)
    assert pending.key("http://m", body) != first, "nothing pending: each press is a new job"
    pending.unanswered("http://m", body, first)
    assert pending.key("http://m", body) == first
    assert pending.key("http://m", {**body, "end": 3}) != first, "another job, another key"
    assert pending.key("http://other", body) != first
    pending.answered("http://m", body)
    assert pending.key("http://m", body) != first


def test_job_progress_counts_finished_tasks_and_names_running_and_failed_ones():
    job = {
        "status": "running",
        "counts": {"total": 4, "finished": 1, "running": 2, "error": 1},
        "waiting_reason": "",
    }
    assert farm.job_progress(job) == (0.25, "running: 1/4 tasks done, 2 running, 1 error")
    waiting = {"status": "queued", "counts": {"total": 2}, "waiting_reason": "no slave in pool x"}
    assert farm.job_progress(waiting) == (0.0, "queued: 0/2 tasks done (no slave in pool x)")
    assert json.dumps(farm.job_progress({"status": "finished", "counts": {}}))


def test_a_redirect_is_refused_and_the_token_goes_nowhere_else():
    """urllib follows a redirect with the Authorization header: a master address answering 302
    would hand the artist's token to another host.  The add-on refuses any redirect."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    seen: list[str | None] = []

    class Elsewhere(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            seen.append(self.headers.get("Authorization"))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    other = HTTPServer(("127.0.0.1", 0), Elsewhere)

    class Redirecting(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{other.server_port}/steal")
            self.end_headers()

        def log_message(self, *args):
            pass

    master = HTTPServer(("127.0.0.1", 0), Redirecting)
    for server in (other, master):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(farm.FarmError, match="redirect"):
            farm.get_job(f"http://127.0.0.1:{master.server_port}", "s3cret-token", 1)
        assert seen == []
    finally:
        for server in (other, master):
            server.shutdown()
            server.server_close()
