"""The fastest a train step could run: its matrix arithmetic at this machine's best rate.

A GAN train step on a CPU is mostly convolutions and matrix products. This
module counts them in the step's traced graph and turns them into two
lower bounds on the step's wall time:

* **kernel floor**: the same ops, each run alone with its own shapes,
  dtype and attributes through TensorFlow's kernels on one thread, their
  times summed and divided by the cores. What the step would take if
  everything else (elementwise ops, batch norm, optimizer, input
  pipeline, scheduling) cost nothing and the ops spread perfectly over
  the cores.
* **arithmetic floor**: the step's FLOPs in those ops at the machine's
  peak rate for the step's compute dtype: the better of a large square
  matmul on all cores and one thread's matmul rate times the cores. No
  implementation of the same arithmetic in that dtype runs faster, unless
  it beats TensorFlow's matmul.

Both count only the `Conv2D`, `Conv2DBackpropInput`, `Conv2DBackpropFilter`,
`MatMul` and `BatchMatMul` ops the step's results depend on (TensorFlow
prunes the rest before running), so anything left out makes the floors
lower, never higher: they stay bounds. Op times are the best of several
rounds in which the ops take turns (other processes on a shared machine
only add time). Dividing the keras.io baseline's measured step time by a
configuration's floor gives the largest ratio any implementation of that
arithmetic, on those kernels or at that peak, could reach against it here.

`kgan bench ARCH --baseline --floor` reports both floors for every
configuration beside its measured step. The command behind the README's
figures:

```sh
TF_CPP_MIN_LOG_LEVEL=2 kgan bench dcgan --baseline --floor --batch-size 64 --steps 78 --repeats 5
```

Example:

```python
from kgan.benchmarks import compute_floor
report = compute_floor.measure(model, batch)  # a compiled kgan model and one batch
report["flops_per_step"], report["arithmetic_floor_ms"], report["kernel_floor_ms"]
```
"""

import collections
import json
import os
import subprocess
import sys
import time

_PREFIX = "KGAN_FLOOR "

#: Op types counted: the step's matrix arithmetic.
MATRIX_OPS = ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter", "MatMul",
              "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3")
_CALLS = ("PartitionedCall", "StatefulPartitionedCall")
_BRANCHES = ("If", "StatelessIf")
_LOOPS = ("While", "StatelessWhile")


def _shape(tensor, op):
    shape = tensor.shape
    if shape.rank is None or None in shape.as_list():
        raise ValueError(
            f"{op.type} op {op.name!r} has an unknown shape {shape}: trace the step on a "
            "batch with a static shape (e.g. a dataset with drop_remainder=True)."
        )
    return [int(d) for d in shape.as_list()]


def _describe(op):
    """`{type, dtype, inputs, attrs, flops}` of one matrix op, or None for other ops."""
    import numpy as np

    kind = op.type
    if kind not in MATRIX_OPS:
        return None
    attrs = {}
    if kind.startswith("Conv2D"):
        for name in ("strides", "padding", "explicit_paddings", "data_format", "dilations"):
            value = op.get_attr(name)
            attrs[name] = value.decode() if isinstance(value, bytes) else list(value)
        if attrs["data_format"] != "NHWC":
            raise ValueError(f"{kind} op {op.name!r} is {attrs['data_format']}; only NHWC is counted.")
    if kind == "Conv2D":
        image, kernel = _shape(op.inputs[0], op), _shape(op.inputs[1], op)
        out = _shape(op.outputs[0], op)
        inputs = {"input": image, "filter": kernel}
        flops = 2 * np.prod(out) * np.prod(kernel[:3])
    elif kind in ("Conv2DBackpropInput", "Conv2DBackpropFilter"):
        # Their `*_sizes` argument is the shape of their output.
        sizes, grad = _shape(op.outputs[0], op), _shape(op.inputs[2], op)
        if kind == "Conv2DBackpropInput":
            kernel = _shape(op.inputs[1], op)
            inputs = {"input_sizes": sizes, "filter": kernel, "out_backprop": grad}
        else:
            kernel = sizes
            inputs = {"input": _shape(op.inputs[0], op), "filter_sizes": sizes,
                      "out_backprop": grad}
        flops = 2 * np.prod(grad) * np.prod(kernel[:3])
    elif kind == "MatMul":
        a, b = _shape(op.inputs[0], op), _shape(op.inputs[1], op)
        attrs = {"transpose_a": op.get_attr("transpose_a"), "transpose_b": op.get_attr("transpose_b")}
        inputs = {"a": a, "b": b}
        rows, inner = (a[1], a[0]) if attrs["transpose_a"] else (a[0], a[1])
        cols = b[0] if attrs["transpose_b"] else b[1]
        flops = 2 * rows * inner * cols
    else:  # BatchMatMul*
        x, y = _shape(op.inputs[0], op), _shape(op.inputs[1], op)
        attrs = {"adj_x": op.get_attr("adj_x"), "adj_y": op.get_attr("adj_y")}
        inputs = {"x": x, "y": y}
        inner = x[-2] if attrs["adj_x"] else x[-1]
        flops = 2 * np.prod(_shape(op.outputs[0], op)) * inner
    return {"type": kind, "dtype": op.outputs[0].dtype.name, "inputs": inputs, "attrs": attrs,
            "flops": int(flops)}


