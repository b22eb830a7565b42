"""Differentiable augmentation for data-efficient GAN training.

`DiffAugment` (Zhao et al. 2020, "Differentiable Augmentation for
Data-Efficient GAN Training") applies the same family of random transforms to
real and generated images before the discriminator, in both the
discriminator's and the generator's update. Because every transform is
differentiable, the generator is trained through them, and the discriminator
cannot simply memorize a small training set.

Every kgan architecture takes `augment="color,translation,cutout"` (or any
subset). Transforms follow the reference implementation: brightness
+U(-0.5, 0.5), saturation x U(0, 2), contrast x U(0.5, 1.5); translation by up
to 1/8 of the image with zero padding; cutout of a square half the image size.

Example:

```python
gan = kgan.DCGAN.from_image_shape((28, 28, 1), augment="color,translation,cutout")
```
"""

import keras
import tensorflow as tf

POLICIES = ("color", "translation", "cutout")


def parse_policy(policy):
    """Normalize a policy string/list into a comma-joined string of known names."""
    if policy is None or policy == "":
        return None
    names = policy.split(",") if isinstance(policy, str) else list(policy)
    names = [n.strip() for n in names if n.strip()]
    unknown = [n for n in names if n not in POLICIES]
    if unknown or not names:
        raise ValueError(
            f"Unknown DiffAugment policy {unknown or policy!r}; use a comma-separated "
            f"subset of {', '.join(POLICIES)}, e.g. 'color,translation,cutout'."
        )
    return ",".join(names)


def _uniform(shape, seed, minval=0.0, maxval=1.0):
    return tf.random.stateless_uniform(shape, seed=seed, minval=minval, maxval=maxval)


def _randint(shape, seed, minval, maxval):
    """Integers in [minval, maxval] inclusive."""
    return tf.random.stateless_uniform(shape, seed=seed, minval=minval, maxval=maxval + 1, dtype=tf.int32)


def color(images, seed):
    """Random brightness, saturation and contrast, per image."""
    seeds = tf.random.experimental.stateless_split(seed, 3)
    batch = tf.shape(images)[0]
    images = images + (_uniform([batch, 1, 1, 1], seeds[0]) - 0.5)
    mean = tf.reduce_mean(images, axis=3, keepdims=True)
    images = (images - mean) * (_uniform([batch, 1, 1, 1], seeds[1]) * 2.0) + mean
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    return (images - mean) * (_uniform([batch, 1, 1, 1], seeds[2]) + 0.5) + mean


def _shift_axis(images, shift, axis):
    """Shift each image by `shift[b]` pixels along `axis` (1 or 2), zero fill."""
    size = tf.shape(images)[axis]
    source = tf.range(size)[None, :] - shift[:, None]  # [B, size]
    valid = tf.cast((source >= 0) & (source < size), images.dtype)
    shifted = tf.gather(images, tf.clip_by_value(source, 0, size - 1), axis=axis, batch_dims=1)
    mask_shape = [-1, size, 1, 1] if axis == 1 else [-1, 1, size, 1]
    return shifted * tf.reshape(valid, mask_shape)


def translation(images, seed, ratio=0.125):
    """Shift each image by up to `ratio` of its size in each direction, zero fill."""
    seeds = tf.random.experimental.stateless_split(seed, 2)
    batch = tf.shape(images)[0]
    size = tf.shape(images)[1:3]
    limit = tf.cast(tf.cast(size, tf.float32) * ratio + 0.5, tf.int32)
    dy = _randint([batch], seeds[0], -limit[0], limit[0])
    dx = _randint([batch], seeds[1], -limit[1], limit[1])
    return _shift_axis(_shift_axis(images, dy, 1), dx, 2)


def cutout(images, seed, ratio=0.5):
    """Zero a square of `ratio` times the image size at a random center."""
    seeds = tf.random.experimental.stateless_split(seed, 2)
    batch = tf.shape(images)[0]
    size = tf.shape(images)[1:3]
    cut = tf.cast(tf.cast(size, tf.float32) * ratio + 0.5, tf.int32)
    cy = _randint([batch, 1, 1], seeds[0], 0, size[0] + (1 - cut[0] % 2) - 1)
    cx = _randint([batch, 1, 1], seeds[1], 0, size[1] + (1 - cut[1] % 2) - 1)
    rows = tf.range(size[0])[None, :, None]
    cols = tf.range(size[1])[None, None, :]
    inside_y = (rows >= cy - cut[0] // 2) & (rows < cy - cut[0] // 2 + cut[0])
    inside_x = (cols >= cx - cut[1] // 2) & (cols < cx - cut[1] // 2 + cut[1])
    keep = 1.0 - tf.cast(inside_y & inside_x, images.dtype)
    return images * keep[..., None]


_TRANSFORMS = {"color": color, "translation": translation, "cutout": cutout}


@keras.saving.register_keras_serializable(package="kgan")
class DiffAugment(keras.layers.Layer):
    """Differentiable augmentation applied to every image the discriminator sees.

    Args:
        policy: comma-separated subset of `color,translation,cutout`.

    Call it with images `[B, H, W, C]` and a stateless seed (int `[2]`).

    Example:

    ```python
    augment = DiffAugment("translation,cutout")
    augmented = augment(images, seed=tf.constant([1, 2]))
    ```
    """

    def __init__(self, policy="color,translation,cutout", **kwargs):
        super().__init__(**kwargs)
        self.policy = parse_policy(policy)
        if self.policy is None:
            raise ValueError("DiffAugment needs a non-empty policy.")
        # No weights: built from the start, so a model holding it counts as
        # built (fit under a strategy would otherwise try a symbolic build).
        self.built = True

    def call(self, images, seed):
        images = tf.cast(images, tf.float32)
        names = self.policy.split(",")
        seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), len(names))
        for index, name in enumerate(names):
            images = _TRANSFORMS[name](images, seeds[index])
        return images

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "policy": self.policy}
