"""`kgan bench --baseline`, the keras.io-style baselines and kgan's speed defaults."""

import json
import os
import subprocess
import sys
import tempfile
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import kgan
from kgan import bench, cli, performance
from kgan.benchmarks import baselines, hardware_sweep
from kgan.layers import (
    AnalyticGradLayerNormalization,
    ForwardGradConv2D,
    ForwardGradConv2DTranspose,
    FusedBatchNormalization,
    FusedInstanceNormalization,
    SliceCropping2D,
)
from kgan_test_utils import slow_except

#: kgan's faster layers and the Keras layers the baselines use instead.
KERAS_LAYER_OF = {
    FusedBatchNormalization: keras.layers.BatchNormalization,
    AnalyticGradLayerNormalization: keras.layers.LayerNormalization,
    FusedInstanceNormalization: keras.layers.GroupNormalization,
    SliceCropping2D: keras.layers.Cropping2D,
    ForwardGradConv2D: keras.layers.Conv2D,
    ForwardGradConv2DTranspose: keras.layers.Conv2DTranspose,
}

ARCHITECTURES = kgan.zoo.list(kind="architectures")

#: a tiny float32 kgan model per architecture, whose networks the baseline trains.
TINY = {
    "dcgan": {"image_shape": (16, 16, 1), "latent_dim": 8, "filters": 4},
    "wgan": {"image_shape": (16, 16, 1), "latent_dim": 8, "filters": 4, "n_critic": 2},
    "wgan_gp": {"image_shape": (16, 16, 1), "latent_dim": 8, "filters": 4, "n_critic": 2},
    "cyclegan": {"image_shape": (16, 16, 3), "filters": 4, "num_residual_blocks": 1,
                 "disc_layers": 2},
    "conditional_gan": {"image_shape": (16, 16, 1), "num_classes": 3, "latent_dim": 8,
                        "filters": 4, "embedding_dim": 4},
}

#: `kgan bench` flags of a tiny run per architecture (each step a few ms).
TINY_BENCH = {
    "cyclegan": ["--dataset", "digits_8x8", "--dataset-b", "mnist_5k", "--split", "train[:8]",
                 "--image-size", "24", "--batch-size", "1", "--filters", "2",
                 "--num-residual-blocks", "1"],
}
TINY_BENCH_DEFAULT = ["--batch-size", "4", "--filters", "2", "--latent-dim", "4",
                      "--split", "train[:200]"]
TINY_BENCH.update({arch: TINY_BENCH_DEFAULT + ["--n-critic", "2"] for arch in ("wgan", "wgan_gp")})


def run(argv):
    try:
        return cli.main([str(a) for a in argv])
    except SystemExit as exit_:
        return exit_.code


def test_every_architecture_has_a_baseline_and_a_tiny_config():
    assert set(baselines.available()) == set(ARCHITECTURES)
    assert set(TINY) == set(ARCHITECTURES)


def test_wgan_baseline_clips_the_critic_after_every_update():
    model = kgan.zoo.build("wgan", seed=0, **TINY["wgan"])
    gan = baselines.build("wgan", model)
    images = np.random.default_rng(0).uniform(-1, 1, (4, 16, 16, 1)).astype("float32")
    gan.fit(baselines.dataset("wgan", images, 2), epochs=1, verbose=0, shuffle=False)
    assert max(float(np.abs(w).max()) for w in gan.discriminator.trainable_weights) <= 0.01


def _networks(model):
    return {layer.name: layer for layer in model._flatten_layers(include_self=False,
                                                                 recursive=False)
            if isinstance(layer, keras.Model)}


