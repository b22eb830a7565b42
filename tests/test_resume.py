"""Resuming interrupted training exactly (issue 8, part 1).

In process, for every architecture: a `fit` interrupted after epoch 1 and
resumed by `kgan.callbacks.BackupAndRestore` in a fresh model ends with the
state of an uninterrupted run, bit for bit (networks, EMA, optimizers, image
pools, ADA probability, random streams), because the backup holds the
random streams' states and the callback replays the finished epochs' data
order (default run: DCGAN; the rest with `-m slow`).
Then `kgan train` itself, killed with SIGKILL mid-epoch in a subprocess and
started again with the same command, ends with the uninterrupted run's
weights and log (default run: DCGAN with EMA, DiffAugment and dropout; the
other architectures with `-m slow`).
"""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

import kgan
from kgan import zoo
from kgan.callbacks import BackupAndRestore
from kgan_test_utils import TINY_METADATA, slow_except
from models.architecture_checks import TINY_CONFIGS, build_tiny, is_conditional, is_translator

ARCHITECTURES = zoo.list(kind="architectures")
EPOCHS = 3


# ---------------------------------------------------------------------- random streams
def test_seed_generator_states_are_saved_and_loaded(tmp_path):
    """`save_weights` and `.keras` files hold every SeedGenerator's position:
    the model's own stream and nested layers' (Dropout)."""
    model = kgan.zoo.build("dcgan", image_shape=(16, 16, 1), latent_dim=8, filters=4, seed=3,
                           dropout=0.2)
    states = model.random_state_variables()
    assert len(states) == 3 and states[0] is model.seed_generator.state  # latents + 2 dropouts
    for _ in range(5):
        model.seed_generator.next()
    expected = [s.numpy().copy() for s in states]
    model.save_weights(tmp_path / "m.weights.h5")
    with h5py.File(tmp_path / "m.weights.h5") as f:
        assert sorted(f["vars"].keys()) == ["random_state_0", "random_state_1", "random_state_2"]
    model.save(tmp_path / "m.keras")
    fresh = kgan.zoo.build("dcgan", image_shape=(16, 16, 1), latent_dim=8, filters=4, seed=3,
                           dropout=0.2)
    fresh.load_weights(tmp_path / "m.weights.h5")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    for other in (fresh, loaded):
        for state, value in zip(other.random_state_variables(), expected):
            np.testing.assert_array_equal(state.numpy(), value)
    # The stream continues where it was: the next latents are the same.
    np.testing.assert_array_equal(fresh.latents(4), model.latents(4))


def test_presets_keep_the_shipped_layout_and_every_shipped_preset_loads(tmp_path):
    """Presets are portable copies: no random states (the layout of the shipped
    files, which load unchanged and start their streams from the seed)."""
    model = kgan.zoo.build("dcgan", image_shape=(16, 16, 1), latent_dim=8, filters=4, seed=3)
    model.seed_generator.next()
    folder = zoo.save_preset(model, tmp_path / "tiny", dict(TINY_METADATA))
    with h5py.File(folder / zoo.WEIGHTS_FILE) as f:
        assert list(f["vars"].keys()) == []
    assert zoo.load(folder).seed_generator.state.numpy().tolist() == [3, 0]
    assert zoo.list(), "no shipped presets found"
    for name in zoo.list():
        with h5py.File(zoo.resolve(name) / zoo.WEIGHTS_FILE) as f:
            assert not [k for k in f["vars"].keys() if k.startswith("random_state_")], name
        loaded = zoo.load(name)
        assert all(not np.isnan(w).any() for w in loaded.get_weights()), name


# ---------------------------------------------------------------------- in-process exact resume
#: per architecture, overrides of TINY_CONFIGS that exercise more state.
IN_PROCESS = {arch: {} for arch in ARCHITECTURES}
IN_PROCESS["dcgan_ada"] = {"augment": "ada", "ada_kimg": 1, "ada_interval": 1}
#: The default run's in-process case, the cheapest; the others, which resume by
#: the same mechanisms, run with -m slow. (ADA's probability also comes back in
#: tests/test_ada.py's default run.)
IN_PROCESS_DEFAULT_RUN = {"dcgan"}


