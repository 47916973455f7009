"""Shared fixtures: the project root, the vendored HyperRec catalog, tiny synthetic databases,
helpers that run a Kedro pipeline (in-process or as ``kedro run``) with every output inside a
temporary folder, and a guard that fails any test that writes into the project."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
HYPERREC = ROOT / "data" / "01_raw" / "hyperrec"
HYPERREC_SPACE = ROOT / "conf" / "base" / "spaces" / "hyperrec.yml"

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
torch.set_num_threads(1)

# hypothesis keeps no example database and its caches in a temporary folder: by default it
# writes .hypothesis/ into the working directory
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", tempfile.mkdtemp(prefix="hypothesis-"))
from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile("transfertune", database=None)
_hypothesis_settings.load_profile("transfertune")

# Git and the caches of Python and pytest; anything else a test creates or changes in the project
# is a leak. Virtual environments (a folder with pyvenv.cfg, such as .venv) are skipped too: tens
# of thousands of files to stat around every test, and no test writes there.
UNWATCHED = {".git", "__pycache__", ".pytest_cache"}


def tree_state(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``root`` but the unwatched ones: ``relative path -> (size, mtime_ns)``
    for files, ``(-1, -1)`` for folders (an empty folder left behind counts too)."""
    state = {}
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [
            name for name in subfolders if name not in UNWATCHED and not os.path.exists(os.path.join(folder, name, "pyvenv.cfg"))
        ]
        relative = os.path.relpath(folder, root)
        state[relative] = (-1, -1)
        for name in files:
            if name in UNWATCHED:
                continue
            try:
                stat = os.lstat(os.path.join(folder, name))
            except FileNotFoundError:  # removed since the listing: a change the next snapshot shows
                continue
            state[os.path.normpath(os.path.join(relative, name))] = (stat.st_size, stat.st_mtime_ns)
    return state


def changed_paths(before: dict, after: dict) -> list[str]:
    """Paths created, changed or removed between two ``tree_state`` snapshots."""
    return sorted(path for path in before.keys() | after.keys() if before.get(path) != after.get(path))


@pytest.fixture(autouse=True)
def project_untouched():
    """Fail a test that creates, changes or removes anything in the project tree (outputs belong
    under tmp_path). With xdist, a test running beside it on another worker may be the culprit."""
    before = tree_state(ROOT)
    yield
    changed = changed_paths(before, tree_state(ROOT))
    if changed:
        pytest.fail(f"the project tree changed during this test (tests write only under tmp_path): {changed[:10]}")


@pytest.fixture(scope="session")
def hyperrec():
    from transfertune.core.catalog import ObservationCatalog

    return ObservationCatalog.load(HYPERREC, HYPERREC_SPACE, "val_top5_acc")


def write_synthetic_database(folder: Path, n_tasks: int = 5, n_configs: int = 20, n_epochs: int = 8, seed: int = 0) -> Path:
    """A small database in the catalog layout with a 7-dimensional numeric space.

    Curves follow ``y = a_t(c) * (1 - exp(-e / tau_t(c)))`` with task-specific but correlated
    landscapes, so transfer helps. Writes the space to ``folder/space.yml``.
    """
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"x{i}" for i in range(7)]
    space = {
        "name": "synthetic7",
        "hyperparameters": [
            {"name": n, "type": "float", "lower": 1e-3 if i == 0 else 0.0, "upper": 1.0, "log": i == 0} for i, n in enumerate(names[:6])
        ]
        + [{"name": "x6", "type": "integer", "lower": 1, "upper": 9}],
    }
    import yaml

    (folder / "space.yml").write_text(yaml.safe_dump(space))
    X = rng.random((n_configs, 7))
    configs = []
    for cid, x in enumerate(X):
        record = {"config_id": cid, "x0": float(10 ** (-3 + 3 * x[0]))}
        record.update({f"x{i}": float(x[i]) for i in range(1, 6)})
        record["x6"] = int(1 + round(8 * x[6]))
        configs.append(record)
    (folder / "configs.jsonl").write_text("\n".join(json.dumps(c) for c in configs) + "\n")
    base = X @ rng.normal(size=7)
    rows = []
    tasks = [f"task{t}" for t in range(n_tasks)]
    for t, task in enumerate(tasks):
        quality = base + 0.3 * rng.normal(size=n_configs)
        final = 0.3 + 0.6 * (quality - quality.min()) / (np.ptp(quality) + 1e-9)
        tau = 1 + 3 * rng.random(n_configs)
        for s in (0, 1):
            for c in range(n_configs):
                for e in range(1, n_epochs + 1):
                    y = final[c] * (1 - np.exp(-e / tau[c])) + 0.005 * rng.normal()
                    rows.append((task, c, s, e, float(y), float(1 - y)))
    frame = pd.DataFrame(rows, columns=["task", "config_id", "seed", "epoch", "val_acc", "val_loss"])
    frame.to_parquet(folder / "observations.parquet", index=False)
    pairs = [{"train": [x for x in tasks if x != test][:3], "test": test} for test in tasks[:2]]
    (folder / "train_test_pairs.json").write_text(json.dumps({"pairs": pairs}))
    return folder


@pytest.fixture
def synthetic_db(tmp_path) -> Path:
    return write_synthetic_database(tmp_path / "synthetic_db")


def run_pipeline(name: str, workdir: Path, params: dict[str, Any] | None = None) -> dict:
    """Run Kedro pipeline ``name`` of this project with cwd = ``workdir``.

    Every catalog path starts with ``${runtime_params:data_root,data}``, so the runtime parameter
    ``data_root`` puts every output under ``workdir/data``; MLflow goes to ``workdir/mlflow.db``. Returns the run's free outputs.
    """
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    workdir.mkdir(parents=True, exist_ok=True)
    runtime = {"mlflow": {"tracking_uri": f"sqlite:///{workdir / 'mlflow.db'}"}, "data_root": str(workdir / "data")}
    for key, value in (params or {}).items():
        runtime[key] = value
    old = Path.cwd()
    os.chdir(workdir)
    try:
        bootstrap_project(ROOT)
        with KedroSession.create(project_path=ROOT, runtime_params=runtime) as session:
            return session.run(pipeline_names=[name])
    finally:
        os.chdir(old)


def project_copy(folder: Path) -> Path:
    """A stand-in project folder for ``kedro run`` in a subprocess: this project's
    ``pyproject.toml`` and ``conf/base``, an empty ``conf/local``, and a link to ``data/01_raw``
    (read only); ``run_kedro`` imports the package from this checkout's ``src/``. Kedro and its
    plugins write beside the project they run in (Kedro-Viz keeps run events in ``.viz/``), so a
    run from here leaves the real project untouched.
    """
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "pyproject.toml", folder / "pyproject.toml")
    shutil.copytree(ROOT / "conf" / "base", folder / "conf" / "base")
    (folder / "conf" / "local").mkdir()
    (folder / "src").mkdir()  # Kedro wants the source folder inside the project (a link resolves outside)
    (folder / "data").mkdir()
    (folder / "data" / "01_raw").symlink_to(ROOT / "data" / "01_raw", target_is_directory=True)
    return folder


def run_kedro(args: list[str], project: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m kedro ARGS`` in ``project`` (a ``project_copy``), with this checkout's sources first."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "kedro", *args], cwd=project, env=env, capture_output=True, text=True, timeout=timeout)