def _live_ops(graph):
    """The ops of `graph` that its outputs or its stateful ops depend on, in graph order.

    A traced step holds gradients nobody uses (e.g. the discriminator's
    kernel gradients in the generator's update), which TensorFlow prunes
    before running; counting them would overstate the step's work.
    """
    roots = [t.op for t in graph.outputs] + list(getattr(graph, "control_outputs", []))
    roots += [op for op in graph.get_operations() if op.op_def is not None and op.op_def.is_stateful]
    live, stack = set(), list(roots)
    while stack:
        op = stack.pop()
        if op.name in live:
            continue
        live.add(op.name)
        stack.extend(t.op for t in op.inputs)
        stack.extend(op.control_inputs)
    return [op for op in graph.get_operations() if op.name in live]


def _graph_ops(graph):
    """The live matrix ops of `graph` and the functions it calls, as `_describe` dicts.

    Of an `If`, the branch with fewer FLOPs is counted (a floor must not
    count work the step may skip). A `While` loop raises ValueError: its trip
    count is not in the graph.
    """
    found = []
    for op in _live_ops(graph):
        if op.type in _LOOPS:
            raise ValueError(
                f"The train step has a loop ({op.type} {op.name!r}); its trip count is unknown, "
                "so its arithmetic cannot be counted. Unroll it in Python (as kgan's "
                "n_critic loop is)."
            )
        if op.type in _CALLS:
            found += _graph_ops(_function_graph(graph, op.get_attr("f").name))
        elif op.type in _BRANCHES:
            branches = [_graph_ops(_function_graph(graph, op.get_attr(b).name))
                        for b in ("then_branch", "else_branch")]
            found += min(branches, key=lambda ops: sum(o["flops"] for o in ops))
        else:
            described = _describe(op)
            if described is not None:
                found.append(described)
    return found


def _function_graph(graph, name):
    while graph is not None:
        function = graph._functions.get(name)  # the graph's own function library
        if function is not None:
            return function.graph
        graph = getattr(graph, "outer_graph", None)
    raise ValueError(f"The train step calls function {name!r}, which its graph does not hold.")


def matrix_ops(model, batch, precision=None):
    """The convolutions and matmuls of one `model.train_step(batch)`, grouped.

    Traces the step into a graph (nothing runs, no weight changes) and
    counts its matrix ops, identical ones (same type, dtype, shapes and
    attributes) together.

    Args:
        model: a compiled Keras model (its optimizer built, e.g. after one
            `fit` step).
        batch: one batch as `fit` passes it to `train_step`, static shapes.
        precision: Keras dtype policy to trace under (the one the model was
            built with); default the current global policy.

    Returns:
        A list, most FLOPs first, of `{"type", "dtype", "inputs", "attrs",
        "flops", "count"}` (`flops` per op, `count` per step).

    Example:

    ```python
    ops = compute_floor.matrix_ops(gan, next(iter(dataset)), "mixed_bfloat16")
    ops[0]["type"], ops[0]["count"]  # e.g. ('Conv2DBackpropInput', 4)
    ```
    """
    import keras
    import tensorflow as tf

    previous = keras.mixed_precision.global_policy()
    if precision is not None:
        keras.mixed_precision.set_global_policy(precision)
    try:
        graph = tf.function(model.train_step).get_concrete_function(batch).graph
    finally:
        keras.mixed_precision.set_global_policy(previous)
    groups = collections.OrderedDict()
    for op in _graph_ops(graph):
        key = repr((op["type"], op["dtype"], op["inputs"], op["attrs"]))
        if key in groups:
            groups[key]["count"] += 1
        else:
            groups[key] = {**op, "count": 1}
    return sorted(groups.values(), key=lambda op: -op["flops"] * op["count"])


def _loop_seconds(function, args, calls):
    """Mean seconds per call of `calls` calls of `function`."""
    start = time.perf_counter()
    for _ in range(calls):
        result = function(*args)
    result.numpy()
    return (time.perf_counter() - start) / calls


def _random(shape, dtype):
    import tensorflow as tf

    return tf.cast(tf.random.stateless_normal(shape, seed=[0, 1]), dtype)


