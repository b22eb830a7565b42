"""Concurrency: one model, or one SavedModel, serving 8 threads at once.

A web server typically loads a generator once and calls it from a pool of
request threads. Each test starts 8 calls together (a barrier maximizes the
overlap), each with its own seed, latents or image size, on a *freshly
loaded* model, so the lazily built `tf.function`s are also first traced
concurrently, and compares every result bit for bit with the same calls made
one after another. Seeded `generate` is a pure function of its seed: its
latents come from a numpy Generator local to the call (`GAN.latent_batches`),
not from the model's shared `SeedGenerator`.
"""

import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np
import pytest
import tensorflow as tf

from kgan import zoo
from kgan.export import export_generator
from kgan.models import CycleGAN

THREADS = 8


def in_threads(function, arguments):
    """`[function(a) for a in arguments]`, run by THREADS threads started together."""
    assert len(arguments) % THREADS == 0  # whole rounds, or the barrier would wait forever
    barrier = threading.Barrier(THREADS)

    def call(argument):
        barrier.wait(timeout=60)
        return function(argument)

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(call, arguments))


def assert_same(concurrent, sequential):
    assert len(concurrent) == len(sequential)
    for got, expected in zip(concurrent, sequential):
        assert got.dtype == expected.dtype and got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """dcgan_mnist's generator exported once and loaded with plain TensorFlow."""
    path = tmp_path_factory.mktemp("concurrency") / "dcgan_mnist"
    export_generator(zoo.load("dcgan_mnist"), path)
    return tf.saved_model.load(str(path))


def test_generate_from_threads_equals_sequential_calls():
    model = zoo.load("dcgan_mnist")  # fresh: the inference function is traced under contention
    # Different seeds and batch sizes per call (sizes 1..8 trace several shapes).
    calls = [(seed, 1 + seed % 8) for seed in range(2 * THREADS)]
    concurrent = in_threads(lambda call: model.generate(call[1], seed=call[0]), calls)
    sequential = [model.generate(num, seed=seed) for seed, num in calls]
    assert_same(concurrent, sequential)
    assert not np.array_equal(concurrent[1][:1], concurrent[2][:1])  # seeds differ, images differ
    # Explicit latents, and the uint8 helper, likewise.
    latents = [np.random.default_rng(i).standard_normal((3, model.latent_dim)).astype("float32")
               for i in range(THREADS)]
    assert_same(in_threads(model.generate_from_latents, latents),
                [model.generate_from_latents(z) for z in latents])
    assert_same(in_threads(lambda s: model.generate_uint8(5, seed=s), list(range(THREADS))),
                [model.generate_uint8(5, seed=s) for s in range(THREADS)])


def test_unseeded_generate_from_threads_draws_distinct_latents():
    """Unseeded calls share the model's stream: concurrent ones must not repeat a draw."""
    model = zoo.load("dcgan_mnist")
    latents = in_threads(lambda _: model.latents(4), list(range(THREADS)))
    rows = np.concatenate(latents)
    assert len(np.unique(rows, axis=0)) == len(rows)


def test_saved_model_from_threads_equals_sequential_calls(served):
    serve = served.signatures["serving_default"]
    latents = [np.random.default_rng(i).standard_normal((1 + i % 4, 100)).astype("float32")
               for i in range(2 * THREADS)]

    def call(z):
        return serve(latents=tf.constant(z))["images"].numpy()

    concurrent = in_threads(call, latents)
    assert_same(concurrent, [call(z) for z in latents])
    # And it serves what the Python model generates.
    model = zoo.load("dcgan_mnist")
    np.testing.assert_allclose(concurrent[0], model.generate_from_latents(latents[0]), atol=1e-5)
    uint8 = served.signatures["generate_uint8"]
    assert_same(in_threads(lambda z: uint8(latents=tf.constant(z))["images"].numpy(), latents[:THREADS]),
                [uint8(latents=tf.constant(z))["images"].numpy() for z in latents[:THREADS]])


def test_cyclegan_translate_from_threads_equals_sequential_calls():
    model = CycleGAN.from_image_shape((16, 16, 1), filters=4, num_residual_blocks=1, disc_layers=1, seed=0)
    rng = np.random.default_rng(0)
    # Each call its own size, dtype and direction: the cached translators are built concurrently.
    jobs = []
    for i in range(2 * THREADS):
        shape = (5 + 3 * i, 7 + 2 * i, 1)
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        if i % 2:
            image = (image / 127.5 - 1).astype("float32")
        jobs.append((image, "a_to_b" if i % 4 < 2 else "b_to_a"))
    concurrent = in_threads(lambda job: model.translate(job[0], direction=job[1]), jobs)
    assert_same(concurrent, [model.translate(image, direction=d) for image, d in jobs])
    assert [out.shape for out in concurrent] == [image.shape for image, _ in jobs]


def test_a_preset_with_skipped_weights_fails_even_while_another_thread_loads(
    tmp_path, monkeypatch
):
    """Keras only warns when it skips weights; zoo.load records that warning.

    Recording swaps process-wide state (`warnings.catch_warnings`). Here a
    healthy preset starts loading while a damaged one is inside its load:
    without serialization the damaged load's warning lands in the healthy
    load's record, and the damaged preset loads with random layers.
    """
    from kgan_test_utils import TINY_METADATA, tiny_dcgan

    damaged = zoo.save_preset(tiny_dcgan(), tmp_path / "damaged", TINY_METADATA)
    healthy = zoo.save_preset(tiny_dcgan(), tmp_path / "healthy", TINY_METADATA)
    healthy_started, damaged_warned = threading.Event(), threading.Event()
    original = keras.Model.load_weights

    def load_weights(model, path, *args, **kwargs):
        result = original(model, path, *args, **kwargs)
        if damaged.name in str(path):
            # Let the healthy load start its own recording, if it can.
            healthy_started.wait(timeout=1.0)
            warnings.warn("Skipping variables: they stay freshly-initialized.", UserWarning)
            damaged_warned.set()
        else:
            healthy_started.set()
            damaged_warned.wait(timeout=1.0)  # still recording when that warning comes
        return result

    monkeypatch.setattr(keras.Model, "load_weights", load_weights)
    outcomes = {}

    def load(folder):
        try:
            zoo.load(folder)
            outcomes[folder.name] = "loaded"
        except zoo.PresetMismatchError as err:
            outcomes[folder.name] = str(err)

    first = threading.Thread(target=load, args=(damaged,))
    first.start()
    time.sleep(0.2)  # the damaged load is inside load_weights, waiting
    second = threading.Thread(target=load, args=(healthy,))
    second.start()
    first.join()
    second.join()
    assert outcomes["healthy"] == "loaded"
    assert "freshly-initialized" in outcomes["damaged"]
