"""Mode coverage of GAN architectures on the 2-D ring (8) and grid (25) of Gaussians.

For each problem x architecture x seed this trains a fresh model with MLP
networks, samples it, and scores the samples with `kgan.toy.mode_coverage`:
*modes covered* (a mode counts once `--min-count` samples land within 3 std
of it) and the *share of samples within 3 std* of their nearest mode. The
summary is mean ± sample std (ddof=1) over seeds.

The command behind the README table (41 minutes on 2 CPU cores shared with other jobs):

```sh
TF_CPP_MIN_LOG_LEVEL=2 python -m kgan.benchmarks.mode_coverage \
    --architectures dcgan,wgan,wgan_gp --problems ring8,grid25 --seeds 0,1,2 \
    --steps 1000 --steps-per-execution 50 --log-every 250 \
    --output mode_coverage.json --markdown
```

Setup, after the WGAN-GP paper's toy code (`gan_toy.py`, Gulrajani et al.
2017): generator and discriminator are MLPs with 3 hidden layers of 512 ReLU
units, the latent is 2-D standard normal, batches hold 256 points, and the
data are `kgan.toy`'s problems. Every architecture is built through its plain
constructor, `cls(generator=..., discriminator=..., seed=seed)` with the class
looked up in the `kgan.zoo` registry, and compiled with no optimizer
arguments, i.e. with its paper's defaults (so WGAN-GP here uses the paper's
lambda = 10 and Adam(1e-4, 0, 0.9), not the toy script's lambda = 0.1 and
beta_1 = 0.5).

Step budget: `--steps` counts `train_step` calls, and each makes exactly one
generator update, so every architecture gets the same number of generator
updates, as in the reference (`ITERS` generator iterations). Critic updates
differ by design: DCGAN makes one discriminator update per step, WGAN and
WGAN-GP make `n_critic` (5). A model declares this as `batches_per_step`
(1 when absent) and the pipeline feeds it `batch_size * batches_per_step`
fresh points per step, so each critic update sees its own `batch_size`
minibatch and no point is reused. The reference trains 100,000 generator
iterations; this benchmark's budget is whatever `--steps` says (default
1000, 1% of the reference, what fits half an hour on a small CPU), recorded in
the output. Read the table as "what each recipe achieves early", not as
converged results.

Timing, per run: `train_time_s` is the whole `fit`, including tracing and
compiling the train step. `step_ms` is the steady cost of one step, after a
warm-up as in kgan's other benchmarks: the time from the end of the first
execution (the first `--steps-per-execution` steps, which pay for tracing
and compiling) to the end of the last, divided by the steps in between
(`--steps` minus `--steps-per-execution`; null when that is 0). The warm-up
steps still count towards the budget. `warmup_s` is the time from the start
of `fit` to the end of the first execution. Timed over the whole fit, a
50-step run's `step_ms` was mostly compilation: 11.6 ms, against a steady
0.36 ms for the same network.

`--from-json REPORT --min-count 20 --markdown` re-prints a saved report with
modes re-counted at another `--min-count`, without training: with the
default of 1 an undertrained generator that sprays points over the whole
grid "covers" modes by chance, so a stricter cut is worth reading alongside.

The JSON output holds every per-seed figure (including per-mode counts and
final losses), the settings, the command line, library versions and wall
times; it is rewritten after each run (whole or not at all, `kgan.atomic`), so
an interrupted benchmark keeps what finished. Arguments, `--output` included,
are checked before the first run trains.

Example:

```python
from kgan.benchmarks import mode_coverage
report = mode_coverage.run(["dcgan"], ["ring8"], seeds=[0], steps=200, units=64)
print(mode_coverage.markdown_table(report["summary"]))
```
"""

import argparse
import gc
import json
import math
import os
import platform
import shlex
import statistics
import sys
import time

from kgan.atomic import check_output_file, write_text
from kgan.benchmarks import report_error

DEFAULT_ARCHITECTURES = ("dcgan", "wgan", "wgan_gp")
DEFAULT_PROBLEMS = ("ring8", "grid25")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


