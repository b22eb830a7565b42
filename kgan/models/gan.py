"""The base class every kgan architecture subclasses.

`GAN` owns everything that is the same for all adversarial models, so that an
architecture only writes its `train_step`:

* construction from nested `generator` / `discriminator` Keras models, with
  `get_config` / `from_config` that serialize them (the keras-hub `Task`
  pattern), so `model.save("x.keras")` and `keras.models.load_model` work;
* `compile(g_optimizer=None, d_optimizer=None, **kwargs)` with the paper's
  optimizers as defaults, one optimizer per network, built on that network's
  variables (so `BackupAndRestore` and `.keras` files restore their state);
* loss trackers reported through `metrics`;
* input validation of the first batch, with errors that say what to change;
* randomness from a model-owned `keras.random.SeedGenerator`, folded with the
  replica id so replicas of a distribution strategy draw different latents;
* global-batch loss scaling and mixed-precision loss scaling;
* sampling helpers (`generate`, `generate_from_latents`, `interpolate`).
"""

import contextlib
import inspect
import math
import os
import re
import threading
import types
import warnings
import weakref

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from kgan import losses as kgan_losses
from kgan import ada as kgan_ada
from kgan.augment import DiffAugment, parse_policy
from kgan._checks import check_fits_in_memory, positive_int
from kgan.atomic import write_file
from kgan.data import without_teardown_stall
from kgan.optimizers import FusedAdam


#: the datasets `fit` has read in this process: their shuffle seeds have moved on
#: (see `kgan.callbacks.BackupAndRestore`, whose replay assumes they have not).
_DATASETS_READ_BY_FIT = weakref.WeakSet()

#: serializes draws from models' SeedGenerators outside tf.function (`latents(seed=None)`).
_UNSEEDED_DRAW_LOCK = threading.Lock()


class InputValidationError(ValueError):
    """Raised when data given to a model does not fit it.

    Training batches, latents for `generate_from_latents`, images for
    `translate` and class labels are checked before any TensorFlow op runs,
    so the message names the problem and the fix instead of a graph error.
    """


class InputDTypeError(InputValidationError, TypeError):
    """An `InputValidationError` about a dtype; also a `TypeError`, as Python code expects."""


def _serialize(obj):
    return keras.saving.serialize_keras_object(obj)


def _deserialize(config):
    if isinstance(config, dict) and "class_name" in config:
        return keras.saving.deserialize_keras_object(config)
    return config


#: marks the run-time batch checks, so `fit` can report them as InputValidationError.
_RUNTIME_CHECK_MARK = "kgan input check: "
_RUNTIME_CHECK_PATTERN = re.compile(r"\[" + re.escape(_RUNTIME_CHECK_MARK) + r"([^\]]*)\]")
_PY_FUNC_CHECK_PATTERN = re.compile(r"^(InputValidationError|InputDTypeError): (.+)$", re.M)


def checked_at_run_time(tensor, assertion, message):
    """`tensor`, after `assertion(message=...)` passes when the step runs.

    For batch checks that need a size only known at run time (pipelines
    without `drop_remainder=True`). `GAN.fit` re-raises a failure as an
    `InputValidationError` carrying `message`, not TensorFlow's graph error.
    `message` must not contain "]".

    Example:

    ```python
    images = checked_at_run_time(
        images,
        lambda message: tf.debugging.assert_positive(tf.shape(images)[0], message=message),
        "The batch is empty: lower the batch size",
    )
    ```
    """
    check = assertion(message=_RUNTIME_CHECK_MARK + message)
    with tf.control_dependencies([check]):
        return tf.identity(tensor)


_EMPTY_REPLICA_MESSAGE = (
    "A replica would get no examples: a batch (the epoch's last, partial one) held fewer "
    "examples than the strategy's {replicas} replicas. Batch the pipeline with "
    "drop_remainder=True (kgan.data.load does), so every batch splits over the replicas"
)


def _input_check_failure(error):
    """The `InputValidationError` a failed input check means, or None.

    Either a `checked_at_run_time` assertion, or a kgan check that raised in
    Python while tf.data read a generator or `PyDataset` (TensorFlow passes
    it on as an InvalidArgumentError of its `PyFunc` op, with the original
    error's type and message on a line of their own).
    """
    message = str(getattr(error, "message", error))
    found = _RUNTIME_CHECK_PATTERN.search(message)
    if found:
        # TensorFlow prints the assertion's message with its quotes escaped.
        return InputValidationError(found.group(1).replace("\\'", "'").replace('\\"', '"') + ".")
    found = _PY_FUNC_CHECK_PATTERN.search(message)
    if found:
        error_type = InputDTypeError if found.group(1) == "InputDTypeError" else InputValidationError
        return error_type(found.group(2))
    return None


@contextlib.contextmanager
def _input_check_failures_raised():
    """Within the block, a failed input check (`_input_check_failure`) is raised as
    its `InputValidationError` instead of TensorFlow's InvalidArgumentError."""
    try:
        yield
    except tf.errors.InvalidArgumentError as error:
        failure = _input_check_failure(error)
        if failure is None:
            raise
        raise failure from error


#: key prefix of the random-stream states in a weights file (`GAN.save_own_variables`).
_RANDOM_STATE_KEY = "random_state_"


class _StoreWithout:
    """A read-only view of a Keras weights store without some keys."""

    def __init__(self, store, hidden):
        self._store, self._hidden = store, set(hidden)

    def keys(self):
        return [k for k in self._store.keys() if str(k) not in self._hidden]

    def __len__(self):
        return len(self.keys())

    def __contains__(self, key):
        return key not in self._hidden and key in self._store

    def __getitem__(self, key):
        return self._store[key]


