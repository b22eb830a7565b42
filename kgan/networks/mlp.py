"""Small fully connected networks for low-dimensional (e.g. 2-D toy) data.

The WGAN-GP paper's toy experiments (Gulrajani et al. 2017, sec. 5.1:
8 Gaussians, 25 Gaussians, Swiss roll) use generator and critic MLPs of three
hidden layers of 512 ReLU units, which are the defaults here. Both networks'
last layer computes in float32 under mixed precision, like the DCGAN stacks,
so samples and logits never round to bf16/fp16.
"""

import keras

from kgan.layers import AnalyticGradLayerNormalization

_NORMALIZATIONS = ("batch", "layer", None)


def _check_sizes(**sizes):
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}.")


def _hidden_stack(x, units, layers, normalization=None):
    for _ in range(layers):
        # A bias is redundant before a normalization that re-centers.
        x = keras.layers.Dense(units, use_bias=normalization is None)(x)
        if normalization == "batch":
            x = keras.layers.BatchNormalization()(x)
        elif normalization == "layer":
            x = AnalyticGradLayerNormalization()(x)
        x = keras.layers.ReLU()(x)
    return x


def mlp_generator(latent_dim, data_dim=2, units=512, layers=3, name="generator"):
    """An MLP generator: latents `[B, latent_dim]` -> points `[B, data_dim]`.

    ReLU hidden layers and a linear (unbounded) output: toy data such as a
    ring of Gaussians is not confined to [-1, 1].

    Args:
        latent_dim: size of the latent vector (the WGAN-GP toy code uses 2).
        data_dim: size of a data point.
        units: width of each hidden layer.
        layers: number of hidden layers.
        name: model name.

    Example:

    ```python
    g = mlp_generator(latent_dim=2, data_dim=2)
    g.output_shape  # (None, 2)
    ```
    """
    _check_sizes(latent_dim=latent_dim, data_dim=data_dim, units=units, layers=layers)
    latents = keras.Input((latent_dim,), name="latents")
    x = _hidden_stack(latents, units, layers)
    points = keras.layers.Dense(data_dim, dtype="float32", name="points")(x)
    return keras.Model(latents, points, name=name)


def mlp_discriminator(data_dim=2, units=512, layers=3, normalization=None, name="discriminator"):
    """An MLP discriminator (critic): points `[B, data_dim]` -> logits `[B, 1]`.

    Args:
        data_dim: size of a data point.
        units: width of each hidden layer.
        layers: number of hidden layers.
        normalization: `None` (the WGAN-GP paper's toy critic), `"layer"`
            (`kgan.layers.AnalyticGradLayerNormalization`, exact under a
            gradient penalty), or
            `"batch"` (not for WGAN-GP: its penalty is per example and batch
            statistics couple the examples).
        name: model name.

    Example:

    ```python
    d = mlp_discriminator(data_dim=2)
    d.output_shape  # (None, 1)
    ```
    """
    _check_sizes(data_dim=data_dim, units=units, layers=layers)
    if normalization not in _NORMALIZATIONS:
        raise ValueError(
            f"normalization must be 'batch', 'layer' or None, got {normalization!r}."
        )
    points = keras.Input((data_dim,), name="points")
    x = _hidden_stack(points, units, layers, normalization)
    logits = keras.layers.Dense(1, dtype="float32", name="logits")(x)
    return keras.Model(points, logits, name=name)
