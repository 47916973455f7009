"""Stable short hashes of configs (standard library only, so every module can use them)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any


def plain(value: Any) -> Any:
    """numpy scalars -> Python scalars (``item()``), everything else unchanged."""
    return value.item() if hasattr(value, "item") else value


def config_hash(config: Mapping[str, Any]) -> str:
    """A 12-hex-digit hash of a config's values; key order and numpy scalar types do not matter."""
    text = json.dumps({str(k): plain(v) for k, v in sorted(config.items())}, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]
