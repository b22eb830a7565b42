"""The `kgan` command line: list, info, sample, synthesize, train, evaluate, translate, export, bench.

Errors a user can fix (unknown names, bad paths, bad arguments) print one line
`kgan: error: ...` and exit with status 2, without a traceback. Training that
diverges (a NaN or Inf loss) prints one such line and exits with status 1.
"""

import argparse
import contextlib
import errno
import inspect
import json
import os
import re
import shlex
import shutil
import signal
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


class CLIError(Exception):
    """An error reported as one line."""


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _int(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}")


def _nonnegative_int(text):
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or a positive integer, got {value}")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (usage stays available through --help)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _augment_policy(text):
    """`--augment` with its names stripped and lower-cased: `ADA` is `ada` everywhere."""
    return ",".join(name.strip().lower() for name in text.split(",") if name.strip())


def _height_width(text):
    """`HxW` as `(H, W)`, and `N` as `(N, N)` (as kgan train's --image-size N)."""
    try:
        size = tuple(int(d) for d in text.lower().split("x"))
    except ValueError:
        size = ()
    if len(size) == 1:
        size = size * 2
    if len(size) != 2 or min(size) < 1:
        raise argparse.ArgumentTypeError(
            f"expected HxW (e.g. 256x256) or N for NxN (e.g. 256), got {text!r}")
    return size


def _unit_interval(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}")
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {value}")
    return value


def _auto_positive_int(text):
    return "auto" if text == "auto" else _positive_int(text)


def _add_speed_arguments(p):
    """kgan train's speed flags; "auto" takes kgan.performance's measured defaults."""
    p.add_argument("--precision", choices=PRECISIONS + ("auto",), default="auto",
                   help="auto: mixed_bfloat16 where the hardware has fast bfloat16 (AMX, "
                        "AVX512-BF16, GPUs of compute capability >= 8), else float32")
    p.add_argument("--steps-per-execution", type=_auto_positive_int, default="auto",
                   help="train steps per compiled call (auto: measured per architecture)")
    p.add_argument("--jit-compile", action=argparse.BooleanOptionalAction, default=None,
                   help="compile the train step with XLA (default: where it measured faster)")


#: --sha256's help: what it checks, and where the download is kept.
_SHA256_HELP = ("full sha256 of a remote archive; it is downloaded once into "
                "$KERAS_HOME/kgan/presets/<sha256>/ (KERAS_HOME defaults to ~/.keras)")


