"""`at2` and `at2_kernel_study` end to end through Kedro on a small database."""

import pandas as pd

from tests.conftest import run_pipeline
from transfertune.core.metrics import SUMMARY_COLUMNS


def _database(db):
    return {"path": str(db), "space": str(db / "space.yml"), "metric": "val_acc"}


def test_at2_pipeline(tmp_path, synthetic_db):
    params = {
        "database": _database(synthetic_db),
        "at2": {"budget": 10, "summary_qs": [5, 10], "progress": False,
                "methods": {"at2": {"fit_steps": 10, "device": "cpu"}, "zero_shot": {}}},
    }
    run_pipeline("at2", tmp_path, params)
    summary = pd.read_csv(tmp_path / "data/08_reporting/at2_summary.csv")
    assert list(summary.columns) == SUMMARY_COLUMNS and set(summary.method) >= {"at2", "zero_shot"}
    assert (tmp_path / "data/08_reporting/at2_regret_rank.png").exists()


def test_kernel_study_pipeline(tmp_path, synthetic_db):
    params = {
        "database": _database(synthetic_db),
        "at2_kernel_study": {"n_tasks": 2, "n_test": 40, "inference": "svgp", "task_kernels": ["optiland", "mtbo"], "config_kernels": ["deep_poly"],
                             "fidelity_kernels": ["acc_curve", "rbf"], "device": "cpu",
                             "svgp": {"inducing_points": 16, "epochs": 1, "batch_size": 128}},
    }
    run_pipeline("at2_kernel_study", tmp_path, params)
    table = pd.read_csv(tmp_path / "data/08_reporting/at2_kernel_study.csv")
    assert len(table) == 4 and list(table["rank"]) == [1, 2, 3, 4]
    assert table.test_elbo.is_monotonic_decreasing
    assert "Winner:" in (tmp_path / "data/08_reporting/at2_kernel_study.md").read_text()
    assert (tmp_path / "data/08_reporting/at2_kernel_study_distances.png").exists()


def test_kernel_study_pipeline_with_exact_inference(tmp_path, synthetic_db):
    params = {
        "database": _database(synthetic_db),
        "at2_kernel_study": {"n_tasks": 3, "n_test": 30, "inference": "exact_kronecker", "task_kernels": ["optiland", "mtbo"],
                             "config_kernels": ["flat"], "fidelity_kernels": ["acc_curve"], "device": "cpu",
                             "exact": {"n_context": 30, "fit_steps": 5, "refit_steps": 2}},
    }
    run_pipeline("at2_kernel_study", tmp_path, params)
    table = pd.read_csv(tmp_path / "data/08_reporting/at2_kernel_study.csv")
    assert len(table) == 2 and table.test_log_likelihood.is_monotonic_decreasing
    assert "ranked by test_log_likelihood" in (tmp_path / "data/08_reporting/at2_kernel_study.md").read_text()
