"""kgan.metrics: FID, KID, IS, precision/recall, streaming and extractors."""

import os
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from kgan_test_utils import tiny_dcgan

from kgan import metrics, zoo
from kgan.metrics import (
    FeatureStats,
    evaluate,
    features_from,
    fid_from_stats,
    frechet_distance,
    inception_score,
    keras_model_extractor,
    kernel_distance,
    precision_recall,
    sampled_blocks,
)
from kgan.models import DCGAN


def tiny_classifier(image_shape=(16, 16, 1), dim=4, classes=3):
    """Conv -> pool -> `embedding` [dim] -> softmax [classes]."""
    keras.utils.set_random_seed(0)
    images = keras.Input(image_shape)
    x = keras.layers.Conv2D(4, 3, strides=2, activation="tanh")(images)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(dim, activation="tanh", name="embedding")(x)
    probs = keras.layers.Dense(classes, activation="softmax")(x)
    return keras.Model(images, probs)


def stats_of(x, **kwargs):
    stats = FeatureStats(**kwargs)
    stats.update(x)
    return stats


def random_images(n, shape=(16, 16, 1), seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, size=(n,) + shape).astype(np.float32)


# ---------------------------------------------------------------- FeatureStats
def test_streaming_moments_match_numpy_on_all_data():
    rng = np.random.default_rng(0)
    # A large offset relative to the spread: naive E[xx^T] - mu mu^T loses
    # most digits here.
    data = rng.normal(size=(1000, 6)) * np.arange(1, 7) + 1e4
    stats = FeatureStats()
    start = 0
    for size in [0, 1, 2, 17, 100, 3] * 100:
        stats.update(data[start : start + size])
        start += size
        if start >= len(data):
            break
    stats.update(data[start:])
    assert stats.count == 1000
    np.testing.assert_allclose(stats.mean, data.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats.covariance, np.cov(data, rowvar=False), rtol=1e-8)


def test_keep_features_below_cap_returns_all_rows_in_order():
    data = np.random.default_rng(0).normal(size=(30, 3))
    stats = FeatureStats(keep_features=True, max_features=100)
    for i in range(0, 30, 7):
        stats.update(data[i : i + 7])
    np.testing.assert_allclose(stats.features, data.astype(np.float32))


def test_reservoir_keeps_at_most_max_features_as_a_uniform_subset():
    n, cap = 10_000, 200
    data = np.stack([np.arange(n), -np.arange(n)], axis=1).astype(np.float64)
    stats = FeatureStats(keep_features=True, max_features=cap, seed=0)
    for i in range(0, n, 37):
        stats.update(data[i : i + 37])
        assert len(stats.features) <= cap
    kept = stats.features
    assert stats.count == n and kept.shape == (cap, 2)
    index = kept[:, 0].astype(int)
    assert len(np.unique(index)) == cap  # rows of the data, none duplicated
    np.testing.assert_array_equal(kept[:, 1], -index)
    # Uniform over the stream: mean index n/2 with std ~ n/sqrt(12 cap) = 204.
    assert abs(index.mean() - n / 2) < 1000
    assert 0.35 < np.mean(index >= n / 2) < 0.65


def test_feature_stats_update_refuses_an_extractors_dict_saying_what_to_pass():
    output = {"features": np.zeros((2, 3)), "probabilities": np.full((2, 2), 0.5)}
    with pytest.raises(TypeError, match=r"got a dict with keys \['features', 'probabilities'\].*output\['features'\]"):
        FeatureStats().update(output)
    stats = FeatureStats()
    stats.update(output["features"], output.get("probabilities"))  # as the docstring shows
    assert stats.count == 2


def test_feature_stats_errors():
    stats = stats_of(np.ones((1, 3)))
    with pytest.raises(ValueError, match="at least 2"):
        stats.covariance
    with pytest.raises(ValueError, match="dimension changed from 3 to 4"):
        stats.update(np.ones((2, 4)))
    with pytest.raises(ValueError, match="keep_features=True"):
        stats.features
    with pytest.raises(ValueError, match=r"\[batch, dim\]"):
        FeatureStats().update(np.ones(3))
    with pytest.raises(ValueError, match="NaN"):
        FeatureStats().update(np.full((2, 2), np.nan))
    with pytest.raises(ValueError, match="at least 1"):
        FeatureStats().mean


