"""`python -m kgan.benchmarks.serving` on tiny presets, plain and class-conditional (a few calls)."""

import json
import statistics

import numpy as np
import pytest

from kgan import zoo
from kgan.benchmarks import serving
from kgan.models import ConditionalGAN
from kgan_test_utils import (
    TINY_METADATA, UNWRITABLE_OUTPUTS, fill_the_disk_halfway_through_writes, spread_weights,
    the_one_line_error, tiny_dcgan, unwritable_output)

#: a few calls of each kind: enough to exercise every path, in seconds.
FEW_CALLS = ["--repeats", "1", "--calls", "2", "--large-batch", "8", "--large-calls", "1"]


@pytest.fixture(scope="module")
def preset(tmp_path_factory):
    model = tiny_dcgan((16, 16, 1), latent_dim=8, spread=True)
    return zoo.save_preset(model, tmp_path_factory.mktemp("serving") / "tiny", dict(TINY_METADATA))


@pytest.fixture(scope="module")
def conditional_preset(tmp_path_factory):
    """A 3-class conditional preset, like the shipped cgan_mnist_50shot but tiny."""
    model = spread_weights(ConditionalGAN.from_image_shape(
        (16, 16, 1), 3, latent_dim=8, filters=4, embedding_dim=4, seed=0))
    return zoo.save_preset(model, tmp_path_factory.mktemp("serving") / "cgan",
                           dict(TINY_METADATA, name="cgan"))


def test_main_times_every_backend_and_writes_the_report(preset, tmp_path, capsys):
    output = tmp_path / "serving.json"
    code = serving.main([str(preset), "--repeats", "3", "--calls", "3", "--large-batch", "16",
                         "--large-calls", "2", "--json", str(output)])
    assert code == 0
    report = json.loads(output.read_text())
    assert report["command"].startswith("python -m kgan.benchmarks.serving ")
    assert report["image_shape"] == [16, 16, 1] and report["latent_dim"] == 8
    rows = {(r["backend"], r["batch"]): r for r in report["rows"]}
    assert set(rows) == {(b, 1) for b in serving.BACKENDS} | {
        ("keras_generate", 16), ("savedmodel", 16)}
    for (backend, batch), row in rows.items():
        assert row["images_per_s"] > 0 and len(row["repeats_images_per_s"]) == 3
        assert all(rate > 0 for rate in row["repeats_images_per_s"])
        # The median over repeats (rounding is monotonic: the middle one of three).
        assert row["images_per_s"] == statistics.median(row["repeats_images_per_s"])
        if batch == 1:
            assert 0 < row["latency_ms_p50"] <= row["latency_ms_p99"]
        else:
            assert "latency_ms_p50" not in row
    # The same latents through every backend: the same images, float16 weights aside.
    assert rows[("savedmodel", 1)]["max_abs_diff_vs_keras"] <= 1e-5
    assert rows[("tflite", 1)]["max_abs_diff_vs_keras"] <= 1e-4
    assert rows[("tflite_float16", 1)]["max_abs_diff_vs_keras"] <= 2e-2
    # ... and the differences are measured: Keras against itself is exactly 0,
    # float16 weights are not exact (measured 1.8e-4 to 2.9e-4 on these presets).
    assert rows[("keras_generate", 1)]["max_abs_diff_vs_keras"] == 0.0
    assert rows[("tflite_float16", 1)]["max_abs_diff_vs_keras"] > 1e-5
    sizes = report["sizes_bytes"]
    assert set(sizes) == {"savedmodel", "tflite", "tflite_float16", "keras_weights_h5"}
    assert all(size > 0 for size in sizes.values())
    assert sizes["tflite_float16"] < sizes["tflite"]
    summary = report["summary"]
    # The summary's ratios are the rows' rates: SavedModel over Keras, not the inverse.
    large = rows[("savedmodel", 16)]["images_per_s"] / rows[("keras_generate", 16)]["images_per_s"]
    assert summary["savedmodel_vs_keras_large_batch"] == round(large, 3) > 0
    assert summary["savedmodel_within_10pct_of_keras"] is (large >= 0.9)
    for backend in ("savedmodel", "tflite", "tflite_float16"):
        assert summary[f"{backend}_vs_keras_batch1"] == round(
            rows[(backend, 1)]["images_per_s"] / rows[("keras_generate", 1)]["images_per_s"], 3)
    assert set(report["versions"]) >= {"kgan", "tensorflow", "keras", "litert"}
    out = capsys.readouterr().out
    assert "tflite_float16" in out and "summary:" in out


def test_refuses_bad_settings_with_a_message(preset, capsys):
    assert serving.main([str(preset), "--repeats", "0"]) == 2
    assert "repeats must be a positive int" in capsys.readouterr().err
    assert serving.main([str(preset), "--backends", "onnx"]) == 2
    assert "backends must be a subset" in capsys.readouterr().err
    assert serving.main([str(preset), "--tflite-threads", "0"]) == 2
    assert "tflite_threads must be a positive int" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["preset", "conditional_preset"])
