"""Plumbing shared by the benchmarks: result rows, worker and server processes, probes.

The parent side (``run.py`` and each benchmark's ``run()``) uses the standard library only:
it starts servers and measuring workers as separate processes and reads their results.
Each measurement runs in a fresh interpreter (a *worker*, ``python -m benchmarks.<name>
worker ...``), so its RSS baseline and import state are clean; a worker prints exactly one
result line, ``BENCH-RESULT {json}``, on stdout. Servers run in their own processes so that
they never share a GIL with what is measured.

The probes at the bottom (:class:`RssSampler`, :class:`LoopWatchdog`) run inside workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import http.client
import json
import math
import os
import queue
import re
import resource
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from benchmarks._table import Row, text_table

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from types import TracebackType

ROOT = Path(__file__).resolve().parent.parent
#: Logs, work files and results; ``FA_BENCH_DIR`` moves it (the smoke tests use a temp dir).
BENCH_DIR = Path(os.environ.get("FA_BENCH_DIR") or ROOT / ".bench")
LOG_DIR = BENCH_DIR / "logs"
WORK_DIR = BENCH_DIR / "work"
RESULT_PREFIX = "BENCH-RESULT "

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30

#: The emulator account every benchmark logs in with.
EMAIL = "bench@example.com"
PASSWORD = "bench-password-4242"  # noqa: S105 - the local emulator's throwaway account
#: An export path the emulator accepts (callback URLs come from it).
EXPORT_PATH = "/api/performance_export.csv?apps=FAAPPLI_bench&sd=0&ed=86400&skip_email=true"
#: Statuses of a result row.


class BenchError(RuntimeError):
    """A benchmark could not produce its figures (a server or worker failed)."""


@dataclasses.dataclass
class Options:
    """Run-wide options: ``quick`` shrinks every size and window to seconds."""

    quick: bool = False


def verdict(ok: bool | None) -> str:
    """``pass``/``fail``, or ``n/a`` when the check could not be made."""
    return "n/a" if ok is None else ("pass" if ok else "fail")


def na_rows(benchmark: str, figures: Sequence[tuple[str, str, str]], reason: str) -> list[Row]:
    """Rows for figures that could not be measured: (figure, unit, target) each, with the reason."""
    return [
        Row(benchmark, figure, None, None, unit, "", target, "n/a", note=reason) for figure, unit, target in figures
    ]


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by nearest rank; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def median(values: Sequence[float]) -> float:
    """The median (the mean of the middle two for an even count)."""
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


# ---------------------------------------------------------------------------------------- processes


def worker_env(**extra: str) -> dict[str, str]:
    """Environment of a worker or server: a private AIRFLOW_HOME, quiet logs, no proxies.

    Connections are passed as ``AIRFLOW_CONN_*`` variables in ``extra``.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AWS_", "STORAGE_EMULATOR"))}
    home = BENCH_DIR / "airflow-home"
    home.mkdir(parents=True, exist_ok=True)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
            "NO_PROXY": "*",
            "no_proxy": "*",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


def fa_conn_env(emulator_url: str) -> dict[str, str]:
    """``AIRFLOW_CONN_FOLLOWANALYTICS_DEFAULT`` for the emulator (generous timeout, default retries)."""
    conn = {
        "conn_type": "followanalytics",
        "login": EMAIL,
        "password": PASSWORD,
        "host": emulator_url,
        "extra": {"timeout": 60},
    }
    return {"AIRFLOW_CONN_FOLLOWANALYTICS_DEFAULT": json.dumps(conn)}


def http_conn_env(emulator_url: str) -> dict[str, str]:
    """``AIRFLOW_CONN_HTTP_DEFAULT`` for the stock HTTP operators and triggers (the anchors)."""
    parts = urllib.parse.urlsplit(emulator_url)
    conn = {"conn_type": "http", "host": parts.hostname, "port": parts.port, "schema": parts.scheme}
    return {"AIRFLOW_CONN_HTTP_DEFAULT": json.dumps(conn)}


def module_command(module: str, *args: object) -> list[str]:
    """The command of a worker: ``python -m <module> worker <args>``."""
    return [sys.executable, "-m", module, "worker", *map(str, args)]