@keras.saving.register_keras_serializable(package="kgan")
class GAN(keras.Model):
    """Base class of kgan's adversarial models.

    Subclasses override `train_step`, ending it with `return
    self.report_losses(...)` (and `default_optimizers`, `loss_names` when
    they differ). The generator maps latents `[B, latent_dim]` to images
    `[B, H, W, C]` in [-1, 1]; the discriminator maps images to logits `[B, 1]`.

    Args:
        generator: a built `keras.Model` from latents to images.
        discriminator: a built `keras.Model` from images to logits.
        seed: optional int seeding the model's random stream (latents drawn
            during training and by `generate(seed=None)`).
        ema_decay: if set (e.g. 0.999), keep `ema_generator`, an exponential
            moving average of the generator's weights (Yazici et al. 2019),
            updated after every generator step. `generate`, `call`, presets
            and export then use it: averaged weights give smoother, less
            oscillating samples at no training cost.
        augment: DiffAugment policy (e.g. `"color,translation,cutout"`)
            applied to real and fake images before the discriminator in both
            updates (Zhao et al. 2020); helps most on small datasets. Or
            `"ada"`: adaptive discriminator augmentation (Karras et al. 2020,
            `kgan.ada.AdaptiveAugment`), whose probability `p` follows the
            overfitting heuristic `r_t = E[sign(D(x_real) - ada_center)]`;
            `fit` then logs `ada_p` and `ada_rt`. The two cannot be combined.
        ada_target: with `augment="ada"`, the `r_t` to hold, in (0, 1) (0.6).
        ada_kimg: with `augment="ada"`, thousands of real images over which
            `p` may go from 0 to 1 (500, StyleGAN2-ADA's default).
        ada_interval: with `augment="ada"`, discriminator updates between
            adjustments of `p` (4).
        **kwargs: passed to `keras.Model` (e.g. `name`).

    Example:

    ```python
    gan = kgan.models.DCGAN.from_image_shape((28, 28, 1), latent_dim=64)
    gan.compile()
    gan.fit(kgan.data.load("mnist_5k", batch_size=64), epochs=1)
    images = gan.generate(16, seed=0)  # float32, [-1, 1]
    ```
    """

    #: names of the loss trackers, in the order `fit` reports them.
    loss_names = ("d_loss", "g_loss")

    #: how many minibatches one train_step consumes; pipelines use
    #: `repeat_batches=model.batches_per_step` (1 here and for DCGAN;
    #: `n_critic` for WGAN and WGAN-GP, whose critic takes several steps).
    batches_per_step = 1

    #: whether the model trains on labels (`fit(x, y)`); an unconditional GAN
    #: refuses `y`, and ignores the labels of `(x, y)` dataset batches.
    takes_labels = False

    #: where ADA's overfitting heuristic takes the sign of the discriminator's
    #: real outputs: 0 for logits (the non-saturating loss here and in DCGAN;
    #: also right for hinge); CycleGAN's least-squares outputs (targets 0/1)
    #: use 0.5; Wasserstein critics use "midpoint" (see `kgan.ada`).
    ada_center = 0.0

    def __init__(
        self, generator, discriminator, seed=None, ema_decay=None, augment=None,
        ada_target=0.6, ada_kimg=500, ada_interval=4, **kwargs
    ):
        super().__init__(**kwargs)
        for role, net in (("generator", generator), ("discriminator", discriminator)):
            if not isinstance(net, keras.Model):
                raise TypeError(
                    f"`{role}` must be a keras.Model, got {type(net).__name__}. "
                    "Build it with kgan.networks or the Keras functional API."
                )
            if not net.built:
                raise ValueError(
                    f"`{role}` is not built. Pass a functional model or call "
                    "it once on a batch before building the GAN."
                )
        self.generator = generator
        self.discriminator = discriminator
        self.seed = seed
        if ema_decay is not None and not 0.0 < float(ema_decay) < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1), e.g. 0.999; got {ema_decay}.")
        self.ema_decay = None if ema_decay is None else float(ema_decay)
        self.ema_generator = None
        if self.ema_decay is not None:
            self.ema_generator = keras.models.clone_model(generator)
            self.ema_generator.set_weights(generator.get_weights())
        self.seed_generator = keras.random.SeedGenerator(seed, name="latent_seed")
        # Checked even without ADA: a bad value is a mistake either way.
        self.ada_target = kgan_ada.check_target(ada_target)
        self.ada_kimg = kgan_ada.check_kimg(ada_kimg)
        self.ada_interval = kgan_ada.check_interval(ada_interval)
        self.ada = None
        self._ada_readouts = []
        if kgan_ada.is_ada(augment):
            # The generator's output rank, not `image_shape`: subclasses (CycleGAN)
            # may not be able to compute that before their own __init__ finishes.
            if len(generator.outputs[0].shape) != 4:
                raise ValueError(
                    f"augment='ada' applies image transforms, but this model's data has "
                    f"shape {tuple(generator.outputs[0].shape[1:])}, not (H, W, C) "
                    "images. Pass augment=None for non-image data."
                )
            self.augment = "ada"
            self.ada = self._new_adaptive_augment("ada")
            self._ada_readouts = self._make_ada_readouts()
        else:
            self.augment = parse_policy(augment)
        if self.augment and self.ada is None and len(self.image_shape) != 3:
            raise ValueError(
                f"augment={augment!r} applies DiffAugment's image transforms, but "
                f"this model's data has shape {self.image_shape}, not (H, W, C) "
                "images. Pass augment=None for non-image data."
            )
        self.augmenter = DiffAugment(self.augment) if self.augment and self.ada is None else None
        self.loss_trackers = [keras.metrics.Mean(name=n) for n in self.loss_names]
        self.g_optimizer = None
        self.d_optimizer = None
        self._compile_kwargs = {}
        self._inference_fn = None
        # Nested networks are built, so the GAN is: BackupAndRestore and
        # weight loading refuse unbuilt models.
        self.built = True

    # ------------------------------------------------------------------ shapes
    @property
    def latent_dim(self):
        """Size of the latent vector the generator takes."""
        shape = self.generator.inputs[0].shape
        return int(shape[-1])

    @property
    def image_shape(self):
        """`(H, W, C)` of generated (and expected real) images.

        For non-image data (MLP networks on 2-D points) it is the data shape,
        e.g. `(2,)`.
        """
        return tuple(int(d) for d in self.generator.outputs[0].shape[1:])

    # ------------------------------------------------------------------ config
    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "generator": _serialize(self.generator),
                "discriminator": _serialize(self.discriminator),
                "seed": self.seed,
                "ema_decay": self.ema_decay,
                "augment": self.augment,
                "ada_target": self.ada_target,
                "ada_kimg": self.ada_kimg,
                "ada_interval": self.ada_interval,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("generator", "discriminator"):
            config[key] = _deserialize(config[key])
        return cls(**config)

    # ------------------------------------------------------------------ random state
    #: whether `save_own_variables` writes the random streams' states (below).
    #: `kgan.zoo.portable_copy` turns it off: a preset is a portable copy
    #: without training state, in the weights layout of earlier versions.
    save_random_state = True

    def random_state_variables(self):
        """The state variables of every `keras.random.SeedGenerator` in the model.

        The model's own stream (latents, augmentation, penalty and pool draws)
        and those of nested layers (e.g. `Dropout`), in a fixed order. Keras
        does not count them as weights, so without `save_own_variables` below,
        `.keras` files and `BackupAndRestore` backups would not hold them and
        a resumed run would draw the latents of step 0 again.
        """
        states, seen = [], set()
        for layer in self._flatten_layers(include_self=True, recursive=True):
            for generator in getattr(layer, "_seed_generators", ()):
                if id(generator.state) not in seen:
                    seen.add(id(generator.state))
                    states.append(generator.state)
        return states

    def save(self, filepath, overwrite=True, zipped=None, **kwargs):
        """Keras's `Model.save`, written beside `filepath` and renamed into place.

        A crash or kill while saving leaves the previous `.keras` file intact
        (kgan's reliability guarantee for weight files). Remote paths
        (`scheme://...`) and `zipped=False` folders are written by Keras
        directly.

        Example:

        ```python
        gan.save("run/dcgan.keras")
        ```
        """
        _refuse_legacy_h5(filepath, False, f"{type(self).__name__}.save()")
        if zipped is False or "://" in str(filepath):
            return super().save(filepath, overwrite=overwrite, zipped=zipped, **kwargs)
        if not self._may_overwrite(filepath, overwrite):
            return None
        self._write_atomically(filepath, lambda path: super(GAN, self).save(
            path, overwrite=True, zipped=zipped, **kwargs))
        return None

    def save_weights(self, filepath, overwrite=True, max_shard_size=None):
        """Keras's `Model.save_weights`, written beside `filepath` and renamed into place.

        As `save`: the previous weight file survives a failed or killed save.
        Sharded saves (`max_shard_size`) write several files and are left to
        Keras.

        Example:

        ```python
        gan.save_weights("run/dcgan.weights.h5")
        ```
        """
        if max_shard_size is not None or "://" in str(filepath):
            return super().save_weights(filepath, overwrite=overwrite, max_shard_size=max_shard_size)
        if not self._may_overwrite(filepath, overwrite):
            return None
        self._write_atomically(
            filepath, lambda path: super(GAN, self).save_weights(path, overwrite=True))
        return None

    @staticmethod
    def _write_atomically(filepath, write):
        """`write(path)` to a temporary sibling, renamed onto `filepath`; Keras's
        errors (e.g. a wrong file extension) name the user's path, not the temporary one."""

        def write_temporary(path):
            try:
                write(path)
            except ValueError as err:
                raise ValueError(str(err).replace(str(path), str(filepath))) from None

        write_file(filepath, write_temporary)

    @staticmethod
    def _may_overwrite(filepath, overwrite):
        """Keras's rule: an existing file is replaced only if `overwrite` or the user agrees."""
        if overwrite or not os.path.exists(filepath):
            return True
        from keras.src.utils import io_utils

        return io_utils.ask_to_proceed_with_overwrite(str(filepath))

    def save_own_variables(self, store):
        """Keras' own variables, then the random-stream states (`random_state_variables`)."""
        super().save_own_variables(store)
        if self.save_random_state:
            for i, variable in enumerate(self.random_state_variables()):
                store[f"{_RANDOM_STATE_KEY}{i}"] = variable

    def load_own_variables(self, store):
        """Load what `save_own_variables` wrote; files without random states load too.

        Presets and files written before kgan saved the states leave the
        streams at their seeded start.
        """
        keys = [str(k) for k in store.keys()]
        random_keys = {k for k in keys if k.startswith(_RANDOM_STATE_KEY)}
        super().load_own_variables(_StoreWithout(store, random_keys))
        if not random_keys:
            return
        states = self.random_state_variables()
        if len(states) != len(random_keys):
            import warnings

            warnings.warn(
                f"{self.name}: the weights file holds {len(random_keys)} random-stream "
                f"states but the model has {len(states)}; the streams start from their "
                "seeds instead.",
                stacklevel=2,
            )
            return
        for i, variable in enumerate(states):
            variable.assign(store[f"{_RANDOM_STATE_KEY}{i}"])

    # ------------------------------------------------------------------ compile
    @classmethod
    def default_optimizers(cls):
        """The paper's optimizers as `(g_optimizer, d_optimizer)`.

        The base uses DCGAN's Adam(2e-4, beta_1=0.5) for both networks, as
        `kgan.optimizers.FusedAdam` (Adam's math in one kernel per weight).
        """
        return (
            FusedAdam(2e-4, beta_1=0.5),
            FusedAdam(2e-4, beta_1=0.5),
        )

    def compile(self, g_optimizer=None, d_optimizer=None, **kwargs):
        """Configure training with one optimizer per network.

        Args:
            g_optimizer: generator optimizer (instance, name or config);
                `None` takes the paper default from `default_optimizers()`.
            d_optimizer: discriminator optimizer, likewise.
            **kwargs: passed to `keras.Model.compile` (`jit_compile`,
                `steps_per_execution`, `run_eagerly`). `optimizer`, `loss` and
                `metrics` are refused: a GAN's losses are part of its
                architecture and it has two optimizers.

        Under a `mixed_float16` policy both optimizers are wrapped in
        `keras.optimizers.LossScaleOptimizer` (Keras only wraps
        `self.optimizer`, which a GAN does not use), unless
        `auto_scale_loss=False`, as in Keras.

        Example:

        ```python
        gan.compile(jit_compile=True, steps_per_execution=10)
        ```
        """
        for key in ("optimizer", "loss", "metrics", "loss_weights", "weighted_metrics"):
            if kwargs.get(key) is not None:
                raise TypeError(
                    f"{type(self).__name__}.compile() does not take `{key}`: "
                    "pass `g_optimizer=` and `d_optimizer=`; the losses are "
                    "fixed by the architecture."
                )
            kwargs.pop(key, None)
        # Only an instance can be shared: a name or config given for both
        # resolves to a fresh optimizer per network below.
        if g_optimizer is not None and g_optimizer is d_optimizer and isinstance(
            g_optimizer, keras.optimizers.Optimizer
        ):
            raise ValueError(
                "g_optimizer and d_optimizer are the same object; a Keras 3 "
                "optimizer only updates the variables it was built with. "
                "Pass two optimizer instances."
            )
        if kwargs.get("steps_per_execution") is not None:
            # Keras takes any value here, then fails in fit ("range() arg 3 must not
            # be zero"), or with a negative one trains no step and says nothing.
            try:
                kwargs["steps_per_execution"] = positive_int(
                    kwargs["steps_per_execution"], "steps_per_execution")
            except (TypeError, ValueError) as err:
                raise type(err)(
                    f"{err} It is how many batches each call of fit's step function "
                    "trains: pass an int such as 1 (Keras's default) or 10."
                ) from None
        check_compile_settings(self.distribute_strategy, kwargs.get("steps_per_execution"),
                               kwargs.get("jit_compile"))
        # Optimizers bind to the strategy in scope when they are created.
        with self.distribute_strategy.scope():
            default_g, default_d = self.default_optimizers()
            scale = kwargs.get("auto_scale_loss", True)
            g_optimizer = self._resolve_optimizer(g_optimizer, default_g, "g_optimizer", scale)
            d_optimizer = self._resolve_optimizer(d_optimizer, default_d, "d_optimizer", scale)
            super().compile(optimizer=None, **kwargs)
            self._compile_kwargs = dict(kwargs)
            self.g_optimizer = g_optimizer
            self.d_optimizer = d_optimizer
            self._build_optimizers()
        self._inference_fn = None

    def _build_optimizers(self):
        """Build each optimizer on its network's variables.

        Subclasses with more networks (CycleGAN) override this. Building now,
        not at the first step, is what lets `BackupAndRestore` and `.keras`
        loading restore the optimizer slots.
        """
        self.g_optimizer.build(self.generator.trainable_variables)
        self.d_optimizer.build(self.discriminator.trainable_variables)

    def _resolve_optimizer(self, value, default, argname, auto_scale_loss=True):
        if value is None:
            value = default
        try:
            optimizer = keras.optimizers.get(value)
        except (ValueError, TypeError) as err:
            raise ValueError(
                f"Could not interpret {argname}={value!r}: {err}. Pass a "
                "keras.optimizers.Optimizer instance, a name such as 'adam', "
                "or None for the paper default."
            ) from err
        if getattr(optimizer, "built", False):
            raise ValueError(
                f"{argname} is already built on other variables; pass a fresh "
                "optimizer instance (Keras 3 optimizers are bound to the "
                "variables they were built with)."
            )
        if auto_scale_loss and (self.dtype_policy.name == "mixed_float16"
                                or self.generator.dtype_policy.name == "mixed_float16"):
            if not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        return optimizer

    def get_compile_config(self):
        if not self.compiled:
            return {}
        config = {
            "g_optimizer": _serialize(self.g_optimizer),
            "d_optimizer": _serialize(self.d_optimizer),
        }
        config.update(self._compile_kwargs)
        return config

    def compile_from_config(self, config):
        config = dict(config)
        g_optimizer = _deserialize(config.pop("g_optimizer", None))
        d_optimizer = _deserialize(config.pop("d_optimizer", None))
        # A model saved on one device and loaded under a strategy that cannot
        # run its settings: loading must not fail (the user never called
        # compile here), and compile=False would drop the optimizer state.
        for key, check, runs_with in (("steps_per_execution", _check_steps_per_execution, 1),
                                      ("jit_compile", _check_jit_compile, False)):
            try:
                check(config.get(key), self.distribute_strategy)
            except ValueError as err:
                warnings.warn(
                    f"{type(self).__name__} was saved with {key}={config[key]}, which cannot run "
                    f"here: {err} Loaded with {key}={runs_with} (optimizer state kept).",
                    stacklevel=2,
                )
                config[key] = runs_with
        self.compile(g_optimizer=g_optimizer, d_optimizer=d_optimizer, **config)

    # ------------------------------------------------------------------ metrics
    @property
    def metrics(self):
        # ADA's p and r_t are read-outs of its state (not running means).
        return list(self.loss_trackers) + list(self._ada_readouts)

    def report_losses(self, **losses):
        """Record a train step's losses; `train_step` returns what this returns.

        Every `train_step` ends with `return self.report_losses(...)`, given
        one scalar per name in `loss_names` (e.g. `d_loss=..., g_loss=...`).
        Besides updating the loss trackers `fit` logs, it does what every step
        needs at its end: it averages batch-norm statistics over the replicas
        of a strategy (`sync_batchnorm_statistics`) and, with `augment="ada"`,
        checks that the step fed ADA (`observe_discriminator`). Returns the
        logs, `{name: running mean}` for `metrics`.

        Raises:
            ValueError: (when the step is traced) a name is not in
                `loss_names`, or one of them is missing.

        Example:

        ```python
        # the last line of a train_step; the class sets loss_names = ("d_loss", "g_loss")
        return self.report_losses(d_loss=tf.reduce_mean(d_loss), g_loss=tf.reduce_mean(g_loss))
        ```
        """
        unknown = [name for name in losses if name not in self.loss_names]
        missing = [name for name in self.loss_names if name not in losses]
        if unknown or missing:
            problem = (f"got {', '.join(map(repr, unknown))}, not in" if unknown
                       else f"got no {', '.join(map(repr, missing))}, named in")
            raise ValueError(
                f"{type(self).__name__}.train_step: report_losses() {problem} the class's "
                f"loss_names {tuple(self.loss_names)}. Report each of loss_names once per "
                "step, and list every loss the step reports in loss_names (a class "
                "attribute: fit logs one tracker per name)."
            )
        for _, ada in self._ada_named():
            ada.check_observed(type(self).__name__)
        # Every train_step ends here: the replicas' batch-norm statistics too.
        self.sync_batchnorm_statistics()
        for tracker in self.loss_trackers:
            value = tf.convert_to_tensor(losses[tracker.name])
            # Keras ends an epoch of a pipeline of unknown length (a finite Python
            # generator, a filtered dataset) with a call whose data runs out. A Mean's
            # count does not depend on the value, so it counted that call too and the
            # epoch's logged loss took in a zero (3 steps logged 3/4 of their mean).
            with tf.control_dependencies([value]):
                tracker.update_state(value)
        logs = {m.name: m.result() for m in self.metrics}
        strategy = tf.distribute.get_strategy()
        if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and getattr(
            strategy.extended, "_in_multi_worker_mode", lambda: False
        )():
            # Keras 3 reduces fit's logs across workers with strategy.reduce("MEAN",
            # v, axis=0), which fails on scalars (tensorflow/tensorflow#72388):
            # a [1] axis makes that the mean over all replicas, a scalar again.
            logs = {name: tf.reshape(value, [1]) for name, value in logs.items()}
        return logs

    def sync_batchnorm_statistics(self):
        """Average batch-norm moving statistics over the replicas of a strategy.

        Keras 3 creates `moving_mean` / `moving_variance` with aggregation
        "none": under a `tf.distribute` strategy each replica updates only its
        own copy from its own share of the batch, so the copies drift apart
        (under `MultiWorkerMirroredStrategy` every worker would then sample and
        save different networks). Called in replica context at the end of each
        step (`report_losses` does), this all-reduces them to their mean, as Keras 2
        did by aggregating them with MEAN. A no-op with one replica and for
        `synchronized=True` layers, whose statistics are already global.

        Example:

        ```python
        # at the end of a custom train_step (kgan's own call it through report_losses)
        self.sync_batchnorm_statistics()
        ```
        """
        context = tf.distribute.get_replica_context()
        if context is None or context.num_replicas_in_sync == 1:
            return
        # The underlying tf.Variables: reductions and updates act on those.
        variables = [
            variable.value
            for layer in self._flatten_layers()
            if isinstance(layer, keras.layers.BatchNormalization) and not layer.synchronized
            for variable in (layer.moving_mean, layer.moving_variance)
        ]
        if not variables:
            return

        def average(strategy, values):
            # reduce_to the variables themselves, as optimizers do with gradients:
            # ReplicaContext.all_reduce fails under MultiWorkerMirroredStrategy
            # with one device per worker ("destinations can not be empty").
            means = strategy.extended.batch_reduce_to(
                tf.distribute.ReduceOp.MEAN, list(zip(values, variables))
            )
            for variable, mean in zip(variables, means):
                strategy.extended.update(
                    variable, lambda v, m: v.assign(m), args=(mean,), group=False
                )

        context.merge_call(average, args=([tf.identity(v) for v in variables],))

    # ------------------------------------------------------------------ inputs
    def _dict_batch_error(self, data):
        """The error for a batch that is a dict (a tensorflow-datasets element)."""
        return InputValidationError(
            f"Got a dict batch (keys {', '.join(map(repr, sorted(data)))}); kgan models take "
            "images `x` or `(x, y)` tuples. Map the dataset with `lambda d: d['image']`."
        )

    def _split_batch(self, data):
        """Return `(images, labels_or_None)` from `x`, `(x,)` or `(x, y)`."""
        if isinstance(data, dict):
            raise self._dict_batch_error(data)
        data = _without_absent_parts(data)
        if isinstance(data, (tuple, list)):
            if not data:
                raise InputValidationError("Got an empty batch tuple.")
            if len(data) > 2:
                # Keras reads a third element as sample weights; a GAN's losses take none.
                raise InputValidationError(
                    f"Got a batch of {len(data)} parts; kgan models take images `x` or "
                    "`(x, y)` tuples and weight no examples (a third part would be Keras's "
                    "sample weights, which a GAN's losses do not use). Drop the weights "
                    "from the batches."
                )
            images = data[0]
            labels = data[1] if len(data) > 1 else None
        else:
            images, labels = data, None
        self._check_image_spec(images.shape, images.dtype)
        return self._checked_replica_batch(images), labels

    def _checked_replica_batch(self, images):
        """`images`, checked at run time to hold examples on every replica.

        A batch of unknown size (a pipeline without `drop_remainder=True`)
        may end an epoch with fewer examples than a strategy has replicas.
        The replicas left with none would fail deep inside a layer, or make
        NaN losses and statistics; this stops the step before anything is
        updated, with what to change. A no-op on one device and for batches
        of a known size.
        """
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        if replicas == 1 or images.shape[0] is not None:
            return images
        return checked_at_run_time(
            images,
            lambda message: tf.debugging.assert_positive(tf.shape(images)[0], message=message),
            _EMPTY_REPLICA_MESSAGE.format(replicas=replicas),
        )

    def _check_image_spec(self, shape, dtype):
        """Static checks of a batch's shape and dtype (run at trace time)."""
        expected = self.image_shape
        shape = tuple(shape)
        if len(expected) != 3:
            # Non-image data (e.g. 2-D points for MLP GANs): rank and size only.
            if len(shape) != len(expected) + 1 or any(
                d is not None and int(d) != e for d, e in zip(shape[1:], expected)
            ):
                raise InputValidationError(
                    f"{type(self).__name__} expects batches of shape "
                    f"[batch, {', '.join(map(str, expected))}], got {shape}."
                    f"{_rank_hint(shape, expected, 'example')}"
                )
            if not tf.as_dtype(dtype).is_floating:
                raise InputValidationError(
                    f"Data must be floating point, got dtype {tf.as_dtype(dtype).name}."
                )
            return
        if len(shape) != 4:
            raise InputValidationError(
                f"{type(self).__name__} expects image batches of rank 4 "
                f"[batch, {expected[0]}, {expected[1]}, {expected[2]}], got "
                f"shape {shape}.{_rank_hint(shape, expected, 'image')}"
            )
        dims = tuple(None if d is None else int(d) for d in shape[1:])
        if any(d is not None and d != e for d, e in zip(dims, expected)):
            raise InputValidationError(
                f"{type(self).__name__} was built for images of shape "
                f"{expected}, got batches of shape {dims}. Resize the data "
                "(kgan.data.load(..., image_size=...)) or build the model for "
                "this shape."
            )
        dtype = tf.as_dtype(dtype)
        if not dtype.is_floating:
            raise InputValidationError(
                f"Images must be floating point in [-1, 1], got dtype "
                f"{dtype.name}. Convert with `kgan.images.from_uint8` or "
                "`tf.cast(x, 'float32') / 127.5 - 1`."
            )

    def _check_batch_divides(self, size, per_replica=False):
        """Raise unless a batch of `size` splits into `batches_per_step` minibatches."""
        steps = self.batches_per_step
        if size is None or int(size) % steps == 0:
            return
        where = " per replica" if per_replica else ""
        name = "n_critic" if hasattr(self, "n_critic") else "batches_per_step"
        raise InputValidationError(
            f"{type(self).__name__} splits each batch into {name}={steps} "
            f"minibatches (one per update), but got a batch of {int(size)} "
            f"examples{where}, which is not a multiple of {steps}. Build the "
            f"pipeline with kgan.data.load(..., batch_size=B, repeat_batches={steps}) "
            f"(repeat_batches=model.batches_per_step), which yields batches of "
            f"{steps} * B; fit(x=array) needs batch_size a multiple of {steps}."
        )

    def _check_first_batch_splits_evenly(self, size):
        """Raise unless a dataset's first global batch splits evenly over the replicas.

        Keras builds the model's metrics from the first batch by adding the
        replicas' parts, which fails with a shape error in TensorFlow when
        they differ in size (e.g. 33 examples on 2 replicas: 17 and 16), for
        any Keras model. Later uneven batches (a last partial batch) train.
        """
        replicas = self.distribute_strategy.num_replicas_in_sync
        if size is None or replicas < 2 or int(size) % replicas == 0:
            return
        size = int(size)
        lower, upper = size // replicas * replicas, -(-size // replicas) * replicas
        raise InputValidationError(
            f"The first batch holds {size} examples, which do not split evenly over the "
            f"strategy's {replicas} replicas; Keras cannot build a model from uneven parts. "
            f"Use a global batch size that is a multiple of {replicas} (e.g. "
            f"{lower or upper} or {upper}); a last partial batch may stay uneven."
        )

    def _check_array_batches(self, num, fit_args, fit_kwargs):
        """For `fit(x=array)`: every batch `fit` cuts must split over the
        strategy's replicas and into minibatches.

        `fit_args` and `fit_kwargs` are `fit`'s after `x` and `y` (the batch
        size is the first). The last batch holds `num % batch_size` examples;
        had it failed, it would fail at the end of the epoch, after its steps
        were trained and before any callback (a checkpoint) ran.
        """
        batch_size = fit_kwargs.get("batch_size", fit_args[0] if fit_args else None)
        batch_size = batch_size or 32  # Keras's default
        last = num % batch_size
        replicas = self.distribute_strategy.num_replicas_in_sync
        if 0 < last < replicas:
            raise InputValidationError(
                f"fit(x=array) cuts {num} examples into batches of {batch_size}; the last "
                f"holds {last}, fewer than the strategy's {replicas} replicas, so a replica "
                f"would get no examples. Pass {num - last} examples (x[:{num - last}]), or a "
                "tf.data pipeline batched with drop_remainder=True."
            )
        if self.batches_per_step == 1:
            return
        self._check_batch_divides(min(batch_size, num))
        if last and last % self.batches_per_step:
            raise InputValidationError(
                f"fit(x=array) cuts {num} examples into batches of {batch_size}; the last "
                f"holds {last}, which does not split into n_critic={self.batches_per_step} "
                f"minibatches. Pass {num - last} examples (x[:{num - last}]), or a tf.data "
                f"pipeline from kgan.data (repeat_batches={self.batches_per_step}, "
                "drop_remainder=True)."
            )

    def evaluate(self, *args, **kwargs):
        """Refused: a GAN's losses are no measure of quality (see `fit`)."""
        self._refuse_evaluation("evaluate")

    def test_on_batch(self, *args, **kwargs):
        """Refused, as `evaluate`: a GAN's losses are no measure of quality."""
        self._refuse_evaluation("test_on_batch")

    def _refuse_evaluation(self, method):
        raise NotImplementedError(
            f"{type(self).__name__}.{method}() is not a GAN's measure of quality: its losses "
            "only compare the two networks. Use kgan.evaluation.evaluate (FID, KID, "
            "precision/recall) or `kgan evaluate` on a saved preset."
        )

    def split_minibatches(self, images):
        """Split a training batch into `batches_per_step` minibatches.

        Minibatch `k` holds examples `k, k + n, k + 2n, ...` (n =
        `batches_per_step`). The pipeline shuffles, so this is as random as
        contiguous slices; unlike them it is invariant to how a distribution
        strategy splits the global batch: each replica gets a contiguous slice
        whose strided minibatches are exactly its shares of the global ones,
        so R replicas make the same updates as one device.

        Raises:
            InputValidationError: (at trace time) if the batch size is not a
                multiple of `batches_per_step`.
        """
        steps = self.batches_per_step
        if steps == 1:
            return [images]
        context = tf.distribute.get_replica_context()
        per_replica = context is not None and context.num_replicas_in_sync > 1
        self._check_batch_divides(images.shape[0], per_replica=per_replica)
        if images.shape[0] is None:  # unknown until run time: check it then
            images = checked_at_run_time(  # before the reshape fails
                images,
                lambda message: tf.debugging.assert_equal(
                    tf.math.floormod(tf.shape(images)[0], steps), 0, message=message),
                f"A batch (the epoch's last, partial one?) is not a multiple of "
                f"batches_per_step={steps}: use kgan.data.load(..., repeat_batches={steps}) "
                "with drop_remainder=True",
            )
        grouped = tf.reshape(images, tf.concat([[-1, steps], tf.shape(images)[1:]], axis=0))
        size = None if images.shape[0] is None else images.shape[0] // steps
        minibatches = []
        for k in range(steps):
            minibatch = grouped[:, k]
            minibatch.set_shape((size,) + tuple(images.shape[1:]))
            minibatches.append(minibatch)
        return minibatches

    def check_values(self, images):
        """Check a concrete batch is floating point and within [-1, 1].

        `fit` calls this on the first batch; values in [0, 255] are the
        usual mistake and get an error with the fix, values all in [0, 1] a
        warning with the fix (see `kgan.images.check_value_range`).
        """
        from kgan.images import check_value_range

        self._check_image_spec(images.shape, images.dtype)
        if len(self.image_shape) == 3:  # the [-1, 1] convention is for images
            check_value_range(images, error=InputValidationError)

    def _peek_first_batch(self, x):
        """`(first batch or None, x)`: the batch `fit` checks, and `x` to train on.

        A `tf.data.Dataset` gives its first element and a `keras.utils.PyDataset`
        its batch 0; an array or tensor is its own "batch". A Python generator
        is read once, and the `x` returned yields that batch again before the
        rest, so nothing is lost. Anything else gives None (not checked).
        """
        if isinstance(x, tf.data.Dataset):
            for batch in x.take(1):
                return batch, x
            raise InputValidationError(
                "The training dataset is empty. With drop_remainder=True, a "
                "dataset smaller than one batch yields nothing: lower the "
                "batch size."
            )
        if isinstance(x, (np.ndarray, tf.Tensor)):
            return x, x
        if isinstance(x, types.GeneratorType):
            try:
                batch = next(x)
            except StopIteration:
                raise InputValidationError(
                    "The training generator yields nothing: it must yield at least one batch."
                ) from None
            return batch, _prepended(batch, x)
        if isinstance(x, keras.utils.PyDataset):
            return x[0], x
        return None, x

    @staticmethod
    def _is_batch_stream(x):
        """Whether `fit` reads `x` batch by batch (not arrays Keras cuts itself)."""
        return isinstance(x, (tf.data.Dataset, types.GeneratorType, keras.utils.PyDataset))

    def fit(self, x=None, y=None, *args, **kwargs):
        """`keras.Model.fit`, after checking the first batch once.

        Accepts a `tf.data.Dataset` of `x` or `(x, y)` batches (an
        unconditional GAN ignores the labels `y`, so labelled tensorflow-datasets
        pipelines train as they are), a Python generator or `keras.utils.PyDataset`
        of `(x,)` or `(x, y)` batches (checked like a dataset's: its first batch
        is read before training and yielded again), or an array `x`. Labels as
        an array `y`, `sample_weight`, `class_weight` and weights in the batches
        are refused: they would be ignored. Each batch must hold a multiple of
        `batches_per_step` examples (build pipelines with
        `repeat_batches=model.batches_per_step`).

        A dataset whose options leave tf.data's autotuning unset is trained
        without it (`kgan.data.without_teardown_stall`): with autotuning, the
        end of an epoch often waits seconds for the autotuner's sleeping
        thread. Your dataset object is not changed, and a dataset whose
        `options().autotune.enabled` you set yourself is used as it is.

        Example:

        ```python
        gan = kgan.DCGAN.from_image_shape((28, 28, 1), latent_dim=16, filters=8, seed=0)
        gan.compile()
        history = gan.fit(kgan.data.load("mnist_5k", batch_size=64).take(2), epochs=1)
        history.history["d_loss"], history.history["g_loss"]
        ```
        """
        self._refuse_validation(kwargs)
        self._refuse_labels_if_unconditional(y)
        batch, x = self._peek_first_batch(x)
        if batch is not None:
            images, _ = self._split_batch(batch)
            self.check_values(images)
            if self._is_batch_stream(x):
                self._check_batch_divides(images.shape[0])
                self._check_first_batch_splits_evenly(images.shape[0])
            elif hasattr(x, "__len__"):
                self._check_array_batches(len(x), args, kwargs)
        self._check_compiled("fit")
        return self._keras_fit(x, y, *args, **kwargs)

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None,
                       return_dict=False):
        """`keras.Model.train_on_batch`, after the checks `fit` makes of a first batch.

        One training step on the batch `x` (with labels `y` for a
        conditional GAN); returns the losses as `fit` logs them.

        Example:

        ```python
        gan.train_on_batch(images, return_dict=True)  # {"d_loss": ..., "g_loss": ...}
        ```
        """
        self._refuse_unsupported_fit_arguments(
            x, y, (), {"sample_weight": sample_weight, "class_weight": class_weight},
            method="train_on_batch")
        self._refuse_labels_if_unconditional(y)
        images, labels = self._split_batch(x if y is None else (x, y))
        self.check_values(images)
        self._check_batch_divides(images.shape[0])
        self._check_labels_of_batch(images, labels)
        self._check_compiled("train_on_batch")
        return keras.Model.train_on_batch(self, x, y, return_dict=return_dict)

    def _check_labels_of_batch(self, images, labels):
        """Check a batch's labels before training on it (none for an unconditional GAN)."""

    def _refuse_labels_if_unconditional(self, y):
        if y is not None and not self.takes_labels:
            raise InputValidationError(
                f"{type(self).__name__} is unconditional: it trains on images alone and "
                "would ignore the labels y. Drop y, or use the conditional_gan architecture "
                "(kgan.ConditionalGAN) to train on labels."
            )

    def _check_compiled(self, method):
        if not self.compiled:
            raise RuntimeError(
                f"Call {type(self).__name__}.compile() before {method}(); "
                "compile() with no arguments uses the paper's optimizers."
            )

    def _refuse_validation(self, fit_kwargs):
        """Refuse fit's validation arguments: Keras would run `test_step` on them."""
        for key in ("validation_data", "validation_split", "validation_steps"):
            value = fit_kwargs.get(key)
            if value is not None and not (key == "validation_split" and not value):
                raise ValueError(
                    f"{type(self).__name__}.fit() takes no {key}: a GAN's losses are no "
                    "measure of quality to validate on. Measure samples during training with "
                    "kgan.callbacks.QualityMetrics (FID/KID against held-out images), or "
                    "afterwards with kgan.evaluation.evaluate."
                )

    def _refuse_unsupported_fit_arguments(self, x, y, args, kwargs, method="fit"):
        """Refuse what `keras.Model.fit` takes but a GAN would silently ignore or fail on."""
        name = f"{type(self).__name__}.{method}"
        given = inspect.signature(keras.Model.fit).bind_partial(self, x, y, *args, **kwargs)
        given = given.arguments
        for key in ("sample_weight", "class_weight"):
            if given.get(key) is not None:
                raise ValueError(
                    f"{name}() takes no {key}: a GAN's losses weight every example "
                    f"alike, so Keras would ignore it. Drop {key}; to train more on some "
                    "examples or classes, repeat or resample them in the pipeline (e.g. "
                    "tf.data.Dataset.sample_from_datasets)."
                )
        for callback in given.get("callbacks") or ():
            if isinstance(callback, (keras.callbacks.LearningRateScheduler,
                                     keras.callbacks.ReduceLROnPlateau)):
                # They set model.optimizer's rate, and a GAN has two optimizers instead.
                raise ValueError(
                    f"{name}() cannot run keras.callbacks.{type(callback).__name__}: it "
                    "changes model.optimizer's learning rate, and a GAN has one optimizer "
                    "per network (g_optimizer, d_optimizer) instead. Give each optimizer a "
                    "schedule: compile(g_optimizer=keras.optimizers.Adam("
                    "keras.optimizers.schedules.ExponentialDecay(2e-4, 1000, 0.9)), ...), "
                    "or a kgan.schedules one (e.g. LinearDecayAfterHalf)."
                )
            if isinstance(callback, keras.callbacks.ModelCheckpoint):
                _refuse_legacy_h5(callback.filepath, callback.save_weights_only,
                                  "ModelCheckpoint")

    def _keras_fit(self, x, y, *args, **kwargs):
        """`keras.Model.fit`, with run-time batch checks raised as InputValidationError."""
        self._refuse_unsupported_fit_arguments(x, y, args, kwargs)
        with _input_check_failures_raised():
            return keras.Model.fit(self, self._as_fit_pipeline(x, kwargs), y, *args, **kwargs)

    def _as_fit_pipeline(self, x, fit_kwargs):
        """`x` as kgan hands it to `keras.Model.fit` (a dataset: see `fit`)."""
        if isinstance(x, (types.GeneratorType, tf.distribute.DistributedDataset)):
            fit_kwargs.setdefault("shuffle", False)  # as for a dataset, below
        if isinstance(x, tf.data.Dataset):
            # The pipeline shuffles; Keras would warn that shuffle=True is ignored.
            fit_kwargs.setdefault("shuffle", False)
            self._warn_if_the_replay_is_not_exact(x, fit_kwargs)
            _DATASETS_READ_BY_FIT.add(x)
            x = self._resumed_where_the_backup_left_off(x, fit_kwargs)
            x = without_teardown_stall(x, keep_explicit_choice=True)
            x = self._checked_for_the_replicas(x)
        return x

    @staticmethod
    def _warn_if_the_replay_is_not_exact(dataset, fit_kwargs):
        """Warn when a `BackupAndRestore(data=dataset)` will replay a dataset an
        earlier `fit` of this process already read (a notebook re-run after Ctrl-C).

        Its shuffle seeds moved on with every iterator that fit made, and cannot
        be set back: the replay then starts from the wrong seeds, and the resumed
        run differs from an uninterrupted one (by about 1e-3 in the weights).
        """
        from kgan.callbacks import BackupAndRestore

        if dataset not in _DATASETS_READ_BY_FIT:
            return
        for callback in fit_kwargs.get("callbacks") or ():
            if (isinstance(callback, BackupAndRestore) and callback.data is dataset
                    and BackupAndRestore.read_metadata(callback.backup_dir)):
                warnings.warn(
                    f"Resuming from {callback.backup_dir} with a dataset an earlier fit in "
                    "this process already read: its shuffle order has moved on, so the "
                    "resumed run will not match an uninterrupted one exactly. For an exact "
                    "resume, build the dataset again (e.g. call kgan.data.load again) and "
                    "pass the new one to fit and to BackupAndRestore(data=...).",
                    stacklevel=4,
                )
                return

    def _resumed_where_the_backup_left_off(self, dataset, fit_kwargs):
        """`dataset`, past the batches the restored epochs read, when `fit` gets
        `steps_per_epoch` and a `kgan.callbacks.BackupAndRestore(data=...)` that
        will restore finished epochs.

        With `steps_per_epoch` Keras draws every epoch from one iterator
        (e.g. of a `.repeat()`ed pipeline), so epoch k starts where epoch
        k-1 stopped; the callback's replay, which makes an iterator per
        epoch, cannot put fit's own iterator there. Skipping in the pipeline
        does: it is read from its start, with the seeds of the uninterrupted
        run's iterator. Each epoch reads `steps_per_execution` batches per
        group of steps, its last group whole.
        """
        from kgan.callbacks import BackupAndRestore

        steps = fit_kwargs.get("steps_per_epoch")
        backups = [c for c in fit_kwargs.get("callbacks") or ()
                   if isinstance(c, BackupAndRestore) and c.data is not None]
        # A pipeline of known length is read anew each epoch it runs out in, as
        # the callback's replay reads it; only an endless (or unknown) one is
        # read by one iterator throughout.
        if not steps or not backups or int(dataset.cardinality()) >= 0:
            return dataset
        metadata = BackupAndRestore.read_metadata(backups[0].backup_dir)
        finished = int(metadata["epoch"]) if metadata else 0
        if not 0 < finished < int(fit_kwargs.get("epochs", 1)):
            return dataset
        per_execution = int(self.steps_per_execution or 1)
        backups[0].replayed_by_fit = True
        return dataset.skip(finished * -(-int(steps) // per_execution) * per_execution)

    def _checked_for_the_replicas(self, dataset):
        """`dataset`, stopping at a batch that would leave a replica no examples.

        With a batch size unknown until run time (a pipeline without
        `drop_remainder=True`), an epoch's last batch may hold fewer examples
        than the strategy has replicas; a replica without examples would make
        NaN losses and batch-norm statistics, or fail in a layer. Checked as
        the pipeline yields the batch, before the step computes anything, so
        the networks and their statistics are left as the last full step made
        them. Not skipped: that would make the pipeline's length unknown,
        and change the number of steps an epoch makes.
        """
        replicas = self.distribute_strategy.num_replicas_in_sync
        if replicas == 1 or tf.nest.flatten(dataset.element_spec)[0].shape[0] is not None:
            return dataset

        def check(*batch):
            images, *rest = tf.nest.flatten(batch)
            checked = checked_at_run_time(
                images,
                lambda message: tf.debugging.assert_greater_equal(
                    tf.shape(images)[0], replicas, message=message),
                _EMPTY_REPLICA_MESSAGE.format(replicas=replicas),
            )
            packed = tf.nest.pack_sequence_as(batch, [checked, *rest])
            # map passes a tuple element's parts as arguments, anything else as one.
            return packed if isinstance(dataset.element_spec, tuple) else packed[0]

        return dataset.map(check)

    # ------------------------------------------------------------------ training helpers
    def _next_seed(self):
        """A fresh stateless seed, distinct per replica of a strategy."""
        seed = self.seed_generator.next()
        context = tf.distribute.get_replica_context()
        replica_id = 0 if context is None else context.replica_id_in_sync_group
        seed = tf.cast(seed, tf.int64)
        return tf.random.experimental.stateless_fold_in(seed, replica_id)

    def sample_latents(self, batch_size):
        """Latents `[batch_size, latent_dim]` for a training step (float32).

        Example:

        ```python
        gan = kgan.DCGAN.from_image_shape((28, 28, 1), latent_dim=16, filters=8, seed=0)
        z = gan.sample_latents(8)  # float32 tensor [8, 16]; each call draws new latents
        fake = gan.generator(z, training=True)  # as in a train_step
        ```
        """
        return tf.random.stateless_normal(
            (batch_size, self.latent_dim), seed=self._next_seed(), dtype=tf.float32
        )

    def discriminator_view(self, images, ada=None):
        """What the discriminator sees: `images`, augmented if enabled.

        Call it on real and generated images in both updates, so the
        generator is trained through the same (differentiable) transforms.
        With `augment="ada"`, `ada` picks the `AdaptiveAugment` (default
        `self.ada`; CycleGAN passes `self.ada_a` for its second discriminator).
        """
        if self.ada is not None:
            ada = self.ada if ada is None else ada
            return ada(images, seed=self._next_seed())
        if self.augmenter is None:
            return images
        return self.augmenter(images, seed=self._next_seed())

    def observe_discriminator(self, real_logits, fake_logits=None, ada=None):
        """Feed ADA's overfitting heuristic; call it in every discriminator update.

        Pass the discriminator's outputs on the (augmented) real batch and,
        for Wasserstein critics (`ada_center == "midpoint"`), on the fake
        batch. Every `ada_interval` calls, `p` moves toward holding
        `r_t = ada_target`. A no-op unless `augment="ada"`; with it, a
        `train_step` that never calls this fails when traced (see
        `kgan.ada.AdaptiveAugment.check_observed`).

        Example:

        ```python
        real_logits = self.discriminator(self.discriminator_view(real), training=True)
        fake_logits = self.discriminator(self.discriminator_view(fake), training=True)
        self.observe_discriminator(real_logits, fake_logits)
        ```
        """
        if self.ada is None:
            return
        (self.ada if ada is None else ada).observe(real_logits, fake_logits)

    @property
    def adaptive_augments(self):
        """The model's `kgan.ada.AdaptiveAugment` layers (one per discriminator), or []."""
        return [ada for _, ada in self._ada_named()]

    def _ada_named(self):
        """`(log suffix, AdaptiveAugment)` pairs; CycleGAN has one per discriminator."""
        return [] if self.ada is None else [("", self.ada)]

    def _new_adaptive_augment(self, name):
        return kgan_ada.AdaptiveAugment(
            target=self.ada_target, kimg=self.ada_kimg, interval=self.ada_interval,
            center=self.ada_center, name=name,
        )

    def _make_ada_readouts(self):
        return [m for suffix, ada in self._ada_named() for m in ada.metrics(suffix)]

    @staticmethod
    def scaled_loss(optimizer, per_example_loss):
        """The loss to differentiate for `optimizer`; call it inside the tape.

        Averages over the *global* batch (`kgan.losses.global_batch_mean`:
        Keras sums replicas' gradients) and applies the optimizer's loss
        scale (the identity, or `LossScaleOptimizer`'s dynamic scale under
        `mixed_float16`). It must be recorded by the tape, hence inside it.
        """
        return optimizer.scale_loss(kgan_losses.global_batch_mean(per_example_loss))

    @staticmethod
    def apply_gradients(optimizer, tape, scaled_loss, variables):
        """Differentiate a `scaled_loss` and apply the gradients.

        `LossScaleOptimizer.apply` unscales them and skips steps whose
        gradients are not finite, on every replica when any replica's are.
        Without `variables` (a frozen network: `trainable = False`) nothing
        is updated, as Keras leaves a model without trainable weights.
        """
        variables = list(variables)
        if not variables:
            # Keras optimizers fail on an empty update ("not enough values to unpack").
            return
        grads = tape.gradient(scaled_loss, variables)
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            grads = _overflow_on_every_replica(grads)
        # Keras counts the update (optimizer.iterations) without waiting for
        # data, so the call that ends an epoch of a pipeline of unknown length
        # counted one that never happened; after the loss, it cannot.
        with tf.control_dependencies([scaled_loss]):
            optimizer.apply_gradients(zip(grads, variables))

    def train_step(self, data):  # pragma: no cover - abstract
        raise NotImplementedError(
            f"{type(self).__name__} must override train_step; GAN is a base class."
        )

    def update_ema(self):
        """Move `ema_generator` toward the generator; call after each G step.

        Trainable weights are averaged with decay `min(ema_decay, (1 + n) /
        (10 + n))` for generator step n (the warm-up keeps early averages from
        clinging to the random initialization); batch-norm statistics are
        copied. Runs as a cross-replica update, so it works under
        `tf.distribute` strategies. A no-op without `ema_decay`, and while the
        generator is frozen (`generator.trainable = False`): no generator step
        was made, and copying its weights would overwrite the average.
        """
        if self.ema_generator is None or not self.generator.trainable_variables:
            return
        steps = tf.cast(self.g_optimizer.iterations, tf.float32)
        decay = tf.minimum(self.ema_decay, (1.0 + steps) / (10.0 + steps))
        trainable = {id(v) for v in self.generator.trainable_variables}
        # The underlying tf.Variables: tf.distribute updates act on those.
        pairs = [
            (average.value, weight.value, id(weight) in trainable)
            for average, weight in zip(self.ema_generator.weights, self.generator.weights)
        ]

        def assign(average, weight, decay, mix):
            value = decay * average + (1.0 - decay) * weight if mix else weight
            return average.assign(value)

        def update(strategy, decay):
            for average, weight, mix in pairs:
                strategy.extended.update(
                    average, assign, args=(weight, decay, mix), group=False
                )

        tf.distribute.get_replica_context().merge_call(update, args=(decay,))

    def recalibrate_ema_statistics(self, num_batches=100, batch_size=256, seed=0):
        """Recompute the EMA generator's batch-norm statistics for its own weights.

        During training the EMA generator's batch-norm moving statistics are
        copied from the trained generator, but they describe activations of
        the *trained* weights, not of the averaged ones. Running the EMA
        generator in training mode on fresh latents replaces them with its
        own (measured on `dcgan_mnist`'s run: FCD 34.9 with copied statistics,
        33.3 recalibrated). `kgan train` calls this before saving a preset. A
        no-op without `ema_decay` or without batch norm.

        Args:
            num_batches: latent batches to run (the moving averages forget the
                copied values geometrically in `momentum ** num_batches`).
            batch_size: latents per batch.
            seed: seed of the latents.

        Example:

        ```python
        gan.fit(dataset, epochs=100)
        gan.recalibrate_ema_statistics()
        ```
        """
        if self.ema_generator is None or not any(
            isinstance(layer, keras.layers.BatchNormalization)
            for layer in self.ema_generator._flatten_layers()
        ):
            return
        rng = np.random.default_rng(seed)
        for _ in range(positive_int(num_batches, "num_batches")):
            # Training mode moves the statistics; no gradient, so no weight moves.
            self.ema_generator(self._recalibration_inputs(rng, batch_size), training=True)

    def _recalibration_inputs(self, rng, batch_size):
        """One batch of generator inputs for `recalibrate_ema_statistics`: latents."""
        return rng.standard_normal((batch_size, self.latent_dim)).astype("float32")

    # ------------------------------------------------------------------ inference
    @property
    def sampling_generator(self):
        """The network used for sampling and export: the EMA one if enabled."""
        return self.ema_generator if self.ema_generator is not None else self.generator

    def call(self, latents, training=False):
        """Run the (EMA, if enabled) generator: latents -> images in [-1, 1].

        Raises:
            InputValidationError: `latents` are not `[N, latent_dim]` real
                numbers (e.g. images were passed: `generate` makes images).
        """
        self._check_latent_spec(latents)
        return self.sampling_generator(latents, training=training)

    def predict(self, x, *args, **kwargs):
        """`keras.Model.predict` on latents `[N, latent_dim]`: images in [-1, 1].

        The latents' shape is checked before Keras batches them, so images
        or vectors of another size get an `InputValidationError` that says
        what `predict` takes. `generate_from_latents` does the same with a
        plain NumPy result and no Keras progress bar.

        Example:

        ```python
        gan = kgan.zoo.load("dcgan_mnist")
        images = gan.predict(gan.latents(8, seed=0), verbose=0)  # float32 [8, 28, 28, 1]
        ```
        """
        self._check_predict_inputs(x)
        with _input_check_failures_raised():
            return super().predict(x, *args, **kwargs)

    def predict_on_batch(self, x):
        """`keras.Model.predict_on_batch`, after the checks `predict` makes of `x`.

        Example:

        ```python
        images = gan.predict_on_batch(gan.latents(8, seed=0))  # [8, H, W, C] in [-1, 1]
        ```
        """
        self._check_predict_inputs(x)
        return super().predict_on_batch(x)

    def _check_predict_inputs(self, x):
        """Host checks of what `predict` gets, when it is an array (not a dataset)."""
        if self.latent_dim is None:  # a translator (CycleGAN) predicts from images
            return
        if isinstance(x, (np.ndarray, tf.Tensor)):
            self._check_latent_spec(x)

    def _check_latent_spec(self, latents):
        """Refuse latents whose static shape or dtype is not `[N, latent_dim]` real numbers."""
        if not hasattr(latents, "shape"):
            latents = np.asarray(latents)
        shape, dtype = tf.TensorShape(latents.shape), tf.as_dtype(latents.dtype)
        name = type(self).__name__
        if shape.rank is not None and (
            shape.rank != 2 or shape[-1] not in (None, self.latent_dim)
        ) or not (dtype.is_floating or dtype.is_integer):
            images = shape.rank is not None and tuple(shape[1:]) == self.image_shape
            raise InputValidationError(
                f"{name}.predict() and calling the model take latent vectors of shape "
                f"[N, {self.latent_dim}] (real numbers), got {'images of ' if images else ''}"
                f"shape {tuple(shape)} and dtype {dtype.name}. Draw latents with "
                "model.latents(n, seed); to sample images, call model.generate(n, seed=0)."
            )

    def latents(self, num, seed=None):
        """`num` latent vectors as float32 numpy.

        With an int `seed` the result depends only on the seed (numpy's PCG64),
        so the same seed gives the same samples on any machine and backend.

        Example:

        ```python
        gan = kgan.zoo.load("dcgan_mnist")
        z = gan.latents(4, seed=0)  # float32 numpy [4, 100]
        np.array_equal(z, gan.latents(4, seed=0))  # True: a seed fixes the latents
        ```
        """
        num = positive_int(num, "num")
        check_fits_in_memory(
            num * self.latent_dim * 4,
            f"latents({num:,})",
            f"{num:,} float32 latent vectors of {self.latent_dim}, all at once",
            f"Draw them in chunks: `for z in model.latent_batches({num}, seed=0): ...`.",
        )
        if seed is None:
            # SeedGenerator.next() reads then assigns its state: without the
            # lock, concurrent unseeded calls drew the very same latents.
            with _UNSEEDED_DRAW_LOCK:
                z = keras.random.normal((num, self.latent_dim), seed=self.seed_generator)
            return np.asarray(z, dtype=np.float32)
        return next(self.latent_batches(num, seed, batch_size=num))

    def latent_batches(self, num, seed=None, batch_size=256):
        """`latents(num, seed)` in consecutive chunks of at most `batch_size` rows.

        Concatenated, the chunks equal `latents(num, seed)` exactly (numpy
        fills a draw sequentially from the stream), so a caller can sample
        any number of images in bounded memory (`kgan sample --num 100000`).

        Example:

        ```python
        gan = kgan.zoo.load("dcgan_mnist")
        chunks = list(gan.latent_batches(10, seed=0, batch_size=4))  # 4, 4 and 2 rows
        np.array_equal(np.concatenate(chunks), gan.latents(10, seed=0))  # True
        ```
        """
        num = positive_int(num, "num")
        batch_size = positive_int(batch_size, "batch_size")
        if self.latent_dim is None:  # no latent space (CycleGAN): its latents() says so
            self.latents(num, seed)
        if seed is None:
            for start in range(0, num, batch_size):
                yield self.latents(min(batch_size, num - start))
            return
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
            raise TypeError(f"seed must be an int or None, got {seed!r}.")
        if seed < 0:
            raise ValueError(f"seed must be >= 0 (numpy seeds are non-negative), got {seed}.")
        # A local Generator per call: a seeded draw shares no state with other
        # calls, so concurrent generate(seed=s) calls are pure functions of s.
        rng = np.random.default_rng(int(seed))
        for start in range(0, num, batch_size):
            rows = min(batch_size, num - start)
            yield rng.standard_normal((rows, self.latent_dim)).astype(np.float32)

    def _check_latents(self, latents):
        """`latents` as float32 `[N, latent_dim]`, or an InputValidationError saying why not."""
        array = keras.ops.convert_to_numpy(latents) if tf.is_tensor(latents) else np.asarray(latents)
        # Complex values would silently lose their imaginary part, and
        # strings/objects fail deep in numpy: accept real numbers only.
        if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
            raise InputDTypeError(
                f"latents must be real numbers (float32 preferred), got dtype {array.dtype}. "
                f"Draw them with model.latents(n, seed) or np.random.standard_normal((n, "
                f"{self.latent_dim}))."
            )
        if array.ndim != 2 or array.shape[1] != self.latent_dim:
            raise InputValidationError(
                f"latents must have shape [N, {self.latent_dim}], got "
                f"{array.shape}. Draw them with model.latents(n, seed)"
                + (", or add a batch axis: z[None]." if array.shape == (self.latent_dim,) else ".")
            )
        with np.errstate(over="ignore"):  # overflow becomes inf, reported below
            array = array.astype(np.float32, copy=False)
        if not np.isfinite(array).all():
            raise InputValidationError(
                "latents contain NaN or Inf (or values beyond float32's range); the "
                "generator would return NaN images. Pass finite latents, e.g. from "
                "model.latents(n, seed)."
            )
        return array

    def _check_samples_fit(self, num, call):
        """`num`, after refusing samples that cannot all be in memory at once.

        `generate` returns all its images together and draws all their
        latents first; past the machine's memory that failed as an
        out-of-memory error from TensorFlow that named no argument.
        """
        num = positive_int(num, "num")
        per_sample = 4 * (math.prod(self.image_shape) + self.latent_dim)  # float32 image + latent
        check_fits_in_memory(
            num * per_sample,
            f"{call}({num:,})",
            f"{num:,} float32 {'x'.join(map(str, self.image_shape))} images and their "
            "latents, all at once",
            f"Generate them in batches: `for images in model.generate_batches({num}, seed=0): "
            "...` holds one batch at a time, and kgan.sampling.write_samples(model, "
            "'samples/', num) (CLI: kgan sample --num N --output samples/) writes them to disk.",
        )
        return num

    def generate_from_latents(self, latents, batch_size=256):
        """Images (float32 numpy in [-1, 1]) for the given latent vectors.

        Raises:
            InputValidationError: `latents` is not `[N, latent_dim]`, not real
                numbers (`InputDTypeError`), or not finite.

        Example:

        ```python
        gan = kgan.zoo.load("dcgan_mnist")
        z = gan.latents(2, seed=0)
        z[1] = -z[0]  # latents are plain numpy: edit them freely
        images = gan.generate_from_latents(z)  # float32 [2, 28, 28, 1] in [-1, 1]
        ```
        """
        latents = self._check_latents(latents)
        if self._inference_fn is None:
            self._inference_fn = tf.function(
                lambda z: tf.cast(self.sampling_generator(z, training=False), tf.float32),
                reduce_retracing=True,
            )
        batch_size = positive_int(batch_size, "batch_size")
        outputs = [
            self._inference_fn(tf.constant(latents[i : i + batch_size])).numpy()
            for i in range(0, len(latents), batch_size)
        ]
        if not outputs:
            return np.zeros((0,) + self.image_shape, np.float32)
        return np.concatenate(outputs, axis=0)

    def generate(self, num, seed=None, batch_size=256):
        """Sample `num` images (float32 numpy `[num, H, W, C]` in [-1, 1]).

        All `num` images are returned at once; for more than fit in memory,
        use `generate_batches`.

        Raises:
            ValueError: `num` images (and their latents) would not fit in the
                memory this process can use; the message gives the size.

        Example:

        ```python
        images = gan.generate(64, seed=0)
        kgan.images.save_grid(images, "samples.png")
        ```
        """
        num = self._check_samples_fit(num, "generate")
        return self.generate_from_latents(self.latents(num, seed), batch_size)

    def generate_batches(self, num, seed=None, batch_size=256):
        """`generate(num, seed)` as consecutive batches of at most `batch_size` images.

        Concatenated, the batches equal `generate(num, seed, batch_size)`;
        only one batch is in memory at a time, so any `num` fits.

        Example:

        ```python
        for i, batch in enumerate(gan.generate_batches(100_000, seed=0)):
            kgan.images.save_pngs(batch, "samples/", start=256 * i)
        ```
        """
        for latents in self.latent_batches(num, seed, batch_size):
            yield self.generate_from_latents(latents, batch_size)

    def generate_uint8(self, num, seed=None, batch_size=256):
        """Like `generate`, as uint8 images ready for PNG encoding.

        Example:

        ```python
        gan = kgan.zoo.load("dcgan_mnist")
        pixels = gan.generate_uint8(16, seed=0)  # uint8 [16, 28, 28, 1] in [0, 255]
        kgan.images.save_grid(pixels, "digits.png")
        ```
        """
        from kgan.images import to_uint8

        num = self._check_samples_fit(num, "generate_uint8")
        return to_uint8(self.generate(num, seed=seed, batch_size=batch_size))

    def interpolate(self, z0, z1, steps):
        """Images along the spherical interpolation from `z0` to `z1`.

        Spherical (slerp), not linear: Gaussian latents live near a sphere and
        a straight line passes through low-norm latents the generator rarely
        saw (White 2016).

        Returns float32 numpy `[steps, H, W, C]` in [-1, 1].

        Example:

        ```python
        gan = kgan.zoo.load("dcgan_mnist")
        z0, z1 = gan.latents(2, seed=0)
        row = gan.interpolate(z0, z1, steps=8)  # float32 [8, 28, 28, 1]
        kgan.images.save_grid(row, "morph.png", ncols=8)
        ```
        """
        return self.generate_from_latents(slerp(z0, z1, steps))


def _without_absent_parts(data):
    """A batch tuple without trailing Nones: train_on_batch packs `(x, y, sample_weight)`
    with None for what was not given."""
    if isinstance(data, (tuple, list)):
        while len(data) > 1 and data[-1] is None:
            data = data[:-1]
    return data


def _refuse_legacy_h5(filepath, weights_only, caller):
    """Refuse a whole-model save to a legacy HDF5 file (`.h5`, `.hdf5`).

    Keras's legacy HDF5 saver expects one `model.optimizer` (a GAN has one
    per network) and fails after training with an AttributeError, or with
    "name already exists" for a model with an EMA generator.
    """
    path = str(filepath)
    if weights_only or path.endswith(".weights.h5") or not path.endswith((".h5", ".hdf5")):
        return
    stem = path[: path.rindex(".")]
    raise ValueError(
        f"{caller} cannot write a GAN to the legacy HDF5 file {path!r}: that format holds "
        "one optimizer, and a GAN has one per network. Save the full model as "
        f"{stem}.keras (keras.models.load_model reads it back, optimizers included), or "
        f"only its weights as {stem}.weights.h5"
        + (" (ModelCheckpoint(..., save_weights_only=True))." if caller == "ModelCheckpoint"
           else " (save_weights).")
    )


def _prepended(first, rest):
    """A generator of `first`, then of what `rest` yields.

    A generator, not `itertools.chain`: Keras's `fit` takes Python
    generators only as `types.GeneratorType`.
    """
    yield first
    yield from rest


def _overflow_on_every_replica(grads):
    """`grads`, made NaN on every replica when any replica's are not finite.

    Keras's `LossScaleOptimizer` (3.15, TensorFlow backend) decides whether
    to skip a step from the first replica's gradients alone, before the
    replicas' gradients are summed: under `MirroredStrategy` an overflow on
    another replica was applied, and left inf/NaN weights. With every
    replica's gradients non-finite, every replica skips the step (and lowers
    the loss scale) as one.
    """
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync < 2:
        return grads

    def values(grad):
        return grad.values if isinstance(grad, tf.IndexedSlices) else grad

    finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(values(g)))
                            for g in grads if g is not None])
    overflowed = context.all_reduce("sum", tf.cast(tf.logical_not(finite), tf.float32)) > 0

    def poisoned(grad):
        nan = tf.where(overflowed, tf.constant(float("nan"), values(grad).dtype),
                       tf.zeros([], values(grad).dtype))
        if isinstance(grad, tf.IndexedSlices):
            return tf.IndexedSlices(grad.values + nan, grad.indices, grad.dense_shape)
        return grad + nan

    return [None if g is None else poisoned(g) for g in grads]


