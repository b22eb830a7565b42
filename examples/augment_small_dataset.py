"""Augment a small labeled dataset with a class-conditional GAN, then train a classifier.

    python examples/augment_small_dataset.py --per-class 50 --gan-epochs 300 --output runs/augment

Takes `--per-class` labeled digits of each class from the embedded `mnist_5k`
(offline), trains a `ConditionalGAN` on them with DiffAugment (what lets a GAN
learn from a few hundred images), then trains the same small CNN twice for the
same number of steps: on the real digits alone, and on real + synthetic digits
mixed by `kgan.augment.mix_datasets`. Both are tested on 1,000 held-out digits.
`--min-confidence` keeps only synthetic digits the real-only classifier
recognizes as their label (`kgan.augment.filter_by_confidence`).
"""

import argparse
from pathlib import Path

import keras

import kgan

NUM_CLASSES = 10
TEST_SPLIT = "train[80%:]"  # 1,000 digits, 100 per class, never used for training
MAX_PER_CLASS = 400  # the first 4,000 digits, before the test split


def small_cnn(width, seed):
    """A two-block CNN for 28x28x1 digits in [-1, 1] that outputs class logits."""
    keras.utils.set_random_seed(seed)  # both classifiers start from the same weights
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(width, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(2 * width, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(NUM_CLASSES),
        ],
        name="digit_classifier",
    )


def train_classifier(dataset, args, test_images, test_labels):
    """Fit a fresh `small_cnn` on `dataset` (repeating batches); return it and its test accuracy."""
    classifier = small_cnn(args.classifier_width, args.seed)
    classifier.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    classifier.fit(dataset, epochs=args.classifier_epochs, steps_per_epoch=args.classifier_steps,
                   shuffle=False, verbose=0)  # the pipelines shuffle
    _, accuracy = classifier.evaluate(test_images, test_labels, batch_size=500, verbose=0)
    return classifier, accuracy


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=50, help="real labeled digits per class")
    parser.add_argument("--gan-epochs", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--latent-dim", type=int, default=64)
    parser.add_argument("--filters", type=int, default=32)
    parser.add_argument("--augment", default="color,translation,cutout", help="DiffAugment policy")
    parser.add_argument("--synthetic-per-class", type=int, default=500)
    parser.add_argument("--synthetic-fraction", type=float, default=0.5)
    parser.add_argument("--min-confidence", type=float, help="keep synthetic digits the real-only "
                        "classifier gives at least this probability of their label")
    parser.add_argument("--classifier-epochs", type=int, default=10)
    parser.add_argument("--classifier-steps", type=int, default=100, help="steps per epoch")
    parser.add_argument("--classifier-width", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="runs/augment_small_dataset")
    args = parser.parse_args()
    # The test split is mnist_5k's last 1,000 digits: training on more than the
    # first 4,000 would test on digits the classifier was trained on.
    if not 1 <= args.per_class <= MAX_PER_CLASS:
        parser.error(f"--per-class must be 1-{MAX_PER_CLASS}: the held-out test split "
                     f"({TEST_SPLIT}) is mnist_5k's last 1,000 digits, got {args.per_class}")
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)

    # mnist_5k's stratified order cycles through the classes, so its first
    # 10 * n examples hold exactly n of each (see kgan.data.embedded_split).
    images, labels = kgan.data.embedded_split("mnist_5k", f"train[:{NUM_CLASSES * args.per_class}]")
    test_images, test_labels = kgan.data.embedded_split("mnist_5k", TEST_SPLIT)
    test_images = kgan.images.from_uint8(test_images)
    batch_size = min(args.batch_size, len(images))

    # 1. The conditional GAN, on the small labeled set only.
    gan = kgan.ConditionalGAN.from_image_shape(
        (28, 28, 1), NUM_CLASSES, latent_dim=args.latent_dim, filters=args.filters,
        augment=args.augment, ema_decay=0.999, seed=args.seed,
    )
    gan.compile()
    gan.fit(kgan.data.from_numpy(images, labels, batch_size=batch_size, seed=args.seed),
            epochs=args.gan_epochs, verbose=2)
    gan.recalibrate_ema_statistics(num_batches=20, seed=args.seed)
    sheet, ncols = gan.sample_sheet(seed=0)
    kgan.images.save_grid(sheet, output / "samples.png", ncols=ncols)  # a column per class

    # 2. The same classifier on real digits alone, then on real + synthetic.
    # Both pipelines yield float32 images in [-1, 1] with int32 labels.
    real = kgan.data.from_numpy(images, labels, batch_size=batch_size, seed=args.seed).repeat()
    baseline, real_accuracy = train_classifier(real, args, test_images, test_labels)
    synthetic = kgan.augment.synthetic_dataset(
        gan, num_per_class=args.synthetic_per_class, seed=args.seed)
    if args.min_confidence is not None:
        synthetic = kgan.augment.filter_by_confidence(synthetic, baseline, args.min_confidence)
    # Generate once, then reuse: .cache() keeps the (small) synthetic set in memory.
    mixed = kgan.augment.mix_datasets(
        real, synthetic.cache().repeat(), args.synthetic_fraction, seed=args.seed)
    _, mixed_accuracy = train_classifier(mixed, args, test_images, test_labels)

    print(f"real digits: {len(images)} ({args.per_class} per class); synthetic: "
          f"{args.synthetic_per_class} per class at fraction {args.synthetic_fraction}")
    print(f"test accuracy, real only: {real_accuracy:.4f}")
    print(f"test accuracy, real + synthetic: {mixed_accuracy:.4f}")
    print(f"saved {output / 'samples.png'} (one column per class)")


if __name__ == "__main__":
    main()