# ---------------------------------------------------------------------- models
def resolve_architecture(name):
    """The registered `kgan.zoo.Architecture` for `name`.

    Exact names win; otherwise case, `-` and `_` are ignored, so `wgan-gp`,
    `WGAN_GP` and `wgangp` find the same entry.
    """
    from kgan import zoo

    registered = zoo.list(kind="architectures")
    if name in registered:
        return zoo.architecture(name)

    def key(text):
        return text.lower().replace("-", "").replace("_", "")

    matches = [n for n in registered if key(n) == key(name)]
    if len(matches) == 1:
        return zoo.architecture(matches[0])
    return zoo.architecture(name)  # raises UnknownNameError with suggestions


def build_model(architecture, seed=0, latent_dim=2, data_dim=2, units=512, layers=3):
    """A fresh model of `architecture` with MLP networks, initialized from `seed`.

    Args:
        architecture: registry name, e.g. `"wgan_gp"`.
        seed: seeds the weight initialization and the model's latent stream.
        latent_dim: latent size (2 in the WGAN-GP toy code).
        data_dim: point dimension.
        units: hidden units per layer of both networks.
        layers: hidden layers of both networks.
    """
    import keras

    from kgan import networks

    arch = resolve_architecture(architecture)
    if not hasattr(networks, "mlp_generator") or not hasattr(networks, "mlp_discriminator"):
        raise ImportError(
            "kgan.networks has no mlp_generator / mlp_discriminator; the toy "
            "benchmark needs kgan/networks/mlp.py."
        )
    # Weights are drawn from Keras' global RNG: seed it so a seed fixes the run.
    keras.utils.set_random_seed(seed)
    generator = networks.mlp_generator(latent_dim, data_dim, units=units, layers=layers)
    discriminator = networks.mlp_discriminator(data_dim, units=units, layers=layers)
    return arch.cls(generator=generator, discriminator=discriminator, seed=seed)


def _optimizer_summary(optimizer):
    if optimizer is None:
        return None
    inner = getattr(optimizer, "inner_optimizer", optimizer)  # LossScaleOptimizer
    config = inner.get_config()
    keep = ("learning_rate", "beta_1", "beta_2", "rho", "momentum", "epsilon")
    summary = {"class": type(inner).__name__}
    summary.update({k: _jsonable(config[k]) for k in keep if k in config})
    return summary


def _hyperparameters(model):
    """The model's primitive constructor arguments (n_critic, gp_weight, ...)."""
    config = model.get_config()
    return {
        k: v
        for k, v in config.items()
        if k not in ("generator", "discriminator", "name", "trainable", "dtype")
        and (v is None or isinstance(v, (bool, int, float, str)))
    }


