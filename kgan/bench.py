"""Training-throughput benchmark: kgan's `fit` per setting, and against a keras.io baseline.

`run` times `fit` of one architecture under several configurations in the
same run, their repeats interleaved (A, B, A, B, ...) so that load from other
processes on a shared machine hits them alike; each figure is the median
over repeats, after a warm-up `fit` that traces and compiles the step.

Configurations are kgan's (one per precision; steps per execution and XLA
default to what `kgan train` uses, see `kgan.performance`) and, with
`baseline=True`, the same networks (same builder, sizes and batch) trained
by the keras.io-style float32 `train_step` of `kgan.benchmarks.baselines`.

**Images per second** count the real images the discriminator scores:
`batch_size` per update, so `batch_size * n_critic` per step for WGAN and
WGAN-GP (kgan draws a fresh minibatch per critic update; the keras.io
baseline re-scores the step's one batch n_critic times, the same work). A
ratio of images/s is therefore a ratio of step rates. Each row also has the
**CPU time** per step of its process: on a shared machine wall time swings
with the cores other jobs leave free (repeats here were bimodal, one core or
two), while CPU time barely moves, so `cpu_ratio` is the steadier comparison
(it does not credit a configuration for using two cores at once).

Each timed `fit` is one epoch of `steps` steps, so its wall time includes
what `fit` does at every epoch's end, notably deleting the epoch's data
iterator. With tf.data's autotuning on (the keras.io pipeline), that deletion
often waits for the autotuner's sleeping thread (`kgan.data.without_teardown_stall`),
which made the baseline's repeats bimodal. **Steady** figures
(`steady_images_per_s`, `steady_ratio`) time each fit only up to the end of
its last step: the train step's own throughput, without that epoch-end cost.

**Peak memory**: by default each configuration runs in its own worker
process, so `peak_rss_mb` is that process's resident high-water mark up to
the end of its timed fits (`VmHWM`: TensorFlow runtime, data pipeline,
model, compilation and training; not `--profile` or `--floor`, measured
after), and `rss_start_mb` its resident
size after importing TensorFlow and kgan, before building anything. With
`isolate=False` everything runs in this process (faster to start); then
`peak_rss_mb` is the process's RSS sampled every 5 ms during that
configuration's own build and fits, which includes memory still held by the
configurations built before it (`memory_scope` says which).

Example:

```python
from kgan import bench
rows = bench.run("dcgan", baseline=True, steps=50, repeats=5)
rows[0]["ratio"]   # kgan images/s over the baseline's
```
"""

import inspect
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

_PREFIX = "KGAN_BENCH "
_BASELINE = "baseline"