# ---------------------------------------------------------------- FID
def test_fid_of_a_set_against_itself_is_zero():
    x = np.random.default_rng(0).normal(size=(400, 8)) * 50 + 10
    stats = stats_of(x)
    scale = np.trace(stats.covariance)
    assert abs(fid_from_stats(stats, stats)) < 1e-6 * scale


def _commuting_pair(a, b, seed=1):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(len(a), len(a))))
    return q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T


@pytest.mark.parametrize("rotate", [False, True], ids=["diagonal", "commuting"])
def test_fid_equals_the_closed_form(rotate):
    a, b = np.array([1.0, 2.0, 0.5, 4.0]), np.array([3.0, 0.5, 1.0, 4.0])
    s1, s2 = _commuting_pair(a, b) if rotate else (np.diag(a), np.diag(b))
    mu1, mu2 = np.zeros(4), np.array([1.0, -1.0, 0.5, 0.0])
    # Commuting covariances share eigenvectors, so sqrtm(s1 s2) has
    # eigenvalues sqrt(a b) and the trace term is sum (sqrt a - sqrt b)^2.
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-10)


def test_fid_matches_symmetric_formula_for_non_commuting_covariances():
    rng = np.random.default_rng(2)
    m1, m2 = rng.normal(size=(2, 5, 5))
    s1, s2 = m1 @ m1.T + 0.1 * np.eye(5), m2 @ m2.T + 0.1 * np.eye(5)
    w, v = np.linalg.eigh(s1)
    root1 = v @ np.diag(np.sqrt(w)) @ v.T
    # Tr sqrtm(s1 s2) = Tr sqrtm(s1^1/2 s2 s1^1/2), a symmetric PSD matrix.
    inner = np.linalg.eigvalsh(root1 @ s2 @ root1)
    expected = np.trace(s1) + np.trace(s2) - 2 * np.sum(np.sqrt(np.clip(inner, 0, None)))
    got = frechet_distance(np.zeros(5), s1, np.zeros(5), s2)
    assert got == pytest.approx(expected, rel=1e-8)


def test_fid_of_large_gaussian_samples_approaches_the_closed_form():
    a, b = np.array([1.0, 2.0, 0.5]), np.array([3.0, 0.5, 1.0])
    s1, s2 = _commuting_pair(a, b)
    mu1, mu2 = np.zeros(3), np.array([1.0, -1.0, 0.5])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    rng = np.random.default_rng(0)
    real, fake = FeatureStats(), FeatureStats()
    for _ in range(10):
        real.update(rng.multivariate_normal(mu1, s1, 2000))
        fake.update(rng.multivariate_normal(mu2, s2, 2000))
    # Over 20 seeds this estimate had bias 0.01 and std 0.05 (expected 3.37).
    assert fid_from_stats(real, fake) == pytest.approx(expected, abs=0.25)


def test_fid_retries_a_singular_product_with_eps(monkeypatch):
    calls = []
    real_sqrtm = metrics._sqrtm

    def fake_sqrtm(matrix):
        calls.append(matrix)
        return np.full_like(matrix, np.inf) if len(calls) == 1 else real_sqrtm(matrix)

    monkeypatch.setattr(metrics, "_sqrtm", fake_sqrtm)
    s = np.diag([1.0, 4.0])
    # As in the reference code only sqrtm sees the offset, so the result is
    # off by about -2 * eps * D.
    assert frechet_distance(np.zeros(2), s, np.zeros(2), s, eps=1e-3) == pytest.approx(
        -4e-3, abs=1e-6
    )
    np.testing.assert_allclose(calls[1], (s + 1e-3 * np.eye(2)) @ (s + 1e-3 * np.eye(2)))


def test_fid_refuses_a_large_imaginary_part(monkeypatch):
    monkeypatch.setattr(metrics, "_sqrtm", lambda m: m + 0.5j * np.eye(len(m)))
    with pytest.raises(ValueError, match="imaginary"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.eye(2))