def _jsonable(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


# ---------------------------------------------------------------------- one run
def run_one(
    problem_name,
    architecture,
    seed,
    steps,
    batch_size=256,
    num_samples=2500,
    latent_dim=2,
    units=512,
    layers=3,
    steps_per_execution=50,
    jit_compile=False,
    precision="float32",
    threshold=3.0,
    min_count=1,
    log_every=None,
    verbose=True,
):
    """Train one model and score its samples; returns a JSON-ready dict.

    `steps` generator updates (`train_step` calls), each fed
    `batch_size * batches_per_step` fresh points; then `num_samples` points
    are generated from latents drawn with numpy seed `seed` and scored.
    `step_ms` excludes the first execution, which traces and compiles (see
    the module docstring); `train_time_s` is the whole `fit`.
    """
    import keras

    from kgan import toy

    problem = toy.problem(problem_name)
    log_every = steps if not log_every else log_every
    _check_schedule(steps, steps_per_execution, log_every)

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        model = build_model(
            architecture, seed, latent_dim=latent_dim, data_dim=problem.dim,
            units=units, layers=layers,
        )
        model.compile(steps_per_execution=steps_per_execution, jit_compile=jit_compile)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    batches_per_step = int(getattr(model, "batches_per_step", 1))
    dataset = problem.dataset(batch_size * batches_per_step, seed=seed)

    def report(epoch, logs):
        done = (epoch + 1) * log_every
        losses = " ".join(f"{k}={v:.4g}" for k, v in sorted((logs or {}).items()))
        print(f"  [{problem_name} {architecture} seed {seed}] step {done}/{steps} "
              f"{time.perf_counter() - start:.0f}s {losses}", flush=True)

    # Keras calls on_train_batch_end once per execution of steps_per_execution
    # steps: the first marks the end of tracing and compiling, the last the
    # end of the last step (before fit's epoch-end work).
    execution_ends = []
    timer = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: execution_ends.append(time.perf_counter()))
    callbacks = [timer] + ([keras.callbacks.LambdaCallback(on_epoch_end=report)] if verbose else [])
    start = time.perf_counter()
    history = model.fit(
        dataset, epochs=steps // log_every, steps_per_epoch=log_every,
        callbacks=callbacks, verbose=0,
    )
    train_time = time.perf_counter() - start
    steady_steps = steps - steps_per_execution
    step_ms = (round(1000 * (execution_ends[-1] - execution_ends[0]) / steady_steps, 3)
               if steady_steps else None)
    samples = model.generate(num_samples, seed=seed)
    scores = toy.mode_coverage(samples, problem.centers, problem.std, threshold, min_count)
    return {
        "problem": problem_name,
        "architecture": architecture,
        "class": type(model).__name__,
        "seed": seed,
        "steps": steps,
        "generator_updates": int(model.g_optimizer.iterations.numpy()),
        "discriminator_updates": int(model.d_optimizer.iterations.numpy()),
        "batches_per_step": batches_per_step,
        "real_points_seen": steps * batch_size * batches_per_step,
        "train_time_s": round(train_time, 2),
        "warmup_s": round(execution_ends[0] - start, 2),
        "step_ms": step_ms,
        "final_losses": {k: float(v[-1]) for k, v in history.history.items()},
        "hyperparameters": _hyperparameters(model),
        "g_optimizer": _optimizer_summary(model.g_optimizer),
        "d_optimizer": _optimizer_summary(model.d_optimizer),
        **scores,
    }


def _check_schedule(steps, steps_per_execution, log_every):
    for name, value in (("steps", steps), ("steps_per_execution", steps_per_execution),
                        ("log_every", log_every)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}.")
    # Keras runs whole executions: a remainder would train extra steps.
    if steps % log_every or log_every % steps_per_execution:
        raise ValueError(
            f"steps ({steps}) must be a multiple of log_every ({log_every}), and "
            f"log_every a multiple of steps_per_execution ({steps_per_execution}); "
            "otherwise Keras trains a different number of steps than asked."
        )


# ---------------------------------------------------------------------- all runs
def summarize(runs):
    """One row per (problem, architecture): mean and sample std over seeds."""
    rows, groups = [], {}
    for run in runs:
        groups.setdefault((run["problem"], run["architecture"]), []).append(run)
    for (problem, architecture), group in groups.items():
        modes = [r["modes_covered"] for r in group]
        share = [r["high_quality"] for r in group]
        rows.append(
            {
                "problem": problem,
                "architecture": architecture,
                "num_modes": group[0]["num_modes"],
                "seeds": [r["seed"] for r in group],
                "modes_covered_mean": statistics.fmean(modes),
                "modes_covered_std": statistics.stdev(modes) if len(modes) > 1 else 0.0,
                "high_quality_mean": statistics.fmean(share),
                "high_quality_std": statistics.stdev(share) if len(share) > 1 else 0.0,
                "steps": group[0]["steps"],
                "threshold": group[0]["threshold"],
                "min_count": group[0].get("min_count", 1),
            }
        )
    return rows


