"""HTS: hyperparameter transfer through surrogates (seed 001, Ilievski & Feng).

Two RBF surrogates (pySOT, cubic kernel, linear tail) model the validation error on a source and
on a target dataset; a small network g, trained on Latin hypercube samples paired by their rank
under the two surrogates, maps the source's best configs to the target. No Kedro import here;
``transfertune.pipelines.hts`` runs the paper's Figure 1 on live training.
"""

from transfertune.methods.hts.algorithm import HTS, HTSResult, Observation, check_initial_size, check_same_space, hts
from transfertune.methods.hts.dycors import DycorsSearch
from transfertune.methods.hts.mapping import MappingFit, TransferNet, rank_pairs, train_mapping
from transfertune.methods.hts.searchers import HORDSearch, HTSSearch, SourceOrderSearch, source_observations
from transfertune.methods.hts.surrogate import cubic_rbf, fit_rbf, tail_columns

__all__ = [
    "HTS", "HTSResult", "Observation", "check_initial_size", "check_same_space", "hts", "DycorsSearch", "MappingFit",
    "TransferNet", "rank_pairs", "train_mapping", "HORDSearch", "HTSSearch", "SourceOrderSearch", "source_observations",
    "cubic_rbf", "fit_rbf", "tail_columns",
]
