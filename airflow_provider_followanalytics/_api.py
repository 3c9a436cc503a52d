"""The FollowAnalytics API protocol, independent of any HTTP library (internal).

Connection settings, the headers of every request, the response envelope and its two error shapes,
the retry rules and the errors of requests that got no usable answer. The sync hook and the
triggerer's async client follow these rules, so they behave the same.
"""

from __future__ import annotations

import email.utils
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any, NoReturn
from urllib.parse import quote

from airflow_provider_followanalytics import CONN_TYPE, __version__
from airflow_provider_followanalytics._checks import parse_flag, parse_number
from airflow_provider_followanalytics._compat import mask_secret, secret_masker
from airflow_provider_followanalytics._network import NetworkSettings, network_settings
from airflow_provider_followanalytics._urls import normalize_base_url, redact_text, redact_url
from airflow_provider_followanalytics.exceptions import (
    FollowAnalyticsAPIError,
    FollowAnalyticsAuthError,
    FollowAnalyticsConfigError,
    FollowAnalyticsError,
    FollowAnalyticsExportExpiredError,
    FollowAnalyticsRetryableError,
)

USER_AGENT = f"airflow-provider-followanalytics/{__version__}"
DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 5
DEFAULT_RETRY_DELAY = 1.0
DEFAULT_MAX_RETRY_DELAY = 60.0
CALLBACK_REQUEST = "GET callback URL"
FILE_FORMATS = ("csv", "xls")  # what an export can be produced as
#: The API answers 401 or 403 to an expired token: log in again once and replay the request.
RELOGIN_STATUSES = frozenset({401, 403})
_EXPIRED_HINT = (
    "the export link is missing, invalid or has expired; start the export again "
    "(export operator) to get a fresh callback URL"
)

Secrets = tuple[str | None, ...]


@dataclass(frozen=True)
class ConnectionSettings:
    """What the hook needs from an Airflow connection, resolved once (see the README's *Connection*)."""

    base_url: str
    email: str
    password: str
    timeout: float  # connect and read timeout of each request
    max_retries: int  # retries on network errors, timeouts, 429 and 5xx
    retry_delay: float  # base of the exponential backoff
    max_retry_delay: float  # cap of one backoff, and the longest Retry-After honoured
    network: NetworkSettings = field(default_factory=NetworkSettings)  # the verify and proxies extras

    def __repr__(self) -> str:  # never show the password, even in a debugger
        return f"ConnectionSettings(base_url={self.base_url!r}, email=***, timeout={self.timeout}, {self.network!r})"

    def secrets(self) -> tuple[str, ...]:
        """The password and the proxies' passwords: what no message may quote."""
        return (self.password, *self.network.proxy_passwords())


def _extra_value(extra: dict[str, Any], name: str) -> Any:
    # Airflow 3 forms store conn-fields under their name; old Airflow 2 forms used a prefix.
    for key in (name, f"extra__{CONN_TYPE}__{name}"):
        value = extra.get(key)
        if value not in (None, ""):
            return value
    return None


def _flag(value: Any, name: str) -> bool:
    return False if value is None else parse_flag(value, f"Connection extra {name}")


def settings_from_connection(conn: Any, **overrides: Any) -> ConnectionSettings:
    """Validate an Airflow connection (Airflow 2 model or Airflow 3 SDK class); ``overrides`` (the hook's
    arguments, ``None`` when not given) win over its extras.

    The password is registered with the masker before anything that can fail, and no frame that can
    raise after that holds it in a local: Airflow 3.0 prints tracebacks with their frames' locals, and
    an Airflow 3 SDK ``Connection``'s repr shows its password.
    """
    mask = secret_masker()  # fails (naming the Airflow version) before any secret is read
    if conn.password:
        mask(conn.password)
    fields = _ConnectionFields.of(conn)
    del conn  # from here on, no local of this frame shows the password
    if not fields.login or not fields.password:
        missing = "login (account e-mail)" if not fields.login else "password"
        raise FollowAnalyticsConfigError(
            f"Connection {fields.conn_id!r} has no {missing}; FollowAnalytics needs the account e-mail as "
            "Login and its password as Password."
        )
    extra = fields.extra

    def pick(name: str, default: Any, integer: bool = False, minimum: float = 0) -> float:
        value = overrides.get(name)
        if value is None:
            value = _extra_value(extra, name)
        return parse_number(default if value is None else value, name, integer=integer, minimum=minimum, text=True)

    network = network_settings(_extra_value(extra, "verify"), _extra_value(extra, "proxies"))
    for proxy_password in network.proxy_passwords():
        mask(proxy_password)
    return ConnectionSettings(
        base_url=normalize_base_url(
            fields.host,
            fields.port,
            _extra_value(extra, "scheme"),
            allow_insecure_http=_flag(_extra_value(extra, "allow_insecure_http"), "allow_insecure_http"),
        ),
        email=fields.login,
        password=fields.password,
        timeout=pick("timeout", DEFAULT_TIMEOUT, minimum=0.001),
        max_retries=int(pick("max_retries", DEFAULT_MAX_RETRIES, integer=True)),
        retry_delay=pick("retry_delay", DEFAULT_RETRY_DELAY),
        max_retry_delay=pick("max_retry_delay", DEFAULT_MAX_RETRY_DELAY),
        network=network,
    )


