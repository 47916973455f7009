"""Dataset sources and subset samplers (no Kedro import).

* :mod:`transfertune.data.sources`: ``load_source`` -> :class:`ArraySource` (arrays in memory);
* :mod:`transfertune.data.manifest`: :class:`SubsetManifest`, Parquet-friendly frames, ``materialise``;
* :mod:`transfertune.data.samplers`: class subsets, random and adversarial proxy subsets;
* :mod:`transfertune.data.adversarial`: the classifier, the C&W-style attack and the min-norm solver.
"""

from transfertune.data.manifest import SubsetManifest, manifests_from_frame, manifests_to_frame, materialise
from transfertune.data.sources import SOURCE_NAMES, ArraySource, load_source

__all__ = [
    "SOURCE_NAMES",
    "ArraySource",
    "SubsetManifest",
    "load_source",
    "manifests_from_frame",
    "manifests_to_frame",
    "materialise",
]