def _rank_hint(shape, expected, noun):
    """The fix for a batch of the wrong rank, when its shape shows the mistake.

    A `(28, 28, 1)` batch for a `(28, 28, 1)` model is one image, i.e. an
    unbatched dataset; `(64, 28, 28)` is a batch without its channel axis.
    """

    def matches(dims, wanted):
        return len(dims) == len(wanted) and all(
            d is None or int(d) == w for d, w in zip(dims, wanted)
        )

    shape, expected = tuple(shape), tuple(expected)
    if matches(shape, expected):
        return (
            f" That is one {noun}, not a batch: batch the dataset, e.g. "
            f"`dataset.batch(64)` (a single {noun} as an array: `x[None]`)."
        )
    if len(expected) == 3 and expected[-1] == 1:
        if matches(shape, expected[:-1]):
            return (
                " That is one image without its channel axis: add the axis and "
                "batch, e.g. `dataset.map(lambda x: x[..., None]).batch(64)`."
            )
        if matches(shape[1:], expected[:-1]):
            return " Add a channel axis, e.g. `x[..., None]`."
    return ""


def _check_steps_per_execution(steps, strategy):
    """Refuse the combination Keras 3 cannot run (keras-team/keras#19246).

    With `steps_per_execution > 1`, fit's multi-step loop calls
    `strategy.run` inside `tf.cond`; with a MirroredStrategy of several
    replicas, or a MultiWorkerMirroredStrategy of several workers, the
    step's cross-replica reduction then fails with "You must feed a value
    for placeholder tensor" (Keras 3.15, TensorFlow 2.21; a plain
    `keras.Sequential` fails the same way under MirroredStrategy, and
    `examples/multiworker_dcgan.py` with two workers failed so before this
    check). tests/models/test_gan.py re-checks that Keras still fails, so
    this refusal goes when Keras is fixed. TPUStrategy runs the same loop but
    could not be tried here, so it is not refused.
    """
    collective = (tf.distribute.MirroredStrategy, tf.distribute.MultiWorkerMirroredStrategy)
    if steps in (None, 1) or not isinstance(strategy, collective):
        return
    if strategy.num_replicas_in_sync > 1:
        # tf.distribute.MultiWorkerMirroredStrategy's class is named CollectiveAllReduceStrategy.
        multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
        name = "MultiWorkerMirroredStrategy" if multi_worker else "MirroredStrategy"
        raise ValueError(
            f"steps_per_execution={steps} cannot run under a {name} of "
            f"{strategy.num_replicas_in_sync} replicas in Keras {keras.__version__}: fit's "
            "multi-step loop fails there (keras-team/keras#19246). Compile with "
            "steps_per_execution=1 under this strategy."
        )