def test_kgan_bench_serving_runs_it(kind, request, tmp_path, monkeypatch, capsys):
    from kgan import cli

    preset = request.getfixturevalue(kind)

    calls = []
    real_run = serving.run

    def small_run(source, repeats):
        calls.append((source, repeats))
        return real_run(source, repeats=repeats, calls=2, large_batch=8, large_calls=1,
                        backends=("keras_generate", "savedmodel"))

    monkeypatch.setattr(serving, "run", small_run)
    output = tmp_path / "bench.json"
    assert cli.main(["bench", str(preset), "--serving", "--repeats", "1", "--json", str(output)]) == 0
    assert calls == [(str(preset), 1)]
    assert {r["backend"] for r in json.loads(output.read_text())["rows"]} == {"keras_generate", "savedmodel"}
    assert "savedmodel_vs_keras_large_batch" in capsys.readouterr().out


def test_a_conditional_generator_is_timed_with_labels_on_every_backend(
        conditional_preset, tmp_path, capsys):
    # It used to export, then fail with a TypeError (the SavedModel's
    # signature wants labels) whose message dumped the latent tensor.
    output = tmp_path / "serving.json"
    assert serving.main([str(conditional_preset), *FEW_CALLS, "--json", str(output)]) == 0
    report = json.loads(output.read_text())
    assert report["num_classes"] == 3
    rows = {(r["backend"], r["batch"]): r for r in report["rows"]}
    assert set(rows) == {(b, 1) for b in serving.BACKENDS} | {
        ("keras_generate", 8), ("savedmodel", 8)}
    assert all(row["images_per_s"] > 0 for row in rows.values())
    # The same latents and labels everywhere: the same images.
    assert rows[("savedmodel", 1)]["max_abs_diff_vs_keras"] <= 1e-5
    assert rows[("tflite", 1)]["max_abs_diff_vs_keras"] <= 1e-4
    assert rows[("tflite_float16", 1)]["max_abs_diff_vs_keras"] > 1e-5  # measured, not zeroed
    assert capsys.readouterr().err == ""


def test_conditional_inputs_cycle_through_the_classes(conditional_preset, preset):
    model = zoo.load(str(conditional_preset))
    inputs = serving._inputs(model, model.latents(7, seed=0))
    assert inputs["labels"].tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert inputs["labels"].dtype == np.int32  # what the exported signatures take
    unconditional = zoo.load(str(preset))
    assert set(serving._inputs(unconditional, unconditional.latents(2, seed=0))) == {"latents"}


@pytest.mark.parametrize("where", UNWRITABLE_OUTPUTS)
def test_an_unwritable_json_is_refused_before_any_timing(preset, tmp_path, monkeypatch, capsys,
                                                         where):
    # It used to time every backend, then fail with a traceback.
    target, says = unwritable_output(tmp_path, where)
    monkeypatch.setattr(serving, "run", lambda *a, **k: pytest.fail("timed before checking --json"))
    assert serving.main([str(preset), "--json", str(target)]) == 2
    assert says in the_one_line_error(capsys, "serving: error: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]  # nothing written


def test_a_json_write_that_fails_leaves_no_partial_file(preset, tmp_path, monkeypatch, capsys):
    fill_the_disk_halfway_through_writes(monkeypatch)
    output = tmp_path / "serving.json"
    assert serving.main([str(preset), *FEW_CALLS, "--backends", "keras_generate",
                         "--json", str(output)]) == 2
    the_one_line_error(capsys, "serving: error: ")
    assert list(tmp_path.iterdir()) == []  # neither serving.json nor a temporary file


@pytest.mark.parametrize("backends", ["tflite", "tflite,tflite_float16"])
def test_tflite_alone_is_timed_at_batch_1(backends, preset, tmp_path, capsys):
    # TFLite has no large-batch rows: its empty group raised ZeroDivisionError.
    output = tmp_path / "serving.json"
    assert serving.main([str(preset), "--backends", backends, "--json", str(output)]
                        + FEW_CALLS) == 0
    rows = json.loads(output.read_text())["rows"]
    assert [(r["backend"], r["batch"]) for r in rows] == [(b, 1) for b in backends.split(",")]
    assert all(r["images_per_s"] > 0 for r in rows)


def test_a_large_batch_of_1_is_refused(preset, capsys):
    # (backend, 1) was configured twice: every call ran twice but counted once.
    assert serving.main([str(preset), "--large-batch", "1", "--repeats", "1"]) == 2
    err = capsys.readouterr().err
    assert "large_batch must be more than 1: batch 1 is always timed" in err
    assert len(err.strip().splitlines()) == 1
