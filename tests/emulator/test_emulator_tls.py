"""The emulator over TLS: https with a private CA, clients that fail the handshake, faults, the CLI, peers."""

from __future__ import annotations

import hashlib
import http.client
import ipaddress
import socket
import ssl
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest
import requests
from cryptography import x509

from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator, expected_export_bytes
from airflow_provider_followanalytics.emulator.content import expected_export_sha256
from airflow_provider_followanalytics.emulator.tls import TLSFiles, make_test_certificates
from standins.processes import ROOT, StandInProcess, emulator_command
from tests.emulator._support import EMAIL, PASSWORD, login, start_export, wait_for

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.version_independent  # no Airflow in it: CI runs it on Airflow 3.3 only

CA_LINE = "FollowAnalytics emulator CA certificate: "


@pytest.fixture
def tls_emu() -> Iterator[FollowAnalyticsEmulator]:
    emulator = FollowAnalyticsEmulator(export_size=4096, tls=True).start()
    try:
        yield emulator
    finally:
        emulator.stop()


def ca_file(emu: FollowAnalyticsEmulator) -> str:
    assert emu.tls_files is not None
    assert emu.tls_files.ca_file is not None
    return str(emu.tls_files.ca_file)


@pytest.fixture
def trusting(tls_emu: FollowAnalyticsEmulator) -> Iterator[requests.Session]:
    """A session that trusts the emulator's CA and nothing else.

    Without ``trust_env = False`` a ``REQUESTS_CA_BUNDLE`` in the environment would win over
    ``verify`` (requests reads it for every request that passes no ``verify`` of its own).
    """
    with requests.Session() as s:
        s.verify = ca_file(tls_emu)
        s.trust_env = False
        yield s


def https_connection(emu: FollowAnalyticsEmulator) -> http.client.HTTPSConnection:
    context = ssl.create_default_context(cafile=ca_file(emu))
    return http.client.HTTPSConnection("127.0.0.1", emu.port, timeout=5, context=context)


