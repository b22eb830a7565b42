"""Streaming metrics for generative models: FID, KID, IS, precision/recall.

Images are turned into features batch by batch by a *feature extractor* and
folded into a `FeatureStats`, which keeps float64 moments (for FID) and,
optionally, a bounded random subset of the features (for KID and
precision/recall). Nothing keeps all images, so 50k samples cost no more
memory than one batch plus the subset.

A feature extractor (`FeatureExtractor`) is any callable mapping float images
in [-1, 1] `[B, H, W, C]` to one of:

* features `[B, D]` (array or tensor);
* a mapping `{"features": [B, D], "probabilities": [B, K]}`, the second key
  optional;
* a pair `(features, probabilities)`.

Class probabilities, when given, enable the Inception Score, so a classifier
(e.g. an MNIST evaluator) supplies both through
`keras_model_extractor(classifier, layer="embedding", probabilities=True)`.

Numbers are comparable only between runs using the same extractor, the same
preprocessing and the same sample counts: FID in particular is biased by the
sample count and depends on the resize method. `inception_v3_extractor` uses
the Keras InceptionV3 ImageNet weights, not the 2015 TF graph used by the FID
reference code (TTUR, pytorch-fid), so its FIDs are not comparable to
published ones.

Example:

```python
import kgan
from kgan import metrics

gan = kgan.zoo.load("dcgan_mnist")
real = kgan.data.load("mnist_5k", batch_size=256, shuffle=False)  # same 4,864 images each run
extractor = metrics.inception_v3_extractor()
scores = metrics.evaluate(real, gan, extractor, num=4096)
print(scores["fid"], scores["kid_mean"], scores["precision"], scores["recall"])
```
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import keras
import numpy as np
import scipy.linalg
import scipy.special
import tensorflow as tf

from kgan import performance
from kgan._checks import positive_int
from kgan.data import without_teardown_stall
from kgan.images import check_value_range

__all__ = [
    "FeatureExtractor",
    "FeatureStats",
    "KerasFeatureExtractor",
    "INCEPTION_WEIGHTS_FILE",
    "download_inception_weights",
    "evaluate",
    "feature_dim",
    "features_from",
    "fid_from_stats",
    "frechet_distance",
    "inception_preprocess",
    "inception_score",
    "inception_v3_extractor",
    "inception_weights_path",
    "keras_model_extractor",
    "kernel_distance",
    "precision_recall",
    "sampled_blocks",
    "SAMPLE_BLOCK",
]

#: File name of the Keras InceptionV3 ImageNet weights without the top.
INCEPTION_WEIGHTS_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
_INCEPTION_WEIGHTS_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/"
    + INCEPTION_WEIGHTS_FILE
)
_INCEPTION_WEIGHTS_MD5 = "bcbd6486424b2319ff4ef7d526e38f63"
_INCEPTION_SIZE = 299

#: Images per seeded block when a model is sampled for evaluation: block i is
#: `model.generate(SAMPLE_BLOCK, seed=seed + i)`. A fixed size, so that the
#: evaluated images never depend on the batch size; 250 is the batch every
#: card figure was measured at.
SAMPLE_BLOCK = 250


# ====================================================================== stats
class FeatureStats:
    """Streaming accumulator of feature moments and (optionally) features.

    Moments are accumulated in float64 as a running sum and a sum of outer
    products, both of the features minus the first batch's mean: the shift
    avoids the catastrophic cancellation of `E[xx^T] - mu mu^T` when features
    have a large mean relative to their spread, at no extra cost.

    With `keep_features=True` the features themselves are kept (as float32,
    half the memory of float64) up to `max_features` rows; past that a uniform
    random subset of everything seen is kept by reservoir sampling, so memory
    stays bounded by `max_features * D * 4` bytes plus the `D x D` moments.

    Class probabilities passed to `update` are all kept (`N * K * 4` bytes),
    since the Inception Score splits the full set.

    Args:
        keep_features: keep the features (needed for KID and precision/recall).
        max_features: cap on kept features; `None` keeps all of them.
        seed: seed of the reservoir sampling.

    Example:

    ```python
    stats = FeatureStats(keep_features=True, max_features=10_000)
    for batch in batches:
        output = extractor(batch)   # kgan's extractors return a dict
        stats.update(output["features"], output.get("probabilities"))
    mu, sigma = stats.mean, stats.covariance
    ```
    """

    def __init__(self, keep_features=False, max_features=10_000, seed=0):
        if max_features is not None:
            if isinstance(max_features, bool) or not isinstance(max_features, (int, np.integer)):
                raise TypeError(f"max_features must be an int or None, got {max_features!r}.")
            if max_features < 1:
                raise ValueError(f"max_features must be at least 1, got {max_features}.")
            max_features = int(max_features)
        self.keep_features = bool(keep_features)
        self.max_features = max_features
        self.seed = seed
        #: `(H, W, C)` of the images the features came from, set by `features_from`.
        self.image_shape = None
        self._rng = np.random.default_rng(seed)
        self._count = 0
        self._dim = None
        self._shift = None
        self._sum = None
        self._outer = None
        self._chunks = []  # kept features while the reservoir is not yet full
        self._reservoir = None
        self._probabilities = []

    # ------------------------------------------------------------------ update
    def update(self, features, probabilities=None):
        """Add a batch of features `[B, D]` (and optionally probabilities `[B, K]`)."""
        if isinstance(features, Mapping):
            raise TypeError(
                "FeatureStats.update takes the features array, got a dict with keys "
                f"{sorted(features)}: kgan's extractors return a dict, so pass "
                "update(output['features'], output.get('probabilities'))."
            )
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2:
            raise ValueError(
                f"features must have shape [batch, dim], got {features.shape}. "
                "Flatten or pool feature maps first."
            )
        if self._dim is not None and features.shape[1] != self._dim:
            raise ValueError(
                f"Feature dimension changed from {self._dim} to {features.shape[1]}; "
                "one FeatureStats takes features of one extractor."
            )
        if probabilities is not None:
            probabilities = np.asarray(probabilities, dtype=np.float32)
            if probabilities.ndim != 2 or len(probabilities) != len(features):
                raise ValueError(
                    f"probabilities must have shape [{len(features)}, classes] to "
                    f"match the features, got {probabilities.shape}."
                )
            if self._count and not self._probabilities:
                raise ValueError("probabilities given for some batches but not the first.")
        elif self._probabilities:
            raise ValueError("probabilities given for earlier batches but not this one.")
        if len(features) == 0:
            return
        if not np.all(np.isfinite(features)):
            raise ValueError("features contain NaN or Inf values.")
        if self._dim is None:
            self._dim = features.shape[1]
            self._shift = features.mean(axis=0)
            self._sum = np.zeros(self._dim)
            self._outer = np.zeros((self._dim, self._dim))
        centered = features - self._shift
        self._sum += centered.sum(axis=0)
        self._outer += centered.T @ centered
        if self.keep_features:
            self._keep(features.astype(np.float32))
        if probabilities is not None:
            self._probabilities.append(probabilities)
        self._count += len(features)

    def _keep(self, batch):
        seen = self._count
        if self.max_features is None:
            self._chunks.append(batch)
            return
        if self._reservoir is None:
            room = self.max_features - seen
            self._chunks.append(batch[:room])
            if seen + min(room, len(batch)) < self.max_features:
                return
            self._reservoir = np.concatenate(self._chunks, axis=0)
            self._chunks = []
            batch = batch[room:]
            seen += room
        if not len(batch):
            return
        # Algorithm R, vectorized: the t-th item (0-based) replaces a uniform
        # slot with probability max_features / (t + 1).
        t = seen + np.arange(len(batch))
        slots = self._rng.integers(0, t + 1)
        chosen = np.flatnonzero(slots < self.max_features)
        if not len(chosen):
            return
        # When two items of the batch draw one slot, the later one wins, as in
        # the sequential algorithm (numpy does not promise an order for
        # duplicate fancy-index assignments).
        last = len(chosen) - 1 - np.unique(slots[chosen][::-1], return_index=True)[1]
        chosen = chosen[last]
        self._reservoir[slots[chosen]] = batch[chosen]

    # ------------------------------------------------------------------ results
    @property
    def count(self):
        """Number of feature rows seen."""
        return self._count

    @property
    def dim(self):
        """Feature dimension, or `None` before the first update."""
        return self._dim

    @property
    def mean(self):
        """Mean feature vector `[D]` (float64)."""
        self._require(1, "a mean")
        return self._shift + self._sum / self._count

    @property
    def covariance(self):
        """Unbiased (ddof=1) feature covariance `[D, D]` (float64)."""
        self._require(2, "a covariance")
        n = self._count
        mean_shifted = self._sum / n
        cov = (self._outer - n * np.outer(mean_shifted, mean_shifted)) / (n - 1)
        # Rounding leaves the two triangles unequal by ~1e-16; sqrtm and the
        # closed forms assume a symmetric matrix.
        return (cov + cov.T) / 2

    @property
    def features(self):
        """Kept features `[min(count, max_features), D]` (float32)."""
        if not self.keep_features:
            raise ValueError(
                "This FeatureStats keeps only moments; create it with "
                "keep_features=True (features_from(..., keep_features=True)) "
                "for KID and precision/recall."
            )
        self._require(1, "features")
        if self._reservoir is not None:
            return self._reservoir.copy()
        return np.concatenate(self._chunks, axis=0)

    @property
    def probabilities(self):
        """All class probabilities `[count, K]`, or `None` if none were given."""
        if not self._probabilities:
            return None
        return np.concatenate(self._probabilities, axis=0)

    def _require(self, minimum, what):
        if self._count < minimum:
            raise ValueError(
                f"Need at least {minimum} feature rows for {what}, got {self._count}."
            )

    def __repr__(self):
        return (
            f"FeatureStats(count={self._count}, dim={self._dim}, "
            f"keep_features={self.keep_features}, max_features={self.max_features})"
        )


# ====================================================================== metrics
def frechet_distance(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """Fréchet distance between Gaussians `N(mu1, sigma1)` and `N(mu2, sigma2)`.

    `||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 sqrtm(sigma1 sigma2))`, computed
    like the FID reference code (TTUR, pytorch-fid): if `sqrtm` of the product
    is not finite (singular product), `eps * I` is added to both covariances
    inside the square root (shifting the result by about `-2 * eps * D`);
    imaginary parts from rounding are dropped, and an error is raised if the
    diagonal's imaginary part exceeds 1e-3.

    Args:
        mu1, mu2: mean vectors `[D]`.
        sigma1, sigma2: covariance matrices `[D, D]`.
        eps: diagonal offset used only when the product is singular.

    Returns:
        The distance as a python float.

    Example:

    ```python
    fid = frechet_distance(real.mean, real.covariance, fake.mean, fake.covariance)
    ```
    """
    mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    if mu1.ndim != 1 or mu1.size == 0:
        raise ValueError(f"mu1 must be a non-empty vector, got shape {mu1.shape}.")
    dim = mu1.shape[0]
    for name, value, shape in (
        ("mu2", mu2, (dim,)),
        ("sigma1", sigma1, (dim, dim)),
        ("sigma2", sigma2, (dim, dim)),
    ):
        if value.shape != shape:
            raise ValueError(
                f"{name} has shape {value.shape}, expected {shape} for "
                f"{dim}-dimensional features (mismatched feature dimensions?)."
            )
        if not np.all(np.isfinite(value)):
            raise ValueError(f"{name} contains NaN or Inf values.")
    diff = mu1 - mu2
    covmean = _sqrtm(sigma1 @ sigma2)
    if not np.all(np.isfinite(covmean)):
        offset = np.eye(dim) * eps
        covmean = _sqrtm((sigma1 + offset) @ (sigma2 + offset))
        if not np.all(np.isfinite(covmean)):
            raise ValueError(
                "sqrtm(sigma1 @ sigma2) is not finite even after adding "
                f"{eps} * I to both covariances; check the covariances are "
                "positive semi-definite."
            )
    if np.iscomplexobj(covmean):
        imaginary = np.abs(np.diagonal(covmean).imag).max()
        if imaginary > 1e-3:
            raise ValueError(
                f"sqrtm(sigma1 @ sigma2) has a large imaginary component "
                f"({imaginary:.3g} on the diagonal): the covariances are not "
                "positive semi-definite or are badly conditioned (too few "
                "samples for the feature dimension?)."
            )
        covmean = covmean.real
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean)
    return float(value)


def _sqrtm(matrix):
    with warnings.catch_warnings():
        # A singular product is handled by the caller (eps retry).
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        return scipy.linalg.sqrtm(matrix)


def fid_from_stats(stats1, stats2, eps=1e-6):
    """FID between two `FeatureStats`, after checking they are comparable.

    Raises `ValueError` if the sets come from images of different shapes,
    have different feature dimensions, or have too few samples: with
    `count <= D` the covariance is singular and the FID meaningless (for
    Inception's 2048 features use at least 2049 samples; 10k-50k is usual).

    Example:

    ```python
    fid = fid_from_stats(features_from(real, ex), features_from(gan, ex, num=10_000))
    ```
    """
    _check_compatible(stats1, stats2)
    for name, stats in (("first", stats1), ("second", stats2)):
        if stats.count <= stats.dim:
            raise ValueError(
                f"FID needs more samples than feature dimensions: the {name} set "
                f"has {stats.count} samples of {stats.dim}-dimensional features, "
                f"so its covariance is singular. Use at least {stats.dim + 1} "
                "samples (many more for a stable estimate)."
            )
    return frechet_distance(
        stats1.mean, stats1.covariance, stats2.mean, stats2.covariance, eps=eps
    )


def kernel_distance(features_a, features_b, num_subsets=100, subset_size=1000, seed=0):
    """Kernel Inception Distance (Bińkowski et al. 2018).

    The unbiased estimate of MMD^2 with the cubic polynomial kernel
    `k(x, y) = (x . y / d + 1)^3`, averaged over `num_subsets` random subsets
    of `subset_size` samples drawn without replacement from each set
    (`subset_size` is clipped to the smaller set). Unlike FID it is unbiased,
    so values from different sample counts are comparable; it can be
    slightly negative when the sets match.

    Args:
        features_a, features_b: `[N, D]` and `[M, D]` features.
        num_subsets: number of subsets averaged.
        subset_size: samples per subset and set.
        seed: seed of the subset draws.

    Returns:
        `(mean, std)` over subsets, as python floats.

    Example:

    ```python
    kid, kid_std = kernel_distance(real.features, fake.features)
    ```
    """
    a = _feature_matrix(features_a, "features_a")
    b = _feature_matrix(features_b, "features_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"Feature dimensions differ: features_a has {a.shape[1]}, "
            f"features_b has {b.shape[1]}."
        )
    num_subsets = positive_int(num_subsets, "num_subsets")
    m = min(len(a), len(b), positive_int(subset_size, "subset_size"))
    if m < 2:
        raise ValueError(
            f"KID needs at least 2 samples per set, got {len(a)} and {len(b)}."
        )
    dim = a.shape[1]
    rng = np.random.default_rng(seed)
    values = np.empty(num_subsets)
    for i in range(num_subsets):
        x = a[rng.choice(len(a), m, replace=False)].astype(np.float64)
        y = b[rng.choice(len(b), m, replace=False)].astype(np.float64)
        kxx = (x @ x.T / dim + 1.0) ** 3
        kyy = (y @ y.T / dim + 1.0) ** 3
        kxy = (x @ y.T / dim + 1.0) ** 3
        within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        values[i] = within - 2.0 * kxy.mean()
    return float(values.mean()), float(values.std())


def inception_score(probabilities, num_splits=10):
    """Inception Score (Salimans et al. 2016): `exp(E_x KL(p(y|x) || p(y)))`.

    Computed separately on `num_splits` consecutive splits, rows
    `[k * N // num_splits, (k + 1) * N // num_splits)` as in the reference
    code (openai/improved-gan), so every row counts and sizes differ by at
    most one, with `p(y)` the split's mean prediction. It ranges from 1 (every
    prediction equal) to the number of classes (confident and balanced).

    Args:
        probabilities: `[N, K]` class probabilities, rows summing to 1.
        num_splits: number of splits.

    Returns:
        `(mean, std)` over splits, as python floats.

    Example:

    ```python
    is_mean, is_std = inception_score(stats.probabilities)
    ```
    """
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] == 0 or p.shape[1] == 0:
        raise ValueError(f"probabilities must have shape [N, classes], got {p.shape}.")
    if not np.all(np.isfinite(p)) or p.min() < 0:
        raise ValueError(
            "probabilities must be non-negative and finite (softmax outputs, "
            "not logits)."
        )
    sums = p.sum(axis=1)
    worst = int(np.argmax(np.abs(sums - 1.0)))
    if abs(sums[worst] - 1.0) > 1e-3:
        raise ValueError(
            f"Each row of probabilities must sum to 1 (within 1e-3); row {worst} "
            f"sums to {sums[worst]:.6g}. Apply a softmax to logits first."
        )
    num_splits = positive_int(num_splits, "num_splits")
    if len(p) < num_splits:
        raise ValueError(
            f"Need at least num_splits={num_splits} samples, got {len(p)}."
        )
    scores = []
    for k in range(num_splits):
        part = p[k * len(p) // num_splits : (k + 1) * len(p) // num_splits]
        marginal = part.mean(axis=0, keepdims=True)
        kl = scipy.special.rel_entr(part, marginal).sum(axis=1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))


def precision_recall(real_features, fake_features, k=3, batch_size=512):
    """Improved precision and recall (Kynkäänniemi et al. 2019).

    Each set's manifold is the union of balls around its samples, with radius
    the distance to the sample's k-th nearest neighbour in the same set
    (itself excluded). Precision is the share of fake samples inside the real
    manifold; recall the share of real samples inside the fake manifold.

    Distances are computed in row blocks of `batch_size`, so memory is
    `O(batch_size * N)`, never `N x M`. Distances expand as
    `|x|^2 + |y|^2 - 2 x.y`, which cancels catastrophically when the features
    lie far from the origin compared with their spread, so both sets are
    first centred on the real features' mean (distances are unchanged).
    Uncentred, features offset by 1000 gave precision 0.387 instead of 0.313,
    and fakes copying real samples a recall of 0.045 instead of 0. The
    arithmetic is float32 for float32 inputs (kept features are float32;
    float64 took twice as long) and float64 otherwise.

    Args:
        real_features: `[N, D]` features of real samples.
        fake_features: `[M, D]` features of generated samples.
        k: neighbourhood size (the paper uses 3).
        batch_size: rows per distance block.

    Returns:
        `(precision, recall)` as python floats in [0, 1].

    Example:

    ```python
    precision, recall = precision_recall(real.features, fake.features, k=3)
    ```
    """
    real = _feature_matrix(real_features, "real_features")
    fake = _feature_matrix(fake_features, "fake_features")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"Feature dimensions differ: real has {real.shape[1]}, fake has "
            f"{fake.shape[1]}."
        )
    k = positive_int(k, "k")
    batch_size = positive_int(batch_size, "batch_size")
    for name, x in (("real", real), ("fake", fake)):
        if len(x) <= k:
            raise ValueError(
                f"precision/recall with k={k} needs at least {k + 1} samples per "
                f"set; the {name} set has {len(x)}."
            )
    dtype = np.result_type(real.dtype, fake.dtype, np.float32)
    centre = real.mean(axis=0, dtype=np.float64).astype(dtype)
    real, fake = real.astype(dtype) - centre, fake.astype(dtype) - centre
    real_norms = np.einsum("ij,ij->i", real, real)
    fake_norms = np.einsum("ij,ij->i", fake, fake)
    real_radii = _knn_radii(real, real_norms, k, batch_size)
    fake_radii = _knn_radii(fake, fake_norms, k, batch_size)
    # One pass over the real x fake distances serves both directions.
    fake_covered = np.zeros(len(fake), dtype=bool)
    real_covered = np.zeros(len(real), dtype=bool)
    for start in range(0, len(real), batch_size):
        stop = start + batch_size
        d2 = _squared_distances(real[start:stop], real_norms[start:stop], fake, fake_norms)
        fake_covered |= np.any(d2 <= real_radii[start:stop, None], axis=0)
        real_covered[start:stop] = np.any(d2 <= fake_radii[None, :], axis=1)
    return float(fake_covered.mean()), float(real_covered.mean())


def _squared_distances(rows, row_norms, cols, col_norms):
    d2 = row_norms[:, None] + col_norms[None, :] - 2.0 * (rows @ cols.T)
    return np.maximum(d2, 0.0, out=d2)


def _knn_radii(x, norms, k, batch_size):
    """Squared distance of each row to its k-th nearest other row."""
    radii = np.empty(len(x), dtype=x.dtype)
    for start in range(0, len(x), batch_size):
        stop = min(start + batch_size, len(x))
        d2 = _squared_distances(x[start:stop], norms[start:stop], x, norms)
        d2[np.arange(stop - start), np.arange(start, stop)] = np.inf
        radii[start:stop] = np.partition(d2, k - 1, axis=1)[:, k - 1]
    return radii


# ====================================================================== extractors
@runtime_checkable
class FeatureExtractor(Protocol):
    """Maps float images in [-1, 1] `[B, H, W, C]` to features.

    The result is features `[B, D]`, a mapping with `"features"` and
    optionally `"probabilities"` (`[B, K]`, rows summing to 1), or a pair
    `(features, probabilities)`. Any callable qualifies, including a plain
    `keras.Model` (wrapped by `keras_model_extractor` automatically).

    Example:

    ```python
    def small_pixels(images):  # [B, 28, 28, 1] -> [B, 49]: a (crude) FeatureExtractor
        return tf.reshape(tf.image.resize(images, (7, 7)), (tf.shape(images)[0], -1))
    real = kgan.data.load("mnist_5k", batch_size=250, shuffle=False)
    gan = kgan.zoo.load("dcgan_mnist")
    kgan.metrics.evaluate(real, gan, small_pixels, metrics=("fid",), num=500)  # {'fid': ...}
    ```
    """

    def __call__(self, images): ...


class KerasFeatureExtractor:
    """A Keras model as a `FeatureExtractor`, run in a compiled `tf.function`.

    Built by `keras_model_extractor` and `inception_v3_extractor`; call it on
    an image batch to get `{"features": [B, D], "probabilities": [B, K]}`
    (float32 numpy; `"probabilities"` only if configured).

    Args:
        model: a Keras model returning features, or a dict with `"features"`
            (and optionally `"probabilities"`).
        preprocess: optional function applied to the float32 image tensor
            before the model (e.g. `inception_preprocess`).
        from_logits: apply a softmax to the model's `"probabilities"` output.

    Example:

    ```python
    extractor = KerasFeatureExtractor(model)
    out = extractor(images)  # {"features": ...}
    ```
    """

    def __init__(self, model, preprocess=None, from_logits=False):
        self.model = model
        self.preprocess = preprocess
        self.from_logits = bool(from_logits)
        self.input_shape = None
        if preprocess is None and getattr(model, "inputs", None):
            self.input_shape = tuple(model.inputs[0].shape[1:])
        self._fn = tf.function(self._forward, reduce_retracing=True)

    def _forward(self, images):
        x = images if self.preprocess is None else self.preprocess(images)
        out = self.model(x, training=False)
        if isinstance(out, Mapping):
            features = out["features"]
            probabilities = out.get("probabilities")
        else:
            features, probabilities = out, None
        features = tf.cast(features, tf.float32)
        # Intermediate layers may give feature maps; their flattened values
        # are the features.
        features = tf.reshape(features, [tf.shape(features)[0], -1])
        result = {"features": features}
        if probabilities is not None:
            probabilities = tf.cast(probabilities, tf.float32)
            if self.from_logits:
                probabilities = tf.nn.softmax(probabilities, axis=-1)
            result["probabilities"] = probabilities
        return result

    def __call__(self, images):
        images = tf.convert_to_tensor(images, dtype=tf.float32)
        if self.input_shape is not None:
            got = tuple(images.shape[1:])
            if len(got) != len(self.input_shape) or any(
                e is not None and g != e for g, e in zip(got, self.input_shape)
            ):
                raise ValueError(
                    f"The extractor model takes images of shape {self.input_shape}, "
                    f"got {got}. Use an extractor built for this image shape "
                    "or resize the images."
                )
        return {key: value.numpy() for key, value in self._fn(images).items()}


def keras_model_extractor(model, layer=None, probabilities=False, from_logits=False):
    """Wrap a Keras model as a `FeatureExtractor`.

    Args:
        model: a Keras model taking images in [-1, 1] of the shape being
            evaluated (e.g. the MNIST evaluator classifier).
        layer: take features from this layer's output instead of the model's
            (name, index or `keras.layers.Layer`); feature maps are flattened.
            Requires a functional or Sequential model.
        probabilities: also return the model's output as class probabilities
            (for the Inception Score).
        from_logits: the model outputs logits; a softmax gives the
            probabilities.

    Returns:
        A `KerasFeatureExtractor`.

    Example:

    ```python
    extractor = keras_model_extractor(classifier, layer="embedding", probabilities=True)
    stats = features_from(gan, extractor, num=10_000)
    ```
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a keras.Model, got {type(model).__name__}.")
    if layer is None and not probabilities:
        return KerasFeatureExtractor(model)
    if not getattr(model, "inputs", None):
        raise ValueError(
            "layer= and probabilities= need a functional or Sequential model "
            "with a known input (build it with keras.Input)."
        )
    if len(model.outputs) != 1 and probabilities:
        raise ValueError(
            f"probabilities=True needs a single-output model, this one has "
            f"{len(model.outputs)} outputs."
        )
    if layer is None:
        features = model.outputs[0]
    else:
        if isinstance(layer, keras.layers.Layer):
            chosen = layer
        elif isinstance(layer, (int, np.integer)) and not isinstance(layer, bool):
            chosen = model.get_layer(index=int(layer))
        else:
            chosen = model.get_layer(name=layer)
        features = chosen.output
    outputs = {"features": features}
    if probabilities:
        outputs["probabilities"] = model.outputs[0]
    wrapped = keras.Model(model.inputs, outputs, name=f"{model.name}_features")
    return KerasFeatureExtractor(wrapped, from_logits=from_logits)