def rescore(runs, min_count):
    """Copies of saved `runs` with modes re-counted at a new `min_count`.

    Every run keeps its per-mode counts of high-quality samples, so a
    stricter (or looser) coverage cut needs no retraining.

    Example:

    ```python
    report = json.load(open("mode_coverage.json"))
    print(markdown_table(summarize(rescore(report["runs"], min_count=20))))
    ```
    """
    if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
        raise ValueError(f"min_count must be a positive int, got {min_count!r}.")
    return [
        {**run, "min_count": min_count,
         "modes_covered": sum(n >= min_count for n in run["mode_counts"])}
        for run in runs
    ]


def markdown_table(rows):
    """The summary as a Markdown table (mean ± std over seeds)."""
    threshold = rows[0]["threshold"] if rows else 3.0
    min_count = rows[0].get("min_count", 1) if rows else 1
    t = f"{threshold:g}σ"
    lines = [
        f"| problem | architecture | modes covered (≥{min_count} within {t}) "
        f"| share within {t} | steps | seeds |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['problem']} | {r['architecture']} "
            f"| {r['modes_covered_mean']:.1f} ± {r['modes_covered_std']:.1f} / {r['num_modes']} "
            f"| {r['high_quality_mean']:.3f} ± {r['high_quality_std']:.3f} "
            f"| {r['steps']} | {len(r['seeds'])} |"
        )
    return "\n".join(lines)


def _versions():
    import keras
    import numpy as np
    import tensorflow as tf

    import kgan

    return {
        "python": platform.python_version(),
        "kgan": kgan.__version__,
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
        "numpy": np.__version__,
    }


def run(
    architectures=DEFAULT_ARCHITECTURES,
    problems=DEFAULT_PROBLEMS,
    seeds=(0, 1, 2),
    steps=1000,
    output=None,
    command=None,
    **kwargs,
):
    """Run every problem x architecture x seed; returns the report dict.

    Args:
        architectures: registry names.
        problems: `kgan.toy` problem names.
        seeds: one run per seed.
        steps: generator updates per run (the shared budget).
        output: JSON path, rewritten (atomically) after each run.
        command: the command line to record (defaults to `sys.argv`).
        **kwargs: passed to `run_one` (`batch_size`, `units`, ...).

    Raises:
        ValueError: an unknown problem.
        KeyError: an unknown architecture (`kgan.zoo.UnknownNameError`).
        kgan.atomic.OutputPathError: an `output` that could not be written.
    """
    import keras

    from kgan import toy

    _check_run(problems, architectures, output)
    report = {
        "benchmark": "kgan.benchmarks.mode_coverage",
        "command": command or " ".join(shlex.quote(a) for a in ["python"] + sys.argv),
        "settings": {
            "architectures": list(architectures), "problems": list(problems),
            "seeds": list(seeds), "steps": steps, **kwargs,
        },
        "problems": {
            name: {
                "description": toy.problem(name).description,
                "std": toy.problem(name).std,
                "centers": toy.problem(name).centers.tolist(),
            }
            for name in problems
        },
        "versions": _versions(),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count()},
        "runs": [],
        "summary": [],
        "wall_time_s": None,
    }
    start = time.perf_counter()
    for problem in problems:
        for architecture in architectures:
            for seed in seeds:
                # Drop the previous runs' models and graphs now, so collecting
                # them does not land inside the next run's timed fit.
                keras.backend.clear_session()
                gc.collect()
                result = run_one(problem, architecture, seed, steps, **kwargs)
                report["runs"].append(result)
                print(
                    f"{problem} {architecture} seed {seed}: "
                    f"{result['modes_covered']}/{result['num_modes']} modes, "
                    f"{result['high_quality']:.3f} within {result['threshold']:g} std, "
                    f"{result['train_time_s']:.0f}s", flush=True,
                )
                report["summary"] = summarize(report["runs"])
                report["wall_time_s"] = round(time.perf_counter() - start, 1)
                if output:  # whole or not at all: an interrupted run keeps the last report
                    write_text(output, json.dumps(report, indent=2))
    return report


