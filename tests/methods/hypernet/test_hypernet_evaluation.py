"""The three evaluations on tiny settings: table invariants, configuration errors, figures."""

import pytest

from transfertune.errors import ConfigurationError
from transfertune.methods.hypernet.evaluation import (
    ExperimentConfig,
    comparison_experiment,
    figure2_experiment,
    figure3_experiment,
    plot_comparison,
    plot_figure2,
    plot_figure3,
)

TINY = {
    "global": {"hidden": 8, "steps": 40, "hyper_steps": 10},
    "local": {"steps": 30, "n_lambda": 4},
    "figure2": {"n_grid": 7, "n_trained": 4},
    "figure3": {"n_samples": 4, "n_test": 5, "pairs_steps": 20},
    "comparison": {"sizes": ["global", "per_weight"], "bo_trials": 3, "bo_startup_trials": 2},
}


def test_figure2_tables_and_plot(digits, tmp_path):
    cfg = ExperimentConfig.from_dict(TINY)
    result = figure2_experiment(digits, cfg)
    assert set(result.curves.algorithm) == {"global", "local"} and len(result.curves) == 14
    assert list(result.trained.log_l2) == [-14.0, pytest.approx(-14 + 14 / 3), pytest.approx(-14 + 28 / 3), 0.0]
    assert list(result.summary.algorithm) == ["global", "local", "grid of trained models"]
    assert len(result.trajectory) == 30
    fig = plot_figure2(result)
    assert len(fig.axes) == 2
    fig.savefig(tmp_path / "figure2.png")  # a pyplot-free Figure still renders to PNG
    assert (tmp_path / "figure2.png").stat().st_size > 10_000


def test_figure3_compares_three_predictors_on_the_same_lambdas(digits):
    cfg = ExperimentConfig.from_dict(TINY)
    result = figure3_experiment(digits, cfg)
    assert list(result.summary.method) == ["GP on samples", "hypernet on samples", "hyper-trained hypernet"]
    assert list(result.summary.training_runs) == [4, 4, 1]
    assert len(result.points) == 15
    # every method is scored against the same true losses
    assert result.points.groupby("test_index")["true"].nunique().eq(1).all()
    assert (result.summary.rmse >= 0).all()
    fig = plot_figure3(result.points)
    assert len(fig.axes) == 6


def test_comparison_rows_and_run_counts(digits):
    # a tiny beta for per_weight only: its lambdas must stay at the start, the global one must move
    cfg = ExperimentConfig.from_dict({**TINY, "comparison": {**TINY["comparison"], "hyper_lr": {"per_weight": 1e-9}}})
    result = comparison_experiment(digits, cfg)
    table = result.table.set_index("method")
    assert list(table.index) == ["bayesopt (Optuna GP)", "local hyper-training, global", "retrained at lambda_hat, global",
                                 "local hyper-training, per_weight", "retrained at lambda_hat, per_weight"]
    assert list(table.training_runs) == [3, 1, 2, 1, 2]
    assert list(table.hyperparameters) == [1, 1, 1, 650, 650]
    assert (table[["val_loss", "test_loss"]] > 0).all().all()
    assert abs(table.loc["local hyper-training, per_weight", "log_l2_mean"] + 7.0) < 1e-5
    assert abs(table.loc["local hyper-training, global", "log_l2_mean"] + 7.0) > 0.1
    fig = plot_comparison(result.curves)
    assert len(fig.axes) == 2


@pytest.mark.parametrize(
    "params, message",
    [
        ({"log_l2_range": [0, -1]}, "low < high"),
        ({"init_log_l2": 3.0}, "outside log_l2_range"),
        ({"figure3": {"size": "per_layer"}}, "figure3.size"),
        ({"comparison": {"sizes": ["per_layer"]}}, "unknown sizes"),
        ({"comparison": {"hyper_lr": {"per_layer": 0.1}}}, "unknown sizes"),
        ({"comparison": {"hyper_lr": {"per_weight": -1}}}, "hyper_lr.per_weight must be positive"),
        ({"lr": 0.1}, "unknown parameter"),
        ({"local": {"sigmaa": 1}}, "sigmaa"),
    ],
)
def test_bad_parameters_are_named(params, message):
    with pytest.raises(ConfigurationError, match=message):
        ExperimentConfig.from_dict(params)


def test_parameter_file_and_library_defaults_agree():
    # the benchmark, the pipeline and direct library calls must run the same experiment
    from pathlib import Path

    import yaml

    params = yaml.safe_load((Path(__file__).resolve().parents[3] / "conf/base/parameters_hypernet.yml").read_text())["hypernet"]
    rest = {k: v for k, v in params.items() if k not in ("data", "device", "progress")}
    assert ExperimentConfig.from_dict(rest) == ExperimentConfig(seed=params["seed"])
