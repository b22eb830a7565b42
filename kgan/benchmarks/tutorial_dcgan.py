"""The tensorflow.org DCGAN tutorial, reproduced as a baseline for kgan's presets.

`dcgan_mnist` must be at least as good as a plain DCGAN written the way the
tutorial (https://www.tensorflow.org/tutorials/generative/dcgan) writes it.
This module is that baseline, kept as close to the tutorial as Keras 3
allows: its two Sequential networks (Dense 7·7·256 -> Conv2DTranspose 128,
64, 1 with 5x5 kernels, batch norm and LeakyReLU; a discriminator of two 5x5
stride-2 convolutions with LeakyReLU and dropout 0.3), binary cross-entropy on
logits, Adam(1e-4) for both networks, batch 256, noise of size 100, a
`tf.function` step that updates both networks simultaneously from one pair
of tapes, float32, 50 epochs. Only the data differ: the tutorial trains on
the 60,000 MNIST training images, this baseline on the embedded `mnist_5k`
set that kgan's preset was trained on (so 50 epochs here are 1,000 steps).

The trained networks are wrapped in a `kgan.models.DCGAN` and saved as a
preset folder, so `kgan evaluate` measures them exactly as it measures the
zoo's presets:

```sh
python -m kgan.benchmarks.tutorial_dcgan --epochs 50 --seed 0 --output runs/tutorial_dcgan
kgan evaluate runs/tutorial_dcgan --num 2500 --against 'mnist_5k:train[:50%]'
```
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from kgan import data, zoo
from kgan.images import from_uint8
from kgan.models import DCGAN

BUFFER_SIZE = 60000
BATCH_SIZE = 256
NOISE_DIM = 100


def make_generator_model():
    """The tutorial's generator (Keras 3 spelling: `keras.Input` first)."""
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input((NOISE_DIM,)),
            layers.Dense(7 * 7 * 256, use_bias=False),
            layers.BatchNormalization(),
            layers.LeakyReLU(),
            layers.Reshape((7, 7, 256)),
            layers.Conv2DTranspose(128, (5, 5), strides=(1, 1), padding="same", use_bias=False),
            layers.BatchNormalization(),
            layers.LeakyReLU(),
            layers.Conv2DTranspose(64, (5, 5), strides=(2, 2), padding="same", use_bias=False),
            layers.BatchNormalization(),
            layers.LeakyReLU(),
            layers.Conv2DTranspose(
                1, (5, 5), strides=(2, 2), padding="same", use_bias=False, activation="tanh"
            ),
        ],
        name="tutorial_generator",
    )


def make_discriminator_model():
    """The tutorial's discriminator."""
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(64, (5, 5), strides=(2, 2), padding="same"),
            layers.LeakyReLU(),
            layers.Dropout(0.3),
            layers.Conv2D(128, (5, 5), strides=(2, 2), padding="same"),
            layers.LeakyReLU(),
            layers.Dropout(0.3),
            layers.Flatten(),
            layers.Dense(1),
        ],
        name="tutorial_discriminator",
    )


def train(epochs=50, seed=0, verbose=True):
    """Train the tutorial's DCGAN on `mnist_5k` with the tutorial's loop.

    Args:
        epochs: passes over the 5,000 images (the tutorial uses 50).
        seed: seed of initialization, shuffling and noise.
        verbose: print one line per epoch.

    Returns:
        `(generator, discriminator, seconds)`.

    Example:

    ```python
    generator, discriminator, seconds = train(epochs=1)
    ```
    """
    keras.utils.set_random_seed(seed)
    images, _ = data.load_mnist_5k()
    train_images = np.asarray(from_uint8(images))
    train_dataset = (
        tf.data.Dataset.from_tensor_slices(train_images).shuffle(BUFFER_SIZE, seed=seed).batch(BATCH_SIZE)
    )
    generator = make_generator_model()
    discriminator = make_discriminator_model()
    cross_entropy = keras.losses.BinaryCrossentropy(from_logits=True)
    generator_optimizer = keras.optimizers.Adam(1e-4)
    discriminator_optimizer = keras.optimizers.Adam(1e-4)

    def discriminator_loss(real_output, fake_output):
        real_loss = cross_entropy(tf.ones_like(real_output), real_output)
        fake_loss = cross_entropy(tf.zeros_like(fake_output), fake_output)
        return real_loss + fake_loss

    def generator_loss(fake_output):
        return cross_entropy(tf.ones_like(fake_output), fake_output)

    @tf.function
    def train_step(images):
        noise = tf.random.normal([BATCH_SIZE, NOISE_DIM])
        with tf.GradientTape() as gen_tape, tf.GradientTape() as disc_tape:
            generated_images = generator(noise, training=True)
            real_output = discriminator(images, training=True)
            fake_output = discriminator(generated_images, training=True)
            gen_loss = generator_loss(fake_output)
            disc_loss = discriminator_loss(real_output, fake_output)
        gradients_of_generator = gen_tape.gradient(gen_loss, generator.trainable_variables)
        gradients_of_discriminator = disc_tape.gradient(disc_loss, discriminator.trainable_variables)
        generator_optimizer.apply_gradients(zip(gradients_of_generator, generator.trainable_variables))
        discriminator_optimizer.apply_gradients(
            zip(gradients_of_discriminator, discriminator.trainable_variables)
        )
        return gen_loss, disc_loss

    start = time.perf_counter()
    for epoch in range(epochs):
        epoch_start = time.perf_counter()
        for image_batch in train_dataset:
            gen_loss, disc_loss = train_step(image_batch)
        if verbose:
            print(
                f"epoch {epoch + 1}/{epochs}: {time.perf_counter() - epoch_start:.1f} s, "
                f"gen_loss {float(gen_loss):.3f}, disc_loss {float(disc_loss):.3f}",
                flush=True,
            )
    return generator, discriminator, time.perf_counter() - start


def main(argv=None):
    """Train the baseline and save it as a kgan preset folder."""
    parser = argparse.ArgumentParser(
        prog="python -m kgan.benchmarks.tutorial_dcgan", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", required=True, help="preset folder to write")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"--epochs must be at least 1, got {args.epochs}")
    argv = sys.argv[1:] if argv is None else argv
    generator, discriminator, seconds = train(args.epochs, args.seed)
    model = DCGAN(generator=generator, discriminator=discriminator, seed=args.seed)
    metadata = {
        "name": "tutorial_dcgan",
        "description": (
            f"Baseline: the tensorflow.org DCGAN tutorial's networks, loss, optimizer and "
            f"loop, {args.epochs} epochs on mnist_5k"
        ),
        "dataset": "mnist_5k",
        "license": "CC-BY-SA-3.0 (MNIST, LeCun & Cortes); weights Apache-2.0",
        "recipe": "python -m kgan.benchmarks.tutorial_dcgan " + shlex.join(argv),
        "training": {
            "epochs": args.epochs,
            "batch_size": BATCH_SIZE,
            "optimizer": "Adam(1e-4) for both networks",
            "precision": "float32",
            "seed": args.seed,
            "wall_time_s": round(seconds, 1),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "machine": zoo.machine_summary(),
        },
    }
    folder = zoo.save_preset(model, args.output, metadata, overwrite=args.overwrite)
    print(json.dumps({"output": str(folder), "wall_time_s": round(seconds, 1)}))


if __name__ == "__main__":
    main()
