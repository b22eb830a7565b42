"""Adaptive discriminator augmentation (ADA; Karras et al. 2020).

"Training Generative Adversarial Networks with Limited Data" augments every
image the discriminator sees, real and generated, in both networks' updates,
each transform applied to each image with probability `p`. Below `p = 1`
the augmentations do not "leak" into the generated images (the augmented
distribution still identifies the clean one), so the generator learns the
clean data. `p` is not tuned by hand: it follows an overfitting heuristic,

    r_t = E[sign(D(x_real) - center)],

accumulated over `interval` discriminator updates (4, as in StyleGAN2-ADA's
`ada_interval`). When `r_t` is above `target` (0.6) the discriminator is too
sure of the training images and `p` grows, below it `p` shrinks, by
`sign(r_t - target) * images / (kimg * 1000)` where `images` is the number of
real images seen in the interval (`batch_size * interval`), so that `p` can
go from 0 to 1 in `kimg` thousand images (500 in StyleGAN2-ADA). `p` is
clipped to [0, 1): at `p = 1` the flips and quarter turns would leak.

**Transforms.** This is the "blit" group of ADA's `bgc` pipeline plus a
coarse version of its color group, and optionally cutout:

* `xflip`: horizontal flip (ADA: with prob. `p` choose flip/no flip, 50/50);
* `rotate90`: a random quarter turn, 0-3 (square images only; others skip it);
* `translation`: integer shifts of up to 1/8 of the image, zero fill (ADA
  pads by reflection; this reuses `kgan.augment`'s translation);
* `color`: DiffAugment's brightness/saturation/contrast (`kgan.augment.color`)
  as one transform, instead of ADA's five separately drawn color transforms
  (no hue rotation or luma flip);
* `cutout` (not in the default set; ADA's `bgcfnc` pipeline has it).

ADA's geometric group (arbitrary rotation, scaling, fractional translation
with a resampling filter) is not implemented. Every transform is a
per-image `tf.where` between the image and its transform, so gradients flow
through to the generator.

Every kgan architecture takes `augment="ada"` (see `kgan.models.GAN`).

Example:

```python
gan = kgan.models.DCGAN.from_image_shape((28, 28, 1), augment="ada", ada_kimg=100)
gan.compile()
history = gan.fit(kgan.data.load("mnist_5k", batch_size=64), epochs=5)
history.history["ada_p"]  # the augmentation probability after each epoch
```
"""

import numbers
import threading

import keras
import numpy as np
import tensorflow as tf

from kgan import augment as diff_augment

#: transforms `AdaptiveAugment` knows, in the order it applies them (ADA's order).
TRANSFORMS = ("xflip", "rotate90", "translation", "color", "cutout")

#: what `augment="ada"` uses: ADA's blit group plus color.
DEFAULT_TRANSFORMS = ("xflip", "rotate90", "translation", "color")

#: largest p: the float32 just below 1 (p is clipped to [0, 1)).
P_MAX = float(np.nextafter(np.float32(1.0), np.float32(0.0)))

#: `center` value that makes the heuristic invariant to a shift of the scores.
MIDPOINT = "midpoint"


def is_ada(augment):
    """True if `augment` asks for ADA (`"ada"`); refuses ADA mixed with DiffAugment.

    Raises:
        ValueError: for a policy naming `ada` together with DiffAugment transforms.

    Example:

    ```python
    kgan.ada.is_ada("ada")                         # True
    kgan.ada.is_ada("color,translation,cutout")    # False: a DiffAugment policy
    kgan.ada.is_ada(None)                          # False
    # kgan.ada.is_ada("ada,color") raises ValueError: ADA picks its own transforms
    ```
    """
    if augment is None:
        return False
    names = augment.split(",") if isinstance(augment, str) else list(augment)
    names = [str(n).strip().lower() for n in names if str(n).strip()]
    if "ada" not in names:
        return False
    if len(names) > 1:
        raise ValueError(
            f"augment={augment!r} combines 'ada' with DiffAugment transforms, which is not "
            "supported: ADA chooses its own transforms and their probability. Pass "
            "augment='ada' or a DiffAugment policy such as 'color,translation,cutout'."
        )
    return True


def check_target(value):
    """`value` as a float in (0, 1), the range of a sensible r_t target.

    Example:

    ```python
    kgan.ada.check_target(0.6)  # 0.6, the paper's target
    # kgan.ada.check_target(1) raises ValueError: ada_target must be a number in (0, 1) ...
    ```
    """
    number = _number(value)
    if not 0.0 < number < 1.0:
        raise ValueError(
            f"ada_target must be a number in (0, 1) (the paper uses 0.6), got {value!r}."
        )
    return number


