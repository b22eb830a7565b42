import glob
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
import tensorflow as tf

from kgan import callbacks, data, images, metrics
from kgan.callbacks import SampleGrid

LATENT_DIM = 4
IMAGE_SHAPE = (6, 6, 1)


class FakeGAN(keras.Model):
    """Smallest model with the interface SampleGrid relies on.

    With ``drift=True`` each train step shifts the generator's bias, so
    successive epochs produce different images from the same latents.
    """

    def __init__(self, drift=False):
        super().__init__()
        self.latent_dim = LATENT_DIM
        self.drift = drift
        z = keras.Input((LATENT_DIM,))
        x = keras.layers.Dense(int(np.prod(IMAGE_SHAPE)), activation="tanh")(z)
        x = keras.layers.Reshape(IMAGE_SHAPE)(x)
        self.generator = keras.Model(z, x)
        self.steps = self.add_weight(shape=(), initializer="zeros", trainable=False)
        self.seen_latents = []

    def generate_from_latents(self, z):
        self.seen_latents.append(np.array(z))
        return self.generator(z, training=False)

    def train_step(self, data):
        self.steps.assign_add(1.0)
        if self.drift:
            bias = self.generator.layers[1].bias
            bias.assign(bias + 0.3)
        return {"steps": self.steps}


def _fit(model, callback, epochs):
    model.compile(run_eagerly=True)
    model.fit(np.zeros((2, 1), np.float32), batch_size=2, epochs=epochs, verbose=0,
              callbacks=[callback])


def _basenames(paths):
    return [os.path.basename(p) for p in paths]


def test_writes_one_grid_per_epoch(tmp_path):
    cb = SampleGrid(tmp_path / "samples", num_samples=6)
    _fit(FakeGAN(), cb, epochs=3)
    expected = ["epoch_0001.png", "epoch_0002.png", "epoch_0003.png"]
    assert _basenames(cb.written) == expected
    assert sorted(os.listdir(tmp_path / "samples")) == expected
    for path in cb.written:
        # 6 samples -> ceil(sqrt(6)) = 3 columns, 2 rows, padding 2.
        assert images.load_png(path).shape == (2 * 8 + 2, 3 * 8 + 2, 1)


def test_grid_content_matches_generator_output(tmp_path):
    model = FakeGAN()
    cb = SampleGrid(tmp_path, num_samples=4, ncols=4)
    _fit(model, cb, epochs=1)
    z = np.random.default_rng(0).standard_normal((4, LATENT_DIM)).astype("float32")
    expected = images.make_grid(model.generator(z), ncols=4)
    np.testing.assert_array_equal(images.load_png(cb.written[0]), expected)


def test_same_latents_every_epoch(tmp_path):
    model = FakeGAN(drift=True)
    cb = SampleGrid(tmp_path, num_samples=5, seed=3)
    _fit(model, cb, epochs=3)
    assert len(model.seen_latents) == 3
    expected = np.random.default_rng(3).standard_normal((5, LATENT_DIM)).astype("float32")
    for z in model.seen_latents:
        assert z.dtype == np.float32
        np.testing.assert_array_equal(z, expected)
    # The generator does change, so the grids differ even though z does not.
    first, last = (images.load_png(p) for p in (cb.written[0], cb.written[-1]))
    assert not np.array_equal(first, last)


def test_constant_generator_gives_identical_grids(tmp_path):
    cb = SampleGrid(tmp_path, num_samples=9)
    _fit(FakeGAN(drift=False), cb, epochs=3)
    grids = [images.load_png(p) for p in cb.written]
    assert len(grids) == 3
    for grid in grids[1:]:
        np.testing.assert_array_equal(grid, grids[0])
    # Guard against a trivially constant image making the check vacuous.
    assert len(np.unique(grids[0])) > 2


