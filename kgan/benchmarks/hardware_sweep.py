"""Every architecture's training speed on one machine: precisions x XLA, with the baseline.

The prepared run for a new machine, such as a GPU lent for a day: one command
times `kgan bench` for every architecture of the zoo, in float32 and in each
mixed precision the machine offers, with XLA off and on, next to the
keras.io-style float32 baseline of the same networks, and writes the rows
with the date, the TensorFlow and Keras versions and the hardware they ran on.
The files are rewritten after each architecture, so a sweep cut short keeps
what it timed; `--xla off` skips the XLA half (slow on CPUs).

```sh
TF_CPP_MIN_LOG_LEVEL=2 python -m kgan.benchmarks.hardware_sweep \\
    --json sweep.json --markdown sweep.md
```

Precisions: float32 and `mixed_bfloat16` everywhere, plus `mixed_float16`
when TensorFlow sees a GPU (on CPUs float16 has no fast kernels). Each
architecture is timed on its README problem: MNIST 28x28 at batch 64, and
CycleGAN at 128 px, batch 1 (`PROBLEMS`). Every configuration runs in its own
process with interleaved repeats (`kgan.bench.run`); the ratio in the table is
the steady one (images/s up to the end of each fit's last step, over the
baseline's).

Example:

```python
from kgan.benchmarks import hardware_sweep
report = hardware_sweep.run(architectures=["dcgan"], steps=20, repeats=3)
print(hardware_sweep.format_markdown(report))
```
"""

import argparse
import datetime
import json
import os
import platform
import sys
from pathlib import Path

from kgan import bench, performance, zoo
from kgan.atomic import check_output_file, write_text

#: `kgan.bench.run` problem settings per architecture (the README's problems);
#: architectures not listed use `DEFAULT_PROBLEM`.
DEFAULT_PROBLEM = {"batch_size": 64}
#: `--xla` choices: the `jit_compile` settings each times.
XLA_CHOICES = {"off": (False,), "on": (True,), "off,on": (False, True)}
PROBLEMS = {
    "cyclegan": {"dataset": "digits_8x8", "dataset_b": "mnist_5k", "split": "train[:64]",
                 "image_size": 128, "channels": 3, "batch_size": 1},
}


def hardware():
    """What this run is timed on: date, versions, CPU model and cores, GPUs.

    Example:

    ```python
    hardware_sweep.hardware()["cpu_cores"]   # e.g. 2
    ```
    """
    import keras
    import tensorflow as tf

    gpus = []
    for device in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(device)
        capability = details.get("compute_capability")
        gpus.append({"name": details.get("device_name", device.name),
                     "compute_capability": ".".join(map(str, capability)) if capability else None})
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
        "cpu": performance.cpu_model(),
        "cpu_cores": os.cpu_count(),
        # What kgan's `--precision auto` keys on: the same CPU name can come
        # with or without AMX, and bf16's gain differs several-fold between them.
        "fast_bfloat16": performance.fast_bfloat16(),
        "gpus": gpus,
    }


def default_precisions(has_gpu):
    """float32 and bf16, plus float16 on GPUs (the CPUs' float16 is slow)."""
    return ("float32", "mixed_bfloat16") + (("mixed_float16",) if has_gpu else ())


def run(architectures=None, precisions=None, xla=(False, True), steps=30, repeats=5,
        isolate=True, on_architecture=None, **overrides):
    """Time every architecture in every precision with XLA off and on.

    Args:
        architectures: names to time (default: every architecture of the zoo).
        precisions: kgan precisions (default: `default_precisions`).
        xla: the `jit_compile` settings to time.
        steps: train steps per timed `fit`.
        repeats: timed fits per configuration.
        isolate: one process per configuration (see `kgan.bench.run`).
        on_architecture: called with the report so far (same form as the
            return value) after each architecture, so that a long sweep
            (hours on a lent GPU) can save its rows as it goes.
        **overrides: further `kgan.bench.run` settings for every problem
            (e.g. `filters=8` for a quick check).

    Returns:
        `{"hardware": hardware(), "settings": {...}, "rows": [...]}`; each row
        is a `kgan.bench.run` row plus `arch`. Per architecture and XLA
        setting, the kgan rows come first and the baseline row last.

    Raises:
        ValueError: for an architecture that is not in the zoo, an unknown
            precision or no XLA setting.
    """
    known = zoo.list(kind="architectures")
    architectures = list(architectures or known)
    unknown = [name for name in architectures if name not in known]
    if unknown or not architectures:
        raise ValueError(
            f"Unknown or no architectures {unknown or architectures}; choose from {', '.join(known)}."
        )
    info = hardware()
    precisions = tuple(precisions or default_precisions(bool(info["gpus"])))
    xla = tuple(bool(x) for x in xla)
    if not xla:  # (no precisions means the defaults)
        raise ValueError("Give at least one XLA setting (jit_compile False and/or True).")
    settings = {"precisions": list(precisions), "xla": list(xla), "steps": steps,
                "repeats": repeats, "isolate": isolate, "overrides": overrides}
    report = {"hardware": info, "settings": settings, "rows": []}
    for arch in architectures:
        problem = {**DEFAULT_PROBLEM, **PROBLEMS.get(arch, {}), **overrides}
        for jit_compile in xla:
            for row in bench.run(arch, precisions=precisions, baseline=True, steps=steps,
                                 repeats=repeats, jit_compile=jit_compile, isolate=isolate,
                                 **problem):
                report["rows"].append({"arch": arch, **row})
        if on_architecture is not None:
            on_architecture(report)
    return report