def test_fid_input_errors():
    with pytest.raises(ValueError, match="mismatched feature dimensions"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
    few = stats_of(np.random.default_rng(0).normal(size=(5, 8)))
    with pytest.raises(ValueError, match="at least 9 samples"):
        fid_from_stats(few, few)
    with pytest.raises(ValueError, match="at least 2"):
        fid_from_stats(stats_of(np.ones((1, 1))), stats_of(np.ones((1, 1))))
    with pytest.raises(ValueError, match="dimensions differ: 2 vs 3"):
        fid_from_stats(stats_of(np.eye(2)), stats_of(np.eye(3)))
    with pytest.raises(ValueError, match="empty"):
        fid_from_stats(FeatureStats(), FeatureStats())


# ---------------------------------------------------------------- KID
def direct_mmd2(x, y):
    """Unbiased MMD^2 with k(x, y) = (x.y/d + 1)^3, written out term by term."""
    m, n, d = len(x), len(y), x.shape[1]
    k = lambda u, v: (u @ v / d + 1.0) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_kid_matches_direct_unbiased_mmd():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 5)), rng.normal(size=(40, 5)) + 0.3
    mean, std = kernel_distance(x, y, num_subsets=1, subset_size=40)
    assert mean == pytest.approx(direct_mmd2(x, y), rel=1e-10)
    assert std == 0.0


def test_kid_clips_subset_size_and_separates_distributions():
    rng = np.random.default_rng(0)
    a, same = rng.normal(size=(120, 4)), rng.normal(size=(80, 4))
    shifted = rng.normal(size=(80, 4)) + 1
    near, _ = kernel_distance(a, same, num_subsets=20, subset_size=1000)
    far, _ = kernel_distance(a, shifted, num_subsets=20, subset_size=1000)
    assert abs(near) < 0.05 < far
    with pytest.raises(ValueError, match="at least 2"):
        kernel_distance(a, a[:1])
    with pytest.raises(ValueError, match="dimensions differ"):
        kernel_distance(a, a[:, :3])


# ---------------------------------------------------------------- IS
def test_inception_score_of_uniform_predictions_is_one():
    mean, std = inception_score(np.full((100, 7), 1 / 7))
    assert mean == pytest.approx(1.0) and std == pytest.approx(0.0)


def test_inception_score_of_confident_balanced_predictions_is_the_class_count():
    probs = np.tile(np.eye(10), (20, 1))  # each split of 20 holds two of each class
    mean, std = inception_score(probs, num_splits=10)
    assert mean == pytest.approx(10.0) and std == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("num", [1000, 1009, 95])
def test_inception_score_splits_every_row_as_the_reference_does(num):
    # openai/improved-gan's inception_score.py; kgan dropped the remainder
    # (1009 rows: 3.7871 against the reference's 3.7849).
    p = np.random.default_rng(0).dirichlet(np.full(10, 0.3), size=num)
    scores = []
    for i in range(10):
        part = p[(i * p.shape[0] // 10):((i + 1) * p.shape[0] // 10), :]
        kl = part * (np.log(part) - np.log(np.expand_dims(np.mean(part, 0), 0)))
        scores.append(np.exp(np.mean(np.sum(kl, 1))))
    np.testing.assert_allclose(inception_score(p), (np.mean(scores), np.std(scores)), rtol=1e-12)


def test_inception_score_validates_probabilities():
    with pytest.raises(ValueError, match="sum to 1"):
        inception_score(np.full((20, 4), 0.3))
    with pytest.raises(ValueError, match="non-negative"):
        inception_score(np.array([[1.5, -0.5]] * 20))
    with pytest.raises(ValueError, match="num_splits=10"):
        inception_score(np.full((5, 2), 0.5))


# ---------------------------------------------------------------- precision / recall
def test_precision_recall_of_a_set_against_itself_is_one():
    x = np.random.default_rng(0).normal(size=(300, 8))
    assert precision_recall(x, x, k=3) == (1.0, 1.0)


def test_precision_recall_against_a_far_disjoint_cluster_is_zero():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(200, 8)), rng.normal(size=(150, 8)) + 100
    assert precision_recall(real, fake, k=3) == (0.0, 0.0)


def test_precision_recall_by_hand():
    real = np.array([[0.0], [1.0], [2.0], [3.0]])  # 1-NN radii: 1 each
    fake = np.array([[0.5], [10.0], [11.0], [12.0]])  # radii 9.5, 1, 1, 1
    # Only 0.5 is near a real sample; its large radius (an outlier of the fake
    # set) covers every real sample.
    assert precision_recall(real, fake, k=1) == (0.25, 1.0)


def test_precision_recall_does_not_depend_on_the_block_size():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(90, 6)), rng.normal(size=(70, 6)) * 1.3 + 0.2
    expected = precision_recall(real, fake, k=3, batch_size=1000)
    assert 0 < expected[0] < 1 and 0 < expected[1] < 1
    assert precision_recall(real, fake, k=3, batch_size=7) == expected


