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


# Mappings whose keys the user chooses (method labels, data sources, experiment names, HTS pair labels, keyword arguments passed
# through to a model or data source, per-size overrides): any key is allowed under them, and the
# code that reads them checks their contents (e.g. the method registry checks a method's keywords).
OPEN_MAPPINGS = frozenset({"methods", "sources", "experiments", "overrides", "fixed", "options", "model_options", "source_options", "hyper_lr",
                           "pairs"})
# Runtime parameters that are not parameters: ``data_root`` moves every output (conf/base/catalog.yml).
RUNTIME_ONLY = frozenset({"data_root"})


def _leaves(value: Any, prefix: str = "") -> list[str]:
    """The dotted suffixes of a nested mapping's leaves (``[""]`` for a non-mapping)."""
    if not isinstance(value, Mapping) or not value:
        return [prefix]
    return [leaf for key, below in value.items() for leaf in _leaves(below, f"{prefix}.{key}")]


def _key_paths(known: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Every dotted key of a nested mapping, shallow ones first."""
    paths = [f"{prefix}{key}" for key in known]
    for key, below in known.items():
        if isinstance(below, Mapping):
            paths.extend(_key_paths(below, f"{prefix}{key}."))
    return paths


def unknown_keys(given: Mapping[str, Any], known: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str | None, list[str]]]:
    """Every leaf of ``given`` (runtime parameters, nested) under a key that ``known`` (the
    parameters of the configuration files) does not have: ``(dotted key given, the same key
    with the unknown part replaced by the nearest known one (difflib: among the keys at that
    level, else among the keys below it; None when none is close), the known keys at that
    level)``.

    The check descends as long as both sides are mappings; below a scalar or null parameter (a
    mapping may replace it), an empty mapping or one of ``OPEN_MAPPINGS`` it stops.
    """
    import difflib

    found = []
    for key, value in given.items():
        path = f"{prefix}{key}"
        if key not in known:
            names = [str(k) for k in known]
            close = difflib.get_close_matches(str(key), names, n=1)
            if not close:  # a key at the wrong depth, e.g. at2.acqusition for at2.methods.at2.acquisition
                deeper = {path.rpartition(".")[2]: path for path in reversed(_key_paths(known))}
                close = [deeper[name] for name in difflib.get_close_matches(str(key), list(deeper), n=1)]
            for leaf in _leaves(value):
                found.append((path + leaf, f"{prefix}{close[0]}{leaf}" if close else None, sorted(names)))
            continue
        below = known[key]
        if isinstance(value, Mapping) and isinstance(below, Mapping) and below and key not in OPEN_MAPPINGS:
            found.extend(unknown_keys(value, below, f"{path}."))
    return found


def check_runtime_params(given: Mapping[str, Any] | None, known: Mapping[str, Any]) -> None:
    """Raise one ConfigurationError naming every key of the runtime parameters ``given``
    (``--params``) that the configuration files do not define, with the nearest known key: a
    mistyped key would otherwise be ignored and the run would start with the defaults."""
    given = {k: v for k, v in (given or {}).items() if k not in RUNTIME_ONLY}
    unknown = unknown_keys(given, known)
    if not unknown:
        return
    parts = [
        f"'{path}' (did you mean '{close}'?)" if close else f"'{path}' (known there: {', '.join(names)})"
        for path, close, names in unknown
    ]
    noun = "key" if len(parts) == 1 else "keys"
    raise ConfigurationError(f"unknown {noun} in the run's parameters: {'; '.join(parts)}")
