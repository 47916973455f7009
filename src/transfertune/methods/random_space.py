"""Random search over the continuous search space: the no-transfer floor of live tuning."""

from __future__ import annotations

from transfertune.core.trials import Trial
from transfertune.methods.protocol import SearchProblem, SpaceSearcher
from transfertune.methods.registry import register
from transfertune.errors import ConfigurationError


@register("random_space")
class RandomSpaceSearch(SpaceSearcher):
    """Configs drawn from the space's own distributions (ConfigSpace's sampler, log scales and
    conditions included), each trained for ``epochs`` epochs in one trial.

    Every ask starts a new config, so any number of trials can be in flight. Unlike the pool
    ``random_search``, configs are not limited to a recorded pool; on a catalog replay they
    snap to the nearest recorded config (``off_pool``).

    Args:
        epochs: epochs per trial (None: the maximal fidelity E).
    """

    def __init__(self, epochs: int | None = None) -> None:
        if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1):
            raise ConfigurationError(f"random_space epochs must be a positive integer or null, got {epochs!r}")
        self.epochs = epochs

    def fit(self, problem: SearchProblem) -> None:
        self.trial_epochs = min(self.epochs or problem.max_epochs, problem.max_epochs)

    def ask(self) -> Trial:
        return self.new_trial(self.sample_configs(1)[0], self.trial_epochs)
