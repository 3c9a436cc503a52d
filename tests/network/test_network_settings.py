"""The ``verify`` and ``proxies`` extras and the environment: checked before any request, one route for both clients."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_followanalytics._network import NetworkSettings, network_settings, route_for
from airflow_provider_followanalytics.exceptions import FollowAnalyticsConfigError

pytestmark = pytest.mark.version_independent

API = "https://api.follow-apps.com"


@pytest.mark.parametrize(
    ("verify", "proxies", "message"),
    [
        ("/no/such/ca.pem", None, "verify='/no/such/ca.pem' names no file or folder on this machine"),
        (3, None, "verify=3 is invalid (int given); expected true, false or the path of a CA bundle"),
        ("yes", None, "verify='yes' names no file or folder"),
        (None, "{not json", "proxies is not a JSON object"),
        (None, '["http://proxy:3128"]', "proxies is not a JSON object"),
        (None, {"ftp": "http://proxy:3128"}, "proxies has the key 'ftp'; expected some of https, http, all, no_proxy"),
        (None, {"https": 3128}, "proxies['https'] is a int; expected a text"),
        (None, {"https": "socks5://u:s3cret@proxy:1080"}, "proxies['https']='socks5://***@proxy:1080' is not a proxy"),
        (None, {"https": "proxy:3128"}, "proxies['https']='proxy:3128' is not a proxy URL"),
    ],
)
def test_a_bad_extra_is_refused_naming_the_value_and_what_is_expected(
    verify: object, proxies: object, message: str
) -> None:
    with pytest.raises(FollowAnalyticsConfigError) as err:
        network_settings(verify, proxies)
    assert message in str(err.value)
    assert "s3cret" not in str(err.value)


@pytest.mark.parametrize(
    ("given", "expected"), [(True, True), ("false", False), (" TRUE ", True), (None, None), ("", None)]
)
def test_verify_reads_a_flag(given: object, expected: object) -> None:
    assert network_settings(given, None).verify == expected


def test_the_extras_win_over_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not read here")
    monkeypatch.setenv("HTTPS_PROXY", "http://env-proxy:3128")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/env/ca.pem")
    network = network_settings(str(ca), '{"https": "http://user:p%40ss@extra-proxy:3128"}')

    route = route_for(API, network)

    assert (route.proxy, route.proxy_from) == ("http://user:p%40ss@extra-proxy:3128", "extra proxies")
    assert (route.verify, route.verify_from) == (str(ca), "extra verify")
    assert sorted(network.proxy_passwords()) == ["p%40ss", "p@ss"]  # as written and as sent
    assert "p%40ss" not in repr(network)
    assert "p@ss" not in repr(network)


def test_the_environment_applies_without_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://env-proxy:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,.internal")
    monkeypatch.setenv("SSL_CERT_FILE", "/etc/ssl/company.pem")
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/ssl/curl.pem")  # read before SSL_CERT_FILE, as requests does

    route = route_for(API, NetworkSettings())

    assert (route.proxy, route.proxy_from) == ("http://env-proxy:3128", "environment HTTPS_PROXY")
    assert (route.verify, route.verify_from) == ("/etc/ssl/curl.pem", "environment CURL_CA_BUNDLE")
    assert route_for("https://fa.internal", NetworkSettings()).proxy is None  # NO_PROXY's .internal
    assert route_for("http://localhost:8765", NetworkSettings()).proxy_from == "environment NO_PROXY"


def test_the_extras_replace_the_environment_no_proxy_included(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "api.follow-apps.com")
    monkeypatch.setenv("HTTP_PROXY", "http://env-proxy:3128")
    network = network_settings(None, {"all": "http://extra-proxy:3128", "no_proxy": "emulator.local"})

    assert route_for(API, network).proxy == "http://extra-proxy:3128"  # "all": any scheme
    assert route_for("http://emulator.local:8765", network).proxy is None
    assert route_for("http://emulator.local:8765", network).proxy_from == "extra proxies (no_proxy)"


def test_nothing_set_trusts_certifi_and_goes_direct() -> None:
    route = route_for(API, NetworkSettings())
    assert (route.proxy, route.verify, route.proxy_from, route.verify_from) == (None, True, "none", "certifi")
