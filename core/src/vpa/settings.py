"""Typed plugin settings: a plugin's ``[providers.<name>]`` options as an attrs class.

A plugin declares its options once, as an attrs class whose fields carry their help text::

    @attrs.frozen
    class QdrantSettings:
        timeout: float = setting(10.0, "seconds a request may take")
        prefer_grpc: bool = setting(False, "talk gRPC to a server instead of REST")

`structure_settings(QdrantSettings, options, "providers.qdrant")` builds it with cattrs: an
unknown key is refused (naming it and the known ones), a wrong type names the option as
``[providers.qdrant].timeout``. `describe_settings` lists the fields for ``vpa config``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import attrs
import cattrs

from vpa.errors import ConfigError

T = TypeVar("T")
HELP = "vpa_help"

_converter = cattrs.Converter(forbid_extra_keys=True, prefer_attrib_converters=True)


def _structure_bool(value: Any, _: type) -> bool:
    if isinstance(value, bool):
        return value
    word = value.strip().lower() if isinstance(value, str) else None
    if word in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        return word in ("1", "true", "yes", "on")
    raise ValueError(f"expected true or false, got {value!r}")


def _structure_float(value: Any, _: type) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)


def _structure_int(value: Any, _: type) -> int:
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ValueError(f"expected a whole number, got {value!r}")
    if not isinstance(value, (int, float, str)):
        raise ValueError(f"expected a whole number, got {value!r}")
    return int(value)


def _structure_str(value: Any, _: type) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    return value


_converter.register_structure_hook(bool, _structure_bool)
_converter.register_structure_hook(float, _structure_float)
_converter.register_structure_hook(int, _structure_int)
_converter.register_structure_hook(str, _structure_str)


def setting(default: Any = attrs.NOTHING, help: str = "", **kwargs: Any) -> Any:
    """An attrs field with its help text (shown by ``vpa config``)."""
    metadata = {**kwargs.pop("metadata", {}), HELP: help}
    if default is attrs.NOTHING:
        return attrs.field(metadata=metadata, **kwargs)
    if isinstance(default, (list, dict, set)):
        return attrs.field(factory=lambda: type(default)(default), metadata=metadata, **kwargs)
    return attrs.field(default=default, metadata=metadata, **kwargs)


@attrs.frozen
class NoSettings:
    """A plugin without options: any key in its table is an error."""


def structure_settings(cls: type[T], options: Mapping[str, Any], section: str) -> T:
    """``options`` (a ``[providers.<name>]`` table) as ``cls``; a `ConfigError` names what is wrong."""
    known = [f.name for f in attrs.fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(
            f"unknown option(s) {', '.join(f'[{section}].{k}' for k in unknown)}; "
            f"known: {', '.join(known) or 'none'}"
        )
    try:
        return _converter.structure(dict(options), cls)
    except ConfigError:
        raise  # a field validator's own message names the option already
    except cattrs.BaseValidationError as exc:
        own = [e for e in exc.exceptions if isinstance(e, ConfigError)]
        if own and len(own) == len(exc.exceptions):  # validators that name their option themselves
            raise ConfigError("; ".join(str(e) for e in own)) from None
        messages = cattrs.transform_error(exc, path=f"[{section}]", format_exception=_why)
        raise ConfigError("; ".join(_path_first(m) for m in messages)) from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[{section}]: {exc}") from None


def _why(exc: BaseException, kind: Any) -> str:
    if isinstance(exc, ValueError) and str(exc):
        return str(exc)
    name = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    return f"expected {name}"


def _path_first(message: str) -> str:
    what, _, path = message.rpartition(" @ ")
    return f"{path}: {what}" if what else message


def describe_settings(cls: type) -> list[dict[str, Any]]:
    """Each option of a settings class: name, type, default and help."""
    out = []
    for field in attrs.fields(cls):
        if field.default is attrs.NOTHING:
            default: Any = None
        elif isinstance(field.default, attrs.Factory):  # type: ignore[arg-type]
            default = field.default.factory()  # type: ignore[union-attr]
        else:
            default = field.default
        kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", str(field.type))
        help_text = field.metadata.get(HELP, "")
        out.append({"name": field.name, "type": kind, "default": default, "help": help_text})
    return out