def _brute_force_precision_recall(real, fake, k):
    """The paper's definition with exact float64 distances |x - y|^2."""
    def d2(a, b):
        return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)

    def radii(x):
        d = d2(x, x)
        np.fill_diagonal(d, np.inf)
        return np.partition(d, k - 1, axis=1)[:, k - 1]

    cross = d2(real, fake)
    return ((cross <= radii(real)[:, None]).any(0).mean(),
            (cross <= radii(fake)[None, :]).any(1).mean())


@pytest.mark.parametrize("offset", [0.0, 100.0, 1000.0])
def test_precision_recall_of_float32_features_far_from_the_origin_is_exact(offset):
    # |x|^2 + |y|^2 - 2x.y cancelled in float32: offset 1000 gave precision
    # 0.387 instead of 0.313.
    rng = np.random.default_rng(0)
    real = (rng.normal(size=(300, 16)) + offset).astype("float32")
    fake = (rng.normal(size=(250, 16)) * 1.4 + 0.3 + offset).astype("float32")
    expected = _brute_force_precision_recall(real.astype("float64"), fake.astype("float64"), 3)
    assert precision_recall(real, fake, k=3) == pytest.approx(expected, abs=0)


def test_precision_recall_of_collapsed_fakes_far_from_the_origin_is_zero_recall():
    # Duplicated fakes have k-NN radius 0, so no real sample lies in their
    # manifold, however close; rounding put the reals they copy in it.
    real = np.random.default_rng(1).normal(size=(600, 16)) + 50
    fake = np.repeat(real[:30] + 0.01, 15, axis=0).astype("float32")
    real = real.astype("float32")
    assert precision_recall(real, fake, k=3)[1] == 0.0


def test_precision_recall_needs_more_than_k_samples():
    with pytest.raises(ValueError, match="at least 4 samples"):
        precision_recall(np.ones((3, 2)), np.ones((10, 2)), k=3)


# ---------------------------------------------------------------- streaming
def test_features_from_a_dcgan_yields_num_samples():
    gan = tiny_dcgan()
    extractor = keras_model_extractor(tiny_classifier(), layer="embedding")
    stats = features_from(gan, extractor, num=50, batch_size=16, keep_features=True)
    assert stats.count == 50 and stats.features.shape == (50, 4)
    assert stats.image_shape == (16, 16, 1)
    assert stats.probabilities is None
    again = features_from(gan, extractor, num=50, batch_size=16)
    np.testing.assert_allclose(again.mean, stats.mean)
    other = features_from(gan, extractor, num=50, batch_size=16, seed=1)
    assert not np.allclose(other.mean, stats.mean)


def test_the_sampled_images_do_not_depend_on_the_batch_size():
    # Block i of 250 is generate(250, seed=seed + i) whatever batch_size is;
    # before, batch i was drawn with seed + i, so --batch-size changed the figures.
    gan = tiny_dcgan()
    extractor = lambda x: x.reshape(len(x), -1)[:, :6]  # noqa: E731
    expected = np.concatenate([gan.generate(250, seed=3), gan.generate(250, seed=4),
                               gan.generate(100, seed=5)])
    blocks = list(sampled_blocks(gan, 600, seed=3, batch_size=64))
    assert [len(b) for b in blocks] == [250, 250, 100]
    np.testing.assert_allclose(np.concatenate(blocks), expected, atol=1e-6)
    kept = []
    for batch_size in (7, 250, 256, 10_000):
        stats = features_from(gan, extractor, num=600, batch_size=batch_size, seed=3,
                              keep_features=True)
        kept.append(stats.features)
    for features in kept:
        np.testing.assert_allclose(features, expected.reshape(600, -1)[:, :6], atol=1e-6)


