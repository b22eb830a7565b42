"""Write a generator's samples to disk in bounded memory (what `kgan sample` runs).

Samples are generated, converted to uint8 and written one batch at a time,
so `kgan sample NAME --num 100000 --output DIR` holds one batch of images in
memory, not 100,000 (`tests/test_bounded_memory.py` checks that peak memory
does not grow with `--num`). Every output appears whole or not at all:

* a folder of PNGs is written into a temporary sibling folder, renamed into
  place at the end (`kgan.atomic`);
* a `.npz` is streamed into a temporary file (the `images` array's `.npy`
  header first, then the batches), then renamed;
* a `.png` grid is one image of all the samples, so it is assembled in
  memory (as uint8: one byte per pixel) and written atomically.

Example:

```python
gan = kgan.zoo.load("dcgan_mnist")
kgan.sampling.write_samples(gan, "samples/", num=100_000, seed=0)
```
"""

import math
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np

from kgan import images as kgan_images
from kgan._checks import positive_int
from kgan.atomic import replace_folder, staging_dir, write_file

#: images generated (and held in memory) per step.
BATCH_SIZE = 256


def sample_batches(model, num, seed=0, interpolate=None, batch_size=BATCH_SIZE):
    """uint8 sample batches of `model`, in order, at most about `batch_size` images each.

    Args:
        model: a latent-space `kgan.models.GAN`.
        num: number of samples, or of interpolation rows.
        seed: latent seed; `None` draws from the model's own stream.
        interpolate: `K` to yield rows of `K`-step spherical interpolations
            between consecutive pairs of latents (`num * K` images in all);
            a class-conditional model's row r is of class `r % num_classes`.
        batch_size: images per generator call.

    Yields:
        uint8 numpy batches `[b, H, W, C]`; concatenated they equal
        `to_uint8(model.generate(num, seed, batch_size=batch_size))` (or the
        interpolation rows `kgan sample --interpolate` always wrote). With
        another batch size a pixel may differ by one level: the backend's
        kernels can round differently for different batch shapes.

    Example:

    ```python
    gan = kgan.zoo.load("dcgan_mnist")
    for batch in kgan.sampling.sample_batches(gan, 600, seed=0):
        print(batch.shape, batch.dtype)  # (256, 28, 28, 1) uint8 twice, then (88, ...)
    ```
    """
    if interpolate is None:
        for batch in model.generate_batches(num, seed=seed, batch_size=batch_size):
            yield kgan_images.to_uint8(batch)
        return
    rows_per_batch = max(1, batch_size // interpolate)
    # A class-conditional model's rows cycle through its classes, as its
    # plain samples do (every row was class 0 before).
    num_classes = getattr(model, "num_classes", None)
    row = 0
    # Pairs of ends come from one latent stream of 2 * num vectors, in chunks
    # of whole pairs, so the rows match the unchunked `latents(2 * num, seed)`.
    for ends in model.latent_batches(2 * num, seed=seed, batch_size=2 * rows_per_batch):
        rows = []
        for i in range(0, len(ends), 2):
            label = {} if num_classes is None else {"label": row % num_classes}
            rows.append(model.interpolate(ends[i], ends[i + 1], interpolate, **label))
            row += 1
        yield kgan_images.to_uint8(np.concatenate(rows, axis=0))


# A .png grid is built whole in memory before it is encoded: 2**28 pixels is
# 0.8 GB as RGB (a 16384 x 16384 image), past which an image viewer is no use.
MAX_GRID_PIXELS = 2**28


def _check_grid_size(image_shape, num, interpolate):
    """Refuse, before any sampling, a `.png` grid too large to build in memory."""
    height, width = image_shape[:2]
    tiles = num * (interpolate or 1)
    # The layout save_grid will give these tiles (write_samples passes ncols=interpolate).
    _, _, grid_height, grid_width = kgan_images.grid_layout(tiles, height, width, ncols=interpolate)
    pixels = grid_height * grid_width
    if pixels > MAX_GRID_PIXELS:
        padding = kgan_images.GRID_PADDING
        tile_pixels = (height + padding) * (width + padding) * (interpolate or 1)
        fits = max(1, MAX_GRID_PIXELS // tile_pixels)
        raise ValueError(
            f"a .png grid of {tiles:,} samples of {height}x{width} would have {pixels:,} pixels, "
            f"more than the {MAX_GRID_PIXELS:,} a grid may hold (it is built in memory): ask for "
            f"at most about {fits:,}{' rows' if interpolate else ''}, or write a .npz file or a "
            f"folder, which stream any number of samples"
        )


def write_samples(model, output, num, seed=0, interpolate=None, batch_size=BATCH_SIZE):
    """Write `num` samples of `model` to `output`: a `.png` grid, a `.npz` or a folder.

    The output is replaced whole (a folder's old contents go); callers check
    for an existing output first (`kgan sample` without `--overwrite`).

    Args:
        model: a latent-space `kgan.models.GAN`.
        output: path ending in `.png` (grid), `.npz` (uint8 array `images`
            `[N, H, W, C]`), or anything else (a folder of `sample_NNNNNN.png`).
        num: number of samples (interpolation rows with `interpolate`).
        seed: latent seed.
        interpolate: `K` for rows of `K`-step interpolations.
        batch_size: images generated per step.

    Returns:
        The number of images written.

    Raises:
        kgan.atomic.OutputPathError: `output` cannot be created.
        ValueError: a `.png` grid of `num` samples would exceed
            `MAX_GRID_PIXELS` (it is built in memory; `.npz` and folders stream);
            `num` below 1 or `interpolate` below 2.
        TypeError: a `num` that is not an int.

    Example:

    ```python
    gan = kgan.zoo.load("dcgan_mnist")
    kgan.sampling.write_samples(gan, "samples.npz", num=500, seed=0)  # 500
    np.load("samples.npz")["images"].shape  # (500, 28, 28, 1), uint8
    kgan.sampling.write_samples(gan, "samples/", num=8)  # samples/sample_000000.png ...
    ```
    """
    output = Path(output)
    suffix = output.suffix.lower()
    num = positive_int(num, "num")
    if interpolate is not None and (isinstance(interpolate, bool) or not isinstance(interpolate, int)
                                    or interpolate < 2):
        raise ValueError(f"interpolate must be None or an int of at least 2 (the steps of each "
                         f"row, both ends included), got {interpolate!r}.")
    if suffix == ".png":
        _check_grid_size(model.image_shape, num, interpolate)
    batches = sample_batches(model, num, seed=seed, interpolate=interpolate, batch_size=batch_size)
    total = num * (interpolate or 1)
    if suffix == ".png":
        samples = np.concatenate(list(batches), axis=0)
        kgan_images.save_grid(samples, output, ncols=interpolate)
        return len(samples)
    if suffix == ".npz":
        return _write_npz(batches, output, (total,) + tuple(model.image_shape))
    return _write_folder(batches, output)


def _write_npz(batches, path, shape):
    """Stream uint8 batches into `path` as `np.load(path)["images"]` of `shape`."""
    written = 0

    def write(temporary):
        nonlocal written
        # What np.savez_compressed writes, one batch at a time: a deflated zip
        # member "images.npy" holding the .npy header and the raw C-order bytes.
        with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            with archive.open("images.npy", "w", force_zip64=True) as member:
                header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)),
                          "fortran_order": False, "shape": shape}
                np.lib.format.write_array_header_1_0(member, header)
                for batch in batches:
                    member.write(np.ascontiguousarray(batch, dtype=np.uint8).tobytes())
                    written += len(batch)
        if written != shape[0]:  # the header promised shape[0] images
            raise RuntimeError(f"wrote {written} images, expected {shape[0]}")

    write_file(path, write)  # beside `path`, fsynced, renamed into place; removed on error
    return written


def _write_folder(batches, folder):
    """Write uint8 batches as `sample_NNNNNN.png` into a staging folder, then rename it.

    The files go into a private staging folder that no one reads before the
    rename, so each is written plainly and the whole folder is flushed once
    before the rename: one fsync per file (what `save_pngs` does for files
    written in place) cost 3 ms each here, 5 minutes for 100,000 samples.
    """
    staging = staging_dir(folder)
    written = 0
    try:
        for batch in batches:
            for image in batch:
                # save_pngs' naming, so the two kinds of folder look the same.
                path = staging / f"sample_{written:06d}.png"
                path.write_bytes(kgan_images.encode_png(image))
                written += 1
        _flush(staging)
        replace_folder(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return written


def _flush(folder):
    """Make the files under `folder` durable before it is renamed into place."""
    if hasattr(os, "sync"):  # POSIX: one call flushes every file written above
        os.sync()
        return
    for path in Path(folder).iterdir():  # pragma: no cover - Windows
        with open(path, "rb+") as handle:
            os.fsync(handle.fileno())
