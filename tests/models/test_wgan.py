"""WGAN and WGAN-GP: the papers' algorithm, penalty, schedule and batch split.

The shared contract (saving, export, strategies, precision, resuming) runs
over both in test_architectures.py; this file checks what is specific to them.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import kgan
from kgan import losses
from kgan.models import DCGAN, WGAN, WGANGP, GAN, InputValidationError
from kgan.networks import mlp_discriminator, mlp_generator
from kgan_test_utils import record_inputs

WASSERSTEIN = [WGAN, WGANGP]


def linear_critic(data_shape, kernel):
    """f(x) = w . flatten(x), no bias."""
    inputs = keras.Input(data_shape)
    dense = keras.layers.Dense(1, use_bias=False)
    critic = keras.Model(inputs, dense(keras.layers.Flatten()(inputs)))
    dense.kernel.assign(np.reshape(kernel, (-1, 1)).astype("float32"))
    return critic


def constant_generator(data_shape, value, latent_dim=3):
    """G(z) = b: the fakes do not depend on the latents, so two runs that draw
    different latents still see the same fakes. (The Dense layer sees zeros,
    so its kernel gets zero gradients and only the bias `b` trains.)"""
    z = keras.Input((latent_dim,))
    zeros = keras.layers.Lambda(lambda z: keras.ops.zeros_like(z[:, :1]))(z)
    x = keras.layers.Dense(
        int(np.prod(data_shape)), kernel_initializer="zeros",
        bias_initializer=keras.initializers.Constant(value),
    )(zeros)
    return keras.Model(z, keras.layers.Reshape(data_shape)(x))


def points(num, seed=0):
    """2-D data: a ring of 8 Gaussians, the WGAN-GP paper's first toy set."""
    rng = np.random.default_rng(seed)
    angles = rng.integers(0, 8, num) * np.pi / 4
    centers = np.stack([np.cos(angles), np.sin(angles)], axis=1) * 2.0
    return (centers + 0.02 * rng.standard_normal((num, 2))).astype("float32")


def tiny_mlp_gan(cls, n_critic=5, normalization=None, **kwargs):
    generator = mlp_generator(latent_dim=2, data_dim=2, units=16, layers=2)
    critic = mlp_discriminator(data_dim=2, units=16, layers=2, normalization=normalization)
    if cls is DCGAN:
        return DCGAN(generator, critic, seed=0, **kwargs)
    return cls(generator, critic, n_critic=n_critic, seed=0, **kwargs)


def batches(data, per_step):
    return tf.data.Dataset.from_tensor_slices(data).batch(per_step, drop_remainder=True)


# ---------------------------------------------------------------- defaults and config
@pytest.mark.parametrize(
    "cls, hyperparameters, optimizer, optimizer_config, critic_norm",
    [
        # The paper's DCGAN critic keeps batch norm under weight clipping.
        (WGAN, {"clip_value": 0.01}, keras.optimizers.RMSprop,
         {"learning_rate": 5e-5, "rho": 0.99, "epsilon": 1e-16}, keras.layers.BatchNormalization),
        (WGANGP, {"gp_weight": 10.0}, keras.optimizers.Adam,
         {"learning_rate": 1e-4, "beta_1": 0.0, "beta_2": 0.9}, keras.layers.LayerNormalization),
    ],
)
def test_defaults_are_the_papers(cls, hyperparameters, optimizer, optimizer_config, critic_norm):
    model = cls.from_image_shape((16, 16, 1), latent_dim=8, filters=4)
    model.compile()
    assert (model.n_critic, model.batches_per_step) == (5, 5)
    assert {k: getattr(model, k) for k in hyperparameters} == hyperparameters
    for opt in (model.g_optimizer, model.d_optimizer):
        assert isinstance(opt, optimizer)
        for key, value in optimizer_config.items():
            assert float(getattr(opt, key)) == pytest.approx(value), key
    # isinstance: kgan's FusedBatchNormalization is a BatchNormalization.
    norms = {norm for norm in (keras.layers.BatchNormalization, keras.layers.LayerNormalization)
             if any(isinstance(layer, norm) for layer in model.discriminator.layers)}
    assert norms == {critic_norm}
    assert GAN.batches_per_step == DCGAN.batches_per_step == 1
    assert {"wgan", "wgan_gp"} <= set(kgan.zoo.list(kind="architectures"))


