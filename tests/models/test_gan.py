"""The base class: compile, input validation, randomness, distribution scaling."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import kgan
from kgan_test_utils import TWO_CPU_DEVICES_PRELUDE, BatchSequence, record_inputs
from kgan.models import DCGAN, GAN, InputValidationError, slerp


def tiny_dcgan(**kwargs):
    return DCGAN.from_image_shape((16, 16, 1), latent_dim=8, filters=4, seed=0, **kwargs)


def linear_gan(latent_dim=3, side=4):
    """G(z) = Wz + b with W = 0 (output independent of z), D linear."""
    z = keras.Input((latent_dim,))
    x = keras.layers.Dense(side * side, kernel_initializer="zeros", bias_initializer="ones")(z)
    g = keras.Model(z, keras.layers.Reshape((side, side, 1))(x))
    images = keras.Input((side, side, 1))
    logits = keras.layers.Dense(1, kernel_initializer="ones")(keras.layers.Flatten()(images))
    d = keras.Model(images, logits)
    return DCGAN(g, d, seed=0)


# ---------------------------------------------------------------- compile
def test_compile_defaults_are_the_papers():
    model = tiny_dcgan()
    model.compile()
    for opt in (model.g_optimizer, model.d_optimizer):
        assert isinstance(opt, keras.optimizers.Adam)
        assert float(opt.learning_rate) == pytest.approx(2e-4)
        assert float(opt.beta_1) == pytest.approx(0.5)
        assert opt.built
    assert model.g_optimizer is not model.d_optimizer
    assert model.optimizer is None


def test_compile_passes_keras_options_through():
    model = tiny_dcgan()
    model.compile(g_optimizer="sgd", d_optimizer=keras.optimizers.SGD(0.1),
                  steps_per_execution=3, jit_compile=False)
    assert isinstance(model.g_optimizer, keras.optimizers.SGD)
    assert model.steps_per_execution == 3
    assert model.jit_compile is False
    config = model.get_compile_config()
    assert config["steps_per_execution"] == 3 and "g_optimizer" in config


@pytest.mark.parametrize("steps, error", [(0, ValueError), (-1, ValueError), ("2", TypeError),
                                           (2.0, TypeError), (True, TypeError)])
def test_compile_refuses_steps_per_execution_that_is_not_a_positive_int(steps, error):
    # Keras takes them, then fit failed with "range() arg 3 must not be zero", or
    # (for -1) trained no step and returned an empty history without a word.
    model = tiny_dcgan()
    with pytest.raises(error, match=r"steps_per_execution must be .*batches each call of fit"):
        model.compile(steps_per_execution=steps)
    model.compile(steps_per_execution=np.int64(2))
    assert model.steps_per_execution == 2 and type(model.steps_per_execution) is int


@pytest.mark.parametrize("key", ["optimizer", "loss", "metrics"])
def test_compile_refuses_single_model_arguments(key):
    with pytest.raises(TypeError, match="g_optimizer"):
        tiny_dcgan().compile(**{key: "adam"})


def test_compile_refuses_shared_or_built_optimizer():
    model = tiny_dcgan()
    shared = keras.optimizers.Adam()
    with pytest.raises(ValueError, match="same object"):
        model.compile(g_optimizer=shared, d_optimizer=shared)
    built = keras.optimizers.Adam()
    built.build([keras.Variable(1.0)])
    with pytest.raises(ValueError, match="already built"):
        tiny_dcgan().compile(g_optimizer=built)
    with pytest.raises(ValueError, match="Could not interpret"):
        tiny_dcgan().compile(g_optimizer="no-such-optimizer")


def test_compile_takes_one_name_or_config_for_both_optimizers():
    # A name or a config makes a fresh optimizer per network; only one
    # instance given twice is shared.
    model = tiny_dcgan()
    model.compile(g_optimizer="adam", d_optimizer="adam")
    assert isinstance(model.g_optimizer, keras.optimizers.Adam)
    assert model.g_optimizer is not model.d_optimizer
    config = keras.optimizers.serialize(keras.optimizers.Adam(1e-3))
    model = tiny_dcgan()
    model.compile(g_optimizer=config, d_optimizer=config)
    assert model.g_optimizer is not model.d_optimizer
    assert float(model.d_optimizer.learning_rate) == pytest.approx(1e-3)
    model.fit(np.zeros((8, 16, 16, 1), "float32"), batch_size=4, verbose=0)


def test_constructor_rejects_non_models():
    with pytest.raises(TypeError, match="generator"):
        DCGAN(generator="g", discriminator=tiny_dcgan().discriminator)


def test_fit_before_compile_is_an_error():
    model = tiny_dcgan()
    with pytest.raises(RuntimeError, match="compile"):
        model.fit(np.zeros((8, 16, 16, 1), "float32"), batch_size=4, verbose=0)


def test_config_round_trip():
    model = tiny_dcgan()
    clone = DCGAN.from_config(model.get_config())
    assert clone.image_shape == model.image_shape == (16, 16, 1)
    assert clone.latent_dim == 8 and clone.seed == 0
    assert clone.generator.count_params() == model.generator.count_params()


# ---------------------------------------------------------------- inputs
@pytest.mark.parametrize(
    "images, match",
    [
        (np.zeros((8, 16, 16), "float32"), "rank 4.*channel axis"),
        (np.zeros((8, 32, 32, 1), "float32"), r"built for images of shape \(16, 16, 1\)"),
        (np.zeros((8, 16, 16, 3), "float32"), "built for images of shape"),
        (np.zeros((8, 16, 16, 1), "uint8"), "floating point.*uint8"),
        (np.full((8, 16, 16, 1), 255.0, "float32"), r"scaled to \[-1, 1\].*127.5"),
        (np.full((8, 16, 16, 1), np.nan, "float32"), "NaN"),
    ],
)
def test_bad_batches_get_clear_errors(images, match):
    model = tiny_dcgan()
    model.compile()
    dataset = tf.data.Dataset.from_tensor_slices(images).batch(4)
    with pytest.raises(InputValidationError, match=match):
        model.fit(dataset, epochs=1, verbose=0)


@pytest.mark.parametrize("image_shape", [(16, 16, 1), (16, 16, 3)])
@pytest.mark.parametrize("with_labels", [False, True])
def test_an_unbatched_dataset_is_told_to_batch(image_shape, with_labels):
    # It was told "Add a channel axis", which does not fix it.
    model = DCGAN.from_image_shape(image_shape, latent_dim=8, filters=4, seed=0)
    model.compile()
    images = np.zeros((8,) + image_shape, "float32")
    unbatched = tf.data.Dataset.from_tensor_slices((images, np.zeros(8)) if with_labels else images)
    with pytest.raises(InputValidationError, match=r"one image, not a batch.*dataset\.batch\(64\)") as info:
        model.fit(unbatched, verbose=0)
    assert "channel axis" not in str(info.value)
    # The batched dataset trains.
    assert np.isfinite(model.fit(unbatched.batch(4), verbose=0).history["d_loss"]).all()


def test_an_unbatched_dataset_without_channel_axis_is_told_both():
    model = tiny_dcgan()
    model.compile()
    unbatched = tf.data.Dataset.from_tensor_slices(np.zeros((8, 16, 16), "float32"))
    with pytest.raises(InputValidationError, match=r"x\[\.\.\., None\]\)\.batch\(64\)"):
        model.fit(unbatched, verbose=0)


def test_an_unbatched_dataset_of_points_is_told_to_batch():
    generator = kgan.networks.mlp_generator(latent_dim=2, data_dim=2, units=8, layers=1)
    discriminator = kgan.networks.mlp_discriminator(data_dim=2, units=8, layers=1)
    model = DCGAN(generator, discriminator, seed=0)
    model.compile()
    points = tf.data.Dataset.from_tensor_slices(np.zeros((8, 2), "float32"))
    with pytest.raises(InputValidationError, match=r"got \(2,\)\. That is one example, not a batch"):
        model.fit(points, verbose=0)


def test_empty_dataset_and_dict_batches_are_rejected():
    model = tiny_dcgan()
    model.compile()
    empty = tf.data.Dataset.from_tensor_slices(np.zeros((3, 16, 16, 1), "float32")).batch(4, drop_remainder=True)
    with pytest.raises(InputValidationError, match="empty.*batch size"):
        model.fit(empty, verbose=0)
    dicts = tf.data.Dataset.from_tensor_slices({"image": np.zeros((4, 16, 16, 1), "float32")}).batch(4)
    with pytest.raises(InputValidationError, match="dict"):
        model.fit(dicts, verbose=0)


def test_x_y_batches_are_accepted():
    model = tiny_dcgan()
    model.compile()
    images = np.zeros((8, 16, 16, 1), "float32")
    labels = np.arange(8)
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)
    history = model.fit(dataset, epochs=1, verbose=0)
    assert np.isfinite(history.history["d_loss"]).all()


@pytest.mark.parametrize("kind", ["generator", "pydataset"])
def test_generators_and_pydatasets_are_checked_and_train_every_batch(kind):
    # They skipped the first-batch checks: [0, 255] floats trained silently.
    rng = np.random.default_rng(0)
    good = [(rng.uniform(-1, 1, (4, 16, 16, 1)).astype("float32"),) for _ in range(3)]
    bad = [(np.full((4, 16, 16, 1), 255.0, "float32"),)] + good[1:]

    def source(batches):
        return (b for b in batches) if kind == "generator" else BatchSequence(batches)

    model = tiny_dcgan()
    model.compile()
    with pytest.raises(InputValidationError, match=r"scaled to \[-1, 1\]"):
        model.fit(source(bad), verbose=0)
    assert int(model.d_optimizer.iterations) == 0
    model.fit(source(good), verbose=0)
    assert int(model.d_optimizer.iterations) == 3  # the batch read for the check is trained too


# ---------------------------------------------------------------- sampling
@pytest.mark.parametrize("images", [np.zeros((5, 16, 16, 1), "float32"),
                                    np.zeros((5, 16, 16), "float32"),
                                    np.zeros((5, 3), "float32")])
def test_predict_and_call_say_they_take_latents(images):
    # They failed inside Keras: "as_list() is not defined on an unknown TensorShape".
    model = tiny_dcgan()
    model.compile()
    model.predict(model.latents(4, seed=0), verbose=0)  # traced once for latents
    message = r"take latent vectors of shape \[N, 8\].*model\.latents\(n, seed\).*generate\("
    with pytest.raises(InputValidationError, match=message):
        model.predict(images, verbose=0)
    with pytest.raises(InputValidationError, match=message):
        model(images)
    with pytest.raises(InputValidationError, match=message):
        model.predict_on_batch(images)


def test_test_on_batch_is_refused_like_evaluate():
    model = tiny_dcgan()
    model.compile()
    with pytest.raises(NotImplementedError, match=r"test_on_batch\(\) is not a GAN's measure.*kgan\.evaluation"):
        model.test_on_batch(np.zeros((4, 16, 16, 1), "float32"))


def test_generate_is_deterministic_per_seed():
    model = tiny_dcgan()
    a, b, c = model.generate(4, seed=7), model.generate(4, seed=7), model.generate(4, seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert a.shape == (4, 16, 16, 1) and a.dtype == np.float32
    assert -1.0 <= a.min() and a.max() <= 1.0
    unseeded = model.generate(2), model.generate(2)
    assert not np.allclose(*unseeded)
    u8 = model.generate_uint8(4, seed=7)
    assert u8.dtype == np.uint8
    np.testing.assert_array_equal(u8, kgan.images.to_uint8(a))


def test_call_runs_the_generator():
    model = tiny_dcgan()
    z = model.latents(3, seed=1)
    np.testing.assert_allclose(model(z).numpy(), model.generate_from_latents(z), atol=1e-6)
    np.testing.assert_allclose(model.predict(z, verbose=0), model.generate_from_latents(z), atol=1e-6)


@pytest.mark.parametrize("num", [0, -1, 2.5, True])
def test_generate_rejects_bad_counts(num):
    with pytest.raises((ValueError, TypeError), match="num"):
        tiny_dcgan().generate(num)


@pytest.mark.parametrize("call", ["generate", "generate_uint8"])
def test_generate_refuses_more_images_than_memory_holds(call):
    # generate(10**12) drew all latents at once and died in a TensorFlow OOM.
    model = tiny_dcgan()
    with pytest.raises(ValueError, match=rf"{call}\(1,000,000,000,000\) would need 1\.06 PB of memory") as info:
        getattr(model, call)(10**12, seed=0)
    assert "16x16x1 images" in str(info.value) and "model.generate_batches(" in str(info.value)
    with pytest.raises(ValueError, match=r"latents\(1,000,000,000,000\) would need 32 TB.*latent_batches"):
        model.latents(10**12)


def test_generate_compares_the_request_with_the_machines_memory(monkeypatch):
    from kgan import _checks

    model = tiny_dcgan()
    per_image = 4 * (16 * 16 * 1 + 8)  # a float32 image and its latent
    monkeypatch.setattr(_checks, "available_memory", lambda: 100 * per_image)
    assert model.generate(100, seed=0).shape == (100, 16, 16, 1)
    with pytest.raises(ValueError, match=r"generate\(101\) would need 107 KB .*the 106 KB this "
                       r"process can use now"):
        model.generate(101, seed=0)
    # Batches hold one batch at a time: any number streams.
    assert sum(len(b) for b in model.generate_batches(101, seed=0, batch_size=50)) == 101
    monkeypatch.setattr(_checks, "available_memory", lambda: None)  # an OS that does not say
    assert model.generate(101, seed=0).shape == (101, 16, 16, 1)


def test_available_memory_is_the_least_of_what_the_os_and_a_container_allow(monkeypatch, tmp_path):
    # The physical memory is the host's inside a container, and counts memory
    # other processes hold: a request under it could still be killed or swap.
    import builtins

    from kgan import _checks

    files = {"/proc/meminfo": "MemTotal: 24000000 kB\nMemAvailable:    3000000 kB\n",
             "/sys/fs/cgroup/memory/memory.limit_in_bytes": "2000000000\n"}
    real_open = builtins.open

    def fake_open(path, *args, **kwargs):
        if str(path) in files:
            (tmp_path / "f").write_text(files[str(path)])
            return real_open(tmp_path / "f", *args, **kwargs)
        if str(path).startswith(("/proc/", "/sys/")):
            raise FileNotFoundError(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(_checks, "physical_memory", lambda: 24 * 10**9)
    assert _checks.available_memory() == 2 * 10**9  # the container's limit
    files["/sys/fs/cgroup/memory/memory.limit_in_bytes"] = "9223372036854771712\n"  # no limit
    assert _checks.available_memory() == 3000000 * 1024  # what the OS has left
    files.clear()
    assert _checks.available_memory() == 24 * 10**9
    monkeypatch.setattr(_checks, "physical_memory", lambda: None)
    assert _checks.available_memory() is None


def test_generate_from_latents_checks_shape():
    with pytest.raises(ValueError, match=r"\[N, 8\]"):
        tiny_dcgan().generate_from_latents(np.zeros((2, 5)))


def test_slerp_and_interpolate():
    rng = np.random.default_rng(0)
    z0, z1 = rng.standard_normal(8), rng.standard_normal(8)
    path = slerp(z0, z1, 5)
    assert path.shape == (5, 8)
    np.testing.assert_allclose(path[0], z0, atol=1e-6)
    np.testing.assert_allclose(path[-1], z1, atol=1e-6)
    model = tiny_dcgan()
    images = model.interpolate(z0, z1, 5)
    np.testing.assert_allclose(images[0], model.generate_from_latents(z0[None].astype("float32"))[0], atol=1e-6)
    with pytest.raises(ValueError, match="at least 2"):
        slerp(z0, z1, 1)


def test_slerp_refuses_opposite_ends_and_stays_accurate_next_to_them():
    z = np.array([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="opposite directions"):
        slerp(z, -z, 5)
    with pytest.raises(ValueError, match="opposite directions"):
        slerp(z, -2.5 * z, 5)  # opposite, whatever the norms
    with pytest.raises(ValueError, match="finite"):
        slerp(z, [np.nan, 0.0, 1.0], 5)
    with pytest.raises(ValueError, match="fit in float32"):
        slerp([1e39, 0.0], [0.0, 1.0], 3)  # was rows of inf with only a numpy warning
    # 3e-6 rad short of opposite, acos of the dot product kept only half the
    # digits: the path left the unit sphere by 5e-6. The chord form keeps
    # float32's precision (3e-8) there.
    short = 3e-6
    u0 = np.array([1.0, 0.0, 0.0])
    u1 = np.array([np.cos(np.pi - short), np.sin(np.pi - short), 0.0])
    path = slerp(u0, u1, 9).astype(np.float64)
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), 1.0, atol=1e-6)
    angles = np.arctan2(path[:, 1], path[:, 0])
    np.testing.assert_allclose(angles, np.linspace(0.0, np.pi - short, 9), atol=1e-6)


def test_slerp_from_the_origin_is_the_straight_line():
    z = np.array([3.0, 4.0])
    np.testing.assert_allclose(slerp(np.zeros(2), z, 3), [[0, 0], [1.5, 2.0], [3, 4]], atol=1e-6)


# ---------------------------------------------------------------- distribution
def test_replicas_draw_different_latents(two_cpu_strategy):
    with two_cpu_strategy.scope():
        model = tiny_dcgan()

    @tf.function
    def draw():
        return two_cpu_strategy.run(lambda: model.sample_latents(4))

    first, second = two_cpu_strategy.experimental_local_results(draw())
    assert not np.allclose(first.numpy(), second.numpy())


def test_losses_average_over_the_global_batch(two_cpu_strategy):
    """One step on 2 replicas equals one step on 1 device for the same global batch.

    The linear generator's output does not depend on z, so both runs see the
    same fakes; without dividing by the replica count the two-replica update
    would be twice as large. Tolerance 1e-6 (float32 summation order).
    """
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (8, 4, 4, 1)).astype("float32")

    def one_step(strategy):
        with strategy.scope():
            model = linear_gan()
            # Kernel 0.05: with linear_gan's ones D(G(z)) = 16 saturates G's
            # loss and G's bias moved by 2e-7, under any replica scaling.
            model.discriminator.layers[-1].kernel.assign(np.full((16, 1), 0.05, "float32"))
            model.compile(g_optimizer=keras.optimizers.SGD(1.0), d_optimizer=keras.optimizers.SGD(0.1))
        data = tf.data.Dataset.from_tensor_slices(images).batch(8)
        model.fit(data, epochs=1, verbose=0)
        return [v.numpy() for v in model.discriminator.weights], model.generator.weights[1].numpy()

    d_single, g_bias_single = one_step(tf.distribute.get_strategy())
    d_mirrored, g_bias_mirrored = one_step(two_cpu_strategy)
    for a, b in zip(d_single, d_mirrored):
        np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_allclose(g_bias_single, g_bias_mirrored, atol=1e-6)
    # The step did move the weights (the comparison is not vacuous).
    assert np.abs(d_single[0] - 0.05).max() > 5e-3
    assert np.abs(g_bias_single - 1.0).max() > 5e-3


def test_a_dcgan_step_makes_the_alternating_non_saturating_updates():
    """One step, computed by hand: G(z) = b and D(x) = w . x + c under SGD.

    D descends the mean of softplus(-D(x)) + softplus(D(b)); then G, against
    the D from after that update, descends softplus(-D(b)). Swapping real and
    fake in the discriminator loss, the minimax generator loss, or updating G
    against the old D left every other test of the step passing.
    """
    rng = np.random.default_rng(5)
    lr, side = 0.5, 4
    z = keras.Input((3,))
    g_dense = keras.layers.Dense(side * side, kernel_initializer="zeros")
    g = keras.Model(z, keras.layers.Reshape((side, side, 1))(g_dense(z)))
    images = keras.Input((side, side, 1))
    d_dense = keras.layers.Dense(1)
    d = keras.Model(images, d_dense(keras.layers.Flatten()(images)))
    w, c, b = rng.normal(0, 0.3, side * side), 0.2, rng.uniform(-1, 1, side * side)
    d_dense.kernel.assign(w[:, None].astype("float32"))
    d_dense.bias.assign(np.float32([c]))
    g_dense.bias.assign(b.astype("float32"))
    model = DCGAN(g, d, seed=0)
    model.compile(g_optimizer=keras.optimizers.SGD(lr), d_optimizer=keras.optimizers.SGD(lr))
    real = rng.uniform(-1, 1, (8, side, side, 1)).astype("float32")
    history = model.fit(tf.data.Dataset.from_tensor_slices(real).batch(8), epochs=1,
                        verbose=0).history

    def sigmoid(t):
        return 1.0 / (1.0 + np.exp(-t))

    def softplus(t):
        return np.log1p(np.exp(t))

    x = real.reshape(8, -1).astype("float64")
    real_logits, fake_logit = x @ w + c, b @ w + c
    d_loss = np.mean(softplus(-real_logits)) + softplus(fake_logit)
    # d/dl softplus(-l) = -sigmoid(-l); d/dl softplus(l) = sigmoid(l)
    grad_w = -(sigmoid(-real_logits)[:, None] * x).mean(axis=0) + sigmoid(fake_logit) * b
    grad_c = -sigmoid(-real_logits).mean() + sigmoid(fake_logit)
    w1, c1 = w - lr * grad_w, c - lr * grad_c
    fake_logit = b @ w1 + c1  # the generator follows the updated discriminator
    g_loss = softplus(-fake_logit)
    b1 = b + lr * sigmoid(-fake_logit) * w1

    np.testing.assert_allclose(d_dense.kernel.numpy().ravel(), w1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(d_dense.bias.numpy(), [c1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g_dense.bias.numpy(), b1, rtol=1e-5, atol=1e-6)
    assert set(history) == {"d_loss", "g_loss"}
    np.testing.assert_allclose(history["d_loss"], [d_loss], rtol=1e-5)
    np.testing.assert_allclose(history["g_loss"], [g_loss], rtol=1e-5)
    assert np.abs(w1 - w).max() > 0.05  # D moved enough for G's target to matter


def test_a_dcgan_step_draws_latents_for_each_update():
    """The class docstring: 'Each update draws its own latents'. The step
    tests use G(z) = b; reusing the discriminator update's latents for the
    generator's passed them all."""
    model = tiny_dcgan()
    latents = record_inputs(model.generator)
    model.compile(run_eagerly=True)
    model.fit(np.zeros((4, 16, 16, 1), "float32"), batch_size=4, epochs=1, verbose=0)
    assert len(latents) == 2 and latents[0].shape == latents[1].shape == (4, 8)
    assert not np.allclose(latents[0], latents[1])


