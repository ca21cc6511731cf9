"""The rules in drqueue.models: frame splitting, task states, job status, env pairs, padding."""

from __future__ import annotations

import pytest

from drqueue.errors import InvalidJob
from drqueue.models import (
    ACTIVE_STATES,
    MAX_FRAMES,
    TERMINAL_STATES,
    TRANSITIONS,
    Counts,
    FrameBlock,
    JobControl,
    JobSpec,
    TaskState,
    check_transition,
    job_status,
    pad_frame,
    parse_env,
    split_frames,
)


def frames_of(blocks: list[FrameBlock]) -> list[list[int]]:
    return [block.frames for block in blocks]


# -- frame splitting ---------------------------------------------------------------------------


def test_split_one_frame_per_task_gives_one_task_per_frame():
    blocks = split_frames(1, 5)
    assert frames_of(blocks) == [[1], [2], [3], [4], [5]]
    assert all(block.step == 1 for block in blocks)


def test_split_into_blocks_leaves_a_short_last_block():
    blocks = split_frames(1, 10, 1, 4)
    assert blocks == [FrameBlock(1, 4, 1), FrameBlock(5, 8, 1), FrameBlock(9, 10, 1)]
    assert [len(block) for block in blocks] == [4, 4, 2]


def test_split_block_size_divides_the_range_exactly():
    assert split_frames(1, 6, 1, 3) == [FrameBlock(1, 3, 1), FrameBlock(4, 6, 1)]


def test_split_with_step_renders_every_nth_frame():
    blocks = split_frames(1, 10, 3, 1)
    assert frames_of(blocks) == [[1], [4], [7], [10]]


def test_split_with_step_and_blocks():
    blocks = split_frames(1, 10, 3, 2)
    assert blocks == [FrameBlock(1, 4, 3), FrameBlock(7, 10, 3)]
    assert frames_of(blocks) == [[1, 4], [7, 10]]


def test_split_with_step_that_overshoots_the_end_stops_at_the_last_reachable_frame():
    blocks = split_frames(1, 9, 3, 2)
    assert blocks == [FrameBlock(1, 4, 3), FrameBlock(7, 7, 3)]
    assert frames_of(blocks) == [[1, 4], [7]]


def test_split_single_frame_job():
    assert split_frames(7, 7) == [FrameBlock(7, 7, 1)]
    assert split_frames(7, 7, 5, 10) == [FrameBlock(7, 7, 5)]
    assert len(split_frames(7, 7)[0]) == 1


def test_split_block_larger_than_the_range_is_one_task():
    assert split_frames(1, 3, 1, 100) == [FrameBlock(1, 3, 1)]


def test_split_negative_range():
    assert frames_of(split_frames(-5, -1, 1, 2)) == [[-5, -4], [-3, -2], [-1]]


def test_split_range_through_zero_with_step():
    assert split_frames(-3, 3, 3, 1) == [
        FrameBlock(-3, -3, 3),
        FrameBlock(0, 0, 3),
        FrameBlock(3, 3, 3),
    ]


def test_split_frame_zero_alone():
    assert split_frames(0, 0) == [FrameBlock(0, 0, 1)]


@pytest.mark.parametrize(
    ("start", "end", "step", "block", "tasks", "frames"),
    [
        (1, 250, 1, 1, 250, 250),
        (1, 250, 1, 5, 50, 250),
        (1, 250, 1, 7, 36, 250),
        (1, 250, 2, 5, 25, 125),
        (0, 99, 10, 3, 4, 10),
        (-100, 100, 1, 10, 21, 201),
        (1001, 1100, 1, 25, 4, 100),
    ],
)
def test_split_counts(start, end, step, block, tasks, frames):
    blocks = split_frames(start, end, step, block)
    assert len(blocks) == tasks
    every = [frame for b in blocks for frame in b.frames]
    assert len(every) == frames
    assert every == list(range(start, end + 1, step)), "frames are covered once each, in order"
    assert sum(len(b) for b in blocks) == frames


def test_split_refuses_end_before_start():
    with pytest.raises(InvalidJob, match="end frame 1 is before start frame 5"):
        split_frames(5, 1)


