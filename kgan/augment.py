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
    """Normalize a policy string/list into a comma-joined string of known names.

    Example:

    ```python
    kgan.augment.parse_policy(" color, cutout ")  # 'color,cutout'
    kgan.augment.parse_policy(["translation"])    # 'translation'
    kgan.augment.parse_policy(None)               # None: no augmentation
    ```
    """
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
    """Random brightness, saturation and contrast, per image.

    Example:

    ```python
    images = tf.random.uniform([4, 28, 28, 1], -1.0, 1.0)
    jittered = kgan.augment.color(images, seed=tf.constant([0, 1]))  # [4, 28, 28, 1]
    ```
    """
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
    """Shift each image by up to `ratio` of its size in each direction, zero fill.

    Example:

    ```python
    images = tf.random.uniform([4, 32, 32, 3], -1.0, 1.0)
    shifted = kgan.augment.translation(images, seed=tf.constant([0, 1]))  # up to 4 pixels
    ```
    """
    seeds = tf.random.experimental.stateless_split(seed, 2)
    batch = tf.shape(images)[0]
    size = tf.shape(images)[1:3]
    limit = tf.cast(tf.cast(size, tf.float32) * ratio + 0.5, tf.int32)
    dy = _randint([batch], seeds[0], -limit[0], limit[0])
    dx = _randint([batch], seeds[1], -limit[1], limit[1])
    return _shift_axis(_shift_axis(images, dy, 1), dx, 2)


def cutout(images, seed, ratio=0.5):
    """Zero a square of `ratio` times the image size at a random center.

    Example:

    ```python
    images = tf.ones([4, 32, 32, 3])
    cut = kgan.augment.cutout(images, seed=tf.constant([0, 1]))  # zeros up to 16x16 pixels
    ```
    """
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


# ---------------------------------------------------------------------- synthetic data for classifiers
# A class-conditional generator (kgan.models.ConditionalGAN) turned into
# labeled training data: `synthetic_dataset` streams (image, label) pairs,
# `mix_datasets` blends them with real data for a classifier's `fit`, and
# `filter_by_confidence` keeps only the samples a classifier finds convincing.
#
# Images default to float32 in [-1, 1]: the range of kgan.data's labeled
# pipelines (`kgan.data.load(name, with_labels=True)`) and of kgan's own
# classifiers, so synthetic and real data mix with no conversion. `value_range`
# and `image_dtype` produce other conventions ((0, 1) floats; (0, 255) floats as
# `keras.utils.image_dataset_from_directory` yields; uint8 pixels).

import numbers as _numbers

import numpy as _np


def _conditional_generator_of(generator_or_model):
    """`(generator, num_classes, latent_dim)` of a conditional model or generator."""
    num_classes = getattr(generator_or_model, "num_classes", None)
    name = type(generator_or_model).__name__
    if hasattr(generator_or_model, "sampling_generator"):  # a kgan GAN
        if num_classes is None:
            raise TypeError(
                f"synthetic_dataset needs a class-conditional model, but {name} generates "
                "from latents alone, so its images have no labels. Train a "
                "kgan.models.ConditionalGAN (architecture 'conditional_gan') instead."
            )
        generator = generator_or_model.sampling_generator  # EMA weights when enabled
        return generator, int(num_classes), int(generator.inputs[0].shape[-1])
    if not isinstance(generator_or_model, keras.Model):
        raise TypeError(
            "synthetic_dataset takes a kgan.models.ConditionalGAN (or its generator, a Keras "
            f"model [latents, labels] -> images), got {name}."
        )
    inputs = generator_or_model.inputs or []
    if len(inputs) != 2:
        raise TypeError(
            f"synthetic_dataset needs a class-conditional generator taking [latents, labels]; "
            f"{generator_or_model.name!r} takes {len(inputs)} input(s). Pass a "
            "kgan.models.ConditionalGAN or kgan.networks.conditional_generator(...)."
        )
    embeddings = [
        layer for layer in generator_or_model.layers
        if isinstance(layer, keras.layers.Embedding)
    ]
    named = [layer for layer in embeddings if layer.name == "label_embedding"]
    if num_classes is None and len(named or embeddings) == 1:
        num_classes = (named or embeddings)[0].input_dim
    if num_classes is None:
        raise ValueError(
            f"Cannot tell how many classes generator {generator_or_model.name!r} has (no single "
            "label Embedding layer); pass the kgan.models.ConditionalGAN, which records it."
        )
    return generator_or_model, int(num_classes), int(inputs[0].shape[-1])


