"""CycleGAN (Zhu, Park, Isola & Efros 2017): unpaired image-to-image translation.

Two generators, `G: A -> B` and `F: B -> A`, and two PatchGAN discriminators,
`D_B` (real B vs `G(a)`) and `D_A` (real A vs `F(b)`), trained as the paper
and its reference code (`junyanz/pytorch-CycleGAN-and-pix2pix`) do:

* least-squares adversarial losses (Mao et al. 2017);
* cycle consistency `lambda_cycle * (|F(G(a)) - a| + |G(F(b)) - b|)`, L1,
  `lambda_cycle = 10`;
* identity mapping `identity_weight * lambda_cycle * (|G(b) - b| + |F(a) - a|)`,
  `identity_weight = 0.5` (0 turns it off and skips its forward passes);
* each discriminator's loss halved, so it learns slower than the generators;
* one Adam(2e-4, beta_1=0.5) over both generators, one over both
  discriminators; constant for the first half of training, then linearly
  decayed to zero (`default_optimizers(epochs=..., steps_per_epoch=...)`,
  `kgan.schedules.LinearDecayAfterHalf`);
* an image pool of 50 generated images per direction for the discriminators
  (`kgan.layers.ImagePool`).

It is a `kgan.models.GAN`: `generator` is G (A -> B), `discriminator` is
D_B, and `generator_ba` / `discriminator_a` are F and D_A. What the base
assumes about latents is replaced: there is no latent space (`latent_dim` is
None; `generate` and friends raise and point to `translate`), `call` and
`predict` translate A -> B, and `export_serving` writes a SavedModel with an
`a_to_b` and a `b_to_a` signature.
"""

import keras
import numpy as np
import tensorflow as tf

from kgan import ada as kgan_ada
from kgan import losses, zoo
from kgan._checks import positive_int
from kgan.atomic import write_folder
from kgan.layers import ImagePool
from kgan.models.gan import (
    GAN,
    InputDTypeError,
    InputValidationError,
    _deserialize,
    _serialize,
    _without_absent_parts,
    checked_at_run_time,
)
from kgan.networks.cyclegan import (
    patchgan_discriminator,
    patchgan_output_size,
    paper_residual_blocks,
    resnet_generator,
)
from kgan.optimizers import FusedAdam
from kgan.schedules import LinearDecayAfterHalf

DIRECTIONS = ("a_to_b", "b_to_a")

#: the generator downsamples twice: translated sizes are padded to a multiple of this.
SIZE_MULTIPLE = 4

#: smallest image side `translate` accepts: padded to 8, the residual blocks
#: at 1/4 resolution still have 2 pixels to reflect.
MIN_SIZE = 5

_NETWORKS = ("generator_ab", "generator_ba", "discriminator_a", "discriminator_b")


def _non_negative(value, name, example):
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if isinstance(value, bool) or not 0.0 <= number < float("inf"):
        raise ValueError(f"{name} must be a number >= 0 (the paper uses {example}), got {value!r}.")
    return number


def _channels(model, which):
    tensors = model.inputs if which == "in" else model.outputs
    return int(tensors[0].shape[-1])