def inception_preprocess(images):
    """Images in [-1, 1] `[B, H, W, 1 or 3]` -> InceptionV3 input `[B, 299, 299, 3]`.

    Grayscale is repeated to three channels. Images are resized with
    `tf.image.resize(method="bilinear", antialias=False)` (half-pixel centers,
    like `torch.nn.functional.interpolate(mode="bilinear",
    align_corners=False)`). FID values depend on this choice (Parmar et al.
    2022, "clean-fid"); when upsampling small images, as here, antialiasing
    would make no difference. Values stay in [-1, 1], the range Keras'
    InceptionV3 was trained on (`inception_v3.preprocess_input` maps [0, 255]
    to it).

    Example:

    ```python
    x = inception_preprocess(images)  # [B, 299, 299, 3]
    ```
    """
    x = tf.convert_to_tensor(images, dtype=tf.float32)
    channels = x.shape[-1]
    if channels == 1:
        x = tf.repeat(x, 3, axis=-1)
    elif channels != 3:
        raise ValueError(
            f"InceptionV3 takes grayscale or RGB images, got {channels} channels."
        )
    return tf.image.resize(
        x, (_INCEPTION_SIZE, _INCEPTION_SIZE), method="bilinear", antialias=False
    )


def inception_weights_path():
    """Where the InceptionV3 weights are looked up: the Keras cache.

    `$KERAS_HOME/models/<INCEPTION_WEIGHTS_FILE>`, with `KERAS_HOME` read now
    (Keras reads it once at import) and defaulting to `~/.keras`.

    Example:

    ```python
    import os
    path = kgan.metrics.inception_weights_path()  # '~/.keras/models/inception_v3_..._notop.h5'
    if not os.path.exists(path):  # inception_v3_extractor() downloads it there
        print(f"put {kgan.metrics.INCEPTION_WEIGHTS_FILE} at {path}")
    ```
    """
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, "models", INCEPTION_WEIGHTS_FILE)


