"""URL rules: where credentials may go (the connection's host, over https or loopback http, or an
opted-in ``allow_insecure_http`` host: see the README's *Connection*), and how URLs appear in logs."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import SplitResult, parse_qs, urlsplit

from airflow_provider_followanalytics.exceptions import FollowAnalyticsConfigError

DEFAULT_BASE_URL = "https://api.follow-apps.com"

_EXPORT_TOKEN_RE = re.compile(r"(export_token=)[^&#\s'\"]+")
_UNSAFE_CHARS_RE = re.compile(r"[\s\x00-\x1f\x7f]")
_USERINFO_RE = re.compile(r"(\w+://)[^/@\s'\"]+@")


def is_loopback(hostname: str | None) -> bool:
    """Return True for ``localhost``, 127.0.0.0/8 and ``::1``."""
    if not hostname:
        return False
    if hostname.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname.strip("[]")).is_loopback
    except ValueError:
        return False


def _port(parts: SplitResult) -> int:
    try:
        port = parts.port
    except ValueError as exc:
        raise FollowAnalyticsConfigError(f"Invalid port in {parts.netloc!r}.") from exc
    return port if port is not None else (443 if parts.scheme == "https" else 80)


def normalize_base_url(
    host: str | None, port: int | None = None, scheme: str | None = None, *, allow_insecure_http: bool = False
) -> str:
    """Turn a connection's host field (a host name or a base URL), its port field and its ``scheme``
    and ``allow_insecure_http`` extras into the API base URL (default ``DEFAULT_BASE_URL``)."""
    raw = (host or "").strip()
    chosen = (scheme or "").strip().lower() or None
    if chosen not in (None, "https", "http"):
        raise FollowAnalyticsConfigError(
            f"Connection extra scheme={scheme!r} is not supported; expected 'https' or 'http'."
        )
    if not raw:
        if chosen == "http":
            raise FollowAnalyticsConfigError(
                "Connection extra scheme='http' needs a host (e.g. 127.0.0.1 for the local emulator); "
                "without one the default API is used, over https."
            )
        return DEFAULT_BASE_URL
    if "://" in raw:
        candidate = raw
        given = raw.split("://", 1)[0].lower()
        if chosen is not None and given != chosen:
            raise FollowAnalyticsConfigError(
                f"Connection host {raw!r} says {given}:// but its extra says scheme={scheme!r}; keep one of them."
            )
    else:
        candidate = f"{chosen or 'https'}://{raw}"
    parts = urlsplit(candidate)
    if parts.scheme not in ("https", "http"):
        raise FollowAnalyticsConfigError(
            f"Connection host {raw!r} has scheme {parts.scheme!r}; expected https:// "
            "(or http:// for a loopback host such as the local emulator)."
        )
    if not parts.hostname:
        raise FollowAnalyticsConfigError(f"Connection host {raw!r} has no host name.")
    if parts.username or parts.password:
        raise FollowAnalyticsConfigError(
            "Connection host must not contain credentials; put the e-mail in Login and the password in Password."
        )
    if parts.query or parts.fragment:
        raise FollowAnalyticsConfigError(f"Connection host {raw!r} must not have a query or fragment.")
    if parts.scheme == "http" and not is_loopback(parts.hostname) and not allow_insecure_http:
        raise FollowAnalyticsConfigError(
            f"Connection host {raw!r} uses plain http; only https is allowed except for loopback "
            "hosts (127.0.0.1, localhost), so that credentials never cross a network in clear text "
            "(for an emulator on another host, such as a Docker sidecar, set the extra "
            "allow_insecure_http: true)."
        )
    netloc = parts.netloc
    if port and parts.port is None:
        netloc = f"{netloc}:{int(port)}"
    return f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}"


def is_insecure_remote(base_url: str) -> bool:
    """True for a plain-http base URL on a host that is not loopback (only ever by opt-in)."""
    parts = urlsplit(base_url)
    return parts.scheme == "http" and not is_loopback(parts.hostname)


def same_origin(url_a: str, url_b: str) -> bool:
    """Return True when both URLs have the same scheme, host and port."""
    a, b = urlsplit(url_a), urlsplit(url_b)
    return a.scheme == b.scheme and (a.hostname or "").lower() == (b.hostname or "").lower() and _port(a) == _port(b)


def validate_callback_url(callback_url: object, base_url: str) -> str:
    """Check a callback URL (usually from XCom) before anything is sent to it, and return it: on the
    connection's origin, https (or http on loopback), without credentials, with an ``export_token``."""
    if not isinstance(callback_url, str) or not callback_url.strip():
        raise FollowAnalyticsConfigError(
            f"callback_url must be the non-empty URL returned by an export operator, got {callback_url!r}. "
            "Was the export started with skip_email=False (e-mail delivery has no callback)?"
        )
    url = callback_url.strip()
    shown = redact_url(url)
    if _UNSAFE_CHARS_RE.search(url):
        raise FollowAnalyticsConfigError(
            f"callback_url {shown!r} contains whitespace or control characters; expected the URL exactly "
            "as the export API returned it."
        )
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise FollowAnalyticsConfigError(f"callback_url {shown!r} is not an http(s) URL.")
    if parts.username is not None or parts.password is not None:
        raise FollowAnalyticsConfigError(f"callback_url {shown!r} must not contain credentials.")
    # Plain http to another host only when the connection itself opted in to it (then the
    # same-origin check below keeps the token on that one host).
    if parts.scheme == "http" and not is_loopback(parts.hostname) and not is_insecure_remote(base_url):
        raise FollowAnalyticsConfigError(
            f"callback_url {shown!r} uses plain http on a non-loopback host; only https is accepted."
        )
    if not same_origin(url, base_url):
        base = urlsplit(base_url)
        raise FollowAnalyticsConfigError(
            f"callback_url {shown!r} is not on the connection's host {base.scheme}://{base.netloc}; "
            "refusing to send FollowAnalytics credentials to another host."
        )
    tokens = parse_qs(parts.query).get("export_token", [])
    if len(tokens) != 1 or not tokens[0].strip():
        raise FollowAnalyticsConfigError(
            f"callback_url {shown!r} has no export_token query parameter; expected the URL exactly as "
            "the export API returned it."
        )
    return url


def export_token_of(callback_url: str) -> str | None:
    """Return the export token of a callback URL (the secret part), if any."""
    tokens = parse_qs(urlsplit(callback_url).query).get("export_token", [])
    return tokens[0] if tokens else None


def redact_url(url: str) -> str:
    """Hide the export token and any ``user:password@`` of a URL, for logs and error messages."""
    return _USERINFO_RE.sub(r"\1***@", _EXPORT_TOKEN_RE.sub(r"\1***", url))


def redact_text(text: str, secrets: tuple[str | None, ...] = ()) -> str:
    """Hide export tokens and the given secret values in free text (e.g. a library's error)."""
    text = redact_url(text)
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text