def check_kimg(value):
    """`value` as a positive float (thousands of images for p to go from 0 to 1).

    Example:

    ```python
    kgan.ada.check_kimg(500)  # 500.0, StyleGAN2-ADA's setting
    # kgan.ada.check_kimg(0) raises ValueError: ada_kimg must be a positive number ...
    ```
    """
    number = _number(value)
    if not 0.0 < number < float("inf"):
        raise ValueError(
            f"ada_kimg must be a positive number of thousands of images over which p may "
            f"go from 0 to 1 (StyleGAN2-ADA uses 500), got {value!r}."
        )
    return number


def check_interval(value):
    """`value` as a positive int (discriminator updates between adjustments of p).

    Example:

    ```python
    kgan.ada.check_interval(4)    # 4, as in StyleGAN2-ADA's code
    # kgan.ada.check_interval(2.0) raises ValueError: ada_interval must be a positive int ...
    ```
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(
            f"ada_interval must be a positive int of discriminator updates (the paper's "
            f"code uses 4), got {value!r}."
        )
    return int(value)


def _number(value):
    # Not float(value) of anything: "0.6" or True are a caller's mistake, not a number.
    if isinstance(value, (bool, str, bytes)):
        return float("nan")
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _check_center(value):
    if value == MIDPOINT:
        return value
    number = _number(value)
    if not np.isfinite(number):
        raise ValueError(
            f"center must be a number (0 for logits, 0.5 for least-squares outputs) or "
            f"{MIDPOINT!r}, got {value!r}."
        )
    return number


def _check_transforms(transforms):
    names = transforms.split(",") if isinstance(transforms, str) else list(transforms)
    names = [n.strip() for n in names if n.strip()]
    unknown = [n for n in names if n not in TRANSFORMS]
    if unknown or not names:
        raise ValueError(
            f"Unknown ADA transforms {unknown or transforms!r}; use a subset of "
            f"{', '.join(TRANSFORMS)}."
        )
    # Always ADA's order, whatever order they were given in.
    return tuple(n for n in TRANSFORMS if n in names)


# ---------------------------------------------------------------- transforms
def _chosen(p, seed, batch):
    """Bool `[B, 1, 1, 1]`: which images get the transform (each with probability p)."""
    drawn = tf.random.stateless_uniform([batch], seed=seed) < p
    return drawn[:, None, None, None]


def _xflip(images, p, seed):
    seeds = tf.random.experimental.stateless_split(seed, 2)
    batch = tf.shape(images)[0]
    # As ADA: a chosen image draws flip / no flip with equal odds.
    coin = tf.random.stateless_uniform([batch], seed=seeds[1]) < 0.5
    flip = tf.logical_and(_chosen(p, seeds[0], batch), coin[:, None, None, None])
    return tf.where(flip, tf.reverse(images, axis=[2]), images)


def _rotate90(images, p, seed):
    height, width = images.shape[1], images.shape[2]
    if height is None or height != width:
        return images  # a quarter turn would change a non-square image's shape
    seeds = tf.random.experimental.stateless_split(seed, 2)
    batch = tf.shape(images)[0]
    turns = tf.random.stateless_uniform([batch], seed=seeds[1], minval=0, maxval=4, dtype=tf.int32)
    turns = tf.where(_chosen(p, seeds[0], batch)[:, 0, 0, 0], turns, 0)[:, None, None, None]
    # k counter-clockwise quarter turns, per image, without gathers:
    # k odd -> transpose; k in {1, 2} -> flip rows; k in {2, 3} -> flip columns.
    x = tf.where(turns % 2 == 1, tf.transpose(images, [0, 2, 1, 3]), images)
    x = tf.where((turns == 1) | (turns == 2), tf.reverse(x, axis=[1]), x)
    return tf.where(turns >= 2, tf.reverse(x, axis=[2]), x)


def _translation(images, p, seed, ratio=0.125):
    seeds = tf.random.experimental.stateless_split(seed, 3)
    batch = tf.shape(images)[0]
    size = tf.shape(images)[1:3]
    limit = tf.cast(tf.cast(size, tf.float32) * ratio + 0.5, tf.int32)
    keep = tf.cast(_chosen(p, seeds[0], batch)[:, 0, 0, 0], tf.int32)  # 0: no shift
    dy = diff_augment._randint([batch], seeds[1], -limit[0], limit[0]) * keep
    dx = diff_augment._randint([batch], seeds[2], -limit[1], limit[1]) * keep
    shifted = diff_augment._shift_axis(images, dy, 1)
    return diff_augment._shift_axis(shifted, dx, 2)


def _whole(transform):
    """Apply a `kgan.augment` batch transform to each image with probability p."""

    def apply(images, p, seed):
        seeds = tf.random.experimental.stateless_split(seed, 2)
        chosen = _chosen(p, seeds[0], tf.shape(images)[0])
        return tf.where(chosen, transform(images, seeds[1]), images)

    return apply


_APPLY = {
    "xflip": _xflip,
    "rotate90": _rotate90,
    "translation": _translation,
    "color": _whole(diff_augment.color),
    "cutout": _whole(diff_augment.cutout),
}


# ---------------------------------------------------------------- the layer
@keras.saving.register_keras_serializable(package="kgan")
class AdaptiveAugment(keras.layers.Layer):
    """ADA's augmentation pipeline with its adaptive probability `p`.

    The state lives in non-trainable float32 Keras variables, so it is saved
    in `.keras` files, weights files and `BackupAndRestore` checkpoints:
    `p`, the last completed interval's `rt`, and the running sums of the
    current interval. Under a `tf.distribute` strategy the statistic is
    all-reduced over the replicas before `p` moves, so every replica
    computes the same new `p` (the variables use `only_first_replica`
    aggregation, as `kgan.layers.ImagePool` does) and `p` follows the
    *global* batch exactly as on one device.

    Args:
        target: the value of `r_t` to hold, in (0, 1) (0.6).
        kimg: thousands of real images over which `p` can move from 0 to 1
            (500, StyleGAN2-ADA's default; smaller reacts faster).
        interval: discriminator updates between adjustments of `p` (4).
        center: where `sign` is taken: `0.0` for logits (non-saturating,
            hinge), `0.5` for least-squares outputs with targets 0/1, or
            `"midpoint"`: halfway between the batch's mean real and mean fake
            score, for Wasserstein critics, whose scores have no fixed origin
            (their loss is unchanged by adding a constant).
        transforms: a subset of `TRANSFORMS` (default `DEFAULT_TRANSFORMS`),
            always applied in ADA's order.
        **kwargs: passed to `keras.layers.Layer` (e.g. `name`).

    Call it as `layer(images, seed=...)` with images `[B, H, W, C]` and a
    stateless seed (int `[2]`); call `observe(real_logits, fake_logits)` in
    every discriminator update.

    Example:

    ```python
    ada = AdaptiveAugment(target=0.6, kimg=500)
    seen_by_d = ada(images, seed=tf.constant([1, 2]))
    ada.observe(discriminator(seen_by_d))  # after `interval` calls, p moves
    ```
    """

    def __init__(
        self, target=0.6, kimg=500.0, interval=4, center=0.0, transforms=DEFAULT_TRANSFORMS,
        **kwargs,
    ):
        kwargs["dtype"] = "float32"  # p and the statistic stay float32 under mixed precision
        super().__init__(**kwargs)
        self.target = check_target(target)
        self.kimg = check_kimg(kimg)
        self.interval = check_interval(interval)
        self.center = _check_center(center)
        self.transforms = _check_transforms(transforms)

        def state(name, dtype="float32"):
            # only_first_replica: every replica computes the same value from
            # all-reduced statistics; one copy is kept and broadcast.
            return self.add_weight(
                shape=(), initializer="zeros", dtype=dtype, trainable=False, name=name,
                aggregation="only_first_replica",
            )

        self.p = state("p")
        self.rt = state("rt")
        self.sign_sum = state("sign_sum")
        self.image_count = state("image_count")
        self.updates = state("updates", "int32")
        # Thread ids of the traces that called `observe`: MirroredStrategy traces
        # its replicas in concurrent threads, so one shared flag would race.
        self._observed_by = {}
        self.built = True  # no input-dependent weights

    # ------------------------------------------------------------ augmentation
    def call(self, images, seed):
        """`images` with each transform applied to each image with probability p.

        Returns float32 `[B, H, W, C]`; exactly `images` while `p == 0`
        (the transforms are then skipped).
        """
        images = tf.cast(images, tf.float32)
        if images.shape.rank != 4:
            raise ValueError(
                f"AdaptiveAugment takes image batches [B, H, W, C], got shape {images.shape}."
            )
        p = tf.convert_to_tensor(self.p)
        seeds = tf.random.experimental.stateless_split(
            tf.cast(seed, tf.int64), len(self.transforms)
        )

        def augmented():
            x = images
            for index, name in enumerate(self.transforms):
                x = _APPLY[name](x, p, seeds[index])
            return x

        # Early in training p is 0 for a long time: skip the work then.
        out = tf.cond(p > 0.0, augmented, lambda: images)
        out.set_shape(images.shape)
        return out

    def compute_output_spec(self, images, seed=None):
        return keras.KerasTensor(images.shape, dtype="float32")

    # ------------------------------------------------------------ the heuristic
    def observe(self, real_logits, fake_logits=None):
        """Accumulate r_t from one discriminator update; move p every `interval` calls.

        Args:
            real_logits: the discriminator's outputs on the (augmented) real
                batch, `[B, ...]` (PatchGAN maps are averaged per image).
            fake_logits: its outputs on the fake batch; only needed (and
                then required) with `center="midpoint"`.

        In a replica of a `tf.distribute` strategy the sums are all-reduced,
        so `p` moves by the global batch's statistic, the same on every
        replica. Gradients do not flow through this.
        """
        self._observed_by[threading.get_ident()] = True  # checked by GAN.report_losses
        real = _per_image(real_logits)
        context = tf.distribute.get_replica_context()

        def global_sum(values):
            # None: cross-replica context, where the caller holds the global batch.
            return values if context is None else context.all_reduce("sum", values)

        if self.center == MIDPOINT:
            if fake_logits is None:
                raise ValueError(
                    "This AdaptiveAugment measures r_t from the midpoint of the real and fake "
                    "scores (center='midpoint'): pass fake_logits to observe()."
                )
            fake = _per_image(fake_logits)
            sums = global_sum(tf.stack([
                tf.reduce_sum(real), tf.cast(tf.size(real), tf.float32),
                tf.reduce_sum(fake), tf.cast(tf.size(fake), tf.float32),
            ]))
            center = 0.5 * (sums[0] / sums[1] + sums[2] / sums[3])
        else:
            center = self.center
        signs = tf.reduce_mean(tf.sign(real - center), axis=1)  # one value per image
        totals = global_sum(
            tf.stack([tf.reduce_sum(signs), tf.cast(tf.shape(signs)[0], tf.float32)])
        )

        sign_sum = self.sign_sum + totals[0]
        image_count = self.image_count + totals[1]
        # After the data: the call that ends an epoch of a pipeline of unknown
        # length has none, and must not count as an update (see GAN.report_losses).
        with tf.control_dependencies([totals]):
            updates = self.updates + 1
        due = updates >= self.interval
        rt = sign_sum / tf.maximum(image_count, 1.0)
        # The paper's speed: `image_count` (= batch * interval) images move p
        # by image_count / (kimg * 1000), so 0 -> 1 takes kimg thousand images.
        step = tf.sign(rt - self.target) * image_count / (self.kimg * 1000.0)
        self.p.assign(tf.where(due, tf.clip_by_value(self.p + step, 0.0, P_MAX), self.p))
        self.rt.assign(tf.where(due, rt, self.rt))
        self.sign_sum.assign(tf.where(due, 0.0, sign_sum))
        self.image_count.assign(tf.where(due, 0.0, image_count))
        self.updates.assign(tf.where(due, 0, updates))

    def check_observed(self, model_name):
        """Raise unless `observe` ran since the last check (trace-time guard).

        Without it, a `train_step` that forgets to report the discriminator's
        real outputs would train with a `p` frozen at 0, silently.
        """
        if not self._observed_by.pop(threading.get_ident(), False):
            raise RuntimeError(
                f"{model_name} was built with augment='ada', but its train_step never called "
                "self.observe_discriminator(real_logits, fake_logits) in its discriminator "
                "update, so the augmentation probability could not adapt. Call it with the "
                "discriminator's outputs on the (augmented) real and fake batches."
            )

    def metrics(self, suffix=""):
        """Read-only Keras metrics `ada_p{suffix}` and `ada_rt{suffix}` for the logs."""
        return [
            _Readout(lambda: self.p.value, name=f"ada_p{suffix}"),
            _Readout(lambda: self.rt.value, name=f"ada_rt{suffix}"),
        ]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.pop("dtype", None)  # always float32 (set in __init__)
        config.update({
            "target": self.target,
            "kimg": self.kimg,
            "interval": self.interval,
            "center": self.center,
            "transforms": list(self.transforms),
        })
        return config


def _per_image(logits):
    """float32 `[B, K]` without gradient: per-image outputs (K = 1, or PatchGAN's patches)."""
    logits = tf.stop_gradient(tf.cast(logits, tf.float32))
    return tf.reshape(logits, [tf.shape(logits)[0], -1])


class _Readout(keras.metrics.Metric):
    """A metric that reports a variable's current value (not an average).

    `fit` logs come from the model's metrics; `p` is a state, not a running
    mean, so epoch logs show its value at the end of the epoch.
    """

    def __init__(self, read, name):
        super().__init__(name=name, dtype="float32")
        self._read = read  # a function, so the variable is not tracked twice

    def update_state(self, *args, **kwargs):
        pass

    def reset_state(self):
        pass

    def result(self):
        return tf.identity(self._read())
