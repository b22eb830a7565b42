"""Atomic writes (issue 8, part 2): a save killed or failing halfway leaves the
previous preset, export, metadata or backup complete and loadable."""

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from kgan import atomic, export, zoo
from kgan.callbacks import BackupAndRestore
from kgan_test_utils import TINY_METADATA, tiny_dcgan


def _files(folder):
    """`{relative path: bytes}` of every file under `folder`."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def preset(tmp_path):
    return zoo.save_preset(tiny_dcgan(seed=0, spread=True), tmp_path / "tiny", TINY_METADATA)


@pytest.fixture
def exported(tmp_path):
    return export.export_generator(tiny_dcgan(seed=0, spread=True), tmp_path / "served")


def _served_images(folder, latents):
    served = tf.saved_model.load(str(folder))
    return served.signatures["serving_default"](latents=tf.constant(latents))["images"].numpy()


# ---------------------------------------------------------------------- killed halfway (SIGKILL)
#: Rewrites a preset / export in a subprocess whose final write stops halfway
#: (the first half of the weights written, then a pause) and says so in a marker file.
_KILLED_SAVE = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import keras
    from kgan import export, zoo
    from kgan_test_utils import TINY_METADATA, tiny_dcgan

    what, target, marker = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])

    def halfway(path):
        data = Path(path).read_bytes() if Path(path).is_file() else b""
        if Path(path).is_file():
            Path(path).write_bytes(data[: len(data) // 2])
        marker.write_text(str(path))
        time.sleep(600)  # killed here

    model = tiny_dcgan(seed=1, spread=True)  # different weights from the version on disk
    if what == "preset":
        save_weights = keras.Model.save_weights
        def save_then_stop(self, path, *args, **kwargs):
            save_weights(self, path, *args, **kwargs)
            halfway(path)
        keras.Model.save_weights = save_then_stop
        zoo.save_preset(model, target, TINY_METADATA, overwrite=True)
    elif what in ("keras", "weights"):  # the model's own save / save_weights
        from keras.src.saving import saving_api
        original = saving_api.save_model if what == "keras" else keras.Model.save_weights
        def write_then_stop(*args, **kwargs):
            original(*args, **kwargs)
            halfway(kwargs.get("filepath") or args[1])
        if what == "keras":
            saving_api.save_model = write_then_stop
            model.save(target)
        else:
            keras.Model.save_weights = write_then_stop
            model.save_weights(target)
    else:
        archive = type(keras.export.ExportArchive())  # the backend's subclass
        write_out = archive.write_out
        def write_then_stop(self, path, *args, **kwargs):
            write_out(self, path, *args, **kwargs)
            halfway(Path(path) / "variables" / "variables.data-00000-of-00001")
        archive.write_out = write_then_stop
        export.export_generator(model, target, overwrite=True)
    """
)


