"""kgan's training-speed defaults: precision, steps per execution, CPU threads, XLA.

`kgan train` and `kgan bench` resolve their `auto` settings here, so the
benchmark measures exactly what a user gets. None of them changes the
training algorithm: the same updates on the same batches, in the same order.
Mixed precision changes the arithmetic only: the networks compute in 16 bits
while losses, logits, generated images and the optimizers' variables stay
float32 (`kgan.models.GAN`).

* **precision**: `mixed_bfloat16` where the hardware computes bfloat16 fast
  (a CPU with AMX or AVX512-BF16, whose oneDNN kernels TensorFlow uses; a
  GPU of compute capability 8.0 or more), else `float32`. Opt out with an
  explicit `precision="float32"` (`--precision float32`). Measured against
  float32 kgan steps: 1.64x for the DCGAN on an Intel CPU with AMX, 1.29-1.52x
  for every architecture on an AMD EPYC with AVX512-BF16 and no AMX.
* **steps_per_execution**: several train steps per call of the compiled
  function cut Python and `fit` overhead per step; that matters for small
  networks, not for CycleGAN's seconds-long steps. Callbacks' per-batch
  hooks then run every N steps (epoch-level ones, `BackupAndRestore`'s
  default saving, EMA and learning-rate schedules are unaffected).
* **CPU threads** (`cpu_threads`, applied by `set_threads` before
  TensorFlow runs): on a CPU alone, one thread per op and as many ops at
  once as cores, instead of TensorFlow's default of splitting every op
  over all cores; a GAN step has many independent ops too small to split
  well (`ONE_THREAD_PER_OP` has the figures). Set `TF_NUM_INTRAOP_THREADS` or `TF_NUM_INTEROP_THREADS` to
  opt out (kgan then keeps TensorFlow's settings).
* **jit_compile** (XLA): enabled only for architectures where it measured
  faster on this project's CPUs; on CPU it was slower for all of them (see
  `ARCHITECTURE_DEFAULTS`). Pass `jit_compile=True` (`--jit-compile`) to
  try it elsewhere, e.g. on a GPU.

Example:

```python
from kgan import performance
performance.resolve("dcgan")
# {'precision': 'mixed_bfloat16', 'steps_per_execution': 10, 'jit_compile': False}
performance.resolve("dcgan", precision="float32")   # the opt-out
```
"""

import contextlib
import functools
import numbers
import os
import warnings

AUTO = "auto"
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")

#: CPU feature flags (Linux `/proc/cpuinfo`) with fast bfloat16 arithmetic.
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")

#: Per architecture, the fastest safe settings measured with `kgan bench` on
#: this project's machine (2 shared cores of an AMX CPU, TensorFlow 2.21, CPU
#: time per step, interleaved repeats). XLA is off everywhere: on CPU it
#: compiles convolutions without oneDNN and was 2-5x slower (DCGAN
#: mixed_bfloat16 spe=10: 824 vs 177 wall ms/step; WGAN 522 vs 224 and WGAN-GP
#: 954 vs 502 CPU ms/step). Ten steps per execution saved 2-10% over one (DCGAN
#: 104 vs 106, WGAN 224 vs 247, WGAN-GP 502 vs 532 CPU ms/step); 50 was no
#: better than 10. CycleGAN's steps take seconds, so one is enough.
ARCHITECTURE_DEFAULTS = {
    "dcgan": {"steps_per_execution": 10, "jit_compile": False},
    "wgan": {"steps_per_execution": 10, "jit_compile": False},
    "wgan_gp": {"steps_per_execution": 10, "jit_compile": False},
    "cyclegan": {"steps_per_execution": 1, "jit_compile": False},
    # DCGAN's networks with a label input: DCGAN's settings.
    "conditional_gan": {"steps_per_execution": 10, "jit_compile": False},
}

#: For architectures not in the table (new ones until they are measured).
FALLBACK_DEFAULTS = {"steps_per_execution": 1, "jit_compile": False}