def build_parser():
    parser = _Parser(
        prog="kgan",
        description="GAN model zoo for Keras 3: list and inspect presets, sample, train, export.",
        epilog="A preset is a registered name (kgan list), a preset folder (./NAME for a folder "
               "named like a registered preset) or an https URL of a .tar.gz with --sha256. "
               "Remote presets are cached in $KERAS_HOME/kgan/presets/ (KERAS_HOME defaults "
               "to ~/.keras): set KERAS_HOME to move the cache.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("list", help="list presets (or architectures)", description="List registered presets or architectures.")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. '*mnist*'")
    p.add_argument("--architectures", action="store_true", help="list architectures instead of presets")
    p.add_argument("--markdown", action="store_true", help="print the README zoo table")

    p = sub.add_parser("info", help="show a preset's metadata", description="Print a preset's metadata (JSON).")
    p.add_argument("name", help="preset name, preset folder, or https URL (with --sha256)")
    p.add_argument("--sha256", help=_SHA256_HELP)

    p = sub.add_parser(
        "sample",
        help="sample images from a preset",
        description=(
            "Sample images from a pretrained generator. OUTPUT ending in .png writes a grid, "
            ".npz writes a uint8 array 'images' of shape [N, H, W, C], anything else is a "
            "folder of PNGs. --interpolate K draws N rows of K-step spherical interpolations "
            "(a class-conditional preset's rows cycle through its classes)."
        ),
    )
    p.add_argument("name", help="preset name, preset folder, or https URL (with --sha256)")
    p.add_argument("--num", type=_positive_int, default=64, help="number of samples (rows with --interpolate)")
    p.add_argument("--seed", type=_int, default=0, help="latent seed (same seed, same images)")
    p.add_argument("--output", required=True, help="file.png, file.npz or a folder")
    p.add_argument("--interpolate", type=_positive_int, metavar="K", help="K-step latent interpolations per row")
    p.add_argument("--sha256", help=_SHA256_HELP)
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")

    p = sub.add_parser(
        "synthesize",
        help="write labeled synthetic images from a class-conditional preset",
        description=(
            "Generate --per-class images of every class with a class-conditional preset "
            "(architecture conditional_gan) into OUTPUT/<class>/<class>_NNNNNN.png, the layout "
            "keras.utils.image_dataset_from_directory and kgan.data.from_folder(with_labels=True) "
            "read as labeled data. Class folders take the class names the preset was trained "
            "with (a folder dataset's sub-folders) when they sort in label order, else the "
            "labels zero-padded (00..11), so reading them back gives each image its label. The "
            "folder is written whole or not at all."
        ),
    )
    p.add_argument("name", help="preset name, preset folder, or https URL (with --sha256)")
    p.add_argument("--per-class", type=_positive_int, required=True, metavar="N", help="images per class")
    p.add_argument("--output", required=True, help="destination folder")
    p.add_argument("--seed", type=_int, default=0, help="latent seed (same seed, same images)")
    p.add_argument("--batch-size", type=_positive_int, default=256,
                   help="images generated per step (the images do not depend on it)")
    p.add_argument("--sha256", help=_SHA256_HELP)
    p.add_argument("--overwrite", action="store_true", help="replace an existing, non-empty output folder")

    p = sub.add_parser(
        "train",
        help="train an architecture into a preset",
        description=(
            "Train ARCH on a dataset with model.fit. Writes OUTPUT/preset (a preset folder: "
            "config.json, model.weights.h5, metadata.json, README.md, samples.png), "
            "OUTPUT/samples/epoch_*.png (per epoch: samples of fixed latents; cyclegan: rows A, "
            "G(A), B, F(B) of fixed training images), OUTPUT/log.csv (OUTPUT must be new, empty "
            "or a kgan run folder; --overwrite writes into any). OUTPUT/backup, written after every "
            "epoch, lets an interrupted (even killed) run resume with the same command, which "
            "it does by default (--restart starts over); with --deterministic the resumed run "
            "ends with the weights of an uninterrupted one. A NaN or Inf loss stops training "
            "with exit status 1 and leaves the last backup intact."
        ),
    )
    p.add_argument("arch", help="architecture name (kgan list --architectures)")
    p.add_argument("--dataset", required=True,
                   help="embedded set (mnist_5k), a tensorflow-datasets name, or a folder of "
                        "images (with --image-size; sub-folders are the classes of a "
                        "conditional_gan); for image-to-image architectures domain A (a "
                        "cycle_gan/* name gives both domains)")
    p.add_argument("--dataset-b", help="image-to-image (cyclegan): domain B, a dataset name or folder")
    p.add_argument("--jitter", choices=("cyclegan",),
                   help="image-to-image: the paper's resize, random crop and flip")
    p.add_argument("--split", default="train",
                   help="split of --dataset, e.g. 'train[:500]' (embedded sets are class-interleaved)")
    p.add_argument("--epochs", type=_positive_int, required=True)
    p.add_argument("--batch-size", type=_positive_int,
                   help="images per step (default 64; cyclegan: 1 per domain, the paper's)")
    p.add_argument("--output", required=True, help="run folder")
    p.add_argument("--image-size", type=_positive_int, help="resize images to this square size")
    p.add_argument("--channels", type=int, choices=(1, 3),
                   help="convert images to 1 (grey) or 3 (RGB) channels, e.g. to pair an RGB "
                        "domain with a grey one")
    p.add_argument("--latent-dim", type=_positive_int, default=100)
    p.add_argument("--filters", type=_positive_int, default=64, help="base network width")
    p.add_argument("--ema-decay", type=_unit_interval, help="keep an EMA generator with this decay (e.g. 0.999)")
    p.add_argument("--augment", type=_augment_policy,
                   help="DiffAugment policy, e.g. color,translation,cutout, or 'ada' "
                        "(adaptive discriminator augmentation; logs ada_p, ada_rt)")
    p.add_argument("--ada-target", type=_unit_interval, help="--augment ada: r_t target (0.6)")
    p.add_argument("--ada-kimg", type=float,
                   help="--augment ada: thousands of images for p to go from 0 to 1 (500)")
    p.add_argument("--refine-layers", type=_nonnegative_int, help="DCGAN: stride-1 generator blocks at the start size")
    p.add_argument("--dropout", type=float, help="discriminator dropout rate")
    p.add_argument("--mode-seeking", type=float,
                   help="conditional_gan: weight of the mode-seeking (MSGAN) term that keeps "
                        "a class's samples diverse (0 off)")
    p.add_argument("--conditioning", choices=("concat", "cbn"),
                   help="conditional_gan: label enters the generator concatenated with z, or "
                        "through conditional batch norm")
    p.add_argument("--n-critic", type=_positive_int, help="WGAN, WGAN-GP: critic updates per generator update")
    p.add_argument("--clip-value", type=float, help="WGAN: critic weight clipping bound c")
    p.add_argument("--gp-weight", type=float, help="WGAN-GP: gradient penalty weight lambda")
    p.add_argument("--num-residual-blocks", type=_positive_int, help="CycleGAN: generator residual blocks")
    p.add_argument("--disc-layers", type=_positive_int, help="CycleGAN: PatchGAN stride-2 blocks")
    p.add_argument("--lambda-cycle", type=float, help="CycleGAN: cycle-consistency weight")
    p.add_argument("--identity-weight", type=float, help="CycleGAN: identity weight (fraction of lambda; 0 off)")
    p.add_argument("--pool-size", type=_nonnegative_int, help="CycleGAN: generated images kept per image pool")
    _add_speed_arguments(p)
    p.add_argument("--seed", type=_int, default=0,
                   help="seeds everything: initialization, data order, latents (keras.utils.set_random_seed)")
    p.add_argument("--distribute", choices=("none", "mirrored"), default="none",
                   help="mirrored: one replica per GPU (per CPU device if there is no GPU) "
                   "with tf.distribute.MirroredStrategy; --batch-size is the global batch")
    p.add_argument("--deterministic", action="store_true",
                   help="also make TensorFlow ops deterministic (tf.config.experimental."
                        "enable_op_determinism): the same command gives the same weights")
    p.add_argument("--restart", action="store_true",
                   help="discard OUTPUT/backup of an interrupted run and start over (the default "
                        "resumes from it)")
    p.add_argument("--eval-every", type=_positive_int, metavar="K",
                   help="measure FID/FCD against the training data after epoch 1, every K epochs "
                        "and at the end (into log.csv, TensorBoard and the history)")
    p.add_argument("--eval-num", type=_positive_int, default=2000, help="images per set for --eval-every")
    p.add_argument("--name", help="preset name (default: the output folder's name)")
    p.add_argument("--description", default="", help="one line for the model card")
    p.add_argument("--license", default=None, help="license of the weights (default: the dataset's)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing preset in OUTPUT")
    p.add_argument("--verbose", type=_int, default=1, choices=(0, 1, 2), help="Keras progress bar mode")

    p = sub.add_parser(
        "bench",
        help="measure training throughput (and against a keras.io baseline)",
        description=(
            "Time model.fit of ARCH with kgan train's settings (one configuration per "
            "--precision) and, with --baseline, the same networks trained by a plain float32 "
            "keras.io-style train_step, each configuration in its own process, repeats "
            "interleaved. Reports median images/s, step time, peak resident memory and the "
            "ratio to the baseline (or to the first configuration)."
        ),
    )
    p.add_argument("arch", help="architecture name (with --serving: a preset name or folder)")
    # Training flags default to None here (their defaults: _BENCH_TRAINING_DEFAULTS),
    # so that --serving can refuse those given instead of ignoring them.
    p.add_argument("--precision",
                   help="comma-separated: auto (kgan train's default), float32, mixed_bfloat16, "
                        "mixed_float16 (default auto)")
    p.add_argument("--steps-per-execution", type=_auto_positive_int,
                   help="train steps per compiled call (default: kgan train's, per architecture)")
    p.add_argument("--jit-compile", action=argparse.BooleanOptionalAction, default=None,
                   help="XLA on/off (default: kgan train's, per architecture)")
    p.add_argument("--baseline", action="store_true", default=None,
                   help="also time the keras.io-style float32 baseline of the same networks")
    p.add_argument("--dataset", help="dataset (default mnist_5k; cyclegan: domain A, digits_8x8)")
    p.add_argument("--dataset-b", help="image-to-image: domain B (default mnist_5k)")
    p.add_argument("--split", help="dataset split, e.g. 'train[:256]' (default train)")
    p.add_argument("--image-size", type=_positive_int,
                   help="resize images to this square size (cyclegan on its default domains: 32)")
    p.add_argument("--channels", type=int, choices=(1, 3), help="convert images to 1 or 3 channels")
    p.add_argument("--batch-size", type=_positive_int,
                   help="images per update (default 64; cyclegan: 1 per domain)")
    p.add_argument("--steps", type=_positive_int, help="train steps per repeat (default 50)")
    p.add_argument("--repeats", type=_positive_int, default=5)
    p.add_argument("--latent-dim", type=_positive_int, help="default 100")
    p.add_argument("--filters", type=_positive_int, help="base network width (default 64)")
    p.add_argument("--num-residual-blocks", type=_positive_int, help="CycleGAN: generator residual blocks")
    p.add_argument("--n-critic", type=_positive_int, help="WGAN, WGAN-GP: critic updates per step")
    p.add_argument("--in-process", action="store_true", default=None,
                   help="run every configuration in this process (faster start; peak memory "
                        "is then process-wide)")
    p.add_argument("--serving", action="store_true",
                   help="instead time sampling of preset ARCH: Keras generate vs SavedModel vs "
                        "TFLite (python -m kgan.benchmarks.serving; takes only --repeats and --json)")
    p.add_argument("--profile", action="store_true", default=None,
                   help="also profile one untimed fit per configuration: op time per op type")
    p.add_argument("--floor", action="store_true", default=None,
                   help="also count each configuration's convolutions and matmuls and report the "
                        "least time a step could take on this machine (kernel and arithmetic "
                        "floors; see kgan.benchmarks.compute_floor)")
    p.add_argument("--json", help="also write the rows to this JSON file")

    p = sub.add_parser(
        "evaluate",
        help="measure quality: FID/FCD, KID, IS/classifier score, precision/recall",
        description=(
            "Evaluate SOURCE (a preset name, preset folder or URL; a folder of images; or a "
            "dataset name with --split) against real images. Prints JSON (progress on stderr). "
            "28x28x1 images are measured with kgan's MNIST evaluator (FCD, classifier score), "
            "others with InceptionV3 (its weights are downloaded into the Keras cache on first "
            "use, from keras.applications' URL; offline, see --inception-weights). "
            "An image translator (CycleGAN preset) is measured in both directions: class "
            "preservation by the evaluator (for domains with labels), cycle reconstruction error, "
            "FCD against the target domain."
        ),
    )
    p.add_argument("source", help="preset name/folder/URL, image folder, or dataset name")
    p.add_argument("--num", type=_positive_int,
                   help="images from each set (default 2500; translators: the smaller domain)")
    p.add_argument("--against", help="real dataset or image folder (default: the preset's dataset); "
                   "for a translator its two domains as A,B (labelled, as class sub-folders, for "
                   "class preservation)")
    p.add_argument("--against-split", default="train", help="split of --against, e.g. 'train[:50%%]'")
    p.add_argument("--split", default="train", help="split when SOURCE is a dataset")
    p.add_argument("--reference", help="also evaluate this real set (e.g. a held-out split) for scale")
    p.add_argument("--reference-split", default="train", help="split of --reference")
    p.add_argument("--metrics", help="comma-separated: fid, kid, is, pr (default: all the "
                   "extractor supports; is needs class probabilities)")
    p.add_argument("--extractor", default="auto",
                   help="auto, mnist_classifier, inception_v3, an evaluator folder, or a .keras file")
    p.add_argument("--inception-weights", help="path of the InceptionV3 no-top weights file "
                   "(default: the Keras cache's, downloaded there if missing)")
    p.add_argument("--live-generator", action="store_true",
                   help="sample the trained generator instead of its EMA average")
    p.add_argument("--batch-size", type=_positive_int, default=250,
                   help="images per extractor call; the sampled images (blocks of 250, block i "
                   "seeded --seed + i) and so the figures do not depend on it")
    p.add_argument("--seed", type=_int, default=0)
    p.add_argument("--json", help="also write the result to this file")
    p.add_argument("--update-card", action="store_true",
                   help="write the figures into the preset's metadata.json and model card")
    p.add_argument("--compare-into", metavar="PRESET_FOLDER",
                   help="add the figures as a comparison row to another preset's card")
    p.add_argument("--label", help="row label for --compare-into")
    p.add_argument("--sha256", help=_SHA256_HELP)

    p = sub.add_parser(
        "translate",
        help="translate images with an image-to-image preset (CycleGAN)",
        description=(
            "Translate image files (PNG, JPEG, BMP, GIF; WebP where TensorFlow decodes it) or "
            "folders of them with a CycleGAN preset, at their own size, into PNGs under --output (a folder input keeps its "
            "sub-folders). The output folder is written whole or not at all."
        ),
    )
    p.add_argument("name", help="preset name, preset folder, or https URL (with --sha256)")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders")
    p.add_argument("--direction", choices=("a_to_b", "b_to_a"), default="a_to_b")
    p.add_argument("--output", required=True, help="folder for the translated PNGs")
    p.add_argument("--sha256", help=_SHA256_HELP)
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")

    p = sub.add_parser(
        "export",
        help="export a generator as a SavedModel or a TFLite (LiteRT) model",
        description=(
            "Export a preset's generator as a SavedModel (signatures serving_default, "
            "generate_uint8 on float32 latents, plus int32 labels for a conditional preset; "
            "a CycleGAN's a_to_b, b_to_a and serving_default (= a_to_b) on uint8 images), or "
            "with --format tflite as DIR/generator.tflite (the same signatures at a fixed "
            "--batch-size; a CycleGAN's a_to_b/b_to_a at a fixed --image-size)."
        ),
    )
    p.add_argument("name", help="preset name, preset folder, or https URL (with --sha256)")
    p.add_argument("dir", help="destination folder (must not exist unless --overwrite)")
    p.add_argument("--format", choices=("savedmodel", "tflite"), default="savedmodel")
    p.add_argument("--batch-size", type=_positive_int, default=1, help="tflite: the fixed batch size")
    p.add_argument("--quantize", choices=("float16",), help="tflite: store the weights as float16")
    p.add_argument("--image-size", metavar="HxW", type=_height_width,
                   help="tflite CycleGAN: input size, e.g. 256x256, or 256 for a square "
                        "(default: the training crop size)")
    p.add_argument("--sha256", help=_SHA256_HELP)
    p.add_argument("--overwrite", action="store_true")
    return parser


def cmd_list(args):
    from kgan import zoo

    if args.markdown:
        print(zoo.markdown_table())
        return
    kind = "architectures" if args.architectures else "presets"
    names = zoo.list(args.pattern, kind=kind)
    for name in names:
        if kind == "architectures":
            print(f"{name:16s} {zoo.architecture(name).description}")
        else:
            print(f"{name:16s} {zoo._PRESETS[name].description}")
    if not names:
        print(f"no {kind} match {args.pattern!r}", file=sys.stderr)


