"""Divergence (issue 8, part 3): a NaN or Inf loss stops training at once,
names the step and the loss, and leaves the last good backup and preset intact."""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import kgan
from kgan import zoo
from kgan.callbacks import BackupAndRestore, DivergenceError, StopOnDivergence, non_finite_variable
from kgan.cli import main
from kgan.models import DCGAN
from kgan_test_utils import TINY_METADATA, tiny_dcgan


def _images(num, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (num, 16, 16, 1)).astype("float32")


def test_a_nan_batch_stops_fit_before_the_backup_sees_it(tmp_path):
    """Batch 2 of 3 holds a NaN image: fit raises right after it, with the step
    and the loss in the message; the backup of batch 1 stays, finite."""
    images = _images(12)
    images[5, 3, 3, 0] = np.nan  # in the second batch of 4
    # Plain tf.data: kgan.data refuses NaN images up front; a corrupt file
    # decoded mid-epoch (or an exploding step) is what reaches training.
    data = tf.data.Dataset.from_tensor_slices(images).batch(4)
    model = tiny_dcgan()
    model.compile()
    backup = BackupAndRestore(tmp_path / "backup", save_freq=1)
    with pytest.raises(DivergenceError) as caught:
        model.fit(data, epochs=2, verbose=0, callbacks=[StopOnDivergence(), backup])
    err = caught.value
    assert re.match(r"training diverged at epoch 1/2, batch 2/3 \(train step 2\): .*d_loss=nan",
                    str(err)), str(err)
    assert (err.epoch, err.batch, err.step) == (0, 1, 2) and np.isnan(err.values["d_loss"])
    assert non_finite_variable(model.weights) is not None  # the model itself is ruined ...
    assert BackupAndRestore.read_metadata(tmp_path / "backup")["batch"] == 0  # ... its backup is not
    restored = tiny_dcgan()
    restored.compile()
    restored.load_weights(tmp_path / "backup" / BackupAndRestore.read_metadata(tmp_path / "backup")["weights"])
    assert non_finite_variable(restored.weights) is None
    assert int(restored.d_optimizer.iterations.numpy()) == 1


@pytest.mark.parametrize("nan_at, where", [
    (1, r"epoch 1/1, batch 3/3 \(train step 3\), in its last 3 steps"),  # group 1 cut short
    (4, r"epoch 1/1, batch 5/5 \(train step 5\), in its last 2 steps"),  # the epoch's last 2
])
def test_a_nan_in_a_steps_per_execution_group_names_steps_that_exist(nan_at, where):
    # Keras reports a group of 10 steps by its last index as if whole: an
    # epoch of 3 steps said "batch 10/3 (train step 10)".
    steps = 3 if nan_at == 1 else 5
    images = _images(4 * steps)
    images[4 * nan_at, 0, 0, 0] = np.nan
    data = tf.data.Dataset.from_tensor_slices(images).batch(4)
    model = tiny_dcgan()
    model.compile(steps_per_execution=10 if nan_at == 1 else 3)
    with pytest.raises(DivergenceError, match=where) as caught:
        model.fit(data, epochs=1, verbose=0, callbacks=[StopOnDivergence()])
    assert caught.value.batch == steps - 1 and caught.value.step == steps


def test_the_backup_callback_refuses_to_save_non_finite_weights(tmp_path):
    """Even without StopOnDivergence (or when the last step of an epoch broke
    the weights but not yet its loss): no NaN backup replaces a good one."""
    model = tiny_dcgan()
    model.compile()
    backup = BackupAndRestore(tmp_path / "backup", delete_checkpoint=False)
    model.fit(kgan.data.from_numpy(_images(8), batch_size=4), epochs=1, verbose=0,
              callbacks=[backup])
    before = sorted((p.name, p.read_bytes()) for p in (tmp_path / "backup").iterdir())
    kernel = model.discriminator.trainable_variables[0]
    kernel.assign(np.full(kernel.shape, np.inf, "float32"))
    backup._current_epoch = 2
    with pytest.raises(DivergenceError, match=r"holds NaN or Inf; the backup in .* keeps epoch 1") as caught:
        backup._save_model()
    assert kernel.path in str(caught.value)
    assert sorted((p.name, p.read_bytes()) for p in (tmp_path / "backup").iterdir()) == before