def _kill_while_saving(what, target, tmp_path):
    marker = tmp_path / "writing"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="",
               PYTHONPATH=os.pathsep.join([os.path.dirname(__file__), os.environ.get("PYTHONPATH", "")]))
    process = subprocess.Popen([sys.executable, "-c", _KILLED_SAVE, what, str(target), str(marker)],
                               stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 600
    while not marker.exists():
        if process.poll() is not None:
            pytest.fail(f"the save ended before it was killed: {process.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("the save did not start in time")
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    return marker.read_text()


def test_a_preset_save_killed_halfway_leaves_the_previous_preset(preset, tmp_path):
    before, samples = _files(preset), zoo.load(preset).generate(2, seed=0)
    half_written = _kill_while_saving("preset", preset, tmp_path)
    assert not half_written.startswith(str(preset) + os.sep)  # it was written beside, not inside
    assert _files(preset) == before
    # Loads (the sha256 in metadata.json matches the weights) and samples as before.
    np.testing.assert_array_equal(zoo.load(preset).generate(2, seed=0), samples)
    # The half-written copy is a hidden sibling, which the catalog skips.
    leftovers = [p.name for p in preset.parent.iterdir() if p.name.startswith(".")]
    assert leftovers and all(name.startswith(f".{preset.name}-") for name in leftovers)
    # The next save replaces the preset whole.
    zoo.save_preset(tiny_dcgan(seed=1, spread=True), preset, TINY_METADATA, overwrite=True)
    assert _files(preset)[zoo.WEIGHTS_FILE] != before[zoo.WEIGHTS_FILE]
    zoo.load(preset)


def test_an_export_killed_halfway_leaves_the_previous_export(exported, tmp_path):
    latents = np.random.default_rng(0).standard_normal((3, 8)).astype("float32")
    expected = _served_images(exported, latents)
    before = _files(exported)
    _kill_while_saving("export", exported, tmp_path)
    assert _files(exported) == before
    np.testing.assert_array_equal(_served_images(exported, latents), expected)


@pytest.mark.parametrize("what, name", [("keras", "gan.keras"), ("weights", "gan.weights.h5")])
def test_model_save_killed_halfway_leaves_the_previous_file(tmp_path, what, name):
    target = tmp_path / name
    model = tiny_dcgan(spread=True)
    model.save(target) if what == "keras" else model.save_weights(target)
    before = target.read_bytes()
    half_written = Path(_kill_while_saving(what, target, tmp_path))
    assert half_written.parent == tmp_path and half_written != target  # written beside
    assert target.read_bytes() == before
    latents = model.latents(2, seed=0)
    if what == "keras":
        loaded = keras.saving.load_model(target)
    else:
        loaded = tiny_dcgan(seed=1, spread=True)
        loaded.load_weights(target)
    np.testing.assert_array_equal(loaded.generate_from_latents(latents), model.generate_from_latents(latents))


@pytest.mark.parametrize("name", ["gan.keras", "gan.weights.h5"])
def test_model_save_failing_halfway_keeps_the_previous_file(tmp_path, monkeypatch, name):
    from keras.src.saving import saving_lib

    target = tmp_path / name
    model = tiny_dcgan(spread=True)
    save = model.save if name.endswith(".keras") else model.save_weights
    save(target)
    before = target.read_bytes()

    def fails_while_writing(*args, **kwargs):
        raise OSError(28, "No space left on device (simulated)")

    # Both saves write every layer's variables through this call.
    monkeypatch.setattr(saving_lib, "_save_state", fails_while_writing)
    with pytest.raises(OSError, match="No space left"):
        save(target)
    assert target.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == [name]
    monkeypatch.undo()
    tiny_dcgan(seed=1, spread=True).save(target) if name.endswith(".keras") else \
        tiny_dcgan(seed=1, spread=True).save_weights(target)
    assert target.read_bytes() != before


# ---------------------------------------------------------------------- failing halfway
def _no_staging_left(folder):
    return not [p for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}")]


def test_a_failing_final_rename_keeps_the_previous_preset_export_and_metadata(
    preset, exported, monkeypatch
):
    def disk_full(source, target):
        raise OSError(28, "No space left on device")

    model = tiny_dcgan(seed=1, spread=True)
    preset_files, export_files = _files(preset), _files(exported)
    for module in (zoo, atomic):  # export writes through atomic.write_folder
        monkeypatch.setattr(module, "replace_folder", disk_full)
    with pytest.raises(OSError, match="No space left"):
        zoo.save_preset(model, preset, TINY_METADATA, overwrite=True)
    with pytest.raises(OSError, match="No space left"):
        export.export_generator(model, exported, overwrite=True)
    with pytest.raises(OSError, match="No space left"):
        zoo.update_metadata(preset, {"notes": "never written"})
    assert _files(preset) == preset_files and _files(exported) == export_files
    assert _no_staging_left(preset) and _no_staging_left(exported)
    zoo.load(preset)


def test_update_metadata_replaces_metadata_and_card_together(preset):
    weights = preset / zoo.WEIGHTS_FILE
    inode, sha = weights.stat().st_ino, zoo.file_sha256(weights)
    zoo.update_metadata(preset, {"notes": "Recipe chosen because it is tiny."})
    assert zoo.read_metadata(preset)["notes"].startswith("Recipe chosen")
    assert "Recipe chosen because it is tiny." in (preset / zoo.CARD_FILE).read_text()
    # The weights were linked into the new folder, not copied or rewritten.
    assert weights.stat().st_ino == inode and zoo.file_sha256(weights) == sha
    assert _no_staging_left(preset)
    zoo.load(preset)


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_replace_folder_swaps_in_the_new_version(tmp_path, monkeypatch, exchange):
    if not exchange:
        monkeypatch.setattr(atomic, "_exchange", lambda first, second: False)
    target, new = tmp_path / "target", tmp_path / ".staging"
    for folder, text in ((target, "old"), (new, "new")):
        folder.mkdir()
        (folder / "file").write_text(text)
    atomic.replace_folder(new, target)
    assert (target / "file").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target"]


def _make_old_target(kind, target):
    """`target` as a folder, a regular file or a symlink to a folder, holding "old"."""
    if kind == "folder":
        target.mkdir()
        (target / "file").write_text("old")
    elif kind == "file":
        target.write_text("old")
    else:
        elsewhere = target.with_name("elsewhere")
        elsewhere.mkdir()
        (elsewhere / "file").write_text("old")
        target.symlink_to(elsewhere)


@pytest.mark.parametrize("kind", ["folder", "file", "symlink"])
@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_replace_folder_leaves_nothing_of_any_old_target_behind(tmp_path, monkeypatch, exchange, kind):
    # `kgan export NAME FILE --overwrite` left `.FILE.old-PID-THREAD` beside a replaced file.
    if not exchange:
        monkeypatch.setattr(atomic, "_exchange", lambda first, second: False)
    target, new = tmp_path / "target", tmp_path / ".staging"
    _make_old_target(kind, target)
    new.mkdir()
    (new / "file").write_text("new")
    atomic.replace_folder(new, target)
    assert target.is_dir() and not target.is_symlink() and (target / "file").read_text() == "new"
    expected = ["elsewhere", "target"] if kind == "symlink" else ["target"]
    assert sorted(p.name for p in tmp_path.iterdir()) == expected
    if kind == "symlink":  # the link is replaced; the folder it pointed to is not touched
        assert (tmp_path / "elsewhere" / "file").read_text() == "old"


@pytest.mark.parametrize("kind", ["folder", "file"])
def test_replace_folder_puts_the_old_target_back_when_the_move_fails(tmp_path, monkeypatch, kind):
    monkeypatch.setattr(atomic, "_exchange", lambda first, second: False)
    target, new = tmp_path / "target", tmp_path / ".staging"
    _make_old_target(kind, target)
    new.mkdir()
    rename = os.replace

    def fails_for_the_new_folder(source, destination):
        if Path(source) == new:
            raise OSError(28, "No space left on device (simulated)")
        rename(source, destination)

    monkeypatch.setattr(atomic.os, "replace", fails_for_the_new_folder)
    with pytest.raises(OSError, match="No space left"):
        atomic.replace_folder(new, target)
    old = target / "file" if kind == "folder" else target
    assert old.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".staging", "target"]  # no .target.old-*


def test_write_file_keeps_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "x.weights.h5"
    target.write_bytes(b"old")

    def fails_halfway(path):
        assert path.name.endswith(".weights.h5") and path.parent == tmp_path  # beside, same suffix
        path.write_bytes(b"ne")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic.write_file(target, fails_halfway)
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == [target.name]
    atomic.write_file(target, lambda path: path.write_bytes(b"new"))
    assert target.read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == [target.name]


def test_check_output_file_refuses_what_write_file_could_not_write(tmp_path, monkeypatch):
    assert atomic.check_output_file(tmp_path / "new" / "r.json") == tmp_path / "new" / "r.json"
    # It creates nothing: a run failing after the check must not leave new/ behind.
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "afile").write_text("")
    with pytest.raises(atomic.OutputPathError, match="it is a folder"):
        atomic.check_output_file(tmp_path)
    with pytest.raises(atomic.OutputPathError, match="afile is a file"):
        atomic.check_output_file(tmp_path / "afile" / "r.json")
    with pytest.raises(atomic.OutputPathError, match="afile is a file"):
        atomic.check_output_file(tmp_path / "afile" / "deeper" / "r.json")
    # A read-only folder, faked: root (as tests may run) can write in any folder.
    monkeypatch.setattr(atomic.os, "access", lambda path, mode: False)
    with pytest.raises(atomic.OutputPathError, match="no permission to write in"):
        atomic.check_output_file(tmp_path / "r.json")
    with pytest.raises(atomic.OutputPathError, match=f"no permission to write in {tmp_path}"):
        atomic.check_output_file(tmp_path / "new" / "r.json")