def cmd_info(args):
    from kgan import zoo

    # _resolve sends a download's progress to stderr: stdout is the JSON.
    print(json.dumps(zoo.info(str(_resolve(args))), indent=2, sort_keys=True))


def _progress_to_stderr():
    """Keras' progress output (a download's, an evaluation's bars) on stderr.

    Keras prints it to stdout, which holds a command's result (`kgan info`'s
    or `kgan evaluate`'s JSON, piped into a file or another program).
    """
    return contextlib.redirect_stdout(sys.stderr)


def _resolve(args):
    """The local folder of the preset `args.name` (a URL is fetched and checked)."""
    from kgan import zoo

    with _progress_to_stderr():
        return zoo.resolve(args.name, sha256=args.sha256)


def _load(args):
    """The model of the preset `args.name`, fetched if it is a URL."""
    from kgan import zoo

    with _progress_to_stderr():
        return zoo.load(args.name, sha256=args.sha256)


def cmd_sample(args):
    from kgan import sampling, zoo
    from kgan.atomic import absolute_folder

    output = Path(args.output)
    suffix = output.suffix.lower()
    if args.interpolate is not None and args.interpolate < 2:
        raise CLIError("--interpolate needs at least 2 steps")
    if suffix in (".png", ".npz") and output.is_dir():
        raise CLIError(f"{output} is a folder; choose a file name for a .png/.npz output")
    if suffix in _IMAGE_SUFFIXES and suffix != ".png":
        raise CLIError(f"kgan sample writes a .png grid, an .npz array or a folder of PNGs; "
                       f"{output} looks like a {suffix} file. Name a .png, .npz or a folder")
    if output.exists() and not args.overwrite and suffix in (".png", ".npz"):
        raise CLIError(f"{output} exists; pass --overwrite to replace it")
    if suffix not in (".png", ".npz"):
        absolute_folder(output)  # not `.`, `..` or a folder holding the current one
        if output.exists() and not output.is_dir():
            raise CLIError(
                f"{output} exists and is not a folder; OUTPUT must end in .png or .npz, "
                "or name a folder for one PNG per sample"
            )
        if output.exists() and any(output.iterdir()) and not args.overwrite:
            raise CLIError(_NOT_EMPTY.format(output))
    _refuse_output_over_preset(output, args.name)
    model = _load(args)
    if model.latent_dim is None:
        raise CLIError(
            f"{args.name} is a {type(model).__name__}, which translates images and has no "
            "latent space to sample; use kgan translate"
        )
    # Batch by batch into a temporary file or folder, renamed at the end: memory
    # stays flat in --num (sampling.py) and the output appears whole or not at all.
    written = sampling.write_samples(model, output, args.num, seed=args.seed, interpolate=args.interpolate)
    print(f"wrote {written} samples to {output}")


def _dataset_license(name):
    if name.startswith("mnist"):
        return "CC-BY-SA-3.0 (MNIST, LeCun & Cortes); weights Apache-2.0"
    return "see the dataset's license; weights Apache-2.0"


