"""transfertune: transfer hyperparameter optimisation, five methods side by side.

``transfertune.Tuner`` (see :mod:`transfertune.live.tuner`) tunes a user's own training loop.
"""

__version__ = "0.1.0"
__all__ = ["Tuner"]


def __getattr__(name: str):
    # lazy: `import transfertune` stays light (the Kedro CLI, bench_throughput with torch alone)
    if name == "Tuner":
        from transfertune.live.tuner import Tuner

        return Tuner
    raise AttributeError(f"module 'transfertune' has no attribute {name!r}")
