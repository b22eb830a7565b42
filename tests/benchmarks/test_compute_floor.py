"""`kgan.benchmarks.compute_floor`: counting a train step's matrix arithmetic and its floors."""

import collections
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import kgan
from kgan import bench, cli
from kgan.benchmarks import compute_floor
from kgan_test_utils import slow_except

BATCH = 4


def _conv_dense_model():
    """A float32 Conv2D (3 -> 4 channels, 3x3, 8x8 maps) and Dense (256 -> 2), compiled and built."""
    model = keras.Sequential([
        keras.Input((8, 8, 3)),
        keras.layers.Conv2D(4, 3, padding="same"),
        keras.layers.Flatten(),
        keras.layers.Dense(2),
    ])
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.ones((BATCH, 8, 8, 3), "float32"), np.ones((BATCH, 2), "float32")
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    return model, (tf.constant(x), tf.constant(y))


def test_counts_the_live_convolutions_and_matmuls_of_a_step():
    model, batch = _conv_dense_model()
    ops = compute_floor.matrix_ops(model, batch, "float32")
    conv = 2 * BATCH * 8 * 8 * 4 * (3 * 3 * 3)
    dense = 2 * BATCH * 256 * 2
    # The conv forward and kernel gradient; the dense forward, input and kernel
    # gradients (three MatMuls, told apart by their transposes).
    assert sorted((op["type"], op["count"], op["flops"]) for op in ops) == [
        ("Conv2D", 1, conv), ("Conv2DBackpropFilter", 1, conv),
        ("MatMul", 1, dense), ("MatMul", 1, dense), ("MatMul", 1, dense)]
    assert {(op["attrs"]["transpose_a"], op["attrs"]["transpose_b"])
            for op in ops if op["type"] == "MatMul"} == {(False, False), (False, True),
                                                         (True, False)}
    assert all(op["dtype"] == "float32" for op in ops)
    # The input gradient of the conv is built by TensorFlow's gradient, then
    # pruned (nothing uses it): it must not be counted.
    graph = tf.function(model.train_step).get_concrete_function(batch).graph
    assert "Conv2DBackpropInput" in {op.type for op in graph.get_operations()}
    assert "Conv2DBackpropInput" not in {op["type"] for op in ops}


def test_counts_the_compute_dtype_of_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model, batch = _conv_dense_model()
    finally:
        keras.mixed_precision.set_global_policy("float32")
    ops = compute_floor.matrix_ops(model, batch, "mixed_bfloat16")
    assert {op["dtype"] for op in ops if op["type"].startswith("Conv2D")} == {"bfloat16"}


class _LoopingModel(keras.Model):
    def train_step(self, data):
        def body(i, x):
            return i + 1, tf.matmul(x, x)

        _, x = tf.while_loop(lambda i, x: i < 3, body, (tf.constant(0), data))
        return {"sum": tf.reduce_sum(x)}


def test_a_loop_in_the_step_is_refused_with_the_way_out():
    model = _LoopingModel()
    with pytest.raises(ValueError, match="loop .*trip count is unknown.*Unroll it"):
        compute_floor.matrix_ops(model, tf.ones([4, 4]))


def test_unknown_shapes_are_refused():
    model, _ = _conv_dense_model()
    spec = (tf.TensorSpec([None, 8, 8, 3]), tf.TensorSpec([None, 2]))
    with pytest.raises(ValueError, match="unknown shape.*static shape"):
        compute_floor.matrix_ops(model, spec)


def test_time_ops_in_this_process_and_single_threaded():
    model, batch = _conv_dense_model()
    ops = compute_floor.matrix_ops(model, batch, "float32")
    seconds, peak = compute_floor.time_ops(ops, calls=2, repeats=2, peak_dtype="float32",
                                           peak_size=256)
    assert len(seconds) == len(ops) and all(0 <= t < 1 for t in seconds)
    assert peak > 1e8  # any CPU multiplies 256-square float32 matrices at 0.1 GFLOP/s
    seconds, peak = compute_floor.time_ops_single_threaded(ops, calls=2, repeats=2,
                                                           peak_dtype="float32")
    assert len(seconds) == len(ops) and all(0 <= t < 1 for t in seconds)
    assert peak > 1e8


def test_a_failing_timing_process_says_why():
    bad = [{"type": "MatMul", "dtype": "float32", "inputs": {"a": [2, 3], "b": [5, 7]},
            "attrs": {"transpose_a": False, "transpose_b": False}, "flops": 1, "count": 1}]
    with pytest.raises(RuntimeError, match="timing process failed(.|\n)*Dimensions must be equal"):
        compute_floor.time_ops_single_threaded(bad, calls=1, repeats=1)