def test_every_n_epochs_writes_last_epoch_at_train_end(tmp_path):
    model = FakeGAN()
    cb = SampleGrid(tmp_path, num_samples=2, every_n_epochs=2)
    _fit(model, cb, epochs=3)
    assert _basenames(cb.written) == ["epoch_0002.png", "epoch_0003.png"]
    assert sorted(os.listdir(tmp_path)) == ["epoch_0002.png", "epoch_0003.png"]
    assert len(model.seen_latents) == 2


def test_last_epoch_is_not_written_twice(tmp_path):
    model = FakeGAN()
    cb = SampleGrid(tmp_path, num_samples=2, every_n_epochs=3)
    _fit(model, cb, epochs=3)
    assert _basenames(cb.written) == ["epoch_0003.png"]
    assert len(model.seen_latents) == 1


def test_a_second_fit_numbers_on_instead_of_overwriting(tmp_path):
    # written was [epoch_0001, _0002, _0003, _0002, ...]: the second fit overwrote grids.
    cb = SampleGrid(tmp_path, num_samples=2)
    model = FakeGAN()
    _fit(model, cb, epochs=3)
    _fit(model, cb, epochs=2)
    expected = [f"epoch_{n:04d}.png" for n in range(1, 6)]
    assert _basenames(cb.written) == expected
    assert sorted(os.listdir(tmp_path)) == expected
    # A fit that starts at a later epoch (as a resumed one does) keeps Keras's numbers.
    model.fit(np.zeros((2, 1), np.float32), batch_size=2, epochs=3, initial_epoch=2, verbose=0,
              callbacks=[cb])
    assert _basenames(cb.written)[-1] == "epoch_0003.png"


def test_custom_filename(tmp_path):
    cb = SampleGrid(tmp_path, num_samples=2, filename="grid-{epoch}.png")
    _fit(FakeGAN(), cb, epochs=2)
    assert _basenames(cb.written) == ["grid-1.png", "grid-2.png"]


def test_tensorboard_summaries(tmp_path):
    log_dir = tmp_path / "logs"
    cb = SampleGrid(tmp_path / "png", num_samples=4, tensorboard_log_dir=log_dir)
    _fit(FakeGAN(), cb, epochs=2)
    event_files = glob.glob(str(log_dir / "events.out.tfevents*"))
    assert len(event_files) == 1
    steps = []
    for event in tf.compat.v1.train.summary_iterator(event_files[0]):
        for value in event.summary.value:
            if value.tag == "samples":
                steps.append(event.step)
                # Image summaries store [width, height, encoded PNG...].
                png = tf.make_ndarray(value.tensor)[2]
                np.testing.assert_array_equal(
                    tf.io.decode_png(png).numpy(), images.load_png(cb.written[event.step])
                )
    assert steps == [0, 1]


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"num_samples": 0}, ValueError, "num_samples"),
        ({"num_samples": 2.5}, ValueError, "num_samples"),
        ({"every_n_epochs": 0}, ValueError, "every_n_epochs"),
        ({"every_n_epochs": -2}, ValueError, "every_n_epochs"),
        ({"seed": -1}, ValueError, "seed"),
        ({"ncols": 0}, ValueError, "ncols"),
        ({"filename": "{step}.png"}, ValueError, "filename"),
        ({"filename": 5}, TypeError, "filename"),
        ({"filename": "epoch_{epoch}.jpg"}, ValueError, "must end in .png"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        SampleGrid(tmp_path, **kwargs)


def test_model_without_gan_interface_is_rejected(tmp_path):
    cb = SampleGrid(tmp_path)
    cb.set_model(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]))
    with pytest.raises(TypeError, match="latent_dim"):
        cb.on_train_begin()

    class NoGenerate(keras.Model):
        latent_dim = 3

    cb.set_model(NoGenerate())
    with pytest.raises(TypeError, match="generate_from_latents"):
        cb.on_train_begin()
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------- QualityMetrics
def _coarse_pixels(images):
    """A 16-feature extractor for 16x16x1 images: every fourth pixel."""
    return np.asarray(images)[:, ::4, ::4, 0].reshape(len(images), -1)