def test_wgan_rmsprop_steps_like_the_authors_pytorch_code():
    # PyTorch's RMSprop divides by sqrt(v) + 1e-8; Keras's by sqrt(v + epsilon).
    # With Keras's default 1e-7 a clipped critic's typical gradient (~1e-4)
    # took steps 0.4-0.7x theirs.
    for gradient in (3e-5, 1.3e-4, 2.8e-4, 1e-2):  # 0.3% apart at 3e-5, closer above
        variable = keras.Variable([0.0])
        optimizer = WGAN.default_optimizers()[1]
        optimizer.apply_gradients([(keras.ops.convert_to_tensor([gradient]), variable)])
        velocity = (1 - 0.99) * gradient**2
        authors = -5e-5 * gradient / (np.sqrt(velocity) + 1e-8)
        np.testing.assert_allclose(variable.numpy()[0], authors, rtol=4e-3)


def test_config_round_trip_keeps_the_hyperparameters():
    wgan = WGAN.from_image_shape((16, 16, 1), latent_dim=8, filters=4, n_critic=3, clip_value=0.02)
    clone = WGAN.from_config(wgan.get_config())
    assert (clone.n_critic, clone.clip_value, clone.batches_per_step) == (3, 0.02, 3)
    gp = WGANGP.from_image_shape((16, 16, 1), latent_dim=8, filters=4, n_critic=2, gp_weight=1.5)
    clone = WGANGP.from_config(gp.get_config())
    assert (clone.n_critic, clone.gp_weight, clone.batches_per_step) == (2, 1.5, 2)
    # A numpy int is an int (it was refused with "must be a positive int ..., got np.int64(3)").
    numpy_n = WGAN.from_image_shape((16, 16, 1), latent_dim=8, filters=4, n_critic=np.int64(3))
    assert numpy_n.n_critic == 3 and type(numpy_n.n_critic) is int