def _quality_callback(args, image_shape, output):
    """The --eval-every FID callback; refuses an --eval-num too small for FID."""
    from kgan import callbacks as kgan_callbacks
    from kgan import data, evaluators, metrics

    name, extractor = evaluators.extractor_for(image_shape)
    dim = metrics.feature_dim(extractor, image_shape)
    if args.eval_num <= dim:
        raise CLIError(f"--eval-num {args.eval_num} is too few for FID with the {name} evaluator's "
                       f"{dim} features: pass --eval-num {dim + 1} or more (the default is 2000)")
    # The training data as the model sees it: its split, size and channels.
    real = data.load(args.dataset, split=args.split, batch_size=250, image_size=args.image_size,
                     channels=args.channels, shuffle=False, drop_remainder=False)
    # Here, not at the first evaluation (after OUTPUT exists and an epoch has
    # trained): the real set must hold --eval-num images. Reads at most that many.
    held = sum(int(batch.shape[0]) for batch in real.take(-(-args.eval_num // 250)))
    if held < args.eval_num:
        raise CLIError(f"--eval-num {args.eval_num} is more than the {held} images of --dataset "
                       f"{args.dataset} --split {args.split!r}: lower --eval-num (FID needs more "
                       f"than {dim}) or use a larger split")
    return kgan_callbacks.QualityMetrics(
        real, extractor, metrics=("fid",), every_n_epochs=args.eval_every, num=args.eval_num,
        seed=args.seed, tensorboard_log_dir=output / "tensorboard",
    )


def cmd_train(args, argv):
    from kgan import performance

    # "auto" -> the measured defaults (kgan.performance); recorded resolved in the metadata.
    mirrored = args.distribute == "mirrored"
    args.__dict__.update(performance.resolve(
        args.arch, args.precision, args.steps_per_execution, args.jit_compile, mirrored=mirrored))
    # Before any TensorFlow op; a process where TensorFlow already runs keeps its pools.
    args.cpu_threads = performance.set_threads(
        performance.cpu_threads(args.arch, mirrored=mirrored), warn=False)
    with performance.global_precision(args.precision):
        _train(args, argv)


def _train(args, argv):
    import keras

    from kgan import callbacks as kgan_callbacks
    from kgan import zoo
    from kgan.atomic import make_dirs

    output = Path(args.output)
    _refuse_output_over_training_data(output, args)
    preset_dir = output / "preset"
    if preset_dir.exists() and not args.overwrite:
        raise CLIError(f"{preset_dir} exists; pass --overwrite to train again into {output}")
    # A run writes log.csv, samples/ and tensorboard/ into OUTPUT: never into a
    # folder of other files unless asked. A run folder has backup/command.json.
    if (output.is_dir() and any(output.iterdir()) and not (output / "backup" / "command.json").is_file()
            and not args.overwrite):
        raise CLIError(f"{output} holds files but no kgan run to resume; choose an empty or new "
                       "--output, or pass --overwrite to write the run's files there")
    arch = zoo.architecture(args.arch)
    translation = hasattr(arch.cls, "translate")
    _resolve_batch_size(args, translation)  # recorded resolved: in command.json and the metadata
    # --seed fixes initialization, data order and every random stream, so a
    # recipe reproduces its preset and a resumed run continues the same run.
    if not 0 <= args.seed < 2**32:  # numpy's range; its own error names no flag
        raise CLIError(f"--seed must be in 0..{2**32 - 1}, got {args.seed}")
    keras.utils.set_random_seed(args.seed)
    if args.deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    extra = architecture_options(args)
    _check_builder_accepts(arch, extra)
    strategy = _strategy(args)
    # Variables (networks, optimizers, EMA, pools) are created under the
    # strategy; fit then splits each global batch across its replicas.
    with strategy.scope():
        dataset, model, image_shape = _build_and_compile(arch, args, extra, translation)

    # Every refusal comes before OUTPUT is created, so a refused run leaves nothing behind.
    quality = []
    if args.eval_every and translation:
        raise CLIError("--eval-every measures generated samples; for cyclegan evaluate the "
                       "translations after training with kgan.evaluation")
    if args.eval_every:
        quality = [_quality_callback(args, image_shape, output)]
    if translation:
        # Rows A, G(A), B, F(B) of fixed, unjittered training images, as many per
        # row as the smaller domain has, up to 8: after every epoch and in the preset.
        images, ncols = model.translation_sheet(args.dataset, args.dataset_b,
                                                image_size=args.image_size)
        grids = kgan_callbacks.TranslationGrid(output / "samples", images[:ncols],
                                               images[2 * ncols:3 * ncols])
    else:
        grids = kgan_callbacks.SampleGrid(output / "samples", num_samples=64, seed=args.seed)
    if args.distribute != "none":  # after every refusal: an error stays one line
        print(f"kgan: --distribute {args.distribute}: {strategy.num_replicas_in_sync} replicas "
              f"({', '.join(strategy.extended.worker_devices)}), --batch-size {args.batch_size} "
              "images per step in all", file=sys.stderr)
    made_output = not output.exists()
    make_dirs(output)  # a one-line error if OUTPUT is under a file or read-only
    backup_dir = output / "backup"
    backup, restored = _backup(args, backup_dir, preset_dir, dataset)
    resuming = restored is not None
    _align_outputs_with_backup(output, restored)
    timer = _make_timer(backup_dir, restored)
    try:
        model.fit(
            dataset,
            epochs=args.epochs,
            verbose=args.verbose,
            callbacks=[
                # First: a NaN loss raises before any callback (the backup) sees the batch.
                kgan_callbacks.StopOnDivergence(),
                grids,
                *quality,
                # Append only when resuming: a fresh run (e.g. --overwrite) starts a new log.
                keras.callbacks.CSVLogger(str(output / "log.csv"), append=resuming),
                timer,
                # After the epoch's files: a run killed between them resumes from the
                # previous backup and writes them again (_align_outputs_with_backup).
                backup,
            ],
        )
    except kgan_callbacks.DivergenceError as err:
        raise _diverged(err, backup_dir, preset_dir) from err
    except Exception:
        # An undecodable image is found as fit reads the first batch, after
        # OUTPUT was made: a run that fails before its first backup takes back
        # the folder it made (only backup/command.json), as a refusal leaves none.
        if made_output and kgan_callbacks.BackupAndRestore.read_metadata(backup_dir) is None:
            shutil.rmtree(output, ignore_errors=True)
        raise
    model.recalibrate_ema_statistics(seed=args.seed)
    images_per_epoch = _dataset_size(dataset) * args.batch_size * model.batches_per_step
    metadata = {
        "name": args.name or output.resolve().name,  # `--output .` has no .name
        "architecture": args.arch,
        "description": args.description or f"{args.arch} trained on {args.dataset}",
        "dataset": (f"{args.dataset} <-> {args.dataset_b or args.dataset}" if translation
                    else args.dataset if args.split == "train" else f"{args.dataset} {args.split}"),
        "recipe": "kgan " + shlex.join(argv),
        "license": args.license or _dataset_license(args.dataset),
        "metrics": {},
        **({"dataset_a": args.dataset, "dataset_b": args.dataset_b or args.dataset} if translation else {}),
        # Label i's name (a folder's sub-folder), so synthesized data can be told apart by class.
        **({"class_names": [str(n) for n in dataset.class_names]}
           if getattr(model, "num_classes", None) and getattr(dataset, "class_names", None)
           and len(dataset.class_names) == model.num_classes else {}),
        "training": {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "precision": args.precision,
            "steps_per_execution": args.steps_per_execution,
            "jit_compile": bool(args.jit_compile),
            "cpu_threads": args.cpu_threads,  # 0: TensorFlow's default (as many as cores)
            "distribute": args.distribute,
            "replicas": strategy.num_replicas_in_sync,
            "seed": args.seed,
            "ema_decay": args.ema_decay,
            "augment": args.augment,
            **_ada_options(args),
            **extra,
            "wall_time_s": round(timer.total, 1),
            "images_per_s_median_epoch": round(timer.images_per_s(images_per_epoch), 1),
            **_final_losses(output / "log.csv"),
            "machine": zoo.machine_summary(),
            "tensorflow": _version("tensorflow"),
            "keras": keras.__version__,
        },
    }
    if translation:
        metadata["training"]["jitter"] = args.jitter
    try:
        samples = grids.sheet() if translation else None
        zoo.save_preset(model, preset_dir, metadata, overwrite=args.overwrite, samples=samples)
    except kgan_callbacks.DivergenceError as err:  # the last step left NaN weights
        raise _diverged(err, backup_dir, preset_dir) from err
    # Only now: a kill before the preset is written still resumes (and saves it).
    shutil.rmtree(backup_dir, ignore_errors=True)
    print(f"wrote preset {preset_dir} ({timer.total:.0f} s)")


def _refuse_output_over_training_data(output, args):
    """Refuse an --output that is, lies inside or holds a --dataset/--dataset-b folder.

    Folders are read with all their sub-folders: a run inside one (`--dataset
    grey --output grey/run`) would make its PNGs (samples/, preset/samples.png)
    training images of the next run on that folder.
    """
    _refuse_output_in_read_folders(
        output, (("--dataset", args.dataset), ("--dataset-b", args.dataset_b)),
        "folders are read with all their sub-folders, so the run's files (sample PNGs, the "
        "preset) and the training images would mix",
    )


def _refuse_output_in_read_folders(output, named_folders, consequence, flag="--output"):
    """Refuse an output that is, lies inside or holds one of the folders in
    `named_folders` (`(name, path)` pairs; paths that are no folder are
    skipped), which the command reads: `consequence` says what would follow."""
    from kgan._checks import path_relation

    for name, value in named_folders:
        if value is None or not Path(value).expanduser().is_dir():
            continue  # a dataset name, or a file
        relation = path_relation(output, value)
        if relation:
            raise CLIError(
                f"{flag} {output} {relation} {name} {value}: {consequence}. Choose {flag} "
                f"outside {value} that does not hold it"
            )


def _strategy(args):
    """The tf.distribute strategy `--distribute` asks for (the default one for none)."""
    import tensorflow as tf

    if args.distribute == "none":
        return tf.distribute.get_strategy()
    found = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    devices = [device.name for device in found]
    replicas = len(devices)
    if args.batch_size < replicas or args.batch_size % replicas:
        # Keras cannot build a model from a first batch split unevenly (kgan.GAN.fit).
        multiple = max(args.batch_size // replicas, 1) * replicas
        raise CLIError(f"--batch-size {args.batch_size} is the global batch, split evenly over "
                       f"{replicas} replicas: pass a multiple of {replicas}, e.g. --batch-size "
                       f"{multiple}")
    strategy = tf.distribute.MirroredStrategy(devices)
    _check_distributed_compile(args, strategy)
    return strategy


def _check_distributed_compile(args, strategy):
    """The model's compile refusals under `strategy`, in the flags' words (before OUTPUT exists)."""
    from kgan.models import gan

    replicas = strategy.num_replicas_in_sync
    try:
        gan.check_compile_settings(strategy, steps_per_execution=args.steps_per_execution)
    except ValueError:
        raise CLIError(f"--steps-per-execution {args.steps_per_execution} cannot run with "
                       f"--distribute mirrored over {replicas} replicas: Keras's multi-step loop "
                       "fails there (keras-team/keras#19246); leave --steps-per-execution at auto "
                       "(1 under --distribute mirrored)")
    try:
        gan.check_compile_settings(strategy, jit_compile=args.jit_compile)
    except ValueError:
        raise CLIError(f"--jit-compile cannot run with --distribute mirrored over {replicas} CPU "
                       "devices: XLA compiles the step for one device, which cannot reach the "
                       "other replicas' variables; drop --jit-compile (GPUs are not refused)")


@contextlib.contextmanager
def _too_few_examples_as_flags(args, translation=False, dataset=None, split_applies=None):
    """`data.TooFewExamplesError` in the command line's words (its flags, not Python arguments).

    `dataset` names the data when `--dataset` was left to a default (`kgan
    bench`); `split_applies` says whether `--split` selects a translator's
    domains (`kgan bench`, default: not for translation, as in `kgan train`).
    """
    from kgan import data

    if split_applies is None:
        # A folder has no splits (data.load refuses --split for one).
        named = dataset or args.dataset
        split_applies = not translation and not (named and data._is_folder_name(named))
    try:
        yield
    except data.TooFewExamplesError as err:
        per_step = err.batch_size * err.repeat_batches
        critic = (f" ({err.repeat_batches} critic minibatches of --batch-size {err.batch_size})"
                  if err.repeat_batches > 1 else "")
        larger = ", or choose a larger --split" if split_applies else ""
        if translation:  # one batch from each domain, named with its split
            data_text = err.source
        else:
            split = "" if args.split == "train" else f" --split {shlex.quote(args.split)}"
            data_text = f"--dataset {dataset or args.dataset}{split}"
        if err.num_examples >= err.repeat_batches:
            fix = f"Lower --batch-size to at most {err.num_examples // err.repeat_batches}"
        else:  # even batches of 1 are too few for the critic's minibatches
            fix = (f"Lower --n-critic to at most {err.num_examples} (with --batch-size 1), or "
                   "train on more examples")
        raise CLIError(
            f"{data_text} has {err.num_examples} examples, fewer than one training step takes: "
            f"{per_step}{critic}. {fix}{larger}."
        ) from None


def architecture_options(args):
    """The architecture-specific `kgan train` options given, as builder keywords.

    Options left out keep the builder's defaults.

    Example:

    ```python
    args = build_parser().parse_args(["train", "wgan_gp", "--dataset", "mnist_5k",
                                      "--epochs", "1", "--output", "runs/w", "--n-critic", "3"])
    architecture_options(args)  # {"n_critic": 3}
    ```
    """
    return {
        k: getattr(args, k)
        for k in ("refine_layers", "dropout", "n_critic", "clip_value", "gp_weight",
                  "num_residual_blocks", "disc_layers", "lambda_cycle", "identity_weight",
                  "pool_size", "mode_seeking", "conditioning")
        if getattr(args, k) is not None
    }


def _resolve_batch_size(args, translation):
    """`--batch-size` unset: 1 per domain for a translator (the paper's), else 64."""
    if args.batch_size is None:
        args.batch_size = 1 if translation else 64


def _build_and_compile(arch, args, extra, translation):
    """The training pipeline, the compiled model and its image shape."""
    from kgan import data

    _resolve_batch_size(args, translation)  # also for kgan.resave, which parses a recipe
    if translation:
        if args.split != "train":
            raise CLIError("--split selects one dataset's examples; cyclegan trains on both "
                           "domains' train splits")
        dataset, model = _build_translation(arch, args, extra)
        return dataset, model, model.image_shape_a
    for flag in ("dataset_b", "jitter"):
        if getattr(args, flag) is not None:
            raise CLIError(f"{args.arch} learns one dataset; --{flag.replace('_', '-')} is for "
                           "image-to-image architectures (cyclegan)")
    # Class-conditional architectures learn (image, label) pairs.
    conditional = "num_classes" in inspect.signature(arch.builder).parameters
    load_options = dict(split=args.split, batch_size=args.batch_size, image_size=args.image_size,
                        channels=args.channels, seed=args.seed, with_labels=conditional)
    with _too_few_examples_as_flags(args):
        dataset = data.load(args.dataset, **load_options)
    image_spec = dataset.element_spec[0] if conditional else dataset.element_spec
    image_shape = tuple(int(d) for d in image_spec.shape[1:])
    if conditional:
        extra["num_classes"] = _num_classes(dataset, args.dataset)
    model = arch.builder(
        image_shape=image_shape, latent_dim=args.latent_dim, filters=args.filters,
        seed=args.seed, ema_decay=args.ema_decay, augment=args.augment, **extra,
        **_ada_options(args),
    )
    if model.batches_per_step > 1:
        # Each critic update takes a fresh minibatch: one step eats n_critic of them.
        with _too_few_examples_as_flags(args):
            dataset = data.load(args.dataset, repeat_batches=model.batches_per_step, **load_options)
    model.compile(steps_per_execution=args.steps_per_execution, jit_compile=args.jit_compile)
    return dataset, model, image_shape


#: `kgan train` arguments that may differ between a run and its resumption.
#: The output is where the backup was found, however it is spelled (`run`,
#: `./run/`, an absolute path) or wherever the folder was moved.
_RESUME_MAY_DIFFER = ("verbose", "overwrite", "restart", "cpu_threads", "output")

#: Options added after backups were first written, with the value an older
#: backup's command.json stands for, so those runs still resume.
_RESUME_ADDED_LATER = {"distribute": "none", "channels": None}


def _backup(args, backup_dir, preset_dir, dataset):
    """The backup callback of `kgan train`, and the finished epochs it resumes
    after (None for a new run).

    An existing backup is resumed by default (one line on stderr says so), if
    it was made by the same command; `--restart` deletes it first, and so does
    `--overwrite` when the backup's run finished and wrote its preset (killed
    before deleting the backup: it is complete, and a new run is asked for).
    """
    from kgan import callbacks as kgan_callbacks
    from kgan.atomic import make_dirs, write_text

    command_file = backup_dir / "command.json"
    previous = kgan_callbacks.BackupAndRestore.read_metadata(backup_dir)
    finished_run = (args.overwrite and previous is not None and preset_dir.exists()
                    and int(previous["epoch"]) >= args.epochs)
    if (args.restart and backup_dir.exists()) or finished_run:
        shutil.rmtree(backup_dir)
        reason = "--restart: deleted the backup" if args.restart else \
            "--overwrite: deleted the backup of the finished run"
        print(f"kgan: {reason} in {backup_dir}", file=sys.stderr)
        previous = None
    command = {k: v for k, v in sorted(vars(args).items()) if k not in _RESUME_MAY_DIFFER}
    if previous is not None:
        recorded = json.loads(command_file.read_text()) if command_file.is_file() else None
        if recorded is not None:
            recorded = {**_RESUME_ADDED_LATER, **recorded}
        if recorded is not None and recorded != command:
            changed = sorted(k for k in set(recorded) | set(command) if recorded.get(k) != command.get(k))
            flags = ", ".join("--" + k.replace("_", "-") for k in changed)
            raise CLIError(
                f"{backup_dir} holds an interrupted run with other options ({flags}); run its "
                "command again to resume it, or pass --restart to start over"
            )
        print(f"kgan: resuming from the backup in {backup_dir} after epoch {previous['epoch']} "
              f"of {args.epochs} (--restart starts over)", file=sys.stderr)
    else:
        make_dirs(backup_dir)
        write_text(command_file, json.dumps(command, indent=1) + "\n")
    # Kept when fit ends (deleted after the preset is written); `data` replays
    # the finished epochs' shuffles so the resumed epochs see the same order.
    callback = kgan_callbacks.BackupAndRestore(backup_dir, delete_checkpoint=False, data=dataset)
    return callback, None if previous is None else int(previous["epoch"])


def _align_outputs_with_backup(output, finished):
    """Make OUTPUT's per-epoch files match the epochs the run continues from.

    Resuming after `finished` epochs: log.csv keeps its rows of epochs
    `0..finished-1` (a run killed after writing the next epoch's row, before
    its backup, redoes that epoch). Starting afresh (`finished` None: a new
    run, `--overwrite`, `--restart`): an earlier run's sample grids go, so
    `samples/` holds only this run's.
    """
    from kgan.atomic import write_text

    if finished is None:
        for grid in (output / "samples").glob("epoch_*.png"):
            grid.unlink()
        return
    log = output / "log.csv"
    lines = log.read_text().splitlines(keepends=True) if log.is_file() else []

    def logged_epoch(line):  # CSVLogger's first column is the 0-based epoch
        first = line.split(",", 1)[0].strip()
        return int(first) if first.isdigit() else None

    kept = lines[:1] + [line for line in lines[1:]
                        if logged_epoch(line) is not None and logged_epoch(line) < finished]
    if len(kept) != len(lines):
        write_text(log, "".join(kept))


def _diverged(err, backup_dir, preset_dir):
    """The one-line `DivergenceError` of `kgan train`: where, and what was kept."""
    from kgan import callbacks as kgan_callbacks

    previous = kgan_callbacks.BackupAndRestore.read_metadata(backup_dir)
    kept = (f"the backup in {backup_dir} keeps epoch {previous['epoch']} (rerunning resumes from "
            "it, --restart starts over)" if previous else "no backup was written yet")
    if preset_dir.exists():
        kept += f"; {preset_dir} was not replaced"
    return kgan_callbacks.DivergenceError(
        f"{err}; {kept}. Lower the learning rates or check the data for NaN", epoch=err.epoch,
        batch=err.batch, step=err.step, values=err.values,
    )


def _ada_options(args):
    """`ada_target` / `ada_kimg` when given; refused without `--augment ada`."""
    options = {k: getattr(args, k) for k in ("ada_target", "ada_kimg") if getattr(args, k) is not None}
    if options and (args.augment or "").strip() != "ada":
        flags = ", ".join("--" + k.replace("_", "-") for k in options)
        raise CLIError(f"{flags} only apply with --augment ada")
    return options


def _build_translation(arch, args, extra):
    """The unpaired pipeline and a compiled image-to-image model (CycleGAN)."""
    from kgan import data

    # ADA works for every architecture; DiffAugment policies are not CycleGAN's.
    augment = args.augment if args.augment is not None and args.augment.strip() == "ada" else None
    refused = [flag for flag, value in (("--ema-decay", args.ema_decay), ("--augment", args.augment))
               if value is not None and not (flag == "--augment" and augment)]
    if refused:
        raise CLIError(f"{args.arch} does not take {', '.join(refused)}")
    try:
        with _too_few_examples_as_flags(args, translation=True):
            dataset = data.unpaired(
                args.dataset, args.dataset_b, batch_size=args.batch_size,
                image_size=args.image_size, channels=args.channels, seed=args.seed,
                jitter=args.jitter,
            )
    except data._SingleDomainError:
        raise CLIError(
            f"--dataset {args.dataset} is one domain: name domain B with --dataset-b (a dataset "
            "name or folder). --dataset alone stands for both domains only for "
            "tensorflow-datasets cycle_gan/... names and folders holding trainA/ and trainB/"
        ) from None
    spec_a, spec_b = dataset.element_spec
    image_shape = tuple(int(d) for d in spec_a.shape[1:])
    _check_patchgan_fits(arch, args, image_shape, extra)
    model = arch.builder(
        image_shape=image_shape, filters=args.filters, seed=args.seed,
        channels_b=int(spec_b.shape[-1]), augment=augment, **extra, **_ada_options(args),
    )
    # The paper's schedule: constant for the first half, then linear decay to 0.
    g_optimizer, d_optimizer = arch.cls.default_optimizers(
        epochs=args.epochs, steps_per_epoch=_dataset_size(dataset)
    )
    model.compile(
        g_optimizer=g_optimizer, d_optimizer=d_optimizer,
        steps_per_execution=args.steps_per_execution, jit_compile=args.jit_compile,
    )
    return dataset, model


def _check_patchgan_fits(arch, args, image_shape, extra):
    """Refuse training images too small for the PatchGAN, naming --image-size and --disc-layers."""
    from kgan.networks.cyclegan import patchgan_output_size

    default = inspect.signature(arch.builder).parameters["disc_layers"].default
    layers = extra.get("disc_layers", default)
    side = min(image_shape[:2])
    if patchgan_output_size(side, layers) >= 1:
        return
    # Training sizes are multiples of 4 (the generator downsamples twice).
    smallest = next(s for s in range(4, 1 << 16, 4) if patchgan_output_size(s, layers) >= 1)
    fewer = max((n for n in range(1, layers) if patchgan_output_size(side, n) >= 1), default=None)
    size = (f"--image-size {args.image_size}" if args.image_size
            else f"the domains' {image_shape[0]}x{image_shape[1]} images")
    layers_text = f"--disc-layers {layers}" if "disc_layers" in extra else \
        f"{layers} stride-2 layers (the default --disc-layers)"
    raise CLIError(
        f"{size} is too small for the PatchGAN discriminator with {layers_text}, which needs "
        f"images of at least {smallest}x{smallest}: pass --image-size {smallest} or more"
        + (f", or --disc-layers {fewer}" + (" or fewer" if fewer > 1 else "") if fewer else "")
    )


def _num_classes(dataset, name):
    """Classes of a labelled training set: its class names, else the largest label + 1."""
    import tensorflow as tf

    names = getattr(dataset, "class_names", None)
    if names and len(names) < 2:
        raise CLIError(f"{name} has one class sub-folder ({names[0]}); a conditional GAN needs "
                       "labelled data of at least two classes, one sub-folder each")
    if names:
        return len(names)
    largest = dataset.reduce(tf.constant(-1, tf.int32),
                             lambda top, batch: tf.maximum(top, tf.reduce_max(batch[1])))
    if int(largest) < 1:
        raise CLIError(f"{name} has fewer than two classes; a conditional GAN needs labelled data")
    return int(largest) + 1


def _check_builder_accepts(arch, options, command="train"):
    """Refuse `options` (builder keywords) that `arch`'s builder does not take, as their flags."""
    accepted = inspect.signature(arch.builder).parameters
    refused = [k for k in options if k not in accepted]
    if refused:
        flags = ", ".join("--" + k.replace("_", "-") for k in refused)
        raise CLIError(f"{arch.name} does not take {flags}; see kgan {command} --help")


def _dataset_size(dataset):
    import tensorflow as tf

    size = int(dataset.cardinality())
    if size < 0:  # unknown: count once
        size = int(dataset.reduce(0, lambda n, _: n + 1))
    return size if size != tf.data.INFINITE_CARDINALITY else 0


def _version(module):
    try:
        return __import__(module).__version__
    except Exception:  # pragma: no cover
        return "unknown"


def _final_losses(log):
    """`final_d_loss` and `final_g_loss` from log.csv's last row (None where absent).

    The log, not `fit`'s history: a resumed run's history holds only the
    epochs it trained, none when it resumed after the last epoch.
    """
    import csv

    rows = list(csv.DictReader(log.open(newline=""))) if log.is_file() else []
    last = rows[-1] if rows else {}

    def value(key):
        try:
            return round(float(last[key]), 4)
        except (KeyError, TypeError, ValueError):
            return None

    return {"final_d_loss": value("d_loss"), "final_g_loss": value("g_loss")}


def _make_timer(backup_dir, finished):
    """The epoch timer of `kgan train`, continuing the times of the `finished`
    epochs of an interrupted run (None for a new run)."""
    import keras

    from kgan.atomic import write_text

    class EpochTimer(keras.callbacks.Callback):
        """Wall time per epoch over every process of a run; the first epoch of
        each process (tracing) is left out of the rate.

        Kept in the backup folder (`epoch_times.json`, before each backup), so
        a resumed run's totals include the epochs trained before the kill.
        """

        FILE = "epoch_times.json"

        def __init__(self):
            super().__init__()
            self.epochs = []  # [seconds, first epoch of its process]
            path = backup_dir / self.FILE
            if finished is not None and path.is_file():
                try:
                    self.epochs = json.loads(path.read_text())[:finished]
                except ValueError:  # unreadable: time this process's epochs only
                    self.epochs = []
            self._first_of_process = True

        @property
        def total(self):
            return sum(seconds for seconds, _ in self.epochs)

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.epochs.append([time.perf_counter() - self._start, self._first_of_process])
            self._first_of_process = False
            if backup_dir.is_dir():
                write_text(backup_dir / self.FILE, json.dumps(self.epochs))

        def images_per_s(self, images_per_epoch):
            import statistics

            steady = [seconds for seconds, first in self.epochs if not first]
            steady = steady or [seconds for seconds, _ in self.epochs]
            return images_per_epoch / statistics.median(steady) if steady else 0.0

    return EpochTimer()


#: `kgan bench`'s training flags and their defaults (the parser leaves them None;
#: None here: bench.run's default for the architecture, see bench.problem_defaults).
_BENCH_TRAINING_DEFAULTS = {
    "precision": "auto", "steps_per_execution": "auto", "jit_compile": None, "baseline": False,
    "dataset": None, "dataset_b": None, "split": "train", "image_size": None, "channels": None,
    "batch_size": None, "steps": 50, "latent_dim": 100, "filters": 64, "num_residual_blocks": None,
    "n_critic": None, "in_process": False, "profile": False, "floor": False,
}


def cmd_bench(args):
    from kgan import bench, zoo

    given = [name for name in _BENCH_TRAINING_DEFAULTS if getattr(args, name) is not None]
    if args.serving and given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise CLIError(f"{flags} {'configures' if len(given) == 1 else 'configure'} training "
                       f"benchmarks; --serving times sampling of preset {args.arch} and takes "
                       "only --repeats and --json. Drop "
                       f"{'it' if len(given) == 1 else 'them'}, or drop --serving to time training")
    for name, default in _BENCH_TRAINING_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    if not args.serving:  # as kgan train: an option of another architecture is refused
        _check_builder_accepts(zoo.architecture(args.arch), {
            name: value for name in ("n_critic", "num_residual_blocks")
            if (value := getattr(args, name)) is not None}, "bench")
    _check_json_target(args.json)
    if args.serving:
        from kgan.benchmarks import serving

        report = serving.run(args.arch, repeats=args.repeats)
        _show_then_write_json(lambda: print(serving.format_table(report)), args.json,
                              json.dumps(report, indent=2))
        return
    precisions = [p.strip() for p in args.precision.split(",") if p.strip()]
    unknown = [p for p in precisions if p not in PRECISIONS + ("auto",)]
    if unknown or not precisions:
        raise CLIError(f"unknown precision {unknown or args.precision!r}; choose from auto, {', '.join(PRECISIONS)}")
    translation = hasattr(zoo.architecture(args.arch).cls, "translate")
    dataset = bench.problem_defaults(args.arch, args.dataset)["dataset"]
    with _too_few_examples_as_flags(args, translation, dataset, split_applies=True):
        rows = bench.run(
            args.arch, precisions=precisions, baseline=args.baseline, dataset=args.dataset,
            dataset_b=args.dataset_b, split=args.split, image_size=args.image_size,
            channels=args.channels, batch_size=args.batch_size, steps=args.steps,
            repeats=args.repeats, latent_dim=args.latent_dim, filters=args.filters,
            num_residual_blocks=args.num_residual_blocks, n_critic=args.n_critic,
            steps_per_execution=args.steps_per_execution,
            jit_compile="auto" if args.jit_compile is None else args.jit_compile,
            isolate=not args.in_process, profile=args.profile, floor=args.floor,
        )

    def show():
        print(bench.format_table(rows))
        if args.floor:
            from kgan.benchmarks import compute_floor

            print(compute_floor.format_table(rows))
        if args.profile:
            from kgan.benchmarks import op_profile

            for row in rows:
                print(op_profile.format_table(row["label"], row["op_profile"]))

    _show_then_write_json(show, args.json, json.dumps(rows, indent=2))


def _show_then_write_json(show, json_path, text):
    """Print a benchmark's tables with `show()`, then write `text` to `json_path`.

    Minutes of measurements must survive either step failing: the JSON is
    written even if a table fails, and if the write fails (a full disk) the
    tables are already out and the JSON follows them on stdout.
    """
    shown = False
    try:
        show()
        shown = True
    finally:
        if json_path:
            try:
                _write_json(json_path, text)
            except OSError as err:
                print(text)
                where = "printed above, also as JSON" if shown else "printed above as JSON"
                failure = CLIError(f"{_os_error_message(err)}; the results are {where}")
                if shown:
                    raise failure from err
                # The table's own error stays the one raised; this one is printed.
                print(f"kgan: error: {failure}", file=sys.stderr)


def cmd_evaluate(args, argv):
    from kgan import evaluation, zoo

    chosen = None if args.metrics is None else [m.strip() for m in args.metrics.split(",") if m.strip()]
    unknown = [m for m in chosen or () if m not in evaluation.METRICS]
    if unknown or chosen == []:
        raise CLIError(f"unknown metrics {unknown or args.metrics!r}; choose from {', '.join(evaluation.METRICS)}")
    if args.compare_into and not args.label:
        raise CLIError("--compare-into needs --label, the row's name in that card")
    if args.compare_into and not (Path(args.compare_into) / zoo.METADATA_FILE).is_file():
        raise CLIError(f"--compare-into {args.compare_into} is not a preset folder")
    if args.update_card and args.split != "train":
        raise CLIError("--update-card applies to presets; --split is for dataset sources")
    _check_json_target(args.json)
    if args.update_card and args.live_generator:
        raise CLIError("--update-card records the preset's own figures; record --live-generator "
                       "figures as a row with --compare-into")
    if args.seed < 0:
        raise CLIError(f"--seed must be >= 0, got {args.seed}")
    if args.update_card and not evaluation._is_preset_source(args.source):
        raise CLIError(f"--update-card needs a preset (a registered name or a folder with "
                       f"{zoo.METADATA_FILE}); {args.source} is not one")
    _refuse_installed_catalog(args)
    if _is_translator(args.source):
        return _evaluate_translation(args, argv)
    with _progress_to_stderr():
        result = evaluation.evaluate(
            args.source, split=args.split, against=args.against, against_split=args.against_split,
            num=args.num or 2500,
            metrics_to_compute=chosen, extractor=args.extractor,
            inception_weights=args.inception_weights, reference=args.reference,
            reference_split=args.reference_split, live_generator=args.live_generator,
            seed=args.seed, batch_size=args.batch_size, progress=True, sha256=args.sha256,
        )
    command = "kgan " + shlex.join(argv)
    result["command"] = command
    folder = result.get("preset_folder") if args.update_card else None
    if args.update_card and folder is None:
        raise CLIError(f"--update-card needs a preset; {args.source} is not one")
    # Checked before either card is written: a refused row must not leave the
    # other card changed. (Into the card being updated, the row shares its new protocol.)
    mismatch = args.compare_into and not (folder and Path(folder).resolve() ==
                                          Path(args.compare_into).resolve()) and \
        evaluation.comparison_mismatch(args.compare_into, result)
    # The measurements first: a refused write must not lose minutes of work.
    _print_result(evaluation.dumps(result), args.json)
    if mismatch:
        raise CLIError(f"{mismatch} Nothing was recorded; the figures are above"
                       + (f" and in {args.json}" if args.json else ""))
    if folder:
        evaluation.record_in_card(folder, result, command)
        print(f"kgan: updated {folder}/metadata.json and its model card", file=sys.stderr)
    if args.compare_into:
        evaluation.record_comparison(args.compare_into, args.label, result, command)
        print(f"kgan: added row {args.label!r} to {args.compare_into}", file=sys.stderr)


def _refuse_installed_catalog(args):
    """Refuse, before any work, a card write into the installed package's presets."""
    from kgan import zoo

    if args.compare_into:
        zoo.check_not_installed_catalog(args.compare_into, "add a comparison row to")
    source = str(args.source)
    # A URL's folder is a download cache, not the package: only local ones are checked.
    if args.update_card and not source.startswith(("https://", "http://")):
        zoo.check_not_installed_catalog(zoo.resolve(source), "update the card of")


def _print_result(text, json_path):
    """JSON, atomically, to `json_path` when given, and to stdout (also when
    the write fails, so the result is not lost)."""
    try:
        if json_path:
            _write_json(json_path, text)
    finally:
        print(text)


def _check_json_target(json_path):
    """Refuse an unusable --json file before any work: a folder, a parent that
    cannot be made, or a folder without write permission."""
    from kgan.atomic import check_output_file

    if json_path is None:
        return
    if Path(json_path).is_dir():
        raise CLIError(f"--json {json_path} is a folder; give a file name")
    check_output_file(json_path)  # a one-line OutputPathError


def _write_json(json_path, text):
    from kgan.atomic import write_text

    write_text(json_path, text.rstrip("\n") + "\n")


def _is_translator(source):
    """True if `source` names a preset (shipped or folder) of an image translator."""
    from kgan import translation_evaluation, zoo

    folder = Path(source)
    if source in zoo.list():
        folder = zoo.resolve(source)
    if not (folder / zoo.METADATA_FILE).is_file():
        return False
    return translation_evaluation.is_translator_preset(zoo.read_metadata(folder))


def _evaluate_translation(args, argv):
    """`kgan evaluate` of a translator: class preservation, cycle error, FCD."""
    from kgan import evaluation, translation_evaluation, zoo

    generator_only = {
        "--against-split": args.against_split != "train", "--reference": args.reference,
        "--compare-into": args.compare_into, "--live-generator": args.live_generator,
        "--split": args.split != "train", "--reference-split": args.reference_split != "train",
        "--metrics": args.metrics is not None, "--inception-weights": args.inception_weights,
    }
    given = [flag for flag, value in generator_only.items() if value]
    if given:
        raise CLIError(
            f"{args.source} is an image translator: {', '.join(given)} "
            f"{'applies' if len(given) == 1 else 'apply'} to generators. A translator is "
            "measured on its two domains (--against A,B) in both directions: class "
            "preservation, cycle reconstruction error and FCD, read by --extractor (default "
            "kgan's MNIST evaluator); drop " + ("it" if len(given) == 1 else "them"))
    domains = [d.strip() for d in (args.against or "").split(",") if d.strip()]
    if args.against and len(domains) != 2:
        raise CLIError(f"--against {args.against!r}: for a translator name both labelled "
                       "domains as A,B (e.g. digits_8x8,mnist_5k)")
    dataset_a, dataset_b = domains or (None, None)
    classifier = args.extractor if args.extractor != "auto" else "mnist_classifier"
    with _progress_to_stderr():
        result = translation_evaluation.evaluate_translation(
            args.source, dataset_a=dataset_a, dataset_b=dataset_b, num=args.num,
            classifier=classifier, batch_size=args.batch_size, seed=args.seed, num_flag="--num",
        )
    command = "kgan " + shlex.join(argv)
    result["command"] = command
    _print_result(evaluation.dumps(result), args.json)  # the measurements first
    if "not_measured" in result:
        print(f"kgan: not measured: {result['not_measured']}", file=sys.stderr)
    if args.update_card:
        folder = zoo.resolve(args.source)
        translation_evaluation.record_in_card(folder, result, command)
        print(f"kgan: updated {folder}/metadata.json and its model card", file=sys.stderr)


#: Names of image files, which `kgan sample` and `kgan synthesize` refuse as outputs.
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def _translation_jobs(inputs):
    """`(source file, relative output path)` pairs for `kgan translate`."""
    from kgan.data import IMAGE_EXTENSIONS  # what kgan decodes, as for training folders

    readable = ", ".join(IMAGE_EXTENSIONS)
    jobs = []
    for given in inputs:
        path = Path(given)
        if path.is_dir():
            files = sorted(
                p for p in path.rglob("*")
                if p.suffix.lower() in IMAGE_EXTENSIONS and not any(
                    part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not files:
                raise CLIError(f"folder {path} holds no image files ({readable})")
            jobs += [(f, Path(path.name) / f.relative_to(path).with_suffix(".png")) for f in files]
        elif path.is_file():
            if path.suffix.lower() not in IMAGE_EXTENSIONS:
                raise CLIError(f"{path} is not an image file kgan reads ({readable})")
            jobs.append((path, Path(path.stem + ".png")))
        else:
            raise CLIError(f"input {path} does not exist")
    targets = [target for _, target in jobs]
    clash = sorted({str(t) for t in targets if targets.count(t) > 1})
    if clash:
        raise CLIError(f"two inputs would both be written to {clash[0]}; rename one or translate them separately")
    return jobs


#: How a not-empty output folder is refused: what --overwrite would do.
_NOT_EMPTY = ("folder {} is not empty; choose another, or pass --overwrite to replace the "
              "folder and everything in it")


def _refuse_output_over_inputs(output, inputs, flag="--output"):
    """Refuse an output that replacing would delete an input with: the same
    path as a preset or image being read, or a folder holding one.

    Outputs are written whole to a new folder and moved into place, so
    `--overwrite` deletes what was there: `kgan sample run/preset --output run
    --overwrite` would delete the preset it samples.
    """
    from kgan._checks import path_relation

    for source in inputs:
        relation = path_relation(output, source)
        if relation in ("is", "holds"):
            raise CLIError(
                f"{flag} {output} {relation} {Path(source).resolve()}, which this command "
                "reads; replacing it would delete that input. Choose another output"
            )


def _refuse_output_over_preset(output, name, flag="--output", inputs=()):
    """`_refuse_output_over_inputs` for the preset `name` (and `inputs`), and
    refuse an output inside the preset's folder: `kgan sample dcgan_mnist
    --output zoo/dcgan_mnist/samples.png --overwrite` replaced its card image."""
    preset = _preset_folder(name)
    _refuse_output_over_inputs(output, [p for p in (preset, *inputs) if p], flag)
    _refuse_output_in_read_folders(
        output, [("the preset folder", preset)],
        "a preset folder holds the preset's own files only (the output could replace its "
        "samples.png or README.md, or be packed with it)", flag,
    )


def _preset_folder(name):
    """The local folder a preset argument names (a registered preset's, or a
    path), for `_refuse_output_over_preset`; None for a URL. A registered
    name wins over a folder of that name, as in `zoo.resolve`."""
    from kgan import zoo

    if name in zoo.list():
        preset = zoo._PRESETS[name]
        return None if preset.path is None else Path(preset.path)  # else a download
    return Path(name) if Path(name).exists() else None


def _output_folder(args, inputs=()):
    """`--output` as a Path, refused before any work if it is a file, holds or
    is one of `inputs` (or the preset), or without `--overwrite`, a folder
    with something in it."""
    from kgan.atomic import absolute_folder

    output = Path(args.output)
    absolute_folder(output)  # not `.`, `..` or a folder holding the current one
    if output.exists() and not output.is_dir():
        raise CLIError(f"--output {output} exists and is not a folder")
    _refuse_output_over_preset(output, args.name, inputs=inputs)
    if output.exists() and any(output.iterdir()) and not args.overwrite:
        raise CLIError(_NOT_EMPTY.format(output))
    return output


def cmd_translate(args):
    import tensorflow as tf

    from kgan import data, zoo
    from kgan import images as kgan_images
    from kgan.atomic import write_folder

    output = _output_folder(args, inputs=args.inputs)
    _refuse_output_in_read_folders(
        output, (("the input folder", path) for path in args.inputs),
        "folders are read with all their sub-folders, so translating that folder again would "
        "translate these outputs too",
    )
    jobs = _translation_jobs(args.inputs)
    model = _load(args)
    if not hasattr(model, "translate"):
        raise CLIError(
            f"{args.name} is a {type(model).__name__}, which generates images from latents; "
            "translate needs an image-to-image preset such as a CycleGAN (use kgan sample)"
        )
    shape = model.image_shape_a if args.direction == "a_to_b" else model.image_shape_b
    channels = int(shape[-1])
    def write(folder):  # a new folder, moved onto --output once complete
        folder.mkdir()
        for source, target in jobs:
            try:
                # kgan's decode: a WebP, GIF or CMYK JPEG into a grey model too.
                image = data.decode_image_file(tf.io.read_file(str(source)), channels).numpy()
            except tf.errors.OpError as err:
                # TF's message starts with "{{function_node ...}}" noise; keep its reason.
                reason = err.message.splitlines()[0].split("}}")[-1].split(" [Op:")[0].strip().rstrip(".")
                raise CLIError(f"cannot decode {source}: {reason or 'not an image'}; remove or "
                               "re-save it (corrupt, truncated or not an image)") from err
            try:
                translated = model.translate(image, direction=args.direction)
            except ValueError as err:  # e.g. smaller than the generator takes
                raise CLIError(f"cannot translate {source}: {err}") from err
            kgan_images.save_png(translated, folder / target)

    write_folder(output, write)
    print(f"translated {len(jobs)} images {args.direction} into {output}")


def cmd_synthesize(args):
    from kgan import augment, zoo
    from kgan import images as kgan_images
    from kgan.atomic import write_folder

    suffix = Path(args.output).suffix.lower()
    if suffix in _IMAGE_SUFFIXES or suffix == ".npz":
        # It made a folder named x.png; kgan sample refuses the wrong kind of path too.
        raise CLIError(f"kgan synthesize writes a folder of class folders; {args.output} looks "
                       f"like a {suffix} file. Name a folder, e.g. --output synthetic")
    output = _output_folder(args)
    if args.seed < 0:
        raise CLIError(f"--seed must be >= 0, got {args.seed}")
    preset_folder = _resolve(args)  # once: a URL is fetched, checked
    model = zoo.load(preset_folder)
    if getattr(model, "num_classes", None) is None:
        # kgan sample refuses image-to-image models: those go to kgan translate.
        other = ("kgan translate to translate images" if hasattr(model, "translate")
                 else "kgan sample for unlabeled samples")
        raise CLIError(
            f"{args.name} is a {type(model).__name__}, which is not class-conditional, so its "
            f"images have no labels; synthesize needs a conditional_gan preset (use {other})"
        )
    num_classes = model.num_classes
    # Class folders by the names the preset was trained with (a folder's
    # sub-folders) where those sort in label order, so that reading the
    # folders back gives each image its label; else by label.
    names = zoo.read_metadata(preset_folder).get("class_names")
    if not (isinstance(names, list) and len(names) == num_classes
            and all(isinstance(n, str) and _safe_folder_name(n) for n in names)
            and all(a < b for a, b in zip(names, names[1:]))):
        names = None
    # Streamed batch by batch (memory flat in --per-class), class by class.
    dataset = augment.synthetic_dataset(
        model, num_per_class=args.per_class, batch_size=args.batch_size, seed=args.seed,
        image_dtype="uint8", shuffle=False,
    )
    # Zero-padded class folders sort in label order (image_dataset_from_directory
    # numbers classes by sorted folder name: "10" would come before "2").
    width = len(str(num_classes - 1))
    written = [0] * num_classes
    def write(folder):  # a new folder, moved onto --output once complete
        folder.mkdir()
        for images, labels in dataset.batch(args.batch_size):
            for image, label in zip(images.numpy(), labels.numpy()):
                name = names[label] if names else f"{label:0{width}d}"
                class_folder = folder / name
                class_folder.mkdir(exist_ok=True)
                (class_folder / f"{name}_{written[label]:06d}.png").write_bytes(
                    kgan_images.encode_png(image)
                )
                written[label] += 1

    write_folder(output, write)
    print(f"wrote {sum(written)} images ({args.per_class} per class, {num_classes} classes) "
          f"to {output}/<class>/")


def _safe_folder_name(name):
    """A class name usable as one folder: not empty, no separators, not . or .."""
    return bool(name) and name not in (".", "..") and not any(c in name for c in "/\\\0")


def cmd_export(args):
    from kgan import export, zoo

    tflite = args.format == "tflite"
    if not tflite and (args.quantize or args.image_size or args.batch_size != 1):
        raise CLIError("--batch-size, --quantize and --image-size apply to --format tflite "
                       "(a SavedModel takes any batch and image size)")
    image_size = args.image_size
    # First what the command reads (its message names the input), then the
    # same refusals as the Python API's: empty, a file, a preset, a folder
    # that is no earlier export, a `.tflite` name.
    if args.dir.strip():
        _refuse_output_over_preset(Path(args.dir).expanduser(), args.name, "DIR")
    target = export.check_export_path(args.dir, args.overwrite, tflite=tflite)
    model = _load(args)
    translator = hasattr(model, "translate")
    if image_size and not translator:
        raise CLIError(f"--image-size is for image-to-image presets; {args.name} generates "
                       f"{'x'.join(map(str, model.image_shape))} images from latents")
    if tflite:
        written = export.export_tflite(model, target, batch_size=args.batch_size,
                                       quantize=args.quantize, image_size=image_size,
                                       overwrite=args.overwrite)
        signatures = "a_to_b, b_to_a" if translator else _latent_signatures(model)
        print(f"exported {args.name} to {written} ({written.stat().st_size:,} bytes, batch size "
              f"{args.batch_size}, {args.quantize or 'float32'} weights; signatures: {signatures})")
        return
    export.export_generator(model, target, overwrite=args.overwrite)
    signatures = ("a_to_b, b_to_a, serving_default (= a_to_b), on uint8 images" if translator
                  else _latent_signatures(model))
    print(f"exported {args.name} to {target} (signatures: {signatures})")


def _latent_signatures(model):
    """`kgan export`'s listing of a latent GAN's signatures and their inputs."""
    inputs = "float32 latents"
    if getattr(model, "num_classes", None) is not None:
        inputs += f" and int32 labels in [0, {model.num_classes})"
    return f"serving_default, generate_uint8, on {inputs}"


def main(argv=None):
    """Entry point of the `kgan` console script."""
    from kgan.atomic import sigterm_as_interrupt

    # SIGTERM (`timeout`, a job scheduler) as Ctrl-C: writers remove their
    # staging folders, and the user is told what was kept.
    with sigterm_as_interrupt():
        return _main(argv)


def _main(argv):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        from kgan.data import DatasetUnavailableError
    except ImportError:  # pragma: no cover
        DatasetUnavailableError = RuntimeError
    from kgan.bench import BenchWorkerError
    try:
        if args.command == "list":
            cmd_list(args)
        elif args.command == "info":
            cmd_info(args)
        elif args.command == "sample":
            cmd_sample(args)
        elif args.command == "synthesize":
            cmd_synthesize(args)
        elif args.command == "train":
            cmd_train(args, argv)
        elif args.command == "evaluate":
            cmd_evaluate(args, argv)
        elif args.command == "translate":
            cmd_translate(args)
        elif args.command == "export":
            cmd_export(args)
        elif args.command == "bench":
            cmd_bench(args)
        sys.stdout.flush()  # here, where a closed pipe is still caught below
    except BrokenPipeError as err:
        if not _stdout_reader_gone():  # another pipe or socket: an ordinary error
            print(f"kgan: error: {' '.join(_os_error_message(err).split())}", file=sys.stderr)
            return 2
        # The reader went away (`kgan info NAME | head`): not an error of the
        # command. As the Python docs advise, point stdout at devnull, so the
        # flush at exit does not fail again, and exit as a process killed by
        # SIGPIPE would.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except FloatingPointError as err:  # kgan.callbacks.DivergenceError: training diverged
        print(f"kgan: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as err:
        # Ctrl-C or SIGTERM: outputs are written atomically and `train` keeps its
        # backup, so there is nothing to report but the interruption and what was kept.
        from kgan.atomic import Terminated

        kept = _INTERRUPTED.get(args.command, _INTERRUPTED[None])
        if isinstance(err, Terminated):
            print(f"kgan: terminated; {kept}", file=sys.stderr)
            return 128 + 15  # the shell's status for SIGTERM
        print(f"kgan: interrupted; {kept}", file=sys.stderr)
        return 130
    except BenchWorkerError as err:  # a worker crashed or was killed: not the user's input
        print(f"kgan: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 1
    # OSError covers unwritable outputs (kgan.atomic.OutputPathError), missing
    # files and a full disk: all fixable by the user, so no traceback.
    except (CLIError, ValueError, TypeError, KeyError, OSError, DatasetUnavailableError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        if isinstance(err, OSError):
            message = _os_error_message(err)
        # One line, whatever the message: some Keras/TF errors span several.
        print(f"kgan: error: {' '.join(str(message).split())}", file=sys.stderr)
        return 2
    except Exception as err:  # TensorFlow's own errors: only those a user can fix
        message = _tensorflow_error_message(err, args)
        if message is None:
            raise
        print(f"kgan: error: {' '.join(message.split())}", file=sys.stderr)
        return 2
    return 0


def _stdout_reader_gone():
    """Whether stdout is a pipe whose reader has closed it (poll reports an error
    on its write end), rather than some other pipe or socket being broken."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
    except (AttributeError, OSError, ValueError):  # not a file (captured), or no poll
        return not hasattr(select, "poll")  # without poll: stdout, as the docs assume
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))


#: What a command interrupted by Ctrl-C kept, by command (None: the others).
_INTERRUPTED = {
    "train": "no output was left half-written (run the same `kgan train` command again to "
             "resume from its last completed epoch)",
    "bench": "kgan bench stopped before its results were complete; nothing was written",
    "evaluate": "kgan evaluate stopped before its figures were complete; nothing was written",
    None: "no output was left half-written; any earlier output at that path is as it was",
}


def _no_space_message(path):
    return f"no space left on the device while writing {path}: free space or choose an output on another disk"


def _os_error_message(err):
    """A one-line message for an OSError, naming the path and what to do."""
    if err.filename is None or type(err).__module__.startswith("kgan"):
        return str(err)  # kgan's own errors already say both
    from kgan.atomic import written_target

    path = str(written_target(err.filename))
    if err.errno == errno.ENOSPC:
        return _no_space_message(path)
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"permission denied for {path}: choose an output folder you can write to"
    if err.errno in (errno.EEXIST, errno.ENOTDIR):
        return (f"cannot write {path}: a file is in the way where a folder is needed "
                f"({err.strerror}); choose another output path or move that file")
    return str(err)


#: The flags whose values size the tensors a command allocates, named when memory runs out.
_SIZE_FLAGS = ("batch_size", "image_size", "filters", "latent_dim", "num_residual_blocks")


def _tensorflow_error_message(err, args):
    """A one-line message for a TensorFlow error caused by the user's files, else None."""
    import tensorflow as tf

    from kgan import data

    if not isinstance(err, tf.errors.OpError):
        return None
    text = str(err)
    if "No space left" in text:
        return _no_space_message(getattr(args, "output", None) or getattr(args, "dir", None) or "the output")
    if isinstance(err, tf.errors.ResourceExhaustedError):  # e.g. --latent-dim 100000000
        found = re.search(r"OOM when allocating tensor with shape\s*(\[[^\]]*\])", text)
        tensor = f" a tensor of shape {found[1]}" if found else ""
        flags = [f"--{key.replace('_', '-')}" for key in _SIZE_FLAGS if getattr(args, key, None)]
        fix = f"lower {' or '.join(', '.join(flags).rsplit(', ', 1))}" if flags else "use smaller inputs"
        return f"out of memory allocating{tensor}: {fix} (the sizes of the networks and batches)"
    # DecodeImage and the codecs' own messages; ExtractJpegShape reads a JPEG's
    # header before a grey decode (kgan.data), so a broken one fails there.
    if "decode" not in text.lower() and "ExtractJpegShape" not in text:
        return None
    folders = [value for key in ("dataset", "dataset_b", "source", "against", "reference", "name")
               if isinstance(value := getattr(args, key, None), str) and os.path.isdir(value)]
    bad = [path for folder in folders for path in data.undecodable_images(folder, limit=3)][:3]
    if bad:
        return (f"cannot decode {', '.join(bad)}: corrupt, truncated or not an image. "
                "Remove or re-save such files (kgan.data.undecodable_images lists them all)")
    return (f"an input image could not be decoded ({text.splitlines()[0][:200]}): "
            "check the dataset's files with kgan.data.undecodable_images(FOLDER)")


if __name__ == "__main__":
    sys.exit(main())