def test_base_class_requires_train_step():
    model = GAN(tiny_dcgan().generator, tiny_dcgan().discriminator)
    model.compile()
    with pytest.raises(NotImplementedError, match="train_step"):
        model.train_step(tf.zeros((2, 16, 16, 1)))


class _Reporting(DCGAN):
    """A DCGAN whose step reports the losses given to the class."""

    reported = {}

    def train_step(self, data):
        return self.report_losses(**self.reported)


@pytest.mark.parametrize("reported, message", [
    ({"d_loss": 1.0, "g_loss": 1.0, "extra": 1.0}, r"got 'extra', not in the class's loss_names"),
    ({"d_loss": 1.0}, r"got no 'g_loss', named in the class's loss_names"),
])
def test_report_losses_takes_exactly_the_loss_names(reported, message):
    # An unknown name failed with a bare KeyError('extra'); a missing one logged 0.
    model = _Reporting.from_image_shape((16, 16, 1), latent_dim=8, filters=4, seed=0)
    model.reported = reported
    model.compile()
    with pytest.raises(ValueError, match=message + r" \('d_loss', 'g_loss'\)\. Report each"):
        model.fit(np.zeros((8, 16, 16, 1), "float32"), batch_size=8, verbose=0)


def test_report_losses_logs_them_as_running_means():
    model = _Reporting.from_image_shape((16, 16, 1), latent_dim=8, filters=4, seed=0)
    model.reported = {"g_loss": 2.0, "d_loss": 1.0}
    model.compile()
    history = model.fit(np.zeros((16, 16, 16, 1), "float32"), batch_size=8, verbose=0)
    assert history.history == {"d_loss": [1.0], "g_loss": [2.0]}


