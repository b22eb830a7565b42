"""Does GAN-made data help a classifier that has few labels? The low-data benchmark.

For `n` labelled MNIST digits per class (the rest of the embedded `mnist_5k`
is the test set), with several seeds:

1. train a class-conditional GAN (`kgan.models.ConditionalGAN`) on the `10 n`
   labelled images only;
2. train the same small CNN (with the usual random shifts and rotations) on
   the real images only, and on real images mixed with the GAN's labelled
   samples (`kgan.augment.mix_datasets`), for the same number of steps;
3. report test accuracy mean ± std (population, ddof=0) over seeds, and the classification
   accuracy score (CAS: a classifier trained on synthetic images only,
   tested on real ones), a measure of how usable the samples are as data.

Levers measured by the same run: the mixing fraction, the EMA generator vs
the trained one, pre-training on the samples then fine-tuning on the real
images (against a real-only run of the same total steps), and keeping only
samples that a classifier trained on the real images assigns to their label
with high confidence. GAN augmentation
(`--gan-augment none|DiffAugment policy|ada`) is a flag, so runs with each
compare the GAN's own quality (FCD, precision and recall of its samples
against the test set through kgan's MNIST evaluator, read against the
`real_*_floor` figures of two real halves of the same size; `--gan-only`
stops there). `--real-extra-per-class N` adds a perfect generator's
reference: N held-out real digits per class mixed in as the synthetic ones
are, which separates "more data would not help" from "these samples are not
good enough to help".

The arguments, `--json` included, are checked before any training, and the
JSON is written whole or not at all (`kgan.atomic`).

Example:

```sh
python -m kgan.benchmarks.low_data --per-class 10 20 50 --seeds 0 1 2 --json low_data.json
```
"""

import argparse
import json
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from kgan import augment, data, evaluators, metrics
from kgan._checks import positive_int
from kgan.atomic import check_output_file, write_text
from kgan.benchmarks import report_error
from kgan.models.conditional import ConditionalGAN

NUM_CLASSES = 10
IMAGE_SHAPE = (28, 28, 1)


def split_labelled(per_class, seed):
    """`per_class` random training digits of each class and every other one as test set.

    Returns:
        `((train_images, train_labels), (test_images, test_labels))`, images
        float32 `[N, 28, 28, 1]` in [-1, 1], labels int32.
    """
    images, labels = data.load_mnist_5k()
    images = images.astype("float32") / 127.5 - 1.0
    rng = np.random.default_rng(seed)
    chosen = np.concatenate([
        rng.choice(np.flatnonzero(labels == k), per_class, replace=False) for k in range(NUM_CLASSES)
    ])
    test = np.setdiff1d(np.arange(len(labels)), chosen)
    return (images[chosen], labels[chosen]), (images[test], labels[test])


