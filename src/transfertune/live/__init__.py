"""Live tuning (no Kedro import): the :class:`~transfertune.live.tuner.Tuner` for a user's own
training loop, its crash-safe store (:mod:`transfertune.live.events`), and the loop that runs a
tuner against a :class:`~transfertune.training.objective.TrainingObjective` on Dask workers
(:mod:`transfertune.live.runner`)."""
