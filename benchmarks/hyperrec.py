"""The bundled HyperRec database as the benchmark scripts load it (top-5 validation accuracy)."""

from __future__ import annotations

from pathlib import Path

from transfertune.core.catalog import ObservationCatalog

ROOT = Path(__file__).resolve().parents[1]


def load_hyperrec() -> ObservationCatalog:
    return ObservationCatalog.load(ROOT / "data/01_raw/hyperrec", ROOT / "conf/base/spaces/hyperrec.yml", "val_top5_acc")


def load_database(folder: str | None, metric: str = "val_acc") -> ObservationCatalog:
    """HyperRec when ``folder`` is None, else the database in ``folder`` (its ``space.yml`` beside it)."""
    if folder is None:
        return load_hyperrec()
    return ObservationCatalog.load(folder, Path(folder) / "space.yml", metric)
