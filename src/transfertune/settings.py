"""Kedro project settings."""

from kedro.config import OmegaConfigLoader

from transfertune.hooks import MlflowTrackingHook

HOOKS = (MlflowTrackingHook(),)
# Our hook owns MLflow; if kedro-mlflow is installed too, its auto-registered hooks would open a
# second run in the file store, which MLflow 3 refuses.
DISABLE_HOOKS_FOR_PLUGINS = ("kedro-mlflow",)

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
}