#: Architectures whose CPU training ran faster with TensorFlow's thread
#: pools set to one thread per op and as many ops at once as cores
#: (intra-op 1, inter-op = cores) than with TensorFlow's default, where every
#: op splits over all cores: their steps have many independent ops (each
#: layer's kernel and input gradients; WGAN-GP's penalty doubles them) too
#: small to split well. AMD EPYC, 2 cores, bf16, one process per run, the two
#: settings alternated, median steady step ms of 3 rounds, default -> one
#: thread per op: WGAN-GP 244.6 -> 230.2 and 259.0 -> 222.1, WGAN 132.1 ->
#: 118.9 (`kgan bench wgan --baseline` runs), CycleGAN (128 px) 1266 -> 1178. Not the
#: DCGAN (39.9 -> 41.2 in `kgan bench dcgan --baseline` runs, 43.0 -> 43.0 in
#: another A/B) nor the conditional GAN (46.6 -> 47.2), although their CPU
#: time fell (74.2 -> 68.7, 86.7 -> 80.6 ms).
ONE_THREAD_PER_OP = frozenset({"wgan", "wgan_gp", "cyclegan"})

#: TensorFlow's own variables for its thread pools; either set means the
#: user chose, and kgan keeps TensorFlow's settings.
THREAD_ENV_VARS = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


def _usable_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cpu_threads(arch, mirrored=False):
    """TensorFlow thread pool sizes kgan trains `arch` with here, or None for TensorFlow's.

    `kgan train` and `kgan bench` apply them with `set_threads`.

    One thread per op and as many ops at once as cores, for architectures in
    `ONE_THREAD_PER_OP`, when training runs on the CPU alone: no GPU or TPU
    visible, no `MirroredStrategy` (whose replicas already run side by side)
    and neither of `THREAD_ENV_VARS` set (setting either one is the opt-out).

    Returns:
        `{"intra_op": 1, "inter_op": cores}` or None.

    Example:

    ```python
    kgan.performance.cpu_threads("wgan_gp")  # {'intra_op': 1, 'inter_op': 2} on 2 CPU cores
    kgan.performance.cpu_threads("wgan_gp", mirrored=True)  # None: TensorFlow's defaults
    ```
    """
    if arch not in ONE_THREAD_PER_OP or mirrored:
        return None
    if any(os.environ.get(name) for name in THREAD_ENV_VARS):
        return None
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU") or tf.config.list_physical_devices("TPU"):
        return None
    cores = _usable_cores()
    return {"intra_op": 1, "inter_op": cores} if cores > 1 else None


def set_threads(threads, warn=True):
    """Set TensorFlow's CPU thread pools, e.g. to `cpu_threads(arch)`; call before TensorFlow runs.

    TensorFlow fixes its thread pools when it first runs an op, so this must
    come first in the program. If TensorFlow already runs with other
    settings, they are kept (with a warning if `warn`).

    Args:
        threads: `{"intra_op": n, "inter_op": m}`, or None to change nothing.
        warn: warn when the settings cannot be applied any more.

    Raises:
        ValueError: `threads` is not such a dict of whole numbers >= 0.

    Returns:
        The settings in effect, `{"intra_op": n, "inter_op": m}`, including
        those set by `THREAD_ENV_VARS`; 0 is TensorFlow's default (as many as
        cores).

    Example:

    ```python
    from kgan import performance
    performance.set_threads(performance.cpu_threads("wgan_gp"))  # first, then build and fit
    ```
    """
    import tensorflow as tf

    if threads is not None and not (
        isinstance(threads, dict) and set(threads) == {"intra_op", "inter_op"}
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in threads.values())
    ):
        raise ValueError(
            "threads must be {'intra_op': n, 'inter_op': m} with whole numbers n, m >= 0 "
            f"(0: TensorFlow's default), or None; got {threads!r}."
        )
    threading = tf.config.threading
    # Setting what it has fails too once TensorFlow runs (with 0, "default").
    if threads is not None and dict(threads) != _threads_in_effect():
        try:
            threading.set_intra_op_parallelism_threads(int(threads["intra_op"]))
            threading.set_inter_op_parallelism_threads(int(threads["inter_op"]))
        except RuntimeError:  # TensorFlow is initialized; it keeps what it has
            if warn:
                warnings.warn(
                    f"TensorFlow already runs, so the CPU threads {threads} were not applied: "
                    "call kgan.performance.set_threads before any TensorFlow op.", stacklevel=2,
                )
    return _threads_in_effect()