@pytest.mark.parametrize("step", [0, -1])
def test_split_refuses_step_below_one(step):
    with pytest.raises(InvalidJob, match=f"step must be at least 1, not {step}"):
        split_frames(1, 10, step, 1)


@pytest.mark.parametrize("block", [0, -3])
def test_split_refuses_block_size_below_one(block):
    with pytest.raises(InvalidJob, match=f"block size must be at least 1, not {block}"):
        split_frames(1, 10, 1, block)


def test_split_refuses_more_frames_than_a_job_may_hold():
    with pytest.raises(InvalidJob, match="more than the"):
        split_frames(1, MAX_FRAMES + 1)
    assert len(split_frames(1, MAX_FRAMES, 1, MAX_FRAMES)) == 1


def test_frame_block_length_and_frames_agree():
    block = FrameBlock(2, 14, 4)
    assert block.frames == [2, 6, 10, 14]
    assert len(block) == 4


def test_job_spec_validate_uses_the_same_frame_rules():
    with pytest.raises(InvalidJob, match="before start"):
        JobSpec("shell", 10, 1).validate()
    with pytest.raises(InvalidJob, match="block size"):
        JobSpec("shell", 1, 10, block_size=0).validate()
    with pytest.raises(InvalidJob, match="retries"):
        JobSpec("shell", 1, 10, retries=-1).validate()
    JobSpec("shell", -10, -1, step=3, block_size=2).validate()


# -- the task state machine -----------------------------------------------------------------------

LEGAL = [
    (TaskState.QUEUED, TaskState.DISPATCHED),
    (TaskState.QUEUED, TaskState.CANCELLED),
    (TaskState.QUEUED, TaskState.ERROR),
    (TaskState.DISPATCHED, TaskState.RUNNING),
    (TaskState.DISPATCHED, TaskState.FINISHED),
    (TaskState.DISPATCHED, TaskState.QUEUED),
    (TaskState.RUNNING, TaskState.FINISHED),
    (TaskState.RUNNING, TaskState.QUEUED),
    (TaskState.RUNNING, TaskState.ERROR),
    (TaskState.RUNNING, TaskState.CANCELLED),
    (TaskState.FINISHED, TaskState.QUEUED),
    (TaskState.ERROR, TaskState.QUEUED),
    (TaskState.CANCELLED, TaskState.QUEUED),
]

ILLEGAL = [
    (TaskState.QUEUED, TaskState.RUNNING),
    (TaskState.QUEUED, TaskState.FINISHED),
    (TaskState.RUNNING, TaskState.DISPATCHED),
    (TaskState.FINISHED, TaskState.RUNNING),
    (TaskState.FINISHED, TaskState.ERROR),
    (TaskState.FINISHED, TaskState.CANCELLED),
    (TaskState.FINISHED, TaskState.DISPATCHED),
    (TaskState.ERROR, TaskState.FINISHED),
    (TaskState.ERROR, TaskState.DISPATCHED),
    (TaskState.CANCELLED, TaskState.FINISHED),
    (TaskState.CANCELLED, TaskState.RUNNING),
]


@pytest.mark.parametrize(("old", "new"), LEGAL, ids=lambda s: str(s))
def test_legal_transition_is_allowed(old, new):
    check_transition(old, new)


@pytest.mark.parametrize(("old", "new"), ILLEGAL, ids=lambda s: str(s))
def test_illegal_transition_is_refused(old, new):
    with pytest.raises(ValueError, match=f"illegal task transition {old} -> {new}"):
        check_transition(old, new)


def test_no_state_moves_to_itself_through_check_transition():
    for state in TaskState:
        with pytest.raises(ValueError):
            check_transition(state, state)


def test_every_state_has_its_transitions_and_every_ended_task_can_be_requeued():
    assert set(TRANSITIONS) == set(TaskState)
    for state in TERMINAL_STATES:
        assert TaskState.QUEUED in TRANSITIONS[state]
    # A finished frame may only ever be rendered again on a user's request (to queued).
    assert TRANSITIONS[TaskState.FINISHED] == frozenset({TaskState.QUEUED})
    assert {TaskState.DISPATCHED, TaskState.RUNNING} == ACTIVE_STATES
    assert not ACTIVE_STATES & TERMINAL_STATES


