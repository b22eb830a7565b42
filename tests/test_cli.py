"""The `kgan` command line, run in-process through `kgan.cli.main` (plus two subprocesses)."""

import contextlib
import csv
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import kgan
from kgan_test_utils import (
    TINY_METADATA, TWO_CPU_DEVICES_PRELUDE, fill_the_disk_halfway_through_writes, slow_except,
    spread_weights)
from kgan import cli, zoo
from kgan.models import DCGAN

REGISTERED = "kgan_test_tiny_cli"

METADATA = TINY_METADATA

TRAIN_ARGS = [
    "train", "dcgan", "--dataset", "mnist_5k", "--epochs", "1", "--batch-size", "250",
    "--latent-dim", "8", "--filters", "4", "--verbose", "0",
]


def run(argv):
    """`kgan.cli.main(argv)` as an exit code; argparse errors raise SystemExit."""
    try:
        return cli.main([str(a) for a in argv])
    except SystemExit as exit_:
        return exit_.code


def error_line(err):
    """The one `kgan: error:` line of a captured stderr (and nothing else)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("kgan: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize(("arch", "batch_size", "expected"), [
    ("dcgan", 64, "fewer than one training step takes: 64. Lower --batch-size to at most 10"),
    ("wgan_gp", 8, "fewer than one training step takes: 40 (5 critic minibatches of --batch-size 8)."
                   " Lower --batch-size to at most 2"),
])
def test_train_on_too_few_examples_says_which_flags_to_change(arch, batch_size, expected, tmp_path, capsys):
    argv = ["train", arch, "--dataset", "digits_8x8", "--split", "train[:10]", "--batch-size", batch_size,
            "--epochs", "1", "--latent-dim", "8", "--filters", "4", "--output", tmp_path / "run"]
    assert run(argv) == 2
    line = error_line(capsys.readouterr().err)
    assert line.startswith("kgan: error: --dataset digits_8x8 --split 'train[:10]' has 10 examples, ")
    assert expected in line and "choose a larger --split" in line
    assert "batch_size=" not in line and "drop_remainder" not in line  # no Python arguments
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("arch", "batch_size", "expected"), [
    # A folder has no splits: following "choose a larger --split" got "drop --split".
    ("dcgan", 4, "4. Lower --batch-size to at most 3."),
    # It said "Lower --batch-size to at most 1", also to --batch-size 1 (code review).
    ("wgan", 1, "5 (5 critic minibatches of --batch-size 1). Lower --n-critic to at most 3 (with "
                "--batch-size 1), or train on more examples."),
])
def test_train_on_a_folder_smaller_than_a_step_names_the_flag_to_change(
        arch, batch_size, expected, tmp_path, capsys):
    for i in range(3):
        kgan.images.save_png(np.zeros((8, 8, 1), np.uint8), tmp_path / "few" / f"{i}.png")
    argv = ["train", arch, "--dataset", tmp_path / "few", "--image-size", "8", "--batch-size",
            batch_size, "--epochs", "1", "--filters", "4", "--output", tmp_path / "run"]
    assert run(argv) == 2
    line = error_line(capsys.readouterr().err)
    assert line.endswith("few has 3 examples, fewer than one training step takes: " + expected)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("seed", ["-1", str(2**32)])
def test_train_seed_outside_numpys_range_names_the_flag(seed, tmp_path, capsys):
    # numpy's own error ("Seed must be between 0 and 2**32 - 1") named no flag.
    argv = ["train", "dcgan", "--dataset", "mnist_5k", "--epochs", "1", "--seed", seed,
            "--output", tmp_path / "run"]
    assert run(argv) == 2
    assert error_line(capsys.readouterr().err) == (
        f"kgan: error: --seed must be in 0..4294967295, got {seed}")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("existed", [False, True])
def test_train_on_an_undecodable_image_leaves_no_new_output(existed, tmp_path, capsys):
    # The decode error comes as fit reads the first batch, after OUTPUT was
    # made: it stayed behind holding backup/command.json. A folder that was
    # there before the run is kept (holding that file, as before).
    for i in range(2):
        kgan.images.save_png(np.zeros((8, 8, 1), np.uint8), tmp_path / "photos" / f"{i}.png")
    (tmp_path / "photos" / "half.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    if existed:
        (tmp_path / "run").mkdir()
    argv = ["train", "dcgan", "--dataset", tmp_path / "photos", "--image-size", "8",
            "--batch-size", "2", "--epochs", "1", "--filters", "4", "--output", tmp_path / "run"]
    assert run(argv) == 2
    assert "cannot decode" in error_line(capsys.readouterr().err)
    assert (tmp_path / "run").exists() == existed


def test_train_out_of_memory_is_one_line_naming_the_size_flags(tmp_path, capsys, monkeypatch):
    # `--latent-dim 100000000` ended in a ResourceExhaustedError traceback.
    def exhausted(*args, **kwargs):
        raise tf.errors.ResourceExhaustedError(
            None, None, "OOM when allocating tensor with shape[100000000,2048] and type float on "
            "/job:localhost/replica:0/task:0/device:CPU:0 by allocator mklcpu")

    monkeypatch.setattr(cli, "_build_and_compile", exhausted)
    argv = ["train", "dcgan", "--dataset", "mnist_5k", "--epochs", "1", "--image-size", "32",
            "--latent-dim", "100000000", "--output", tmp_path / "run"]
    assert run(argv) == 2
    assert error_line(capsys.readouterr().err) == (
        "kgan: error: out of memory allocating a tensor of shape [100000000,2048]: lower "
        "--batch-size, --image-size, --filters or --latent-dim (the sizes of the networks and "
        "batches)")
    assert not (tmp_path / "run").exists()


def test_train_cyclegan_on_a_domain_smaller_than_a_batch_names_the_domain_and_flag(tmp_path, capsys):
    argv = ["train", "cyclegan", "--dataset", "digits_8x8", "--dataset-b", "mnist_5k",
            "--batch-size", 4000, "--image-size", 16, "--epochs", "1", "--output", tmp_path / "run"]
    assert run(argv) == 2
    line = error_line(capsys.readouterr().err)
    assert line == ("kgan: error: Domain A ('digits_8x8') has 1797 examples, fewer than one training "
                    "step takes: 4000. Lower --batch-size to at most 1797.")
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def preset(tmp_path_factory):
    """A tiny DCGAN preset folder (16x16x1, latent 8), saved once for the module."""
    folder = tmp_path_factory.mktemp("presets") / "tiny"
    model = spread_weights(DCGAN.from_image_shape((16, 16, 1), latent_dim=8, filters=4, seed=0))
    return zoo.save_preset(model, folder, METADATA)


@pytest.fixture(scope="module")
def loaded(preset):
    return zoo.load(preset)


@pytest.fixture
def registered(preset):
    zoo.register_preset(REGISTERED, path=preset, description="registered by test_cli")
    yield REGISTERED
    zoo.unregister_preset(REGISTERED)


# ---------------------------------------------------------------- list / info
def test_list_presets_and_pattern(registered, capsys):
    assert run(["list"]) == 0
    out = capsys.readouterr().out
    assert any(line.split()[0] == registered and "registered by test_cli" in line
               for line in out.splitlines())
    assert run(["list", "kgan_test_*"]) == 0
    assert capsys.readouterr().out.split() == [registered, "registered", "by", "test_cli"]
    assert run(["list", "no-such-preset-*"]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "no presets match 'no-such-preset-*'" in captured.err


def test_list_architectures(capsys):
    assert run(["list", "--architectures"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names == zoo.list(kind="architectures") and "dcgan" in names
    assert run(["list", "--architectures", "dc*"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].split()[0] == "dcgan"
    assert zoo.architecture("dcgan").description in lines[0]


def test_info_on_a_folder_prints_the_metadata_as_json(preset, capsys):
    assert run(["info", preset]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["name"] == "tiny" and info["architecture"] == "dcgan"
    assert info["image_shape"] == [16, 16, 1] and info["latent_dim"] == 8
    assert info["location"] == str(preset)
    assert info["weights_sha256"] == zoo.file_sha256(preset / zoo.WEIGHTS_FILE)
    assert info["metrics"] == {"example": 1.0}
    for key in zoo.REQUIRED_METADATA:
        assert key in info


def test_info_by_registered_name(registered, preset, capsys):
    assert run(["info", registered]) == 0
    assert json.loads(capsys.readouterr().out)["location"] == str(preset)


# ---------------------------------------------------------------- sample
def test_sample_png_grid(preset, loaded, tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert run(["sample", preset, "--num", "4", "--seed", "3", "--output", out]) == 0
    assert "wrote 4 samples" in capsys.readouterr().out
    grid = kgan.images.load_png(out)
    assert grid.shape == (2 * 18 + 2, 2 * 18 + 2, 1)  # 2 x 2 tiles of 16 px, 2 px padding
    np.testing.assert_array_equal(grid, kgan.images.make_grid(loaded.generate_uint8(4, seed=3)))


def test_sample_npz_equals_generate_uint8(preset, loaded, tmp_path):
    out = tmp_path / "nested" / "samples.npz"
    assert run(["sample", preset, "--num", "6", "--seed", "5", "--output", out]) == 0
    with np.load(out) as npz:
        assert list(npz.keys()) == ["images"]
        array = npz["images"]
    assert array.dtype == np.uint8 and array.shape == (6, 16, 16, 1)
    np.testing.assert_array_equal(array, loaded.generate_uint8(6, seed=5))
    assert len(np.unique(array)) > 50  # real images, not a constant
    assert sorted(p.name for p in out.parent.iterdir()) == ["samples.npz"]  # no temp file left


def test_sample_folder_of_pngs(preset, loaded, tmp_path, capsys):
    out = tmp_path / "pngs"
    assert run(["sample", preset, "--num", "5", "--seed", "2", "--output", out]) == 0
    files = sorted(out.iterdir())
    assert [p.name for p in files] == [f"sample_{i:06d}.png" for i in range(5)]
    expected = loaded.generate_uint8(5, seed=2)
    for path, image in zip(files, expected):
        np.testing.assert_array_equal(kgan.images.load_png(path), image)
    # A non-empty folder is refused without --overwrite.
    capsys.readouterr()
    assert run(["sample", preset, "--num", "2", "--output", out]) == 2
    assert "not empty" in error_line(capsys.readouterr().err)
    assert run(["sample", preset, "--num", "5", "--seed", "9", "--output", out, "--overwrite"]) == 0
    np.testing.assert_array_equal(kgan.images.load_png(files[0]), loaded.generate_uint8(1, seed=9)[0])


def test_sample_to_an_existing_file_without_known_suffix_is_a_user_error(preset, tmp_path, capsys):
    out = tmp_path / "samples.dat"
    out.write_bytes(b"not a folder")
    assert run(["sample", preset, "--num", "2", "--output", out]) == 2
    assert "is not a folder" in error_line(capsys.readouterr().err)
    assert out.read_bytes() == b"not a folder"


def test_sample_interpolate(preset, loaded, tmp_path):
    rows, steps = 3, 4
    grid_path, npz_path = tmp_path / "interp.png", tmp_path / "interp.npz"
    for out in (grid_path, npz_path):
        argv = ["sample", preset, "--num", rows, "--interpolate", steps, "--seed", 7, "--output", out]
        assert run(argv) == 0
    # The grid has N rows of K columns.
    grid = kgan.images.load_png(grid_path)
    assert grid.shape == (rows * 18 + 2, steps * 18 + 2, 1)
    with np.load(npz_path) as npz:
        images = npz["images"].reshape(rows, steps, 16, 16, 1)
    np.testing.assert_array_equal(grid, kgan.images.make_grid(images.reshape(-1, 16, 16, 1), ncols=steps))
    # Row i goes from latent 2i to latent 2i+1 of the seed's latents.
    ends = loaded.latents(2 * rows, seed=7)
    starts = kgan.images.to_uint8(loaded.generate_from_latents(ends[0::2]))
    stops = kgan.images.to_uint8(loaded.generate_from_latents(ends[1::2]))
    np.testing.assert_array_equal(images[:, 0], starts)
    np.testing.assert_array_equal(images[:, -1], stops)
    # The inner steps are new images, not copies of the ends.
    for inner in images[:, 1:-1].swapaxes(0, 1):
        assert not np.array_equal(inner, starts) and not np.array_equal(inner, stops)


def test_sample_seed_determines_the_output(preset, tmp_path):
    paths = {name: tmp_path / f"{name}.npz" for name in ("a", "b", "c")}
    for name, seed in (("a", 11), ("b", 11), ("c", 12)):
        assert run(["sample", preset, "--num", "4", "--seed", seed, "--output", paths[name]]) == 0
    a, b, c = (np.load(paths[n])["images"] for n in ("a", "b", "c"))
    np.testing.assert_array_equal(a, b)
    assert np.mean(np.abs(a.astype(int) - c.astype(int))) > 10  # really different images


def test_sample_overwrite_semantics_for_png(preset, tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert run(["sample", preset, "--num", "4", "--seed", "0", "--output", out]) == 0
    first = out.read_bytes()
    capsys.readouterr()
    assert run(["sample", preset, "--num", "4", "--seed", "1", "--output", out]) == 2
    message = error_line(capsys.readouterr().err)
    assert str(out) in message and "--overwrite" in message
    assert out.read_bytes() == first
    assert run(["sample", preset, "--num", "4", "--seed", "1", "--output", out, "--overwrite"]) == 0
    assert out.read_bytes() != first
    assert kgan.images.load_png(out).shape == (38, 38, 1)


# ---------------------------------------------------------------- export
def test_export_writes_a_saved_model_and_refuses_an_existing_dir(preset, loaded, tmp_path, capsys):
    target = tmp_path / "served"
    assert run(["export", preset, target]) == 0
    assert "generate_uint8" in capsys.readouterr().out
    assert (target / "saved_model.pb").is_file() and (target / "variables").is_dir()
    served = tf.saved_model.load(str(target))
    assert set(served.signatures) == {"serving_default", "generate_uint8"}
    z = loaded.latents(2, seed=0)
    images = served.signatures["serving_default"](latents=tf.constant(z))["images"].numpy()
    np.testing.assert_allclose(images, loaded.generate_from_latents(z), atol=1e-5)

    before = sorted(p.relative_to(target) for p in target.rglob("*"))
    assert run(["export", preset, target]) == 2
    message = error_line(capsys.readouterr().err)
    assert "already exists" in message and "--overwrite" in message
    assert sorted(p.relative_to(target) for p in target.rglob("*")) == before

    # --overwrite replaces the earlier export whole: a file only it held is gone.
    (target / "stale.txt").write_text("from the earlier export")
    assert run(["export", preset, target, "--overwrite"]) == 0
    assert sorted(p.relative_to(target) for p in target.rglob("*")) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["served"]  # no staging folders


# ---------------------------------------------------------------- train
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One `kgan train` run (about 5 s), shared by the train tests."""
    output = tmp_path_factory.mktemp("train") / "run"
    argv = TRAIN_ARGS + ["--output", str(output)]
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = run(argv)
    assert code == 0, stderr.getvalue()
    return output, argv, stdout.getvalue()


