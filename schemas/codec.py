"""JSON on the wire: the only module that knows orjson."""

from __future__ import annotations

from typing import Any

import orjson


def dumps(value: Any) -> bytes:
    """Dataclasses, dates and pydantic dumps all serialise; keys stay in insertion order."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


def loads(raw: bytes | str) -> Any:
    return orjson.loads(raw)


JSONDecodeError = orjson.JSONDecodeError
