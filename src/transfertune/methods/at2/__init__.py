"""AT2: Amortized Auto-Tuning (Xiao, Xing, Neiswanger; seed 004)."""

from transfertune.methods.at2.method import AT2, max_trial_ucb

__all__ = ["AT2", "max_trial_ucb"]