# ---------------------------------------------------------------- EMA
def test_ema_generator_tracks_the_generator():
    model = tiny_dcgan(ema_decay=0.9)
    model.compile()
    initial = [w.numpy().copy() for w in model.ema_generator.trainable_weights]
    np.testing.assert_array_equal(initial[0], model.generator.trainable_weights[0].numpy())
    data = tf.data.Dataset.from_tensor_slices(np.random.default_rng(0).uniform(-1, 1, (32, 16, 16, 1)).astype("float32")).batch(8)
    model.fit(data, epochs=2, verbose=0)
    ema, live = model.ema_generator.trainable_weights[0].numpy(), model.generator.trainable_weights[0].numpy()
    assert not np.array_equal(ema, initial[0]), "EMA did not move"
    assert not np.array_equal(ema, live), "EMA equals the live weights"
    # Sampling uses the EMA network.
    z = model.latents(2, seed=0)
    np.testing.assert_allclose(model.generate_from_latents(z), model.ema_generator(z, training=False).numpy(), atol=1e-6)
    # Batch-norm statistics are copied, not averaged.
    bn_ema = [w for w in model.ema_generator.non_trainable_weights]
    bn_live = [w for w in model.generator.non_trainable_weights]
    for a, b in zip(bn_ema, bn_live):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("ema_decay", [0.99, 0.1])
