"""Train stage library (no Kedro import): target models, trainer, trial store, Dask runner.

* :mod:`transfertune.training.models`: HTS CNN, Meta-HPO CNN, ResNet, MLP and their recipes;
* :mod:`transfertune.training.sampling`: random / Latin hypercube / explicit config lists;
* :mod:`transfertune.training.trainer`: one trial (per-epoch curves, seeds, AMP, divergence),
  an epoch at a time with its whole state as a checkpoint (``TrainingRun``);
* :mod:`transfertune.training.store`: atomic per-trial files and catalog consolidation, and the
  per-trial files (rows + checkpoint) of live tuning;
* :mod:`transfertune.training.objective`: ``TrainingObjective``, live training of the trials a
  tuning method asks for, continued from their checkpoints;
* :mod:`transfertune.training.runner`: skip stored trials, run the rest in-process or on Dask;
* :mod:`transfertune.training.tasks`: subset manifests -> split, standardised task arrays;
* :mod:`transfertune.training.build`: the whole stage as one call;
* :mod:`transfertune.training.bench_throughput`: trials per minute (``python -m``, torch only).

Nothing is imported here on purpose: ``python -m transfertune.training.bench_throughput`` must
run where only torch is installed.
"""
