"""Kedro hooks: one MLflow run per ``kedro run``, with every parameter logged.

The tracking URI comes from, in order: the parameter ``mlflow.tracking_uri`` (null in the
shipped parameters, so an explicit ``--params`` wins), the ``MLFLOW_TRACKING_URI`` environment
variable, else ``sqlite:///<project>/mlflow.db`` (a local store, no
server). Artifacts of a local store go beside its database: ``mlflow.artifact_root``
(``mlartifacts``) resolved against the database's folder, so ``<project>/mlartifacts`` by default
and a store in a temporary folder keeps its artifacts there too. ``mlflow.enabled: false`` turns
tracking off.

A run ends FINISHED when its pipeline completes and FAILED when a node raises. An interrupted run
ends KILLED: Ctrl-C (KeyboardInterrupt) and SIGTERM (the hook's handler raises
:class:`Terminated` in the main thread for the duration of the pipeline) unwind the session
without either hook, and a handler run at exit ends whatever run is still open as KILLED (before
MLflow's own, which would mark it FINISHED; SIGTERM without a handler left it RUNNING for good).
"""

from __future__ import annotations

import atexit
import copy
import logging
import os
import signal
import threading
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


def check_parameter_names(context) -> None:
    """Refuse runtime parameters (``--params``) whose keys the configuration files do not define
    (:func:`transfertune.core.params.check_runtime_params`): Kedro merges any key in, so a typo
    such as ``databse.path`` was ignored and the run started with the defaults."""
    loader = context.config_loader
    given = getattr(loader, "runtime_params", None)
    if not given:
        return
    from transfertune.core.params import check_runtime_params

    files_only = copy.copy(loader)  # the same configuration files and environment, no runtime parameters
    files_only.runtime_params = {}
    check_runtime_params(given, files_only["parameters"])


class Terminated(SystemExit):
    """SIGTERM during a pipeline run: exits with status 128 + 15 like the default handler, but
    through Python's unwinding, so the MLflow run can be ended KILLED. A SystemExit, not an
    Exception: the runner does not report it as a node failure (that would be FAILED)."""


def _raise_terminated(signum, frame) -> None:
    logger.warning("SIGTERM: stopping the run (its MLflow run ends KILLED)")
    raise Terminated(128 + signal.SIGTERM)


class MlflowTrackingHook:
    def __init__(self) -> None:
        self._enabled = False
        self._params: dict[str, Any] = {}
        self._previous_sigterm = None
        self._exit_handler = False

    @hook_impl
    def after_context_created(self, context) -> None:
        os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
        check_parameter_names(context)  # before the store exists and any work starts
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
        while mlflow.active_run() is not None:  # a run left open by an interrupted session in-process (a notebook's)
            mlflow.end_run(status="KILLED")
        if not self._exit_handler:  # registered after MLflow's (at its import), so it runs first
            atexit.register(self._end, "KILLED")
            self._exit_handler = True
        if threading.current_thread() is threading.main_thread():  # signal handlers live there only
            self._previous_sigterm = signal.signal(signal.SIGTERM, _raise_terminated)
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
            # printed, not logged: Kedro's log handler wraps a long message into a padded column
            # (80 characters wide when the output is not a terminal), and a link over three
            # lines cannot be copied
            print(self._results_line, flush=True)

    @hook_impl
    def on_pipeline_error(self, error, run_params, pipeline, catalog) -> None:
        self._end("FAILED")

    def _end(self, status: str) -> None:
        if self._previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self._previous_sigterm)
            self._previous_sigterm = None
        if not self._enabled:
            return
        import mlflow

        while mlflow.active_run() is not None:  # close nested runs left open by a crash too
            mlflow.end_run(status=status)