def _log_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_train_writes_preset_samples_and_log(trained):
    output, argv, stdout = trained
    assert f"wrote preset {output / 'preset'}" in stdout
    assert sorted(p.name for p in (output / "preset").iterdir()) == sorted(zoo.PRESET_FILES)
    assert [p.name for p in (output / "samples").iterdir()] == ["epoch_0001.png"]
    assert kgan.images.load_png(output / "samples" / "epoch_0001.png").shape == (8 * 30 + 2,) * 2 + (1,)
    rows = _log_rows(output / "log.csv")
    assert len(rows) == 1 and rows[0]["epoch"] == "0"
    assert np.isfinite(float(rows[0]["d_loss"])) and np.isfinite(float(rows[0]["g_loss"]))
    assert not (output / "backup").exists() or not any((output / "backup").iterdir())

    metadata = zoo.read_metadata(output / "preset")
    assert metadata["recipe"] == "kgan " + " ".join(argv) == "kgan " + shlex.join(argv)
    assert metadata["name"] == "run" and metadata["architecture"] == "dcgan"
    assert metadata["dataset"] == "mnist_5k" and metadata["latent_dim"] == 8
    assert metadata["image_shape"] == [28, 28, 1]
    training = metadata["training"]
    assert training["epochs"] == 1 and training["batch_size"] == 250
    # --precision defaults to auto: recorded resolved (bf16 where the CPU has AMX).
    assert training["precision"] == kgan.performance.default_precision()
    assert training["steps_per_execution"] == 10 and training["jit_compile"] is False
    assert training["seed"] == 0
    assert (training["distribute"], training["replicas"]) == ("none", 1)
    # The thread pools TensorFlow ran with (this test's process: its defaults, 0).
    assert training["cpu_threads"] == kgan.performance.set_threads(None)
    for key in ("wall_time_s", "images_per_s_median_epoch", "final_d_loss", "final_g_loss"):
        assert isinstance(training[key], float) and training[key] > 0, key
    assert training["final_d_loss"] == pytest.approx(float(rows[0]["d_loss"]), abs=1e-4)

    model = zoo.load(output / "preset")
    assert isinstance(model, DCGAN)
    assert model.latent_dim == 8 and model.image_shape == (28, 28, 1)
    images = model.generate(4, seed=0)
    assert images.shape == (4, 28, 28, 1) and np.isfinite(images).all()
    # The epoch's grid is the trained generator's, on SampleGrid's latents of --seed 0.
    # Measured: 0.004 levels apart on average (the run trained in bfloat16, the
    # preset is float32); the grid of the generator before the epoch is 1.2 apart.
    latents = np.random.default_rng(0).standard_normal((64, 8)).astype("float32")
    expected = kgan.images.make_grid(kgan.images.to_uint8(model.generate_from_latents(latents)))
    grid = kgan.images.load_png(output / "samples" / "epoch_0001.png").astype(int)
    assert np.abs(grid - expected).mean() < 0.1


def test_train_eval_every_logs_the_fcd(tmp_path):
    output = tmp_path / "evaluated"
    argv = TRAIN_ARGS[:5] + ["2"] + TRAIN_ARGS[6:] + [
        "--output", output, "--eval-every", "2", "--eval-num", "200"]
    assert run(argv) == 0
    rows = _log_rows(output / "log.csv")
    # Evaluated after epoch 1 and epoch 2 (every 2): FCD of the MNIST evaluator.
    assert [float(r["fid"]) > 0 for r in rows] == [True, True]
    assert list((output / "tensorboard").glob("events.out.tfevents.*"))