def runs_ops_side_by_side():
    """Whether TensorFlow runs one thread per op, several ops at once (see `cpu_threads`).

    Then one long op that nothing else can run beside leaves the other cores
    idle, and kgan splits such ops into independent halves where that
    computes the same (`kgan.layers._kernel_grad_by_forward_conv`).

    Example:

    ```python
    kgan.performance.set_threads(kgan.performance.cpu_threads("wgan_gp"))
    kgan.performance.runs_ops_side_by_side()  # True on a CPU with 2+ cores
    ```
    """
    threads = _threads_in_effect()
    # inter-op 0 is TensorFlow's default: as many ops at once as usable cores.
    side_by_side = threads["inter_op"] if threads["inter_op"] else _usable_cores()
    return threads["intra_op"] == 1 and side_by_side > 1


def _threads_in_effect():
    """TensorFlow's configured pools; its variables count where nothing was configured."""
    import tensorflow as tf

    threading = tf.config.threading
    effect = {"intra_op": threading.get_intra_op_parallelism_threads(),
              "inter_op": threading.get_inter_op_parallelism_threads()}
    for key, name in zip(("intra_op", "inter_op"), THREAD_ENV_VARS):
        value = os.environ.get(name, "").strip()
        if effect[key] == 0 and value.isdigit():
            effect[key] = int(value)
    return effect


def _cpuinfo(path="/proc/cpuinfo"):
    """`{key: value}` of the first processor's `key : value` lines of Linux `/proc/cpuinfo`.

    Keys match whole ("model" is not "model name"); empty where the file is missing.
    """
    fields = {}
    try:
        with open(path) as handle:
            for line in handle:
                key, colon, value = line.partition(":")
                if colon:
                    fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def _cpu_flags(path="/proc/cpuinfo"):
    return set(_cpuinfo(path).get("flags", "").split())


def cpu_model(path="/proc/cpuinfo"):
    """The CPU's model name (Linux `/proc/cpuinfo`), else what `platform` knows.

    Where `/proc/cpuinfo` gives the x86 family and model numbers, they follow
    the name: a virtual machine's name can be as bare as "AMD EPYC", which
    this project's machine reported both before and after the same DCGAN
    step went from 40-45 ms to 22-24 ms.

    Example:

    ```python
    kgan.performance.cpu_model()   # e.g. 'AMD EPYC (family 26, model 2)'
    ```
    """
    fields = _cpuinfo(path)
    model = fields.get("model name")
    if model is not None:
        family, number = fields.get("cpu family", ""), fields.get("model", "")
        if family.isdigit() and number.isdigit():
            return f"{model} (family {family}, model {number})"
        return model
    import platform

    return platform.processor() or platform.machine()


def hardware_summary():
    """One line naming what kgan's speed figures depend on most.

    The CPU model and cores, the GPUs TensorFlow sees, and `fast_bfloat16()`:
    the same DCGAN benchmark gave kgan 1.90-2.00x the baseline on an Intel
    CPU with AMX and 1.42-1.45x on an AMD EPYC with only AVX512-BF16 (1.52-1.64x
    there with the later forward kernel gradients, 1.67x with the image-side
    matmuls; see the README's Training speed).

    Example:

    ```python
    kgan.performance.hardware_summary()
    # e.g. 'AMD EPYC (family 26, model 2), 2 cores, no GPU, fast bfloat16: cpu:avx512_bf16'
    ```
    """
    import tensorflow as tf

    gpus = len(tf.config.list_physical_devices("GPU"))
    gpu_text = f"{gpus} GPU{'s' if gpus > 1 else ''}" if gpus else "no GPU"
    return (f"{cpu_model()}, {os.cpu_count()} cores, {gpu_text}, "
            f"fast bfloat16: {fast_bfloat16() or 'none'}")


def fast_bfloat16():
    """Why this machine computes bfloat16 fast (e.g. `"cpu:amx_bf16"`), or None.

    When TensorFlow sees GPUs, training runs on them, so only their compute
    capability counts (8.0 or newer); otherwise the CPU's feature flags do.
    `KGAN_FAST_BF16=0` or `=1` overrides the detection, read at every call
    (the detection itself runs once per process).

    Example:

    ```python
    kgan.performance.fast_bfloat16()   # 'cpu:amx_bf16' on AMX CPUs
    ```
    """
    forced = os.environ.get("KGAN_FAST_BF16")
    if forced is not None:
        return "forced by KGAN_FAST_BF16" if forced.strip() not in ("", "0") else None
    return _detected_fast_bfloat16()


