"""Deterministic export file contents served by the emulator.

Every export the emulator serves is ``export_chunks(size, file_format, seed, kind=...)``:
a byte stream of exactly ``size`` bytes that depends only on its arguments, so
tests and benchmarks can check a downloaded file byte for byte (or by its
SHA-256) without keeping a copy of it. ``kind`` is what was exported: the CSV
of an events export has event columns, a performance export has daily figures
per app, and so on (see :data:`CSV_HEADERS`).

Generation is cheap enough to move gigabytes: a block of about 1 MiB is built
once per ``(kind, format, seed)`` and cached, and the stream is that block repeated
(after a short prefix), served as slices of a doubled copy of the block.
"""

from __future__ import annotations

import functools
import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "CSV_HEADER",
    "CSV_HEADERS",
    "EXPORT_FORMATS",
    "EXPORT_KINDS",
    "XLS_MAGIC",
    "expected_export_bytes",
    "expected_export_sha256",
    "export_chunks",
]

#: Formats the FollowAnalytics export endpoints produce.
EXPORT_FORMATS: tuple[str, ...] = ("csv", "xls")

#: First line of every CSV export, by kind of export.
CSV_HEADERS: dict[str, bytes] = {
    "devices": b"device_id,current_user_id,platform,app_version,last_seen_at,city\n",
    "events": b"event_id,event_name,device_id,user_id,session_id,occurred_at,platform,city\n",
    "performance": b"date,app_identifier,downloads,active_users,sessions,crashes,crash_free_rate\n",
    "user_metrics": b"date,new_users,active_users,returning_users,sessions_per_user,retention_d1,retention_d7\n",
    "event_analysis": b"rank,event_name,occurrences,unique_users,unique_devices,share\n",
    "event_context": b"occurred_at,device_id,user_id,session_id,previous_event,next_event,city\n",
}
#: Kinds of export, as ``export_chunks(kind=...)`` takes them.
EXPORT_KINDS: tuple[str, ...] = tuple(CSV_HEADERS)
#: First line of a devices export (the default kind).
CSV_HEADER: bytes = CSV_HEADERS["devices"]

#: OLE2 compound document signature: the first 8 bytes of a legacy ``.xls`` file.
XLS_MAGIC: bytes = bytes.fromhex("D0CF11E0A1B11AE1")

_BLOCK_TARGET = 1 << 20  # about 1 MiB of rows per repeated block

# Non-ASCII cities exercise UTF-8 decoding; the quoted one exercises CSV quoting.
_CITIES: tuple[str, ...] = (
    "Paris",
    "Montréal",
    "São Paulo",
    "Zürich",
    "Kraków",
    "東京",
    '"Washington, D.C."',
    "Lyon",
)
_PLATFORMS: tuple[str, ...] = ("ios", "android", "web")
# The quoted ones exercise CSV quoting (a comma; escaped quotes and a newline inside one field: one
# record over two lines), the accented one UTF-8.
_EVENTS: tuple[str, ...] = (
    "app_open",
    "screen_view",
    "add_to_cart",
    "purchase",
    "push_opened",
    "search",
    '"Checkout, step 2"',
    "Écran d'accueil",
    '"Promo ""Spring""\nbanner"',
)
_APPS: tuple[str, ...] = ("FAAPPLI_123456789", "FAAPPLI_987654321")


def _check_kind(kind: str) -> str:
    if kind not in CSV_HEADERS:
        raise ValueError(f"unknown export kind {kind!r}; expected one of {EXPORT_KINDS}")
    return kind


def _check_format(file_format: str) -> str:
    fmt = file_format.lower().lstrip(".")
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unsupported export format {file_format!r}; expected one of {EXPORT_FORMATS}")
    return fmt


def _timestamp(n: int) -> str:
    day, month, seconds = 1 + (n >> 13) % 28, 1 + (n >> 18) % 12, (n >> 22) % 86400
    return f"2024-{month:02d}-{day:02d}T{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}Z"