def test_measure_reports_both_floors_consistently():
    model, batch = _conv_dense_model()
    report = compute_floor.measure(model, batch, "float32", calls=2, repeats=2)
    flops = sum(op["flops"] * op["count"] for op in report["ops"])
    assert report["flops_per_step"] == flops
    assert report["compute_dtype"] == "float32" and report["cores"] >= 1
    assert report["arithmetic_floor_ms"] == pytest.approx(
        flops / (report["peak_gflops"] * 1e9) * 1e3, rel=2e-2, abs=0.01)
    kernel = sum(op["ms"] * op["count"] for op in report["ops"]) / report["cores"]
    assert report["kernel_floor_ms"] == pytest.approx(kernel, rel=1e-2, abs=0.01)


def _untimed(monkeypatch):
    """Counting only: the single-threaded timing returns 1 ms per op and 1 GFLOP/s."""
    monkeypatch.setattr(compute_floor, "time_ops_single_threaded",
                        lambda ops, calls, repeats, dtype: ([1e-3] * len(ops), 1e9))


# The conditional GAN's and WGAN's networks and baselines are DCGAN's and
# WGAN-GP's with labels or without the penalty: -m slow.
@pytest.mark.parametrize(
    "arch", slow_except(kgan.zoo.list(kind="architectures"), {"dcgan", "wgan_gp", "cyclegan"})
)
def test_kgan_and_its_baseline_do_the_same_arithmetic(arch, monkeypatch):
    """The ratio to the baseline compares implementations, not amounts of work."""
    _untimed(monkeypatch)
    # kgan's image-side layers do a transposed convolution's sums as a MatMul
    # (the next test); off, the ops line up with the baseline's type by type.
    monkeypatch.setattr(kgan.layers._FewChannelMatmul, "_few_channel_matmul_applies",
                        lambda self, *args: False)
    tiny = {"cyclegan": dict(dataset="digits_8x8", dataset_b="mnist_5k", split="train[:8]",
                             image_size=24, batch_size=1, filters=2, num_residual_blocks=1)}
    settings = tiny.get(arch, dict(batch_size=4, filters=2, latent_dim=4, split="train[:64]",
                                   n_critic=2 if arch.startswith("wgan") else None))
    rows = bench.run(arch, precisions=("float32",), baseline=True, floor=True, isolate=False,
                     steps=1, repeats=1, **settings)
    ours, baseline = (_conv_flops_by_type(row["floor"]) for row in rows)
    if arch != "cyclegan":
        # Same work, though not always the same ops: the keras.io DCGAN scores
        # real and fake images in one call of twice the batch.
        assert ours == baseline
    else:
        # kgan follows the paper where the keras.io example does not: the cycle
        # loss also trains the inner generator (one more input gradient through
        # each generator's first layer, back to the images), and the
        # discriminators learn after the generators' update from the image
        # pools' fakes (one more forward pass of each discriminator).
        assert ours["Conv2DBackpropFilter"] == baseline["Conv2DBackpropFilter"]
        assert ours["Conv2D"] > baseline["Conv2D"]
        assert ours["Conv2DBackpropInput"] > baseline["Conv2DBackpropInput"]
        ours, baseline = (_conv_counts(row["floor"]) for row in rows)
        assert not baseline - ours
        extra = ours - baseline
        images = rows[0]["image_shape"][-1]
        assert {kind for kind, _ in extra} == {"Conv2D", "Conv2DBackpropInput"}
        assert all(count == 2 for count in extra.values())
        assert all(json.loads(inputs)["input_sizes"][-1] == images
                   for kind, inputs in extra if kind == "Conv2DBackpropInput")
    flops = [row["floor"]["flops_per_step"] for row in rows]
    # WGAN's critic logits are linear in the loss, so their final MatMul is only
    # needed for the reported loss: kgan reports the mean over the n_critic
    # updates, the keras.io step only the last one, and TensorFlow prunes a few
    # [B, 196] x [196, 1] products from the baseline.
    assert flops[0] == pytest.approx(flops[1], rel=1e-2 if arch != "cyclegan" else 0.1)


def test_image_side_matmul_does_the_transposed_convolutions_arithmetic(monkeypatch):
    model = kgan.zoo.build("dcgan", image_shape=(28, 28, 1), latent_dim=4, filters=2, seed=0)
    model.compile()
    images = np.random.default_rng(0).uniform(-1, 1, (4, 28, 28, 1)).astype("float32")
    model.fit(images, batch_size=4, epochs=1, verbose=0)
    batch = tf.constant(images)

    def flops_by_type():
        flops = collections.Counter()
        for op in compute_floor.matrix_ops(model, batch):
            flops[op["type"]] += op["flops"] * op["count"]
        return flops

    matmul = flops_by_type()
    monkeypatch.setattr(kgan.layers._FewChannelMatmul, "_few_channel_matmul_applies",
                        lambda self, *args: False)
    native = flops_by_type()
    moved = native["Conv2DBackpropInput"] - matmul["Conv2DBackpropInput"]
    assert moved > 0 and matmul["MatMul"] - native["MatMul"] == moved
    assert sum(matmul.values()) == sum(native.values())


