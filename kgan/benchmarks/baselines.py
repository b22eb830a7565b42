"""Plain keras.io-style GAN trainers: the baseline of `kgan bench --baseline`.

Each class here is a GAN written the way the keras.io examples write it: a
`keras.Model` subclass whose `train_step` holds the whole algorithm, an
ordinary `compile()` (so `steps_per_execution=1` and `jit_compile="auto"`,
which is off on CPU), float32, trained with `fit` on a plain
`from_tensor_slices(...).shuffle(...).batch(...)` pipeline. They train **the
same networks as kgan** (`from_kgan` copies them from a float32 kgan model
built by the same builder: same architecture, same initial weights), with
kgan's default optimizers, so the ratio `kgan bench --baseline` reports
measures kgan's training machinery (precision, steps per execution, XLA,
fused kernels, input pipeline, step code), not a difference in network size.
The copies are written as a keras.io example writes them: where kgan's
networks use a faster subclass of a Keras layer (`FusedBatchNormalization`,
`ForwardGradConv2D`, `ForwardGradConv2DTranspose`), the copy has the Keras
layer itself (`keras.layers.BatchNormalization`, `keras.layers.Conv2D`,
`keras.layers.Conv2DTranspose`).

What each baseline reproduces:

* `KerasIODCGAN` - "GAN overriding `Model.train_step`" (the DCGAN example):
  fakes generated outside the tape, one discriminator call on the
  concatenated fake + real batch with noisy labels, then one generator step,
  `BinaryCrossentropy(from_logits=True)`. The networks are called with
  `training=True` as the WGAN-GP and CycleGAN examples do (the DCGAN
  example's networks have no batch norm, so it omits the flag).
* `KerasIOWGANGP` - "WGAN-GP overriding `Model.train_step`": `d_steps`
  critic updates (here kgan's `n_critic`, 5; the example uses 3) then one
  generator update. **Every critic update reuses the step's one real
  batch** (kgan's WGAN-GP takes a fresh minibatch per update, the paper's
  Algorithm 1); the interpolation weights are `normal`, not uniform, and
  the gradient norm has no epsilon, both as in the example. The bench
  counts real images the same way for both, `batch_size * n_critic` per
  step (the real images the critic scores), so the images/s ratio equals
  the step-rate ratio.
* `KerasIOWGAN` - keras.io has no weight-clipping WGAN; this is the WGAN-GP
  example's `train_step` with the penalty replaced by clipping every critic
  weight to `[-c, c]` after each critic update (same batch reuse).
* `KerasIOCycleGAN` - the CycleGAN example: one persistent tape over all
  forward passes, least-squares adversarial losses, cycle and identity L1
  losses, both discriminators updated from the same forward pass, one Adam
  per network (four), no image pool, no learning-rate decay.

Adding an architecture is one `@register("name")` class with a `from_kgan`
classmethod (and `dataset` if its batches are not plain images).

Example:

```python
from kgan import zoo
from kgan.benchmarks import baselines

kgan_model = zoo.build("dcgan", image_shape=(28, 28, 1), seed=0)
baseline = baselines.build("dcgan", kgan_model)     # same networks, compiled
baseline.fit(baselines.dataset("dcgan", images, batch_size=64), epochs=1)
```
"""

import keras
import tensorflow as tf

from kgan.layers import (
    AnalyticGradLayerNormalization,
    ForwardGradConv2D,
    ForwardGradConv2DTranspose,
    FusedBatchNormalization,
    FusedInstanceNormalization,
    SliceCropping2D,
)
from kgan.optimizers import FusedAdam

_REGISTRY = {}


def register(arch):
    """Class decorator: make the class the baseline of architecture `arch`."""

    def add(cls):
        if arch in _REGISTRY:
            raise ValueError(f"A baseline for {arch!r} is already registered.")
        _REGISTRY[arch] = cls
        return cls

    return add


def available():
    """Sorted names of the architectures that have a baseline."""
    return sorted(_REGISTRY)


def baseline_class(arch):
    """The baseline class of `arch`; raises `ValueError` naming the ones that exist."""
    if arch not in _REGISTRY:
        raise ValueError(
            f"No keras.io-style baseline for architecture {arch!r}; baselines exist for "
            f"{', '.join(available())}. Add one in kgan/benchmarks/baselines.py."
        )
    return _REGISTRY[arch]


