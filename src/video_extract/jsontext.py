"""The JSON text of every record and summary video-extract writes, made quickly.

``json.dumps(data, indent=2, ensure_ascii=False)`` runs CPython's pure-Python encoder (its C
encoder takes no indent), generator by generator: 50 us for a still's ``summary.json``, a
tenth of a warm request's bookkeeping. ``json_text`` writes the same characters in about half
the time, for the plain types records dump to (``model_dump(mode="json")``); anything else
goes to ``json.dumps``, which says what it cannot encode.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring as _string  # C where CPython has it, as json.dumps uses
from typing import Any

_INDENT = "  "
_INFINITY = float("inf")


def json_text(data: Any) -> str:
    """``json.dumps(data, indent=2, ensure_ascii=False) + "\\n"``, character for character."""
    out: list[str] = []
    try:
        _encode(data, out, "\n")
    except (TypeError, RecursionError):
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"  # its own error, or its own way
    out.append("\n")
    return "".join(out)


def _encode(value: Any, out: list[str], newline: str) -> None:
    # The order of json.encoder's own checks: a bool is an int, an IntEnum an int, a str subclass a str.
    if isinstance(value, str):
        out.append(_string(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        out.append(_float(value))
    elif isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        inner = newline + _INDENT
        separator = "{" + inner
        for key, item in value.items():
            out.append(separator)
            out.append(_string(key if isinstance(key, str) else _key(key)))
            out.append(": ")
            _encode(item, out, inner)
            separator = "," + inner
        out.append(newline)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        if not value:
            out.append("[]")
            return
        inner = newline + _INDENT
        separator = "[" + inner
        for item in value:
            out.append(separator)
            _encode(item, out, inner)
            separator = "," + inner
        out.append(newline)
        out.append("]")
    else:
        raise TypeError(type(value).__name__)


def _float(value: float) -> str:
    if value != value:
        return "NaN"
    if value == _INFINITY:
        return "Infinity"
    if value == -_INFINITY:
        return "-Infinity"
    return float.__repr__(value)


def _key(key: Any) -> str:
    if isinstance(key, float):
        return _float(key)
    if key is True:
        return "true"
    if key is False:
        return "false"
    if key is None:
        return "null"
    if isinstance(key, int):
        return int.__repr__(key)
    raise TypeError(type(key).__name__)