#: What the InceptionV3 weights file is, for messages about a missing one.
_INCEPTION_WEIGHTS_NEEDED = (
    f"Needed: {INCEPTION_WEIGHTS_FILE} (Keras InceptionV3 ImageNet weights without the "
    f"top, md5 {_INCEPTION_WEIGHTS_MD5}, from {_INCEPTION_WEIGHTS_URL})."
)


def download_inception_weights(timeout=None):
    """Download the InceptionV3 weights into the Keras cache; their path.

    Fetched from where `keras.applications.InceptionV3` fetches them, checked
    against Keras's md5, and renamed into `inception_weights_path()` only
    when whole and correct: an interrupted or wrong download leaves nothing.
    A file already there is kept.

    Args:
        timeout: seconds to wait for the server's next bytes before failing
            (default `kgan.zoo.DOWNLOAD_TIMEOUT`, 60).

    Raises:
        FileNotFoundError: the download failed (no network, a stalled or
            wrong server): the message says where to put the file by hand.

    Example:

    ```python
    path = kgan.metrics.download_inception_weights()  # once, on a machine with network
    ```
    """
    from kgan import zoo
    from kgan.atomic import write_file

    path = inception_weights_path()
    if os.path.isfile(path):
        return path

    def fetch(temporary):
        md5, _, _ = zoo._download(
            _INCEPTION_WEIGHTS_URL, temporary, timeout, what="the InceptionV3 weights",
            timeout_setting="kgan.metrics.download_inception_weights(timeout=...)", hash_name="md5")
        if md5 != _INCEPTION_WEIGHTS_MD5:
            raise zoo.IntegrityError(
                f"the file downloaded has md5 {md5}, not Keras's {_INCEPTION_WEIGHTS_MD5}; it "
                "was deleted."
            )

    try:
        write_file(path, fetch)
    except OSError as err:  # not the network: the cache folder cannot be written
        setting = (f"KERAS_HOME ({os.environ['KERAS_HOME']})" if os.environ.get("KERAS_HOME")
                   else "~/.keras, as KERAS_HOME is not set")
        raise FileNotFoundError(
            f"InceptionV3 weights not found in the Keras cache, and they cannot be downloaded "
            f"there: {err}\nThe cache folder is {setting}: set KERAS_HOME to a folder you can "
            "write to, or pass the weights file's path (weights_path=, or --inception-weights "
            "on the command line)."
        ) from err
    except zoo.ZooError as err:  # the network's or the server's
        raise FileNotFoundError(
            f"InceptionV3 weights not found in the Keras cache, and downloading them "
            f"failed: {err}\n{_INCEPTION_WEIGHTS_NEEDED} Without network, fetch it on a "
            f"machine with network (or run keras.applications.InceptionV3("
            f"include_top=False) there) and copy the file to {path}, or pass its path "
            "(weights_path=, or --inception-weights on the command line)."
        ) from err
    return path


