"""kgan.optimizers.FusedAdam: Keras's Adam, one kernel per weight update."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
import tensorflow as tf

import kgan
from kgan.optimizers import FusedAdam

SETTINGS = [
    {"learning_rate": 2e-4, "beta_1": 0.5},
    {"learning_rate": 1e-4, "beta_1": 0.0, "beta_2": 0.9},
    {"learning_rate": keras.optimizers.schedules.ExponentialDecay(1e-3, 2, 0.5), "epsilon": 1e-3},
    {"learning_rate": 1e-3, "amsgrad": True},
    {"learning_rate": 1e-3, "clipnorm": 0.1, "weight_decay": 0.01},
]


def _train(cls, settings, steps=6, strategy=None):
    rng = np.random.default_rng(0)
    start = [rng.normal(size=(7, 5)).astype("float32"), rng.normal(size=(5,)).astype("float32")]
    grads = [[rng.normal(size=w.shape).astype("float32") for w in start] for _ in range(steps)]
    scope = strategy.scope() if strategy else tf.init_scope()
    with scope:
        variables = [keras.Variable(w) for w in start]
        optimizer = cls(**settings)

    @tf.function
    def step(gs):
        optimizer.apply_gradients(zip(gs, variables))

    for gs in grads:
        if strategy:
            strategy.run(step, args=([tf.constant(g) for g in gs],))
        else:
            step([tf.constant(g) for g in gs])
    return [v.numpy() for v in variables], optimizer


@pytest.mark.parametrize("settings", SETTINGS)
def test_fused_adam_updates_like_keras_adam(settings):
    ours, optimizer = _train(FusedAdam, settings)
    theirs, _ = _train(keras.optimizers.Adam, settings)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert int(optimizer.iterations) == 6


def test_fused_adam_under_a_strategy_runs_keras_update(monkeypatch):
    calls = []
    monkeypatch.setattr(tf.raw_ops, "ResourceApplyAdam",
                        lambda **kwargs: calls.append(1) or (_ for _ in ()).throw(AssertionError))
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    ours, _ = _train(FusedAdam, SETTINGS[0], strategy=strategy)
    theirs, _ = _train(keras.optimizers.Adam, SETTINGS[0])
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not calls


def test_fused_adam_uses_one_kernel_per_weight():
    variable = keras.Variable(np.ones((3,), "float32"))
    optimizer = FusedAdam(1e-3)
    optimizer.build([variable])

    @tf.function
    def step(gradient):
        optimizer.apply_gradients([(gradient, variable)])

    graph = step.get_concrete_function(tf.TensorSpec((3,), tf.float32)).graph
    ops = [op.type for op in graph.get_operations()]
    assert ops.count("ResourceApplyAdam") == 1
    assert "AssignSubVariableOp" not in ops  # Keras's Adam ends with w.assign_sub(...)


def test_fused_adam_config_and_checkpoints_are_adams(tmp_path):
    optimizer = FusedAdam(3e-4, beta_1=0.25, beta_2=0.8, epsilon=1e-6)
    config = optimizer.get_config()
    assert config == {**keras.optimizers.Adam(3e-4, beta_1=0.25, beta_2=0.8,
                                              epsilon=1e-6).get_config(), "name": config["name"]}
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert type(restored) is FusedAdam and restored.get_config() == config
    # A GAN saved with FusedAdam reloads it, and the default optimizers are fused.
    gan = kgan.zoo.build("dcgan", image_shape=(16, 16, 1), latent_dim=4, filters=2, seed=0)
    gan.compile()
    assert isinstance(gan.g_optimizer, FusedAdam) and isinstance(gan.d_optimizer, FusedAdam)
    images = np.random.default_rng(0).uniform(-1, 1, (8, 16, 16, 1)).astype("float32")
    gan.fit(kgan.data.from_numpy(images, batch_size=4, seed=0), epochs=1, verbose=0)
    gan.save(tmp_path / "gan.keras")
    loaded = keras.saving.load_model(tmp_path / "gan.keras")
    assert type(loaded.g_optimizer) is FusedAdam
    for a, b in zip(gan.d_optimizer.variables, loaded.d_optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_an_adam_checkpoint_resumes_into_fused_adam_and_back(tmp_path):
    images = np.random.default_rng(0).uniform(-1, 1, (8, 16, 16, 1)).astype("float32")

    def trained(optimizer_cls):
        gan = kgan.zoo.build("dcgan", image_shape=(16, 16, 1), latent_dim=4, filters=2, seed=0)
        gan.compile(g_optimizer=optimizer_cls(2e-4, beta_1=0.5),
                    d_optimizer=optimizer_cls(2e-4, beta_1=0.5))
        gan.fit(kgan.data.from_numpy(images, batch_size=4, seed=0), epochs=1, verbose=0)
        return gan

    for saved_with, loaded_with in ((keras.optimizers.Adam, FusedAdam),
                                    (FusedAdam, keras.optimizers.Adam)):
        source, target = trained(saved_with), trained(loaded_with)
        path = tmp_path / f"{saved_with.__name__}.weights.h5"
        source.save_weights(path)
        target.load_weights(path)
        for a, b in zip(source.d_optimizer.variables + source.g_optimizer.variables,
                        target.d_optimizer.variables + target.g_optimizer.variables):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        assert int(target.d_optimizer.iterations) == int(source.d_optimizer.iterations) == 2