def test_ema_decay_formula_with_warm_up(ema_decay):
    """Each step with decay d: ema = d' * ema + (1 - d') * w, d' = min(d, (1 + n) / (10 + n))
    with n the updates made (`GAN.update_ema`). 0.99 is in its warm-up for
    both steps (2/11, 3/12), 0.1 is capped by its decay from the first.

    D's kernel is 0.05, not linear_gan's ones, and G steps at 1.0: D(G(z)) = 16 saturated the
    generator's loss, G's bias moved by 2e-7, and an EMA that never moved
    (or skipped the warm-up, or the cap) matched the formula."""
    model = linear_gan()
    model.discriminator.layers[-1].kernel.assign(np.full((16, 1), 0.05, "float32"))
    model = DCGAN(model.generator, model.discriminator, seed=0, ema_decay=ema_decay)
    model.compile(g_optimizer=keras.optimizers.SGD(1.0), d_optimizer=keras.optimizers.SGD(0.01))
    expected = model.generator.weights[1].numpy().copy()
    live = []
    record = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: live.append(model.generator.weights[1].numpy().copy()))
    images = np.random.default_rng(0).uniform(-1, 1, (8, 4, 4, 1)).astype("float32")
    model.fit(tf.data.Dataset.from_tensor_slices(images).batch(4), verbose=0, callbacks=[record])
    assert len(live) == 2
    # The generator moves, so the average differs from either end.
    assert np.abs(live[0] - expected).min() > 1e-3 and np.abs(live[1] - live[0]).min() > 1e-3
    for n, weights in enumerate(live, start=1):
        decay = min(ema_decay, (1.0 + n) / (10.0 + n))
        expected = decay * expected + (1 - decay) * weights
    np.testing.assert_allclose(model.ema_generator.weights[1].numpy(), expected, rtol=1e-6)