def test_a_backup_interrupted_while_saving_keeps_the_previous_backup(tmp_path, monkeypatch):
    """The second backup dies while its weights are written: the first one
    stays complete and consistent (its metadata names its weights) and restores."""
    images = np.random.default_rng(0).uniform(-1, 1, (8, 16, 16, 1)).astype("float32")
    data = tf.data.Dataset.from_tensor_slices(images).batch(4)
    model = tiny_dcgan()
    model.compile()
    saves, first_backup = [], []
    save_weights = keras.Model.save_weights

    def dies_on_the_second(self, path, *args, **kwargs):
        saves.append(path)
        if len(saves) == 1:
            first_backup.extend(w.numpy().copy() for w in self.weights)
        if len(saves) == 2:
            open(path, "wb").write(b"\x89HDF half")
            raise KeyboardInterrupt("killed while writing the backup")
        return save_weights(self, path, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "save_weights", dies_on_the_second)
    with pytest.raises(KeyboardInterrupt):
        model.fit(data, epochs=3, verbose=0, callbacks=[BackupAndRestore(tmp_path / "backup")])
    monkeypatch.undo()
    metadata = BackupAndRestore.read_metadata(tmp_path / "backup")
    assert metadata == {"epoch": 1, "batch": 0, "weights": "ckpt-000001-000000.weights.h5"}
    resumed = tiny_dcgan()
    resumed.compile()
    # 6 generator steps at the end would also be a fresh start (3 epochs x 2
    # batches), so look at the state fit starts from, after the restore.
    at_start, epochs = [], []
    probe = keras.callbacks.LambdaCallback(
        on_train_begin=lambda logs: at_start.append(
            (int(resumed.g_optimizer.iterations.numpy()), [w.numpy().copy() for w in resumed.weights])),
        on_epoch_begin=lambda epoch, logs: epochs.append(epoch),
    )
    resumed.fit(data, epochs=3, verbose=0, callbacks=[BackupAndRestore(tmp_path / "backup"), probe])
    iterations, weights = at_start[0]
    assert iterations == 2 and epochs == [1, 2]  # the first epoch's 2 steps, restored
    assert len(weights) == len(first_backup)
    for restored, saved in zip(weights, first_backup):
        np.testing.assert_array_equal(restored, saved)
    assert int(resumed.g_optimizer.iterations.numpy()) == 6