class Worker:
    """A measuring worker: a fresh interpreter running ``command`` (see :func:`module_command`).

    stderr goes to ``.bench/logs/<log_name>.log``; :meth:`result` waits and returns the JSON
    the worker printed after :data:`RESULT_PREFIX`.
    """

    def __init__(self, command: Sequence[str], *, env: dict[str, str], log_name: str, timeout: float = 600.0) -> None:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.log_path = LOG_DIR / f"{log_name}.log"
        self.timeout = timeout
        self.name = log_name
        self._log = self.log_path.open("w")
        self._proc = subprocess.Popen(
            list(command), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=self._log, text=True
        )

    def result(self) -> dict[str, Any]:
        """Wait for the worker and return its result; raise :class:`BenchError` if it has none."""
        try:
            out, _ = self._proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            out, _ = self._proc.communicate()
            raise BenchError(f"worker {self.name} timed out after {self.timeout:.0f}s") from None
        finally:
            self._log.close()
        for line in reversed(out.splitlines()):
            if line.startswith(RESULT_PREFIX):
                result: dict[str, Any] = json.loads(line[len(RESULT_PREFIX) :])
                return result
        tail = self.log_path.read_text(errors="replace").strip().splitlines()[-5:]
        raise BenchError(
            f"worker {self.name} exited with {self._proc.returncode} and no result "
            f"(log {self.log_path}): {' | '.join(tail)}"
        )


def run_worker(
    module: str, args: Sequence[object], *, env: dict[str, str], log_name: str, timeout: float = 600.0
) -> dict[str, Any]:
    """Run ``python -m <module> worker <args>`` to completion and return its result."""
    return Worker(module_command(module, *args), env=env, log_name=log_name, timeout=timeout).result()


class ServerProcess:
    """A server in its own process; ``url`` is read from the first line matching ``http://...``."""

    _URL = re.compile(r"(https?://[0-9A-Za-z.\[\]:-]+)")

    def __init__(self, name: str, command: Sequence[str], *, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.command = list(command)
        self.env = env or worker_env()
        self.url = ""
        self._proc: subprocess.Popen[str] | None = None
        self._log: IO[str] | None = None

    def __enter__(self) -> ServerProcess:
        """Start the server and wait (up to 120 s) for it to print its URL."""
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self._log = (LOG_DIR / f"server-{self.name}.log").open("w")
        self._proc = subprocess.Popen(
            self.command, cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=self._log, text=True
        )
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(self._proc.stdout, lines), daemon=True).start()
        deadline = time.monotonic() + 120
        while not self.url:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                self.__exit__(None, None, None)
                raise BenchError(f"{self.name} server did not start; see {LOG_DIR / f'server-{self.name}.log'}")
            match = self._URL.search(line)
            if match:
                self.url = match.group(1)
        return self

    def _pump(self, stream: IO[str] | None, lines: queue.Queue[str | None]) -> None:
        assert stream is not None
        for line in stream:
            lines.put(line)
            if self._log is not None and not self._log.closed:
                with contextlib.suppress(ValueError):
                    self._log.write(line)
        lines.put(None)

    @property
    def pid(self) -> int:
        """The server's process id."""
        assert self._proc is not None
        return self._proc.pid

    def cpu_seconds(self) -> float | None:
        """CPU time (user + system, all threads) the server used so far; None off Linux."""
        return process_cpu_seconds(self.pid)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._log is not None:
            self._log.close()


def process_cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) of a process, from ``/proc/<pid>/stat``; None when unavailable."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def cpu_seconds() -> float:
    """CPU time (user + system, all threads) of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def emulator_process(export_size: int = 4096, name: str = "emulator") -> ServerProcess:
    """The FollowAnalytics emulator, run the way a user runs it (``python -m ...emulator``)."""
    command = [
        sys.executable,
        "-m",
        "airflow_provider_followanalytics.emulator",
        "--port",
        "0",
        "--email",
        EMAIL,
        "--password",
        PASSWORD,
        "--export-size",
        str(export_size),
    ]
    return ServerProcess(name, command)


def moto_process() -> ServerProcess:
    """moto's S3 server in its own process."""
    return ServerProcess("moto", [sys.executable, "-m", "standins.servers", "moto"])


def proxy_process(target_url: str, bytes_per_second: float) -> ServerProcess:
    """A TCP proxy to ``target_url`` that paces downloads to ``bytes_per_second`` (a WAN stand-in)."""
    command = [sys.executable, "-m", "standins.servers", "proxy", target_url, str(bytes_per_second)]
    return ServerProcess("proxy", command)