def build(arch, kgan_model):
    """A compiled baseline that trains `kgan_model`'s networks (build it in float32)."""
    return baseline_class(arch).from_kgan(kgan_model)


def dataset(arch, images, batch_size, labels=None, seed=0):
    """The baseline's input pipeline over in-memory float32 images in [-1, 1]."""
    return baseline_class(arch).dataset(images, batch_size, labels=labels, seed=seed)


#: kgan's faster subclasses of Keras layers, and the Keras layer a keras.io example uses.
_KERAS_LAYER_OF = {
    FusedBatchNormalization: keras.layers.BatchNormalization,
    AnalyticGradLayerNormalization: keras.layers.LayerNormalization,
    FusedInstanceNormalization: keras.layers.GroupNormalization,
    SliceCropping2D: keras.layers.Cropping2D,
    ForwardGradConv2D: keras.layers.Conv2D,
    ForwardGradConv2DTranspose: keras.layers.Conv2DTranspose,
}


def keras_layers(network):
    """A copy of `network` (same weights) with Keras's own layers for kgan's faster ones.

    Example:

    ```python
    plain = keras_layers(kgan_model.discriminator)   # BatchNormalization, not fused
    ```
    """

    def clone(layer):
        cls = _KERAS_LAYER_OF.get(type(layer), type(layer))
        return cls.from_config(layer.get_config())

    copy = keras.models.clone_model(network, clone_function=clone)
    copy.set_weights(network.get_weights())
    return copy


def _fresh_optimizers(kgan_cls, count=2):
    """`count` new Keras optimizers with the architecture's default settings.

    kgan's defaults are `kgan.optimizers.FusedAdam` (Adam in one kernel); a
    keras.io example uses `keras.optimizers.Adam`, with the same settings.
    """
    optimizers = []
    while len(optimizers) < count:
        optimizers.extend(kgan_cls.default_optimizers())
    return [_keras_optimizer(optimizer) for optimizer in optimizers[:count]]


def _keras_optimizer(optimizer):
    if isinstance(optimizer, FusedAdam):
        return keras.optimizers.Adam.from_config(optimizer.get_config())
    return optimizer


class _ImageGAN(keras.Model):
    """What the latent-space baselines share: networks, latent size, the keras.io pipeline."""

    #: critic updates per train_step, each scoring `batch_size` real images.
    critic_updates = 1

    def __init__(self, discriminator, generator, latent_dim):
        super().__init__()
        self.discriminator = discriminator
        self.generator = generator
        self.latent_dim = latent_dim

    @staticmethod
    def dataset(images, batch_size, labels=None, seed=0):
        # The DCGAN example's pipeline; drop_remainder only so that a ragged
        # last batch does not retrace (the bench repeats the data).
        data = tf.data.Dataset.from_tensor_slices(images)
        return data.shuffle(buffer_size=1024, seed=seed).batch(
            batch_size, drop_remainder=True
        ).prefetch(32)


