"""CLI commands ``import-history`` (``optuna`` | ``mlflow``) and ``recommend``; registered on the
project CLI (``kedro import-history ...``, ``python -m transfertune recommend ...``). Bad input
(a TransfertuneError) is one line on stderr and exit code 2."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import click

from transfertune.errors import ConfigurationError, TransfertuneError


def one_line_errors(function):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except TransfertuneError as exc:
            click.secho(f"Error: {exc}", fg="red", err=True)
            sys.exit(2)

    return wrapper


def _space(path: str | None):
    if path is None:
        return None
    from transfertune.core.params import resolve_path
    from transfertune.core.spaces import SearchSpace

    return SearchSpace.from_yaml(resolve_path(path))


def _print_report(report) -> None:
    for line in report.lines():
        click.echo(line)


@click.group(name="import-history")
def import_history() -> None:
    """Import past tuning (Optuna studies, MLflow runs) as an observation catalog."""


@import_history.command(name="optuna")
@click.argument("storage")
@click.option("--study", "studies", multiple=True, help="study name (repeat; default: every study of the storage)")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="catalog folder to write")
@click.option("--metric", default="value", show_default=True, help="name of the catalog's metric column")
@click.option("--space", default=None, help="space YAML (default: inferred from the studies' distributions)")
@click.option("--overwrite", is_flag=True, help="replace a catalog already in --out")
@one_line_errors
def import_optuna(storage, studies, out, metric, space, overwrite) -> None:
    """Optuna studies in STORAGE (sqlite:///file.db, another RDB URL, or a journal file): one study per task."""
    from transfertune.history.optuna_source import read_optuna
    from transfertune.history.records import write_catalog

    _print_report(write_catalog(read_optuna(storage, list(studies) or None), out, metric=metric, space=_space(space), overwrite=overwrite))


@import_history.command(name="mlflow")
@click.option("--tracking-uri", default=None, help="MLflow store (default: MLFLOW_TRACKING_URI)")
@click.option("--experiment", "experiments", multiple=True, required=True, help="experiment name or id (repeat)")
@click.option("--metric-key", required=True, help="the metric whose step history is the learning curve")
@click.option("--task-tag", default=None, help="run tag that names the task (default: the experiment)")
@click.option("--direction", type=click.Choice(["maximize", "minimize"]), default="maximize", show_default=True)
@click.option("--param", "params", multiple=True, help="params that make the config (repeat; default: all)")
@click.option("--out", required=True, type=click.Path(file_okay=False))
@click.option("--metric", default=None, help="name of the catalog's metric column (default: --metric-key)")
@click.option("--space", default=None, help="space YAML (default: inferred from the params' values)")
@click.option("--overwrite", is_flag=True)
@one_line_errors
def import_mlflow(tracking_uri, experiments, metric_key, task_tag, direction, params, out, metric, space, overwrite) -> None:
    """MLflow runs with their params and a metric's step history."""
    from transfertune.history.mlflow_source import read_mlflow
    from transfertune.history.records import write_catalog

    history = read_mlflow(tracking_uri, list(experiments), metric_key, task_tag, direction, list(params) or None)
    _print_report(write_catalog(history, out, metric=metric or metric_key, space=_space(space), overwrite=overwrite))


def make_tuner(database, space, metric, method, pair, task, train_tasks, budget, seed, direction, max_epochs=None):
    """The in-memory Tuner a recommendation comes from (also the ``recommend`` pipeline's)."""
    from transfertune.core.params import resolve_path
    from transfertune.history.sampler import catalog_metric
    from transfertune.live.tuner import Tuner, load_database

    folder = resolve_path(database)
    metric = metric or catalog_metric(folder)
    if metric is None:
        raise ConfigurationError(f"name the database's metric column (--metric); {folder} has no catalog.json that does")
    catalog = load_database(folder, space, metric)
    if pair:
        try:
            chosen = catalog.pair(pair)
        except KeyError:
            raise ConfigurationError(f"no pair tests {pair!r} in {folder} (pairs: {', '.join(p.test for p in catalog.pairs)})") from None
        train_tasks, task = list(chosen.train), task or f"{pair}-new"
    return Tuner(database=catalog, method=method, metric=catalog.metric, budget=budget, seed=seed, task=task or "new", train_tasks=train_tasks or None,
                 direction=direction, max_epochs=max_epochs, progress=False)


def gather_observations(tuner, observations=None, optuna_storage=None, study=None, mlflow_uri=None, experiment=None, mlflow_metric=None):
    """The new task's observations from a CSV, an Optuna study or an MLflow experiment (in progress)."""
    from transfertune.history.recommend import observations_from_csv, observations_from_history

    space = tuner.problem.space
    if observations:
        configs = tuner.problem.database.configs if tuner.problem.database is not None else None
        return observations_from_csv(observations, space, tuner.problem.metric, configs)
    if optuna_storage:
        from transfertune.history.optuna_source import read_optuna

        if not study:
            raise ConfigurationError("name the study in progress (--study)")
        history = read_optuna(optuna_storage, [study], running=True)
        if history.direction != tuner.direction:
            raise ConfigurationError(f"study {study!r} is to {history.direction}; pass --direction {history.direction}")
        return observations_from_history(history, space)
    if mlflow_uri or experiment:
        from transfertune.history.mlflow_source import read_mlflow

        history = read_mlflow(mlflow_uri, [experiment], mlflow_metric or tuner.problem.metric, direction=tuner.direction, running=True)
        return observations_from_history(history, space)
    return []


@click.command(name="recommend")
@click.option("--database", required=True, help="catalog folder of past tuning")
@click.option("--space", default=None, help="space YAML (default: <database>/space.yml)")
@click.option("--metric", default=None, help="the database's metric column (default: from its catalog.json)")
@click.option("--method", default="at2", show_default=True)
@click.option("--pair", default=None, help="a pair of the database: transfer from its training tasks to its test task, as a new task")
@click.option("--task", default=None, help="name of the new task")
@click.option("--train-task", "train_tasks", multiple=True, help="database tasks to transfer from (repeat; default: all)")
@click.option("--observations", default=None, help="CSV of the new task: epoch, the metric, and hyperparameter columns or config_id")
@click.option("--optuna-storage", default=None, help="an Optuna storage holding the new task's study in progress")
@click.option("--study", default=None, help="that study's name")
@click.option("--mlflow-uri", default=None, help="an MLflow store holding the new task's experiment in progress")
@click.option("--experiment", default=None, help="that experiment")
@click.option("--mlflow-metric", default=None, help="its metric key (default: --metric)")
@click.option("--direction", type=click.Choice(["maximize", "minimize"]), default="maximize", show_default=True)
@click.option("--n", default=3, show_default=True, help="configs to suggest")
@click.option("--budget", default=100, show_default=True, help="epochs the new task will spend in all (observed ones included)")
@click.option("--seed", default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print one JSON line instead of text")
@one_line_errors
def recommend_command(database, space, metric, method, pair, task, train_tasks, observations, optuna_storage, study, mlflow_uri,
                      experiment, mlflow_metric, direction, n, budget, seed, as_json) -> None:
    """The next configs to try on a new task, with the forecast at the final epoch, and the predicted best."""
    from transfertune.history.recommend import recommend

    tuner = make_tuner(database, space, metric, method, pair, task, list(train_tasks), budget, seed, direction)
    found = gather_observations(tuner, observations, optuna_storage, study, mlflow_uri, experiment, mlflow_metric)
    result = recommend(tuner, found, n)
    if as_json:
        click.echo(json.dumps(result.as_dict(), default=str))
    else:
        for line in result.lines():
            click.echo(line)


COMMANDS = (import_history, recommend_command)


@click.group(name="transfertune.history")
def main() -> None:
    """Past tuning as transfer data: `import-history` and `recommend`, outside any Kedro project
    (inside this project they are also `kedro import-history` and `kedro recommend`)."""


for _command in COMMANDS:
    main.add_command(_command)