def _conv_flops_by_type(floor):
    """`Counter` of convolution op type -> its FLOPs per step."""
    flops = collections.Counter()
    for op in floor["ops"]:
        if op["type"].startswith("Conv2D"):
            flops[op["type"]] += op["flops"] * op["count"]
    return flops


def _conv_counts(floor):
    """`Counter` of (op type, JSON of its input shapes) -> count, convolutions only."""
    counts = collections.Counter()
    for op in floor["ops"]:
        if op["type"].startswith("Conv2D"):
            counts[(op["type"], json.dumps(op["inputs"], sort_keys=True))] += op["count"]
    return counts


def test_bench_floor_on_the_command_line(tmp_path, capsys, monkeypatch):
    _untimed(monkeypatch)
    report = tmp_path / "bench.json"
    argv = ["bench", "dcgan", "--in-process", "--steps", "1", "--repeats", "1", "--baseline",
            "--precision", "float32", "--floor", "--json", str(report), "--batch-size", "4",
            "--filters", "2", "--latent-dim", "4", "--split", "train[:64]"]
    assert cli.main(argv) == 0
    rows = json.loads(report.read_text())
    assert all(row["floor"]["kernel_floor_ms"] > 0 for row in rows)
    out = capsys.readouterr().out
    assert "kernel floor" in out and "best ratio to baseline" in out


def test_floor_table_says_n_a_for_a_floor_below_the_timers_grain():
    rows = [{"label": label, "config": config, "steady_step_ms": 5.0,
             "floor": {"flops_per_step": 10, "peak_gflops": 100.0, "compute_dtype": "float32",
                       "kernel_floor_ms": kernel, "arithmetic_floor_ms": 1e-7}}
            for label, config, kernel in (("kgan", "kgan", 0.0), ("baseline", "baseline", 2.0))]
    lines = compute_floor.format_table(rows).splitlines()
    assert lines[1].endswith("n/a, 50000000.00x") and lines[2].endswith("2.50x, 50000000.00x")


def test_tiny_floors_keep_significant_digits(monkeypatch):
    # A network this small has floors of microseconds; 2 decimals of a ms made them 0.
    monkeypatch.setattr(compute_floor, "time_ops_single_threaded",
                        lambda ops, calls, repeats, dtype: ([2e-7] * len(ops), 1e9))
    model, batch = _conv_dense_model()
    report = compute_floor.measure(model, batch, "float32", calls=1, repeats=1)
    assert 0 < report["kernel_floor_ms"] < 0.005 and 0 < report["arithmetic_floor_ms"]


def test_bench_floor_is_refused_with_serving(capsys):
    assert cli.main(["bench", "dcgan_mnist", "--serving", "--floor"]) == 2
    assert "--floor configures training benchmarks; --serving times sampling" in capsys.readouterr().err


def test_bench_floor_in_a_worker_process():
    # The worker measures for real: a tiny step, timed in its single-threaded child.
    (row,) = bench.run("dcgan", precisions=("float32",), steps=1, repeats=1, batch_size=4,
                       filters=2, latent_dim=4, split="train[:64]", floor=True)
    floor = row["floor"]
    assert floor["flops_per_step"] > 0 and floor["peak_gflops"] > 0
    assert 0 < floor["arithmetic_floor_ms"] and 0 <= floor["kernel_floor_ms"]
    assert {op["type"] for op in floor["ops"]} >= {"Conv2D", "Conv2DBackpropFilter", "MatMul"}


class _BatchMatMulModel(keras.Model):
    def __init__(self):
        super().__init__()
        self.weight = self.add_weight(shape=(2, 5, 3), initializer="ones")

    def train_step(self, data):
        return {"sum": tf.reduce_sum(tf.linalg.matmul(data, self.weight, adjoint_a=True))}


def test_counts_batch_matmuls():
    ops = compute_floor.matrix_ops(_BatchMatMulModel(), tf.ones([2, 5, 4]))
    (op,) = ops
    assert op["type"].startswith("BatchMatMul") and op["attrs"] == {"adj_x": True, "adj_y": False}
    assert op["flops"] == 2 * (2 * 4 * 3) * 5  # [2, 4, 3] outputs, inner dimension 5
    seconds, _ = compute_floor.time_ops(ops, calls=1, repeats=1)
    assert seconds[0] >= 0
