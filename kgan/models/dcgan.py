"""DCGAN (Radford, Metz & Chintala 2016)."""

import keras
import tensorflow as tf

from kgan import losses, zoo
from kgan.models.gan import GAN
from kgan.networks import dcgan_discriminator, dcgan_generator


@keras.saving.register_keras_serializable(package="kgan")
class DCGAN(GAN):
    """Deep convolutional GAN with the non-saturating loss.

    One `train_step` makes one discriminator update, then one generator
    update. **The generator is updated against the discriminator from after its
    step**: it is the alternating scheme of Goodfellow et al.'s Algorithm 1 and
    of the DCGAN reference code, in which G always follows the freshest D.
    Simultaneous updates (G against the old D) save one D forward pass but make
    G chase a critic that has already moved, which is less stable. Each update
    draws its own latents.

    Defaults are the paper's: Adam(2e-4, beta_1=0.5) for both networks,
    batch norm, LeakyReLU(0.2) in D, N(0, 0.02) init, tanh output.

    Args:
        generator: latents -> images model (see `kgan.networks.dcgan_generator`).
        discriminator: images -> logits model.
        seed: optional seed for the latent stream.

    Example:

    ```python
    gan = DCGAN.from_image_shape((28, 28, 1), latent_dim=64)
    gan.compile()
    gan.fit(kgan.data.load("mnist_5k", batch_size=64), epochs=5)
    ```
    """

    @classmethod
    def from_image_shape(
        cls, image_shape, latent_dim=100, filters=64, seed=None, ema_decay=None,
        refine_layers=0, dropout=0.0, augment=None, **kwargs,
    ):
        """Build a DCGAN with the paper's networks sized for `image_shape`.

        Args:
            image_shape: `(H, W, C)`, e.g. `(28, 28, 1)`, `(32, 32, 3)`, `(64, 64, 3)`.
            latent_dim: latent size (the paper uses 100).
            filters: base width of both networks.
            seed: seed of the model's random stream.
            ema_decay: keep an EMA generator with this decay (see `GAN`).
            refine_layers: stride-1 generator blocks at the start resolution
                (see `kgan.networks.dcgan_generator`; 0 is the paper).
            dropout: discriminator dropout rate (0 is the paper).
            augment: DiffAugment policy, e.g. `"color,translation,cutout"`, or
                `"ada"` (adaptive augmentation, see `GAN`).
            **kwargs: passed to the constructor (e.g. `name`, `ada_target`).

        Example:

        ```python
        gan = kgan.DCGAN.from_image_shape((32, 32, 3), latent_dim=64, filters=32, seed=0)
        gan.latent_dim, gan.image_shape  # (64, (32, 32, 3))
        ```
        """
        return cls(
            generator=dcgan_generator(
                image_shape, latent_dim=latent_dim, filters=filters, refine_layers=refine_layers
            ),
            discriminator=dcgan_discriminator(image_shape, filters=filters, dropout=dropout),
            seed=seed,
            ema_decay=ema_decay,
            augment=augment,
            **kwargs,
        )

    def train_step(self, data):
        real, _ = self._split_batch(data)
        batch_size = tf.shape(real)[0]

        with tf.GradientTape() as tape:
            fake = self.generator(self.sample_latents(batch_size), training=True)
            real_logits = self.discriminator(self.discriminator_view(real), training=True)
            fake_logits = self.discriminator(self.discriminator_view(fake), training=True)
            d_loss = losses.discriminator_loss(real_logits, fake_logits)
            self.observe_discriminator(real_logits, fake_logits)  # ADA r_t; no-op without ADA
            d_loss_scaled = self.scaled_loss(self.d_optimizer, d_loss)
        self.apply_gradients(
            self.d_optimizer, tape, d_loss_scaled, self.discriminator.trainable_variables
        )

        with tf.GradientTape() as tape:
            fake = self.generator(self.sample_latents(batch_size), training=True)
            fake_logits = self.discriminator(self.discriminator_view(fake), training=True)
            g_loss = losses.non_saturating_generator_loss(fake_logits)
            g_loss_scaled = self.scaled_loss(self.g_optimizer, g_loss)
        self.apply_gradients(
            self.g_optimizer, tape, g_loss_scaled, self.generator.trainable_variables
        )
        self.update_ema()
        return self.report_losses(d_loss=tf.reduce_mean(d_loss), g_loss=tf.reduce_mean(g_loss))


zoo.register_architecture(
    "dcgan", DCGAN, DCGAN.from_image_shape,
    "Radford et al. 2016: conv/BN generator and discriminator, non-saturating loss",
)
