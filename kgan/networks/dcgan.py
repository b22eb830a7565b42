"""DCGAN generator and discriminator stacks (Radford et al. 2016).

Sized by `image_shape`: the spatial size is halved while it is even and larger
than 4, which fixes the number of stride-2 stages (28 -> 7 with two stages,
32 -> 4 with three, 64 -> 4 with four). Widths double at each stage inward from
`filters`, as in the paper's 64 px model (filters=128: 1024-512-256-128).

Both follow the paper: batch norm everywhere except the generator output and the
discriminator input, ReLU in the generator, LeakyReLU(0.2) in the
discriminator, weights drawn from N(0, 0.02), tanh output in [-1, 1]. The last
layer of each network computes in float32 under mixed precision, so images and
logits never round to bf16/fp16. Layers are Keras's, four with a faster
training implementation of the same math (`kgan.layers.FusedBatchNormalization`,
`kgan.layers.AnalyticGradLayerNormalization` in WGAN-GP's critic,
`kgan.layers.ForwardGradConv2D`, `kgan.layers.ForwardGradConv2DTranspose`; the
convolutions on the image side, to or from 1-4 channels, included).
"""

import keras
from keras import layers

from kgan.layers import (
    AnalyticGradLayerNormalization,
    ForwardGradConv2D,
    ForwardGradConv2DTranspose,
    FusedBatchNormalization,
)


def _init():
    return keras.initializers.RandomNormal(mean=0.0, stddev=0.02)


def _bn():
    # BN's gamma ~ N(1, 0.02) as in the paper's reference code. The fused
    # subclass is the same layer, trained by one kernel (faster, see its docstring).
    return FusedBatchNormalization(
        momentum=0.9,
        epsilon=1e-5,
        gamma_initializer=keras.initializers.RandomNormal(1.0, 0.02),
    )


def stages_for(image_shape):
    """`(start_height, start_width, num_stages)` for a DCGAN of this size.

    Raises:
        ValueError: if the shape is not `(H, W, C)` with H and W reachable
            from a small start by the same number of doublings.

    Example:

    ```python
    kgan.networks.stages_for((28, 28, 1))  # (7, 7, 2): a 7x7 start, doubled twice
    kgan.networks.stages_for((64, 64, 3))  # (4, 4, 4)
    ```
    """
    if not hasattr(image_shape, "__len__") or len(image_shape) != 3:
        raise ValueError(
            f"image_shape must be (height, width, channels), e.g. (28, 28, 1), got "
            f"{image_shape!r}."
        )
    height, width, channels = (int(d) for d in image_shape)
    if channels < 1 or height < 8 or width < 8:
        raise ValueError(
            f"DCGAN needs images of at least 8x8 with >= 1 channel, got {image_shape}."
        )

    def halve(size):
        stages = 0
        while size % 2 == 0 and size > 4:
            size //= 2
            stages += 1
        return size, stages

    start_h, stages_h = halve(height)
    start_w, stages_w = halve(width)
    if stages_h != stages_w or stages_h < 1 or max(start_h, start_w) > 7:
        raise ValueError(
            f"DCGAN cannot size {height}x{width}: height and width need the same "
            "number of halvings down to a size of at most 7 (e.g. 28, 32, 64, "
            "128). Resize the data to such a size."
        )
    return start_h, start_w, stages_h


def dcgan_generator(
    image_shape, latent_dim=100, filters=64, kernel_size=4, refine_layers=0, name="generator"
):
    """The DCGAN generator: latents `[B, latent_dim]` -> images in [-1, 1].

    Args:
        image_shape: `(H, W, C)` of the images, e.g. `(28, 28, 1)`, `(64, 64, 3)`.
        latent_dim: size of the latent vector.
        filters: width of the last hidden stage; stages inward double it.
        kernel_size: transposed-convolution kernel (4 divides stride 2 evenly,
            avoiding checkerboard artifacts).
        refine_layers: stride-1 conv/BN/ReLU blocks at the start resolution,
            before upsampling. 0 is the paper; small images have few stages
            (two at 28 px), and a refining block deepens the generator there,
            as the tensorflow.org DCGAN tutorial's 7x7 stride-1 layer does.
        name: model name.

    Example:

    ```python
    g = kgan.networks.dcgan_generator((32, 32, 3), latent_dim=128, filters=64)
    g.output_shape  # (None, 32, 32, 3)
    ```
    """
    stages_for(image_shape)  # a clear error for sizes it cannot build, before any layer
    if int(latent_dim) < 1 or int(filters) < 1:
        raise ValueError(f"latent_dim and filters must be positive, got {latent_dim}, {filters}.")
    if int(refine_layers) < 0:
        raise ValueError(f"refine_layers must be 0 (the paper) or more, got {refine_layers}.")
    latents = keras.Input((latent_dim,), name="latents")
    images = generator_stack(latents, image_shape, filters, kernel_size, refine_layers,
                             norm=lambda x: _bn()(x))
    return keras.Model(latents, images, name=name)