@register("dcgan")
class KerasIODCGAN(_ImageGAN):
    """keras.io's "GAN overriding `Model.train_step`" on given networks.

    Args:
        discriminator: images -> one logit per image.
        generator: latents -> images.
        latent_dim: latent size.

    Example:

    ```python
    gan = KerasIODCGAN(discriminator=d, generator=g, latent_dim=100)
    gan.compile(d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
                g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
                loss_fn=keras.losses.BinaryCrossentropy(from_logits=True))
    gan.fit(KerasIODCGAN.dataset(images, 64), epochs=1)
    ```
    """

    @classmethod
    def from_kgan(cls, model):
        gan = cls(keras_layers(model.discriminator), keras_layers(model.generator),
                  model.latent_dim)
        g_optimizer, d_optimizer = _fresh_optimizers(type(model))
        gan.compile(
            d_optimizer=d_optimizer, g_optimizer=g_optimizer,
            loss_fn=keras.losses.BinaryCrossentropy(from_logits=True),
        )
        return gan

    def compile(self, d_optimizer, g_optimizer, loss_fn):
        super().compile()
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        self.loss_fn = loss_fn

    def train_step(self, real_images):
        if isinstance(real_images, tuple):
            real_images = real_images[0]
        batch_size = tf.shape(real_images)[0]
        d_loss = self.discriminator_step(real_images, batch_size)
        return {"d_loss": d_loss, "g_loss": self.generator_step(batch_size)}

    # The example's train_step in two methods, its ops unchanged, only so that
    # variants of the discriminator step (time_to_quality's ablation) can
    # replace that half alone.
    def discriminator_step(self, real_images, batch_size):
        """The example's discriminator update; returns the discriminator loss."""
        random_latent_vectors = tf.random.normal(shape=(batch_size, self.latent_dim))
        generated_images = self.generator(random_latent_vectors, training=True)
        combined_images = tf.concat([generated_images, real_images], axis=0)
        labels = tf.concat([tf.ones((batch_size, 1)), tf.zeros((batch_size, 1))], axis=0)
        labels += 0.05 * tf.random.uniform(tf.shape(labels))
        with tf.GradientTape() as tape:
            predictions = self.discriminator(combined_images, training=True)
            d_loss = self.loss_fn(labels, predictions)
        grads = tape.gradient(d_loss, self.discriminator.trainable_weights)
        self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_weights))
        return d_loss

    def generator_step(self, batch_size):
        """The example's generator update; returns the generator loss."""
        random_latent_vectors = tf.random.normal(shape=(batch_size, self.latent_dim))
        misleading_labels = tf.zeros((batch_size, 1))
        with tf.GradientTape() as tape:
            predictions = self.discriminator(
                self.generator(random_latent_vectors, training=True), training=True
            )
            g_loss = self.loss_fn(misleading_labels, predictions)
        grads = tape.gradient(g_loss, self.generator.trainable_weights)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_weights))
        return g_loss


def _discriminator_loss(real_img, fake_img):
    return tf.reduce_mean(fake_img) - tf.reduce_mean(real_img)


def _generator_loss(fake_img):
    return -tf.reduce_mean(fake_img)


@register("wgan_gp")
class KerasIOWGANGP(_ImageGAN):
    """keras.io's "WGAN-GP overriding `Model.train_step`" on given networks.

    Every one of the `discriminator_extra_steps` critic updates reuses the
    step's real batch, as in the example (see the module docstring).

    Args:
        discriminator: the critic, images -> scores.
        generator: latents -> images.
        latent_dim: latent size.
        discriminator_extra_steps: critic updates per generator update.
        gp_weight: penalty weight.

    Example:

    ```python
    wgan = KerasIOWGANGP(d, g, latent_dim=100, discriminator_extra_steps=5)
    wgan.compile(d_optimizer=Adam(1e-4, 0.0, 0.9), g_optimizer=Adam(1e-4, 0.0, 0.9))
    ```
    """

    def __init__(self, discriminator, generator, latent_dim, discriminator_extra_steps=3,
                 gp_weight=10.0):
        super().__init__(discriminator, generator, latent_dim)
        self.d_steps = discriminator_extra_steps
        self.gp_weight = gp_weight

    @classmethod
    def from_kgan(cls, model):
        gan = cls(
            keras_layers(model.discriminator), keras_layers(model.generator), model.latent_dim,
            discriminator_extra_steps=model.n_critic, **cls._critic_options(model),
        )
        g_optimizer, d_optimizer = _fresh_optimizers(type(model))
        gan.compile(d_optimizer=d_optimizer, g_optimizer=g_optimizer)
        return gan

    @staticmethod
    def _critic_options(model):
        """The kgan model's settings of what this baseline adds to the critic loss."""
        return {"gp_weight": model.gp_weight}

    @property
    def critic_updates(self):
        """Critic updates per train_step, each scoring the step's `batch_size` real images."""
        return self.d_steps

    def compile(self, d_optimizer, g_optimizer, d_loss_fn=_discriminator_loss,
                g_loss_fn=_generator_loss):
        super().compile()
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        self.d_loss_fn = d_loss_fn
        self.g_loss_fn = g_loss_fn

    def gradient_penalty(self, batch_size, real_images, fake_images):
        alpha = tf.random.normal([batch_size, 1, 1, 1], 0.0, 1.0)
        diff = fake_images - real_images
        interpolated = real_images + alpha * diff
        with tf.GradientTape() as gp_tape:
            gp_tape.watch(interpolated)
            pred = self.discriminator(interpolated, training=True)
        grads = gp_tape.gradient(pred, [interpolated])[0]
        norm = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=[1, 2, 3]))
        return tf.reduce_mean((norm - 1.0) ** 2)

    def critic_extra_loss(self, batch_size, real_images, fake_images):
        return self.gradient_penalty(batch_size, real_images, fake_images) * self.gp_weight

    def after_critic_update(self):
        pass

    def train_step(self, real_images):
        if isinstance(real_images, tuple):
            real_images = real_images[0]
        batch_size = tf.shape(real_images)[0]
        for _ in range(self.d_steps):
            random_latent_vectors = tf.random.normal(shape=(batch_size, self.latent_dim))
            with tf.GradientTape() as tape:
                fake_images = self.generator(random_latent_vectors, training=True)
                fake_logits = self.discriminator(fake_images, training=True)
                real_logits = self.discriminator(real_images, training=True)
                d_cost = self.d_loss_fn(real_img=real_logits, fake_img=fake_logits)
                d_loss = d_cost + self.critic_extra_loss(batch_size, real_images, fake_images)
            d_gradient = tape.gradient(d_loss, self.discriminator.trainable_variables)
            self.d_optimizer.apply_gradients(
                zip(d_gradient, self.discriminator.trainable_variables)
            )
            self.after_critic_update()

        random_latent_vectors = tf.random.normal(shape=(batch_size, self.latent_dim))
        with tf.GradientTape() as tape:
            generated_images = self.generator(random_latent_vectors, training=True)
            gen_img_logits = self.discriminator(generated_images, training=True)
            g_loss = self.g_loss_fn(gen_img_logits)
        gen_gradient = tape.gradient(g_loss, self.generator.trainable_variables)
        self.g_optimizer.apply_gradients(zip(gen_gradient, self.generator.trainable_variables))
        return {"d_loss": d_loss, "g_loss": g_loss}


