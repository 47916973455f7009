"""Meta-HPO (seed 003): adversarial proxy subsets, BOHB on each, an hp-learner trained by MAML on
kernel-embedding meta features, hyperparameters predicted by L-BFGS.

No Kedro import here; ``transfertune.pipelines.metahpo`` wires these functions into a pipeline.
Modules: ``datasets`` (data and the drifting stream), ``execution`` (worker pool, deadline-aware
training), ``bohb`` (SMAC3's BOHB on one subset), ``meta_features`` (Eq. 6-8), ``hp_learner``
(Figure 3, Algorithm 1), ``prediction`` (L-BFGS), ``method`` (the whole method), ``baselines``
(Table 1's baselines), ``experiment`` (offline and out-of-sample studies), ``report``.
"""

from transfertune.methods.metahpo.baselines import GPBOSpaceSearch, RandomSpaceWarmStart, hyperband_subset_size, run_timed_search
from transfertune.methods.metahpo.hp_learner import HPLearner, MAMLConfig, Task, fit_maml
from transfertune.methods.metahpo.meta_features import conditional_embedding, mean_embedding, meta_feature
from transfertune.methods.metahpo.method import MetaHPOConfig, MetaHPOResult, run_metahpo
from transfertune.methods.metahpo.prediction import predict_config

__all__ = [
    "GPBOSpaceSearch",
    "HPLearner",
    "MAMLConfig",
    "MetaHPOConfig",
    "MetaHPOResult",
    "RandomSpaceWarmStart",
    "Task",
    "conditional_embedding",
    "fit_maml",
    "hyperband_subset_size",
    "mean_embedding",
    "meta_feature",
    "predict_config",
    "run_metahpo",
    "run_timed_search",
]
