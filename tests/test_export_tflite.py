"""LiteRT (TFLite) export (`kgan.export.export_tflite`, `kgan export --format tflite`).

Every model is run in the LiteRT interpreter (`ai_edge_litert`, the
`[test]` extra; `tf.lite.Interpreter` if it is missing) and compared with the
Keras model on the same inputs. Tolerances: float32 weights within 1e-4 of
Keras (XNNPACK sums in another order; measured <= 3e-6 on `dcgan_mnist`),
float16 weights within 2e-2 (measured 2e-3 on `dcgan_mnist`).
"""

import errno
from pathlib import Path

import keras
import numpy as np
import pytest

import kgan
from kgan import cli, zoo
from kgan.export import TFLITE_FILE, _translator_signatures, export_tflite, tflite_interpreter
from kgan.models import DCGAN, CycleGAN
from kgan_test_utils import TINY_METADATA, spread_weights, tiny_dcgan

LATENT_DIM = 8
IMAGE_SHAPE = (16, 16, 1)
FLOAT32_ATOL = 1e-4


@pytest.fixture(scope="module")
def model():
    return tiny_dcgan(IMAGE_SHAPE, latent_dim=LATENT_DIM, spread=True)


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    """The tiny DCGAN at the default batch size 1, and its interpreter."""
    path = export_tflite(model, tmp_path_factory.mktemp("tflite") / "served")
    return path, tflite_interpreter(path)


def run(interpreter, latents, signature="serving_default"):
    return interpreter.get_signature_runner(signature)(latents=latents)["images"]


def test_writes_one_file_atomically(exported):
    path, _ = exported
    assert path.name == TFLITE_FILE and path.is_file() and path.stat().st_size > 1000
    assert [p.name for p in path.parent.iterdir()] == [TFLITE_FILE]
    assert [p.name for p in path.parent.parent.iterdir()] == ["served"]  # no staging left


def test_a_failed_write_keeps_the_previous_file_and_leaves_nothing_else(model, tmp_path,
                                                                       monkeypatch):
    # What "atomically" promises: a failure mid-write (a full disk) neither
    # leaves a truncated generator.tflite nor loses the earlier export.
    target = tmp_path / "served"
    previous = export_tflite(model, target).read_bytes()
    real_write_bytes = Path.write_bytes

    def disk_full(path, data):
        real_write_bytes(path, data[:100])
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(Path, "write_bytes", disk_full)
    with pytest.raises(OSError, match="No space left"):
        export_tflite(model, target, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["served"]
    assert [p.name for p in target.iterdir()] == [TFLITE_FILE]
    assert (target / TFLITE_FILE).read_bytes() == previous
    # A failed first export leaves nothing behind either.
    with pytest.raises(OSError, match="No space left"):
        export_tflite(model, tmp_path / "fresh")
    assert [p.name for p in tmp_path.iterdir()] == ["served"]


def test_interpreter_of_a_missing_file_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="No LiteRT model at .*nope.*export_tflite"):
        tflite_interpreter(tmp_path / "nope" / TFLITE_FILE)
    with pytest.raises(FileNotFoundError, match="No LiteRT model"):
        tflite_interpreter(tmp_path)  # a folder, not the file


def test_uses_litert_when_installed(exported):
    pytest.importorskip("ai_edge_litert")
    _, interpreter = exported
    assert type(interpreter).__module__.startswith("ai_edge_litert")


def test_signatures_and_fixed_batch_size(exported):
    _, interpreter = exported
    assert interpreter.get_signature_list() == {
        "generate_uint8": {"inputs": ["latents"], "outputs": ["images"]},
        "serving_default": {"inputs": ["latents"], "outputs": ["images"]},
    }
    runner = interpreter.get_signature_runner("serving_default")
    assert list(runner.get_input_details()["latents"]["shape"]) == [1, LATENT_DIM]
    output = runner.get_output_details()["images"]
    assert list(output["shape"]) == [1, *IMAGE_SHAPE] and output["dtype"] == np.float32


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_float_output_matches_the_keras_generator(model, exported, seed):
    _, interpreter = exported
    z = model.latents(1, seed=seed)
    images = run(interpreter, z)
    expected = model.generate_from_latents(z)
    assert images.dtype == np.float32 and images.shape == (1, *IMAGE_SHAPE)
    assert np.max(np.abs(images - expected)) <= FLOAT32_ATOL
    assert expected.std() > 0.1  # images, not near-constant outputs