def format_markdown(report):
    """The report as a Markdown section: hardware line, then one table row per configuration."""
    info = report["hardware"]
    gpus = ", ".join(f"{g['name']} (compute capability {g['compute_capability']})"
                     for g in info["gpus"]) or "none"
    lines = [
        f"Measured {info['date']} with TensorFlow {info['tensorflow']}, Keras {info['keras']}: "
        f"CPU {info['cpu']} ({info['cpu_cores']} cores), GPUs: {gpus}, fast bfloat16: "
        f"{info.get('fast_bfloat16') or 'none'}. "
        f"{report['settings']['repeats']} interleaved repeats of {report['settings']['steps']} "
        "steps per configuration; ratio = steady images/s over the float32 keras.io-style "
        "baseline's in the same run.",
        "",
        "| architecture | configuration | XLA | images/s | step ms | ratio | peak MB |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for row in report["rows"]:
        # The baseline's too: its plain compile() turns XLA on where Keras sees a GPU.
        xla = "on" if row["jit_compile"] else "off"
        lines.append(
            f"| {row['arch']} | {row['label']} | {xla} | {row['steady_images_per_s']:.4g} | "
            f"{row['steady_step_ms']:.1f} | {row['steady_ratio']:.2f} | {row['peak_rss_mb']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m kgan.benchmarks.hardware_sweep",
        description="Time every architecture in each precision with XLA off and on, "
                    "next to the keras.io-style baseline, on this machine.")
    parser.add_argument("--architectures", help="comma-separated (default: the whole zoo)")
    parser.add_argument("--precisions", help="comma-separated (default: float32, "
                        "mixed_bfloat16, and mixed_float16 when a GPU is visible)")
    parser.add_argument("--steps", type=int, default=30, help="train steps per timed fit")
    parser.add_argument("--repeats", type=int, default=5, help="timed fits per configuration")
    # The metavar: argparse would join the choices with commas, "{off,off,on,on}".
    parser.add_argument("--xla", choices=sorted(XLA_CHOICES), default="off,on",
                        metavar=" | ".join(sorted(XLA_CHOICES)),
                        help="XLA settings to time (default: off,on; XLA on a CPU compiles "
                        "convolutions without oneDNN and is slow, so 'off' halves a CPU sweep)")
    parser.add_argument("--json", help="write the report here (rewritten after each architecture)")
    parser.add_argument("--markdown", help="write the Markdown table here (likewise)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.repeats < 1:
        parser.error("--steps and --repeats must be positive")
    split = lambda text: [part.strip() for part in text.split(",") if part.strip()] if text else None  # noqa: E731

    def save(report):
        # After every architecture, so an interrupted sweep keeps the rows it timed.
        done = sorted({row["arch"] for row in report["rows"]})
        print(f"hardware_sweep: timed {', '.join(done)}", file=sys.stderr, flush=True)
        if args.json:
            write_text(args.json, json.dumps(report, indent=1))
        if args.markdown:
            text = format_markdown(report)
            write_text(args.markdown, text)

    outputs = [Path(path) for path in (args.json, args.markdown) if path]
    if len(outputs) == 2 and outputs[0].resolve() == outputs[1].resolve():
        parser.error("--json and --markdown name the same file; give each its own")
    # User mistakes as one line, exit 2; OSError covers kgan.atomic.OutputPathError
    # and a failed write (a full disk) during the sweep.
    try:
        for path in outputs:  # now, not after the first architecture's timing
            check_output_file(path)
        report = run(split(args.architectures), split(args.precisions), xla=XLA_CHOICES[args.xla],
                     steps=args.steps, repeats=args.repeats, on_architecture=save)
    except (ValueError, OSError) as err:
        print(f"hardware_sweep: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    print(format_markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