def _uuid(h: str) -> str:
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def _user(n: int) -> str:
    return f"user_{(n >> 8) % 1_000_000:06d}" if n % 5 else ""  # every fifth row has no user


def _device_row(i: int, n: int, h: str) -> str:
    device_id = _uuid(h)
    user_id = _user(n)
    platform = _PLATFORMS[n % len(_PLATFORMS)]
    version = f"{3 + n % 3}.{(n >> 4) % 20}.{(n >> 9) % 10}"
    city = _CITIES[(n >> 40) % len(_CITIES)] if i % 7 else "Montréal"
    return f"{device_id},{user_id},{platform},{version},{_timestamp(n)},{city}\n"


def _event_row(i: int, n: int, h: str) -> str:
    user_id = _user(n)
    event = _EVENTS[(n >> 30) % len(_EVENTS)]
    city = _CITIES[(n >> 40) % len(_CITIES)]
    return (
        f"{100_000_000 + i},{event},{_uuid(h)},{user_id},"
        f"session_{(n >> 20) % 100_000:05d},{_timestamp(n)},{_PLATFORMS[n % len(_PLATFORMS)]},{city}\n"
    )


def _day(i: int) -> str:
    return f"{2000 + i // 336 % 100:04d}-{1 + i // 28 % 12:02d}-{1 + i % 28:02d}"


def _performance_row(i: int, n: int, h: str) -> str:
    downloads, active = n % 5000, (n >> 12) % 100_000
    crashes = (n >> 30) % 200
    return (
        f"{_day(i // 2)},{_APPS[i % 2]},{downloads},{active},{active * 3 + n % 7},{crashes},{100 - crashes / 100:.2f}\n"
    )


def _user_metrics_row(i: int, n: int, h: str) -> str:
    new, active = n % 2000, 2000 + (n >> 12) % 50_000
    return (
        f"{_day(i)},{new},{active},{active - new},{1 + (n >> 30) % 900 / 100:.2f},"
        f"{(n >> 40) % 6000 / 100:.2f},{(n >> 50) % 3000 / 100:.2f}\n"
    )


def _event_analysis_row(i: int, n: int, h: str) -> str:
    occurrences = 1_000_000 // (1 + i % 1000)
    return (
        f"{1 + i},{_EVENTS[i % len(_EVENTS)]},{occurrences},{occurrences // 3 + n % 97},"
        f"{occurrences // 2 + n % 89},{100 / (1 + i % 1000):.4f}\n"
    )


def _event_context_row(i: int, n: int, h: str) -> str:
    user_id = _user(n)
    before, after = _EVENTS[(n >> 30) % len(_EVENTS)], _EVENTS[(n >> 34) % len(_EVENTS)]
    return (
        f"{_timestamp(n)},{_uuid(h)},{user_id},"
        f"session_{(n >> 20) % 100_000:05d},{before},{after},{_CITIES[(n >> 40) % len(_CITIES)]}\n"
    )


_ROWS = {
    "devices": _device_row,
    "events": _event_row,
    "performance": _performance_row,
    "user_metrics": _user_metrics_row,
    "event_analysis": _event_analysis_row,
    "event_context": _event_context_row,
}


def _csv_rows(seed: int, kind: str = "devices") -> bytes:
    """Build about 1 MiB of complete CSV rows of one kind of export, deterministic in ``seed``."""
    # The devices stream keeps its historical name, so its bytes are what they always were.
    name = f"followanalytics-emulator-csv:{seed}" if kind == "devices" else f"followanalytics-emulator-{kind}:{seed}"
    stream = hashlib.shake_256(name.encode()).digest(16 * 16384)
    make_row = _ROWS[kind]
    rows: list[str] = []
    total = 0
    i = 0
    while total < _BLOCK_TARGET:
        j = i % 16384
        rnd = stream[j * 16 : j * 16 + 16]
        row = make_row(i, int.from_bytes(rnd[:8], "big"), rnd.hex())
        rows.append(row)
        total += len(row.encode())
        i += 1
    return "".join(rows).encode("utf-8")