@dataclass(frozen=True)
class _ConnectionFields:
    """The fields of a connection that settings need, with the password out of sight of ``repr``."""

    conn_id: str | None
    login: str
    host: str | None
    port: int | None
    extra: dict[str, Any]
    password: str = field(repr=False)  # out of repr(), so out of a traceback's rendered locals

    @classmethod
    def of(cls, conn: Any) -> _ConnectionFields:
        extra = conn.extra_dejson or {}  # the one read that can fail, before the password is taken
        return cls(
            conn_id=getattr(conn, "conn_id", None),
            login=(conn.login or "").strip(),
            host=conn.host,
            port=conn.port,
            extra=extra,
            password=conn.password or "",
        )


def request_headers(token: str | None, *, has_body: bool = False) -> dict[str, str]:
    """The headers of every FollowAnalytics request (``Authorization`` only with a token)."""
    headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
    if has_body:
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Token {token}"
    return headers


def parse_retry_after(value: str | None) -> float | None:
    """Read a ``Retry-After`` header: delta seconds or an HTTP date. ``None`` if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Delay before retry number ``attempt`` (0-based): ``base * 2**attempt``, capped, with jitter in
    [50%, 100%] so that many clients that failed together do not retry together."""
    return min(cap, base * (2**attempt)) * random.uniform(0.5, 1.0)


def is_retryable_status(status: int) -> bool:
    """429 and 5xx are transient; other statuses are answers."""
    return status == 429 or 500 <= status <= 599


def raise_for_redirect(what: str, status: int, location: str | None) -> None:
    """Refuse a 3xx: the token must never follow a redirect to wherever it points."""
    if 300 <= status < 400:
        raise FollowAnalyticsAPIError(
            f"FollowAnalytics {what} answered a redirect (HTTP {status}) to {redact_url(location or '?')}; "
            "redirects are not followed so credentials stay on the connection's host.",
            http_status=status,
        )


def transport_failure(
    what: str, exc: BaseException, *, tls: bool, base_url: str, secrets: Secrets, attempts: int | None = None
) -> FollowAnalyticsError:
    """The error of a request that got no answer: retryable, except a TLS error (the same handshake
    fails again), which says what to check. ``attempts`` is named in the message when given."""
    reason = redact_text(f"{type(exc).__name__}: {exc}", secrets)
    if not tls:
        after = "" if attempts is None else f" after {attempts} attempt(s)"
        return FollowAnalyticsRetryableError(f"FollowAnalytics {what} failed{after}: {reason}")
    text = reason.upper()
    if "WRONG_VERSION_NUMBER" in text or "RECORD_LAYER_FAILURE" in text or "PACKET_LENGTH_TOO_LONG" in text:
        hint = (
            f"the server at {base_url} does not speak TLS; if it is a plain-http server such as the local "
            "emulator, give the connection's host with http:// (e.g. http://127.0.0.1:8765) or set the "
            "extra scheme: http"
        )
    elif "CERTIFICATE" in text:
        hint = (
            f"the certificate of {base_url} could not be verified; check the host name, or point the "
            "connection extra verify (or REQUESTS_CA_BUNDLE / SSL_CERT_FILE) at the CA bundle that signed it"
        )
    else:
        hint = f"check that {base_url} serves https"
    return FollowAnalyticsConfigError(f"FollowAnalytics {what} failed: TLS error: {reason}. Not retried: {hint}.")


def error_message_from_body(body: Any, secrets: Secrets = ()) -> str | None:
    """The server's message in either documented error shape, with secrets it may echo hidden."""
    if isinstance(body, dict):
        for key in ("error_message", "message", "error"):
            value = body.get(key)
            if isinstance(value, str) and value.strip():
                return redact_text(value.strip(), secrets)
    return None


def _describe_body(text: str, secrets: Secrets = ()) -> str:
    # Error pages may quote the request they failed on: hide secrets before quoting them.
    snippet = redact_text(" ".join(text.split()), secrets)[:120]
    return f"a non-JSON body ({snippet!r})" if snippet else "an empty body"


