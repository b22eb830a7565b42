"""Keras callbacks for monitoring GAN training, and for surviving its failures.

`SampleGrid` (`TranslationGrid` for translators) and `QualityMetrics`
monitor; `BackupAndRestore` (atomic, exact resume) and `StopOnDivergence`
(stop at the first NaN/Inf loss, before any checkpoint saves it) make long
runs fault tolerant.

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

__all__ = [
    "BackupAndRestore",
    "DivergenceError",
    "QualityMetrics",
    "SampleGrid",
    "StopOnDivergence",
    "TranslationGrid",
    "non_finite_variable",
]


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
    images, if enabled, use the 0-based epoch index as ``step`` so they
    line up with ``keras.callbacks.TensorBoard`` epoch curves.

    Epochs are numbered over the callback's whole life, so grids are never
    overwritten by a later ``fit``: a ``fit`` that starts at epoch 0 after
    earlier ones continues their numbering (``fit(epochs=3)`` then
    ``fit(epochs=2)`` writes epochs 1-3, then 4-5), as the model trains on
    from where they left it. A ``fit`` that starts later (``initial_epoch=k``,
    or resumed by ``BackupAndRestore``) keeps Keras's numbering: a resumed
    run writes the grid of the epoch it repeats again, to the same file.

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
        filename: Format string for the file names with an ``{epoch}`` field,
            ending in ``.png``.

    Attributes:
        written: Paths of all PNG files written so far, in order. Kept
            across repeated ``fit`` calls (numbered on, see above).
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
        if not filename.format(epoch=1).lower().endswith(".png"):
            # Refused now, not when the first grid is written after an epoch.
            raise ValueError(
                f"filename {filename!r} must end in .png: SampleGrid writes PNG files. "
                f"Example: 'epoch_{{epoch:04d}}.png'."
            )
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
        # Epochs of earlier fit calls: a fit that starts at epoch 0 is numbered after them.
        self._epochs_before = 0
        self._epochs_seen = 0
        self._fit_started = False

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
        self._fit_started = True
        if self.tensorboard_log_dir is not None and self._writer is None:
            self._writer = tf.summary.create_file_writer(self.tensorboard_log_dir)

    def on_epoch_begin(self, epoch, logs=None):
        if self._fit_started:
            # Known only now: Keras starts at a restored epoch after on_train_begin.
            self._epochs_before = self._epochs_seen if epoch == 0 else 0
            self._fit_started = False

    def on_epoch_end(self, epoch, logs=None):
        self._last_epoch = epoch
        self._epochs_seen = self._epochs_before + epoch + 1
        if self._epochs_seen % self.every_n_epochs == 0:
            self._write(epoch)

    def on_train_end(self, logs=None):
        if self._last_epoch is not None and self._last_written_epoch != self._last_epoch:
            self._write(self._last_epoch)
        if self._writer is not None:
            self._writer.flush()

    def _grid(self):
        """The grid of the model as it is now, uint8 ``[H, W, C]``."""
        if self.latents is None:
            # Hooks called by hand, without on_train_begin.
            self._ensure_latents()
        samples = self.model.generate_from_latents(self.latents)
        return _images.make_grid(samples, ncols=self.ncols)

    def _write(self, epoch):
        """Makes the grid for 0-based ``epoch`` of this fit and writes it out."""
        grid = self._grid()
        step = self._epochs_before + epoch  # 0-based, over the callback's life
        path = os.path.join(self.output_dir, self.filename.format(epoch=step + 1))
        _images.save_png(grid, path)
        self.written.append(path)
        self._last_written_epoch = epoch
        if self.tensorboard_log_dir is not None:
            if self._writer is None:
                self._writer = tf.summary.create_file_writer(self.tensorboard_log_dir)
            with self._writer.as_default():
                tf.summary.image("samples", grid[None], step=step)
            self._writer.flush()


class TranslationGrid(SampleGrid):
    """Saves a sheet of translations of fixed images: rows A, G(A), B, F(B).

    The image-to-image counterpart of :class:`SampleGrid` (the same epochs,
    file names and TensorBoard image ``"samples"``), for a model with
    ``translate(images, direction)`` such as ``kgan.models.CycleGAN``. The
    same ``images_a`` and ``images_b`` are translated every time, so
    consecutive sheets show how their translations evolve; ``kgan train
    cyclegan`` writes them to ``OUTPUT/samples/`` from the images of the
    preset's ``samples.png``.

    Args:
        output_dir: Directory for the PNG files; created if missing.
        images_a: One row of domain A images, float ``[N, H, W, C]`` in
            ``[-1, 1]``.
        images_b: One row of domain B images, the same shape.
        every_n_epochs: Write a sheet every this many epochs, ``>= 1``.
        tensorboard_log_dir: If given, also log each sheet to TensorBoard.
        filename: Format string for the file names with an ``{epoch}`` field.

    Example:
        >>> images, ncols = gan.translation_sheet("digits_8x8", "mnist_5k")
        >>> cb = TranslationGrid("samples", images[:ncols], images[2 * ncols:3 * ncols])
        >>> gan.fit(dataset, epochs=10, callbacks=[cb])  # samples/epoch_0001.png, ...
    """

    def __init__(self, output_dir, images_a, images_b, every_n_epochs=1, tensorboard_log_dir=None,
                 filename="epoch_{epoch:04d}.png"):
        images_a = np.asarray(images_a, np.float32)
        images_b = np.asarray(images_b, np.float32)
        if images_a.ndim != 4 or images_a.shape != images_b.shape or not len(images_a):
            raise ValueError(
                f"images_a and images_b must be rows of images [N, H, W, C] of one shape (N >= "
                f"1; a sheet's rows share its channels), got {images_a.shape} and "
                f"{images_b.shape}."
            )
        super().__init__(output_dir, num_samples=4 * len(images_a), seed=None,
                         every_n_epochs=every_n_epochs, ncols=len(images_a),
                         tensorboard_log_dir=tensorboard_log_dir, filename=filename)
        self.images_a, self.images_b = images_a, images_b

    def _ensure_latents(self):  # no latents: the model must translate instead
        if not callable(getattr(self.model, "translate", None)):
            raise TypeError(
                f"TranslationGrid needs a model with a `translate(images, direction)` method; "
                f"{type(self.model).__name__} has none. Use SampleGrid for a generator of "
                "latents."
            )

    def sheet(self):
        """``(images, ncols)`` of the model as it is now: the rows A, G(A), B, F(B).

        What ``kgan.images.save_grid(images, path, ncols=ncols)`` and
        ``kgan.zoo.save_preset(..., samples=(images, ncols))`` take.
        """
        self._ensure_latents()
        rows = [self.images_a, self.model.translate(self.images_a, "a_to_b"),
                self.images_b, self.model.translate(self.images_b, "b_to_a")]
        return np.concatenate(rows), len(self.images_a)

    def _grid(self):
        images, ncols = self.sheet()
        return _images.make_grid(images, ncols=ncols)


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
        every_n_epochs: evaluate after the first epoch of every `fit` call
            (also a resumed one), after every this many epochs, and after the
            last epoch of `fit`. The first so that `keras.callbacks.CSVLogger`,
            which fixes its columns at the first epoch it sees, has them (it
            writes NA for the epochs in between); a resumed run appending to
            its log.csv otherwise wrote rows without the metric columns under
            a header that has them.
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
    quality = QualityMetrics(kgan.data.load("mnist_5k", batch_size=250, shuffle=False),
                             kgan.evaluators.mnist_extractor(), metrics=("fid",),
                             every_n_epochs=5, num=2000)
    history = gan.fit(dataset, epochs=20, callbacks=[quality])
    print(quality.history)  # {1: {"fid": ..., "is_mean": ..., "is_std": ...}, 5: {...}, ...}
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
        self._first_epoch_of_fit = True

    def _keep(self):
        return bool({"kid", "pr"} & set(self.metric_names))

    def on_train_begin(self, logs=None):
        self._first_epoch_of_fit = True
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
        # The first epoch of this fit too: CSVLogger fixes its columns then. And
        # the last, so the final figure reaches the logs (CSV, history) too.
        last = self.params and epoch + 1 == self.params.get("epochs")
        if self._first_epoch_of_fit or (epoch + 1) % self.every_n_epochs == 0 or last:
            self._evaluate(epoch, logs)
        self._first_epoch_of_fit = False

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


# ---------------------------------------------------------------------- fault tolerance
class DivergenceError(FloatingPointError):
    """Training produced a NaN or Inf loss (or weights): it diverged.

    Raised by `StopOnDivergence` and `BackupAndRestore` *from inside* `fit`,
    so that no later callback runs: `fit` ends without `on_epoch_end` and
    `on_train_end`, and nothing saves (or deletes) a checkpoint afterwards.

    Attributes:
        epoch: 0-based epoch of the first non-finite value (or None).
        batch: 0-based batch within it (or None).
        step: 1-based train step since the start of training, counting the
            epochs of a resumed run's earlier process (or None).
        values: `{name: value}` of the non-finite logged values.
    """

    def __init__(self, message, epoch=None, batch=None, step=None, values=None):
        super().__init__(message)
        self.epoch, self.batch, self.step = epoch, batch, step
        self.values = dict(values or {})


def non_finite_variable(variables):
    """The path (or name) of the first floating-point variable holding NaN or Inf, else None.

    Example:

    ```python
    assert non_finite_variable(model.weights) is None
    ```
    """
    for variable in variables:
        if not keras.backend.is_float_dtype(variable.dtype):
            continue
        value = np.asarray(keras.ops.convert_to_numpy(variable)).astype(np.float32)
        if not np.isfinite(value).all():
            return getattr(variable, "path", None) or variable.name
    return None


def _state_variables(model):
    """The model's weights and its optimizers' variables: what a backup holds."""
    variables = list(model.weights)
    for name in ("optimizer", "g_optimizer", "d_optimizer"):
        optimizer = getattr(model, name, None)
        if optimizer is not None:
            variables += list(optimizer.variables)
    return variables


class StopOnDivergence(keras.callbacks.Callback):
    """Stop `fit` at the first NaN or Inf loss, before any checkpoint can save it.

    `keras.callbacks.TerminateOnNaN` is not enough for a run with
    `BackupAndRestore`: it only sets `model.stop_training`, after which `fit`
    still ends the epoch, so the backup callback saves the NaN weights at
    `on_epoch_end`, and then deletes its backup at `on_train_end` as if
    training had finished. This callback raises `DivergenceError` from
    `on_train_batch_end` instead: `fit` stops right there, no later callback
    runs, and the last backup (and any preset) keeps the last good weights.
    Put it before `BackupAndRestore` when that saves every few batches
    (`save_freq=N`), so a batch with a NaN loss is never saved.

    The logged values are running means over the epoch, so a non-finite
    value in any step (also inside a `steps_per_execution` group) shows at
    the end of that step or group.

    At the end of each epoch it also scans the model's weights and optimizer
    state for NaN or Inf (a few million values: milliseconds), and names the
    first bad variable. Finite losses do not prove finite weights: in graph
    mode TensorFlow fuses batch norm and ReLU (`FusedBatchNormV3` + `Relu`,
    as in kgan's DCGAN generators), and the fused kernel maps NaN to finite
    values, so a generator with NaN weights can train on with finite losses
    while `generate` returns NaN images.

    Args:
        monitor: names of the logged values to check; None checks every
            scalar in the batch logs (`d_loss`, `g_loss`, ...).

    Example:

    ```python
    try:
        gan.fit(data, epochs=20, callbacks=[kgan.callbacks.StopOnDivergence(),
                                            kgan.callbacks.BackupAndRestore("run/backup")])
    except kgan.callbacks.DivergenceError as err:
        print(err)  # training diverged at epoch 3/20, batch 17/40 (train step 97): d_loss=nan
    ```
    """

    def __init__(self, monitor=None):
        super().__init__()
        self.monitor = None if monitor is None else tuple(
            (monitor,) if isinstance(monitor, str) else monitor
        )
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        bad = {}
        for name, value in (logs or {}).items():
            if self.monitor is not None and name not in self.monitor:
                continue
            try:
                number = float(np.asarray(value))
            except (TypeError, ValueError):
                continue  # not a scalar
            if not np.isfinite(number):
                bad[name] = number
        if bad:
            raise self.error(batch, bad)

    def on_epoch_end(self, epoch, logs=None):
        bad = non_finite_variable(_state_variables(self.model))
        if bad is not None:
            epochs = self.params.get("epochs") if self.params else None
            where = f"epoch {epoch + 1}" + (f"/{epochs}" if epochs else "")
            raise DivergenceError(
                f"training diverged by the end of {where}: {bad} holds NaN or Inf (the "
                "logged losses can stay finite: a fused batch norm + ReLU maps NaN to finite "
                "values). Resume from the last backup, with a lower learning rate",
                epoch=epoch,
            )

    def error(self, batch, values):
        """The `DivergenceError` for non-finite `values` at `batch` of the current epoch."""
        epochs = self.params.get("epochs") if self.params else None
        steps = self.params.get("steps") if self.params else None
        per_execution = int(getattr(self.model, "steps_per_execution", 1) or 1)
        # Keras reports a group of steps_per_execution steps by its last index
        # as if it were whole; an epoch's last group may hold fewer steps.
        first = max(batch - per_execution + 1, 0)
        if steps:
            batch = min(batch, steps - 1)
        step = self._epoch * steps + batch + 1 if steps else None
        where = f"epoch {self._epoch + 1}" + (f"/{epochs}" if epochs else "")
        where += f", batch {batch + 1}" + (f"/{steps}" if steps else "")
        if step is not None:
            where += f" (train step {step})"
        if batch > first:
            where += f", in its last {batch - first + 1} steps (steps_per_execution)"
        found = ", ".join(f"{name}={value}" for name, value in sorted(values.items()))
        return DivergenceError(
            f"training diverged at {where}: {found}", epoch=self._epoch, batch=batch,
            step=step, values=values,
        )


class BackupAndRestore(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` that survives SIGKILL and divergence, and
    resumes with the data order of an uninterrupted run.

    It backs up and restores everything `model.save_weights` holds: for a
    kgan model the networks, EMA generator, both optimizers (slots,
    iteration counts, so schedules continue), image pools, the ADA
    probability and the random streams' states (`GAN.random_state_variables`).
    Differences from the Keras callback:

    * **Atomic.** Each backup's weights go to a new file
      `ckpt-<epoch>-<batch>.weights.h5` (written under a temporary name,
      flushed and renamed), then `training_metadata.json`, which names that
      file, is replaced the same way; older files are deleted last. A kill at
      any moment leaves a complete, consistent backup. (Keras rewrites
      `latest.weights.h5` in place: a kill while saving corrupts the only
      backup.)
    * **Leaves the model as it found it.** Keras sets the model's starting
      epoch on restore and never clears it, so a later `fit` of the same
      model (without a backup) would start at the restored epoch; this
      callback clears it when training ends.
    * **Never saves non-finite state.** If a weight or optimizer slot is NaN
      or Inf when a backup is due, it raises `DivergenceError` and keeps the
      previous backup.
    * **Same data order.** A shuffled `tf.data` pipeline draws each epoch's
      order from a seed that advances with every iterator made from it, so
      in a new process epoch k would be shuffled like epoch 0. Given `data=`
      (the dataset passed to `fit`), after restoring k finished epochs it
      runs the pipeline through them (reading, not training) exactly as
      `fit` would, so epoch k sees the order it would have seen. That costs
      one pass over the input pipeline per finished epoch; pass `data=None`
      to skip it (training then continues with a different, equally random
      order). With `fit(..., steps_per_epoch=N)` (pass the same
      `steps_per_epoch` here) Keras reads an endless pipeline (e.g.
      `.repeat()`ed) with one iterator for all epochs; a kgan model's `fit`
      then skips the restored epochs' batches in the pipeline itself, which
      is exact, where this replay is not (other Keras models). A pipeline
      of known length is read anew when it runs out, which the replay
      follows: exact when `N` is its length. The replay assumes a dataset
      no `fit` has read yet, as in a new process: resuming in the *same*
      process with the same dataset object (a notebook re-run after Ctrl-C)
      is not exact (weights differed by up to 1.2e-3 after a few epochs),
      because the interrupted `fit` already moved its shuffle seeds and they
      cannot be set back; `fit` warns then. Build the dataset again and pass
      the new one to `fit` and `data=`: that resume is exact.

    Backups are taken per epoch by default; with `save_freq=N` (batches)
    Keras resumes at the start of the interrupted epoch with the weights of
    its batch N, so that epoch's first batches are trained twice: only
    per-epoch backups resume exactly. Backups written by the Keras callback
    (`latest.weights.h5`) are read too.

    Under `MultiWorkerMirroredStrategy`, `backup_dir` must be one folder
    all workers see (a shared file system): the chief writes it and every
    worker restores from it.

    Args:
        backup_dir: folder of the backup (used by this run only).
        save_freq: `"epoch"` or a number of batches.
        delete_checkpoint: delete the backup when `fit` ends normally.
            `kgan train` passes False and deletes it after the preset is
            written, so a kill in between still resumes.
        data: the `tf.data.Dataset` given to `fit`, to replay its order.
        steps_per_epoch: the `steps_per_epoch` given to `fit`, if any.

    Attributes:
        restored_epoch: number of finished epochs restored (None: nothing
            to restore; training starts fresh).

    Example:

    ```python
    backup = kgan.callbacks.BackupAndRestore("run/backup", data=dataset)
    gan.fit(dataset, epochs=20, callbacks=[kgan.callbacks.StopOnDivergence(), backup])
    # killed? the same two lines resume after the last finished epoch
    ```
    """

    #: file that names the current weights file and the epoch it ends.
    METADATA_FILE = "training_metadata.json"

    def __init__(self, backup_dir, save_freq="epoch", delete_checkpoint=True, data=None,
                 steps_per_epoch=None):
        super().__init__(os.fspath(backup_dir), save_freq=save_freq,
                         delete_checkpoint=delete_checkpoint)
        if data is not None and not isinstance(data, tf.data.Dataset):
            raise TypeError(f"data must be the tf.data.Dataset given to fit, got {type(data).__name__}.")
        self.data = data
        self.steps_per_epoch = steps_per_epoch
        self.restored_epoch = None
        # Set by kgan's GAN.fit when it skips the restored epochs' batches in
        # the pipeline itself (fit with steps_per_epoch: one iterator for all).
        self.replayed_by_fit = False

    @staticmethod
    def read_metadata(backup_dir):
        """The backup's `{"epoch", "batch", "weights"}`, or None if there is no backup."""
        import json
        from pathlib import Path

        folder = Path(backup_dir)
        path = folder / BackupAndRestore.METADATA_FILE
        if not path.is_file():
            return None
        metadata = json.loads(path.read_text())
        # Keras' own callback writes latest.weights.h5 and does not name it.
        metadata.setdefault("weights", "latest.weights.h5")
        if not (folder / metadata["weights"]).is_file():
            return None
        return metadata

    def _load_model(self):
        from pathlib import Path

        if not self.model.built:
            return super()._load_model()  # Keras' error message
        metadata = self.read_metadata(self.backup_dir)
        if metadata is None:
            return
        try:
            self.model.load_weights(Path(self.backup_dir) / metadata["weights"])
        except ValueError as err:
            raise ValueError(
                f"The backup in {self.backup_dir} does not fit this {type(self.model).__name__}: "
                "it was written by another model (e.g. another latent_dim, image size or "
                "architecture), or by a kgan whose networks used other layer classes (weight "
                "files name layers by class: CycleGAN discriminators before 2026-11-30). Finish "
                "that run with the kgan that started it, delete that folder to start afresh, or "
                f"give this run its own backup folder. Keras said: {err}"
            ) from err
        self.model._initial_epoch = int(metadata["epoch"])
        self._current_epoch = int(metadata["epoch"])
        self.restored_epoch = int(metadata["epoch"])

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        epochs = (self.params or {}).get("epochs")
        # Nothing to replay when the backup is already at the end (e.g. the
        # process was killed while the final preset was written).
        if self.data is not None and self.restored_epoch and not self.replayed_by_fit and (
            epochs is None or self.restored_epoch < epochs
        ):
            self._replay(self.restored_epoch)

    def _writes_backups(self):
        """Whether this process writes the backup: all but the non-chief workers of a cluster.

        Under `MultiWorkerMirroredStrategy` every worker holds the same
        state; two writers of one shared folder deleted each other's
        temporary files and crashed both. All workers restore from it.
        """
        return bool(getattr(self.model.distribute_strategy.extended, "should_checkpoint", True))

    def on_train_end(self, logs=None):
        if self._writes_backups():
            super().on_train_end(logs)  # deletes the backup when delete_checkpoint
        self.replayed_by_fit = False
        # fit() reads _initial_epoch before training; left set, the next fit
        # of this model would silently skip the restored number of epochs.
        self.model._initial_epoch = None

    def _replay(self, epochs):
        """Draw `epochs` epochs from `data` as `fit` does, to advance its shuffle seeds.

        Uses Keras' own epoch iterator, so the iterators are created exactly
        as in `fit` (it makes one ahead at the end of each epoch; each one
        advances the pipeline's seed generators).
        """
        from keras.src.backend.tensorflow.trainer import TFEpochIterator

        per_execution = int(getattr(self.model, "steps_per_execution", 1) or 1)
        iterator = TFEpochIterator(
            x=self.data, steps_per_epoch=self.steps_per_epoch, shuffle=False,
            distribute_strategy=self.model.distribute_strategy,
            steps_per_execution=per_execution,
        )
        iterator.reset()
        for epoch in range(epochs):
            with iterator.catch_stop_iteration():
                for _, end_step, data_iterator in iterator:
                    if per_execution == 1:  # what Keras' train function reads
                        data_iterator.get_next()
                    elif not data_iterator.get_next_as_optional().has_value():
                        raise StopIteration
                    else:
                        for _ in range(per_execution - 1):
                            if not data_iterator.get_next_as_optional().has_value():
                                break
                    if (self.steps_per_epoch and epoch == epochs - 1
                            and end_step + 1 >= self.steps_per_epoch):
                        # With steps_per_epoch, the iterator Keras makes ahead
                        # at an epoch's end is the next epoch's; fit makes that
                        # one itself, as it starts its first epoch.
                        break

    def _save_model(self):
        import json
        from pathlib import Path

        from kgan.atomic import make_dirs, write_file

        folder = Path(self.backup_dir)
        # On every worker, not only the one that writes: all hold the same
        # state, and a worker that went on alone would hang in the next step's
        # collectives waiting for the chief that stopped.
        bad = non_finite_variable(_state_variables(self.model))
        if bad is not None:
            previous = self.read_metadata(folder)
            kept = (f"the backup in {folder} keeps epoch {previous['epoch']}" if previous
                    else "no backup was written")
            raise DivergenceError(
                f"training diverged before epoch {self._current_epoch} was backed up: {bad} "
                f"holds NaN or Inf; {kept}", epoch=self._current_epoch,
            )
        if not self._writes_backups():
            return
        make_dirs(folder)
        name = f"ckpt-{self._current_epoch:06d}-{self._last_batch_seen:06d}.weights.h5"
        write_file(folder / name, lambda path: self.model.save_weights(path, overwrite=True))
        metadata = {"epoch": self._current_epoch, "batch": self._last_batch_seen, "weights": name}
        # The commit point: until this rename the previous metadata names the previous weights.
        write_file(folder / self.METADATA_FILE,
                   lambda path: Path(path).write_text(json.dumps(metadata)))
        for stale in list(folder.glob("ckpt-*.weights.h5")) + list(folder.glob("latest.weights.h5*")):
            if stale.name != name:
                stale.unlink(missing_ok=True)
        for leftover in folder.glob(".tmp-*"):  # of saves killed halfway
            if not leftover.name.startswith(f".tmp-{os.getpid()}-"):
                leftover.unlink(missing_ok=True)
