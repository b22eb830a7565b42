"""Every script in examples/ runs as written, with tiny settings."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import kgan
from kgan import zoo
from kgan.models import DCGAN
from kgan_test_utils import spread_weights

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run(script, *args, cwd):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        capture_output=True, text=True, cwd=cwd, env=env, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.fixture
def tiny_preset(tmp_path):
    metadata = {"name": "tiny", "description": "tiny example preset", "dataset": "random",
                "recipe": "pytest", "license": "Apache-2.0", "metrics": {}}
    # Spread weights: a fresh tiny DCGAN's images are within 1e-3 of zero,
    # where export_and_serve's 1e-5 comparison would hardly tell anything.
    model = spread_weights(DCGAN.from_image_shape((16, 16, 1), latent_dim=8, filters=4, seed=0))
    return zoo.save_preset(model, tmp_path / "tiny", metadata)


def test_every_example_is_tested():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == [
        "augment_small_dataset.py", "cyclegan_folders.py", "export_and_serve.py",
        "multiworker_dcgan.py",  # run by tests/test_multiworker.py, two workers
        "sample_pretrained.py", "train_dcgan.py", "train_wgan.py", "train_wgan_gp.py",
    ]


def test_train_dcgan(tmp_path):
    out = run("train_dcgan.py", "--epochs", "1", "--batch-size", "500", "--filters", "4",
              "--latent-dim", "8", "--output", "run", cwd=tmp_path)
    assert "dcgan.keras" in out
    assert (tmp_path / "run" / "dcgan.keras").is_file()
    assert (tmp_path / "run" / "samples" / "epoch_0001.png").is_file()


def test_sample_pretrained(tmp_path, tiny_preset):
    out = run("sample_pretrained.py", "--preset", str(tiny_preset), "--num", "9", "--output", "s.png", cwd=tmp_path)
    assert "tiny example preset" in out and (tmp_path / "s.png").is_file()


def test_export_and_serve(tmp_path, tiny_preset):
    out = run("export_and_serve.py", "--preset", str(tiny_preset), "--export-dir", "served", cwd=tmp_path)
    difference = float(out.split("max |served - keras| = ")[1].split()[0])
    assert difference <= 1e-5
    assert (tmp_path / "served" / "saved_model.pb").is_file()
    assert (tmp_path / "served_samples.png").is_file()


def test_export_and_serve_a_conditional_preset(tmp_path):
    # Its signatures also take labels: the script failed with "missing a
    # required argument: 'labels'".
    from kgan.models import ConditionalGAN

    metadata = {"name": "tiny_cgan", "description": "tiny conditional preset", "dataset": "random",
                "recipe": "pytest", "license": "Apache-2.0", "metrics": {}}
    model = spread_weights(ConditionalGAN.from_image_shape(
        (16, 16, 1), 3, latent_dim=4, filters=2, embedding_dim=2, seed=0))
    preset = zoo.save_preset(model, tmp_path / "tiny_cgan", metadata)
    out = run("export_and_serve.py", "--preset", str(preset), "--export-dir", "served", cwd=tmp_path)
    assert float(out.split("max |served - keras| = ")[1].split()[0]) <= 1e-5


def test_train_wgan(tmp_path):
    out = run("train_wgan.py", "--epochs", "1", "--batch-size", "200", "--filters", "4",
              "--latent-dim", "8", "--output", "run", cwd=tmp_path)
    assert "Wasserstein estimate" in out and (tmp_path / "run" / "wgan.keras").is_file()


def test_train_wgan_gp_on_the_ring(tmp_path):
    out = run("train_wgan_gp.py", "--steps", "10", "--batch-size", "32", "--units", "16",
              "--output", "run", cwd=tmp_path)
    assert "modes covered:" in out and (tmp_path / "run" / "samples.png").is_file()


def test_train_wgan_gp_on_an_image_dataset_of_its_own_size(tmp_path):
    # The model was built for 28x28x1 whatever --data held.
    out = run("train_wgan_gp.py", "--data", "digits_8x8", "--steps", "3", "--batch-size", "16",
              "--output", "run", cwd=tmp_path)
    assert "final gradient penalty" in out
    assert kgan.images.load_png(tmp_path / "run" / "samples.png").shape == (8 * 10 + 2, 8 * 10 + 2, 1)


def test_cyclegan_folders(tmp_path):
    rng = np.random.default_rng(0)
    for domain, shape in (("a", (20, 28, 3)), ("b", (24, 24, 3))):
        for i in range(3):
            kgan.images.save_png(rng.integers(0, 256, shape, dtype=np.uint8), tmp_path / domain / f"{i}.png")
    out = run("cyclegan_folders.py", "--domain-a", "a", "--domain-b", "b", "--image-size", "24",
              "--epochs", "1", "--filters", "4", "--output", "run", cwd=tmp_path)
    assert "translated 3 images" in out
    # Translated at each image's own size, not the training crop's.
    assert kgan.images.load_png(tmp_path / "run" / "translated" / "0.png").shape == (20, 28, 3)
    assert (tmp_path / "run" / "served" / "saved_model.pb").is_file()


def test_augment_small_dataset(tmp_path):
    out = run("augment_small_dataset.py", "--per-class", "5", "--gan-epochs", "1", "--batch-size", "50",
              "--filters", "4", "--latent-dim", "8", "--synthetic-per-class", "5",
              "--classifier-epochs", "1", "--classifier-steps", "3", "--classifier-width", "4",
              "--min-confidence", "0.0", "--output", "run", cwd=tmp_path)
    assert "real digits: 50 (5 per class)" in out
    accuracies = [float(line.rsplit(": ", 1)[1]) for line in out.splitlines() if "test accuracy" in line]
    assert len(accuracies) == 2 and all(0.0 <= a <= 1.0 for a in accuracies)
    # The sample sheet: one column per class (10 x 30 px), 8 rows.
    assert kgan.images.load_png(tmp_path / "run" / "samples.png").shape == (8 * 30 + 2, 10 * 30 + 2, 1)


def test_augment_small_dataset_refuses_training_digits_from_the_test_split(tmp_path):
    # 450 per class took digits 4,000-4,499, half of the "held-out" test split.
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "augment_small_dataset.py"), "--per-class", "450"],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 2 and "--per-class must be 1-400" in result.stderr
    assert not (tmp_path / "runs").exists()
