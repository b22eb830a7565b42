"""WGAN (Arjovsky, Chintala & Bottou 2017) and WGAN-GP (Gulrajani et al. 2017).

Both train a critic `f` (no sigmoid: its output is a score, not a
probability) to estimate the Wasserstein-1 distance `E f(x) - E f(G(z))`,
and the generator to lower it. They differ only in how `f` is kept
1-Lipschitz: WGAN clips every critic weight to `[-c, c]` after each critic
update; WGAN-GP adds the gradient penalty `lambda * (||grad f(x_hat)|| - 1)^2`
on random interpolates of real and generated data.

Both follow the papers' Algorithm 1: `n_critic` critic updates, each on a
fresh real minibatch and fresh latents, then one generator update. One
`train_step` therefore consumes `n_critic` minibatches (`batches_per_step`).
"""

import numbers

import keras
import tensorflow as tf

from kgan import losses, zoo
from kgan.models.gan import GAN
from kgan.optimizers import FusedAdam
from kgan.networks import dcgan_discriminator, dcgan_generator


def _check_positive_int(value, name):
    # numbers.Integral: numpy ints (e.g. from a config array) are ints too.
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive int (the papers use 5), got {value!r}.")
    return int(value)


def _check_positive_float(value, name, example):
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if isinstance(value, bool) or not 0.0 < number < float("inf"):
        raise ValueError(
            f"{name} must be a positive number (the paper uses {example}), got {value!r}."
        )
    return number


class _WassersteinGAN(GAN):
    """What WGAN and WGAN-GP share: the critic schedule and the generator step.

    Subclasses define `critic_loss` (and optionally `after_critic_update`).
    """

    #: ADA's heuristic takes sign(f(x) - m), m halfway between the batch's mean
    #: real and fake scores: a critic's scores have no fixed origin (its loss
    #: is unchanged by adding a constant), so sign(f(x)) alone would measure
    #: the drift of that constant, not overfitting.
    ada_center = "midpoint"

    def __init__(
        self, generator, discriminator, n_critic=5, seed=None, ema_decay=None, augment=None,
        **kwargs,
    ):
        super().__init__(
            generator, discriminator, seed=seed, ema_decay=ema_decay, augment=augment, **kwargs
        )
        self.n_critic = _check_positive_int(n_critic, "n_critic")
        # Instance attribute: pipelines read it to yield n_critic minibatches per step.
        self.batches_per_step = self.n_critic

    def get_config(self):
        config = super().get_config()
        config["n_critic"] = self.n_critic
        return config

    @classmethod
    def _build_networks(cls, image_shape, latent_dim, filters, refine_layers, normalization,
                        dropout):
        generator = dcgan_generator(
            image_shape, latent_dim=latent_dim, filters=filters, refine_layers=refine_layers
        )
        critic = dcgan_discriminator(
            image_shape, filters=filters, normalization=normalization, dropout=dropout,
            name="critic",
        )
        return generator, critic

    def critic_scores(self, real, fake):
        """The critic's scores `(f(x), f(G(z)))` in a critic update.

        Two calls, as in both papers' code: with WGAN's batch norm each batch
        is normalized alone. WGAN-GP scores both in one call.
        """
        return self.discriminator(real, training=True), self.discriminator(fake, training=True)

    def critic_loss(self, real, fake):
        """Per-example critic loss `[B]` and a dict of extra per-example terms.

        Here `f(G(z)) - f(x)`, the negative Wasserstein estimate; WGAN-GP adds
        its penalty.
        """
        real_scores, fake_scores = self.critic_scores(real, fake)
        # Here, where the scores are: ADA's r_t, once per critic update.
        self.observe_discriminator(real_scores, fake_scores)
        return losses.wasserstein_critic_loss(real_scores, fake_scores), {}

    def after_critic_update(self):
        """Hook run after every critic update (WGAN clips weights here)."""

    def train_step(self, data):
        real, _ = self._split_batch(data)
        minibatches = self.split_minibatches(real)
        batch_size = tf.shape(minibatches[0])[0]

        d_losses, extras = [], []
        # Unrolled over the static n_critic: each update sees its own real
        # minibatch and its own latents (Algorithm 1 of both papers).
        for real_minibatch in minibatches:
            # Fakes outside the tape: the critic update does not differentiate
            # through the generator, so recording it would only cost memory.
            fake = self.generator(self.sample_latents(batch_size), training=True)
            with tf.GradientTape() as tape:
                d_loss, extra = self.critic_loss(
                    self.discriminator_view(real_minibatch), self.discriminator_view(fake)
                )
                d_loss_scaled = self.scaled_loss(self.d_optimizer, d_loss)
            self.apply_gradients(
                self.d_optimizer, tape, d_loss_scaled, self.discriminator.trainable_variables
            )
            self.after_critic_update()
            d_losses.append(tf.reduce_mean(d_loss))
            extras.append({name: tf.reduce_mean(value) for name, value in extra.items()})

        with tf.GradientTape() as tape:
            fake = self.generator(self.sample_latents(batch_size), training=True)
            scores = self.discriminator(self.discriminator_view(fake), training=True)
            g_loss = losses.wasserstein_generator_loss(scores)
            g_loss_scaled = self.scaled_loss(self.g_optimizer, g_loss)
        self.apply_gradients(
            self.g_optimizer, tape, g_loss_scaled, self.generator.trainable_variables
        )
        self.update_ema()
        # Losses averaged over the n_critic critic updates of this step.
        report = {"d_loss": tf.add_n(d_losses) / len(d_losses), "g_loss": tf.reduce_mean(g_loss)}
        for name in extras[0]:
            report[name] = tf.add_n([e[name] for e in extras]) / len(extras)
        return self.report_losses(**report)


