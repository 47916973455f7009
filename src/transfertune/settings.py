"""Kedro project settings."""

from transfertune.config import ConfigLoader
from transfertune.hooks import MlflowTrackingHook

HOOKS = (MlflowTrackingHook(),)
# Our hook owns MLflow; if kedro-mlflow is installed too, its auto-registered hooks would open a
# second run in the file store, which MLflow 3 refuses.
DISABLE_HOOKS_FOR_PLUGINS = ("kedro-mlflow",)

# OmegaConfigLoader with OmegaConf's current resolver API (transfertune/config.py)
CONFIG_LOADER_CLASS = ConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
}
