"""kgan's training-speed defaults: precision, steps per execution, XLA.

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

import functools
import os

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


def _cpuinfo_field(key, path="/proc/cpuinfo"):
    """The value of the first `key : value` line of Linux `/proc/cpuinfo`, or None."""
    try:
        with open(path) as handle:
            for line in handle:
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _cpu_flags(path="/proc/cpuinfo"):
    return set((_cpuinfo_field("flags", path) or "").split())


def cpu_model(path="/proc/cpuinfo"):
    """The CPU's model name (Linux `/proc/cpuinfo`), else what `platform` knows.

    Example:

    ```python
    kgan.performance.cpu_model()   # e.g. 'AMD EPYC'
    ```
    """
    model = _cpuinfo_field("model name", path)
    if model is not None:
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
    # e.g. 'AMD EPYC, 2 cores, no GPU, fast bfloat16: cpu:avx512_bf16'
    ```
    """
    import tensorflow as tf

    gpus = len(tf.config.list_physical_devices("GPU"))
    gpu_text = f"{gpus} GPU{'s' if gpus > 1 else ''}" if gpus else "no GPU"
    return (f"{cpu_model()}, {os.cpu_count()} cores, {gpu_text}, "
            f"fast bfloat16: {fast_bfloat16() or 'none'}")


@functools.lru_cache(maxsize=None)
def fast_bfloat16():
    """Why this machine computes bfloat16 fast (e.g. `"cpu:amx_bf16"`), or None.

    Looks at the CPU's feature flags and, when TensorFlow sees GPUs, at their
    compute capability. `KGAN_FAST_BF16=0` or `=1` overrides the detection.

    Example:

    ```python
    kgan.performance.fast_bfloat16()   # 'cpu:amx_bf16' on AMX CPUs
    ```
    """
    forced = os.environ.get("KGAN_FAST_BF16")
    if forced is not None:
        return "forced by KGAN_FAST_BF16" if forced.strip() not in ("", "0") else None
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        if capability and tuple(capability) >= (8, 0):
            return f"gpu:compute_capability_{capability[0]}.{capability[1]}"
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
    if jit_compile in (None, AUTO):
        jit_compile = defaults["jit_compile"]
    return {
        "precision": precision,
        "steps_per_execution": int(steps_per_execution),
        "jit_compile": bool(jit_compile),
    }