def inception_v3_extractor(weights_path=None):
    """The usual FID/KID feature extractor: InceptionV3's 2048-d pool features.

    Builds `keras.applications.InceptionV3(include_top=False, pooling="avg",
    weights=None)` and loads the ImageNet weights from a local file. Without
    `weights_path`, a missing file is downloaded into the Keras cache first,
    from the URL `keras.applications` uses (md5-checked; written whole or not
    at all; `download_inception_weights`). Images go through `inception_preprocess` (grayscale to
    RGB, bilinear resize to 299x299 without antialiasing, range [-1, 1]).

    These are Keras' ImageNet weights, not the TF 2015 Inception graph of the
    FID reference code, so values are comparable between kgan runs but not
    with published FIDs. The model has no classifier head, so it gives no
    probabilities (no Inception Score).

    Args:
        weights_path: the notop `.h5` weights file; default
            `inception_weights_path()` (the Keras cache).

    Returns:
        A `KerasFeatureExtractor` giving `{"features": [B, 2048]}`.

    Raises:
        FileNotFoundError: the weights file is missing and could not be
            downloaded; the message says which file is needed and where to
            put it.

    Example:

    ```python
    extractor = inception_v3_extractor()
    stats = features_from(real_dataset, extractor, num=10_000)
    ```
    """
    if weights_path is None:
        path = inception_weights_path()
        if not os.path.isfile(path):
            download_inception_weights()
    else:
        path = os.path.expanduser(os.fspath(weights_path))
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"InceptionV3 weights not found: {path}\n{_INCEPTION_WEIGHTS_NEEDED} Pass "
                f"the path of that file, or leave the path out to use (and download into) "
                f"the Keras cache, {inception_weights_path()}."
            )
    # float32 whatever the caller's policy: `kgan train --eval-every` builds
    # it under the training precision, where bfloat16 features moved by ~1%.
    with performance.global_precision("float32"):
        model = keras.applications.InceptionV3(
            include_top=False,
            pooling="avg",
            weights=None,
            input_shape=(_INCEPTION_SIZE, _INCEPTION_SIZE, 3),
        )
    model.load_weights(path)
    return KerasFeatureExtractor(model, preprocess=inception_preprocess)