def _base_arch(name):
    return "dcgan" if name == "dcgan_ada" else name


def shuffled_dataset(model, arch, seed=0):
    """A reshuffled-every-epoch pipeline of 3 steps (the order is what replay restores)."""
    batch = TINY_CONFIGS[arch]["batch"]
    rng = np.random.default_rng(seed)
    if is_translator(model):
        # B is smaller than A: it is cycled inside each epoch (repeat inside the pipeline).
        a = rng.uniform(-1, 1, (3 * batch,) + model.image_shape_a).astype("float32")
        b = rng.uniform(-1, 1, (2 * batch,) + model.image_shape_b).astype("float32")
        return kgan.data.unpaired(a, b, batch_size=batch, seed=seed)
    per_step = batch * model.batches_per_step
    images = rng.uniform(-1, 1, (3 * per_step,) + model.image_shape).astype("float32")
    labels = np.arange(len(images)) % model.num_classes if is_conditional(model) else None
    return kgan.data.from_numpy(images, labels, batch_size=batch, repeat_batches=model.batches_per_step,
                                shuffle=True, seed=seed)


class Crash(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            raise KeyboardInterrupt("simulated crash after epoch 1")


def train(name, backup, crash=False, replay=True):
    """A fresh process's view: same seeds, new model and new pipeline."""
    arch = _base_arch(name)
    keras.utils.set_random_seed(0)
    model = build_tiny(arch, **IN_PROCESS[name])
    if model.ada is not None:
        model.ada.p.assign(0.5)  # mid-range, so the heuristic moves it either way
    model.compile()
    data = shuffled_dataset(model, arch)
    callbacks = [BackupAndRestore(backup, data=data if replay else None)] + ([Crash()] if crash else [])
    try:
        model.fit(data, epochs=EPOCHS, verbose=0, callbacks=callbacks)
    except KeyboardInterrupt:
        assert crash
    return model


def full_state(model):
    """Every variable a resumed run must match: weights, both optimizers, random streams."""
    variables = list(model.weights) + model.random_state_variables()
    variables += list(model.g_optimizer.variables) + list(model.d_optimizer.variables)
    return [np.asarray(v.numpy()) for v in variables]


@pytest.mark.parametrize("name", slow_except(sorted(IN_PROCESS), IN_PROCESS_DEFAULT_RUN))
def test_interrupted_fit_resumes_bit_exactly(name, tmp_path):
    reference = full_state(train(name, tmp_path / "reference"))
    train(name, tmp_path / "backup", crash=True)
    # One weights file, named by the metadata; no temporaries left behind.
    assert sorted(p.name for p in (tmp_path / "backup").iterdir()) == [
        "ckpt-000001-000000.weights.h5", "training_metadata.json"]
    assert BackupAndRestore.read_metadata(tmp_path / "backup") == {
        "epoch": 1, "batch": 0, "weights": "ckpt-000001-000000.weights.h5"}
    shutil.copytree(tmp_path / "backup", tmp_path / "backup_copy")
    resumed = train(name, tmp_path / "backup")
    assert int(resumed.g_optimizer.iterations.numpy()) == EPOCHS * 3
    state = full_state(resumed)
    assert len(state) == len(reference)
    for a, b in zip(state, reference):
        np.testing.assert_array_equal(a, b)
    if name == "dcgan_ada":  # the probability moved and came back from the backup
        assert 0 < float(resumed.ada.p.numpy()) < 1 and float(resumed.ada.p.numpy()) != 0.5
    assert not (tmp_path / "backup").exists()  # deleted once fit finished
    # Why `data=` matters (checked for every case, so the default run has it
    # too): a new pipeline starts its shuffle seeds over, so without the
    # replay epoch 2 would be shuffled (and cropped) like epoch 1.
    unreplayed = full_state(train(name, tmp_path / "backup_copy", replay=False))
    assert any(not np.array_equal(a, b) for a, b in zip(unreplayed, reference))


@pytest.mark.parametrize("steps_per_execution, steps, repeated", [
    (1, 3, True), (2, 3, True), (1, 4, False)])
def test_fit_with_steps_per_epoch_resumes_bit_exactly(steps_per_execution, steps, repeated,
                                                      tmp_path):
    # Keras reads every epoch of fit(steps_per_epoch=N) on an endless pipeline
    # from one iterator: epoch k starts where k-1 stopped. The replay made an
    # iterator per epoch, so the resumed epochs saw other batches. 3 steps an
    # epoch from 4 batches a pass: epochs cross the passes' (reshuffled)
    # boundaries. A pipeline of known length (4 batches, 4 steps) is read
    # anew each epoch, which the replay does.
    def run(backup, crash=False):
        keras.utils.set_random_seed(0)
        model = build_tiny("dcgan")
        model.compile(steps_per_execution=steps_per_execution)
        images = np.random.default_rng(0).uniform(-1, 1, (32, 16, 16, 1)).astype("float32")
        data = kgan.data.from_numpy(images, batch_size=8, shuffle=True, seed=0)
        data = data.repeat() if repeated else data
        callbacks = [BackupAndRestore(backup, data=data, steps_per_epoch=steps)]
        try:
            model.fit(data, epochs=EPOCHS, steps_per_epoch=steps, verbose=0,
                      callbacks=callbacks + ([Crash()] if crash else []))
        except KeyboardInterrupt:
            assert crash
        return model

    reference = full_state(run(tmp_path / "reference"))
    run(tmp_path / "backup", crash=True)
    assert BackupAndRestore.read_metadata(tmp_path / "backup")["epoch"] == 1
    resumed = run(tmp_path / "backup")
    for a, b in zip(full_state(resumed), reference):
        np.testing.assert_array_equal(a, b)


def test_a_later_fit_of_a_restored_model_starts_at_epoch_zero(tmp_path):
    train("dcgan", tmp_path / "backup", crash=True)
    resumed = train("dcgan", tmp_path / "backup")
    # Keras leaves model._initial_epoch at the restored epoch after fit.
    history = resumed.fit(shuffled_dataset(resumed, "dcgan"), epochs=2, verbose=0)
    assert history.epoch == [0, 1]


@pytest.mark.slow
def test_a_keras_backup_is_resumed_too(tmp_path):
    """A backup written by keras.callbacks.BackupAndRestore (latest.weights.h5)."""
    keras.utils.set_random_seed(0)
    model = build_tiny("dcgan")
    model.compile()
    data = shuffled_dataset(model, "dcgan")
    with pytest.raises(KeyboardInterrupt):
        model.fit(data, epochs=2, verbose=0,
                  callbacks=[keras.callbacks.BackupAndRestore(str(tmp_path / "b")), Crash()])
    resumed = build_tiny("dcgan")
    resumed.compile()
    seen = []
    resumed.fit(data, epochs=2, verbose=0, callbacks=[
        BackupAndRestore(tmp_path / "b"),
        keras.callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: seen.append(e))])
    assert seen == [1] and int(resumed.g_optimizer.iterations.numpy()) == 6