def test_train_eval_every_logs_the_last_epoch_and_measures_the_training_data(tmp_path,
                                                                              monkeypatch):
    # 3 epochs, every 2: epochs 1 and 2 by the rule, and epoch 3 (the last),
    # whose figure only reached TensorBoard. The real set is the run's --split
    # at its --channels: an RGB folder trained with --channels 1 failed.
    from kgan import data

    rng = np.random.default_rng(0)
    for i in range(220):
        (tmp_path / "rgb").mkdir(exist_ok=True)
        (tmp_path / "rgb" / f"{i}.png").write_bytes(kgan.images.encode_png(
            rng.integers(0, 256, (28, 28, 3), dtype=np.uint8)))
    loads, load = [], data.load
    monkeypatch.setattr(data, "load", lambda *a, **k: loads.append(k) or load(*a, **k))
    output = tmp_path / "run"
    assert run(["train", "dcgan", "--dataset", tmp_path / "rgb", "--image-size", "28",
                "--channels", "1", "--split", "train", "--epochs", "3", "--batch-size", "110",
                "--latent-dim", "8", "--filters", "4", "--verbose", "0", "--output", output,
                "--eval-every", "2", "--eval-num", "200"]) == 0
    rows = _log_rows(output / "log.csv")
    assert [r["fid"] != "NA" and float(r["fid"]) > 0 for r in rows] == [True, True, True]
    assert all(k["channels"] == 1 and k["split"] == "train" for k in loads)


def test_train_refuses_more_eval_images_than_the_split_before_output_exists(tmp_path, capsys):
    # The refusal came at the first evaluation, after OUTPUT was created and an
    # epoch trained, and named --num, a flag kgan train does not have.
    output = tmp_path / "run"
    assert run(["train", "dcgan", "--dataset", "mnist_5k", "--split", "train[:256]", "--epochs",
                "1", "--batch-size", "64", "--latent-dim", "8", "--filters", "4", "--verbose",
                "0", "--output", output, "--eval-every", "1", "--eval-num", "300"]) == 2
    err = capsys.readouterr().err
    assert "--eval-num 300 is more than the 256 images of --dataset mnist_5k" in err, err
    assert not output.exists()