@functools.lru_cache(maxsize=None)
def _detected_fast_bfloat16():
    """`fast_bfloat16()` without the override, cached: the hardware does not change."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        if capability and tuple(capability) >= (8, 0):
            return f"gpu:compute_capability_{capability[0]}.{capability[1]}"
    if gpus:
        # The GPUs train; an older one emulates bfloat16, whatever the CPU has.
        return None
    flags = _cpu_flags()
    for flag in BF16_CPU_FLAGS:
        if flag in flags:
            return f"cpu:{flag}"
    return None


def default_precision():
    """`"mixed_bfloat16"` where `fast_bfloat16()` finds support, else `"float32"`.

    Example:

    ```python
    kgan.performance.default_precision()  # 'mixed_bfloat16' on AMX CPUs, else 'float32'
    ```
    """
    return "mixed_bfloat16" if fast_bfloat16() else "float32"


def resolve_precision(precision=AUTO):
    """`precision`, with `"auto"` (or None) replaced by `default_precision()`.

    Raises:
        ValueError: for a name that is not a Keras mixed-precision policy kgan supports.

    Example:

    ```python
    kgan.performance.resolve_precision("auto")     # default_precision()
    kgan.performance.resolve_precision("float32")  # 'float32', the opt-out
    ```
    """
    if precision in (None, AUTO):
        return default_precision()
    if precision not in PRECISIONS:
        raise ValueError(
            f"unknown precision {precision!r}; choose from auto, {', '.join(PRECISIONS)}"
        )
    return precision


@contextlib.contextmanager
def global_precision(precision):
    """Within the block, Keras's global dtype policy is `precision`; restored after.

    Networks take the policy when built: kgan builds a model to train under
    the training precision, and measuring networks (FID's InceptionV3) under
    float32 whatever the caller's.

    Example:

    ```python
    with kgan.performance.global_precision("mixed_bfloat16"):
        gan = kgan.DCGAN.from_image_shape((28, 28, 1))  # computes in bfloat16
    ```
    """
    import keras

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def resolve(arch, precision=AUTO, steps_per_execution=AUTO, jit_compile=AUTO, mirrored=False):
    """kgan's training settings for `arch`, each `"auto"` (or None) replaced by the default.

    Args:
        arch: architecture name, e.g. `"dcgan"`.
        precision: `"auto"` or a policy name (`"float32"` opts out of bf16).
        steps_per_execution: `"auto"` or a positive int.
        jit_compile: `"auto"` or a bool.
        mirrored: training will run under a `tf.distribute.MirroredStrategy`.
            `"auto"` steps per execution are then 1: Keras 3 cannot run more
            there with several replicas (keras-team/keras#19246), and
            `GAN.compile` refuses an explicit value above 1.

    Returns:
        `{"precision": str, "steps_per_execution": int, "jit_compile": bool}`.

    Raises:
        ValueError: an unknown precision, steps per execution that are not a
            positive int, or a `jit_compile` that is not a bool.

    Example:

    ```python
    settings = kgan.performance.resolve("wgan_gp")
    gan.compile(steps_per_execution=settings["steps_per_execution"],
                jit_compile=settings["jit_compile"])
    ```
    """
    defaults = ARCHITECTURE_DEFAULTS.get(arch, FALLBACK_DEFAULTS)
    precision = resolve_precision(precision)
    if steps_per_execution in (None, AUTO):
        steps_per_execution = 1 if mirrored else defaults["steps_per_execution"]
    elif (isinstance(steps_per_execution, bool)
          or not isinstance(steps_per_execution, numbers.Integral) or steps_per_execution < 1):
        raise ValueError(
            f"steps_per_execution must be 'auto' or a positive int, got {steps_per_execution!r}"
        )
    if jit_compile in (None, AUTO):
        jit_compile = defaults["jit_compile"]
    elif not isinstance(jit_compile, bool):
        raise ValueError(
            f"jit_compile must be 'auto', True or False, got {jit_compile!r} "
            "(a string such as 'false' is not a bool)"
        )
    return {
        "precision": precision,
        "steps_per_execution": int(steps_per_execution),
        "jit_compile": bool(jit_compile),
    }
