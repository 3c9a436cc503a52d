"""A recording HTTP forward proxy, the stand-in for a company's egress proxy.

``python -m standins.forward_proxy [--auth USER:PASSWORD] [--record FILE] [--resolve NAME=ADDRESS ...]`` listens on
127.0.0.1 (port 0), prints ``forward-proxy listening on http://127.0.0.1:PORT``, and serves
until SIGTERM/SIGINT:

* ``CONNECT host:port`` (https targets): ``200 Connection established``, then the bytes are piped
  both ways until the connection ends;
* absolute-form requests (``GET http://host:port/path HTTP/1.1``, http targets): one upstream
  connection per request, the request line in origin form, ``Proxy-Authorization`` and
  ``Proxy-Connection`` dropped, ``Connection: close`` both ways, bodies piped as they come (any
  framing); the client connection ends with the response.

``--resolve`` makes NAME (a host name nothing else on the machine resolves) lead to ADDRESS, like
curl's option of that name: a client that bypassed the proxy could not even connect.

With ``--auth`` a request without that ``Proxy-Authorization: Basic`` gets ``407`` and is not
forwarded. ``--record`` appends one JSON line per request, flushed at once (for a tunnel, as
soon as it is established): ``method``, ``target`` (``host:port``, or the URL with any query
string replaced by ``?<redacted>`` and no user info), ``authorized`` (null without ``--auth``),
``status`` (200 tunnel, 407, 502 no upstream, or the origin's) and ``upstream_local_port`` (the
port of the proxy's socket to the origin: the peer the origin sees; null without one). Neither
the record nor the output ever holds a credential, a query string or a body.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hmac
import json
import sys
from typing import IO, TYPE_CHECKING
from urllib.parse import urlsplit

from standins.servers import serve_until_signalled

if TYPE_CHECKING:
    from collections.abc import Sequence

_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authorization", "proxy-connection"})
_MAX_HEAD = 64 * 1024
_BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_BAD_GATEWAY = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_AUTH_REQUIRED = (
    b"HTTP/1.1 407 Proxy Authentication Required\r\n"
    b'Proxy-Authenticate: Basic realm="standin"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n'
)


def redact(target: str) -> str:
    """``target`` as recorded: an absolute URL loses its user info and has its query replaced by ``<redacted>``.

    :param target: the request target (``host:port`` for CONNECT, an absolute URL otherwise).
    """
    if "://" not in target:
        return target
    parts = urlsplit(target)
    netloc = parts.netloc.rpartition("@")[2]
    query = "?<redacted>" if parts.query else ""
    return f"{parts.scheme}://{netloc}{parts.path}{query}"


class ForwardProxy:
    """The proxy's request handling: authorization, tunnels, forwarding, and the record.

    :param auth: ``USER:PASSWORD`` that requests must present, or None for an open proxy.
    :param record: the file record lines are appended to, or None.
    """

    def __init__(self, auth: str | None, record: IO[str] | None, resolve: dict[str, str] | None = None) -> None:
        self._expected = None if auth is None else b"Basic " + base64.b64encode(auth.encode())
        self._record = record
        self._resolve = dict(resolve or {})

    def _authorized(self, headers: list[tuple[str, str]]) -> bool | None:
        if self._expected is None:
            return None
        given = next((v for n, v in headers if n.lower() == "proxy-authorization"), "")
        return hmac.compare_digest(given.strip().encode("latin-1", "replace"), self._expected)

    def _write_record(self, method: str, target: str, authorized: bool | None, status: int, port: int | None) -> None:
        if self._record is None:
            return
        line = {
            "method": method,
            "target": redact(target),
            "authorized": authorized,
            "status": status,
            "upstream_local_port": port,
        }
        self._record.write(json.dumps(line) + "\n")
        self._record.flush()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one client connection: one request (a tunnel or a forwarded one), then close it."""
        try:
            await self._serve(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            writer.transport.abort()  # the client sees a reset or a cut as such, not as a clean end
        finally:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")[:-2]
        try:
            method, target, _version = lines[0].split(" ")
            headers = [(n.strip(), v.strip()) for n, _, v in (line.partition(":") for line in lines[1:])]
        except ValueError:
            writer.write(_BAD_REQUEST)
            return
        authorized = self._authorized(headers)
        if authorized is False:
            self._write_record(method, target, authorized, 407, None)
            writer.write(_AUTH_REQUIRED)
            await writer.drain()
            return
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            address = (host.strip("[]"), port)
        else:
            parts = urlsplit(target)
            address = (parts.hostname or "", str(parts.port or 80))
            if parts.scheme != "http" or not parts.hostname:
                writer.write(_BAD_REQUEST)
                return
        try:
            host = self._resolve.get(address[0].lower(), address[0])
            up_reader, up_writer = await asyncio.open_connection(host, int(address[1]))
        except (OSError, ValueError):
            self._write_record(method, target, authorized, 502, None)
            writer.write(_BAD_GATEWAY)
            await writer.drain()
            return
        local_port = int(up_writer.get_extra_info("sockname")[1])
        try:
            if method == "CONNECT":
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await writer.drain()
                self._write_record(method, target, authorized, 200, local_port)
                await _join((reader, writer), (up_reader, up_writer))
            else:
                origin_form = urlsplit(target)._replace(scheme="", netloc="").geturl() or "/"
                head = [f"{method} {origin_form} HTTP/1.1", *_end_to_end(headers)]
                up_writer.write("\r\n".join(head).encode("latin-1") + b"\r\n\r\n")
                await self._forward(method, target, authorized, local_port, (reader, writer), (up_reader, up_writer))
        finally:
            up_writer.close()

    async def _forward(
        self,
        method: str,
        target: str,
        authorized: bool | None,
        local_port: int,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        origin: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> None:
        """Pipe the request body up while the response comes down; its head gets ``Connection: close``."""
        sending = asyncio.ensure_future(_pipe(client[0], origin[1]))
        try:
            try:
                lines = (await origin[0].readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")[:-2]
                status = int(lines[0].split(" ")[1])
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, IndexError, ValueError):
                self._write_record(method, target, authorized, 502, local_port)
                client[1].write(_BAD_GATEWAY)
                return
            self._write_record(method, target, authorized, status, local_port)
            headers = [(n.strip(), v.strip()) for n, _, v in (line.partition(":") for line in lines[1:])]
            client[1].write("\r\n".join([lines[0], *_end_to_end(headers)]).encode("latin-1") + b"\r\n\r\n")
            await _pipe(origin[0], client[1])  # until the origin closes: any response framing
        finally:
            sending.cancel()
            await asyncio.gather(sending, return_exceptions=True)


def _end_to_end(headers: list[tuple[str, str]]) -> list[str]:
    """The header lines to pass on: hop-by-hop and proxy headers dropped, ``Connection: close`` added."""
    return [f"{name}: {value}" for name, value in headers if name.lower() not in _HOP_BY_HOP] + ["Connection: close"]


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy ``reader`` to ``writer`` until end of file, then half-close ``writer``."""
    while data := await reader.read(256 * 1024):
        writer.write(data)
        await writer.drain()
    if writer.can_write_eof():
        writer.write_eof()


async def _join(*ends: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
    """Pipe two connections into each other until both directions end; an error aborts both."""
    (a_reader, a_writer), (b_reader, b_writer) = ends
    try:
        await asyncio.gather(_pipe(a_reader, b_writer), _pipe(b_reader, a_writer))
    except (ConnectionError, OSError):
        for writer in (a_writer, b_writer):  # pass a reset on as a reset, not as a clean end
            writer.transport.abort()


async def serve(auth: str | None, record: IO[str] | None, resolve: dict[str, str] | None = None) -> None:
    """Listen on 127.0.0.1 (port 0), print the ``listening on`` line, serve until SIGTERM/SIGINT."""
    proxy = ForwardProxy(auth, record, resolve)
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0, limit=_MAX_HEAD)
    await serve_until_signalled(server, "forward-proxy")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and serve; return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m standins.forward_proxy", description="A recording forward proxy.")
    parser.add_argument("--auth", metavar="USER:PASSWORD", help="require these Basic proxy credentials")
    parser.add_argument("--record", metavar="FILE", help="append one JSON line per request to FILE")
    parser.add_argument(
        "--resolve", metavar="NAME=ADDRESS", action="append", default=[], help="connect to ADDRESS for host NAME"
    )
    args = parser.parse_args(argv)
    if args.auth is not None and ":" not in args.auth:
        parser.error("--auth takes USER:PASSWORD")
    if any("=" not in item for item in args.resolve):
        parser.error("--resolve takes NAME=ADDRESS")
    resolve = {name.lower(): address for name, _, address in (item.partition("=") for item in args.resolve)}
    with contextlib.ExitStack() as stack:
        record = None if args.record is None else stack.enter_context(open(args.record, "a", encoding="utf-8"))
        asyncio.run(serve(args.auth, record, resolve))
    return 0


if __name__ == "__main__":
    sys.exit(main())