def test_train_wgan_gp_takes_n_critic_fresh_minibatches_per_step(tmp_path, monkeypatch):
    output = tmp_path / "wgan_gp"
    argv = ["train", "wgan_gp"] + TRAIN_ARGS[2:] + ["--n-critic", "2", "--output", output]
    built, build = [], cli._build_and_compile

    def keep_what_is_built(*args, **kwargs):  # the dataset and model kgan train fits
        built.append(build(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(cli, "_build_and_compile", keep_what_is_built)
    assert run(argv) == 0
    # What was trained: mnist_5k's 5,000 images in 10 steps of 2 x 250, each
    # critic update on its own --batch-size minibatch. Without repeat_batches
    # the steps would take 250 images, 125 per critic update, in 20 steps.
    (dataset, trained, _), = built
    assert dataset.element_spec.shape[0] == 500
    assert int(trained.g_optimizer.iterations.numpy()) == 10
    assert int(trained.d_optimizer.iterations.numpy()) == 20
    metadata = zoo.read_metadata(output / "preset")
    assert metadata["architecture"] == "wgan_gp" and metadata["training"]["n_critic"] == 2
    model = zoo.load(output / "preset")
    assert model.n_critic == 2 and model.batches_per_step == 2


def test_train_distribute_refuses_fewer_images_than_replicas(tmp_path, capsys):
    # conftest gives this process two logical CPU devices, so mirrored has 2 replicas.
    argv = TRAIN_ARGS[:-4] + ["--batch-size", "1", "--verbose", "0", "--distribute", "mirrored"]
    assert run(argv + ["--output", tmp_path / "x"]) == 2
    message = error_line(capsys.readouterr().err)
    assert "--batch-size 1 is the global batch, split evenly over 2 replicas" in message
    assert "pass a multiple of 2, e.g. --batch-size 2" in message and not (tmp_path / "x").exists()
    # An odd global batch failed in Keras's build after OUTPUT and its backup were made.
    assert run(TRAIN_ARGS[:-4] + ["--batch-size", "33", "--verbose", "0", "--distribute",
                                  "mirrored", "--output", tmp_path / "y"]) == 2
    message = error_line(capsys.readouterr().err)
    assert "pass a multiple of 2, e.g. --batch-size 32" in message and not (tmp_path / "y").exists()


def test_train_refuses_options_the_architecture_does_not_take(tmp_path, capsys):
    assert run(TRAIN_ARGS + ["--n-critic", "5", "--output", tmp_path / "x"]) == 2
    assert "dcgan does not take --n-critic" in error_line(capsys.readouterr().err)
    assert not (tmp_path / "x").exists()


def test_train_refuses_an_existing_preset(trained, capsys):
    output, argv, _ = trained
    sha = zoo.file_sha256(output / "preset" / zoo.WEIGHTS_FILE)
    log = (output / "log.csv").read_text()
    assert run(argv) == 2
    message = error_line(capsys.readouterr().err)
    assert str(output / "preset") in message and "--overwrite" in message
    assert zoo.file_sha256(output / "preset" / zoo.WEIGHTS_FILE) == sha
    assert (output / "log.csv").read_text() == log


def test_train_overwrite_starts_a_fresh_log(trained, tmp_path, monkeypatch):
    """`--overwrite` retrains from scratch: log.csv must not append to the old run's.

    Run from inside the folder with `--output .`, which also checks the
    default preset name is the folder's name (`Path('.').name` is empty).
    """
    folder = tmp_path / "again"
    shutil.copytree(trained[0], folder)
    monkeypatch.chdir(folder)
    assert run(TRAIN_ARGS + ["--output", ".", "--overwrite"]) == 0
    assert len(_log_rows(folder / "log.csv")) == 1
    metadata = zoo.read_metadata(folder / "preset")
    assert metadata["name"] == "again"
    assert metadata["recipe"] == "kgan " + " ".join(TRAIN_ARGS + ["--output", ".", "--overwrite"])
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) == []


# ---------------------------------------------------------------- user errors
def test_unknown_preset_suggests_a_close_name(registered, tmp_path, capsys):
    out = tmp_path / "x.png"
    assert run(["sample", registered[:-1] + "j", "--output", out]) == 2
    message = error_line(capsys.readouterr().err)
    assert f"Unknown preset '{registered[:-1]}j'" in message
    assert f"Did you mean '{registered}'" in message
    assert not out.exists()
    assert run(["info", registered + "x"]) == 2
    assert f"Did you mean '{registered}'" in error_line(capsys.readouterr().err)


def test_unknown_architecture(tmp_path, capsys):
    out = tmp_path / "run"
    assert run(["train", "dcgn", "--dataset", "mnist_5k", "--epochs", "1", "--output", out]) == 2
    message = error_line(capsys.readouterr().err)
    assert "Unknown architecture 'dcgn'" in message and "Did you mean 'dcgan'" in message
    assert not out.exists()


def test_unknown_dataset(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "dcgan", "--dataset", "no_such_dataset_kgan", "--epochs", "1", "--output", out]
    assert run(argv) == 2
    message = error_line(capsys.readouterr().err)
    assert "Unknown dataset 'no_such_dataset_kgan'" in message and "mnist_5k" in message
    assert not out.exists()


@pytest.mark.parametrize(
    "num, problem",
    [("0", "expected a positive integer, got 0"), ("abc", "expected a positive integer, got 'abc'")],
)
def test_bad_num_is_a_usage_error(preset, tmp_path, capsys, num, problem):
    out = tmp_path / "x.png"
    assert run(["sample", preset, "--num", num, "--output", out]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("kgan sample: error: argument --num"), err
    assert problem in lines[0] and "Traceback" not in err
    assert not out.exists()


def test_interpolate_needs_two_steps(preset, tmp_path, capsys):
    out = tmp_path / "x.png"
    assert run(["sample", preset, "--num", "2", "--interpolate", "1", "--output", out]) == 2
    assert "--interpolate needs at least 2 steps" in error_line(capsys.readouterr().err)
    assert not out.exists()


def test_missing_preset_folder(tmp_path, capsys):
    assert run(["info", tmp_path / "nowhere"]) == 2
    assert "does not exist" in error_line(capsys.readouterr().err)


# ---------------------------------------------------------------- subprocesses
def _subprocess(args, cwd):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd, timeout=120)


def test_help_runs_as_a_module_and_as_the_console_script(tmp_path):
    commands = [[sys.executable, "-m", "kgan.cli"]]
    script = Path(sys.executable).parent / "kgan"
    if script.is_file():  # the installed console script, when there is one
        commands.append([str(script)])
    for command in commands:
        result = _subprocess(command + ["--help"], tmp_path)
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.startswith("usage: kgan")
        for sub in ("list", "info", "sample", "train", "export"):
            assert sub in result.stdout


def test_user_error_exits_2_with_one_line_and_no_traceback(tmp_path):
    result = _subprocess([sys.executable, "-m", "kgan.cli", "sample", "no_such_preset_kgan",
                          "--output", "x.png"], tmp_path)
    assert result.returncode == 2
    # TensorFlow's native start-up logging may precede it; kgan prints one line.
    kgan_lines = [line for line in result.stderr.splitlines() if line.startswith("kgan")]
    assert len(kgan_lines) == 1, result.stderr[-2000:]
    assert kgan_lines[0].startswith("kgan: error: Unknown preset 'no_such_preset_kgan'.")
    assert "Error:" not in result.stderr  # no Python exception line
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not (tmp_path / "x.png").exists()


#: The CLI in a process of its own with two logical CPU devices.
_TWO_DEVICE_CLI = (
    TWO_CPU_DEVICES_PRELUDE + "import sys\nfrom kgan.cli import main\nsys.exit(main(sys.argv[1:]))\n"
)


# WGAN-GP's n_critic batches per step under two replicas: -m slow (its model
# trains on two replicas by default in test_architectures).
@pytest.mark.parametrize("arch", slow_except(["dcgan", "wgan_gp"], {"dcgan"}))
def test_train_distribute_mirrored_trains_on_every_device(arch, tmp_path):
    output = tmp_path / "run"
    argv = ["train", arch, "--dataset", "mnist_5k", "--split", "train[:512]", "--epochs", "1",
            "--batch-size", "64", "--latent-dim", "8", "--filters", "4", "--verbose", "0",
            "--distribute", "mirrored", "--output", str(output)]
    result = _subprocess([sys.executable, "-c", _TWO_DEVICE_CLI] + argv, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    kgan_lines = [line for line in result.stderr.splitlines() if line.startswith("kgan")]
    assert kgan_lines == ["kgan: --distribute mirrored: 2 replicas (/job:localhost/replica:0/"
                          "task:0/device:CPU:0, /job:localhost/replica:0/task:0/device:CPU:1), "
                          "--batch-size 64 images per step in all"], result.stderr[-3000:]
    training = zoo.read_metadata(output / "preset")["training"]
    assert (training["distribute"], training["replicas"]) == ("mirrored", 2)
    assert training["steps_per_execution"] == 1  # keras-team/keras#19246, see GAN.compile
    rows = _log_rows(output / "log.csv")
    assert len(rows) == 1 and np.isfinite(float(rows[0]["d_loss"]))
    model = zoo.load(output / "preset")  # a preset trained on two replicas loads anywhere
    assert np.isfinite(model.generate(4, seed=0)).all()
    if arch == "dcgan":  # an explicit value Keras cannot run there: one line, nothing written
        refused = _subprocess([sys.executable, "-c", _TWO_DEVICE_CLI] + argv[:-1]
                              + [str(tmp_path / "refused"), "--steps-per-execution", "10"], tmp_path)
        assert refused.returncode == 2
        # TensorFlow's native start-up logging may precede it; kgan prints one line.
        lines = [line for line in refused.stderr.splitlines() if line.startswith("kgan")]
        assert len(lines) == 1 and "Traceback" not in refused.stderr, refused.stderr[-3000:]
        assert lines[0].startswith(
            "kgan: error: --steps-per-execution 10 cannot run with --distribute mirrored over 2 "
            "replicas")
        assert not (tmp_path / "refused").exists()
        refused = _subprocess([sys.executable, "-c", _TWO_DEVICE_CLI] + argv[:-1]
                              + [str(tmp_path / "refused"), "--jit-compile"], tmp_path)
        lines = [line for line in refused.stderr.splitlines() if line.startswith("kgan")]
        assert refused.returncode == 2 and len(lines) == 1, refused.stderr[-3000:]
        assert lines[0].startswith("kgan: error: --jit-compile cannot run with --distribute "
                                   "mirrored over 2 CPU devices")
        assert not (tmp_path / "refused").exists()


def test_bench_reports_each_precision(tmp_path, capsys):
    report = tmp_path / "bench.json"
    code = run(["bench", "dcgan", "--precision", "float32,mixed_bfloat16", "--batch-size", "16",
                "--steps", "3", "--repeats", "3", "--filters", "4", "--latent-dim", "8", "--json", report])
    assert code == 0
    out = capsys.readouterr().out
    assert "float32" in out and "mixed_bfloat16" in out
    rows = json.loads(report.read_text())
    assert [r["precision"] for r in rows] == ["float32", "mixed_bfloat16"]
    for row in rows:
        assert row["images_per_s"] > 0 and len(row["repeats_images_per_s"]) == 3
        # The median repeat (rounding to 4 digits is monotonic: the middle one of three).
        assert row["images_per_s"] == sorted(row["repeats_images_per_s"])[1]
        assert row["step_ms"] == pytest.approx(1000 * 16 / row["images_per_s"], rel=0.01)


def test_bench_rejects_unknown_precision(capsys):
    assert run(["bench", "dcgan", "--precision", "float8"]) == 2
    assert "unknown precision" in error_line(capsys.readouterr().err)


# ---------------------------------------------------------------- translate
@pytest.fixture(scope="module")
def cyclegan_preset(tmp_path_factory):
    """A tiny untrained CycleGAN preset (16x16 grey crops)."""
    from kgan.models import CycleGAN

    folder = tmp_path_factory.mktemp("presets") / "tiny_cyclegan"
    model = CycleGAN.from_image_shape(
        (16, 16, 1), filters=4, num_residual_blocks=1, disc_layers=1, seed=0
    )
    samples = np.zeros((8, 16, 16, 1), "float32")
    return zoo.save_preset(model, folder, METADATA, samples=samples)


def test_translate_files_and_folders_at_their_own_size(cyclegan_preset, tmp_path, capsys):
    rng = np.random.default_rng(0)
    kgan.images.save_png(rng.integers(0, 256, (37, 53, 1), dtype=np.uint8), tmp_path / "one.png")
    for i in range(2):
        kgan.images.save_png(
            rng.integers(0, 256, (20, 24, 3), dtype=np.uint8), tmp_path / "many" / "sub" / f"{i}.png"
        )
    out = tmp_path / "out"
    code = run(["translate", cyclegan_preset, tmp_path / "one.png", tmp_path / "many",
                "--direction", "b_to_a", "--output", out])
    assert code == 0, capsys.readouterr().err
    assert kgan.images.load_png(out / "one.png").shape == (37, 53, 1)
    # RGB files are read as the domain's grey channel; sub-folders are kept.
    assert kgan.images.load_png(out / "many" / "sub" / "1.png").shape == (20, 24, 1)
    model = zoo.load(cyclegan_preset)
    expected = model.translate(kgan.images.load_png(tmp_path / "one.png"), direction="b_to_a")
    np.testing.assert_array_equal(kgan.images.load_png(out / "one.png"), expected)
    # The RGB file went in as its grey (luma) image, not as one of its channels.
    rgb = tmp_path / "many" / "sub" / "1.png"
    grey = tf.io.decode_png(rgb.read_bytes(), channels=1).numpy()
    assert not np.array_equal(grey, kgan.images.load_png(rgb)[..., :1])
    np.testing.assert_array_equal(kgan.images.load_png(out / "many" / "sub" / "1.png"),
                                  model.translate(grey, direction="b_to_a"))
    # A second run refuses the non-empty folder and leaves it as it was.
    assert run(["translate", cyclegan_preset, tmp_path / "one.png", "--output", out]) == 2
    assert "--overwrite" in error_line(capsys.readouterr().err)
    assert sorted(p.name for p in out.iterdir()) == ["many", "one.png"]


def test_translate_reads_webp_gif_and_bmp_into_a_grey_model(cyclegan_preset, tmp_path, capsys):
    # It decoded with channels=1, which TensorFlow's WebP, GIF and BMP decoders refuse.
    import tensorflow as tf

    image = pytest.importorskip("PIL.Image")  # Pillow comes with tensorboard
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    (tmp_path / "in").mkdir()
    formats = {"a.bmp": "BMP", "b.gif": "GIF"}
    if hasattr(tf.io, "decode_webp"):
        formats["c.webp"] = "WEBP"
    for name, fmt in formats.items():
        picture = image.fromarray(pixels)
        if fmt == "WEBP":  # with alpha, which TensorFlow decodes to 4 channels only
            picture = image.fromarray(np.dstack([pixels, np.full((8, 8), 128, np.uint8)]))
        picture.save(tmp_path / "in" / name, fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    out = tmp_path / "out"
    assert run(["translate", cyclegan_preset, tmp_path / "in", "--output", out]) == 0, (
        capsys.readouterr().err)
    model = zoo.load(cyclegan_preset)
    for name in formats:
        source = tf.io.decode_image(tf.io.read_file(str(tmp_path / "in" / name)),
                                    expand_animations=False).numpy()[..., :3]
        grey = tf.image.rgb_to_grayscale(source).numpy()
        np.testing.assert_array_equal(
            kgan.images.load_png(out / "in" / Path(name).with_suffix(".png")),
            model.translate(grey, direction="a_to_b"))


@pytest.mark.parametrize(
    "make_input, message",
    [
        (lambda d: d / "missing.png", "does not exist"),
        (lambda d: (d / "notes.txt").write_text("x") and d / "notes.txt", "is not an image file kgan reads (.png, .jpg"),
        (lambda d: (d / "empty").mkdir() or d / "empty", "holds no image files (.png, .jpg"),
        (lambda d: (d / "broken.png").write_bytes(b"\x89PNG garbage") and d / "broken.png", "cannot decode"),
    ],
)
def test_translate_bad_inputs_are_one_line(cyclegan_preset, tmp_path, capsys, make_input, message):
    source = make_input(tmp_path)
    assert run(["translate", cyclegan_preset, source, "--output", tmp_path / "out"]) == 2
    assert message in error_line(capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


def test_translate_names_the_file_it_cannot_translate(cyclegan_preset, tmp_path, capsys):
    kgan.images.save_png(np.zeros((8, 8, 1), np.uint8), tmp_path / "inputs" / "fine.png")
    kgan.images.save_png(np.zeros((4, 40, 1), np.uint8), tmp_path / "inputs" / "tiny.png")
    assert run(["translate", cyclegan_preset, tmp_path / "inputs", "--output", tmp_path / "out"]) == 2
    line = error_line(capsys.readouterr().err)
    assert f"cannot translate {tmp_path / 'inputs' / 'tiny.png'}: " in line
    assert "at least 5x5 pixels" in line and "got 4x40" in line
    assert not (tmp_path / "out").exists()


def test_translate_refuses_an_output_inside_an_input_folder(cyclegan_preset, tmp_path, capsys):
    # Folders are read with their sub-folders: translating photos/ again would
    # translate photos/out/ too.
    kgan.images.save_png(np.zeros((8, 8, 1), np.uint8), tmp_path / "photos" / "a.png")
    output = tmp_path / "photos" / "out"
    assert run(["translate", cyclegan_preset, tmp_path / "photos", "--output", output]) == 2
    line = error_line(capsys.readouterr().err)
    assert "lies inside the input folder" in line and "translate these outputs too" in line
    assert not output.exists()
    # A file input's folder is not read whole: an output beside it is fine.
    assert run(["translate", cyclegan_preset, tmp_path / "photos" / "a.png", "--output",
                tmp_path / "photos" / "translated"]) == 0


def test_translate_refuses_a_latent_model(preset, tmp_path, capsys):
    kgan.images.save_png(np.zeros((16, 16, 1), np.uint8), tmp_path / "x.png")
    assert run(["translate", preset, tmp_path / "x.png", "--output", tmp_path / "out"]) == 2
    assert "image-to-image" in error_line(capsys.readouterr().err)


def test_train_cyclegan_on_two_domains_writes_a_translation_sheet(tmp_path):
    output = tmp_path / "cyclegan"
    argv = ["train", "cyclegan", "--dataset", "digits_8x8", "--dataset-b", "mnist_5k",
            "--image-size", "16", "--epochs", "2", "--batch-size", "500", "--filters", "4",
            "--num-residual-blocks", "1", "--disc-layers", "1", "--verbose", "0", "--output", output]
    assert run(argv) == 0
    metadata = zoo.read_metadata(output / "preset")
    assert metadata["dataset"] == "digits_8x8 <-> mnist_5k"
    assert metadata["architecture"] == "cyclegan"
    # Rows A, G(A), B, F(B) of 8 images each.
    sheet = kgan.images.load_png(output / "preset" / "samples.png")
    assert sheet.shape == (4 * 18 + 2, 8 * 18 + 2, 1)
    model = zoo.load(output / "preset")
    assert model.translate(np.zeros((5, 7, 1), np.uint8), "a_to_b").shape == (5, 7, 1)


@pytest.mark.parametrize(
    "extra, message",
    [
        ([], "--dataset digits_8x8 is one domain: name domain B with --dataset-b (a dataset name "
             "or folder)."),
        (["--dataset-b", "mnist_5k", "--image-size", "16"],
         "--image-size 16 is too small for the PatchGAN discriminator with 3 stride-2 layers (the "
         "default --disc-layers), which needs images of at least 24x24: pass --image-size 24 or "
         "more, or --disc-layers 2 or fewer"),
        (["--dataset-b", "mnist_5k", "--image-size", "8", "--disc-layers", "2"],
         "--image-size 8 is too small for the PatchGAN discriminator with --disc-layers 2, which "
         "needs images of at least 12x12: pass --image-size 12 or more, or --disc-layers 1"),
    ],
)
def test_train_cyclegan_errors_name_flags_not_python_arguments(extra, message, tmp_path, capsys):
    argv = ["train", "cyclegan", "--dataset", "digits_8x8", "--epochs", "1", "--batch-size", "500",
            "--filters", "4", "--num-residual-blocks", "1", "--output", tmp_path / "run"] + extra
    assert run(argv) == 2
    line = error_line(capsys.readouterr().err)
    assert message in line
    assert "unpaired(" not in line and "disc_layers" not in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "cyclegan", "--dataset", "digits_8x8", "--dataset-b", "mnist_5k", "--ema-decay", "0.9"],
         "does not take --ema-decay"),
        (TRAIN_ARGS[:4] + ["--dataset-b", "digits_8x8"], "--dataset-b is for image-to-image"),
        (["train", "cyclegan", "--dataset", "digits_8x8", "--dataset-b", "mnist_5k", "--n-critic", "2"],
         "does not take --n-critic"),
    ],
)
def test_train_image_to_image_options_are_checked(tmp_path, capsys, argv, message):
    if "--epochs" not in argv:
        argv = argv + ["--epochs", "1"]
    assert run(argv + ["--output", tmp_path / "x"]) == 2
    assert message in error_line(capsys.readouterr().err)