@keras.saving.register_keras_serializable(package="kgan")
class CycleGAN(GAN):
    """CycleGAN as Zhu et al. trained it; see the module docstring for the recipe.

    **Batches** are unpaired tuples `(images_a, images_b)`: float32 in
    [-1, 1], `[B, H, W, C_a]` and `[B, H, W, C_b]`, the same batch size `B`
    (the paper uses 1), `(H, W) == image_size`: what `kgan.data.unpaired`
    yields, or zip two pipelines yourself
    (`tf.data.Dataset.zip((data_a, data_b))`), or pass arrays
    `fit(x=images_a, y=images_b)`. **Training uses fixed-size crops** (the image pools store
    images of one size; the paper trains on random 256x256 or 128x128 crops);
    the networks themselves are fully convolutional, so `translate` takes
    images of any size.

    Args:
        generator_ab: G, images A -> images B (e.g. `kgan.networks.resnet_generator`).
        generator_ba: F, images B -> images A.
        discriminator_a: D_A, images A -> patch logits.
        discriminator_b: D_B, images B -> patch logits.
        image_size: `(H, W)` of the training crops.
        lambda_cycle: weight of the cycle-consistency loss (10).
        identity_weight: identity loss weight, as a fraction of `lambda_cycle`
            (0.5; 0 disables it). Needs `C_a == C_b`.
        pool_size: generated images each discriminator's pool keeps (50; 0
            disables the pools).
        seed: seed of the model's random stream (the pools' draws).
        **kwargs: passed to `keras.Model` (e.g. `name`) and `GAN`:
            `augment="ada"` (with `ada_target`, `ada_kimg`, `ada_interval`)
            gives each discriminator its own adaptive augmentation (`ada_a`
            for D_A, `ada` for D_B; `fit` logs `ada_p_a`, `ada_p_b`,
            `ada_rt_a`, `ada_rt_b`). `ema_decay` and DiffAugment policies
            are refused: the paper uses neither.

    Example:

    ```python
    data = kgan.data.unpaired("cycle_gan/horse2zebra", image_size=256, jitter="cyclegan")
    gan = kgan.models.CycleGAN.from_image_shape((256, 256, 3))  # 9 residual blocks
    g_opt, d_opt = gan.default_optimizers(epochs=200, steps_per_epoch=int(data.cardinality()))
    gan.compile(g_optimizer=g_opt, d_optimizer=d_opt)  # 100 epochs at 2e-4, 100 decaying
    gan.fit(data, epochs=200)
    zebras = gan.translate(horses_uint8)  # any size, uint8 in -> uint8 out
    ```
    """

    loss_names = ("d_loss", "g_loss", "cycle_loss", "identity_loss")

    #: zoo presets copy only these networks: their pools start empty (the
    #: pools are training state, like optimizer slots, and an empty pool is
    #: saved as nothing), with the model's pool_size for fine-tuning.
    preset_networks = ("generator", "generator_ba", "discriminator", "discriminator_a")

    #: ADA's heuristic takes sign(D(x) - 0.5): least-squares targets are 1 for
    #: real and 0 for fake, so 0.5 is where a discriminator is undecided.
    ada_center = 0.5

    def __init__(
        self, generator_ab, generator_ba, discriminator_a, discriminator_b, image_size,
        lambda_cycle=10.0, identity_weight=0.5, pool_size=50, seed=None, **kwargs,
    ):
        if kwargs.pop("ema_decay", None) is not None:
            raise ValueError(
                "CycleGAN does not support ema_decay= (the paper does not use it); leave it unset."
            )
        augment = kwargs.pop("augment", None)
        if augment is not None and not kgan_ada.is_ada(augment):
            raise ValueError(
                f"CycleGAN takes augment='ada' (adaptive discriminator augmentation) or None, "
                f"got {augment!r}: DiffAugment policies are not supported (the paper uses no "
                "augmentation of the discriminators' inputs)."
            )
        super().__init__(generator_ab, discriminator_b, seed=seed, augment=augment, **kwargs)
        for role, net in (("generator_ba", generator_ba), ("discriminator_a", discriminator_a)):
            if not isinstance(net, keras.Model) or not net.built:
                raise TypeError(
                    f"`{role}` must be a built keras.Model (e.g. from kgan.networks), got "
                    f"{type(net).__name__}."
                )
        self.generator_ba = generator_ba
        self.discriminator_a = discriminator_a
        # ADA: one p per discriminator (the base's `ada` is D_B's). The domains
        # differ in size and difficulty, so each D overfits at its own pace.
        self.ada_a = None
        if self.ada is not None:
            self.ada_a = self._new_adaptive_augment("ada_a")
            self._ada_readouts = self._make_ada_readouts()
        try:
            height, width = (int(d) for d in image_size)
        except (TypeError, ValueError):
            height = width = 0
        if height < 1 or width < 1:
            raise ValueError(
                f"image_size must be (height, width) of the training crops, e.g. (256, 256); "
                f"got {image_size!r}."
            )
        self.image_size = (height, width)
        self._check_networks()
        self.lambda_cycle = _non_negative(lambda_cycle, "lambda_cycle", 10)
        self.identity_weight = _non_negative(identity_weight, "identity_weight", 0.5)
        if self.identity_weight and self.image_shape_a[-1] != self.image_shape_b[-1]:
            raise ValueError(
                f"The identity loss compares G(b) with b, so domains A and B need the same "
                f"channels; got {self.image_shape_a[-1]} and {self.image_shape_b[-1]}. Pass "
                "identity_weight=0."
            )
        self.pool_size = pool_size
        self.pool_a = ImagePool(pool_size, self.image_shape_a, name="pool_a")
        self.pool_b = ImagePool(pool_size, self.image_shape_b, name="pool_b")
        self._translators = {}

    def _check_networks(self):
        """Channels agree between the four networks, and G keeps the crop size."""
        c_a, c_b = _channels(self.generator, "in"), _channels(self.generator, "out")
        expected = {
            "generator_ba": (c_b, c_a),
            "discriminator_a": (c_a, None),
            "discriminator_b": (c_b, None),
        }
        for name, (c_in, c_out) in expected.items():
            net = getattr(self, name)
            got_in, got_out = _channels(net, "in"), _channels(net, "out")
            if got_in != c_in or (c_out is not None and got_out != c_out):
                raise ValueError(
                    f"{name} does not fit generator_ab ({c_a} -> {c_b} channels): it maps "
                    f"{got_in} -> {got_out} channels. Domain A has {c_a} channels, B has {c_b}."
                )
        for name in ("generator_ab", "generator_ba"):
            net = getattr(self, name)
            c_in = _channels(net, "in")
            out = net.compute_output_spec(keras.KerasTensor((1,) + self.image_size + (c_in,)))
            if tuple(out.shape[1:3]) != self.image_size:
                raise ValueError(
                    f"{name} maps {self.image_size} crops to {tuple(out.shape[1:3])}; CycleGAN "
                    f"needs same-size outputs. The ResNet generator needs height and width "
                    f"that are multiples of {SIZE_MULTIPLE}: crop to e.g. "
                    f"{tuple(SIZE_MULTIPLE * (d // SIZE_MULTIPLE) for d in self.image_size)}."
                )

    @classmethod
    def from_image_shape(
        cls, image_shape, filters=64, num_residual_blocks=None, disc_layers=3,
        lambda_cycle=10.0, identity_weight=0.5, pool_size=50, seed=None, channels_b=None,
        **kwargs,
    ):
        """Build a CycleGAN with the paper's networks for `(H, W, C)` crops.

        Args:
            image_shape: `(H, W, C)` of the training crops of domain A, H and W
                multiples of 4, e.g. `(256, 256, 3)`.
            filters: base width of the generators and discriminators (64).
            num_residual_blocks: generator residual blocks; default 6 below
                256 px and 9 from 256 px (the paper's choice).
            disc_layers: stride-2 blocks of the PatchGAN (3 gives 70x70 patches
                and needs crops of at least 24 px; use fewer for tiny images).
            lambda_cycle: cycle-consistency weight (10).
            identity_weight: identity weight as a fraction of `lambda_cycle` (0.5).
            pool_size: images in each image pool (50; 0 disables).
            seed: seed of the model's random stream.
            channels_b: channels of domain B (default: the same as A).
            **kwargs: passed to the constructor (e.g. `name`).

        Example:

        ```python
        gan = CycleGAN.from_image_shape((256, 256, 3))  # 9 residual blocks
        ```
        """
        if len(tuple(image_shape)) != 3:
            raise ValueError(f"image_shape must be (height, width, channels), got {image_shape!r}.")
        height, width, channels = (int(d) for d in image_shape)
        if height % SIZE_MULTIPLE or width % SIZE_MULTIPLE:
            raise ValueError(
                f"CycleGAN's generator downsamples twice: training crops need a height and "
                f"width that are multiples of {SIZE_MULTIPLE}, got {height}x{width}."
            )
        channels_b = channels if channels_b is None else channels_b
        if num_residual_blocks is None:
            num_residual_blocks = paper_residual_blocks((height, width))
        if isinstance(disc_layers, int) and disc_layers >= 1 and patchgan_output_size(
            min(height, width), disc_layers
        ) < 1:
            smallest = next(
                s for s in range(SIZE_MULTIPLE, 4096, SIZE_MULTIPLE)
                if patchgan_output_size(s, disc_layers) >= 1
            )
            raise ValueError(
                f"A {height}x{width} crop is too small for a PatchGAN with disc_layers="
                f"{disc_layers} (it needs at least {smallest}x{smallest}). Pass a smaller "
                "disc_layers or use larger crops."
            )

        def generator(c_in, c_out, name):
            return resnet_generator(
                c_in, c_out, filters=filters, num_residual_blocks=num_residual_blocks, name=name
            )

        return cls(
            generator_ab=generator(channels, channels_b, "generator_ab"),
            generator_ba=generator(channels_b, channels, "generator_ba"),
            discriminator_a=patchgan_discriminator(
                channels, filters, disc_layers, "discriminator_a"
            ),
            discriminator_b=patchgan_discriminator(
                channels_b, filters, disc_layers, "discriminator_b"
            ),
            image_size=(height, width), lambda_cycle=lambda_cycle,
            identity_weight=identity_weight, pool_size=pool_size, seed=seed, **kwargs,
        )

    # ------------------------------------------------------------------ networks and shapes
    @property
    def generator_ab(self):
        """G: A -> B (the same model as `generator`)."""
        return self.generator

    @property
    def discriminator_b(self):
        """D_B, real B vs G(a) (the same model as `discriminator`)."""
        return self.discriminator

    @property
    def generator_variables(self):
        """Trainable variables of both generators (what `g_optimizer` updates)."""
        return self.generator.trainable_variables + self.generator_ba.trainable_variables

    @property
    def discriminator_variables(self):
        """Trainable variables of both discriminators (what `d_optimizer` updates)."""
        return self.discriminator_a.trainable_variables + self.discriminator.trainable_variables

    @property
    def latent_dim(self):
        """None: CycleGAN maps images to images and has no latent space."""
        return None

    @property
    def image_shape_a(self):
        """`(H, W, C_a)` of the training crops of domain A."""
        return self.image_size + (_channels(self.generator, "in"),)

    @property
    def image_shape_b(self):
        """`(H, W, C_b)` of the training crops of domain B."""
        return self.image_size + (_channels(self.generator, "out"),)

    @property
    def image_shape(self):
        """`(H, W, C_b)`: what `generator` (G: A -> B) makes of a training crop."""
        return self.image_shape_b

    # ------------------------------------------------------------------ config
    def get_config(self):
        config = super().get_config()
        for key in ("generator", "discriminator", "ema_decay"):
            config.pop(key, None)
        if config.get("augment") is None:
            config.pop("augment", None)
        config.update({name: _serialize(getattr(self, name)) for name in _NETWORKS})
        config.update(
            {
                "image_size": list(self.image_size),
                "lambda_cycle": self.lambda_cycle,
                "identity_weight": self.identity_weight,
                "pool_size": self.pool_size,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for name in _NETWORKS:
            config[name] = _deserialize(config[name])
        return cls(**config)

    # ------------------------------------------------------------------ compile
    @classmethod
    def default_optimizers(cls, epochs=None, steps_per_epoch=None, decay_epochs=None):
        """The paper's optimizers `(g_optimizer, d_optimizer)`: Adam(2e-4, beta_1=0.5).

        `g_optimizer` updates both generators, `d_optimizer` both
        discriminators, as in the reference code. Without arguments the rate
        is constant (what `compile()` uses); with `epochs` and
        `steps_per_epoch` it follows the paper's schedule, constant for the
        first half and linearly decayed to zero over the last `decay_epochs`
        (default `epochs // 2`): see `kgan.schedules.LinearDecayAfterHalf`.

        Example:

        ```python
        g_opt, d_opt = CycleGAN.default_optimizers(epochs=200, steps_per_epoch=1000)
        gan.compile(g_optimizer=g_opt, d_optimizer=d_opt)
        ```
        """
        if (epochs is None) != (steps_per_epoch is None):
            raise ValueError(
                "Pass both epochs and steps_per_epoch for the decaying schedule (or neither "
                f"for a constant rate); got epochs={epochs!r}, steps_per_epoch={steps_per_epoch!r}."
            )

        def rate():
            if epochs is None:
                return 2e-4
            return LinearDecayAfterHalf(2e-4, epochs, steps_per_epoch, decay_epochs)

        return (
            FusedAdam(rate(), beta_1=0.5),
            FusedAdam(rate(), beta_1=0.5),
        )

    def _build_optimizers(self):
        self.g_optimizer.build(self.generator_variables)
        self.d_optimizer.build(self.discriminator_variables)

    # ------------------------------------------------------------------ inputs
    def _split_batch(self, data):
        """`(images_a, images_b)` from a batch, with static shape and dtype checks."""
        data = _without_absent_parts(data)
        if not isinstance(data, (tuple, list)) or len(data) != 2:
            kind = f"a {type(data).__name__}" if not isinstance(data, (tuple, list)) else (
                f"a tuple of {len(data)}"
            )
            raise InputValidationError(
                f"CycleGAN trains on unpaired batches (images_a, images_b), got {kind}. Zip "
                "two image pipelines: tf.data.Dataset.zip((data_a, data_b)), or call "
                "fit(x=images_a, y=images_b) with arrays."
            )
        images_a, images_b = data
        for domain, images in (("a", images_a), ("b", images_b)):
            self._check_domain(images, domain)
        size_a, size_b = images_a.shape[0], images_b.shape[0]
        if size_a is not None and size_b is not None and size_a != size_b:
            raise InputValidationError(
                f"images_a and images_b batches differ in size ({size_a} vs {size_b}); batch "
                "both pipelines alike with drop_remainder=True."
            )
        if size_a is None or size_b is None:  # known only when the step runs
            images_a = checked_at_run_time(
                images_a,
                lambda message: tf.debugging.assert_equal(
                    tf.shape(images_a)[0], tf.shape(images_b)[0], message=message),
                "images_a and images_b batches differ in size (the domains' last, partial "
                "batches?): batch both pipelines alike with drop_remainder=True",
            )
        return self._checked_replica_batch(images_a), self._checked_replica_batch(images_b)

    def _check_domain(self, images, domain):
        expected = getattr(self, f"image_shape_{domain}")
        shape = tuple(getattr(images, "shape", ()))
        if len(shape) != 4:
            raise InputValidationError(
                f"images_{domain} must be a batch [B, {expected[0]}, {expected[1]}, "
                f"{expected[2]}], got shape {shape}. Batch the dataset, e.g. .batch(1)."
            )
        dims = tuple(None if d is None else int(d) for d in shape[1:])
        if dims[2] is not None and dims[2] != expected[2]:
            raise InputValidationError(
                f"Domain {domain.upper()} images have {expected[2]} channels in this model, "
                f"got {dims[2]}. Convert the images (e.g. tf.image.grayscale_to_rgb) or build "
                "the model for these channels."
            )
        if any(d is not None and d != e for d, e in zip(dims[:2], expected[:2])):
            raise InputValidationError(
                f"CycleGAN trains on fixed-size {expected[0]}x{expected[1]} crops (its image "
                f"pools store that size); got images_{domain} of {dims[0]}x{dims[1]}. Crop the "
                "data to the model's image_size, e.g. tf.image.random_crop."
            )
        if not tf.as_dtype(images.dtype).is_floating:
            raise InputValidationError(
                f"images_{domain} must be floating point in [-1, 1], got dtype "
                f"{tf.as_dtype(images.dtype).name}. Convert with kgan.images.from_uint8 or "
                "tf.cast(x, 'float32') / 127.5 - 1."
            )

    @staticmethod
    def _check_array_domains(x, y):
        """`fit(x=images_a, y=images_b)`: y given, with as many images as x."""
        if y is None:
            raise InputValidationError(
                "CycleGAN.fit(x=images_a) got no domain B: pass y=images_b (an array of "
                "domain B's images, as many as x), or a dataset of (images_a, images_b) "
                "pairs such as kgan.data.unpaired(domain_a, domain_b)."
            )
        shape_a, shape_b = tuple(x.shape), tuple(getattr(y, "shape", ()))
        if shape_a and shape_b and shape_a[0] != shape_b[0]:
            raise InputValidationError(
                f"x and y must hold the same number of images ({shape_a[0]} vs {shape_b[0]}); "
                "for domains of different sizes use kgan.data.unpaired."
            )

    def fit(self, x=None, y=None, *args, **kwargs):
        """`keras.Model.fit` on `(images_a, images_b)` batches, after checking the first.

        Takes a `tf.data.Dataset` (or a Python generator, or a
        `keras.utils.PyDataset`) of `(images_a, images_b)` tuples, or arrays
        `x=images_a, y=images_b` (Keras batches and shuffles them).

        Example:

        ```python
        data = kgan.data.unpaired("digits_8x8", "mnist_5k", batch_size=4, image_size=16)
        gan = kgan.CycleGAN.from_image_shape(
            (16, 16, 1), filters=8, num_residual_blocks=1, disc_layers=2)
        gan.compile()
        gan.fit(data.take(2), epochs=1)  # d_loss, g_loss, cycle_loss, identity_loss
        ```
        """
        from kgan.images import check_value_range

        self._refuse_validation(kwargs)
        batch, x = self._peek_first_batch(x)
        if isinstance(x, (np.ndarray, tf.Tensor)):
            batch = (x, y)
            self._check_array_domains(x, y)
            self._check_array_batches(len(x), args, kwargs)
        if batch is not None:
            domains = self._split_batch(batch)
            for images in domains:
                check_value_range(images, error=InputValidationError)
            if self._is_batch_stream(x):
                self._check_first_batch_splits_evenly(domains[0].shape[0])
        if not self.compiled:
            raise RuntimeError(
                "Call CycleGAN.compile() before fit(); compile() with no arguments uses the "
                "paper's optimizers (see default_optimizers for the decaying schedule)."
            )
        return self._keras_fit(x, y, *args, **kwargs)

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None,
                       return_dict=False):
        """`keras.Model.train_on_batch` on `x=images_a, y=images_b`, after fit's checks.

        Example:

        ```python
        gan.train_on_batch(images_a, images_b, return_dict=True)  # d_loss, g_loss, ...
        ```
        """
        from kgan.images import check_value_range

        self._refuse_unsupported_fit_arguments(
            x, y, (), {"sample_weight": sample_weight, "class_weight": class_weight},
            method="train_on_batch")
        for images in self._split_batch(x if y is None else (x, y)):
            check_value_range(images, error=InputValidationError)
        self._check_compiled("train_on_batch")
        return keras.Model.train_on_batch(self, x, y, return_dict=return_dict)

    # ------------------------------------------------------------------ training
    def _shared_seed(self):
        """A stateless seed that is the same on every replica.

        The image pools are shared over the global batch: each replica must
        draw the same numbers to make the same update (`GAN._next_seed`
        folds in the replica id, which is right for per-replica noise only).
        """
        return tf.cast(self.seed_generator.next(), tf.int64)

    def generator_loss_terms(self, real_a, real_b, training=True):
        """The generators' loss, term by term, per example.

        Args:
            real_a: `[B, H, W, C_a]` images of domain A.
            real_b: `[B, H, W, C_b]` images of domain B.
            training: passed to the networks.

        Returns:
            `(terms, fake_a, fake_b)`: `terms` maps `"adversarial"`, `"cycle"`
            and `"identity"` to float32 `[B]` (already weighted; their sum is
            the generators' loss; `"identity"` is zeros when
            `identity_weight == 0`, and its forward passes are skipped),
            `fake_b = G(a)`, `fake_a = F(b)`.
        """
        fake_b = self.generator(real_a, training=training)
        fake_a = self.generator_ba(real_b, training=training)
        # With augment="ada" the discriminators see augmented fakes here too, so
        # the generators are trained through the (differentiable) transforms.
        adversarial = losses.least_squares_generator_loss(
            self.discriminator(self._view(fake_b, "b", training), training=training)
        ) + losses.least_squares_generator_loss(
            self.discriminator_a(self._view(fake_a, "a", training), training=training)
        )
        cycle = losses.cycle_consistency_loss(
            real_a, self.generator_ba(fake_b, training=training)
        ) + losses.cycle_consistency_loss(real_b, self.generator(fake_a, training=training))
        if self.identity_weight:
            identity = losses.identity_loss(
                real_b, self.generator(real_b, training=training)
            ) + losses.identity_loss(real_a, self.generator_ba(real_a, training=training))
            identity = self.identity_weight * self.lambda_cycle * identity
        else:
            identity = tf.zeros_like(adversarial)
        terms = {
            "adversarial": adversarial, "cycle": self.lambda_cycle * cycle, "identity": identity
        }
        return terms, fake_a, fake_b

    def discriminator_loss(self, real_a, real_b, fake_a, fake_b, training=True):
        """Both discriminators' least-squares loss, each halved, per example `[B]`.

        Halving (the paper, sec. 7.1) slows the discriminators relative to
        the generators. `fake_a` / `fake_b` are what the pools returned.
        """
        real_outputs_a = self.discriminator_a(self._view(real_a, "a", training), training=training)
        fake_outputs_a = self.discriminator_a(self._view(fake_a, "a", training), training=training)
        real_outputs_b = self.discriminator(self._view(real_b, "b", training), training=training)
        fake_outputs_b = self.discriminator(self._view(fake_b, "b", training), training=training)
        if training:  # ADA's r_t, per discriminator (no-op without augment="ada")
            self.observe_discriminator(real_outputs_a, fake_outputs_a, ada=self.ada_a)
            self.observe_discriminator(real_outputs_b, fake_outputs_b, ada=self.ada)
        loss_a = losses.least_squares_discriminator_loss(real_outputs_a, fake_outputs_a)
        loss_b = losses.least_squares_discriminator_loss(real_outputs_b, fake_outputs_b)
        return 0.5 * (loss_a + loss_b)

    def _view(self, images, domain, training):
        """What D_A (`domain="a"`) or D_B sees: ADA-augmented when training with it."""
        if not training:
            return images
        return self.discriminator_view(images, ada=self.ada_a if domain == "a" else self.ada)

    def _ada_named(self):
        # None until __init__ has made `ada_a` (or without ADA); the read-outs
        # are made once both exist.
        if getattr(self, "ada_a", None) is None:
            return []
        return [("_a", self.ada_a), ("_b", self.ada)]

    def train_step(self, data):
        """One generator update (both G and F), then one discriminator update (both D).

        The order and the fakes are the reference code's: the generators are
        updated first against the current discriminators; the
        discriminators then learn from the fakes of that same forward pass,
        passed through the image pools (no gradient flows into them).

        Args:
            data: an unpaired batch `(images_a, images_b)`, float32 in
                [-1, 1], `[B, H, W, C_a]` and `[B, H, W, C_b]` at the model's
                `image_size`.

        Returns:
            `d_loss` (both halved discriminator losses), `g_loss` (the
            generators' total), and its `cycle_loss` and `identity_loss`
            terms, weighted; batch means.
        """
        real_a, real_b = self._split_batch(data)
        with tf.GradientTape() as tape:
            terms, fake_a, fake_b = self.generator_loss_terms(real_a, real_b)
            g_loss = terms["adversarial"] + terms["cycle"] + terms["identity"]
            g_loss_scaled = self.scaled_loss(self.g_optimizer, g_loss)
        self.apply_gradients(self.g_optimizer, tape, g_loss_scaled, self.generator_variables)

        seed = self._shared_seed()
        fake_a = self.pool_a(fake_a, tf.random.experimental.stateless_fold_in(seed, 0))
        fake_b = self.pool_b(fake_b, tf.random.experimental.stateless_fold_in(seed, 1))
        with tf.GradientTape() as tape:
            d_loss = self.discriminator_loss(real_a, real_b, fake_a, fake_b)
            d_loss_scaled = self.scaled_loss(self.d_optimizer, d_loss)
        self.apply_gradients(self.d_optimizer, tape, d_loss_scaled, self.discriminator_variables)
        return self.report_losses(
            d_loss=tf.reduce_mean(d_loss),
            g_loss=tf.reduce_mean(g_loss),
            cycle_loss=tf.reduce_mean(terms["cycle"]),
            identity_loss=tf.reduce_mean(terms["identity"]),
        )

    # ------------------------------------------------------------------ inference
    def call(self, images, training=False):
        """Translate A -> B with G, so `predict(images_a)` works.

        Float images in [-1, 1] of any size (at least 5x5): as in `translate`,
        sides that are not multiples of 4 are reflection-padded and the
        output cropped back, so a 17x17 image comes back 17x17.
        """
        if training:
            return self.generator(images, training=True)
        return translate_images(self.generator, images)

    def _direction(self, direction):
        if direction not in DIRECTIONS:
            raise ValueError(
                f"direction must be 'a_to_b' (G: A -> B) or 'b_to_a' (F: B -> A), got "
                f"{direction!r}."
            )
        return self.generator if direction == "a_to_b" else self.generator_ba

    def translate(self, images, direction="a_to_b", batch_size=16):
        """Translate images of any size from one domain to the other.

        The generators are fully convolutional, but downsample twice, so a
        side that is not a multiple of 4 is padded by reflection (bottom and
        right) to the next multiple and the output is cropped back: a 37x53
        image comes back 37x53. Sides must be at least 5 pixels.

        Args:
            images: `[N, H, W, C]` or one `[H, W, C]` image (numpy array or
                tensor), either **uint8** in [0, 255] or **float** in [-1, 1]
                (the model's convention). `C` is the source domain's channels.
            direction: `"a_to_b"` (G) or `"b_to_a"` (F).
            batch_size: images per generator call.

        Returns:
            numpy, same shape as `images` except the channels (the target
            domain's): uint8 for uint8 input (converted in the graph exactly
            as the exported SavedModel does, so the two agree to the bit),
            float32 in [-1, 1] for float input.

        Raises:
            ValueError: a wrong `direction` or `batch_size`.
            InputValidationError: images of the wrong rank or channels, smaller
                than 5x5, or floats outside [-1, 1] (a `ValueError`).
            InputDTypeError: a dtype that is neither uint8 nor floating point
                (an `InputValidationError` and a `TypeError`).

        Example:

        ```python
        photo = kgan.images.load_png("horse.png")        # uint8 [H, W, 3], any size
        zebra = gan.translate(photo, direction="a_to_b")  # uint8 [H, W, 3]
        ```
        """
        from kgan.images import check_value_range

        generator = self._direction(direction)
        source = "A" if direction == "a_to_b" else "B"
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")
        array = keras.ops.convert_to_numpy(images) if tf.is_tensor(images) else np.asarray(images)
        if not (array.dtype == np.uint8 or np.issubdtype(array.dtype, np.floating)):
            raise InputDTypeError(
                f"translate takes uint8 images in [0, 255] or float images in [-1, 1], got "
                f"dtype {array.dtype}. Cast 0-255 integers with .astype('uint8')."
            )
        single = array.ndim == 3
        if single:
            array = array[None]
        channels = _channels(generator, "in")
        if array.ndim != 4:
            raise InputValidationError(
                f"translate takes images [N, H, W, C] or one image [H, W, C], got shape "
                f"{array.shape}."
                + (" Add a channel axis: image[..., None]." if array.ndim == 2 else "")
            )
        if array.shape[-1] != channels:
            raise InputValidationError(
                f"direction={direction!r} translates domain {source} images, which have "
                f"{channels} channels; got {array.shape[-1]}. Check the direction, or convert "
                "the images (e.g. grayscale <-> RGB)."
            )
        if min(array.shape[1:3]) < MIN_SIZE:
            raise InputValidationError(
                f"Images must be at least {MIN_SIZE}x{MIN_SIZE} pixels (the generator "
                f"downsamples by 4 and reflects borders), got {array.shape[1]}x{array.shape[2]}. "
                "Upscale or pad smaller images first (e.g. tf.image.resize)."
            )
        if array.dtype != np.uint8:
            if array.size:
                check_value_range(array, error=InputValidationError)
            array = array.astype(np.float32, copy=False)
        run = self._translator(direction, array.dtype)
        outputs = [
            run(tf.constant(array[i : i + batch_size])) for i in range(0, len(array), batch_size)
        ]
        if not outputs:
            shape = array.shape[:3] + (_channels(generator, "out"),)
            return np.zeros(shape[1:] if single else shape, array.dtype)
        result = np.concatenate([np.asarray(out) for out in outputs])
        return result[0] if single else result

    def translation_sheet(self, domain_a, domain_b=None, *, image_size=None, split="train",
                          per_row=8):
        """A sheet of translations: `(images, ncols)` for `kgan.images.save_grid`.

        Four rows of the first `ncols` images of each domain, in order and
        without jitter: A, G(A), B, F(B). `ncols` is `per_row`, or the size of
        the smaller domain when it holds fewer images (a 3-image domain gives
        3 columns), so any domain a CycleGAN can train on has a sheet. Images
        are read with the model's channels (`kgan.data.unpaired` gives both
        domains the same). For a preset's `samples.png`, pass the pair as
        `kgan.zoo.save_preset(..., samples=sheet)`.

        Args:
            domain_a: The first domain: a name, folder or array, as in
                `kgan.data.unpaired`.
            domain_b: The second domain; None when `domain_a` names both.
            image_size: Size the images are resized to (int or `(H, W)`);
                default the model's training crop size.
            split: The split of both domains, as in `kgan.data.unpaired`.
            per_row: The most images per row, `>= 1`.

        Returns:
            `(images, ncols)`: float32 `[4 * ncols, H, W, C]` in [-1, 1], row
            by row, and the images per row.

        Raises:
            ValueError: a bad `per_row`, a model whose domains differ in
                channels, or what `kgan.data.unpaired` refuses (unknown
                names, missing folders, ...).

        Example:

        ```python
        gan = kgan.zoo.load("cyclegan_digits")
        images, ncols = gan.translation_sheet("digits_8x8", "mnist_5k")  # 8 columns
        kgan.images.save_grid(images, "sheet.png", ncols=ncols)
        ```
        """
        from kgan import data

        ncols = positive_int(per_row, "per_row")
        image_size = self.image_size if image_size is None else image_size
        # Folders are read as RGB unless told: read them as the model takes them.
        channels = self.image_shape_a[-1]
        if channels != self.image_shape_b[-1]:
            raise ValueError(
                f"translation_sheet reads both domains with kgan.data.unpaired, which gives "
                f"them the same channels, but this model takes {channels} (A) and "
                f"{self.image_shape_b[-1]} (B). Build the rows yourself: images, "
                "translate(images, direction), and kgan.images.save_grid(rows, path, ncols=...)."
            )
        while True:
            try:
                pairs = data.unpaired(domain_a, domain_b, batch_size=ncols, image_size=image_size,
                                      channels=channels, split=split, shuffle=False)
                break
            except data.TooFewExamplesError as err:
                # A domain smaller than a row (it trains with a smaller batch) makes
                # a narrower sheet, not an error after training.
                if not 0 < err.num_examples < ncols:
                    raise
                ncols = err.num_examples
        images_a, images_b = (np.asarray(x) for x in next(iter(pairs)))
        rows = [images_a, self.translate(images_a, "a_to_b"),
                images_b, self.translate(images_b, "b_to_a")]
        return np.concatenate(rows), ncols

    def _translator(self, direction, dtype):
        """A cached `tf.function` for `translate`, over uint8 or float32 images of any size.

        uint8 images go through the exported SavedModel's graph
        (`_uint8_translator`), so `translate` and the export agree to the bit
        (a float32 conversion outside the graph can differ in the last bit,
        which bf16 networks turn into +-1 in the output).
        """
        key = (direction, np.dtype(dtype).name)
        if key not in self._translators:
            generator = self._direction(direction)
            spec = tf.TensorSpec([None, None, None, _channels(generator, "in")], dtype)
            if key[1] == "uint8":
                serve = _uint8_translator(generator)
                function = lambda images: serve(images)["images"]  # noqa: E731
            else:
                function = lambda images: translate_images(generator, images)  # noqa: E731
            self._translators[key] = tf.function(function, input_signature=[spec])
        return self._translators[key]

    def export_serving(self, path, overwrite=False):
        """Write the translator SavedModel; `kgan.export.export_generator` calls this."""
        return export_translator(self, path, overwrite=overwrite)

    # ------------------------------------------------------------------ no latent space
    def _no_latents(self, name):
        raise TypeError(
            f"CycleGAN has no latent space, so {name}() does not apply: it translates "
            "images. Use model.translate(images, direction='a_to_b' or 'b_to_a'); for a "
            "preset's samples.png pass samples= (translated images) to kgan.zoo.save_preset."
        )

    # The GAN sampling API, refused: a translator maps images, it draws no latents.
    def latents(self, num, seed=None):
        """Not available: raises `TypeError` (no latent space; use `translate`)."""
        self._no_latents("latents")

    def sample_latents(self, batch_size):
        """Not available: raises `TypeError` (no latent space; use `translate`)."""
        self._no_latents("sample_latents")

    def generate_from_latents(self, latents, batch_size=256):
        """Not available: raises `TypeError` (no latent space; use `translate`)."""
        self._no_latents("generate_from_latents")

    def generate(self, num, seed=None, batch_size=256):
        """Not available: raises `TypeError` (no latent space; use `translate`)."""
        self._no_latents("generate")

    def generate_uint8(self, num, seed=None, batch_size=256):
        """Not available: raises `TypeError` (no latent space; `translate` takes
        and returns uint8 images)."""
        self._no_latents("generate_uint8")

    def interpolate(self, z0, z1, steps):
        """Not available: raises `TypeError` (no latent space; use `translate`)."""
        self._no_latents("interpolate")


def translate_images(generator, images):
    """`generator` on float images `[N, H, W, C]` of any size, as a graph.

    Pads height and width by reflection (bottom, right) to multiples of 4
    and crops the output back; returns float32.

    Example:

    ```python
    from kgan.models.cyclegan import translate_images
    gan = kgan.zoo.load("cyclegan_digits")
    out = translate_images(gan.generator_ab, tf.zeros([2, 37, 53, 1]))  # run at 40x56
    out.shape  # TensorShape([2, 37, 53, 1]), float32
    ```
    """
    height, width = tf.shape(images)[1], tf.shape(images)[2]
    pad_h = tf.math.floormod(-height, SIZE_MULTIPLE)
    pad_w = tf.math.floormod(-width, SIZE_MULTIPLE)
    padded = tf.pad(images, [[0, 0], [0, pad_h], [0, pad_w], [0, 0]], mode="REFLECT")
    outputs = generator(padded, training=False)
    return tf.cast(outputs[:, :height, :width, :], tf.float32)


def _uint8_translator(generator):
    """uint8 images -> `{"images": uint8}` through `generator`, as `translate` does."""

    from kgan.export import _checked_shape, _has_shape

    channels = _channels(generator, "in")

    def serve(images):
        images = _checked_shape(
            images, lambda shape: _has_shape(shape, [None, None, None, channels]),
            f"images must be uint8 of shape [batch, height, width, {channels}] ({channels} "
            f"channel{'s' if channels > 1 else ''}, this direction's source domain); for one "
            "image add a batch axis (image[None]).",
        )
        checked = tf.debugging.assert_greater_equal(
            tf.reduce_min(tf.shape(images)[1:3]), MIN_SIZE,
            message=f"images must be at least {MIN_SIZE}x{MIN_SIZE} pixels",
        )
        with tf.control_dependencies([checked]):
            floats = tf.cast(images, tf.float32) / 127.5 - 1.0
        outputs = translate_images(generator, floats)
        scaled = tf.round((tf.clip_by_value(outputs, -1.0, 1.0) + 1.0) * 127.5)
        return {"images": tf.cast(scaled, tf.uint8)}

    return serve


def export_translator(model, path, overwrite=False):
    """Write a CycleGAN as one SavedModel with `a_to_b` and `b_to_a` signatures.

    Each signature takes `images`: uint8 `[None, None, None, C]` of any
    height and width (at least 5) and returns `{"images": uint8}` of the same
    size, with the target domain's channels, exactly `model.translate` on
    uint8 input. `a_to_b` is also the `serving_default` (TF Serving needs
    one). It loads with plain TensorFlow, without kgan. The folder is written
    beside `path` and renamed into place.

    Args:
        model: a `CycleGAN`.
        path: destination folder; must not exist unless `overwrite=True`.
        overwrite: replace an earlier export folder (never a file or a
            preset: `kgan.export.check_export_path`).

    Returns:
        `path` as a `Path`.

    Example:

    ```python
    export_translator(gan, "served/horse2zebra")
    served = tf.saved_model.load("served/horse2zebra")
    zebra = served.signatures["a_to_b"](images=tf.constant(horse_uint8[None]))["images"]
    ```
    """
    if not isinstance(model, CycleGAN):
        raise TypeError(
            f"export_translator exports a CycleGAN, got {type(model).__name__}; export "
            "latent-space GANs with kgan.export.export_generator."
        )
    from kgan.export import check_export_path

    path = check_export_path(path, overwrite)
    archive = keras.export.ExportArchive()
    for direction in DIRECTIONS:  # the first endpoint is also `serving_default`
        generator = model._direction(direction)
        archive.track(generator)
        channels = _channels(generator, "in")
        spec = tf.TensorSpec([None, None, None, channels], tf.uint8, name="images")
        archive.add_endpoint(direction, _uint8_translator(generator), input_signature=[spec])
    return write_folder(path, lambda folder: archive.write_out(str(folder), verbose=False))


zoo.register_architecture(
    "cyclegan", CycleGAN, CycleGAN.from_image_shape,
    "Zhu et al. 2017: unpaired translation, ResNet generators, 70x70 PatchGANs, LSGAN + "
    "cycle + identity losses, image pools, linear LR decay",
)
