"""Azurite, Microsoft's Azure Storage emulator, as a child process on a free port (stdlib only).

``make azurite`` installs the npm package pinned in ``requirements/azurite/package-lock.json``
into ``.tools/azurite``. The test fixtures (``tests/storage_fixtures.py``) and the benchmarks
start it from here, so the command line and the account live in one place.
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType

ROOT = Path(__file__).resolve().parent.parent
AZURITE_BLOB = ROOT / ".tools" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
# Azurite's well-known development account: the same public name and key in every Azurite.
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
_LISTENING = re.compile(rb"Azurite Blob service successfully listens on (http://[0-9.]+:(\d+))")


class AzuriteNotInstalledError(RuntimeError):
    """``.tools/azurite`` has no ``azurite-blob``: ``make azurite`` was not run."""


def azurite_blob() -> Path:
    """The installed ``azurite-blob`` launcher; raises a message that says how to install it."""
    if not os.access(AZURITE_BLOB, os.X_OK):
        raise AzuriteNotInstalledError(
            f"Azurite is not installed ({AZURITE_BLOB} is missing): run `make azurite` "
            "(`make test`, `make test-af2` and `make bench` run it; it needs Node.js and npm)"
        )
    return AZURITE_BLOB


def azurite_command() -> list[str]:
    """The ``azurite-blob`` command line: in memory, on 127.0.0.1 and a port the OS picks.

    ``--disableTelemetry``: Azurite otherwise reports usage to Microsoft (no traffic may leave the
    machine); ``--silent``: no access log, which would otherwise fill an unread stdout pipe.
    (``--location`` is refused beside ``--inMemoryPersistence``: run it in a working folder instead.)
    """
    return [
        str(azurite_blob()),
        "--inMemoryPersistence",
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        "0",
        "--skipApiVersionCheck",
        "--disableTelemetry",
        "--silent",
    ]


def connection_string(blob_url: str) -> str:
    """The connection string of the development account on Azurite's ``http://127.0.0.1:PORT``."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint={blob_url}/{ACCOUNT};"
    )


class Azurite:
    """One ``azurite-blob`` child process; ``url`` is ``http://127.0.0.1:PORT`` once started.

    :param location: Azurite's working folder; its ``azurite.stderr`` file gets what Azurite
        prints on stderr.
    :param start_timeout: seconds to wait for Azurite to report its port.
    """

    def __init__(self, location: Path, start_timeout: float = 60.0) -> None:
        self.location = location
        self.start_timeout = start_timeout
        self.url = ""
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The process id of ``azurite-blob`` (a node process)."""
        assert self._proc is not None, "Azurite is not started"
        return self._proc.pid

    @property
    def connection_string(self) -> str:
        """The development account's connection string on this Azurite."""
        return connection_string(self.url)

    def start(self) -> Azurite:
        """Start Azurite and wait until it prints the port it listens on (its stdout is polled)."""
        command = azurite_command()
        self.location.mkdir(parents=True, exist_ok=True)
        with (self.location / "azurite.stderr").open("wb") as stderr:
            self._proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, cwd=self.location)
        assert self._proc.stdout is not None
        seen = b""
        deadline = time.monotonic() + self.start_timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self._proc.stdout, selectors.EVENT_READ)
            while not (match := _LISTENING.search(seen)):
                remaining = deadline - time.monotonic()
                chunk = os.read(self._proc.stdout.fileno(), 4096) if selector.select(max(remaining, 0)) else None
                if not chunk:  # timed out (None) or Azurite exited (b"")
                    self.stop()
                    errors = (self.location / "azurite.stderr").read_text(errors="replace")[-2000:]
                    why = "exited" if chunk == b"" else f"printed no port within {self.start_timeout:.0f}s"
                    raise RuntimeError(f"Azurite {why}; stdout: {seen.decode(errors='replace')!r} stderr: {errors!r}")
                seen += chunk
        self.url = match.group(1).decode()
        self.port = int(match.group(2))
        return self

    def stop(self) -> None:
        """Stop this Azurite by its pid: SIGTERM, then SIGKILL after 10 s."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