def test_features_from_datasets_and_arrays():
    images = random_images(30)
    labels = np.arange(30)
    extractor = lambda x: x.reshape(len(x), -1)[:, :5]  # noqa: E731
    batched = tf.data.Dataset.from_tensor_slices((images, labels)).batch(7)
    assert features_from(batched, extractor, num=20).count == 20
    unbatched = tf.data.Dataset.from_tensor_slices(images)
    stats = features_from(unbatched, extractor, batch_size=8, keep_features=True)
    np.testing.assert_allclose(stats.features, images.reshape(30, -1)[:, :5])
    assert features_from(images, extractor, batch_size=4).count == 30
    with pytest.raises(ValueError, match="only 30"):
        features_from(images, extractor, num=31)
    with pytest.raises(ValueError, match="no images"):
        features_from(images[:0], extractor)
    with pytest.raises(ValueError, match="floating point"):
        features_from((images * 127 + 128).astype(np.uint8), extractor)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        features_from(images * 10, extractor)
    with pytest.raises(ValueError, match="num is required"):
        features_from(tiny_dcgan(), extractor)


def test_a_short_source_ends_the_progress_line_before_its_error(capsys):
    # The CLI's one-line error must not continue the progress bar's line.
    with pytest.raises(ValueError, match=r"only 30; lower num \(on the command line, --num\)"):
        features_from(random_images(30), lambda x: x.reshape(len(x), -1)[:, :5], num=31,
                      progress=True)
    assert capsys.readouterr().out.endswith("\n")


@pytest.mark.parametrize("chosen", [None, True])
def test_features_from_reads_datasets_without_autotuning_unless_chosen(monkeypatch, chosen):
    """Stopping at `num` deletes the iterator, which autotuning can stall."""
    dataset = tf.data.Dataset.from_tensor_slices(random_images(30)).batch(7)
    if chosen is not None:
        options = tf.data.Options()
        options.autotune.enabled = chosen
        dataset = dataset.with_options(options)
    iterated = []
    real_iter = tf.data.Dataset.__iter__

    def recording_iter(self):
        iterated.append(self.options().autotune.enabled)
        return real_iter(self)

    monkeypatch.setattr(tf.data.Dataset, "__iter__", recording_iter)
    features_from(dataset, lambda x: x.reshape(len(x), -1)[:, :5], num=20)
    assert iterated == [False if chosen is None else chosen]


def test_evaluate_with_a_classifier_reports_every_metric():
    classifier = tiny_classifier()
    extractor = keras_model_extractor(classifier, layer="embedding", probabilities=True)
    results = evaluate(
        random_images(40), tiny_dcgan(), extractor, num=40, batch_size=16, kid_subsets=5
    )
    assert set(results) == {
        "fid", "kid_mean", "kid_std", "precision", "recall", "is_mean", "is_std"
    }
    assert all(isinstance(v, float) and np.isfinite(v) for v in results.values())
    assert 1.0 <= results["is_mean"] <= 3.0
    fid_only = evaluate(random_images(40), tiny_dcgan(), classifier, metrics=("fid",), num=40)
    assert set(fid_only) == {"fid"}  # a plain model's output is only features


def test_mismatched_image_shapes_are_refused_naming_both():
    extractor = keras_model_extractor(tiny_classifier((28, 28, 1)), layer="embedding")
    with pytest.raises(ValueError, match=r"\(28, 28, 1\).*\(16, 16, 1\)"):
        evaluate(random_images(40, (28, 28, 1)), tiny_dcgan(), extractor, num=40)
    a = features_from(random_images(10, (28, 28, 1)), lambda x: x.reshape(len(x), -1)[:, :3])
    b = features_from(random_images(10), lambda x: x.reshape(len(x), -1)[:, :3])
    with pytest.raises(ValueError, match=r"\(28, 28, 1\).*\(16, 16, 1\)"):
        fid_from_stats(a, b)


def test_keras_extractor_flattens_feature_maps_and_softmaxes_logits():
    images = keras.Input((16, 16, 1))
    maps = keras.layers.Conv2D(2, 3, strides=4, padding="same", name="maps")(images)
    logits = keras.layers.Dense(3)(keras.layers.Flatten()(maps))
    model = keras.Model(images, logits)
    out = keras_model_extractor(model, layer="maps", probabilities=True, from_logits=True)(
        random_images(5)
    )
    assert out["features"].shape == (5, 4 * 4 * 2)
    np.testing.assert_allclose(out["probabilities"].sum(axis=1), 1.0, rtol=1e-6)
    # A plain callable may return (features, probabilities) too.
    pair = lambda x: (x.reshape(len(x), -1)[:, :2], np.full((len(x), 2), 0.5))  # noqa: E731
    assert features_from(random_images(20), pair).probabilities.shape == (20, 2)


