"""Time to quality: how long kgan's DCGAN takes to match a plain baseline's quality.

The baseline is the keras.io-style DCGAN of `kgan.benchmarks.baselines`
(the same networks as kgan's DCGAN, float32, ordinary `compile()`/`fit`,
the keras.io input pipeline) trained for `--baseline-epochs` (30) epochs on
the embedded MNIST data; its FCD (kgan's MNIST evaluator, `--num` samples
against `mnist_5k train[:50%]`) is the target. kgan's DCGAN is then trained
as `kgan train dcgan` trains it (`kgan.performance` defaults: mixed
bfloat16 where the CPU/GPU has it, steps per execution, kgan's pipeline),
measuring its FCD after every epoch until it reaches the target. Reported:
training wall time of each side (evaluation time excluded from both) and
the ratio baseline time / kgan time to reach the baseline's quality
(`speedup_to_baseline_quality`).

The baseline's FCD is measured after every epoch too, because it need not
improve over its 30 epochs: on `mnist_5k` it reached its 30-epoch FCD after
4 and then oscillated. So the result also has the first epoch at which the
baseline itself was at least as good as after its last
(`baseline.first_reached`), and the ratio of that time to kgan's
(`speedup_to_first_reach`): the speed-up on equal terms, each side stopped
as soon as it is as good as the target.

`--ablation` answers where kgan's fewer epochs come from instead: it
trains the keras.io DCGAN with each combination of its discriminator
step's two departures from kgan's (one call on real + fake instead of two,
and noisy labels) and reports the FCD after every epoch of each
(`ablation`).

Example:

```sh
python -m kgan.benchmarks.time_to_quality --json time_to_quality.json
python -m kgan.benchmarks.time_to_quality --ablation --baseline-epochs 8
```
"""

import argparse
import functools
import json
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from kgan import data, evaluators, metrics, performance, zoo
from kgan._checks import positive_int
from kgan.atomic import check_output_file, write_text
from kgan.benchmarks import baselines, report_error

IMAGE_SHAPE = (28, 28, 1)


class _TrainTimer(keras.callbacks.Callback):
    """Wall time spent inside epochs (so evaluation between epochs is not counted)."""

    def __init__(self):
        super().__init__()
        self.seconds = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds += time.perf_counter() - self._start


class _Sampler:
    """A generator network as something `metrics.features_from` samples."""

    def __init__(self, generator, latent_dim):
        self.generator, self.latent_dim = generator, latent_dim
        self.image_shape = IMAGE_SHAPE

    def generate(self, num, seed=None, batch_size=256):
        latents = np.random.default_rng(seed).standard_normal((num, self.latent_dim)).astype("float32")
        return np.concatenate([
            np.asarray(self.generator(latents[i : i + batch_size], training=False), "float32")
            for i in range(0, num, batch_size)
        ])


def _fcd(sampler, real_stats, extractor, num, seed):
    fake = metrics.features_from(sampler, extractor, num=num, seed=seed)
    return float(metrics.fid_from_stats(real_stats, fake))


def _check_budget(**values):
    for name, value in values.items():
        positive_int(value, name)


def _fcd_after_each_epoch(model, pipeline, sampler, epochs, fcd_of, timer=None):
    """Fit `model` one epoch at a time; after each, yield `(point, fcd)`.

    `point` is the JSON-ready `{"epoch", "fcd"}` (rounded), plus
    `"train_seconds"` so far when a `_TrainTimer` is given; `fcd` is unrounded.
    """
    for epoch in range(1, epochs + 1):
        model.fit(pipeline, initial_epoch=epoch - 1, epochs=epoch, verbose=0,
                  callbacks=[timer] if timer else [])
        fcd = fcd_of(sampler)
        point = {"epoch": epoch}
        if timer:
            point["train_seconds"] = round(timer.seconds, 1)
        point["fcd"] = round(fcd, 2)
        yield point, fcd


def _evaluation_setup(num, seed):
    """kgan's MNIST extractor, the real images' statistics, and the training images in [-1, 1]."""
    extractor = evaluators.mnist_extractor()
    real = data.load("mnist_5k", split="train[:50%]", batch_size=250, shuffle=False,
                     drop_remainder=False, cache=False)
    real_stats = metrics.features_from(real, extractor, num=num, seed=seed)
    images, _ = data.load_mnist_5k()
    return extractor, real_stats, images.astype("float32") / 127.5 - 1.0