def check_compile_settings(strategy, steps_per_execution=None, jit_compile=None):
    """Refuse `compile` settings that cannot run under `strategy`.

    Raises:
        ValueError: `steps_per_execution > 1` under a mirrored strategy of
            several replicas (keras-team/keras#19246), or `jit_compile=True`
            under a MirroredStrategy of several CPU devices.

    Example:

    ```python
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    kgan.models.gan.check_compile_settings(strategy, steps_per_execution=10)  # one replica: fine
    ```
    """
    _check_steps_per_execution(steps_per_execution, strategy)
    _check_jit_compile(jit_compile, strategy)


def _check_jit_compile(jit_compile, strategy):
    """Refuse XLA under a MirroredStrategy of several CPU devices.

    XLA compiles the step for one CPU device, which then cannot reach the
    other replicas' variables: TensorFlow 2.21 fails with "Trying to access
    resource ... located in device CPU:1 from device CPU:0", for a plain
    `keras.Sequential` too. GPUs and TPUs are not refused (not tried here).
    """
    if jit_compile is not True or not isinstance(strategy, tf.distribute.MirroredStrategy):
        return
    devices = strategy.extended.worker_devices
    if len(devices) > 1 and all("CPU" in tf.DeviceSpec.from_string(d).device_type.upper()
                                for d in devices):
        raise ValueError(
            f"jit_compile=True cannot run under a MirroredStrategy of {len(devices)} CPU "
            "devices: XLA compiles the step for one device, which cannot reach the other "
            "replicas' variables (TensorFlow fails so for any Keras model). Compile with "
            "jit_compile=False under this strategy."
        )