@keras.saving.register_keras_serializable(package="kgan")
class WGAN(_WassersteinGAN):
    """Wasserstein GAN with weight clipping (Arjovsky et al. 2017).

    Algorithm 1 of the paper: per `train_step`, `n_critic` critic updates,
    each on a fresh real minibatch and fresh latents, minimizing
    `f(G(z)) - f(x)` (`kgan.losses.wasserstein_critic_loss`); after **every**
    critic update every trainable critic weight is clipped to
    `[-clip_value, clip_value]` (batch-norm scales and offsets included, as in
    the authors' code); then one generator update minimizing `-f(G(z))`.
    Defaults are the paper's: RMSprop(5e-5) for both networks, c = 0.01,
    n_critic = 5. (The authors' code also runs 100 critic updates for the
    first 25 and every 500th generator step; the paper's algorithm does not,
    and neither does this class.)

    **Batch arithmetic.** One `train_step` consumes `n_critic` minibatches
    (`model.batches_per_step == n_critic`): a batch of `n_critic * B` examples
    is split into `n_critic` minibatches of `B`, one per critic update, and
    the generator update uses `B` latents. So fit with batches of
    `n_critic * B`, e.g. `kgan.data.load(name, batch_size=B,
    repeat_batches=model.batches_per_step)` or `fit(x_array,
    batch_size=B * n_critic)`; one epoch over N examples makes
    `N / (n_critic * B)` generator updates. A batch that is not a multiple of
    `n_critic` raises `InputValidationError` when the step is traced. Under a
    distribution strategy each replica gets `n_critic * B / replicas`, so
    `B` must also be divisible by the number of replicas.

    Args:
        generator: latents -> data model (e.g. `kgan.networks.dcgan_generator`
            or `kgan.networks.mlp_generator`).
        discriminator: the critic, data -> scores `[B, 1]` with no sigmoid.
        n_critic: critic updates per generator update.
        clip_value: the clipping bound c.
        seed: seed of the model's random stream.
        ema_decay: keep an EMA generator with this decay (see `GAN`).
        augment: DiffAugment policy or `"ada"` (images only; see `GAN`).
        **kwargs: passed to `keras.Model` (e.g. `name`).

    Example:

    ```python
    gan = kgan.models.WGAN.from_image_shape((28, 28, 1), latent_dim=64)
    gan.compile()  # RMSprop(5e-5) for both networks
    data = kgan.data.load("mnist_5k", batch_size=64, repeat_batches=gan.batches_per_step)
    gan.fit(data, epochs=5)  # each step: 5 critic updates of 64, 1 generator update
    ```
    """

    def __init__(
        self, generator, discriminator, n_critic=5, clip_value=0.01, seed=None, ema_decay=None,
        augment=None, **kwargs,
    ):
        super().__init__(
            generator, discriminator, n_critic=n_critic, seed=seed, ema_decay=ema_decay,
            augment=augment, **kwargs,
        )
        self.clip_value = _check_positive_float(clip_value, "clip_value", 0.01)

    @classmethod
    def from_image_shape(
        cls, image_shape, latent_dim=100, filters=64, n_critic=5, clip_value=0.01, seed=None,
        ema_decay=None, augment=None, refine_layers=0, dropout=0.0, **kwargs,
    ):
        """Build a WGAN with DCGAN networks sized for `image_shape`.

        The critic keeps DCGAN's batch norm, as in the paper's DCGAN
        experiments (weight clipping, unlike the gradient penalty, is
        compatible with it); only the sigmoid is gone (the networks output
        logits already).

        Args:
            image_shape: `(H, W, C)`, e.g. `(28, 28, 1)`, `(32, 32, 3)`, `(64, 64, 3)`.
            latent_dim: latent size (the paper uses 100).
            filters: base width of both networks.
            n_critic: critic updates per generator update.
            clip_value: the clipping bound c.
            seed: seed of the model's random stream.
            ema_decay: keep an EMA generator with this decay (see `GAN`).
            augment: DiffAugment policy, e.g. `"color,translation,cutout"`.
            refine_layers: stride-1 generator blocks (see `dcgan_generator`).
            dropout: critic dropout rate (0 is the paper).
            **kwargs: passed to the constructor (e.g. `name`).

        Example:

        ```python
        gan = kgan.WGAN.from_image_shape((28, 28, 1), latent_dim=64, n_critic=5)
        gan.batches_per_step  # 5: load data with repeat_batches=gan.batches_per_step
        ```
        """
        generator, critic = cls._build_networks(
            image_shape, latent_dim, filters, refine_layers, "batch", dropout
        )
        return cls(
            generator, critic, n_critic=n_critic, clip_value=clip_value, seed=seed,
            ema_decay=ema_decay, augment=augment, **kwargs,
        )

    @classmethod
    def default_optimizers(cls):
        """RMSprop(5e-5) for both networks (Arjovsky et al. 2017, Algorithm 1).

        The paper prefers RMSprop to momentum methods such as Adam, whose
        updates it found unstable with a clipped critic. `rho=0.99` is the
        smoothing of the authors' PyTorch code (Keras' default is 0.9), and
        `epsilon=1e-16` makes Keras's update theirs: Keras divides by
        `sqrt(v + epsilon)`, PyTorch by `sqrt(v) + 1e-8`, and `sqrt(v + 1e-16)`
        is within 1e-8 of the latter. With Keras's default 1e-7 the floor
        `sqrt(1e-7) = 3.2e-4` sits at a clipped critic's typical gradient
        (median 2.8e-4, generator 1.3e-4, over one batch of `wgan_mnist`), so
        the steps at the median weight were 0.7x (critic) and 0.4x
        (generator) the authors'. The `wgan_mnist` recipe (200 epochs) gave
        FCD 195.4 and 203.7 with 1e-7 against 147.8 and 151.7 with 1e-16 (seeds 0
        and 1, `kgan evaluate`, 2,500 samples); the shipped preset is trained
        with these defaults.

        Example:

        ```python
        g_optimizer, d_optimizer = kgan.WGAN.default_optimizers()
        ```
        """
        return (
            keras.optimizers.RMSprop(5e-5, rho=0.99, epsilon=1e-16),
            keras.optimizers.RMSprop(5e-5, rho=0.99, epsilon=1e-16),
        )

    def get_config(self):
        config = super().get_config()
        config["clip_value"] = self.clip_value
        return config

    def after_critic_update(self):
        # Each replica clips its own copy of the (identical, already synced)
        # weights: a deterministic map keeps the copies equal, the way Keras
        # applies variable constraints after an optimizer update.
        for variable in self.discriminator.trainable_variables:
            variable.assign(tf.clip_by_value(variable, -self.clip_value, self.clip_value))