def test_save_preset_refuses_a_diverged_model_and_keeps_the_old_preset(tmp_path):
    good = zoo.save_preset(tiny_dcgan(spread=True), tmp_path / "tiny", TINY_METADATA)
    sha = zoo.file_sha256(good / zoo.WEIGHTS_FILE)
    broken = tiny_dcgan()
    broken.generator.trainable_variables[0].assign(
        np.full(broken.generator.trainable_variables[0].shape, np.nan, "float32"))
    with pytest.raises(DivergenceError, match="not finite"):
        zoo.save_preset(broken, good, TINY_METADATA, overwrite=True)
    assert zoo.file_sha256(good / zoo.WEIGHTS_FILE) == sha
    zoo.load(good)


def test_kgan_train_stops_on_a_nan_loss_with_one_line_and_status_1(tmp_path, capsys, monkeypatch):
    """The learning rate jumps to 1e30 in epoch 2: `kgan train` exits 1 with one
    line naming the epoch, batch, step and losses; the backup still holds epoch 1
    (finite, and it restores), the earlier preset in OUTPUT is not replaced."""
    steps = 10  # 5000 images / 500

    def exploding_optimizers(cls):
        def rate():
            return keras.optimizers.schedules.PiecewiseConstantDecay([steps + 2], [2e-4, 1e30])

        return keras.optimizers.Adam(rate(), beta_1=0.5), keras.optimizers.Adam(rate(), beta_1=0.5)

    monkeypatch.setattr(DCGAN, "default_optimizers", classmethod(exploding_optimizers))
    output = tmp_path / "run"
    old_preset = zoo.save_preset(tiny_dcgan(image_shape=(28, 28, 1), spread=True), output / "preset",
                                 TINY_METADATA)
    sha = zoo.file_sha256(old_preset / zoo.WEIGHTS_FILE)
    argv = ["train", "dcgan", "--dataset", "mnist_5k", "--batch-size", "500", "--latent-dim", "8",
            "--filters", "4", "--epochs", "3", "--precision", "float32", "--steps-per-execution", "1",
            "--verbose", "0", "--output", str(output), "--overwrite"]
    assert main(argv) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    match = re.match(r"kgan: error: training diverged at epoch 2/3, batch (\d+)/10 \(train step (\d+)\): "
                     r"(.*); the backup in (.*) keeps epoch 1 \(rerunning resumes from it", lines[0])
    assert match, lines[0]
    batch, step, losses, where = match.groups()
    assert int(step) == steps + int(batch) and int(step) > steps + 2
    assert re.search(r"(d_loss|g_loss)=(nan|inf|-inf)", losses)
    assert where == str(output / "backup")
    assert "was not replaced" in lines[0]

    metadata = BackupAndRestore.read_metadata(output / "backup")
    assert metadata["epoch"] == 1
    restored = zoo.build("dcgan", image_shape=(28, 28, 1), latent_dim=8, filters=4)
    restored.compile()
    restored.load_weights(output / "backup" / metadata["weights"])
    assert non_finite_variable(restored.weights) is None
    assert int(restored.g_optimizer.iterations.numpy()) == steps
    assert zoo.file_sha256(old_preset / zoo.WEIGHTS_FILE) == sha
    zoo.load(old_preset)


def test_nan_weights_with_finite_losses_stop_fit_at_the_epoch_end():
    # kgan's fused batch norm + ReLU maps NaN to finite values in graph mode:
    # with NaN generator weights the losses stayed finite, and neither
    # StopOnDivergence nor TerminateOnNaN fired while generate gave NaN images.
    model = tiny_dcgan()
    model.compile()
    data = tf.data.Dataset.from_tensor_slices(_images(8)).batch(4)
    model.fit(data, epochs=1, verbose=0)
    layer = model.generator.layers[1]
    layer.kernel.assign(tf.fill(layer.kernel.shape, np.nan))
    with pytest.raises(DivergenceError, match=r"by the end of epoch 1/2: .*kernel holds NaN or Inf") as caught:
        model.fit(data, epochs=2, verbose=0, callbacks=[StopOnDivergence()])
    assert layer.kernel.path in str(caught.value) and caught.value.epoch == 0
