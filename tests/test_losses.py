"""Adversarial losses against their closed forms."""

import numpy as np
import pytest
import tensorflow as tf

from kgan import losses


def softplus(x):
    return np.log1p(np.exp(x))


LOGITS_REAL = np.array([[2.0], [-1.0], [0.5]], "float32")
LOGITS_FAKE = np.array([[-3.0], [0.0], [1.5]], "float32")


def test_non_saturating_and_minimax():
    np.testing.assert_allclose(losses.non_saturating_generator_loss(LOGITS_FAKE), softplus(-LOGITS_FAKE[:, 0]), rtol=1e-6)
    np.testing.assert_allclose(losses.minimax_generator_loss(LOGITS_FAKE), -softplus(LOGITS_FAKE[:, 0]), rtol=1e-6)
    expected = softplus(-LOGITS_REAL[:, 0]) + softplus(LOGITS_FAKE[:, 0])
    np.testing.assert_allclose(losses.discriminator_loss(LOGITS_REAL, LOGITS_FAKE), expected, rtol=1e-6)
    # BCE from probabilities, as a cross-check of the sign conventions.
    p_real, p_fake = 1 / (1 + np.exp(-LOGITS_REAL[:, 0])), 1 / (1 + np.exp(-LOGITS_FAKE[:, 0]))
    np.testing.assert_allclose(expected, -np.log(p_real) - np.log(1 - p_fake), rtol=1e-5)


def test_wasserstein_hinge_least_squares():
    r, f = LOGITS_REAL[:, 0], LOGITS_FAKE[:, 0]
    np.testing.assert_allclose(losses.wasserstein_critic_loss(LOGITS_REAL, LOGITS_FAKE), f - r)
    np.testing.assert_allclose(losses.wasserstein_generator_loss(LOGITS_FAKE), -f)
    np.testing.assert_allclose(losses.hinge_discriminator_loss(LOGITS_REAL, LOGITS_FAKE),
                               np.maximum(0, 1 - r) + np.maximum(0, 1 + f))
    np.testing.assert_allclose(losses.hinge_generator_loss(LOGITS_FAKE), -f)
    np.testing.assert_allclose(losses.least_squares_discriminator_loss(LOGITS_REAL, LOGITS_FAKE),
                               (r - 1) ** 2 + f**2, rtol=1e-6)
    np.testing.assert_allclose(losses.least_squares_generator_loss(LOGITS_FAKE), (f - 1) ** 2, rtol=1e-6)


def test_patch_outputs_are_averaged_per_example():
    patches = np.arange(2 * 3 * 3, dtype="float32").reshape(2, 3, 3, 1)
    out = losses.wasserstein_generator_loss(patches)
    np.testing.assert_allclose(out, -patches.reshape(2, -1).mean(axis=1))


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_low_precision_logits_reduce_in_float32(dtype):
    logits = tf.cast(LOGITS_FAKE, dtype)
    out = losses.non_saturating_generator_loss(logits)
    assert out.dtype == tf.float32
    # The softplus of the (exactly representable) logits, computed in float32.
    np.testing.assert_allclose(out, np.log1p(np.exp(-LOGITS_FAKE[:, 0])), rtol=1e-6)


def test_global_batch_mean_divides_by_replicas(two_cpu_strategy):
    per_example = tf.constant([1.0, 2.0, 3.0, 6.0])
    assert float(losses.global_batch_mean(per_example)) == pytest.approx(3.0)

    @tf.function
    def replica_means():
        return two_cpu_strategy.run(lambda: losses.global_batch_mean(per_example))

    results = two_cpu_strategy.experimental_local_results(replica_means())
    assert [float(r) for r in results] == pytest.approx([1.5, 1.5])
