"""Seed 000: Siamese convolutional bi-LSTM meta-features and warm-started Bayesian optimisation.

* :mod:`transfertune.data.families` (moved there from this package): datasets that differ (class
  subsets of several sizes, label noise, input corruptions);
* :mod:`~transfertune.methods.siamese.distances`: target distances (L1 between mappings), Spearman;
* :mod:`~transfertune.methods.siamese.model`: the wing (two conv + two FC layers, bi-LSTM), the loss;
* :mod:`~transfertune.methods.siamese.training`: Algorithm 1 and the learned meta-features;
* :mod:`~transfertune.methods.siamese.handcrafted`: the hand-crafted meta-feature baseline;
* :mod:`~transfertune.methods.siamese.bo`: Algorithm 2 as the registered searcher ``siamese_bo``
  (custom GPyTorch prior mean inside a BoTorch GP, EI and GP-UCB);
* :mod:`~transfertune.methods.siamese.experiment`: the whole experiment as plain functions.
"""

from transfertune.methods.siamese.bo import MappingPriorMean, RBFInterpolant, SiameseBO

__all__ = ["MappingPriorMean", "RBFInterpolant", "SiameseBO"]
