"""The emulator's API over real sockets on 127.0.0.1: login, authentication and the export endpoints."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator, expected_export_bytes
from airflow_provider_followanalytics.emulator.content import CSV_HEADERS
from airflow_provider_followanalytics.emulator.server import _EXPORT_PATHS as EXPORT_PATHS
from airflow_provider_followanalytics.emulator.server import EXPORT_KIND_OF_ENDPOINT
from tests.emulator._support import EMAIL, JSON_TYPE, PASSWORD, login, start_export

pytestmark = pytest.mark.version_independent  # no Airflow in it: CI runs it on Airflow 3.3 only


DAY = 86400
SD = 1_700_006_400  # 2023-11-15T00:00:00Z
ED = SD + 7 * DAY
CSV_TYPE = "text/csv; charset=utf-8"
XLS_TYPE = "application/vnd.ms-excel"


def error_400(message: str) -> dict[str, Any]:
    return {"success": False, "status": 400, "error_message": message}


# Login and authentication ------------------------------------------------------------------------


def test_login_ok(emu: FollowAnalyticsEmulator, session: requests.Session) -> None:
    response = session.post(f"{emu.url}/api/login", json={"email": EMAIL, "password": PASSWORD}, timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == JSON_TYPE
    assert int(response.headers["Content-Length"]) == len(response.content)
    payload = response.json()
    assert payload["success"] is True
    token = payload["result"]["auth_token"]
    assert len(token) >= 32
    assert emu.issued_tokens == [token]
    assert emu.login_count == 1
    user = payload["result"]["user"]
    assert user == emu.user
    assert user["email"] == EMAIL
    keys = [e[k] for e in user["entities"] for k in ("qa_api_key", "prod_api_key")]
    assert len(set(keys)) == 4
    other = FollowAnalyticsEmulator()
    assert other.user["entities"][0]["qa_api_key"] not in keys  # random per emulator
    assert emu.requests_for("login")[0].body == json.dumps({"email": EMAIL, "password": PASSWORD}).encode()


@pytest.mark.parametrize(
    "body",
    [
        b"{}",
        json.dumps({"email": EMAIL}).encode(),
        json.dumps({"password": PASSWORD}).encode(),
        json.dumps({"email": "", "password": PASSWORD}).encode(),
        json.dumps({"email": EMAIL, "password": 5}).encode(),
        b"not json",
        b"[1, 2]",
        b"",
    ],
)
def test_login_missing_field_is_400(emu: FollowAnalyticsEmulator, session: requests.Session, body: bytes) -> None:
    response = session.post(f"{emu.url}/api/login", data=body, headers={"Content-Type": "application/json"}, timeout=5)
    assert response.status_code == 400
    assert response.json() == error_400("The request must contain the user email and password.")
    assert emu.login_count == 0


@pytest.mark.parametrize(("email", "password"), [(EMAIL, "wrong"), ("other@example.com", PASSWORD)])
def test_login_wrong_credentials_is_401(
    emu: FollowAnalyticsEmulator, session: requests.Session, email: str, password: str
) -> None:
    response = session.post(f"{emu.url}/api/login", json={"email": email, "password": password}, timeout=5)
    assert response.status_code == 401
    assert response.json() == {"success": False, "message": "Invalid email or password."}
    assert emu.login_count == 0
    assert emu.issued_tokens == []


def test_login_account_can_change(emu: FollowAnalyticsEmulator, session: requests.Session) -> None:
    emu.password = "new-password"
    response = session.post(f"{emu.url}/api/login", json={"email": EMAIL, "password": PASSWORD}, timeout=5)
    assert response.status_code == 401
    response = session.post(f"{emu.url}/api/login", json={"email": EMAIL, "password": "new-password"}, timeout=5)
    assert response.status_code == 200


def test_login_needs_post(emu: FollowAnalyticsEmulator, session: requests.Session) -> None:
    response = session.get(f"{emu.url}/api/login", timeout=5)
    assert response.status_code == 405
    assert response.json()["success"] is False


@pytest.mark.parametrize("authorization", [None, "Token not-a-token", "Token ", "Bearer {token}", "{token}"])
def test_auth_required(emu: FollowAnalyticsEmulator, session: requests.Session, authorization: str | None) -> None:
    token = login(emu, session)["Authorization"].split()[1]
    headers = {} if authorization is None else {"Authorization": authorization.format(token=token)}
    for path in ("/api/data_exporters", "/segments/FASEGMT_abcd12/devices_export.csv?skip_email=true"):
        response = session.get(f"{emu.url}{path}", headers=headers, timeout=5)
        assert response.status_code == 401
        assert response.json() == {"success": False, "message": "Invalid or expired token."}
    assert emu.state()["exports"] == 0


def test_token_max_uses(emu: FollowAnalyticsEmulator, session: requests.Session) -> None:
    emu.token_max_uses = 2
    headers = login(emu, session)
    url = f"{emu.url}/api/data_exporters"
    assert session.get(url, headers=headers, timeout=5).status_code == 200
    assert session.get(url, headers=headers, timeout=5).status_code == 200
    expired = session.get(url, headers=headers, timeout=5)
    assert expired.status_code == 401
    assert expired.json()["message"] == "Invalid or expired token."
    fresh = login(emu, session)
    assert fresh != headers
    assert session.get(url, headers=fresh, timeout=5).status_code == 200
    assert emu.login_count == 2
    assert len(emu.issued_tokens) == 2


# Export endpoints ----------------------------------------------------------------------------------

EXPORTS: list[tuple[str, dict[str, str]]] = [
    ("/segments/FASEGMT_abcd12/devices_export", {"fields": "current_user_id"}),
    ("/api/segments/FASEGMT_abcd12/devices_export", {"updated_since": "2017-04-06T16:41:44+05:00"}),
    (
        "/api/apps/FAAPPLI_123456789/devices_export",
        {"fields": "a,b", "device_ids": "d1,d2", "segment_ids": "s", "updated_since": "2024-01-01T00:00:00Z"},
    ),
    (
        "/api/apps/FAAPPLI_123456789/events_export",
        {"since_date": "2024-01-01T00:00:00Z", "until_date": "2024-01-02", "user_ids": "u1"},
    ),
    ("/api/performance_export", {"apps": "FAAPPLI_1,FAAPPLI_2", "sd": str(SD), "ed": str(ED)}),
    ("/api/apps/FAAPPLI_123456789/analytics/download_metrics", {"sd": str(SD), "ed": str(ED)}),
    ("/api/events_export", {"app": "FAAPPLI_1"}),
    ("/api/events_export", {"app": "FAAPPLI_1", "sd": str(SD), "ed": str(ED)}),
    ("/api/event_details_export", {"app": "FAAPPLI_1", "event_id": "42"}),
    ("/api/event_details_export", {"app": "FAAPPLI_1", "event_id": "42", "sd": str(SD), "ed": str(ED)}),
]


@pytest.mark.parametrize(("path", "params"), EXPORTS)
@pytest.mark.parametrize(("suffix", "content_type"), [(".csv", CSV_TYPE), (".xls", XLS_TYPE), ("", XLS_TYPE)])
def test_export_with_callback(
    emu: FollowAnalyticsEmulator,
    session: requests.Session,
    path: str,
    params: dict[str, str],
    suffix: str,
    content_type: str,
) -> None:
    headers = login(emu, session)
    callback = start_export(emu, session, headers, path + suffix, params)
    assert callback.startswith(f"{emu.url}/api/exports/download_url?export_token=")
    assert len(callback.rsplit("=", 1)[1]) >= 20
    recorded = emu.requests_for("export")[-1]
    assert recorded.path == path + suffix
    assert recorded.query == {"skip_email": "true", **params}
    response = session.get(callback, headers=headers, timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == content_type
    extension = "csv" if content_type == CSV_TYPE else "xls"
    assert response.headers["Content-Disposition"] == f'attachment; filename="export.{extension}"'
    kind = EXPORT_KIND_OF_ENDPOINT[next(name for name, pattern in EXPORT_PATHS if pattern.match(path))]
    assert response.content == expected_export_bytes(4096, extension, kind=kind)
    if extension == "csv":
        assert response.content.startswith(CSV_HEADERS[kind])


@pytest.mark.parametrize("skip_email", [None, "false"])
def test_export_by_email(emu: FollowAnalyticsEmulator, session: requests.Session, skip_email: str | None) -> None:
    headers = login(emu, session)
    params = {} if skip_email is None else {"skip_email": skip_email}
    response = session.get(
        f"{emu.url}/api/performance_export.csv",
        params={"apps": "FAAPPLI_1", "sd": str(SD), "ed": str(ED), **params},
        headers=headers,
        timeout=5,
    )
    assert response.status_code == 200
    assert response.json() == {
        "success": True,
        "result": f"Your report is being generated and will be sent to the email {EMAIL} when it is completed",
    }
    assert emu.state()["exports"] == 0


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("/api/performance_export.csv", {"sd": str(SD), "ed": str(ED)}, "Missing apps"),
        ("/api/performance_export.csv", {"apps": "A", "ed": str(ED)}, "Missing start date"),
        ("/api/performance_export.csv", {"apps": "A", "sd": str(SD)}, "Missing end date"),
        ("/api/apps/FAAPPLI_1/analytics/download_metrics.csv", {"ed": str(ED)}, "Missing start date"),
        ("/api/apps/FAAPPLI_1/analytics/download_metrics.csv", {"sd": str(SD)}, "Missing end date"),
        ("/api/events_export.csv", {}, "Missing app"),
        ("/api/events_export.csv", {"app": "A", "sd": str(SD)}, "Missing end date"),
        ("/api/events_export.csv", {"app": "A", "ed": str(ED)}, "Missing start date"),
        ("/api/event_details_export.csv", {"event_id": "1"}, "Missing app"),
        ("/api/event_details_export.csv", {"app": "A"}, "Missing event_id"),
        ("/api/event_details_export.csv", {"app": "A", "event_id": "1", "ed": str(ED)}, "Missing start date"),
    ],
)
def test_export_missing_parameters(
    emu: FollowAnalyticsEmulator, session: requests.Session, path: str, params: dict[str, str], message: str
) -> None:
    headers = login(emu, session)
    response = session.get(f"{emu.url}{path}", params={"skip_email": "true", **params}, headers=headers, timeout=5)
    assert response.status_code == 400
    assert response.headers["Content-Type"] == JSON_TYPE
    assert response.json() == error_400(message)


@pytest.mark.parametrize(
    ("path", "params", "fragment"),
    [
        ("/api/performance_export.csv", {"apps": "A", "sd": str(SD + 3600), "ed": str(ED)}, "midnight"),
        ("/api/performance_export.csv", {"apps": "A", "sd": str(SD), "ed": str(ED + 1)}, "midnight"),
        ("/api/performance_export.csv", {"apps": "A", "sd": "2024-01-01", "ed": str(ED)}, "start date"),
        ("/api/performance_export.csv", {"apps": "A", "sd": str(ED), "ed": str(SD)}, "after"),
        ("/api/performance_export.csv", {"apps": "A", "sd": str(SD), "ed": str(SD)}, "after"),
        ("/api/performance_export.csv", {"apps": "['A']", "sd": str(SD), "ed": str(ED)}, "app identifier"),
        ("/api/events_export.csv", {"app": "A", "sd": str(SD), "ed": "x"}, "end date"),
        ("/api/event_details_export.csv", {"app": "A", "event_id": "abc"}, "event_id"),
        ("/segments/S/devices_export.csv", {"updated_since": "yesterday"}, "updated_since"),
        ("/api/apps/A/devices_export.csv", {"updated_since": "2024-13-01"}, "updated_since"),
        ("/api/apps/A/events_export.csv", {"since_date": "nope"}, "since_date"),
        ("/api/apps/A/events_export.csv", {"until_date": "01/02/2024"}, "until_date"),
    ],
)
def test_export_invalid_parameters(
    emu: FollowAnalyticsEmulator, session: requests.Session, path: str, params: dict[str, str], fragment: str
) -> None:
    headers = login(emu, session)
    response = session.get(f"{emu.url}{path}", params={"skip_email": "true", **params}, headers=headers, timeout=5)
    assert response.status_code == 400
    payload = response.json()
    assert payload["success"] is False
    assert payload["status"] == 400
    assert fragment in payload["error_message"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/apps/bad%20id/devices_export.csv",
        "/api/apps/bad.id/events_export.csv",
        "/segments/..%2F..%2Fetc/devices_export.csv",
        "/segments/FASEGMT_1/devices_export.json",
        "/api/apps/FAAPPLI_1/devices_export.csv/",
        "/api/nothing_here",
        "/",
    ],
)
def test_not_found(emu: FollowAnalyticsEmulator, session: requests.Session, path: str) -> None:
    headers = login(emu, session)
    response = session.get(f"{emu.url}{path}", params={"skip_email": "true"}, headers=headers, timeout=5)
    assert response.status_code == 404
    assert response.headers["Content-Type"] == JSON_TYPE
    assert response.json() == {"success": False, "message": "Not found"}


def test_public_url_is_used_in_callbacks(emu: FollowAnalyticsEmulator, session: requests.Session) -> None:
    emu.public_url = "https://elsewhere.example.com/"
    callback = start_export(emu, session, login(emu, session))
    assert callback.startswith("https://elsewhere.example.com/api/exports/download_url?export_token=")