# ---------------------------------------------------------------- synthesize
@pytest.fixture(scope="module")
def conditional_preset(tmp_path_factory):
    """A tiny untrained 3-class ConditionalGAN preset (16x16x1)."""
    from kgan.models import ConditionalGAN

    model = spread_weights(ConditionalGAN.from_image_shape(
        (16, 16, 1), 3, latent_dim=4, filters=2, embedding_dim=2, seed=0))
    folder = tmp_path_factory.mktemp("presets") / "tiny_conditional"
    return zoo.save_preset(model, folder, dict(METADATA, name="tiny_conditional"))


def test_synthesize_writes_class_folders_keras_reads(conditional_preset, tmp_path, capsys):
    output = tmp_path / "synthetic"
    assert run(["synthesize", conditional_preset, "--per-class", 5, "--output", output,
                "--seed", 1, "--batch-size", 4]) == 0
    assert "wrote 15 images (5 per class, 3 classes)" in capsys.readouterr().out
    assert sorted(p.name for p in output.iterdir()) == ["0", "1", "2"]  # no staging left
    dataset = tf.keras.utils.image_dataset_from_directory(
        output, labels="inferred", color_mode="grayscale", image_size=(16, 16), batch_size=None,
        shuffle=False, verbose=False)
    assert dataset.class_names == ["0", "1", "2"]
    labels = np.array([int(label) for _, label in dataset])
    np.testing.assert_array_equal(np.bincount(labels), [5, 5, 5])
    # The PNGs are the model's images for those labels (uint8, exactly).
    model = zoo.load(conditional_preset)
    expected = kgan.augment.synthetic_dataset(model, num_per_class=5, seed=1, batch_size=4,
                                              image_dtype="uint8", shuffle=False)
    first = kgan.images.load_png(output / "1" / "1_000000.png")
    np.testing.assert_array_equal(first, list(expected)[5][0].numpy())


def test_a_conditional_gan_trained_on_class_folders_synthesizes_into_folders_of_those_names(
        tmp_path, capsys):
    rng = np.random.default_rng(0)
    for name in ("one", "seven", "three"):  # labels 0, 1, 2: sorted names
        (tmp_path / "named" / name).mkdir(parents=True)
        for i in range(4):
            (tmp_path / "named" / name / f"{i}.png").write_bytes(kgan.images.encode_png(
                rng.integers(0, 256, (20, 20, 1), dtype=np.uint8)))
    assert run(["train", "conditional_gan", "--dataset", tmp_path / "named", "--image-size", "16",
                "--channels", "1", "--epochs", "1", "--batch-size", "6", "--filters", "2",
                "--latent-dim", "4", "--verbose", "0", "--output", tmp_path / "run"]) == 0
    preset = tmp_path / "run" / "preset"
    assert zoo.read_metadata(preset)["class_names"] == ["one", "seven", "three"]
    output = tmp_path / "synthetic"
    assert run(["synthesize", preset, "--per-class", 2, "--output", output]) == 0
    assert sorted(p.name for p in output.iterdir()) == ["one", "seven", "three"]
    assert sorted(p.name for p in (output / "seven").iterdir()) == ["seven_000000.png",
                                                                   "seven_000001.png"]
    # Read back as labelled data, each class keeps its label: seven is 1 in both.
    expected = kgan.augment.synthetic_dataset(zoo.load(preset), num_per_class=2, seed=0,
                                              image_dtype="uint8", shuffle=False)
    np.testing.assert_array_equal(kgan.images.load_png(output / "seven" / "seven_000000.png"),
                                  list(expected)[2][0].numpy())
    assert kgan.data.from_folder(output, image_size=16, channels=1, with_labels=True,
                                 batch_size=6).class_names == ["one", "seven", "three"]


@pytest.mark.parametrize("image_paths, expected", [
    # The error named num_classes, an argument the user never passed.
    (["seven/0.png"], ["has one class sub-folder (seven)", "at least two classes"]),
    # It suggested with_labels=False, which no flag sets.
    (["0.png", "1.png"], ["lie directly in it", "such as dcgan"]),
])
def test_a_conditional_gan_on_a_folder_without_classes_says_what_to_do(
        tmp_path, capsys, image_paths, expected):
    for name in image_paths:
        (tmp_path / "digits" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "digits" / name).write_bytes(
            kgan.images.encode_png(np.zeros((20, 20, 1), np.uint8)))
    assert run(["train", "conditional_gan", "--dataset", tmp_path / "digits", "--image-size", "16",
                "--epochs", "1", "--batch-size", "1", "--output", tmp_path / "run"]) == 2
    err = capsys.readouterr().err
    assert all(part in err for part in expected), err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("names", [["b", "a", "c"], ["x", "../y", "z"], ["a", "b"]])
