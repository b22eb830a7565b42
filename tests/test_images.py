import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
import tensorflow as tf

from kgan import images

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _random_uint8(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


# --- to_uint8 / from_uint8 -------------------------------------------------


def test_round_trip_is_exact_for_all_uint8_values():
    values = np.arange(256, dtype=np.uint8)
    floats = images.from_uint8(values)
    assert floats.dtype == np.float32
    assert floats.min() == -1.0 and floats.max() == 1.0
    np.testing.assert_array_equal(images.to_uint8(floats), values)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_to_uint8_endpoints(dtype):
    out = images.to_uint8(np.array([-1.0, 0.0, 1.0], dtype=dtype))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, [0, 128, 255])


def test_to_uint8_clips_out_of_range_values():
    x = np.array([-np.inf, -5.0, -1.0001, 1.0001, 3.0, np.inf], dtype=np.float32)
    np.testing.assert_array_equal(images.to_uint8(x), [0, 0, 0, 255, 255, 255])


def test_to_uint8_keeps_shape():
    x = np.zeros((2, 5, 7, 3), np.float32)
    assert images.to_uint8(x).shape == (2, 5, 7, 3)


def test_to_uint8_rejects_nan():
    x = np.zeros((2, 4, 4, 1), np.float32)
    x[1, 2, 3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        images.to_uint8(x)


def test_to_uint8_returns_uint8_input_unchanged():
    x = _random_uint8((3, 4, 4, 3))
    out = images.to_uint8(x)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, x)


@pytest.mark.parametrize("dtype", ["int8", "int32", "int64", "uint16", "bool"])
def test_to_uint8_rejects_other_integer_dtypes(dtype):
    with pytest.raises(TypeError, match="uint8"):
        images.to_uint8(np.zeros((2, 2), dtype=dtype))


def test_from_uint8_rejects_non_uint8():
    with pytest.raises(TypeError, match="uint8"):
        images.from_uint8(np.zeros((2, 2), np.float32))
    with pytest.raises(TypeError, match="uint8"):
        images.from_uint8(np.zeros((2, 2), np.int32))


def test_conversions_accept_tensors():
    t = tf.constant([[-1.0, 1.0]])
    out = images.to_uint8(t)
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, [[0, 255]])
    back = images.from_uint8(tf.constant([0, 255], dtype=tf.uint8))
    np.testing.assert_array_equal(back, np.array([-1.0, 1.0], np.float32))


# --- make_grid ---------------------------------------------------------------


@pytest.mark.parametrize(
    "n, ncols, expected_rows, expected_cols",
    [(1, None, 1, 1), (10, None, 3, 4), (64, None, 8, 8), (10, 5, 2, 5), (3, 8, 1, 8)],
)
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_make_grid_shape(n, ncols, expected_rows, expected_cols, channels):
    h, w, p = 6, 5, 2
    x = np.zeros((n, h, w, channels), np.float32)
    grid = images.make_grid(x, ncols=ncols, padding=p)
    assert grid.dtype == np.uint8
    assert grid.shape == (
        expected_rows * (h + p) + p,
        expected_cols * (w + p) + p,
        channels,
    )


def test_make_grid_adds_channel_axis_to_rank_3_batches():
    grid = images.make_grid(np.zeros((4, 6, 6), np.float32), padding=1)
    assert grid.shape == (2 * 7 + 1, 2 * 7 + 1, 1)


def test_make_grid_without_padding_is_exact_tiling():
    x = _random_uint8((6, 3, 4, 3))
    grid = images.make_grid(x, ncols=3, padding=0)
    assert grid.shape == (6, 12, 3)
    np.testing.assert_array_equal(grid[3:6, 4:8], x[4])


