"""The complete example of docs/tuner.md tunes a small PyTorch model live, as written there; kill -9
in the middle of its loop and a rerun lose and duplicate no epoch; a crash between a checkpoint
and its tell is recovered from the checkpoint."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT
from transfertune import Tuner

DATABASE = ROOT / "data" / "01_raw" / "digits_mlp"


def docs_example(budget: int = 30) -> str:
    text = (ROOT / "docs" / "tuner.md").read_text()
    code = re.search(r"## A complete example.*?```python\n(.*?)```", text, re.S).group(1)
    assert code == (ROOT / "docs" / "examples" / "tuner_example.py").read_text()  # the docs show the script
    assert '"data/01_raw/digits_mlp"' in code and "budget=30" in code
    return code.replace("budget=30", f"budget={budget}")


STORE = Path("data/07_model_output/tuner_example")


def tells(store: Path) -> list[tuple[int, int]]:
    events = [json.loads(line) for line in (store / "events.jsonl").read_text().splitlines()]
    return [(e["trial"], e["epoch"]) for e in events if e["event"] == "tell"]


def reopen(store: Path, budget: int = 30, method: str = "at2") -> Tuner:
    return Tuner(database=DATABASE, method=method, store=store, budget=budget, task="even-digits")


def test_the_docs_example_tunes_a_small_pytorch_model_live_and_repeats(tmp_path, monkeypatch, capsys):
    runs = []
    for name in ("first", "second"):  # from a folder outside the project: the database is found in it
        (tmp_path / name).mkdir()
        monkeypatch.chdir(tmp_path / name)
        exec(compile(docs_example(), "docs/tuner.md", "exec"), {"__name__": "docs_example"})
        assert "recommended: {" in capsys.readouterr().out
        with reopen(tmp_path / name / STORE) as tuner:  # replays the log, trains nothing
            runs.append(tuner.history())
    history = runs[0]
    assert list(history.q) == list(range(1, 31)) and history.best.iloc[-1] > 0.9
    # seeded: the second run in a fresh folder trains the same numbers
    assert runs[0][["trial", "epoch", "value"]].equals(runs[1][["trial", "epoch", "value"]])
    with reopen(tmp_path / "first" / STORE) as tuner:
        assert not tuner.problem.space.problems(tuner.recommend()) and tuner.remaining == 0
        continued = history.groupby("trial").epoch.max()
        assert (continued > 1).any()  # AT2 continued trials: their state came from load_checkpoint
        for trial_id, epochs in continued.items():
            assert torch.load(tuner.trial_dir(trial_id) / "checkpoint.pt", weights_only=True)["epoch"] == epochs


@pytest.mark.slow
def test_kill_9_in_the_users_loop_then_a_rerun_loses_and_duplicates_no_epoch(tmp_path):
    script = tmp_path / "example.py"
    script.write_text(docs_example(budget=40))
    store = tmp_path / STORE
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # small models; a shared CPU
    proc = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (store / "events.jsonl").is_file() and len(tells(store)) >= 6:
            break
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = tells(store)
    assert 6 <= len(before) < 40, proc.stderr.read().decode()[-3000:]
    rerun = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    after = tells(store)
    assert after[: len(before)] == before and len(after) == len(set(after)) == 40
    for trial_id in {t for t, _ in after}:
        epochs = [e for t, e in after if t == trial_id]
        assert epochs == list(range(1, len(epochs) + 1))


def test_a_crash_between_the_checkpoint_and_its_tell_is_told_from_the_checkpoint(tmp_path):
    store = tmp_path / "store"
    # zero-shot trains its favourite on: the second ask continues the first trial (AT2's default
    # acquisition draws the task weights per query and may switch)
    tuner = reopen(store, budget=6, method="zero_shot")
    trial = tuner.ask()
    tuner.tell(trial, 1, {"val_acc": 0.5}, checkpoint={"w": torch.ones(2)})
    second = tuner.ask()
    assert second.trial_id == trial.trial_id and second.start_epoch == 1
    assert torch.equal(tuner.load_checkpoint(second)["w"], torch.ones(2))
    # the process dies after writing epoch 2's checkpoint, before logging its tell
    tuner._save_checkpoint(second.trial_id, 2, {"w": torch.full((2,), 2.0)}, [{"val_acc": 0.5}, {"val_acc": 0.7}])
    tuner.close()
    with reopen(store, budget=6, method="zero_shot") as again:
        nxt = again.ask()
        assert again.history().value.tolist() == [0.5, 0.7]  # epoch 2 told from the checkpoint, not lost
        assert nxt.start_epoch == 2 or nxt.trial_id != trial.trial_id
        assert [e["event"] for e in map(json.loads, (store / "events.jsonl").read_text().splitlines())].count("tell") == 2
