"""Load a pretrained generator from the zoo and write samples to a PNG grid.

    python examples/sample_pretrained.py --preset dcgan_mnist --output digits.png
"""

import argparse

import kgan


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="dcgan_mnist", help="zoo name or preset folder")
    parser.add_argument("--num", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="digits.png")
    args = parser.parse_args()

    print(kgan.zoo.info(args.preset)["description"])
    gan = kgan.zoo.load(args.preset)
    images = gan.generate(args.num, seed=args.seed)  # float32 in [-1, 1]
    kgan.images.save_grid(images, args.output)
    print(f"wrote {args.num} samples to {args.output}")


if __name__ == "__main__":
    main()
