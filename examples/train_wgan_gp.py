"""Train a WGAN-GP on 2-D toy data (8 Gaussians) or digits, and report mode coverage.

    python examples/train_wgan_gp.py --data ring8 --steps 2000 --output runs/example_wgan_gp
    python examples/train_wgan_gp.py --data mnist_5k --steps 3000 --output runs/example_wgan_gp

WGAN-GP (Gulrajani et al. 2017) replaces clipping by the gradient penalty
lambda * (||grad D(x_hat)|| - 1)^2 on random interpolates of real and fake
samples, with Adam(1e-4, beta_1=0, beta_2=0.9), n_critic = 5 and no batch norm
in the critic. On the ring of 8 Gaussians the script reports how many modes
the generator covers (`kgan.toy.mode_coverage`) and saves a scatter of
samples as a PNG; on digits it saves a sample grid.
"""

import argparse

import numpy as np

import kgan
import kgan.toy


def scatter_png(points, path, size=256, extent=2.5):
    """Draw 2-D points as white dots on black (no plotting library needed)."""
    canvas = np.zeros((size, size, 1), "float32") - 1.0
    pixels = ((points + extent) / (2 * extent) * (size - 1)).round().astype(int)
    inside = (pixels >= 0).all(1) & (pixels < size).all(1)
    canvas[size - 1 - pixels[inside, 1], pixels[inside, 0]] = 1.0
    kgan.images.save_png(canvas, path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="ring8", help="ring8 or an image dataset such as mnist_5k")
    parser.add_argument("--steps", type=int, default=2000, help="generator updates")
    parser.add_argument("--batch-size", type=int, default=256, help="examples per critic update")
    parser.add_argument("--units", type=int, default=512, help="MLP width (toy data)")
    parser.add_argument("--output", default="runs/example_wgan_gp")
    args = parser.parse_args()

    if args.data == "ring8":
        problem = kgan.toy.PROBLEMS["ring8"]
        gan = kgan.WGANGP(
            generator=kgan.networks.mlp_generator(2, data_dim=2, units=args.units),
            discriminator=kgan.networks.mlp_discriminator(2, units=args.units),
            seed=0,
        )
        # Fresh points for every critic update: n_critic minibatches per step.
        dataset = problem.dataset(args.batch_size * gan.batches_per_step, seed=0)
    else:
        n_critic = 5  # the paper's, WGANGP's default: the pipeline yields 5 minibatches a step
        dataset = kgan.data.load(
            args.data, batch_size=args.batch_size, repeat_batches=n_critic, seed=0
        ).repeat()
        image_shape = tuple(dataset.element_spec.shape[1:])  # the data's own size
        gan = kgan.WGANGP.from_image_shape(image_shape, latent_dim=100, n_critic=n_critic, seed=0)
    gan.compile()  # Adam(1e-4, beta_1=0, beta_2=0.9) for both networks
    history = gan.fit(dataset, epochs=1, steps_per_epoch=args.steps, verbose=2)
    print(f"final gradient penalty: {history.history['gradient_penalty'][-1]:.4f}")
    if args.data == "ring8":
        samples = gan.generate(2500, seed=0)
        coverage = problem.coverage(samples)
        print(f"modes covered: {coverage['modes_covered']}/{len(problem.centers)}, "
              f"share within 3 std: {coverage['high_quality']:.3f}")
        scatter_png(samples, f"{args.output}/samples.png")
    else:
        kgan.images.save_grid(gan.generate(64, seed=0), f"{args.output}/samples.png")
    print(f"saved {args.output}/samples.png")


if __name__ == "__main__":
    main()
