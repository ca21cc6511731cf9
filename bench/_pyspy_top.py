"""Summarise a py-spy raw (collapsed-stack) file: samples per thread, top functions, a subtree.

    python bench/_pyspy_top.py PROFILE.txt                 # threads, top self and inclusive frames
    python bench/_pyspy_top.py PROFILE.txt Dispatcher.step  # what one function's time goes to

Not a benchmark (run_all.py skips files that start with "_").  Without ``--gil``, py-spy counts
a thread that waits for the GIL as busy on its current line, so these are wall-time shares of
non-idle threads, not pure CPU.
"""

from __future__ import annotations

import collections
import sys


def read(path: str) -> list[tuple[list[str], int]]:
    stacks = []
    with open(path) as f:
        for line in f:
            stack, _, count = line.rstrip().rpartition(" ")
            if stack:
                stacks.append((stack.split(";"), int(count)))
    return stacks


def short(frame: str) -> str:
    return frame.replace(" (", " ").rstrip(")")


def summary(stacks: list[tuple[list[str], int]], top: int = 25) -> None:
    total = sum(n for _, n in stacks)
    threads: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    for frames, n in stacks:
        threads[frames[0].split(": ", 1)[-1]] += n
        own[short(frames[-1])] += n
        for frame in {short(f.split(" (")[0]) for f in frames[1:]}:
            inclusive[frame] += n
    print(f"{total} samples")
    print("threads:", ", ".join(f"{t} {100 * n / total:.0f}%" for t, n in threads.most_common()))
    print("\nself (line):")
    for frame, n in own.most_common(top):
        print(f"  {100 * n / total:5.1f}%  {frame}")
    print("\ninclusive (function):")
    for frame, n in inclusive.most_common(top * 2):
        print(f"  {100 * n / total:5.1f}%  {frame}")


def subtree(stacks: list[tuple[list[str], int]], root: str, depth: int = 1) -> None:
    below: collections.Counter[str] = collections.Counter()
    total = 0
    for frames, n in stacks:
        hits = [i for i, f in enumerate(frames) if f.startswith(root + " ")]
        if not hits:
            continue
        i = hits[0]
        total += n
        below[";".join(short(f) for f in frames[i + 1 : i + 1 + depth]) or "<self>"] += n
    print(f"{root}: {total} samples")
    for frame, n in below.most_common(30):
        print(f"  {100 * n / max(1, total):5.1f}%  {frame}")


if __name__ == "__main__":
    data = read(sys.argv[1])
    if len(sys.argv) > 2:
        subtree(data, sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 1)
    else:
        summary(data)
