"""Thumbnails of the last rendered frame, made by the master from a finished task's outputs.

The images are real PNG, JPEG and TIFF files made with Pillow here; the hostile ones are what
a render controls: a symlink out to another file, a symlinked folder, a FIFO, a file inside the
master's own folders, something that is not an image, a file too big, and a decompression bomb
(a PNG whose header claims ten billion pixels).  The real app in process over a real store.
"""

from __future__ import annotations

import io
import os
import struct
import time
import uuid
import zlib
from pathlib import Path

import pytest
from _api import AUTH, in_process_api
from PIL import Image

from drqueue.master import thumbnails
from drqueue.master.thumbnails import MAX_INPUT_BYTES, THUMBNAIL_PX
from drqueue.models import JobSpec, split_frames


def finished_job(store, outputs_per_task: list[list[str]]) -> int:
    """A job whose tasks all finished, task i having reported outputs_per_task[i], in order."""
    frames = len(outputs_per_task)
    job_id = store.create_job(
        JobSpec("shell", 1, frames, params={"cmd": "true"}), split_frames(1, frames)
    )
    for index, outputs in enumerate(outputs_per_task):
        task = store.get_task(job_id, index)
        attempt = uuid.uuid4().hex
        assert store.mark_dispatched(task.id, attempt, 0, "alpha")
        store.record_result(attempt, {"status": "finished", "exit_code": 0, "outputs": outputs})
    return job_id


def image_file(path: Path, size=(1920, 1080), mode="RGB", fmt=None) -> str:
    image = Image.new(mode, size)
    image.paste(Image.linear_gradient("L").resize(size).convert(mode), (0, 0))
    image.save(path, fmt)
    return str(path)


def thumbnail(http, job_id: int, **params):
    return http.get(f"/api/v1/jobs/{job_id}/thumbnail", params=params, headers=AUTH)


def shown(answer) -> Image.Image:
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "image/jpeg"
    image = Image.open(io.BytesIO(answer.content))
    assert image.format == "JPEG"
    return image


@pytest.mark.parametrize(
    "name,mode,size",
    [
        ("frame.png", "RGBA", (1920, 1080)),
        ("frame.jpg", "RGB", (4000, 3000)),
        ("frame.tif", "I;16", (640, 960)),
        ("frame.tiff", "RGB", (300, 200)),
        ("frame.PNG", "L", (480, 480)),
    ],
)
def test_a_png_jpeg_or_tiff_output_is_shown_at_most_480_pixels(tmp_path, name, mode, size):
    with in_process_api(tmp_path) as (http, store):
        job_id = finished_job(store, [[image_file(tmp_path / name, size, mode)]])
        image = shown(thumbnail(http, job_id))
        assert max(image.size) == min(THUMBNAIL_PX, max(size))
        assert abs(image.size[0] / image.size[1] - size[0] / size[1]) < 0.02
        assert image.mode == "RGB"


def test_the_last_finished_task_is_shown_and_a_given_task_on_request(tmp_path):
    with in_process_api(tmp_path) as (http, store):
        wide = image_file(tmp_path / "wide.png", (800, 400))
        tall = image_file(tmp_path / "tall.png", (300, 600))
        log = tmp_path / "render.log"
        log.write_text("not an image")
        # task 0 finishes first, task 1 last; task 1's first image output is after a log
        job_id = finished_job(store, [[wide], [str(log), tall, wide]])
        assert shown(thumbnail(http, job_id)).size == (240, 480)
        assert shown(thumbnail(http, job_id, task=0)).size == (480, 240)
        assert thumbnail(http, job_id, task=9).status_code == 404


def test_a_thumbnail_is_made_once_and_answers_304_to_its_etag(tmp_path):
    with in_process_api(tmp_path) as (http, store):
        frame = tmp_path / "frame.png"
        job_id = finished_job(store, [[image_file(frame)]])
        first = thumbnail(http, job_id)
        etag = first.headers["etag"]
        cached = list((tmp_path / "tmp" / "thumbnails").glob("*.jpg"))
        assert len(cached) == 1 and cached[0].read_bytes() == first.content
        again = http.get(f"/api/v1/jobs/{job_id}/thumbnail", headers=AUTH | {"If-None-Match": etag})
        assert again.status_code == 304 and not again.content
        time.sleep(0.01)
        image_file(frame, (200, 100))  # the frame rendered again: a new thumbnail
        redone = thumbnail(http, job_id)
        assert redone.headers["etag"] != etag and shown(redone).size == (200, 100)


