"""Sampling and serving speed of a pretrained generator: Keras vs SavedModel vs TFLite.

For one preset this measures, in one process:

* `keras_generate`: in-process sampling, `model.generate_from_latents(z)`
  (what `generate(n, seed)` runs after drawing its latents);
* `savedmodel`: the `kgan.export_generator` export loaded with plain
  `tf.saved_model.load` and called through its `serving_default` signature;
* `tflite` / `tflite_float16`: the `kgan.export.export_tflite` file (batch
  size 1, float32 or float16 weights) in the LiteRT interpreter.

Every backend gets the same latents, numpy in and numpy out (the conversions
a server makes). A class-conditional generator (e.g. `cgan_mnist_50shot`)
gets the same labels too, as int32 `labels` beside the latents (its
SavedModel and TFLite signatures take both, see `kgan.export`): the
class-balanced cycle 0, 1, ..., K-1, 0, ... that its `generate` draws by
default, so a batch-1 call asks for class 0 (the class does not change the
work, only which embedding row is read). Keras and the SavedModel are timed
at batch 1 and at a large batch (256), TFLite at batch 1 (its export has a
fixed batch size). Within a repeat the backends alternate call by call
(A, B, C, B, C, A, C, A, B, ...), so load from other processes on a shared machine, which swings within seconds, hits
them alike; images/s is the median over repeats, after warm-up calls that
trace the functions. Batch-1 latency percentiles (p50, p99) pool every timed
call of all repeats. Sizes on disk are reported too, and the largest
difference of each backend's output from Keras' on the same latents.

Goal checked in `summary`: the SavedModel at batch 256 within 10% of
in-process `generate` (`savedmodel_vs_keras_large_batch`).

The command behind the figures in the README (2 CPU cores shared with other jobs):

```sh
TF_CPP_MIN_LOG_LEVEL=2 python -m kgan.benchmarks.serving dcgan_mnist --repeats 7 --json serving.json
```

Example:

```python
from kgan.benchmarks import serving
report = serving.run("dcgan_mnist", repeats=3)
print(serving.format_table(report))
```
"""

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from kgan.atomic import check_output_file, write_text
from kgan.benchmarks import report_error

#: backends in the order they are timed and printed.
BACKENDS = ("keras_generate", "savedmodel", "tflite", "tflite_float16")


def _folder_bytes(path):
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _percentile(values, q):
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def _load(source):
    """`(model, preset_folder_or_None, name)` for a preset name/folder/URL or a model."""
    from kgan import zoo

    if not isinstance(source, (str, os.PathLike)):
        return source, None, getattr(source, "name", type(source).__name__)
    model = zoo.load(str(source))
    try:
        folder = zoo.resolve(str(source))
    except Exception:  # noqa: BLE001 - sizes are a nicety, the timing is the point
        folder = None
    return model, folder, str(source)


def _inputs(model, latents):
    """The signature inputs for `latents`: `{"latents": ...}`, plus `"labels"` if conditional.

    A class-conditional model (one with `num_classes`, the test
    `kgan.export` uses to give its signatures `labels`) gets the
    class-balanced cycle 0, 1, ..., K-1, 0, ...: what its `generate`
    samples by default, every class alike.
    """
    if getattr(model, "num_classes", None) is None:
        return {"latents": latents}
    return {"latents": latents, "labels": model.balanced_labels(len(latents))}


def _backends(model, workdir, tflite_threads, backends=BACKENDS):
    """`{name: callable(inputs) -> images numpy}` and `{name: bytes on disk}`.

    `inputs` is what `_inputs` returns: numpy arrays named as the exported
    signatures name them, which `generate_from_latents` takes as keywords too.
    """
    import tensorflow as tf

    from kgan import export

    sizes = {}
    savedmodel_dir = export.export_generator(model, Path(workdir) / "savedmodel")
    sizes["savedmodel"] = _folder_bytes(savedmodel_dir)
    # Plain TensorFlow, as a server without kgan would load it.
    signature = tf.saved_model.load(str(savedmodel_dir)).signatures["serving_default"]
    callables = {
        "keras_generate": lambda inputs: model.generate_from_latents(
            batch_size=len(inputs["latents"]), **inputs
        ),
        "savedmodel": lambda inputs: signature(
            **{key: tf.constant(value) for key, value in inputs.items()}
        )["images"].numpy(),
    }
    for name, quantize in (("tflite", None), ("tflite_float16", "float16")):
        if name not in backends:
            continue
        path = export.export_tflite(model, Path(workdir) / name, batch_size=1, quantize=quantize)
        sizes[name] = _folder_bytes(path)
        runner = export.tflite_interpreter(path, num_threads=tflite_threads).get_signature_runner(
            "serving_default"
        )
        callables[name] = lambda inputs, runner=runner: runner(**inputs)["images"]
    return callables, sizes