def unwrap_envelope(status: int, content_type: str, text: str, what: str, secrets: Secrets = ()) -> Any:
    """Return ``result`` from a ``{"success": true, "result": ...}`` body, or raise the error it means.

    ``what`` names the request in messages (e.g. ``"GET /api/data_exporters"``); ``secrets`` are
    hidden if the server quotes them.
    """
    try:
        body = json.loads(text) if text else None
    except ValueError:
        body = None
    server_message = error_message_from_body(body, secrets)
    if status != 200:
        detail = server_message or (_describe_body(text, secrets) if body is None else "no message")
        error_cls = FollowAnalyticsRetryableError if is_retryable_status(status) else FollowAnalyticsAPIError
        raise error_cls(
            f"FollowAnalytics {what} failed: HTTP {status}: {detail}",
            http_status=status,
            server_message=server_message,
        )
    if not isinstance(body, dict):
        raise FollowAnalyticsAPIError(
            f"FollowAnalytics {what} answered HTTP 200 with {_describe_body(text, secrets)} "
            f"(Content-Type {content_type or 'missing'}); expected a JSON envelope.",
            http_status=status,
        )
    if body.get("success") is not True:
        raise FollowAnalyticsAPIError(
            f"FollowAnalytics {what} answered HTTP 200 but success is {body.get('success')!r}: "
            f"{server_message or 'no message'}",
            http_status=status,
            server_message=server_message,
        )
    if "result" not in body:
        raise FollowAnalyticsAPIError(
            f"FollowAnalytics {what} answered HTTP 200 without a 'result' field.", http_status=status
        )
    return body["result"]


def raise_for_callback(status: int, text: str, content_type: str, secrets: Secrets = ()) -> NoReturn:
    """Raise the error that a callback URL's non-200/202 answer means."""
    if status == 400:
        try:
            message = error_message_from_body(json.loads(text), secrets)
        except ValueError:
            message = None
        raise FollowAnalyticsExportExpiredError(
            f"FollowAnalytics callback answered HTTP 400: {message or 'no message'}: {_EXPIRED_HINT}.",
            http_status=400,
            server_message=message,
        )
    unwrap_envelope(status, content_type, text, CALLBACK_REQUEST, secrets)
    raise FollowAnalyticsAPIError(
        f"FollowAnalytics callback answered unexpected HTTP {status}; expected 200, 202 or 400.",
        http_status=status,
    )


def _mask_user_secrets(value: Any) -> None:
    # The login's user object lists entities with their API keys: mask every *key / token string.
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, str) and ("key" in key.lower() or "token" in key.lower()):
                mask_secret(item)
            else:
                _mask_user_secrets(item)
    elif isinstance(value, list):
        for item in value:
            _mask_user_secrets(item)


def token_from_login_response(
    status: int, content_type: str, text: str, email: str, retry_after: float | None = None, secrets: Secrets = ()
) -> str:
    """Read the auth token out of a ``POST /api/login`` answer and mask it.

    A 429/5xx stays a :class:`FollowAnalyticsRetryableError` (with the server's ``Retry-After``);
    any other error becomes a :class:`FollowAnalyticsAuthError` naming the account, never the password.
    """
    try:
        result = unwrap_envelope(status, content_type, text, "login", secrets)
    except FollowAnalyticsRetryableError as exc:
        exc.retry_after = retry_after
        raise
    except FollowAnalyticsAPIError as exc:
        raise FollowAnalyticsAuthError(
            f"FollowAnalytics login as {email!r} failed: HTTP {exc.http_status}: "
            f"{(exc.server_message or 'no message').rstrip('.')}. Check the connection's e-mail and password "
            "(task retries would only repeat this login, so the task fails without them).",
            http_status=exc.http_status,
            server_message=exc.server_message,
        ) from None
    token = result.get("auth_token") if isinstance(result, dict) else None
    if not isinstance(token, str) or not token:
        raise FollowAnalyticsAuthError("FollowAnalytics login answered HTTP 200 without an auth_token.")
    mask_secret(token)
    _mask_user_secrets(result.get("user"))
    return token


def validate_endpoint(endpoint: object) -> str:
    """Check an API path given by a caller: ``/api/...``, no query, fragment or ``..`` segment."""
    if not isinstance(endpoint, str) or not endpoint.startswith("/") or endpoint.startswith("//"):
        raise FollowAnalyticsConfigError(
            f"endpoint {endpoint!r} must be an API path starting with '/', e.g. '/api/data_exporters'."
        )
    bad = [c for c in ("?", "#", "\\", " ", "\t", "\n", "\r") if c in endpoint]
    if bad or any(segment in (".", "..") for segment in endpoint.split("/")):
        raise FollowAnalyticsConfigError(
            f"endpoint {endpoint!r} must be a plain path: no '?', '#', spaces, backslashes or '..' "
            "segments (pass query parameters separately)."
        )
    return endpoint


def quote_path_segment(value: str, name: str) -> str:
    """Percent-encode one identifier for use inside a URL path (``/`` and ``..`` cannot escape)."""
    text = str(value).strip()
    if not text:
        raise FollowAnalyticsConfigError(f"{name} must be a non-empty identifier, got {value!r}.")
    if text in (".", ".."):
        raise FollowAnalyticsConfigError(f"{name}={value!r} is not an identifier.")
    return quote(text, safe="")
