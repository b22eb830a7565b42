"""Where a train step's CPU time goes: TensorFlow profiler time per op type.

`kgan bench ARCH --profile` runs one extra, untimed `fit` of each
configuration under `tf.profiler` and reports, per op type (Conv2D
filter gradient, Cast, LeakyRelu, ...), its self time per train step,
its count per step and its share of the step's op time. Idle time of the
profiler's threads is left out, so the shares add up to the time the ops
ran, summed over threads (comparable to CPU time, not wall time).

It reads the profile with TensorFlow's own converter
(`tensorflow.python.profiler.internal._pywrap_profiler_plugin`, the one
TensorBoard's profile plugin calls); a TensorFlow without it raises
`RuntimeError` saying so.

Example:

```python
from kgan.benchmarks import op_profile
ops = op_profile.profile(lambda: model.fit(data, epochs=1, verbose=0), steps=20)
ops[0]   # {'type': '_MklNativeConv2DBackpropFilter', 'ms_per_step': 13.9, ...}
```
"""

import collections
import glob
import json
import os
import tempfile


def _op_stats(xplane_path):
    try:
        from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as plugin
    except ImportError as err:  # pragma: no cover - depends on the TensorFlow build
        raise RuntimeError(
            "This TensorFlow has no profile converter (_pywrap_profiler_plugin); "
            "--profile needs a TensorFlow 2.x wheel that includes it."
        ) from err
    raw, ok = plugin.xspace_to_tools_data([xplane_path], "framework_op_stats", {})
    if not ok:
        raise RuntimeError(f"TensorFlow could not convert the profile: {raw[:200]!r}")
    table = json.loads(raw)[0]
    columns = [c["id"] for c in table["cols"]]
    return [dict(zip(columns, (c["v"] if isinstance(c, dict) else c for c in row["c"])))
            for row in table["rows"]]


def profile(run, steps):
    """Profile `run()` (which trains `steps` steps) and return time per op type.

    Args:
        run: a callable that trains `steps` train steps (e.g. one `fit`).
        steps: the number of train steps `run` makes (figures are per step).

    Returns:
        A list, most expensive first, of `{"type", "ms_per_step",
        "count_per_step", "share"}` (share of the step's total op time).

    Raises:
        RuntimeError: if the profile cannot be read (see the module docstring).
    """
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        try:
            run()
        finally:
            tf.profiler.experimental.stop()
        paths = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
        if not paths:
            raise RuntimeError("The TensorFlow profiler wrote no trace.")
        rows = _op_stats(paths[0])
    per_type = collections.defaultdict(lambda: [0.0, 0])
    for row in rows:
        if row["type"] == "IDLE":
            continue
        per_type[row["type"]][0] += row["total_self_time"]  # microseconds
        per_type[row["type"]][1] += row["occurrences"]
    total = sum(us for us, _ in per_type.values()) or 1.0
    return [
        {"type": name, "ms_per_step": round(us / 1000 / steps, 3),
         "count_per_step": round(count / steps, 1), "share": round(us / total, 4)}
        for name, (us, count) in sorted(per_type.items(), key=lambda kv: -kv[1][0])
    ]


def format_table(label, ops, top=12):
    """`ops` of one configuration as text: op type, ms per step, count, share."""
    total = sum(op["ms_per_step"] for op in ops)
    lines = [f"{label}: {total:.1f} ms of op time per step"]
    for op in ops[:top]:
        lines.append(f"  {op['type'][:44]:44s} {op['ms_per_step']:8.2f} ms {op['count_per_step']:7.1f}"
                     f"/step {100 * op['share']:5.1f}%")
    return "\n".join(lines)