@register("wgan")
class KerasIOWGAN(KerasIOWGANGP):
    """The WGAN-GP example's `train_step` with weight clipping instead of the penalty.

    Args:
        discriminator: the critic.
        generator: latents -> images.
        latent_dim: latent size.
        discriminator_extra_steps: critic updates per generator update.
        clip_value: every critic weight is clipped to `[-clip_value, clip_value]`
            after each critic update.

    Example:

    ```python
    wgan = KerasIOWGAN(d, g, latent_dim=100, discriminator_extra_steps=5)
    wgan.compile(d_optimizer=RMSprop(5e-5), g_optimizer=RMSprop(5e-5))
    ```
    """

    def __init__(self, discriminator, generator, latent_dim, discriminator_extra_steps=5,
                 clip_value=0.01):
        super().__init__(discriminator, generator, latent_dim, discriminator_extra_steps)
        self.clip_value = clip_value

    @staticmethod
    def _critic_options(model):
        return {"clip_value": model.clip_value}

    def critic_extra_loss(self, batch_size, real_images, fake_images):
        return 0.0

    def after_critic_update(self):
        for weight in self.discriminator.trainable_variables:
            weight.assign(tf.clip_by_value(weight, -self.clip_value, self.clip_value))


@register("cyclegan")
class KerasIOCycleGAN(keras.Model):
    """keras.io's CycleGAN example on given networks.

    Args:
        generator_G: X -> Y.
        generator_F: Y -> X.
        discriminator_X: judges X.
        discriminator_Y: judges Y.
        lambda_cycle: cycle-loss weight.
        lambda_identity: identity-loss weight, as a fraction of `lambda_cycle`.

    Example:

    ```python
    gan = KerasIOCycleGAN(g, f, d_x, d_y)
    gan.compile(*[keras.optimizers.Adam(2e-4, beta_1=0.5) for _ in range(4)])
    gan.fit(KerasIOCycleGAN.dataset((horses, zebras), 1), epochs=1)
    ```
    """

    critic_updates = 1

    def __init__(self, generator_G, generator_F, discriminator_X, discriminator_Y,
                 lambda_cycle=10.0, lambda_identity=0.5):
        super().__init__()
        self.gen_G = generator_G
        self.gen_F = generator_F
        self.disc_X = discriminator_X
        self.disc_Y = discriminator_Y
        self.lambda_cycle = lambda_cycle
        self.lambda_identity = lambda_identity

    @classmethod
    def from_kgan(cls, model):
        gan = cls(
            keras_layers(model.generator_ab), keras_layers(model.generator_ba),
            keras_layers(model.discriminator_a), keras_layers(model.discriminator_b),
            lambda_cycle=model.lambda_cycle,
            lambda_identity=model.identity_weight,
        )
        gan.compile(*_fresh_optimizers(type(model), 4))
        return gan

    @staticmethod
    def dataset(images, batch_size, labels=None, seed=0):
        """`images` is a pair `(images_x, images_y)`; the example's per-domain pipeline, zipped."""
        domains = [
            tf.data.Dataset.from_tensor_slices(x).cache().shuffle(256, seed=seed + i).batch(
                batch_size, drop_remainder=True
            )
            for i, x in enumerate(images)
        ]
        return tf.data.Dataset.zip(tuple(domains))

    def compile(self, gen_G_optimizer, gen_F_optimizer, disc_X_optimizer, disc_Y_optimizer,
                gen_loss_fn=None, disc_loss_fn=None):
        super().compile()
        self.gen_G_optimizer = gen_G_optimizer
        self.gen_F_optimizer = gen_F_optimizer
        self.disc_X_optimizer = disc_X_optimizer
        self.disc_Y_optimizer = disc_Y_optimizer
        adv_loss_fn = keras.losses.MeanSquaredError()

        def generator_loss_fn(fake):
            return adv_loss_fn(tf.ones_like(fake), fake)

        def discriminator_loss_fn(real, fake):
            real_loss = adv_loss_fn(tf.ones_like(real), real)
            fake_loss = adv_loss_fn(tf.zeros_like(fake), fake)
            return (real_loss + fake_loss) * 0.5

        self.generator_loss_fn = gen_loss_fn or generator_loss_fn
        self.discriminator_loss_fn = disc_loss_fn or discriminator_loss_fn
        self.cycle_loss_fn = keras.losses.MeanAbsoluteError()
        self.identity_loss_fn = keras.losses.MeanAbsoluteError()

    def train_step(self, batch_data):
        real_x, real_y = batch_data
        with tf.GradientTape(persistent=True) as tape:
            fake_y = self.gen_G(real_x, training=True)
            fake_x = self.gen_F(real_y, training=True)
            cycled_x = self.gen_F(fake_y, training=True)
            cycled_y = self.gen_G(fake_x, training=True)
            same_x = self.gen_F(real_x, training=True)
            same_y = self.gen_G(real_y, training=True)
            disc_real_x = self.disc_X(real_x, training=True)
            disc_fake_x = self.disc_X(fake_x, training=True)
            disc_real_y = self.disc_Y(real_y, training=True)
            disc_fake_y = self.disc_Y(fake_y, training=True)
            gen_G_loss = self.generator_loss_fn(disc_fake_y)
            gen_F_loss = self.generator_loss_fn(disc_fake_x)
            cycle_loss_G = self.cycle_loss_fn(real_y, cycled_y) * self.lambda_cycle
            cycle_loss_F = self.cycle_loss_fn(real_x, cycled_x) * self.lambda_cycle
            id_loss_G = self.identity_loss_fn(real_y, same_y) * self.lambda_cycle * (
                self.lambda_identity
            )
            id_loss_F = self.identity_loss_fn(real_x, same_x) * self.lambda_cycle * (
                self.lambda_identity
            )
            total_loss_G = gen_G_loss + cycle_loss_G + id_loss_G
            total_loss_F = gen_F_loss + cycle_loss_F + id_loss_F
            disc_X_loss = self.discriminator_loss_fn(disc_real_x, disc_fake_x)
            disc_Y_loss = self.discriminator_loss_fn(disc_real_y, disc_fake_y)
        grads_G = tape.gradient(total_loss_G, self.gen_G.trainable_variables)
        grads_F = tape.gradient(total_loss_F, self.gen_F.trainable_variables)
        disc_X_grads = tape.gradient(disc_X_loss, self.disc_X.trainable_variables)
        disc_Y_grads = tape.gradient(disc_Y_loss, self.disc_Y.trainable_variables)
        self.gen_G_optimizer.apply_gradients(zip(grads_G, self.gen_G.trainable_variables))
        self.gen_F_optimizer.apply_gradients(zip(grads_F, self.gen_F.trainable_variables))
        self.disc_X_optimizer.apply_gradients(zip(disc_X_grads, self.disc_X.trainable_variables))
        self.disc_Y_optimizer.apply_gradients(zip(disc_Y_grads, self.disc_Y.trainable_variables))
        return {
            "G_loss": total_loss_G,
            "F_loss": total_loss_F,
            "D_X_loss": disc_X_loss,
            "D_Y_loss": disc_Y_loss,
        }