def test_uint8_output_is_to_uint8_of_the_keras_output(model, exported):
    _, interpreter = exported
    z = model.latents(1, seed=5)
    pixels = run(interpreter, z, "generate_uint8")
    expected = kgan.images.to_uint8(model.generate_from_latents(z))
    assert pixels.dtype == np.uint8
    # Rounding may flip where float32 sums differ in the last bits.
    assert np.max(np.abs(pixels.astype(int) - expected)) <= 1
    assert np.mean(pixels == expected) >= 0.99


def test_other_fixed_batch_size(model, tmp_path):
    z = model.latents(3, seed=7)
    fixed = tflite_interpreter(export_tflite(model, tmp_path / "b3", batch_size=3))
    runner = fixed.get_signature_runner("serving_default")
    assert list(runner.get_input_details()["latents"]["shape"]) == [3, LATENT_DIM]
    np.testing.assert_allclose(run(fixed, z), model.generate_from_latents(z), atol=FLOAT32_ATOL)


@pytest.mark.slow
def test_dynamic_batch_size(model, tmp_path):
    dynamic = tflite_interpreter(export_tflite(model, tmp_path / "any", batch_size=None))
    for batch in (1, 5):  # the signature runner resizes the input per call
        z = model.latents(batch, seed=batch)
        np.testing.assert_allclose(run(dynamic, z), model.generate_from_latents(z), atol=FLOAT32_ATOL)


def test_float16_weights_halve_the_file(tmp_path):
    wider = spread_weights(DCGAN.from_image_shape(IMAGE_SHAPE, latent_dim=LATENT_DIM, filters=16))
    full = export_tflite(wider, tmp_path / "f32")
    half = export_tflite(wider, tmp_path / "f16", quantize="float16")
    assert half.stat().st_size < 0.6 * full.stat().st_size
    z = wider.latents(1, seed=0)
    images = run(tflite_interpreter(half), z)
    assert images.dtype == np.float32  # dequantized inside: the interface is unchanged
    assert np.max(np.abs(images - wider.generate_from_latents(z))) <= 2e-2


@pytest.mark.parametrize("arch", ["dcgan", "cyclegan"])
def test_a_model_trained_in_bfloat16_converts_from_its_float32_copy(arch, tmp_path):
    # LiteRT has no bf16 kernels: converting the live bf16 networks failed
    # with "'tf.MatMul' op is neither a custom op nor a flex op".
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    if arch == "dcgan":
        gan = spread_weights(DCGAN.from_image_shape(IMAGE_SHAPE, latent_dim=LATENT_DIM, filters=4))
    else:
        gan = CycleGAN.from_image_shape((16, 16, 3), filters=4, num_residual_blocks=1,
                                        disc_layers=1, seed=0)
    keras.mixed_precision.set_global_policy("float32")
    assert "bfloat16" in {layer.compute_dtype for layer in gan.generator.layers}
    interpreter = tflite_interpreter(export_tflite(gan, tmp_path / "served"))
    reference, _ = zoo.portable_copy(gan)  # float32, the same weights
    if arch == "dcgan":
        z = gan.latents(1, seed=0)
        images = run(interpreter, z)
        assert np.max(np.abs(images - reference.generate_from_latents(z))) <= FLOAT32_ATOL
        # ... and the bf16 model's own output up to its rounding.
        assert np.max(np.abs(images - gan.generate_from_latents(z))) <= 5e-2
    else:
        images = np.random.default_rng(0).integers(0, 256, (1, 16, 16, 3), dtype=np.uint8)
        out = interpreter.get_signature_runner("a_to_b")(images=images)["images"]
        assert np.max(np.abs(out.astype(int) - reference.translate(images, direction="a_to_b"))) <= 1


def test_cyclegan_translators_at_a_fixed_size(tmp_path):
    gan = CycleGAN.from_image_shape((16, 16, 3), filters=4, num_residual_blocks=1, disc_layers=1, seed=0)
    # Default size: the training crops.
    _, signatures = _translator_signatures(gan, 1, None)
    assert {name: spec.shape.as_list() for name, (_, (spec,)) in signatures.items()} == {
        "a_to_b": [1, 16, 16, 3], "b_to_a": [1, 16, 16, 3]}
    # 21x30 is not a multiple of 4: the reflection padding and crop are in the graph.
    interpreter = tflite_interpreter(export_tflite(gan, tmp_path / "cyclegan", image_size=(21, 30)))
    assert set(interpreter.get_signature_list()) == {"a_to_b", "b_to_a"}
    images = np.random.default_rng(0).integers(0, 256, (1, 21, 30, 3), dtype=np.uint8)
    for direction in ("a_to_b", "b_to_a"):
        out = interpreter.get_signature_runner(direction)(images=images)["images"]
        assert out.dtype == np.uint8 and out.shape == images.shape
        translated = gan.translate(images, direction=direction)
        assert np.max(np.abs(out.astype(int) - translated)) <= 1  # measured: equal


