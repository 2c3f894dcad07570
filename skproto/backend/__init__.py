"""The hot path (distances, class and Gram statistics, mixture E-steps, Sinkhorn), on numpy or torch.

Estimators call the functions here; which library runs them is chosen by
``skproto.set_config(backend=...)`` (``"numpy"`` by default, ``"torch"`` on
``device``). Both libraries take numpy arrays and return numpy arrays, compute in the
input's floating dtype (float32 stays float32) unless a kernel says it accumulates in
float64, and process ``X`` in row chunks of at most ``working_memory`` MiB of
temporaries. The iterative kernels (``mixture_em``, ``semi_supervised_kmeans``) are a
whole run each: on torch, X and the model move to the device once and stay there
through every iteration.

Layout, by kernel family: ``_dispatch`` (library choice, ``working_memory``, the
chunk planner); the public functions of each family with their input checks in
``_distances``, ``_statistics``, ``_mixture`` and ``_transport``; the kernels in
``_numpy/<family>.py`` and ``_torch/<family>.py``, which share nothing private.
"""

from ._checks import METRICS
from ._distances import (
    assign,
    kth_similarity,
    l2_normalize,
    mahalanobis_sq_distances,
    nearest_mahalanobis,
    similarity,
    topk,
    whitened_sq_distance,
)
from ._mixture import (
    COVARIANCE_TYPES,
    log_responsibilities,
    mixture_assign,
    mixture_em,
    mixture_em_statistics,
    mixture_m_step,
    semi_supervised_kmeans,
)
from ._statistics import (
    class_moments,
    group_sum,
    random_feature_gram,
    random_feature_scores,
    random_features,
)
from ._transport import balanced_assignment, balanced_prototypes, sinkhorn

__all__ = [
    "COVARIANCE_TYPES",
    "METRICS",
    "assign",
    "balanced_assignment",
    "balanced_prototypes",
    "class_moments",
    "group_sum",
    "kth_similarity",
    "l2_normalize",
    "log_responsibilities",
    "mahalanobis_sq_distances",
    "mixture_assign",
    "mixture_em",
    "mixture_em_statistics",
    "mixture_m_step",
    "nearest_mahalanobis",
    "random_feature_gram",
    "random_feature_scores",
    "random_features",
    "semi_supervised_kmeans",
    "similarity",
    "sinkhorn",
    "topk",
    "whitened_sq_distance",
]