@register("conditional_gan")
class KerasIOConditionalGAN(_ImageGAN):
    """keras.io's "Conditional GAN" example on given networks.

    The example conditions by concatenating one-hot labels to the latents
    and to the discriminator's image channels; kgan's conditional networks
    take the labels as a second input instead (`generator([z, labels])`,
    `discriminator([images, labels])`), so this baseline passes them there
    and keeps the rest of the example's step: fakes outside the tape, one
    discriminator call on the concatenated fake + real batch, then one
    generator step, `BinaryCrossentropy(from_logits=True)`, loss trackers.

    Args:
        discriminator: `[images, labels]` -> logits.
        generator: `[latents, labels]` -> images.
        latent_dim: latent size.

    Example:

    ```python
    gan = KerasIOConditionalGAN(d, g, latent_dim=100)
    gan.compile(d_optimizer=Adam(2e-4, beta_1=0.5), g_optimizer=Adam(2e-4, beta_1=0.5),
                loss_fn=keras.losses.BinaryCrossentropy(from_logits=True))
    gan.fit(KerasIOConditionalGAN.dataset(images, 64, labels=labels), epochs=1)
    ```
    """

    def __init__(self, discriminator, generator, latent_dim):
        super().__init__(discriminator, generator, latent_dim)
        self.gen_loss_tracker = keras.metrics.Mean(name="generator_loss")
        self.disc_loss_tracker = keras.metrics.Mean(name="discriminator_loss")

    @classmethod
    def from_kgan(cls, model):
        gan = cls(keras_layers(model.discriminator), keras_layers(model.generator),
                  model.latent_dim)
        g_optimizer, d_optimizer = _fresh_optimizers(type(model))
        gan.compile(
            d_optimizer=d_optimizer, g_optimizer=g_optimizer,
            loss_fn=keras.losses.BinaryCrossentropy(from_logits=True),
        )
        return gan

    @staticmethod
    def dataset(images, batch_size, labels=None, seed=0):
        if labels is None:
            raise ValueError("The conditional baseline trains on (images, labels); pass labels.")
        data = tf.data.Dataset.from_tensor_slices((images, labels.astype("int32")))
        return data.shuffle(buffer_size=1024, seed=seed).batch(batch_size, drop_remainder=True)

    @property
    def metrics(self):
        return [self.gen_loss_tracker, self.disc_loss_tracker]

    def compile(self, d_optimizer, g_optimizer, loss_fn):
        super().compile()
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        self.loss_fn = loss_fn

    def train_step(self, data):
        real_images, class_labels = data
        batch_size = tf.shape(real_images)[0]
        random_latent_vectors = tf.random.normal(shape=(batch_size, self.latent_dim))
        generated_images = self.generator([random_latent_vectors, class_labels], training=True)
        combined_images = tf.concat([generated_images, real_images], axis=0)
        combined_classes = tf.concat([class_labels, class_labels], axis=0)
        labels = tf.concat([tf.ones((batch_size, 1)), tf.zeros((batch_size, 1))], axis=0)
        with tf.GradientTape() as tape:
            predictions = self.discriminator([combined_images, combined_classes], training=True)
            d_loss = self.loss_fn(labels, predictions)
        grads = tape.gradient(d_loss, self.discriminator.trainable_weights)
        self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_weights))

        random_latent_vectors = tf.random.normal(shape=(batch_size, self.latent_dim))
        misleading_labels = tf.zeros((batch_size, 1))
        with tf.GradientTape() as tape:
            fake_images = self.generator([random_latent_vectors, class_labels], training=True)
            predictions = self.discriminator([fake_images, class_labels], training=True)
            g_loss = self.loss_fn(misleading_labels, predictions)
        grads = tape.gradient(g_loss, self.generator.trainable_weights)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_weights))
        self.gen_loss_tracker.update_state(g_loss)
        self.disc_loss_tracker.update_state(d_loss)
        return {
            "g_loss": self.gen_loss_tracker.result(),
            "d_loss": self.disc_loss_tracker.result(),
        }
