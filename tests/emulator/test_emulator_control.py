"""The emulator's control plane: recorded requests, reset, and /_emulator config, faults, state and secrets."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from airflow_provider_followanalytics.emulator import FollowAnalyticsEmulator, RecordedRequest, expected_export_bytes
from tests.emulator._support import PASSWORD, login, raw_connection, start_export, wait_for

pytestmark = pytest.mark.version_independent  # no Airflow in it: CI runs it on Airflow 3.3 only


# Recording --------------------------------------------------------------------------------------------


def test_requests_are_recorded_raw(emu: FollowAnalyticsEmulator) -> None:
    conn = raw_connection(emu)
    try:
        conn.request(
            "POST",
            "/api//apps/x/../devices_export.csv?b=2&a=1&a=3&empty=",
            body=b"\x00payload",
            headers={"X-Custom-Header": "Value", "Authorization": "Token abc"},
        )
        response = conn.getresponse()
        response.read()
    finally:
        conn.close()
    assert response.status == 404
    (recorded,) = emu.requests
    assert isinstance(recorded, RecordedRequest)
    assert recorded.method == "POST"
    assert recorded.path == "/api//apps/x/../devices_export.csv"
    assert recorded.query == {"b": "2", "a": "3", "empty": ""}
    assert recorded.headers["x-custom-header"] == "Value"
    assert recorded.headers["authorization"] == "Token abc"
    assert recorded.body == b"\x00payload"
    assert recorded.route == "unknown"
    with pytest.raises(AttributeError):
        recorded.path = "/changed"  # type: ignore[misc]


def test_reset_keeps_account_and_config(emu: FollowAnalyticsEmulator, session: requests.Session) -> None:
    emu.ready_after = 3
    headers = login(emu, session)
    callback = start_export(emu, session, headers)
    emu.add_fault("login")
    emu.reset()
    assert emu.requests == []
    assert emu.login_count == 0
    assert emu.bytes_sent == []
    assert emu.pending_faults == []
    assert emu.state()["exports"] == 0
    assert emu.ready_after == 3
    assert session.get(callback, headers=headers, timeout=5).status_code == 400  # export forgotten
    login(emu, session)
    assert emu.login_count == 1


def test_request_log_is_bounded_but_state_counts_everything(session: requests.Session) -> None:
    # A long-running emulator (a benchmark, a developer's day) must not grow without bound.
    with FollowAnalyticsEmulator(max_recorded_requests=10) as emu:
        for _ in range(25):
            assert session.get(f"{emu.url}/nowhere", timeout=5).status_code == 404
        login(emu, session)

        assert 10 <= len(emu.requests) <= 11  # trimmed in batches of a tenth
        assert emu.requests[-1].route == "login"  # the newest are the ones kept
        assert emu.state()["requests"]["unknown"] == 25
        assert emu.state()["requests"]["login"] == 1
        emu.reset()
        assert emu.state()["requests"]["unknown"] == 0


@pytest.mark.parametrize("value", [0, -1, 2.5, "10"])
def test_request_log_bound_must_be_a_positive_integer(value: Any) -> None:
    with pytest.raises(ValueError, match=f"max_recorded_requests={value!r} must be an integer >= 1"):
        FollowAnalyticsEmulator(max_recorded_requests=value)


# Control endpoints --------------------------------------------------------------------------------


def test_control_endpoints(emu: FollowAnalyticsEmulator, session: requests.Session) -> None:
    base = f"{emu.url}/_emulator"
    config = session.post(
        f"{base}/config",
        json={"ready_after": 1, "export_size": 1234, "seed": 3, "download_mode": "chunked", "never_ready": False},
        timeout=5,
    )
    assert config.status_code == 200
    assert config.json()["result"]["ready_after"] == 1
    assert "password" not in config.json()["result"]
    assert (emu.ready_after, emu.export_size, emu.seed, emu.download_mode) == (1, 1234, 3, "chunked")
    for bad in ({"ready_after": "1"}, {"download_mode": "carrier-pigeon"}, {"bogus": 1}, {"never_ready": 1}):
        rejected = session.post(f"{base}/config", json=bad, timeout=5)
        assert rejected.status_code == 400
        assert rejected.json()["success"] is False
    assert session.post(f"{base}/config", data="[]", timeout=5).status_code == 400

    headers = login(emu, session)
    callback = start_export(emu, session, headers)
    assert session.get(callback, headers=headers, timeout=5).status_code == 202
    download = session.get(callback, headers=headers, timeout=5)
    assert download.content == expected_export_bytes(1234, "csv", seed=3)

    fault = session.post(f"{base}/faults", json={"route": "login", "status": 429, "retry_after": 1}, timeout=5)
    assert fault.status_code == 200
    assert session.post(f"{base}/faults", json={"route": "mars"}, timeout=5).status_code == 400
    assert session.post(f"{base}/faults", json={"route": "login", "x": 1}, timeout=5).status_code == 400
    assert session.post(f"{emu.url}/api/login", json={}, timeout=5).status_code == 429

    wait_for(lambda: emu.bytes_sent == [1234], what="bytes_sent")
    state = session.get(f"{base}/state", timeout=5).json()
    assert state["login_count"] == 1
    assert state["requests"]["login"] == 2
    assert state["requests"]["export"] == 1
    assert state["requests"]["callback"] == 2
    assert state["requests"]["control"] >= 7
    assert state["bytes_sent"] == [1234]
    assert state["exports"] == 1

    assert session.post(f"{base}/reset", timeout=5).status_code == 200
    state = session.get(f"{base}/state", timeout=5).json()
    assert state["login_count"] == 0
    assert state["exports"] == 0
    assert state["bytes_sent"] == []
    assert state["requests"]["control"] == 1  # this state request
    assert emu.ready_after == 1  # config survives a reset
    assert session.get(f"{base}/nothing", timeout=5).status_code == 404
    assert session.get(f"{base}/reset", timeout=5).status_code == 405


def test_secrets_endpoint_lists_every_secret_handed_out(
    emu: FollowAnalyticsEmulator, session: requests.Session
) -> None:
    headers = login(emu, session)
    callback = start_export(emu, session, headers)
    emu.reset()  # the secrets stay known: a process may still hold them

    answer = session.get(f"{emu.url}/_emulator/secrets", timeout=5)

    assert answer.status_code == 200
    secrets = answer.json()
    assert secrets["password"] == PASSWORD
    assert secrets["auth_tokens"] == [headers["Authorization"].removeprefix("Token ")]
    assert secrets["export_tokens"] == [callback.split("export_token=")[1]]
    keys = [entity[k] for entity in emu.user["entities"] for k in ("qa_api_key", "prod_api_key")]
    assert secrets["api_keys"] == keys
    assert len(set(keys)) == 4
    assert session.post(f"{emu.url}/_emulator/secrets", timeout=5).status_code == 405