def run(
    source,
    repeats=5,
    calls=100,
    large_batch=256,
    large_calls=4,
    tflite_threads=None,
    seed=0,
    backends=BACKENDS,
):
    """Time sampling of a generator per backend and batch size; returns the report dict.

    Args:
        source: a preset name, folder or URL, or a loaded latent-space `GAN`
            (class-conditional ones are sampled with the balanced labels).
        repeats: rounds; every (backend, batch) configuration runs once per round.
        calls: timed batch-1 calls per configuration and round.
        large_batch: the large batch size (Keras and SavedModel only); more
            than 1, as batch 1 is always timed.
        large_calls: timed large-batch calls per configuration and round.
        tflite_threads: LiteRT interpreter threads (default: all CPUs, as
            TensorFlow uses).
        seed: seed of the latents.
        backends: a subset of `BACKENDS`.

    Returns:
        A dict with `rows` (one per backend and batch: `images_per_s`,
        `repeats_images_per_s`, batch-1 `latency_ms_p50` / `latency_ms_p99`,
        `max_abs_diff_vs_keras`), `sizes_bytes`, `summary`, the settings,
        versions and machine load.

    Example:

    ```python
    report = run("dcgan_mnist", repeats=3, calls=50)
    print(report["summary"]["savedmodel_vs_keras_large_batch"])
    ```
    """
    import keras
    import tensorflow as tf

    import kgan

    settings = [("repeats", repeats), ("calls", calls), ("large_batch", large_batch),
                ("large_calls", large_calls)]
    if tflite_threads is not None:
        settings.append(("tflite_threads", tflite_threads))
    for name, value in settings:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}.")
    if large_batch == 1:
        # Batch 1 is always timed: a second (backend, 1) configuration would run
        # each call twice and count it once (rows twice over, at half the rate).
        raise ValueError("large_batch must be more than 1: batch 1 is always timed, and "
                         "large_batch is the second, larger batch (default 256).")
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown or not backends:
        raise ValueError(f"backends must be a subset of {BACKENDS}, got {backends!r}.")
    model, folder, name = _load(source)
    if hasattr(model, "translate"):
        raise ValueError(
            f"{name} is an image-to-image model; this benchmark samples latent-space "
            "generators (time translation with `kgan translate`)."
        )
    threads = os.cpu_count() if tflite_threads is None else tflite_threads
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kgan-serving-") as workdir:
        functions, sizes = _backends(model, workdir, threads, backends)
        functions = {b: functions[b] for b in BACKENDS if b in backends}
        if folder is not None and (Path(folder) / "model.weights.h5").is_file():
            sizes["keras_weights_h5"] = _folder_bytes(Path(folder) / "model.weights.h5")
        configs = [(b, 1) for b in functions]
        configs += [(b, large_batch) for b in functions if not b.startswith("tflite")]
        inputs = {batch: _inputs(model, model.latents(batch, seed=seed))
                  for batch in {1, large_batch}}

        reference = model.generate_from_latents(**inputs[1])
        differences = {
            b: float(np.max(np.abs(np.asarray(f(inputs[1])) - reference)))
            for b, f in functions.items()
        }
        for backend, batch in configs:  # warm-up: tracing, first allocations
            for _ in range(2):
                functions[backend](inputs[batch])

        # Interleaved call by call (A, B, C, A, B, C, ...): on a shared machine the
        # load swings within seconds, and chunks of one backend's calls would
        # each catch a different phase of it.
        rates = {config: [] for config in configs}
        latencies = {backend: [] for backend in functions}
        for _ in range(repeats):
            for batch, count in ((1, calls), (large_batch, large_calls)):
                group = [backend for backend, b in configs if b == batch]
                if not group:  # TFLite alone: it is timed at batch 1 only
                    continue
                spent = dict.fromkeys(group, 0.0)
                for call in range(count):
                    # Rotate the order: the first call after another runtime's
                    # (TFLite's thread pool, then TensorFlow's) pays for waking
                    # its threads; each backend takes every position in turn.
                    shift = call % len(group)
                    for backend in group[shift:] + group[:shift]:
                        start = time.perf_counter()
                        functions[backend](inputs[batch])
                        elapsed = time.perf_counter() - start
                        spent[backend] += elapsed
                        if batch == 1:
                            latencies[backend].append(elapsed)
                for backend in group:
                    rates[(backend, batch)].append(batch * count / spent[backend])

    rows = []
    for backend, batch in configs:
        row = {
            "backend": backend,
            "batch": batch,
            "images_per_s": round(statistics.median(rates[(backend, batch)]), 1),
            "repeats_images_per_s": [round(r, 1) for r in rates[(backend, batch)]],
            "max_abs_diff_vs_keras": differences[backend],
        }
        if batch == 1:
            row["latency_ms_p50"] = round(1000 * _percentile(latencies[backend], 50), 3)
            row["latency_ms_p99"] = round(1000 * _percentile(latencies[backend], 99), 3)
        rows.append(row)
    rate = {(r["backend"], r["batch"]): r["images_per_s"] for r in rows}
    summary = {}
    if ("savedmodel", large_batch) in rate and ("keras_generate", large_batch) in rate:
        ratio = rate[("savedmodel", large_batch)] / rate[("keras_generate", large_batch)]
        summary["savedmodel_vs_keras_large_batch"] = round(ratio, 3)
        summary["savedmodel_within_10pct_of_keras"] = bool(ratio >= 0.9)
    for backend in functions:
        if backend != "keras_generate" and ("keras_generate", 1) in rate:
            summary[f"{backend}_vs_keras_batch1"] = round(
                rate[(backend, 1)] / rate[("keras_generate", 1)], 3
            )
    return {
        "model": name,
        "image_shape": list(model.image_shape),
        "latent_dim": model.latent_dim,
        "num_classes": getattr(model, "num_classes", None),  # None: unconditional
        "generator_parameters": int(model.sampling_generator.count_params()),
        "rows": rows,
        "sizes_bytes": sizes,
        "summary": summary,
        "settings": {
            "repeats": repeats, "calls": calls, "large_batch": large_batch,
            "large_calls": large_calls, "tflite_threads": threads, "seed": seed,
            "tf_intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads() or "default",
        },
        "versions": {
            "kgan": kgan.__version__, "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "litert": _litert_version(), "python": platform.python_version(),
        },
        "machine": {"cpus": os.cpu_count(), "load_average_1m_at_end": round(os.getloadavg()[0], 2)},
        "wall_time_s": round(time.perf_counter() - started, 1),
    }


