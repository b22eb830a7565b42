"""DCGAN network builders: sizes, layers and initialization."""

import keras
import numpy as np
import pytest

from kgan.networks import dcgan_discriminator, dcgan_generator, stages_for


@pytest.mark.parametrize(
    "shape, start, stages",
    [((28, 28, 1), 7, 2), ((32, 32, 3), 4, 3), ((64, 64, 3), 4, 4), ((128, 128, 3), 4, 5)],
)
def test_sizes(shape, start, stages):
    assert stages_for(shape) == (start, start, stages)
    g = dcgan_generator(shape, latent_dim=16, filters=8)
    d = dcgan_discriminator(shape, filters=8)
    assert g.output_shape == (None,) + shape
    assert d.output_shape == (None, 1)
    z = np.random.default_rng(0).standard_normal((2, 16)).astype("float32")
    images = g(z, training=False).numpy()
    assert images.shape == (2,) + shape and np.abs(images).max() <= 1.0
    assert d(images).shape == (2, 1)


def test_paper_structure():
    g = dcgan_generator((64, 64, 3), latent_dim=100, filters=128)
    convs = [layer for layer in g.layers if isinstance(layer, keras.layers.Conv2DTranspose)]
    # Radford et al.'s 64 px generator: 4x4x1024 -> 512 -> 256 -> 128 -> 3.
    assert [c.filters for c in convs] == [512, 256, 128, 3]
    assert g.layers[1].units == 4 * 4 * 1024
    assert sum(isinstance(layer, keras.layers.BatchNormalization) for layer in g.layers) == 4
    assert g.layers[-1].activation.__name__ == "tanh"
    d = dcgan_discriminator((64, 64, 3), filters=128)
    d_convs = [layer for layer in d.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in d_convs] == [128, 256, 512, 1024]
    # No batch norm on the discriminator input stage.
    assert isinstance(d.layers[2], keras.layers.LeakyReLU)
    assert all(l.negative_slope == pytest.approx(0.2) for l in d.layers if isinstance(l, keras.layers.LeakyReLU))


def test_weights_are_drawn_from_n_0_002():
    g = dcgan_generator((32, 32, 3), latent_dim=100, filters=64)
    kernel = g.layers[1].kernel.numpy()
    assert abs(kernel.mean()) < 1e-3 and kernel.std() == pytest.approx(0.02, rel=0.05)


def test_layer_norm_discriminator_has_no_batch_norm():
    d = dcgan_discriminator((32, 32, 3), filters=8, normalization="layer")
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in d.layers)
    assert any(isinstance(layer, keras.layers.LayerNormalization) for layer in d.layers)


def test_outputs_stay_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    g = dcgan_generator((28, 28, 1), latent_dim=8, filters=8)
    d = dcgan_discriminator((28, 28, 1), filters=8)
    assert g.layers[2].compute_dtype == "bfloat16"
    z = np.zeros((2, 8), "float32")
    assert g(z).dtype == "float32" and d(g(z)).dtype == "float32"


@pytest.mark.parametrize("shape", [(28, 32, 1), (6, 6, 1), (28, 28), (30, 30, 3)])
def test_unsupported_shapes_are_explained(shape):
    with pytest.raises(ValueError, match="image_shape|DCGAN"):
        dcgan_generator(shape)


def test_bad_arguments():
    with pytest.raises(ValueError, match="positive"):
        dcgan_generator((28, 28, 1), latent_dim=0)
    with pytest.raises(ValueError, match="normalization"):
        dcgan_discriminator((28, 28, 1), normalization="group")


def test_refine_layers_and_dropout_options():
    g = dcgan_generator((28, 28, 1), latent_dim=8, filters=8, refine_layers=2)
    stride_one = [l for l in g.layers if isinstance(l, keras.layers.Conv2DTranspose) and l.strides == (1, 1)]
    assert len(stride_one) == 2 and all(l.filters == 16 for l in stride_one)
    assert g.output_shape == (None, 28, 28, 1)
    d = dcgan_discriminator((28, 28, 1), filters=8, dropout=0.3)
    drops = [l for l in d.layers if isinstance(l, keras.layers.Dropout)]
    assert len(drops) == 2 and all(l.rate == 0.3 for l in drops)
    # Dropout is active only in training.
    x = np.random.default_rng(0).uniform(-1, 1, (4, 28, 28, 1)).astype("float32")
    np.testing.assert_array_equal(d(x, training=False).numpy(), d(x, training=False).numpy())
    assert not np.allclose(d(x, training=True).numpy(), d(x, training=False).numpy())
    with pytest.raises(ValueError, match="dropout"):
        dcgan_discriminator((28, 28, 1), dropout=1.0)
