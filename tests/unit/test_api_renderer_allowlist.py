"""Which renderers an artist may submit (``artist_renderers``); admins submit any.

Every renderer runs what the job names on the slaves (the shell renderer's command, any
renderer's env and params), so the admin decides which an artist's token may use.
"""

from __future__ import annotations

from _api import AUTH, in_process_api

from drqueue.config import Config
from drqueue.master.tokens import create_token

SHELL = {"renderer": "shell", "start": 1, "end": 2, "params": {"cmd": "echo {frame}"}}
BLENDER = {
    "renderer": "blender",
    "start": 1,
    "end": 2,
    "scene": "/p/shot.blend",
    "check_scene": False,
}


def artist(tmp_path) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_token(Config(root=tmp_path), 'artist', 'ann')}"}


def test_an_artist_may_submit_only_the_listed_renderers(tmp_path):
    with in_process_api(tmp_path, artist_renderers=["blender", "povray"]) as (http, store):
        ann = artist(tmp_path)
        refused = http.post("/api/v1/jobs", json=SHELL, headers=ann)
        assert refused.status_code == 403, refused.text
        answer = refused.json()
        assert answer["error"] == "Forbidden"
        assert "\n" not in answer["detail"]
        assert "shell" in answer["detail"] and "artist_renderers" in answer["detail"]
        assert store.list_jobs() == []

        allowed = http.post("/api/v1/jobs", json=BLENDER, headers=ann)
        assert allowed.status_code == 201, allowed.text
        assert [job.spec.owner for job in store.list_jobs()] == ["ann"]


def test_an_admin_may_submit_any_renderer_whatever_the_list(tmp_path):
    with in_process_api(tmp_path, artist_renderers=["blender"]) as (http, store):
        answer = http.post("/api/v1/jobs", json=SHELL, headers=AUTH)
        assert answer.status_code == 201, answer.text
        assert [job.spec.renderer for job in store.list_jobs()] == ["shell"]


def test_by_default_an_artist_may_submit_every_renderer(tmp_path):
    with in_process_api(tmp_path) as (http, store):
        ann = artist(tmp_path)
        for body in (SHELL, BLENDER):
            answer = http.post("/api/v1/jobs", json=body, headers=ann)
            assert answer.status_code == 201, answer.text
        assert len(store.list_jobs()) == 2


def test_an_empty_list_lets_artists_submit_nothing(tmp_path):
    with in_process_api(tmp_path, artist_renderers=[]) as (http, store):
        answer = http.post("/api/v1/jobs", json=BLENDER, headers=artist(tmp_path))
        assert answer.status_code == 403, answer.text
        assert store.list_jobs() == []