def test_keras_extractor_checks_the_image_shape():
    extractor = keras_model_extractor(tiny_classifier((28, 28, 1)))
    with pytest.raises(ValueError, match=r"\(28, 28, 1\), got \(16, 16, 1\)"):
        extractor(random_images(2))


# ---------------------------------------------------------------- Inception
@pytest.fixture
def weights_server(tmp_path, monkeypatch):
    """`publish(data, md5=None)`: serve `data` on 127.0.0.1 as the InceptionV3 weights URL
    (Keras's md5 replaced by the data's, or by `md5`), with KERAS_HOME in tmp_path."""
    import functools
    import hashlib
    import http.server
    import threading

    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))

    def publish(data, md5=None):
        (root / "weights.h5").write_bytes(data)
        monkeypatch.setattr(metrics, "_INCEPTION_WEIGHTS_URL",
                            f"http://127.0.0.1:{httpd.server_address[1]}/weights.h5")
        monkeypatch.setattr(metrics, "_INCEPTION_WEIGHTS_MD5", md5 or hashlib.md5(data).hexdigest())
        monkeypatch.setattr(zoo, "DOWNLOAD_TIMEOUT", 5.0)

    yield publish
    httpd.shutdown()
    httpd.server_close()


def test_a_stalled_inception_download_names_its_own_timeout(tmp_path, monkeypatch):
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts, never answers
    accepted = []
    threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True).start()
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(metrics, "_INCEPTION_WEIGHTS_URL",
                        f"http://127.0.0.1:{listener.getsockname()[1]}/weights.h5")
    try:
        with pytest.raises(FileNotFoundError, match=r"stalled.*download_inception_weights\(timeout"):
            metrics.download_inception_weights(timeout=0.5)
    finally:
        listener.close()
    assert not (tmp_path / "models").exists() or not list((tmp_path / "models").iterdir())


def test_missing_inception_weights_are_downloaded_into_the_keras_cache(weights_server, tmp_path):
    # "kgan does not download it": FID of RGB images needed the file copied by hand.
    weights_server(b"weights")
    path = metrics.download_inception_weights()
    assert path == str(tmp_path / "keras" / "models" / metrics.INCEPTION_WEIGHTS_FILE)
    assert Path(path).read_bytes() == b"weights"
    assert sorted(p.name for p in Path(path).parent.iterdir()) == [metrics.INCEPTION_WEIGHTS_FILE]
    weights_server(b"other")  # a file already there is kept
    assert Path(metrics.download_inception_weights()).read_bytes() == b"weights"


def test_a_wrong_or_failed_inception_download_leaves_nothing_and_says_what_to_do(
        weights_server, tmp_path, monkeypatch):
    models = tmp_path / "keras" / "models"
    weights_server(b"truncated", md5="0" * 32)
    with pytest.raises(FileNotFoundError, match=r"(?s)has md5 [0-9a-f]{32}, not Keras's 0{32}.*copy "
                                                r"the file to .*--inception-weights"):
        metrics.inception_v3_extractor()
    assert not models.exists() or not list(models.iterdir())
    monkeypatch.setattr(metrics, "_INCEPTION_WEIGHTS_URL", "http://127.0.0.1:9/weights.h5")
    with pytest.raises(FileNotFoundError, match=r"downloading them failed: Could not download the InceptionV3 weights from http://127"):
        metrics.inception_v3_extractor()
    assert not models.exists() or not list(models.iterdir())
    # A cache folder that cannot be made names KERAS_HOME, not an "output path".
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "file" / "keras"))
    with pytest.raises(FileNotFoundError, match=r"(?s)cannot be downloaded there.*set KERAS_HOME "
                                                r"to a folder you can write"):
        metrics.inception_v3_extractor()
    # A path given is not downloaded: it names the file and the cache.
    with pytest.raises(FileNotFoundError, match=r"(?s)elsewhere\.h5.*Needed: inception_v3.*Keras cache"):
        metrics.inception_v3_extractor(tmp_path / "elsewhere.h5")