def generator_stack(x, image_shape, filters, kernel_size, refine_layers, norm):
    """The DCGAN generator's layers from its input vector `x` to tanh images
    (shared with the conditional generator).

    Dense to the start grid, `refine_layers` stride-1 blocks, then stride-2
    transposed convolutions halving the width up to the image size; `norm(x)`
    normalizes after every block but the output (batch norm here,
    conditional batch norm in `conditional_generator`).

    Example:

    ```python
    import keras
    latents = keras.Input((16,))
    images = kgan.networks.dcgan.generator_stack(
        latents, (28, 28, 1), filters=8, kernel_size=4, refine_layers=0,
        norm=lambda x: keras.layers.BatchNormalization()(x))
    keras.Model(latents, images).output_shape  # (None, 28, 28, 1)
    ```
    """
    start_h, start_w, stages = stages_for(image_shape)
    width = filters * 2 ** (stages - 1)
    x = layers.Dense(start_h * start_w * width, use_bias=False, kernel_initializer=_init())(x)
    x = layers.Reshape((start_h, start_w, width))(x)
    x = norm(x)
    x = layers.ReLU()(x)
    for _ in range(int(refine_layers)):
        x = ForwardGradConv2DTranspose(
            width, kernel_size, strides=1, padding="same", use_bias=False,
            kernel_initializer=_init(),
        )(x)
        x = norm(x)
        x = layers.ReLU()(x)
    for _ in range(stages - 1):
        width //= 2
        x = ForwardGradConv2DTranspose(
            width, kernel_size, strides=2, padding="same", use_bias=False,
            kernel_initializer=_init(),
        )(x)
        x = norm(x)
        x = layers.ReLU()(x)
    x = ForwardGradConv2DTranspose(
        image_shape[-1], kernel_size, strides=2, padding="same",
        kernel_initializer=_init(), dtype="float32",
    )(x)
    return layers.Activation("tanh", dtype="float32", name="images")(x)


def discriminator_features(x, stages, filters, kernel_size, normalization, dropout):
    """The DCGAN discriminator's stride-2 conv stack on `x` (shared with the conditional one).

    Stage k has `filters * 2**k` channels; normalization (`"batch"`, `"layer"`
    or None) follows every stage but the first, as in the paper.

    Example:

    ```python
    import keras
    images = keras.Input((28, 28, 1))
    _, _, stages = kgan.networks.stages_for((28, 28, 1))  # 2
    features = kgan.networks.dcgan.discriminator_features(
        images, stages, filters=8, kernel_size=4, normalization="layer", dropout=0.0)
    features.shape  # (None, 7, 7, 16)
    ```
    """
    for stage in range(stages):
        x = ForwardGradConv2D(
            filters * 2**stage, kernel_size, strides=2, padding="same",
            use_bias=stage == 0 or normalization is None, kernel_initializer=_init(),
        )(x)
        if stage > 0 and normalization == "batch":
            x = _bn()(x)
        elif stage > 0 and normalization == "layer":
            x = AnalyticGradLayerNormalization(axis=[1, 2, 3])(x)
        x = layers.LeakyReLU(0.2)(x)
        if dropout:
            x = layers.Dropout(dropout)(x)
    return x


def dcgan_discriminator(
    image_shape, filters=64, kernel_size=4, name="discriminator", normalization="batch", dropout=0.0
):
    """The DCGAN discriminator: images -> one logit per image (float32).

    Args:
        image_shape: `(H, W, C)` of the images.
        filters: width of the first stage; each stage doubles it.
        kernel_size: convolution kernel size.
        name: model name.
        normalization: `"batch"` (DCGAN), `"layer"` (WGAN-GP: the gradient
            penalty is per example, which batch statistics would break) or
            `None`.
        dropout: dropout rate after each activation (0 is the paper); it
            slows the discriminator's memorization of small datasets.

    Example:

    ```python
    d = kgan.networks.dcgan_discriminator((28, 28, 1))
    d.output_shape  # (None, 1)
    ```
    """
    _, _, stages = stages_for(image_shape)
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
    if normalization not in ("batch", "layer", None):
        raise ValueError(f"normalization must be 'batch', 'layer' or None, got {normalization!r}.")
    images = keras.Input(tuple(image_shape), name="images")
    x = discriminator_features(images, stages, filters, kernel_size, normalization, dropout)
    x = layers.Flatten()(x)
    logits = layers.Dense(1, kernel_initializer=_init(), dtype="float32", name="logits")(x)
    return keras.Model(images, logits, name=name)
