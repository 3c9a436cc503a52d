"""The export parameters the emulator refuses, with the API's 400 messages.

Every rule here repeats a check the export operators make before they send anything. Each one
stays because a test needs the server to refuse (removing it fails that test): the hook's
generic ``run`` sent without ``sd``/``ed`` (``Missing start date``), an app identifier with
``&`` in it that the operators pass on as given (``Invalid app identifier``), and the
emulator's own tests of the API's refusals (all of them). Each endpoint's rules are applied in
the order :data:`_RULES` lists them; the first one broken answers.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    _Rule = Callable[[dict[str, str]], str | None]  # the error message of a broken rule, or None

__all__ = ["is_identifier", "validate_export_params"]

_IDENTIFIER = re.compile(r"^[A-Za-z0-9_\-]+$")
_DAY = 86400


def is_identifier(text: str) -> bool:
    """Whether ``text`` looks like a FollowAnalytics identifier (``FAAPPLI_123``, ``FASEGMT_ab``)."""
    return _IDENTIFIER.match(text) is not None


def _iso(name: str) -> _Rule:
    """An optional ISO 8601 datetime (``Z`` accepted on every Python)."""

    def check(query: dict[str, str]) -> str | None:
        value = query.get(name)
        if value is None:
            return None
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            datetime.fromisoformat(text)
        except ValueError:
            return f"Invalid {name}: {value!r} is not an ISO 8601 date"
        return None

    return check


def _app_identifier(app: str) -> str | None:
    return None if is_identifier(app) else f"Invalid app identifier: {app!r}"


def _apps(query: dict[str, str]) -> str | None:
    """``apps``: a required comma list of app identifiers."""
    apps = [a.strip() for a in query.get("apps", "").split(",") if a.strip()]
    if not apps:
        return "Missing apps"
    for app in apps:
        error = _app_identifier(app)
        if error is not None:
            return error
    return None


def _app(query: dict[str, str]) -> str | None:
    """``app``: one required app identifier."""
    app = query.get("app", "").strip()
    return "Missing app" if not app else _app_identifier(app)


def _event_id(query: dict[str, str]) -> str | None:
    """``event_id``: a required integer."""
    event_id = query.get("event_id", "").strip()
    if not event_id:
        return "Missing event_id"
    try:
        int(event_id)
    except ValueError:
        return f"Invalid event_id: {event_id!r} is not an integer"
    return None


def _parse_day(value: str, name: str) -> tuple[int | None, str | None]:
    """Parse an ``sd``/``ed`` value: integer seconds at exactly midnight UTC."""
    try:
        seconds = int(value.strip())
    except ValueError:
        return None, f"Invalid {name}: {value!r} is not a timestamp in seconds since epoch"
    if seconds % _DAY:
        return None, f"Invalid {name}: {seconds} is not midnight UTC"
    return seconds, None


def _period(required: bool) -> _Rule:
    """``sd`` and ``ed``: days at midnight UTC, the end after the start; both or (unless required) neither."""

    def check(query: dict[str, str]) -> str | None:
        sd, ed = query.get("sd", ""), query.get("ed", "")
        if not sd and not ed and not required:
            return None
        if not sd:
            return "Missing start date"
        if not ed:
            return "Missing end date"
        start, error = _parse_day(sd, "start date")
        if start is None:
            return error
        end, error = _parse_day(ed, "end date")
        if end is None:
            return error
        if end <= start:
            return f"Invalid period: end date {end} must be after start date {start}"
        return None

    return check


_RULES: dict[str, tuple[_Rule, ...]] = {
    "segment_devices": (_iso("updated_since"),),
    "app_devices": (_iso("updated_since"),),
    "app_events": (_iso("since_date"), _iso("until_date")),
    "performance": (_apps, _period(required=True)),
    "user_metrics": (_period(required=True),),
    "event_analysis": (_app, _period(required=False)),
    "event_context": (_app, _event_id, _period(required=False)),
}


def validate_export_params(endpoint: str, query: dict[str, str]) -> str | None:
    """Return the error message of an invalid export request, None when it is valid."""
    for rule in _RULES.get(endpoint, ()):
        error = rule(query)
        if error is not None:
            return error
    return None
