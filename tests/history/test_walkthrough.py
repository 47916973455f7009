"""docs/history.md's walk-through, step by step, in an empty folder: the history script, the
import, recommend before any trial, the transfer-tuned new study."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

EXAMPLES = ROOT / "docs" / "examples" / "history"


@pytest.mark.slow
def test_the_walkthrough_runs_as_written(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}

    def run(*args):
        done = subprocess.run([sys.executable, *map(str, args)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    assert run(EXAMPLES / "make_history.py").count("trials, best") == 3
    imported = run("-m", "transfertune.history", "import-history", "optuna", "sqlite:///history.db", "--out", "my_history", "--metric", "val_acc")
    assert imported.startswith("wrote my_history: 3 task(s), 45 trial(s)")
    first = run("-m", "transfertune.history", "recommend", "--database", "my_history", "--task", "digits-even", "--n", "3")
    assert first.count("next ") == 3 and "predicted best" in first
    study = run(EXAMPLES / "new_study.py")
    assert "epochs trained:" in study and "forecast at epoch 10" in study
