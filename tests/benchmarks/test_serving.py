"""Smoke test of `python -m kgan.benchmarks.serving` on a tiny preset (a few calls)."""

import json

import pytest

from kgan import zoo
from kgan.benchmarks import serving
from kgan_test_utils import TINY_METADATA, tiny_dcgan


@pytest.fixture(scope="module")
def preset(tmp_path_factory):
    model = tiny_dcgan((16, 16, 1), latent_dim=8, spread=True)
    return zoo.save_preset(model, tmp_path_factory.mktemp("serving") / "tiny", dict(TINY_METADATA))


def test_main_times_every_backend_and_writes_the_report(preset, tmp_path, capsys):
    output = tmp_path / "serving.json"
    code = serving.main([str(preset), "--repeats", "2", "--calls", "3", "--large-batch", "16",
                         "--large-calls", "2", "--json", str(output)])
    assert code == 0
    report = json.loads(output.read_text())
    assert report["command"].startswith("python -m kgan.benchmarks.serving ")
    assert report["image_shape"] == [16, 16, 1] and report["latent_dim"] == 8
    rows = {(r["backend"], r["batch"]): r for r in report["rows"]}
    assert set(rows) == {(b, 1) for b in serving.BACKENDS} | {
        ("keras_generate", 16), ("savedmodel", 16)}
    for (backend, batch), row in rows.items():
        assert row["images_per_s"] > 0 and len(row["repeats_images_per_s"]) == 2
        assert all(rate > 0 for rate in row["repeats_images_per_s"])
        if batch == 1:
            assert 0 < row["latency_ms_p50"] <= row["latency_ms_p99"]
        else:
            assert "latency_ms_p50" not in row
    # The same latents through every backend: the same images, float16 weights aside.
    assert rows[("savedmodel", 1)]["max_abs_diff_vs_keras"] <= 1e-5
    assert rows[("tflite", 1)]["max_abs_diff_vs_keras"] <= 1e-4
    assert rows[("tflite_float16", 1)]["max_abs_diff_vs_keras"] <= 2e-2
    sizes = report["sizes_bytes"]
    assert set(sizes) == {"savedmodel", "tflite", "tflite_float16", "keras_weights_h5"}
    assert all(size > 0 for size in sizes.values())
    assert sizes["tflite_float16"] < sizes["tflite"]
    summary = report["summary"]
    assert summary["savedmodel_vs_keras_large_batch"] > 0
    assert isinstance(summary["savedmodel_within_10pct_of_keras"], bool)
    assert set(report["versions"]) >= {"kgan", "tensorflow", "keras", "litert"}
    out = capsys.readouterr().out
    assert "tflite_float16" in out and "summary:" in out


def test_refuses_bad_settings_with_a_message(preset, capsys):
    assert serving.main([str(preset), "--repeats", "0"]) == 2
    assert "repeats must be a positive int" in capsys.readouterr().err
    assert serving.main([str(preset), "--backends", "onnx"]) == 2
    assert "backends must be a subset" in capsys.readouterr().err


def test_kgan_bench_serving_runs_it(preset, tmp_path, monkeypatch, capsys):
    from kgan import cli

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