def test_no_finished_task_or_no_image_output_is_404(tmp_path):
    with in_process_api(tmp_path) as (http, store):
        job_id = store.create_job(JobSpec("shell", 1, 2, params={"cmd": "x"}), split_frames(1, 2))
        assert "no finished task" in thumbnail(http, job_id).json()["detail"]
        assert thumbnail(http, job_id, task=0).status_code == 404  # queued
        (tmp_path / "frame.exr").write_bytes(b"v/1\x01" + b"\0" * 100)
        assert thumbnail(http, finished_job(store, [[]])).status_code == 404
        assert (
            thumbnail(http, finished_job(store, [[str(tmp_path / "frame.exr")]])).status_code == 404
        )
        gone = thumbnail(http, finished_job(store, [[str(tmp_path / "gone.png")]]))
        assert gone.status_code == 404 and "gone" in gone.json()["detail"]
        assert thumbnail(http, 12345).status_code == 404


def test_a_file_that_is_not_an_image_is_404_and_says_nothing_of_its_bytes(tmp_path):
    with in_process_api(tmp_path) as (http, store):
        secret = tmp_path / "secret.png"
        secret.write_text("password=hunter2\n")
        empty = tmp_path / "empty.jpg"
        empty.touch()
        truncated = tmp_path / "cut.png"
        truncated.write_bytes(Path(image_file(tmp_path / "whole.png")).read_bytes()[:300])
        for path in (secret, empty, truncated):
            answer = thumbnail(http, finished_job(store, [[str(path)]]))
            assert answer.status_code == 404, path
            assert "hunter2" not in answer.text


def test_a_symlinked_output_is_refused(tmp_path):
    with in_process_api(tmp_path) as (http, store):
        outside = image_file(tmp_path / "someone-elses.png")
        link = tmp_path / "renders" / "frame.png"
        link.parent.mkdir()
        link.symlink_to(outside)
        answer = thumbnail(http, finished_job(store, [[str(link)]]))
        assert answer.status_code == 403 and "symlink" in answer.json()["detail"]


def test_a_folder_symlink_a_render_could_have_made_is_refused(tmp_path):
    with in_process_api(tmp_path) as (http, store):
        real = tmp_path / "elsewhere"
        real.mkdir()
        image_file(real / "frame.png")
        planted = tmp_path / "shot"
        planted.symlink_to(real)
        os.lchown(planted, 65534, 65534)  # made by a slave's user, not root nor the master's
        refused = thumbnail(http, finished_job(store, [[str(planted / "frame.png")]]))
        assert refused.status_code == 403 and "symlink a render may have made" in refused.text
        mounted = tmp_path / "mount"
        mounted.symlink_to(real)  # root's (or the master's own): an admin's mount point
        shown(thumbnail(http, finished_job(store, [[str(mounted / "frame.png")]])))


def test_fifos_devices_and_the_masters_own_folders_are_refused_without_a_read(tmp_path):
    with in_process_api(tmp_path) as (http, store):
        fifo = tmp_path / "frame.png"
        os.mkfifo(fifo)
        private = tmp_path / "etc" / "stolen.png"
        private.parent.mkdir(exist_ok=True)
        image_file(private)
        proc = "/proc/self/root" + str(private)  # the same file, by way of /proc
        started = time.monotonic()
        for path in (str(fifo), "/dev/zero.png", str(private), proc, "relative/frame.png"):
            answer = thumbnail(http, finished_job(store, [[path]]))
            assert answer.status_code in (403, 404), (path, answer.text)
            assert answer.status_code == 403 or path == "/dev/zero.png", path
        assert time.monotonic() - started < 5  # the FIFO was not waited on


