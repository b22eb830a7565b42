"""The bad-input catalog: wrong calls of kgan's Python API and CLI, and what they get.

Every case is one row of a table: what is done wrong, the error class kgan
raises, and two patterns its message must match: one naming the problem, one
naming the fix. CLI rows must exit with status 2 and print exactly one line,
`kgan...: error: ...`, with no traceback and no warning. Add a row when you
find a new way to call kgan wrongly.

What is accepted (the policy these rows pin down):

* training batches (`fit`): floats in [-1, 1], `[B, H, W, C]` of the model's
  shape; uint8 and [0, 255] floats are refused, because `kgan.data`
  pipelines already scale and a silent rescale would hide a mix-up;
* `translate`: uint8 images in [0, 255] (returned as uint8) or floats in
  [-1, 1] (returned as float32), any size >= 5x5; other integer dtypes are
  refused (is int32 255 a pixel or a float?);
* latents: real numbers (integer or float), `[N, latent_dim]`, finite after
  the cast to float32;
* conditional labels: integer class indices in `[0, num_classes)`;
* arguments (`num`, `seed`, `batch_size`, `direction`): `TypeError` /
  `ValueError`, as Python code expects.

Errors: `kgan.models.InputValidationError` (data that does not fit the model;
`InputDTypeError` for dtypes, also a `TypeError`), `kgan.zoo.UnknownNameError`
and `kgan.data.UnknownDatasetError` (names), `kgan.zoo.IntegrityError`,
`PresetMismatchError`, `ZooError` (presets), `kgan.atomic.OutputPathError`
(outputs that cannot be written), `FileExistsError` (outputs that exist).

The property tests at the end feed `generate` and `CycleGAN.translate`
random shapes, dtypes and values: the result is a correct output or one of
the errors above, never a TensorFlow error.
"""

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import kgan
from kgan import cli, zoo
from kgan.atomic import OutputPathError
from kgan.data import UnknownDatasetError
from kgan.models import CycleGAN, DCGAN, WGAN, InputDTypeError, InputValidationError
from kgan_test_utils import TINY_METADATA, BatchSequence, spread_weights

try:  # being added alongside this catalog; its rows join when it exists
    from kgan.models import ConditionalGAN
except ImportError:  # pragma: no cover
    ConditionalGAN = None

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "zoo"


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Tiny models and presets, built once for the module."""
    root = tmp_path_factory.mktemp("bad_input")
    dcgan = spread_weights(DCGAN.from_image_shape((16, 16, 1), latent_dim=8, filters=4, seed=0))
    dcgan.compile()
    wgan = WGAN.from_image_shape((16, 16, 1), latent_dim=8, filters=4, seed=0)
    wgan.compile()
    cyclegan = CycleGAN.from_image_shape(
        (16, 16, 1), filters=4, num_residual_blocks=1, disc_layers=1, seed=0
    )
    preset = zoo.save_preset(dcgan, root / "tiny", TINY_METADATA)
    cyclegan_preset = zoo.save_preset(
        cyclegan, root / "tiny_cyclegan", TINY_METADATA, samples=np.zeros((4, 16, 16, 1), "float32")
    )
    conditional = None
    if ConditionalGAN is not None:
        conditional = ConditionalGAN.from_image_shape(
            (16, 16, 1), num_classes=3, latent_dim=8, filters=4, seed=0
        )
        conditional.compile()
    return SimpleNamespace(
        dcgan=dcgan, wgan=wgan, cyclegan=cyclegan, conditional=conditional,
        preset=preset, cyclegan_preset=cyclegan_preset,
    )


@pytest.fixture
def env(models, tmp_path):
    """The module's models plus this test's own temporary folder."""
    return SimpleNamespace(**vars(models), tmp=tmp_path)


# ---------------------------------------------------------------- helpers
def batches(images, labels=None, batch_size=4):
    data = images if labels is None else (images, labels)
    return tf.data.Dataset.from_tensor_slices(data).batch(batch_size)


def zeros(*shape, dtype="float32"):
    return np.zeros(shape, dtype)


def generator_of(*parts, count=2):
    """A Python generator of `count` batches `parts` (each a tuple, as Keras wants)."""
    for _ in range(count):
        yield tuple(parts)


def copy_shipped(env, name="dcgan_mnist"):
    """A private copy of a shipped preset, to damage."""
    return Path(shutil.copytree(SHIPPED / name, env.tmp / name))


def rehash(folder):
    """Record the current weights' sha256 in metadata.json (damage that passes the hash check)."""
    metadata = json.loads((folder / zoo.METADATA_FILE).read_text())
    metadata["weights_sha256"] = zoo.file_sha256(folder / zoo.WEIGHTS_FILE)
    (folder / zoo.METADATA_FILE).write_text(json.dumps(metadata))
    return folder


def truncated(env, rehashed=False):
    folder = copy_shipped(env)
    weights = folder / zoo.WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return rehash(folder) if rehashed else folder


def with_metadata(env, **updates):
    folder = copy_shipped(env)
    metadata = json.loads((folder / zoo.METADATA_FILE).read_text())
    metadata.update(updates)
    (folder / zoo.METADATA_FILE).write_text(json.dumps(metadata))
    return folder


def with_json(env, filename, text):
    """dcgan_mnist with `filename` (metadata.json or config.json) replaced by `text`."""
    folder = copy_shipped(env)
    (folder / filename).write_text(text)
    return folder


def without_weights_hash(env):
    folder = copy_shipped(env)
    metadata = json.loads((folder / zoo.METADATA_FILE).read_text())
    del metadata["weights_sha256"]
    (folder / zoo.METADATA_FILE).write_text(json.dumps(metadata))
    return folder


def _with_user_file(path):
    path.mkdir()
    (path / "log.csv").write_text("my own notes\n")
    return path


def folder_of_good_images(env, name="photos_b"):
    images = folder(env.tmp / name)
    for index in range(2):
        kgan.images.save_png(zeros(16, 16, 1, dtype="uint8"), images / f"good_{index}.png")
    return images


