"""Time to quality: how long kgan's DCGAN takes to match a plain baseline's quality.

The baseline is the keras.io-style DCGAN of `kgan.benchmarks.baselines`
(the same networks as kgan's DCGAN, float32, ordinary `compile()`/`fit`,
the keras.io input pipeline) trained for `--baseline-epochs` (30) epochs on
the embedded MNIST data; its FCD (kgan's MNIST evaluator, `--num` samples
against `mnist_5k train[:50%]`) is the target. kgan's DCGAN is then trained
as `kgan train dcgan` trains it (`kgan.performance` defaults: mixed
bfloat16 where the CPU/GPU has it, steps per execution, kgan's pipeline),
measuring its FCD after every epoch until it reaches the target. Reported:
training wall time of each side (evaluation time excluded from both) and
the ratio baseline time / kgan time to reach the baseline's quality
(`speedup_to_baseline_quality`).

The baseline's FCD is measured after every epoch too, because it need not
improve over its 30 epochs: on `mnist_5k` it reached its 30-epoch FCD after
4 and then oscillated. So the result also has the first epoch at which the
baseline itself was at least as good as after its last
(`baseline.first_reached`), and the ratio of that time to kgan's
(`speedup_to_first_reach`): the speed-up on equal terms, each side stopped
as soon as it is as good as the target.

Example:

```sh
python -m kgan.benchmarks.time_to_quality --json time_to_quality.json
```
"""

import argparse
import json
import sys
import time
from pathlib import Path

import keras
import numpy as np

from kgan import data, evaluators, metrics, performance, zoo
from kgan.atomic import write_file
from kgan.benchmarks import baselines

IMAGE_SHAPE = (28, 28, 1)


class _TrainTimer(keras.callbacks.Callback):
    """Wall time spent inside epochs (so evaluation between epochs is not counted)."""

    def __init__(self):
        super().__init__()
        self.seconds = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds += time.perf_counter() - self._start


class _Sampler:
    """A generator network as something `metrics.features_from` samples."""

    def __init__(self, generator, latent_dim):
        self.generator, self.latent_dim = generator, latent_dim
        self.image_shape = IMAGE_SHAPE

    def generate(self, num, seed=None, batch_size=256):
        latents = np.random.default_rng(seed).standard_normal((num, self.latent_dim)).astype("float32")
        return np.concatenate([
            np.asarray(self.generator(latents[i : i + batch_size], training=False), "float32")
            for i in range(0, num, batch_size)
        ])


def _fcd(sampler, real_stats, extractor, num, seed):
    fake = metrics.features_from(sampler, extractor, num=num, seed=seed)
    return float(metrics.fid_from_stats(real_stats, fake))


def run(baseline_epochs=30, max_kgan_epochs=30, batch_size=64, num=2500, seed=0, log=print):
    """Train both sides and return the JSON-ready comparison (see the module docstring).

    Raises:
        ValueError: `baseline_epochs`, `max_kgan_epochs`, `batch_size` or `num` below 1.
    """
    for name, value in (("baseline_epochs", baseline_epochs), ("max_kgan_epochs", max_kgan_epochs),
                        ("batch_size", batch_size), ("num", num)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}.")
    extractor = evaluators.mnist_extractor()
    real = data.load("mnist_5k", split="train[:50%]", batch_size=250, shuffle=False,
                     drop_remainder=False, cache=False)
    real_stats = metrics.features_from(real, extractor, num=num, seed=seed)
    images, _ = data.load_mnist_5k()
    images = images.astype("float32") / 127.5 - 1.0

    # The baseline: float32, keras.io train_step and pipeline, 30 epochs.
    keras.mixed_precision.set_global_policy("float32")
    keras.utils.set_random_seed(seed)
    reference = zoo.build("dcgan", image_shape=IMAGE_SHAPE, seed=seed)
    baseline = baselines.build("dcgan", reference)
    sampler = _Sampler(baseline.generator, baseline.latent_dim)
    pipeline = baselines.dataset("dcgan", images, batch_size, seed=seed)
    timer = _TrainTimer()
    baseline_curve = []
    for epoch in range(1, baseline_epochs + 1):
        baseline.fit(pipeline, initial_epoch=epoch - 1, epochs=epoch, verbose=0, callbacks=[timer])
        fcd = _fcd(sampler, real_stats, extractor, num, seed)
        baseline_curve.append(
            {"epoch": epoch, "train_seconds": round(timer.seconds, 1), "fcd": round(fcd, 2)})
        log(json.dumps({"baseline": baseline_curve[-1]}))
    target = fcd
    result = {
        "baseline": {"epochs": baseline_epochs, "train_seconds": round(timer.seconds, 1),
                     "fcd": round(target, 2), "precision": "float32", "curve": baseline_curve,
                     "first_reached": next(p for p in baseline_curve if p["fcd"] <= round(target, 2))},
    }

    # kgan: the settings `kgan train dcgan` uses, FCD after every epoch.
    settings = performance.resolve("dcgan")
    keras.mixed_precision.set_global_policy(settings["precision"])
    keras.utils.set_random_seed(seed)
    gan = zoo.build("dcgan", image_shape=IMAGE_SHAPE, seed=seed)
    gan.compile(steps_per_execution=settings["steps_per_execution"],
                jit_compile=settings["jit_compile"])
    dataset = data.load("mnist_5k", batch_size=batch_size, seed=seed)
    timer = _TrainTimer()
    curve = []
    reached = None
    for epoch in range(1, max_kgan_epochs + 1):
        gan.fit(dataset, initial_epoch=epoch - 1, epochs=epoch, verbose=0, callbacks=[timer])
        fcd = _fcd(gan, real_stats, extractor, num, seed)
        curve.append({"epoch": epoch, "train_seconds": round(timer.seconds, 1), "fcd": round(fcd, 2)})
        log(json.dumps(curve[-1]))
        if fcd <= target:
            reached = curve[-1]
            break
    keras.mixed_precision.set_global_policy("float32")
    result["kgan"] = {"settings": settings, "curve": curve, "reached": reached}
    if reached:
        result["speedup_to_baseline_quality"] = round(
            result["baseline"]["train_seconds"] / reached["train_seconds"], 1
        )
        result["speedup_to_first_reach"] = round(
            result["baseline"]["first_reached"]["train_seconds"] / reached["train_seconds"], 1
        )
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m kgan.benchmarks.time_to_quality",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--baseline-epochs", type=int, default=30)
    parser.add_argument("--max-kgan-epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num", type=int, default=2500, help="images per FCD set")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args(argv)
    if min(args.baseline_epochs, args.max_kgan_epochs, args.batch_size, args.num) < 1:
        parser.error("--baseline-epochs, --max-kgan-epochs, --batch-size and --num must be >= 1")
    result = run(args.baseline_epochs, args.max_kgan_epochs, args.batch_size, args.num, args.seed)
    result["command"] = "python -m kgan.benchmarks.time_to_quality " + " ".join(
        sys.argv[1:] if argv is None else argv)
    text = json.dumps(result, indent=1)
    if args.json:
        write_file(args.json, lambda path: Path(path).write_text(text + "\n"))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
