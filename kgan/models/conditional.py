"""Class-conditional GAN with a projection discriminator (Miyato & Koyama 2018).

The generator draws an image of a requested class, `G(z, y)`; the
discriminator scores image and label together with the projection form
`logit(x, y) = psi(phi(x)) + <embed(y), phi(x)>` (see
`kgan.networks.conditional`). Projection, not an auxiliary classifier
(AC-GAN): AC-GAN's classification loss rewards generated images for being
easy to classify, which pushes them toward class prototypes and costs
diversity (Odena et al. 2017; Shu et al. 2017; Miyato & Koyama 2018) -- the
wrong incentive for a model whose samples are meant to augment a classifier's
training set.

Trained with differentiable augmentation (`augment="color,translation,cutout"`)
it is the project's *augmentation GAN*: it learns from a small labeled set
and `kgan.augment.synthetic_dataset` turns it into labeled training data.
"""

import numbers
import types

import keras
import numpy as np
import tensorflow as tf

from kgan import losses, zoo
from kgan._checks import positive_int
from kgan.models.gan import GAN, InputDTypeError, InputValidationError, checked_at_run_time
from kgan.networks.conditional import (
    ConditioningStrength, conditional_generator, projection_discriminator,
)

#: adversarial losses ConditionalGAN offers: name -> (discriminator, generator) loss.
LOSSES = {
    "hinge": (losses.hinge_discriminator_loss, losses.hinge_generator_loss),
    "non_saturating": (losses.discriminator_loss, losses.non_saturating_generator_loss),
}


#: How to give one label per image (no "]": run-time check messages end there).
_BATCH_THEM_TOGETHER = (
    "batch images and labels together, e.g. "
    "`tf.data.Dataset.from_tensor_slices((images, labels)).batch(64)`"
)


class _LabelRules:
    """What a conditional GAN's labels must be: integer class indices `0..K-1`.

    Apart from the model so that a `keras.utils.PyDataset`'s worker processes
    can check batches with it without a copy of the model.
    """

    def __init__(self, owner, num_classes):
        self.owner, self.num_classes = owner, num_classes

    def error(self, problem, fix=None, dtype=False):
        """An InputValidationError (InputDTypeError for a wrong dtype) naming problem and fix."""
        fix = fix or (
            f"Pass integer class indices in [0, {self.num_classes}) (e.g. "
            "kgan.data.load(name, with_labels=True))."
        )
        error = InputDTypeError if dtype else InputValidationError
        return error(f"{self.owner}: {problem} {fix}")

    def check(self, labels, num=None):
        """`ConditionalGAN.check_labels`: labels as int32 numpy `[N]`, or an error."""
        if isinstance(labels, (bool, np.bool_)):
            raise self.error(f"labels={labels!r} is a bool, not a class index.", dtype=True)
        if isinstance(labels, (numbers.Integral, np.integer)):
            array = np.full((num if num is not None else 1,), int(labels), dtype=np.int64)
        else:
            if tf.is_tensor(labels):
                labels = labels.numpy()
            array = np.asarray(labels)
            if array.size == 0:  # np.asarray([]) is float64: the count is what is wrong
                array = array.astype(np.int64)
            if array.dtype == object or not (
                np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
                or array.dtype == np.bool_
            ):
                raise self.error(
                    f"labels must be an int or a sequence of ints, got {type(labels).__name__} "
                    f"of dtype {array.dtype}.",
                    dtype=True,
                )
            if not np.issubdtype(array.dtype, np.integer):
                raise self.error(
                    f"labels must be integer class indices, got dtype {array.dtype}.",
                    "Cast them, e.g. `labels.astype('int32')`; for one-hot labels use "
                    "`labels.argmax(-1)`.",
                    dtype=True,
                )
            if array.ndim == 2 and array.shape[1] == 1:
                array = array[:, 0]
            if array.ndim != 1:
                raise self.error(
                    f"labels must be one class index per image, shape [N], got shape "
                    f"{array.shape}.",
                    "For one-hot labels pass `labels.argmax(-1)`.",
                )
            if num is not None and len(array) != num:
                raise self.error(
                    f"got {len(array)} labels for {num} image{'' if num == 1 else 's'}.",
                    f"Pass one label per image ({num}), a single int for all, or None "
                    "for a class-balanced cycle 0, 1, ..., K-1, 0, ...",
                )
        if array.size and (array.min() < 0 or array.max() >= self.num_classes):
            bad = array[(array < 0) | (array >= self.num_classes)]
            raise self.error(
                f"label {int(bad[0])} is outside [0, {self.num_classes}) (this model has "
                f"{self.num_classes} classes).",
                f"Pass class indices 0..{self.num_classes - 1}.",
            )
        return array.astype(np.int32)

    def check_training_batch(self, batch):
        """`batch` unchanged, after checking its labels (if any) against its images."""
        if isinstance(batch, (tuple, list)) and len(batch) > 1:
            labels = self.check(batch[1])
            if np.ndim(batch[1]) and len(labels) != len(batch[0]):  # an int labels every image
                raise self.count_error(len(labels), len(batch[0]))
        return batch

    def count_error(self, num_labels, num_images):
        """The error for a batch of `num_images` images and `num_labels` labels."""
        return self.error(
            f"a batch holds {num_images} images but {num_labels} labels.",
            f"Give one label per image: {_BATCH_THEM_TOGETHER}.",
        )

    def prediction_batch(self, batch):
        """A `predict` batch as Keras must read it: `((latents, labels),)`, labels checked.

        Keras reads a `(latents, labels)` pair from a dataset as `(x, y)` and
        drops `y`; a conditional model would then draw its default classes.
        """
        pair = _latents_and_labels(batch)
        if pair is None:
            return batch
        latents, labels = pair
        return ((latents, self.check(labels, num=len(latents))),)


