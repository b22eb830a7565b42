#!/usr/bin/env python
"""Rebuild ``kgan/datasets/digits_8x8.npz`` from scikit-learn's ``load_digits``.

The embedded ``digits_8x8`` set is the 1,797 8x8 handwritten digits that
scikit-learn ships (``sklearn.datasets.load_digits``: a copy of the test set
of the UCI "Optical Recognition of Handwritten Digits" data; see
kgan/datasets/README.md for sources and licenses). Each pixel there counts the
"on" pixels of a 4x4 block of a 32x32 bitmap, an integer in 0..16; this script
scales it to 0..255 with ``(v * 255 + 8) // 16`` (rounding half up, so 0 -> 0,
8 -> 128, 16 -> 255), keeps scikit-learn's order, and writes uint8 images
``[1797, 8, 8]`` and int32 labels ``[1797]`` to an ``.npz``, then prints its
sha256.

scikit-learn is not a kgan dependency: install it only to rebuild the file.

Example:
    pip install scikit-learn==1.9.1
    python -m kgan.datasets.make_digits_8x8
    python -m kgan.datasets.make_digits_8x8 --output /tmp/digits_8x8.npz
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from kgan.datasets._build import add_output_argument, write_npz

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "digits_8x8.npz"
IMAGE_SIDE = 8
LEVELS = 16  # scikit-learn's digits hold integer pixel counts 0..16


def to_uint8(pixels: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scales 0..16 digit counts to 0..255 images and checks the labels.

    Args:
        pixels: ``[N, 64]`` or ``[N, 8, 8]`` values that are whole numbers in
            0..16 (scikit-learn returns them as float64).
        labels: ``[N]`` integers in 0..9.

    Returns:
        ``(images, labels)``: uint8 ``[N, 8, 8]`` with ``(v * 255 + 8) // 16``
        and int32 ``[N]``, in the input order.

    Raises:
        ValueError: If a pixel is not a whole number in 0..16, a label is not
            in 0..9, or the lengths differ.

    Example:
        >>> images, labels = to_uint8(np.full((1, 64), 16.0), np.array([3]))
        >>> int(images.max()), labels.dtype
        (255, dtype('int32'))
    """
    pixels = np.asarray(pixels)
    labels = np.asarray(labels)
    if len(pixels) != len(labels):
        raise ValueError(f"{len(pixels)} images but {len(labels)} labels")
    counts = pixels.reshape(len(pixels), IMAGE_SIDE, IMAGE_SIDE)
    if not np.array_equal(counts, np.rint(counts)) or counts.min() < 0 or counts.max() > LEVELS:
        raise ValueError(f"pixels must be whole numbers in 0..{LEVELS}")
    if not np.array_equal(labels, np.rint(labels)) or labels.min() < 0 or labels.max() > 9:
        raise ValueError("labels must be whole numbers in 0..9")
    counts = counts.astype(np.int64)
    images = ((counts * 255 + LEVELS // 2) // LEVELS).astype(np.uint8)
    return images, labels.astype(np.int32)


def load_from_sklearn() -> tuple[np.ndarray, np.ndarray, str]:
    """Returns scikit-learn's digits as ``(data [N, 64], target [N], version)``."""
    try:
        import sklearn
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise ImportError(
            "scikit-learn is needed to rebuild digits_8x8.npz (it is not a kgan dependency): "
            "pip install scikit-learn==1.9.1"
        ) from err
    data, target = load_digits(return_X_y=True)
    return data, target, sklearn.__version__


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_output_argument(parser, DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    try:
        data, target, version = load_from_sklearn()
        images, labels = to_uint8(data, target)
    except (ImportError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"scikit-learn {version}")
    write_npz(args.output, images, labels)
    return 0


if __name__ == "__main__":
    sys.exit(main())
