"""Adversarial losses, per example, and global-batch reduction.

Every loss here returns a per-example vector `[B]` in float32 (logits are cast
first, so bf16/fp16 networks never reduce in low precision). Reduce it with
`global_batch_mean`, which divides by the number of replicas: Keras sums the
replicas' gradients, so a hand-written per-replica mean would otherwise scale
the update by the replica count under `tf.distribute` strategies.

Conventions: the discriminator outputs logits `[B, 1]` (or `[B]`), real is
high. Losses are to be minimized.
"""

import tensorflow as tf
from keras import ops


def _logits(x):
    x = ops.cast(x, "float32")
    return ops.reshape(x, (ops.shape(x)[0], -1))


def _per_example(x):
    return ops.mean(_logits(x), axis=-1)


def global_batch_mean(per_example_loss):
    """Mean of a per-example loss over the *global* batch.

    Inside a replica of a `tf.distribute` strategy this is the replica's mean
    divided by `num_replicas_in_sync`; the all-reduced (summed) gradients are
    then those of the global-batch mean. Outside a strategy it is the mean.

    Example:

    ```python
    loss = global_batch_mean(non_saturating_generator_loss(fake_logits))
    ```
    """
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return ops.mean(ops.cast(per_example_loss, "float32")) / float(replicas)


def non_saturating_generator_loss(fake_logits):
    """-log D(G(z)) (Goodfellow et al. 2014, sec. 3): strong early gradients."""
    return _per_example(ops.softplus(-_logits(fake_logits)))


def minimax_generator_loss(fake_logits):
    """log(1 - D(G(z))), the original minimax objective (saturates early)."""
    return _per_example(-ops.softplus(_logits(fake_logits)))


def discriminator_loss(real_logits, fake_logits):
    """Binary cross-entropy of real as 1 and fake as 0 (from logits)."""
    real = ops.softplus(-_logits(real_logits))
    fake = ops.softplus(_logits(fake_logits))
    return _per_example(real) + _per_example(fake)


def wasserstein_critic_loss(real_scores, fake_scores):
    """f(G(z)) - f(x): the critic maximizes the Wasserstein estimate."""
    return _per_example(fake_scores) - _per_example(real_scores)


def wasserstein_generator_loss(fake_scores):
    """-f(G(z))."""
    return -_per_example(fake_scores)


def hinge_discriminator_loss(real_logits, fake_logits):
    """max(0, 1 - D(x)) + max(0, 1 + D(G(z))) (Lim & Ye 2017)."""
    real = ops.relu(1.0 - _logits(real_logits))
    fake = ops.relu(1.0 + _logits(fake_logits))
    return _per_example(real) + _per_example(fake)


def hinge_generator_loss(fake_logits):
    """-D(G(z))."""
    return -_per_example(fake_logits)


def least_squares_discriminator_loss(real_outputs, fake_outputs):
    """(D(x) - 1)^2 + D(G(z))^2 (Mao et al. 2017), per example."""
    real = ops.square(_logits(real_outputs) - 1.0)
    fake = ops.square(_logits(fake_outputs))
    return _per_example(real) + _per_example(fake)


def least_squares_generator_loss(fake_outputs):
    """(D(G(z)) - 1)^2, per example."""
    return _per_example(ops.square(_logits(fake_outputs) - 1.0))
