"""Kedro hooks: one MLflow run per ``kedro run``, with every parameter logged.

The tracking URI comes from, in order: the parameter ``mlflow.tracking_uri`` (null in the
shipped parameters, so an explicit ``--params`` wins), the ``MLFLOW_TRACKING_URI`` environment
variable, else ``sqlite:///<project>/mlflow.db`` (a local store, no
server). Artifacts of a local store go beside its database: ``mlflow.artifact_root``
(``mlartifacts``) resolved against the database's folder, so ``<project>/mlartifacts`` by default
and a store in a temporary folder keeps its artifacts there too. ``mlflow.enabled: false`` turns
tracking off.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

logger = logging.getLogger(__name__)


def resolve_tracking_uri(configured: str | None, project_path: Path) -> str:
    uri = configured or os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db"
    # Relative sqlite/file paths are relative to the project, not to the shell's directory.
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = f"sqlite:///{(project_path / uri[len('sqlite:///'):]).resolve()}"
    return uri


def artifact_location(tracking_uri: str, artifact_root: str | None) -> str | None:
    """The artifact location for a new experiment: for a local sqlite store, ``artifact_root``
    (default ``mlartifacts``) resolved against the database's folder, as a ``file://`` URI.

    ``None`` for any other store (a server chooses its own; a file store keeps artifacts inside).
    Resolved against the project instead, a store in a temporary folder (the tests') filled the
    project's ``mlartifacts/`` with artifacts of runs it does not hold.
    """
    if not tracking_uri.startswith("sqlite:///"):
        return None
    database = Path(tracking_uri[len("sqlite:///") :])
    return (database.parent / (artifact_root or "mlartifacts")).resolve().as_uri()


def run_page_url(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    """The run's page in the MLflow UI: on the tracking server for an http(s) store, else at
    ``mlflow ui``'s default address.

    MLflow 3's UI starts in its GenAI view, where an experiment without traces opens on an empty
    overview ("No data"); ``workflowType=machine_learning`` selects its "Model training" view,
    with the runs. (The experiment tag ``mlflow.experimentKind`` does not choose the view in
    MLflow 3.17: its UI reads the tag only while that view switch is turned off.)
    """
    base = tracking_uri.rstrip("/") if tracking_uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000"
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}?workflowType=machine_learning"


class MlflowTrackingHook:
    def __init__(self) -> None:
        self._enabled = False
        self._params: dict[str, Any] = {}

    @hook_impl
    def after_context_created(self, context) -> None:
        os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
        self._project_path = Path(context.project_path)
        try:
            # Kedro 1.x validates parameters against the requested pipelines here, so this also
            # fails for an unknown pipeline name
            self._params = dict(context.params)
        except Exception:  # Kedro reports the error itself later; the run cannot start: no store
            self._params, self._enabled = {}, False
            return
        settings = self._params.get("mlflow") or {}
        self._enabled = bool(settings.get("enabled", True))
        if not self._enabled:
            return
        import mlflow

        uri = resolve_tracking_uri(settings.get("tracking_uri"), self._project_path)
        mlflow.set_tracking_uri(uri)
        name = settings.get("experiment", "transfertune")
        if mlflow.get_experiment_by_name(name) is None:
            mlflow.create_experiment(name, artifact_location=artifact_location(uri, settings.get("artifact_root")))
        mlflow.set_experiment(name)
        # keep MLflow's own logger quiet about the sqlite migrations on first use
        logging.getLogger("alembic").setLevel(logging.WARNING)

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline, catalog) -> None:
        if not self._enabled:
            return
        import mlflow

        from transfertune.core.tracking import log_params

        names = run_params.get("pipeline_names") or [run_params.get("pipeline_name") or "__default__"]
        pipeline_name = "+".join(names) if isinstance(names, (list, tuple)) else str(names)
        if mlflow.active_run() is not None:  # a run left open by an earlier session in-process
            mlflow.end_run()
        mlflow.start_run(
            run_name=pipeline_name,
            tags={
                "kedro.pipeline": pipeline_name,
                "kedro.session_id": str(run_params.get("session_id", "")),
                "kedro.env": str(run_params.get("env") or "local"),
            },
        )
        log_params(self._params)
        extra = run_params.get("runtime_params") or run_params.get("extra_params") or {}
        if extra:
            mlflow.set_tag("kedro.runtime_params", str(extra)[:5000])
        run, uri = mlflow.active_run().info, mlflow.get_tracking_uri()
        logger.info("MLflow run %s at %s", run.run_id, uri)
        ui = "" if uri.startswith(("http://", "https://")) else f"mlflow ui --backend-store-uri {uri}, then open "
        self._results_line = f"Results in MLflow: {ui}{run_page_url(uri, run.experiment_id, run.run_id)}"

    @hook_impl
    def after_pipeline_run(self, run_params, run_result, pipeline, catalog) -> None:
        self._end("FINISHED")
        if self._enabled:  # the last line of a run says where to look
            logger.info(self._results_line)

    @hook_impl
    def on_pipeline_error(self, error, run_params, pipeline, catalog) -> None:
        self._end("FAILED")

    def _end(self, status: str) -> None:
        if not self._enabled:
            return
        import mlflow

        while mlflow.active_run() is not None:  # close nested runs left open by a crash too
            mlflow.end_run(status=status)