def test_a_file_too_big_is_refused_unread(tmp_path):
    with in_process_api(tmp_path) as (http, store):
        big = tmp_path / "huge.png"
        with open(big, "wb") as out:
            out.truncate(MAX_INPUT_BYTES + 1)  # sparse: no disk used
        answer = thumbnail(http, finished_job(store, [[str(big)]]))
        assert answer.status_code == 403 and "bytes" in answer.json()["detail"]


def png_claiming(width: int, height: int) -> bytes:
    """A valid PNG header and a tiny compressed body, claiming *width* x *height* pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = zlib.compress(b"\0" * 65536, 9)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )


def test_a_decompression_bomb_is_refused_fast(tmp_path):
    with in_process_api(tmp_path) as (http, store):
        bomb = tmp_path / "bomb.png"
        bomb.write_bytes(png_claiming(100_000, 100_000))
        over = tmp_path / "over.png"
        over.write_bytes(png_claiming(8000, thumbnails.MAX_PIXELS // 8000 + 1))
        started = time.monotonic()
        for path in (bomb, over):
            answer = thumbnail(http, finished_job(store, [[str(path)]]))
            assert answer.status_code == 403, answer.text
            assert "pixels" in answer.json()["detail"] or "too large" in answer.json()["detail"]
        assert time.monotonic() - started < 2


def test_path_components_climbing_out_are_resolved_before_the_checks(tmp_path):
    with in_process_api(tmp_path) as (http, store):
        private = tmp_path / "db" / "frame.png"
        private.parent.mkdir(exist_ok=True)
        image_file(private)
        climbing = str(tmp_path / "logs" / ".." / "db" / "frame.png")
        (tmp_path / "logs").mkdir(exist_ok=True)
        assert thumbnail(http, finished_job(store, [[climbing]])).status_code == 403
        fine = tmp_path / "renders" / "ok.png"
        fine.parent.mkdir(exist_ok=True)
        image_file(fine)
        roundabout = str(tmp_path / "logs" / ".." / "renders" / "." / "ok.png")
        shown(thumbnail(http, finished_job(store, [[roundabout]])))


def test_a_hard_link_a_render_made_is_refused(tmp_path):
    with in_process_api(tmp_path) as (http, store):
        private = tmp_path / "private.png"
        image_file(private)
        linked = tmp_path / "renders" / "frame.png"
        linked.parent.mkdir()
        os.link(private, linked)
        answer = thumbnail(http, finished_job(store, [[str(linked)]]))
        assert answer.status_code == 403 and "hard links" in answer.json()["detail"]


def test_a_storm_of_thumbnail_requests_is_503_at_once_and_other_routes_answer(tmp_path):
    """While the decoder is busy, DECODE_WAITERS requests wait for it and any more are answered
    503 at once, never holding another worker thread: the rest of the API answers."""
    import threading

    from farm import wait_for

    with in_process_api(tmp_path) as (http, store):
        frames = [image_file(tmp_path / f"f{i}.png", size=(64, 64)) for i in range(3)]
        job_id = finished_job(store, [[frame] for frame in frames])
        answers: list[int] = []
        # One request is decoding: it holds its admission and the decoder.
        assert thumbnails._admitted.acquire(timeout=5)
        assert thumbnails._decoding.acquire(timeout=5)
        try:
            waiting = [
                threading.Thread(
                    target=lambda i=i: answers.append(thumbnail(http, job_id, task=i).status_code)
                )
                for i in range(thumbnails.DECODE_WAITERS)
            ]
            for thread in waiting:
                thread.start()
            wait_for(lambda: thumbnails._admitted._value == 0, 30, what="the waiters admitted")
            busy = thumbnail(http, job_id, task=2)
            assert busy.status_code == 503 and "busy" in busy.json()["detail"], busy.text
            assert http.get(f"/api/v1/jobs/{job_id}", headers=AUTH).status_code == 200
        finally:
            thumbnails._decoding.release()
            thumbnails._admitted.release()
        for thread in waiting:
            thread.join(30)
        assert answers == [200] * thumbnails.DECODE_WAITERS
        assert thumbnail(http, job_id, task=2).status_code == 200
