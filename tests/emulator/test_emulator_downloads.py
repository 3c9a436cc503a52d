"""The emulator's callback URLs over real sockets: polling until ready, byte-exact downloads, expiry."""

from __future__ import annotations

import hashlib

import pytest
import requests

from airflow_provider_followanalytics.emulator import (
    FollowAnalyticsEmulator,
    expected_export_bytes,
    expected_export_sha256,
)
from tests.emulator._support import login, start_export, wait_for

pytestmark = pytest.mark.version_independent  # no Airflow in it: CI runs it on Airflow 3.3 only


# Callback polling and downloads -----------------------------------------------------------------------


@pytest.mark.parametrize("download_mode", ["content-length", "chunked"])
@pytest.mark.parametrize("file_format", ["csv", "xls"])
def test_callback_pending_then_ready_byte_exact(
    emu: FollowAnalyticsEmulator, session: requests.Session, download_mode: str, file_format: str
) -> None:
    size = 2_500_003  # several 1 MiB chunks plus a ragged tail
    emu.ready_after = 2
    emu.export_size = size
    emu.seed = 7
    emu.download_mode = download_mode
    headers = login(emu, session)
    callback = start_export(emu, session, headers, f"/api/apps/FAAPPLI_1/devices_export.{file_format}")
    for _ in range(2):
        pending = session.get(callback, headers=headers, timeout=5)
        assert pending.status_code == 202
        assert pending.json() == {
            "success": True,
            "result": {"status": "pending", "message": "Your export is being generated."},
        }
    with session.get(callback, headers=headers, timeout=5, stream=True) as response:
        assert response.status_code == 200
        if download_mode == "chunked":
            assert response.headers["Transfer-Encoding"] == "chunked"
            assert "Content-Length" not in response.headers
        else:
            assert response.headers["Content-Length"] == str(size)
        digest = hashlib.sha256()
        received = 0
        for chunk in response.iter_content(1 << 16):
            digest.update(chunk)
            received += len(chunk)
    assert received == size
    assert digest.hexdigest() == expected_export_sha256(size, file_format, seed=7)
    wait_for(lambda: emu.bytes_sent == [size], what="bytes_sent")
    # The connection is still usable afterwards (keep-alive).
    assert session.get(callback, headers=headers, timeout=5).status_code == 200


def test_zero_byte_export(emu: FollowAnalyticsEmulator, session: requests.Session) -> None:
    emu.export_size = 0
    headers = login(emu, session)
    callback = start_export(emu, session, headers)
    for mode in ("content-length", "chunked"):
        emu.download_mode = mode
        response = session.get(callback, headers=headers, timeout=5)
        assert response.status_code == 200
        assert response.content == b""


@pytest.mark.parametrize("query", ["", "?export_token=", "?export_token=unknown", "?other=1"])
def test_callback_bad_token_is_400(emu: FollowAnalyticsEmulator, session: requests.Session, query: str) -> None:
    headers = login(emu, session)
    response = session.get(f"{emu.url}/api/exports/download_url{query}", headers=headers, timeout=5)
    assert response.status_code == 400
    assert response.json() == {
        "success": False,
        "message": "The export token is missing, invalid or the download link has expired.",
    }


def test_callback_auth(emu: FollowAnalyticsEmulator, session: requests.Session) -> None:
    headers = login(emu, session)
    callback = start_export(emu, session, headers)
    assert session.get(callback, timeout=5).status_code == 401
    assert session.get(callback, headers={"Authorization": "Token nope"}, timeout=5).status_code == 401
    emu.callback_requires_auth = False
    response = session.get(callback, timeout=5)
    assert response.status_code == 200
    assert response.content == expected_export_bytes(4096)


def test_never_ready(emu: FollowAnalyticsEmulator, session: requests.Session) -> None:
    emu.never_ready = True
    headers = login(emu, session)
    callback = start_export(emu, session, headers)
    assert [session.get(callback, headers=headers, timeout=5).status_code for _ in range(5)] == [202] * 5
    emu.never_ready = False
    assert session.get(callback, headers=headers, timeout=5).status_code == 200


def test_expire_after_polls(emu: FollowAnalyticsEmulator, session: requests.Session) -> None:
    emu.ready_after = 10
    emu.expire_after_polls = 3
    headers = login(emu, session)
    callback = start_export(emu, session, headers)
    statuses = [session.get(callback, headers=headers, timeout=5).status_code for _ in range(4)]
    assert statuses == [202, 202, 400, 400]


def test_each_export_polls_independently(emu: FollowAnalyticsEmulator, session: requests.Session) -> None:
    emu.ready_after = 1
    headers = login(emu, session)
    first, second = start_export(emu, session, headers), start_export(emu, session, headers)
    assert first != second
    assert session.get(first, headers=headers, timeout=5).status_code == 202
    assert session.get(first, headers=headers, timeout=5).status_code == 200
    assert session.get(second, headers=headers, timeout=5).status_code == 202


def test_data_exporters(emu: FollowAnalyticsEmulator, session: requests.Session) -> None:
    headers = login(emu, session)
    listing = session.get(f"{emu.url}/api/data_exporters", headers=headers, timeout=5)
    assert listing.status_code == 200
    exporters = listing.json()["result"]
    assert exporters[0]["identifier"] == "FADATAEXP_1"
    assert exporters[0]["name"] == "Daily devices"
    one = session.get(f"{emu.url}/api/data_exporters/FADATAEXP_1", headers=headers, timeout=5)
    assert one.json() == {"success": True, "result": exporters[0]}
    missing = session.get(f"{emu.url}/api/data_exporters/FADATAEXP_404", headers=headers, timeout=5)
    assert missing.status_code == 404
    assert missing.json() == {"success": False, "message": "Not found"}
    assert [r.route for r in emu.requests] == ["login"] + ["data_exporters"] * 3