def gcs_process() -> ServerProcess:
    """gcp-storage-emulator (in memory) in its own process."""
    return ServerProcess("gcs", [sys.executable, "-m", "standins.servers", "gcs"])


# ---------------------------------------------------------------------------------------- emulator


class EmulatorClient:
    """Drive an out-of-process emulator: control endpoints, login, new exports (stdlib only)."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self.url = url.rstrip("/")
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        self._conn: http.client.HTTPConnection | None = None

    def _request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        all_headers = {"Accept": "application/json", **(headers or {})}
        if data is not None:
            all_headers["Content-Type"] = "application/json"
        for attempt in (1, 2):  # one reconnect if the kept-alive connection was closed
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self._host, self._port, timeout=60)
            try:
                self._conn.request(method, path, body=data, headers=all_headers)
                response = self._conn.getresponse()
                text = response.read()
                return response.status, json.loads(text) if text else None
            except (OSError, http.client.HTTPException):
                self._conn.close()
                self._conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _control(self, method: str, action: str, body: Any = None) -> Any:
        status, payload = self._request(method, f"/_emulator/{action}", body)
        if status != 200:
            raise BenchError(f"emulator {action} answered {status}: {payload}")
        return payload

    def configure(self, **settings: Any) -> None:
        """Set emulator knobs (``never_ready``, ``export_size``, ``ready_after``, ...)."""
        self._control("POST", "config", settings)

    def add_fault(self, **fault: Any) -> None:
        """Inject a fault (``route``, ``kind``, ``status``, ``count``, ``retry_after``, ...)."""
        self._control("POST", "faults", fault)

    def state(self) -> dict[str, Any]:
        """Counters: ``login_count``, ``requests`` per route, ``bytes_sent``, ..."""
        state: dict[str, Any] = self._control("GET", "state")
        return state

    def login(self) -> str:
        """Log in as the benchmark account and return an auth token."""
        status, payload = self._request("POST", "/api/login", {"email": EMAIL, "password": PASSWORD})
        if status != 200:
            raise BenchError(f"emulator login answered {status}")
        token: str = payload["result"]["auth_token"]
        return token

    def new_exports(self, count: int, token: str | None = None) -> list[str]:
        """Start ``count`` exports and return their callback URLs."""
        token = token or self.login()
        urls = []
        for _ in range(count):
            status, payload = self._request("GET", EXPORT_PATH, headers={"Authorization": f"Token {token}"})
            if status != 200:
                raise BenchError(f"emulator export answered {status}: {payload}")
            urls.append(payload["result"]["callback"])
        return urls

    def new_export(self, token: str | None = None) -> str:
        """Start one export and return its callback URL."""
        return self.new_exports(1, token)[0]

    def wait_bytes_sent(self, count: int, timeout: float = 30.0) -> list[int]:
        """Wait until ``count`` downloads have ended at the emulator; return ``bytes_sent``."""
        deadline = time.monotonic() + timeout
        while True:
            sent: list[int] = self.state()["bytes_sent"]
            if len(sent) >= count or time.monotonic() > deadline:
                return sent
            time.sleep(0.05)

    def close(self) -> None:
        """Close the kept-alive control connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


# ---------------------------------------------------------------------------------------- in workers


def emit(result: dict[str, Any]) -> None:
    """Print a worker's result line (the parent reads the last one)."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


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
    """Longest garbage-collection pause and number of full (generation 2) collections.

    Explains event-loop stalls that no trigger caused: a full collection walks every live
    object of the process (all of Airflow in a triggerer) while the loop waits.
    """

    def __init__(self) -> None:
        self.longest = 0.0
        self.full_collections = 0
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        self.longest = max(self.longest, time.perf_counter() - self._started)
        if info.get("generation") == 2:
            self.full_collections += 1

    def start(self) -> GcPauses:
        """Start recording."""
        import gc

        gc.callbacks.append(self._callback)
        return self

    def stop(self) -> None:
        """Stop recording."""
        import gc

        gc.callbacks.remove(self._callback)


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


def module_main(argv: list[str], run: Any, worker: Any) -> None:
    """Entry point of a benchmark module: ``worker ...`` (a measurement) or a standalone run.

    ``python -m benchmarks.<name> [--quick]`` runs that one benchmark and prints its rows.
    """
    if argv[:1] == ["worker"]:
        worker(argv[1:])
        return
    print(text_table(run(Options(quick="--quick" in argv))), end="")
