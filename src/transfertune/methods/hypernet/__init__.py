"""Hyper-training with hypernets (Lorraine & Duvenaud, "Stochastic Hyperparameter Optimization
with Hypernets"): a hypernet ``w_phi(lambda)`` outputs every weight of a logistic regression, and
the L2 hyperparameters (one global, one per class or one per weight, log-parametrised) are tuned
by gradient descent on the validation loss through it.

No Kedro import here; ``transfertune.pipelines.hypernet`` wires these functions into a pipeline.
"""

from transfertune.methods.hypernet.baselines import (
    BayesOptResult,
    TrainedModel,
    bayesian_optimisation_global_l2,
    fit_gp_on_losses,
    fit_hypernet_on_pairs,
    train_at_lambda,
    train_many,
)
from transfertune.methods.hypernet.data import DataSplit, DatasetNotFoundError, load_split
from transfertune.methods.hypernet.hypernet import HyperNet
from transfertune.methods.hypernet.hyperparams import SIZES, L2Hyperparameters
from transfertune.methods.hypernet.target import LogisticRegression
from transfertune.methods.hypernet.training import (
    GlobalConfig,
    HyperTrainResult,
    LocalConfig,
    descend_lambda,
    global_hypertraining,
    local_hypertraining,
    train_hypernet,
)

__all__ = [
    "BayesOptResult", "DataSplit", "DatasetNotFoundError", "GlobalConfig", "HyperNet", "HyperTrainResult",
    "L2Hyperparameters", "LocalConfig", "LogisticRegression", "SIZES", "TrainedModel",
    "bayesian_optimisation_global_l2", "descend_lambda", "fit_gp_on_losses", "fit_hypernet_on_pairs",
    "global_hypertraining", "load_split", "local_hypertraining", "train_at_lambda", "train_hypernet", "train_many",
]
