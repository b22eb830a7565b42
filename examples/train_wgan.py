"""Train a WGAN (weight clipping) on digits, with n_critic fresh minibatches per step.

    python examples/train_wgan.py --epochs 100 --output runs/example_wgan

WGAN makes n_critic = 5 critic updates per generator update, each on a fresh
real minibatch (Arjovsky et al. 2017, Algorithm 1). The pipeline therefore
yields `n_critic * batch_size` images per `train_step`
(`repeat_batches=gan.batches_per_step`), which the step splits into five
minibatches. Critic weights are clipped to [-0.01, 0.01] after every critic
update; both networks use RMSprop(5e-5).
"""

import argparse

import keras

import kgan


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist_5k")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=64, help="images per critic update")
    parser.add_argument("--latent-dim", type=int, default=100)
    parser.add_argument("--filters", type=int, default=64)
    parser.add_argument("--output", default="runs/example_wgan")
    args = parser.parse_args()

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    gan = kgan.WGAN.from_image_shape((28, 28, 1), latent_dim=args.latent_dim, filters=args.filters, seed=0)
    dataset = kgan.data.load(
        args.dataset, batch_size=args.batch_size, repeat_batches=gan.batches_per_step, seed=0
    )
    gan.compile()  # RMSprop(5e-5) for both networks, as in the paper
    history = gan.fit(
        dataset,
        epochs=args.epochs,
        callbacks=[kgan.callbacks.SampleGrid(f"{args.output}/samples", num_samples=64)],
        verbose=2,
    )
    # -d_loss estimates the Wasserstein distance: it should shrink as samples improve.
    print(f"critic's Wasserstein estimate after the last epoch: {-history.history['d_loss'][-1]:.4f}")
    gan.save(f"{args.output}/wgan.keras")
    kgan.images.save_grid(gan.generate(64, seed=0), f"{args.output}/final.png")
    print(f"saved {args.output}/wgan.keras and {args.output}/final.png")


if __name__ == "__main__":
    main()