@keras.saving.register_keras_serializable(package="kgan")
class WGANGP(_WassersteinGAN):
    """Wasserstein GAN with gradient penalty (Gulrajani et al. 2017).

    Algorithm 1 of the paper: per `train_step`, `n_critic` critic updates,
    each on a fresh real minibatch `x` and fresh latents, minimizing

        f(x~) - f(x) + lambda * (||grad f(x_hat)||_2 - 1)^2,
        x~ = G(z),  x_hat = eps * x + (1 - eps) * x~,  eps ~ U[0, 1] per example

    (`kgan.losses.wasserstein_critic_loss` + `kgan.losses.gradient_penalty`),
    then one generator update minimizing `-f(G(z))`. Defaults are the
    paper's: lambda = 10, n_critic = 5, Adam(1e-4, beta_1=0, beta_2=0.9) for
    both networks. The penalty's input gradient is taken with a nested
    `GradientTape` and its norm in float32 with an epsilon inside the square
    root (no NaN where the gradient vanishes). With DiffAugment the penalty
    is taken between the augmented real and fake batches, the data the
    critic is actually scored on.

    The critic must not use batch normalization: the penalty constrains each
    example's gradient, and batch statistics make one example's score depend
    on the others (paper, sec. 4). The constructor refuses a critic with a
    `BatchNormalization` layer; use layer normalization or none. Since the
    critic treats examples independently, real and fake are scored in one
    call. Layer normalization through the penalty needs exact second-order
    gradients, which Keras's layer does not give (see
    `kgan.layers.AnalyticGradLayerNormalization`, which
    `from_image_shape`'s critic uses).

    **Batch arithmetic** is WGAN's: one `train_step` consumes `n_critic`
    minibatches (`model.batches_per_step == n_critic`), so fit with batches of
    `n_critic * B` (`kgan.data.load(..., batch_size=B,
    repeat_batches=model.batches_per_step)` or `fit(x, batch_size=B *
    n_critic)`); each critic update sees `B` real examples and the generator
    update `B` latents. A batch that is not a multiple of `n_critic` raises
    `InputValidationError` when the step is traced.

    For 2-D toy data the authors' `gan_toy.py` departs from the paper's
    defaults: `gp_weight=0.1` and Adam(1e-4, beta_1=0.5, beta_2=0.9) (with
    lambda = 10 we saw 8-Gaussians samples oscillate between modes for
    thousands of steps; with the toy settings they cover all eight).

    Besides `d_loss` (penalty included) and `g_loss`, `fit` reports
    `gradient_penalty`, the weighted penalty's mean; the Wasserstein estimate
    is `gradient_penalty - d_loss`.

    Args:
        generator: latents -> data model.
        discriminator: the critic, data -> scores `[B, 1]`, without batch norm.
        n_critic: critic updates per generator update.
        gp_weight: the penalty coefficient lambda.
        seed: seed of the model's random stream (latents and interpolation
            weights).
        ema_decay: keep an EMA generator with this decay (see `GAN`).
        augment: DiffAugment policy or `"ada"` (images only; see `GAN`).
        **kwargs: passed to `keras.Model` (e.g. `name`).

    Example:

    ```python
    g = kgan.networks.mlp_generator(latent_dim=2, data_dim=2)
    gan = kgan.models.WGANGP(g, kgan.networks.mlp_discriminator(data_dim=2))
    gan.compile()  # Adam(1e-4, beta_1=0, beta_2=0.9)
    points = tf.data.Dataset.from_tensor_slices(x).shuffle(10_000).batch(
        256 * gan.batches_per_step, drop_remainder=True)
    gan.fit(points, epochs=10)  # each step: 5 critic updates of 256
    ```
    """

    loss_names = ("d_loss", "g_loss", "gradient_penalty")

    def __init__(
        self, generator, discriminator, n_critic=5, gp_weight=10.0, seed=None, ema_decay=None,
        augment=None, **kwargs,
    ):
        batch_norms = _batch_norm_layers(discriminator)
        if batch_norms:
            raise ValueError(
                "WGAN-GP's critic must not use batch normalization: the gradient "
                "penalty constrains each example's gradient, and batch statistics "
                "couple the examples of a batch (Gulrajani et al. 2017, sec. 4). "
                f"Found {', '.join(repr(n) for n in batch_norms)}. Build the critic "
                "with normalization='layer' or None, e.g. "
                "kgan.networks.dcgan_discriminator(shape, normalization='layer')."
            )
        super().__init__(
            generator, discriminator, n_critic=n_critic, seed=seed, ema_decay=ema_decay,
            augment=augment, **kwargs,
        )
        self.gp_weight = _check_positive_float(gp_weight, "gp_weight", 10)

    @classmethod
    def from_image_shape(
        cls, image_shape, latent_dim=100, filters=64, n_critic=5, gp_weight=10.0, seed=None,
        ema_decay=None, augment=None, refine_layers=0, dropout=0.0, normalization="layer",
        **kwargs,
    ):
        """Build a WGAN-GP with DCGAN networks sized for `image_shape`.

        The critic replaces DCGAN's batch norm with layer norm, the paper's
        drop-in replacement; the generator keeps batch norm.

        Args:
            image_shape: `(H, W, C)`, e.g. `(28, 28, 1)`, `(32, 32, 3)`, `(64, 64, 3)`.
            latent_dim: latent size.
            filters: base width of both networks.
            n_critic: critic updates per generator update.
            gp_weight: the penalty coefficient lambda.
            seed: seed of the model's random stream.
            ema_decay: keep an EMA generator with this decay (see `GAN`).
            augment: DiffAugment policy, e.g. `"color,translation,cutout"`.
            refine_layers: stride-1 generator blocks (see `dcgan_generator`).
            dropout: critic dropout rate (0 is the paper).
            normalization: the critic's, `"layer"` or `None` (not `"batch"`).
            **kwargs: passed to the constructor (e.g. `name`).

        Example:

        ```python
        gan = kgan.WGANGP.from_image_shape((32, 32, 3), latent_dim=128, filters=32)
        gan.compile()  # Adam(1e-4, beta_1=0, beta_2=0.9) for both networks
        ```
        """
        if normalization not in ("layer", None):
            raise ValueError(
                f"WGAN-GP's critic takes normalization='layer' or None, got "
                f"{normalization!r}: batch norm breaks the per-example gradient penalty."
            )
        generator, critic = cls._build_networks(
            image_shape, latent_dim, filters, refine_layers, normalization, dropout
        )
        return cls(
            generator, critic, n_critic=n_critic, gp_weight=gp_weight, seed=seed,
            ema_decay=ema_decay, augment=augment, **kwargs,
        )

    @classmethod
    def default_optimizers(cls):
        """Adam(1e-4, beta_1=0, beta_2=0.9) for both networks (the paper's)."""
        return (
            FusedAdam(1e-4, beta_1=0.0, beta_2=0.9),
            FusedAdam(1e-4, beta_1=0.0, beta_2=0.9),
        )

    def get_config(self):
        config = super().get_config()
        config["gp_weight"] = self.gp_weight
        return config

    def critic_scores(self, real, fake):
        """`(f(x), f(G(z)))` from one critic call on both batches.

        The critic treats examples independently (no batch norm, which the
        penalty rules out anyway), so the scores are two calls', and each
        layer runs once per update instead of twice.
        """
        count = tf.shape(real)[0]
        scores = self.discriminator(
            tf.concat([real, tf.cast(fake, real.dtype)], axis=0), training=True
        )
        return scores[:count], scores[count:]

    def critic_loss(self, real, fake):
        wasserstein, _ = super().critic_loss(real, fake)
        penalty = losses.gradient_penalty(
            self.discriminator, real, fake, seed=self._next_seed(), weight=self.gp_weight
        )
        return wasserstein + penalty, {"gradient_penalty": penalty}


def _batch_norm_layers(model):
    """Names of the BatchNormalization layers in `model`, nested models included."""
    return sorted(layer.name for layer in model._flatten_layers(include_self=False)
                  if isinstance(layer, keras.layers.BatchNormalization))


zoo.register_architecture(
    "wgan", WGAN, WGAN.from_image_shape,
    "Arjovsky et al. 2017: DCGAN networks, Wasserstein critic with weight clipping, RMSprop, n_critic=5",
)
zoo.register_architecture(
    "wgan_gp", WGANGP, WGANGP.from_image_shape,
    "Gulrajani et al. 2017: DCGAN networks, layer-norm critic, gradient penalty, Adam, n_critic=5",
)
