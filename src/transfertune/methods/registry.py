"""Method registry: names in the benchmark parameters resolve to classes here.

Three ways in, so a new method needs no change to the benchmark:
- ``@register("name")`` on a class in a module listed in ``_BUILTIN_MODULES``;
- a package entry point in the group ``transfertune.methods`` (``name = "pkg.mod:Class"``);
- a ``class: "pkg.mod:Class"`` (or ``pkg.mod.Class``) key in the method's parameters.

A name resolves to a pool :class:`Method` (row indices of recorded configs) or to a
:class:`~transfertune.methods.protocol.SpaceSearcher` (any config of the space);
:func:`make_searcher` gives either one as a :class:`~transfertune.methods.protocol.Searcher`.
"""

from __future__ import annotations

import importlib
import warnings
from importlib.metadata import entry_points
from typing import Any

from transfertune.errors import ConfigurationError, MissingDependencyError
from transfertune.methods.base import Method
from transfertune.methods.protocol import PoolSearcher, Searcher

_REGISTRY: dict[str, type[Method] | type[Searcher]] = {}
_BUILTIN_MODULES = (
    "transfertune.methods.baselines",
    "transfertune.methods.at2",
    "transfertune.methods.random_space",
    "transfertune.methods.hts",
    "transfertune.methods.siamese",
    "transfertune.methods.metahpo.baselines",
)
_loaded = False


def register(name: str):
    def decorator(cls):
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


def import_class(path: str) -> type[Method] | type[Searcher]:
    module_name, _, attr = path.replace(":", ".").rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigurationError(f"cannot import method class {path!r}: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, (Method, Searcher))):
        raise ConfigurationError(
            f"{path!r} is not a subclass of transfertune.methods.base.Method or transfertune.methods.protocol.Searcher"
        )
    return cls


def make_method(label: str, params: dict[str, Any] | None = None) -> Method | Searcher:
    """Instantiate the method ``label`` from its benchmark parameters.

    ``params`` may hold ``method`` (registry name, default: the label), or ``class`` (an import
    path), and ``off_pool`` (read by the tabular objective, see
    :class:`~transfertune.core.objectives.TabularObjective`); every other key is a constructor
    keyword.
    """
    params = dict(params or {})
    class_path = params.pop("class", None)
    name = params.pop("method", label)
    params.pop("off_pool", None)
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


def installed_methods(methods: dict[str, dict[str, Any]]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """``methods`` without those whose optional package is missing, and one message per method
    left out (:class:`~transfertune.errors.MissingDependencyError`)."""
    kept, skipped = {}, []
    for label, params in methods.items():
        try:
            make_method(label, params)
        except MissingDependencyError as exc:
            skipped.append(f"skipping {label}: {exc}")
            continue
        kept[label] = params
    return kept, skipped


def make_searcher(label: str, params: dict[str, Any] | None = None) -> Searcher:
    """:func:`make_method`, with a pool method wrapped in a :class:`PoolSearcher`."""
    method = make_method(label, params)
    return PoolSearcher(method) if isinstance(method, Method) else method
