"""moto's S3 server and the GCS emulator, in this process or in a process of their own, and a paced proxy.

:func:`moto_server` and :func:`gcs_server` run one in this process (a context manager yielding its
URL). As processes:

* ``python -m standins.servers moto``: moto's S3 server;
* ``python -m standins.servers gcs``: gcp-storage-emulator, in memory;
* ``python -m standins.servers proxy TARGET_URL BYTES_PER_SECOND``: a TCP proxy to
  ``TARGET_URL`` whose server-to-client direction is paced to ``BYTES_PER_SECOND`` (shared by
  all connections, like one network link): a download as slow as a real WAN one.

Each prints ``<name> listening on http://127.0.0.1:PORT`` once it serves, then runs until
SIGTERM/SIGINT. Run out of process so the server never competes for the GIL of the
process being measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator


def _wait_forever() -> None:
    stop = threading.Event()

    def _on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    while not stop.wait(0.5):
        pass


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 (port 0), in this process; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@contextlib.contextmanager
def gcs_server(default_bucket: str = "fa-default") -> Iterator[str]:
    """gcp-storage-emulator, in memory, in this process; yields its URL once it answers.

    It cannot report a port-0 choice: a free port is picked first.
    """
    from gcp_storage_emulator.server import create_server

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = create_server("127.0.0.1", port, in_memory=True, default_bucket=default_bucket)
    threading.Thread(target=server.start, daemon=True).start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url)
        yield url
    finally:
        server.stop()


def wait_http(url: str, timeout: float = 30.0) -> None:
    """Wait until ``url`` gives any HTTP answer (an error status too: it serves)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def serve_moto() -> None:
    """moto's S3 server (objects held in this process's memory)."""
    with moto_server() as url:
        print(f"moto listening on {url}", flush=True)
        _wait_forever()


def serve_gcs() -> None:
    """gcp-storage-emulator, in memory."""
    with gcs_server("bench-default") as url:
        print(f"gcs listening on {url}", flush=True)
        _wait_forever()


class _Pacer:
    """Spaces writes so that they leave at ``rate`` bytes per second on average.

    A token bucket: a late wake-up (the event loop is never exact) is made up by the next
    writes, up to a 50 ms burst, so the average rate is the one asked for.
    """

    BURST_SECONDS = 0.05

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._free_at = time.monotonic()

    async def take(self, nbytes: int) -> None:
        now = time.monotonic()
        self._free_at = max(self._free_at, now - self.BURST_SECONDS) + nbytes / self.rate
        if self._free_at > now:
            await asyncio.sleep(self._free_at - now)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pacer: _Pacer | None) -> None:
    try:
        while data := await reader.read(256 * 1024):
            if pacer is not None:
                await pacer.take(len(data))
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def _proxy(target: str, rate: float) -> None:
    parts = urllib.parse.urlsplit(target)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    pacer = _Pacer(rate)

    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(host, port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(_pipe(client_reader, server_writer, None), _pipe(server_reader, client_writer, pacer))

    await serve_until_signalled(await asyncio.start_server(handle, "127.0.0.1", 0), "proxy")


async def serve_until_signalled(server: asyncio.Server, name: str) -> None:
    """Print ``<name> listening on http://HOST:PORT`` and serve until SIGTERM or SIGINT (the proxies)."""
    host, port = server.sockets[0].getsockname()[:2]
    print(f"{name} listening on http://{host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()


def serve_proxy() -> None:
    """A rate-limited TCP proxy (see the module docstring)."""
    asyncio.run(_proxy(sys.argv[2], float(sys.argv[3])))


if __name__ == "__main__":
    {"moto": serve_moto, "gcs": serve_gcs, "proxy": serve_proxy}[sys.argv[1]]()