# -- parse_env --------------------------------------------------------------------------------------


def test_parse_env_pairs():
    assert parse_env(["A=1", "B_2=two words", "_X="]) == {"A": "1", "B_2": "two words", "_X": ""}


def test_parse_env_value_may_contain_equals_signs():
    assert parse_env(["OPTS=a=b=c"]) == {"OPTS": "a=b=c"}


def test_parse_env_later_pair_wins():
    assert parse_env(["A=1", "A=2"]) == {"A": "2"}


def test_parse_env_empty():
    assert parse_env([]) == {}
    assert parse_env(()) == {}


@pytest.mark.parametrize("pair", ["NOEQUALS", "=value", "1A=x", "A-B=x", "A B=x", ""])
def test_parse_env_refuses_malformed_pairs(pair):
    with pytest.raises(InvalidJob, match="--env wants NAME=VALUE"):
        parse_env([pair])


# -- job status ------------------------------------------------------------------------------------

ACTIVE, STOPPED = JobControl.ACTIVE, JobControl.STOPPED


@pytest.mark.parametrize(
    ("control", "counts", "waiting_for", "status"),
    [
        (ACTIVE, Counts(total=4, queued=4), None, "queued"),
        (ACTIVE, Counts(total=4, queued=3, running=1), None, "running"),
        (ACTIVE, Counts(total=4, finished=4), None, "finished"),
        (ACTIVE, Counts(total=4, finished=3, error=1), None, "error"),
        (ACTIVE, Counts(total=4, finished=3, cancelled=1), None, "cancelled"),
        (ACTIVE, Counts(total=4, error=1, cancelled=3), None, "error"),
        (ACTIVE, Counts(total=4, finished=3, error=1), [7], "error"),
        (ACTIVE, Counts(total=4, queued=1, finished=2, error=1), None, "queued"),
        (ACTIVE, Counts(total=4, queued=4), [7], "waiting"),
        (ACTIVE, Counts(total=4, queued=3, running=1), [7], "running"),
        (STOPPED, Counts(total=4, queued=3, running=1), None, "stopping"),
        (STOPPED, Counts(total=4, queued=4), None, "stopped"),
        (STOPPED, Counts(total=4, queued=4), [7], "stopped"),
        (STOPPED, Counts(total=4, finished=4), None, "finished"),
        (ACTIVE, Counts(total=0), None, "queued"),
        ("stopped", Counts(total=2, queued=2), None, "stopped"),
    ],
)
def test_job_status_is_derived_from_control_and_counts(control, counts, waiting_for, status):
    assert job_status(control, counts, waiting_for) == status


# -- pad_frame ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "padding", "padded"),
    [
        (1, 4, "0001"),
        (0, 4, "0000"),
        (42, 2, "42"),
        (12345, 4, "12345"),
        (7, 1, "7"),
        (7, 0, "7"),
        (-5, 4, "-0005"),
        (-12345, 4, "-12345"),
    ],
)
def test_pad_frame(frame, padding, padded):
    assert pad_frame(frame, padding) == padded


def test_task_seconds_trusts_the_runners_monotonic_measure_and_clamps_a_wall_clock():
    from drqueue.models import task_seconds

    assert task_seconds({"seconds": 12.5, "started_at": 0, "ended_at": 1e9}, 3.0) == 12.5
    assert task_seconds({"seconds": -1.0}, 3.0) == 0.0
    assert task_seconds({"seconds": float("nan")}, 3.0) == 3.0
    # A slave clock a day ahead or behind cannot make a task longer than the master saw it run,
    # nor negative.
    assert task_seconds({"started_at": 100.0, "ended_at": 100.0 + 86400}, 3.0) == 3.0
    assert task_seconds({"started_at": 100.0 + 86400, "ended_at": 100.0}, 3.0) == 0.0
    assert task_seconds({"started_at": 100.0, "ended_at": 101.5}, 3.0) == 1.5
    assert task_seconds({}, 3.0) == 3.0