# ---------------------------------------------------------------------- kgan train, SIGKILL
#: per architecture, tiny `kgan train` options: 10 train steps per epoch.
CLI_ARGS = {
    "dcgan": ["--dataset", "mnist_5k", "--batch-size", "500", "--latent-dim", "8", "--filters", "4",
              "--ema-decay", "0.9", "--augment", "color,translation,cutout", "--dropout", "0.2"],
    "wgan": ["--dataset", "mnist_5k", "--batch-size", "250", "--n-critic", "2", "--latent-dim", "8",
             "--filters", "4"],
    "wgan_gp": ["--dataset", "mnist_5k", "--batch-size", "250", "--n-critic", "2", "--latent-dim",
                "8", "--filters", "4", "--augment", "ada"],
    "conditional_gan": ["--dataset", "mnist_5k", "--batch-size", "500", "--latent-dim", "8",
                        "--filters", "4", "--augment", "translation"],
    "cyclegan": ["--dataset", "digits_8x8", "--dataset-b", "mnist_5k", "--image-size", "16",
                 "--jitter", "cyclegan", "--batch-size", "500", "--filters", "4",
                 "--num-residual-blocks", "1", "--disc-layers", "1", "--pool-size", "7"],
}
#: `kgan train` runs of the others take long enough to be left to `-m slow`.
CLI_DEFAULT_RUN = {"dcgan"}