class _DiscriminatorStepVariant(baselines.KerasIODCGAN):
    """The keras.io DCGAN with its discriminator step's two choices switchable.

    With `separate_calls=False, label_noise=True` it is the keras.io step op
    for op (same random draws); `separate_calls=True` scores fakes and reals
    in two discriminator calls (each batch normalized by its own statistics,
    as kgan does) and averages the two losses, which is the one call's loss.
    """

    separate_calls = False
    label_noise = True

    def discriminator_step(self, real_images, batch_size):
        random_latent_vectors = tf.random.normal(shape=(batch_size, self.latent_dim))
        generated_images = self.generator(random_latent_vectors, training=True)
        labels = tf.concat([tf.ones((batch_size, 1)), tf.zeros((batch_size, 1))], axis=0)
        if self.label_noise:
            labels += 0.05 * tf.random.uniform(tf.shape(labels))
        with tf.GradientTape() as tape:
            if self.separate_calls:
                fake_labels, real_labels = labels[:batch_size], labels[batch_size:]
                d_loss = 0.5 * (
                    self.loss_fn(fake_labels, self.discriminator(generated_images, training=True))
                    + self.loss_fn(real_labels, self.discriminator(real_images, training=True))
                )
            else:
                combined_images = tf.concat([generated_images, real_images], axis=0)
                d_loss = self.loss_fn(labels, self.discriminator(combined_images, training=True))
        grads = tape.gradient(d_loss, self.discriminator.trainable_weights)
        self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_weights))
        return d_loss


#: `ablation`'s discriminator steps: label -> (separate_calls, label_noise).
ABLATION_STEPS = {
    "keras.io: one call on real + fake, label noise": (False, True),
    "one call, no label noise": (False, False),
    "separate calls, label noise": (True, True),
    "separate calls, no label noise (kgan's step)": (True, False),
}


def ablation(epochs=8, batch_size=64, num=2500, seed=0, log=print):
    """FCD after every epoch of the keras.io DCGAN, once per discriminator step.

    Each variant (`ABLATION_STEPS`) starts from the same networks and seed,
    in float32 with the keras.io pipeline; only the discriminator step
    differs.

    Returns:
        `{"epochs", "batch_size", "num", "seed", "variants": {label:
        {"separate_calls", "label_noise", "fcd_per_epoch"}}}`.

    Raises:
        TypeError: `epochs`, `batch_size` or `num` not an int.
        ValueError: one of them below 1.

    Example:

    ```python
    result = time_to_quality.ablation(epochs=2, num=500)
    result["variants"]["one call, no label noise"]["fcd_per_epoch"]
    ```
    """
    _check_budget(epochs=epochs, batch_size=batch_size, num=num)
    extractor, real_stats, images = _evaluation_setup(num, seed)
    fcd_of = functools.partial(_fcd, real_stats=real_stats, extractor=extractor, num=num, seed=seed)
    keras.mixed_precision.set_global_policy("float32")
    variants = {}
    for label, (separate_calls, label_noise) in ABLATION_STEPS.items():
        keras.utils.set_random_seed(seed)
        reference = zoo.build("dcgan", image_shape=IMAGE_SHAPE, seed=seed)
        step = type("Variant", (_DiscriminatorStepVariant,),
                    {"separate_calls": separate_calls, "label_noise": label_noise})
        gan = step.from_kgan(reference)
        pipeline = baselines.dataset("dcgan", images, batch_size, seed=seed)
        sampler = _Sampler(gan.generator, gan.latent_dim)
        curve = [point["fcd"] for point, _ in
                 _fcd_after_each_epoch(gan, pipeline, sampler, epochs, fcd_of)]
        variants[label] = {"separate_calls": separate_calls, "label_noise": label_noise,
                           "fcd_per_epoch": curve}
        log(json.dumps({label: curve}))
    return {"epochs": epochs, "batch_size": batch_size, "num": num, "seed": seed,
            "variants": variants}