def test_a_frozen_generator_leaves_its_average_alone():
    # Fine-tuning only the discriminator of a model with an EMA generator (which
    # sampling uses): with the generator frozen no generator step is made, and the
    # average must stay; copying the live weights would have replaced it.
    model = tiny_dcgan(ema_decay=0.9)
    model.compile()
    data = tf.data.Dataset.from_tensor_slices(
        np.random.default_rng(0).uniform(-1, 1, (16, 16, 16, 1)).astype("float32")).batch(8)
    model.fit(data, epochs=1, verbose=0)  # the average now differs from the generator
    average = [w.numpy().copy() for w in model.ema_generator.weights]
    model.generator.trainable = False
    model.compile()
    model.fit(data, epochs=1, verbose=0)
    for saved, weight in zip(average, model.ema_generator.weights):
        np.testing.assert_array_equal(weight.numpy(), saved)


def test_ema_is_saved_and_restored(tmp_path):
    model = tiny_dcgan(ema_decay=0.5)
    model.compile()
    model.fit(np.random.default_rng(0).uniform(-1, 1, (16, 16, 16, 1)).astype("float32"), batch_size=8, verbose=0)
    model.save(tmp_path / "m.keras")
    restored = keras.models.load_model(tmp_path / "m.keras")
    assert restored.ema_decay == 0.5
    for a, b in zip(model.ema_generator.weights, restored.ema_generator.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    folder = kgan.zoo.save_preset(model, tmp_path / "p", {
        "name": "p", "description": "d", "dataset": "x", "recipe": "r", "license": "l", "metrics": {}})
    loaded = kgan.zoo.load(folder)
    np.testing.assert_allclose(loaded.generate(3, seed=1), model.generate(3, seed=1), atol=1e-6)


def test_ema_under_mirrored_strategy(two_cpu_strategy):
    """The cross-replica EMA update follows the formula of `update_ema` on every
    replica (it only checked that the average moved)."""
    with two_cpu_strategy.scope():
        model = tiny_dcgan(ema_decay=0.9)
        model.compile(steps_per_execution=1)
    expected = [w.numpy().copy() for w in model.ema_generator.trainable_weights]
    live = []
    record = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: live.append(
        [w.numpy().copy() for w in model.generator.trainable_weights]))
    data = tf.data.Dataset.from_tensor_slices(np.random.default_rng(0).uniform(-1, 1, (16, 16, 16, 1)).astype("float32")).batch(8)
    model.fit(data, epochs=1, verbose=0, callbacks=[record])
    assert len(live) == 2
    for n, weights in enumerate(live, start=1):
        decay = min(0.9, (1.0 + n) / (10.0 + n))
        expected = [decay * e + (1 - decay) * w for e, w in zip(expected, weights)]
    for average, variable in zip(expected, model.ema_generator.trainable_weights):
        copies = [np.asarray(c) for c in variable.value.values]
        assert len(copies) == 2
        for copy in copies:
            np.testing.assert_allclose(copy, average, rtol=1e-5, atol=1e-7)


