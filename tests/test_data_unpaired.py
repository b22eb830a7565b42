"""Tests for the embedded digits_8x8 domain and kgan.data.unpaired (CycleGAN data)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from kgan import data
from kgan.datasets import make_digits_8x8, make_mnist_5k

REPO = Path(__file__).resolve().parent.parent
DATASETS = REPO / "kgan" / "datasets"
DIGIT_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def ramp(n, size=4, channels=1):
    """uint8 images whose first pixel is their index, so order is visible."""
    images = np.zeros((n, size, size, channels), np.uint8)
    images[:, 0, 0, :] = np.arange(n, dtype=np.uint8)[:, None]
    return images


def indices(images):
    """Recovers the ramp indices from a float batch."""
    return np.rint((np.asarray(images)[:, 0, 0, 0] + 1.0) * 127.5).astype(int)


def epoch(dataset):
    """One epoch as two arrays (all of A, all of B), batches concatenated."""
    pairs = list(dataset.as_numpy_iterator())
    return np.concatenate([a for a, _ in pairs]), np.concatenate([b for _, b in pairs])


def write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tf.io.encode_png(array).numpy())


# ---------------------------------------------------------------------------
# The embedded digits_8x8 domain


def test_digits_8x8_is_registered_and_loads():
    assert "digits_8x8" in data.EMBEDDED_DATASETS
    images, labels = data.embedded_split("digits_8x8")
    assert images.shape == (1797, 8, 8, 1)
    assert images.dtype == np.uint8
    assert labels.dtype == np.int32
    np.testing.assert_array_equal(np.bincount(labels), DIGIT_COUNTS)
    # 17 grey levels (0..16 counts) scaled to 0..255, rounding half up.
    levels = {(v * 255 + 8) // 16 for v in range(17)}
    assert set(np.unique(images).tolist()) <= levels
    assert images.min() == 0
    assert images.max() == 255


def test_load_digits_8x8_upsamples_to_32_bilinearly():
    dataset = data.load(
        "digits_8x8", split="train[:10]", batch_size=10, image_size=32, shuffle=False,
        with_labels=True,
    )
    ((images, labels),) = list(dataset.as_numpy_iterator())
    assert images.shape == (10, 32, 32, 1)
    assert images.min() >= -1.0
    assert images.max() <= 1.0
    assert dataset.class_names == [str(d) for d in range(10)]
    raw, raw_labels = data.embedded_split("digits_8x8", "train[:10]")
    np.testing.assert_array_equal(labels, raw_labels)
    expected = tf.image.resize(raw / 127.5 - 1.0, (32, 32), method="bilinear", antialias=True)
    np.testing.assert_allclose(images, np.clip(expected, -1, 1), atol=1e-5)


def test_embedded_split_is_stratified_with_unequal_class_counts():
    _, labels = data.embedded_split("digits_8x8")
    counts = np.bincount(labels)
    total = len(labels)
    for size in range(1, total + 1, 37):
        head = np.bincount(labels[:size], minlength=10)
        tail = np.bincount(labels[total - size :], minlength=10)
        assert np.abs(head - size * counts / total).max() < 1
        assert np.abs(tail - size * counts / total).max() < 1
    _, test_labels = data.embedded_split("digits_8x8", "train[80%:]")
    assert len(test_labels) == 359
    assert np.bincount(test_labels).min() >= 35


def test_mnist_5k_split_order_is_still_the_plain_interleaving():
    # Evaluations recorded in the zoo use mnist_5k slices: they must not move.
    images, labels = data.load_mnist_5k()
    rank = np.empty(len(labels), np.int64)
    for value in range(10):
        members = np.flatnonzero(labels == value)
        rank[members] = np.arange(len(members))
    interleaved = np.lexsort((labels, rank))
    ordered, ordered_labels = data.embedded_split("mnist_5k")
    np.testing.assert_array_equal(ordered, images[interleaved])
    np.testing.assert_array_equal(ordered_labels[:20], list(range(10)) * 2)


@pytest.mark.parametrize("filename", ["mnist_5k.npz", "digits_8x8.npz"])
def test_shipped_files_match_the_readme_sha256(filename):
    readme = (DATASETS / "README.md").read_text()
    section = readme[readme.index(f"## {filename}") :]
    documented = re.search(r"sha256 \| `([0-9a-f]{64})`", section).group(1)
    assert hashlib.sha256((DATASETS / filename).read_bytes()).hexdigest() == documented


def test_build_scripts_write_into_the_package_folder():
    assert make_mnist_5k.DEFAULT_OUTPUT == DATASETS / "mnist_5k.npz"
    assert make_digits_8x8.DEFAULT_OUTPUT == DATASETS / "digits_8x8.npz"


def test_make_digits_8x8_scaling_and_checks():
    counts = np.array([0, 1, 8, 15, 16] + [0] * 59, np.float64)[None]
    images, labels = make_digits_8x8.to_uint8(counts, np.array([7.0]))
    assert images.shape == (1, 8, 8)
    assert images.dtype == np.uint8
    np.testing.assert_array_equal(images[0, 0, :5], [0, 16, 128, 239, 255])
    assert labels.dtype == np.int32
    with pytest.raises(ValueError, match="0..16"):
        make_digits_8x8.to_uint8(np.full((1, 64), 17.0), np.array([0]))
    with pytest.raises(ValueError, match="0..16"):
        make_digits_8x8.to_uint8(np.full((1, 64), 0.5), np.array([0]))
    with pytest.raises(ValueError, match="0..9"):
        make_digits_8x8.to_uint8(np.zeros((1, 64)), np.array([10]))


def test_make_digits_8x8_main_writes_the_npz(monkeypatch, tmp_path, capsys):
    counts = np.arange(2 * 64).reshape(2, 64) % 17
    fake = (counts.astype(float), np.array([3, 4]), "9.9")
    monkeypatch.setattr(make_digits_8x8, "load_from_sklearn", lambda: fake)
    output = tmp_path / "digits.npz"
    assert make_digits_8x8.main(["--output", str(output)]) == 0
    printed = capsys.readouterr().out
    assert "scikit-learn 9.9" in printed
    assert hashlib.sha256(output.read_bytes()).hexdigest() in printed
    with np.load(output) as archive:
        np.testing.assert_array_equal(archive["images"], (counts.reshape(2, 8, 8) * 255 + 8) // 16)
        np.testing.assert_array_equal(archive["labels"], [3, 4])


def test_make_digits_8x8_rebuilds_the_shipped_file_byte_for_byte(tmp_path):
    sklearn = pytest.importorskip("sklearn")
    if sklearn.__version__ != "1.9.1":
        pytest.skip(f"digits_8x8.npz was built with scikit-learn 1.9.1, not {sklearn.__version__}")
    output = tmp_path / "digits_8x8.npz"
    assert make_digits_8x8.main(["--output", str(output)]) == 0
    assert output.read_bytes() == (DATASETS / "digits_8x8.npz").read_bytes()


# ---------------------------------------------------------------------------
# unpaired: the batch contract, epochs and shuffling


def test_embedded_pair_batch_contract():
    dataset = data.unpaired("digits_8x8", "mnist_5k", batch_size=4, image_size=32, seed=0)
    spec = tf.TensorSpec((4, 32, 32, 1), tf.float32)
    assert dataset.element_spec == (spec, spec)
    assert int(dataset.cardinality()) == 5000 // 4
    images_a, images_b = next(iter(dataset))
    for images in (images_a.numpy(), images_b.numpy()):
        assert images.min() >= -1.0
        assert images.max() <= 1.0
        assert images.std() > 0.1


def test_domains_are_shuffled_independently_and_fully():
    same = ramp(64)
    a, b = epoch(data.unpaired(same, same, batch_size=8, seed=3))
    order_a, order_b = indices(a), indices(b)
    assert sorted(order_a) == list(range(64))
    assert sorted(order_b) == list(range(64))
    assert not np.array_equal(order_a, np.arange(64))
    # One seed, two streams: the same data must not come out in the same order.
    assert not np.array_equal(order_a, order_b)
    assert np.mean(order_a == order_b) < 0.2


def test_the_smaller_domain_cycles_through_reshuffled_passes():
    dataset = data.unpaired(ramp(40), ramp(12), batch_size=4, seed=1)
    assert int(dataset.cardinality()) == 10
    a, b = epoch(dataset)
    assert sorted(indices(a)) == list(range(40))
    passes = indices(b)[:36].reshape(3, 12)
    for one_pass in passes:
        assert sorted(one_pass) == list(range(12))
    assert not np.array_equal(passes[0], passes[1])
    # Nor does the larger domain have to be A.
    a, b = epoch(data.unpaired(ramp(12), ramp(40), batch_size=4, seed=1))
    assert len(a) == 40
    assert sorted(indices(b)) == list(range(40))


@pytest.mark.parametrize("sizes", [(7, 11), (11, 7), (9, 9)])
def test_no_batch_holds_one_image_twice(sizes):
    # Batched after the repeat, a batch could straddle two passes: 7 images
    # in batches of 3 gave [6, 0, 6]. Each pass now leaves out its ragged end.
    for seed in range(5):
        dataset = data.unpaired(ramp(sizes[0]), ramp(sizes[1]), batch_size=3, seed=seed, steps=40)
        for batch_a, batch_b in dataset:
            for batch in (batch_a, batch_b):
                rows = indices(batch.numpy())
                assert len(set(rows.tolist())) == len(rows), rows


def test_seed_reproduces_and_each_epoch_reshuffles():
    def orders(dataset):
        a, b = epoch(dataset)
        return np.concatenate([indices(a), indices(b)])

    def build(seed):
        return data.unpaired(ramp(32), ramp(32), batch_size=8, seed=seed)

    dataset = build(5)
    first, second = orders(dataset), orders(dataset)
    np.testing.assert_array_equal(first, orders(build(5)))
    assert not np.array_equal(first, second)
    assert not np.array_equal(first, orders(build(6)))


def test_shuffle_false_keeps_order_and_steps_sets_the_epoch():
    a, b = epoch(data.unpaired(ramp(6), ramp(4), batch_size=2, shuffle=False, cache=False))
    np.testing.assert_array_equal(indices(a), range(6))
    np.testing.assert_array_equal(indices(b), [0, 1, 2, 3, 0, 1])
    dataset = data.unpaired(ramp(6), ramp(4), batch_size=2, steps=7, shuffle=False)
    assert int(dataset.cardinality()) == 7
    a, _ = epoch(dataset)
    np.testing.assert_array_equal(indices(a), [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5, 0, 1])


def test_channels_and_image_size_convert_both_domains():
    rgb = np.random.default_rng(0).integers(0, 256, (8, 10, 10, 3), dtype=np.uint8)
    dataset = data.unpaired(ramp(8, size=6), rgb, batch_size=4, channels=3, image_size=(6, 8))
    spec = tf.TensorSpec((4, 6, 8, 3), tf.float32)
    assert dataset.element_spec == (spec, spec)
    a, b = next(iter(dataset))
    np.testing.assert_array_equal(a[..., 0], a[..., 2])  # grayscale expanded
    assert b.numpy().min() >= -1.0


def test_float_arrays_pass_through_uncached_as_floats():
    floats = np.random.default_rng(1).uniform(-1, 1, (4, 5, 5, 1)).astype(np.float32)
    a, _ = epoch(data.unpaired(floats, ramp(4, size=5), batch_size=4, shuffle=False))
    np.testing.assert_array_equal(a, floats)


# ---------------------------------------------------------------------------
# unpaired: the CycleGAN jitter


def columns(size=32, count=16):
    """Images whose pixel value is the column index: crops and flips are visible."""
    row = np.linspace(0, 255, size).astype(np.uint8)
    return np.broadcast_to(row[None, None, :, None], (count, size, size, 1)).copy()


def test_cyclegan_load_size_keeps_the_paper_ratio():
    assert data._cyclegan_load_size((256, 256)) == (286, 286)
    assert data._cyclegan_load_size((32, 32)) == (36, 36)
    assert data._cyclegan_load_size((128, 64)) == (143, 72)


def test_jitter_crops_and_flips_reproducibly():
    images = columns()

    def run(seed):
        dataset = data.unpaired(
            images, images, batch_size=16, jitter="cyclegan", seed=seed, shuffle=False
        )
        return epoch(dataset)

    a, b = run(0)
    assert a.shape == (16, 32, 32, 1)
    assert b.shape == (16, 32, 32, 1)
    rows = a[:, 0, :, 0]
    increasing = rows[:, -1] > rows[:, 0]
    assert 0 < increasing.sum() < 16  # some flipped, some not
    # Within an image the columns stay a ramp: a crop, not a resample.
    assert np.all(np.abs(np.diff(rows, axis=1)) > 0)
    # Crops start at different columns of the 36-wide resized image.
    starts = np.where(increasing, rows[:, 0], rows[:, -1])
    assert len(np.unique(np.round(starts, 3))) > 1
    # Each domain has its own jitter; the same seed repeats it exactly.
    assert not np.array_equal(a, b)
    a_again, b_again = run(0)
    np.testing.assert_array_equal(a, a_again)
    np.testing.assert_array_equal(b, b_again)
    assert not np.array_equal(a, run(1)[0])


def test_jitter_changes_every_epoch():
    dataset = data.unpaired(columns(), columns(), batch_size=16, jitter="cyclegan", seed=2)
    first, second = epoch(dataset), epoch(dataset)
    assert not np.array_equal(first[0], second[0])


def test_jitter_without_image_size_crops_to_the_source_size():
    dataset = data.unpaired("digits_8x8", ramp(1797, size=8), batch_size=8, jitter="cyclegan")
    spec = tf.TensorSpec((8, 8, 8, 1), tf.float32)
    assert dataset.element_spec == (spec, spec)


# ---------------------------------------------------------------------------
# unpaired: tensorflow-datasets cycle_gan pairs


def sided_cycle_gan(self, split, **kwargs):
    """A mocked cycle_gan: A splits black, B splits white, trainA 6 images, others 3."""
    del self, kwargs
    count = 6 if split == "trainA" else 3
    value = 0 if split.startswith(("trainA", "testA")) else 255
    return tf.data.Dataset.from_tensor_slices(
        {
            "image": np.full((count, 10, 12, 3), value, np.uint8),
            "label": np.full((count,), value // 255, np.int64),
        }
    )


def test_cycle_gan_name_means_both_domains():
    with tfds.testing.mock_data(as_dataset_fn=sided_cycle_gan):
        dataset = data.unpaired("cycle_gan/horse2zebra", batch_size=2, image_size=8, seed=0)
        a, b = epoch(dataset)
    assert a.shape == (6, 8, 8, 3)  # trainA is the larger: 6 // 2 steps
    assert b.shape == (6, 8, 8, 3)
    assert np.all(a == -1.0)
    assert np.all(b == 1.0)


def test_cycle_gan_test_split_and_explicit_sides():
    with tfds.testing.mock_data(as_dataset_fn=sided_cycle_gan):
        a, b = epoch(data.unpaired("cycle_gan/horse2zebra", split="test", batch_size=3))
        assert np.all(a == -1.0) and np.all(b == 1.0)
        assert a.shape == (3, 10, 12, 3)
        # Naming the side letter swaps the direction.
        a, b = epoch(
            data.unpaired(
                "cycle_gan/horse2zebra", "cycle_gan/horse2zebra",
                split_a="trainB", split_b="trainA", batch_size=3,
            )
        )
        assert np.all(a == 1.0) and np.all(b == -1.0)


def test_cycle_gan_random_mock_with_jitter():
    # The default mock has images of varying sizes, like the real dataset.
    with tfds.testing.mock_data(num_examples=5):
        dataset = data.unpaired(
            "cycle_gan/horse2zebra", batch_size=2, image_size=16, jitter="cyclegan", seed=0
        )
        spec = tf.TensorSpec((2, 16, 16, 3), tf.float32)
        assert dataset.element_spec == (spec, spec)
        assert [a.shape for a, _ in dataset.as_numpy_iterator()] == [(2, 16, 16, 3)] * 2
        with pytest.raises(ValueError, match=r"Domain A .*can differ in size.*image_size"):
            data.unpaired("cycle_gan/horse2zebra", batch_size=2)


def test_cycle_gan_unavailable_names_the_offline_pair(tmp_path):
    with pytest.raises(data.DatasetUnavailableError) as info:
        data.unpaired("cycle_gan/horse2zebra", data_dir=tmp_path, download=False)
    message = str(info.value)
    assert "'trainA'" in message
    assert "kgan.data.unpaired('digits_8x8', 'mnist_5k', image_size=32)" in message
    assert info.value.dataset == "cycle_gan/horse2zebra"
    # load() of one cycle_gan domain points at the same offline pair.
    with pytest.raises(data.DatasetUnavailableError, match=r"unpaired\('digits_8x8', 'mnist_5k'"):
        data.load("cycle_gan/horse2zebra", split="testB", data_dir=tmp_path, download=False)


# ---------------------------------------------------------------------------
# unpaired: folders


@pytest.fixture
def two_folders(tmp_path):
    """photos/: 4 red images of assorted sizes; paintings/: 2 green ones, one nested."""
    for i, size in enumerate([(10, 12), (7, 7), (20, 9), (8, 8)]):
        write_png(tmp_path / "photos" / f"{i}.png", np.full((*size, 3), (255, 0, 0), np.uint8))
    write_png(tmp_path / "paintings" / "a.png", np.full((9, 9, 3), (0, 255, 0), np.uint8))
    write_png(tmp_path / "paintings" / "old" / "b.png", np.full((5, 6, 1), 0, np.uint8))
    return tmp_path / "photos", tmp_path / "paintings"


def test_folders_as_domains(two_folders):
    photos, paintings = two_folders
    dataset = data.unpaired(f"{photos}/", paintings, image_size=6, batch_size=2, seed=0)
    spec = tf.TensorSpec((2, 6, 6, 3), tf.float32)
    assert dataset.element_spec == (spec, spec)
    a, b = epoch(dataset)
    assert len(a) == 4
    np.testing.assert_allclose(a[..., 0], 1.0)  # all red
    np.testing.assert_allclose(a[..., 1], -1.0)
    # paintings: one green, one black grayscale file read as RGB; each twice.
    greens = np.isclose(b[:, 0, 0, 1], 1.0)
    assert greens.sum() == 2


def test_folder_needs_image_size_and_matching_channels(two_folders):
    photos, _ = two_folders
    with pytest.raises(ValueError, match="can differ in size.*image_size"):
        data.unpaired(photos, "mnist_5k")
    with pytest.raises(ValueError, match=r"channels: 3 \(RGB\) in A, 1 \(grayscale\) in B"):
        data.unpaired(photos, "mnist_5k", image_size=28)
    dataset = data.unpaired(photos, "mnist_5k", image_size=28, channels=1, batch_size=4)
    assert dataset.element_spec[0].shape == (4, 28, 28, 1)


def test_a_folder_keeps_its_images_channels_unless_told(tmp_path):
    """channels=None keeps each source's: a folder of grey PNGs is grey (it was read as RGB)."""
    for folder, channels in (("grey", 1), ("grey_too", 1), ("rgb", 3)):
        for i in range(2):
            write_png(tmp_path / folder / f"{i}.png", np.full((6, 6, channels), 40 * i, np.uint8))
    grey, grey_too, rgb = (tmp_path / name for name in ("grey", "grey_too", "rgb"))
    spec = data.unpaired(grey, grey_too, image_size=6, batch_size=2).element_spec
    assert spec == (tf.TensorSpec((2, 6, 6, 1), tf.float32),) * 2
    # A grey folder and a grey dataset agree; a grey and an RGB folder do not.
    assert data.unpaired(grey, "mnist_5k", image_size=6, batch_size=2).element_spec[0].shape[-1] == 1
    with pytest.raises(ValueError, match=r"channels: 1 \(grayscale\) in A, 3 \(RGB\) in B"):
        data.unpaired(grey, rgb, image_size=6)
    # Told, both are converted.
    assert data.unpaired(grey, rgb, image_size=6, channels=3).element_spec[0].shape[-1] == 3