def test_synthesize_names_folders_by_label_when_class_names_would_not_read_back(
        conditional_preset, tmp_path, names):
    # Out of label order, unsafe as folders, or not one per class.
    copy = tmp_path / "preset"
    shutil.copytree(conditional_preset, copy)
    metadata = json.loads((copy / zoo.METADATA_FILE).read_text())
    (copy / zoo.METADATA_FILE).write_text(json.dumps({**metadata, "class_names": names}))
    assert run(["synthesize", copy, "--per-class", 1, "--output", tmp_path / "s"]) == 0
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["0", "1", "2"]


def test_synthesize_refuses_an_unconditional_preset(preset, tmp_path, capsys):
    assert run(["synthesize", preset, "--per-class", 2, "--output", tmp_path / "s"]) == 2
    line = error_line(capsys.readouterr().err)
    assert "is a DCGAN, which is not class-conditional" in line and "kgan sample" in line
    assert not (tmp_path / "s").exists()


def test_synthesize_sends_a_cyclegan_to_kgan_translate(tmp_path, capsys):
    # It said "use kgan sample", which refuses CycleGANs.
    assert run(["synthesize", "cyclegan_digits", "--per-class", 1, "--output", tmp_path / "s"]) == 2
    line = error_line(capsys.readouterr().err)
    assert "is a CycleGAN, which is not class-conditional" in line and "use kgan translate" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["x.png", "x.NPZ", "x.jpg"])