def _layer_types(network):
    return [type(layer) for layer in network._flatten_layers(include_self=False)]


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_baseline_networks_are_kgans_written_with_keras_layers(arch):
    model = kgan.zoo.build(arch, seed=0, **TINY[arch])
    gan = baselines.build(arch, model)
    ours, theirs = _networks(model), _networks(gan)
    assert ours.keys() == theirs.keys()
    for name, network in ours.items():
        copy = theirs[name]
        assert copy is not network
        kinds = _layer_types(network)
        expected = [KERAS_LAYER_OF.get(k, k) for k in kinds]
        assert _layer_types(copy) == expected, name
        assert not set(KERAS_LAYER_OF) & set(_layer_types(copy))
        for a, b in zip(network.get_weights(), copy.get_weights()):
            np.testing.assert_array_equal(a, b)
        inputs = [np.random.default_rng(1).normal(size=(2,) + tuple(d or 16 for d in t.shape[1:])).astype(
            "float32") if t.dtype == "float32" else np.zeros((2,), "int32")
            for t in network.inputs]
        inputs = inputs[0] if len(inputs) == 1 else inputs
        np.testing.assert_allclose(network(inputs, training=False),
                                   copy(inputs, training=False), rtol=1e-5, atol=1e-5)
    if arch in ("dcgan", "wgan", "wgan_gp", "conditional_gan"):
        assert FusedBatchNormalization in _layer_types(model.generator)
        assert ForwardGradConv2DTranspose in _layer_types(model.generator)
        assert ForwardGradConv2D in _layer_types(model.discriminator)
    if arch == "wgan_gp":
        assert AnalyticGradLayerNormalization in _layer_types(model.discriminator)
    if arch == "cyclegan":
        assert FusedInstanceNormalization in _layer_types(model.generator)
        assert FusedInstanceNormalization in _layer_types(model.discriminator_a)


def test_unknown_baseline_names_the_known_ones():
    with pytest.raises(ValueError, match="baselines exist for .*dcgan"):
        baselines.baseline_class("no_such_gan")


# CycleGAN's bench (four networks, two subprocesses) is minutes of CPU: -m slow.
@pytest.mark.parametrize("arch", slow_except(ARCHITECTURES, set(ARCHITECTURES) - {"cyclegan"}))
def test_bench_baseline_reports_ratio_and_peak_memory(arch, tmp_path, capsys):
    report = tmp_path / "bench.json"
    argv = ["bench", arch, "--baseline", "--in-process", "--steps", "1", "--repeats", "2",
            "--precision", "auto", "--json", report]
    assert run(argv + TINY_BENCH.get(arch, TINY_BENCH_DEFAULT)) == 0
    out = capsys.readouterr().out
    assert "baseline float32 (keras.io)" in out and "peak MB" in out
    # The ratio depends on the CPU's bfloat16 hardware: the table says which it is.
    assert f"hardware: {performance.hardware_summary()}" in out
    kgan_row, base_row = json.loads(report.read_text())
    assert kgan_row["hardware"] == base_row["hardware"] == performance.hardware_summary()
    assert sorted(kgan_row["networks_trained"]) == sorted(base_row["networks_trained"])
    assert (kgan_row["config"], base_row["config"]) == ("kgan", "baseline")
    assert kgan_row["precision"] == performance.default_precision()
    assert base_row["precision"] == "float32" and base_row["steps_per_execution"] == 1
    assert base_row["ratio"] == 1.0 and kgan_row["reference"] == base_row["label"]
    assert kgan_row["ratio"] == pytest.approx(
        kgan_row["images_per_s"] / base_row["images_per_s"], rel=1e-2)
    # Both count the real images the discriminator scores: batch x critic updates.
    assert kgan_row["images_per_step"] == base_row["images_per_step"]
    for row in (kgan_row, base_row):
        # The timed fits trained every network (the baseline: kgan's own networks).
        assert row["networks_trained"] and all(row["networks_trained"].values()), row
        assert row["images_per_s"] > 0 and len(row["repeats_images_per_s"]) == 2
        assert row["peak_rss_mb"] >= row["rss_start_mb"] > 0
        assert row["cpu_ms_per_step"] > 0 and row["memory_scope"].startswith("shared")
        # Steady time ends at the last step, before fit's epoch-end work.
        assert row["steady_images_per_s"] >= row["images_per_s"] * 0.999
        assert row["steady_step_ms"] <= row["step_ms"] * 1.001
    assert base_row["steady_ratio"] == 1.0
    assert kgan_row["steady_ratio"] == pytest.approx(
        kgan_row["steady_images_per_s"] / base_row["steady_images_per_s"], rel=1e-2)