def test_bad_ema_decay():
    with pytest.raises(ValueError, match="ema_decay"):
        tiny_dcgan(ema_decay=1.5)


def test_recalibrating_ema_statistics_moves_only_batch_norm_statistics():
    model = tiny_dcgan(ema_decay=0.9)
    generator = model.ema_generator
    trainable = [np.array(v.numpy()) for v in generator.trainable_variables]
    statistics = [np.array(v.numpy()) for v in generator.non_trainable_variables]
    live = [np.array(v.numpy()) for v in model.generator.variables]
    model.recalibrate_ema_statistics(num_batches=5, batch_size=16)
    for before, variable in zip(trainable, generator.trainable_variables):
        np.testing.assert_array_equal(before, variable.numpy())
    assert any(
        not np.allclose(before, variable.numpy())
        for before, variable in zip(statistics, generator.non_trainable_variables)
    )
    # The live generator is untouched, and a model without EMA is a no-op.
    for before, variable in zip(live, model.generator.variables, strict=True):
        np.testing.assert_array_equal(before, variable.numpy())
    # The statistics are the EMA generator's own on N(0, I) latents: its first
    # batch norm's moving mean and variance after 200 batches (momentum 0.9
    # leaves 0.9**200 of the earlier ones; the initial variance 1 is ~300
    # times its inputs') are those of its inputs on fresh latents. (Only
    # "they moved" was checked: recalibrating on U(-1, 1) latents, a third
    # of the variance, passed.)
    model.recalibrate_ema_statistics(num_batches=200, batch_size=64)
    norm = next(layer for layer in generator._flatten_layers()
                if isinstance(layer, keras.layers.BatchNormalization))
    assert norm.momentum ** 200 < 1e-6
    z = np.random.default_rng(123).standard_normal((4096, model.latent_dim)).astype("float32")
    activations = keras.Model(generator.inputs, norm.input)([z], training=True).numpy()
    axes = tuple(range(activations.ndim - 1))
    np.testing.assert_allclose(norm.moving_variance.numpy(), activations.var(axis=axes), rtol=0.1)
    np.testing.assert_allclose(norm.moving_mean.numpy(), activations.mean(axis=axes),
                               atol=0.1 * activations.std(axis=axes).min())
    plain = tiny_dcgan()
    plain_before = [np.array(v.numpy()) for v in plain.variables]
    plain.recalibrate_ema_statistics(num_batches=1)
    for before, variable in zip(plain_before, plain.variables, strict=True):
        np.testing.assert_array_equal(before, variable.numpy())
    with pytest.raises(ValueError, match="num_batches"):
        model.recalibrate_ema_statistics(num_batches=0)


