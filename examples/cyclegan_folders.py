"""Train a CycleGAN between two folders of your own images, then translate and export.

    python examples/cyclegan_folders.py --domain-a photos/ --domain-b paintings/ \\
        --image-size 128 --epochs 200 --output runs/photo2painting

The folders need not be paired or of equal size. Training follows Zhu et al.
(2017): the paper's jitter (resize to 286/256 of the crop, random crop, random
flip), batch 1, Adam(2e-4, beta_1=0.5) constant for the first half of the
epochs and decayed linearly to zero over the second half, image pools of 50,
cycle weight 10, identity weight 5. An interrupted run resumes with the same
command (BackupAndRestore). Afterwards every image of domain A is translated
at its own size into OUTPUT/translated/, and both directions are exported as
one SavedModel (signatures `a_to_b`, `b_to_a`, uint8 images of any size).
"""

import argparse
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

import kgan
from kgan.models import CycleGAN


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domain-a", required=True, help="folder of domain A images")
    parser.add_argument("--domain-b", required=True, help="folder of domain B images")
    parser.add_argument("--image-size", type=int, default=128, help="training crop size")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--filters", type=int, default=64)
    parser.add_argument("--output", default="runs/example_cyclegan")
    args = parser.parse_args()
    output = Path(args.output)

    dataset = kgan.data.unpaired(
        args.domain_a, args.domain_b, batch_size=args.batch_size, image_size=args.image_size,
        jitter="cyclegan", seed=0,
    )
    gan = CycleGAN.from_image_shape((args.image_size, args.image_size, 3), filters=args.filters, seed=0)
    g_optimizer, d_optimizer = CycleGAN.default_optimizers(
        epochs=args.epochs, steps_per_epoch=int(dataset.cardinality())
    )
    gan.compile(g_optimizer=g_optimizer, d_optimizer=d_optimizer)
    gan.fit(
        dataset, epochs=args.epochs, verbose=2,
        callbacks=[keras.callbacks.BackupAndRestore(str(output / "backup"))],
    )
    gan.save(output / "cyclegan.keras")

    files = sorted(p for p in Path(args.domain_a).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    for path in files:
        image = tf.io.decode_image(tf.io.read_file(str(path)), channels=3, expand_animations=False)
        translated = gan.translate(np.asarray(image), direction="a_to_b")  # uint8, same size
        kgan.images.save_png(translated, output / "translated" / f"{path.stem}.png")
    kgan.export_generator(gan, output / "served", overwrite=True)
    print(f"translated {len(files)} images into {output / 'translated'}; "
          f"exported {output / 'served'} (signatures a_to_b, b_to_a)")


if __name__ == "__main__":
    main()
