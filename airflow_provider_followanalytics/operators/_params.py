"""Check and normalise the arguments of the export operators, before any request is sent.

Pure functions (no I/O, no Airflow import): each takes a value as given (or as a template rendered
it) and returns what the API expects, or raises ``FollowAnalyticsConfigError`` with a message that
names the argument, the value received and what is expected.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_followanalytics._api import FILE_FORMATS, quote_path_segment, validate_endpoint
from airflow_provider_followanalytics._checks import parse_number
from airflow_provider_followanalytics.exceptions import FollowAnalyticsConfigError
from airflow_provider_followanalytics.operators._windows import UTC, is_blank

#: What a list-valued argument accepts: a list/tuple, or a comma-separated string.
ListLike = str | Sequence[str | int]

#: What would change a URL path or a comma list, in the order messages name them.
_FORBIDDEN_IN_IDENTIFIERS = ("/", "\\", "?", "#", "%", ",", "..")


# ---------------------------------------------------------------------------------- templates
def is_literal(value: Any) -> bool:
    """True when ``value`` is final as given: no Jinja markup and no XComArg (or other lazy object) inside."""
    if value is None or isinstance(value, (bool, int, float, dt.date)):
        return True
    if isinstance(value, str):
        return "{{" not in value and "{%" not in value
    if isinstance(value, (list, tuple)):
        return all(is_literal(item) for item in value)
    if isinstance(value, dict):
        return all(is_literal(key) and is_literal(item) for key, item in value.items())
    return False


# ---------------------------------------------------------------------------------- identifiers
def _character_problem(text: str, forbidden: tuple[str, ...], *, allow_spaces: bool = False) -> str | None:
    """Name the first character that has no place in an identifier or list item, if any."""
    for char in text:
        if unicodedata.category(char).startswith("C"):  # control, format, unassigned, private use
            return f"a control character (U+{ord(char):04X})"
        if char.isspace() and not allow_spaces:
            return "whitespace"
    return next((f"'{part}'" for part in forbidden if part in text), None)


def identifier(value: Any, name: str, example: str) -> str:
    """Check one FollowAnalytics identifier (app, segment) and return it stripped.

    Refused: empty values, whitespace, control characters and :data:`_FORBIDDEN_IN_IDENTIFIERS`.
    Other characters (unicode letters, say) are kept, percent-encoded where the identifier goes into
    a path. ``name`` and a well-formed ``example`` are for messages.
    """
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise FollowAnalyticsConfigError(
            f"{name} must be an identifier string such as {example!r}, got {value!r} ({type(value).__name__})."
        )
    text = str(value).strip()
    if not text:
        raise FollowAnalyticsConfigError(f"{name} must be a non-empty identifier such as {example!r}, got {value!r}.")
    problem = _character_problem(text, _FORBIDDEN_IN_IDENTIFIERS)
    if problem is not None:
        raise FollowAnalyticsConfigError(
            f"{name} {value!r} is not a FollowAnalytics identifier: it contains {problem}. "
            f"Expected something like {example!r}."
        )
    return text


def path_with_identifiers(template: Any, default: str, identifiers: Mapping[str, str | None]) -> str:
    """Fill the ``{placeholder}`` s of ``template`` (the operator's ``endpoint``) with percent-encoded
    identifiers and check the path; ``default`` is the documented path, for messages.

    An identifier not known yet (``None``: a template at DAG parse) keeps its placeholder, which must
    be there all the same, so that the rest of the path is checked.
    """
    if not isinstance(template, str) or not template.strip():
        raise FollowAnalyticsConfigError(f"endpoint must be an API path such as {default!r}, got {template!r}.")
    path = rest = template.strip()
    for key, value in identifiers.items():
        placeholder = "{" + key + "}"
        if placeholder not in path:
            raise FollowAnalyticsConfigError(
                f"endpoint {template!r} has no {placeholder} placeholder; this export puts the {key} "
                f"in its path, e.g. {default!r}."
            )
        if value is not None:
            path = path.replace(placeholder, quote_path_segment(value, key))
        rest = rest.replace(placeholder, "")
    if "{" in rest or "}" in rest:
        known = ", ".join("{" + key + "}" for key in identifiers) or "none"
        raise FollowAnalyticsConfigError(
            f"endpoint {template!r} has an unknown placeholder; the ones this export fills: {known}."
        )
    return validate_endpoint(path)


# ---------------------------------------------------------------------------------- lists
def _items(value: Any, name: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith(("[", "(")) and text.endswith(("]", ")")):
            # A list that Jinja rendered as text, e.g. "['a', 'b']" (render_template_as_native_obj=False).
            parsed = _read_literal(text)
            if not isinstance(parsed, (list, tuple)):
                raise FollowAnalyticsConfigError(
                    f"{name}={value!r} looks like a list but cannot be read as one; pass a list, "
                    "or a comma-separated string such as 'a,b'."
                )
            return list(parsed)
        return text.split(",") if text else []
    if isinstance(value, (list, tuple)):
        return list(value)
    raise FollowAnalyticsConfigError(
        f"{name} must be a list or a comma-separated string, got {value!r} ({type(value).__name__})."
    )


def _read_literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    try:
        return json.loads(text)
    except ValueError:
        return None


def comma_list(
    value: Any,
    name: str,
    *,
    required: bool = False,
    identifiers: bool = False,
    allow_spaces: bool = False,
    example: str = "FAAPPLI_123456789",
) -> str | None:
    """Turn ``["a", "b"]``, ``("a", "b")``, ``"a, b"`` or ``"['a', 'b']"`` into the API's comma list ``"a,b"``.

    :param required: refuse an empty list (else an empty list gives ``None``: omitted).
    :param identifiers: check every item as an identifier (see :func:`identifier`).
    :param allow_spaces: let items contain inner spaces (user ids).
    :param example: a well-formed item, for messages.
    """
    items = _items(value, name)
    if not items:
        if required:
            raise FollowAnalyticsConfigError(f"{name} needs at least one value such as {example!r}, got {value!r}.")
        return None
    checked = []
    for item in items:
        if identifiers:
            checked.append(identifier(item, f"{name} item", example))
            continue
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            raise FollowAnalyticsConfigError(
                f"{name} items must be strings, got {item!r} ({type(item).__name__}) in {value!r}."
            )
        text = str(item).strip()
        if not text:
            raise FollowAnalyticsConfigError(
                f"{name}={value!r} has an empty item; remove the stray comma or empty string."
            )
        problem = _character_problem(text, (",",), allow_spaces=allow_spaces)
        if problem is not None:
            raise FollowAnalyticsConfigError(
                f"{name} item {item!r} contains {problem}; items are sent as one comma-separated list."
            )
        checked.append(text)
    return ",".join(checked)


# ---------------------------------------------------------------------------------- scalars
def positive_integer(value: Any, name: str) -> int:
    """An integer id given as ``int`` or digit string (``"42"``), >= 1."""
    return int(parse_number(value, name, integer=True, minimum=1, text=True, expected="a positive integer id"))


def file_format(value: Any) -> str:
    """``"csv"`` or ``"xls"`` (case and spaces ignored)."""
    text = value.strip().lower() if isinstance(value, str) else value
    if text not in FILE_FORMATS:
        raise FollowAnalyticsConfigError(f"file_format={value!r} is not supported; expected 'csv' (UTF-8) or 'xls'.")
    return str(text)


def conn_id(value: Any) -> str:
    """A non-empty Airflow connection id."""
    if not isinstance(value, str) or not value.strip():
        raise FollowAnalyticsConfigError(f"followanalytics_conn_id must be a non-empty connection id, got {value!r}.")
    return value.strip()


def _query_value(value: Any, key: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return comma_list(value, f"query_params[{key!r}]", allow_spaces=True)
    raise FollowAnalyticsConfigError(
        f"query_params[{key!r}]={value!r} ({type(value).__name__}) cannot be sent in a query string; "
        "use a string, a number, a boolean, a date or a list."
    )


def query_params(value: Any) -> dict[str, str]:
    """Check the generic operator's ``query_params`` and turn values into query-string text.

    Lists become comma lists, booleans ``true``/``false``, ``None`` values are dropped.
    ``skip_email`` is refused here: it has its own argument.
    """
    if is_blank(value):
        return {}
    if isinstance(value, str):
        parsed = _read_literal(value.strip()) if value.strip().startswith("{") else None
        if not isinstance(parsed, dict):
            raise FollowAnalyticsConfigError(
                f"query_params must be a dict such as {{'fields': 'device_id'}}, got {value!r}."
            )
        value = parsed
    if not isinstance(value, Mapping):
        raise FollowAnalyticsConfigError(f"query_params must be a dict, got {value!r} ({type(value).__name__}).")
    query: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not key.strip():
            raise FollowAnalyticsConfigError(f"query_params keys must be non-empty strings, got {key!r}.")
        if key.strip() == "skip_email":
            raise FollowAnalyticsConfigError(
                "query_params must not contain 'skip_email': use the operator's skip_email argument."
            )
        text = _query_value(item, key)
        if text is not None:
            query[key.strip()] = text
    return query


class ExportRequest:
    """What an export operator sends: the path (no format suffix), the query (the hook adds ``skip_email``)
    and what the export is about, for logs (``"app 'FAAPPLI_1'"``).

    A plain class, not a dataclass: building a dataclass costs about a millisecond of every DAG parse.
    """

    __slots__ = ("endpoint", "query", "subject")

    def __init__(self, endpoint: str, query: dict[str, str] | None = None, subject: str = "") -> None:
        self.endpoint = endpoint
        self.query = {} if query is None else query
        self.subject = subject

    def describe(self) -> str:
        """A one-line account for logs: subject, period as dates, other parameters (long values cut)."""
        parts = [self.subject] if self.subject else []
        sd, ed = self.query.get("sd", ""), self.query.get("ed", "")
        as_days = sd.isdigit() and ed.isdigit()  # the generic operator may send anything as sd/ed
        if as_days:
            parts.append(f"period {_day(sd)} to {_day(ed)}")
        shown = {key: value if len(value) <= 80 else f"{value[:77]}..." for key, value in self.query.items()}
        parts += [f"{key}={value}" for key, value in shown.items() if not (as_days and key in ("sd", "ed"))]
        return ", ".join(parts) or "no parameters"


def _day(seconds: str) -> str:
    try:
        return dt.datetime.fromtimestamp(int(seconds), tz=UTC).strftime("%Y-%m-%d")
    except (OverflowError, OSError, ValueError):
        return seconds