def _one_label_each(labels, items, item):
    """`labels`, checked as the batch is read to be as many as `items` (an `item` each)."""
    return checked_at_run_time(
        labels,
        lambda message: tf.debugging.assert_equal(
            tf.shape(labels)[0], tf.shape(items)[0], message=message),
        f"A batch holds another number of labels than {item}s: give one label per "
        f"{item}: {_BATCH_THEM_TOGETHER}",
    )


def _latents_and_labels(batch):
    """`(latents, labels)` of a `predict` batch `(z, y)` or `((z, y),)`, else None."""
    if isinstance(batch, (tuple, list)) and len(batch) == 1:
        batch = batch[0]
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return tuple(batch)
    return None


def _checked_stream(x, check_dataset, check_batch):
    """`x` with each batch checked on the host as it is read (so under XLA too):
    a `tf.data.Dataset` by `check_dataset(x)`, a generator's or `PyDataset`'s
    batches by `check_batch(batch)` (in the PyDataset's workers); arrays unchanged."""
    if isinstance(x, tf.data.Dataset):
        return check_dataset(x)
    if isinstance(x, types.GeneratorType):
        return (check_batch(batch) for batch in x)
    if isinstance(x, keras.utils.PyDataset):
        return _CheckedPyDataset(x, check_batch)
    return x


class _CheckedPyDataset(keras.utils.PyDataset):
    """A `keras.utils.PyDataset` whose batches pass through `check` as they are made.

    Checks run where the batches are made, on the host: XLA (`jit_compile`)
    drops assertions inside a step.
    """

    def __init__(self, batches, check):
        super().__init__(
            workers=batches.workers, use_multiprocessing=batches.use_multiprocessing,
            max_queue_size=batches.max_queue_size,
        )
        self.batches, self.check = batches, check

    @property
    def num_batches(self):
        return self.batches.num_batches

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, index):
        return self.check(self.batches[index])

    def on_epoch_begin(self):
        self.batches.on_epoch_begin()

    def on_epoch_end(self):
        self.batches.on_epoch_end()


