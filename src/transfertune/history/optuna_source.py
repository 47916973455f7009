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

from collections.abc import Sequence
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


def read_optuna(storage: str | Path, studies: Sequence[str] | None = None, running: bool = False) -> History:
    """The trials of ``studies`` (default: every study of the storage) as a :class:`History`.

    One-line ConfigurationErrors: an unknown study, a multi-objective study, studies of mixed
    directions, a parameter whose type differs between trials.
    """
    import optuna
    from optuna.trial import TrialState

    store = open_storage(storage)
    available = [s.study_name for s in optuna.get_all_study_summaries(store, include_best_trial=False)]
    names = list(studies) if studies else available
    unknown = [s for s in names if s not in available]
    if unknown:
        raise ConfigurationError(f"study {unknown[0]!r} is not in {storage} (its studies: {', '.join(available) or 'none'})")
    if not names:
        raise ConfigurationError(f"{storage} holds no study")
    history = History(records=[], distributions={}, direction="", source=f"optuna storage {storage}")
    directions: dict[str, str] = {}
    for name in names:
        study = optuna.load_study(study_name=name, storage=store)
        if len(study.directions) != 1:
            raise ConfigurationError(f"study {name!r} has {len(study.directions)} objectives; import a single-objective study")
        directions[name] = "minimize" if study.direction == optuna.study.StudyDirection.MINIMIZE else "maximize"
        kept, steps_of = [], []
        for trial in study.get_trials(deepcopy=False):
            state = trial.state
            if state == TrialState.COMPLETE:
                steps = dict(trial.intermediate_values)
            elif state == TrialState.PRUNED or (running and state == TrialState.RUNNING):
                steps = dict(trial.intermediate_values)
                if not steps:
                    history.skip(f"{state.name.lower()} without an intermediate value")
                    continue
            else:
                history.skip(f"state {state.name}")
                continue
            kept.append((trial, steps))
            steps_of.append(steps)
        with_steps = [bool(steps) for steps in steps_of]
        if any(with_steps):
            per_epoch, cut = epochs_from_steps(steps_of)
            if cut:
                history.notes.append(f"study {name!r}: {cut} trial(s) cut at their first missing or non-finite step")
        else:  # no trial reported intermediate values: one epoch each, the final value
            per_epoch = [[float(t.value)] for t, _ in kept]
        for (trial, steps), values, has in zip(kept, per_epoch, with_steps):
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
