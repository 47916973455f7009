"""The project CLI and pipeline registry: an unknown pipeline name is one clear line, exit 2."""

import pytest

from tests.conftest import ROOT, project_copy, run_kedro
from transfertune.errors import ConfigurationError
from transfertune.pipeline_registry import pipeline_names

# pipeline_names() is checked against what Kedro registers in the last test here
REGISTERED = f"the registered pipelines are {', '.join(pipeline_names())}"


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("Error:")]


def test_unknown_pipeline_is_one_line_naming_the_registered_ones(tmp_path):
    proc = run_kedro(["run", "--pipeline=nope"], project_copy(tmp_path / "project"))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert error_lines(proc.stderr) == [f"Error: no pipeline named 'nope'; {REGISTERED}"]
    assert "Traceback" not in proc.stderr and "╭" not in proc.stderr
    assert not (tmp_path / "project" / "mlflow.db").exists()  # refused before the session opens a store


def test_unknown_names_among_several_are_all_named(tmp_path):
    proc = run_kedro(["run", "--pipelines=zzz,at2,nope"], project_copy(tmp_path / "project"))
    assert proc.returncode == 2
    assert error_lines(proc.stderr) == [f"Error: no pipeline named 'nope', 'zzz'; {REGISTERED}"]


def test_registry_refuses_an_unknown_name_from_python_too(tmp_path, monkeypatch):
    """KedroSession.run from a notebook does not pass through the CLI's check."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")  # where a store would go
    bootstrap_project(ROOT)
    with KedroSession.create(project_path=ROOT, runtime_params={"data_root": str(tmp_path / "data")}) as session:
        with pytest.raises(ConfigurationError, match=f"no pipeline named 'nope'; {REGISTERED}$"):
            session.run(pipeline_names=["nope"])
    assert not (tmp_path / "mlflow.db").exists()  # the tracking hook opens no store for a run that cannot start


def test_pipeline_names_are_exactly_what_the_registry_registers():
    from kedro.framework.startup import bootstrap_project

    from transfertune.pipeline_registry import register_pipelines

    assert {"__default__", "at2", "benchmark", "subsample"} <= set(pipeline_names())
    bootstrap_project(ROOT)  # resets Kedro's filter of requested pipelines: load them all
    registered = register_pipelines()
    assert pipeline_names() == ["__default__", *sorted(set(registered) - {"__default__"})]
    assert registered["__default__"] is registered["at2"]


@pytest.mark.parametrize(
    "params, line",
    [
        ("databse.path=/nonexistent", "Error: unknown key in the run's parameters: 'databse.path' (did you mean 'database.path'?)"),
        ("at2.acqusition=ucb", "Error: unknown key in the run's parameters: 'at2.acqusition' (did you mean 'at2.methods.at2.acquisition'?)"),
        ("at2.budgte=5", "Error: unknown key in the run's parameters: 'at2.budgte' (did you mean 'at2.budget'?)"),
    ],
)
def test_a_mistyped_parameter_key_is_one_line_naming_the_nearest_known_key(tmp_path, params, line):
    """Kedro merges any runtime key into the parameters: a typo was ignored and the full default
    job started (issue 33). Refused before the session opens a store or loads anything."""
    proc = run_kedro(["run", "--pipeline=at2", f"--params={params}"], project_copy(tmp_path / "project"))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert error_lines(proc.stderr) == [line]
    assert "Traceback" not in proc.stderr and "Running node" not in proc.stdout
    assert not (tmp_path / "project" / "mlflow.db").exists()


def test_known_keys_and_keys_of_open_mappings_pass_the_parameter_check():
    from transfertune.core.params import check_runtime_params

    known = {"database": {"path": "p", "metric": "m"}, "at2": {"methods": {"at2": {"eta": 0.25}}, "pairs": "all"},
             "tune": {"model_options": {}, "task": None}}
    check_runtime_params({"database": {"path": "q"}, "data_root": "/tmp/x"}, known)
    check_runtime_params({"at2": {"methods": {"my_label": {"class": "pkg.Cls"}}}}, known)  # a new method label
    check_runtime_params({"tune": {"model_options": {"depth": 3}, "task": {"anything": 1}}}, known)  # {} and null take any keys
    check_runtime_params({"at2": {"pairs": ["a", "b"]}}, known)
    with pytest.raises(ConfigurationError, match=r"^unknown keys in the run's parameters: 'datbase\.metric' \(did you mean 'database\.metric'\?\); 'zzz' \(known there: at2, database, tune\)$"):
        check_runtime_params({"datbase": {"metric": "x"}, "zzz": 1}, known)
    with pytest.raises(ConfigurationError, match=r"'database\.pth' \(did you mean 'database\.path'\?\)"):
        check_runtime_params({"database": {"pth": "x"}}, known)
