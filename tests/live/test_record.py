"""record_trials: live trials appended to an observation catalog that loads and transfers."""

import pandas as pd

from transfertune.core.catalog import ObservationCatalog
from transfertune.live.record import RecordedTrial, record_trials

NAMES = [f"x{i}" for i in range(7)]


def curve(n, start=0.3):
    return [{"epoch": e, "val_acc": start + 0.05 * e, "val_loss": 1.0 / e} for e in range(1, n + 1)]


def test_trials_are_appended_with_ids_dedupe_failures_and_a_pair(synthetic_db, tmp_path):
    known = ObservationCatalog.load(synthetic_db, synthetic_db / "space.yml", "val_acc")
    old_config = known.configs[3]
    new_config = {**old_config, "x1": 0.123456}
    trials = [
        RecordedTrial(old_config, curve(2)),
        RecordedTrial(old_config, curve(5)),  # another method trained it further: this one is kept
        RecordedTrial(new_config, curve(3, 0.1), failed=True, reason="non-finite loss at epoch 4"),
        RecordedTrial(new_config, []),  # nothing trained: ignored
    ]
    out = tmp_path / "grown"
    counts = record_trials(out, "live", trials, 0, NAMES, synthetic_db / "space.yml", base=synthetic_db, task_meta={"source": "x"})
    assert counts == {"trials": 2, "new_configs": 1, "rows": 8}
    grown = ObservationCatalog.load(out, out / "space.yml", "val_acc")
    assert set(grown.tasks) == {*known.tasks, "live"} and len(grown.configs) == len(known.configs) + 1
    rows = grown.observations[grown.observations.task == "live"]
    assert rows.groupby("config_id").epoch.max().to_dict() == {3: 5, 20: 3}
    assert grown.configs[20] == new_config and grown.pair("live").train == tuple(known.tasks)
    failed = pd.read_parquet(out / "failed_trials.parquet")
    assert failed[["config_id", "last_good_epoch", "failed_epoch"]].values.tolist() == [[20, 3, 4]]

    # a second run of the same task replaces its trials of the same config and seed, nothing doubles
    record_trials(out, "live", [RecordedTrial(old_config, curve(7, 0.2))], 0, NAMES, out / "space.yml")
    again = ObservationCatalog.load(out, out / "space.yml", "val_acc")
    live = again.observations[again.observations.task == "live"]
    assert live.groupby("config_id").epoch.max().to_dict() == {3: 7, 20: 3} and not live.duplicated(["config_id", "seed", "epoch"]).any()
    assert [p.test for p in again.pairs].count("live") == 1
