"""Run the FollowAnalytics API emulator from a shell.

``python -m airflow_provider_followanalytics.emulator --port 0`` prints one line,
``FollowAnalytics emulator listening on http://127.0.0.1:<port>``, then serves
until SIGTERM or SIGINT and exits with status 0. Drive it at run time through
the ``/_emulator/state``, ``/_emulator/secrets``, ``/_emulator/config``, ``/_emulator/faults`` and
``/_emulator/reset`` control endpoints.

With ``--tls`` it serves https with certificates it makes (a private CA and a server certificate
for ``127.0.0.1``, ``::1`` and ``localhost``) into a temporary folder, removed at exit, or into
``--tls-dir DIR``, kept; ``--certfile F --keyfile F`` (``--tls`` implied) serves given ones,
``--cafile F`` naming the CA that signed them. Before the ``listening on https://...`` line it
then prints ``FollowAnalytics emulator CA certificate: /path/to/ca.pem``, the file clients
must trust (not printed for given certificates without ``--cafile``).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from airflow_provider_followanalytics.emulator.server import DOWNLOAD_MODES, FollowAnalyticsEmulator
from airflow_provider_followanalytics.emulator.tls import TLSFiles, make_test_certificates

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
    tls = parser.add_argument_group("TLS")
    tls.add_argument("--tls", action="store_true", help="serve https with certificates from a private CA it makes")
    tls.add_argument("--tls-dir", type=Path, help="with --tls (implied): make the certificates here, and keep them")
    tls.add_argument("--certfile", type=Path, help="serve https with this certificate (PEM; implies --tls)")
    tls.add_argument("--keyfile", type=Path, help="the private key of --certfile (PEM)")
    tls.add_argument("--cafile", type=Path, help="the CA certificate that signed --certfile (printed for clients)")
    return parser


def _tls_files(
    parser: argparse.ArgumentParser, args: argparse.Namespace, stack: contextlib.ExitStack
) -> TLSFiles | None:
    """The certificate files the arguments ask for (made if need be), or None for plain http."""
    if (args.certfile is None) != (args.keyfile is None):
        parser.error("--certfile and --keyfile go together")
    if args.certfile is not None:
        if args.tls_dir is not None:
            parser.error("--tls-dir makes certificates: it does not go with --certfile")
        return TLSFiles(args.certfile, args.keyfile, args.cafile)
    if args.cafile is not None:
        parser.error("--cafile goes with --certfile and --keyfile")
    if args.tls_dir is not None:
        return make_test_certificates(args.tls_dir)
    if args.tls:
        folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="fa-emulator-tls-"))
        return make_test_certificates(Path(folder))
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, serve until SIGTERM/SIGINT, return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:  # removes a temporary certificate folder at exit
        tls_files = _tls_files(parser, args, stack)
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
            tls=tls_files if tls_files is not None else False,
        )
        emulator.download_mode = args.download_mode
        emulator.start()
        try:
            if tls_files is not None and tls_files.ca_file is not None:
                print(f"FollowAnalytics emulator CA certificate: {tls_files.ca_file.resolve()}", flush=True)
            print(f"FollowAnalytics emulator listening on {emulator.url}", flush=True)
            while not stop.wait(0.5):
                pass
        finally:
            emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
