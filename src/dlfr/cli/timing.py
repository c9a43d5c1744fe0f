"""Timing calls with the standard library's :mod:`timeit`, and saying how long they took."""

from __future__ import annotations

import statistics
import time
import timeit
from collections.abc import Callable
from typing import Any

#: The total time :meth:`timeit.Timer.autorange` runs calls for before it stops.
AUTORANGE_SECONDS = 0.2


def best_of(call: Callable[[], Any], runs: int) -> float:
    """Seconds of the fastest of ``runs`` single calls, after one call to warm up."""
    call()
    return min(timeit.Timer(call, timer=time.perf_counter).repeat(repeat=runs, number=1))


def seconds_per_call(call: Callable[[], Any], repeat: int, min_time: float) -> float:
    """Median seconds per call over ``repeat`` timings, each of enough calls to last
    ``min_time`` seconds.

    timeit's autorange picks the number of calls (1, 2, 5, 10, 20, ...) by the clock it is
    given, and stops at 0.2 s of it: on a clock running ``0.2 / min_time`` times as fast as
    :func:`time.perf_counter` it stops at ``min_time``. The times the timer reports are on
    that clock too, and are scaled back.
    """
    speed = AUTORANGE_SECONDS / min_time

    def clock() -> float:
        return time.perf_counter() * speed

    timer = timeit.Timer(call, timer=clock)
    number, _ = timer.autorange()  # its first call, alone, warms up
    return statistics.median(timer.repeat(repeat=repeat, number=number)) / speed / number


def format_seconds(seconds: float) -> str:
    """``seconds`` in s, ms, us or ns, three significant digits: ``"1.23 ms"``."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"
