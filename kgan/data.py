"""tf.data input pipelines for GAN training.

Every public function returns a batched, prefetched ``tf.data.Dataset`` of
float32 images scaled to ``[-1, 1]`` with shape ``[B, H, W, C]`` (the range a
``tanh`` generator produces), or of ``(images, labels)`` pairs with int32
labels ``[B]`` when labels are asked for. The sources are:

* :func:`load`: a tensorflow-datasets name (``"mnist"``, ``"cifar10"``,
  ``"celeb_a"``, ...) or an embedded dataset from :data:`EMBEDDED_DATASETS`
  that ships with kgan and works offline (``"mnist_5k"``).
* :func:`from_numpy`: arrays already in memory.
* :func:`from_folder`: a folder of PNG/JPEG/BMP/GIF files, optionally with
  one sub-folder per class.

All three share one pipeline: scale to ``[-1, 1]``, resize (only when the
size differs), convert channels, cache the preprocessed examples, shuffle,
batch (dropping a ragged last batch by default, because a batch of another
size retraces a compiled train step) and prefetch.

``repeat_batches=k`` makes every yielded batch hold ``k * batch_size``
examples. Trainers that take several optimizer steps per ``train_step`` use
it: WGAN's step splits one big batch into ``n_critic`` critic minibatches of
``batch_size`` each, so it needs ``repeat_batches=n_critic``.

A dataset that tensorflow-datasets cannot download or find raises
:class:`DatasetUnavailableError`, whose message names the offline
alternative; no function here ever substitutes another dataset.

Example:
    >>> from kgan import data
    >>> train = data.load("mnist_5k", batch_size=64, seed=0)
    >>> images = next(iter(train))
    >>> images.shape, images.dtype
    (TensorShape([64, 28, 28, 1]), tf.float32)
"""

from __future__ import annotations

import difflib
import functools
import importlib.resources
import numbers
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

__all__ = [
    "EMBEDDED_DATASETS",
    "embedded_split",
    "IMAGE_EXTENSIONS",
    "DatasetUnavailableError",
    "from_folder",
    "from_numpy",
    "load",
    "load_mnist_5k",
]

EMBEDDED_DATASETS: dict[str, str] = {
    "mnist_5k": (
        "5,000 MNIST digits (500 per class), 28x28 grayscale, labels 0-9; "
        "ships with kgan and works offline"
    ),
}
"""Datasets that install with kgan: name -> short description."""

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
"""File extensions :func:`from_folder` reads (case-insensitive)."""

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