def test_bench_runs_a_configuration_in_its_own_process():
    (row,) = bench.run("dcgan", precisions=("float32",), steps=1, repeats=2, batch_size=4,
                       filters=2, latent_dim=4, split="train[:100]")
    assert row["memory_scope"] == "own process (VmHWM)" and row["ratio"] == 1.0
    # The worker's own high-water mark, above its size after importing TensorFlow.
    assert row["peak_rss_mb"] > row["rss_start_mb"] > 100
    assert row["images_per_s"] > 0 and row["cpu_ms_per_step"] > 0
    assert row["steady_images_per_s"] >= row["images_per_s"] * 0.999


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="Linux's VmHWM")
def test_a_worker_reports_its_own_peak_memory_not_its_parents():
    # ru_maxrss carries a parent's high-water mark into the programs it
    # starts: a worker started while the caller held 1.5 GB said >= 1.5 GB.
    held = bytearray(1536 * 2**20)
    held[::4096] = b"x" * len(held[::4096])  # touch every page
    reported = subprocess.run(
        [sys.executable, "-c", "from kgan.bench import _max_rss_mb; print(_max_rss_mb())"],
        env=bench.child_env(), capture_output=True, text=True, check=True,
    ).stdout.split()[-1]
    assert bench._max_rss_mb() > 1536
    assert float(reported) < 1536 - 400, reported
    del held


class _StubTrainer:
    """What `_worker_main` needs of a `_Trainer`, without TensorFlow."""

    images_per_step, batches_per_step, image_shape, threads, rss_start_mb = 4, 1, [2, 2, 1], None, 1
    jit_compile = False

    def __init__(self, problem, config):
        pass

    def fit(self):
        return 1.0, 1.0, 1.0

    def floor(self):
        return {}

    def profile(self):
        return {}

    def networks_trained(self):
        return []


def test_a_workers_peak_memory_ends_with_its_timed_fits(monkeypatch, capsys):
    # --floor and --profile run after the fits, with their own memory.
    import io

    readings = iter(range(100, 200, 10))  # the high-water mark grows at every reading
    monkeypatch.setattr(bench, "_max_rss_mb", lambda: next(readings))
    monkeypatch.setattr(bench, "_Trainer", _StubTrainer)
    commands = [{"problem": {}, "config": {}}] + [{"cmd": c} for c in
                                                  ("run", "run", "floor", "profile", "stop")]
    monkeypatch.setattr(sys, "stdin", io.StringIO("".join(json.dumps(c) + "\n" for c in commands)))
    bench._worker_main()
    replies = [json.loads(line[len(bench._PREFIX):]) for line in capsys.readouterr().out.splitlines()]
    assert replies[-1]["peak_rss_mb"] == 110  # read after the second run, not at the stop


