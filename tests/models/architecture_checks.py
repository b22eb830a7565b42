"""Shared checks every architecture in the zoo must pass.

`test_architectures.py` runs each check over every registered architecture;
a new architecture only adds an entry to `TINY_CONFIGS` (and a test fails
until it does). Models are tiny so the whole matrix runs in a few minutes.
"""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import tensorflow as tf

import kgan

#: per architecture: builder kwargs of a tiny model and the minibatch size to
#: use (a train_step consumes `batch * model.batches_per_step` examples).
#: WGAN/WGAN-GP use n_critic=2 here: tracing cost grows with the unrolled
#: critic updates, and 2 already splits batches (test_wgan.py covers 5).
TINY_CONFIGS = {
    "dcgan": {"build": {"image_shape": (16, 16, 1), "latent_dim": 8, "filters": 8, "seed": 1, "ema_decay": 0.99, "augment": "color,translation,cutout"}, "batch": 8},
    "wgan": {"build": {"image_shape": (16, 16, 1), "latent_dim": 8, "filters": 8, "seed": 1, "n_critic": 2, "ema_decay": 0.99, "augment": "translation"}, "batch": 4},
    "wgan_gp": {"build": {"image_shape": (16, 16, 1), "latent_dim": 8, "filters": 8, "seed": 1, "n_critic": 2, "ema_decay": 0.99, "augment": "color,cutout"}, "batch": 4},
}


def build_tiny(arch, **overrides):
    config = dict(TINY_CONFIGS[arch]["build"])
    config.update(overrides)
    return kgan.zoo.build(arch, **config)


def tiny_dataset(model, arch, num_batches=3, seed=0):
    """`num_batches` train_steps' worth of real-looking data for `model`.

    Each element holds `batch * model.batches_per_step` images (float32,
    [-1, 1]): one minibatch per update the step makes.
    """
    batch = TINY_CONFIGS[arch]["batch"]
    per_step = batch * model.batches_per_step
    rng = np.random.default_rng(seed)
    images = rng.uniform(-1, 1, (per_step * num_batches,) + model.image_shape).astype("float32")
    return kgan.data.from_numpy(
        images, batch_size=batch, repeat_batches=model.batches_per_step, shuffle=False, cache=False
    )


def snapshot(variables):
    return [np.array(v.numpy()) for v in variables]


def changed(before, variables):
    return any(not np.array_equal(b, v.numpy()) for b, v in zip(before, variables))


def iterations(optimizer):
    return int(optimizer.iterations.numpy())


def check_train_step(model, dataset):
    """fit runs, changes both networks, reports finite losses, and makes
    `batches_per_step` discriminator updates per generator update."""
    g_before = snapshot(model.generator.trainable_variables)
    d_before = snapshot(model.discriminator.trainable_variables)
    g_steps, d_steps = iterations(model.g_optimizer), iterations(model.d_optimizer)
    history = model.fit(dataset, epochs=1, verbose=0)
    assert changed(g_before, model.generator.trainable_variables), "generator did not change"
    assert changed(d_before, model.discriminator.trainable_variables), "discriminator did not change"
    steps = int(dataset.cardinality().numpy())
    g_steps, d_steps = iterations(model.g_optimizer) - g_steps, iterations(model.d_optimizer) - d_steps
    if isinstance(model.d_optimizer, keras.optimizers.LossScaleOptimizer):
        # Dynamic loss scaling skips (and does not count) non-finite steps.
        assert 0 < g_steps <= steps and 0 < d_steps <= steps * model.batches_per_step
    else:
        assert (g_steps, d_steps) == (steps, steps * model.batches_per_step)
    assert set(model.loss_names) <= set(history.history), history.history.keys()
    for name in model.loss_names:
        assert np.isfinite(history.history[name]).all(), (name, history.history[name])
    return history


def optimizer_state(optimizer):
    return {v.path: np.array(v.numpy()) for v in optimizer.variables}


def check_keras_round_trip(model, path):
    """`.keras` save/load: same outputs, both optimizers' iterations and slots."""
    model.save(path)
    restored = keras.models.load_model(path)
    assert type(restored) is type(model)
    z = model.latents(4, seed=3)
    np.testing.assert_allclose(
        restored.generate_from_latents(z), model.generate_from_latents(z), atol=1e-6
    )
    for name in ("g_optimizer", "d_optimizer"):
        original, loaded = getattr(model, name), getattr(restored, name)
        assert int(loaded.iterations.numpy()) == int(original.iterations.numpy()) > 0, name
        before, after = optimizer_state(original), optimizer_state(loaded)
        assert len(before) == len(after) and len(before) > 1, name
        for (_, a), (_, b) in zip(sorted(before.items()), sorted(after.items())):
            np.testing.assert_array_equal(a, b)
    return restored


_PLAIN_TF_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf
    assert "kgan" not in sys.modules
    loaded = tf.saved_model.load(sys.argv[1])
    z = np.load(sys.argv[2])
    out = loaded.signatures["serving_default"](latents=tf.constant(z))["images"].numpy()
    u8 = loaded.signatures["generate_uint8"](latents=tf.constant(z))["images"].numpy()
    np.save(sys.argv[3], out)
    np.save(sys.argv[4], u8)
    print(json.dumps({"kgan_imported": "kgan" in sys.modules, "dtype": str(out.dtype)}))
    """
)


def check_export_round_trip(model, tmp_path):
    """SavedModel loads in a process without kgan and matches the model."""
    export_dir = tmp_path / "export"
    kgan.export.export_generator(model, export_dir)
    z = model.latents(5, seed=11)
    np.save(tmp_path / "z.npy", z)
    script = tmp_path / "serve.py"
    script.write_text(_PLAIN_TF_SCRIPT)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run(
        [sys.executable, str(script), str(export_dir), str(tmp_path / "z.npy"),
         str(tmp_path / "out.npy"), str(tmp_path / "u8.npy")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"kgan_imported": False, "dtype": "float32"}
    served = np.load(tmp_path / "out.npy")
    expected = model.generate_from_latents(z)
    assert served.shape == expected.shape
    assert np.max(np.abs(served - expected)) <= 1e-5
    np.testing.assert_array_equal(np.load(tmp_path / "u8.npy"), kgan.images.to_uint8(expected))
    return export_dir
