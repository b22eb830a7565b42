"""CycleGAN's ResNet generator and 70x70 PatchGAN discriminator (Zhu et al. 2017).

Both are fully convolutional (input shape `(None, None, C)`), so a model
trained on fixed-size crops translates images of any size (see
`kgan.models.CycleGAN.translate` for sizes that are not a multiple of 4).

As in the paper (appendix 7.2) and the authors' reference code
(`junyanz/pytorch-CycleGAN-and-pix2pix`, `models/networks.py`):

* generator `c7s1-64, d128, d256, R256 x n, u128, u64, c7s1-3`: reflection
  padding before the 7x7 and residual 3x3 convolutions, zero padding 1 in the
  stride-2 3x3 convolutions, fractionally-strided 3x3 convolutions (cropped
  exactly like PyTorch's `padding=1, output_padding=1`), tanh output;
* discriminator `C64-C128-C256-C512` of 4x4 convolutions with zero padding 1,
  stride 2 except the last block, LeakyReLU(0.2), no normalization on the
  first block, then a 4x4 convolution to one logit per patch;
* instance normalization without a learnable affine transform (the
  reference's `InstanceNorm2d(affine=False)`): `GroupNormalization` with one
  group per channel, `center=False, scale=False`, epsilon 1e-5
  (`kgan.layers.FusedInstanceNormalization`, which trains with TensorFlow's
  fused batch-norm kernel). Statistics are always those of the image itself,
  in training and at test time. It computes its moments in float32 under
  mixed precision;
* weights from N(0, 0.02), biases zero.

Convolutions that feed an instance norm have no bias: the norm subtracts the
per-channel mean, which cancels any bias exactly (the reference keeps the
bias; it receives zero gradient there, so this changes nothing but the
parameter count). The last layer of each network computes in float32, so
images and logits never round to bf16/fp16.
"""

import keras
from keras import layers

from kgan.layers import (
    ForwardGradConv2D,
    FusedInstanceNormalization,
    ReflectionPadding2D,
    SliceCropping2D,
)


def _init():
    return keras.initializers.RandomNormal(mean=0.0, stddev=0.02)


def _instance_norm():
    return FusedInstanceNormalization(groups=-1, center=False, scale=False, epsilon=1e-5)


def _conv(filters, kernel_size, strides=1, use_bias=False, conv_class=layers.Conv2D, **kwargs):
    return conv_class(
        filters, kernel_size, strides=strides, padding="valid", use_bias=use_bias,
        kernel_initializer=_init(), **kwargs,
    )


def _check_channels(channels, name):
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise ValueError(f"{name} must be a positive int (e.g. 3 for RGB), got {channels!r}.")
    return channels


def _check_positive(value, name, example):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"{name} must be a positive int (the paper uses {example}), got {value!r}."
        )
    return value


def residual_block(x, filters):
    """`R<filters>`: two reflection-padded 3x3 conv/instance-norm layers plus the input.

    ReLU after the first norm only, as in the reference (the sum is not
    rectified).

    Example:

    ```python
    import keras
    x = keras.Input((None, None, 32))  # `filters` must equal the input's channels
    block = keras.Model(x, kgan.networks.cyclegan.residual_block(x, 32))
    block(np.zeros((1, 16, 16, 32), "float32")).shape  # (1, 16, 16, 32)
    ```
    """
    y = ReflectionPadding2D(1)(x)
    y = _conv(filters, 3)(y)
    y = layers.ReLU()(_instance_norm()(y))
    y = ReflectionPadding2D(1)(y)
    y = _instance_norm()(_conv(filters, 3)(y))
    return layers.Add()([x, y])


def paper_residual_blocks(image_size):
    """The paper's residual-block count for `(H, W)` or `(H, W, C)` images:
    6 below 256 px, else 9.

    Example:

    ```python
    kgan.networks.paper_residual_blocks((128, 128))  # 6
    kgan.networks.paper_residual_blocks((256, 256, 3))  # 9
    ```
    """
    if len(image_size) not in (2, 3):
        raise ValueError(f"image_size must be (H, W) or (H, W, C), got {image_size!r}.")
    # Height and width only: a channel count of 3 is not an image side.
    return 9 if min(int(d) for d in image_size[:2]) >= 256 else 6