# ====================================================================== streaming
def feature_dim(extractor, image_shape):
    """The number of features `extractor` gives for images of `image_shape`.

    FID needs more samples than features (a covariance of D features from D
    or fewer samples is singular), so callers check a sample size with it
    before any work.

    Example:

    ```python
    extractor = kgan.evaluators.mnist_extractor()
    kgan.metrics.feature_dim(extractor, (28, 28, 1))  # 128: FID needs 129+ samples
    ```
    """
    probe = np.zeros((1,) + tuple(int(d) for d in image_shape), "float32")
    features, _ = _split_output(extractor(probe), 1)
    return int(features.shape[-1])


def features_from(
    source,
    extractor,
    num=None,
    batch_size=SAMPLE_BLOCK,
    seed=0,
    *,
    keep_features=False,
    max_features=10_000,
    progress=False,
):
    """Stream images through `extractor` into a `FeatureStats`.

    Args:
        source: a `tf.data.Dataset` of images or `(images, labels)` (batched,
            or unbatched and then batched here), an array `[N, H, W, C]`, or a
            kgan GAN model (sampled in fixed blocks, see `sampled_blocks`, so
            `batch_size` does not change the images). Images must be floats
            in [-1, 1].
        extractor: a `FeatureExtractor`; a `keras.Model` is wrapped with
            `keras_model_extractor`.
        num: number of samples; `None` takes the whole dataset or array
            (required for a model). Asking for more than a finite source
            holds is an error, not a silent shortfall.
        batch_size: images per extractor call (and at most per generator
            call), default `SAMPLE_BLOCK`; it changes no figure beyond float
            rounding.
        seed: seed of the first sampled block and of the reservoir.
        keep_features: keep features for KID and precision/recall.
        max_features: cap on kept features (reservoir sampling past it).
        progress: show a `keras.utils.Progbar` counting images (a string
            is used as its label).

    Returns:
        A `FeatureStats` with `image_shape` set.

    Example:

    ```python
    fake = features_from(gan, extractor, num=10_000, keep_features=True)
    ```
    """
    if isinstance(extractor, keras.Model):
        extractor = keras_model_extractor(extractor)
    if not callable(extractor):
        raise TypeError(f"extractor must be callable, got {type(extractor).__name__}.")
    if num is not None:
        num = positive_int(num, "num")
    batch_size = positive_int(batch_size, "batch_size")
    stats = FeatureStats(keep_features=keep_features, max_features=max_features, seed=seed)
    bar = None
    if progress:
        if isinstance(progress, str):
            print(progress)
        bar = keras.utils.Progbar(num, unit_name="image")
    try:
        for images in _image_batches(source, num, batch_size, seed):
            shape = _check_images(images, stats.image_shape)
            stats.image_shape = shape
            features, probabilities = _split_output(extractor(images), len(images))
            stats.update(features, probabilities)
            if bar is not None:
                bar.update(stats.count)
    finally:
        if bar is not None and (num is None or stats.count < num):
            # Progbar ends its line only at its target: an error (or what is
            # printed next) must not continue the bar's line.
            print()
    if stats.count == 0:
        raise ValueError("The source yielded no images.")
    if num is not None and stats.count < num:
        raise ValueError(
            f"Asked for num={num} samples but the source holds only "
            f"{stats.count}; lower num (on the command line, --num)."
        )
    return stats