def slerp(z0, z1, steps):
    """`steps` latents from `z0` to `z1` (inclusive) by spherical interpolation.

    Ends closer than 1e-6 rad in angle are joined by the straight line (the
    arc and the line differ by under 1e-12 of the norms there). An end at the
    origin has no direction, so its path is the straight line too.

    Raises:
        ValueError: the ends differ in size, are not finite or beyond float32's
            range, or point in opposite directions (e.g. `z` and `-z`): every
            half great circle joins those, so no path is the spherical one.

    Example:

    ```python
    path = kgan.models.slerp([1.0, 0.0], [0.0, 1.0], steps=3)  # float32 [3, 2]
    # [[1, 0], [0.7071, 0.7071], [0, 1]]: every point keeps the norm 1
    ```
    """
    z0 = np.asarray(z0, np.float64).reshape(-1)
    z1 = np.asarray(z1, np.float64).reshape(-1)
    if z0.shape != z1.shape:
        raise ValueError(f"z0 and z1 differ in shape: {z0.shape} vs {z1.shape}.")
    if not (np.isfinite(z0).all() and np.isfinite(z1).all()):
        raise ValueError("z0 and z1 must be finite; one holds NaN or infinity.")
    largest = float(max(np.abs(z0).max(initial=0.0), np.abs(z1).max(initial=0.0)))
    if largest > float(np.finfo(np.float32).max):
        raise ValueError(
            f"z0 and z1 must fit in float32, the latents' dtype; one holds {largest:.3g}."
        )
    steps = positive_int(steps, "steps")
    if steps < 2:
        raise ValueError(f"steps must be at least 2 (both ends), got {steps}.")
    t = np.linspace(0.0, 1.0, steps)[:, None]
    n0, n1 = np.linalg.norm(z0), np.linalg.norm(z1)
    omega = 0.0  # an end at the origin: the straight line
    if n0 > 0.0 and n1 > 0.0:
        u0, u1 = z0 / n0, z1 / n1
        # The chord form is accurate at both ends of [0, pi]; acos of the dot
        # product loses half the digits near them.
        omega = 2.0 * math.atan2(np.linalg.norm(u0 - u1), np.linalg.norm(u0 + u1))
    if math.pi - omega < 1e-6:
        raise ValueError(
            f"z0 and z1 point in opposite directions (angle {omega:.7f} rad, pi is "
            f"{math.pi:.7f}): every half great circle joins them, so no path is the "
            "spherical one. Interpolate through a third latent (z0 -> zm, then zm -> z1) "
            "or pick other ends."
        )
    if omega < 1e-6:
        path = (1 - t) * z0 + t * z1
    else:
        path = (np.sin((1 - t) * omega) * z0 + np.sin(t * omega) * z1) / math.sin(omega)
    return path.astype(np.float32)
