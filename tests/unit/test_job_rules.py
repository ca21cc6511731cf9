"""models.JobIn is the one rule for a job's fields: parse_job and JobSpec.validate apply it.

The CLI calls ``parse_job(body)`` for its own one-line errors, the API validates its body with
JobIn, and ``JobSpec.validate`` re-checks a spec with the same model plus the frame cap.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drqueue.errors import InvalidJob
from drqueue.models import (
    PRIORITY_MAX,
    FrameBlock,
    JobSpec,
    Requirements,
    count_frames,
    parse_job,
)
from drqueue.renderers.base import RenderContext
from drqueue.renderers.ffmpeg import FFmpeg

BODY = {"renderer": "shell", "start": 1, "end": 10}


def test_parse_job_gives_one_line_naming_the_field():
    with pytest.raises(InvalidJob, match=r"^start: Input should be a valid integer$"):
        parse_job(dict(BODY, start="1"))
    with pytest.raises(InvalidJob, match=r"^end frame 0 is before start frame 1$"):
        parse_job(dict(BODY, end=0))
    with pytest.raises(InvalidJob, match=r"^requirements\.pools\.0: must be 1 to 100 letters"):
        parse_job(dict(BODY, requirements={"pools": ["gpu?old"]}))
    with pytest.raises(InvalidJob, match=r"^env\.'A\\nB'\.\[key\]: environment variable"):
        parse_job(dict(BODY, env={"A\nB": "x"}))


@given(name=st.text(min_size=1, max_size=50))
def test_a_job_name_is_accepted_exactly_when_it_is_printable(name):
    if name.isprintable():
        assert parse_job(dict(BODY, name=name)).name == name
    else:
        with pytest.raises(InvalidJob, match="^name: must hold printable characters"):
            parse_job(dict(BODY, name=name))


@given(priority=st.one_of(st.integers(), st.booleans(), st.text(max_size=4), st.floats()))
def test_priority_is_a_strict_bounded_int(priority):
    good = type(priority) is int and abs(priority) <= PRIORITY_MAX
    if good:
        assert parse_job(dict(BODY, priority=priority)).priority == priority
    else:
        with pytest.raises(InvalidJob, match="^priority: "):
            parse_job(dict(BODY, priority=priority))


def test_job_spec_validate_uses_the_same_rule_and_the_frame_cap():
    JobSpec("shell", 1, 100).validate(max_frames=100)
    with pytest.raises(InvalidJob, match="101 frames is more than the 100"):
        JobSpec("shell", 1, 101).validate(max_frames=100)
    with pytest.raises(InvalidJob, match="^name: "):
        JobSpec("shell", 1, 2, name="\x1b[2J").validate()
    with pytest.raises(InvalidJob, match="^env.A: must not hold a NUL"):
        JobSpec("shell", 1, 2, env={"A": "\x00"}).validate()
    with pytest.raises(InvalidJob, match="^requirements.pools.0: "):
        JobSpec("shell", 1, 2, requirements=Requirements(pools=["a b"])).validate()


def test_a_spec_survives_the_round_trip_through_its_body():
    spec = JobSpec(
        "shell",
        -5,
        20,
        name="x",
        owner="ann",
        step=5,
        block_size=2,
        priority=-3,
        timeout=9.5,
        env={"A": "1"},
        params={"cmd": "true"},
        requirements=Requirements(pools=["gpu"], gpus=1),
        after=[3, 4],
        max_parallel=2,
    )
    assert parse_job(spec.to_body()).to_spec() == spec


def test_count_frames_agrees_with_the_block():
    assert count_frames(1, 47, 2) == len(FrameBlock(1, 47, 2)) == 24


def test_ffmpeg_checks_the_movie_against_the_whole_job_not_the_block():
    """A task of an ffmpeg job stored before validate_job made it one block still checks
    for all the job's frames, so it cannot "finish" with a one-frame movie."""
    params = FFmpeg.validate_params({"input": "/r/f_####.png", "output": "/r/m.mp4"})
    ctx = RenderContext(FrameBlock(3, 3), params=params, job_frames=FrameBlock(1, 24))
    check = FFmpeg().commands(ctx)[1]
    assert "select=gte(n\\,23)" in check
    spec = JobSpec("ffmpeg", 1, 24, params=params)
    FFmpeg.validate_job(spec)
    assert spec.block_size == 24


def test_host_globs_are_few_and_made_of_name_and_glob_characters():
    """Thousands of unique long globs once kept the dispatcher compiling them, round after round."""
    from drqueue.errors import InvalidJob
    from drqueue.models import MAX_HOST_GLOBS, parse_job

    def job(hosts: list[str]) -> dict:
        body = {"renderer": "shell", "start": 1, "end": 1, "params": {"cmd": "true"}}
        return {**body, "requirements": {"hosts": hosts, "exclude_hosts": hosts}}

    assert parse_job(job(["render*", "gpu[0-9]?", "node!x"]))
    for bad in (["a b"], ["x" * 101], ["render*"] * (MAX_HOST_GLOBS + 1), ["\x1b[31m"]):
        with pytest.raises(InvalidJob):
            parse_job(job(bad))
