"""Baselines on the tabular protocol; importing this package registers them all.

- ``random_search``, ``zero_shot`` (:mod:`.simple`): the floor baselines.
- ``gp_ucb``, ``gp_ei``, ``box_bo`` (:mod:`.gp`): single-task GP with Max-Trial; Box-BO.
- ``hyperband``, ``bohb`` (:mod:`.hyperband`): Hyperband on epochs; with Optuna TPE proposals.
- ``ablr``, ``ablr_hb`` (:mod:`.ablr`): shared neural features + per-task Bayesian linear regression.
- ``rgpe`` (:mod:`.rgpe`): ranking-weighted GP ensemble.
- ``transfer_screening``, ``per_task_screening``, ``portfolio_zero_shot`` (:mod:`.screening`):
  successive halving over transferred candidates (practitioner baselines).
- ``syne_zero_shot``, ``syne_cts`` (:mod:`.syne_tune_peers`): Syne Tune 0.16's transfer methods,
  optional (``pip install 'transfertune[peers]'``; without it these names fail in one line).
"""

from transfertune.methods.baselines.ablr import ABLR, ABLRHB
from transfertune.methods.baselines.gp import GPEI, GPUCB, BoxBO
from transfertune.methods.baselines.hyperband import BOHB, Hyperband
from transfertune.methods.baselines.rgpe import RGPE
from transfertune.methods.baselines.screening import PerTaskScreening, PortfolioZeroShot, TransferScreening
from transfertune.methods.baselines.simple import RandomSearch, ZeroShotTransfer
from transfertune.methods.baselines.syne_tune_peers import SyneCTS, SyneZeroShot

__all__ = [
    "ABLR", "ABLRHB", "BOHB", "BoxBO", "GPEI", "GPUCB", "Hyperband", "PerTaskScreening", "PortfolioZeroShot", "RGPE",
    "RandomSearch", "SyneCTS", "SyneZeroShot", "TransferScreening", "ZeroShotTransfer",
]
