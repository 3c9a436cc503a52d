"""Where each request goes and whom it trusts: the ``verify`` and ``proxies`` extras and the environment (internal).

One policy for the worker (``requests``) and the triggerer (aiohttp), which read the environment
differently on their own (``REQUESTS_CA_BUNDLE`` is read by ``requests`` only, aiohttp trusts the
system's store, not certifi's), so both clients are handed what :func:`route_for` decides:

- the CA: the connection's ``verify`` extra (``true``, ``false``, or a CA bundle file or folder), else
  ``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``, ``SSL_CERT_FILE``, ``SSL_CERT_DIR``, else certifi's bundle
  (what ``requests`` trusts by default);
- the proxy: the connection's ``proxies`` extra (``{"https": "http://user:pass@proxy:3128"}`` as in
  ``requests``, its ``no_proxy`` key included) replaces the environment's; without it,
  ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY`` and ``NO_PROXY``.

README *Behind a proxy / private CA*.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from airflow_provider_followanalytics._checks import parse_flag
from airflow_provider_followanalytics._urls import redact_url
from airflow_provider_followanalytics.exceptions import FollowAnalyticsConfigError

if TYPE_CHECKING:
    import ssl

#: The environment variables naming a CA bundle, in the order ``requests`` reads the first two.
CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR")
_PROXY_VARIABLES = (
    "https_proxy",
    "HTTPS_PROXY",
    "http_proxy",
    "HTTP_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
)
_PROXY_KEYS = ("https", "http", "all", "no_proxy")


@dataclass(frozen=True)
class NetworkSettings:
    """The connection's ``verify`` and ``proxies`` extras, checked (``None``: not set, the environment decides).

    :param verify: ``True``, ``False``, or the path of a CA bundle file or folder.
    :param proxies: ``(key, value)`` pairs of the ``proxies`` extra (``https``, ``http``, ``all``, ``no_proxy``).
    """

    verify: bool | str | None = None
    proxies: tuple[tuple[str, str], ...] | None = None

    def __repr__(self) -> str:  # proxy URLs may carry credentials
        proxies = None if self.proxies is None else {key: redact_url(value) for key, value in self.proxies}
        return f"NetworkSettings(verify={self.verify!r}, proxies={proxies!r})"

    def proxy_passwords(self) -> tuple[str, ...]:
        """The passwords in the ``proxies`` extra, as written and percent-decoded (to mask and to hide)."""
        return tuple(password for _, value in self.proxies or () for password in _passwords_of(value))


@dataclass(frozen=True)
class Route:
    """How one request is sent: through ``proxy`` (a URL, or ``None`` for a direct connection),
    trusting ``verify`` (``True``: certifi's bundle; ``False``: nothing is checked; a path: that CA)."""

    proxy: str | None
    verify: bool | str
    proxy_from: str  # "extra proxies", "environment HTTPS_PROXY", ... for messages and logs
    verify_from: str

    def ssl_context(self) -> ssl.SSLContext:
        """An ``ssl`` context trusting what ``verify`` says (build it once per route, not per request)."""
        import ssl

        if self.verify is False:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        if self.verify is True:
            import certifi  # requests' own default bundle: both clients trust the same CAs

            return ssl.create_default_context(cafile=certifi.where())
        if os.path.isdir(self.verify):
            return ssl.create_default_context(capath=self.verify)
        return ssl.create_default_context(cafile=self.verify)


def network_settings(verify: Any, proxies: Any) -> NetworkSettings:
    """Check the ``verify`` and ``proxies`` extras (either may be ``None``: not set)."""
    return NetworkSettings(verify=_checked_verify(verify), proxies=_checked_proxies(proxies))


def route_for(url: str, network: NetworkSettings) -> Route:
    """The proxy and the CA of a request to ``url``: the connection's extras first, then the environment."""
    proxy, proxy_from = _proxy_for(url, network)
    if network.verify is not None:
        verify: bool | str = network.verify
        verify_from = "extra verify"
    else:
        verify, verify_from = True, "certifi"
        for name in CA_VARIABLES:
            value = os.environ.get(name)
            if value:
                verify, verify_from = value, f"environment {name}"
                break
    return Route(proxy=proxy, verify=verify, proxy_from=proxy_from, verify_from=verify_from)


def env_proxy_for(url: str) -> str | None:
    """The environment's proxy for ``url`` (``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``; ``NO_PROXY``).

    :param url: the URL a request goes to; its scheme picks the variable, its host is matched against ``NO_PROXY``.
    :return: the proxy URL, or None for a direct connection.
    """
    return _proxy_for(url, NetworkSettings())[0]


def proxy_refused(what: str, proxy: str | None) -> FollowAnalyticsConfigError:
    """The error of a proxy that answered 407: its credentials are wrong or missing (not retried)."""
    where = redact_url(proxy) if proxy else "the proxy"
    return FollowAnalyticsConfigError(
        f"FollowAnalytics {what} failed: the proxy {where} refused the credentials (HTTP 407 Proxy Authentication "
        "Required). Not retried: check the user and password in the connection extra proxies (or HTTPS_PROXY)."
    )


def _proxy_for(url: str, network: NetworkSettings) -> tuple[str | None, str]:
    parts = urlsplit(url)
    scheme, host = parts.scheme, parts.hostname or ""
    if network.proxies is not None:  # the connection's extras replace the environment, no_proxy included
        given = dict(network.proxies)
        if _bypassed(host, given.get("no_proxy")):
            return None, "extra proxies (no_proxy)"
        proxy = given.get(scheme) or given.get("all")
        return proxy, "extra proxies" if proxy else "extra proxies (none for this scheme)"
    # Reading the whole environment costs ~0.5 ms; thousands of triggers ask the same question.
    return _env_proxy_for(scheme, host, tuple(os.environ.get(name) for name in _PROXY_VARIABLES))


@functools.lru_cache(maxsize=64)
def _env_proxy_for(scheme: str, host: str, _environment: tuple[str | None, ...]) -> tuple[str | None, str]:
    import urllib.request  # not at module import: DAG files that import the operators do not need it

    if urllib.request.proxy_bypass_environment(host):  # type: ignore[attr-defined]
        return None, "environment NO_PROXY"
    found = urllib.request.getproxies_environment()
    for key in (scheme, "all"):
        if found.get(key):
            return found[key], f"environment {key.upper()}_PROXY"
    return None, "none"


def _bypassed(host: str, no_proxy: str | None) -> bool:
    if not no_proxy:
        return False
    host = host.lower().strip("[]")
    for entry in (item.strip().lower().lstrip(".") for item in no_proxy.split(",")):
        if entry == "*" or (entry and (host == entry or host.endswith("." + entry))):
            return True
    return False


def _checked_verify(value: Any) -> bool | str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool) or (isinstance(value, str) and value.strip().lower() in ("true", "false")):
        return parse_flag(value, "Connection extra verify")
    if not isinstance(value, str):
        raise FollowAnalyticsConfigError(
            f"Connection extra verify={value!r} is invalid ({type(value).__name__} given); expected true, false "
            "or the path of a CA bundle file (PEM) or folder."
        )
    path = os.path.expanduser(value.strip())
    if not os.path.exists(path):
        raise FollowAnalyticsConfigError(
            f"Connection extra verify={value!r} names no file or folder on this machine; expected true, false or "
            "the path of a CA bundle (PEM) that every worker and triggerer can read."
        )
    return path