def test_conditional_gan_signatures_take_labels(tmp_path):
    gan = spread_weights(kgan.models.ConditionalGAN.from_image_shape(
        IMAGE_SHAPE, num_classes=3, latent_dim=LATENT_DIM, filters=4, seed=0))
    interpreter = tflite_interpreter(export_tflite(gan, tmp_path / "cgan", batch_size=2))
    assert interpreter.get_signature_list()["serving_default"]["inputs"] == ["labels", "latents"]
    z, labels = gan.latents(2, seed=0), np.array([0, 2], dtype="int32")
    runner = interpreter.get_signature_runner("serving_default")
    images = runner(latents=z, labels=labels)["images"]
    expected = gan.generate_from_latents(z, labels=labels)
    assert np.max(np.abs(images - expected)) <= FLOAT32_ATOL
    uint8 = interpreter.get_signature_runner("generate_uint8")(latents=z, labels=labels)["images"]
    assert np.max(np.abs(uint8.astype(int) - kgan.images.to_uint8(expected))) <= 1
    # The SavedModel's label assertions do not survive conversion; a label out
    # of range must still fail, not read another class (-1 read the last one).
    for bad in (-1, -10, 3):
        with pytest.raises(RuntimeError, match="gather index out of bounds"):
            runner(latents=z, labels=np.array([0, bad], dtype="int32"))


def test_refusals(model, tmp_path):
    target = tmp_path / "served"
    target.mkdir()
    with pytest.raises(FileExistsError, match="overwrite"):
        export_tflite(model, target)
    assert list(target.iterdir()) == []
    with pytest.raises(ValueError, match="quantize"):
        export_tflite(model, tmp_path / "x", quantize="int8")
    with pytest.raises(ValueError, match="batch_size"):
        export_tflite(model, tmp_path / "x", batch_size=0)
    with pytest.raises(ValueError, match="CycleGAN"):
        export_tflite(model, tmp_path / "x", image_size=(16, 16))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["served"]


# ---------------------------------------------------------------- the CLI
@pytest.fixture(scope="module")
def preset(model, tmp_path_factory):
    return zoo.save_preset(model, tmp_path_factory.mktemp("preset") / "tiny", dict(TINY_METADATA))


def test_cli_exports_tflite(preset, model, tmp_path, capsys):
    target = tmp_path / "served"
    code = cli.main(["export", str(preset), str(target), "--format", "tflite", "--batch-size", "2",
                     "--quantize", "float16"])
    assert code == 0
    out = capsys.readouterr().out
    assert f"{target / TFLITE_FILE}" in out and "batch size 2, float16 weights" in out
    interpreter = tflite_interpreter(target / TFLITE_FILE)
    # --quantize float16 reached the converter: the weights are stored as float16.
    assert np.float16 in {t["dtype"] for t in interpreter.get_tensor_details()}
    z = model.latents(2, seed=3)
    np.testing.assert_allclose(run(interpreter, z), model.generate_from_latents(z), atol=2e-2)
    # Again without --overwrite: refused, the file untouched.
    assert cli.main(["export", str(preset), str(target), "--format", "tflite"]) == 2
    assert "--overwrite" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--quantize", "float16"], "apply to --format tflite"),
    (["--format", "tflite", "--image-size", "16x"], "expected HxW (e.g. 256x256) or N for NxN"),
    (["--format", "tflite", "--image-size", "0"], "expected HxW"),
    (["--format", "tflite", "--image-size", "16x16"], "image-to-image"),
    (["--format", "tflite", "--image-size", "16"], "image-to-image"),
])
def test_cli_refuses_inconsistent_options(preset, tmp_path, capsys, args, message):
    try:
        code = cli.main(["export", str(preset), str(tmp_path / "out"), *args])
    except SystemExit as exit_:  # argparse's refusal of a malformed value
        code = exit_.code
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cli_takes_one_number_for_a_square_image_size_as_kgan_train_does(tmp_path):
    gan = CycleGAN.from_image_shape((16, 16, 1), filters=4, num_residual_blocks=1, disc_layers=1, seed=0)
    preset = zoo.save_preset(gan, tmp_path / "translator", dict(TINY_METADATA),
                             samples=np.zeros((4, 16, 16, 1), "float32"))
    target = tmp_path / "served"
    assert cli.main(["export", str(preset), str(target), "--format", "tflite", "--image-size", "20"]) == 0
    interpreter = tflite_interpreter(target / TFLITE_FILE)
    runner = interpreter.get_signature_runner("a_to_b")
    assert list(runner.get_input_details()["images"]["shape"]) == [1, 20, 20, 1]