#: `kgan train` with a pause after every batch (numerics untouched), so a kill lands mid-epoch.
_SLOW_BATCHES = textwrap.dedent(
    """
    import sys, time
    import kgan.callbacks
    check = kgan.callbacks.StopOnDivergence.on_train_batch_end
    def slowly(self, batch, logs=None):
        time.sleep(0.2)
        return check(self, batch, logs)
    kgan.callbacks.StopOnDivergence.on_train_batch_end = slowly
    from kgan.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def test_every_architecture_has_a_kgan_train_resume_case():
    missing = set(ARCHITECTURES) - set(CLI_ARGS)
    assert not missing, f"add {sorted(missing)} to CLI_ARGS"


def _env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")


def _log_rows(path):
    with open(path, newline="") as handle:
        return list(csv.reader(handle))


def _weights(path):
    arrays = {}
    with h5py.File(path) as f:
        f.visititems(lambda name, obj: arrays.__setitem__(name, np.array(obj))
                     if isinstance(obj, h5py.Dataset) else None)
    return arrays


def _wait_for_first_epoch(process, output, timeout=600):
    """Poll until epoch 1 is backed up (after its row in log.csv), then SIGKILL."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"kgan train ended (status {process.returncode}) before it was killed: "
                        + process.stderr.read()[-2000:])
        if BackupAndRestore.read_metadata(output / "backup") is not None:
            process.send_signal(signal.SIGKILL)
            process.wait()
            return
        time.sleep(0.02)
    process.kill()
    pytest.fail("epoch 1 did not finish in time")


