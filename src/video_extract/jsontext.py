"""The JSON text of every file video-extract writes: ``json.dumps(value, indent=2,
ensure_ascii=False)``, byte for byte, in about half the time.

With an indent, the standard library encodes in pure Python, through a generator per
container; a still request writes three such files (its record, metadata.json, summary.json),
and a long video's records are large. Scalars here go through the very functions ``json``
uses (its C string encoder, ``int.__repr__``, ``float.__repr__``), containers through one
recursive function. Whatever ``json`` would refuse or treat otherwise (an object it cannot
encode, a circular reference) is handed to ``json.dumps`` itself, which says so as it would.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring as _string  # json's own (its C version where there is one)
from typing import Any

_INFINITY = float("inf")


def dumps(value: Any) -> str:
    """``json.dumps(value, indent=2, ensure_ascii=False)``."""
    out: list[str] = []
    try:
        _encode(value, out, "\n")
    except (TypeError, RecursionError):
        return json.dumps(value, indent=2, ensure_ascii=False)
    return "".join(out)


def _float(value: float) -> str:
    if value != value:
        return "NaN"
    if value == _INFINITY:
        return "Infinity"
    if value == -_INFINITY:
        return "-Infinity"
    return float.__repr__(value)


def _scalar(value: Any) -> str | None:
    """The text of a value of an exact JSON scalar type; None for anything else."""
    kind = type(value)
    if kind is str:
        return _string(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if kind is int:
        return int.__repr__(value)
    if kind is float:
        return _float(value)
    return None


def _key(key: Any) -> str:
    """A dict key as ``json`` turns it into a string (same order of checks)."""
    if isinstance(key, str):
        return _string(key)
    if isinstance(key, float):
        return '"' + _float(key) + '"'
    if key is True:
        return '"true"'
    if key is False:
        return '"false"'
    if key is None:
        return '"null"'
    if isinstance(key, int):
        return '"' + int.__repr__(key) + '"'
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def _encode(value: Any, out: list[str], newline: str) -> None:
    text = _scalar(value)
    if text is not None:
        out.append(text)
    elif isinstance(value, (list, tuple)):
        if not value:
            out.append("[]")
            return
        inner = newline + "  "
        separator = "[" + inner
        for item in value:
            text = _scalar(item)
            if text is None:
                out.append(separator)
                _encode(item, out, inner)
            else:
                out.append(separator + text)
            separator = "," + inner
        out.append(newline + "]")
    elif isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        inner = newline + "  "
        separator = "{" + inner
        for key, item in value.items():
            name = _string(key) if type(key) is str else _key(key)
            text = _scalar(item)
            if text is None:
                out.append(separator + name + ": ")
                _encode(item, out, inner)
            else:
                out.append(separator + name + ": " + text)
            separator = "," + inner
        out.append(newline + "}")
    elif isinstance(value, str):  # subclasses, as json treats them
        out.append(_string(value))
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        out.append(_float(value))
    else:
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
