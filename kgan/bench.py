"""Training-throughput benchmark: images/s of `fit` per precision, side by side.

Several configurations are timed in one process, their repeats interleaved
(A, B, A, B, ...) so that load from other processes on a shared machine hits
them alike; the figure reported is the median over repeats, after a warm-up
run that traces and compiles the step.

Example:

```python
from kgan import bench
rows = bench.run("dcgan", precisions=["float32", "mixed_bfloat16"], steps=50)
```
"""

import statistics
import time

import keras


def _build(arch, precision, image_shape, latent_dim, filters, steps_per_execution, jit_compile):
    from kgan import zoo

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        model = zoo.build(
            arch, image_shape=image_shape, latent_dim=latent_dim, filters=filters, seed=0
        )
        model.compile(steps_per_execution=steps_per_execution, jit_compile=jit_compile)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    return model


def run(
    arch,
    precisions=("float32", "mixed_bfloat16"),
    dataset="mnist_5k",
    batch_size=64,
    steps=50,
    repeats=5,
    latent_dim=100,
    filters=64,
    steps_per_execution=1,
    jit_compile=False,
):
    """Time `fit` for each precision; returns one dict per precision.

    Each dict has `precision`, `images_per_s` (median real images consumed
    per second: `batch_size * batches_per_step` per step), `step_ms`
    (median), `repeats_images_per_s` (all repeats) and the settings used.
    """
    from kgan import data

    if steps < 1 or repeats < 1:
        raise ValueError(f"steps and repeats must be >= 1, got {steps}, {repeats}.")
    pipeline = data.load(dataset, batch_size=batch_size, seed=0).repeat()
    image_shape = tuple(int(d) for d in pipeline.element_spec.shape[1:])
    models = {
        p: _build(arch, p, image_shape, latent_dim, filters, steps_per_execution, jit_compile)
        for p in precisions
    }
    # WGANs take n_critic fresh minibatches per step; images/s counts real
    # images consumed, so it compares training speed across architectures.
    per_step = next(iter(models.values())).batches_per_step
    if per_step > 1:
        pipeline = data.load(dataset, batch_size=batch_size, seed=0, repeat_batches=per_step).repeat()
    chunk = pipeline.take(steps)
    for model in models.values():  # warm-up: tracing and first-step allocation
        model.fit(chunk, epochs=1, verbose=0)
    times = {p: [] for p in precisions}
    for _ in range(repeats):
        for precision, model in models.items():
            start = time.perf_counter()
            model.fit(chunk, epochs=1, verbose=0)
            times[precision].append(time.perf_counter() - start)
    rows = []
    for precision in precisions:
        median = statistics.median(times[precision])
        rows.append(
            {
                "arch": arch,
                "precision": precision,
                "images_per_s": round(steps * batch_size * per_step / median, 1),
                "step_ms": round(1000 * median / steps, 2),
                "repeats_images_per_s": [
                    round(steps * batch_size * per_step / t, 1) for t in times[precision]
                ],
                "batches_per_step": per_step,
                "batch_size": batch_size,
                "steps": steps,
                "steps_per_execution": steps_per_execution,
                "jit_compile": jit_compile,
                "image_shape": list(image_shape),
                "filters": filters,
                "latent_dim": latent_dim,
            }
        )
    return rows