def _count(value, name):
    if isinstance(value, bool) or not isinstance(value, (_numbers.Integral, _np.integer)):
        raise TypeError(f"{name} must be an int, got {value!r}.")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}.")
    return int(value)


def class_counts(num_classes, num_per_class=None, class_distribution=None, num=None):
    """Exact number of examples per class for `synthetic_dataset`.

    Give either `num_per_class` (an int for every class, or one count per
    class), or `num` with an optional `class_distribution` (probabilities,
    default uniform). Fractional quotas `num * p` are rounded by the
    largest-remainder method, so the counts sum to exactly `num` and each is
    `floor` or `ceil` of its quota (ties go to the lower class index).

    Args:
        num_classes: number of classes K.
        num_per_class: int, or K ints.
        class_distribution: K non-negative numbers summing to 1 (with `num`).
        num: total number of examples.

    Returns:
        int64 numpy `[K]` of counts.

    Raises:
        ValueError: negative counts, a distribution of the wrong length or
            not summing to 1, both or neither of `num_per_class` and `num`,
            or a total of zero.
        TypeError: counts that are not ints.

    Example:

    ```python
    class_counts(3, num=10)                                # [4, 3, 3]
    class_counts(3, num=10, class_distribution=[.5, .3, .2])  # [5, 3, 2]
    ```
    """
    if (num_per_class is None) == (num is None):
        raise ValueError(
            "Pass exactly one of num_per_class= (per class) or num= (in total, split by "
            f"class_distribution); got num_per_class={num_per_class!r}, num={num!r}."
        )
    if num_per_class is not None:
        if class_distribution is not None:
            raise ValueError(
                "class_distribution applies to num=; with num_per_class= the counts are "
                "already given. Pass num_per_class=[n_0, ..., n_K-1] for unequal classes."
            )
        if isinstance(num_per_class, (_numbers.Integral, _np.integer)) and not isinstance(
            num_per_class, bool
        ):
            counts = _np.full(num_classes, _count(num_per_class, "num_per_class"), _np.int64)
        else:
            values = list(_np.asarray(num_per_class).reshape(-1)) if _np.ndim(num_per_class) else None
            if values is None or len(values) != num_classes:
                raise ValueError(
                    f"num_per_class must be an int or {num_classes} counts (one per class), "
                    f"got {num_per_class!r}."
                )
            counts = _np.array([_count(v, "each num_per_class") for v in values], _np.int64)
    else:
        num = _count(num, "num")
        if class_distribution is None:
            probabilities = _np.full(num_classes, 1.0 / num_classes)
        else:
            try:
                probabilities = _np.asarray(class_distribution, dtype=_np.float64).reshape(-1)
            except (TypeError, ValueError) as err:
                raise TypeError(
                    f"class_distribution must be {num_classes} numbers, got {class_distribution!r}."
                ) from err
            if len(probabilities) != num_classes:
                raise ValueError(
                    f"class_distribution has {len(probabilities)} entries; the generator has "
                    f"{num_classes} classes. Give one probability per class."
                )
            if not _np.isfinite(probabilities).all() or (probabilities < 0).any():
                raise ValueError(
                    f"class_distribution must hold non-negative finite probabilities, got "
                    f"{class_distribution!r}."
                )
            if abs(probabilities.sum() - 1.0) > 1e-6:
                raise ValueError(
                    f"class_distribution must sum to 1, got sum {probabilities.sum():.6g}; "
                    "normalize it, e.g. p / p.sum()."
                )
        quotas = num * probabilities
        counts = _np.floor(quotas).astype(_np.int64)
        remainder = num - int(counts.sum())
        # Largest remainder; the stable sort breaks ties toward lower classes.
        order = _np.argsort(-(quotas - counts), kind="stable")
        counts[order[:remainder]] += 1
    if counts.sum() == 0:
        raise ValueError("The requested dataset is empty: every class count is 0.")
    return counts


