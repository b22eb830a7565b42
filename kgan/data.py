"""tf.data input pipelines for GAN training.

Every public function returns a batched, prefetched ``tf.data.Dataset`` of
float32 images scaled to ``[-1, 1]`` with shape ``[B, H, W, C]`` (the range a
``tanh`` generator produces), or of ``(images, labels)`` pairs with int32
labels ``[B]`` when labels are asked for. The sources are:

* :func:`load`: a tensorflow-datasets name (``"mnist"``, ``"cifar10"``,
  ``"celeb_a"``, ...) or an embedded dataset from :data:`EMBEDDED_DATASETS`
  that ships with kgan and works offline (``"mnist_5k"``, ``"digits_8x8"``).
* :func:`from_numpy`: arrays already in memory.
* :func:`from_folder`: a folder of PNG/JPEG/BMP/GIF files, optionally with
  one sub-folder per class.
* :func:`unpaired`: two unpaired image domains for CycleGAN, each a name, a
  folder or an array (or one ``cycle_gan/...`` name for both), yielding
  ``(images_a, images_b)`` batches, optionally with the paper's jitter.

The first three share one pipeline: scale to ``[-1, 1]``, resize (only when the
size differs), convert channels, cache the preprocessed examples, shuffle,
batch (dropping a ragged last batch by default, because a batch of another
size retraces a compiled train step) and prefetch.

Every pipeline here runs with tf.data's autotuning off, and so does any
dataset `GAN.fit` trains on whose options leave it unset (see
:func:`without_teardown_stall`): `fit` makes a new iterator each epoch, and
with autotuning on, deleting one waits for the autotuner's sleeping thread,
which on this project's CPUs lengthened about half of all DCGAN epochs from
2.6 s to 5.1 s. Parallel maps still use every core and prefetch buffers still
grow on demand.

``repeat_batches=k`` makes every yielded batch hold ``k * batch_size``
examples. Trainers that take several optimizer steps per ``train_step`` use
it: WGAN's step splits one big batch into ``n_critic`` critic minibatches of
``batch_size`` each, so it needs ``repeat_batches=n_critic``.

A dataset that tensorflow-datasets cannot download or find raises
:class:`DatasetUnavailableError`, whose message names the offline
alternative; no function here ever substitutes another dataset. Before tfds
downloads, a connection check of the dataset's download hosts makes that
error immediate without a network (tfds itself retries for minutes).

Example:
    >>> from kgan import data
    >>> train = data.load("mnist_5k", batch_size=64, seed=0)
    >>> images = next(iter(train))
    >>> images.shape, images.dtype
    (TensorShape([64, 28, 28, 1]), tf.float32)
"""

from __future__ import annotations

import collections
import difflib
import functools
import importlib.resources
import numbers
import os
import re
import socket
import urllib.parse
import urllib.request
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

__all__ = [
    "EMBEDDED_DATASETS",
    "embedded_split",
    "IMAGE_EXTENSIONS",
    "undecodable_images",
    "DatasetUnavailableError",
    "TooFewExamplesError",
    "UnknownDatasetError",
    "decode_image_file",
    "from_folder",
    "from_numpy",
    "load",
    "load_mnist_5k",
    "unpaired",
]

EMBEDDED_DATASETS: dict[str, str] = {
    "mnist_5k": (
        "5,000 MNIST digits (500 per class), 28x28 grayscale, labels 0-9; "
        "ships with kgan and works offline"
    ),
    "digits_8x8": (
        "1,797 handwritten digits (174-183 per class) from scikit-learn, 8x8 grayscale with "
        "17 grey levels (0-16 scaled to 0-255), labels 0-9; ships with kgan and works offline"
    ),
}
"""Datasets that install with kgan: name -> short description."""

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".gif") + (
    # TensorFlow's decode_image reads WebP where it has a WebP decoder (newer releases).
    (".webp",) if hasattr(tf.io, "decode_webp") else ()
)
"""File extensions :func:`from_folder` reads (case-insensitive)."""

#: Image formats TensorFlow cannot decode: `from_folder` skips them, and warns.
_UNREADABLE_IMAGE_EXTENSIONS = tuple(
    ext for ext in (".webp", ".tif", ".tiff", ".heic", ".heif", ".avif", ".jxl", ".jp2", ".ppm",
                    ".pgm", ".pbm", ".ico", ".psd", ".dng", ".cr2", ".nef", ".arw")
    if ext not in IMAGE_EXTENSIONS
)

# A full-dataset shuffle buffer of decoded images is the best shuffle but costs
# a second copy of the data in memory; MNIST-sized sets (60k) still fit easily.
_FULL_SHUFFLE_LIMIT = 60_000
_LARGE_SHUFFLE_BUFFER = 10_000
# Float inputs often come from a previous computation (a generator, a resize)
# and can overshoot [-1, 1] by rounding; reject only real range mistakes.
_FLOAT_TOLERANCE = 1e-3
_OFFLINE_HINT = (
    "to work offline use the embedded set: kgan.data.load('mnist_5k') "
    "(or --dataset mnist_5k on the command line)"
)
_UNPAIRED_OFFLINE_HINT = (
    "to work offline use the embedded digit domains: "
    "kgan.data.unpaired('digits_8x8', 'mnist_5k', image_size=32)"
)


class UnknownDatasetError(ValueError):
    """A dataset name that is neither embedded in kgan nor a tensorflow-datasets name.

    The message suggests close names. A `ValueError`, unlike
    :class:`DatasetUnavailableError`: the name is wrong, not the network.

    Example:
        >>> try:
        ...     kgan.data.load("mnistt")
        ... except kgan.data.UnknownDatasetError as err:
        ...     print(err)  # "Unknown dataset 'mnistt': ... Did you mean 'mnist'?"
    """


class TooFewExamplesError(ValueError):
    """The data holds fewer examples than one training step takes.

    With ``drop_remainder=True`` such a dataset would yield no batch at all,
    and ``fit`` would silently train zero steps, so :func:`load` refuses it;
    :func:`unpaired` refuses a domain smaller than one batch likewise.

    Attributes:
        num_examples: Examples in the data (after ``split``).
        batch_size: Examples per batch.
        repeat_batches: Batches one step takes (WGAN's ``n_critic``).
        source: How the data was named, e.g. ``"Domain A ('digits_8x8')"`` for
            :func:`unpaired`, or None.

    Example:
        >>> try:
        ...     kgan.data.load("digits_8x8", split="train[:10]", batch_size=64)
        ... except kgan.data.TooFewExamplesError as err:
        ...     print(err.num_examples, err.batch_size)  # 10 64
    """

    def __init__(
        self, message: str, *, num_examples: int, batch_size: int, repeat_batches: int = 1,
        source: str | None = None,
    ):
        super().__init__(message)
        self.num_examples = num_examples
        self.batch_size = batch_size
        self.repeat_batches = repeat_batches
        self.source = source


class _SingleDomainError(ValueError):
    """:func:`unpaired` got one domain that does not stand for both (for the CLI's wording)."""


class DatasetUnavailableError(RuntimeError):
    """A tensorflow-datasets dataset could not be downloaded or found.

    Raised by :func:`load` instead of any fallback, so a run never trains on
    data other than the one it named.

    Attributes:
        dataset: The dataset name that was asked for.
        data_dir: The tfds data directory that was tried.

    Example:
        >>> try:
        ...     train = kgan.data.load("mnist", data_dir="/empty", download=False)
        ... except kgan.data.DatasetUnavailableError:
        ...     train = kgan.data.load("mnist_5k")
    """

    def __init__(self, message: str, *, dataset: str | None = None, data_dir: str | None = None):
        super().__init__(message)
        self.dataset = dataset
        self.data_dir = data_dir


# ---------------------------------------------------------------------------
# Embedded data


def _embedded_file(filename: str) -> tuple[Any, str]:
    """Returns an open binary file for ``kgan/datasets/<filename>`` and its name."""
    try:
        resource = importlib.resources.files("kgan.datasets").joinpath(filename)
        # open() instead of a filesystem path: works when kgan is imported from a zip.
        return resource.open("rb"), str(resource)
    except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError):
        pass
    # kgan used from a source tree that is not on sys.path as a package.
    path = Path(__file__).resolve().parent / "datasets" / filename
    if not path.is_file():
        raise FileNotFoundError(
            f"The embedded dataset file {filename!r} is missing from kgan/datasets "
            f"(looked in the installed package and at {path}). Reinstall kgan; if you "
            f"build it yourself, keep '*.npz' in the kgan.datasets package data."
        )
    return path.open("rb"), str(path)


# name -> (file in kgan/datasets, images shape, the module that rebuilds it)
_EMBEDDED_FILES: dict[str, tuple[str, tuple[int, int, int], str]] = {
    "mnist_5k": ("mnist_5k.npz", (5000, 28, 28), "make_mnist_5k"),
    "digits_8x8": ("digits_8x8.npz", (1797, 8, 8), "make_digits_8x8"),
}


