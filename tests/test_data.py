"""Tests for kgan.data: embedded data, numpy, folders and tensorflow-datasets."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import socket
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from kgan import data

REPO = Path(__file__).resolve().parent.parent


def batches(dataset):
    """All batches of one epoch as numpy (images, or (images, labels))."""
    return list(dataset.as_numpy_iterator())


def ramp_images(n, height=8, width=8, channels=None):
    """uint8 images whose first pixel encodes their index, so order is visible."""
    shape = (n, height, width) if channels is None else (n, height, width, channels)
    images = np.zeros(shape, np.uint8)
    images[:, 0, 0] = (
        np.arange(n, dtype=np.uint8)[:, None] if channels else np.arange(n, dtype=np.uint8)
    )
    return images


def first_pixels(images):
    """Recovers the ramp_images indices from a float batch."""
    return np.rint((images[:, 0, 0, 0] + 1.0) * 127.5).astype(int)


# ---------------------------------------------------------------------------
# Embedded data


def test_embedded_registry_lists_mnist_5k():
    assert "mnist_5k" in data.EMBEDDED_DATASETS
    assert "MNIST" in data.EMBEDDED_DATASETS["mnist_5k"]


def test_load_mnist_5k_arrays():
    images, labels = data.load_mnist_5k()
    assert images.shape == (5000, 28, 28, 1)
    assert images.dtype == np.uint8
    assert labels.shape == (5000,)
    assert labels.dtype == np.int32
    assert images.min() == 0
    assert images.max() == 255
    np.testing.assert_array_equal(np.bincount(labels), [500] * 10)
    # Digits are mostly background: a mean near 33/255 is what MNIST looks like.
    assert 20 < images.mean() < 50
    # Callers get copies: writing to them must not change the next call.
    images[:] = 7
    assert data.load_mnist_5k()[0].max() == 255


def test_embedded_file_falls_back_to_the_module_folder(monkeypatch):
    # importlib.resources fails when kgan runs from a tree that is not an
    # importable package; the file next to the module must still be found.
    def no_package(_name):
        raise ModuleNotFoundError("No module named 'kgan.datasets'")

    monkeypatch.setattr(data.importlib.resources, "files", no_package)
    handle, where = data._embedded_file("mnist_5k.npz")
    with handle:
        assert handle.read(2) == b"PK"  # npz files are zip archives
    assert Path(where) == REPO / "kgan" / "datasets" / "mnist_5k.npz"
    with pytest.raises(FileNotFoundError, match="Reinstall kgan"):
        data._embedded_file("missing.npz")


def test_load_embedded_offline_shapes_range_and_balance():
    dataset = data.load("mnist_5k", batch_size=500, seed=1, with_labels=True, download=False)
    assert dataset.element_spec[0].shape == (500, 28, 28, 1)
    assert dataset.element_spec[1].dtype == tf.int32
    assert dataset.class_names == [str(d) for d in range(10)]
    epoch = batches(dataset)
    assert len(epoch) == 10
    images = np.concatenate([x for x, _ in epoch])
    labels = np.concatenate([y for _, y in epoch])
    assert images.dtype == np.float32
    assert images.min() == -1.0
    assert images.max() == 1.0
    np.testing.assert_array_equal(np.bincount(labels), [500] * 10)
    # The file is sorted by class; a shuffled first batch must mix classes.
    assert len(np.unique(epoch[0][1])) == 10


def test_load_embedded_resize_and_channels():
    dataset = data.load("mnist_5k", batch_size=50, image_size=32, channels=3, seed=0)
    images = next(iter(dataset)).numpy()
    assert images.shape == (50, 32, 32, 3)
    assert images.min() >= -1.0
    assert images.max() <= 1.0
    np.testing.assert_array_equal(images[..., 0], images[..., 1])
    np.testing.assert_array_equal(images[..., 1], images[..., 2])


def test_load_embedded_rejects_other_splits():
    with pytest.raises(ValueError, match=r"only the split 'train'.*'test'"):
        data.load("mnist_5k", split="test")
    with pytest.raises(ValueError, match="selects no examples"):
        data.embedded_split("mnist_5k", "train[5000:]")


@pytest.mark.parametrize(
    "split, size", [("train", 5000), ("train[:80%]", 4000), ("train[80%:]", 1000), ("train[:25]", 25)]
)
def test_embedded_split_slices_are_class_balanced(split, size):
    images, labels = data.embedded_split("mnist_5k", split)
    assert images.shape == (size, 28, 28, 1)
    counts = np.bincount(labels, minlength=10)
    assert counts.max() - counts.min() <= 1, counts


def test_embedded_split_halves_are_disjoint_and_cover_the_set():
    first, _ = data.embedded_split("mnist_5k", "train[:50%]")
    second, _ = data.embedded_split("mnist_5k", "train[50%:]")
    everything, _ = data.load_mnist_5k()
    keys = lambda a: {x.tobytes() for x in a}  # noqa: E731
    assert not keys(first) & keys(second)
    assert keys(first) | keys(second) == keys(everything)
    dataset = data.load("mnist_5k", split="train[50%:]", batch_size=2500, shuffle=False)
    assert next(iter(dataset)).shape[0] == 2500


# ---------------------------------------------------------------------------
# from_numpy


def test_from_numpy_uint8_scaling_is_exact():
    images = np.array([0, 128, 255], np.uint8).reshape(3, 1, 1)
    (batch,) = batches(data.from_numpy(images, batch_size=3, shuffle=False))
    assert batch.shape == (3, 1, 1, 1)
    assert batch.dtype == np.float32
    np.testing.assert_allclose(batch.ravel(), [-1.0, 128 / 127.5 - 1.0, 1.0], rtol=0, atol=1e-7)


def test_from_numpy_float_passes_through_and_keeps_channels():
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, size=(6, 5, 4, 3))  # float64, non-square
    (batch,) = batches(data.from_numpy(images, batch_size=6, shuffle=False))
    assert batch.dtype == np.float32
    assert batch.shape == (6, 5, 4, 3)
    np.testing.assert_allclose(batch, images.astype(np.float32))


def test_from_numpy_accepts_small_rounding_past_the_range():
    images = np.full((2, 4, 4), 1.0005, np.float32)
    (batch,) = batches(data.from_numpy(images, batch_size=2))
    assert batch.max() == 1.0


def test_from_numpy_other_integer_dtypes_in_range():
    # 0..255 in any integer type is scaled as uint8 is: 0 -> -1, 128, 255 -> 1
    # (all-255 alone also passed a 0..1 scaling).
    images = np.array([0, 128, 255, 255], np.int64).reshape(4, 1, 1)
    (batch,) = batches(data.from_numpy(images, batch_size=4, shuffle=False))
    assert batch.dtype == np.float32
    np.testing.assert_allclose(batch.ravel(), [-1.0, 128 / 127.5 - 1.0, 1.0, 1.0], rtol=0, atol=1e-7)


def test_from_numpy_resize_to_32_keeps_range_and_content():
    images = np.zeros((4, 28, 28), np.uint8)
    images[:, 7:21, 7:21] = 255  # a white square in the middle
    (batch,) = batches(data.from_numpy(images, batch_size=4, image_size=32, shuffle=False))
    assert batch.shape == (4, 32, 32, 1)
    assert batch.min() >= -1.0
    assert batch.max() <= 1.0
    assert batch[0, 16, 16, 0] == pytest.approx(1.0)
    assert batch[0, 1, 1, 0] == pytest.approx(-1.0)


def test_from_numpy_resize_to_height_width_pair():
    images = np.zeros((2, 10, 10, 3), np.uint8)
    (batch,) = batches(data.from_numpy(images, batch_size=2, image_size=(6, 12)))
    assert batch.shape == (2, 6, 12, 3)


def test_from_numpy_same_size_is_not_resampled():
    images = np.random.default_rng(1).integers(0, 256, size=(3, 8, 8, 1), dtype=np.uint8)
    (plain,) = batches(data.from_numpy(images, batch_size=3, shuffle=False))
    (same,) = batches(data.from_numpy(images, batch_size=3, shuffle=False, image_size=8))
    np.testing.assert_array_equal(plain, same)


def test_from_numpy_gray_to_rgb_and_back():
    gray = np.random.default_rng(2).integers(0, 256, size=(2, 4, 4), dtype=np.uint8)
    (rgb,) = batches(data.from_numpy(gray, batch_size=2, channels=3, shuffle=False))
    assert rgb.shape == (2, 4, 4, 3)
    # Each of R, G and B is the grey image itself (not only R == B).
    (plain,) = batches(data.from_numpy(gray, batch_size=2, shuffle=False))
    for channel in range(3):
        np.testing.assert_array_equal(rgb[..., channel], plain[..., 0])

    color = np.zeros((1, 2, 2, 3), np.uint8)
    color[..., 0] = 255  # pure red
    (back,) = batches(data.from_numpy(color, batch_size=1, channels=1))
    assert back.shape == (1, 2, 2, 1)
    # ITU-R 601 luma of pure red is 0.2989: -1 + 2 * 0.2989 in [-1, 1] units.
    np.testing.assert_allclose(back, -1.0 + 2 * 0.2989, atol=1e-3)


def test_from_numpy_rgba_drops_alpha():
    rgba = np.full((1, 2, 2, 4), 255, np.uint8)
    rgba[..., 3] = 0
    (batch,) = batches(data.from_numpy(rgba, batch_size=1, channels=3))
    assert batch.shape == (1, 2, 2, 3)
    assert np.all(batch == 1.0)


def test_drop_remainder_gives_only_full_batches():
    images = ramp_images(10)
    full = batches(data.from_numpy(images, batch_size=4))
    assert [len(b) for b in full] == [4, 4]
    ragged = batches(data.from_numpy(images, batch_size=4, drop_remainder=False))
    assert [len(b) for b in ragged] == [4, 4, 2]
    # The static batch dimension is what lets a compiled train step trace once.
    assert data.from_numpy(images, batch_size=4).element_spec.shape[0] == 4


def test_repeat_batches_multiplies_the_batch():
    images, labels = ramp_images(30), np.arange(30)
    dataset = data.from_numpy(images, labels, batch_size=4, repeat_batches=3, shuffle=False)
    epoch = batches(dataset)
    assert [(x.shape[0], y.shape[0]) for x, y in epoch] == [(12, 12), (12, 12)]
    np.testing.assert_array_equal(first_pixels(epoch[0][0]), epoch[0][1])
    assert dataset.element_spec[0].shape == (12, 8, 8, 1)


def test_too_small_for_repeat_batches_names_the_product():
    with pytest.raises(ValueError, match=r"has 10 examples.*batch_size=4 x repeat_batches=3"):
        data.from_numpy(ramp_images(10), batch_size=4, repeat_batches=3)


def test_shuffle_false_keeps_order():
    epoch = batches(data.from_numpy(ramp_images(12), batch_size=4, shuffle=False))
    np.testing.assert_array_equal(first_pixels(np.concatenate(epoch)), np.arange(12))


def test_seed_reproducibility_and_reshuffle_each_epoch():
    images = ramp_images(64)

    def order(dataset):
        return first_pixels(np.concatenate(batches(dataset)))

    first = data.from_numpy(images, batch_size=8, seed=123)
    same = data.from_numpy(images, batch_size=8, seed=123)
    other = data.from_numpy(images, batch_size=8, seed=321)
    epoch1, epoch2 = order(first), order(first)
    np.testing.assert_array_equal(epoch1, order(same))
    assert sorted(epoch1) == list(range(64))  # a permutation: nothing lost or repeated
    assert not np.array_equal(epoch1, np.arange(64))
    assert not np.array_equal(epoch1, order(other))
    assert not np.array_equal(epoch1, epoch2)


def test_labels_follow_their_images_through_the_shuffle():
    images, labels = ramp_images(40), np.arange(40) * 2
    for x, y in batches(data.from_numpy(images, labels, batch_size=8, seed=5)):
        assert y.dtype == np.int32
        np.testing.assert_array_equal(first_pixels(x) * 2, y)


def test_cache_false_gives_the_same_data():
    images = ramp_images(16)
    cached = batches(data.from_numpy(images, batch_size=16, seed=3))
    uncached = batches(data.from_numpy(images, batch_size=16, seed=3, cache=False))
    np.testing.assert_array_equal(cached[0], uncached[0])


@pytest.mark.parametrize(
    ("images", "error", "pattern"),
    [
        (np.full((3, 4, 4), 2.0), ValueError, r"\[-1, 1\].*uint8.*x / 127.5 - 1"),
        (np.full((3, 4, 4), -1.5, np.float32), ValueError, r"scaled to \[-1, 1\]"),
        (np.full((3, 4, 4), np.nan), ValueError, "NaN"),
        (np.full((3, 4, 4), 300, np.int32), ValueError, r"0\.\.255"),
        (np.zeros((0, 4, 4), np.uint8), ValueError, "empty"),
        (np.zeros((4, 4), np.uint8), ValueError, r"\[N, H, W\]"),
        (np.zeros((3, 4, 4), bool), TypeError, "numeric"),
        (np.array([["a"]]), TypeError, "numeric"),
    ],
)
def test_from_numpy_rejects_bad_images(images, error, pattern):
    with pytest.raises(error, match=pattern):
        data.from_numpy(images, batch_size=1)


@pytest.mark.parametrize(("shape", "pattern"), [
    ((5, 3, 16, 16), r"\(5, 3, 16, 16\), which looks channels-first.*np\.transpose\(images, "
                     r"\(0, 2, 3, 1\)\)"),
    ((5, 1, 28, 28), r"looks channels-first"),
    ((16, 16, 3), r"\(16, 16, 3\), which looks like one \[H, W, C\] image.*images\[None\]"),
])
def test_from_numpy_refuses_layouts_it_would_misread(shape, pattern):
    # Both trained on nonsense: [5, 3, 16, 16] as 3x16 images of 16 channels,
    # one RGB image as 16 grey images 3 pixels wide.
    with pytest.raises(ValueError, match=pattern):
        data.from_numpy(np.zeros(shape, np.uint8), batch_size=1)
    # What is refused is only what no image set looks like.
    for fine in [(5, 16, 16, 3), (5, 16, 16, 1), (5, 4, 4, 3), (5, 28, 28), (3, 4, 4)]:
        data.from_numpy(np.zeros(fine, np.uint8), batch_size=1)


def test_from_numpy_rejects_bad_labels():
    images = ramp_images(5)
    with pytest.raises(ValueError, match="labels has 4 entries but images has 5"):
        data.from_numpy(images, np.arange(4), batch_size=1)
    with pytest.raises(TypeError, match="integers"):
        data.from_numpy(images, np.linspace(0, 1, 5), batch_size=1)
    with pytest.raises(ValueError, match="argmax"):
        data.from_numpy(images, np.eye(5, dtype=int), batch_size=1)
    # keras.utils.to_categorical's one-hot rows are float32.
    with pytest.raises(TypeError, match=r"one-hot labels \(5, 5\) pass labels\.argmax\(-1\)"):
        data.from_numpy(images, np.eye(5, dtype="float32"), batch_size=1)
    # int32 wrapped 2**32 + k to k, silently; a negative index is no class.
    with pytest.raises(ValueError, match=r"class indices 0, 1, 2, \.\.\., got 4294967300"):
        data.from_numpy(images, np.arange(5) + 2**32, batch_size=1)
    with pytest.raises(ValueError, match="got -1; map them to 0..K-1"):
        data.from_numpy(images, np.arange(5) - 1, batch_size=1)


def test_from_numpy_takes_keras_datasets_n_by_1_labels_as_fit_does():
    # fit(x, y) took [N, 1] labels, from_numpy refused them.
    images = ramp_images(4)
    dataset = data.from_numpy(images, np.arange(4).reshape(-1, 1), batch_size=4, shuffle=False)
    _, labels = next(iter(dataset))
    assert labels.shape == (4,) and labels.dtype == tf.int32
    np.testing.assert_array_equal(labels, np.arange(4))


def test_float_images_all_in_0_1_get_a_warning_with_the_fix():
    # Documented as "the usual mistake" and never flagged: 0..1 data trained as
    # if it were [-1, 1].
    unit = np.random.default_rng(0).uniform(0, 1, (8, 4, 4, 1))
    with pytest.warns(UserWarning, match=r"within \[0, 1\].*x \* 2 - 1"):
        data.from_numpy(unit, batch_size=4)
    from kgan.images import check_value_range

    with pytest.warns(UserWarning, match=r"within \[0, 1\].*x \* 2 - 1"):
        check_value_range(unit)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_value_range(unit * 2 - 1)  # [-1, 1] data: no warning
        check_value_range(np.zeros((2, 4, 4, 1)))


def test_too_small_dataset_says_how_many_and_what_to_do():
    with pytest.raises(
        ValueError, match=r"has 5 examples.*batch of 64.*Lower batch_size to at most 5"
    ):
        data.from_numpy(ramp_images(5))
    # Without drop_remainder a single short batch is fine.
    (batch,) = batches(data.from_numpy(ramp_images(5), drop_remainder=False))
    assert batch.shape[0] == 5


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"batch_size": 0}, ValueError, "batch_size must be >= 1"),
        ({"batch_size": True}, TypeError, "batch_size must be an int"),
        ({"batch_size": 2.0}, TypeError, "batch_size must be an int"),
        ({"repeat_batches": 0}, ValueError, "repeat_batches must be >= 1"),
        ({"image_size": 0}, ValueError, "positive"),
        ({"image_size": (8, 8, 3)}, TypeError, r"\(height, width\)"),
        ({"image_size": "32"}, TypeError, "image_size"),
        ({"channels": 2}, ValueError, "channels must be 1"),
        ({"seed": "x"}, TypeError, "seed"),
        ({"shuffle": "yes"}, TypeError, "shuffle must be True or False"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, error, pattern):
    options = {"batch_size": 2, **kwargs}
    with pytest.raises(error, match=pattern):
        data.from_numpy(ramp_images(8), **options)


# ---------------------------------------------------------------------------
# from_folder


def write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tf.io.encode_png(array).numpy())


def write_jpeg(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tf.io.encode_jpeg(array, quality=100).numpy())


@pytest.fixture
def pets(tmp_path):
    """pets/cat: 3 white PNGs (one nested, one grayscale); pets/dog: 2 black images."""
    root = tmp_path / "pets"
    white = np.full((10, 12, 3), 255, np.uint8)
    black = np.zeros((6, 6, 3), np.uint8)
    write_png(root / "cat" / "a.png", white)
    write_png(root / "cat" / "b.PNG", np.full((8, 8, 1), 255, np.uint8))
    write_png(root / "cat" / "kittens" / "c.png", white)
    write_png(root / "dog" / "a.png", black)
    write_jpeg(root / "dog" / "b.jpg", black)
    (root / "dog" / "notes.txt").write_text("not an image")
    write_png(root / "dog" / ".ipynb_checkpoints" / "stale.png", white)  # hidden: skipped
    return root


def test_from_folder_with_labels(pets):
    dataset = data.from_folder(pets, image_size=8, batch_size=5, with_labels=True, seed=0)
    assert dataset.class_names == ["cat", "dog"]
    ((images, labels),) = batches(dataset)
    assert images.shape == (5, 8, 8, 3)
    assert images.dtype == np.float32
    assert labels.dtype == np.int32
    assert sorted(labels.tolist()) == [0, 0, 0, 1, 1]
    # Cats are white and dogs black: every label must sit with its own image.
    # (JPEG at quality 100 keeps black within a couple of levels of 0.)
    np.testing.assert_allclose(images[labels == 0], 1.0, atol=1e-6)
    np.testing.assert_allclose(images[labels == 1], -1.0, atol=0.03)


def test_from_folder_without_labels_reads_recursively(pets):
    dataset = data.from_folder(
        pets, image_size=(4, 6), channels=1, batch_size=2, drop_remainder=False
    )
    epoch = batches(dataset)
    assert [b.shape for b in epoch] == [(2, 4, 6, 1), (2, 4, 6, 1), (1, 4, 6, 1)]
    means = sorted(float(b.mean()) for batch in epoch for b in batch)
    assert means[:2] == pytest.approx([-1.0, -1.0], abs=0.03)
    assert means[2:] == pytest.approx([1.0] * 3)
    assert not hasattr(dataset, "class_names")


def test_from_folder_cache_false_and_seed(pets):
    def run():
        dataset = data.from_folder(
            pets, image_size=4, batch_size=5, with_labels=True, seed=7, cache=False
        )
        return batches(dataset)[0][1]

    first = run()
    np.testing.assert_array_equal(first, run())
    assert sorted(first.tolist()) == [0, 0, 0, 1, 1]


def test_load_reads_a_folder_path_like_from_folder(pets):
    # `kgan train dcgan --dataset FOLDER` goes through load: the same pipeline.
    ours = data.load(str(pets), image_size=8, batch_size=5, with_labels=True, seed=0)
    theirs = data.from_folder(pets, image_size=8, batch_size=5, with_labels=True, seed=0)
    assert ours.class_names == theirs.class_names == ["cat", "dog"]
    ours, theirs = batches(ours), batches(theirs)
    assert len(ours) == len(theirs) > 0  # zip of two empty pipelines compared nothing
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    (gray,) = batches(data.load(str(pets), image_size=8, channels=1, batch_size=5))
    assert gray.shape == (5, 8, 8, 1)
    with pytest.raises(ValueError, match=r"folder of images, which can differ in size; pass "
                                         r"image_size=\.\.\. .*--image-size 64"):
        data.load(str(pets))
    with pytest.raises(ValueError, match="which has no splits"):
        data.load(str(pets), image_size=8, split="train[:50%]")


@pytest.mark.parametrize("spelled", ["{tmp}/nope/", "./nope_kgan_test_folder", "~/nope_kgan_test_folder/"])
def test_load_of_a_missing_folder_path_says_the_folder_does_not_exist(tmp_path, spelled):
    name = spelled.format(tmp=tmp_path)
    with pytest.raises(data.UnknownDatasetError, match=r"Dataset folder .*nope.* does not exist") as info:
        data.load(name, image_size=8)
    assert "from_folder" not in str(info.value)  # `kgan train --dataset` users have no Python call


@pytest.mark.parametrize("spelled", ["./{name}", "{name}"])
def test_load_of_a_file_says_it_is_a_file(tmp_path, monkeypatch, spelled):
    # `--dataset ./images.npz` said the folder "does not exist", though the file
    # is there; `--dataset photo.png` that tensorflow-datasets has no such name.
    monkeypatch.chdir(tmp_path)
    np.savez(tmp_path / "images.npz", images=np.zeros((4, 8, 8), np.uint8))
    write_png(tmp_path / "photos" / "a.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(data.UnknownDatasetError, match=r"'(\./)?images\.npz' is a file.*"
                                                       r"kgan\.data\.from_numpy\(np\.load"):
        data.load(spelled.format(name="images.npz"), image_size=8)
    with pytest.raises(data.UnknownDatasetError, match=r"a\.png' is a file.*Name the folder that "
                                                       r"holds the images \(.*photos, if"):
        data.load(spelled.format(name="photos/a.png"), image_size=8)
    with pytest.raises(data.UnknownDatasetError, match=r"a\.png' is a file"):
        data.unpaired(spelled.format(name="photos/a.png"), "photos", image_size=4, batch_size=1)
    # A name tensorflow-datasets could hold is still looked up there, file or not.
    (tmp_path / "mnistt").write_text("notes")
    with pytest.raises(data.UnknownDatasetError, match=r"Unknown dataset 'mnistt'.*Did you mean"):
        data.load("mnistt", image_size=8)


def test_load_expands_the_home_folder_in_a_folder_path(pets, monkeypatch):
    monkeypatch.setenv("HOME", str(pets.parent))
    (images,) = batches(data.load(f"~/{pets.name}", image_size=8, batch_size=5, shuffle=False))
    (same,) = batches(data.load(str(pets), image_size=8, batch_size=5, shuffle=False))
    np.testing.assert_array_equal(images, same)


#: A 1x1 one-colour GIF (no encoder is at hand: TensorFlow only decodes GIFs).
WHITE_GIF = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00"
             b"\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")


def _white_bmp():
    """A 1x1 white 24-bit BMP: file header, info header, one padded row."""
    pixels = b"\xff\xff\xff\x00"
    info = struct.pack("<IiiHHIIiiII", 40, 1, 1, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
    return struct.pack("<2sIHHI", b"BM", 14 + 40 + len(pixels), 0, 0, 54) + info + pixels


@pytest.mark.parametrize("fmt, name", [("gif", "a.gif"), ("bmp", "a.bmp"),
                                       ("gif", "a_gif_named.png"), ("bmp", "a_bmp_named.jpg")])
def test_from_folder_reads_gif_and_bmp_as_one_channel(fmt, name, tmp_path):
    # TensorFlow's GIF and BMP decoders refuse channels=1; known by content, not
    # by name (a GIF saved as .png failed, and undecodable_images found nothing).
    (tmp_path / name).write_bytes(WHITE_GIF if fmt == "gif" else _white_bmp())
    rgb = tf.io.decode_image((tmp_path / name).read_bytes(), expand_animations=False)
    assert rgb.shape == (1, 1, 3) and len(set(rgb.numpy().ravel())) == 1  # one grey pixel
    (gray,) = batches(data.from_folder(tmp_path, image_size=4, channels=1, batch_size=1))
    assert gray.shape == (1, 4, 4, 1)
    np.testing.assert_allclose(gray, int(rgb[0, 0, 0]) / 127.5 - 1, atol=1 / 127.5)
    assert data.undecodable_images(tmp_path) == []


#: A 1x1 white lossless WebP (Pillow 13); TensorFlow decodes WebP but only to 3 or 4 channels.
WHITE_WEBP = (b"RIFF\x1e\x00\x00\x00WEBPVP8L\x11\x00\x00\x00/\x00\x00\x00\x00\x07\xd0\xff\xfe"
              b"\xf7\xbf\xff\x81\x88\xe8\x7f\x00\x00")


#: The same in RGBA with alpha 128 (Pillow 13): TensorFlow decodes it to 4 channels only.
HALF_CLEAR_WHITE_WEBP = (b"RIFF\x1e\x00\x00\x00WEBPVP8L\x11\x00\x00\x00/\x00\x00\x00\x10\x07"
                         b"\xd0\xff\xfe\xf7\xbf\x80\x81\x88\xe8\x7f\x00\x00")


@pytest.mark.skipif(not hasattr(tf.io, "decode_webp"), reason="this TensorFlow has no WebP decoder")
@pytest.mark.parametrize("channels", [1, 3])
def test_a_webp_with_alpha_reads_as_its_colour(channels, tmp_path):
    # TensorFlow's WebP decoder refuses any channel count but the file's own:
    # one RGBA WebP in a folder of PNGs stopped fit ("Number of channels
    # requested does not match input").
    write_png(tmp_path / "a.png", np.full((1, 1, 3), 255, np.uint8))
    (tmp_path / "b.webp").write_bytes(HALF_CLEAR_WHITE_WEBP)
    (batch,) = batches(data.from_folder(tmp_path, image_size=1, channels=channels, batch_size=2,
                                        shuffle=False))
    png, webp = batch
    assert webp.shape == (1, 1, channels)
    np.testing.assert_array_equal(webp, png)  # white: alpha dropped, as for PNG
    decoded = data.decode_image_file(tf.constant(HALF_CLEAR_WHITE_WEBP), channels).numpy()
    assert decoded.shape == (1, 1, channels) and (decoded == 255).all()


def _white_cmyk_jpeg():
    """A 2x2 white CMYK JPEG, as print workflows (Adobe) write them."""
    image = pytest.importorskip("PIL.Image")  # Pillow comes with tensorboard
    import io

    buffer = io.BytesIO()
    image.new("CMYK", (2, 2), (0, 0, 0, 0)).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt, name", [("cmyk", "print.jpg"), ("webp", "a_webp_named.png")])
def test_from_folder_reads_cmyk_jpeg_and_webp_as_one_channel(fmt, name, tmp_path):
    # libjpeg cannot convert CMYK to grey and the WebP decoder gives 3 or 4
    # channels: with channels=1 either failed mid-fit ("Unsupported color
    # conversion request") though it decodes with channels=3.
    (tmp_path / name).write_bytes(_white_cmyk_jpeg() if fmt == "cmyk" else WHITE_WEBP)
    write_png(tmp_path / "grey.png", np.full((2, 2, 1), 255, np.uint8))
    (gray,) = batches(data.from_folder(tmp_path, image_size=2, channels=1, batch_size=2,
                                       shuffle=False))
    assert gray.shape == (2, 2, 2, 1)
    np.testing.assert_allclose(gray, 1.0, atol=2 / 127.5)  # white, as the RGB decode says
    assert data.undecodable_images(tmp_path) == []


def test_from_folder_one_channel_still_refuses_a_truncated_jpeg(tmp_path):
    # The header read that finds CMYK files fails on a broken JPEG: still an
    # error of the decode (and the CLI's message names the file).
    jpeg = tf.io.encode_jpeg(np.zeros((8, 8, 3), np.uint8)).numpy()
    (tmp_path / "half.jpg").write_bytes(jpeg[:100])
    with pytest.raises(tf.errors.InvalidArgumentError, match="JPEG"):
        batches(data.from_folder(tmp_path, image_size=8, channels=1, batch_size=1))
    assert data.undecodable_images(tmp_path) == [str(tmp_path / "half.jpg")]


def test_from_folder_reads_each_linked_folder_once(tmp_path):
    # gfile's walk follows links: `latest -> .` read a.png 41 times (until the
    # path grew too long); a link to a folder elsewhere is still read.
    root, elsewhere = tmp_path / "photos", tmp_path / "elsewhere"
    write_png(root / "a.png", np.zeros((4, 4, 3), np.uint8))
    write_png(elsewhere / "b.png", np.full((4, 4, 3), 255, np.uint8))
    (root / "latest").symlink_to(root, target_is_directory=True)
    (root / "more").symlink_to(elsewhere, target_is_directory=True)
    dataset = data.from_folder(root, image_size=4, batch_size=1, shuffle=False)
    assert len(batches(dataset)) == 2


def test_from_folder_refuses_a_broken_link_before_reading(tmp_path):
    # It failed mid-fit with a bare NotFoundError naming no folder (the CLI: a traceback).
    write_png(tmp_path / "a.png", np.zeros((4, 4, 3), np.uint8))
    (tmp_path / "gone.png").symlink_to(tmp_path / "deleted.png")
    with pytest.raises(FileNotFoundError, match=r"broken symbolic link\(s\): .*gone\.png' points "
                                                r"to .*deleted\.png.*Remove the link"):
        data.from_folder(tmp_path, image_size=4, batch_size=1)


def test_embedded_class_names_are_the_datasets_not_the_splits():
    # train[-3:] holds labels 7-9 only; class i is still label i.
    dataset = data.load("digits_8x8", split="train[-3:]", batch_size=1, with_labels=True,
                        drop_remainder=False)
    assert dataset.class_names == [str(i) for i in range(10)]


def test_from_folder_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.from_folder(tmp_path / "nope", image_size=8)


def test_from_folder_file_instead_of_folder(tmp_path):
    (tmp_path / "x.png").write_bytes(b"")
    with pytest.raises(NotADirectoryError, match="is a file"):
        data.from_folder(tmp_path / "x.png", image_size=8)


def test_from_folder_empty_folder_names_folder_and_extensions(tmp_path):
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(
        ValueError,
        match=r"No images found in .*" + tmp_path.name + r".*\.png, \.jpg, \.jpeg, \.bmp, \.gif",
    ):
        data.from_folder(tmp_path, image_size=8)


def test_from_folder_labels_need_class_subfolders(tmp_path):
    write_png(tmp_path / "loose.png", np.zeros((4, 4, 3), np.uint8))
    write_png(tmp_path / "cls" / "a.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match=r"lie directly in it \(e\.g\. 'loose\.png'\)"):
        data.from_folder(tmp_path, image_size=4, batch_size=1, with_labels=True)


def test_from_folder_labels_refuse_a_class_folder_without_images(pets):
    # An empty `bird/` became class 0 of a conditional GAN that never saw it.
    (pets / "bird").mkdir()
    (pets / "bird" / "notes.txt").write_text("to do: photos")
    with pytest.raises(ValueError, match=r"1 of them hold no images \('bird'\).*Put images in "
                                         r"them, or move them out"):
        data.from_folder(pets, image_size=4, batch_size=1, with_labels=True)
    (pets / "bird").rename(pets / ".bird")  # hidden folders are skipped
    dataset = data.from_folder(pets, image_size=4, batch_size=1, with_labels=True)
    assert dataset.class_names == ["cat", "dog"]


def test_from_folder_requires_image_size_and_valid_channels(pets):
    with pytest.raises(ValueError, match="needs image_size"):
        data.from_folder(pets, image_size=None)
    with pytest.raises(ValueError, match="channels must be 1"):
        data.from_folder(pets, image_size=8, channels=4)


def test_from_folder_too_few_images(pets):
    with pytest.raises(ValueError, match=r"has 5 examples, fewer than one batch of 64"):
        data.from_folder(pets, image_size=8)


def test_too_few_examples_error_carries_the_numbers():
    with pytest.raises(data.TooFewExamplesError, match=r"has 10 examples.*batch_size=8 x repeat_batches=5") as info:
        data.load("digits_8x8", split="train[:10]", batch_size=8, repeat_batches=5)
    err = info.value
    assert isinstance(err, ValueError)  # what callers caught before the subclass existed
    assert (err.num_examples, err.batch_size, err.repeat_batches) == (10, 8, 5)
    with pytest.raises(data.TooFewExamplesError, match=r"has 1797 images, fewer than one batch") as info:
        data.unpaired("digits_8x8", "mnist_5k", batch_size=4000, image_size=16)
    assert (info.value.num_examples, info.value.batch_size) == (1797, 4000)
    assert info.value.source == "Domain A ('digits_8x8')"


# ---------------------------------------------------------------------------
# tensorflow-datasets


def test_tfds_mnist_mocked():
    with tfds.testing.mock_data(num_examples=20):
        dataset = data.load("mnist", batch_size=8, seed=0)
        epoch = batches(dataset)
    assert [b.shape for b in epoch] == [(8, 28, 28, 1), (8, 28, 28, 1)]
    images = np.concatenate(epoch)
    assert images.dtype == np.float32
    assert images.min() >= -1.0
    assert images.max() <= 1.0
    assert images.std() > 0.1


def test_tfds_mnist_mocked_with_labels():
    with tfds.testing.mock_data(num_examples=16):
        dataset = data.load("mnist", batch_size=16, with_labels=True, channels=3)
        ((images, labels),) = batches(dataset)
    assert images.shape == (16, 28, 28, 3)
    assert labels.shape == (16,)
    assert labels.dtype == np.int32
    assert labels.min() >= 0
    assert labels.max() <= 9
    assert dataset.class_names == [str(d) for d in range(10)]


def test_tfds_cifar10_mocked_with_image_size():
    with tfds.testing.mock_data(num_examples=12):
        dataset = data.load("cifar10", split="test", batch_size=4, image_size=16, channels=1)
        epoch = batches(dataset)
    assert [b.shape for b in epoch] == [(4, 16, 16, 1)] * 3
    assert all(b.min() >= -1.0 and b.max() <= 1.0 for b in epoch)


def test_tfds_variable_size_images_need_image_size():
    with tfds.testing.mock_data(num_examples=4):
        with pytest.raises(ValueError, match="vary in size.*pass image_size"):
            data.load("cycle_gan/horse2zebra", split="trainA", batch_size=2)
        dataset = data.load("cycle_gan/horse2zebra", split="trainA", batch_size=2, image_size=32)
        assert [b.shape for b in batches(dataset)] == [(2, 32, 32, 3)] * 2


def test_tfds_without_label_feature_rejects_with_labels():
    with (
        tfds.testing.mock_data(num_examples=2),
        pytest.raises(ValueError, match=r"'celeb_a' has no 'label' feature.*with_labels=False"),
    ):
        data.load("celeb_a", batch_size=1, with_labels=True)


def test_unknown_name_suggests_close_matches():
    with pytest.raises(ValueError, match=r"Unknown dataset 'mnistt'.*Did you mean 'mnist'") as info:
        data.load("mnistt")
    assert "mnist_5k" in str(info.value)
    # Not tfds's own error, whose message lists every dataset.
    assert not isinstance(info.value, tfds.core.DatasetNotFoundError)
    with pytest.raises(ValueError, match="Did you mean 'mnist_5k'"):
        data.load("mnist_5kk")


def test_missing_tfds_data_without_download_is_unavailable(tmp_path):
    with pytest.raises(data.DatasetUnavailableError) as info:
        data.load("mnist", data_dir=tmp_path, download=False)
    message = str(info.value)
    assert isinstance(info.value, RuntimeError)
    assert str(tmp_path) in message
    assert "download=False" in message
    assert "kgan.data.load('mnist_5k')" in message
    assert "--dataset mnist_5k" in message
    # kgan train has no data_dir flag: the message names what does it there.
    assert "on the command line: the TFDS_DATA_DIR environment variable" in message
    assert info.value.dataset == "mnist"
    assert info.value.data_dir == str(tmp_path)


@pytest.mark.parametrize(
    ("error", "pattern"),
    [
        (
            OSError("Failed to resolve 'storage.googleapis.com'"),
            r"could not be downloaded.*network",
        ),
        (
            ModuleNotFoundError(
                "No module named 'importlib_resources'", name="importlib_resources"
            ),
            r"pip install importlib_resources",
        ),
    ],
)
def test_download_failures_are_unavailable(monkeypatch, tmp_path, error, pattern):
    # A real download attempt without network takes minutes of retries; the
    # failure tfds raises then (requests' ConnectionError, an OSError) is simulated.
    def failing_load(*args, **kwargs):
        raise error

    monkeypatch.setattr(tfds, "load", failing_load)
    monkeypatch.setattr(data, "_unreachable_download_hosts", lambda hosts: [])  # "online"
    with pytest.raises(data.DatasetUnavailableError, match=pattern) as info:
        data.load("mnist", data_dir=tmp_path)
    assert "mnist_5k" in str(info.value)
    assert str(tmp_path) in str(info.value)
    if "network" in pattern:
        assert "on the command line: the TFDS_DATA_DIR environment variable" in str(info.value)
    assert info.value.__cause__ is error


def _closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens there once the socket closes


@pytest.fixture
def no_proxies(monkeypatch):
    """No proxy settings, as `urllib.request.getproxies` reads them (any `*_proxy` variable)."""
    for variable in [name for name in os.environ if name.lower().endswith("_proxy")]:
        monkeypatch.delenv(variable)
    assert urllib.request.getproxies() == {}


def test_unreachable_download_hosts_fail_in_seconds_not_minutes(monkeypatch, tmp_path, no_proxies):
    # tfds would retry for ~3.5 minutes; kgan's check fails as soon as no
    # download host accepts a connection, before tfds.load is called.
    def must_not_load(*args, **kwargs):
        raise AssertionError("tfds.load was called although no host is reachable")

    monkeypatch.setattr(tfds, "load", must_not_load)
    monkeypatch.setattr(data, "_download_hosts", lambda tfds, name: [("127.0.0.1", _closed_port())])
    start = time.monotonic()
    with pytest.raises(data.DatasetUnavailableError) as info:
        data.load("mnist", data_dir=tmp_path)
    assert time.monotonic() - start < 30
    message = str(info.value)
    assert "kgan's network check said: OSError: none of the dataset's download hosts" in message
    assert "127.0.0.1:" in message and "kgan.data.load('mnist_5k')" in message
    assert info.value.dataset == "mnist" and info.value.data_dir == str(tmp_path)
    assert not any(tmp_path.iterdir())  # nothing half-downloaded left behind


def test_download_hosts_come_from_tfds_checksums_and_one_reachable_host_is_enough(monkeypatch, no_proxies):
    assert data._download_hosts(tfds, "mnist") == [("storage.googleapis.com", 443)]
    assert data._download_hosts(tfds, "cycle_gan/horse2zebra") == [
        ("storage.googleapis.com", 443), ("efrosgans.eecs.berkeley.edu", 443)]  # tfds's bucket first
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        closed, listening = ("127.0.0.1", _closed_port()), server.getsockname()
        assert data._unreachable_download_hosts([closed, listening], timeout=5) == []
        failures = data._unreachable_download_hosts([closed], timeout=5)
        assert len(failures) == 1 and failures[0].startswith(f"127.0.0.1:{closed[1]} (")
        # Behind a proxy the hosts are not probed directly.
        monkeypatch.setenv("https_proxy", "http://127.0.0.1:1")
        assert data._unreachable_download_hosts([closed], timeout=5) == []
    assert data._unreachable_download_hosts([], timeout=5) == []


def test_prepared_or_mocked_datasets_are_not_probed(monkeypatch, tmp_path):
    def no_probe(hosts, timeout=None):
        raise AssertionError("probed the network")

    monkeypatch.setattr(data, "_unreachable_download_hosts", no_probe)
    with tfds.testing.mock_data(num_examples=8):  # nothing is downloaded under the mock
        assert data._check_download_reachable(tfds, "mnist", str(tmp_path)) == []
    monkeypatch.setattr(tfds.core.DatasetBuilder, "is_prepared", lambda self: True)
    assert data._check_download_reachable(tfds, "mnist", str(tmp_path)) == []


def test_load_rejects_bad_name_and_split_types():
    with pytest.raises(TypeError, match="non-empty string"):
        data.load("")
    with pytest.raises(TypeError, match="one string"):
        data.load("mnist_5k", split=["train"])


# ---------------------------------------------------------------------------
# python -m kgan.datasets.make_mnist_5k


def test_make_mnist_5k_tool_round_trip(tmp_path):
    import gzip

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(20, 784))
    labels = np.arange(20) % 10
    rows = np.concatenate([pixels, labels[:, None]], axis=1)
    source = tmp_path / "mnist_5k.csv.gz"
    source.write_bytes(gzip.compress("\n".join(",".join(map(str, r)) for r in rows).encode()))
    output = tmp_path / "out.npz"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kgan.datasets.make_mnist_5k",
            str(source),
            "--output",
            str(output),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "sha256" in result.stdout
    with np.load(output) as archive:
        np.testing.assert_array_equal(archive["images"], pixels.reshape(20, 28, 28))
        np.testing.assert_array_equal(archive["labels"], labels)
        assert archive["images"].dtype == np.uint8


# --------------------------------------------------------------------- iterator teardown
def _pipelines(folder):
    images = ramp_images(64, channels=1)
    return {
        "load": data.load("mnist_5k", split="train[:512]", batch_size=32, seed=0),
        "from_numpy": data.from_numpy(images, batch_size=16, seed=0),
        "from_folder": data.from_folder(folder, batch_size=2, image_size=16, seed=0),
        "unpaired": data.unpaired(images, images, batch_size=4, seed=0),
    }


def test_every_pipeline_runs_without_autotuning(pets):
    for name, dataset in _pipelines(pets).items():
        assert dataset.options().autotune.enabled is False, name


def test_without_teardown_stall_can_keep_an_explicit_choice():
    unset = tf.data.Dataset.range(4)
    assert data.without_teardown_stall(unset).options().autotune.enabled is False
    assert unset.options().autotune.enabled is None  # a new dataset; the input is unchanged
    for chosen in (True, False):
        options = tf.data.Options()
        options.autotune.enabled = chosen
        dataset = unset.with_options(options)
        kept = data.without_teardown_stall(dataset, keep_explicit_choice=True)
        assert kept.options().autotune.enabled is chosen
        assert data.without_teardown_stall(dataset).options().autotune.enabled is False
    kept = data.without_teardown_stall(unset, keep_explicit_choice=True)
    assert kept.options().autotune.enabled is False


def test_without_teardown_stall_rejects_non_datasets():
    with pytest.raises(TypeError, match="tf.data.Dataset, got list"):
        data.without_teardown_stall([1, 2])


def test_deleting_an_iterator_does_not_wait_for_the_autotuner():
    """An epoch's end (`fit` deletes its iterator) costs no wait.

    With tf.data's autotuning on, deleting an iterator that has been read as
    fast as it yields for 0.2 s waited, in 35% of 20 attempts, ~0.1 s for the
    autotuner thread's sleep to end (it wakes at 0.15 s, 0.31 s, 0.63 s, ...).
    Twenty deletions without such a wait would then happen by chance with
    probability 0.65**20, about 2e-4.
    """
    import time

    dataset = data.load("mnist_5k", split="train", batch_size=64, seed=0).repeat()
    waits = []
    for _ in range(20):
        iterator = iter(dataset)
        start = time.perf_counter()
        while time.perf_counter() - start < 0.2:
            next(iterator)
        begin = time.perf_counter()
        del iterator
        waits.append(time.perf_counter() - begin)
    assert max(waits) < 0.05, [round(w, 3) for w in waits]


def test_channel_conversions_that_cannot_work_say_how_to_opt_out():
    two_channel = np.zeros((4, 8, 8, 2), "uint8")
    with pytest.raises(ValueError, match=r"cannot convert 2-channel images to channels=3.*"
                       r"Pass channels=None \(on the command line, leave out --channels\)"):
        data.from_numpy(two_channel, batch_size=2, channels=3)
    assert batches(data.from_numpy(two_channel, batch_size=2))[0].shape == (2, 8, 8, 2)


def test_from_folder_reads_webp_and_warns_of_formats_it_skips(tmp_path):
    # A .webp file, which TensorFlow decodes, and TIFFs, which it cannot, were
    # all left out without a word: a folder of 2 PNGs and 300 TIFFs trained on 2.
    write_png(tmp_path / "a.png", np.full((2, 2, 3), 255, np.uint8))
    (tmp_path / "b.webp").write_bytes(WHITE_WEBP)
    (tmp_path / "c.tif").write_bytes(b"II*\x00")
    (tmp_path / "d.TIFF").write_bytes(b"MM\x00*")
    (tmp_path / ".e.tif").write_bytes(b"II*\x00")  # hidden: skipped quietly
    webp = hasattr(tf.io, "decode_webp")
    skipped = r"1 \.tif, 1 \.tiff" if webp else r"1 \.tif, 1 \.tiff, 1 \.webp"
    with pytest.warns(UserWarning, match=rf"skipped {3 - webp} image file\(s\) in formats "
                                         rf"TensorFlow cannot decode \({skipped}\).*Convert them"):
        pipeline = data.from_folder(tmp_path, image_size=2, channels=3, batch_size=1, shuffle=False)
    read = batches(pipeline)
    if webp:
        assert ".webp" in data.IMAGE_EXTENSIONS and len(read) == 2
        np.testing.assert_array_equal(read[1], read[0])  # white, as the PNG
    else:
        assert len(read) == 1