def _output_format(image_dtype, value_range):
    try:
        dtype = tf.as_dtype(image_dtype)
    except TypeError as err:
        raise TypeError(
            f"image_dtype must be a dtype such as 'float32' or 'uint8', got {image_dtype!r}."
        ) from err
    if not (dtype.is_floating or dtype == tf.uint8):
        raise ValueError(f"image_dtype must be a floating dtype or uint8, got {dtype.name}.")
    return (dtype, *_value_range(dtype, value_range))


def _value_range(dtype, value_range):
    """`(low, high)` of images of `dtype`: `value_range`, or 0..255 for integers, else [-1, 1]."""
    default = (0, 255) if dtype.is_integer else (-1.0, 1.0)
    if value_range is None:
        value_range = default
    try:
        low, high = (float(v) for v in value_range)
    except (TypeError, ValueError) as err:
        raise TypeError(f"value_range must be a pair (low, high), got {value_range!r}.") from err
    if not low < high:
        raise ValueError(f"value_range must have low < high, got {value_range!r}.")
    if dtype == tf.uint8 and (low, high) != (0.0, 255.0):
        raise ValueError(f"uint8 images hold 0..255; value_range must be (0, 255), got {value_range!r}.")
    return low, high


def _convert_images(images, dtype, low, high):
    """Generator output in [-1, 1] -> `dtype` in [low, high]."""
    images = tf.clip_by_value(tf.cast(images, tf.float32), -1.0, 1.0)
    if dtype == tf.uint8:
        # Exactly kgan.images.to_uint8: round half to even of (x + 1) * 127.5.
        return tf.cast(tf.round((images + 1.0) * 127.5), tf.uint8)
    if (low, high) != (-1.0, 1.0):
        images = low + (images + 1.0) * ((high - low) / 2.0)
    return tf.cast(images, dtype)


#: Latents of `synthetic_dataset` are drawn in blocks of this many examples,
#: block b seeded by the b-th draw of the dataset's seed stream and b, so the
#: images do not depend on `batch_size`. 256, the default batch size, keeps
#: the images of datasets made before blocks existed.
LATENT_BLOCK = 256


