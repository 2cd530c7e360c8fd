"""Timing shared by the benchmark scripts: contenders run alternately, round by round."""

from __future__ import annotations

import time


def alternated(runnable: dict, repeat: int) -> dict[str, list[float]]:
    """Seconds of each call of ``runnable`` (name -> function of no arguments), ``repeat``
    rounds, every contender once a round in turn: a change in the machine's load falls
    on all of them alike, not on whichever ran at that moment."""
    times = {name: [] for name in runnable}
    for _ in range(repeat):
        for name, fn in runnable.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times