@pytest.mark.parametrize("method, name, message", [
    ("save", "gan", "Invalid filepath extension"),
    ("save_weights", "gan.h5", "must end in `.weights.h5`"),
    ("save_weights", "gan.keras", "must end in `.weights.h5`"),
])
def test_a_wrong_file_extension_names_the_users_path_and_writes_nothing(tmp_path, method, name, message):
    target = tmp_path / name
    with pytest.raises(ValueError, match=message) as raised:
        getattr(tiny_dcgan(), method)(target)
    assert f"Received: filepath={target}" in str(raised.value) and ".tmp-" not in str(raised.value)
    assert list(tmp_path.iterdir()) == []


def test_two_threads_writing_the_same_file_leave_one_whole_version(tmp_path):
    """Each writer has its own temporary file; the last rename wins, never a mix."""
    import threading

    target = tmp_path / "shared.bin"
    both_writing = threading.Barrier(2)
    errors = []

    def writer(byte):
        def write(path):
            with open(path, "wb") as handle:
                handle.write(byte * 1000)
                both_writing.wait(timeout=10)  # the other thread is mid-write too
                handle.write(byte * 1000)

        try:
            atomic.write_file(target, write)
        except Exception as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(b,)) for b in (b"a", b"b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert target.read_bytes() in (b"a" * 2000, b"b" * 2000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared.bin"]


