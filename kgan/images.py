"""Image helpers: value-range conversion, sample grids and PNG files.

Generators in kgan produce float images in ``[-1, 1]`` (``tanh`` outputs).
These helpers turn such batches into ``uint8`` arrays, tile them into a grid
and write PNG files. Everything takes NumPy arrays or TensorFlow / Keras
tensors and returns NumPy arrays.

Example:
    >>> import numpy as np
    >>> from kgan import images
    >>> fake = np.tanh(np.random.randn(16, 28, 28, 1)).astype("float32")
    >>> grid = images.make_grid(fake)  # 4 x 4 tiles
    >>> grid.shape, grid.dtype
    ((122, 122, 1), dtype('uint8'))
    >>> path = images.save_png(grid, "/tmp/kgan_doc/grid.png")
"""

from __future__ import annotations

import math
import numbers
import os
import uuid
import warnings

import keras
import numpy as np
import tensorflow as tf

from kgan.atomic import UNWRITABLE, make_dirs, unwritable

__all__ = [
    "to_uint8",
    "from_uint8",
    "GRID_PADDING",
    "grid_layout",
    "make_grid",
    "encode_png",
    "save_png",
    "save_grid",
    "save_pngs",
    "load_png",
]

_GRID_CHANNELS = (1, 3, 4)
#: Pixels between tiles and around the border of a grid, by default.
GRID_PADDING = 2
_PNG_CHANNELS = (1, 2, 3, 4)


def _to_numpy(x):
    """Returns ``x`` as a NumPy array (tensors are copied to host memory)."""
    if isinstance(x, np.ndarray):
        return x
    if tf.is_tensor(x) or isinstance(x, (tf.Variable, keras.Variable)):
        return np.asarray(keras.ops.convert_to_numpy(x))
    return np.asarray(x)


def _is_int(value):
    # bool is an int subclass, but ncols=True is a bug rather than "1".
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def to_uint8(images):
    """Converts float images in ``[-1, 1]`` to ``uint8`` in ``[0, 255]``.

    Each value becomes ``round((x + 1) * 127.5)`` (round half to even),
    clipped to ``[0, 255]``, so generator outputs that overshoot the range
    saturate instead of wrapping around. ``uint8`` input is returned as is.

    Args:
        images: Array or tensor of any shape, floating point in ``[-1, 1]``
            or already ``uint8``.

    Returns:
        A ``uint8`` NumPy array with the same shape.

    Raises:
        TypeError: If the dtype is neither floating point nor ``uint8``.
        ValueError: If the input contains NaN.

    Example:
        >>> to_uint8(np.array([-1.0, 0.0, 1.0]))
        array([  0, 128, 255], dtype=uint8)
    """
    x = _to_numpy(images)
    if x.dtype == np.uint8:
        return x
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(
            f"to_uint8 expects float images in [-1, 1] or uint8 images, got "
            f"dtype {x.dtype}. Cast integer pixel values in [0, 255] with "
            f".astype('uint8'), or pass floats scaled to [-1, 1]."
        )
    if np.isnan(x).any():
        raise ValueError(
            "to_uint8 got images containing NaN; the generator has probably "
            "diverged. Check the training losses (or np.nan_to_num the "
            "images if the NaNs are expected)."
        )
    # float16 would lose integer precision near 255; float32 is exact enough.
    x = x.astype(np.promote_types(x.dtype, np.float32), copy=False)
    return np.clip(np.rint((x + 1.0) * 127.5), 0, 255).astype(np.uint8)


def from_uint8(images):
    """Converts ``uint8`` images to float32 in ``[-1, 1]``.

    The inverse of :func:`to_uint8`: ``to_uint8(from_uint8(x))`` equals ``x``
    for every ``uint8`` value.

    Args:
        images: ``uint8`` array or tensor of any shape.

    Returns:
        A float32 NumPy array ``x / 127.5 - 1`` with the same shape.

    Raises:
        TypeError: If the dtype is not ``uint8``.

    Example:
        >>> from_uint8(np.array([0, 255], dtype="uint8"))
        array([-1.,  1.], dtype=float32)
    """
    x = _to_numpy(images)
    if x.dtype != np.uint8:
        raise TypeError(
            f"from_uint8 expects uint8 images, got dtype {x.dtype}. Float "
            f"images need no conversion; integer pixels in [0, 255] can be "
            f"cast with .astype('uint8') first."
        )
    return x.astype(np.float32) / np.float32(127.5) - np.float32(1.0)


