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

__all__ = ["QualityMetrics", "SampleGrid"]


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


class QualityMetrics(keras.callbacks.Callback):
    """Computes quality metrics (FID/FCD, KID, IS, precision/recall) during `fit`.

    The real set's features are extracted once, when training starts; every
    `every_n_epochs` epochs `num` images are generated (`model.generate`, so
    the EMA generator when the model keeps one) and compared with them. The
    figures are written into the epoch's `logs`, so they appear in
    `fit(...).history` (for the evaluated epochs only), in callbacks after this
    one (`CSVLogger`, `keras.callbacks.TensorBoard`, `EarlyStopping` on e.g.
    `"fid"`), and, with `tensorboard_log_dir`, as scalars `quality/<name>`.
    Keys are those of `kgan.metrics.evaluate` (`fid`, `kid_mean`, `kid_std`,
    `precision`, `recall`, `is_mean`, `is_std`) with an optional `prefix`.

    Args:
        real: real images: a `tf.data.Dataset`, an array, or a
            `kgan.metrics.FeatureStats` computed beforehand.
        extractor: a `kgan.metrics.FeatureExtractor` or `keras.Model`, e.g.
            `kgan.evaluators.mnist_extractor()`.
        metrics: any of `"fid"`, `"kid"`, `"is"`, `"pr"`.
        every_n_epochs: evaluate after the first epoch, after every this
            many epochs, and after the last epoch of `fit` (the first so that
            `keras.callbacks.CSVLogger`, which fixes its columns then, has
            them; it writes NA for the epochs in between).
        num: images per set (more than the feature dimension for FID).
        seed: sampling seed: the same latents every time, so changes in the
            figures come from the generator, not from the draw.
        batch_size: images per generation / extraction batch.
        prefix: prepended to the log keys (e.g. `"val_"`).
        tensorboard_log_dir: also write the figures as TensorBoard scalars.

    Attributes:
        history: `{epoch (1-based): {key: value}}` of every evaluation.

    Example:

    ```python
    quality = QualityMetrics(kgan.data.load("mnist_5k", batch_size=250),
                             kgan.evaluators.mnist_extractor(), metrics=("fid",),
                             every_n_epochs=5, num=2000)
    history = gan.fit(dataset, epochs=20, callbacks=[quality])
    print(quality.history)  # {1: {"fid": ...}, 5: {...}, 10: {...}, ...}
    ```
    """

    def __init__(
        self,
        real,
        extractor,
        metrics=("fid",),
        every_n_epochs=1,
        num=2000,
        seed=0,
        batch_size=250,
        prefix="",
        tensorboard_log_dir=None,
    ):
        super().__init__()
        from kgan import metrics as kgan_metrics

        metrics = (metrics,) if isinstance(metrics, str) else tuple(metrics)
        unknown = set(metrics) - {"fid", "kid", "is", "pr"}
        if unknown or not metrics:
            raise ValueError(f"Unknown metrics {sorted(unknown) or metrics}; choose from fid, kid, is, pr.")
        for name, value in (("every_n_epochs", every_n_epochs), ("num", num), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}.")
        if not callable(extractor):
            raise TypeError(f"extractor must be callable, got {type(extractor).__name__}.")
        self._metrics_module = kgan_metrics
        self.real = real
        self.extractor = extractor
        self.metric_names = metrics
        self.every_n_epochs = every_n_epochs
        self.num = num
        self.seed = seed
        self.batch_size = batch_size
        self.prefix = prefix
        self.tensorboard_log_dir = tensorboard_log_dir
        self.history = {}
        self._real_stats = None
        self._writer = None
        self._last_epoch = None

    def _keep(self):
        return bool({"kid", "pr"} & set(self.metric_names))

    def on_train_begin(self, logs=None):
        if not (hasattr(self.model, "generate") and hasattr(self.model, "image_shape")):
            raise TypeError("QualityMetrics needs a kgan GAN model (with generate and image_shape).")
        if self._real_stats is None:
            m = self._metrics_module
            if isinstance(self.real, m.FeatureStats):
                self._real_stats = self.real
            else:
                self._real_stats = m.features_from(
                    self.real, self.extractor, num=self.num, batch_size=self.batch_size,
                    seed=self.seed, keep_features=self._keep(), max_features=self.num,
                )
            if self._real_stats.image_shape not in (None, tuple(self.model.image_shape)):
                raise ValueError(
                    f"Real images have shape {self._real_stats.image_shape}, the model "
                    f"generates {tuple(self.model.image_shape)}."
                )
        if self.tensorboard_log_dir and self._writer is None:
            self._writer = tf.summary.create_file_writer(os.fspath(self.tensorboard_log_dir))

    def on_epoch_end(self, epoch, logs=None):
        self._last_epoch = epoch
        # The first epoch too: CSVLogger fixes its columns at the first epoch.
        if epoch == 0 or (epoch + 1) % self.every_n_epochs == 0:
            self._evaluate(epoch, logs)

    def on_train_end(self, logs=None):
        last = self._last_epoch
        if last is not None and (last + 1) not in self.history:
            # Ends of runs stopped early or not a multiple of every_n_epochs.
            self._evaluate(last, None)

    def _evaluate(self, epoch, logs):
        m = self._metrics_module
        fake = m.features_from(
            self.model, self.extractor, num=self.num, batch_size=self.batch_size,
            seed=self.seed, keep_features=self._keep(), max_features=self.num,
        )
        scores = m.evaluate(
            self._real_stats, fake, self.extractor, metrics=self.metric_names,
            num=self.num, seed=self.seed, kid_subset_size=min(1000, self.num),
        )
        scores = {f"{self.prefix}{k}": float(v) for k, v in scores.items()}
        self.history[epoch + 1] = scores
        if logs is not None:
            logs.update(scores)
        if self._writer is not None:
            with self._writer.as_default():
                for key, value in scores.items():
                    tf.summary.scalar(f"quality/{key}", value, step=epoch)
            self._writer.flush()