@keras.saving.register_keras_serializable(package="kgan")
class ConditionalGAN(GAN):
    """Class-conditional GAN: label-embedding generator, projection discriminator.

    **Batches** are `(images, labels)`: float32 images in [-1, 1] and
    integer class indices `[B]` in `[0, num_classes)`, what
    `kgan.data.load(name, with_labels=True)` yields (`fit(x=images,
    y=labels)` works too). Each `train_step` makes one discriminator update,
    then one generator update against the updated discriminator (as
    `DCGAN`). **Fake images are drawn for the real batch's labels**: the
    generated class mix then follows the data's (StyleGAN2-ADA also samples
    conditions from the training labels), and every class appears equally
    often as real and as fake in a discriminator batch, so the projection
    term cannot score a class's mere frequency.

    **Loss: hinge by default** (`adversarial_loss="hinge"`), the loss the
    projection discriminator was introduced with (Miyato & Koyama 2018; also
    SNGAN, SAGAN, BigGAN). Its discriminator loss is zero once a real logit
    exceeds 1 (or a fake one is below -1), so the discriminator stops
    pushing already-separated examples -- on a small training set that slows
    it memorizing the reals, the failure DiffAugment also fights.
    `"non_saturating"` (DCGAN's loss) is available for comparison.

    **Within-class diversity: the mode-seeking term** (`mode_seeking`,
    MSGAN, Mao et al. 2019). Trained on a few images per class, a
    conditional GAN collapses *within* each class -- every latent draws the
    same digit -- while the same networks trained unconditionally on the
    same images stay diverse ("collapse by conditioning", Shahbazi et al.
    2022): the class signal makes matching one prototype per class, which the
    class-wise discriminator can barely tell from 10-50 memorized reals, the
    generator's easiest move, and it stops using its latents (on 50 MNIST
    digits per class: per-pixel std across latents 0.047, recall 0.01;
    unconditional: 0.32, 0.72). The figures in this docstring were measured
    for commit 681b6bd (`kgan.benchmarks.low_data.train_gan`, 32 filters, 1,200
    steps, seed 0); the command that measured them was not recorded.
    `tests/models/test_conditional.py::test_few_shot_training_stays_diverse_within_each_class`
    measures the same std (20 digits per class, 600 steps). The mode-seeking term adds
    `mode_seeking * mean(1 / (|G(z1, y) - G(z2, y)| / |z1 - z2| + 1e-5))` to
    the generator loss, with the batch's latents paired `(i, i + B/2)` and
    both given the first one's label (no extra generator pass). This is a
    per-pair variant of MSGAN's term: the authors' code takes one ratio of
    batch means, `1 / (mean|dG| / mean|dz| + 1e-5)`, where kgan averages the
    pairs' reciprocals, so the most collapsed pairs weigh most (their
    gradient grows as `1 / ratio^2`). The default weight was tuned for
    kgan's form and does not carry over to the authors'. It is the
    lever that measured best; the weight trades diversity against how
    strictly samples keep their class (see `mode_seeking` below).
    Transitional conditioning (`transition_steps`, Shahbazi et al. 2022) and
    conditional batch norm (`conditioning="cbn"`) are available as options;
    on the same runs neither fixed it: ramping the label in over steps
    200-800 or 400-1200 still collapsed once it arrived (std 0.03-0.04), and
    conditional batch norm (class terms initialized at zero) stayed diverse
    but learned the classes too slowly (label agreement 0.14). Hinge or
    non-saturating loss, dropping cutout, ADA and discriminator dropout 0.3
    all stayed collapsed (std <= 0.05). A smaller label embedding
    (`embedding_dim=10`) helps partly (std 0.14).

    Defaults otherwise follow DCGAN, whose networks these are: Adam(2e-4,
    beta_1=0.5) for both networks, batch norm, N(0, 0.02) init.

    **Export** (`kgan.export.export_generator` / `export_tflite`): the
    signatures `serving_default(latents, labels)` (float32 images, exactly
    `generate_from_latents`) and `generate_uint8(latents, labels)`, with
    int32 `labels`. A label outside `[0, num_classes)` fails: in the
    SavedModel with an error naming the range, in TFLite with the
    interpreter's "gather index out of bounds".

    Args:
        generator: `[latents, labels]` -> images model (see
            `kgan.networks.conditional_generator`).
        discriminator: `[images, labels]` -> logits model (see
            `kgan.networks.projection_discriminator`).
        num_classes: number of classes K.
        adversarial_loss: `"hinge"` or `"non_saturating"`.
        seed: seed of the model's random stream.
        ema_decay: keep an EMA generator with this decay (see `GAN`).
        augment: DiffAugment policy, e.g. `"color,translation,cutout"`, or
            `"ada"` (adaptive augmentation, see `GAN`). Labels are not
            augmented: the transforms keep an image's class.
        transition_steps: `(start, end)` generator steps of transitional
            conditioning: the class signal in both networks (the generator's
            label embedding or class-wise batch-norm terms, and the
            projection term) is scaled by 0 before `start`, ramped linearly
            to 1 at `end`, 1 after. None (default): fully conditional from
            the start.
        mode_seeking: weight of the mode-seeking term (0 off; see above).
            Default 0.2: on 50 digits per class (681b6bd, see above) it took
            per-pixel std across latents from 0.047 to 0.26 and recall from
            0.01 to 0.67, at label agreement 0.80 instead of 0.97 (0.1: std
            0.23, agreement 0.79; 0.5: 0.34, 0.63; 1.0: 0.40, 0.49). For FCD
            with the default see the README's low-data tables (their
            commands are given there).
        **kwargs: passed to `GAN` / `keras.Model` (e.g. `name`, `ada_target`).

    Example:

    ```python
    gan = kgan.models.ConditionalGAN.from_image_shape(
        (28, 28, 1), num_classes=10, augment="color,translation,cutout")
    gan.compile()
    gan.fit(kgan.data.load("mnist_5k", batch_size=64, with_labels=True), epochs=5)
    sevens = gan.generate(16, labels=7, seed=0)  # float32 in [-1, 1]
    ```
    """

    takes_labels = True

    def __init__(
        self, generator, discriminator, num_classes, adversarial_loss="hinge", seed=None,
        ema_decay=None, augment=None, transition_steps=None, mode_seeking=0.2, **kwargs,
    ):
        if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or (
            num_classes < 2
        ):
            raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}.")
        if adversarial_loss not in LOSSES:
            raise ValueError(
                f"adversarial_loss must be one of {', '.join(map(repr, LOSSES))}, got "
                f"{adversarial_loss!r}."
            )
        for role, net, first in (
            ("generator", generator, "latents"), ("discriminator", discriminator, "images")
        ):
            if isinstance(net, keras.Model) and len(getattr(net, "inputs", None) or []) != 2:
                raise ValueError(
                    f"A ConditionalGAN {role} takes two inputs, [{first}, labels]; this one "
                    f"takes {len(net.inputs or [])}. Build it with "
                    "kgan.networks.conditional_generator / projection_discriminator."
                )
        super().__init__(
            generator, discriminator, seed=seed, ema_decay=ema_decay, augment=augment, **kwargs
        )
        self.num_classes = int(num_classes)
        self.adversarial_loss = adversarial_loss
        if transition_steps is not None:
            start, end = (int(v) for v in transition_steps)
            if not 0 <= start < end:
                raise ValueError(
                    f"transition_steps must be (start, end) with 0 <= start < end, got "
                    f"{transition_steps!r}."
                )
            transition_steps = (start, end)
        self.transition_steps = transition_steps
        if not float(mode_seeking) >= 0.0:
            raise ValueError(f"mode_seeking must be >= 0, got {mode_seeking!r}.")
        self.mode_seeking = float(mode_seeking)

    @classmethod
    def from_image_shape(
        cls, image_shape, num_classes, latent_dim=100, filters=64, embedding_dim=50,
        adversarial_loss="hinge", seed=None, ema_decay=None, refine_layers=0, dropout=0.0,
        augment=None, conditioning="concat", mode_seeking=0.2, transition_steps=None, **kwargs,
    ):
        """Build a conditional GAN with DCGAN-sized networks for `image_shape`.

        Args:
            image_shape: `(H, W, C)`, e.g. `(28, 28, 1)` or `(32, 32, 3)`.
            num_classes: number of classes K (labels are ints in `[0, K)`).
            latent_dim: latent size.
            filters: base width of both networks.
            embedding_dim: size of the generator's label embedding.
            adversarial_loss: `"hinge"` (default) or `"non_saturating"`.
            seed: seed of the model's random stream.
            ema_decay: keep an EMA generator with this decay (see `GAN`).
            refine_layers: stride-1 generator blocks at the start resolution.
            dropout: discriminator dropout rate.
            augment: DiffAugment policy, e.g. `"color,translation,cutout"`, or `"ada"`.
            conditioning: `"concat"` or `"cbn"` (see `conditional_generator`).
            mode_seeking: weight of the mode-seeking term (see the class docstring).
            transition_steps: `(start, end)` of transitional conditioning, or None.
            **kwargs: passed to the constructor (e.g. `name`, `ada_target`).

        Example:

        ```python
        gan = ConditionalGAN.from_image_shape((32, 32, 3), num_classes=10, latent_dim=128)
        ```
        """
        return cls(
            generator=conditional_generator(
                image_shape, num_classes, latent_dim=latent_dim, filters=filters,
                embedding_dim=embedding_dim, refine_layers=refine_layers,
                conditioning=conditioning,
            ),
            discriminator=projection_discriminator(
                image_shape, num_classes, filters=filters, dropout=dropout
            ),
            num_classes=num_classes,
            adversarial_loss=adversarial_loss,
            seed=seed,
            ema_decay=ema_decay,
            augment=augment,
            mode_seeking=mode_seeking,
            transition_steps=transition_steps,
            **kwargs,
        )

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_classes": self.num_classes, "adversarial_loss": self.adversarial_loss,
            "transition_steps": (
                list(self.transition_steps) if self.transition_steps is not None else None
            ),
            "mode_seeking": self.mode_seeking,
        })
        return config

    # ------------------------------------------------------------------ labels
    def _label_rules(self):
        return _LabelRules(type(self).__name__, self.num_classes)

    def _label_error(self, problem, fix=None, dtype=False):
        """An InputValidationError (InputDTypeError for a wrong dtype) naming problem and fix."""
        return self._label_rules().error(problem, fix, dtype)

    def _check_label_spec(self, labels):
        """Static checks of a training batch's labels; returns int32 `[B]` (trace time)."""
        dtype = tf.as_dtype(labels.dtype)
        if not dtype.is_integer:
            raise self._label_error(
                f"labels must be integer class indices, got dtype {dtype.name}.",
                "Cast them, e.g. `tf.cast(y, 'int32')`; for one-hot labels use "
                "`tf.argmax(y, -1)`.",
                dtype=True,
            )
        if tf.TensorShape(labels.shape).rank is None:
            # Keras retraced the step for labels of another rank than a previous
            # fit's ([N] then [N, 1]) and relaxed their shape; fit checked this
            # batch's layout before training, so it is one of those two.
            return tf.cast(tf.reshape(labels, [-1]), tf.int32)
        shape = tuple(labels.shape)
        if len(shape) == 2 and shape[1] == 1:  # keras.datasets' [N, 1] layout
            labels = tf.reshape(labels, [-1])
        elif len(shape) != 1:
            hint = " (one-hot? use `tf.argmax(y, -1)`)" if len(shape) == 2 else ""
            raise self._label_error(
                f"labels must have shape [batch], got {shape}{hint}.",
                "Yield one class index per image.",
            )
        return tf.cast(labels, tf.int32)

    def _split_batch(self, data):
        # Labels may be None here: fit() checks images of an `x`-only first
        # batch before it knows `y`; train_step refuses missing labels.
        images, labels = super()._split_batch(data)
        if labels is not None:
            labels = self._check_label_spec(tf.convert_to_tensor(labels))
            self._check_label_count(labels.shape[0], images.shape[0])
        return images, labels

    def _label_count_error(self, num_labels, num_images):
        return self._label_rules().count_error(num_labels, num_images)

    def _check_label_count(self, num_labels, num_images):
        """Refuse a batch of `num_images` images and another number of labels (None: unknown)."""
        if num_labels is not None and num_images is not None and num_labels != num_images:
            raise self._label_count_error(num_labels, num_images)

    def _check_first_batch(self, images, labels):
        """Static checks of the batch `fit` reads first: images, then labels and their count."""
        # Images first: an unbatched (image, label) dataset is "one image, not
        # a batch" (as a DCGAN says), not "labels must have shape [batch]".
        self._check_image_spec(np.shape(images), images.dtype)
        labels = self._check_label_spec(tf.convert_to_tensor(labels))
        self._check_label_count(labels.shape[0], np.shape(images)[0])

    def _missing_labels_error(self):
        return self._label_error(
            "got images without labels; a conditional GAN trains on (images, labels) batches.",
            "Load the data with kgan.data.load(name, with_labels=True) or "
            "kgan.data.from_numpy(images, labels), or call fit(x=images, y=labels).",
        )

    def check_labels(self, labels, num=None):
        """Validate labels on the host; return them as int32 numpy `[N]`.

        Accepts an int (one class for all), or a sequence/array/tensor of
        integer class indices of shape `[num]` (or `[num, 1]`).

        Raises:
            InputValidationError: the wrong shape or length, or a class
                outside `[0, num_classes)`; `InputDTypeError` (also a
                `TypeError`) for floats, bools or strings. The message says
                what to pass instead.

        Example:

        ```python
        gan.check_labels([0, 3, 9], num=3)  # array([0, 3, 9], dtype=int32)
        ```
        """
        return self._label_rules().check(labels, num)

    def balanced_labels(self, num):
        """The class-balanced cycle `0, 1, ..., K-1, 0, 1, ...` of length `num`.

        Example:

        ```python
        gan = kgan.zoo.load("cgan_mnist_50shot")  # 10 classes
        gan.balanced_labels(12)  # array([0, 1, 2, ..., 9, 0, 1], dtype=int32)
        ```
        """
        return (np.arange(num) % self.num_classes).astype(np.int32)

    # ------------------------------------------------------------------ training
    def fit(self, x=None, y=None, *args, **kwargs):
        """`keras.Model.fit` after checking images and labels of the first batch.

        Takes a `tf.data.Dataset` of `(images, labels)` batches, a Python
        generator or `keras.utils.PyDataset` yielding them, or arrays
        `fit(x=images, y=labels)`. Label values are checked before training
        on the first batch (all of `y` for arrays), and every later batch as
        the pipeline, generator or `PyDataset` yields it (with or without
        XLA): a label outside `0..K-1` stops `fit` with an
        `InputValidationError` before that batch updates anything. A dataset
        already distributed over replicas
        (`strategy.experimental_distribute_dataset`) is checked inside the
        train step instead, which XLA (`jit_compile=True`) does not run.

        Example:

        ```python
        gan = kgan.ConditionalGAN.from_image_shape(
            (28, 28, 1), num_classes=10, latent_dim=16, filters=8, seed=0)
        gan.compile()
        data = kgan.data.load("mnist_5k", batch_size=64, with_labels=True)  # (images, labels)
        gan.fit(data.take(2), epochs=1)
        ```
        """
        if isinstance(x, tf.distribute.DistributedDataset):
            # Already split over the replicas: no first batch to look at here.
            # Its element spec tells whether there are labels; their values are
            # checked in every train step.
            spec = x.element_spec
            if not (isinstance(spec, (tuple, list)) and len(spec) > 1):
                raise self._missing_labels_error()
            self._check_labels_in_step(True)
            return super().fit(x, y, *args, **kwargs)
        if self._is_batch_stream(x):
            batch, x = self._peek_first_batch(x)
            if isinstance(batch, dict):
                raise self._dict_batch_error(batch)
            labels = batch[1] if isinstance(batch, (tuple, list)) and len(batch) > 1 else None
        else:
            labels = y
        if labels is None:
            raise self._missing_labels_error()
        if self._is_batch_stream(x):
            self._check_first_batch(batch[0], labels)
        # Every later batch as it is read, on the host, so under XLA too (which
        # drops in-step assertions and clamps a bad index to a valid class): a
        # dataset in its pipeline, beside prefetching; a generator as it yields.
        x = _checked_stream(x, self._with_label_check, self._label_rules().check_training_batch)
        self.check_labels(labels)  # arrays: all of y
        self._check_labels_in_step(False)
        return super().fit(x, y, *args, **kwargs)

    def _check_labels_of_batch(self, images, labels):
        """`train_on_batch`'s labels: present and classes `0..K-1` (their shape and
        count against the images were checked by `_split_batch`)."""
        if labels is None:
            raise self._missing_labels_error()
        self.check_labels(labels, num=len(images))

    def _dict_batch_error(self, data):
        return self._label_error(
            f"got a dict batch (keys {', '.join(map(repr, sorted(data)))}); a conditional GAN "
            "trains on (images, labels) tuples.",
            "Map the dataset to tuples, e.g. `dataset.map(lambda d: (d['image'], d['label']))`, "
            "or load it with kgan.data.load(name, with_labels=True).",
        )

    def _with_label_check(self, dataset):
        """`dataset` with each batch's labels checked to be classes `0..K-1` as it is read."""
        def checked(images, labels, *rest):
            # Pipelines of unknown batch size: counted as each batch is read.
            labels = _one_label_each(labels, images, "image")
            return (images, self._checked_labels(labels), *rest)

        return dataset.map(checked)

    def _check_labels_in_step(self, check):
        """Check labels inside the train step (only for distributed datasets; retraces on change)."""
        if getattr(self, "_labels_checked_in_step", False) != check:
            self._labels_checked_in_step = check
            self.train_function = None  # Keras traces it again on the next fit

    def discriminator_loss(self, real_logits, fake_logits):
        """Per-example discriminator loss `[B]` of the chosen adversarial loss."""
        return LOSSES[self.adversarial_loss][0](real_logits, fake_logits)

    def generator_loss(self, fake_logits):
        """Per-example generator loss `[B]` of the chosen adversarial loss."""
        return LOSSES[self.adversarial_loss][1](fake_logits)

    def conditioning_strength(self, step):
        """Strength of the class conditioning at generator step `step` (a tensor in [0, 1])."""
        step = tf.cast(step, tf.float32)
        if self.transition_steps is None:
            return tf.ones_like(step)
        start, end = self.transition_steps
        return tf.clip_by_value((step - start) / float(end - start), 0.0, 1.0)

    def _set_conditioning_strength(self):
        if self.transition_steps is None:
            return
        strength = self.conditioning_strength(self.g_optimizer.iterations)
        for net in (self.generator, self.discriminator):
            for layer in net._flatten_layers():
                if isinstance(layer, ConditioningStrength):
                    layer.strength.assign(strength)

    def mode_seeking_loss(self, latents, fakes):
        """A per-pair MSGAN term (Mao et al. 2019) for pairs `(i, i + B/2)` of one label.

        `1 / (mean|G(z1, y) - G(z2, y)| / mean|z1 - z2| + 1e-5)` per pair (the
        means over pixels and latent entries), averaged over pairs: small
        when different latents give different images. The authors take one
        ratio of batch means instead (see the class docstring).
        """
        half = tf.shape(latents)[0] // 2
        image_gap = tf.reduce_mean(
            tf.abs(tf.cast(fakes[:half] - fakes[half : 2 * half], tf.float32)), axis=[1, 2, 3]
        )
        latent_gap = tf.reduce_mean(tf.abs(latents[:half] - latents[half : 2 * half]), axis=1)
        # No pair (a batch, or a replica's share, of one example): no term,
        # not the NaN of a mean over nothing.
        terms = 1.0 / (image_gap / latent_gap + 1e-5)
        return tf.math.divide_no_nan(tf.reduce_sum(terms), tf.cast(half, terms.dtype))

    def _checked_labels(self, labels, message=None):
        """`labels`, checked at run time to be classes `0..K-1` (`fit` raises the message).

        Keras's embedding lookup wraps a negative index (-1 trained as class
        K-1, silently) and on GPUs returns zeros past the end. `message`
        (default: a training batch's) is what the error says.
        """
        return checked_at_run_time(
            labels,
            lambda message: tf.debugging.assert_equal(
                tf.reduce_all((labels >= 0) & (labels < self.num_classes)), True, message=message
            ),
            message or (
                f"A training batch holds a label outside the classes 0..{self.num_classes - 1} "
                f"of this {type(self).__name__}. Remove such examples from the pipeline (e.g. "
                f"an 'unlabelled' marker such as -1: `dataset.unbatch().filter(lambda x, y: "
                f"y >= 0)`) or build the model with more classes"
            ),
        )

    def _labels_in_range(self, labels):
        """`_checked_labels` in the train step, for distributed datasets only.

        `fit` checks a tf.data pipeline as it is read; XLA drops an assertion
        in the step.
        """
        if not getattr(self, "_labels_checked_in_step", False):
            return labels
        return self._checked_labels(labels)

    def train_step(self, data):
        real, labels = self._split_batch(data)
        if labels is None:
            raise self._missing_labels_error()
        labels = self._labels_in_range(labels)
        batch_size = tf.shape(real)[0]
        self._set_conditioning_strength()

        # Fakes outside the tape: the discriminator update does not
        # differentiate through the generator.
        fake = self.generator([self.sample_latents(batch_size), labels], training=True)
        with tf.GradientTape() as tape:
            real_logits = self.discriminator(
                [self.discriminator_view(real), labels], training=True
            )
            fake_logits = self.discriminator(
                [self.discriminator_view(fake), labels], training=True
            )
            d_loss = self.discriminator_loss(real_logits, fake_logits)
            self.observe_discriminator(real_logits, fake_logits)  # ADA r_t; no-op without ADA
            d_loss_scaled = self.scaled_loss(self.d_optimizer, d_loss)
        self.apply_gradients(
            self.d_optimizer, tape, d_loss_scaled, self.discriminator.trainable_variables
        )

        g_labels = labels
        if self.mode_seeking:
            # Pair example i with i + B/2: give both the first half's label.
            half = batch_size // 2
            g_labels = tf.concat([labels[:half], labels[:half], labels[2 * half :]], axis=0)
        with tf.GradientTape() as tape:
            latents = self.sample_latents(batch_size)
            fake = self.generator([latents, g_labels], training=True)
            fake_logits = self.discriminator(
                [self.discriminator_view(fake), g_labels], training=True
            )
            g_loss = self.generator_loss(fake_logits)
            if self.mode_seeking:
                g_loss = g_loss + self.mode_seeking * self.mode_seeking_loss(latents, fake)
            g_loss_scaled = self.scaled_loss(self.g_optimizer, g_loss)
        self.apply_gradients(
            self.g_optimizer, tape, g_loss_scaled, self.generator.trainable_variables
        )
        self.update_ema()
        return self.report_losses(d_loss=tf.reduce_mean(d_loss), g_loss=tf.reduce_mean(g_loss))

    def _recalibration_inputs(self, rng, batch_size):
        """`[latents, labels]` with uniformly drawn labels, for `recalibrate_ema_statistics`."""
        latents = rng.standard_normal((batch_size, self.latent_dim)).astype("float32")
        labels = rng.integers(0, self.num_classes, batch_size).astype("int32")
        return [tf.constant(latents), tf.constant(labels)]

    # ------------------------------------------------------------------ inference
    def call(self, inputs, training=False):
        """Run the (EMA, if enabled) generator on `[latents, labels]`.

        Latents alone get the class-balanced cycle of labels, so `predict(z)`
        and building under a distribution strategy work as for other GANs.
        Labels are checked as `generate`'s are: a class outside
        `[0, num_classes)` raises `InputValidationError` (eagerly at once, in
        a traced call such as `predict`'s when it runs; XLA drops that
        assertion, but `predict` checks label arrays before it runs).
        """
        if isinstance(inputs, (list, tuple)):
            latents, labels = inputs
            labels = self._checked_call_labels(labels)
        else:
            latents = inputs
            labels = tf.math.floormod(tf.range(tf.shape(latents)[0]), self.num_classes)
        self._check_latent_spec(latents)
        return self.sampling_generator([latents, tf.cast(labels, tf.int32)], training=training)

    def _checked_call_labels(self, labels):
        """`call`'s labels as int32 `[N]`, refused outside `[0, num_classes)`.

        Keras's embedding lookup wraps -1 to class K-1 silently, and fails
        past the end with a raw GatherV2 error.
        """
        if tf.executing_eagerly() and not isinstance(labels, keras.KerasTensor):
            return self.check_labels(labels)
        labels = self._check_label_spec(tf.convert_to_tensor(labels))
        return self._checked_labels(labels, self._call_label_message())

    def _check_predict_inputs(self, x):
        if isinstance(x, (list, tuple)) and len(x) == 2:
            latents, labels = x
            if isinstance(latents, (np.ndarray, tf.Tensor)):
                self._check_latent_spec(latents)
            if isinstance(labels, (np.ndarray, tf.Tensor, list)):
                self.check_labels(labels, num=len(latents))
            return
        super()._check_predict_inputs(x)

    def predict(self, x, *args, **kwargs):
        """`keras.Model.predict` on latents and labels: images in [-1, 1].

        Takes `[latents, labels]` arrays, latents alone (the class-balanced
        cycle of labels), or a `tf.data.Dataset`, Python generator or
        `keras.utils.PyDataset` of `(latents, labels)` batches (or
        `((latents, labels),)`). Keras alone would read a `(latents, labels)`
        batch as `(x, y)` and drop the labels. Labels are checked on the host
        as the batches are read (so under XLA too): a class outside
        `[0, num_classes)` raises `InputValidationError`.

        Example:

        ```python
        z = gan.latents(6, seed=0)
        batches = tf.data.Dataset.from_tensor_slices((z, [0, 1, 2, 0, 1, 2])).batch(3)
        images = gan.predict(batches, verbose=0)  # [6, H, W, C], classes 0, 1, 2, 0, 1, 2
        ```
        """
        x = _checked_stream(x, self._checked_prediction_dataset,
                            self._label_rules().prediction_batch)
        return super().predict(x, *args, **kwargs)

    def _checked_prediction_dataset(self, dataset):
        """`dataset` of `(latents, labels)` batches as `((latents, labels),)`, labels
        checked as each batch is read; other datasets unchanged."""
        spec = dataset.element_spec
        if _latents_and_labels(spec) is None:
            return dataset

        def checked(*batch):
            latents, labels = _latents_and_labels(batch)
            labels = _one_label_each(self._check_label_spec(labels), latents, "latent vector")
            return ((latents, self._checked_labels(labels, self._call_label_message())),)

        return dataset.map(checked)

    def _call_label_message(self):
        return (
            f"A label passed to this {type(self).__name__} is outside its classes "
            f"0..{self.num_classes - 1}: pass class indices 0..{self.num_classes - 1}"
        )

    def generate_from_latents(self, latents, batch_size=256, *, labels=None):
        """Images (float32 numpy in [-1, 1]) for the given latents and labels.

        Args:
            latents: `[N, latent_dim]`.
            batch_size: images per generator call (second, as in `GAN`, so
                the base class's helpers can call this positionally).
            labels: None (the class-balanced cycle 0..K-1), an int (all that
                class), or N integer class indices.

        Raises:
            InputValidationError: bad latents (see `GAN.generate_from_latents`)
                or bad labels (see `check_labels`).
        """
        latents = self._check_latents(latents)
        labels = (
            self.balanced_labels(len(latents)) if labels is None
            else self.check_labels(labels, len(latents))
        )
        if self._inference_fn is None:

            def sample(z, y):
                return tf.cast(self.sampling_generator([z, y], training=False), tf.float32)

            self._inference_fn = tf.function(sample, reduce_retracing=True)
        batch_size = positive_int(batch_size, "batch_size")
        outputs = [
            self._inference_fn(
                tf.constant(latents[i : i + batch_size]), tf.constant(labels[i : i + batch_size])
            ).numpy()
            for i in range(0, len(latents), batch_size)
        ]
        if not outputs:
            return np.zeros((0,) + self.image_shape, np.float32)
        return np.concatenate(outputs, axis=0)

    def generate(self, num, labels=None, seed=None, batch_size=256):
        """Sample `num` images of the requested classes (float32 `[num, H, W, C]`, [-1, 1]).

        Args:
            num: number of images.
            labels: None for the class-balanced cycle 0, 1, ..., K-1, 0, ...;
                an int for `num` images of that class; or `num` class indices.
            seed: int latent seed (same seed and labels, same images), or None.
            batch_size: images per generator call.

        Raises:
            InputValidationError: for labels that are floats, out of range,
                or not `num` long.
            ValueError: `num` images would not fit in the memory this process can use
                (use `generate_batches`).

        Example:

        ```python
        digits = gan.generate(10, seed=0)              # one of each class
        threes = gan.generate(16, labels=3, seed=0)
        mixed = gan.generate(3, labels=[0, 5, 5], seed=0)
        ```
        """
        num = self._check_samples_fit(num, "generate")
        if labels is not None:
            labels = self.check_labels(labels, num)  # before drawing latents
        return self.generate_from_latents(self.latents(num, seed), batch_size, labels=labels)

    def generate_batches(self, num, labels=None, seed=None, batch_size=256):
        """`generate(num, labels, seed)` as consecutive batches of at most `batch_size` images.

        Concatenated, the batches equal `generate(num, labels, seed, batch_size)`; only
        one batch is in memory at a time.
        """
        num = positive_int(num, "num")
        labels = self.balanced_labels(num) if labels is None else self.check_labels(labels, num)
        start = 0
        for latents in self.latent_batches(num, seed, batch_size):
            yield self.generate_from_latents(
                latents, batch_size, labels=labels[start : start + len(latents)]
            )
            start += len(latents)

    def generate_uint8(self, num, labels=None, seed=None, batch_size=256):
        """Like `generate`, as uint8 images ready for PNG encoding.

        Example:

        ```python
        gan = kgan.zoo.load("cgan_mnist_50shot")
        sevens = gan.generate_uint8(8, labels=7, seed=0)  # uint8 [8, 28, 28, 1]
        kgan.images.save_grid(sevens, "sevens.png")
        ```
        """
        from kgan.images import to_uint8

        num = self._check_samples_fit(num, "generate_uint8")
        return to_uint8(self.generate(num, labels=labels, seed=seed, batch_size=batch_size))

    def interpolate(self, z0, z1, steps, label=0):
        """Images of one class along the spherical interpolation from `z0` to `z1`."""
        from kgan.models.gan import slerp

        path = slerp(z0, z1, steps)
        return self.generate_from_latents(path, labels=self.check_labels(label, len(path)))

    def sample_sheet(self, seed=0, rows=None):
        """A class-by-latent sample sheet: `(images, ncols)` for `kgan.images.save_grid`.

        One column per class and one latent per row (shared along the row),
        so a row shows one "style" drawn as every class. Presets use it for
        `samples.png`.

        Args:
            seed: latent seed.
            rows: latents (rows); default 8, fewer for many classes.

        Example:

        ```python
        gan = kgan.zoo.load("cgan_mnist_50shot")
        images, ncols = gan.sample_sheet(seed=0, rows=4)  # 4 latents x 10 classes
        kgan.images.save_grid(images, "sheet.png", ncols=ncols)
        ```
        """
        if rows is None:
            rows = max(1, min(8, 80 // self.num_classes))
        latents = np.repeat(self.latents(positive_int(rows, "rows"), seed), self.num_classes, axis=0)
        labels = np.tile(np.arange(self.num_classes, dtype=np.int32), rows)
        return self.generate_from_latents(latents, labels=labels), self.num_classes


zoo.register_architecture(
    "conditional_gan", ConditionalGAN, ConditionalGAN.from_image_shape,
    "Class-conditional DCGAN: label-embedding generator, projection discriminator "
    "(Miyato & Koyama 2018), hinge loss, mode-seeking term; DiffAugment for small labeled sets",
)