def test_a_killed_worker_is_named_with_why_and_no_traceback(monkeypatch, capsys):
    worker = bench._Worker.__new__(bench._Worker)
    worker.label = "kgan mixed_bfloat16 spe=10"
    worker.stderr = tempfile.TemporaryFile(mode="w+")
    worker.stderr.write("loading\nstep 3 of 10\n")
    worker.process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    worker.process.kill()  # SIGKILL, as the kernel's out-of-memory killer sends
    worker.process.wait()
    with pytest.raises(bench.BenchWorkerError) as raised:
        worker._fail({})
    message = str(raised.value)
    assert "'kgan mixed_bfloat16 spe=10' failed: it was killed by signal 9 (SIGKILL" in message
    assert "memory" in message and message.endswith("its last output: step 3 of 10")

    def failing(*args, **kwargs):
        raise raised.value

    monkeypatch.setattr(bench, "run", failing)
    assert run(["bench", "dcgan"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("kgan: error: the bench worker for") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_bench_writes_its_json_even_when_a_table_fails(monkeypatch, tmp_path):
    row = {"label": "x", "config": "kgan"}
    monkeypatch.setattr(bench, "run", lambda *args, **kwargs: [row])

    def broken_table(rows):
        raise RuntimeError("a table that cannot be printed")

    monkeypatch.setattr(bench, "format_table", broken_table)
    report = tmp_path / "bench.json"
    with pytest.raises(RuntimeError, match="cannot be printed"):
        run(["bench", "dcgan", "--json", str(report)])
    assert json.loads(report.read_text()) == [row]


def test_bench_reports_a_bad_dataset_as_a_user_error(capsys):
    assert run(["bench", "dcgan", "--baseline", "--dataset", "no_such_dataset_kgan"]) == 2
    assert "no_such_dataset_kgan" in capsys.readouterr().err


def test_bench_worker_forwards_its_errors(monkeypatch):
    # A problem the parent's checks let through fails in the worker, with its message.
    monkeypatch.setattr(bench, "_pipeline", lambda *args, **kwargs: None)
    with pytest.raises(ValueError, match="no_such_dataset_kgan"):
        bench.run("dcgan", dataset="no_such_dataset_kgan", steps=1, repeats=1)


# ---------------------------------------------------------------- defaults
def test_precision_auto_follows_the_hardware(monkeypatch):
    # The override is read at every call, after the detection was cached.
    performance.fast_bfloat16()
    monkeypatch.setenv("KGAN_FAST_BF16", "1")
    assert performance.resolve("dcgan")["precision"] == "mixed_bfloat16"
    assert performance.resolve("dcgan", precision="float32")["precision"] == "float32"
    monkeypatch.setenv("KGAN_FAST_BF16", "0")
    assert performance.resolve("dcgan")["precision"] == "float32"


def test_global_precision_is_restored_after_its_block_even_on_an_error():
    keras.mixed_precision.set_global_policy("mixed_float16")
    with pytest.raises(RuntimeError):
        with performance.global_precision("mixed_bfloat16"):
            assert keras.layers.Dense(1).compute_dtype == "bfloat16"
            raise RuntimeError
    assert keras.mixed_precision.global_policy().name == "mixed_float16"


@pytest.mark.parametrize("capability,expected", [
    ((7, 5), None),  # emulated bfloat16 there, whatever the CPU has
    ((8, 0), "gpu:compute_capability_8.0"),
])
def test_with_gpus_only_their_compute_capability_decides(capability, expected, monkeypatch):
    monkeypatch.delenv("KGAN_FAST_BF16", raising=False)
    monkeypatch.setattr(performance, "_cpu_flags", lambda: {"avx512_bf16", "amx_bf16"})
    monkeypatch.setattr(tf.config, "list_physical_devices",
                        lambda kind=None: ["gpu0"] if kind == "GPU" else [])
    monkeypatch.setattr(tf.config.experimental, "get_device_details",
                        lambda device: {"compute_capability": capability})
    performance._detected_fast_bfloat16.cache_clear()
    try:
        assert performance.fast_bfloat16() == expected
    finally:
        performance._detected_fast_bfloat16.cache_clear()


def test_cpu_flags_detect_bf16(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor : 0\nflags : fpu sse2 avx512f amx_bf16 amx_tile\n")
    assert "amx_bf16" in performance._cpu_flags(cpuinfo)
    assert performance._cpu_flags(tmp_path / "missing") == set()


def test_hardware_summary_names_cpu_cores_gpus_and_fast_bf16(tmp_path, monkeypatch):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor : 0\nmodel name\t: Example CPU 9000\nflags : fpu\n")
    assert performance.cpu_model(cpuinfo) == "Example CPU 9000"
    cpuinfo.write_text("processor\t: 0\ncpu family\t: 26\nmodel\t\t: 2\n"
                       "model name\t: AMD EPYC\nflags : fpu\n")
    assert performance.cpu_model(cpuinfo) == "AMD EPYC (family 26, model 2)"
    assert performance.cpu_model(tmp_path / "missing")  # platform's name instead, never empty
    summary = performance.hardware_summary()
    assert summary.startswith(f"{performance.cpu_model()}, {os.cpu_count()} cores, no GPU, ")
    assert summary.endswith(f"fast bfloat16: {performance.fast_bfloat16() or 'none'}")
    monkeypatch.setenv("KGAN_FAST_BF16", "0")
    assert performance.hardware_summary().endswith("fast bfloat16: none")


def test_resolve_keeps_explicit_settings_and_fills_auto():
    settings = performance.resolve("dcgan", "float32", 3, True)
    assert settings == {"precision": "float32", "steps_per_execution": 3, "jit_compile": True}
    # keras-team/keras#19246: auto is 1 step per execution under MirroredStrategy.
    assert performance.resolve("dcgan", "float32", mirrored=True)["steps_per_execution"] == 1
    assert performance.resolve("dcgan", "float32", 3, mirrored=True)["steps_per_execution"] == 3
    auto = performance.resolve("no_such_arch_yet")
    assert auto["steps_per_execution"] == performance.FALLBACK_DEFAULTS["steps_per_execution"]
    with pytest.raises(ValueError, match="unknown precision"):
        performance.resolve("dcgan", "float8")
    assert performance.resolve("dcgan", "float32", np.int64(2))["steps_per_execution"] == 2


@pytest.mark.parametrize("steps_per_execution", [0, -3, 2.9, True, "10"])
def test_resolve_refuses_steps_per_execution_that_are_not_a_positive_int(steps_per_execution):
    with pytest.raises(ValueError, match="steps_per_execution must be 'auto' or a positive int"):
        performance.resolve("dcgan", "float32", steps_per_execution)


@pytest.mark.parametrize("jit_compile", ["false", "no", 0, 1])
def test_resolve_refuses_jit_compile_that_is_not_a_bool(jit_compile):
    with pytest.raises(ValueError, match="jit_compile must be 'auto', True or False"):
        performance.resolve("dcgan", "float32", 1, jit_compile)


def test_train_and_bench_share_the_auto_defaults():
    parser = cli.build_parser()
    train = parser.parse_args(["train", "dcgan", "--dataset", "d", "--epochs", "1",
                               "--output", "o"])
    assert (train.precision, train.steps_per_execution, train.jit_compile) == ("auto", "auto", None)
    # bench's parser leaves its training flags None (so --serving can refuse
    # those given); cmd_bench fills in the same defaults.
    bench_args = parser.parse_args(["bench", "dcgan"])
    assert (bench_args.precision, bench_args.steps_per_execution, bench_args.jit_compile) == (
        None, None, None)
    defaults = cli._BENCH_TRAINING_DEFAULTS
    assert (defaults["precision"], defaults["steps_per_execution"], defaults["jit_compile"]) == (
        "auto", "auto", None)
    opted_out = parser.parse_args(["bench", "dcgan", "--precision", "float32", "--no-jit-compile"])
    assert opted_out.jit_compile is False


# ---------------------------------------------------------------- CPU threads
@pytest.fixture
def two_cores_no_thread_env(monkeypatch):
    monkeypatch.setattr(performance, "_usable_cores", lambda: 2)
    for name in performance.THREAD_ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def test_cpu_threads_one_per_op_where_measured_faster_on_the_cpu_alone(two_cores_no_thread_env, monkeypatch):
    assert performance.cpu_threads("wgan_gp") == {"intra_op": 1, "inter_op": 2}
    assert performance.cpu_threads("no_such_arch_yet") is None  # not measured: TensorFlow's pools
    assert performance.cpu_threads("dcgan") is None  # measured no faster
    assert performance.cpu_threads("conditional_gan") is None
    # MirroredStrategy's replicas already run side by side.
    assert performance.cpu_threads("wgan_gp", mirrored=True) is None
    monkeypatch.setattr(performance, "_usable_cores", lambda: 1)
    assert performance.cpu_threads("wgan_gp") is None


@pytest.mark.parametrize("name", performance.THREAD_ENV_VARS)
def test_cpu_threads_leaves_tensorflows_pools_when_the_user_set_them(two_cores_no_thread_env, monkeypatch, name):
    monkeypatch.setenv(name, "4")
    assert performance.cpu_threads("wgan_gp") is None


@pytest.mark.parametrize("kind", ["GPU", "TPU"])
def test_cpu_threads_leaves_tensorflows_pools_with_an_accelerator(two_cores_no_thread_env, monkeypatch, kind):
    real = tf.config.list_physical_devices
    monkeypatch.setattr(tf.config, "list_physical_devices",
                        lambda device_type=None: ["device:0"] if device_type == kind else real(device_type))
    assert performance.cpu_threads("wgan_gp") is None


@pytest.mark.parametrize("threads,cores,side_by_side", [
    ({"intra_op": 1, "inter_op": 2}, 2, True),
    ({"intra_op": 1, "inter_op": 0}, 2, True),  # 0: as many ops at once as cores
    ({"intra_op": 1, "inter_op": 0}, 1, False),  # ... which is one on one usable core
    ({"intra_op": 1, "inter_op": 1}, 2, False),  # one op at a time: nothing to run beside
    ({"intra_op": 0, "inter_op": 0}, 2, False),  # TensorFlow's default: ops split over the cores
    ({"intra_op": 2, "inter_op": 2}, 2, False),
])
def test_runs_ops_side_by_side_only_with_one_thread_per_op(monkeypatch, threads, cores,
                                                           side_by_side):
    monkeypatch.setattr(performance, "_threads_in_effect", lambda: threads)
    monkeypatch.setattr(performance, "_usable_cores", lambda: cores)
    assert performance.runs_ops_side_by_side() is side_by_side


def test_set_threads_applies_before_tensorflow_runs():
    code = ("from kgan import performance; import tensorflow as tf; "
            "wanted = performance.set_threads({'intra_op': 1, 'inter_op': 2}); tf.constant(1.0) + 1; "
            "print(wanted, performance.set_threads(None))")
    done = subprocess.run([sys.executable, "-c", code], env=bench.child_env(), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == (
        "{'intra_op': 1, 'inter_op': 2} {'intra_op': 1, 'inter_op': 2}")


def test_set_threads_keeps_the_pools_of_a_running_tensorflow_and_says_so():
    tf.constant(1.0) + 1  # TensorFlow runs in this process
    current = performance.set_threads(None)
    other = {"intra_op": current["intra_op"] + 3, "inter_op": current["inter_op"] + 3}
    with pytest.warns(UserWarning, match="were not applied: call kgan.performance.set_threads"):
        assert performance.set_threads(other) == current
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert performance.set_threads(other, warn=False) == current
        assert performance.set_threads(current) == current  # what it has already: no warning


@pytest.mark.parametrize("threads", [{"intra_op": 1}, {"intra_op": 1, "inter_op": -2},
                                     {"intra_op": "1", "inter_op": 2}, {"intra_op": True, "inter_op": 2},
                                     (1, 2)])
def test_set_threads_refuses_what_is_not_two_pool_sizes(threads):
    with pytest.raises(ValueError, match="threads must be .'intra_op': n, 'inter_op': m."):
        performance.set_threads(threads)


def test_set_threads_reports_the_pools_tensorflows_variables_chose(monkeypatch):
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "1")
    monkeypatch.setenv("TF_NUM_INTEROP_THREADS", "3")
    configured = tf.config.threading.get_intra_op_parallelism_threads()
    assert performance.set_threads(None)["intra_op"] == (configured or 1)
    assert performance.set_threads(None)["inter_op"] == (tf.config.threading.get_inter_op_parallelism_threads() or 3)


def test_bench_runs_kgan_with_its_threads_and_the_baseline_with_tensorflows(two_cores_no_thread_env):
    kgan_row, base_row = bench.run("wgan_gp", baseline=True, steps=1, repeats=1, batch_size=4,
                                   filters=2, latent_dim=4, n_critic=2, split="train[:100]")
    assert kgan_row["cpu_threads"] == {"intra_op": 1, "inter_op": 2}
    assert kgan_row["label"].endswith(" 2x1thr")
    assert base_row["cpu_threads"] == {"intra_op": 0, "inter_op": 0}  # TensorFlow's defaults
    assert "NxTthr: TensorFlow runs N ops at once" in bench.format_table([kgan_row, base_row])


# ---------------------------------------------------------------- fused batch norm
@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_fused_batch_norm_matches_keras(policy):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(2, 3, (8, 5, 5, 6)).astype("float32"))
    weights = tf.constant(rng.normal(size=(8, 5, 5, 6)).astype("float32"))
    kwargs = {"momentum": 0.9, "epsilon": 1e-5, "gamma_initializer": "random_normal",
              "beta_initializer": "random_normal", "dtype": policy}
    reference, fused = keras.layers.BatchNormalization(**kwargs), FusedBatchNormalization(**kwargs)
    reference.build(x.shape)
    fused.build(x.shape)
    fused.set_weights(reference.get_weights())
    results = []
    for layer in (reference, fused):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(tf.cast(y, tf.float32) * weights)
        grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
        results.append([y] + grads + layer.get_weights() + [layer(x, training=False)])
    tolerance = 1e-5 if policy == "float32" else 1e-2
    for got, want in zip(results[1], results[0]):
        got, want = np.asarray(tf.cast(got, tf.float32)), np.asarray(tf.cast(want, tf.float32))
        np.testing.assert_allclose(got, want, atol=tolerance * max(1.0, np.abs(want).max()))
    assert results[1][0].dtype == results[0][0].dtype


def test_bench_profile_reports_op_time_per_op_type(tmp_path, capsys):
    report = tmp_path / "bench.json"
    argv = ["bench", "dcgan", "--in-process", "--steps", "2", "--repeats", "1",
            "--precision", "float32", "--profile", "--json", report] + TINY_BENCH_DEFAULT
    assert run(argv) == 0
    (row,) = json.loads(report.read_text())
    ops = row["op_profile"]
    types = [op["type"] for op in ops]
    assert any("Conv2DBackpropFilter" in t for t in types), types
    assert "IDLE" not in types
    assert sum(op["share"] for op in ops) == pytest.approx(1.0, abs=1e-2)
    assert all(op["ms_per_step"] >= 0 and op["count_per_step"] > 0 for op in ops)
    assert [op["ms_per_step"] for op in ops] == sorted((op["ms_per_step"] for op in ops),
                                                       reverse=True)
    assert "ms of op time per step" in capsys.readouterr().out


def test_bench_profile_in_a_worker_process():
    (row,) = bench.run("dcgan", precisions=("float32",), steps=1, repeats=1, batch_size=4,
                       filters=2, latent_dim=4, split="train[:100]", profile=True)
    assert row["op_profile"] and row["op_profile"][0]["ms_per_step"] > 0


def test_a_refused_bench_leaves_no_folders_its_json_check_made(tmp_path, monkeypatch, capsys):
    # `kgan bench dcgan --precision bogus --json nd2/a/b.json` left nd2/a/ behind.
    monkeypatch.chdir(tmp_path)
    assert run(["bench", "dcgan", "--precision", "bogus", "--json", "nd2/a/b.json"]) == 2
    assert "unknown precision" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("serving", [False, True])
def test_bench_prints_its_results_before_a_json_write_fails(serving, monkeypatch, tmp_path, capsys):
    # On a full disk the JSON was written first: "kgan: error: [Errno 28] No
    # space left on device", and an empty stdout.
    import errno
    import pathlib

    from kgan.benchmarks import serving as serving_module

    row = {"label": "kgan float32", "config": "kgan"}
    monkeypatch.setattr(bench, "run", lambda *args, **kwargs: [row])
    monkeypatch.setattr(bench, "format_table", lambda rows: "THE TABLE")
    monkeypatch.setattr(serving_module, "run", lambda *args, **kwargs: {"rows": [row]})
    monkeypatch.setattr(serving_module, "format_table", lambda report: "THE TABLE")

    def full_disk(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as a failed write() raises

    monkeypatch.setattr(pathlib.Path, "write_text", full_disk)
    report = tmp_path / "tiny" / "out.json"
    assert run(["bench", "dcgan", "--json", report] + (["--serving"] if serving else [])) == 2
    out, err = capsys.readouterr()
    assert out.startswith("THE TABLE\n") and "kgan float32" in out  # the table, then the JSON
    assert err == (f"kgan: error: no space left on the device while writing {report}: free space "
                   "or choose an output on another disk; the results are printed above, also as "
                   "JSON\n")
    assert not report.exists() and list(report.parent.iterdir()) == []


@pytest.mark.parametrize("gpu", [False, True])
def test_the_baselines_jit_compile_is_what_its_compile_chose(gpu, monkeypatch):
    # The keras.io baseline calls plain compile(): jit_compile="auto" is XLA
    # where Keras sees a GPU, but its rows said False whatever it ran with.
    if gpu:  # a GPU as Keras's "auto" and kgan's detection look for one; the step runs on the CPU
        devices = tf.config.list_physical_devices
        fake = tf.config.PhysicalDevice(name="/physical_device:GPU:0", device_type="GPU")
        monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: (
            [fake] if kind == "GPU" else devices(kind) + ([fake] if kind is None else [])))
        monkeypatch.setattr(tf.config.experimental, "get_device_details",
                            lambda device: {"compute_capability": (8, 0)})
    kgan_row, base_row = bench.run(
        "dcgan", precisions=("float32",), baseline=True, steps=1, repeats=1, batch_size=4,
        filters=2, latent_dim=4, split="train[:8]", steps_per_execution=1, jit_compile=False,
        isolate=False)
    assert base_row["config"] == "baseline" and base_row["jit_compile"] is gpu
    assert kgan_row["jit_compile"] is False  # as asked
    markdown = hardware_sweep.format_markdown({
        "hardware": {"date": "d", "tensorflow": "t", "keras": "k", "cpu": "c", "cpu_cores": 2,
                     "gpus": [], "fast_bfloat16": None},
        "settings": {"repeats": 1, "steps": 1}, "rows": [dict(base_row, arch="dcgan")]})
    assert f"| dcgan | baseline float32 (keras.io) | {'on' if gpu else 'off'} |" in markdown


@pytest.mark.parametrize("argv, flag", [
    (["bench", "dcgan", "--n-critic", "3"], "--n-critic"),  # was Keras's "Unrecognized keyword"
    (["bench", "dcgan", "--num-residual-blocks", "3"], "--num-residual-blocks"),  # was ignored
    (["bench", "cyclegan", "--n-critic", "3"], "--n-critic"),  # was ignored
])
def test_bench_refuses_options_the_architecture_does_not_take(argv, flag, capsys):
    assert run(argv) == 2
    assert capsys.readouterr().err == (f"kgan: error: {argv[1]} does not take {flag}; "
                                       "see kgan bench --help\n")
    with pytest.raises(ValueError, match=f"{argv[1]} does not take {flag[2:].replace('-', '_')}"):
        bench.run(argv[1], **{flag[2:].replace("-", "_"): 3})


@pytest.mark.parametrize("flags, named", [
    *[([flag], f"{flag} configures") for flag in
      ("--baseline", "--in-process", "--profile", "--floor")],
    (["--batch-size", "64"], "--batch-size configures"),
    (["--precision", "auto"], "--precision configures"),
    (["--steps", "50"], "--steps configures"),
    (["--no-jit-compile"], "--jit-compile configures"),
    (["--batch-size", "8", "--baseline"], "--baseline, --batch-size configure"),
])
def test_bench_serving_refuses_the_training_flags_given(flags, named, monkeypatch, capsys):
    # They were silently ignored (even when given at their default values).
    from kgan.benchmarks import serving

    monkeypatch.setattr(serving, "run", lambda *args, **kwargs: pytest.fail("ran"))
    assert run(["bench", "dcgan_mnist", "--serving"] + flags) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"kgan: error: {named} training benchmarks; ")
    assert "--serving times sampling of preset dcgan_mnist and takes only --repeats and --json" in err
    assert len(err.splitlines()) == 1


def test_bench_serving_takes_repeats_and_json(monkeypatch, tmp_path, capsys):
    from kgan.benchmarks import serving

    calls = []
    monkeypatch.setattr(serving, "run", lambda name, repeats: calls.append((name, repeats)) or {})
    monkeypatch.setattr(serving, "format_table", lambda report: "THE TABLE")
    assert run(["bench", "dcgan_mnist", "--serving", "--repeats", "2",
                "--json", tmp_path / "s.json"]) == 0
    assert calls == [("dcgan_mnist", 2)] and json.loads((tmp_path / "s.json").read_text()) == {}


def test_bench_cyclegan_runs_on_its_defaults(tmp_path, capsys):
    # Its default domains (8x8 digits, 28x28 MNIST) differ in size: every
    # `kgan bench cyclegan` without --image-size failed. They are paired at
    # 32x32 as the cyclegan_digits preset pairs them, in batches of 1.
    assert bench.problem_defaults("cyclegan") == {
        "dataset": "digits_8x8", "dataset_b": "mnist_5k", "image_size": 32, "batch_size": 1}
    assert bench.problem_defaults("cyclegan", image_size=24, batch_size=2)["image_size"] == 24
    assert bench.problem_defaults("cyclegan", "my_photos")["image_size"] is None  # its own size
    assert bench.problem_defaults("dcgan") == {
        "dataset": "mnist_5k", "dataset_b": None, "image_size": None, "batch_size": 64}
    report = tmp_path / "bench.json"
    # Only the network size is shrunk: data, size and batch are the defaults.
    assert run(["bench", "cyclegan", "--steps", "1", "--repeats", "1", "--filters", "2",
                "--num-residual-blocks", "1", "--precision", "float32", "--in-process",
                "--json", report]) == 0
    (row,) = json.loads(report.read_text())
    assert row["image_shape"] == [32, 32, 1] and row["batch_size"] == 1
    assert row["dataset"] == "digits_8x8 <-> mnist_5k" and row["images_per_s"] > 0