@pytest.mark.parametrize("arch", slow_except(sorted(CLI_ARGS), CLI_DEFAULT_RUN))
def test_kgan_train_killed_mid_epoch_resumes_to_the_uninterrupted_weights(arch, tmp_path):
    def command(output):
        # Two steps per execution: the per-batch pause (below) comes 5 times an epoch.
        return ["train", arch, *CLI_ARGS[arch], "--epochs", str(EPOCHS), "--seed", "3",
                "--steps-per-execution", "2", "--deterministic", "--verbose", "0",
                "--output", str(output)]

    reference, killed = tmp_path / "reference", tmp_path / "killed"
    # The uninterrupted run and the one to kill side by side (two cores).
    runs = [
        subprocess.Popen([sys.executable, "-m", "kgan.cli", *command(reference)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env()),
        subprocess.Popen([sys.executable, "-c", _SLOW_BATCHES, *command(killed)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env()),
    ]
    _wait_for_first_epoch(runs[1], killed)
    assert runs[1].returncode == -signal.SIGKILL
    _, err = runs[0].communicate(timeout=900)
    assert runs[0].returncode == 0, err[-3000:]

    # Killed in epoch 2: epoch 1 is logged and backed up, nothing else.
    assert len(_log_rows(killed / "log.csv")) == 2
    assert BackupAndRestore.read_metadata(killed / "backup")["epoch"] == 1
    assert not (killed / "preset").exists()

    resumed = subprocess.run([sys.executable, "-m", "kgan.cli", *command(killed)],
                             capture_output=True, text=True, env=_env(), timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"kgan: resuming from the backup in {killed / 'backup'} after epoch 1 of {EPOCHS}" \
        in resumed.stderr
    assert not (killed / "backup").exists()  # deleted once the preset is written

    # The same losses every epoch, and bit-identical weights.
    assert _log_rows(killed / "log.csv") == _log_rows(reference / "log.csv")
    expected, got = (_weights(r / "preset" / zoo.WEIGHTS_FILE) for r in (reference, killed))
    assert sorted(got) == sorted(expected) and len(got) > 10
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
    zoo.load(killed / "preset")


@pytest.mark.parametrize("killed, at_epoch_end", [
    ("after_the_backup", 2), ("before_the_backup", 2), ("after_the_backup", 3)])
def test_kgan_train_killed_at_an_epoch_end_logs_every_epoch_once(killed, at_epoch_end, tmp_path,
                                                                  capsys, monkeypatch):
    # The epoch's files (log.csv row, sample grid, time) come before its
    # backup; a kill between them redoes the epoch, whose row must then not be
    # doubled. With the backup first, a kill after it lost the epoch's row.
    from kgan.cli import main

    output = tmp_path / "run"
    argv = ["train", "dcgan", "--dataset", "mnist_5k", "--batch-size", "500", "--filters", "4",
            "--latent-dim", "8", "--epochs", "3", "--verbose", "0", "--output", str(output)]
    save, calls = BackupAndRestore._save_model, []

    def die_at_an_epoch_end(self):
        calls.append(1)
        if len(calls) == at_epoch_end and killed == "before_the_backup":
            raise KeyboardInterrupt("simulated kill before the backup")
        save(self)
        if len(calls) == at_epoch_end:
            raise KeyboardInterrupt("simulated kill after the backup")

    monkeypatch.setattr(BackupAndRestore, "_save_model", die_at_an_epoch_end)
    assert main(argv) == 130
    monkeypatch.undo()
    logged = [str(epoch) for epoch in range(at_epoch_end)]
    assert [row[0] for row in _log_rows(output / "log.csv")] == ["epoch", *logged]
    backed_up = at_epoch_end - (killed == "before_the_backup")
    assert BackupAndRestore.read_metadata(output / "backup")["epoch"] == backed_up
    timed = json.loads((output / "backup" / "epoch_times.json").read_text())
    assert len(timed) == at_epoch_end
    shutil.copytree(output / "backup", tmp_path / "backup_copy")
    capsys.readouterr()
    assert main(argv) == 0
    assert f"after epoch {backed_up} of 3" in capsys.readouterr().err
    rows = _log_rows(output / "log.csv")
    assert [row[0] for row in rows] == ["epoch", "0", "1", "2"]
    assert all(len(row) == len(rows[0]) for row in rows)
    assert sorted(p.name for p in (output / "samples").iterdir()) == [
        "epoch_0001.png", "epoch_0002.png", "epoch_0003.png"]
    # The metadata covers the whole run: the epochs before the kill are timed,
    # and the final losses are the log's last row (even when the resumed
    # process trained no epoch).
    training = zoo.read_metadata(output / "preset")["training"]
    assert training["wall_time_s"] >= round(sum(seconds for seconds, _ in timed[:backed_up]), 1)
    assert training["final_d_loss"] == pytest.approx(float(rows[-1][rows[0].index("d_loss")]),
                                                     abs=1e-4)
    if at_epoch_end == 3:
        # Killed after the preset was written, before the backup was deleted:
        # --overwrite trains again rather than "resuming" a finished run.
        shutil.copytree(tmp_path / "backup_copy", output / "backup")
        assert main(argv) == 2  # the preset exists
        capsys.readouterr()
        assert main(argv + ["--overwrite"]) == 0
        err = capsys.readouterr().err
        assert "deleted the backup of the finished run" in err and "resuming" not in err
        assert len(_log_rows(output / "log.csv")) == 4 and not (output / "backup").exists()


def test_kgan_train_overwrite_removes_the_earlier_runs_sample_grids(tmp_path, capsys):
    from kgan.cli import main

    output = tmp_path / "run"
    argv = ["train", "dcgan", "--dataset", "mnist_5k", "--batch-size", "500", "--filters", "4",
            "--latent-dim", "8", "--verbose", "0", "--output", str(output)]
    assert main(argv + ["--epochs", "2"]) == 0
    (output / "samples" / "mine.png").write_bytes(b"not kgan's")  # not a grid: kept
    assert main(argv + ["--epochs", "1", "--overwrite"]) == 0
    assert sorted(p.name for p in (output / "samples").iterdir()) == ["epoch_0001.png", "mine.png"]
    assert [row[0] for row in _log_rows(output / "log.csv")] == ["epoch", "0"]


def test_kgan_train_refuses_a_backup_of_other_options_and_restart_discards_it(
    tmp_path, capsys, monkeypatch
):
    from kgan.cli import main

    output = tmp_path / "run"
    options = ["--dataset", "mnist_5k", "--batch-size", "500", "--filters", "4", "--epochs", "1",
               "--verbose", "0", "--output", str(output)]
    save = BackupAndRestore._save_model

    def save_then_die(self):
        save(self)
        raise KeyboardInterrupt("simulated kill after the first backup")

    monkeypatch.setattr(BackupAndRestore, "_save_model", save_then_die)
    # Ctrl-C: one line and the shell's status for SIGINT, no traceback.
    assert main(["train", "dcgan", "--latent-dim", "8", *options]) == 130
    err = capsys.readouterr().err
    assert err.startswith("kgan: interrupted;") and len(err.strip().splitlines()) == 1
    monkeypatch.undo()
    assert BackupAndRestore.read_metadata(output / "backup")["epoch"] == 1
    # A command.json written before --distribute existed stands for "none".
    command_file = output / "backup" / "command.json"
    recorded = json.loads(command_file.read_text())
    assert recorded.pop("distribute") == "none"
    command_file.write_text(json.dumps(recorded))
    capsys.readouterr()
    # The output spelled otherwise (a trailing slash) is the same run: only
    # --latent-dim differs.
    respelled = [*options[:-1], str(output) + os.sep]
    assert main(["train", "dcgan", "--latent-dim", "9", *respelled]) == 2
    err = capsys.readouterr().err
    assert "holds an interrupted run with other options (--latent-dim)" in err
    assert "--restart" in err and len(err.strip().splitlines()) == 1
    assert main(["train", "dcgan", "--latent-dim", "9", *options, "--restart"]) == 0
    assert "--restart: deleted the backup" in capsys.readouterr().err
    assert len(_log_rows(output / "log.csv")) == 2  # a fresh log: header and 1 epoch
    assert not (output / "backup").exists()


def test_a_backup_of_another_model_names_the_folder_and_the_fix(tmp_path):
    # Keras said only "A total of 2 objects could not be loaded ... value.shape=(32, 1568)".
    from kgan_test_utils import tiny_dcgan

    images = np.random.default_rng(0).uniform(-1, 1, (8, 16, 16, 1)).astype("float32")
    old = tiny_dcgan(latent_dim=8)
    old.compile()
    with pytest.raises(KeyboardInterrupt):
        old.fit(images, batch_size=4, epochs=2, verbose=0,
                callbacks=[BackupAndRestore(tmp_path / "backup"), Crash()])
    new = tiny_dcgan(latent_dim=16)
    new.compile()
    with pytest.raises(ValueError, match=r"backup in .*backup does not fit this DCGAN.*another "
                                         r"latent_dim.*other layer classes.*delete that folder.*its own backup folder"):
        new.fit(images, batch_size=4, epochs=2, verbose=0,
                callbacks=[BackupAndRestore(tmp_path / "backup")])


def test_resuming_in_process_with_the_dataset_fit_read_warns_and_a_new_one_is_exact(tmp_path):
    # The replay advanced the shuffle seeds of a dataset whose interrupted fit had
    # already advanced them: weights differed by up to 1.2e-3, silently.
    reference = full_state(train("dcgan", tmp_path / "reference"))
    keras.utils.set_random_seed(0)
    model = build_tiny("dcgan")
    model.compile()
    data = shuffled_dataset(model, "dcgan")
    with pytest.raises(KeyboardInterrupt):
        model.fit(data, epochs=EPOCHS, verbose=0,
                  callbacks=[BackupAndRestore(tmp_path / "backup", data=data), Crash()])
    shutil.copytree(tmp_path / "backup", tmp_path / "backup_copy")
    with pytest.warns(UserWarning, match=r"already read.*build the dataset again"):
        model.fit(data, epochs=EPOCHS, verbose=0,
                  callbacks=[BackupAndRestore(tmp_path / "backup", data=data)])
    resumed = train("dcgan", tmp_path / "backup_copy")  # a new dataset: exact
    for a, b in zip(full_state(resumed), reference):
        np.testing.assert_array_equal(a, b)