def _litert_version():
    try:
        from importlib.metadata import version

        return version("ai-edge-litert")
    except Exception:  # noqa: BLE001 - not installed: tf.lite.Interpreter is used
        return None


def format_table(report):
    """The report's rows as an aligned text table (plus sizes and the summary)."""
    lines = [f"{'backend':16s} {'batch':>5s} {'images/s':>10s} {'p50 ms':>8s} {'p99 ms':>8s} "
             f"{'max|diff|':>9s}  repeats (images/s)"]
    for row in report["rows"]:
        p50 = f"{row['latency_ms_p50']:8.3f}" if "latency_ms_p50" in row else f"{'':8s}"
        p99 = f"{row['latency_ms_p99']:8.3f}" if "latency_ms_p99" in row else f"{'':8s}"
        lines.append(f"{row['backend']:16s} {row['batch']:5d} {row['images_per_s']:10.1f} {p50} {p99} "
                     f"{row['max_abs_diff_vs_keras']:9.1e}  {row['repeats_images_per_s']}")
    sizes = ", ".join(f"{k} {v / 1e6:.2f} MB" for k, v in report["sizes_bytes"].items())
    lines.append(f"sizes: {sizes}")
    lines.append("summary: " + json.dumps(report["summary"]))
    return "\n".join(lines)


def main(argv=None):
    """Command line: `python -m kgan.benchmarks.serving NAME [--repeats R] [--json FILE]`."""
    parser = argparse.ArgumentParser(
        prog="python -m kgan.benchmarks.serving",
        description="Sampling speed of a preset's generator: Keras generate vs SavedModel vs TFLite.",
    )
    parser.add_argument("name", help="preset name, preset folder or https URL")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--calls", type=int, default=100, help="timed batch-1 calls per repeat")
    parser.add_argument("--large-batch", type=int, default=256,
                        help="the larger batch Keras and the SavedModel are timed at (> 1; "
                        "batch 1 is always timed)")
    parser.add_argument("--large-calls", type=int, default=4, help="timed large-batch calls per repeat")
    parser.add_argument("--tflite-threads", type=int, help="LiteRT threads (default: all CPUs)")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated subset")
    parser.add_argument("--json", help="also write the report to this file")
    args = parser.parse_args(argv)
    # User mistakes (a bad setting, an unknown preset, an unwritable --json)
    # as one line; OSError covers kgan.atomic.OutputPathError and missing files.
    try:
        if args.json:
            check_output_file(args.json)  # now, not after minutes of timing
        report = run(
            args.name, repeats=args.repeats, calls=args.calls, large_batch=args.large_batch,
            large_calls=args.large_calls, tflite_threads=args.tflite_threads,
            backends=tuple(b.strip() for b in args.backends.split(",") if b.strip()),
        )
        report["command"] = "python -m kgan.benchmarks.serving " + shlex.join(
            sys.argv[1:] if argv is None else argv
        )
        print(format_table(report))
        if args.json:
            write_text(args.json, json.dumps(report, indent=2) + "\n")
    except (ValueError, KeyError, OSError) as err:
        return report_error("serving", err)
    return 0


if __name__ == "__main__":
    sys.exit(main())