def sampled_blocks(model, num, seed=0, batch_size=SAMPLE_BLOCK):
    """The images `features_from` evaluates for a model, block by block.

    Block i is `model.generate(SAMPLE_BLOCK, seed=seed + i)` (the last one
    cut to what `num` leaves), so the evaluated set depends on `num` and
    `seed` alone: `batch_size` bounds the generator's batches, never which
    images are drawn. Card figures measured before this fixed block size
    were measured at `kgan evaluate`'s default batch of 250, i.e. on these
    same images.

    Args:
        model: anything with `generate(num, seed=..., batch_size=...)`.
        num: number of images.
        seed: seed of block 0.
        batch_size: images per generator call, at most `SAMPLE_BLOCK`.

    Yields:
        float32 numpy blocks `[<= SAMPLE_BLOCK, H, W, C]`.

    Example:

    ```python
    gan = kgan.zoo.load("dcgan_mnist")
    images = np.concatenate(list(sampled_blocks(gan, 600)))  # 250, 250 and 100 images
    ```
    """
    num = positive_int(num, "num")
    batch_size = min(positive_int(batch_size, "batch_size"), SAMPLE_BLOCK)
    for i, start in enumerate(range(0, num, SAMPLE_BLOCK)):
        size = min(SAMPLE_BLOCK, num - start)
        yield np.asarray(model.generate(size, seed=seed + i, batch_size=batch_size))