def _runnable(op):
    """`(tf.function, args)` running one described op alone."""
    import tensorflow as tf

    dtype = tf.as_dtype(op["dtype"])
    shapes, attrs, kind = op["inputs"], op["attrs"], op["type"]
    if kind == "Conv2D":
        args = (_random(shapes["input"], dtype), _random(shapes["filter"], dtype))
        run = lambda x, w: tf.raw_ops.Conv2D(input=x, filter=w, **attrs)  # noqa: E731
    elif kind == "Conv2DBackpropInput":
        args = (_random(shapes["filter"], dtype), _random(shapes["out_backprop"], dtype))
        sizes = shapes["input_sizes"]
        run = lambda w, g: tf.raw_ops.Conv2DBackpropInput(  # noqa: E731
            input_sizes=sizes, filter=w, out_backprop=g, **attrs)
    elif kind == "Conv2DBackpropFilter":
        args = (_random(shapes["input"], dtype), _random(shapes["out_backprop"], dtype))
        sizes = shapes["filter_sizes"]
        run = lambda x, g: tf.raw_ops.Conv2DBackpropFilter(  # noqa: E731
            input=x, filter_sizes=sizes, out_backprop=g, **attrs)
    elif kind == "MatMul":
        args = (_random(shapes["a"], dtype), _random(shapes["b"], dtype))
        run = lambda a, b: tf.raw_ops.MatMul(a=a, b=b, **attrs)  # noqa: E731
    else:
        args = (_random(shapes["x"], dtype), _random(shapes["y"], dtype))
        run = lambda x, y: tf.raw_ops.BatchMatMulV2(x=x, y=y, **attrs)  # noqa: E731
    return tf.function(run, autograph=False), args


def _peak_runnable(dtype, size):
    import tensorflow as tf

    a, b = _random([size, size], dtype), _random([size, size], dtype)
    return tf.function(tf.linalg.matmul, autograph=False), (a, b)


def time_ops(ops, calls=10, repeats=5, peak_dtype=None, peak_size=2048):
    """Seconds per call of each op of `matrix_ops`, run alone in this process.

    Each op runs in its own `tf.function` on random inputs of its shapes.
    The ops take turns: `repeats` rounds, each timing `calls` calls of
    every op, so a busy stretch on a shared machine hits them alike; each
    op keeps its least time per call over the rounds (a floor wants the
    op's own speed; other processes only ever add time), minus the least
    time of calling a function that returns its input, at least 0.

    Args:
        ops: from `matrix_ops` (each has `type`, `dtype`, `inputs`, `attrs`).
        calls, repeats: timing loop (see above).
        peak_dtype: also time a `peak_size`-square matmul in this dtype in
            the same rounds.

    Returns:
        `(seconds, peak)`: seconds per call of each op, in order, and the
        matmul's FLOP/s (None without `peak_dtype`).

    Example:

    ```python
    seconds, _ = compute_floor.time_ops(compute_floor.matrix_ops(gan, batch))
    ```
    """
    import tensorflow as tf

    # (function, args, calls per loop): the ops, an empty call, the peak matmul.
    timed = [_runnable(op) + (calls,) for op in ops]
    empty_args = timed[0][1] if ops else (tf.zeros([1]), tf.zeros([1]))
    timed.append((tf.function(lambda x, y: x, autograph=False), empty_args, calls))
    if peak_dtype is not None:
        timed.append(_peak_runnable(peak_dtype, peak_size) + (3,))
    for function, args, _ in timed:
        function(*args)  # trace and warm up
    best = [float("inf")] * len(timed)
    for _ in range(repeats):
        for index, (function, args, loops) in enumerate(timed):
            best[index] = min(best[index], _loop_seconds(function, args, loops))
    overhead = best[len(ops)]
    seconds = [max(t - overhead, 0.0) for t in best[: len(ops)]]
    peak = 2 * peak_size**3 / best[-1] if peak_dtype is not None else None
    return seconds, peak


def time_ops_single_threaded(ops, calls=10, repeats=5, peak_dtype=None):
    """`time_ops` in a child process whose TensorFlow uses one thread.

    Returns `(seconds, peak)` as `time_ops`. One thread per op, divided by
    the cores, is the least time the ops could take together on this
    machine however they were scheduled: two ops at once on one core each,
    or one op over all cores, scale at best linearly.

    Raises:
        RuntimeError: if the child process fails (its stderr is included).
    """
    from kgan.bench import child_env

    request = {"ops": ops, "calls": calls, "repeats": repeats, "peak_dtype": peak_dtype}
    done = subprocess.run(
        [sys.executable, "-m", "kgan.benchmarks.compute_floor", "--time-ops-worker"],
        input=json.dumps(request), capture_output=True, text=True, env=child_env(),
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith(_PREFIX)]
    if done.returncode or not lines:
        raise RuntimeError(
            f"compute_floor's timing process failed (exit {done.returncode}):\n"
            f"{done.stderr[-3000:]}"
        )
    reply = json.loads(lines[-1][len(_PREFIX):])
    return reply["seconds"], reply["peak"]


