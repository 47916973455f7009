"""notebooks/compare_methods.ipynb runs top to bottom on a small benchmark logged to a temporary MLflow store."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "compare_methods.ipynb"


def _run_small_benchmark(workdir: Path) -> str:
    """``benchmark`` with 2 cheap methods, 1 pair, Q = 10; every output under ``workdir``.

    The runtime parameter ``data_root`` moves every catalog output there (the project's data/
    stays untouched); MLflow's store and artifacts go there too. Returns the tracking URI.
    """
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    runtime = {
        "data_root": str(workdir / "data"),
        "mlflow": {"tracking_uri": uri, "artifact_root": str(workdir / "mlartifacts")},
        "database": {"path": str(ROOT / "data" / "01_raw" / "hyperrec"), "space": str(ROOT / "conf" / "base" / "spaces" / "hyperrec.yml")},
        "benchmark": {
            "only": ["random_search", "zero_shot"],  # of the default list, which the runtime parameters merge into
            "pairs": ["CIFAR100"],
            "repetitions": 2,
            "budget": 10,
            "summary_qs": [5, 10],
            "n_jobs": 1,
            "progress": False,
        },
    }
    bootstrap_project(ROOT)
    with KedroSession.create(project_path=ROOT, runtime_params=runtime) as session:
        session.run(pipeline_names=["benchmark"])
    return uri


@pytest.mark.slow
def test_compare_methods_notebook_executes(tmp_path, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.chdir(tmp_path)  # Kedro-Viz's run hook writes .viz/ into the project around the working directory
    uri = _run_small_benchmark(tmp_path)
    assert (tmp_path / "data/07_model_output/benchmark_results.parquet").exists()  # outputs stayed in tmp
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # the kernel inherits the environment
    monkeypatch.delenv("BENCHMARK_RUN_ID", raising=False)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()

    text = "\n".join(
        output.get("text", "") + str(output.get("data", {}).get("text/plain", ""))
        for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", [])
    )
    assert uri in text and "2 nested runs" in text
    assert "2 methods x 1 pairs, q = 1..10" in text
    assert "| random_search | 10 |" in text and "| zero_shot | 10 |" in text  # the summary table at q = Q
    images = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 2  # the R_q/F_q figure and the per-pair ranks