def _batch_to_uint8(images, func_name):
    """Validates an image batch and returns it as uint8 ``[N, H, W, C]``."""
    x = _to_numpy(images)
    if x.ndim == 3:
        x = x[..., np.newaxis]
    if x.ndim != 4:
        raise ValueError(
            f"{func_name} expects a batch of images shaped [N, H, W, C] or "
            f"[N, H, W], got shape {x.shape}. For a single image use "
            f"image[None]."
        )
    if x.shape[1] == 0 or x.shape[2] == 0:
        raise ValueError(
            f"{func_name} got images with zero height or width (shape "
            f"{x.shape})."
        )
    return to_uint8(x)


def grid_layout(num, tile_height, tile_width, ncols=None, padding=GRID_PADDING):
    """The layout :func:`make_grid` gives ``num`` tiles, without building it.

    Args:
        num: Number of tiles, ``>= 1``.
        tile_height: Height of each tile in pixels.
        tile_width: Width of each tile in pixels.
        ncols: Tiles per row; defaults to ``ceil(sqrt(num))``.
        padding: Pixels between tiles and around the border.

    Returns:
        ``(rows, ncols, height, width)``: the grid's tile rows and columns and
        its size in pixels.

    Example:
        >>> grid_layout(10, 8, 8)  # make_grid of 10 8x8 tiles: 4 x 3 tiles
        (3, 4, 32, 42)
    """
    ncols = math.ceil(math.sqrt(num)) if ncols is None else int(ncols)
    rows = math.ceil(num / ncols)
    height = rows * (tile_height + padding) + padding
    width = ncols * (tile_width + padding) + padding
    return rows, ncols, height, width