def test_inception_preprocess_makes_rgb_299_in_range():
    gray = random_images(2)
    out = metrics.inception_preprocess(gray).numpy()
    assert out.shape == (2, 299, 299, 3)
    assert out.min() >= -1.0 and out.max() <= 1.0
    np.testing.assert_array_equal(out[..., 0], out[..., 2])
    flat = metrics.inception_preprocess(np.full((1, 8, 8, 3), 0.25, np.float32)).numpy()
    np.testing.assert_allclose(flat, 0.25, atol=1e-6)
    with pytest.raises(ValueError, match="4 channels"):
        metrics.inception_preprocess(np.zeros((1, 8, 8, 4), np.float32))


@pytest.mark.slow
@pytest.mark.parametrize("policy, source", [("float32", "path"), ("mixed_bfloat16", "path"),
                                            ("float32", "download")])
def test_inception_extractor_loads_a_legacy_h5_weights_file(tmp_path, weights_server, policy,
                                                            source):
    """Round-trips a weights file in the Keras-applications (legacy h5) format,
    given or downloaded, into a float32 network under any global policy (`kgan
    train --eval-every` builds it under the training precision; bfloat16 moved
    features ~1%)."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    model = keras.applications.InceptionV3(include_top=False, pooling="avg", weights=None)
    path = tmp_path / metrics.INCEPTION_WEIGHTS_FILE
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    keras.mixed_precision.set_global_policy(policy)
    if source == "download":
        weights_server(path.read_bytes())
        path = None
    extractor = metrics.inception_v3_extractor(path)
    assert {layer.compute_dtype for layer in extractor.model.layers} == {"float32"}
    out = extractor(random_images(2))
    assert out["features"].shape == (2, 2048)
    expected = model(metrics.inception_preprocess(random_images(2)), training=False)
    np.testing.assert_allclose(out["features"], expected, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- memory
def _peak_rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def _reset_peak_rss():
    """Reset VmHWM to the current RSS (Linux >= 4.0); False if not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


@pytest.mark.slow
def test_streaming_20k_generated_samples_keeps_memory_bounded():
    """Peak RSS growth while streaming 20k 32x32x3 samples stays far below
    the 246 MB that holding the images (20k * 32*32*3 * 4 bytes) would take
    (`gan.generate(20_000)` measured 472 MB here: batches plus their
    concatenation).

    What streaming legitimately holds: the reservoir (2000 x 16 x 4 bytes), the
    moments (16 x 16 x 8 bytes), and one generated batch with its latents and
    the generator's activations (~ 500 * 32*32*16 * 4 bytes = 33 MB at the
    widest layer, plus TensorFlow's allocator caching); 18 MB was measured.
    100 MB leaves room for allocator differences and is still well under half
    of the non-streaming cost.
    """
    gan = DCGAN.from_image_shape((32, 32, 3), latent_dim=16, filters=8, seed=0)
    extractor = keras_model_extractor(tiny_classifier((32, 32, 3), dim=16), layer="embedding")
    # Warm up: trace the functions and grow TensorFlow's allocator pools.
    features_from(gan, extractor, num=1000, batch_size=500, keep_features=True)
    reset = _reset_peak_rss()
    before = _peak_rss_kib()
    start = time.perf_counter()
    stats = features_from(
        gan, extractor, num=20_000, batch_size=500, keep_features=True, max_features=2000
    )
    seconds = time.perf_counter() - start
    growth_mb = (_peak_rss_kib() - before) / 1024
    print(
        f"\npeak RSS growth streaming 20k samples: {growth_mb:.1f} MB "
        f"(VmHWM reset: {reset}; {seconds:.1f} s)"
    )
    assert stats.count == 20_000 and stats.features.shape == (2000, 16)
    assert growth_mb < 100


def test_feature_dim_reads_every_extractor_output_form():
    dict_out = lambda x: {"features": np.zeros((len(x), 7))}  # noqa: E731
    pair_out = lambda x: (np.zeros((len(x), 5)), np.ones((len(x), 3)) / 3)  # noqa: E731
    array_out = lambda x: np.zeros((len(x), 4))  # noqa: E731
    assert [metrics.feature_dim(f, (8, 8, 1)) for f in (dict_out, pair_out, array_out)] == [7, 5, 4]