def test_compile_refuses_several_steps_per_execution_on_several_mirrored_replicas(two_cpu_strategy):
    with two_cpu_strategy.scope():
        model = DCGAN.from_image_shape((16, 16, 1), latent_dim=4, filters=4)
        with pytest.raises(ValueError, match=r"steps_per_execution=10 cannot run under a "
                           r"MirroredStrategy of 2 replicas.*keras-team/keras#19246.*"
                           r"steps_per_execution=1"):
            model.compile(steps_per_execution=10)
        model.compile(steps_per_execution=1)
    DCGAN.from_image_shape((16, 16, 1), latent_dim=4, filters=4).compile(steps_per_execution=10)


def test_compile_refuses_xla_on_several_mirrored_cpu_devices(two_cpu_strategy):
    # TensorFlow failed in the first step: "Trying to access resource ...
    # located in device CPU:1 from device CPU:0", a traceback from kgan train.
    with two_cpu_strategy.scope():
        model = DCGAN.from_image_shape((16, 16, 1), latent_dim=4, filters=4)
        with pytest.raises(ValueError, match=r"jit_compile=True cannot run under a "
                           r"MirroredStrategy of 2 CPU devices.*jit_compile=False"):
            model.compile(jit_compile=True)
        model.compile(jit_compile=False)


def test_a_model_saved_with_settings_a_strategy_cannot_run_loads_under_it(two_cpu_strategy, tmp_path):
    # Loading raised compile's refusal, which the user could not change; with
    # compile=False the optimizer state was lost.
    model = DCGAN.from_image_shape((16, 16, 1), latent_dim=4, filters=4, seed=0)
    model.compile(steps_per_execution=10, jit_compile=True)
    images = np.random.default_rng(0).uniform(-1, 1, (8, 16, 16, 1)).astype("float32")
    model.fit(tf.data.Dataset.from_tensor_slices(images).batch(4), epochs=1, verbose=0)
    model.save(tmp_path / "spe10.keras")
    with two_cpu_strategy.scope():
        with pytest.warns(UserWarning, match=r"saved with steps_per_execution=10.*Loaded with "
                          r"steps_per_execution=1 \(optimizer state kept\)") as caught:
            loaded = keras.saving.load_model(tmp_path / "spe10.keras")
    assert any("jit_compile=True" in str(w.message) for w in caught)
    assert loaded.steps_per_execution == 1 and loaded.jit_compile is False
    assert int(loaded.g_optimizer.iterations.numpy()) == 2


#: Plain Keras, no kgan: a Sequential model fit with steps_per_execution=2
#: under a two-replica MirroredStrategy. In its own process, since the failure
#: happens inside a collective step.
_KERAS_MULTI_STEP_UNDER_MIRRORED = TWO_CPU_DEVICES_PRELUDE + """
import numpy as np
import keras
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
data = tf.data.Dataset.from_tensor_slices((np.ones((64, 4), "float32"), np.ones((64, 1), "float32")))
with strategy.scope():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse", steps_per_execution=2)
try:
    model.fit(data.batch(8), epochs=1, verbose=0)
except tf.errors.InvalidArgumentError as err:
    print("fails:", "You must feed a value for placeholder tensor" in str(err))
else:
    print("runs")
"""


