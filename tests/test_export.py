"""SavedModel export of generators (`kgan.export.export_generator`)."""

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import kgan
from kgan_test_utils import TINY_METADATA, spread_weights
from kgan.export import export_generator
from kgan.models import DCGAN

SIGNATURES = {"serving_default", "generate_uint8"}
LATENT_DIM = 8
IMAGE_SHAPE = (16, 16, 1)


def tiny_model(seed=0):
    model = DCGAN.from_image_shape(IMAGE_SHAPE, latent_dim=LATENT_DIM, filters=4, seed=seed)
    return spread_weights(model, seed)


def serve(path_or_loaded, latents, signature="serving_default"):
    loaded = path_or_loaded
    if isinstance(loaded, (str, os.PathLike)):
        loaded = tf.saved_model.load(str(loaded))
    return loaded.signatures[signature](latents=tf.constant(latents))["images"].numpy()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny DCGAN, exported once for the module, and the loaded SavedModel."""
    model = tiny_model()
    parent = tmp_path_factory.mktemp("export")
    path = export_generator(model, parent / "generator")
    return model, path, tf.saved_model.load(str(path))


# ---------------------------------------------------------------- the SavedModel
def test_export_returns_the_path_and_leaves_no_staging_folder(exported):
    _, path, _ = exported
    assert isinstance(path, Path)
    assert (path / "saved_model.pb").is_file() and (path / "variables").is_dir()
    assert [p.name for p in path.parent.iterdir()] == ["generator"]


def test_signatures_are_exactly_the_two_documented(exported):
    _, _, loaded = exported
    assert set(loaded.signatures.keys()) == SIGNATURES


@pytest.mark.parametrize("signature, dtype", [("serving_default", tf.float32), ("generate_uint8", tf.uint8)])
def test_input_and_output_specs(exported, signature, dtype):
    _, _, loaded = exported
    function = loaded.signatures[signature]
    args, kwargs = function.structured_input_signature
    assert args == () and list(kwargs) == ["latents"]
    spec = kwargs["latents"]
    assert spec.dtype == tf.float32 and spec.shape.as_list() == [None, LATENT_DIM]
    outputs = function.structured_outputs
    assert list(outputs) == ["images"]
    assert outputs["images"].dtype == dtype
    assert outputs["images"].shape.as_list() == [None, *IMAGE_SHAPE]


@pytest.mark.parametrize("batch", [1, 7])
def test_serving_default_matches_generate_from_latents(exported, batch):
    model, _, loaded = exported
    z = model.latents(batch, seed=batch)
    images = serve(loaded, z)
    expected = model.generate_from_latents(z)
    assert images.dtype == np.float32 and images.shape == (batch, *IMAGE_SHAPE)
    assert images.min() >= -1.0 and images.max() <= 1.0
    assert np.max(np.abs(images - expected)) <= 1e-5
    assert images.std() > 0.1  # images, not near-constant outputs


@pytest.mark.parametrize("batch", [1, 7])
def test_generate_uint8_is_to_uint8_of_the_float_output(exported, batch):
    model, _, loaded = exported
    z = model.latents(batch, seed=100 + batch)
    as_uint8 = serve(loaded, z, "generate_uint8")
    assert as_uint8.dtype == np.uint8 and as_uint8.shape == (batch, *IMAGE_SHAPE)
    np.testing.assert_array_equal(as_uint8, kgan.images.to_uint8(serve(loaded, z)))
    assert len(np.unique(as_uint8)) > 50


def test_saved_model_cli_lists_both_signatures_and_the_latents_input(exported):
    _, path, _ = exported
    executable = Path(sys.executable).parent / "saved_model_cli"
    if not executable.is_file():
        pytest.skip(f"saved_model_cli is not installed next to {sys.executable}")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run(
        [str(executable), "show", "--all", "--dir", str(path)],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    for name in SIGNATURES:
        assert f"signature_def['{name}']" in out
    assert out.count("inputs['latents']") == 2
    assert f"shape: (-1, {LATENT_DIM})" in out
    assert "dtype: DT_UINT8" in out and "dtype: DT_FLOAT" in out


@pytest.mark.parametrize("given, message", [
    ("dcgan_mnist", r"got the str 'dcgan_mnist'; load it first.*kgan.zoo.load\('dcgan_mnist'\)"),
    (Path("zoo/dcgan_mnist"), "load it first"),
    (None, "takes a kgan model.*got NoneType"),
])
def test_export_of_something_other_than_a_kgan_model_says_what_to_pass(tmp_path, given, message):
    with pytest.raises(TypeError, match=message):
        export_generator(given, tmp_path / "served")
    with pytest.raises(TypeError, match=message.replace("export_generator", "export_tflite")):
        kgan.export.export_tflite(given, tmp_path / "served_tflite")
    assert list(tmp_path.iterdir()) == []


def test_export_of_a_plain_keras_model_points_to_keras_export(tmp_path):
    plain = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    for export in (export_generator, kgan.export.export_tflite):
        with pytest.raises(TypeError, match="got Sequential. For a plain Keras model use keras.Model.export"):
            export(plain, tmp_path / "served")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- overwrite / atomicity
def test_existing_path_is_refused_and_left_untouched(tmp_path):
    target = tmp_path / "served"
    target.mkdir()
    (target / "keep.txt").write_text("previous content")
    with pytest.raises(FileExistsError, match="overwrite"):
        export_generator(tiny_model(), target)
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
    assert (target / "keep.txt").read_text() == "previous content"
    assert [p.name for p in tmp_path.iterdir()] == ["served"]


def test_overwrite_replaces_the_previous_export(tmp_path):
    target = tmp_path / "served"
    first, second = tiny_model(seed=0), tiny_model(seed=1)
    z = first.latents(3, seed=0)
    export_generator(first, target)
    np.testing.assert_allclose(serve(target, z), first.generate_from_latents(z), atol=1e-5)
    export_generator(second, target, overwrite=True)
    replaced = serve(target, z)
    assert np.max(np.abs(replaced - second.generate_from_latents(z))) <= 1e-5
    assert np.max(np.abs(replaced - first.generate_from_latents(z))) > 0.1
    assert [p.name for p in tmp_path.iterdir()] == ["served"]  # no staging or retired folder


def _failing_write_out(self, filepath, **kwargs):
    # Half-write the export, then fail, as a full disk would.
    os.makedirs(filepath)
    Path(filepath, "saved_model.pb").write_bytes(b"truncated")
    raise OSError("simulated failure while writing the SavedModel")


def test_failed_export_keeps_the_previous_export_and_leaves_no_temp_folders(tmp_path, monkeypatch):
    target = tmp_path / "served"
    previous = tiny_model(seed=0)
    export_generator(previous, target)
    pb = (target / "saved_model.pb").read_bytes()
    # keras.export.ExportArchive() returns a backend subclass instance (Keras 3.15:
    # TF's SavedModel archive): patch the class export_generator really uses.
    archive_class = type(keras.export.ExportArchive())
    monkeypatch.setattr(archive_class, "write_out", _failing_write_out)

    with pytest.raises(OSError, match="simulated failure"):
        export_generator(tiny_model(seed=1), target, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["served"]
    assert (target / "saved_model.pb").read_bytes() == pb
    z = previous.latents(2, seed=4)
    assert np.max(np.abs(serve(target, z) - previous.generate_from_latents(z))) <= 1e-5

    # A failed first export leaves nothing behind either.
    with pytest.raises(OSError, match="simulated failure"):
        export_generator(tiny_model(), tmp_path / "fresh")
    assert [p.name for p in tmp_path.iterdir()] == ["served"]


def _exporters():
    """`(name, export(path, overwrite))` for every function that writes an export folder."""
    from kgan.models.cyclegan import CycleGAN, export_translator

    def tiny_cyclegan():
        return CycleGAN.from_image_shape((16, 16, 1), filters=4, num_residual_blocks=1,
                                         disc_layers=2, seed=1)

    return {
        "savedmodel": lambda path, overwrite=False: export_generator(tiny_model(), path, overwrite),
        "tflite": lambda path, overwrite=False: kgan.export.export_tflite(
            tiny_model(), path, overwrite=overwrite),
        "translator": lambda path, overwrite=False: export_translator(tiny_cyclegan(), path,
                                                                      overwrite),
    }


EXPORTERS = ("savedmodel", "tflite", "translator")


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_overwrite_never_replaces_a_file(exporter, tmp_path):
    # overwrite=True deleted the file and put a folder in its place; the CLI refused it.
    target = tmp_path / "notes.txt"
    target.write_text("an old file")
    for overwrite in (False, True):
        with pytest.raises(FileExistsError, match=r"exists and is not a folder.*overwrite "
                           r"replaces only an earlier export folder.*move that file away"):
            _exporters()[exporter](target, overwrite)
    assert target.read_text() == "an old file"
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_a_tflite_export_path_named_like_the_file_is_refused(tmp_path):
    # export_tflite(g, "new.tflite") made a folder new.tflite/ holding generator.tflite.
    with pytest.raises(ValueError, match=r"new.tflite looks like the file. Give its folder, "
                       r"e.g. .*new\b"):
        kgan.export.export_tflite(tiny_model(), tmp_path / "new.tflite")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("where", ["registered", "unregistered", "inside", "holding"])
def test_an_export_never_replaces_or_writes_into_a_preset(exporter, where, tmp_path):
    # export_generator(g, zoo.resolve("cgan_mnist_50shot"), overwrite=True)
    # replaced the shipped preset with a SavedModel: zoo.load failed after.
    preset = kgan.zoo.save_preset(tiny_model(), tmp_path / "presets" / "tiny", TINY_METADATA)
    before = {p.name: p.read_bytes() for p in preset.iterdir()}
    target = {"registered": preset, "unregistered": preset, "inside": preset / "exported",
              "holding": tmp_path / "presets"}[where]
    if where != "unregistered":
        kgan.zoo.register_preset("kgan_test_export_target", path=preset)
    try:
        with pytest.raises(kgan.zoo.ZooError, match=r"Refusing to export into .* the preset "
                           r"folder .*tiny.*Choose a path outside it"):
            _exporters()[exporter](target, True)
    finally:
        if where != "unregistered":
            kgan.zoo.unregister_preset("kgan_test_export_target")
    assert {p.name: p.read_bytes() for p in preset.iterdir()} == before
    kgan.zoo.load(preset)


def _train_output(folder):
    """A folder as `kgan train --output` leaves it: preset/, backup/, log.csv."""
    kgan.zoo.save_preset(tiny_model(), folder / "preset", TINY_METADATA)
    (folder / "backup").mkdir()
    (folder / "backup" / "epoch-9.weights.h5").write_text("a backup")
    (folder / "log.csv").write_text("epoch,g_loss\n")
    return folder


def _files(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("where", ["train_output", "inside_unregistered", "deep_inside",
                                   "inside_config_only", "holding_unregistered"])
def test_an_export_never_replaces_or_writes_into_an_unregistered_preset(exporter, where,
                                                                         tmp_path):
    # export_generator(m, "runs/dcgan", overwrite=True) deleted the run's preset/
    # and backup/ for a SavedModel; export_generator(m, mypreset / "exp") wrote
    # into a preset folder no registry knew.
    run = _train_output(tmp_path / "runs" / "dcgan")
    preset = kgan.zoo.save_preset(tiny_model(), tmp_path / "mine", TINY_METADATA)
    if where == "inside_config_only":  # damaged, or half-written: still kgan's preset files
        (preset / kgan.zoo.METADATA_FILE).unlink()
    target, preset_folder = {
        "train_output": (run, run / "preset"),
        "inside_unregistered": (preset / "exp", preset),
        "deep_inside": (preset / "a" / "b", preset),
        "inside_config_only": (preset / "exp", preset),
        "holding_unregistered": (tmp_path, preset),
    }[where]
    before = _files(tmp_path)
    with pytest.raises(kgan.zoo.ZooError, match=rf"Refusing to export into .* the preset "
                       rf"folder .*{preset_folder.name}.*Choose a path outside it"):
        _exporters()[exporter](target, True)
    assert _files(tmp_path) == before
    assert not (preset / "exp").exists() and not (preset / "a").exists()


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_overwrite_replaces_only_an_empty_folder_or_an_earlier_export(exporter, tmp_path):
    # overwrite=True deleted whatever folder was there, e.g. a folder of notes.
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("mine")
    marker = "generator.tflite" if exporter == "tflite" else "saved_model.pb"
    form = "TFLite" if exporter == "tflite" else "SavedModel"
    with pytest.raises(FileExistsError, match=rf"Refusing to replace .*notes: it holds todo.txt, "
                       rf"not an earlier {form} export \(a folder holding {marker}\).*Choose "
                       r"another export path"):
        _exporters()[exporter](notes, True)
    assert _files(notes) == {"todo.txt": b"mine"}
    empty = tmp_path / "empty"
    empty.mkdir()
    _exporters()[exporter](empty, True)
    assert (empty / marker).is_file()
    _exporters()[exporter](empty, True)  # an earlier export of its format: replaced


def test_a_savedmodel_export_never_replaces_a_tflite_export(tmp_path):
    target = tmp_path / "served"
    kgan.export.export_tflite(tiny_model(), target)
    with pytest.raises(FileExistsError, match=r"holds generator.tflite, not an earlier "
                       r"SavedModel export"):
        export_generator(tiny_model(), target, overwrite=True)
    assert [p.name for p in target.iterdir()] == ["generator.tflite"]


def test_the_cli_never_exports_over_a_train_output_or_into_a_preset(tmp_path, capsys):
    # `kgan export A runs/B --overwrite` had the same hole as the Python API.
    from kgan import cli

    run = _train_output(tmp_path / "runs" / "dcgan")
    preset = kgan.zoo.save_preset(tiny_model(), tmp_path / "mine", TINY_METADATA)
    before = _files(tmp_path)
    for target in (run, preset / "exp"):
        for extra in ([], ["--format", "tflite"]):
            assert cli.main(["export", "dcgan_mnist", str(target), "--overwrite", *extra]) == 2
            err = capsys.readouterr().err
            assert "Refusing to export into" in err and "Choose a path outside it" in err
    assert _files(tmp_path) == before


def test_an_export_into_the_installed_catalog_is_refused(tmp_path, monkeypatch):
    catalog = tmp_path / "site-packages" / "kgan" / "_catalog"
    catalog.mkdir(parents=True)
    monkeypatch.setattr(kgan.zoo, "_installed_catalog", lambda: catalog)
    with pytest.raises(kgan.zoo.ZooError, match="installed kgan package"):
        export_generator(tiny_model(), catalog / "served")
    assert list(catalog.iterdir()) == []


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_an_empty_export_path_says_it_is_empty(exporter, tmp_path, monkeypatch):
    # It reported "Cannot write the folder .: it is the current folder".
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="The export path is empty: give the folder"):
        _exporters()[exporter]("", True)
    assert list(tmp_path.iterdir()) == []


def test_a_home_relative_export_path_is_expanded(tmp_path, monkeypatch):
    # "~/served" became a folder named "~" in the current folder.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert export_generator(tiny_model(), "~/served") == tmp_path / "home" / "served"
    assert not (tmp_path / "~").exists()


def test_export_creates_missing_parent_folders(tmp_path):
    target = tmp_path / "a" / "b" / "served"
    assert export_generator(tiny_model(), str(target)) == target
    assert set(tf.saved_model.load(str(target)).signatures) == SIGNATURES


# ---------------------------------------------------------------- mixed precision
def test_mixed_bfloat16_model_exports_float32_outputs(tmp_path):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model = tiny_model()
    computes = {layer.compute_dtype for layer in model.generator.layers if layer.weights}
    assert "bfloat16" in computes  # the network really runs in bfloat16
    target = export_generator(model, tmp_path / "served")
    keras.mixed_precision.set_global_policy("float32")

    loaded = tf.saved_model.load(str(target))
    assert loaded.signatures["serving_default"].structured_outputs["images"].dtype == tf.float32
    z = model.latents(5, seed=0)
    images = serve(loaded, z)
    assert images.dtype == np.float32 and images.shape == (5, *IMAGE_SHAPE)
    assert np.isfinite(images).all() and images.min() >= -1.0 and images.max() <= 1.0
    # The same bfloat16 computation as the model's own sampling path (equal
    # in practice; the same weights computed in float32 are ~7e-3 away).
    np.testing.assert_allclose(images, model.generate_from_latents(z), atol=1e-5)
    np.testing.assert_array_equal(serve(loaded, z, "generate_uint8"), kgan.images.to_uint8(images))


# ---------------------------------------------------------------- inputs of the wrong shape
def _served_error(signature, **inputs):
    """The message a loaded signature fails with for `inputs`."""
    with pytest.raises(tf.errors.InvalidArgumentError) as raised:
        signature(**{name: tf.constant(value) for name, value in inputs.items()})
    return raised.value.message


@pytest.mark.parametrize("shape", [(2, 7), (LATENT_DIM,), (2, LATENT_DIM, 1)])
def test_latents_of_the_wrong_shape_say_the_shape_to_pass(exported, shape):
    # TF does not enforce a signature's declared shape: [2, 7] failed with
    # "Matrix size-incompatible" inside the first Dense layer.
    _, _, loaded = exported
    for name in SIGNATURES:
        message = _served_error(loaded.signatures[name], latents=np.zeros(shape, np.float32))
        assert f"latents must be float32 of shape [batch, {LATENT_DIM}]" in message
        assert f"Got shape:] [{' '.join(map(str, shape))}]" in message


@pytest.fixture(scope="module")
def exported_conditional(tmp_path_factory):
    model = spread_weights(kgan.models.ConditionalGAN.from_image_shape(
        IMAGE_SHAPE, 3, latent_dim=LATENT_DIM, filters=4, embedding_dim=4, seed=0))
    path = export_generator(model, tmp_path_factory.mktemp("export") / "conditional")
    return model, tf.saved_model.load(str(path))


@pytest.mark.parametrize("labels", [np.eye(3, dtype=np.int32)[[0, 2]], np.int32(1)],
                         ids=["one_hot", "scalar"])
def test_labels_of_the_wrong_shape_say_the_shape_to_pass(exported_conditional, labels):
    # One-hot labels failed with "In[0] should be a scalar", a scalar with
    # "Invalid reduction dimension".
    _, loaded = exported_conditional
    z = np.zeros((2, LATENT_DIM), np.float32)
    message = _served_error(loaded.signatures["serving_default"], latents=z, labels=labels)
    assert "labels must be int32 of shape [batch] (or [batch, 1]): one class index in [0, 3)" in message


def test_labels_of_shape_batch_by_one_are_taken_as_generate_takes_them(exported_conditional):
    model, loaded = exported_conditional
    z = model.latents(2, seed=1)
    served = loaded.signatures["serving_default"](latents=tf.constant(z),
                                                  labels=tf.constant([[1], [2]]))["images"]
    np.testing.assert_allclose(served.numpy(), model.generate_from_latents(z, labels=[1, 2]),
                               atol=1e-5)


@pytest.fixture(scope="module")
def exported_translator(tmp_path_factory):
    from kgan.models import CycleGAN

    model = CycleGAN.from_image_shape((16, 16, 1), filters=4, num_residual_blocks=1,
                                      disc_layers=2, seed=1)
    path = export_generator(model, tmp_path_factory.mktemp("export") / "translator")
    return tf.saved_model.load(str(path))


@pytest.mark.parametrize("shape", [(32, 32, 1), (1, 32, 32, 3)], ids=["no_batch", "rgb"])
def test_translator_images_of_the_wrong_shape_say_the_shape_to_pass(exported_translator, shape):
    # [32, 32, 1] said "images must be at least 5x5 pixels"; 3 channels for 1
    # failed with "output depth must be evenly divisible".
    for name in ("a_to_b", "b_to_a", "serving_default"):
        message = _served_error(exported_translator.signatures[name],
                                images=np.zeros(shape, np.uint8))
        assert "images must be uint8 of shape [batch, height, width, 1] (1 channel" in message
        assert "add a batch axis (image[None])" in message
