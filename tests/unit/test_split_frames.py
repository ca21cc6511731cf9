"""split_frames builds its blocks in one comprehension with the cyclic GC paused (for speed on
a million frames); it must give exactly the blocks the plain loop gave, and leave the GC as it
found it.  (test_models.py has the worked examples.)
"""

from __future__ import annotations

import gc

from hypothesis import given
from hypothesis import strategies as st

from drqueue.models import FrameBlock, split_frames


def split_by_the_plain_loop(
    start: int, end: int, step: int, frames_per_task: int
) -> list[FrameBlock]:
    count = (end - start) // step + 1
    stride = step * frames_per_task
    return [
        FrameBlock(first, min(first + stride - step, start + (count - 1) * step), step)
        for first in range(start, end + 1, stride)
    ]


@given(
    start=st.integers(-1000, 1000),
    length=st.integers(0, 500),
    step=st.integers(1, 20),
    frames_per_task=st.integers(1, 60),
)
def test_split_gives_the_blocks_of_the_plain_loop(start, length, step, frames_per_task):
    end = start + length
    assert split_frames(start, end, step, frames_per_task) == split_by_the_plain_loop(
        start, end, step, frames_per_task
    )


def test_split_leaves_the_gc_on_when_it_was_on_and_off_when_it_was_off():
    assert gc.isenabled()
    split_frames(1, 1000)
    assert gc.isenabled()
    gc.disable()
    try:
        split_frames(1, 1000)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_million_frames_make_a_million_blocks():
    blocks = split_frames(1, 1_000_000)
    assert len(blocks) == 1_000_000
    assert (blocks[0], blocks[-1]) == (FrameBlock(1, 1, 1), FrameBlock(1_000_000, 1_000_000, 1))