def _checked_proxies(value: Any) -> tuple[tuple[str, str], ...] | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = None  # said below, without quoting a text that may hold a password
    if not isinstance(value, dict):
        raise FollowAnalyticsConfigError(
            'Connection extra proxies is not a JSON object; expected e.g. {"https": "http://user:pass@proxy:3128"}.'
        )
    pairs: list[tuple[str, str]] = []
    for key, proxy in value.items():
        if key not in _PROXY_KEYS:
            raise FollowAnalyticsConfigError(
                f"Connection extra proxies has the key {key!r}; expected some of {', '.join(_PROXY_KEYS)}."
            )
        if not isinstance(proxy, str):
            raise FollowAnalyticsConfigError(
                f"Connection extra proxies[{key!r}] is a {type(proxy).__name__}; expected a text."
            )
        if key != "no_proxy":
            parts = urlsplit(proxy.strip())
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise FollowAnalyticsConfigError(
                    f"Connection extra proxies[{key!r}]={redact_url(proxy)!r} is not a proxy URL; expected "
                    "http://host:port or http://user:password@host:port (https:// for a TLS proxy)."
                )
        pairs.append((key, proxy.strip()))
    return tuple(pairs)


def _passwords_of(proxy: str) -> tuple[str, ...]:
    try:
        password = urlsplit(proxy).password
    except ValueError:
        return ()
    return tuple({password, unquote(password)}) if password else ()