def resnet_generator(
    channels=3, output_channels=None, filters=64, num_residual_blocks=9, name="generator"
):
    """The CycleGAN generator: images in [-1, 1] -> images in [-1, 1], same size.

    `c7s1-F, d2F, d4F, R4F x num_residual_blocks, u2F, uF, c7s1-C` with
    `F = filters`. Height and width must be multiples of 4 (two stride-2
    downsamplings); `CycleGAN.translate` pads other sizes by reflection.

    Args:
        channels: channels of the input images.
        output_channels: channels of the output images (default: `channels`).
        filters: base width F (the paper uses 64).
        num_residual_blocks: residual blocks at 1/4 resolution; the paper
            uses 6 for 128x128 images and 9 for 256x256 and larger.
        name: model name.

    Returns:
        A functional `keras.Model` with input shape `(None, None, channels)`.

    Example:

    ```python
    g = kgan.networks.resnet_generator(3, filters=64, num_residual_blocks=6)
    g(np.zeros((1, 128, 128, 3), "float32")).shape  # (1, 128, 128, 3)
    ```
    """
    channels = _check_channels(channels, "channels")
    output_channels = _check_channels(
        channels if output_channels is None else output_channels, "output_channels"
    )
    filters = _check_positive(filters, "filters", 64)
    if isinstance(num_residual_blocks, bool) or not isinstance(num_residual_blocks, int) or (
        num_residual_blocks < 0
    ):
        raise ValueError(
            "num_residual_blocks must be an int >= 0 (the paper uses 6 at 128 px, 9 at "
            f"256 px), got {num_residual_blocks!r}."
        )
    inputs = keras.Input((None, None, channels), name="images")
    x = ReflectionPadding2D(3)(inputs)
    x = layers.ReLU()(_instance_norm()(_conv(filters, 7)(x)))
    for multiple in (2, 4):  # d128, d256
        x = layers.ZeroPadding2D(1)(x)
        x = layers.ReLU()(_instance_norm()(_conv(filters * multiple, 3, strides=2)(x)))
    for _ in range(num_residual_blocks):
        x = residual_block(x, filters * 4)
    for multiple in (2, 1):  # u128, u64
        x = layers.Conv2DTranspose(
            filters * multiple, 3, strides=2, padding="valid", use_bias=False,
            kernel_initializer=_init(),
        )(x)
        # A valid 3x3 stride-2 transposed conv gives 2H + 1 rows; PyTorch's
        # padding=1, output_padding=1 keeps rows 1 .. 2H of them.
        x = SliceCropping2D(((1, 0), (1, 0)))(x)
        x = layers.ReLU()(_instance_norm()(x))
    x = ReflectionPadding2D(3)(x)
    x = _conv(output_channels, 7, use_bias=True, dtype="float32")(x)
    outputs = layers.Activation("tanh", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=name)


def patchgan_output_size(size, num_layers=3):
    """Side of the logit map a `patchgan_discriminator` gives for `size` pixels.

    Example:

    ```python
    kgan.networks.patchgan_output_size(256)               # 30: 30x30 logits
    kgan.networks.patchgan_output_size(32, num_layers=2)  # 6
    ```
    """
    for _ in range(num_layers):
        size = (size + 2 - 4) // 2 + 1
    for _ in range(2):  # the stride-1 block and the output convolution
        size = size + 2 - 4 + 1
    return size


def patchgan_receptive_field(num_layers=3):
    """Side of the image patch each logit of the discriminator sees (70 for 3 layers).

    Example:

    ```python
    kgan.networks.patchgan_receptive_field()   # 70: the 70x70 PatchGAN
    kgan.networks.patchgan_receptive_field(2)  # 34
    ```
    """
    field = 1
    for stride in [1, 1] + [2] * num_layers:  # from the output back to the input
        field = (field - 1) * stride + 4
    return field


def patchgan_discriminator(channels=3, filters=64, num_layers=3, name="discriminator"):
    """The PatchGAN discriminator: images -> a map of logits, one per image patch.

    `C64-C128-C256-C512` (for `filters=64`, `num_layers=3`) of 4x4
    convolutions with LeakyReLU(0.2), instance norm from the second block,
    stride 2 in the first `num_layers` blocks and 1 in the last, then a 4x4
    convolution to one channel. With 3 layers each logit sees a 70x70 patch
    (`patchgan_receptive_field`); a 256x256 image gives 30x30 logits,
    128x128 gives 14x14. Widths double per block up to `8 * filters`.

    The logits are raw scores (no sigmoid): CycleGAN's least-squares loss
    regresses them to 1 (real) and 0 (fake). They are float32 under mixed
    precision.

    Args:
        channels: channels of the images judged.
        filters: width of the first block (the paper uses 64).
        num_layers: stride-2 blocks (3 is the 70x70 PatchGAN; fewer suit
            small images: see `patchgan_output_size`).
        name: model name.

    Returns:
        A functional `keras.Model`, input `(None, None, channels)`, output
        `(None, h, w, 1)` logits.

    Example:

    ```python
    d = patchgan_discriminator(3)
    d(np.zeros((1, 256, 256, 3), "float32")).shape  # (1, 30, 30, 1)
    ```
    """
    channels = _check_channels(channels, "channels")
    filters = _check_positive(filters, "filters", 64)
    num_layers = _check_positive(num_layers, "num_layers", 3)
    inputs = keras.Input((None, None, channels), name="images")
    x = inputs
    for block in range(num_layers + 1):
        width = filters * min(2**block, 8)
        stride = 2 if block < num_layers else 1
        x = layers.ZeroPadding2D(1)(x)
        # The first block has no norm, so it keeps its bias; ForwardGradConv2D
        # sums that bias's 16-bit gradient in float32 on a CPU, where
        # TensorFlow's BiasAddGrad sums it in 16 bits and loses most of it.
        x = _conv(
            width, 4, strides=stride, use_bias=block == 0,
            conv_class=ForwardGradConv2D if block == 0 else layers.Conv2D,
        )(x)
        if block > 0:
            x = _instance_norm()(x)
        x = layers.LeakyReLU(0.2)(x)
    x = layers.ZeroPadding2D(1)(x)
    outputs = _conv(1, 4, use_bias=True, dtype="float32")(x)
    return keras.Model(inputs, outputs, name=name)