def test_make_grid_places_each_image_in_its_tile():
    n, h, w, c, p, ncols = 7, 5, 4, 3, 2, 3
    x = _random_uint8((n, h, w, c))
    grid = images.make_grid(x, ncols=ncols, padding=p, pad_value=17)
    covered = np.zeros(grid.shape[:2], bool)
    for i in range(n):
        top = p + (i // ncols) * (h + p)
        left = p + (i % ncols) * (w + p)
        np.testing.assert_array_equal(grid[top : top + h, left : left + w], x[i])
        covered[top : top + h, left : left + w] = True
    # Everything outside the tiles (borders, gaps, the 2 empty cells) is padding.
    assert (grid[~covered] == 17).all()


def test_make_grid_converts_float_images():
    x = np.random.default_rng(1).uniform(-1, 1, (4, 3, 3, 1)).astype(np.float32)
    grid = images.make_grid(tf.constant(x), padding=1)
    expected = images.to_uint8(x)
    # Image 3 sits in row 1, column 1.
    np.testing.assert_array_equal(grid[5:8, 5:8], expected[3])


@pytest.mark.parametrize(
    "x, kwargs, match",
    [
        (np.zeros((0, 4, 4, 3), np.float32), {}, "empty"),
        (np.zeros((4, 4), np.float32), {}, r"\[N, H, W, C\]"),
        (np.zeros((1, 2, 4, 4, 3), np.float32), {}, r"\[N, H, W, C\]"),
        (np.zeros((2, 4, 4, 2), np.float32), {}, "channels"),
        (np.zeros((2, 4, 4, 3), np.float32), {"ncols": 0}, "ncols"),
        (np.zeros((2, 4, 4, 3), np.float32), {"ncols": 2.0}, "ncols"),
        (np.zeros((2, 4, 4, 3), np.float32), {"padding": -1}, "padding"),
        (np.zeros((2, 4, 4, 3), np.float32), {"pad_value": 256}, "pad_value"),
        (np.full((2, 4, 4, 3), np.nan, np.float32), {}, "NaN"),
    ],
)
def test_make_grid_bad_input_raises_value_error(x, kwargs, match):
    with pytest.raises(ValueError, match=match):
        images.make_grid(x, **kwargs)


def test_make_grid_rejects_integer_dtype():
    with pytest.raises(TypeError, match="uint8"):
        images.make_grid(np.zeros((2, 4, 4, 3), np.int32))


# --- PNG files ----------------------------------------------------------------


def test_encode_png_returns_png_bytes():
    x = _random_uint8((5, 6, 3))
    data = images.encode_png(x)
    assert isinstance(data, bytes)
    assert data.startswith(PNG_SIGNATURE)
    np.testing.assert_array_equal(tf.io.decode_png(data).numpy(), x)


@pytest.mark.parametrize("shape", [(4, 4, 4, 3), (4,), (4, 4, 5), (0, 4, 3)])
def test_encode_png_rejects_bad_shapes(shape):
    with pytest.raises(ValueError, match="encode_png"):
        images.encode_png(np.zeros(shape, np.uint8))


@pytest.mark.parametrize("shape", [(7, 5, 3), (7, 5, 1), (7, 5, 4)])
def test_save_png_round_trip(tmp_path, shape):
    x = _random_uint8(shape)
    path = tmp_path / "img.png"
    assert images.save_png(x, path) == path
    assert path.read_bytes().startswith(PNG_SIGNATURE)
    loaded = images.load_png(path)
    assert loaded.dtype == np.uint8
    np.testing.assert_array_equal(loaded, x)


def test_save_png_greyscale_rank_2(tmp_path):
    x = _random_uint8((7, 5))
    path = images.save_png(x, str(tmp_path / "grey.png"))
    np.testing.assert_array_equal(images.load_png(path), x[..., None])


def test_save_png_converts_float_image(tmp_path):
    x = np.random.default_rng(2).uniform(-1.2, 1.2, (6, 6, 3)).astype(np.float32)
    path = images.save_png(tf.constant(x), tmp_path / "f.png")
    np.testing.assert_array_equal(images.load_png(path), images.to_uint8(x))


def test_save_png_creates_parents_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "a" / "b" / "img.png"
    images.save_png(_random_uint8((4, 4, 3)), path)
    images.save_png(_random_uint8((4, 4, 3), seed=1), path)  # overwrite
    assert os.listdir(path.parent) == ["img.png"]
    np.testing.assert_array_equal(images.load_png(path), _random_uint8((4, 4, 3), seed=1))


def test_save_png_failure_keeps_old_file_and_removes_temp(tmp_path, monkeypatch):
    path = tmp_path / "img.png"
    old = _random_uint8((4, 4, 3))
    images.save_png(old, path)

    def failing_replace(src, dst):
        raise OSError("simulated crash before rename")

    monkeypatch.setattr(images.os, "replace", failing_replace)
    with pytest.raises(OSError, match="simulated"):
        images.save_png(_random_uint8((4, 4, 3), seed=1), path)
    assert os.listdir(tmp_path) == ["img.png"]
    np.testing.assert_array_equal(images.load_png(path), old)


def test_save_png_invalid_image_touches_nothing(tmp_path):
    target = tmp_path / "new_dir" / "img.png"
    with pytest.raises(ValueError, match="NaN"):
        images.save_png(np.full((4, 4, 3), np.nan, np.float32), target)
    assert not target.parent.exists()


def test_save_grid_writes_make_grid_output(tmp_path):
    x = np.random.default_rng(3).uniform(-1, 1, (5, 4, 4, 3)).astype(np.float32)
    path = images.save_grid(x, tmp_path / "grid.png", ncols=2, padding=1)
    loaded = images.load_png(path)
    assert loaded.shape == (3 * 5 + 1, 2 * 5 + 1, 3)
    np.testing.assert_array_equal(loaded, images.make_grid(x, ncols=2, padding=1))


@pytest.mark.parametrize("name, says", [
    ("x.jpg", "ends in '.jpg'. Name it 'x.png'"),
    ("x.JPEG", "ends in '.JPEG'. Name it 'x.png'"),
    ("grid", "has no extension. Name it 'grid.png'"),
    ("grid.png.tmp", "ends in '.tmp'"),
])
@pytest.mark.parametrize("save", ["save_grid", "save_png"])
def test_a_name_other_than_png_is_refused_before_writing(tmp_path, save, name, says):
    # save_grid(images, "x.jpg") used to write PNG bytes into x.jpg.
    batch = _random_uint8((4, 4, 4, 3))
    target = tmp_path / "new_dir" / name
    with pytest.raises(ValueError, match=f"{save} writes PNG files") as info:
        getattr(images, save)(batch if save == "save_grid" else batch[0], target)
    assert says in str(info.value) and "tf.io.encode_jpeg" in str(info.value)
    assert not target.parent.exists()
    # Upper-case .PNG is a PNG name too.
    assert images.load_png(getattr(images, save)(batch[0:1] if save == "save_grid" else batch[0],
                                                 tmp_path / "ok.PNG")).shape[-1] == 3


def test_save_pngs_names_and_contents(tmp_path):
    x = _random_uint8((3, 4, 5, 3))
    paths = images.save_pngs(x, tmp_path / "out", prefix="fake", start=7)
    names = ["fake_000007.png", "fake_000008.png", "fake_000009.png"]
    assert [os.path.basename(p) for p in paths] == names
    assert sorted(os.listdir(tmp_path / "out")) == names
    for path, image in zip(paths, x):
        np.testing.assert_array_equal(images.load_png(path), image)


def test_save_pngs_default_names_and_float_input(tmp_path):
    x = np.zeros((2, 3, 3), np.float32)
    paths = images.save_pngs(x, tmp_path)
    assert [os.path.basename(p) for p in paths] == ["sample_000000.png", "sample_000001.png"]
    np.testing.assert_array_equal(images.load_png(paths[1]), np.full((3, 3, 1), 128))


def test_save_pngs_validates_whole_batch_before_writing(tmp_path):
    x = np.zeros((3, 4, 4, 1), np.float32)
    x[2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        images.save_pngs(x, tmp_path)
    assert os.listdir(tmp_path) == []


def test_save_pngs_empty_batch_writes_nothing(tmp_path):
    assert images.save_pngs(np.zeros((0, 4, 4, 3), np.uint8), tmp_path) == []
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "x, kwargs, error, match",
    [
        (np.zeros((4, 4), np.uint8), {}, ValueError, r"\[N, H, W, C\]"),
        (np.zeros((2, 4, 4, 5), np.uint8), {}, ValueError, "channels"),
        (np.zeros((2, 4, 4, 3), np.uint8), {"start": -1}, ValueError, "start"),
        (np.zeros((2, 4, 4, 3), np.uint8), {"prefix": 3}, TypeError, "prefix"),
        (np.zeros((2, 4, 4, 3), np.int16), {}, TypeError, "uint8"),
    ],
)
def test_save_pngs_bad_input(tmp_path, x, kwargs, error, match):
    with pytest.raises(error, match=match):
        images.save_pngs(x, tmp_path, **kwargs)
    assert os.listdir(tmp_path) == []


def test_load_png_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        images.load_png(tmp_path / "missing.png")


# --- check_value_range -------------------------------------------------------


@pytest.mark.parametrize(
    "low, high, shown",
    [
        (0.0, 1.001, "[0, 1.001]"),  # 3 digits would print 1, which looks in range
        (-1.0012, 0.5, "[-1.001, 0.5]"),
        (0.0, 255.0, "[0, 255]"),
    ],
)
def test_an_out_of_range_value_is_shown_with_the_digits_that_put_it_out(low, high, shown):
    batch = np.array([low, high], np.float32).reshape(2, 1, 1, 1)
    with pytest.raises(ValueError) as raised:
        images.check_value_range(batch)
    assert f"got values in {shown}." in str(raised.value)