def run(baseline_epochs=30, max_kgan_epochs=30, batch_size=64, num=2500, seed=0, log=print):
    """Train both sides and return the JSON-ready comparison (see the module docstring).

    Raises:
        TypeError: `baseline_epochs`, `max_kgan_epochs`, `batch_size` or `num` not an int.
        ValueError: one of them below 1.
    """
    _check_budget(baseline_epochs=baseline_epochs, max_kgan_epochs=max_kgan_epochs,
                  batch_size=batch_size, num=num)
    extractor, real_stats, images = _evaluation_setup(num, seed)
    fcd_of = functools.partial(_fcd, real_stats=real_stats, extractor=extractor, num=num, seed=seed)

    # The baseline: float32, keras.io train_step and pipeline, 30 epochs.
    keras.mixed_precision.set_global_policy("float32")
    keras.utils.set_random_seed(seed)
    reference = zoo.build("dcgan", image_shape=IMAGE_SHAPE, seed=seed)
    baseline = baselines.build("dcgan", reference)
    sampler = _Sampler(baseline.generator, baseline.latent_dim)
    pipeline = baselines.dataset("dcgan", images, batch_size, seed=seed)
    timer = _TrainTimer()
    baseline_curve = []
    for point, target in _fcd_after_each_epoch(baseline, pipeline, sampler, baseline_epochs,
                                               fcd_of, timer):
        baseline_curve.append(point)
        log(json.dumps({"baseline": point}))
    result = {
        "baseline": {"epochs": baseline_epochs, "train_seconds": round(timer.seconds, 1),
                     "fcd": round(target, 2), "precision": "float32", "curve": baseline_curve,
                     "first_reached": next(p for p in baseline_curve if p["fcd"] <= round(target, 2))},
    }

    # kgan: the settings `kgan train dcgan` uses, FCD after every epoch.
    settings = performance.resolve("dcgan")
    keras.mixed_precision.set_global_policy(settings["precision"])
    keras.utils.set_random_seed(seed)
    gan = zoo.build("dcgan", image_shape=IMAGE_SHAPE, seed=seed)
    gan.compile(steps_per_execution=settings["steps_per_execution"],
                jit_compile=settings["jit_compile"])
    dataset = data.load("mnist_5k", batch_size=batch_size, seed=seed)
    timer = _TrainTimer()
    curve = []
    reached = None
    for point, fcd in _fcd_after_each_epoch(gan, dataset, gan, max_kgan_epochs, fcd_of, timer):
        curve.append(point)
        log(json.dumps(point))
        if fcd <= target:
            reached = point
            break
    keras.mixed_precision.set_global_policy("float32")
    result["kgan"] = {"settings": settings, "curve": curve, "reached": reached}
    if reached:
        result["speedup_to_baseline_quality"] = round(
            result["baseline"]["train_seconds"] / reached["train_seconds"], 1
        )
        result["speedup_to_first_reach"] = round(
            result["baseline"]["first_reached"]["train_seconds"] / reached["train_seconds"], 1
        )
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m kgan.benchmarks.time_to_quality",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--baseline-epochs", type=int, default=30)
    parser.add_argument("--max-kgan-epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num", type=int, default=2500, help="images per FCD set")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the result here")
    parser.add_argument("--ablation", action="store_true",
                        help="instead, train the keras.io DCGAN with each discriminator-step "
                        "variant for --baseline-epochs epochs and report FCD per epoch")
    args = parser.parse_args(argv)
    if min(args.baseline_epochs, args.max_kgan_epochs, args.batch_size, args.num) < 1:
        parser.error("--baseline-epochs, --max-kgan-epochs, --batch-size and --num must be >= 1")
    if args.seed < 0:
        parser.error(f"--seed must be >= 0 (numpy seeds are non-negative), got {args.seed}")
    # An unwritable --json as one line, exit 2: now, not after an hour of
    # training (OSError covers kgan.atomic.OutputPathError).
    if args.json:
        try:
            check_output_file(args.json)
        except OSError as err:
            return report_error("time_to_quality", err)
    if args.ablation:
        result = ablation(args.baseline_epochs, args.batch_size, args.num, args.seed)
    else:
        result = run(args.baseline_epochs, args.max_kgan_epochs, args.batch_size, args.num,
                     args.seed)
    result["command"] = "python -m kgan.benchmarks.time_to_quality " + " ".join(
        sys.argv[1:] if argv is None else argv)
    text = json.dumps(result, indent=1)
    print(text)  # first: a failed write below still shows the result
    if args.json:
        try:
            write_text(args.json, text + "\n")
        except OSError as err:  # a full disk, the folder removed meanwhile
            return report_error("time_to_quality", err)
    return 0


if __name__ == "__main__":
    sys.exit(main())
