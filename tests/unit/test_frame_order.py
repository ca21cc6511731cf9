"""The order of a job's tasks (--order) and which upstream tasks a task waits for
(--after JOB:frames): the pure rules in drqueue.models."""

from __future__ import annotations

import pytest

from drqueue.models import (
    FrameBlock,
    FrameGrid,
    first_task_index,
    preview_order,
    split_frames,
    task_ranks,
    upstream_indexes,
)


def test_preview_order_is_first_last_middle_then_bisects_the_gaps():
    assert preview_order(9) == [0, 8, 4, 2, 6, 1, 3, 5, 7]
    assert preview_order(100)[:7] == [0, 99, 49, 24, 74, 12, 36]


@pytest.mark.parametrize("count", [0, 1, 2, 3, 4, 5, 7, 16, 17, 100, 1001])
def test_preview_order_holds_every_task_once(count):
    assert sorted(preview_order(count)) == list(range(count))


def test_preview_order_of_100000_tasks_is_quick_enough_to_make_at_submit():
    order = preview_order(100_000)
    assert order[:3] == [0, 99_999, 49_999]
    assert len(set(order)) == 100_000


def test_ranks_give_each_index_its_place_in_the_order():
    assert task_ranks(4, "sequential") == [0, 1, 2, 3]
    assert task_ranks(4, "reverse") == [3, 2, 1, 0]
    ranks = task_ranks(9, "preview")
    assert sorted(range(9), key=ranks.__getitem__) == preview_order(9)


def test_the_first_task_of_each_order():
    assert first_task_index(10, "sequential") == 0
    assert first_task_index(10, "preview") == 0
    assert first_task_index(10, "reverse") == 9


def test_a_task_waits_for_the_upstream_tasks_of_its_frames_whatever_the_block_sizes():
    render = FrameGrid(1, 20, 1, 3)  # tasks 1-3, 4-6, 7-9 ... 19-20
    assert list(upstream_indexes(FrameBlock(1, 1), render)) == [0]
    assert list(upstream_indexes(FrameBlock(3, 4), render)) == [0, 1]
    assert list(upstream_indexes(FrameBlock(5, 12), render)) == [1, 2, 3]
    assert list(upstream_indexes(FrameBlock(19, 20), render)) == [6]
    # A comp in blocks of 2 over a render in blocks of 3: each comp task, checked frame by frame.
    for block in split_frames(1, 20, 1, 2):
        expected = sorted({(frame - 1) // 3 for frame in block.frames})
        assert list(upstream_indexes(block, render)) == expected


def test_frames_the_upstream_job_does_not_render_wait_for_nothing():
    render = FrameGrid(10, 20, 1, 1)
    assert list(upstream_indexes(FrameBlock(1, 5), render)) == []
    assert list(upstream_indexes(FrameBlock(8, 11), render)) == [0, 1]
    assert list(upstream_indexes(FrameBlock(20, 30), render)) == [10]


def test_other_steps_match_by_frame_number():
    every_other = FrameGrid(1, 9, 2, 1)  # frames 1, 3, 5, 7, 9: tasks 0..4
    assert list(upstream_indexes(FrameBlock(1, 4), every_other)) == [0, 1]
    assert list(upstream_indexes(FrameBlock(2, 2), every_other)) == []
    assert list(upstream_indexes(FrameBlock(3, 9, 3), every_other)) == [1, 4]


def test_overlap_by_frame_number():
    assert FrameGrid(1, 10, 1, 1).overlaps(FrameGrid(10, 20, 1, 5))
    assert not FrameGrid(1, 10, 1, 1).overlaps(FrameGrid(11, 20, 1, 1))
    assert not FrameGrid(1, 99, 2, 1).overlaps(FrameGrid(2, 100, 2, 1))  # odd and even
    assert FrameGrid(0, 100, 4, 1).overlaps(FrameGrid(2, 100, 6, 1))  # 8
    assert not FrameGrid(0, 7, 4, 1).overlaps(FrameGrid(2, 10, 6, 1))  # 0, 4 and 2, 8


def test_overlap_agrees_with_the_frames_themselves():
    import random

    rng = random.Random(15)
    for _ in range(2000):
        grids = []
        for _ in range(2):
            start = rng.randint(-20, 20)
            grids.append(FrameGrid(start, start + rng.randint(0, 40), rng.randint(1, 9), 1))
        frames = [set(range(g.start, g.end + 1, g.step)) for g in grids]
        assert grids[0].overlaps(grids[1]) == bool(frames[0] & frames[1]), grids


def test_overlap_of_huge_steps_costs_no_loop():
    assert FrameGrid(0, 10**9, 999_983, 1).overlaps(FrameGrid(0, 10**9, 999_979, 1))  # frame 0
    assert not FrameGrid(0, 10**9, 999_983, 1).overlaps(FrameGrid(1, 10**9, 999_983, 1))
