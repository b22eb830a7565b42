"""Keras callbacks for monitoring GAN training.

Example:
    >>> from kgan.callbacks import SampleGrid
    >>> model.fit(dataset, epochs=20,
    ...           callbacks=[SampleGrid("runs/dcgan/samples", num_samples=64)])
"""

from __future__ import annotations

import os

import keras
import numpy as np
import tensorflow as tf

from kgan import images as _images

__all__ = ["SampleGrid"]


class SampleGrid(keras.callbacks.Callback):
    """Saves a grid of generated samples from a fixed latent batch.

    One latent batch is drawn at the start of training and reused for every
    grid, so consecutive grids show how the *same* samples evolve and
    progress is comparable across epochs.

    The model must expose ``latent_dim`` (int) and
    ``generate_from_latents(z)`` returning float images in ``[-1, 1]``
    (``[N, H, W, C]`` or ``[N, H, W]``, NumPy or tensor).

    A grid is written after every ``every_n_epochs``-th epoch, and at the end
    of training for the final epoch if it was not already written (so runs
    stopped early, or whose length is not a multiple of ``every_n_epochs``,
    still end with a grid of the final generator). Files are named with
    ``filename.format(epoch=...)`` using 1-based epoch numbers. TensorBoard
    images, if enabled, use Keras' 0-based epoch index as ``step`` so they
    line up with ``keras.callbacks.TensorBoard`` epoch curves.

    Args:
        output_dir: Directory for the PNG files; created if missing.
        num_samples: Number of samples in each grid, ``>= 1``.
        seed: Seed of the latent batch (int ``>= 0`` or None for a random
            one). Uses its own NumPy generator, so global RNG state is neither
            consumed nor required.
        every_n_epochs: Write a grid every this many epochs, ``>= 1``.
        ncols: Tiles per grid row; defaults to ``ceil(sqrt(num_samples))``.
        tensorboard_log_dir: If given, also log each grid as the TensorBoard
            image summary ``"samples"`` into this directory.
        filename: Format string for the file names with an ``{epoch}`` field.

    Attributes:
        written: Paths of all PNG files written so far, in order. Kept
            across repeated ``fit`` calls.
        latents: The fixed latent batch ``[num_samples, latent_dim]``
            (float32), or None before training starts.

    Example:
        >>> cb = SampleGrid("samples", num_samples=16, every_n_epochs=5,
        ...                 tensorboard_log_dir="logs")
        >>> gan.fit(dataset, epochs=50, callbacks=[cb])
        >>> cb.written[-1]
        'samples/epoch_0050.png'
    """

    def __init__(
        self,
        output_dir,
        num_samples=64,
        seed=0,
        every_n_epochs=1,
        ncols=None,
        tensorboard_log_dir=None,
        filename="epoch_{epoch:04d}.png",
    ):
        super().__init__()
        if not _images._is_int(num_samples) or num_samples < 1:
            raise ValueError(f"num_samples must be an integer >= 1, got {num_samples!r}.")
        if not _images._is_int(every_n_epochs) or every_n_epochs < 1:
            raise ValueError(
                f"every_n_epochs must be an integer >= 1, got {every_n_epochs!r}; "
                f"use 1 to write a grid after every epoch."
            )
        if seed is not None and (not _images._is_int(seed) or seed < 0):
            raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}.")
        if ncols is not None and (not _images._is_int(ncols) or ncols < 1):
            raise ValueError(f"ncols must be a positive integer or None, got {ncols!r}.")
        if not isinstance(filename, str):
            raise TypeError(f"filename must be a str, got {type(filename).__name__}.")
        try:
            filename.format(epoch=1)
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(
                f"filename {filename!r} is not a valid format string with an "
                f"{{epoch}} field ({type(e).__name__}: {e}). Example: "
                f"'epoch_{{epoch:04d}}.png'."
            ) from e
        self.output_dir = os.fspath(output_dir)
        self.num_samples = int(num_samples)
        self.seed = seed
        self.every_n_epochs = int(every_n_epochs)
        self.ncols = ncols
        self.tensorboard_log_dir = (
            None if tensorboard_log_dir is None else os.fspath(tensorboard_log_dir)
        )
        self.filename = filename
        self.written = []
        self.latents = None
        self._writer = None
        self._last_epoch = None
        self._last_written_epoch = None

    def _check_model(self):
        model = self.model
        latent_dim = getattr(model, "latent_dim", None)
        if not _images._is_int(latent_dim) or latent_dim < 1:
            raise TypeError(
                f"SampleGrid needs a model with an integer attribute "
                f"`latent_dim` >= 1; {type(model).__name__} has "
                f"latent_dim={latent_dim!r}. Attach it to a kgan GAN model."
            )
        if not callable(getattr(model, "generate_from_latents", None)):
            raise TypeError(
                f"SampleGrid needs a model with a `generate_from_latents(z)` "
                f"method; {type(model).__name__} has none. Attach it to a "
                f"kgan GAN model."
            )
        return int(latent_dim)

    def _ensure_latents(self):
        latent_dim = self._check_model()
        # Redraw only if the shape changed (a different model), so resumed
        # fit() calls keep showing the same samples.
        if self.latents is None or self.latents.shape != (self.num_samples, latent_dim):
            rng = np.random.default_rng(self.seed)
            self.latents = rng.standard_normal((self.num_samples, latent_dim)).astype("float32")

    def on_train_begin(self, logs=None):
        self._ensure_latents()
        self._last_epoch = None
        self._last_written_epoch = None
        if self.tensorboard_log_dir is not None and self._writer is None:
            self._writer = tf.summary.create_file_writer(self.tensorboard_log_dir)

    def on_epoch_end(self, epoch, logs=None):
        self._last_epoch = epoch
        if (epoch + 1) % self.every_n_epochs == 0:
            self._write(epoch)

    def on_train_end(self, logs=None):
        if self._last_epoch is not None and self._last_written_epoch != self._last_epoch:
            self._write(self._last_epoch)
        if self._writer is not None:
            self._writer.flush()

    def _write(self, epoch):
        """Generates the grid for 0-based ``epoch`` and writes it out."""
        if self.latents is None:
            # Hooks called by hand, without on_train_begin.
            self._ensure_latents()
        samples = self.model.generate_from_latents(self.latents)
        grid = _images.make_grid(samples, ncols=self.ncols)
        path = os.path.join(self.output_dir, self.filename.format(epoch=epoch + 1))
        _images.save_png(grid, path)
        self.written.append(path)
        self._last_written_epoch = epoch
        if self.tensorboard_log_dir is not None:
            if self._writer is None:
                self._writer = tf.summary.create_file_writer(self.tensorboard_log_dir)
            with self._writer.as_default():
                tf.summary.image("samples", grid[None], step=epoch)
            self._writer.flush()
