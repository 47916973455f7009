"""Checking a pipeline's parameters and finding the files they name, shared by the pipelines."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from transfertune.errors import ConfigurationError

PROJECT_ROOT = Path(__file__).resolve().parents[3]
Model = TypeVar("Model", bound=BaseModel)


def validate_params(model: type[Model], params: Mapping[str, Any], prefix: str) -> Model:
    """``params`` checked by the pydantic ``model``; one ConfigurationError naming every bad key
    as ``prefix.key.subkey: message``."""
    try:
        return model.model_validate(dict(params))
    except ValidationError as exc:
        problems = "; ".join(f"{prefix}.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigurationError(f"bad parameters: {problems}") from None


def resolve_path(path: str | Path) -> Path:
    """A relative path as given if it exists from the working directory, else from the project
    root (so ``conf/base/spaces/...`` works when Kedro runs from another folder, e.g. tests)."""
    p = Path(path)
    if p.is_absolute() or p.exists():
        return p
    return PROJECT_ROOT / p if (PROJECT_ROOT / p).exists() else p