def test_written_target_names_the_file_write_file_was_writing(tmp_path):
    # Errors raised mid-write name the temporary file; messages name the target.
    seen = []
    atomic.write_file(tmp_path / "out.npz", lambda path: (seen.append(path), path.write_bytes(b"x")))
    assert atomic.written_target(seen[0]) == tmp_path / "out.npz"
    assert atomic.written_target(tmp_path / "out.npz") == tmp_path / "out.npz"
    assert atomic.written_target(".tmp-notes.txt") == Path(".tmp-notes.txt")  # not kgan's


def test_a_worker_that_is_not_the_chief_restores_but_never_writes_the_backup(tmp_path, monkeypatch):
    # Under MultiWorkerMirroredStrategy all workers share one backup folder:
    # two writers deleted each other's temporary files and both crashed.
    images = np.random.default_rng(0).uniform(-1, 1, (8, 16, 16, 1)).astype("float32")
    data = tf.data.Dataset.from_tensor_slices(images).batch(4)
    chief = tiny_dcgan()
    chief.compile()
    chief.fit(data, epochs=1, verbose=0,
              callbacks=[BackupAndRestore(tmp_path / "backup", delete_checkpoint=False)])
    (tmp_path / "backup" / ".tmp-1-chief-writing.weights.h5").write_bytes(b"the chief's save")
    before = {p.name: p.read_bytes() for p in (tmp_path / "backup").iterdir()}
    extended = type(tf.distribute.get_strategy().extended)
    monkeypatch.setattr(extended, "should_checkpoint", property(lambda self: False), raising=False)
    worker = tiny_dcgan()
    worker.compile()
    backup = BackupAndRestore(tmp_path / "backup")  # delete_checkpoint: the chief's job too
    worker.fit(data, epochs=3, verbose=0, callbacks=[backup])
    assert backup.restored_epoch == 1 and int(worker.g_optimizer.iterations.numpy()) == 6
    assert {p.name: p.read_bytes() for p in (tmp_path / "backup").iterdir()} == before


# ---------------------------------------------------------------------- `.` and `..` targets
@pytest.mark.parametrize("target, says", [
    (".", "it is the current folder"),
    ("..", "it is a folder holding the current folder"),
    ("../my_model/.", "it is the current folder"),
    ("/", "it is the file system's root"),
])
def test_a_folder_writer_refuses_the_current_folder_and_its_parents(target, says, tmp_path,
                                                                     monkeypatch):
    # `staging / ".."` was the staging folder's parent: the writer wrote into
    # the user's folder, then the rename failed ("Device or resource busy").
    work = tmp_path / "dot3" / "my_model"
    work.mkdir(parents=True)
    (work / "notes.txt").write_text("mine")
    monkeypatch.chdir(work)
    written = []

    def write(folder):
        written.append(folder)
        Path(folder).mkdir()
        (Path(folder) / "saved_model.pb").write_text("export")

    with pytest.raises(atomic.OutputPathError, match=f"Cannot write the folder {target}: {says}"):
        atomic.write_folder(target, write)
    with pytest.raises(atomic.OutputPathError, match=says):
        zoo.save_preset(tiny_dcgan(seed=0), target, TINY_METADATA, overwrite=True)
    assert written == []
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == [
        "dot3", "dot3/my_model", "dot3/my_model/notes.txt"]


def test_a_folder_target_ending_in_dots_is_written_where_it_points(tmp_path, monkeypatch):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "x" / "y").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "a" / "b")

    def write(folder):
        Path(folder).mkdir()
        (Path(folder) / "saved_model.pb").write_text("export")

    assert atomic.write_folder("../../x/y/..", write) == Path("../../x/y/..")
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["saved_model.pb"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "x"]