@functools.cache
def _read_embedded(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Reads an embedded dataset once; the arrays are read-only."""
    filename, shape, builder = _EMBEDDED_FILES[name]
    handle, where = _embedded_file(filename)
    damaged = (
        f"the file is damaged. Reinstall kgan or rebuild it with "
        f"`python -m kgan.datasets.{builder}`."
    )
    with handle, np.load(handle) as archive:
        if {"images", "labels"} - set(archive.files):
            raise ValueError(
                f"{where} has arrays {archive.files}, not 'images' and 'labels'; {damaged}"
            )
        images, labels = archive["images"], archive["labels"]
    if (
        images.shape != shape
        or labels.shape != shape[:1]
        or images.dtype != np.uint8
        or not np.issubdtype(labels.dtype, np.integer)
        or labels.min() < 0
        or labels.max() > 9
    ):
        raise ValueError(
            f"{where} holds images {images.dtype} {images.shape} and labels {labels.dtype} "
            f"{labels.shape}, expected uint8 {shape} and integer class indices 0..9 "
            f"{shape[:1]}; {damaged}"
        )
    images = images[..., np.newaxis]
    labels = labels.astype(np.int32)
    # Shared by every call through the cache: freeze them so no caller can
    # corrupt the data seen by later calls.
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def load_mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """Loads the embedded 5,000-digit MNIST subset as numpy arrays.

    The file ships inside kgan (see ``kgan/datasets/README.md`` for its source
    and license), so this works without a network. Examples are sorted by
    class: shuffle before splitting or batching.

    Returns:
        ``(images, labels)``: uint8 ``[5000, 28, 28, 1]`` with values 0..255
        (0 is background) and int32 ``[5000]`` with 500 examples of each digit.
        Both are fresh copies the caller may modify.

    Raises:
        FileNotFoundError: If the data file is missing from the installation.

    Example:
        >>> images, labels = kgan.data.load_mnist_5k()
        >>> images.shape, labels.shape
        ((5000, 28, 28, 1), (5000,))
    """
    images, labels = _read_embedded("mnist_5k")
    return images.copy(), labels.copy()


_EMBEDDED_LOADERS = {name: functools.partial(_read_embedded, name) for name in _EMBEDDED_FILES}

_SPLIT_SLICE = re.compile(r"^train(?:\[(-?\d+%?)?:(-?\d+%?)?\])?$")


def embedded_split(
    name: str, split: str = "train"
) -> tuple[np.ndarray, np.ndarray]:
    """The examples of an embedded dataset selected by a tfds-style split.

    Embedded datasets have one split, ``"train"``, sliced as in tfds by
    whole percents or example counts: ``"train[:80%]"``, ``"train[80%:]"``,
    ``"train[:2500]"`` (not tfds's fractional percents or ``+`` unions). Slices are taken
    from a fixed stratified order that spreads every class evenly over the
    whole dataset (the ``k``-th of a class's ``n`` examples sits at ``(k +
    0.5) / n`` of the way through; ties go to the lower label). So a slice
    from either end (``"train[:p]"``, ``"train[p:]"``) holds each class in
    proportion to its share of the dataset to within one example (any slice
    to within two): a held-out ``"train[80%:]"`` is a stratified test set, and
    ``"train[:50%]"`` and ``"train[50%:]"`` are two disjoint, stratified
    halves. With equal class counts (``mnist_5k``) the order is simply 0, 1,
    ..., 9, 0, 1, ...; ``digits_8x8``, with 174 to 183 examples per class,
    keeps its slices stratified all the same.

    Args:
        name: an embedded dataset name, e.g. ``"mnist_5k"``.
        split: ``"train"`` or a slice of it.

    Returns:
        ``(images, labels)``: uint8 ``[N, H, W, C]`` and int32 ``[N]``, new
        arrays the caller may modify.

    Raises:
        ValueError: For an unknown embedded name or a split that is not a
            slice of ``"train"`` (the message shows the accepted forms).

    Example:
        >>> test_images, test_labels = kgan.data.embedded_split("mnist_5k", "train[80%:]")
        >>> len(test_images)
        1000
    """
    if name not in _EMBEDDED_LOADERS:
        raise ValueError(
            f"{name!r} is not an embedded dataset; embedded: {', '.join(_EMBEDDED_LOADERS)}."
        )
    images, labels = _EMBEDDED_LOADERS[name]()
    match = _SPLIT_SLICE.match(split.replace(" ", "")) if isinstance(split, str) else None
    if match is None:
        raise ValueError(
            f"The embedded dataset {name!r} has only the split 'train' (all its examples), "
            f"sliceable as in tfds; got {split!r}. Use 'train', 'train[:80%]', "
            f"'train[80%:]' or 'train[:2500]'."
        )
    # Each example's place in its class, as a fraction of the class size; a
    # stable sort on (place, label) is the stratified order. With equal class
    # sizes it is the plain interleaving 0, 1, ..., 9, 0, 1, ...
    place = np.empty(len(labels), dtype=np.float64)
    for value in np.unique(labels):
        members = np.flatnonzero(labels == value)
        place[members] = (np.arange(len(members)) + 0.5) / len(members)
    order = np.lexsort((labels, place))
    bounds = [_slice_bound(b, len(order)) for b in match.groups()]
    chosen = order[slice(*bounds)]
    if len(chosen) == 0:
        raise ValueError(f"The split {split!r} of {name!r} selects no examples.")
    return images[chosen], labels[chosen]


def _slice_bound(text: str | None, total: int) -> int | None:
    if text is None:
        return None
    if text.endswith("%"):
        percent = int(text[:-1])
        if abs(percent) > 100:
            raise ValueError(
                f"The split boundary {text} is outside -100%..100%; slice with e.g. 'train[:80%]'."
            )
        # tfds rounds percent boundaries to the closest example.
        return int(round(total * percent / 100))
    return int(text)


# ---------------------------------------------------------------------------
# Argument checks


def _check_int(value: Any, name: str, minimum: int = 1) -> int:
    # bool is an int subclass; batch_size=True is always a mistake.
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r} ({type(value).__name__}).")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}.")
    return int(value)


def _check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r} ({type(value).__name__}).")
    return bool(value)


def _parse_image_size(image_size: Any) -> tuple[int, int] | None:
    if image_size is None:
        return None
    if isinstance(image_size, numbers.Integral) and not isinstance(image_size, bool):
        size = (int(image_size), int(image_size))
    elif (
        isinstance(image_size, Sequence)
        and not isinstance(image_size, str)
        and len(image_size) == 2
        and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in image_size)
    ):
        size = (int(image_size[0]), int(image_size[1]))
    else:
        raise TypeError(
            f"image_size must be an int (square images) or a (height, width) pair of ints, "
            f"got {image_size!r}."
        )
    if min(size) < 1:
        raise ValueError(f"image_size must be positive, got {image_size!r}.")
    return size


def _check_channels(channels: Any) -> int | None:
    if channels is None:
        return None
    if (
        isinstance(channels, bool)
        or not isinstance(channels, numbers.Integral)
        or channels not in (1, 3)
    ):
        raise ValueError(
            f"channels must be 1 (grayscale), 3 (RGB) or None (keep the source's), "
            f"got {channels!r}."
        )
    return int(channels)


def _check_seed(seed: Any) -> int | None:
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise TypeError(f"seed must be an int or None, got {seed!r} ({type(seed).__name__}).")
    return None if seed is None else int(seed)


def _pipeline_options(
    batch_size: Any,
    image_size: Any,
    channels: Any,
    shuffle: Any,
    seed: Any,
    cache: Any,
    drop_remainder: Any,
    repeat_batches: Any,
) -> dict[str, Any]:
    """Checks the arguments every public function shares, before any work."""
    return {
        "batch_size": _check_int(batch_size, "batch_size"),
        "image_size": _parse_image_size(image_size),
        "channels": _check_channels(channels),
        "shuffle": _check_bool(shuffle, "shuffle"),
        "seed": _check_seed(seed),
        "cache": _check_bool(cache, "cache"),
        "drop_remainder": _check_bool(drop_remainder, "drop_remainder"),
        "repeat_batches": _check_int(repeat_batches, "repeat_batches"),
    }


# ---------------------------------------------------------------------------
# The shared pipeline


def _resize(image: tf.Tensor, size: tuple[int, int], method: str = "bilinear") -> tf.Tensor:
    # antialias only matters when shrinking: it then filters like PIL does.
    image = tf.image.resize(image, size, method=method, antialias=True)
    # Interpolation can round a hair past the ends of the range.
    return tf.clip_by_value(image, -1.0, 1.0)


def _make_preprocess(
    image_spec: tf.TensorSpec,
    image_size: tuple[int, int] | None,
    channels: int | None,
    source: str,
    method: str = "bilinear",
):
    """Plans, from the static spec, the per-example map to float32 [-1, 1]."""
    shape = image_spec.shape
    if shape.rank != 3:
        raise ValueError(
            f"{source}: each image must be [height, width, channels], got shape {shape}."
        )
    if image_spec.dtype != tf.uint8 and not image_spec.dtype.is_floating:
        raise TypeError(
            f"{source}: images must be uint8 (0..255) or float in [-1, 1], "
            f"got {image_spec.dtype.name}."
        )
    height, width, in_channels = shape.as_list()
    if channels is not None and channels != in_channels:
        if in_channels is None:
            raise ValueError(
                f"{source}: the images' channel count is unknown, so they cannot be converted to "
                f"channels={channels}. Pass channels=None (on the command line, leave out --channels)."
            )
        if in_channels not in (1, 3, 4):
            raise ValueError(
                f"{source}: cannot convert {in_channels}-channel images to channels={channels}; "
                f"only grayscale (1), RGB (3) and RGBA (4, alpha dropped) convert. "
                f"Pass channels=None (on the command line, leave out --channels)."
            )
    out_channels = channels if channels is not None else in_channels
    if image_size is None:
        if height is None or width is None:
            raise ValueError(
                f"{source}: images vary in size (shape {shape}), so they cannot be batched as "
                f"they are; pass image_size=... (for example image_size=64; on the command line, "
                f"--image-size 64)."
            )
        resize = None
    elif (height, width) == image_size:
        resize = None
    elif height is None or width is None:
        resize = "dynamic"
    else:
        resize = "static"

    def convert_channels(image: tf.Tensor, reducing: bool) -> tf.Tensor:
        # Channel reductions run before the resize and expansions after it, so
        # the resize always works on the fewest channels.
        if out_channels == in_channels:
            return image
        if reducing:
            if in_channels == 4:
                image = image[..., :3]
            if out_channels == 1 and in_channels != 1:
                image = tf.image.rgb_to_grayscale(image)
        elif in_channels == 1 and out_channels == 3:
            image = tf.image.grayscale_to_rgb(image)
        return image

    def preprocess(image: tf.Tensor) -> tf.Tensor:
        if image.dtype == tf.uint8:
            # Division, not multiplication by 1/127.5: keeps 255 -> exactly 1.0.
            image = tf.cast(image, tf.float32) / 127.5 - 1.0
        else:
            image = tf.cast(image, tf.float32)
        image = convert_channels(image, reducing=True)
        if resize == "static":
            image = _resize(image, image_size, method)
        elif resize == "dynamic":
            same = tf.reduce_all(tf.equal(tf.shape(image)[:2], tf.constant(image_size)))
            image = tf.cond(same, lambda: image, lambda: _resize(image, image_size, method))
        image = convert_channels(image, reducing=False)
        final_size = image_size if image_size is not None else (height, width)
        image.set_shape([*final_size, out_channels])
        return image

    return preprocess


def _build_pipeline(
    dataset: tf.data.Dataset,
    *,
    num_examples: int | None,
    source: str,
    batch_size: int,
    image_size: tuple[int, int] | None,
    channels: int | None,
    shuffle: bool,
    seed: int | None,
    cache: bool,
    drop_remainder: bool,
    repeat_batches: int,
) -> tf.data.Dataset:
    """Turns a dataset of single images (or (image, label)) into training batches.

    Args:
        dataset: Unbatched elements: an image ``[H, W, C]`` (uint8 0..255 or
            float in [-1, 1]), or an ``(image, label)`` tuple.
        num_examples: Number of elements, or None if unknown.
        source: How to name the data in error messages.
        Others: As in :func:`load`; already validated.

    Returns:
        The batched, prefetched dataset.
    """
    per_batch = batch_size * repeat_batches
    if drop_remainder and num_examples is not None and num_examples < per_batch:
        extra = f" x repeat_batches={repeat_batches}" if repeat_batches > 1 else ""
        raise TooFewExamplesError(
            f"{source} has {num_examples} examples, fewer than one batch of {per_batch} "
            f"(batch_size={batch_size}{extra}), so with drop_remainder=True it would yield "
            f"no batches at all. Lower batch_size to at most {num_examples // repeat_batches or 1}"
            f" or pass drop_remainder=False.",
            num_examples=num_examples, batch_size=batch_size, repeat_batches=repeat_batches,
        )
    with_labels = isinstance(dataset.element_spec, tuple)
    image_spec = dataset.element_spec[0] if with_labels else dataset.element_spec
    preprocess = _make_preprocess(image_spec, image_size, channels, source)
    if with_labels:
        dataset = dataset.map(
            lambda image, label: (preprocess(image), tf.cast(label, tf.int32)),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    else:
        dataset = dataset.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE)
    if cache:
        # Before the shuffle: the cache then holds decoded, resized examples
        # and every epoch after the first skips that work, yet still reshuffles.
        dataset = dataset.cache()
    if shuffle:
        small = num_examples is not None and num_examples <= _FULL_SHUFFLE_LIMIT
        buffer = num_examples if small else _LARGE_SHUFFLE_BUFFER
        dataset = dataset.shuffle(max(buffer, 1), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(per_batch, drop_remainder=drop_remainder)
    return without_teardown_stall(dataset.prefetch(tf.data.AUTOTUNE))


def without_teardown_stall(dataset, keep_explicit_choice=False):
    """`dataset` with tf.data's autotuning off, so its iterators are deleted at once.

    With autotuning on, each iterator runs an optimization thread that sleeps
    10 ms, 20 ms, 40 ms, ... (doubling up to 60 s) between rounds, and
    deleting the iterator often waits for that sleep to end. `fit` deletes
    one iterator per epoch, so training stalls at epoch ends: on this
    project's CPUs a `kgan` DCGAN epoch of mnist_5k (78 steps) took 2.5-2.7 s
    of training and, in about half of the epochs, another 2.5 s of that wait
    (10 epochs: 36-39 s with autotuning, 25-26 s without). Without
    autotuning, `num_parallel_calls=tf.data.AUTOTUNE` runs as many calls as
    there are cores and `prefetch(tf.data.AUTOTUNE)` still grows its buffer
    when the consumer waits: kgan's cached pipelines kept over 2,000
    batches/s, and decoding a folder of 512-px JPEGs to 256 px kept both
    cores busy at 306-334 images/s (332-338 with autotuning). Every kgan
    pipeline has it, and kgan applies it to a dataset you give to `fit` or
    to the quality metrics unless the dataset's options set
    `autotune.enabled` themselves; apply it yourself where a plain
    `keras.Model` trains on your pipeline.

    Args:
        dataset: a `tf.data.Dataset`.
        keep_explicit_choice: if True, a dataset whose options already set
            `autotune.enabled` (to True or False) is returned as it is. kgan
            passes True for datasets it is given.

    Returns:
        The same dataset with `options().autotune.enabled = False` (a new
        `Dataset`; `dataset` itself is not changed).

    Example:

    ```python
    train = tf.data.Dataset.from_tensor_slices(images).shuffle(1024).batch(64)
    gan.fit(kgan.data.without_teardown_stall(train.prefetch(2)), epochs=30)
    ```
    """
    if not isinstance(dataset, tf.data.Dataset):
        raise TypeError(
            f"without_teardown_stall takes a tf.data.Dataset, got {type(dataset).__name__}."
        )
    if keep_explicit_choice and dataset.options().autotune.enabled is not None:
        return dataset
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


# ---------------------------------------------------------------------------
# numpy


def from_numpy(
    images: Any,
    labels: Any = None,
    *,
    batch_size: int = 64,
    image_size: int | Sequence[int] | None = None,
    channels: int | None = None,
    shuffle: bool = True,
    seed: int | None = None,
    cache: bool = True,
    drop_remainder: bool = True,
    repeat_batches: int = 1,
) -> tf.data.Dataset:
    """Builds a training pipeline from images held in memory.

    Args:
        images: ``[N, H, W]`` or ``[N, H, W, C]`` array-like (channels
            last; ``[N, C, H, W]`` is refused with the transpose to use). Either uint8
            pixels in 0..255 (other integer types are accepted when every
            value lies in 0..255), or floats already scaled to ``[-1, 1]``.
        labels: Optional integer array-like ``[N]`` (or ``[N, 1]``, the
            layout of ``keras.datasets``, which ``fit`` takes too). When given,
            the dataset yields ``(images, labels)`` with int32 labels ``[B]``.
        batch_size: Examples per training step.
        image_size: Output size, an int for square images or ``(height,
            width)``; None keeps the input size. Resizing is bilinear with
            antialiasing and only happens when the size differs.
        channels: 1 or 3 to convert grayscale <-> RGB; None keeps the input's.
        shuffle: Shuffle the examples, differently each epoch.
        seed: Makes the shuffle order reproducible.
        cache: Keep the preprocessed examples in memory after the first epoch.
        drop_remainder: Drop a last batch smaller than the others (a batch of
            another size retraces a compiled train step).
        repeat_batches: Yield batches of ``repeat_batches * batch_size``
            examples, for trainers that split one batch into several
            optimizer steps (WGAN: ``repeat_batches=n_critic``).

    Returns:
        A ``tf.data.Dataset`` of float32 ``[B, H, W, C]`` batches in ``[-1, 1]``,
        or of ``(images, labels)``.

    Raises:
        TypeError: If images are not numeric, labels are not integers, or an
            argument has the wrong type.
        ValueError: If images are empty, have the wrong rank, look
            channels-first or like one image, lie outside the accepted
            range, labels do not match images in length, or the data
            holds fewer examples than one batch while ``drop_remainder=True``.

    Example:
        >>> (x, y), _ = keras.datasets.fashion_mnist.load_data()
        >>> train = kgan.data.from_numpy(x, y, batch_size=128, image_size=32)
        >>> images, labels = next(iter(train))
        >>> images.shape
        TensorShape([128, 32, 32, 1])
    """
    options = _pipeline_options(
        batch_size, image_size, channels, shuffle, seed, cache, drop_remainder, repeat_batches
    )
    images = _check_images(images)
    dataset_items: Any = images
    if labels is not None:
        labels = _check_labels(labels, len(images))
        dataset_items = (images, labels)
    dataset = tf.data.Dataset.from_tensor_slices(dataset_items)
    return _build_pipeline(dataset, num_examples=len(images), source="the numpy images", **options)


def _check_images(images: Any) -> np.ndarray:
    """Validates images for :func:`from_numpy`; returns uint8 or float32 NHWC."""
    array = np.asarray(images)
    if array.dtype == np.bool_ or not (
        np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    ):
        raise TypeError(
            f"images must be a numeric array (uint8 0..255 or float in [-1, 1]), "
            f"got dtype {array.dtype}."
        )
    if array.ndim not in (3, 4):
        raise ValueError(
            f"images must have shape [N, H, W] or [N, H, W, C], got shape {array.shape}."
        )
    if array.size == 0:
        raise ValueError(f"images is empty (shape {array.shape}); pass at least one image.")
    _refuse_misread_layout(array.shape)
    if array.ndim == 3:
        array = array[..., np.newaxis]
    if array.dtype == np.uint8:
        return array
    if np.issubdtype(array.dtype, np.integer):
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > 255:
            raise ValueError(
                f"integer images must hold pixel values in 0..255, got {low}..{high}. Pass uint8 "
                f"pixels, or floats scaled to [-1, 1]."
            )
        return array.astype(np.uint8)
    if not np.isfinite(array).all():
        raise ValueError("images contain NaN or infinite values; clean them before training.")
    low, high = float(array.min()), float(array.max())
    if low < -1.0 - _FLOAT_TOLERANCE or high > 1.0 + _FLOAT_TOLERANCE:
        raise ValueError(
            f"float images must be scaled to [-1, 1], got values in [{low:.4g}, {high:.4g}]. Pass "
            f"uint8 pixels (0..255) instead, or scale first: x / 127.5 - 1 for 0..255 data, "
            f"x * 2 - 1 for 0..1 data."
        )
    from kgan.images import warn_if_unit_range

    warn_if_unit_range(low, high, stacklevel=3)  # the whole set: almost surely 0..1 data
    return np.clip(array, -1.0, 1.0).astype(np.float32)


def _refuse_misread_layout(shape: tuple[int, ...]) -> None:
    """Refuse the two layouts that pass as images of another shape.

    Channels-first ``[N, C, H, W]`` (PyTorch's) read as ``[N, H, W, C]``
    made 3-pixel-high images with W channels, and one ``[H, W, 3]`` image
    made H grey images 3 pixels wide: both trained, on nonsense. No
    architecture trains on images 1, 3 or 4 pixels wide or high, so these
    shapes are never meant as they read.
    """
    image_channels = (1, 3, 4)
    if len(shape) == 4 and shape[1] in image_channels and shape[3] not in image_channels:
        raise ValueError(
            f"images have shape {shape}, which looks channels-first [N, C, H, W] (PyTorch's "
            f"layout); kgan takes channels-last [N, H, W, C]. Transpose them first: "
            f"np.transpose(images, (0, 2, 3, 1))."
        )
    if len(shape) == 3 and shape[2] in (3, 4) and shape[1] not in image_channels:
        raise ValueError(
            f"images have shape {shape}, which looks like one [H, W, C] image; a 3-D array is "
            f"read as [N, H, W] grey images, here {shape[2]} pixels wide. Pass a batch [N, H, W, "
            f"C] (one image: images[None])."
        )


def _check_labels(labels: Any, num_images: int) -> np.ndarray:
    array = np.asarray(labels)
    one_hot = array.ndim == 2 and array.shape[1] > 1
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
        # keras.utils.to_categorical makes float one-hot rows: say how to undo them.
        hint = f" For one-hot labels {array.shape} pass labels.argmax(-1)." if one_hot else ""
        raise TypeError(
            f"labels must be integers (class indices), got dtype {array.dtype}.{hint}"
        )
    if array.ndim == 2 and array.shape[1] == 1:  # keras.datasets' [N, 1], as fit takes
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(
            f"labels must be a 1-D array [N] (or [N, 1]) of class indices, got shape "
            f"{array.shape}; for one-hot labels pass labels.argmax(-1)."
        )
    if len(array) != num_images:
        raise ValueError(
            f"labels has {len(array)} entries but images has {num_images}; "
            f"pass one label per image."
        )
    if len(array) and (array.min() < 0 or array.max() > np.iinfo(np.int32).max):
        # int32 would wrap 2**32 to 0; a negative index is no class.
        bad = array.min() if array.min() < 0 else array.max()
        raise ValueError(
            f"labels must be class indices 0, 1, 2, ..., got {bad}; map them to 0..K-1 "
            "first (e.g. np.unique(labels, return_inverse=True)[1])."
        )
    return array.astype(np.int32)


# ---------------------------------------------------------------------------
# Folders of image files


def _is_image_file(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def _walk_images(top: str) -> list[str]:
    """The image files under `top`, sorted; raises on a broken symbolic link.

    Linked folders are followed, each real folder once: gfile's walk follows
    links, and a link to the folder itself or an ancestor (`latest -> .`)
    made it read the same images again at every depth until the path grew
    too long (41 copies of each). Images in formats TensorFlow cannot decode
    (TIFF, HEIC, ...) are left out with a warning that counts them.
    """
    local = "://" not in top  # gfile also reads gs://..., which has no links
    found = []
    walked = set()
    skipped = collections.Counter()
    for root, subdirs, files in tf.io.gfile.walk(top):
        if local:
            real = os.path.realpath(root)
            if real in walked:  # reached again through a link: already read
                subdirs[:] = []
                continue
            walked.add(real)
        # Pruned in place so the walk skips hidden folders such as
        # .ipynb_checkpoints, which would otherwise add stray images.
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        images = [tf.io.gfile.join(root, name) for name in files if _is_image_file(name)]
        if local:
            _refuse_broken_links(images, top)
        found.extend(images)
        skipped.update(os.path.splitext(name)[1].lower() for name in files
                       if not name.startswith(".")
                       and name.lower().endswith(_UNREADABLE_IMAGE_EXTENSIONS))
    if skipped:
        counts = ", ".join(f"{count} {ext}" for ext, count in sorted(skipped.items()))
        warnings.warn(
            f"Image folder {top!r}: skipped {sum(skipped.values())} image file(s) in formats "
            f"TensorFlow cannot decode ({counts}); kgan reads {', '.join(IMAGE_EXTENSIONS)}. "
            "Convert them (e.g. to PNG) to train on them.",
            stacklevel=3,
        )
    return sorted(found)


def _refuse_broken_links(paths: list[str], top: str) -> None:
    # Found here, before training: reading one failed mid-fit with a bare
    # NotFoundError (in the CLI, a traceback).
    broken = [p for p in paths if os.path.islink(p) and not os.path.exists(p)]
    if broken:
        raise FileNotFoundError(
            f"Image folder {top!r} holds {len(broken)} broken symbolic link(s): {broken[0]!r} "
            f"points to {os.readlink(broken[0])!r}, which does not exist. Remove the link(s) "
            f"or restore what they point to."
        )


def _class_folders(directory: str) -> tuple[list[str], list[str]]:
    """``(class sub-folders, images lying directly in the folder)``, both sorted.

    The layout ``from_folder(with_labels=True)`` reads: each sub-folder not
    starting with ``.`` is a class; images directly in the folder have none.
    """
    entries = sorted(name.rstrip("/") for name in tf.io.gfile.listdir(directory))
    loose = [
        n for n in entries
        if _is_image_file(n) and not tf.io.gfile.isdir(tf.io.gfile.join(directory, n))
    ]
    classes = [
        n for n in entries
        if not n.startswith(".") and tf.io.gfile.isdir(tf.io.gfile.join(directory, n))
    ]
    return classes, loose


def _check_folder(directory: str | os.PathLike) -> str:
    """Returns the folder as a string path, or raises if it is missing or a file."""
    directory = os.fspath(directory)
    if not tf.io.gfile.exists(directory):
        raise FileNotFoundError(f"Image folder {directory!r} does not exist; check the path.")
    if not tf.io.gfile.isdir(directory):
        raise NotADirectoryError(f"{directory!r} is a file; pass the folder that holds the images.")
    return directory


def _no_images_error(directory: str, where: str) -> ValueError:
    return ValueError(
        f"No images found in {directory!r}: searched {where} for files ending in "
        f"{', '.join(IMAGE_EXTENSIONS)} (any case; hidden files and folders are skipped)."
    )


def _file_head(contents: tf.Tensor) -> tf.Tensor:
    """The first 12 bytes of an encoded file (padded: substr fails past the end)."""
    return tf.strings.substr(tf.strings.join([tf.strings.substr(contents, 0, 12), "\0" * 12]), 0, 12)


def _is_webp(head: tf.Tensor) -> tf.Tensor:
    """Whether the file is WebP, whose decoder gives only its own channels (3 or 4)."""
    return tf.logical_and(tf.equal(tf.strings.substr(head, 0, 4), "RIFF"),
                          tf.equal(tf.strings.substr(head, 8, 4), "WEBP"))


def _decodes_only_to_colour(contents: tf.Tensor, head: tf.Tensor) -> tf.Tensor:
    """Whether TensorFlow's decoder of this file refuses ``channels=1``.

    GIF takes 0 or 3 channels, BMP 0, 3 or 4, and libjpeg cannot convert a
    CMYK (4-component, e.g. Adobe print) JPEG to grey: those decode as RGB
    and are converted after. Known by their bytes, not the file name: a GIF
    named .png failed.
    """
    jpeg = tf.equal(tf.strings.substr(head, 0, 3), b"\xff\xd8\xff")
    return tf.reduce_any([
        tf.equal(tf.strings.substr(head, 0, 3), "GIF"),
        tf.equal(tf.strings.substr(head, 0, 2), "BM"),
        # Only a JPEG reaches extract_jpeg_shape, which fails on other bytes.
        tf.cond(jpeg, lambda: tf.equal(tf.io.extract_jpeg_shape(contents)[2], 4),
                lambda: tf.constant(False)),
    ])


def decode_image_file(contents: tf.Tensor, channels: int) -> tf.Tensor:
    """An encoded image file (PNG, JPEG, BMP, GIF's first frame, WebP) as uint8
    ``[H, W, channels]``, for ``channels`` 1 or 3.

    Like ``tf.io.decode_image(contents, channels)``, which drops alpha and
    converts grey and colour, also for the files whose TensorFlow decoders
    refuse the conversion: WebP with or without alpha, GIF, BMP and CMYK
    JPEGs as grey.

    Example:

    ```python
    image = kgan.data.decode_image_file(tf.io.read_file("cat.webp"), channels=1)
    ```
    """
    head = _file_head(contents)

    def webp_image():
        image = tf.io.decode_image(contents, expand_animations=False)[..., :3]  # RGB(A)
        return tf.image.rgb_to_grayscale(image) if channels == 1 else image

    def other_image():
        if channels != 1:
            return tf.io.decode_image(contents, channels=channels, expand_animations=False)
        return tf.cond(
            _decodes_only_to_colour(contents, head),  # looked at for grey only
            lambda: tf.image.rgb_to_grayscale(
                tf.io.decode_image(contents, channels=3, expand_animations=False)),
            lambda: tf.io.decode_image(contents, channels=1, expand_animations=False),
        )

    image = tf.cond(_is_webp(head), webp_image, other_image)
    # decode_image leaves the static shape unknown; a pipeline needs the rank
    # and channel count to plan the preprocessing.
    image.set_shape([None, None, channels])
    return image


def _decode_image(path: tf.Tensor, channels: int) -> tf.Tensor:
    return decode_image_file(tf.io.read_file(path), channels)


def undecodable_images(directory: str | os.PathLike, limit: int | None = None) -> list[str]:
    """The image files under `directory` that TensorFlow cannot decode.

    A pipeline decodes lazily, so a corrupt, truncated or mislabelled file
    surfaces as a bare `DecodeImage` error in the middle of `fit`, without
    its name; this finds the culprits (the `kgan` CLI calls it to name them).

    Args:
        directory: a folder searched as `from_folder` searches it.
        limit: stop after this many bad files (None: check every file).

    Returns:
        The paths of the files that failed to decode, in `from_folder`'s order.

    Example:

    ```python
    kgan.data.undecodable_images("photos/")   # ['photos/cat_017.jpg'] for a truncated JPEG
    ```
    """
    bad = []
    for path in _walk_images(_check_folder(directory)):
        try:
            tf.io.decode_image(tf.io.read_file(path), expand_animations=False)
        except tf.errors.OpError:
            bad.append(path)
            if limit is not None and len(bad) >= limit:
                break
    return bad


def from_folder(
    directory: str | os.PathLike,
    *,
    image_size: int | Sequence[int],
    channels: int = 3,
    batch_size: int = 64,
    shuffle: bool = True,
    seed: int | None = None,
    cache: bool = True,
    drop_remainder: bool = True,
    with_labels: bool = False,
    repeat_batches: int = 1,
) -> tf.data.Dataset:
    """Builds a training pipeline from a folder of image files.

    Reads every PNG, JPEG, BMP and GIF file (first frame), and WebP where
    TensorFlow decodes it (``IMAGE_EXTENSIONS``), under ``directory``,
    recursively, in sorted path order; hidden files and folders (names
    starting with ".") are skipped, image formats TensorFlow cannot decode
    (TIFF, HEIC, ...) are skipped with a warning, and a linked folder is
    read once however many links lead to it. Files are decoded in
    parallel. With ``with_labels=True`` each immediate sub-folder is a class,
    as in ``keras.utils.image_dataset_from_directory``: class ``i`` is the
    ``i``-th sub-folder name in sorted order, and the returned dataset has a
    ``class_names`` attribute listing them.

    Args:
        directory: The folder (a local path or any path ``tf.io.gfile`` reads).
        image_size: Output size, an int for square images or ``(height,
            width)``. Required because files can differ in size.
        channels: 3 (RGB; grayscale files are expanded) or 1 (grayscale).
        batch_size: Examples per training step.
        shuffle: Shuffle the examples, differently each epoch.
        seed: Makes the shuffle order reproducible.
        cache: Keep the decoded, resized examples in memory after the first
            epoch. Pass False when they do not fit in memory.
        drop_remainder: Drop a last batch smaller than the others.
        with_labels: Yield ``(images, labels)`` with labels from sub-folders.
        repeat_batches: Yield batches of ``repeat_batches * batch_size``
            examples (WGAN: ``repeat_batches=n_critic``).

    Returns:
        A ``tf.data.Dataset`` of float32 ``[B, H, W, C]`` batches in ``[-1, 1]``,
        or of ``(images, labels)``.

    Raises:
        FileNotFoundError: If ``directory`` does not exist, or an image
            file in it is a symbolic link to nothing.
        NotADirectoryError: If ``directory`` is a file.
        ValueError: If no image file is found, if ``with_labels=True`` and
            images lie directly in ``directory``, there are no sub-folders
            or one of them holds no images, or if there are fewer images
            than one batch.

    Example:
        >>> # faces/0001.png, faces/0002.jpg, ...
        >>> train = kgan.data.from_folder("faces", image_size=64, batch_size=32)
        >>> # pets/cat/*.jpg, pets/dog/*.jpg -> labels 0 (cat) and 1 (dog)
        >>> pets = kgan.data.from_folder("pets", image_size=64, with_labels=True)
        >>> pets.class_names
        ['cat', 'dog']
    """
    if not isinstance(directory, (str, os.PathLike)):
        raise TypeError(
            f"directory must be a path, got {directory!r} ({type(directory).__name__})."
        )
    if image_size is None:
        raise ValueError(
            "from_folder needs image_size (an int or (height, width)): files in a folder can "
            "differ in size and a batch cannot."
        )
    if channels is None:
        raise ValueError("from_folder needs channels=1 (grayscale) or channels=3 (RGB).")
    options = _pipeline_options(
        batch_size, image_size, channels, shuffle, seed, cache, drop_remainder, repeat_batches
    )
    with_labels = _check_bool(with_labels, "with_labels")
    directory = _check_folder(directory)

    class_names: list[str] = []
    labels: list[int] = []
    if with_labels:
        class_names, loose = _class_folders(directory)
        if loose:
            raise ValueError(
                f"with_labels=True takes each image's label from its sub-folder of {directory!r}, "
                f"but {len(loose)} image(s) lie directly in it (e.g. {loose[0]!r}). Move them into "
                f"a class sub-folder, or read the folder without labels: with_labels=False "
                f"(on the command line, train an unconditional architecture such as dcgan)."
            )
        paths: list[str] = []
        empty = []
        for index, name in enumerate(class_names):
            found = _walk_images(tf.io.gfile.join(directory, name))
            paths.extend(found)
            labels.extend([index] * len(found))
            if not found:
                empty.append(name)
        if empty and paths:
            # Its label would never be seen: a conditional GAN's samples of that
            # class (kgan synthesize's folder of them) would be noise.
            raise ValueError(
                f"with_labels=True makes each sub-folder of {directory!r} a class, but "
                f"{len(empty)} of them hold no images ({', '.join(map(repr, empty))}), so their "
                f"labels would be learned from no examples. Put images in them, or move them "
                f"out of the folder (or rename them to start with '.', which skips them)."
            )
    else:
        paths = _walk_images(directory)
    if not paths:
        raise _no_images_error(
            directory, "its class sub-folders" if with_labels else "it or its sub-folders"
        )

    dataset = tf.data.Dataset.from_tensor_slices((paths, labels) if with_labels else paths)
    if options["shuffle"] and not options["cache"]:
        # Without a cache the later shuffle buffer may hold only part of a big
        # folder whose files are sorted by class; shuffling the cheap path
        # strings first mixes the whole folder every epoch.
        dataset = dataset.shuffle(len(paths), seed=options["seed"], reshuffle_each_iteration=True)
    if with_labels:
        dataset = dataset.map(
            lambda path, label: (_decode_image(path, channels), label),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    else:
        dataset = dataset.map(
            lambda path: _decode_image(path, channels), num_parallel_calls=tf.data.AUTOTUNE
        )
    result = _build_pipeline(
        dataset, num_examples=len(paths), source=f"Image folder {directory!r}", **options
    )
    if with_labels:
        result.class_names = class_names
    return result


# ---------------------------------------------------------------------------
# tensorflow-datasets and embedded names


def _tfds_default_data_dir(tfds: Any) -> str:
    getter = getattr(getattr(tfds.core, "constants", None), "get_default_data_dir", None)
    if getter is not None:
        return str(getter())
    return os.environ.get(
        "TFDS_DATA_DIR", os.path.join(os.path.expanduser("~"), "tensorflow_datasets")
    )


def _cycle_gan_configs(tfds: Any) -> list[str]:
    """The cycle_gan builder's config names (horse2zebra, ...), read without network."""
    try:
        return [config.name for config in tfds.builder_cls("cycle_gan").BUILDER_CONFIGS]
    except Exception:  # noqa: BLE001 - only used for suggestions
        return []


def _unknown_name_error(name: str, tfds: Any) -> UnknownDatasetError:
    try:
        # Community datasets are left out: listing them may need the network.
        known = set(tfds.list_builders(with_community_datasets=False))
    except Exception:  # noqa: BLE001 - suggestions are a courtesy, the error must still be raised
        known = set()
    base = _builder_name(name)
    matches = difflib.get_close_matches(
        base, sorted(known | set(EMBEDDED_DATASETS)), n=5, cutoff=0.6
    )
    if base in _cycle_gan_configs(tfds):
        # "horse2zebra" is a config of the cycle_gan builder, not a builder.
        matches.insert(0, f"cycle_gan/{base}")
    hint = (
        f"Did you mean {', '.join(repr(m) for m in matches)}?"
        if matches
        else "No similar name is known."
    )
    return UnknownDatasetError(
        f"Unknown dataset {name!r}: it is not embedded in kgan ({', '.join(EMBEDDED_DATASETS)}) "
        f"and tensorflow-datasets has no dataset of that name. {hint} The tensorflow-datasets "
        f"catalog lists all names: https://www.tensorflow.org/datasets/catalog/overview"
    )


#: How `kgan train`, which has no data_dir flag, sets it: tfds reads the variable.
_DATA_DIR_ON_THE_COMMAND_LINE = "on the command line: the TFDS_DATA_DIR environment variable"


def _unavailable_error(
    name: str,
    split: str,
    data_dir: str | None,
    download: bool,
    err: BaseException,
    tfds: Any,
    offline_hint: str = _OFFLINE_HINT,
    source: str = "tensorflow-datasets",
) -> DatasetUnavailableError:
    tried = data_dir if data_dir is not None else _tfds_default_data_dir(tfds)
    where = f"data_dir {tried}" + (" (the tfds default)" if data_dir is None else "")
    if isinstance(err, ImportError):
        missing = getattr(err, "name", None)
        what = (
            f"Dataset {name!r} could not be downloaded or loaded into {where}: tensorflow-datasets "
            f"needs a Python module that is not installed"
        )
        fix = (
            f"Install it (e.g. pip install {missing}) and retry"
            if missing
            else "Install it and retry"
        )
    elif download:
        what = (
            f"Dataset {name!r} (split {split!r}) could not be downloaded or prepared into {where}"
        )
        fix = (
            "Check that the network is reachable and retry, or point data_dir at a folder where "
            f"the dataset is already prepared ({_DATA_DIR_ON_THE_COMMAND_LINE})"
        )
    else:
        what = (
            f"Dataset {name!r} (split {split!r}) was not found in {where}, and download=False "
            f"kept tensorflow-datasets from downloading it"
        )
        fix = (
            "Pass download=True on a machine with network access, or point data_dir at a folder "
            f"where the dataset is already prepared ({_DATA_DIR_ON_THE_COMMAND_LINE})"
        )
    cause = " ".join(str(err).split())
    if len(cause) > 400:
        cause = cause[:400] + " ..."
    said = f"{source} said: {type(err).__name__}: {cause}"
    message = f"{what}. {said} -- {fix}; {offline_hint}."
    return DatasetUnavailableError(message, dataset=name, data_dir=tried)


#: Seconds each download host gets to accept a connection in `_unreachable_download_hosts`.
DOWNLOAD_PROBE_TIMEOUT_S = 5.0
#: Where tfds's bucket of prepared datasets (gs://tfds-data) is served from.
_TFDS_GCS_HOST = "storage.googleapis.com"


def _download_hosts(tfds: Any, name: str) -> list[tuple[str, int]]:
    """`(host, port)` pairs a tfds dataset may download from.

    Its registered checksums' URLs plus tfds's Cloud Storage bucket; empty
    when tfds registers no URLs for it (manual or custom downloads).
    """
    try:
        urls = tfds.builder_cls(_builder_name(name)).url_infos or {}
    except Exception:  # noqa: BLE001 - no checksums, no probe: tfds reports the rest
        return []
    default_ports = {"https": 443, "http": 80, "ftp": 21}
    # tfds first looks for a prepared copy in its Cloud Storage bucket
    # (DownloadConfig.try_download_gcs defaults to True): reaching it is enough.
    hosts = [(_TFDS_GCS_HOST, 443)] if urls else []
    for url in urls:
        parts = urllib.parse.urlsplit(str(url))
        port = parts.port or default_ports.get(parts.scheme)
        if parts.hostname and port and (parts.hostname, port) not in hosts:
            hosts.append((parts.hostname, port))
    return hosts


def _unreachable_download_hosts(
    hosts: list[tuple[str, int]], timeout: float = DOWNLOAD_PROBE_TIMEOUT_S
) -> list[str]:
    """`"host:port (why)"` for each host if none accepts a TCP connection, else [].

    tensorflow-datasets retries a failed download 10 times with exponential
    back-off (urllib3's `Retry(total=10, backoff_factor=0.2)`), so without a
    network `load` would fail only after about 3.5 minutes; this check fails
    in about a second. One reachable host is enough to let tfds try. Behind a
    proxy (`urllib.request.getproxies()`) hosts are not probed directly.
    """
    if not hosts or urllib.request.getproxies():
        return []
    failures = []
    for host, port in hosts:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return []
        except OSError as err:
            failures.append(f"{host}:{port} ({' '.join(str(err).split()) or type(err).__name__})")
    return failures


def _check_download_reachable(tfds: Any, name: str, data_dir: str | None) -> list[str]:
    """`_unreachable_download_hosts` for a dataset tfds would have to download, else []."""
    # Under tfds.testing.mock_data nothing is downloaded: it replaces download_and_prepare.
    real = tfds.core.DatasetBuilder.download_and_prepare
    if not getattr(real, "__module__", "").startswith("tensorflow_datasets.core"):
        return []
    if tfds.builder(name, data_dir=data_dir).is_prepared():
        return []
    return _unreachable_download_hosts(_download_hosts(tfds, name))


def _builder_name(name: str) -> str:
    """The tfds builder of a dataset name: `"cycle_gan/horse2zebra:2.0.0"` -> `"cycle_gan"`."""
    return name.split(":")[0].split("/")[0]


def _is_cycle_gan(name: str) -> bool:
    return _builder_name(name) == "cycle_gan"


def _load_tfds(
    name: str,
    split: str,
    data_dir: str | None,
    download: bool,
    with_labels: bool,
):
    """Returns (unbatched dataset of image or (image, label), size, class names)."""
    # A cycle_gan split is one domain of a pair: its offline stand-in is a pair too.
    offline_hint = _UNPAIRED_OFFLINE_HINT if _is_cycle_gan(name) else _OFFLINE_HINT
    # Imported here: it is slow to import and only this path needs it.
    import tensorflow_datasets as tfds

    unavailable: tuple[type[BaseException], ...] = (AssertionError, OSError, tf.errors.OpError)
    download_manager = getattr(getattr(tfds.core, "download", None), "download_manager", None)
    for module, attr in (
        (tfds.download, "DownloadError"),
        (download_manager, "NonMatchingChecksumError"),
    ):
        cls = getattr(module, attr, None)
        if isinstance(cls, type) and issubclass(cls, BaseException):
            unavailable += (cls,)
    try:
        unreachable = _check_download_reachable(tfds, name, data_dir) if download else []
        if unreachable:
            err = OSError(
                f"none of the dataset's download hosts accepted a connection within "
                f"{DOWNLOAD_PROBE_TIMEOUT_S:g} s: {'; '.join(unreachable)}"
            )
            raise _unavailable_error(
                name, split, data_dir, download, err, tfds, offline_hint,
                source="kgan's network check",
            ) from None
        dataset, info = tfds.load(
            name,
            split=split,
            data_dir=data_dir,
            download=download,
            as_supervised=False,
            with_info=True,
        )
    except tfds.core.DatasetNotFoundError:
        # from None: tfds's own message lists all ~450 datasets.
        raise _unknown_name_error(name, tfds) from None
    except ValueError as err:
        # A name tfds cannot even parse (a path, spaces): its message is a
        # 20-line grammar of builder names.
        if "Parsing builder name string" not in str(err):
            raise
        raise UnknownDatasetError(
            f"Unknown dataset {name!r}: not a name kgan embeds ({', '.join(EMBEDDED_DATASETS)}) "
            f"nor a tensorflow-datasets name (dataset[/config][:version], e.g. 'cifar10' or "
            f"'cycle_gan/horse2zebra'). A folder of images is named by its path, which "
            f"must exist: e.g. './photos/' (kgan train --dataset ./photos/ --image-size 64)."
        ) from None
    except ImportError as err:
        # tfds 4.9.10 needs importlib_resources to download but does not
        # declare it on Python >= 3.9, so this happens on clean installs.
        raise _unavailable_error(
            name, split, data_dir, download, err, tfds, offline_hint
        ) from err
    except unavailable as err:
        # tfds reports "not prepared and download=False" as AssertionError and
        # network failures as requests' ConnectionError (an OSError).
        raise _unavailable_error(
            name, split, data_dir, download, err, tfds, offline_hint
        ) from err

    features = info.features
    keys = sorted(features.keys())
    if "image" not in keys:
        raise ValueError(
            f"tensorflow-datasets dataset {name!r} has no 'image' feature (it has {keys}); "
            f"kgan.data.load reads image datasets only."
        )
    if with_labels and "label" not in keys:
        raise ValueError(
            f"tensorflow-datasets dataset {name!r} has no 'label' feature (it has {keys}), so "
            f"with_labels=True cannot work. Pass with_labels=False, or build (images, labels) "
            f"yourself and use kgan.data.from_numpy."
        )
    image_dtype = dataset.element_spec["image"].dtype
    if image_dtype != tf.uint8:
        raise TypeError(
            f"tensorflow-datasets dataset {name!r} stores {image_dtype.name} images; "
            f"kgan.data.load reads uint8 images only. Load it with tfds and pass arrays scaled "
            f"to [-1, 1] to kgan.data.from_numpy."
        )
    class_names: list[str] = []
    if with_labels:
        class_names = list(getattr(features["label"], "names", None) or [])
        dataset = dataset.map(
            lambda ex: (ex["image"], ex["label"]), num_parallel_calls=tf.data.AUTOTUNE
        )
    else:
        dataset = dataset.map(lambda ex: ex["image"], num_parallel_calls=tf.data.AUTOTUNE)
    size = int(dataset.cardinality())
    return dataset, (size if size >= 0 else None), class_names


def _check_data_dir(data_dir: Any) -> str | None:
    if data_dir is None:
        return None
    if not isinstance(data_dir, (str, os.PathLike)):
        raise TypeError(f"data_dir must be a path or None, got {data_dir!r}.")
    return os.fspath(data_dir)


def load(
    name: str,
    *,
    split: str = "train",
    batch_size: int = 64,
    image_size: int | Sequence[int] | None = None,
    channels: int | None = None,
    shuffle: bool = True,
    seed: int | None = None,
    with_labels: bool = False,
    cache: bool = True,
    drop_remainder: bool = True,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    repeat_batches: int = 1,
) -> tf.data.Dataset:
    """Builds a training pipeline for a dataset named by string.

    ``name`` is either an embedded dataset (a key of
    :data:`EMBEDDED_DATASETS`, e.g. ``"mnist_5k"``, read from the installed
    package with no network) or any tensorflow-datasets name, with optional
    config and version (``"mnist"``, ``"cifar10"``, ``"celeb_a"``,
    ``"cycle_gan/horse2zebra"``), loaded with ``tfds.load``. Only the
    ``"image"`` feature is used, plus ``"label"`` when ``with_labels=True``.
    A path to an existing folder of images is read by :func:`from_folder`
    (``image_size`` required; ``channels`` None means RGB; sub-folders are
    the classes with ``with_labels=True``).

    Args:
        name: Dataset name.
        split: tfds split, slicing allowed (``"train"``, ``"test[:10%]"``,
            ``"trainA"``). Embedded datasets only have ``"train"``, which
            slices the same way (see :func:`embedded_split`).
        batch_size: Examples per training step.
        image_size: Output size, an int for square images or ``(height,
            width)``; None keeps the dataset's (datasets whose images vary in
            size need one). Bilinear with antialiasing, only when it differs:
            ``load("digits_8x8", image_size=32)`` upsamples the 8x8 digits 4x
            bilinearly (smooth strokes, no blocks), like the MNIST subset at 32.
        channels: 1 or 3 to convert grayscale <-> RGB; None keeps the dataset's.
        shuffle: Shuffle the examples, differently each epoch. The buffer is
            the whole dataset up to 60,000 examples, else 10,000.
        seed: Makes the shuffle order reproducible.
        with_labels: Yield ``(images, labels)`` with int32 labels; the
            dataset then has a ``class_names`` attribute when the source
            names its classes.
        cache: Keep the decoded, preprocessed examples in memory after the
            first epoch. Pass False for datasets that do not fit in memory.
        drop_remainder: Drop a last batch smaller than the others (a batch of
            another size retraces a compiled train step).
        data_dir: tfds data directory; None uses the tfds default
            (``TFDS_DATA_DIR`` or ``~/tensorflow_datasets``). Ignored for
            embedded datasets.
        download: Let tfds download and prepare the dataset if it is not in
            ``data_dir``. Ignored for embedded datasets.
        repeat_batches: Yield batches of ``repeat_batches * batch_size``
            examples, for trainers that split one batch into several
            optimizer steps (WGAN: ``repeat_batches=n_critic``).

    Returns:
        A ``tf.data.Dataset`` of float32 ``[B, H, W, C]`` batches in ``[-1, 1]``,
        or of ``(images, labels)``.

    Raises:
        ValueError: For an unknown name (the message suggests close names), a
            split an embedded dataset lacks, a dataset without an image (or,
            with ``with_labels=True``, label) feature, images of varying size
            without ``image_size``, or fewer examples than one batch.
        TypeError: If an argument has the wrong type.
        DatasetUnavailableError: If tensorflow-datasets cannot download the
            dataset or find it in ``data_dir``. Nothing is substituted; the
            message names the offline alternative ``mnist_5k`` (for a
            ``cycle_gan/...`` name, the pair ``unpaired("digits_8x8", "mnist_5k")``).

    Example:
        >>> train = kgan.data.load("mnist_5k", batch_size=64, with_labels=True)
        >>> images, labels = next(iter(train))
        >>> cifar = kgan.data.load("cifar10", image_size=64, seed=0)
    """
    if not isinstance(name, str) or not name:
        raise TypeError(
            f"name must be a non-empty string such as 'mnist_5k' or 'cifar10', got {name!r}."
        )
    if not isinstance(split, str):
        raise TypeError(
            f"split must be one string such as 'train' or 'train[:80%]', got {split!r}."
        )
    options = _pipeline_options(
        batch_size, image_size, channels, shuffle, seed, cache, drop_remainder, repeat_batches
    )
    with_labels = _check_bool(with_labels, "with_labels")
    download = _check_bool(download, "download")
    data_dir = _check_data_dir(data_dir)

    _refuse_a_file(name)
    if name not in _EMBEDDED_LOADERS and _is_folder_name(name):
        if not os.path.isdir(os.path.expanduser(name)):
            raise UnknownDatasetError(
                f"Dataset folder {name!r} does not exist "
                f"({os.path.abspath(os.path.expanduser(name))}). Check the path; a folder of "
                "images is read where it is, with sub-folders as classes."
            )
        name = os.path.expanduser(name)
        # A folder of images (what `kgan train --dataset FOLDER` names).
        if split != "train":
            raise ValueError(f"{name!r} is a folder of images, which has no splits; leave "
                             f"split at 'train' (on the command line, drop --split).")
        if image_size is None:
            raise ValueError(
                f"{name!r} is a folder of images, which can differ in size; pass "
                f"image_size=... (for example image_size=64; on the command line, "
                f"--image-size 64)."
            )
        return from_folder(
            name, image_size=image_size, channels=3 if channels is None else channels,
            batch_size=batch_size, shuffle=shuffle, seed=seed, cache=cache,
            drop_remainder=drop_remainder, with_labels=with_labels, repeat_batches=repeat_batches,
        )
    if name in _EMBEDDED_LOADERS:
        images, labels = embedded_split(name, split)
        dataset = tf.data.Dataset.from_tensor_slices((images, labels) if with_labels else images)
        num_examples = len(images)
        # The whole dataset's classes, not the split's: class i is label i even
        # in a slice that lacks some classes (train[-3:] holds only 7-9).
        class_names = [str(c) for c in np.unique(_EMBEDDED_LOADERS[name]()[1])]
        source = f"The embedded dataset {name!r}"
    else:
        dataset, num_examples, class_names = _load_tfds(
            name, split, data_dir, download, with_labels
        )
        source = f"Dataset {name!r} (split {split!r})"
    result = _build_pipeline(dataset, num_examples=num_examples, source=source, **options)
    if with_labels and class_names:
        result.class_names = class_names
    return result


# ---------------------------------------------------------------------------
# Unpaired domains (CycleGAN)

_JITTERS = ("cyclegan",)
# A split naming a phase of the CycleGAN reference layout, without its side
# letter: "train" means trainA in domain A and trainB in domain B.
_PHASE_SPLIT = re.compile(r"^(train|test)(\[[^\]]*\])?$")
_SIDED_SPLIT = re.compile(r"^(train|test)[AB](\[[^\]]*\])?$")


def _cyclegan_load_size(crop: tuple[int, int]) -> tuple[int, int]:
    """The size jitter="cyclegan" resizes to before cropping ``crop``.

    The paper resizes to 286 and crops 256; other sizes keep the ratio:
    ``round(crop * 286 / 256)`` per side, halves rounded up (32 -> 36).
    """
    return ((crop[0] * 286 + 128) // 256, (crop[1] * 286 + 128) // 256)


class _Domain:
    """One side of an unpaired dataset: unbatched images before preprocessing."""

    def __init__(self, images: tf.data.Dataset, count: int | None, source: str, sided: bool):
        self.images = images  # [H, W, C] uint8 (0..255) or float ([-1, 1])
        self.count = count
        self.source = source  # how error messages name it
        self.sided = sided  # its split or sub-folder came from its side (A/B)
        shape = images.element_spec.shape
        self.size = tuple(shape[:2]) if shape.rank == 3 else (None, None)
        self.channels = shape[-1] if shape.rank == 3 else None


#: The shape of a tensorflow-datasets name: dataset[/config][:version], no extension.
_TFDS_NAME = re.compile(r"[a-z][a-z0-9_]*(/[a-z0-9_]+)?(:[0-9.]+)?")


def _refuse_a_file(name: str) -> None:
    """Refuse a dataset name that is an existing file (`--dataset images.npz`).

    It was read as a missing folder ("does not exist") or an unknown
    tensorflow-datasets name, though the file is there.
    """
    path = os.path.expanduser(name)
    # A name tensorflow-datasets could hold ('mnist', 'cycle_gan/horse2zebra')
    # stays one even when a file of that name lies in the current folder.
    if _TFDS_NAME.fullmatch(name) or not os.path.isfile(path):
        return
    if path.lower().endswith((".npz", ".npy")):
        fix = ("Arrays train from Python: kgan.data.from_numpy(np.load(...)[...]) (or save them "
               "as image files in a folder)")
    else:
        fix = (f"Name the folder that holds the images ({os.path.dirname(os.path.abspath(path))}, "
               f"if this file is one of them)")
    raise UnknownDatasetError(
        f"{name!r} is a file; a dataset is a name (mnist_5k, a tensorflow-datasets name) or a "
        f"folder of images. {fix}."
    )


def _is_folder_name(domain: str) -> bool:
    """Whether a string domain names a folder rather than a dataset."""
    if domain in _EMBEDDED_LOADERS:
        return False
    if tf.io.gfile.isdir(os.path.expanduser(domain)):
        return True
    # Clearly meant as a path (and missing, which _check_folder reports).
    return domain.endswith(("/", os.sep)) or domain.startswith((".", "~", os.sep))


def _first_image_shape(paths: Sequence[str]) -> tuple[int, int, int]:
    """``(H, W, C)`` of the first of ``paths``, C as :func:`unpaired` reads a folder
    by default: 1 for a grey image (with or without alpha), else 3."""
    image = tf.io.decode_image(tf.io.read_file(paths[0]), expand_animations=False)
    height, width, channels = (int(d) for d in image.shape)
    return height, width, 1 if channels in (1, 2) else 3


def _open_folder_domain(
    directory: str | os.PathLike, side: str, split: str, channels: int | None,
    shuffle_paths: bool, seed: int | None,
) -> _Domain:
    directory = _check_folder(os.path.expanduser(os.fspath(directory)))
    # The reference layout: one folder holding trainA/, trainB/, testA/, testB/.
    sub = split if _SIDED_SPLIT.match(split) else f"{split}{side}"
    sided = tf.io.gfile.isdir(tf.io.gfile.join(directory, sub))
    if sided:
        directory = tf.io.gfile.join(directory, sub)
    elif split != "train":
        raise ValueError(
            f"Domain {side}: the folder {directory!r} has no sub-folder {sub!r}, and a folder has "
            f"no other splits: leave split_{side.lower()}='train' to read the whole folder (give "
            f"the other domain its own split with split_a=/split_b=)."
        )
    paths = _walk_images(directory)
    if not paths:
        raise _no_images_error(directory, "it or its sub-folders")
    channels = channels or _first_image_shape(paths)[2]
    images = tf.data.Dataset.from_tensor_slices(paths)
    if shuffle_paths:
        # As in from_folder: without a cache the shuffle buffer may hold only
        # part of a big folder, so the cheap path strings are mixed first.
        images = images.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    images = images.map(
        lambda path: _decode_image(path, channels), num_parallel_calls=tf.data.AUTOTUNE
    )
    return _Domain(images, len(paths), f"Domain {side} (folder {directory!r})", sided)


def _open_domain(
    domain: Any,
    *,
    side: str,
    split: str,
    channels: int | None,
    data_dir: str | None,
    download: bool,
    shuffle_paths: bool,
    seed: int | None,
) -> _Domain:
    """Resolves a dataset name, folder or array into unbatched images."""
    if not isinstance(split, str):
        raise TypeError(f"split_{side.lower()} must be a string such as 'train', got {split!r}.")
    if isinstance(domain, str):
        _refuse_a_file(domain)
    if isinstance(domain, os.PathLike) or (
        isinstance(domain, str) and domain and _is_folder_name(domain)
    ):
        # Folders are decoded to a fixed channel count: by default their first image's.
        return _open_folder_domain(domain, side, split, channels, shuffle_paths, seed)
    if isinstance(domain, str):
        if not domain:
            raise TypeError(f"domain_{side.lower()} must not be an empty string.")
        if domain in _EMBEDDED_LOADERS:
            images, _ = embedded_split(domain, split)
            dataset = tf.data.Dataset.from_tensor_slices(images)
            # A part of the set is named so: its size is the split's, not the set's.
            part = "" if split == "train" else f", split {split!r}"
            return _Domain(dataset, len(images), f"Domain {side} ({domain!r}{part})", sided=False)
        sided = False
        if _is_cycle_gan(domain):
            phase = _PHASE_SPLIT.match(split)
            if phase:
                split = f"{phase[1]}{side}{phase[2] or ''}"
            sided = bool(phase) or bool(_SIDED_SPLIT.match(split))
        dataset, count, _ = _load_tfds(domain, split, data_dir, download, with_labels=False)
        return _Domain(dataset, count, f"Domain {side} ({domain!r}, split {split!r})", sided)
    if domain is None or isinstance(domain, (tf.data.Dataset, dict, bytes, numbers.Number)):
        raise TypeError(
            f"domain_{side.lower()} must be a dataset name, a folder path or an array of images, "
            f"got {type(domain).__name__}."
        )
    if split != "train":
        raise ValueError(
            f"Domain {side} is an array, which has no splits; got split {split!r}. Slice the "
            f"array instead (give the other domain its own split with split_a=/split_b=)."
        )
    images = _check_images(domain)
    dataset = tf.data.Dataset.from_tensor_slices(images)
    return _Domain(dataset, len(images), f"Domain {side} (the array)", sided=False)


def _cyclegan_jitter(image: tf.Tensor, seed: tf.Tensor, crop: tuple[int, int]) -> tf.Tensor:
    """Random crop to ``crop`` and random horizontal flip, from a [2] seed."""
    crop_seed, flip_seed = tf.unstack(tf.random.split(seed, 2))
    image = tf.image.stateless_random_crop(image, [*crop, image.shape[-1]], seed=crop_seed)
    return tf.image.stateless_random_flip_left_right(image, seed=flip_seed)


def _to_float(image: tf.Tensor) -> tf.Tensor:
    if image.dtype == tf.uint8:
        return tf.cast(image, tf.float32) / 127.5 - 1.0
    return image


def _domain_pipeline(
    domain: _Domain,
    *,
    stored_size: tuple[int, int],
    crop: tuple[int, int] | None,
    channels: int | None,
    cache: bool,
    shuffle: bool,
    shuffle_seed: int | None,
    jitter_seed: int | None,
    batch_size: int = 1,
) -> tf.data.Dataset:
    """Unbatched, endless float32 images of one domain, shuffled on every pass.

    Shuffled, each run of `batch_size` images comes from one pass (a pass's
    last `count % batch_size` images, different ones each pass, are left
    out), so a batch never holds one image twice.
    """
    spec = domain.images.element_spec
    # Bicubic when jittering, as the reference resizes with PIL's BICUBIC.
    method = "bicubic" if crop is not None else "bilinear"
    preprocess = _make_preprocess(spec, stored_size, channels, domain.source, method)
    keep_uint8 = spec.dtype == tf.uint8

    def store(image: tf.Tensor) -> tf.Tensor:
        image = preprocess(image)
        if keep_uint8:
            # The cache then holds uint8, a quarter of float32's memory; an
            # image that was not resized comes back exactly.
            image = tf.cast(tf.round((image + 1.0) * 127.5), tf.uint8)
        return image

    images = domain.images.map(store, num_parallel_calls=tf.data.AUTOTUNE)
    if cache:
        images = images.cache()
    if shuffle:
        small = domain.count is not None and domain.count <= _FULL_SHUFFLE_LIMIT
        buffer = domain.count if small else _LARGE_SHUFFLE_BUFFER
        images = images.shuffle(buffer, seed=shuffle_seed, reshuffle_each_iteration=True)
    if shuffle and batch_size > 1:
        # Batching after the repeat let a batch straddle two passes and hold
        # one image twice (7 images, batches of 3: [6, 0, 6]).
        images = images.batch(batch_size, drop_remainder=True).repeat().unbatch()
    else:
        images = images.repeat()
    if crop is None:
        return images.map(_to_float, num_parallel_calls=tf.data.AUTOTUNE)
    # One stateless seed per image: the jitter is reproducible with a seed
    # although the map runs in parallel, and differs on every pass.
    seeds = tf.data.Dataset.random(seed=jitter_seed, rerandomize_each_iteration=True).batch(2)
    return tf.data.Dataset.zip((images, seeds)).map(
        lambda image, seed: _to_float(_cyclegan_jitter(image, seed, crop)),
        num_parallel_calls=tf.data.AUTOTUNE,
    )


def unpaired(
    domain_a: Any,
    domain_b: Any = None,
    *,
    batch_size: int = 1,
    image_size: int | Sequence[int] | None = None,
    channels: int | None = None,
    jitter: str | None = None,
    shuffle: bool = True,
    seed: int | None = None,
    split: str = "train",
    split_a: str | None = None,
    split_b: str | None = None,
    steps: int | None = None,
    cache: bool = True,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
) -> tf.data.Dataset:
    """Builds the training pipeline of two unpaired image domains (CycleGAN).

    Each element is a tuple ``(images_a, images_b)`` of float32 ``[B, H, W,
    C]`` batches in ``[-1, 1]``, with the same ``B, H, W, C`` on both sides.
    The two domains are shuffled independently (each with its own seed drawn
    from ``seed``), so which image of B meets which image of A changes every
    epoch and nothing pairs them.

    A domain is any of:

    * a dataset name, as in :func:`load`: embedded (``"digits_8x8"``,
      ``"mnist_5k"``) or tensorflow-datasets (``"cycle_gan/horse2zebra"``);
    * a folder of images (a ``pathlib.Path``, a string naming an existing
      folder, or any string ending in ``/``), read recursively as in
      :func:`from_folder`, with the channels of its first image (sorted by
      path: grey gives 1, RGB or RGBA 3) unless ``channels`` is given;
    * an array of images, as in :func:`from_numpy`.

    One name can stand for both domains: ``unpaired("cycle_gan/horse2zebra")``
    reads the tfds splits ``trainA`` (horses) and ``trainB`` (zebras), and a
    folder in the reference layout (``trainA/``, ``trainB/``, ``testA/``,
    ``testB/`` sub-folders) works the same way. In general, a ``cycle_gan``
    split or a folder's sub-folder without its side letter gets the letter of
    its position: ``split="test"`` reads ``testA`` for domain A and ``testB``
    for domain B. Name the letter to choose another side
    (``split_a="trainB"``).

    An epoch is ``max(len_a, len_b) // batch_size`` steps (or ``steps``):
    the larger domain is seen once, the smaller one cycled, reshuffled on
    every pass, so both see all their images within an epoch (up to the
    ``len % batch_size`` images of each pass left out, different ones every
    pass, so that no batch holds one image twice). This is the reference's epoch length
    (``UnalignedDataset.__len__`` is ``max(A_size, B_size)``); where the
    reference draws each B image uniformly with replacement, cycling
    permutations shows every image equally often and is the same for A and B.

    ``jitter="cyclegan"`` is the paper's augmentation, per image and per
    domain, fresh every pass: resize to 286x286 for 256x256 training (other
    sizes keep the ratio, ``round(size * 286 / 256)``: 36 for 32; bicubic
    with antialiasing, as the reference resizes with PIL's BICUBIC), crop a
    random ``image_size`` window and flip it horizontally with probability
    1/2. The flip suits photos and paintings, not digits or text (a mirrored
    2 is no 2): leave ``jitter=None`` for those. Without jitter images are
    resized to ``image_size`` bilinearly, as in :func:`load`, and only when
    the size differs.

    The decoded, resized images are cached before the jitter (uint8 for
    uint8 sources: about 245 KB per 286x286 RGB image, so 0.6 GB for
    horse2zebra's 2,401 training images); pass ``cache=False`` for domains
    that do not fit in memory. Decoding, jitter and batching run in
    parallel, batches never hold fewer than ``batch_size`` images, and the
    next batches are prefetched.

    Args:
        domain_a: The first domain (a name, folder or array, see above).
        domain_b: The second domain; None when ``domain_a`` names both.
        batch_size: Images per domain per step; CycleGAN uses 1.
        image_size: Training size, an int or ``(height, width)``. None keeps
            the sources' size, which must then be fixed and the same for both.
        channels: 1 or 3 to convert both domains; None keeps each source's
            (a folder's: its first image's, grey or RGB), which must then agree.
        jitter: None, or ``"cyclegan"`` for the paper's resize, random crop
            and flip.
        shuffle: Shuffle each domain independently, differently every pass.
        seed: Makes the shuffles and the jitter reproducible.
        split: The split of both domains (``"train"``, ``"test"``, slices such
            as ``"train[:80%]"``), as in :func:`load`; folders and arrays have
            only ``"train"``.
        split_a: The split of domain A, if not ``split``.
        split_b: The split of domain B, if not ``split``.
        steps: Steps per epoch; None for ``max(len_a, len_b) // batch_size``.
        cache: Keep the decoded, resized images in memory after the first
            pass.
        data_dir: tfds data directory, as in :func:`load`.
        download: Let tfds download a missing dataset, as in :func:`load`.

    Returns:
        A ``tf.data.Dataset`` of ``(images_a, images_b)`` with a known
        cardinality of ``steps``.

    Raises:
        ValueError: For an unknown name (the message suggests close names),
            a single domain that is not a pair, images of unknown or unequal
            sizes without ``image_size``, unequal channel counts without
            ``channels``, a domain with fewer images than ``batch_size``, a
            split a folder or array does not have, or a bad ``jitter``.
        TypeError: If an argument has the wrong type.
        FileNotFoundError: If a folder does not exist.
        DatasetUnavailableError: If tensorflow-datasets cannot download a
            dataset or find it in ``data_dir``; the message names the offline
            pair ``unpaired("digits_8x8", "mnist_5k", image_size=32)``.

    Example:
        >>> train = kgan.data.unpaired("digits_8x8", "mnist_5k", image_size=32, seed=0)
        >>> digits, mnist = next(iter(train))
        >>> digits.shape, mnist.shape
        (TensorShape([1, 32, 32, 1]), TensorShape([1, 32, 32, 1]))
        >>> horses2zebras = kgan.data.unpaired(
        ...     "cycle_gan/horse2zebra", image_size=256, jitter="cyclegan")
        >>> photos2paintings = kgan.data.unpaired("photos/", "paintings/", image_size=128)
    """
    options = _pipeline_options(batch_size, image_size, channels, shuffle, seed, cache, True, 1)
    batch_size, image_size = options["batch_size"], options["image_size"]
    channels, seed = options["channels"], options["seed"]
    if jitter is not None and jitter not in _JITTERS:
        raise ValueError(f"jitter must be None or one of {list(_JITTERS)}, got {jitter!r}.")
    if steps is not None:
        steps = _check_int(steps, "steps")
    if not isinstance(split, str):
        raise TypeError(f"split must be a string such as 'train' or 'test', got {split!r}.")
    download = _check_bool(download, "download")
    data_dir = _check_data_dir(data_dir)
    # Four independent streams: the shuffle and the jitter of each domain.
    streams: list[int | None] = [None] * 4
    if seed is not None:
        streams = [int(s) for s in np.random.SeedSequence(seed).generate_state(4)]

    domains = []
    for side, domain, side_split, stream in (
        ("A", domain_a, split_a, streams[0]),
        ("B", domain_a if domain_b is None else domain_b, split_b, streams[1]),
    ):
        opened = _open_domain(
            domain,
            side=side,
            split=split if side_split is None else side_split,
            channels=channels,
            data_dir=data_dir,
            download=download,
            shuffle_paths=options["shuffle"] and not options["cache"],
            seed=stream,
        )
        if domain_b is None and not opened.sided:
            raise _SingleDomainError(
                f"unpaired({_describe(domain_a)}) got one domain: a single name stands for "
                f"both only for tensorflow-datasets 'cycle_gan/...' names and folders holding "
                f"trainA/ and trainB/ sub-folders. Pass two: unpaired(domain_a, domain_b)."
            )
        domains.append(opened)

    if image_size is None:
        for domain in domains:
            if None in domain.size:
                raise ValueError(
                    f"{domain.source}: its images can differ in size, so they cannot be batched "
                    f"as they are; pass image_size=... (for example image_size=256; on the "
                    f"command line, --image-size 256)."
                )
        if domains[0].size != domains[1].size:
            raise ValueError(
                f"The domains' images differ in size: {_size_text(domains[0].size)} in A, "
                f"{_size_text(domains[1].size)} in B. Pass image_size=... to resize both (on the "
                f"command line, --image-size)."
            )
        image_size = domains[0].size
    if channels is None and domains[0].channels != domains[1].channels:
        raise ValueError(
            f"The domains' images differ in channels: {_channels_text(domains[0].channels)} in "
            f"A, {_channels_text(domains[1].channels)} in B. Pass channels=1 or channels=3 to "
            f"convert both (on the command line, --channels 1 or 3)."
        )
    for domain in domains:
        if domain.count is None and steps is None:
            raise ValueError(
                f"{domain.source} does not know its length, so the epoch length is unknown; "
                f"pass steps=..."
            )
        if domain.count is not None and domain.count < batch_size:
            raise TooFewExamplesError(
                f"{domain.source} has {domain.count} images, fewer than one batch of "
                f"{batch_size}: its images would repeat within a batch. Lower batch_size to "
                f"at most {domain.count}.",
                num_examples=domain.count, batch_size=batch_size, source=domain.source,
            )
    if steps is None:
        steps = max(domain.count for domain in domains) // batch_size

    crop = image_size if jitter == "cyclegan" else None
    stored_size = _cyclegan_load_size(image_size) if crop is not None else image_size
    sides = [
        _domain_pipeline(
            domain,
            stored_size=stored_size,
            crop=crop,
            channels=channels,
            cache=options["cache"],
            shuffle=options["shuffle"],
            shuffle_seed=shuffle_seed,
            jitter_seed=jitter_seed,
            batch_size=batch_size,
        )
        for domain, shuffle_seed, jitter_seed in zip(domains, streams[:2], streams[2:])
    ]
    pairs = tf.data.Dataset.zip(tuple(sides)).batch(batch_size, drop_remainder=True)
    return without_teardown_stall(pairs.take(steps).prefetch(tf.data.AUTOTUNE))


def _describe(domain: Any) -> str:
    if isinstance(domain, (str, os.PathLike)):
        return repr(os.fspath(domain))
    return f"<{type(domain).__name__}>"


def _size_text(size: tuple[int | None, int | None]) -> str:
    return f"{size[0]}x{size[1]}"


def _channels_text(channels: int | None) -> str:
    names = {1: "1 (grayscale)", 3: "3 (RGB)", 4: "4 (RGBA)"}
    return names.get(channels, str(channels))
