"""Start a stand-in (or any component) as a process of its own, and stop it and its children.

One launcher for the tests, the deployment harness and the benchmarks: each process runs in its
own session (so that a signal reaches its children too, like a killed container), writes its
output to a file (for a test to scan, a person to read), and servers announce themselves with one
``<name> listening on http://HOST:PORT`` line, read with :meth:`StandInProcess.wait_for_url`.

The command of each stand-in is here as well: :func:`emulator_command`, :func:`moto_command`,
:func:`gcs_command`, :func:`proxy_command`, :func:`forward_proxy_command`.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import TracebackType

ROOT = Path(__file__).resolve().parent.parent
_URL = re.compile(r"listening on (https?://\S+)")


class StandInProcess:
    """One process, its output in ``output``; a context manager that starts it and waits for its URL.

    :param name: for messages and the output file's default name.
    :param argv: the command.
    :param output: the file stdout and stderr go to.
    :param env: the environment (default: this process's).
    """

    def __init__(self, name: str, argv: Sequence[str], output: Path, env: dict[str, str] | None = None) -> None:
        self.name, self.argv, self.output, self.env = name, list(argv), output, env
        self.url = ""
        self._popen: subprocess.Popen[bytes] | None = None

    def start(self) -> StandInProcess:
        """Start the process (in a new session, in the repository's root folder)."""
        self.output.parent.mkdir(parents=True, exist_ok=True)
        with self.output.open("wb") as sink:
            self._popen = subprocess.Popen(
                self.argv, stdout=sink, stderr=subprocess.STDOUT, env=self.env, cwd=ROOT, start_new_session=True
            )
        return self

    @property
    def popen(self) -> subprocess.Popen[bytes]:
        """The started process."""
        if self._popen is None:
            raise RuntimeError(f"{self.name} was not started")
        return self._popen

    @property
    def pid(self) -> int:
        """The process id (also its session's and process group's)."""
        return self.popen.pid

    def text(self) -> str:
        """What the process printed so far."""
        return self.output.read_text(errors="replace") if self.output.exists() else ""

    def wait_for_line(self, needle: str, timeout: float) -> str:
        """The first printed line containing ``needle``; fails if the process exits or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while True:
            line = next((line for line in self.text().splitlines() if needle in line), None)
            if line is not None:
                return line
            if self.popen.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.popen.returncode}:\n{self.text()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {self.name} to print {needle!r}")
            time.sleep(0.05)

    def wait_for_url(self, timeout: float = 120.0) -> str:
        """The URL of the server's ``listening on`` line (kept in :attr:`url`)."""
        match = _URL.search(self.wait_for_line("listening on", timeout))
        if match is None:  # pragma: no cover - the needle is in the pattern
            raise AssertionError(f"{self.name} printed no URL")
        self.url = match.group(1)
        return self.url

    def cpu_seconds(self) -> float | None:
        """CPU time (user + system, all threads) the process used so far; None off Linux."""
        return process_cpu_seconds(self.pid)

    def kill_group(self, signum: int) -> None:
        """Signal the process and every child of its session (a killed machine or container)."""
        try:
            os.killpg(self.popen.pid, signum)
        except ProcessLookupError:
            return
        if signum == signal.SIGKILL:
            self.popen.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM to the session, SIGKILL after 20 s; children left behind by a dead leader are killed."""
        if self._popen is None:
            return
        if self._popen.poll() is None:
            self.kill_group(signal.SIGTERM)
            try:
                self._popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill_group(signal.SIGKILL)
        else:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._popen.pid, signal.SIGKILL)

    def __enter__(self) -> StandInProcess:
        self.start()
        try:
            self.wait_for_url()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def process_cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) of a process, from ``/proc/<pid>/stat``; None when unavailable."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def emulator_command(email: str, password: str, *options: Any) -> list[str]:
    """The FollowAnalytics emulator as a user runs it (``python -m ...emulator``), on a free port."""
    account = ["--port", "0", "--email", email, "--password", password]
    return [sys.executable, "-m", "airflow_provider_followanalytics.emulator", *account, *map(str, options)]


def moto_command() -> list[str]:
    """moto's S3 server."""
    return [sys.executable, "-m", "standins.servers", "moto"]


def gcs_command() -> list[str]:
    """gcp-storage-emulator, in memory."""
    return [sys.executable, "-m", "standins.servers", "gcs"]


def proxy_command(target_url: str, bytes_per_second: float) -> list[str]:
    """A TCP proxy to ``target_url`` whose downloads are paced to ``bytes_per_second`` (a WAN stand-in)."""
    return [sys.executable, "-m", "standins.servers", "proxy", target_url, str(bytes_per_second)]


def forward_proxy_command(record: Path, auth: str | None = None, resolve: dict[str, str] | None = None) -> list[str]:
    """A recording HTTP forward proxy (CONNECT and absolute-form), its record appended to ``record``.

    :param record: the JSON-lines file of what went through it (see ``standins.forward_proxy``).
    :param auth: ``USER:PASSWORD`` the proxy requires (``Proxy-Authorization: Basic``), None for none.
    :param resolve: host names only the proxy resolves, and the address each leads to.
    """
    options = ["--record", str(record)] + ([] if auth is None else ["--auth", auth])
    options += [f"--resolve={name}={address}" for name, address in (resolve or {}).items()]
    return [sys.executable, "-m", "standins.forward_proxy", *options]