@functools.lru_cache(maxsize=8)
def _pattern(file_format: str, seed: int, kind: str = "devices") -> tuple[bytes, bytes, bytes]:
    """Return ``(prefix, block, block + block)`` for a kind, format and seed (cached)."""
    if file_format == "csv":
        prefix, block = CSV_HEADERS[kind], _csv_rows(seed, kind)
    else:
        prefix = XLS_MAGIC
        name = f"followanalytics-emulator-xls:{seed}" + ("" if kind == "devices" else f":{kind}")
        block = hashlib.shake_256(name.encode()).digest(_BLOCK_TARGET)
    return prefix, block, block + block


def export_chunks(
    size: int, file_format: str = "csv", seed: int = 0, chunk_size: int = 1 << 20, *, kind: str = "devices"
) -> Iterator[bytes]:
    """Yield the export file of exactly ``size`` bytes, in chunks of at most ``chunk_size``.

    The stream is deterministic in ``(size, file_format, seed, kind)`` and a shorter
    export is a prefix of a longer one with the same format, seed and kind.

    * ``csv``: UTF-8 text, the header line ``CSV_HEADERS[kind]`` then rows of that kind
      (devices: ``device_id,current_user_id,platform,app_version,last_seen_at,city``),
      the last row cut wherever ``size`` ends.
    * ``xls``: :data:`XLS_MAGIC` then pseudo-random bytes.

    :param size: exact number of bytes to produce (>= 0).
    :param file_format: ``"csv"`` or ``"xls"``.
    :param seed: varies the content.
    :param chunk_size: largest chunk yielded (> 0).
    :param kind: what was exported, one of :data:`EXPORT_KINDS` (default ``"devices"``).
    """
    if size < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be > 0, got {chunk_size}")
    prefix, block, doubled = _pattern(_check_format(file_format), seed, _check_kind(kind))
    return _generate(size, prefix, block, doubled, chunk_size)


def _generate(size: int, prefix: bytes, block: bytes, doubled: bytes, chunk_size: int) -> Iterator[bytes]:
    period = len(block)
    plen = len(prefix)
    pos = 0
    while pos < size:
        want = min(chunk_size, size - pos)
        parts: list[bytes] = []
        got = 0
        while got < want:
            if pos < plen:
                piece = prefix[pos : pos + want - got]
            else:
                offset = (pos - plen) % period
                piece = doubled[offset : offset + min(want - got, period)]
            parts.append(piece)
            got += len(piece)
            pos += len(piece)
        yield parts[0] if len(parts) == 1 else b"".join(parts)


def expected_export_bytes(size: int, file_format: str = "csv", seed: int = 0, *, kind: str = "devices") -> bytes:
    """Return the whole export as bytes (for small sizes in tests): ``export_chunks`` joined.

    :param size: exact number of bytes (>= 0).
    :param file_format: ``"csv"`` or ``"xls"``.
    :param seed: varies the content, as the emulator's ``seed``.
    :param kind: what was exported, one of :data:`EXPORT_KINDS` (default ``"devices"``).
    """
    return b"".join(export_chunks(size, file_format, seed, kind=kind))


def expected_export_sha256(size: int, file_format: str = "csv", seed: int = 0, *, kind: str = "devices") -> str:
    """Return the hex SHA-256 of the export of ``size`` bytes, computed in bounded memory.

    :param size: exact number of bytes (>= 0), as the emulator's ``export_size``.
    :param file_format: ``"csv"`` or ``"xls"``.
    :param seed: varies the content, as the emulator's ``seed``.
    :param kind: what was exported, one of :data:`EXPORT_KINDS` (default ``"devices"``).
    """
    digest = hashlib.sha256()
    for chunk in export_chunks(size, file_format, seed, kind=kind):
        digest.update(chunk)
    return digest.hexdigest()
