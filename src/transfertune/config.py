"""The project's config loader: Kedro's ``OmegaConfigLoader`` registering its resolvers with
OmegaConf's current API.

Kedro 1.x registers ``globals`` and ``runtime_params`` with ``OmegaConf.register_new_resolver``,
which OmegaConf 2.4 deprecates: every config loader (each ``kedro run`` makes several) printed a
16-line ``register_new_resolver() is deprecated`` warning. ``OmegaConf.register_resolver`` takes
the same arguments; with an OmegaConf that lacks it (< 2.4) Kedro's own registration is used.
"""

from __future__ import annotations

from collections.abc import Callable

from kedro.config import OmegaConfigLoader
from omegaconf import OmegaConf


class ConfigLoader(OmegaConfigLoader):
    def _register_globals_resolver(self) -> None:
        if not hasattr(OmegaConf, "register_resolver"):
            return super()._register_globals_resolver()
        OmegaConf.register_resolver("globals", self._get_globals_value, replace=True)

    def _register_runtime_params_resolver(self) -> None:
        if not hasattr(OmegaConf, "register_resolver"):
            return super()._register_runtime_params_resolver()
        OmegaConf.register_resolver("runtime_params", self._get_runtime_value, replace=True)

    @staticmethod
    def _register_new_resolvers(resolvers: dict[str, Callable]) -> None:
        if not hasattr(OmegaConf, "register_resolver"):
            return OmegaConfigLoader._register_new_resolvers(resolvers)
        for name, resolver in resolvers.items():
            if not OmegaConf.has_resolver(name):
                OmegaConf.register_resolver(name, resolver)