@pytest.mark.parametrize(
    "cls, kwargs, match",
    [
        (WGAN, {"n_critic": 0}, "n_critic"),
        (WGAN, {"n_critic": 2.5}, "n_critic"),
        (WGAN, {"clip_value": -0.01}, "clip_value"),
        (WGANGP, {"gp_weight": 0}, "gp_weight"),
        (WGANGP, {"normalization": "batch"}, "normalization='layer' or None"),
    ],
)
def test_bad_hyperparameters_get_clear_errors(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls.from_image_shape((16, 16, 1), latent_dim=8, filters=4, **kwargs)


def test_wgan_gp_refuses_a_batch_norm_critic():
    critic = kgan.networks.dcgan_discriminator((16, 16, 1), filters=4, normalization="batch")
    generator = kgan.networks.dcgan_generator((16, 16, 1), latent_dim=8, filters=4)
    with pytest.raises(ValueError, match="batch normalization.*normalization='layer'"):
        WGANGP(generator, critic)


# ---------------------------------------------------------------- gradient penalty
@pytest.mark.parametrize("data_shape", [(4, 4, 1), (3,)])
def test_penalty_of_a_linear_critic(data_shape):
    """f(x) = w . x has gradient w everywhere: penalty = lambda (||w|| - 1)^2."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=int(np.prod(data_shape)))
    critic = linear_critic(data_shape, w)
    real = rng.uniform(-1, 1, (6,) + data_shape).astype("float32")
    fake = rng.uniform(-1, 1, (6,) + data_shape).astype("float32")
    expected = 10.0 * (np.linalg.norm(w) - 1.0) ** 2
    eager = losses.gradient_penalty(critic, real, fake, seed=[1, 2], weight=10.0)
    graph = tf.function(lambda r, f: losses.gradient_penalty(critic, r, f, seed=[1, 2]))(real, fake)
    for penalty in (eager, graph):
        assert penalty.shape == (6,) and penalty.dtype == tf.float32
        np.testing.assert_allclose(penalty.numpy(), np.full(6, expected), rtol=1e-5)


def test_penalty_interpolates_with_one_uniform_weight_per_example():
    """With f(x) = ||x||^2 / 2 the gradient at x_hat is x_hat itself.

    real = 4u, fake = 2u for a unit vector u, so ||x_hat|| = 2 + 2 eps and
    each example's eps is recovered exactly from its penalty.
    """
    inputs = keras.Input((4, 4, 1))
    half_square = keras.layers.Lambda(
        lambda x: 0.5 * keras.ops.sum(keras.ops.square(x), axis=(1, 2, 3))[:, None]
    )
    critic = keras.Model(inputs, half_square(inputs))
    unit = np.full((4, 4, 1), 0.25, "float32")  # ||unit|| = 1
    real, fake = np.stack([4 * unit] * 512), np.stack([2 * unit] * 512)
    penalty = losses.gradient_penalty(critic, real, fake, seed=[3, 4], weight=10.0).numpy()
    eps = (np.sqrt(penalty / 10.0) + 1.0 - 2.0) / 2.0
    # U[0, 1], not N(0, 1) (a known keras-io bug): all in [0, 1], spread over it.
    assert eps.min() >= 0.0 and eps.max() <= 1.0
    assert eps.min() < 0.02 and eps.max() > 0.98 and abs(eps.mean() - 0.5) < 0.05
    assert len(np.unique(eps)) > 500  # one weight per example, not one per batch
    again = losses.gradient_penalty(critic, real, fake, seed=[3, 4]).numpy()
    np.testing.assert_array_equal(again, penalty)
    other = losses.gradient_penalty(critic, real, fake, seed=[3, 5]).numpy()
    assert not np.allclose(other, penalty)


def test_penalty_has_finite_gradients_where_the_critic_gradient_vanishes():
    """The epsilon inside the sqrt: d sqrt(s)/ds is infinite at s = 0."""
    critic = linear_critic((3,), np.zeros(3))
    real, fake = np.ones((4, 3), "float32"), np.zeros((4, 3), "float32")
    with tf.GradientTape() as tape:
        penalty = losses.gradient_penalty(critic, real, fake, seed=[0, 0])
    grads = tape.gradient(penalty, critic.trainable_variables)
    np.testing.assert_allclose(penalty.numpy(), 10.0 * (1.0 - 1e-6) ** 2, rtol=1e-6)  # sqrt(1e-12)
    assert all(np.isfinite(g.numpy()).all() for g in grads)


# ---------------------------------------------------------------- the training step
def test_every_critic_weight_is_clipped():
    model = WGAN.from_image_shape((16, 16, 1), latent_dim=8, filters=4, n_critic=2,
                                  clip_value=0.005, seed=0)
    model.compile()

    def critic_values():
        return np.concatenate([v.numpy().ravel() for v in model.discriminator.trainable_variables])

    # N(0, 0.02) kernels and BN scales ~1 start far outside [-c, c].
    assert np.abs(critic_values()).max() > 0.5
    images = np.random.default_rng(0).uniform(-1, 1, (8, 16, 16, 1)).astype("float32")
    model.fit(batches(images, 8), epochs=1, verbose=0)
    values = critic_values()
    assert np.abs(values).max() <= 0.005 + 1e-9
    assert np.isclose(np.abs(values), 0.005).any()  # the bound binds after the last update


@pytest.mark.parametrize("cls", WASSERSTEIN)
def test_n_critic_critic_updates_per_generator_update(cls):
    model = tiny_mlp_gan(cls, n_critic=3)
    model.compile()
    k = 4
    model.fit(batches(points(8 * 3 * k), 8 * 3), epochs=1, verbose=0)
    assert int(model.g_optimizer.iterations.numpy()) == k
    assert int(model.d_optimizer.iterations.numpy()) == 3 * k


@pytest.mark.parametrize("cls", WASSERSTEIN)
def test_each_critic_update_sees_a_fresh_real_minibatch(cls):
    """One step over 5 * 4 distinguishable reals: 5 disjoint minibatches of 4
    that together are the whole batch (strided: minibatch k = rows k::5)."""
    inputs = keras.Input((2,))
    critic = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    generator = constant_generator((2,), -100.0)  # fakes far from every real
    model = cls(generator, critic, n_critic=5, seed=0)
    model.compile(run_eagerly=True)  # so the recorder sees concrete tensors
    recorded = record_inputs(critic)  # every batch the critic is called on
    real = np.repeat(np.arange(20, dtype="float32")[:, None], 2, axis=1)  # row i = (i, i)
    model.fit(batches(real, 20), epochs=1, verbose=0)
    real_rows = {tuple(r) for r in real}
    # WGAN scores reals alone; WGAN-GP scores them with the fakes in one call.
    real_calls = [c[[tuple(r) in real_rows for r in c]] for c in recorded]
    real_calls = [c for c in real_calls if len(c)]
    assert len(real_calls) == 5, [c[:, 0] for c in recorded]
    for k, call in enumerate(real_calls):
        np.testing.assert_array_equal(call, real[k::5])
    seen = np.concatenate(real_calls)
    assert len({tuple(r) for r in seen}) == 20  # disjoint, and all of the batch


@pytest.mark.parametrize("cls", WASSERSTEIN)
def test_each_update_draws_its_own_latents(cls):
    """Algorithm 1 samples fresh z for every critic update and for the
    generator's: one eager step calls G on n_critic + 1 distinct latent
    batches. (Every other test here uses G(z) = b: one draw reused for all
    critic updates passed them.)"""
    model = tiny_mlp_gan(cls, n_critic=3)
    latents = record_inputs(model.generator)
    model.compile(run_eagerly=True)
    model.fit(batches(points(8 * 3), 8 * 3), epochs=1, verbose=0)
    assert len(latents) == 3 + 1 and all(z.shape == (8, 2) for z in latents)
    for i in range(len(latents)):
        for j in range(i):
            assert not np.allclose(latents[i], latents[j]), (i, j)


@pytest.mark.parametrize("cls", WASSERSTEIN)
def test_one_device_equals_two_replicas(cls, two_cpu_strategy):
    """A step on 2 replicas equals a step on 1 device for the same global batch.

    G(z) is constant and the critic linear, so the replicas' different
    latents and interpolation weights change nothing; SGD (not Adam or
    RMSprop, which are invariant to a gradient scale) exposes a wrong
    replica scaling, and any other grouping of reals into critic minibatches
    changes the losses. Tolerance: rtol 1e-5, atol 1e-6 (float32 sums in a
    different order).
    """
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (2 * 5 * 4, 4, 4, 1)).astype("float32")  # 2 steps of 5 x 4
    kernel = rng.normal(0.0, 0.3, 16)
    extra = {"clip_value": 0.3} if cls is WGAN else {"gp_weight": 1.0}

    def train(strategy):
        with strategy.scope():
            model = cls(constant_generator((4, 4, 1), 0.5), linear_critic((4, 4, 1), kernel),
                        n_critic=5, seed=0, **extra)
            model.compile(g_optimizer=keras.optimizers.SGD(0.1), d_optimizer=keras.optimizers.SGD(0.1))
        history = model.fit(batches(images, 20), epochs=1, verbose=0).history
        critic = model.discriminator.trainable_variables[0]
        copies = [c.numpy() for c in strategy.experimental_local_results(critic.value)]
        return history, copies, model.generator.trainable_variables[1].numpy()

    single, single_critic, single_bias = train(tf.distribute.get_strategy())
    mirrored, mirrored_critic, mirrored_bias = train(two_cpu_strategy)
    assert len(mirrored_critic) == 2
    np.testing.assert_array_equal(mirrored_critic[0], mirrored_critic[1])  # replicas in sync
    np.testing.assert_allclose(mirrored_critic[0], single_critic[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mirrored_bias, single_bias, rtol=1e-5, atol=1e-6)
    assert set(single) == set(mirrored) == set(cls.loss_names)
    for name in cls.loss_names:
        np.testing.assert_allclose(mirrored[name], single[name], rtol=1e-5, atol=1e-6)
    # The updates did something (and, for WGAN, clipping bound on some weights).
    assert not np.allclose(single_critic[0].ravel(), kernel)
    if cls is WGAN:
        assert np.abs(single_critic[0]).max() <= 0.3 + 1e-7
        assert np.isclose(np.abs(single_critic[0]), 0.3).any()


@pytest.mark.parametrize("cls", WASSERSTEIN)
def test_a_step_makes_the_papers_updates_of_a_linear_critic(cls):
    """One step, computed by hand: G(z) = b and f(x) = w . x under SGD.

    Critic update k on the real minibatch x_k = real[k::n] descends
    mean(f(b)) - mean(f(x_k)) (+ lambda (||w|| - 1)^2 for WGAN-GP, whose
    gradient is 2 lambda (||w|| - 1) w / ||w||), then WGAN clips w; the
    generator then descends -f(b), so b += lr * w. The penalty only reported
    but left out of the critic's loss, or a loss with its sign or arguments
    swapped, passed every other test here.
    """
    rng = np.random.default_rng(3)
    n, lr, lam, clip, value = 2, 0.05, 2.0, 0.3, 0.5
    kernel = rng.normal(0.0, 0.3, 16)
    real = rng.uniform(-1, 1, (n * 4, 4, 4, 1)).astype("float32")
    extra = {"clip_value": clip} if cls is WGAN else {"gp_weight": lam}
    model = cls(constant_generator((4, 4, 1), value), linear_critic((4, 4, 1), kernel),
                n_critic=n, seed=0, **extra)
    model.compile(g_optimizer=keras.optimizers.SGD(lr), d_optimizer=keras.optimizers.SGD(lr))
    history = model.fit(batches(real, n * 4), epochs=1, verbose=0).history

    w, b = kernel.astype("float64"), np.full(16, value)
    d_losses, penalties = [], []
    for k in range(n):
        x = real[k::n].reshape(4, -1).astype("float64")
        grad = b - x.mean(axis=0)
        d_loss = w @ b - (x @ w).mean()
        if cls is WGANGP:
            norm = np.sqrt(w @ w + 1e-12)
            penalties.append(lam * (norm - 1.0) ** 2)
            d_loss += penalties[-1]
            grad = grad + 2.0 * lam * (norm - 1.0) * w / norm
        d_losses.append(d_loss)
        w = w - lr * grad
        if cls is WGAN:
            w = np.clip(w, -clip, clip)
    g_loss = -(w @ b)
    b = b + lr * w

    np.testing.assert_allclose(
        model.discriminator.trainable_variables[0].numpy().ravel(), w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        model.generator.trainable_variables[1].numpy(), b, rtol=1e-5, atol=1e-6)
    expected = {"d_loss": np.mean(d_losses), "g_loss": g_loss}
    if cls is WGANGP:
        expected["gradient_penalty"] = np.mean(penalties)
        assert expected["gradient_penalty"] > 0.01  # the penalty is not negligible here
    assert set(history) == set(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(history[name], [value], rtol=1e-5, atol=1e-6, err_msg=name)


# ---------------------------------------------------------------- batch size errors
@pytest.mark.parametrize("cls", WASSERSTEIN)
def test_batch_not_divisible_by_n_critic_is_a_clear_error(cls):
    model = tiny_mlp_gan(cls, n_critic=5)
    model.compile()
    message = r"n_critic=5.*batch of 7 examples.*multiple of 5.*repeat_batches=5"
    # A dataset: caught on the first batch, before tracing.
    with pytest.raises(InputValidationError, match=message):
        model.fit(batches(points(14), 7), epochs=1, verbose=0)
    # Arrays batched by fit: caught when the step is traced.
    with pytest.raises(InputValidationError, match=message):
        model.fit(points(14), batch_size=7, epochs=1, verbose=0)
    # A batch size unknown until run time (no drop_remainder): a ragged last batch.
    # Reported as the input error it is, not as TensorFlow's graph error.
    ragged = tf.data.Dataset.from_tensor_slices(points(13)).batch(10)
    with pytest.raises(InputValidationError, match=r"^A batch \(the epoch's last, partial "
                       r"one\?\) is not a multiple of batches_per_step=5: .*repeat_batches=5"):
        model.fit(ragged, epochs=1, verbose=0)


# ---------------------------------------------------------------- 2-D data
@pytest.mark.parametrize("cls", [DCGAN, WGAN, WGANGP])
def test_mlp_gans_train_on_2d_points(cls):
    model = tiny_mlp_gan(cls, n_critic=2, normalization="batch" if cls is DCGAN else None)
    model.compile()
    assert model.image_shape == (2,)
    g_before = [v.numpy().copy() for v in model.generator.trainable_variables]
    history = model.fit(batches(points(64), 8 * model.batches_per_step), epochs=1, verbose=0)
    for name in cls.loss_names:
        assert np.isfinite(history.history[name]).all(), (name, history.history)
    assert any(not np.array_equal(a, v.numpy()) for a, v in zip(g_before, model.generator.trainable_variables))
    samples = model.generate(5, seed=0)
    assert samples.shape == (5, 2) and samples.dtype == np.float32
    with pytest.raises(InputValidationError, match=r"\[batch, 2\]"):
        model.fit(batches(np.zeros((16, 3), "float32"), 8 * model.batches_per_step), verbose=0)


@pytest.mark.parametrize("cls", [DCGAN, WGAN, WGANGP])
def test_augment_is_refused_for_non_image_data(cls):
    with pytest.raises(ValueError, match=r"augment=.*\(2,\).*augment=None"):
        tiny_mlp_gan(cls, augment="translation")


def test_fit_on_an_array_refuses_a_last_batch_that_cannot_split_before_training():
    # 42 examples in batches of 10 leave 2, not a multiple of n_critic=5:
    # the epoch trained, then failed before its callbacks ran.
    model = WGAN.from_image_shape((16, 16, 1), latent_dim=8, filters=4, seed=0)
    model.compile()
    x = np.zeros((42, 16, 16, 1), "float32")
    with pytest.raises(InputValidationError, match=r"the last holds 2.*Pass 40 examples \(x\[:40\]\)"):
        model.fit(x, batch_size=10, epochs=1, verbose=0)
    assert int(model.d_optimizer.iterations.numpy()) == 0
    model.fit(x[:40], batch_size=10, epochs=1, verbose=0)
    assert int(model.d_optimizer.iterations.numpy()) == 20  # 4 steps of 5 critic updates