def _check_run(problems, architectures, output):
    """Fail before hours of training, not after (see `run` for the errors)."""
    from kgan import toy

    for name in problems:
        toy.problem(name)
    for name in architectures:
        resolve_architecture(name)
    if output:
        check_output_file(output)


#: what `--from-json` reads from a saved report, and from each of its runs.
REPORT_FIELDS = ("runs", "wall_time_s", "command")
RUN_FIELDS = ("problem", "architecture", "seed", "num_modes", "mode_counts", "high_quality",
              "steps", "threshold")


def load_report(path):
    """A report saved by `--output`, or a ValueError saying why `path` is not one.

    Example:

    ```python
    report = load_report("mode_coverage.json")
    print(markdown_table(summarize(rescore(report["runs"], min_count=20))))
    ```
    """
    with open(path) as f:
        try:
            report = json.load(f)
        except ValueError as err:  # JSONDecodeError, UnicodeDecodeError
            raise ValueError(f"{path} is not a JSON file ({err}); give a report written "
                             "by --output.") from err
    runs = report.get("runs") if isinstance(report, dict) else None
    if not isinstance(runs, list) or not all(isinstance(run, dict) for run in runs):
        raise ValueError(f"{path} is not a mode_coverage report (it has no list of runs); "
                         "give a report written by --output.")
    for what, fields, record in [("the report", REPORT_FIELDS, report)] + [
            (f"run {index}", RUN_FIELDS, run) for index, run in enumerate(runs)]:
        missing = [field for field in fields if field not in record]
        if missing:
            raise ValueError(f"{path}: {what} lacks {', '.join(missing)}; give a report "
                             "written by --output.")
    return report


# ---------------------------------------------------------------------- CLI
def _names(text):
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give at least one name")
    return names


def _ints(text):
    try:
        return [int(n) for n in _names(text)]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected comma-separated ints: {err}") from err


def _positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m kgan.benchmarks.mode_coverage",
        description="Modes covered and share of samples within 3 std on the 2-D "
        "ring and grid of Gaussians, per architecture, mean ± std over seeds.",
    )
    parser.add_argument("--architectures", type=_names, default=list(DEFAULT_ARCHITECTURES),
                        help="comma-separated registry names (default: %(default)s)")
    parser.add_argument("--problems", type=_names, default=list(DEFAULT_PROBLEMS),
                        help="comma-separated: ring8, grid25 (default: %(default)s)")
    parser.add_argument("--seeds", type=_ints, default=[0, 1, 2])
    parser.add_argument("--steps", type=_positive, default=1000,
                        help="generator updates per run, the same for every architecture")
    parser.add_argument("--batch-size", type=_positive, default=256,
                        help="points per critic/discriminator update")
    parser.add_argument("--num-samples", type=_positive, default=2500,
                        help="generated points scored per run (2500 as VEEGAN/PacGAN)")
    parser.add_argument("--latent-dim", type=_positive, default=2)
    parser.add_argument("--units", type=_positive, default=512, help="hidden units per layer")
    parser.add_argument("--layers", type=_positive, default=3, help="hidden layers per network")
    parser.add_argument("--steps-per-execution", type=_positive, default=50)
    parser.add_argument("--jit-compile", action="store_true", help="XLA-compile the train step")
    parser.add_argument("--precision", choices=PRECISIONS, default="float32")
    parser.add_argument("--threshold", type=float, default=None,
                        help="high-quality radius in standard deviations (default 3; new runs "
                        "only: --from-json keeps the report's)")
    parser.add_argument("--min-count", type=_positive, default=1,
                        help="high-quality samples a mode needs to count as covered")
    parser.add_argument("--log-every", type=_positive, default=None,
                        help="print losses every N steps (default: once per run)")
    parser.add_argument("--output", help="write the JSON report here")
    parser.add_argument("--from-json", metavar="PATH",
                        help="no training: summarize a saved report, re-counting modes "
                        "at --min-count")
    parser.add_argument("--markdown", action="store_true",
                        help="print the summary as a Markdown table (default: plain text)")
    parser.add_argument("--quiet", action="store_true", help="no per-step progress lines")
    args = parser.parse_args(argv)
    log_every = args.log_every or args.steps
    if args.steps % log_every or log_every % args.steps_per_execution:
        parser.error(
            f"--steps ({args.steps}) must be a multiple of --log-every ({log_every}) and that "
            f"a multiple of --steps-per-execution ({args.steps_per_execution})."
        )
    args.threshold_given = args.threshold is not None
    if not args.threshold_given:
        args.threshold = 3.0
    if not (math.isfinite(args.threshold) and args.threshold > 0):
        parser.error(f"--threshold must be positive, got {args.threshold}.")
    return args


