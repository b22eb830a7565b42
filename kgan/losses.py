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
    then those of the global-batch mean when replicas hold equal shares, as
    every batch of a pipeline with `drop_remainder=True` does. A last batch
    that tf.distribute splits unevenly (7 examples as 4 and 3) weighs the
    smaller share's examples more (1/6 against 1/8, not 1/7 each), as
    Keras's own `scale_loss_for_distribution` does; an exact count would
    need a collective per loss, which ReplicaContext.all_reduce does not
    give under MultiWorkerMirroredStrategy with one device per worker.
    Outside a strategy it is the mean.

    Example:

    ```python
    loss = global_batch_mean(non_saturating_generator_loss(fake_logits))
    ```
    """
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return ops.mean(ops.cast(per_example_loss, "float32")) / float(replicas)


def non_saturating_generator_loss(fake_logits):
    """-log D(G(z)) (Goodfellow et al. 2014, sec. 3): strong early gradients.

    Example:

    ```python
    fake_logits = tf.constant([[-1.0], [1.0]])  # D's logits for two generated images
    loss = kgan.losses.non_saturating_generator_loss(fake_logits)  # [1.313, 0.313]
    kgan.losses.global_batch_mean(loss)  # 0.813, the scalar to differentiate
    ```
    """
    return _per_example(ops.softplus(-_logits(fake_logits)))


def minimax_generator_loss(fake_logits):
    """log(1 - D(G(z))), the original minimax objective (saturates early).

    Example:

    ```python
    fake_logits = tf.constant([[-1.0], [1.0]])
    kgan.losses.minimax_generator_loss(fake_logits)  # [-0.313, -1.313], per example
    ```
    """
    return _per_example(-ops.softplus(_logits(fake_logits)))


def discriminator_loss(real_logits, fake_logits):
    """Binary cross-entropy of real as 1 and fake as 0 (from logits).

    Example:

    ```python
    real_logits = tf.constant([[2.0], [0.5]])
    fake_logits = tf.constant([[-1.0], [1.0]])
    kgan.losses.discriminator_loss(real_logits, fake_logits)  # [0.440, 1.787]
    ```
    """
    real = ops.softplus(-_logits(real_logits))
    fake = ops.softplus(_logits(fake_logits))
    return _per_example(real) + _per_example(fake)


def wasserstein_critic_loss(real_scores, fake_scores):
    """f(G(z)) - f(x): the critic maximizes the Wasserstein estimate.

    Example:

    ```python
    real_scores = tf.constant([[2.0], [0.5]])  # critic scores, no sigmoid
    fake_scores = tf.constant([[-1.0], [1.0]])
    kgan.losses.wasserstein_critic_loss(real_scores, fake_scores)  # [-3.0, 0.5]
    ```
    """
    return _per_example(fake_scores) - _per_example(real_scores)


def wasserstein_generator_loss(fake_scores):
    """-f(G(z)).

    Example:

    ```python
    fake_scores = tf.constant([[-1.0], [1.0]])
    kgan.losses.wasserstein_generator_loss(fake_scores)  # [1.0, -1.0]
    ```
    """
    return -_per_example(fake_scores)


def hinge_discriminator_loss(real_logits, fake_logits):
    """max(0, 1 - D(x)) + max(0, 1 + D(G(z))) (Lim & Ye 2017).

    Example:

    ```python
    real_logits = tf.constant([[2.0], [0.5]])
    fake_logits = tf.constant([[-1.0], [1.0]])
    kgan.losses.hinge_discriminator_loss(real_logits, fake_logits)  # [0.0, 2.5]
    ```
    """
    real = ops.relu(1.0 - _logits(real_logits))
    fake = ops.relu(1.0 + _logits(fake_logits))
    return _per_example(real) + _per_example(fake)


def hinge_generator_loss(fake_logits):
    """-D(G(z)).

    Example:

    ```python
    fake_logits = tf.constant([[-1.0], [1.0]])
    kgan.losses.hinge_generator_loss(fake_logits)  # [1.0, -1.0]
    ```
    """
    return -_per_example(fake_logits)


def least_squares_discriminator_loss(real_outputs, fake_outputs):
    """(D(x) - 1)^2 + D(G(z))^2 (Mao et al. 2017), per example.

    Example:

    ```python
    real_outputs = tf.constant([[2.0], [0.5]])
    fake_outputs = tf.constant([[-1.0], [1.0]])
    kgan.losses.least_squares_discriminator_loss(real_outputs, fake_outputs)  # [2.0, 1.25]
    ```
    """
    real = ops.square(_logits(real_outputs) - 1.0)
    fake = ops.square(_logits(fake_outputs))
    return _per_example(real) + _per_example(fake)


def least_squares_generator_loss(fake_outputs):
    """(D(G(z)) - 1)^2, per example.

    Example:

    ```python
    fake_outputs = tf.constant([[-1.0], [1.0]])
    kgan.losses.least_squares_generator_loss(fake_outputs)  # [4.0, 0.0]
    ```
    """
    return _per_example(ops.square(_logits(fake_outputs) - 1.0))


def gradient_penalty(critic, real, fake, seed, weight=10.0, training=True):
    """WGAN-GP's penalty `weight * (||grad D(x_hat)||_2 - 1)^2`, per example.

    `x_hat = eps * real + (1 - eps) * fake` with one `eps ~ U[0, 1]` per
    example (Gulrajani et al. 2017, Algorithm 1), broadcast over the other
    axes (shape `[B, 1, 1, 1]` for images, `[B, 1]` for vectors).

    The input gradient comes from a nested `tf.GradientTape`, so calling this
    inside the critic's tape gives the second-order gradients the penalty
    needs, eagerly, under `tf.function` and in a `tf.distribute` replica. The
    norm is taken in float32 with the epsilon inside the square root: the
    derivative of `sqrt(s)` is infinite at `s = 0`, and a critic with a zero
    input gradient (e.g. dead ReLUs) would otherwise turn the update into NaN.

    Args:
        critic: a model (or callable) from data to scores `[B, 1]`. It must
            treat examples independently (no batch normalization): the
            gradient of the summed scores is then each example's gradient.
        real: real batch `[B, ...]`.
        fake: generated batch of the same shape.
        seed: a stateless seed, shape `[2]` (e.g. `GAN._next_seed()`), for
            the interpolation weights.
        weight: the penalty coefficient lambda (the paper uses 10).
        training: passed to the critic.

    Returns:
        float32 `[B]`: the weighted penalty of each example; reduce it with
        `global_batch_mean` (or add it to the per-example critic loss first).

    Example:

    ```python
    with tf.GradientTape() as tape:
        loss = wasserstein_critic_loss(critic(real), critic(fake))
        loss += gradient_penalty(critic, real, fake, seed=[0, 1])
        loss = global_batch_mean(loss)
    ```
    """
    real = tf.convert_to_tensor(real)
    fake = tf.cast(fake, real.dtype)
    rank = real.shape.rank
    if rank is None or rank < 2 or fake.shape.rank != rank:
        raise ValueError(
            "gradient_penalty needs real and fake batches [B, ...] of the same "
            f"known rank, got shapes {real.shape} and {fake.shape}."
        )
    batch = tf.shape(real)[0]
    epsilon = tf.random.stateless_uniform(
        tf.concat([[batch], tf.ones([rank - 1], tf.int32)], axis=0), seed=seed, dtype=tf.float32
    )
    epsilon = tf.cast(epsilon, real.dtype)
    interpolates = epsilon * real + (1.0 - epsilon) * fake
    with tf.GradientTape() as tape:
        tape.watch(interpolates)
        scores = tf.reduce_sum(tf.cast(critic(interpolates, training=training), tf.float32))
    gradients = tape.gradient(scores, interpolates)
    if gradients is None:
        raise ValueError(
            "The critic's output does not depend on its input, so the gradient "
            "penalty is undefined; pass the critic model that scores the data."
        )
    gradients = tf.reshape(tf.cast(gradients, tf.float32), [batch, -1])
    norms = tf.sqrt(tf.reduce_sum(tf.square(gradients), axis=1) + 1e-12)
    return float(weight) * tf.square(norms - 1.0)


def _mean_absolute_error(target, output):
    difference = ops.cast(target, "float32") - ops.cast(output, "float32")
    return _per_example(ops.abs(difference))


def cycle_consistency_loss(real, reconstructed):
    """`mean |x - F(G(x))|` per example: CycleGAN's cycle loss (Zhu et al. 2017, eq. 2).

    The L1 distance between images and their round trip through both
    generators, averaged over pixels and channels (the reference's
    `L1Loss`). Multiply by lambda_cycle (10 in the paper).

    Example:

    ```python
    real = tf.zeros([2, 4, 4, 3])
    reconstructed = tf.fill([2, 4, 4, 3], 0.5)  # F(G(real))
    10.0 * kgan.losses.cycle_consistency_loss(real, reconstructed)  # [5.0, 5.0]
    ```
    """
    return _mean_absolute_error(real, reconstructed)


def identity_loss(real, mapped):
    """`mean |y - G(y)|` per example: CycleGAN's identity-mapping loss (sec. 5.2).

    The L1 distance between real images of a generator's target domain and
    what the generator makes of them; it keeps colors when a mapping need
    not change them (Taigman et al. 2017). CycleGAN weights it by
    `0.5 * lambda_cycle`.

    Example:

    ```python
    real_b = tf.zeros([2, 4, 4, 3])
    mapped = tf.fill([2, 4, 4, 3], 0.5)  # G(real_b)
    0.5 * 10.0 * kgan.losses.identity_loss(real_b, mapped)  # [2.5, 2.5]
    ```
    """
    return _mean_absolute_error(real, mapped)