def test_reference_folder_layout_means_both_domains(tmp_path):
    for sub, value in [("trainA", 0), ("trainB", 255), ("testA", 60), ("testB", 200)]:
        for i in range(2):
            image = np.full((4, 4, 3), value, np.uint8)
            write_png(tmp_path / "horse2zebra" / sub / f"{i}.png", image)
    root = str(tmp_path / "horse2zebra")
    a, b = epoch(data.unpaired(root, batch_size=2, image_size=4))
    assert np.all(a == -1.0) and np.all(b == 1.0)
    a, b = epoch(data.unpaired(root, split="test", batch_size=2, image_size=4))
    np.testing.assert_allclose(a, 60 / 127.5 - 1, atol=1e-6)
    np.testing.assert_allclose(b, 200 / 127.5 - 1, atol=1e-6)


# ---------------------------------------------------------------------------
# unpaired: errors


def test_unknown_names_suggest_close_ones():
    with pytest.raises(ValueError, match="Did you mean 'mnist_5k'"):
        data.unpaired("mnist_5kk", "digits_8x8")
    with pytest.raises(ValueError, match="Did you mean 'cycle_gan/horse2zebra'"):
        data.unpaired("horse2zebra")


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "pattern"),
    [
        (("mnist_5k",), {}, ValueError, r"got one domain.*cycle_gan.*trainA/"),
        ((np.zeros((4, 4, 4), np.uint8),), {}, ValueError, "got one domain"),
        (("digits_8x8", "mnist_5k"), {}, ValueError, r"size: 8x8 in A, 28x28 in B.*image_size"),
        (("digits_8x8", ramp(3, size=8)), {"batch_size": 4}, ValueError,
         r"Domain B \(the array\) has 3 images, fewer than one batch of 4.*at most 3"),
        (("digits_8x8", "mnist_5k"), {"image_size": 32, "jitter": "paper"}, ValueError,
         r"jitter must be None or one of \['cyclegan'\]"),
        (("digits_8x8", "mnist_5k"), {"steps": 0}, ValueError, "steps must be >= 1"),
        (("digits_8x8", "mnist_5k"), {"image_size": 32, "split": "test"}, ValueError,
         "only the split 'train'"),
        (("digits_8x8", ramp(8)), {"split": "train[:9]"}, ValueError, "array, which has no split"),
        (("digits_8x8", ramp(8)), {"split_a": "train[:50%]", "image_size": 4}, None, None),
        ((None, "mnist_5k"), {}, TypeError, "a dataset name, a folder path or an array"),
        (("", "mnist_5k"), {}, TypeError, "empty string"),
        (("digits_8x8", "mnist_5k"), {"split_b": 3}, TypeError, "split_b must be a string"),
        (("digits_8x8", "mnist_5k"), {"batch_size": 0}, ValueError, "batch_size must be >= 1"),
        (("digits_8x8", "mnist_5k"), {"channels": 2}, ValueError, "channels must be 1"),
        (("missing_folder/", "mnist_5k"), {"image_size": 8}, FileNotFoundError, "does not exist"),
    ],
)
def test_bad_inputs_raise_clear_errors(args, kwargs, error, pattern):
    if error is None:
        data.unpaired(*args, **kwargs)  # the control case: this one is fine
        return
    with pytest.raises(error, match=pattern):
        data.unpaired(*args, **kwargs)


def test_folder_split_without_sub_folder_is_an_error(two_folders):
    photos, paintings = two_folders
    with pytest.raises(ValueError, match=r"has no sub-folder 'testA'.*split_a='train'"):
        data.unpaired(photos, paintings, split="test", image_size=4)
