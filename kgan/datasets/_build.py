"""What the ``make_*`` scripts that rebuild the embedded datasets share."""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np


def add_output_argument(parser: argparse.ArgumentParser, default: Path) -> None:
    """Adds ``--output PATH`` (default: the shipped file) to a build script's parser.

    Example:
        >>> add_output_argument(parser, Path("kgan/datasets/mnist_5k.npz"))
    """
    parser.add_argument(
        "--output", type=Path, default=default, help=f"where to write (default: {default})"
    )


def write_npz(output: Path, images: np.ndarray, labels: np.ndarray) -> str:
    """Writes ``images`` and ``labels`` to ``output`` and prints what it wrote.

    Args:
        output: The ``.npz`` path; missing folders are created.
        images: The uint8 images.
        labels: Integer class indices 0..9.

    Returns:
        The sha256 of the file, also printed, to compare with the README.

    Example:
        >>> digest = write_npz(Path("/tmp/x.npz"), images, labels)
    """
    output.parent.mkdir(parents=True, exist_ok=True)
    # savez_compressed stamps zip members with a fixed 1980 date, so the same
    # arrays give the same bytes and the sha256 can be compared with the README.
    np.savez_compressed(output, images=images, labels=labels)
    digest = hashlib.sha256(output.read_bytes()).hexdigest()
    counts = np.bincount(labels, minlength=10).tolist()
    print(f"wrote {output}: images {images.shape} {images.dtype}, labels per class {counts}")
    print(f"sha256 {digest}")
    return digest
