"""VPA's typed JSON for metadata: plain JSON, plus ``{"$date": "2024-05-01T12:00:00Z"}`` for a
timezone-aware `datetime.datetime` (contract 1.1).

Used wherever metadata leaves Python — the REST API, the CLI's ``--filter``/``--set`` and
``--json`` output, snapshot files, the memory store's journal — so that a datetime is never
confused with a string (no object is a metadata value, so the ``$date`` object is unambiguous).

Datetimes are portable within ±2**53 microseconds of the Unix epoch (from 1684 to 2255), the range
every backend holds exactly: as microseconds in a float64 or int64, or in a native date type. A
stored datetime comes back in UTC, equal (as an instant) to the one written; microseconds are
kept, anything finer does not exist in `datetime`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

DATE_KEY = "$date"
UTC = dt.UTC
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
#: The portable range, in microseconds since the epoch (exact in a float64).
MAX_MICROS = 2**53


class DateError(ValueError):
    """A datetime that is not portable (naive, out of range) or a ``$date`` that is not one."""


def check_datetime(value: dt.datetime, where: str = "datetime") -> dt.datetime:
    """``value`` if it is timezone-aware and in the portable range; else `DateError` saying why."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise DateError(
            f"{where} {value.isoformat()} is naive: give it a timezone "
            "(datetime.timezone.utc, or an offset such as +02:00)"
        )
    micros = to_micros(value)
    if not -MAX_MICROS <= micros <= MAX_MICROS:
        raise DateError(f"{where} {format_datetime(value)} is outside the portable range (years 1684 to 2255)")
    return value


def to_micros(value: dt.datetime) -> int:
    """Whole microseconds since the Unix epoch (exact: `timedelta` arithmetic, no float)."""
    delta = value - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> dt.datetime:
    """The UTC datetime ``micros`` microseconds after the epoch."""
    return EPOCH + dt.timedelta(microseconds=int(micros))


def format_datetime(value: dt.datetime) -> str:
    """RFC 3339 in UTC with a ``Z``: ``2024-05-01T12:00:00Z``, microseconds only when non-zero."""
    utc = value.astimezone(UTC)
    spec = "%Y-%m-%dT%H:%M:%S.%fZ" if utc.microsecond else "%Y-%m-%dT%H:%M:%SZ"
    text = utc.strftime(spec)
    return text if utc.year >= 1000 else f"{utc.year:04d}{text[len(str(utc.year)):]}"


def parse_datetime(text: Any, where: str = "$date") -> dt.datetime:
    """An RFC 3339 / ISO 8601 string with a timezone (``Z`` or an offset) → an aware datetime."""
    if not isinstance(text, str):
        raise DateError(f"{where} must be an ISO 8601 string such as \"2024-05-01T12:00:00Z\", got {text!r}")
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise DateError(f"{where} {text!r} is not an ISO 8601 date and time") from None
    return check_datetime(value, where)


def encode_value(value: Any) -> Any:
    """A metadata value as typed JSON (a datetime becomes ``{"$date": ...}``)."""
    if isinstance(value, dt.datetime):
        return {DATE_KEY: format_datetime(value)}
    if isinstance(value, tuple):
        return list(value)
    return value


def decode_value(value: Any, where: str = "value") -> Any:
    """Typed JSON → a metadata value: ``{"$date": ...}`` becomes an aware datetime (`DateError`
    if it is not one); anything else is returned as it is, for the usual checks to judge."""
    if isinstance(value, Mapping) and len(value) == 1 and DATE_KEY in value:
        return parse_datetime(value[DATE_KEY], f"{where} $date")
    return value


def is_date_object(value: Any) -> bool:
    return isinstance(value, Mapping) and len(value) == 1 and DATE_KEY in value


def encode_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    return {k: encode_value(v) for k, v in metadata.items()}


def decode_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(metadata, Mapping):
        return metadata  # type: ignore[return-value]  # refused by the metadata checks
    return {k: decode_value(v, f"metadata {k!r}") for k, v in metadata.items()}


def has_datetimes(metadata: Mapping[str, Any]) -> bool:
    return any(isinstance(v, dt.datetime) for v in metadata.values())
