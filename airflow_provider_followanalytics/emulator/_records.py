"""What the emulator records and keeps: the requests it received and the exports it started (internal).

The lowest module of the emulator: the routes, the control plane and the server all use these.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class RecordedRequest:
    """One request as the emulator received it (each parameter is also the attribute of that name).

    :param method: HTTP method.
    :param path: the request target without its query string, raw as received (not normalised).
    :param query: query parameters (the last value wins for a repeated name).
    :param headers: request headers, lower-case names.
    :param body: the request body.
    :param route: ``login``, ``export``, ``callback``, ``data_exporters``, ``control`` or ``unknown``.
    :param peer: ``(host, port)`` of the TCP client as the emulator saw it (a proxy's upstream socket,
        when the request came through one).
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    route: str
    peer: tuple[str, int] = ("", 0)


@dataclasses.dataclass
class Export:
    """An export started with ``skip_email=true``, reachable through its callback URL's token."""

    token: str
    file_format: str
    endpoint: str
    params: dict[str, str]
    polls: int = 0
