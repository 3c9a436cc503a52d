"""Run the FollowAnalytics API emulator from a shell.

``python -m airflow_provider_followanalytics.emulator --port 0`` prints one line,
``FollowAnalytics emulator listening on http://127.0.0.1:<port>``, then serves
until SIGTERM or SIGINT and exits with status 0. Drive it at run time through
the ``/_emulator/state``, ``/_emulator/secrets``, ``/_emulator/config``, ``/_emulator/faults`` and
``/_emulator/reset`` control endpoints.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import TYPE_CHECKING

from airflow_provider_followanalytics.emulator.server import DOWNLOAD_MODES, FollowAnalyticsEmulator

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import FrameType

#: The port the emulator listens on when ``--port`` is not given.
DEFAULT_PORT = 8765


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_followanalytics.emulator",
        description="Serve a local emulator of the FollowAnalytics platform API.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    # Not 8080: Airflow 3's API server listens there, and the emulator usually runs next to it.
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="port, 0 picks a free one (default: %(default)s)"
    )
    parser.add_argument("--email", default="demo@example.com", help="account e-mail (default: %(default)s)")
    parser.add_argument("--password", default="demo-password", help="account password (default: %(default)s)")
    parser.add_argument(
        "--ready-after", type=int, default=0, help="callback polls answering 202 before the file is ready"
    )
    parser.add_argument(
        "--export-size",
        type=int,
        default=4096,
        help="exact size in bytes of every export (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=0, help="varies the export contents (default: %(default)s)")
    parser.add_argument(
        "--download-mode", choices=DOWNLOAD_MODES, default="content-length", help="how files are framed"
    )
    parser.add_argument("--public-url", default=None, help="base URL used in callback URLs (default: own URL)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, serve until SIGTERM/SIGINT, return the exit status."""
    args = _parser().parse_args(argv)
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    emulator = FollowAnalyticsEmulator(
        host=args.host,
        port=args.port,
        email=args.email,
        password=args.password,
        ready_after=args.ready_after,
        export_size=args.export_size,
        seed=args.seed,
        public_url=args.public_url,
    )
    emulator.download_mode = args.download_mode
    emulator.start()
    try:
        print(f"FollowAnalytics emulator listening on {emulator.url}", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