def _time_ops_worker():
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    request = json.loads(sys.stdin.read())
    seconds, peak = time_ops(request["ops"], request["calls"], request["repeats"],
                             request["peak_dtype"])
    print(_PREFIX + json.dumps({"seconds": seconds, "peak": peak}), flush=True)


def cores():
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def measure(model, batch, precision=None, calls=10, repeats=5):
    """Both floors of `model`'s train step on `batch` (see the module docstring).

    Args:
        model: a compiled Keras model whose optimizer is built.
        batch: one batch as `train_step` receives it (static shapes).
        precision: the dtype policy the model was built under.
        calls, repeats: timing loop of each op (`time_ops`).

    Returns:
        `{"flops_per_step", "compute_dtype", "cores", "peak_gflops",
        "arithmetic_floor_ms", "kernel_floor_ms", "ops"}`. `ops` are from
        `matrix_ops`, each with `ms`, its best single-threaded time. The
        peak is in the dtype of most of the step's FLOPs: the better of a
        large matmul on all cores and one thread's rate times the cores.

    Raises:
        ValueError: if the step has no convolution or matmul, a loop, or
            unknown shapes.
        RuntimeError: if the timing process fails.

    Example:

    ```python
    report = compute_floor.measure(gan, next(iter(dataset)), "mixed_bfloat16")
    report["kernel_floor_ms"]
    ```
    """
    from kgan.bench import _significant

    counted = matrix_ops(model, batch, precision)
    if not counted:
        raise ValueError("The train step has no convolution or matmul to count.")
    by_dtype = collections.Counter()
    for op in counted:
        by_dtype[op["dtype"]] += op["flops"] * op["count"]
    dtype = by_dtype.most_common(1)[0][0]
    flops = sum(by_dtype.values())
    _, peak_all_cores = time_ops([], repeats=repeats, peak_dtype=dtype)
    seconds, peak_one_thread = time_ops_single_threaded(counted, calls, repeats, dtype)
    n = cores()
    peak = max(peak_all_cores, peak_one_thread * n)
    return {
        "flops_per_step": int(flops),
        "compute_dtype": dtype,
        "cores": n,
        # Significant digits, not decimals: a tiny network's floors are
        # microseconds, which 2 decimals of a millisecond would make 0.
        "peak_gflops": _significant(peak / 1e9),
        "arithmetic_floor_ms": _significant(1000 * flops / peak),
        "kernel_floor_ms": _significant(
            1000 * sum(t * op["count"] for t, op in zip(seconds, counted)) / n
        ),
        "ops": [{**op, "ms": _significant(1000 * t)} for op, t in zip(counted, seconds)],
    }


def format_table(rows):
    """Floors of `kgan bench --floor` rows beside their measured steady step, as text.

    With a baseline row, each floor is also given as the largest ratio to
    the baseline's measured step it allows.

    Example:

    ```python
    print(compute_floor.format_table(bench.run("dcgan", baseline=True, floor=True)))
    ```
    """
    baseline = next((r for r in rows if r["config"] == "baseline"), None)
    lines = [f"{'configuration':34s} {'GFLOP/step':>10s} {'peak GFLOP/s':>12s} "
             f"{'step ms':>8s} {'kernel floor':>12s} {'arith. floor':>12s}"
             + ("  best ratio to baseline (kernel, arith.)" if baseline else "")]
    for row in rows:
        floor = row["floor"]
        line = (f"{row['label']:34s} {floor['flops_per_step'] / 1e9:10.2f} "
                f"{floor['peak_gflops']:9.0f} {floor['compute_dtype'][:2]:>2s} "
                f"{row['steady_step_ms']:8.1f} {floor['kernel_floor_ms']:12.1f} "
                f"{floor['arithmetic_floor_ms']:12.1f}")
        if baseline:
            step = baseline["steady_step_ms"]
            line += "  " + ", ".join(
                f"{step / least:.2f}x" if least > 0 else "n/a"  # a floor below the timer's grain
                for least in (floor["kernel_floor_ms"], floor["arithmetic_floor_ms"]))
        lines.append(line)
    lines.append(
        "step ms: measured steady step; kernel floor: the step's convolutions and matmuls, "
        "each timed alone on one thread, summed and divided by the cores; arith. floor: "
        "their FLOPs at the peak matmul rate of the step's compute dtype (bf: bfloat16, "
        "fl: float32). Nothing else in the step is counted."
    )
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:] == ["--time-ops-worker"]:
        _time_ops_worker()
    else:
        sys.exit("usage: kgan bench ARCH --floor (this module's entry point is its timing worker)")
