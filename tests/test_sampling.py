"""kgan.sampling.write_samples: its argument checks and concurrent writers."""

import threading

import numpy as np
import pytest

from kgan import sampling
from kgan_test_utils import tiny_dcgan


@pytest.fixture(scope="module")
def model():
    return tiny_dcgan()


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(num=0), ValueError, "num must be at least 1"),
    (dict(num=2.5), TypeError, "num"),
    (dict(num=2, interpolate=0), ValueError, "interpolate must be None or an int of at least 2"),
    (dict(num=2, interpolate=1), ValueError, "interpolate must be None or an int of at least 2"),
])
@pytest.mark.parametrize("name", ["g.png", "s.npz", "folder"])
def test_write_samples_refuses_bad_counts_before_writing(model, tmp_path, kwargs, error, match,
                                                         name):
    # A .png grid of 0 samples divided by zero; nothing may be left behind.
    with pytest.raises(error, match=match):
        sampling.write_samples(model, tmp_path / name, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_two_threads_writing_one_npz_leave_one_whole_file(model, tmp_path):
    # Their temporary files were named by the process alone: both wrote one.
    target, errors = tmp_path / "s.npz", []

    def write(seed):
        try:
            sampling.write_samples(model, target, 300, seed=seed)
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=write, args=(seed,)) for seed in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    images = np.load(target)["images"]
    candidates = [model.generate_uint8(300, seed=seed) for seed in (0, 1)]
    assert any(np.array_equal(images, c) for c in candidates)
    assert [p.name for p in tmp_path.iterdir()] == ["s.npz"]


def test_interpolation_rows_of_a_conditional_model_cycle_through_its_classes(tmp_path):
    # Every row was class 0: `kgan sample cgan_mnist_50shot --interpolate 4` drew only zeros.
    from kgan.images import to_uint8
    from kgan.models import ConditionalGAN
    from kgan_test_utils import spread_weights

    gan = spread_weights(ConditionalGAN.from_image_shape(
        (16, 16, 1), 3, latent_dim=4, filters=2, embedding_dim=2, seed=0))
    images = np.concatenate(list(sampling.sample_batches(gan, 5, seed=0, interpolate=3, batch_size=6)))
    ends = gan.latents(10, seed=0)
    expected = np.concatenate([to_uint8(gan.interpolate(ends[2 * r], ends[2 * r + 1], 3, label=r % 3))
                               for r in range(5)])
    np.testing.assert_array_equal(images, expected)
    first_row_as_class_0 = to_uint8(gan.interpolate(ends[2], ends[3], 3, label=0))
    assert not np.array_equal(images[3:6], first_row_as_class_0)  # row 1 is class 1
