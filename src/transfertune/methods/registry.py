"""Method registry: names in the benchmark parameters resolve to classes here.

Three ways in, so a new method needs no change to the benchmark:
- ``@register("name")`` on a class in a module listed in ``_BUILTIN_MODULES``;
- a package entry point in the group ``transfertune.methods`` (``name = "pkg.mod:Class"``);
- a ``class: "pkg.mod:Class"`` (or ``pkg.mod.Class``) key in the method's parameters.
"""

from __future__ import annotations

import importlib
import warnings
from importlib.metadata import entry_points
from typing import Any

from transfertune.errors import ConfigurationError
from transfertune.methods.base import Method

_REGISTRY: dict[str, type[Method]] = {}
_BUILTIN_MODULES = (
    "transfertune.methods.baselines",
    "transfertune.methods.at2",
)
_loaded = False


def register(name: str):
    def decorator(cls: type[Method]) -> type[Method]:
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorator


def _load_builtins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in _BUILTIN_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            # a package a method needs is not installed here (e.g. a bare GPU box): the other
            # methods stay usable, and naming a method of that module says what is missing
            warnings.warn(f"methods of {module} are unavailable: {exc}", stacklevel=2)
    for ep in entry_points(group="transfertune.methods"):
        if ep.name not in _REGISTRY:
            _REGISTRY[ep.name] = ep.load()


def available_methods() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def import_class(path: str) -> type[Method]:
    module_name, _, attr = path.replace(":", ".").rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigurationError(f"cannot import method class {path!r}: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise ConfigurationError(f"{path!r} is not a subclass of transfertune.methods.base.Method")
    return cls


def make_method(label: str, params: dict[str, Any] | None = None) -> Method:
    """Instantiate the method ``label`` from its benchmark parameters.

    ``params`` may hold ``method`` (registry name, default: the label), or ``class`` (an import
    path); every other key is a constructor keyword.
    """
    params = dict(params or {})
    class_path = params.pop("class", None)
    name = params.pop("method", label)
    if class_path:
        cls = import_class(class_path)
    else:
        _load_builtins()
        if name not in _REGISTRY:
            raise ConfigurationError(f"unknown method {name!r}; available: {', '.join(available_methods())}")
        cls = _REGISTRY[name]
    try:
        return cls(**params)
    except TypeError as exc:
        raise ConfigurationError(f"method {label!r}: bad parameters {params}: {exc}") from exc