def main(argv=None):
    """Entry point; returns the process exit code."""
    args = parse_args(argv)
    argv = sys.argv[1:] if argv is None else list(argv)
    # User mistakes (an unknown architecture or problem, an unwritable
    # --output, a missing or foreign --from-json) as one line, exit 2;
    # OSError covers kgan.atomic.OutputPathError and missing files. Only
    # these checks: a ValueError from inside training is a bug to trace.
    try:
        if args.from_json:
            report = load_report(args.from_json)
            _check_rescore_threshold(report, args)
            report["summary"] = summarize(rescore(report["runs"], args.min_count))
            _print_summary(report, args.markdown)
            print(f"(modes re-counted at --min-count {args.min_count} from {args.from_json})")
            return 0
        _check_run(args.problems, args.architectures, args.output)
    except (ValueError, KeyError, OSError) as err:
        return report_error("mode_coverage", err)
    try:
        report = _run_from_args(args, argv)
    except OSError as err:  # writing the report: a full disk, its folder removed meanwhile
        return report_error("mode_coverage", err)
    _print_summary(report, args.markdown)
    return 0


def _check_rescore_threshold(report, args):
    """Refuse a --threshold a saved report cannot be re-scored at.

    A report keeps each mode's count of samples within its radius, not the
    samples: modes can be re-counted at another --min-count, but not at
    another radius (the flag was silently ignored).
    """
    saved = {run["threshold"] for run in report["runs"]}
    if args.threshold_given and saved != {args.threshold}:
        radius = ", ".join(f"{t:g}" for t in sorted(saved))
        raise ValueError(
            f"--threshold {args.threshold:g} cannot re-score {args.from_json}: it keeps the "
            f"mode counts within {radius} std, not the samples. --from-json re-counts modes at "
            "--min-count only; train again for another --threshold."
        )


def _run_from_args(args, argv):
    """`run` with the command line's settings; `argv` is recorded as the command."""
    return run(
        architectures=args.architectures,
        problems=args.problems,
        seeds=args.seeds,
        steps=args.steps,
        output=args.output,
        command=" ".join(shlex.quote(a) for a in
                         ["python", "-m", "kgan.benchmarks.mode_coverage"] + argv),
        batch_size=args.batch_size,
        num_samples=args.num_samples,
        latent_dim=args.latent_dim,
        units=args.units,
        layers=args.layers,
        steps_per_execution=args.steps_per_execution,
        jit_compile=args.jit_compile,
        precision=args.precision,
        threshold=args.threshold,
        min_count=args.min_count,
        log_every=args.log_every,
        verbose=not args.quiet,
    )


def _print_summary(report, markdown):
    print()
    if markdown:
        print(markdown_table(report["summary"]))
    else:
        for r in report["summary"]:
            print(
                f"{r['problem']:8s} {r['architecture']:10s} modes (≥{r['min_count']}) "
                f"{r['modes_covered_mean']:.1f} ± {r['modes_covered_std']:.1f} / {r['num_modes']}  "
                f"within {r['threshold']:g} std {r['high_quality_mean']:.3f} ± "
                f"{r['high_quality_std']:.3f}  steps {r['steps']}"
            )
    print(f"\nwall time {report['wall_time_s']:.0f}s; command: {report['command']}")


if __name__ == "__main__":
    sys.exit(main())
