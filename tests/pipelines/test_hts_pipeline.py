"""`hts` end to end through Kedro on tiny settings (seconds); a rerun trains nothing; bad
parameters and bad input are one line."""

from __future__ import annotations

import json

import mlflow
import pandas as pd
import pytest

from tests.conftest import project_copy, run_kedro, run_pipeline
from transfertune.errors import ConfigurationError
from transfertune.pipelines.hts.nodes import parse_params

# two tasks of the digits_mlp family (200 training samples): clean labels -> 30 % noisy
TINY_PAIR = {"family": "digits_mlp", "source": {"n_train": 200, "input_scale": 1.0, "label_noise": 0.0},
             "target": {"n_train": 200, "input_scale": 1.0, "label_noise": 0.3}}
DEFAULT_PAIRS_OFF = {"s03_s3": False, "s3_s30": False, "s003_s03": False}  # the runtime parameters merge into parameters_hts.yml's


def hts_params(tmp_path, **overrides):
    params = {
        "pairs": {**DEFAULT_PAIRS_OFF, "tiny": TINY_PAIR},
        "epochs": 1,
        "source_evaluations": 12,
        "t_max": 12,
        "repetitions": 2,
        "methods": {
            "hts": {"n_rank_samples": 200, "g_epochs": 20},
            "hts_paper": {"method": "hts", "map_from": "source", "bound_source": False, "g_epochs": None, "n_rank_samples": 200},
            "hts_random": False,  # turned off
            "hts_hord": {"method": "hts", "hord_after": 0.8, "n_rank_samples": 200, "g_epochs": 20},
            "no_transfer": {"method": "hord", "n_initial": 9},
            "linear": {"method": "source_order"},
        },
        "baseline": "no_transfer",
        "store_dir": str(tmp_path / "stores"),
        "progress": False,
    }
    params.update(overrides)
    return {"hts": params}


def test_hts_writes_figure_1_and_a_rerun_trains_nothing(tmp_path):
    params = hts_params(tmp_path)
    run_pipeline("hts", tmp_path, params)
    reporting = tmp_path / "data" / "08_reporting"
    table = pd.read_csv(reporting / "hts_evaluations.csv")
    assert set(table.method) == {"hts", "hts_paper", "hts_hord", "no_transfer", "linear"} and set(table.pair) == {"tiny"}
    assert table.groupby(["method", "repetition"]).size().eq(12).all()
    assert (table.epochs == 1).all() and table.groupby(["method", "repetition"]).best_error.is_monotonic_decreasing.all()
    curves = pd.read_csv(reporting / "hts_curves.csv")
    assert len(curves) == 5 * 12 and (curves.n == 2).all()
    ratios = pd.read_csv(reporting / "hts_ratios.csv").set_index("method")
    assert ratios.loc["no_transfer", "ratio"] >= 1 and ratios.loc["hts", "t_max"] == 12  # the baseline reaches its own final error
    assert "ratio (t_max / that)" in (reporting / "hts_ratios.md").read_text()
    assert (reporting / "hts_figure.png").stat().st_size > 10_000
    source = pd.read_csv(reporting / "hts_source_observations.csv")
    assert len(source) == 12 and set(source.columns) == {"config_id", "epochs", "val_acc", "config", "pair"}
    # linear evaluates the source's configs best first, unmapped
    first = table[(table.method == "linear") & (table.repetition == 0)].sort_values("evaluation")["config"].iloc[0]
    best_source = source.sort_values("val_acc", ascending=False, kind="stable")["config"].iloc[0]
    assert json.loads(first) == json.loads(best_source)

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["transfertune"])
    nested = runs[runs["tags.method"].notna()]
    assert set(nested["tags.method"]) == {"hts", "hts_paper", "hts_hord", "no_transfer", "linear"}
    assert len(mlflow.MlflowClient().get_metric_history(nested.iloc[0].run_id, "best_error")) == 12

    results = pd.read_parquet(tmp_path / "data" / "07_model_output" / "hts_results.parquet")
    stores = sorted((tmp_path / "stores").rglob("events.jsonl"))
    assert len(stores) == 1 + 5 * 2
    before = {p: p.read_text() for p in stores}
    run_pipeline("hts", tmp_path, params)  # same parameters: every run is replayed from its store
    assert {p: p.read_text() for p in stores} == before
    again = pd.read_parquet(tmp_path / "data" / "07_model_output" / "hts_results.parquet")
    pd.testing.assert_frame_equal(again.drop(columns="t"), results.drop(columns="t"))


def test_bad_hts_parameters_are_one_line_errors(tmp_path):
    base = hts_params(tmp_path)["hts"]
    with pytest.raises(ConfigurationError, match=r"hts\.t_max: Input should be greater than or equal to 1"):
        parse_params({**base, "t_max": 0})
    with pytest.raises(ConfigurationError, match=r"hts\.colour: Extra inputs are not permitted"):
        parse_params({**base, "colour": "red"})
    with pytest.raises(ConfigurationError, match=r"hts.baseline 'hord' is not one of hts.methods"):
        parse_params({**base, "baseline": "hord"})
    with pytest.raises(ConfigurationError, match=r"^hts.pairs: no pair is turned on$"):
        parse_params({**base, "pairs": DEFAULT_PAIRS_OFF})
    with pytest.raises(ConfigurationError, match=r"hts\.pairs\.tiny\.PairParams\.colour: Extra inputs are not permitted"):
        parse_params({**base, "pairs": {"tiny": {**TINY_PAIR, "colour": 1}}})


@pytest.mark.slow
def test_bad_input_through_kedro_is_one_line(tmp_path):
    """m outside [k, 2k], too few source observations, the same task as source and target, a factor the family lacks."""
    project = project_copy(tmp_path / "project")
    common = ["mlflow.enabled=false", f"data_root={tmp_path / 'data'}", "hts.progress=false", "hts.pairs.s03_s3=false", "hts.pairs.s003_s03=false",
              "hts.epochs=1", "hts.repetitions=1", "hts.t_max=10", "hts.methods.hts_random=false", "hts.methods.hts_hord=false",
              "hts.methods.hts_paper=false", "hts.methods.linear=false"]
    for case, (extra, message) in enumerate((
        (["hts.methods.hts.m=20", "hts.source_evaluations=10"], "HTS m = 20 is outside [k, 2k] = [7, 14] for the k = 7 hyperparameters"),
        (["hts.source_evaluations=5"], "HTS source observations (Omega_S): 5 observation(s) span an affine space of dimension 4"),
        (["hts.pairs.s3_s30.target.input_scale=3.0"], "HTS pair: source and target are the same task"),
        (["hts.pairs.s3_s30.target.colour=1"], "HTS pair target: family 'mnist1d_scale' has no factor(s) ['colour']"),
    )):
        stores = f"hts.store_dir={tmp_path / f'stores{case}'}"
        result = run_kedro(["run", "--pipeline=hts", "--params=" + ",".join([*common, stores, *extra])], project)
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        assert result.returncode == 2, result.stderr[-2000:]
        assert message in lines[-1] and "Traceback" not in result.stderr, result.stderr[-2000:]