def test_a_worker_that_is_not_the_chief_still_stops_on_non_finite_weights(tmp_path, monkeypatch):
    # It skipped the check with the write: the chief stopped, the others went
    # on into the next step's collectives and hung.
    from kgan.callbacks import DivergenceError

    images = np.random.default_rng(0).uniform(-1, 1, (8, 16, 16, 1)).astype("float32")
    extended = type(tf.distribute.get_strategy().extended)
    monkeypatch.setattr(extended, "should_checkpoint", property(lambda self: False), raising=False)
    model = tiny_dcgan()
    model.compile()
    kernel = model.generator.weights[0]
    kernel.assign(np.full(kernel.shape, np.nan, "float32"))
    with pytest.raises(DivergenceError, match="NaN or Inf; no backup was written"):
        model.fit(tf.data.Dataset.from_tensor_slices(images).batch(4), epochs=2, verbose=0,
                  callbacks=[BackupAndRestore(tmp_path / "backup")])
    assert not (tmp_path / "backup").exists()


def test_a_staging_folder_left_by_a_killed_writer_goes_with_the_next_write(tmp_path):
    # A SIGKILLed `kgan synthesize` left out/.big-XXXX (33 MB) that no later run removed.
    target = tmp_path / "big"
    writer = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(f"""
            import os
            from kgan import atomic
            (atomic.staging_dir({str(target)!r}) / "partial.png").write_bytes(b"x" * 100)
            print(os.getpid(), flush=True)
            os._exit(1)  # killed: no cleanup runs
        """)], env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}, check=False,
        capture_output=True, text=True)
    assert writer.returncode == 1, writer.stderr
    pid = int(writer.stdout)
    [left] = tmp_path.iterdir()
    assert left.name.startswith(f".big-{atomic._host()}-{pid}-")
    # Written to within STAGING_STALE_SECONDS: it stays (its process may live in
    # another PID namespace, e.g. a container of the same host name).
    atomic.write_folder(target, lambda folder: folder.mkdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["big", left.name])
    long_ago = time.time() - atomic.STAGING_STALE_SECONDS - 60
    for path in (left / "partial.png", left):
        os.utime(path, (long_ago, long_ago))
    # A live writer's folder, and one written from another machine, stay.
    live = atomic.staging_dir(target)
    other_machine = tmp_path / f".big-{'0' * 12}-{pid}-abcdefgh"
    other_machine.mkdir()
    for path in (live, other_machine):
        os.utime(path, (long_ago, long_ago))
    atomic.write_folder(target, lambda folder: folder.mkdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["big", live.name, other_machine.name])


def test_host_names_differing_in_punctuation_are_different_hosts(monkeypatch):
    # "node-1-1" and "node-11" were both "node11": a live writer on the other
    # node, whose PID is free here, had its staging folder deleted.
    names = {}
    for host in ("node-1-1", "node-11", "a" * 40 + "x", "a" * 40 + "y"):
        monkeypatch.setattr(atomic.socket, "gethostname", lambda host=host: host)
        names[host] = atomic._host()
    assert len(set(names.values())) == 4
    assert all(re.fullmatch(r"[0-9a-f]{12}", name) for name in names.values())


def test_sigterm_within_sigterm_as_interrupt_cleans_up_like_ctrl_c(tmp_path):
    def write(folder):
        folder.mkdir()
        (folder / "part").write_text("x")
        os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(atomic.Terminated):
        with atomic.sigterm_as_interrupt():
            atomic.write_folder(tmp_path / "out", write)
    assert list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_a_folder_that_cannot_hold_folders_is_named_as_the_user_gave_it():
    # mkdtemp's error named the temporary /proc/.kgan_syn-XXXX instead.
    with pytest.raises(atomic.OutputPathError, match=r"^Cannot write /proc/kgan_syn: creating a "
                                                     r"folder in /proc failed"):
        atomic.staging_dir("/proc/kgan_syn")
