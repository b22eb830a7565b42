"""DiffAugment transforms: correctness, differentiability, determinism."""

import numpy as np
import pytest
import tensorflow as tf

from kgan import augment
from kgan.augment import DiffAugment

SEED = tf.constant([3, 4], tf.int64)


def images(batch=8, size=16, channels=1, seed=0):
    return tf.constant(np.random.default_rng(seed).uniform(-1, 1, (batch, size, size, channels)), tf.float32)


def test_translation_shifts_whole_images_with_zero_fill():
    x = images(batch=32, size=16)
    out = augment.translation(x, SEED).numpy()
    limit = int(16 * 0.125 + 0.5)
    shifts_seen = set()
    for original, shifted in zip(x.numpy(), out):
        found = False
        for dy in range(-limit, limit + 1):
            for dx in range(-limit, limit + 1):
                expected = np.zeros_like(original)
                src = original[max(0, -dy):16 - max(0, dy), max(0, -dx):16 - max(0, dx)]
                expected[max(0, dy):max(0, dy) + src.shape[0], max(0, dx):max(0, dx) + src.shape[1]] = src
                if np.allclose(expected, shifted):
                    found = True
                    shifts_seen.add((dy, dx))
        assert found, "output is not a zero-filled shift of the input"
    assert len(shifts_seen) > 5, "shifts should vary per image"


def test_cutout_zeroes_a_square_of_half_the_size():
    x = tf.ones((64, 16, 16, 1))
    out = augment.cutout(x, SEED).numpy()
    zeroed = (out == 0).reshape(64, -1).sum(axis=1)
    assert zeroed.max() == 64  # an 8x8 square fully inside
    assert zeroed.min() > 0  # always some cut, even at the border
    for mask in out[..., 0] == 0:
        rows, cols = np.where(mask)
        assert rows.max() - rows.min() < 8 and cols.max() - cols.min() < 8


def test_color_ranges():
    x = tf.zeros((256, 4, 4, 1))
    out = augment.color(x, SEED).numpy()
    # Brightness only moves a constant image: offsets in [-0.5, 0.5), varied.
    offsets = out[:, 0, 0, 0]
    assert offsets.min() >= -0.5 and offsets.max() < 0.5 and offsets.std() > 0.2
    np.testing.assert_allclose(out, offsets[:, None, None, None] * np.ones_like(out), atol=1e-6)


def test_transforms_are_differentiable():
    layer = DiffAugment("color,translation,cutout")
    x = tf.Variable(images())
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x, seed=SEED) ** 2)
    grad = tape.gradient(loss, x)
    assert grad is not None and np.abs(grad.numpy()).sum() > 0


def test_same_seed_same_output_and_different_seed_differs():
    layer = DiffAugment("color,translation,cutout")
    x = images()
    np.testing.assert_array_equal(layer(x, seed=SEED).numpy(), layer(x, seed=SEED).numpy())
    assert not np.allclose(layer(x, seed=SEED).numpy(), layer(x, seed=tf.constant([5, 6], tf.int64)).numpy())


def test_policy_parsing_and_config():
    assert augment.parse_policy("translation, cutout") == "translation,cutout"
    assert augment.parse_policy(["color"]) == "color"
    assert augment.parse_policy(None) is None
    with pytest.raises(ValueError, match="Unknown DiffAugment policy.*flip"):
        augment.parse_policy("color,flip")
    layer = DiffAugment("cutout")
    assert DiffAugment.from_config(layer.get_config()).policy == "cutout"


def test_gan_applies_augmentation_to_the_discriminator_view():
    from kgan.models import DCGAN

    plain = DCGAN.from_image_shape((16, 16, 1), latent_dim=4, filters=4, seed=0)
    augmented = DCGAN.from_image_shape((16, 16, 1), latent_dim=4, filters=4, seed=0, augment="cutout")
    x = tf.ones((4, 16, 16, 1))
    np.testing.assert_array_equal(plain.discriminator_view(x).numpy(), x.numpy())
    assert (augmented.discriminator_view(x).numpy() == 0).any()
    assert DCGAN.from_config(augmented.get_config()).augment == "cutout"
