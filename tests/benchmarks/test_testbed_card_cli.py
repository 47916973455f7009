"""benchmarks/testbed_card.py --database: the card of a stored database, checked against the
card's own functions on the bundled mnist1d_scale database."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import testbed_card  # noqa: E402
from transfertune.core.catalog import ObservationCatalog  # noqa: E402
from transfertune.data.testbed import best_of_k_regret, noise_sd, regrets  # noqa: E402

DB = ROOT / "data" / "01_raw" / "mnist1d_scale"


def _printed(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = float(parts[1])
            except ValueError:
                pass
    return out


def test_database_card_reads_each_seeds_final_epoch(capsys):
    testbed_card.database_card(str(DB))
    printed = _printed(capsys.readouterr().out)
    catalog = ObservationCatalog.load(DB, DB / "space.yml", "val_acc")

    def seeds_at(epoch):  # (tasks, configs, seeds)
        return np.stack([np.stack([catalog.grid(t, s)[:, epoch] for s in catalog.seeds], -1) for t in catalog.tasks])

    Y_seeds = seeds_at(-1)
    Y = Y_seeds.mean(-1)
    assert Y_seeds.shape == (32, 100, 2)
    np.testing.assert_allclose(printed["random_regret"], np.median(regrets(Y)), atol=5e-5)
    np.testing.assert_allclose(printed["best_of_10"], np.median([best_of_k_regret(row, 10) for row in Y]), atol=5e-5)
    np.testing.assert_allclose(printed["noise_sd"], noise_sd(Y_seeds), atol=5e-5)
    # one epoch short of the last gives other numbers (the card is of the final epoch)
    assert abs(printed["random_regret"] - np.median(regrets(seeds_at(-2).mean(-1)))) > 2e-4  # 0.2984 against 0.2991
