"""Project CLI: Kedro's own commands, with ``kedro run`` turning user errors into one line.

A :class:`~transfertune.errors.TransfertuneError` (an unknown pipeline name, bad parameter,
missing data folder, malformed space YAML, corrupt database) ends the run with its message and exit code 2
instead of a traceback. Everything else behaves exactly as ``kedro run``.
"""

from __future__ import annotations

import sys
import warnings

import click
from kedro.framework.cli.project import run as kedro_run

from transfertune.errors import TransfertuneError
from transfertune.pipeline_registry import check_pipeline_names


@click.group(name="transfertune")
def cli() -> None:
    """transfertune commands (Kedro project)."""


def _user_error(exc: BaseException) -> TransfertuneError | None:
    """The TransfertuneError behind ``exc`` (Kedro may wrap node errors), if there is one."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, TransfertuneError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


@cli.command(name="run", params=list(kedro_run.params), help=kedro_run.help, context_settings=kedro_run.context_settings)
def run(**kwargs) -> None:
    with warnings.catch_warnings():
        # `--pipeline=NAME` is what our docs and users type; Kedro 1.x warns it is deprecated.
        warnings.filterwarnings("ignore", message=".*--pipeline.*deprecated.*")
        try:
            # before the session starts, so a typo creates no MLflow store and logs nothing else
            check_pipeline_names([kwargs["pipeline"]] if kwargs.get("pipeline") else kwargs.get("pipelines"))
            kedro_run.callback(**kwargs)
        except Exception as exc:
            user_error = _user_error(exc)
            if user_error is None:
                raise
            click.secho(f"Error: {user_error}", fg="red", err=True)
            sys.exit(2)


def _add_history_commands() -> None:
    # `import-history` and `recommend` (transfertune.history.cli); their errors are one line too
    from transfertune.history.cli import COMMANDS

    for command in COMMANDS:
        cli.add_command(command)


_add_history_commands()
