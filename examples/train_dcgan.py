"""Train a DCGAN with `model.fit` on a `tf.data` pipeline and save a sample grid.

    python examples/train_dcgan.py --epochs 20 --output runs/example_dcgan

Uses the embedded `mnist_5k` digits, so it runs offline; pass
`--dataset mnist` (or any tensorflow-datasets image dataset) for the full set.
"""

import argparse

import keras

import kgan


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist_5k")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--latent-dim", type=int, default=100)
    parser.add_argument("--filters", type=int, default=64)
    parser.add_argument("--output", default="runs/example_dcgan")
    args = parser.parse_args()

    # bfloat16 compute with float32 weights: much faster on CPUs with AMX/AVX512-BF16
    # and on recent GPUs/TPUs; generator outputs and logits stay float32.
    keras.mixed_precision.set_global_policy("mixed_bfloat16")

    dataset = kgan.data.load(args.dataset, batch_size=args.batch_size, seed=0)
    image_shape = tuple(dataset.element_spec.shape[1:])
    gan = kgan.DCGAN.from_image_shape(image_shape, latent_dim=args.latent_dim, filters=args.filters, seed=0)
    gan.compile()  # Adam(2e-4, beta_1=0.5) for both networks, as in the paper
    gan.fit(
        dataset,
        epochs=args.epochs,
        callbacks=[kgan.callbacks.SampleGrid(f"{args.output}/samples", num_samples=64)],
        verbose=2,
    )
    gan.save(f"{args.output}/dcgan.keras")
    kgan.images.save_grid(gan.generate(64, seed=0), f"{args.output}/final.png")
    print(f"saved {args.output}/dcgan.keras and {args.output}/final.png")


if __name__ == "__main__":
    main()