def make_grid(images, ncols=None, padding=GRID_PADDING, pad_value=0):
    """Tiles a batch of images into one ``uint8`` image.

    Tiles fill the grid row by row. Unused cells of the last row, and the
    ``padding`` pixels around and between tiles, are set to ``pad_value``.

    Args:
        images: Array or tensor ``[N, H, W, C]`` with ``C`` in 1, 3 or 4, or
            ``[N, H, W]`` (treated as greyscale), float in ``[-1, 1]`` or
            ``uint8``. A single ``[H, W, C]`` image is *not* detected; pass
            ``image[None]``.
        ncols: Number of tiles per row. Defaults to ``ceil(sqrt(N))``. Values
            larger than ``N`` are kept, giving a fixed-width grid.
        padding: Pixels between tiles and around the border, ``>= 0``.
        pad_value: ``uint8`` intensity of the padding, in ``[0, 255]``.

    Returns:
        A ``uint8`` array ``[rows * (H + padding) + padding,
        ncols * (W + padding) + padding, C]`` with ``rows = ceil(N / ncols)``.

    Raises:
        ValueError: On an empty batch, a bad shape or bad grid arguments.
        TypeError: On a dtype :func:`to_uint8` does not accept.

    Example:
        >>> make_grid(np.zeros((10, 8, 8, 3), "float32")).shape  # 4 x 3 tiles
        (32, 42, 3)
    """
    x = _batch_to_uint8(images, "make_grid")
    n, h, w, c = x.shape
    if n == 0:
        raise ValueError(
            "make_grid got an empty batch (N == 0); pass at least one image."
        )
    if c not in _GRID_CHANNELS:
        raise ValueError(
            f"make_grid supports 1 (grey), 3 (RGB) or 4 (RGBA) channels, got "
            f"{c} (shape {x.shape}). Images must be channels-last [N, H, W, C]."
        )
    if ncols is not None and (not _is_int(ncols) or ncols < 1):
        raise ValueError(f"ncols must be a positive integer or None, got {ncols!r}.")
    if not _is_int(padding) or padding < 0:
        raise ValueError(f"padding must be a non-negative integer, got {padding!r}.")
    if (
        not isinstance(pad_value, numbers.Real)
        or isinstance(pad_value, bool)
        or not 0 <= pad_value <= 255
    ):
        raise ValueError(
            f"pad_value must be a number in [0, 255] (uint8 scale, not "
            f"[-1, 1]), got {pad_value!r}."
        )
    padding = int(padding)
    _, ncols, height, width = grid_layout(n, h, w, ncols=ncols, padding=padding)
    grid = np.full((height, width, c), int(round(pad_value)), dtype=np.uint8)
    for i in range(n):
        top = padding + (i // ncols) * (h + padding)
        left = padding + (i % ncols) * (w + padding)
        grid[top : top + h, left : left + w] = x[i]
    return grid


def encode_png(image):
    """Encodes one image as PNG bytes.

    Args:
        image: Array or tensor ``[H, W, C]`` (``C`` in 1..4) or ``[H, W]``,
            ``uint8`` or float in ``[-1, 1]`` (converted with
            :func:`to_uint8`).

    Returns:
        The PNG file contents as ``bytes``.

    Raises:
        ValueError: On a bad shape or NaN values.
        TypeError: On a dtype :func:`to_uint8` does not accept.

    Example:
        >>> encode_png(np.zeros((4, 4, 3), "uint8"))[:4]
        b'\\x89PNG'
    """
    x = _to_numpy(image)
    if x.ndim == 2:
        x = x[..., np.newaxis]
    if x.ndim != 3 or x.shape[-1] not in _PNG_CHANNELS:
        raise ValueError(
            f"encode_png expects one image shaped [H, W, C] with C in 1..4 "
            f"or [H, W], got shape {x.shape}. For a batch use save_pngs or "
            f"make_grid."
        )
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(
            f"encode_png got an image with zero height or width (shape {x.shape})."
        )
    return tf.io.encode_png(to_uint8(x)).numpy()


def _atomic_write(data, path):
    """Writes ``data`` to ``path`` through a temp file and ``os.replace``."""
    path = os.fspath(path)
    parent = os.path.dirname(path) or "."
    make_dirs(parent)
    # Same directory as the target, so os.replace is a rename on one file
    # system (atomic) rather than a copy. os.open with 0o666 (unlike
    # mkstemp's 0o600) lets the umask decide the final permissions.
    tmp = os.path.join(parent, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as err:  # the folder exists but is read-only
        if err.errno not in UNWRITABLE:
            raise
        raise unwritable(path, parent, err) from err
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            # Without fsync a power loss after the rename can still leave an
            # empty file on file systems with delayed allocation.
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise


def _check_png_path(path, func_name):
    """Refuses, before any work, a file name not ending in ``.png`` (any case).

    kgan writes only PNG, and PNG bytes under another format's name
    (``grid.jpg``) mislead viewers and upload checks.
    """
    name = os.path.basename(os.fspath(path))
    stem, suffix = os.path.splitext(name)
    if suffix.lower() != ".png":
        what = f"ends in {suffix!r}" if suffix else "has no extension"
        pixels = "make_grid(images)" if func_name == "save_grid" else "to_uint8(image)"
        raise ValueError(
            f"{func_name} writes PNG files, but {os.fspath(path)!r} {what}. Name it "
            f"'{stem}.png'; for a JPEG, encode the pixels yourself: "
            f"tf.io.write_file(path, tf.io.encode_jpeg(kgan.images.{pixels}))."
        )
    return path


def save_png(image, path):
    """Writes one image to a PNG file, atomically.

    The file is written to a temporary name in the same directory and then
    renamed over ``path``, so readers (and a crash) never see a partial PNG.
    Missing parent directories are created. Nothing touches the disk if the
    image is invalid.

    Args:
        image: Array or tensor ``[H, W, C]`` or ``[H, W]``, ``uint8`` or float
            in ``[-1, 1]``.
        path: Destination file (str or path-like) ending in ``.png``.
            Overwritten if it exists.

    Returns:
        ``path``, unchanged.

    Raises:
        ValueError: On a bad shape, NaN values, or a name not ending in
            ``.png``.
        TypeError: On an unsupported dtype.

    Example:
        >>> save_png(np.zeros((8, 8), "uint8"), "/tmp/kgan_doc/black.png")
        '/tmp/kgan_doc/black.png'
    """
    _check_png_path(path, "save_png")
    _atomic_write(encode_png(image), path)
    return path


def save_grid(images, path, ncols=None, padding=GRID_PADDING, pad_value=0):
    """Tiles a batch with :func:`make_grid` and saves it with :func:`save_png`.

    Args:
        images: Batch ``[N, H, W, C]`` or ``[N, H, W]``, float in ``[-1, 1]``
            or ``uint8``.
        path: Destination PNG file; its name must end in ``.png``.
        ncols: Tiles per row; defaults to ``ceil(sqrt(N))``.
        padding: Pixels between tiles and around the border.
        pad_value: ``uint8`` intensity of the padding.

    Returns:
        ``path``, unchanged.

    Raises:
        ValueError: On a bad batch or a name not ending in ``.png``
            (checked before the grid is built).

    Example:
        >>> save_grid(np.zeros((4, 8, 8, 1), "float32"), "/tmp/kgan_doc/g.png")
        '/tmp/kgan_doc/g.png'
    """
    _check_png_path(path, "save_grid")
    grid = make_grid(images, ncols=ncols, padding=padding, pad_value=pad_value)
    return save_png(grid, path)


def save_pngs(images, directory, prefix="sample", start=0):
    """Writes each image of a batch to its own PNG file, atomically.

    Files are named ``f"{prefix}_{i:06d}.png"`` for ``i`` from ``start``, so
    consecutive batches can be written with ``start`` advancing by ``N``.
    The whole batch is validated before the first file is written.

    Args:
        images: Batch ``[N, H, W, C]`` or ``[N, H, W]``, float in ``[-1, 1]``
            or ``uint8``. An empty batch writes nothing.
        directory: Output directory; created if missing.
        prefix: File name prefix.
        start: Index of the first image, ``>= 0``.

    Returns:
        List of the written paths (str), in batch order.

    Raises:
        ValueError: On a bad shape, NaN values or bad arguments.
        TypeError: On an unsupported dtype.

    Example:
        >>> save_pngs(np.zeros((2, 8, 8, 3), "uint8"), "/tmp/kgan_doc/s")
        ['/tmp/kgan_doc/s/sample_000000.png', '/tmp/kgan_doc/s/sample_000001.png']
    """
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a str, got {type(prefix).__name__}.")
    if not _is_int(start) or start < 0:
        raise ValueError(f"start must be a non-negative integer, got {start!r}.")
    x = _batch_to_uint8(images, "save_pngs")
    if x.shape[-1] not in _PNG_CHANNELS:
        raise ValueError(
            f"save_pngs supports 1 to 4 channels, got {x.shape[-1]} (shape "
            f"{x.shape}). Images must be channels-last [N, H, W, C]."
        )
    directory = os.fspath(directory)
    paths = []
    for offset, image in enumerate(x):
        path = os.path.join(directory, f"{prefix}_{start + offset:06d}.png")
        paths.append(save_png(image, path))
    return paths


def load_png(path):
    """Reads a PNG file into a ``uint8`` array ``[H, W, C]``.

    Args:
        path: PNG file (str or path-like).

    Returns:
        ``uint8`` array with the file's own channel count (1 to 4).

    Raises:
        FileNotFoundError: If ``path`` does not exist.

    Example:
        >>> load_png(save_png(np.zeros((2, 3), "uint8"), "/tmp/kgan_doc/z.png")).shape
        (2, 3, 1)
    """
    with open(path, "rb") as f:
        data = f.read()
    return tf.io.decode_png(data, channels=0, dtype=tf.uint8).numpy()


def check_value_range(images, error=ValueError):
    """Raise `error` unless `images` are finite and within [-1, 1] (1e-3 slack).

    Values in [0, 255] are the usual mistake; the message gives the fix.
    Values that all lie in [0, 1] (not all zero) are in range but most
    likely data scaled to [0, 1]: a `UserWarning` gives the fix (a batch of
    real [-1, 1] images with no pixel below mid-grey is rare, not wrong).

    Example:

    ```python
    kgan.images.check_value_range(np.zeros((2, 8, 8, 1)))  # fine: returns None
    try:
        kgan.images.check_value_range(np.full((2, 8, 8, 1), 255.0))
    except ValueError as err:
        print(err)  # Images must be scaled to [-1, 1], got values in [255, 255]. ...
    ```
    """
    array = np.asarray(images, dtype=np.float32)
    if not np.all(np.isfinite(array)):
        raise error(
            "Images contain NaN or Inf values; drop or repair them (np.isfinite finds them) "
            "before passing them on."
        )
    low, high = float(array.min()), float(array.max())
    if low < -1.001 or high > 1.001:
        raise error(
            f"Images must be scaled to [-1, 1], got values in [{_range_end_text(low)}, "
            f"{_range_end_text(high)}]. Scale uint8 data with `x / 127.5 - 1` (kgan.data "
            "pipelines do this)."
        )
    warn_if_unit_range(low, high, stacklevel=2)


def _range_end_text(value):
    """`value` with 3 significant digits, or as many more as show it outside [-1, 1].

    1.001 is out of range (the slack is 1e-3) but prints as 1 with 3 digits.
    """
    for digits in range(3, 10):
        text = f"{value:.{digits}g}"
        if abs(value) <= 1.0 or abs(float(text)) > 1.0:
            return text
    return repr(value)


def warn_if_unit_range(low, high, stacklevel=1):
    """Warn, with the fix, when images spanning `[low, high]` look scaled to [0, 1].

    Such values are within [-1, 1], so no error: but real [-1, 1] images
    without a single pixel below mid-grey are rare, and 0..1 data trained
    as [-1, 1] is the usual mistake. All zeros are not flagged. `stacklevel`
    counts from the caller (1): the frame the warning points at.

    Example:

    ```python
    kgan.images.warn_if_unit_range(0.0, 1.0)  # UserWarning: ... rescale it with `x * 2 - 1`
    ```
    """
    if low >= 0.0 and 0.0 < high <= 1.0:
        warnings.warn(
            f"Images lie in [{low:.3g}, {high:.3g}], within [0, 1]: kgan's images are scaled to "
            "[-1, 1]. If your data is scaled to [0, 1], rescale it with `x * 2 - 1`.",
            stacklevel=stacklevel + 1,
        )