def test_synthesize_refuses_a_file_name_for_its_folder(conditional_preset, tmp_path, capsys, name):
    # It made a folder named x.png.
    assert run(["synthesize", conditional_preset, "--per-class", 1, "--output", tmp_path / name]) == 2
    assert "writes a folder of class folders; " in error_line(capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_synthesize_bad_per_class_is_a_usage_error(conditional_preset, tmp_path, capsys, value):
    assert run(["synthesize", conditional_preset, "--per-class", value, "--output", tmp_path / "s"]) == 2
    err = capsys.readouterr().err
    assert "argument --per-class: expected a positive integer" in err and len(err.strip().splitlines()) == 1


def test_synthesize_keeps_a_non_empty_output_unless_overwrite(conditional_preset, tmp_path, capsys):
    output = tmp_path / "s"
    output.mkdir()
    (output / "keep.txt").write_text("x")
    assert run(["synthesize", conditional_preset, "--per-class", 1, "--output", output]) == 2
    assert "not empty; choose another, or pass --overwrite to replace the folder" in error_line(
        capsys.readouterr().err)
    assert run(["synthesize", conditional_preset, "--per-class", 1, "--output", output, "--overwrite"]) == 0
    assert sorted(p.name for p in output.iterdir()) == ["0", "1", "2"]


def test_sigterm_removes_the_partial_synthesize_folder(conditional_preset, tmp_path, monkeypatch, capsys):
    # `timeout -s TERM` killed the process before write_folder's cleanup ran:
    # a hidden out/.big-XXXX stayed, and no later run removed it. Ctrl-C cleaned up.
    import signal

    from kgan import images as kgan_images

    encode_png = kgan_images.encode_png

    def terminated_after_a_few(image, calls=[]):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return encode_png(image)

    monkeypatch.setattr(kgan_images, "encode_png", terminated_after_a_few)
    assert run(["synthesize", conditional_preset, "--per-class", 5, "--output",
                tmp_path / "big"]) == 128 + signal.SIGTERM
    assert capsys.readouterr().err.startswith("kgan: terminated; no output was left")
    assert list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored after the command


# ------------------------------------------------------------- system errors
@pytest.mark.parametrize("errno_name, expected", [
    ("ENOSPC", r"no space left on the device while writing runs/out.npz: free space or choose an output on another disk"),
    ("EACCES", r"permission denied for runs/out.npz: choose an output folder you can write to"),
    ("EEXIST", r"cannot write runs/out.npz: a file is in the way where a folder is needed .*choose another output path or move that file"),
])
def test_system_errors_name_the_file_the_user_gave_and_the_fix(errno_name, expected):
    """A full disk or a denied write names the output (not kgan's temporary name) and a fix."""
    import errno as errno_module
    import re

    code = getattr(errno_module, errno_name)
    err = OSError(code, os.strerror(code), "runs/.tmp-4242-140-out.npz")  # atomic.write_file's
    assert re.fullmatch(expected, cli._os_error_message(err))


def test_a_full_disk_inside_tensorflow_is_one_clear_line(monkeypatch, tmp_path, capsys):
    def full_disk(args):
        raise tf.errors.ResourceExhaustedError(None, None, "tmp/x; No space left on device [Op:SaveV2]")

    monkeypatch.setattr(cli, "cmd_export", full_disk)
    assert cli.main(["export", "dcgan_mnist", str(tmp_path / "exported")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"kgan: error: no space left on the device while writing {tmp_path / 'exported'}: "
                   "free space or choose an output on another disk")


def test_other_tensorflow_errors_keep_their_traceback(monkeypatch, tmp_path):
    def bug(args):
        raise tf.errors.InternalError(None, None, "something inside TensorFlow broke")

    monkeypatch.setattr(cli, "cmd_export", bug)
    with pytest.raises(tf.errors.InternalError):
        cli.main(["export", "dcgan_mnist", str(tmp_path / "exported")])


def test_evaluate_writes_its_json_atomically_and_still_prints_it(tmp_path, capsys, monkeypatch):
    target = tmp_path / "results" / "fid.json"
    argv = ["evaluate", "dcgan_mnist", "--metrics", "fid", "--num", "200", "--json", str(target)]
    assert cli.main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert json.loads(target.read_text()) == printed
    assert sorted(p.name for p in target.parent.iterdir()) == ["fid.json"]
    # A write that fails halfway (a full disk) leaves the earlier file whole and
    # no temporary file; the figures are still printed (a file written in
    # place was left truncated).
    previous = target.read_bytes()
    fill_the_disk_halfway_through_writes(monkeypatch)
    assert cli.main(argv) == 2
    out, err = capsys.readouterr()
    assert json.loads(out)["metrics"] == printed["metrics"]
    assert f"kgan: error: no space left on the device while writing {target}" in err
    assert target.read_bytes() == previous
    assert sorted(p.name for p in target.parent.iterdir()) == ["fid.json"]


@pytest.mark.parametrize("error", ["dataset_unavailable", "bench_worker"])
def test_runtime_errors_a_user_can_act_on_are_one_line(error, monkeypatch, capsys):
    # Both are RuntimeErrors: catching one kind must not turn the other into a traceback.
    from kgan import bench, data

    raised = (data.DatasetUnavailableError("cifar10 could not be downloaded; copy it to ...")
              if error == "dataset_unavailable"
              else bench.BenchWorkerError("the bench worker for 'x' failed: it was killed"))

    def failing(*args, **kwargs):
        raise raised

    monkeypatch.setattr(cli, "cmd_train", failing)
    status = cli.main(["train", "dcgan", "--dataset", "cifar10", "--epochs", "1", "--output", "o"])
    assert status == (2 if error == "dataset_unavailable" else 1)
    err = capsys.readouterr().err.strip()
    assert err.startswith("kgan: error: ") and len(err.splitlines()) == 1 and str(raised) in err


def _tree(folder):
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*"))


@pytest.mark.parametrize("command", ["sample", "export", "synthesize_preset", "translate_inputs"])
def test_overwrite_never_deletes_what_the_command_reads(command, tmp_path, capsys):
    # Outputs replace their folder whole; one that is, or holds, an input
    # would take the input with it.
    run_dir = tmp_path / "run"
    if command == "translate_inputs":
        run_dir.mkdir()
        (run_dir / "digit.png").write_bytes(b"an input image")
        argv = ["translate", "cyclegan_digits", str(run_dir), "--output", str(run_dir)]
    else:
        name = "cgan_mnist_50shot" if command == "synthesize_preset" else "dcgan_mnist"
        shutil.copytree(zoo.resolve(name), run_dir / "preset")
        preset = str(run_dir / "preset")
        argv = {"sample": ["sample", preset, "--num", "2", "--output", str(run_dir)],
                "export": ["export", preset, str(run_dir)],
                "synthesize_preset": ["synthesize", preset, "--per-class", "1",
                                      "--output", str(run_dir)]}[command]
    before = _tree(run_dir)
    assert run(argv + ["--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "which this command reads; replacing it would delete that input" in err
    assert _tree(run_dir) == before


def test_a_not_empty_output_says_what_overwrite_would_delete(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert run(["sample", "dcgan_mnist", "--num", "2", "--output", str(tmp_path)]) == 2
    assert "pass --overwrite to replace the folder and everything in it" in capsys.readouterr().err


@pytest.mark.parametrize("argv,says", [
    (["sample", "dcgan_mnist", "--num", "2", "--output", "{tmp}/a.jpg"], "looks like a .jpg file"),
    (["export", "dcgan_mnist", "{tmp}/x/generator.tflite", "--format", "tflite"],
     "looks like the file. Give its folder"),
])
def test_an_output_named_like_another_kind_of_file_is_refused(argv, says, tmp_path, capsys):
    # Else `a.jpg` became a folder of PNGs and `generator.tflite` a folder holding the file.
    assert run([a.format(tmp=tmp_path) for a in argv]) == 2
    assert says in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_train_cyclegan_on_three_images_a_side_and_rgb_against_grey(tmp_path, capsys):
    # Domains smaller than the 8-image rows of the sample sheet: the sheet
    # shows what they have (it used to fail after the epoch). The errors name
    # flags, not Python arguments; --channels 1 makes both domains grey.
    rng = np.random.default_rng(0)
    for side, channels in (("a", 3), ("b", 1)):
        (tmp_path / side).mkdir()
        for i in range(3):
            (tmp_path / side / f"{i}.png").write_bytes(kgan.images.encode_png(
                rng.integers(0, 256, (16, 16, channels), dtype=np.uint8)))
    argv = ["train", "cyclegan", "--dataset", tmp_path / "a", "--dataset-b", tmp_path / "b",
            "--epochs", "1", "--batch-size", "1", "--filters", "4", "--num-residual-blocks", "1",
            "--disc-layers", "1", "--verbose", "0", "--output", tmp_path / "run"]
    assert run(argv) == 2
    assert "on the command line, --image-size 256" in error_line(capsys.readouterr().err)
    assert run(argv + ["--image-size", "16", "--channels", "1"]) == 0
    sheet = kgan.images.load_png(tmp_path / "run" / "preset" / "samples.png")
    assert sheet.shape == (4 * 18 + 2, 3 * 18 + 2, 1)  # rows A, G(A), B, F(B) of 3 images


def test_bench_on_too_small_a_split_names_the_flags(capsys):
    assert run(["bench", "dcgan", "--split", "train[:10]", "--batch-size", "64"]) == 2
    line = error_line(capsys.readouterr().err)
    assert "Lower --batch-size to at most 10, or choose a larger --split" in line
    assert "drop_remainder" not in line


@pytest.mark.parametrize("arch, folders, output, says", [
    ("dcgan", ["data/grey"], "data/grey/run", "--output {tmp}/data/grey/run lies inside --dataset "
     "{tmp}/data/grey: folders are read with all their sub-folders"),
    ("cyclegan", ["data/grey", "data/rgb"], "data/rgb", "--output {tmp}/data/rgb is --dataset-b "
     "{tmp}/data/rgb"),
    ("cyclegan", ["data/grey", "data/rgb"], "data", "--output {tmp}/data holds --dataset "
     "{tmp}/data/grey"),
])
def test_train_refuses_an_output_in_or_over_a_dataset_folder(arch, folders, output, says, tmp_path, capsys):
    # A run in grey/run wrote grey/run/preset/samples.png, which the next run
    # on grey read as a training image.
    for folder in folders:
        kgan.images.save_png(np.zeros((8, 8, 1), np.uint8), tmp_path / folder / "0.png")
    datasets = ["--dataset", tmp_path / folders[0]] + (["--dataset-b", tmp_path / folders[1]]
                                                       if len(folders) > 1 else [])
    before = _tree(tmp_path)
    argv = ["train", arch, *datasets, "--image-size", "8", "--epochs", "1", "--output",
            tmp_path / output, "--overwrite"]
    assert run(argv) == 2
    assert says.format(tmp=tmp_path) in error_line(capsys.readouterr().err)
    assert _tree(tmp_path) == before


def test_train_cyclegan_on_grey_folders(tmp_path):
    # The paper's batch of 1 per domain is the default (it was 64), and
    # folders of grey PNGs make a grey translator (they were read as RGB).
    rng = np.random.default_rng(0)
    for side, count in (("grey", 3), ("grey_b", 2)):
        for i in range(count):
            kgan.images.save_png(rng.integers(0, 256, (20, 24, 1), dtype=np.uint8),
                                 tmp_path / side / f"{i}.png")
    output = tmp_path / "run"
    argv = ["train", "cyclegan", "--dataset", tmp_path / "grey", "--dataset-b", tmp_path / "grey_b",
            "--image-size", "8", "--epochs", "2", "--filters", "4", "--num-residual-blocks", "1",
            "--disc-layers", "1", "--verbose", "0", "--output", output]
    assert run(argv) == 0
    metadata = zoo.read_metadata(output / "preset")
    assert metadata["training"]["batch_size"] == 1
    assert zoo.load(output / "preset").image_shape_a == (8, 8, 1)
    # As --help promises, a sheet per epoch: rows A, G(A), B, F(B) of the same
    # images as the preset's samples.png (2 a row: the smaller domain's size);
    # the last one is the final model's, so it is that sheet.
    grids = sorted(p.name for p in (output / "samples").iterdir())
    assert grids == ["epoch_0001.png", "epoch_0002.png"]
    last = kgan.images.load_png(output / "samples" / "epoch_0002.png")
    assert last.shape == (4 * 10 + 2, 2 * 10 + 2, 1)
    np.testing.assert_array_equal(last, kgan.images.load_png(output / "preset" / "samples.png"))
    # ... and its rows are the preset's translations of its A and B rows (each
    # tile 8 px after 2 px of padding), G: a_to_b, F: b_to_a.
    tiles = np.stack([np.stack([last[2 + 10 * r:10 * r + 10, 2 + 10 * c:10 * c + 10]
                                for c in range(2)]) for r in range(4)])
    translator = zoo.load(output / "preset")
    # Measured: at most 1 level apart (trained in bfloat16 here, the preset is
    # float32); the other direction's translations are 99 and 107 apart.
    for row, direction in ((0, "a_to_b"), (2, "b_to_a")):
        translated = translator.translate(tiles[row], direction=direction).astype(int)
        assert np.abs(tiles[row + 1] - translated).max() <= 3, direction


def test_train_dcgan_on_a_folder_of_images(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "digits").mkdir()
    for i in range(10):
        (tmp_path / "digits" / f"{i}.png").write_bytes(kgan.images.encode_png(
            rng.integers(0, 256, (20, 20, 1), dtype=np.uint8)))
    argv = ["train", "dcgan", "--dataset", tmp_path / "digits", "--image-size", "16",
            "--channels", "1", "--epochs", "1", "--batch-size", "5", "--filters", "4",
            "--latent-dim", "8", "--verbose", "0", "--output", tmp_path / "run"]
    assert run(argv) == 0
    assert zoo.load(tmp_path / "run" / "preset").image_shape == (16, 16, 1)


@pytest.mark.parametrize("argv", [
    ["export", "dcgan_mnist", "..", "--overwrite"],
    ["export", "dcgan_mnist", "..", "--overwrite", "--format", "tflite"],
    ["export", "dcgan_mnist", ".", "--overwrite"],
    ["sample", "dcgan_mnist", "--num", "2", "--output", "..", "--overwrite"],
    ["synthesize", "cgan_mnist_50shot", "--per-class", "1", "--output", "..", "--overwrite"],
    ["translate", "cyclegan_digits", "{image}", "--output", ".", "--overwrite"],
])
def test_an_output_folder_that_is_or_holds_the_current_folder_is_refused(argv, tmp_path,
                                                                          monkeypatch, capsys):
    # `cd dot3/my_model && kgan export dcgan_mnist .. --overwrite` wrote
    # saved_model.pb and variables/ over the files in dot3/my_model.
    work = tmp_path / "dot3" / "my_model"
    work.mkdir(parents=True)
    (work / "saved_model.pb").write_text("the user's own file")
    image = tmp_path / "digit.png"
    image.write_bytes(kgan.images.encode_png(np.zeros((8, 8, 1), np.uint8)))
    monkeypatch.chdir(work)
    before = _tree(tmp_path)
    assert run([a.format(image=image) for a in argv]) == 2
    line = error_line(capsys.readouterr().err)
    assert "is the current folder" in line or "is a folder holding the current folder" in line
    assert "Name a new folder for it" in line
    assert _tree(tmp_path) == before
    assert (work / "saved_model.pb").read_text() == "the user's own file"


@pytest.mark.parametrize("extra", [[], ["--format", "tflite"]])
def test_export_over_a_file_is_refused_even_with_overwrite(extra, tmp_path, capsys):
    # `kgan export wgan_mnist report.txt --overwrite` replaced the file with a folder.
    report = tmp_path / "report.txt"
    report.write_text("draft")
    assert run(["export", "dcgan_mnist", report, "--overwrite"] + extra) == 2
    assert f"{report} exists and is not a folder" in error_line(capsys.readouterr().err)
    assert report.read_text() == "draft" and _tree(tmp_path) == ["report.txt"]


@pytest.mark.parametrize("argv, output", [
    (["export", "dcgan_mnist", "{ro}/served"], "{ro}/served"),
    (["sample", "dcgan_mnist", "--num", "2", "--output", "{ro}/d.png"], "{ro}/d.png"),
    (["sample", "dcgan_mnist", "--num", "2", "--output", "{ro}/samples"], "{ro}/samples"),
    (["sample", "dcgan_mnist", "--num", "2", "--output", "{ro}/new/d.png"], "{ro}/new"),
])
def test_a_read_only_file_system_is_named_like_a_denied_permission(argv, output, tmp_path,
                                                                    monkeypatch, capsys):
    # EROFS is no PermissionError: the errors named kgan's hidden temporary
    # paths ("permission denied for ro/.served-ijfnpb6b"). Faked, as root
    # cannot make a read-only folder: every write below ro/ fails so.
    import errno as errno_module

    ro = tmp_path / "ro"
    ro.mkdir()

    def read_only(call):
        def refuse(path=None, *args, **kwargs):
            if path is None:  # mkdtemp: the folder it would have made
                path = os.path.join(kwargs["dir"], kwargs["prefix"] + "ijfnpb6b")
            if str(ro) in str(path):
                raise OSError(errno_module.EROFS, os.strerror(errno_module.EROFS), str(path))
            return call(path, *args, **kwargs)
        return refuse

    monkeypatch.setattr(os, "open", read_only(os.open))
    monkeypatch.setattr(os, "mkdir", read_only(os.mkdir))
    import tempfile
    monkeypatch.setattr(tempfile, "mkdtemp", read_only(tempfile.mkdtemp))
    assert run([a.format(ro=ro) for a in argv]) == 2
    line = error_line(capsys.readouterr().err)
    assert f" {output.format(ro=ro)}: " in line and "is on a read-only file system" in line, line
    assert "Choose an output folder you can write to" in line and "/." not in line
    assert list(ro.iterdir()) == []


@pytest.mark.parametrize("argv, expected", [
    (["bench", "dcgan", "--split", "train[:32]", "--batch-size", "64"],
     "--dataset mnist_5k --split 'train[:32]' has 32 examples, fewer than one training step "
     "takes: 64. Lower --batch-size to at most 32, or choose a larger --split."),
    (["bench", "cyclegan", "--image-size", "32", "--split", "train[:2]", "--batch-size", "4"],
     "Domain A ('digits_8x8', split 'train[:2]') has 2 examples, fewer than one training step "
     "takes: 4. Lower --batch-size to at most 2, or choose a larger --split."),
    # The early check in the parent counts the n_critic minibatches a step takes,
    # so the default one-process-per-configuration mode gives the CLI's wording too.
    (["bench", "wgan_gp", "--split", "train[:100]", "--batch-size", "32", "--steps", "1",
      "--repeats", "1"],
     "--dataset mnist_5k --split 'train[:100]' has 100 examples, fewer than one training step "
     "takes: 160 (5 critic minibatches of --batch-size 32). Lower --batch-size to at most 20, "
     "or choose a larger --split."),
    (["bench", "wgan_gp", "--split", "train[:100]", "--batch-size", "32", "--steps", "1",
      "--repeats", "1", "--in-process"],
     "--dataset mnist_5k --split 'train[:100]' has 100 examples, fewer than one training step "
     "takes: 160 (5 critic minibatches of --batch-size 32). Lower --batch-size to at most 20, "
     "or choose a larger --split."),
])
def test_bench_on_too_few_examples_names_the_dataset_used_and_the_flags(argv, expected, capsys):
    # Without --dataset the message said "--dataset None"; WGAN-GP in worker
    # processes gave the Python API's "Lower batch_size ... drop_remainder=False".
    assert run(argv) == 2
    assert error_line(capsys.readouterr().err) == f"kgan: error: {expected}"


@pytest.mark.parametrize("command, argv, says", [
    ("cmd_bench", ["bench", "dcgan"],
     "kgan bench stopped before its results were complete; nothing was written"),
    ("cmd_export", ["export", "dcgan_mnist", "served"],
     "no output was left half-written; any earlier output at that path is as it was"),
    ("cmd_train", ["train", "dcgan", "--dataset", "mnist_5k", "--epochs", "1", "--output", "o"],
     "no output was left half-written (run the same `kgan train` command again to resume"),
])
def test_ctrl_c_says_what_was_kept_and_only_train_advises_a_resume(command, argv, says,
                                                                   monkeypatch, capsys):
    # Every command used to end with "run the same `kgan train` command again".
    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, command, interrupted)
    assert run(argv) == 130
    err = capsys.readouterr().err
    assert err.startswith(f"kgan: interrupted; {says}") and len(err.strip().splitlines()) == 1
    assert ("kgan train" in err) == (command == "cmd_train")


def test_a_failing_table_stays_the_error_when_the_json_write_fails_too(tmp_path, monkeypatch, capsys):
    # The write's error replaced the table's and said "printed above" of a
    # table that never printed.
    def no_space(path, text):
        raise OSError(28, "No space left on device", str(path))

    def broken_table():
        raise RuntimeError("the table failed")

    monkeypatch.setattr(cli, "_write_json", no_space)
    with pytest.raises(RuntimeError, match="the table failed"):
        cli._show_then_write_json(broken_table, tmp_path / "r.json", '{"rows": []}')
    out, err = capsys.readouterr()
    assert out.strip() == '{"rows": []}'
    assert "kgan: error:" in err and "the results are printed above as JSON" in err


def test_export_to_an_empty_path_says_it_is_empty(tmp_path, monkeypatch, capsys):
    # It said "Cannot write the folder .: it is the current folder".
    monkeypatch.chdir(tmp_path)
    assert run(["export", "dcgan_mnist", ""]) == 2
    assert "The export path is empty" in error_line(capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []


def test_info_of_a_url_prints_only_json_on_stdout(preset, tmp_path, monkeypatch, capsys):
    # Keras' "Downloading data from ..." and progress bar went to stdout:
    # `kgan info URL --sha256 H > meta.json` wrote invalid JSON.
    import functools
    import hashlib
    import http.server
    import io
    import tarfile
    import threading

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(preset, arcname="tiny")
    (tmp_path / "tiny.tar.gz").write_bytes(buffer.getvalue())
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # The CLI takes https only; this test's server is plain http on 127.0.0.1.
    monkeypatch.setattr(zoo, "resolve", functools.partial(zoo.resolve, allow_http=True,
                                                          cache_dir=tmp_path / "cache"))
    url = f"http://127.0.0.1:{server.server_address[1]}/tiny.tar.gz"
    try:
        assert run(["info", url, "--sha256", hashlib.sha256(buffer.getvalue()).hexdigest()]) == 0
    finally:
        server.shutdown()
        server.server_close()
    out, err = capsys.readouterr()
    assert json.loads(out)["name"] == "tiny"
    assert "Downloading data from" in err


@pytest.mark.parametrize("argv", [
    ["sample", "{preset}", "--num", "2", "--output", "{preset}/samples.png", "--overwrite"],
    ["sample", "{preset}", "--num", "2", "--output", "{preset}/more"],
    ["export", "{preset}", "{preset}/exp"],
    ["export", "{preset}", "{preset}/exp", "--format", "tflite"],
], ids=["sample_png", "sample_folder", "savedmodel", "tflite"])
def test_an_output_inside_the_preset_read_is_refused(argv, tmp_path, capsys):
    # `kgan sample dcgan_mnist --output zoo/dcgan_mnist/samples.png --overwrite`
    # replaced the shipped card image; `kgan export` wrote into the preset.
    preset = shutil.copytree(zoo.resolve("dcgan_mnist"), tmp_path / "dcgan_mnist")
    before = {p.name: p.read_bytes() for p in preset.iterdir()}
    assert run([a.format(preset=preset) for a in argv]) == 2
    line = error_line(capsys.readouterr().err)
    assert f"lies inside the preset folder {preset}: a preset folder holds the preset's own " \
           "files only" in line
    assert {p.name: p.read_bytes() for p in preset.iterdir()} == before


def test_a_folder_named_like_a_registered_preset_is_read_as_the_preset_everywhere(
        tmp_path, monkeypatch, capsys):
    # cli._preset_folder took the local folder, zoo.resolve the registered
    # preset: the output checks and the command read different presets.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dcgan_mnist").mkdir()
    assert cli._preset_folder("dcgan_mnist") == Path(zoo._PRESETS["dcgan_mnist"].path)
    with pytest.warns(UserWarning, match="To load that folder, pass './dcgan_mnist'"):
        assert run(["info", "dcgan_mnist"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "dcgan_mnist"


def test_export_lists_the_conditional_signatures_labels(conditional_preset, tmp_path, capsys):
    # The listing said "serving_default, generate_uint8" without the labels input.
    assert run(["export", conditional_preset, tmp_path / "served"]) == 0
    assert "signatures: serving_default, generate_uint8, on float32 latents and int32 labels " \
           "in [0, " in capsys.readouterr().out


def test_help_says_where_remote_presets_are_cached(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "set KERAS_HOME to move the cache" in " ".join(capsys.readouterr().out.split())
    with pytest.raises(SystemExit):
        cli.main(["export", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "$KERAS_HOME/kgan/presets/<sha256>/" in text
    assert "a_to_b, b_to_a and serving_default (= a_to_b)" in text


def test_a_broken_pipe_other_than_stdout_is_reported(monkeypatch, capsys):
    # Every BrokenPipeError exited 141 silently, a worker's or a socket's too.
    def info(args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(cli, "cmd_info", info)
    assert run(["info", "dcgan_mnist"]) == 2
    assert "kgan: error:" in capsys.readouterr().err


def test_a_reader_that_closes_the_pipe_early_is_no_error(tmp_path):
    # `kgan info dcgan_mnist | head` ended with "kgan: error: [Errno 32] Broken pipe", exit 2.
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    process = subprocess.Popen([sys.executable, "-m", "kgan.cli", "info", "dcgan_mnist"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                               cwd=tmp_path)
    process.stdout.close()  # before kgan writes: its first write finds no reader
    err = process.communicate(timeout=120)[1].decode()
    assert process.returncode == 141 and "Broken pipe" not in err and "Error" not in err, err