def target(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


# https with a private CA --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["content-length", "chunked"])
def test_https_login_and_download_trusting_only_the_ca(
    tls_emu: FollowAnalyticsEmulator, trusting: requests.Session, mode: str
) -> None:
    tls_emu.export_size = 300_000
    tls_emu.download_mode = mode
    assert tls_emu.url == f"https://127.0.0.1:{tls_emu.port}"
    headers = login(tls_emu, trusting)
    callback = start_export(tls_emu, trusting, headers)
    assert callback.startswith(f"{tls_emu.url}/api/exports/download_url?export_token=")
    response = trusting.get(callback, headers=headers, timeout=5)
    assert response.status_code == 200
    assert ("Transfer-Encoding" in response.headers) == (mode == "chunked")
    assert hashlib.sha256(response.content).hexdigest() == expected_export_sha256(300_000)
    wait_for(lambda: tls_emu.bytes_sent == [300_000], what="bytes_sent")


def test_certificate_names_the_loopback_hosts(tls_emu: FollowAnalyticsEmulator, trusting: requests.Session) -> None:
    files = tls_emu.tls_files
    assert files is not None
    assert files.ca_file is not None
    ca = x509.load_pem_x509_certificate(files.ca_file.read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    leaf = x509.load_pem_x509_certificate(files.certfile.read_bytes())
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert files.keyfile.stat().st_mode & 0o777 == 0o600
    assert trusting.get(f"https://localhost:{tls_emu.port}/nothing", timeout=5).status_code == 404


def test_make_test_certificates_for_other_names(tmp_path: Path) -> None:
    files = make_test_certificates(tmp_path / "certs", hostnames=("fa.internal", "10.1.2.3"))
    assert files == TLSFiles(
        tmp_path / "certs/server.pem", tmp_path / "certs/server-key.pem", tmp_path / "certs/ca.pem"
    )
    leaf = x509.load_pem_x509_certificate(files.certfile.read_bytes())
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["fa.internal"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.1.2.3")]
    assert sorted(p.name for p in (tmp_path / "certs").iterdir()) == ["ca.pem", "server-key.pem", "server.pem"]


def test_given_certificates_are_served(tmp_path: Path) -> None:
    files = make_test_certificates(tmp_path)
    with FollowAnalyticsEmulator(tls=files) as emu:
        assert emu.tls_files == files
        assert requests.get(f"{emu.url}/nothing", verify=str(files.ca_file), timeout=5).status_code == 404


def test_cryptography_is_imported_only_to_make_certificates() -> None:
    code = (
        "import sys\n"
        "from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator\n"
        "with FollowAnalyticsEmulator():\n"
        "    pass\n"
        "emu = FollowAnalyticsEmulator(tls=True)\n"
        "assert 'cryptography' not in sys.modules, 'imported before any certificate is made'\n"
        "with emu:\n"
        "    assert 'cryptography' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)


# Clients that fail the handshake ------------------------------------------------------------------


def test_client_trusting_the_system_store_fails_and_the_server_serves_on(
    tls_emu: FollowAnalyticsEmulator, trusting: requests.Session
) -> None:
    with pytest.raises(requests.exceptions.SSLError) as excinfo:
        requests.get(f"{tls_emu.url}/nothing", timeout=5)  # verify=True: the system's CAs
    assert "CERTIFICATE_VERIFY_FAILED" in str(excinfo.value)
    context = ssl.create_default_context()
    with pytest.raises(ssl.SSLCertVerificationError), socket.create_connection(("127.0.0.1", tls_emu.port), 5) as raw:
        context.wrap_socket(raw, server_hostname="127.0.0.1")
    login(tls_emu, trusting)
    assert tls_emu.login_count == 1
    wait_for(lambda: tls_emu.open_connections() == 1, what="the failed handshakes' connections to close")


def test_plain_http_to_the_https_port_fails_and_the_server_serves_on(
    tls_emu: FollowAnalyticsEmulator, trusting: requests.Session
) -> None:
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{tls_emu.port}/nothing", timeout=5)
    login(tls_emu, trusting)
    assert [r.route for r in tls_emu.requests] == ["login"]  # the plain request was never read


def test_a_silent_client_holds_up_no_other_and_stop_ends_it(tls_emu: FollowAnalyticsEmulator) -> None:
    with socket.create_connection(("127.0.0.1", tls_emu.port), 5) as silent:
        assert requests.get(f"{tls_emu.url}/nothing", verify=ca_file(tls_emu), timeout=5).status_code == 404
        wait_for(lambda: tls_emu.open_connections() == 1, what="only the silent connection to stay open")
        tls_emu.stop(timeout=5)
        assert tls_emu.open_connections() == 0
        silent.settimeout(5)
        assert silent.recv(1) == b""  # the server closed it


# Faults over TLS ----------------------------------------------------------------------------------


def read_cut_download(
    emu: FollowAnalyticsEmulator, session: requests.Session, kind: str, errors: tuple[type[Exception], ...]
) -> tuple[str, dict[str, str], Exception]:
    """Start an export, let a ``kind`` download fault strike after 1000 bytes, and read the download.

    :return: the callback URL, the Authorization header, and the error (one of ``errors``) reading raised.
    """
    headers = login(emu, session)
    callback = start_export(emu, session, headers)
    emu.add_fault("download", kind=kind, after_bytes=1000)
    conn = https_connection(emu)
    try:
        conn.request("GET", target(callback), headers=headers)
        with pytest.raises(errors) as excinfo:
            conn.getresponse().read()
    finally:
        conn.close()
    wait_for(lambda: emu.bytes_sent == [1000], what="bytes_sent")
    return callback, headers, excinfo.value


def test_fault_truncate_over_tls(tls_emu: FollowAnalyticsEmulator, trusting: requests.Session) -> None:
    tls_emu.export_size = 100_000
    callback, headers, error = read_cut_download(tls_emu, trusting, "truncate", (http.client.IncompleteRead,))
    assert isinstance(error, http.client.IncompleteRead)
    assert error.partial == expected_export_bytes(1000)
    assert error.expected == 99_000  # the full Content-Length was announced
    tls_emu.add_fault("download", kind="truncate", after_bytes=10)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        trusting.get(callback, headers=headers, timeout=5)
    assert trusting.get(callback, headers=headers, timeout=5).content == expected_export_bytes(100_000)


def test_fault_reset_over_tls(tls_emu: FollowAnalyticsEmulator, trusting: requests.Session) -> None:
    tls_emu.add_fault("login", kind="reset")
    with pytest.raises(requests.ConnectionError):
        trusting.post(f"{tls_emu.url}/api/login", json={"email": EMAIL, "password": PASSWORD}, timeout=5)
    assert tls_emu.login_count == 0
    tls_emu.export_size = 1 << 20
    # The RST may even overtake the headers: any of these errors will do.
    errors = (http.client.IncompleteRead, http.client.RemoteDisconnected, ConnectionResetError)
    callback, headers, _ = read_cut_download(tls_emu, trusting, "reset", errors)
    assert trusting.get(callback, headers=headers, timeout=5).content == expected_export_bytes(1 << 20)


# The peer of each request -------------------------------------------------------------------------


@pytest.mark.parametrize("tls", [False, True])
def test_peer_is_the_clients_socket_address(tls: bool) -> None:
    with FollowAnalyticsEmulator(tls=tls) as emu:
        conn = https_connection(emu) if tls else http.client.HTTPConnection("127.0.0.1", emu.port, timeout=5)
        try:
            conn.request("GET", "/nothing")
            assert conn.getresponse().read()
            assert conn.sock is not None
            assert emu.requests[-1].peer == conn.sock.getsockname()
        finally:
            conn.close()


# The command line ---------------------------------------------------------------------------------


def _serve_cli(tmp_path: Path, *options: object) -> tuple[str, str]:
    """Start the CLI with ``options``; check it serves https trusting the CA it prints; return (CA, output)."""
    with StandInProcess("emulator", emulator_command(EMAIL, PASSWORD, *options), tmp_path / "emulator.out") as proc:
        url = proc.url
        assert url.startswith("https://127.0.0.1:"), url
        lines = proc.text().splitlines()
        assert lines[0].startswith(CA_LINE), lines
        assert lines[1] == f"FollowAnalytics emulator listening on {url}", lines
        ca = lines[0].removeprefix(CA_LINE)
        response = requests.post(f"{url}/api/login", json={"email": EMAIL, "password": PASSWORD}, verify=ca, timeout=5)
        assert response.status_code == 200
        assert response.json()["result"]["auth_token"]
    assert proc.popen.returncode == 0
    assert "Traceback" not in proc.text()
    return ca, proc.text()


def test_cli_tls_makes_certificates_in_a_temporary_folder(tmp_path: Path) -> None:
    ca, _ = _serve_cli(tmp_path, "--tls")
    assert not Path(ca).exists()  # removed at exit


def test_cli_tls_dir_keeps_its_certificates(tmp_path: Path) -> None:
    ca, _ = _serve_cli(tmp_path, "--tls-dir", tmp_path / "certs")
    assert ca == str(tmp_path / "certs" / "ca.pem")
    assert sorted(p.name for p in (tmp_path / "certs").iterdir()) == ["ca.pem", "server-key.pem", "server.pem"]


def test_cli_serves_given_certificates(tmp_path: Path) -> None:
    files = make_test_certificates(tmp_path / "given")
    options = ("--certfile", files.certfile, "--keyfile", files.keyfile, "--cafile", files.ca_file)
    ca, _ = _serve_cli(tmp_path, *options)
    assert ca == str(files.ca_file)


@pytest.mark.parametrize(
    "options",
    [
        ["--certfile", "c.pem"],
        ["--keyfile", "k.pem"],
        ["--cafile", "ca.pem"],
        ["--tls-dir", "d", "--certfile", "c", "--keyfile", "k"],
    ],
)
def test_cli_refuses_incomplete_tls_options(options: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from airflow_provider_followanalytics.emulator.__main__ import main

    with pytest.raises(SystemExit) as excinfo:
        main(["--port", "0", *options])
    assert excinfo.value.code == 2
    assert "--" in capsys.readouterr().err