def test_keras_still_cannot_run_several_steps_under_mirrored_strategy():
    """The reason for GAN.compile's refusal above. When this fails because
    Keras runs it, remove `kgan.models.gan._check_steps_per_execution` and
    `performance.resolve`'s 1 step per execution when `mirrored`."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run([sys.executable, "-c", _KERAS_MULTI_STEP_UNDER_MIRRORED],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "fails: True", result.stdout


_KERAS_XLA_UNDER_MIRRORED_CPUS = _KERAS_MULTI_STEP_UNDER_MIRRORED.replace(
    'model.compile("sgd", "mse", steps_per_execution=2)', 'model.compile("sgd", "mse", jit_compile=True)'
).replace('"You must feed a value for placeholder tensor"', '"Trying to access resource"')


def test_tensorflow_still_cannot_run_xla_under_mirrored_cpu_devices():
    """The reason for GAN.compile's XLA refusal. When this fails because
    TensorFlow runs it, remove `kgan.models.gan._check_jit_compile`."""
    import os
    import subprocess
    import sys

    assert "jit_compile=True" in _KERAS_XLA_UNDER_MIRRORED_CPUS
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run([sys.executable, "-c", _KERAS_XLA_UNDER_MIRRORED_CPUS],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "fails: True", result.stdout


@pytest.mark.parametrize("overflowing_replica", [0, 1])
def test_a_loss_scale_overflow_on_any_replica_skips_the_step_on_all(overflowing_replica,
                                                                   two_cpu_strategy):
    # Keras's LossScaleOptimizer looked at the first replica's gradients only:
    # an overflow on the second was applied, and left inf/NaN weights.
    keras.mixed_precision.set_global_policy("mixed_float16")
    with two_cpu_strategy.scope():
        gan = kgan.zoo.build("dcgan", image_shape=(16, 16, 1), latent_dim=8, filters=4, seed=0)
        gan.compile()
    optimizer, variable = gan.d_optimizer, gan.discriminator.trainable_variables[0]
    before, scale = variable.numpy(), float(optimizer.dynamic_scale.numpy())

    @tf.function
    def step():
        def on_replica():
            replica = tf.distribute.get_replica_context().replica_id_in_sync_group
            factor = tf.where(tf.equal(replica, overflowing_replica), 1e36, 1.0)
            with tf.GradientTape() as tape:
                per_example = tf.fill([4], factor * tf.reduce_sum(tf.cast(variable, tf.float32)))
                scaled = GAN.scaled_loss(optimizer, per_example)
            GAN.apply_gradients(optimizer, tape, scaled, [variable])

        two_cpu_strategy.run(on_replica)

    step()
    np.testing.assert_array_equal(variable.numpy(), before)  # skipped: finite and unchanged
    assert int(optimizer.iterations.numpy()) == 0
    assert float(optimizer.dynamic_scale.numpy()) == scale / 2


@pytest.mark.parametrize("kwargs", [dict(validation_split=0.2),
                                    dict(validation_data=np.zeros((4, 16, 16, 1), "float32"))])
def test_fit_refuses_validation_before_training(kwargs):
    # Keras's default test_step fed the images to the generator, after an epoch had trained.
    model = tiny_dcgan()
    model.compile()
    with pytest.raises(ValueError, match="takes no validation_.*kgan.callbacks.QualityMetrics"):
        model.fit(np.zeros((8, 16, 16, 1), "float32"), batch_size=4, epochs=1, verbose=0, **kwargs)
    assert int(model.g_optimizer.iterations.numpy()) == 0
    with pytest.raises(NotImplementedError, match="kgan.evaluation.evaluate"):
        model.evaluate(np.zeros((8, 16, 16, 1), "float32"))


def test_fit_reports_run_time_batch_checks_and_passes_other_errors_on(monkeypatch):
    """`checked_at_run_time` failures become InputValidationError with their
    own message; any other graph error reaches the caller unchanged."""
    model = tiny_dcgan()
    model.compile()
    images = np.zeros((8, 16, 16, 1), "float32")

    def failing_fit(message):
        def fit(self, *args, **kwargs):
            raise tf.errors.InvalidArgumentError(None, None, message)
        return fit

    marked = ("Graph execution error:\n  assertion failed: [kgan input check: Do this] "
              "[Condition x > 0 did not hold element-wise:]")
    monkeypatch.setattr(keras.Model, "fit", failing_fit(marked))
    with pytest.raises(InputValidationError, match=r"^Do this\.$"):
        model.fit(images, batch_size=4, epochs=1, verbose=0)
    monkeypatch.setattr(keras.Model, "fit", failing_fit("input depth must be evenly divisible"))
    with pytest.raises(tf.errors.InvalidArgumentError, match="input depth"):
        model.fit(images, batch_size=4, epochs=1, verbose=0)


def test_auto_scale_loss_false_keeps_the_optimizers_unwrapped():
    keras.mixed_precision.set_global_policy("mixed_float16")
    model = tiny_dcgan()
    model.compile(auto_scale_loss=False)
    assert not isinstance(model.g_optimizer, keras.optimizers.LossScaleOptimizer)
    model = tiny_dcgan()
    model.compile()
    assert isinstance(model.g_optimizer, keras.optimizers.LossScaleOptimizer)
