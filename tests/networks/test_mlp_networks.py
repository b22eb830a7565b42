"""MLP builders for 2-D toy data: the WGAN-GP paper's 3 x 512 ReLU networks."""

import keras
import numpy as np
import pytest

from kgan.networks import mlp_discriminator, mlp_generator


def test_defaults_are_the_papers_toy_networks():
    g = mlp_generator(latent_dim=2)
    d = mlp_discriminator()
    assert g.output_shape == (None, 2) and d.output_shape == (None, 1)
    for net in (g, d):
        dense = [l for l in net.layers if isinstance(l, keras.layers.Dense)]
        assert [l.units for l in dense[:-1]] == [512, 512, 512]
        assert sum(isinstance(l, keras.layers.ReLU) for l in net.layers) == 3
        assert dense[-1].activation.__name__ == "linear"  # unbounded points / logits
    assert not any(isinstance(l, (keras.layers.BatchNormalization, keras.layers.LayerNormalization))
                   for l in d.layers)


@pytest.mark.parametrize("normalization, layer", [("layer", keras.layers.LayerNormalization),
                                                  ("batch", keras.layers.BatchNormalization)])
def test_critic_normalization(normalization, layer):
    d = mlp_discriminator(data_dim=3, units=8, layers=2, normalization=normalization)
    assert sum(isinstance(l, layer) for l in d.layers) == 2
    assert d(np.zeros((4, 3), "float32")).shape == (4, 1)


def test_outputs_stay_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    g = mlp_generator(latent_dim=4, data_dim=3, units=8, layers=1)
    d = mlp_discriminator(data_dim=3, units=8, layers=1)
    assert g.layers[1].compute_dtype == "bfloat16"
    points = g(np.ones((2, 4), "float32"))
    assert points.dtype == "float32" and points.shape == (2, 3)
    assert d(points).dtype == "float32"


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: mlp_generator(latent_dim=0), "latent_dim"),
        (lambda: mlp_generator(latent_dim=2, units=2.5), "units"),
        (lambda: mlp_discriminator(layers=-1), "layers"),
        (lambda: mlp_discriminator(normalization="group"), "normalization"),
    ],
)
def test_bad_arguments(build, match):
    with pytest.raises(ValueError, match=match):
        build()
