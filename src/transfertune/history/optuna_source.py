"""Optuna studies as past tuning (:class:`~transfertune.history.records.History`).

One study is one task. A trial's params are its config; its intermediate values
(``trial.report(value, step)``) are its epochs: epoch k is the k-th smallest step any trial of
the study reported (:func:`~transfertune.history.records.epochs_from_steps`). A study whose
trials report no intermediate values gives one epoch per trial, its final value.

Trial states, as Optuna defines them: ``COMPLETE`` trials are kept whole; ``PRUNED`` trials
keep the epochs they reported (a pruned trial stopped early, its curve so far is real);
``FAIL``, ``RUNNING`` and ``WAITING`` trials are left out (``running=True`` keeps the epochs a
``RUNNING`` trial reported so far: a study in progress, for ``recommend``). The study's
distributions become the space (:func:`~transfertune.history.records.infer_space`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transfertune.errors import ConfigurationError
from transfertune.history.records import History, TrialRecord, epochs_from_steps, merge_distribution


def open_storage(storage: str | Path):
    """An Optuna storage from an RDB URL (``sqlite:///file.db``, ``postgresql://...``), a SQLite
    file (``*.db``, ``*.sqlite``, ``*.sqlite3``), or a journal file (anything else that exists)."""
    import optuna

    text = str(storage)
    if "://" in text:
        if text.startswith("sqlite:///") and not Path(text[len("sqlite:///"):]).is_file():
            raise ConfigurationError(f"optuna storage {text}: the file {text[len('sqlite:///'):]} does not exist")
        return optuna.storages.RDBStorage(text, skip_compatibility_check=False)
    path = Path(text)
    if not path.is_file():
        raise ConfigurationError(f"optuna storage {text} does not exist (give an RDB URL such as sqlite:///file.db, or a journal file)")
    if path.suffix in (".db", ".sqlite", ".sqlite3"):
        return optuna.storages.RDBStorage(f"sqlite:///{path}")
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    return JournalStorage(JournalFileBackend(str(path)))


def distribution_spec(distribution) -> dict[str, Any]:
    """An Optuna distribution as a space entry (``type``, ``lower``, ``upper``, ``log`` or ``choices``)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if isinstance(distribution, CategoricalDistribution):
        return {"type": "categorical", "choices": list(distribution.choices)}
    if isinstance(distribution, IntDistribution):
        return {"type": "integer", "lower": int(distribution.low), "upper": int(distribution.high), "log": bool(distribution.log)}
    if isinstance(distribution, FloatDistribution):
        return {"type": "float", "lower": float(distribution.low), "upper": float(distribution.high), "log": bool(distribution.log)}
    raise ConfigurationError(f"optuna distribution {distribution!r} has no counterpart in a search space")


@dataclass
class _Trial:
    """What the import reads of an Optuna trial."""

    number: int
    state: str  # TrialState name
    params: dict[str, Any]
    distributions: dict[str, Any]
    value: float | None
    intermediate: dict[int, float]


def _trials_api(store, name: str) -> tuple[list[str], list[_Trial]]:
    import optuna

    study = optuna.load_study(study_name=name, storage=store)
    directions = [d.name.lower() for d in study.directions]
    trials = [_Trial(t.number, t.state.name, dict(t.params), dict(t.distributions), t.value if len(directions) == 1 else None,
                     dict(t.intermediate_values)) for t in study.get_trials(deepcopy=False)]
    return directions, trials


def _trials_sql(store, name: str) -> tuple[list[str], list[_Trial]]:
    """The same as :func:`_trials_api` from an RDB storage's tables with four queries: Optuna
    builds an ORM object per row (about 20 s for 1,000 trials of 20 steps on a loaded 2-core
    machine, against well under one here). ``tests/history/test_import.py`` checks both agree."""
    from optuna.distributions import json_to_distribution
    from sqlalchemy import text

    with store.engine.connect() as db:
        study_id = db.execute(text("SELECT study_id FROM studies WHERE study_name = :n"), {"n": name}).scalar_one()
        directions = [d.lower() for (d,) in db.execute(
            text("SELECT direction FROM study_directions WHERE study_id = :s ORDER BY objective"), {"s": study_id})]
        trials = {tid: _Trial(number, state, {}, {}, None, {}) for tid, number, state in db.execute(
            text("SELECT trial_id, number, state FROM trials WHERE study_id = :s ORDER BY number"), {"s": study_id})}
        parsed: dict[str, Any] = {}
        for tid, param, value, dist_json in db.execute(text(
                "SELECT p.trial_id, p.param_name, p.param_value, p.distribution_json FROM trial_params p "
                "JOIN trials t ON t.trial_id = p.trial_id WHERE t.study_id = :s ORDER BY p.param_id"), {"s": study_id}):
            if dist_json not in parsed:
                parsed[dist_json] = json_to_distribution(dist_json)
            distribution = parsed[dist_json]
            trials[tid].params[param] = distribution.to_external_repr(value)
            trials[tid].distributions[param] = distribution
        for tid, value, kind in db.execute(text(
                "SELECT v.trial_id, v.value, v.value_type FROM trial_values v JOIN trials t ON t.trial_id = v.trial_id "
                "WHERE t.study_id = :s AND v.objective = 0"), {"s": study_id}):
            trials[tid].value = _special(value, kind)
        for tid, step, value, kind in db.execute(text(
                "SELECT i.trial_id, i.step, i.intermediate_value, i.intermediate_value_type FROM trial_intermediate_values i "
                "JOIN trials t ON t.trial_id = i.trial_id WHERE t.study_id = :s"), {"s": study_id}):
            trials[tid].intermediate[int(step)] = _special(value, kind)
    return directions, list(trials.values())


def _special(value: float | None, kind: str) -> float:
    return {"INF_POS": math.inf, "INF_NEG": -math.inf, "NAN": math.nan}.get(kind, value)


def read_optuna(storage: str | Path, studies: Sequence[str] | None = None, running: bool = False) -> History:
    """The trials of ``studies`` (default: every study of the storage) as a :class:`History`.

    One-line ConfigurationErrors: an unknown study, a multi-objective study, studies of mixed
    directions, a parameter whose type differs between trials.
    """
    import optuna

    store = open_storage(storage)
    available = [s.study_name for s in store.get_all_studies()]  # not the summaries: they read every trial
    names = list(studies) if studies else available
    unknown = [s for s in names if s not in available]
    if unknown:
        raise ConfigurationError(f"study {unknown[0]!r} is not in {storage} (its studies: {', '.join(available) or 'none'})")
    if not names:
        raise ConfigurationError(f"{storage} holds no study")
    read = _trials_sql if isinstance(store, optuna.storages.RDBStorage) else _trials_api
    history = History(records=[], distributions={}, direction="", source=f"optuna storage {storage}")
    directions: dict[str, str] = {}
    for name in names:
        study_directions, trials = read(store, name)
        if len(study_directions) != 1:
            raise ConfigurationError(f"study {name!r} has {len(study_directions)} objectives; import a single-objective study")
        directions[name] = study_directions[0]
        kept, steps_of = [], []
        for trial in trials:
            state = trial.state
            if state == "COMPLETE":
                steps = trial.intermediate
            elif state == "PRUNED" or (running and state == "RUNNING"):
                steps = trial.intermediate
                if not steps:
                    history.skip(f"{state.lower()} without an intermediate value")
                    continue
            else:
                history.skip(f"state {state}")
                continue
            kept.append(trial)
            steps_of.append(steps)
        with_steps = [bool(steps) for steps in steps_of]
        if any(with_steps):
            per_epoch, cut = epochs_from_steps(steps_of)
            if cut:
                history.notes.append(f"study {name!r}: {cut} trial(s) cut at their first missing or non-finite step")
        else:  # no trial reported intermediate values: one epoch each, the final value
            per_epoch = [[float(t.value)] if t.value is not None and math.isfinite(t.value) else [] for t in kept]
        for trial, values, has in zip(kept, per_epoch, with_steps):
            if any(with_steps) and not has:
                history.skip("complete without an intermediate value in a study whose other trials report them")
                continue
            if not values:
                history.skip("no finite value at the first step")
                continue
            for param, distribution in trial.distributions.items():
                history.distributions[param] = merge_distribution(
                    history.distributions.get(param), distribution_spec(distribution), param, f"study {name!r} trial {trial.number}"
                )
            history.records.append(TrialRecord(task=name, params=dict(trial.params), values=values, source=f"study {name!r} trial {trial.number}"))
    if len(set(directions.values())) > 1:
        mine = ", ".join(f"{n} {d}s" for n, d in directions.items())
        raise ConfigurationError(f"mixed directions ({mine}); a catalog has one orientation: import them separately")
    history.direction = next(iter(directions.values()))
    return history