def folder_with_undecodable_images(env):
    """Two good PNGs, a text file named .jpg and a truncated PNG."""
    images = folder_of_good_images(env, "photos")
    (images / "notes.jpg").write_text("not an image")
    good = (images / "good_0.png").read_bytes()
    (images / "half.png").write_bytes(good[: len(good) // 2])
    return images


def folder_with_truncated_jpeg(env):
    """Two good PNGs and a JPEG cut off in its header (read with --channels 1)."""
    images = folder_of_good_images(env, "grey")
    jpeg = tf.io.encode_jpeg(np.zeros((8, 8, 3), np.uint8)).numpy()
    (images / "half.jpg").write_bytes(jpeg[:100])
    return images


def folder_with_broken_link(env):
    """Two good PNGs and a link to a file that was deleted."""
    images = folder_of_good_images(env, "linked")
    (images / "gone.png").symlink_to(env.tmp / "deleted.png")
    return images


def classes_with_an_empty_one(env):
    """Class folders a/ and b/ of two good PNGs each, and an empty c/."""
    root = folder(env.tmp / "classes")
    for name in "ab":
        shutil.copytree(folder_of_good_images(env, f"class_{name}"), root / name)
    (root / "c").mkdir()
    return root


def array_file(env):
    """An .npz of images, which kgan train does not read."""
    np.savez(env.tmp / "images.npz", images=zeros(4, 16, 16, 1, dtype="uint8"))
    return env.tmp / "images.npz"


def foreign_weights(env, source, rehashed):
    """dcgan_mnist with the weights file of another shipped preset copied in."""
    folder = copy_shipped(env)
    shutil.copy(SHIPPED / source / zoo.WEIGHTS_FILE, folder / zoo.WEIGHTS_FILE)
    return rehash(folder) if rehashed else folder


def unwritable(env):
    """An output path kgan cannot write, even when the tests run as root.

    A read-only folder stops ordinary users; root ignores the mode bits, so
    then the path goes under a regular file, which no one can create.
    """
    folder = env.tmp / "read_only"
    folder.mkdir()
    folder.chmod(0o500)
    probe = folder / "probe"
    try:
        probe.touch()
    except PermissionError:
        return folder / "out"
    probe.unlink()  # root: mode bits do not apply
    blocker = env.tmp / "a_file"
    blocker.write_text("not a folder")
    return blocker / "out"


# ---------------------------------------------------------------- the Python API
@dataclasses.dataclass(frozen=True)
class Case:
    """One wrong call: `run(env)` must raise `error` with `problem` and `fix` in its message."""

    id: str
    run: object
    error: type
    problem: str
    fix: str


UNWRITABLE_FIX = r"(?i)choose an(other)? output (folder|path)"

API_CASES = [
    # training batches
    Case("fit_rank3_images", lambda e: e.dcgan.fit(batches(zeros(8, 16, 16)), verbose=0),
         InputValidationError, r"rank 4", r"channel axis"),
    Case("fit_unbatched_dataset",
         lambda e: e.dcgan.fit(tf.data.Dataset.from_tensor_slices(zeros(8, 16, 16, 1)), verbose=0),
         InputValidationError, r"got shape \(16, 16, 1\)\. That is one image, not a batch",
         r"dataset\.batch\(64\)"),
    Case("fit_wrong_image_size", lambda e: e.dcgan.fit(batches(zeros(8, 32, 32, 1)), verbose=0),
         InputValidationError, r"built for images of shape \(16, 16, 1\)", r"Resize the data"),
    Case("fit_uint8_images", lambda e: e.dcgan.fit(batches(zeros(8, 16, 16, 1, dtype="uint8")), verbose=0),
         InputValidationError, r"floating point.*uint8", r"from_uint8"),
    Case("fit_0_255_floats", lambda e: e.dcgan.fit(batches(np.full((8, 16, 16, 1), 255.0, "float32")), verbose=0),
         InputValidationError, r"scaled to \[-1, 1\]", r"x / 127.5 - 1"),
    Case("fit_nan_images", lambda e: e.dcgan.fit(batches(np.full((8, 16, 16, 1), np.nan, "float32")), verbose=0),
         InputValidationError, r"NaN", r"np.isfinite"),
    Case("fit_empty_dataset",
         lambda e: e.dcgan.fit(tf.data.Dataset.from_tensor_slices(zeros(3, 16, 16, 1)).batch(4, drop_remainder=True), verbose=0),
         InputValidationError, r"dataset is empty", r"lower the batch size"),
    Case("fit_dict_batches",
         lambda e: e.dcgan.fit(tf.data.Dataset.from_tensor_slices({"image": zeros(4, 16, 16, 1)}).batch(2), verbose=0),
         InputValidationError, r"dict batch", r"d\['image'\]"),
    Case("fit_generator_of_0_255_floats",
         lambda e: e.dcgan.fit(generator_of(np.full((4, 16, 16, 1), 255.0, "float32")), verbose=0),
         InputValidationError, r"scaled to \[-1, 1\]", r"x / 127.5 - 1"),
    Case("fit_pydataset_of_0_255_floats",
         lambda e: e.dcgan.fit(BatchSequence([(np.full((4, 16, 16, 1), 255.0, "float32"),)] * 2), verbose=0),
         InputValidationError, r"scaled to \[-1, 1\]", r"x / 127.5 - 1"),
    Case("fit_generator_wrong_channels",
         lambda e: e.dcgan.fit(generator_of(zeros(4, 16, 16, 3)), verbose=0),
         InputValidationError, r"built for images of shape \(16, 16, 1\)", r"Resize the data"),
    Case("cyclegan_fit_generator_wrong_channels_b",
         lambda e: e.cyclegan.fit(generator_of(zeros(2, 16, 16, 1), zeros(2, 16, 16, 3)), verbose=0),
         InputValidationError, r"Domain B images have 1 channels.*got 3", r"grayscale_to_rgb"),
    Case("fit_labels_to_an_unconditional_gan",
         lambda e: e.dcgan.fit(zeros(8, 16, 16, 1), np.zeros(8, int), batch_size=4, verbose=0),
         InputValidationError, r"DCGAN is unconditional", r"Drop y, or use the conditional_gan"),
    Case("fit_sample_weight", lambda e: e.dcgan.fit(zeros(8, 16, 16, 1), batch_size=4, sample_weight=np.ones(8), verbose=0),
         ValueError, r"takes no sample_weight", r"Drop sample_weight"),
    Case("fit_class_weight", lambda e: e.dcgan.fit(batches(zeros(8, 16, 16, 1)), class_weight={0: 2.0}, verbose=0),
         ValueError, r"takes no class_weight", r"Drop class_weight"),
    Case("fit_weights_in_the_batches",
         lambda e: e.dcgan.fit(batches(zeros(8, 16, 16, 1), (np.zeros(8), np.ones(8))).map(
             lambda x, yw: (x, yw[0], yw[1])), verbose=0),
         InputValidationError, r"batch of 3 parts.*sample weights", r"Drop the weights"),
    Case("fit_learning_rate_scheduler",
         lambda e: e.dcgan.fit(batches(zeros(8, 16, 16, 1)), verbose=0,
                               callbacks=[keras.callbacks.LearningRateScheduler(lambda epoch, lr: lr)]),
         ValueError, r"cannot run keras.callbacks.LearningRateScheduler.*one optimizer per network",
         r"kgan.schedules"),
    Case("fit_reduce_lr_on_plateau",
         lambda e: e.dcgan.fit(batches(zeros(8, 16, 16, 1)), verbose=0,
                               callbacks=[keras.callbacks.ReduceLROnPlateau("g_loss")]),
         ValueError, r"cannot run keras.callbacks.ReduceLROnPlateau", r"schedule"),
    Case("save_legacy_h5", lambda e: e.dcgan.save(e.tmp / "m.h5"), ValueError,
         r"legacy HDF5 file", r"m\.keras.*m\.weights\.h5"),
    Case("fit_model_checkpoint_h5",
         lambda e: e.dcgan.fit(batches(zeros(8, 16, 16, 1)), verbose=0,
                               callbacks=[keras.callbacks.ModelCheckpoint(str(e.tmp / "best.h5"))]),
         ValueError, r"ModelCheckpoint cannot write a GAN to the legacy HDF5 file",
         r"best\.keras.*best\.weights\.h5.*save_weights_only=True"),
    Case("wgan_batch_smaller_than_n_critic", lambda e: e.wgan.fit(batches(zeros(6, 16, 16, 1), batch_size=3), verbose=0),
         InputValidationError, r"n_critic=5.*batch of 3", r"repeat_batches=5"),
    Case("data_batch_larger_than_dataset", lambda e: kgan.data.load("digits_8x8", batch_size=5000),
         ValueError, r"fewer than one batch", r"Lower batch_size"),
    Case("data_from_numpy_empty", lambda e: kgan.data.from_numpy(zeros(0, 16, 16, 1)),
         ValueError, r"images is empty", r"at least one image"),
    # sampling
    Case("latents_wrong_shape", lambda e: e.dcgan.generate_from_latents(zeros(2, 5)),
         InputValidationError, r"shape \[N, 8\], got \(2, 5\)", r"model.latents"),
    Case("latent_vector_without_batch_axis", lambda e: e.dcgan.generate_from_latents(zeros(8)),
         InputValidationError, r"shape \[N, 8\]", r"z\[None\]"),
    Case("latents_complex", lambda e: e.dcgan.generate_from_latents(np.ones((2, 8), complex)),
         InputDTypeError, r"real numbers.*complex128", r"model.latents"),
    Case("latents_strings", lambda e: e.dcgan.generate_from_latents([["a"] * 8]),
         InputDTypeError, r"real numbers", r"standard_normal"),
    Case("latents_nan", lambda e: e.dcgan.generate_from_latents(np.full((2, 8), np.nan)),
         InputValidationError, r"NaN or Inf", r"finite latents"),
    Case("latents_beyond_float32", lambda e: e.dcgan.generate_from_latents(np.full((2, 8), 1e300)),
         InputValidationError, r"float32's range", r"finite latents"),
    Case("generate_num_zero", lambda e: e.dcgan.generate(0), ValueError, r"got 0", r"num must be at least 1"),
    Case("generate_num_float", lambda e: e.dcgan.generate(2.5), TypeError, r"num.*2\.5", r"positive int"),
    Case("generate_more_than_memory", lambda e: e.dcgan.generate(10**12), ValueError,
         r"generate\(1,000,000,000,000\) would need 1\.06 PB of memory", r"generate_batches"),
    Case("generate_seed_negative", lambda e: e.dcgan.generate(2, seed=-1), ValueError, r"got -1", r"seed must be >= 0"),
    Case("generate_seed_string", lambda e: e.dcgan.generate(2, seed="7"), TypeError, r"got '7'", r"int or None"),
    Case("cyclegan_has_no_latents", lambda e: e.cyclegan.generate(4), TypeError, r"no latent space", r"translate\("),
    # translation
    Case("translate_int32_pixels", lambda e: e.cyclegan.translate(zeros(8, 8, 1, dtype="int32")),
         InputDTypeError, r"dtype int32", r"astype\('uint8'\)"),
    Case("translate_wrong_channels", lambda e: e.cyclegan.translate(zeros(8, 8, 3, dtype="uint8")),
         InputValidationError, r"1 channels; got 3", r"convert the images"),
    Case("translate_rank2_image", lambda e: e.cyclegan.translate(zeros(8, 8, dtype="uint8")),
         InputValidationError, r"got shape \(8, 8\)", r"image\[\.\.\., None\]"),
    Case("translate_too_small", lambda e: e.cyclegan.translate(zeros(4, 9, 1, dtype="uint8")),
         InputValidationError, r"at least 5x5.*got 4x9", r"Upscale or pad"),
    Case("translate_0_255_floats", lambda e: e.cyclegan.translate(np.full((8, 8, 1), 255.0, "float32")),
         InputValidationError, r"scaled to \[-1, 1\]", r"127.5"),
    Case("translate_unknown_direction", lambda e: e.cyclegan.translate(zeros(8, 8, 1, dtype="uint8"), direction="AtoB"),
         ValueError, r"got 'AtoB'", r"'a_to_b'.*'b_to_a'"),
    # names
    Case("unknown_architecture", lambda e: zoo.build("dcgn"), zoo.UnknownNameError,
         r"Unknown architecture 'dcgn'", r"Did you mean 'dcgan'"),
    Case("unknown_preset", lambda e: zoo.load("dcgan_mnst"), zoo.UnknownNameError,
         r"Unknown preset 'dcgan_mnst'", r"Did you mean 'dcgan_mnist'"),
    Case("unknown_dataset", lambda e: kgan.data.load("mnistt"), UnknownDatasetError,
         r"Unknown dataset 'mnistt'", r"Did you mean 'mnist'"),
    Case("dataset_folder_missing", lambda e: kgan.data.load(str(e.tmp / "pictures")), UnknownDatasetError,
         r"Dataset folder '.*pictures' does not exist", r"Check the path"),
    Case("dataset_path_with_a_space", lambda e: kgan.data.load("my pictures"), UnknownDatasetError,
         r"not .*a tensorflow-datasets name", r"named by its path, which must exist"),
    Case("misspelt_builder_option", lambda e: zoo.build("dcgan", image_shape=(16, 16, 1), latent_dimm=8),
         TypeError, r"latent_dimm", r"takes image_shape, latent_dim"),
    # presets
    Case("truncated_weights", lambda e: zoo.load(truncated(e)), zoo.IntegrityError,
         r"sha256 .* records", r"Re-download or re-save"),
    Case("truncated_weights_rehashed", lambda e: zoo.load(truncated(e, rehashed=True)), zoo.IntegrityError,
         r"not a readable weights file", r"Re-download the preset"),
    Case("metadata_and_config_disagree", lambda e: zoo.load(with_metadata(e, architecture="wgan")),
         zoo.PresetMismatchError, r"says architecture 'wgan'.*builds 'DCGAN'", r"re-save it with kgan.zoo.save_preset"),
    Case("wgan_weights_copied_into_dcgan", lambda e: zoo.load(foreign_weights(e, "wgan_mnist", rehashed=False)),
         zoo.IntegrityError, r"corrupt or was replaced", r"Re-download or re-save"),
    Case("wgan_gp_weights_rehashed_into_dcgan", lambda e: zoo.load(foreign_weights(e, "wgan_gp_mnist", rehashed=True)),
         zoo.PresetMismatchError, r"do not fit the DCGAN", r"Keep a preset's config.json and model.weights.h5 together"),
    Case("preset_folder_missing", lambda e: zoo.load(str(e.tmp / "nowhere") + "/"), zoo.ZooError,
         r"does not exist", r"Check the path"),
    Case("remote_preset_without_full_sha256", lambda e: zoo.load("https://example.invalid/p.tar.gz", sha256="abc"),
         zoo.ZooError, r"got 'abc'", r"full sha256 \(64 hex"),
    # outputs
    Case("save_preset_unwritable", lambda e: zoo.save_preset(e.dcgan, unwritable(e), TINY_METADATA),
         OutputPathError, r"(is a file, not a folder|no permission|Cannot write)", UNWRITABLE_FIX),
    Case("export_unwritable", lambda e: kgan.export_generator(e.dcgan, unwritable(e)),
         OutputPathError, r"(is a file, not a folder|no permission)", UNWRITABLE_FIX),
    Case("save_grid_unwritable", lambda e: kgan.images.save_grid(zeros(4, 8, 8, 1), unwritable(e) / "g.png"),
         OutputPathError, r"(is a file, not a folder|no permission)", UNWRITABLE_FIX),
    Case("export_over_existing_folder", lambda e: kgan.export_generator(e.dcgan, e.tmp),
         FileExistsError, r"already exists", r"overwrite=True"),
    Case("save_grid_jpg_name", lambda e: kgan.images.save_grid(zeros(4, 8, 8, 1), e.tmp / "x.jpg"),
         ValueError, r"writes PNG files, but .*ends in '\.jpg'", r"Name it 'x\.png'.*encode_jpeg"),
]

CONDITIONAL_CASES = [
    Case("conditional_float_labels", lambda e: e.conditional.generate(4, labels=np.array([0.0, 1, 2, 0]), seed=0),
         InputDTypeError, r"integer class indices, got dtype float64", r"astype\('int32'\)"),
    Case("conditional_label_out_of_range", lambda e: e.conditional.generate(2, labels=3, seed=0),
         InputValidationError, r"label 3 is outside \[0, 3\)", r"class indices 0\.\.2"),
    Case("conditional_generate_more_than_memory", lambda e: e.conditional.generate(10**12, labels=1),
         ValueError, r"generate\(1,000,000,000,000\) would need", r"generate_batches"),
    Case("conditional_label_count", lambda e: e.conditional.generate(4, labels=[0, 1, 2], seed=0),
         InputValidationError, r"3 labels for 4 images", r"one label per image"),
    Case("conditional_bool_label", lambda e: e.conditional.generate(2, labels=True, seed=0),
         InputDTypeError, r"bool, not a class index", r"integer class indices"),
    Case("conditional_fit_without_labels", lambda e: e.conditional.fit(batches(zeros(8, 16, 16, 1)), verbose=0),
         InputValidationError, r"without labels", r"with_labels=True"),
    Case("conditional_fit_float_labels",
         lambda e: e.conditional.fit(batches(zeros(8, 16, 16, 1), zeros(8)), verbose=0),
         InputDTypeError, r"dtype float32", r"tf.cast\(y, 'int32'\)"),
    Case("conditional_fit_label_out_of_range",
         lambda e: e.conditional.fit(batches(zeros(8, 16, 16, 1), np.full(8, 7)), verbose=0),
         InputValidationError, r"label 7 is outside", r"class indices 0\.\.2"),
    Case("conditional_fit_dict_batches",
         lambda e: e.conditional.fit(batches({"image": zeros(8, 16, 16, 1), "label": np.zeros(8, int)}),
                                     verbose=0),
         InputValidationError, r"dict batch \(keys 'image', 'label'\)",
         r"lambda d: \(d\['image'\], d\['label'\]\)"),
    Case("conditional_fit_generator_label_out_of_range",
         lambda e: e.conditional.fit(generator_of(zeros(4, 16, 16, 1), np.full(4, 7)), verbose=0),
         InputValidationError, r"label 7 is outside", r"class indices 0\.\.2"),
] if ConditionalGAN is not None else []


def check_message(message, case):
    assert re.search(case.problem, message, re.S), f"problem /{case.problem}/ not in: {message}"
    assert re.search(case.fix, message, re.S), f"fix /{case.fix}/ not in: {message}"


@pytest.mark.parametrize("case", API_CASES + CONDITIONAL_CASES, ids=lambda c: c.id)
def test_api_bad_input(case, env):
    with pytest.raises(case.error) as info:
        case.run(env)
    # The specific class, not a base (e.g. InputDTypeError, not InputValidationError).
    assert type(info.value) is case.error or case.error in (ValueError, TypeError, FileExistsError), (
        f"raised {type(info.value).__name__}, expected {case.error.__name__}")
    assert not isinstance(info.value, tf.errors.OpError)
    check_message(str(info.value), case)


def test_the_catalog_is_large_and_ids_are_unique():
    api = [c.id for c in API_CASES + CONDITIONAL_CASES]
    command_line = [c.id for c in CLI_CASES]
    assert len(api) == len(set(api)) and len(command_line) == len(set(command_line))
    assert len(api) >= 25 and len(command_line) >= 25


# ---------------------------------------------------------------- the CLI
# Python shows these by default only in __main__; the real CLI would not print them.
_QUIET = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)


def run_cli(argv, capsys):
    """`kgan ARGV` in-process: `(exit code, stderr lines)`, printed warnings included."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for category in _QUIET:
            warnings.filterwarnings("ignore", category=category)
        try:
            code = cli.main([str(a) for a in argv])
        except SystemExit as exit_:
            code = exit_.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    return code, lines + [f"warning: {w.message}" for w in caught]


@dataclasses.dataclass(frozen=True)
class CLICase:
    """`kgan ARGV(env)` must exit 2 with one line matching `problem` and `fix`."""

    id: str
    argv: object
    problem: str
    fix: str


def _out(env, name="out.png"):
    return env.tmp / name


def folder(path):
    path.mkdir()
    return path


CLI_CASES = [
    CLICase("unknown_command", lambda e: ["frobnicate"], r"invalid choice: 'frobnicate'", r"choose from 'list'"),
    CLICase("unknown_preset", lambda e: ["sample", "dcgan_mnst", "--output", _out(e)],
            r"Unknown preset 'dcgan_mnst'", r"Did you mean 'dcgan_mnist'"),
    CLICase("unknown_architecture",
            lambda e: ["train", "dcgn", "--dataset", "mnist_5k", "--epochs", "1", "--output", e.tmp / "run"],
            r"Unknown architecture 'dcgn'", r"Did you mean 'dcgan'"),
    CLICase("unknown_dataset",
            lambda e: ["train", "dcgan", "--dataset", "mnistt", "--epochs", "1", "--output", e.tmp / "run"],
            r"Unknown dataset 'mnistt'", r"Did you mean"),
    CLICase("dataset_folder_missing",
            lambda e: ["train", "dcgan", "--dataset", "nosuchfolder/", "--epochs", "1", "--output", e.tmp / "run"],
            r"Dataset folder 'nosuchfolder/' does not exist", r"Check the path"),
    CLICase("num_zero", lambda e: ["sample", e.preset, "--num", "0", "--output", _out(e)],
            r"argument --num", r"expected a positive integer, got 0"),
    CLICase("num_not_a_number", lambda e: ["sample", e.preset, "--num", "many", "--output", _out(e)],
            r"argument --num", r"expected a positive integer, got 'many'"),
    CLICase("seed_not_a_number", lambda e: ["sample", e.preset, "--seed", "x", "--output", _out(e)],
            r"argument --seed", r"expected an integer"),
    CLICase("output_missing", lambda e: ["sample", e.preset], r"required: --output", r"see kgan sample --help"),
    CLICase("png_grid_too_large", lambda e: ["sample", e.preset, "--num", str(10**20), "--output", _out(e)],
            r"a \.png grid of 100,000,000,000,000,000,000 samples", r"write a \.npz file or a folder"),
    CLICase("interpolation_grid_too_large",
            lambda e: ["sample", e.preset, "--num", str(10**9), "--interpolate", "8", "--output", _out(e)],
            r"more than the 268,435,456 a grid may hold", r"at most about [\d,]+ rows"),
    CLICase("interpolate_one_step", lambda e: ["sample", e.preset, "--interpolate", "1", "--output", _out(e)],
            r"--interpolate", r"at least 2 steps"),
    CLICase("png_output_is_a_folder", lambda e: ["sample", e.preset, "--output", folder(e.tmp / "dir.png")],
            r"is a folder", r"choose a file name"),
    CLICase("sample_output_under_a_file", lambda e: ["sample", e.preset, "--num", "2", "--output", unwritable(e)],
            r"(is a file, not a folder|no permission)", UNWRITABLE_FIX),
    CLICase("npz_output_under_a_file", lambda e: ["sample", e.preset, "--num", "2", "--output", unwritable(e) / "s.npz"],
            r"(is a file, not a folder|no permission)", UNWRITABLE_FIX),
    CLICase("export_under_a_file", lambda e: ["export", e.preset, unwritable(e)],
            r"(is a file, not a folder|no permission)", UNWRITABLE_FIX),
    CLICase("export_over_existing_folder", lambda e: ["export", e.preset, e.tmp],
            r"already exists", r"--overwrite"),
    CLICase("bad_precision",
            lambda e: ["train", "dcgan", "--dataset", "mnist_5k", "--epochs", "1", "--precision", "fp8", "--output", e.tmp / "r"],
            r"invalid choice: 'fp8'", r"choose from 'float32'"),
    CLICase("ema_decay_out_of_range",
            lambda e: ["train", "dcgan", "--dataset", "mnist_5k", "--epochs", "1", "--ema-decay", "2", "--output", e.tmp / "r"],
            r"--ema-decay", r"number in \(0, 1\)"),
    CLICase("bench_profile_with_serving", lambda e: ["bench", "dcgan_mnist", "--serving", "--profile"],
            r"--profile configures training benchmarks", r"Drop it, or drop --serving"),
    CLICase("bench_option_the_architecture_lacks", lambda e: ["bench", "dcgan", "--n-critic", "3"],
            r"dcgan does not take --n-critic", r"see kgan bench --help"),
    CLICase("option_the_architecture_lacks",
            lambda e: ["train", "dcgan", "--dataset", "mnist_5k", "--epochs", "1", "--n-critic", "2", "--output", e.tmp / "r"],
            r"dcgan does not take --n-critic", r"kgan train --help"),
    CLICase("truncated_weights", lambda e: ["sample", truncated(e), "--output", _out(e)],
            r"has sha256 .* records", r"Re-download or re-save"),
    CLICase("wgan_gp_weights_rehashed_into_dcgan",
            lambda e: ["sample", foreign_weights(e, "wgan_gp_mnist", rehashed=True), "--output", _out(e)],
            r"do not fit the DCGAN", r"re-save it"),
    CLICase("metadata_and_config_disagree",
            lambda e: ["sample", with_metadata(e, architecture="wgan"), "--output", _out(e)],
            r"says architecture 'wgan'", r"re-save it"),
    CLICase("plain_http_url", lambda e: ["sample", "http://127.0.0.1:9/p.tar.gz", "--sha256", "0" * 64, "--output", _out(e)],
            r"Refusing plain-http URL", r"use https"),
    CLICase("https_url_without_sha256", lambda e: ["sample", "https://example.invalid/p.tar.gz", "--output", _out(e)],
            r"needs its full sha256", r"64 hex"),
    CLICase("translate_with_a_latent_preset",
            lambda e: ["translate", e.preset, kgan.images.save_png(zeros(8, 8, 1, dtype="uint8"), e.tmp / "x.png"),
                       "--output", e.tmp / "t"],
            r"generates images from latents", r"use kgan sample"),
    CLICase("sample_a_translator", lambda e: ["sample", e.cyclegan_preset, "--output", _out(e)],
            r"no latent space", r"use kgan translate"),
    CLICase("translate_missing_input", lambda e: ["translate", e.cyclegan_preset, e.tmp / "nope.png", "--output", e.tmp / "t"],
            r"input .*nope.png does not exist", r"does not exist"),
    CLICase("bench_unknown_precision", lambda e: ["bench", "dcgan", "--precision", "fp8"],
            r"unknown precision \[.fp8.\]", r"choose from .*float32"),
    CLICase("evaluate_unknown_metric", lambda e: ["evaluate", "dcgan_mnist", "--metrics", "fid,psnr"],
            r"unknown metrics \['psnr'\]", r"choose from fid"),
    CLICase("evaluate_json_under_a_file",
            lambda e: ["evaluate", "dcgan_mnist", "--metrics", "fid", "--json", unwritable(e) / "fid.json"],
            r"(is a file, not a folder|no permission)", UNWRITABLE_FIX),
    CLICase("bench_json_under_a_file",
            lambda e: ["bench", "dcgan", "--steps", "1", "--json", unwritable(e) / "b.json"],
            r"(is a file, not a folder|no permission)", UNWRITABLE_FIX),
    CLICase("evaluate_split_of_a_preset",
            lambda e: ["evaluate", "dcgan_mnist", "--split", "train[:10]", "--metrics", "fid"],
            r"split selects a dataset's examples, but dcgan_mnist is a preset", r"drop the split \(--split\)"),
    CLICase("evaluate_misspelt_preset", lambda e: ["evaluate", "dcgan_mnst", "--num", "10"],
            r"Unknown preset or dataset 'dcgan_mnst'", r"Did you mean the preset 'dcgan_mnist'"),
    CLICase("train_into_a_folder_of_other_files",
            lambda e: ["train", "dcgan", "--dataset", "mnist_5k", "--epochs", "1",
                       "--output", _with_user_file(e.tmp / "mine")],
            r"mine holds files but no kgan run to resume", r"pass --overwrite"),
    CLICase("metadata_is_a_json_array", lambda e: ["sample", with_json(e, zoo.METADATA_FILE, "[]"), "--output", _out(e)],
            r"metadata.json holds a JSON array", r"re-download or re-save"),
    CLICase("metadata_is_json_null", lambda e: ["info", with_json(e, zoo.METADATA_FILE, "null")],
            r"metadata.json holds a JSON null", r"re-download or re-save"),
    CLICase("config_is_not_json", lambda e: ["sample", with_json(e, zoo.CONFIG_FILE, "{bad"), "--output", _out(e)],
            r"config.json is not valid JSON", r"re-download or re-save"),
    CLICase("config_names_no_class", lambda e: ["sample", with_json(e, zoo.CONFIG_FILE, "{}"), "--output", _out(e)],
            r"describes no model class, not a kgan model", r"re-download or re-save"),
    CLICase("metadata_without_weights_hash", lambda e: ["sample", without_weights_hash(e), "--output", _out(e)],
            r"records no weights_sha256", r"re-download or re-save"),
    CLICase("sha256_for_a_local_preset", lambda e: ["sample", e.preset, "--sha256", "abc", "--output", _out(e)],
            r"sha256 checks a downloaded archive", r"Drop sha256 \(--sha256\)"),
    CLICase("split_beyond_100_percent",
            lambda e: ["train", "dcgan", "--dataset", "mnist_5k", "--split", "train[:200%]", "--epochs", "1",
                       "--output", e.tmp / "r"],
            r"boundary 200% is outside -100%..100%", r"train\[:80%\]"),
    CLICase("negative_refine_layers",
            lambda e: ["train", "dcgan", "--dataset", "mnist_5k", "--refine-layers", "-1", "--epochs", "1",
                       "--output", e.tmp / "r"],
            r"argument --refine-layers", r"0 or a positive integer, got -1"),
    CLICase("eval_num_too_small_for_fid",
            lambda e: ["train", "dcgan", "--dataset", "mnist_5k", "--split", "train[:2%]", "--epochs", "1",
                       "--filters", "4", "--eval-every", "1", "--eval-num", "10", "--output", e.tmp / "r"],
            r"--eval-num 10 is too few for FID", r"--eval-num 129 or more"),
    CLICase("undecodable_images_in_a_training_folder",
            lambda e: ["train", "cyclegan", "--dataset", folder_with_undecodable_images(e), "--dataset-b", folder_of_good_images(e),
                       "--image-size", "16", "--epochs", "1", "--filters", "4", "--num-residual-blocks", "1",
                       "--disc-layers", "2", "--batch-size", "2", "--output", e.tmp / "r"],
            r"cannot decode .*half.png, .*notes.jpg: corrupt, truncated or not an image", r"Remove or re-save"),
    CLICase("broken_link_in_a_training_folder",
            lambda e: ["train", "dcgan", "--dataset", folder_with_broken_link(e), "--image-size", "8",
                       "--epochs", "1", "--filters", "4", "--batch-size", "2", "--output", e.tmp / "r"],
            r"holds 1 broken symbolic link\(s\): .*gone.png' points to", r"Remove the link"),
    CLICase("empty_class_folder_for_a_conditional_gan",
            lambda e: ["train", "conditional_gan", "--dataset", classes_with_an_empty_one(e),
                       "--image-size", "8", "--epochs", "1", "--filters", "4", "--batch-size", "2",
                       "--output", e.tmp / "r"],
            r"1 of them hold no images \('c'\)", r"Put images in them, or move them out"),
    CLICase("array_file_as_the_dataset",
            lambda e: ["train", "dcgan", "--dataset", array_file(e), "--epochs", "1", "--output", e.tmp / "r"],
            r"images.npz' is a file; a dataset is a name .* or a folder of images",
            r"Arrays train from Python: kgan\.data\.from_numpy"),
    CLICase("truncated_jpeg_in_a_grey_training_folder",
            lambda e: ["train", "dcgan", "--dataset", folder_with_truncated_jpeg(e), "--channels", "1",
                       "--image-size", "8", "--epochs", "1", "--filters", "4", "--batch-size", "2",
                       "--output", e.tmp / "r"],
            r"cannot decode .*half.jpg: corrupt, truncated or not an image", r"Remove or re-save"),
]


@pytest.mark.parametrize("case", CLI_CASES, ids=lambda c: c.id)
def test_cli_bad_input_is_one_line(case, env, capsys):
    code, lines = run_cli(case.argv(env), capsys)
    assert code == 2, lines
    assert len(lines) == 1, lines  # one line: no traceback, no warning, no usage block
    assert re.match(r"kgan( \w+)?: error: ", lines[0]), lines[0]
    assert "Traceback" not in lines[0]
    check_message(lines[0], case)
    assert not _out(env).exists()


def test_undecodable_images_in_the_folder_evaluated_are_named_on_a_line_of_their_own(env, capsys):
    # evaluate shows progress bars first; the error must not continue one.
    code, lines = run_cli(["evaluate", folder_with_undecodable_images(env), "--against", "mnist_5k",
                           "--num", "4", "--metrics", "kid", "--batch-size", "2"], capsys)
    assert code == 2 and not any("Traceback" in line for line in lines), lines
    assert re.match(r"kgan: error: cannot decode .*half.png, .*notes.jpg: corrupt, truncated or "
                    r"not an image\. Remove or re-save", lines[-1]), lines[-1]


def test_cli_error_in_a_real_process_is_one_line(tmp_path):
    """The CLI as users run it: a process whose stderr has one kgan line and no traceback.

    Keras warns (on stderr) before failing to load mismatched weights; the
    CLI must not let that through.
    """
    env = SimpleNamespace(tmp=tmp_path)
    folder = foreign_weights(env, "wgan_gp_mnist", rehashed=True)
    result = subprocess.run(
        [sys.executable, "-m", "kgan.cli", "sample", str(folder), "--output", str(tmp_path / "x.png")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES=""),
    )
    assert result.returncode == 2
    # TensorFlow's native (C++) start-up logging is not kgan's to silence; skip it.
    native = re.compile(r"[IWE]\d{4} |WARNING: All log messages before absl::InitializeLog")
    lines = [line for line in result.stderr.splitlines() if line.strip() and not native.match(line)]
    assert len(lines) == 1, result.stderr[-3000:]
    assert lines[0].startswith("kgan: error: The weights in ")
    assert "Traceback" not in result.stderr and "UserWarning" not in result.stderr
    assert result.stdout == ""


# ---------------------------------------------------------------- properties
_PROPERTY = settings(
    max_examples=40, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

_ARG_ERRORS = (TypeError, ValueError)  # kgan's InputValidationError is a ValueError


_KGAN = str(Path(kgan.__file__).parent)


def _is_kgan_error(err):
    """Raised by kgan's own checks, not by TensorFlow or numpy internals."""
    return (isinstance(err, _ARG_ERRORS) and not isinstance(err, tf.errors.OpError)
            and _origin(err).startswith(_KGAN))


def _origin(err):
    """The module path of the frame that raised `err`."""
    tb = err.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_code.co_filename


# one_of picks its branches about equally: repeating the valid ones keeps
# about half of the examples valid, so both outcomes are exercised.
_bad_nums = st.one_of(st.integers(-3, 0), st.floats(allow_nan=True), st.booleans(), st.none(), st.text(max_size=2))
_nums = st.one_of(st.integers(1, 40), st.integers(1, 40), _bad_nums)
_bad_seeds = st.one_of(st.integers(-5, -1), st.floats(-2, 2), st.text(max_size=2), st.booleans())
_seeds = st.one_of(st.none(), st.integers(0, 2**64), st.integers(0, 2**64), _bad_seeds)


@_PROPERTY
@given(num=_nums, seed=_seeds)
def test_generate_any_num_and_seed(models, num, seed):
    model = models.dcgan
    try:
        images = model.generate(num, seed=seed)
    except Exception as err:  # noqa: BLE001 - the property is about which errors
        event(f"refused: {type(err).__name__}")  # shown by --hypothesis-show-statistics
        assert _is_kgan_error(err), f"{type(err).__name__} from {_origin(err)}: {err}"
        valid_num = isinstance(num, int) and not isinstance(num, bool) and num >= 1
        valid_seed = seed is None or (isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0)
        assert not (valid_num and valid_seed), f"valid call refused: {err}"
        return
    event("generated")
    assert images.shape == (num, 16, 16, 1) and images.dtype == np.float32
    assert np.isfinite(images).all() and images.min() >= -1.0 and images.max() <= 1.0


_LATENT_DTYPES = ["uint8", "int32", "int64", "float16", "float32", "float64", "complex64", "bool"]


@st.composite
def latent_arrays(draw):
    rank = draw(st.sampled_from([1, 2, 2, 2, 2, 3]))
    shape = (draw(st.integers(0, 5)), draw(st.sampled_from([7, 8, 8, 8, 9])))[:rank] + ((1,) if rank == 3 else ())
    dtype = np.dtype(draw(st.sampled_from(_LATENT_DTYPES)))
    # None: ordinary normal draws; otherwise one special value planted.
    values = draw(st.sampled_from([None, None, None, np.nan, np.inf, -np.inf, 1e300, 1e4, -3.0]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    array = rng.standard_normal(shape) * 2
    if values is not None and array.size:
        array.flat[draw(st.integers(0, array.size - 1))] = values
    with np.errstate(all="ignore"):
        return array.astype(dtype) if dtype.kind != "b" else array > 0


@_PROPERTY
@given(latents=latent_arrays())
def test_generate_from_any_latents(models, latents):
    model = models.dcgan
    with np.errstate(all="ignore"):
        as_float = latents.astype(np.float32) if latents.dtype.kind in "iuf" else None
    valid = (
        as_float is not None and latents.ndim == 2 and latents.shape[1] == 8
        and bool(np.isfinite(as_float).all())
    )
    try:
        images = model.generate_from_latents(latents)
    except InputValidationError as err:
        event(f"refused: {type(err).__name__}")
        assert not valid, f"valid latents refused: {err}"
        if latents.dtype.kind not in "iuf":
            assert isinstance(err, InputDTypeError)
        return
    event("generated")
    assert valid, f"accepted invalid latents {latents.dtype} {latents.shape}"
    assert images.shape == (len(latents), 16, 16, 1) and images.dtype == np.float32
    assert np.isfinite(images).all() and np.all(np.abs(images) <= 1.0)  # also for N = 0


_IMAGE_DTYPES = ["uint8", "uint8", "float32", "float32", "float64", "int32", "int64"]


@st.composite
def images_to_translate(draw):
    # Mostly translatable sizes; any size in [1, 70] a quarter of the time.
    side = st.one_of(st.integers(5, 70), st.integers(5, 70), st.integers(5, 70), st.integers(1, 70))
    height, width = draw(side), draw(side)
    channels = draw(st.sampled_from([1, 1, 1, 2, 3]))
    batch = draw(st.sampled_from([None, 1, 2]))
    dtype = np.dtype(draw(st.sampled_from(_IMAGE_DTYPES)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shape = (height, width, channels) if batch is None else (batch, height, width, channels)
    if dtype.kind == "f":
        array = rng.uniform(-1, 1, shape).astype(dtype)
        if draw(st.sampled_from([False, False, False, True])):  # sometimes the [0, 255] mix-up
            array = (array + 1) * 127.5
    else:
        array = rng.integers(0, 256, shape).astype(dtype)
    return array


@_PROPERTY
@given(images=images_to_translate(), direction=st.sampled_from(["a_to_b", "b_to_a"]))
def test_translate_any_size_and_dtype(models, images, direction):
    model = models.cyclegan  # both domains are 1-channel
    height, width, channels = images.shape[-3:]
    in_range = images.dtype.kind != "f" or (images.min() >= -1.0 and images.max() <= 1.0)
    valid = images.dtype.kind in "uf" and channels == 1 and min(height, width) >= 5 and in_range
    try:
        out = model.translate(images, direction=direction)
    except InputValidationError as err:
        event(f"refused {images.dtype}: {type(err).__name__}")
        assert not valid, f"valid images refused: {err}"
        if images.dtype.kind == "i":
            assert isinstance(err, InputDTypeError)
        return
    event(f"translated {images.dtype}")
    assert valid, f"accepted {images.dtype} {images.shape}"
    assert out.shape == images.shape
    if images.dtype == np.uint8:
        assert out.dtype == np.uint8
    else:
        assert out.dtype == np.float32 and np.isfinite(out).all()
        assert out.min() >= -1.0 and out.max() <= 1.0
