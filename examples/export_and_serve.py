"""Export a pretrained generator as a SavedModel and call it with plain TensorFlow.

    python examples/export_and_serve.py --preset dcgan_mnist --export-dir served/dcgan_mnist

The SavedModel needs only TensorFlow to run (e.g. TensorFlow Serving).
"""

import argparse

import numpy as np
import tensorflow as tf

import kgan


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="dcgan_mnist", help="zoo name or preset folder")
    parser.add_argument("--export-dir", default="served/dcgan_mnist")
    parser.add_argument("--output", default="served_samples.png")
    args = parser.parse_args()

    gan = kgan.zoo.load(args.preset)
    if gan.latent_dim is None:
        parser.error(f"{args.preset} is an image translator: its SavedModel takes images "
                     "(signatures a_to_b, b_to_a), see the README's CycleGAN section")
    kgan.export_generator(gan, args.export_dir, overwrite=True)

    # From here on, only TensorFlow: this is what a serving process does.
    served = tf.saved_model.load(args.export_dir)
    inputs = {"latents": tf.constant(gan.latents(16, seed=0))}
    conditional = getattr(gan, "num_classes", None) is not None
    if conditional:  # a class-conditional generator also takes one label per image
        inputs["labels"] = tf.constant(np.arange(16) % gan.num_classes, tf.int32)
    images = served.signatures["serving_default"](**inputs)["images"]
    pixels = served.signatures["generate_uint8"](**inputs)["images"]
    expected = gan.generate_from_latents(
        inputs["latents"].numpy(), **({"labels": inputs["labels"].numpy()} if conditional else {}))
    difference = np.abs(images.numpy() - expected).max()
    print(f"served images {tuple(images.shape)} {images.dtype.name}; max |served - keras| = {difference:.2e}")
    kgan.images.save_grid(pixels.numpy(), args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