@functools.cache
def _read_mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """Reads the embedded MNIST subset once; the arrays are read-only."""
    handle, where = _embedded_file("mnist_5k.npz")
    with handle, np.load(handle) as archive:
        if {"images", "labels"} - set(archive.files):
            raise ValueError(
                f"{where} has arrays {archive.files}, not 'images' and 'labels'; the file is "
                f"damaged. Reinstall kgan or rebuild it with `python -m kgan.datasets.make_mnist_5k`."
            )
        images, labels = archive["images"], archive["labels"]
    if images.shape != (5000, 28, 28) or labels.shape != (5000,) or images.dtype != np.uint8:
        raise ValueError(
            f"{where} holds images {images.dtype} {images.shape} and labels {labels.shape}, "
            f"expected uint8 (5000, 28, 28) and (5000,); the file is damaged. Reinstall kgan "
            f"or rebuild it with `python -m kgan.datasets.make_mnist_5k`."
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
    images, labels = _read_mnist_5k()
    return images.copy(), labels.copy()


_EMBEDDED_LOADERS = {"mnist_5k": _read_mnist_5k}

_SPLIT_SLICE = re.compile(r"^train(?:\[(-?\d+%?)?:(-?\d+%?)?\])?$")


def embedded_split(
    name: str, split: str = "train"
) -> tuple[np.ndarray, np.ndarray]:
    """The examples of an embedded dataset selected by a tfds-style split.

    Embedded datasets have one split, ``"train"``, sliceable as in tfds:
    ``"train[:80%]"``, ``"train[80%:]"``, ``"train[:2500]"``. Slices are taken
    from a fixed class-interleaved order (0, 1, ..., 9, 0, 1, ...), so every
    slice holds the classes in equal shares as far as its size allows: a
    held-out ``"train[80%:]"`` is a balanced test set, and ``"train[:50%]"``
    and ``"train[50%:]"`` are two disjoint, balanced halves.

    Args:
        name: an embedded dataset name, e.g. ``"mnist_5k"``.
        split: ``"train"`` or a slice of it.

    Returns:
        ``(images, labels)``: read-only uint8 ``[N, H, W, C]`` and int32 ``[N]``.

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
    # Stable sort by rank within the class, then class: the interleaved order.
    rank = np.empty(len(labels), dtype=np.int64)
    for value in np.unique(labels):
        members = np.flatnonzero(labels == value)
        rank[members] = np.arange(len(members))
    order = np.lexsort((labels, rank))
    bounds = [_slice_bound(b, len(order)) for b in match.groups()]
    chosen = order[slice(*bounds)]
    if len(chosen) == 0:
        raise ValueError(f"The split {split!r} of {name!r} selects no examples.")
    return images[chosen], labels[chosen]


def _slice_bound(text: str | None, total: int) -> int | None:
    if text is None:
        return None
    if text.endswith("%"):
        # tfds rounds percent boundaries to the closest example.
        return int(round(total * int(text[:-1]) / 100))
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


def _resize(image: tf.Tensor, size: tuple[int, int]) -> tf.Tensor:
    image = tf.image.resize(image, size, method="bilinear", antialias=True)
    # Interpolation can round a hair past the ends of the range.
    return tf.clip_by_value(image, -1.0, 1.0)


def _make_preprocess(
    image_spec: tf.TensorSpec, image_size: tuple[int, int] | None, channels: int | None, source: str
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
                f"channels={channels}. Pass channels=None."
            )
        if in_channels not in (1, 3, 4):
            raise ValueError(
                f"{source}: cannot convert {in_channels}-channel images to channels={channels}; "
                f"only grayscale (1), RGB (3) and RGBA (4, alpha dropped) convert. "
                f"Pass channels=None."
            )
    out_channels = channels if channels is not None else in_channels
    if image_size is None:
        if height is None or width is None:
            raise ValueError(
                f"{source}: images vary in size (shape {shape}), so they cannot be batched as "
                f"they are; pass image_size=... (for example image_size=64)."
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
            image = _resize(image, image_size)
        elif resize == "dynamic":
            same = tf.reduce_all(tf.equal(tf.shape(image)[:2], tf.constant(image_size)))
            image = tf.cond(same, lambda: image, lambda: _resize(image, image_size))
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
        raise ValueError(
            f"{source} has {num_examples} examples, fewer than one batch of {per_batch} "
            f"(batch_size={batch_size}{extra}), so with drop_remainder=True it would yield "
            f"no batches at all. Lower batch_size to at most {num_examples // repeat_batches or 1}"
            f" or pass drop_remainder=False."
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
    return dataset.prefetch(tf.data.AUTOTUNE)


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
        images: ``[N, H, W]`` or ``[N, H, W, C]`` array-like. Either uint8
            pixels in 0..255 (other integer types are accepted when every
            value lies in 0..255), or floats already scaled to ``[-1, 1]``.
        labels: Optional integer array-like ``[N]``. When given, the dataset
            yields ``(images, labels)`` with int32 labels.
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
        ValueError: If images are empty, have the wrong rank, lie outside the
            accepted range, labels do not match images in length, or the data
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
    return np.clip(array, -1.0, 1.0).astype(np.float32)


def _check_labels(labels: Any, num_images: int) -> np.ndarray:
    array = np.asarray(labels)
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"labels must be integers (class indices), got dtype {array.dtype}.")
    if array.ndim != 1:
        raise ValueError(
            f"labels must be a 1-D array [N] of class indices, got shape {array.shape}; "
            f"for one-hot labels pass labels.argmax(-1)."
        )
    if len(array) != num_images:
        raise ValueError(
            f"labels has {len(array)} entries but images has {num_images}; "
            f"pass one label per image."
        )
    return array.astype(np.int32)


# ---------------------------------------------------------------------------
# Folders of image files


def _is_image_file(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def _walk_images(top: str) -> list[str]:
    found = []
    for root, subdirs, files in tf.io.gfile.walk(top):
        # Pruned in place so the walk skips hidden folders such as
        # .ipynb_checkpoints, which would otherwise add stray images.
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        found.extend(tf.io.gfile.join(root, name) for name in files if _is_image_file(name))
    return sorted(found)


def _decode_image(path: tf.Tensor, channels: int) -> tf.Tensor:
    image = tf.io.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)
    # decode_image leaves the static shape unknown; the pipeline needs the rank
    # and channel count to plan the preprocessing.
    image.set_shape([None, None, channels])
    return image


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

    Reads every PNG, JPEG, BMP and GIF file (first frame) under
    ``directory``, recursively, in sorted path order; hidden files and
    folders (names starting with ".") are skipped. Files are decoded in
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
        FileNotFoundError: If ``directory`` does not exist.
        NotADirectoryError: If ``directory`` is a file.
        ValueError: If no image file is found, if ``with_labels=True`` and
            images lie directly in ``directory`` or there are no sub-folders,
            or if there are fewer images than one batch.

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
    directory = os.fspath(directory)
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
    if not tf.io.gfile.exists(directory):
        raise FileNotFoundError(f"Image folder {directory!r} does not exist; check the path.")
    if not tf.io.gfile.isdir(directory):
        raise NotADirectoryError(f"{directory!r} is a file; pass the folder that holds the images.")

    class_names: list[str] = []
    labels: list[int] = []
    if with_labels:
        entries = sorted(name.rstrip("/") for name in tf.io.gfile.listdir(directory))
        loose = [
            n
            for n in entries
            if _is_image_file(n) and not tf.io.gfile.isdir(tf.io.gfile.join(directory, n))
        ]
        if loose:
            raise ValueError(
                f"with_labels=True takes each image's label from its sub-folder of {directory!r}, "
                f"but {len(loose)} image(s) lie directly in it (e.g. {loose[0]!r}). Move them into "
                f"a class sub-folder, or pass with_labels=False."
            )
        class_names = [
            n
            for n in entries
            if not n.startswith(".") and tf.io.gfile.isdir(tf.io.gfile.join(directory, n))
        ]
        paths: list[str] = []
        for index, name in enumerate(class_names):
            found = _walk_images(tf.io.gfile.join(directory, name))
            paths.extend(found)
            labels.extend([index] * len(found))
    else:
        paths = _walk_images(directory)
    if not paths:
        where = "its class sub-folders" if with_labels else "it or its sub-folders"
        raise ValueError(
            f"No images found in {directory!r}: searched {where} for files ending in "
            f"{', '.join(IMAGE_EXTENSIONS)} (any case; hidden files and folders are skipped)."
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


def _unknown_name_error(name: str, tfds: Any) -> ValueError:
    try:
        # Community datasets are left out: listing them may need the network.
        known = set(tfds.list_builders(with_community_datasets=False))
    except Exception:  # noqa: BLE001 - suggestions are a courtesy, the error must still be raised
        known = set()
    base = name.split(":")[0].split("/")[0]
    matches = difflib.get_close_matches(
        base, sorted(known | set(EMBEDDED_DATASETS)), n=5, cutoff=0.6
    )
    hint = (
        f"Did you mean {', '.join(repr(m) for m in matches)}?"
        if matches
        else "No similar name is known."
    )
    return ValueError(
        f"Unknown dataset {name!r}: it is not embedded in kgan ({', '.join(EMBEDDED_DATASETS)}) "
        f"and tensorflow-datasets has no dataset of that name. {hint} The tensorflow-datasets "
        f"catalog lists all names: https://www.tensorflow.org/datasets/catalog/overview"
    )


def _unavailable_error(
    name: str, split: str, data_dir: str | None, download: bool, err: BaseException, tfds: Any
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
            "the dataset is already prepared"
        )
    else:
        what = (
            f"Dataset {name!r} (split {split!r}) was not found in {where}, and download=False "
            f"kept tensorflow-datasets from downloading it"
        )
        fix = (
            "Pass download=True on a machine with network access, or point data_dir at a folder "
            "where the dataset is already prepared"
        )
    cause = " ".join(str(err).split())
    if len(cause) > 400:
        cause = cause[:400] + " ..."
    said = f"tensorflow-datasets said: {type(err).__name__}: {cause}"
    message = f"{what}. {said} -- {fix}; {_OFFLINE_HINT}."
    return DatasetUnavailableError(message, dataset=name, data_dir=tried)


def _load_tfds(name: str, split: str, data_dir: str | None, download: bool, with_labels: bool):
    """Returns (unbatched dataset of image or (image, label), size, class names)."""
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
    except ImportError as err:
        # tfds 4.9.10 needs importlib_resources to download but does not
        # declare it on Python >= 3.9, so this happens on clean installs.
        raise _unavailable_error(name, split, data_dir, download, err, tfds) from err
    except unavailable as err:
        # tfds reports "not prepared and download=False" as AssertionError and
        # network failures as requests' ConnectionError (an OSError).
        raise _unavailable_error(name, split, data_dir, download, err, tfds) from err

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

    Args:
        name: Dataset name.
        split: tfds split, slicing allowed (``"train"``, ``"test[:10%]"``,
            ``"trainA"``). Embedded datasets only have ``"train"``, which
            slices the same way (see :func:`embedded_split`).
        batch_size: Examples per training step.
        image_size: Output size, an int for square images or ``(height,
            width)``; None keeps the dataset's (datasets whose images vary in
            size need one). Bilinear with antialiasing, only when it differs.
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
            message names the offline alternative ``mnist_5k``.

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
    if data_dir is not None:
        if not isinstance(data_dir, (str, os.PathLike)):
            raise TypeError(f"data_dir must be a path or None, got {data_dir!r}.")
        data_dir = os.fspath(data_dir)

    if name in _EMBEDDED_LOADERS:
        images, labels = embedded_split(name, split)
        dataset = tf.data.Dataset.from_tensor_slices((images, labels) if with_labels else images)
        num_examples = len(images)
        class_names = [str(c) for c in np.unique(labels)]
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
