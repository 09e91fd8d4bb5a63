"""Sample-quality metrics: feature extraction (cached as ``.npz``) kept apart from the metric
functions, which are pure functions of feature arrays.

- :mod:`.frechet`: Fréchet distance between Gaussian fits (FID when the features are clean-fid's
  Inception-v3, ``fd_<space>`` in any other space);
- :mod:`.precision_recall`: improved precision and recall (Kynkäänniemi et al. 2019);
- :mod:`.feature_net`: the small digit classifier whose penultimate layer is the default profile's
  feature space;
- :mod:`.inception`: clean-fid's clean-resize + Inception-v3 features from local weights (paper
  profile); clean-fid itself is imported lazily;
- :mod:`.features_io`: atomic ``.npz`` feature caches, with the sha256 of the extractor weights.
"""

from agm.math.metrics.feature_net import (
    FeatureNet,
    FeatureNetResult,
    extract_features,
    load_feature_net,
    save_feature_net,
    train_feature_net,
)
from agm.math.metrics.features_io import (
    Features,
    check_extractor,
    load_features,
    save_features,
)
from agm.math.metrics.frechet import (
    GaussianStats,
    frechet_distance,
    frechet_distance_from_stats,
    gaussian_stats,
)
from agm.math.metrics.inception import (
    INCEPTION_WEIGHTS_FILENAME,
    MissingWeightsError,
    check_inception_weights,
    cleanfid_features,
    inception_features,
    load_inception,
    weights_digest,
)
from agm.math.metrics.precision_recall import PrecisionRecall, precision_recall

__all__ = [
    "INCEPTION_WEIGHTS_FILENAME",
    "FeatureNet",
    "FeatureNetResult",
    "Features",
    "GaussianStats",
    "MissingWeightsError",
    "PrecisionRecall",
    "check_extractor",
    "check_inception_weights",
    "cleanfid_features",
    "extract_features",
    "frechet_distance",
    "frechet_distance_from_stats",
    "gaussian_stats",
    "inception_features",
    "load_feature_net",
    "load_features",
    "load_inception",
    "precision_recall",
    "save_feature_net",
    "save_features",
    "train_feature_net",
    "weights_digest",
]