def train_gan(images, labels, *, steps, seed, gan_augment, filters, ema_decay, batch_size=64,
              **model_options):
    """A conditional GAN trained for `steps` generator steps on the labelled images.

    `model_options` go to `ConditionalGAN.from_image_shape` (e.g.
    `adversarial_loss`, `conditioning`, `transition_steps`, `mode_seeking`).
    """
    keras.utils.set_random_seed(seed)
    gan = ConditionalGAN.from_image_shape(
        IMAGE_SHAPE, NUM_CLASSES, filters=filters, seed=seed, ema_decay=ema_decay,
        augment=None if gan_augment == "none" else gan_augment, **model_options,
    )
    epochs, steps_per_epoch = _schedule(steps)
    gan.compile(steps_per_execution=STEPS_PER_EXECUTION)
    dataset = (
        tf.data.Dataset.from_tensor_slices((images, labels))
        .shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
        .repeat()
        .batch(batch_size, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )
    gan.fit(dataset, epochs=epochs, steps_per_epoch=steps_per_epoch, verbose=0)
    if int(gan.g_optimizer.iterations) != steps:  # the figures are recorded for `steps`
        raise RuntimeError(
            f"The GAN trained {int(gan.g_optimizer.iterations)} generator steps, not {steps}."
        )
    gan.recalibrate_ema_statistics(seed=seed)
    return gan


#: Generator steps per `fit` execution; the GAN's steps must be a multiple.
STEPS_PER_EXECUTION = 10


def _schedule(steps):
    """`(epochs, steps_per_epoch)` training exactly `steps` steps, about 100 per epoch.

    Keras rounds an epoch up to whole executions of `STEPS_PER_EXECUTION`
    steps, so every epoch must hold a multiple of them: `--gan-steps 250`
    as 2 epochs of 125 trained 260 steps.
    """
    if steps < STEPS_PER_EXECUTION or steps % STEPS_PER_EXECUTION:
        raise ValueError(
            f"--gan-steps must be a multiple of {STEPS_PER_EXECUTION} (the GAN trains "
            f"{STEPS_PER_EXECUTION} steps per execution), got {steps}; e.g. "
            f"{max(STEPS_PER_EXECUTION, steps // STEPS_PER_EXECUTION * STEPS_PER_EXECUTION)}."
        )
    epochs = max(1, steps // 100)
    while steps % epochs or (steps // epochs) % STEPS_PER_EXECUTION:
        epochs -= 1
    return epochs, steps // epochs


def generated(gan, per_class, seed, use_ema=True):
    """`per_class` samples of each class, as arrays; the trained generator if not `use_ema`."""
    labels = np.tile(np.arange(NUM_CLASSES, dtype="int32"), per_class)
    if use_ema or gan.ema_generator is None:
        images = gan.generate(len(labels), labels=labels, seed=seed)
    else:
        latents = gan.latents(len(labels), seed=seed)
        images = np.concatenate([
            np.asarray(gan.generator([latents[i : i + 500], labels[i : i + 500]], training=False))
            for i in range(0, len(labels), 500)
        ]).astype("float32")
    return images, labels


def small_cnn(seed):
    """The classifier: two conv blocks and a linear layer, with shift/rotation jitter."""
    keras.utils.set_random_seed(seed)
    # float32 whatever the GAN's policy: the classifier is the measuring stick.
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        return _small_cnn()
    finally:
        keras.mixed_precision.set_global_policy(policy)


def _small_cnn():
    inputs = keras.Input(IMAGE_SHAPE)
    x = keras.layers.RandomTranslation(0.1, 0.1, fill_mode="constant", fill_value=-1.0)(inputs)
    x = keras.layers.RandomRotation(0.05, fill_mode="constant", fill_value=-1.0)(x)
    for filters in (32, 64):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(0.5)(x)
    outputs = keras.layers.Dense(NUM_CLASSES)(x)
    model = keras.Model(inputs, outputs, name="small_cnn")
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def _examples(images, labels, seed):
    return (tf.data.Dataset.from_tensor_slices((images, labels))
            .shuffle(len(images), seed=seed).repeat())


def train_classifier(real, synthetic, fraction, *, steps, seed, batch_size=64, model=None):
    """The small CNN after `steps` steps on real data mixed with `fraction` synthetic.

    `real` or `synthetic` is `(images, labels)`; `fraction` 0 uses real only,
    1 synthetic only. A `model` given is trained further instead of a new one.
    """
    model = small_cnn(seed) if model is None else model
    if fraction == 0:
        stream = _examples(*real, seed).batch(batch_size)
    elif fraction == 1:
        stream = _examples(*synthetic, seed).batch(batch_size)
    else:
        stream = augment.mix_datasets(
            _examples(*real, seed), _examples(*synthetic, seed + 1),
            synthetic_fraction=fraction, seed=seed, batch_size=batch_size,
        )
    model.fit(stream.prefetch(tf.data.AUTOTUNE), steps_per_epoch=steps, epochs=1, verbose=0)
    return model


def accuracy(model, test):
    logits = model.predict(test[0], batch_size=500, verbose=0)
    return float(np.mean(np.argmax(logits, axis=-1) == test[1]))


def confident(classifier, images, labels, threshold):
    """The samples `classifier` gives their own label with probability >= threshold."""
    probabilities = tf.nn.softmax(classifier.predict(images, batch_size=500, verbose=0)).numpy()
    keep = probabilities[np.arange(len(labels)), labels] >= threshold
    return images[keep], labels[keep]


FCD_IMAGES = 2000

#: Features per image of kgan's MNIST evaluator (its `embedding` layer). FCD
#: needs more images than that on each side: a covariance of D features from
#: D images or fewer is singular.
EVALUATOR_FEATURES = 128


def gan_quality(images, test_images, extractor, seed):
    """FCD, precision and recall of `images` against real test digits (kgan's MNIST evaluator).

    Both sides are random (seeded) draws of the same size, at most
    `FCD_IMAGES`: the test set is in class order, so its first images would
    be a few classes only, and FCD is biased by the number of images.
    Precision is the share of samples that look like real digits, recall the
    share of real digits the samples cover (Kynkäänniemi et al. 2019, k=3).
    """
    num = min(len(images), len(test_images), FCD_IMAGES)
    rng = np.random.default_rng(seed)
    real = test_images[rng.choice(len(test_images), num, replace=False)]
    fake = images[rng.choice(len(images), num, replace=False)]
    scores = metrics.evaluate(real, fake, extractor, metrics=("fid", "pr"), num=num, seed=seed)
    return {"fcd": float(scores["fid"]), "precision": float(scores["precision"]),
            "recall": float(scores["recall"])}


def real_floor(test_images, num, extractor, seed):
    """`gan_quality` of one random half of the test digits against another, `num` images each.

    What a perfect generator would score at the same sample size, so a
    GAN's figures are read against it rather than against 0 (FCD) or 1
    (precision, recall).
    """
    num = min(num, len(test_images) // 2, FCD_IMAGES)
    order = np.random.default_rng(seed).permutation(len(test_images))
    return gan_quality(test_images[order[:num]], test_images[order[num : 2 * num]], extractor, seed)


def run_one(per_class, seed, args, extractor, log=print):
    """Every figure for one (labels per class, seed) pair; a JSON-ready dict."""
    start = time.perf_counter()
    train, test = split_labelled(per_class, seed)
    gan = train_gan(*train, steps=args.gan_steps, seed=seed, gan_augment=args.gan_augment,
                    filters=args.filters, ema_decay=args.ema_decay,
                    mode_seeking=getattr(args, "mode_seeking", 0.2))
    gan_seconds = time.perf_counter() - start
    pool = generated(gan, args.synthetic_per_class, seed=seed + 1000)
    quality = gan_quality(pool[0], test[0], extractor.features, seed)
    floor = real_floor(test[0], len(pool[1]), extractor.features, seed)
    row = {
        "per_class": per_class,
        "seed": seed,
        "gan_seconds": round(gan_seconds, 1),
        # How often kgan's MNIST evaluator reads a sample as the class it was made for.
        "gan_label_agreement": accuracy(extractor.classifier, pool),
        "gan_fcd_vs_test": round(quality["fcd"], 2),
        "gan_precision": round(quality["precision"], 4),
        "gan_recall": round(quality["recall"], 4),
        "real_fcd_floor": round(floor["fcd"], 2),
        "real_precision_floor": round(floor["precision"], 4),
        "real_recall_floor": round(floor["recall"], 4),
    }
    if getattr(args, "gan_only", False):
        row["seconds"] = round(time.perf_counter() - start, 1)
        log(json.dumps(row))
        return row
    steps = dict(steps=args.classifier_steps, seed=seed)
    real_only = train_classifier(train, None, 0, **steps)
    row["real_only"] = accuracy(real_only, test)
    synthetic_only = train_classifier(None, pool, 1, **steps)
    row["cas"] = accuracy(synthetic_only, test)
    # Another way to use the samples: pre-train on them, then fine-tune on the
    # real digits; with a real-only run of the same total steps as its control.
    row["synthetic_then_real"] = accuracy(
        train_classifier(train, None, 0, **steps, model=synthetic_only), test)
    row["real_only_twice_the_steps"] = accuracy(
        train_classifier(train, None, 0, steps=2 * args.classifier_steps, seed=seed), test)
    for fraction in args.fractions:
        row[f"mixed_{fraction}"] = accuracy(train_classifier(train, pool, fraction, **steps), test)
    if gan.ema_generator is not None:
        live = generated(gan, args.synthetic_per_class, seed=seed + 1000, use_ema=False)
        row["mixed_0.5_live_generator"] = accuracy(train_classifier(train, live, 0.5, **steps), test)
        row["cas_live_generator"] = accuracy(train_classifier(None, live, 1, **steps), test)
    kept = confident(real_only, *pool, args.confidence)
    row["filtered_kept_fraction"] = round(len(kept[1]) / len(pool[1]), 3)
    if len(kept[1]) >= NUM_CLASSES:
        for fraction in args.fractions:
            row[f"mixed_{fraction}_filtered"] = accuracy(
                train_classifier(train, kept, fraction, **steps), test)
    extra = getattr(args, "real_extra_per_class", 0)
    if extra:
        row.update(perfect_generator_reference(train, test, real_only, extra, args.fractions[-1],
                                               **steps))
    row["seconds"] = round(time.perf_counter() - start, 1)
    log(json.dumps(row))
    return row


def perfect_generator_reference(train, test, real_only, per_class, fraction, *, steps, seed):
    """What mixing would give if the generator drew from the true distribution.

    `per_class` more real digits of each class stand in for the synthetic
    pool (moved out of the test set, which shrinks accordingly) and are
    mixed in at `fraction`, exactly as the GAN's samples are. The gap
    between this and `mixed_<fraction>` is the price of the samples'
    quality; the gap between this and `real_only` is what the classifier
    could gain from more data at all.
    """
    rng = np.random.default_rng(seed + 2000)
    chosen = np.concatenate([
        rng.choice(np.flatnonzero(test[1] == k), per_class, replace=False) for k in range(NUM_CLASSES)
    ])
    rest = np.setdiff1d(np.arange(len(test[1])), chosen)
    extra, reduced = (test[0][chosen], test[1][chosen]), (test[0][rest], test[1][rest])
    mixed = train_classifier(train, extra, fraction, steps=steps, seed=seed)
    return {
        "reference_test_size": len(rest),
        "real_only_on_reference_test": accuracy(real_only, reduced),
        f"mixed_{fraction}_true_distribution": accuracy(mixed, reduced),
    }


class _Evaluator:
    def __init__(self):
        self.classifier = evaluators.load_evaluator()
        self.features = evaluators.mnist_extractor(self.classifier)


def summarize(rows):
    """Mean and population std (ddof=0) over seeds of every figure, per labels-per-class.

    The std is numpy's default, the one the README's low-data tables were
    measured with (mode_coverage reports the sample std, ddof=1: for 3
    seeds, 1.22 times larger). A figure missing from some seeds' rows (e.g.
    a filtered mix that kept too few images) is summarized over the seeds
    that have it (`n`).
    """
    summary = {}
    for per_class in sorted({r["per_class"] for r in rows}):
        group = [r for r in rows if r["per_class"] == per_class]
        # Every key of any row, in first-seen order: a figure the first seed lacks still counts.
        keys = list(dict.fromkeys(k for r in group for k in r if k not in ("per_class", "seed")))
        summary[str(per_class)] = {}
        for k in keys:
            values = [r[k] for r in group if k in r]
            summary[str(per_class)][k] = {
                "mean": round(float(np.mean(values)), 4),
                "std": round(float(np.std(values)), 4),
                "n": len(values),
            }
    return summary


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m kgan.benchmarks.low_data", description=__doc__.split("\n")[0])
    parser.add_argument("--per-class", type=int, nargs="+", default=[10, 20, 50])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--gan-steps", type=int, default=1500)
    parser.add_argument("--gan-augment", default="color,translation,cutout",
                        help="none, a DiffAugment policy, or ada")
    parser.add_argument("--filters", type=int, default=32)
    parser.add_argument("--ema-decay", type=float, default=0.999)
    parser.add_argument("--mode-seeking", type=float, default=0.2,
                        help="the GAN's mode-seeking weight (0: off, collapses within classes)")
    parser.add_argument("--classifier-steps", type=int, default=1000)
    parser.add_argument("--synthetic-per-class", type=int, default=500)
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.25, 0.5])
    parser.add_argument("--confidence", type=float, default=0.9)
    parser.add_argument("--real-extra-per-class", type=int, default=0,
                        help="also mix in this many held-out REAL digits per class instead "
                             "of synthetic ones (a perfect generator's reference)")
    parser.add_argument("--gan-only", action="store_true",
                        help="train the GAN and report its quality only (no classifiers)")
    parser.add_argument("--precision", default="mixed_bfloat16")
    parser.add_argument("--json", help="write rows and summary here")
    args = parser.parse_args(argv)
    # Mistakes as one line, exit 2, before hours of training (OSError:
    # kgan.atomic.OutputPathError); a ValueError from inside training is a bug to trace.
    try:
        _check_arguments(args)
    except (ValueError, OSError) as err:
        return report_error("low_data", err)
    keras.mixed_precision.set_global_policy(args.precision)
    extractor = _Evaluator()
    rows = [run_one(n, s, args, extractor) for n in args.per_class for s in args.seeds]
    result = {"command": "python -m kgan.benchmarks.low_data " + " ".join(argv or sys.argv[1:]),
              "settings": vars(args), "rows": rows, "summary": summarize(rows)}
    print(json.dumps(result["summary"], indent=1))  # first: a failed write still shows it
    if args.json:
        try:
            write_text(args.json, json.dumps(result, indent=1))
        except OSError as err:  # a full disk, the folder removed meanwhile
            return report_error("low_data", err)
    return 0


def _check_arguments(args):
    """Refuse, before any training, what would fail after some: ValueError/OutputPathError."""
    for flag in ("gan_steps", "classifier_steps", "synthetic_per_class"):
        positive_int(getattr(args, flag), f"--{flag.replace('_', '-')}")
    # The GAN's FCD is taken on its pool of samples, after the GAN has trained.
    fewest_per_class = EVALUATOR_FEATURES // NUM_CLASSES + 1
    if args.synthetic_per_class < fewest_per_class:
        raise ValueError(
            f"--synthetic-per-class {args.synthetic_per_class} gives "
            f"{NUM_CLASSES * args.synthetic_per_class} samples, too few for the GAN's FCD: it "
            f"needs more than the evaluator's {EVALUATOR_FEATURES} feature dimensions. Use "
            f"--synthetic-per-class {fewest_per_class} or more."
        )
    _schedule(args.gan_steps)
    _, labels = data.load_mnist_5k()
    smallest = int(np.bincount(labels).min())
    for per_class in args.per_class:
        # Each class gives per_class training digits and real_extra_per_class
        # reference digits, and keeps at least one for the test set.
        if per_class < 1 or args.real_extra_per_class < 0 or (
                per_class + args.real_extra_per_class >= smallest):
            raise ValueError(
                f"--per-class {per_class} with --real-extra-per-class "
                f"{args.real_extra_per_class}: need per-class >= 1, real-extra >= 0 and their "
                f"sum below {smallest}, the digits of mnist_5k's smallest class."
            )
    if any(seed < 0 for seed in args.seeds):
        raise ValueError(f"--seeds must be >= 0 (numpy seeds are non-negative), got {args.seeds}.")
    # kgan.augment's own check, the one mix_datasets applies to the fractions later.
    for fraction in args.fractions:
        augment._fraction(fraction, "--fractions")
    augment._fraction(args.confidence, "--confidence")
    # The GAN's own checks (augment policy, EMA decay, mode seeking, filters)
    # on a model built and dropped now (0.2 s), not in the first run.
    ConditionalGAN.from_image_shape(
        IMAGE_SHAPE, NUM_CLASSES, filters=args.filters, ema_decay=args.ema_decay,
        augment=None if args.gan_augment == "none" else args.gan_augment,
        mode_seeking=args.mode_seeking,
    )
    keras.mixed_precision.Policy(args.precision)  # an unknown precision raises here
    if args.json:
        check_output_file(args.json)


if __name__ == "__main__":
    sys.exit(main())