def _rebatch(blocks, batch_size):
    """`blocks` regrouped into batches of `batch_size` (the last may be smaller)."""
    pending, held = [], 0
    for block in blocks:
        pending.append(block)
        held += len(block)
        while held >= batch_size:
            joined = np.concatenate(pending) if len(pending) > 1 else pending[0]
            yield joined[:batch_size]
            pending, held = [joined[batch_size:]], held - batch_size
    if held:
        yield np.concatenate(pending) if len(pending) > 1 else pending[0]


def _image_batches(source, num, batch_size, seed):
    if hasattr(source, "generate") and hasattr(source, "image_shape"):
        if num is None:
            raise ValueError("num is required when sampling from a model.")
        yield from _rebatch(sampled_blocks(source, num, seed, batch_size), batch_size)
        return
    if isinstance(source, tf.data.Dataset):
        if num is None and source.cardinality() == tf.data.INFINITE_CARDINALITY:
            raise ValueError("The dataset is infinite (repeat()); pass num.")
        spec = source.element_spec
        if isinstance(spec, (tuple, list)):
            spec = spec[0]
        if isinstance(spec, Mapping):
            raise ValueError(
                "Got a dataset of dicts; pass images or (images, labels), e.g. "
                "`dataset.map(lambda d: d['image'])`."
            )
        if spec.shape.rank == 3:
            source = source.batch(batch_size)
        # Stopping early deletes the iterator, which autotuning can stall for seconds.
        source = without_teardown_stall(source, keep_explicit_choice=True)
        remaining = num
        for element in source:
            images = element[0] if isinstance(element, (tuple, list)) else element
            images = np.asarray(images)
            if remaining is not None:
                images = images[:remaining]
                remaining -= len(images)
            if len(images):
                yield images
            if remaining == 0:
                return
        return
    if isinstance(source, FeatureStats):
        raise TypeError("source is already a FeatureStats; use it directly.")
    array = np.asarray(source)
    if array.ndim != 4:
        raise ValueError(
            f"An image array must have shape [N, H, W, C], got {array.shape}."
        )
    if num is not None:
        array = array[:num]
    for start in range(0, len(array), batch_size):
        yield array[start : start + batch_size]


def _check_images(images, expected):
    """Validate a batch; return its `(H, W, C)`."""
    if images.ndim != 4:
        raise ValueError(
            f"Image batches must have rank 4 [batch, H, W, C], got shape "
            f"{images.shape}."
        )
    if not np.issubdtype(images.dtype, np.floating):
        raise ValueError(
            f"Images must be floating point in [-1, 1], got dtype {images.dtype}. "
            "Convert with `kgan.images.from_uint8` or `x / 127.5 - 1`."
        )
    shape = tuple(int(d) for d in images.shape[1:])
    if expected is not None and shape != expected:
        raise ValueError(
            f"Image shape changed within one source: {expected} then {shape}."
        )
    check_value_range(images)
    return shape