def synthetic_dataset(
    generator_or_model, num_per_class=None, class_distribution=None, num=None, batch_size=256,
    seed=None, image_dtype="float32", value_range=None, shuffle=True,
):
    """A `tf.data.Dataset` of generated `(image, label)` pairs, streamed batch by batch.

    The labels are fixed up front (exact per-class counts, see
    `class_counts`), shuffled so that any window of the stream mixes the
    classes, and the generator runs inside the pipeline one batch at a time:
    only `batch_size` images exist at once, whatever the total. With an int
    `seed` every pass yields the same images; with `seed=None` each pass
    (each epoch of `fit`) draws fresh latents for the same labels, an endless
    supply of new samples at the cost of generating them every epoch (add
    `.cache()` to generate once).

    Images are float32 in [-1, 1] by default, the range of kgan's labeled
    pipelines (`kgan.data.load(name, with_labels=True)`) and classifiers, so
    they mix with real data as they are.

    Args:
        generator_or_model: a `kgan.models.ConditionalGAN` (its EMA generator
            is used when it has one) or a conditional generator model
            `[latents, labels] -> images` in [-1, 1].
        num_per_class: examples per class: an int, or one int per class.
        class_distribution: with `num`, the probability of each class
            (default uniform); counts are exact (largest remainder).
        num: total number of examples (instead of `num_per_class`).
        batch_size: images per generator call; the images do not depend on it.
        seed: int for a reproducible dataset; None for fresh samples each pass.
        image_dtype: `"float32"` (default), another float dtype, or `"uint8"`.
        value_range: `(low, high)` of the images: default `(-1, 1)` for floats
            (use `(0, 1)` for models trained on `x / 255`, `(0, 255)` to match
            `keras.utils.image_dataset_from_directory`); uint8 is always 0..255.
        shuffle: shuffle the label order (False: class 0's examples first).

    Returns:
        An unbatched `tf.data.Dataset` of `(image [H, W, C], label int32 [])`
        with known cardinality; batch it, or pass it to `mix_datasets`.

    Raises:
        TypeError: an unconditional model (e.g. a DCGAN) or a non-model.
        ValueError: bad counts or distribution (see `class_counts`), or a
            bad `value_range`.

    Example:

    ```python
    gan = kgan.zoo.load("my_conditional_mnist")
    synthetic = kgan.augment.synthetic_dataset(gan, num_per_class=500, seed=0)
    classifier.fit(synthetic.batch(128), epochs=5)
    ```
    """
    generator, num_classes, latent_dim = _conditional_generator_of(generator_or_model)
    counts = class_counts(num_classes, num_per_class, class_distribution, num)
    batch_size = _count(batch_size, "batch_size")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1.")
    if seed is not None:
        seed = _count(seed, "seed")
    dtype, low, high = _output_format(image_dtype, value_range)

    labels = _np.repeat(_np.arange(num_classes, dtype=_np.int32), counts)
    if shuffle:
        _np.random.default_rng(seed).shuffle(labels)
    total = len(labels)
    num_batches = -(-total // batch_size)
    num_blocks = -(-total // LATENT_BLOCK)
    all_labels = tf.constant(labels)

    def block_latents(block, block_seeds):
        return tf.random.stateless_normal(
            [LATENT_BLOCK, latent_dim], seed=tf.stack([block_seeds[block], block])
        )

    def make_batch(index, block_seeds):
        start = index * batch_size
        stop = tf.minimum(start + batch_size, total)
        # Latents come in fixed blocks keyed by (block seed, block index), not
        # by batch: the same images whatever batch_size, threading or prefetching.
        first = start // LATENT_BLOCK
        blocks = tf.range(first, (stop - 1) // LATENT_BLOCK + 1)
        latents = tf.map_fn(
            lambda block: block_latents(block, block_seeds), blocks,
            fn_output_signature=tf.float32,
        )
        offset = first * LATENT_BLOCK
        latents = tf.reshape(latents, [-1, latent_dim])[start - offset : stop - offset]
        batch_labels = all_labels[start:stop]
        images = generator([latents, batch_labels], training=False)
        return _convert_images(images, dtype, low, high), batch_labels

    # One random int64 per block: fixed by `seed`, or redrawn every pass.
    block_seeds = (
        tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=seed is None)
        .take(num_blocks)
        .batch(num_blocks)
    )
    dataset = (
        block_seeds.flat_map(
            lambda seeds: tf.data.Dataset.range(num_batches).map(lambda i: make_batch(i, seeds))
        )
        .unbatch()
        .apply(tf.data.experimental.assert_cardinality(total))
    )
    return dataset.prefetch(1)


def _elements(dataset, name):
    """`(unbatched dataset of (image, int32 label), was_batched, static batch size or None)`."""
    if not isinstance(dataset, tf.data.Dataset):
        raise TypeError(f"{name} must be a tf.data.Dataset of (image, label), got {type(dataset).__name__}.")
    spec = dataset.element_spec
    if not (isinstance(spec, tuple) and len(spec) == 2):
        raise ValueError(
            f"{name} must yield (image, label) pairs, got elements {spec}. Load labeled data "
            "with kgan.data.load(name, with_labels=True)."
        )
    image_spec, label_spec = spec
    if not label_spec.dtype.is_integer:
        raise ValueError(
            f"{name}'s labels must be integer class indices, got {label_spec.dtype.name}; "
            "for one-hot labels map them with tf.argmax(y, -1)."
        )
    rank = image_spec.shape.rank
    batch = None
    if rank == 4:  # batched [B, H, W, C]; B is None for a ragged last batch
        batch = image_spec.shape[0]
        dataset = dataset.unbatch()
        image_spec, label_spec = dataset.element_spec
    elif rank != 3:
        raise ValueError(
            f"{name}'s images must be [H, W, C] (or batches [B, H, W, C]), got shape "
            f"{image_spec.shape}."
        )
    if label_spec.shape.rank == 1 and label_spec.shape[0] == 1:  # [1] labels, keras.datasets style
        dataset = dataset.map(lambda x, y: (x, tf.reshape(y, [])))
    elif label_spec.shape.rank != 0:
        raise ValueError(f"{name}'s labels must be one class index per image, got shape {label_spec.shape}.")
    dataset = dataset.map(lambda x, y: (x, tf.cast(y, tf.int32)))
    return dataset, rank == 4, batch


def _fraction(value, name):
    if isinstance(value, bool) or not isinstance(value, (_numbers.Real, _np.floating, _np.integer)):
        raise TypeError(f"{name} must be a number in [0, 1], got {value!r}.")
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}.")
    return float(value)


def mix_datasets(real, synthetic, synthetic_fraction=0.5, seed=None, batch_size=None,
                 value_range=None, check_value_range=True):
    """Interleave real and synthetic `(image, label)` data into batches for `fit`.

    Each example comes from `synthetic` with probability `synthetic_fraction`
    (`tf.data.Dataset.sample_from_datasets`). The mix stops when either input
    runs out, so the fraction holds over the whole stream instead of the tail
    being all real or all synthetic; `.repeat()` the input you want to reuse.

    Both inputs may be batched (`[B, H, W, C]`, as `kgan.data.load` yields)
    or not (as `synthetic_dataset` yields); labels are cast to int32. Images
    must already share dtype and `value_range`: `synthetic_dataset`'s
    default float32 [-1, 1] matches `kgan.data.load(..., with_labels=True)`.
    Real images of another convention, [0, 1] (`x / 255`) or the [0, 255]
    floats of `keras.utils.image_dataset_from_directory`, would otherwise mix
    with [-1, 1] samples silently, so the first
    `RANGE_CHECK_IMAGES` images of each input drawn from are checked when the
    mix is iterated (the inputs are not read beforehand, so their order is
    unchanged): values well outside `value_range` (a quarter of its span:
    resizing overshoots), a signed range whose negative half goes unused
    while its positive half is used, or a range wider than 2 used only in its
    bottom tenth mean another convention. Dark, bright or constant images of
    the right one pass, and so do values all near the middle (an untrained
    generator's).

    Args:
        real: dataset of real `(image, label)`.
        synthetic: dataset of generated `(image, label)`.
        synthetic_fraction: share of synthetic examples, in [0, 1].
        seed: seed of the draw (same seed, same interleaving, under the
            same global seed: TensorFlow combines the two, so
            `keras.utils.set_random_seed` changes it too).
        batch_size: examples per batch; default the batch size of `real` when
            it is batched with a static size, else 32 (Keras' default).
        value_range: `(low, high)` of both inputs' images, as in
            `synthetic_dataset`: default `(-1, 1)` for floats, `(0, 255)`
            for uint8. Rescale the real images to it, or make the synthetic
            ones in the real data's range with
            `synthetic_dataset(..., value_range=...)` and pass the same here.
        check_value_range: False skips the check of the first images (e.g.
            for [-1, 1] images with no pixel below -0.02).

    Returns:
        A batched, prefetched `tf.data.Dataset` of `(images, labels)`.

    Raises:
        ValueError: a fraction outside [0, 1], elements that are not
            `(image, label)`, or images of different shapes or dtypes.
        TypeError: an input that is not a `tf.data.Dataset`.
        tf.errors.InvalidArgumentError: when iterated, if an input drawn
            from is empty, or its first images do not fit `value_range` (the
            message says which input, its values and how to rescale them).

    Example:

    ```python
    real = kgan.data.load("mnist_5k", split="train[:10%]", batch_size=64, with_labels=True)
    synthetic = kgan.augment.synthetic_dataset(gan, num_per_class=200, seed=0)
    classifier.fit(kgan.augment.mix_datasets(real.repeat(), synthetic, 0.5, seed=0), epochs=5)
    ```
    """
    fraction = _fraction(synthetic_fraction, "synthetic_fraction")
    real, _, real_batch = _elements(real, "real")
    synthetic, _, _ = _elements(synthetic, "synthetic")
    real_image, synthetic_image = real.element_spec[0], synthetic.element_spec[0]
    if real_image.dtype != synthetic_image.dtype:
        raise ValueError(
            f"real images are {real_image.dtype.name} but synthetic ones {synthetic_image.dtype.name}; "
            "make them match, e.g. synthetic_dataset(..., image_dtype=..., value_range=...)."
        )
    if not real_image.shape.is_compatible_with(synthetic_image.shape):
        raise ValueError(
            f"real images have shape {real_image.shape} but synthetic ones {synthetic_image.shape}; "
            "resize the real data (kgan.data.load(..., image_size=...)) or use a generator of "
            "that size."
        )
    if batch_size is None:
        batch_size = real_batch if real_batch is not None else 32
    batch_size = _count(batch_size, "batch_size")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1.")
    low, high = _value_range(real_image.dtype, value_range)
    # Either input empty (e.g. filter_by_confidence kept nothing) stopped the
    # mix at once: fit then trained on nothing with only a warning.
    if fraction < 1.0:
        real = _fail_if_empty(real, "mix_datasets: the real dataset yielded no (image, label) "
                                    "examples.")
    if fraction > 0.0:
        synthetic = _fail_if_empty(
            synthetic, "mix_datasets: the synthetic dataset yielded no (image, label) examples. "
            "From kgan.augment.filter_by_confidence this means no generated image reached its "
            "threshold: lower the threshold, or train the GAN longer.")
    if check_value_range:
        if fraction < 1.0:
            real = _fail_if_out_of_range(real, "real", low, high)
        if fraction > 0.0:
            synthetic = _fail_if_out_of_range(synthetic, "synthetic", low, high)
    if fraction == 0.0:
        mixed = real
    elif fraction == 1.0:
        mixed = synthetic
    else:
        mixed = tf.data.Dataset.sample_from_datasets(
            [real, synthetic], weights=[1.0 - fraction, fraction], seed=seed,
            stop_on_empty_dataset=True,
        )
    return mixed.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _fail_if_empty(dataset, message):
    """`dataset` of `(image, label)`, unchanged, but raising `message` when it
    ends before its first element.

    Lazy, unlike peeking at an element first: that would make an iterator,
    which advances the input's shuffle seeds and changes its order.
    """
    image_spec, label_spec = dataset.element_spec
    shape = [1 if size is None else size for size in image_spec.shape]
    end = tf.data.Dataset.from_tensors(
        (True, tf.zeros(shape, image_spec.dtype), tf.zeros([], label_spec.dtype)))
    marked = dataset.map(lambda image, label: (False, image, label)).concatenate(end)

    def check(index, element):
        is_end, image, label = element
        nothing_before = tf.logical_and(is_end, tf.equal(index, 0))
        with tf.control_dependencies([tf.debugging.Assert(tf.logical_not(nothing_before), [message])]):
            return tf.identity(is_end), image, label

    return (marked.enumerate().map(check)
            .filter(lambda is_end, image, label: tf.logical_not(is_end))
            .map(lambda is_end, image, label: (image, label)))


#: How many first images of each input `mix_datasets` checks against `value_range`.
RANGE_CHECK_IMAGES = 32

#: Image conventions `mix_datasets` names when an input does not fit, the
#: narrowest first: the first that holds an input's values is named.
_CONVENTIONS = ((0.0, 1.0), (-1.0, 1.0), (0.0, 255.0))

#: How far past `value_range` an input's values may go, as a share of its
#: span: bicubic or Lanczos resizing and contrast jitter overshoot (a bicubic
#: resize of [-1, 1] digits spanned [-1.06, 1.14]).
_RANGE_OVERSHOOT = 0.25


def _rescaling(name, source, target):
    """The `name.map(...)` call that takes images from range `source` to `target`."""
    scale = (target[1] - target[0]) / (source[1] - source[0])
    offset = target[0] - source[0] * scale
    formula = f"x / {1 / scale:.6g}" if scale < 1 else f"x * {scale:.6g}"
    if offset:
        formula += f" {'+' if offset > 0 else '-'} {abs(offset):.6g}"
    return f"{name}.map(lambda x, y: ({formula}, y))"


def _fail_if_out_of_range(dataset, name, low, high):
    """`dataset` of `(image, label)`, unchanged, but raising when its first
    `RANGE_CHECK_IMAGES` images look like images of another convention.

    Only evidence of another convention fails: values well past either end
    of `[low, high]` ([0, 255] or [-1, 1] images in [0, 1]), a signed range
    whose negative part goes unused while its positive part is used ([0, 1]
    images in [-1, 1]), or, in a range
    wider than 2, values only in its bottom tenth ([0, 1] or [-1, 1] images
    as 0..255 floats). Dark, bright, constant or slightly overshooting images
    of the right convention pass.

    Lazy, as `_fail_if_empty`: the images are checked as the mix reads them.
    """
    span = high - low
    value_range = f"({low:g}, {high:g})"
    candidates = [c for c in _CONVENTIONS if c != (low, high)]
    messages = [
        f"mix_datasets: the first images of the {name} dataset do not fit value_range "
        f"{value_range}: they look like [{c[0]:g}, {c[1]:g}] images. Rescale them with "
        f"{_rescaling(name, c, (low, high))}, or make both inputs [{c[0]:g}, {c[1]:g}] with "
        f"synthetic_dataset(..., value_range=({c[0]:g}, {c[1]:g})) and mix_datasets(..., "
        f"value_range=({c[0]:g}, {c[1]:g})); check_value_range=False skips this check. "
        "Smallest and largest value of its first images:"
        for c in candidates
    ] + [
        f"mix_datasets: the first images of the {name} dataset do not look like value_range "
        f"{value_range} images. Pass the (low, high) of both inputs as value_range, or "
        "check_value_range=False to skip this check. Smallest and largest value of its first "
        "images:"
    ]

    def holds(convention, smallest, largest):
        margin = _RANGE_OVERSHOOT * (convention[1] - convention[0])
        return (smallest >= convention[0] - margin) & (largest <= convention[1] + margin)

    def check(index, images, labels):
        if tf.equal(index, 0):  # the first RANGE_CHECK_IMAGES images only
            values = tf.cast(images, tf.float32)
            smallest, largest = tf.reduce_min(values), tf.reduce_max(values)
            other = ~holds((low, high), smallest, largest)
            if low < 0:
                # No value below the middle, while the upper half is used:
                # unsigned images. Barely below counts as signed, and values
                # all near the middle are no evidence: an untrained
                # generator's tanh stays within +-0.03 of 0.
                other |= (smallest >= low + 0.49 * span) & (largest >= low + 0.6 * span)
            if span > 2:
                other |= largest <= low + 0.1 * span
            # The narrowest convention that holds the values names them.
            named = tf.stack([holds(c, smallest, largest) for c in candidates] + [True])
            message = tf.gather(tf.constant(messages), tf.argmax(tf.cast(named, tf.int32)))
            tf.debugging.Assert(~other, [message, smallest, largest])
        return images, labels

    return (dataset.batch(RANGE_CHECK_IMAGES).enumerate()
            .map(lambda index, batch: check(index, *batch)).unbatch())


#: How far from 1 a row of 16-bit probabilities may sum: 8 units of their
#: machine epsilon (2^-7 for bfloat16, 2^-10 for float16); others 1e-3.
_SUM_TOLERANCE = {"bfloat16": 8 * 2.0**-7, "float16": 8 * 2.0**-10}


def filter_by_confidence(dataset, classifier, threshold, batch_size=256, from_logits=None):
    """Keep the `(image, label)` examples a classifier agrees with confidently.

    An example stays when the classifier's probability of *its label* is at
    least `threshold`: generated images that do not look like their class to
    an independent classifier are dropped before they can teach a wrong label.

    Args:
        dataset: `(image, label)` dataset, batched or not (the result keeps the
            structure; batched input is re-batched to its batch size).
        classifier: a Keras model (or callable) from images to `[B, K]`
            class logits or probabilities, taking images as `dataset` holds them.
        threshold: minimum probability of the labeled class, in [0, 1].
        batch_size: images per classifier call for an unbatched `dataset`
            (and per output batch when the input's batch size is not static).
        from_logits: True for logits, False for probabilities; None decides
            per batch (rows of values in [0, 1] summing to 1, to within the
            output dtype's rounding, are probabilities).

    Raises:
        tf.errors.InvalidArgumentError: when iterated, for a label that is not
            one of the classifier's classes.

    Returns:
        The filtered `tf.data.Dataset`.

    Example:

    ```python
    confident = kgan.augment.filter_by_confidence(synthetic, classifier, threshold=0.9)
    ```
    """
    threshold = _fraction(threshold, "threshold")
    if not callable(classifier):
        raise TypeError(f"classifier must be a Keras model or callable, got {type(classifier).__name__}.")
    batch_size = _count(batch_size, "batch_size")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1.")
    elements, batched, input_batch = _elements(dataset, "dataset")
    # Keras models take `training`; plain callables may not.
    takes_training = isinstance(classifier, keras.layers.Layer)

    def probabilities(outputs):
        outputs = tf.convert_to_tensor(outputs)
        # A 16-bit softmax (a mixed-precision classifier) sums to 1 only to
        # within its rounding: bfloat16 rows missed 1e-3 by up to 2e-3, were
        # taken for logits, and a second softmax let no image pass.
        tolerance = _SUM_TOLERANCE.get(outputs.dtype.name, 1e-3)
        outputs = tf.cast(outputs, tf.float32)
        if outputs.shape.rank != 2:
            raise ValueError(
                f"The classifier must output [batch, num_classes] scores, got shape {outputs.shape}."
            )
        if from_logits is True:
            return tf.nn.softmax(outputs)
        if from_logits is False:
            return outputs
        looks_normalized = tf.reduce_all(outputs >= 0.0) & tf.reduce_all(
            tf.abs(tf.reduce_sum(outputs, axis=-1) - 1.0) < tolerance
        )
        return tf.cond(looks_normalized, lambda: outputs, lambda: tf.nn.softmax(outputs))

    def score(images, labels):
        outputs = classifier(images, training=False) if takes_training else classifier(images)
        scores = probabilities(outputs)
        classes = tf.shape(scores)[1]
        # tf.gather fails past the end with a bare "indices[1] = 3 is not in [0, 3)".
        check = tf.debugging.Assert(
            tf.reduce_all((labels >= 0) & (labels < classes)),
            # No quotes: TensorFlow escapes them in the message.
            ["filter_by_confidence: a label is not one of the classes of the classifier; pass "
             "a classifier of the classes of the dataset. Classes (scores per image), smallest "
             "and largest label of the batch:", classes, tf.reduce_min(labels),
             tf.reduce_max(labels)],
        )
        with tf.control_dependencies([check]):
            labels = tf.identity(labels)
        return images, labels, tf.gather(scores, labels, axis=1, batch_dims=1)

    kept = (
        elements.batch(input_batch or batch_size)
        .map(score)
        .unbatch()
        .filter(lambda image, label, confidence: confidence >= threshold)
        .map(lambda image, label, confidence: (image, label))
    )
    if batched:
        kept = kept.batch(input_batch or batch_size)
    return kept.prefetch(tf.data.AUTOTUNE)