def test_quality_metrics_log_every_k_epochs_and_at_the_end(tmp_path):
    from kgan.callbacks import QualityMetrics
    from kgan_test_utils import tiny_dcgan

    model = tiny_dcgan(spread=True)
    model.compile()
    real = np.random.default_rng(0).uniform(-1, 1, (64, 16, 16, 1)).astype("float32")
    dataset = data.from_numpy(real, batch_size=16, shuffle=False, cache=False)
    quality = QualityMetrics(
        real, _coarse_pixels, metrics=("fid", "kid", "pr"), every_n_epochs=2, num=40,
        tensorboard_log_dir=tmp_path / "tb",
    )
    history = model.fit(dataset, epochs=3, verbose=0, callbacks=[quality])
    assert sorted(quality.history) == [1, 2, 3]
    assert set(quality.history[2]) == {"fid", "kid_mean", "kid_std", "precision", "recall"}
    # Epoch 1 (the first), 2 (every 2) and 3 (the last) reach the History callback.
    assert history.history["fid"] == [quality.history[e]["fid"] for e in (1, 2, 3)]
    assert quality.history[2]["fid"] > 0
    events = list((tmp_path / "tb").glob("events.out.tfevents.*"))
    tags = {
        value.tag
        for event in tf.compat.v1.train.summary_iterator(str(events[0]))
        for value in event.summary.value
    }
    assert "quality/fid" in tags


def test_quality_metrics_keep_a_resumed_csv_log_aligned(tmp_path):
    """A resumed run appends to log.csv: its rows must carry the header's columns."""
    import csv

    from kgan.callbacks import QualityMetrics
    from kgan_test_utils import tiny_dcgan

    real = np.random.default_rng(0).uniform(-1, 1, (32, 16, 16, 1)).astype("float32")
    dataset = data.from_numpy(real, batch_size=16, shuffle=False, cache=False)
    log = tmp_path / "log.csv"
    model = tiny_dcgan(spread=True)
    model.compile()
    for start, stop, append in ((0, 1, False), (1, 4, True)):  # killed after epoch 1, rerun
        quality = QualityMetrics(real, _coarse_pixels, every_n_epochs=3, num=20)
        logger = keras.callbacks.CSVLogger(str(log), append=append)
        model.fit(dataset, epochs=stop, initial_epoch=start, verbose=0, callbacks=[quality, logger])
    with open(log, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    assert "fid" in header and [row[0] for row in body] == ["0", "1", "2", "3"]
    assert all(len(row) == len(header) for row in body)
    fid = [row[header.index("fid")] for row in body]
    # Each fit's first and last epoch, and epoch 3 (every 3).
    assert [f != "NA" for f in fid] == [True, True, True, True], fid


def test_quality_metrics_same_generator_same_figures():
    from kgan.callbacks import QualityMetrics
    from kgan_test_utils import tiny_dcgan

    model = tiny_dcgan(spread=True)
    real = np.random.default_rng(0).uniform(-1, 1, (40, 16, 16, 1)).astype("float32")
    quality = QualityMetrics(real, _coarse_pixels, num=40)
    quality.set_model(model)
    quality.on_train_begin()
    first, second = {}, {}
    quality.on_epoch_end(0, first)
    quality.on_epoch_end(1, second)
    assert first == second and "fid" in first
    # And they are kgan.metrics.evaluate's for the same samples.
    direct = metrics.evaluate(real, model, _coarse_pixels, metrics=("fid",), num=40, seed=0)
    assert first["fid"] == pytest.approx(direct["fid"], rel=1e-6) and direct["fid"] > 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"metrics": ("fid", "lpips")}, "Unknown metrics"),
        ({"every_n_epochs": 0}, "every_n_epochs"),
        ({"num": 2.5}, "num"),
    ],
)
def test_quality_metrics_bad_arguments(kwargs, message):
    from kgan.callbacks import QualityMetrics

    with pytest.raises(ValueError, match=message):
        QualityMetrics(np.zeros((4, 16, 16, 1), "float32"), _coarse_pixels, **kwargs)