def _split_output(out, batch):
    if isinstance(out, Mapping):
        if "features" not in out:
            raise ValueError(
                f"An extractor returning a mapping must have a 'features' key, "
                f"got keys {sorted(out)}."
            )
        features, probabilities = out["features"], out.get("probabilities")
    elif isinstance(out, (tuple, list)):
        if len(out) != 2:
            raise ValueError(
                f"An extractor returning a sequence must return (features, "
                f"probabilities), got {len(out)} items."
            )
        features, probabilities = out
    else:
        features, probabilities = out, None
    features = np.asarray(features)
    if features.ndim != 2 or len(features) != batch:
        raise ValueError(
            f"The extractor must return features of shape [{batch}, D] for a "
            f"batch of {batch} images, got {features.shape}."
        )
    return features, probabilities


# ====================================================================== evaluate
def evaluate(
    real,
    fake,
    extractor,
    metrics=("fid", "kid", "pr"),
    num=10_000,
    *,
    num_real=None,
    batch_size=SAMPLE_BLOCK,
    seed=0,
    max_features=10_000,
    kid_subsets=100,
    kid_subset_size=1000,
    pr_k=3,
    progress=False,
):
    """Compare real and generated images; return a dict of python floats.

    Keys: `fid` (for `"fid"`), `kid_mean` and `kid_std` (`"kid"`),
    `precision` and `recall` (`"pr"`), and `is_mean` and `is_std` (Inception
    Score of the fake set) whenever the extractor gives probabilities or
    `"is"` is requested.

    Args:
        real: a source for `features_from` or a `FeatureStats` (reuse the
            real statistics across evaluations; keep its features for KID/PR).
            A shuffling pipeline gives another real sample on every call:
            load it with `shuffle=False` for figures that repeat exactly.
        fake: likewise, typically a kgan GAN model.
        extractor: a `FeatureExtractor` (or `keras.Model`).
        metrics: any of `"fid"`, `"kid"`, `"pr"`, `"is"`.
        num: samples per set.
        num_real: samples of the real set, if different from `num`.
        batch_size: images per batch.
        seed: seed of generation, reservoirs and KID subsets.
        max_features: cap on features kept for KID and precision/recall.
        kid_subsets, kid_subset_size: see `kernel_distance`.
        pr_k: neighbourhood size of `precision_recall`.
        progress: show a progress bar per set of images.

    Example:

    ```python
    scores = evaluate(real_dataset, gan, inception_v3_extractor(), num=10_000)
    ```
    """
    known = {"fid", "kid", "pr", "is"}
    metrics = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    unknown = set(metrics) - known
    if unknown:
        raise ValueError(f"Unknown metrics {sorted(unknown)}; choose from {sorted(known)}.")
    real_shape, fake_shape = _source_image_shape(real), _source_image_shape(fake)
    # Fail before spending minutes on feature extraction.
    _check_image_shapes(real_shape, fake_shape)
    keep = bool({"kid", "pr"} & set(metrics))
    common = dict(
        batch_size=batch_size, seed=seed, keep_features=keep, max_features=max_features
    )
    if not isinstance(real, FeatureStats):
        real = features_from(
            real, extractor, num=num if num_real is None else num_real,
            progress="real images" if progress else False, **common,
        )
    if not isinstance(fake, FeatureStats):
        fake = features_from(
            fake, extractor, num=num, progress="evaluated images" if progress else False, **common
        )
    _check_compatible(real, fake)
    results = {}
    if "fid" in metrics:
        results["fid"] = fid_from_stats(real, fake)
    if "kid" in metrics:
        results["kid_mean"], results["kid_std"] = kernel_distance(
            real.features, fake.features, kid_subsets, kid_subset_size, seed=seed
        )
    if "pr" in metrics:
        results["precision"], results["recall"] = precision_recall(
            real.features, fake.features, k=pr_k
        )
    if "is" in metrics or fake.probabilities is not None:
        if fake.probabilities is None:
            raise ValueError(
                "The Inception Score needs class probabilities; use an "
                "extractor that returns them, e.g. "
                "keras_model_extractor(classifier, probabilities=True)."
            )
        results["is_mean"], results["is_std"] = inception_score(fake.probabilities)
    return results


def _source_image_shape(source):
    """`(H, W, C)` of a source if known without reading it, else `None`."""
    if isinstance(source, FeatureStats):
        return source.image_shape
    if hasattr(source, "generate") and hasattr(source, "image_shape"):
        return tuple(source.image_shape)
    if isinstance(source, tf.data.Dataset):
        spec = source.element_spec
        if isinstance(spec, (tuple, list)):
            spec = spec[0]
        shape = getattr(spec, "shape", None)
        if shape is None or shape.rank not in (3, 4):
            return None
        dims = shape.as_list()[-3:]
        return None if None in dims else tuple(dims)
    if isinstance(source, (np.ndarray, tf.Tensor)) and len(source.shape) == 4:
        return tuple(int(d) for d in source.shape[1:])
    return None


def _check_image_shapes(real_shape, fake_shape):
    if real_shape is not None and fake_shape is not None and real_shape != fake_shape:
        raise ValueError(
            f"Real images have shape {real_shape} but generated images have "
            f"shape {fake_shape}; compare sets of the same image shape."
        )


def _check_compatible(stats1, stats2):
    for stats in (stats1, stats2):
        if not isinstance(stats, FeatureStats):
            raise TypeError(f"Expected FeatureStats, got {type(stats).__name__}.")
        if stats.count == 0:
            raise ValueError("A FeatureStats is empty: no features were added.")
    _check_image_shapes(stats1.image_shape, stats2.image_shape)
    if stats1.dim != stats2.dim:
        raise ValueError(
            f"Feature dimensions differ: {stats1.dim} vs {stats2.dim}; use the "
            "same extractor for both sets."
        )


# ====================================================================== helpers
def _feature_matrix(features, name):
    x = np.asarray(features)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty [N, D] array, got shape {x.shape}.")
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or Inf values.")
    return x