# --------------------------------------------------------------------- memory
def _rss_mb():
    """Current resident set size of this process, in MB (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


def _max_rss_mb():
    """This process's resident high-water mark since it started, in MB.

    Linux's `VmHWM`, which starts afresh when a process executes a program.
    `ru_maxrss` does not: a worker started from a process that had grown to
    3 GB reported 3.6 GB for a 0.6 GB benchmark. Elsewhere `ru_maxrss` (KB on
    Linux, bytes on macOS).
    """
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**10  # kB
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


class _RssSampler:
    """Resident-size high-water mark over a stretch of time, sampled every 5 ms."""

    def __init__(self):
        self.peak = _rss_mb()
        self._stop = threading.Event()
        self._thread = None

    def __enter__(self):
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mb())

    def _sample(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss_mb())


# --------------------------------------------------------------------- one configuration
def _images(pipeline, translation, with_labels):
    """Materialize a finite kgan pipeline as float32 numpy (what the baseline trains on)."""
    import numpy as np

    parts = [tuple(np.asarray(t) for t in b) if isinstance(b, tuple) else (np.asarray(b),)
             for b in pipeline]
    columns = [np.concatenate(c) for c in zip(*parts)]
    if translation:
        return tuple(columns), None
    return columns[0], (columns[1] if with_labels else None)


def _is_conditional(arch):
    """Class-conditional architectures take `(images, labels)` batches."""
    return "num_classes" in inspect.signature(arch.builder).parameters


def _pipeline(problem, translation, conditional, repeat_batches=1, baseline=False):
    """The training pipeline `kgan train` builds for this problem.

    With `baseline=True`, the same examples once, in order, in batches of 256
    (for the baseline to hold in memory, as the keras.io examples do).
    """
    from kgan import data

    p = problem
    if translation:
        if baseline:
            return data.unpaired(
                p["dataset"], p["dataset_b"], batch_size=1, image_size=p["image_size"],
                channels=p["channels"], split=p["split"], shuffle=False,
            ).unbatch().batch(256)
        return data.unpaired(
            p["dataset"], p["dataset_b"], batch_size=p["batch_size"],
            image_size=p["image_size"], channels=p["channels"], split=p["split"], seed=p["seed"],
        )
    if baseline:
        return data.load(
            p["dataset"], split=p["split"], batch_size=256, image_size=p["image_size"],
            channels=p["channels"], shuffle=False, drop_remainder=False,
            with_labels=conditional,
        )
    return data.load(
        p["dataset"], split=p["split"], batch_size=p["batch_size"], image_size=p["image_size"],
        channels=p["channels"], seed=p["seed"], with_labels=conditional,
        repeat_batches=repeat_batches,
    )


class _Trainer:
    """One configuration: its pipeline, its compiled model, and a timed `fit`.

    Builds everything at construction and runs one untimed warm-up `fit`.
    """

    def __init__(self, problem, config):
        import keras

        from kgan import performance, zoo

        # First: TensorFlow fixes its thread pools when it runs its first op.
        self.threads = performance.set_threads(config.get("threads"))
        self.rss_start_mb = _rss_mb()
        p = problem
        arch = zoo.architecture(p["arch"])
        self.translation = hasattr(arch.cls, "translate")
        self.conditional = _is_conditional(arch)
        is_baseline = config["kind"] == _BASELINE
        precision = "float32" if is_baseline else config["precision"]
        with performance.global_precision(precision):
            pipeline = _pipeline(p, self.translation, self.conditional)
            if self.translation:
                spec_a, spec_b = pipeline.element_spec
                build = {"image_shape": tuple(int(d) for d in spec_a.shape[1:]),
                         "channels_b": int(spec_b.shape[-1])}
                if p.get("num_residual_blocks"):
                    build["num_residual_blocks"] = p["num_residual_blocks"]
            else:
                spec = pipeline.element_spec[0] if self.conditional else pipeline.element_spec
                build = {"image_shape": tuple(int(d) for d in spec.shape[1:]),
                         "latent_dim": p["latent_dim"]}
                if self.conditional:
                    build["num_classes"] = len(pipeline.class_names)
                if p.get("n_critic"):
                    build["n_critic"] = p["n_critic"]
            self.image_shape = list(build["image_shape"])
            model = arch.builder(filters=p["filters"], seed=p["seed"], **build)
            if is_baseline:
                from kgan.benchmarks import baselines

                model = baselines.build(p["arch"], model)
                self.batches_per_step = model.critic_updates
                images, labels = _images(
                    _pipeline(p, self.translation, self.conditional, baseline=True),
                    self.translation, self.conditional,
                )
                pipeline = baselines.dataset(
                    p["arch"], images, p["batch_size"], labels=labels, seed=p["seed"]
                )
            else:
                self.batches_per_step = model.batches_per_step
                if model.batches_per_step > 1:  # as kgan train: n_critic fresh minibatches
                    pipeline = _pipeline(
                        p, self.translation, self.conditional, model.batches_per_step
                    )
                model.compile(
                    steps_per_execution=config["steps_per_execution"],
                    jit_compile=config["jit_compile"],
                )
        self.model = model
        self.precision = precision
        # As compiled: the baseline's plain compile() leaves "auto", which Keras
        # resolves to XLA on where it sees a GPU (and Keras turns XLA off for
        # models that do not support it).
        self.jit_compile = bool(model.jit_compile)
        self.chunk = pipeline.repeat().take(p["steps"])
        self.chunk_steps = p["steps"]
        self.images_per_step = p["batch_size"] * self.batches_per_step
        self.fit()  # warm-up: tracing, compilation, first-step allocations
        self._start_weights = self._network_weights()

    def _network_weights(self):
        """`{network name: copy of its trainable weights}` of the model's networks."""
        import keras
        import numpy as np

        return {
            layer.name: [np.array(w) for w in layer.trainable_weights]
            for layer in self.model._flatten_layers(include_self=False, recursive=False)
            if isinstance(layer, keras.Model) and layer.trainable_weights
        }

    def profile(self):
        """Op time per op type of one more, untimed fit (`kgan.benchmarks.op_profile`)."""
        from kgan.benchmarks import op_profile

        return op_profile.profile(self.fit, self.chunk_steps)

    def floor(self):
        """The step's compute floors (`kgan.benchmarks.compute_floor`), on one real batch."""
        from kgan.benchmarks import compute_floor

        return compute_floor.measure(self.model, next(iter(self.chunk)), self.precision)

    def networks_trained(self):
        """`{network name: whether the timed fits changed its weights}` (a sanity check)."""
        import numpy as np

        now = self._network_weights()
        return {
            name: any(not np.array_equal(a, b) for a, b in zip(weights, now[name]))
            for name, weights in self._start_weights.items()
        }

    def fit(self):
        """`(wall, CPU, steady)` seconds of one `fit` over `steps` steps.

        `steady` ends when the last step has run (before `fit`'s epoch-end
        work, e.g. deleting the data iterator); `wall` when `fit` returns.
        """
        import keras

        last = []

        class LastStep(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                last[:] = [time.perf_counter()]

        cpu, start = time.process_time(), time.perf_counter()
        self.model.fit(self.chunk, epochs=1, verbose=0, shuffle=False, callbacks=[LastStep()])
        end = time.perf_counter()
        return end - start, time.process_time() - cpu, (last[0] if last else end) - start


class _InProcess:
    """A configuration run in this process; memory is sampled process RSS."""

    memory_scope = "shared process (sampled RSS during this configuration)"

    def __init__(self, problem, config):
        self.sampler = _RssSampler()
        with self.sampler:
            self.trainer = _Trainer(problem, config)
        self.rss_start_mb = self.trainer.rss_start_mb
        self.info = {"images_per_step": self.trainer.images_per_step,
                     "batches_per_step": self.trainer.batches_per_step,
                     "image_shape": self.trainer.image_shape, "threads": self.trainer.threads,
                     "jit_compile": self.trainer.jit_compile}

    def ready(self):
        return self.info

    def run(self):
        with self.sampler:
            return self.trainer.fit()

    def profile(self):
        return self.trainer.profile()

    def floor(self):
        return self.trainer.floor()

    def close(self):
        return {"peak_rss_mb": self.sampler.peak, "rss_start_mb": self.rss_start_mb,
                "networks_trained": self.trainer.networks_trained()}


def child_env():
    """Environment for a benchmark's child process: TensorFlow's info logs off,
    and the same kgan as this process, installed or not.

    Example:

    ```python
    subprocess.run([sys.executable, "-c", "import kgan"], env=bench.child_env())
    ```
    """
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    return env


class BenchWorkerError(RuntimeError):
    """A benchmark's worker process failed: crashed, was killed, or hit an error."""


#: The worker's command. Not `python -m kgan.bench`: `import kgan` imports
#: kgan.bench first, and runpy would warn that it runs a module already imported.
_WORKER_COMMAND = ["-c", "from kgan.bench import _worker_main; _worker_main()"]


class _Worker:
    """A configuration run in its own process (`_WORKER_COMMAND`)."""

    memory_scope = "own process (VmHWM)"

    def __init__(self, problem, config):
        self.label = _label(config)
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(
            [sys.executable, *_WORKER_COMMAND], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self.stderr, text=True, env=child_env(),
        )
        self._send({"problem": problem, "config": config})

    def _send(self, message):
        try:
            self.process.stdin.write(json.dumps(message) + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:  # it has exited: say why
            self._fail({})

    def _receive(self):
        for line in self.process.stdout:
            if line.startswith(_PREFIX):
                reply = json.loads(line[len(_PREFIX):])
                if "error" in reply:
                    self._fail(reply)
                return reply
        self._fail({})

    def _fail(self, reply):
        exited = self.process.poll()
        self.process.kill()
        self.process.wait()
        if reply.get("user_error"):
            raise ValueError(reply["error"])
        if "error" in reply:
            why = reply["error"]
        elif exited is not None and exited < 0:
            name = signal.Signals(-exited).name if -exited in signal.valid_signals() else "?"
            why = (f"it was killed by signal {-exited} ({name}"
                   + (", e.g. by the kernel when memory ran out)" if name == "SIGKILL" else ")"))
        else:
            why = f"it exited with status {exited} before replying"
        self.stderr.seek(0)
        output = [line for line in self.stderr.read().splitlines() if line.strip()]
        last = f"; its last output: {output[-1].strip()}" if output else ""
        raise BenchWorkerError(f"the bench worker for '{self.label}' failed: {why}{last}")

    def ready(self):
        return self._receive()

    def run(self):
        self._send({"cmd": "run"})
        reply = self._receive()
        return reply["seconds"], reply["cpu_seconds"], reply["steady_seconds"]

    def profile(self):
        self._send({"cmd": "profile"})
        return self._receive()["ops"]

    def floor(self):
        self._send({"cmd": "floor"})
        return self._receive()["floor"]

    def close(self):
        self._send({"cmd": "stop"})
        reply = self._receive()
        self.process.wait()
        self.stderr.close()
        return reply


def _worker_main():
    """The worker's loop: build the configuration, then answer run/stop commands."""
    user_errors = (ValueError, TypeError, KeyError, FileNotFoundError)

    def reply(message):
        sys.stdout.write(_PREFIX + json.dumps(message) + "\n")
        sys.stdout.flush()

    request = json.loads(sys.stdin.readline())
    # The high-water mark after the last timed fit: --profile and --floor,
    # which run later, would add their own.
    peak_rss_mb = None
    try:
        trainer = _Trainer(request["problem"], request["config"])
    except Exception as err:  # reported to the parent, which raises it
        message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        reply({"error": str(message) or type(err).__name__,
               "user_error": isinstance(err, user_errors)})
        return
    reply({"images_per_step": trainer.images_per_step,
           "batches_per_step": trainer.batches_per_step, "image_shape": trainer.image_shape,
           "threads": trainer.threads, "jit_compile": trainer.jit_compile})
    for line in sys.stdin:
        command = json.loads(line)["cmd"]
        if command == "run":
            wall, cpu, steady = trainer.fit()
            peak_rss_mb = _max_rss_mb()
            reply({"seconds": wall, "cpu_seconds": cpu, "steady_seconds": steady})
        elif command == "profile":
            reply({"ops": trainer.profile()})
        elif command == "floor":
            reply({"floor": trainer.floor()})
        else:
            reply({"peak_rss_mb": peak_rss_mb if peak_rss_mb is not None else _max_rss_mb(),
                   "rss_start_mb": trainer.rss_start_mb,
                   "networks_trained": trainer.networks_trained()})
            return


# --------------------------------------------------------------------- the benchmark
def _significant(value, digits=4):
    """`value` rounded to `digits` significant digits (0.5 img/s and 1200 img/s alike)."""
    return float(f"{value:.{digits}g}")


def _label(config):
    if config["kind"] == _BASELINE:
        return "baseline float32 (keras.io)"
    jit = " xla" if config["jit_compile"] else ""
    threads = config.get("threads")
    ops = f" {threads['inter_op']}x{threads['intra_op']}thr" if threads else ""
    return f"kgan {config['precision']} spe={config['steps_per_execution']}{jit}{ops}"


#: A translation bench's default domains are 8x8 and 28x28 images: they are
#: paired at the offline `cyclegan_digits` preset's size.
DIGITS_PAIR_SIZE = 32


def problem_defaults(arch, dataset=None, dataset_b=None, image_size=None, batch_size=None):
    """The data a bench of `arch` trains on: the values given, the defaults for the rest.

    `mnist_5k` in batches of 64. An image-to-image architecture trains on
    domain A `digits_8x8` and domain B `mnist_5k` in batches of 1 (the
    paper's, and the README's CycleGAN bench); its default domains, whose
    images differ in size, are resized to `DIGITS_PAIR_SIZE` as the
    `cyclegan_digits` preset pairs them. Other domains keep their size
    unless `image_size` is given.

    Returns:
        `{"dataset", "dataset_b", "image_size", "batch_size"}`; `dataset_b`
        is None for architectures that learn one dataset.

    Example:

    ```python
    bench.problem_defaults("cyclegan")
    # {'dataset': 'digits_8x8', 'dataset_b': 'mnist_5k', 'image_size': 32, 'batch_size': 1}
    ```
    """
    from kgan import zoo

    if not hasattr(zoo.architecture(arch).cls, "translate"):
        return {"dataset": dataset or "mnist_5k", "dataset_b": None, "image_size": image_size,
                "batch_size": batch_size or 64}
    domains = (dataset or "digits_8x8", dataset_b or "mnist_5k")
    if image_size is None and domains == ("digits_8x8", "mnist_5k"):
        image_size = DIGITS_PAIR_SIZE
    return {"dataset": domains[0], "dataset_b": domains[1], "image_size": image_size,
            "batch_size": batch_size or 1}


def run(
    arch,
    precisions=("auto",),
    baseline=False,
    dataset=None,
    dataset_b=None,
    split="train",
    image_size=None,
    channels=None,
    batch_size=None,
    steps=50,
    repeats=5,
    latent_dim=100,
    filters=64,
    num_residual_blocks=None,
    n_critic=None,
    steps_per_execution="auto",
    jit_compile="auto",
    isolate=True,
    seed=0,
    profile=False,
    floor=False,
):
    """Time `fit` of `arch` per configuration; returns one dict per configuration.

    Args:
        arch: architecture name (`kgan.zoo.list(kind="architectures")`).
        precisions: kgan configurations to time, one per precision;
            `"auto"` is `kgan train`'s default (`kgan.performance`).
        baseline: also time the keras.io-style float32 baseline of the same
            networks (`kgan.benchmarks.baselines`); rows then carry their
            ratio to it.
        dataset: dataset name (default `mnist_5k`; for image-to-image
            architectures domain A, default `digits_8x8`).
        dataset_b: image-to-image architectures: domain B (default `mnist_5k`).
        split: split of the dataset(s), e.g. `"train[:256]"`.
        image_size: resize images to this square size (image-to-image on
            the default domains: `DIGITS_PAIR_SIZE`).
        channels: convert images to 1 or 3 channels.
        batch_size: images per update (per domain for image-to-image);
            default 64, image-to-image 1 (see `problem_defaults`).
        steps: train steps per timed `fit`.
        repeats: timed `fit` calls per configuration.
        latent_dim: latent size (latent-space architectures).
        filters: base network width.
        num_residual_blocks: CycleGAN generator blocks (default: the paper's).
        n_critic: WGAN, WGAN-GP critic updates per step (default: the paper's 5).
        steps_per_execution: kgan's; `"auto"` is `kgan train`'s default.
        jit_compile: kgan's; `"auto"` is `kgan train`'s default.
        isolate: run each configuration in its own process (honest peak
            memory per configuration); False runs all in this process.
        seed: seed of data order and initialization.
        profile: after the timed repeats, profile one more fit of each
            configuration (`kgan.benchmarks.op_profile`); rows then carry
            `op_profile`, op time per op type.
        floor: after the timed repeats, count and time each configuration's
            convolutions and matmuls (`kgan.benchmarks.compute_floor`); rows
            then carry `floor`, the least time a step with that arithmetic
            could take here.

    Returns:
        One dict per configuration (kgan's first, the baseline last):
        `label`, `config` (`"kgan"` or `"baseline"`), `precision`,
        `steps_per_execution`, `jit_compile` (as compiled: the baseline's
        is what Keras's `"auto"` chose), `images_per_s` (median),
        `step_ms` (median), `repeats_images_per_s`, `ratio` (images/s over
        the reference row's: the baseline if present, else the first row),
        `steady_images_per_s`, `steady_step_ms` and `steady_ratio` (the
        same up to the end of each fit's last step, see above),
        `reference`, `cpu_ms_per_step`, `images_per_cpu_s` and `cpu_ratio`
        (the same per CPU-second of the configuration's process),
        `peak_rss_mb`, `rss_start_mb`, `memory_scope`, `networks_trained`
        (whether the timed fits changed each network's weights), and the
        problem's settings.

    Raises:
        ValueError: unknown architecture or precision, no baseline for
            `arch`, an option `arch` does not take (`n_critic`,
            `num_residual_blocks`), bad sizes, or a dataset that cannot be loaded.

    Example:

    ```python
    from kgan import bench
    rows = bench.run("dcgan", precisions=("float32",), split="train[:256]", steps=2,
                     repeats=1, filters=8, latent_dim=16, isolate=False)
    rows[0]["label"], rows[0]["images_per_s"]  # ('kgan float32 spe=10', ...)
    ```
    """
    from kgan import performance, zoo

    if steps < 1 or repeats < 1:
        raise ValueError(f"steps and repeats must be >= 1, got {steps}, {repeats}.")
    architecture = zoo.architecture(arch)
    translation = hasattr(architecture.cls, "translate")
    parameters = inspect.signature(architecture.builder).parameters
    # Refused here: a worker would fail on them, or leave them unused.
    refused = [name for name, value in (("n_critic", n_critic),
                                        ("num_residual_blocks", num_residual_blocks))
               if value is not None and name not in parameters]
    if refused:
        raise ValueError(f"{arch} does not take {', '.join(refused)}; leave it None.")
    if baseline:
        from kgan.benchmarks import baselines

        baselines.baseline_class(arch)
    data = problem_defaults(arch, dataset, dataset_b, image_size, batch_size)
    batch_size = data["batch_size"]
    problem = {
        "arch": arch, **data, "split": split, "channels": channels, "steps": steps,
        "latent_dim": latent_dim, "filters": filters, "num_residual_blocks": num_residual_blocks, "n_critic": n_critic,
        "seed": seed,
    }
    # A bad dataset, split or size fails here, with its message, not in a worker;
    # with the minibatches a step takes (n_critic), as the trainers load it.
    default_critic = parameters["n_critic"].default if "n_critic" in parameters else 1
    _pipeline(problem, translation, _is_conditional(architecture), n_critic or default_critic)
    # Thread pools are per process: in-process runs keep the process's own.
    threads = performance.cpu_threads(arch) if isolate else None
    configs = []
    for precision in precisions:
        settings = performance.resolve(arch, precision, steps_per_execution, jit_compile)
        configs.append({"kind": "kgan", **settings, "threads": threads})
    if baseline:
        # jit_compile: the keras.io default, "auto"; rows report what it resolved to.
        configs.append({"kind": _BASELINE, "precision": "float32", "steps_per_execution": 1,
                        "jit_compile": "auto"})
    runner = _Worker if isolate else _InProcess
    runners = []
    try:
        # Workers build and warm up concurrently; timed fits never overlap.
        for config in configs:
            runners.append(runner(problem, config))
        infos = [r.ready() for r in runners]
        times = [[] for _ in configs]
        for _ in range(repeats):
            for index, r in enumerate(runners):
                times[index].append(r.run())
        profiles = [r.profile() for r in runners] if profile else [None] * len(runners)
        floors = [r.floor() for r in runners] if floor else [None] * len(runners)
        memory = [r.close() for r in runners]
    finally:
        for r in runners:
            process = getattr(r, "process", None)
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    rows, raw = [], []
    for config, info, measured, mem, ops, least in zip(
        configs, infos, times, memory, profiles, floors
    ):
        per_step = info["images_per_step"]
        seconds = [wall for wall, _, _ in measured]
        median = statistics.median(seconds)
        cpu = statistics.median(cpu for _, cpu, _ in measured)
        steady = statistics.median(s for _, _, s in measured)
        rows.append({
            "label": _label(config),
            "config": config["kind"],
            "arch": arch,
            "precision": config["precision"],
            "steps_per_execution": config["steps_per_execution"],
            "jit_compile": info["jit_compile"],  # as compiled (the baseline's: Keras's "auto")
            # TensorFlow's thread pools in effect; 0 is its default (as many as cores).
            "cpu_threads": info["threads"],
            "images_per_s": _significant(steps * per_step / median),
            "step_ms": _significant(1000 * median / steps),
            "repeats_images_per_s": [_significant(steps * per_step / t) for t in seconds],
            "steady_images_per_s": _significant(steps * per_step / steady),
            "steady_step_ms": _significant(1000 * steady / steps),
            # CPU time of the configuration's process: on a loaded machine it
            # varies far less than wall time (but does not credit parallelism).
            "cpu_ms_per_step": _significant(1000 * cpu / steps),
            "images_per_cpu_s": _significant(steps * per_step / cpu),
            "peak_rss_mb": round(mem["peak_rss_mb"], 1),
            "rss_start_mb": round(mem["rss_start_mb"], 1),
            "memory_scope": runner.memory_scope,
            "networks_trained": mem["networks_trained"],
            "images_per_step": per_step,
            "batches_per_step": info["batches_per_step"],
            "batch_size": batch_size,
            "steps": steps,
            "repeats": repeats,
            "image_shape": list(info["image_shape"]),
            "filters": filters,
            "latent_dim": None if translation else latent_dim,
            "dataset": problem["dataset"] if not translation
            else f"{problem['dataset']} <-> {problem['dataset_b']}",
            "split": split,
            **({"op_profile": ops} if ops is not None else {}),
            **({"floor": least} if least is not None else {}),
        })
        raw.append((steps * per_step / median, steps * per_step / cpu,
                    steps * per_step / steady))
    index = len(rows) - 1 if baseline else 0
    hardware = performance.hardware_summary()
    for row, (rate, cpu_rate, steady_rate) in zip(rows, raw):
        row["hardware"] = hardware
        # From the unrounded medians: CycleGAN trains a fraction of an image per second.
        row["ratio"] = round(rate / raw[index][0], 3)
        row["cpu_ratio"] = round(cpu_rate / raw[index][1], 3)
        row["steady_ratio"] = round(steady_rate / raw[index][2], 3)
        row["reference"] = rows[index]["label"]
    return rows


def format_table(rows):
    """The rows as an aligned text table (what `kgan bench` prints).

    Example:

    ```python
    from kgan import bench
    rows = bench.run("dcgan", precisions=("float32",), split="train[:256]", steps=2,
                     repeats=1, filters=8, latent_dim=16, isolate=False)
    print(bench.format_table(rows))  # one line per configuration, then a legend
    ```
    """
    lines = [f"{'configuration':34s} {'images/s':>9s} {'step ms':>9s} {'ratio':>6s} "
             f"{'steady':>7s} {'ratio':>6s} {'CPU ms':>9s} {'CPU ratio':>9s} {'peak MB':>8s}"
             "  repeats (images/s)"]
    for row in rows:
        lines.append(
            f"{row['label']:34s} {row['images_per_s']:9.4g} {row['step_ms']:9.1f} "
            f"{row['ratio']:6.2f} {row['steady_images_per_s']:7.4g} {row['steady_ratio']:6.2f} "
            f"{row['cpu_ms_per_step']:9.1f} {row['cpu_ratio']:9.2f} "
            f"{row['peak_rss_mb']:8.0f}  {row['repeats_images_per_s']}"
        )
    lines.append(
        f"medians of {rows[0]['repeats']} interleaved repeats of one {rows[0]['steps']}-step "
        f"fit; ratio: images/s over {rows[0]['reference']}; steady: images/s up to the end of "
        "each fit's last step, without its epoch-end work; CPU ratio: images per CPU-second of "
        f"each configuration's process; peak MB: {rows[0]['memory_scope']}"
    )
    if any(row.get("cpu_threads") and row["cpu_threads"]["intra_op"] == 1 for row in rows):
        lines.append("NxTthr: TensorFlow runs N ops at once with T threads each "
                     "(kgan.performance.cpu_threads); others use TensorFlow's default pools")
    if rows[0].get("hardware"):
        lines.append(f"hardware: {rows[0]['hardware']}")
    return "\n".join(lines)


