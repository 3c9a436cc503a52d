"""Probes that run inside measuring workers: CPU, RSS, event-loop stalls, garbage collections, poll times."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import resource
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from benchmarks._common import BenchError

if TYPE_CHECKING:
    from collections.abc import Iterable


def cpu_seconds() -> float:
    """CPU time (user + system, all threads) of this process so far (``getrusage(RUSAGE_SELF)``)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def children_cpu_seconds() -> float:
    """CPU time (user + system) of this process's waited-for children so far (``RUSAGE_CHILDREN``)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def rss_bytes() -> int:
    """Resident set size of this process now (Linux ``/proc``; psutil elsewhere)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux
        import psutil

        return int(psutil.Process().memory_info().rss)


def max_rss_bytes() -> int:
    """Peak RSS of this process's life so far (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


class RssSampler:
    """Extra peak RSS of a section of code, relative to the RSS when :meth:`start` is called.

    A thread samples RSS every ``interval`` seconds; ``ru_maxrss`` catches peaks between two
    samples when they exceed every earlier peak of the process. Both are lower bounds of the
    true peak; :attr:`extra` is the larger of the two deltas.
    """

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.baseline = 0
        self.peak = 0
        self._max_rss_before = 0
        self._max_rss_after = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> RssSampler:
        """Take the baseline and start sampling."""
        self.baseline = self.peak = rss_bytes()
        self._max_rss_before = max_rss_bytes()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss_bytes())

    def stop(self) -> int:
        """Stop sampling and return :attr:`extra`."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self.peak, rss_bytes())
        self._max_rss_after = max_rss_bytes()
        return self.extra

    @property
    def extra(self) -> int:
        """Extra peak RSS in bytes over the baseline."""
        sampled = self.peak - self.baseline
        lifetime = self._max_rss_after - self._max_rss_before
        return max(0, sampled, lifetime)


class LoopWatchdog:
    """Longest event-loop stall, measured like the triggerer's watchdog.

    A coroutine sleeps ``tick`` seconds over and over and records by how much each wake-up
    came late: a callback that held the loop for ``x`` seconds shows up as a stall of about
    ``x``. The triggerer warns when its loop is blocked for more than 0.2 s.
    """

    def __init__(self, tick: float = 0.05) -> None:
        self.tick = tick
        self.max_stall = 0.0
        self.stalls: list[float] = []
        self._asleep_since = time.perf_counter()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> LoopWatchdog:
        """Start watching the running loop."""
        self._task = asyncio.get_running_loop().create_task(self._watch())
        return self

    async def _watch(self) -> None:
        while True:
            self._asleep_since = time.perf_counter()
            await asyncio.sleep(self.tick)
            self._record(time.perf_counter() - self._asleep_since - self.tick)

    def _record(self, late: float) -> None:
        self.stalls.append(late)
        self.max_stall = max(self.max_stall, late)

    def in_flight(self) -> float:
        """How late the current wake-up already is (a stall still going on); 0 if none."""
        return max(0.0, time.perf_counter() - self._asleep_since - self.tick)

    async def stop(self) -> float:
        """Stop watching and return the longest stall in seconds."""
        if self._task is not None:
            # A stall just before stop() has not been seen by a wake-up yet: count it too.
            late = self.in_flight()
            if late > 0:
                self._record(late)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        return self.max_stall


class GcPauses:
    """Garbage collections while it records: the longest pause, and when each full one ran.

    Explains event-loop stalls and slow polls that no trigger caused: a full (generation 2)
    collection walks every live object of the process (all of Airflow in a triggerer) while the
    loop waits, and the timers that came due meanwhile then fire together.
    """

    def __init__(self) -> None:
        self.longest = 0.0
        self.full_collections = 0
        #: (perf_counter start, duration) of each full collection.
        self.full_windows: list[tuple[float, float]] = []
        self.young_collections = 0
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        took = time.perf_counter() - self._started
        self.longest = max(self.longest, took)
        if info.get("generation") == 2:
            self.full_collections += 1
            self.full_windows.append((self._started, took))
        elif info.get("generation") == 0:
            self.young_collections += 1

    def start(self) -> GcPauses:
        """Start recording."""
        gc.callbacks.append(self._callback)
        return self

    def stop(self) -> None:
        """Stop recording."""
        gc.callbacks.remove(self._callback)

    def tracked_allocations(self) -> int:
        """Roughly how many GC-tracked objects were allocated (net of frees) while recording.

        A young collection runs every ``gc.get_threshold()[0]`` (700) net allocations.
        """
        return self.young_collections * gc.get_threshold()[0]

    def near_full_collection(self, start: float, took: float, after: float = 0.3) -> bool:
        """Whether ``[start, start + took]`` overlaps a full collection or the ``after`` s that follow it.

        The timers a pause delayed fire together when it ends: their polls queue for the loop.
        """
        return any(begin <= start + took and start <= begin + pause + after for begin, pause in self.full_windows)


def heavy_modules(names: Iterable[str] = ("requests", "aiohttp", "boto3", "botocore", "google.cloud")) -> list[str]:
    """Which of the expensive client libraries are imported in this interpreter."""
    return [name for name in names if name in sys.modules]


def instrument_polls() -> list[tuple[float, float]]:
    """Record ``(start, duration)`` (``perf_counter`` seconds) of every callback poll from now on.

    Wraps ``FollowAnalyticsHook.aget_export_status``, the one call the trigger makes per poll,
    so a duration is what the trigger waits for one poll: the request, the answer, and any
    time the answer waited for the event loop. Call it in a worker, before the polls start.
    """
    from airflow_provider_followanalytics.hooks.followanalytics import FollowAnalyticsHook

    polls: list[tuple[float, float]] = []
    original = FollowAnalyticsHook.aget_export_status

    async def timed(self: FollowAnalyticsHook, callback_url: str) -> str:
        start = time.perf_counter()
        try:
            return await original(self, callback_url)
        finally:
            polls.append((start, time.perf_counter() - start))

    FollowAnalyticsHook.aget_export_status = timed  # type: ignore[method-assign]
    return polls


async def first_event(trigger: Any) -> dict[str, Any]:
    """Run a trigger the way the triggerer does and return its first event's payload."""
    events = trigger.run()
    try:
        event = await events.__anext__()
    except StopAsyncIteration:
        raise BenchError(f"{type(trigger).__name__} ended without an event") from None
    finally:
        await events.aclose()
    payload: dict[str, Any] = event.payload
    return payload
