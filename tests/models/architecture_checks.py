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
from kgan_test_utils import batchnorm_copies, spread_weights

#: per architecture: builder kwargs of a tiny model and the minibatch size to
#: use (a train_step consumes `batch * model.batches_per_step` examples).
#: WGAN/WGAN-GP use n_critic=2 here: tracing cost grows with the unrolled
#: critic updates, and 2 already splits batches (test_wgan.py covers 5).
TINY_CONFIGS = {
    "dcgan": {"build": {"image_shape": (16, 16, 1), "latent_dim": 8, "filters": 8, "seed": 1, "ema_decay": 0.99, "augment": "color,translation,cutout"}, "batch": 8},
    "wgan": {"build": {"image_shape": (16, 16, 1), "latent_dim": 8, "filters": 8, "seed": 1, "n_critic": 2, "ema_decay": 0.99, "augment": "translation"}, "batch": 4},
    "wgan_gp": {"build": {"image_shape": (16, 16, 1), "latent_dim": 8, "filters": 8, "seed": 1, "n_critic": 2, "ema_decay": 0.99, "augment": "color,cutout"}, "batch": 4},
    # pool_size=3 < 3 steps * batch 2: the pools fill and then swap.
    "cyclegan": {"build": {"image_shape": (16, 16, 3), "filters": 4, "num_residual_blocks": 1, "disc_layers": 2, "seed": 1, "pool_size": 3}, "batch": 2},
    # 3 RGB classes: a 2nd input (labels) through fit, saving, export and strategies.
    "conditional_gan": {"build": {"image_shape": (16, 16, 3), "num_classes": 3, "latent_dim": 8, "filters": 8, "embedding_dim": 4, "seed": 1, "ema_decay": 0.99, "augment": "color,translation,cutout"}, "batch": 6},
}


def build_tiny(arch, **overrides):
    config = dict(TINY_CONFIGS[arch]["build"])
    config.update(overrides)
    return kgan.zoo.build(arch, **config)


def is_translator(model):
    """True for image-to-image models (CycleGAN): no latent space, inputs are images."""
    return model.latent_dim is None


def is_conditional(model):
    """True for class-conditional models: they train on and generate for labels."""
    return getattr(model, "num_classes", None) is not None


def random_images(shape, seed):
    """float32 images in [-1, 1] of `shape`, from `seed`."""
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype("float32")


def tiny_dataset(model, arch, num_batches=3, seed=0):
    """`num_batches` train_steps' worth of real-looking data for `model`.

    Each element holds `batch * model.batches_per_step` images (float32,
    [-1, 1]): one minibatch per update the step makes. Translators get
    unpaired `(images_a, images_b)` batches; conditional models
    `(images, labels)` with every class in each batch.
    """
    batch = TINY_CONFIGS[arch]["batch"]
    per_step = batch * model.batches_per_step
    if is_translator(model):
        domains = [
            tf.data.Dataset.from_tensor_slices(
                random_images((batch * num_batches,) + shape, seed + k)
            )
            for k, shape in enumerate((model.image_shape_a, model.image_shape_b))
        ]
        return tf.data.Dataset.zip(tuple(domains)).batch(batch, drop_remainder=True)
    rng = np.random.default_rng(seed)
    images = rng.uniform(-1, 1, (per_step * num_batches,) + model.image_shape).astype("float32")
    if is_conditional(model):
        labels = np.arange(len(images)) % model.num_classes
        return kgan.data.from_numpy(
            images, labels, batch_size=batch, repeat_batches=model.batches_per_step,
            shuffle=False, cache=False,
        )
    return kgan.data.from_numpy(
        images, batch_size=batch, repeat_batches=model.batches_per_step, shuffle=False, cache=False
    )


#: translators are sampled at a size that is not a multiple of 4 (padding path).
SAMPLE_SIZE = (37, 53)


def sample(model, num, seed=0):
    """What the model makes from `num` seeded inputs (float32, [-1, 1]):
    generated images, or for translators the A -> B translations of seeded
    `SAMPLE_SIZE` images, then (concatenated on channels) the B -> A ones."""
    if not is_translator(model):
        return model.generate(num, seed=seed)
    c_a, c_b = model.image_shape_a[-1], model.image_shape_b[-1]
    to_b = model.translate(random_images((num,) + SAMPLE_SIZE + (c_a,), seed))
    to_a = model.translate(random_images((num,) + SAMPLE_SIZE + (c_b,), seed + 1), "b_to_a")
    return np.concatenate([to_b, to_a], axis=-1)


def sample_shape(model, num):
    """The shape `sample(model, num)` must have."""
    if not is_translator(model):
        return (num,) + model.image_shape
    return (num,) + SAMPLE_SIZE + (model.image_shape_b[-1] + model.image_shape_a[-1],)


def networks(model):
    """The model's trainable networks: generator and discriminator, plus
    CycleGAN's second pair."""
    names = ("generator", "discriminator", "generator_ba", "discriminator_a")
    return [getattr(model, n) for n in names if getattr(model, n, None) is not None]


def snapshot(variables):
    return [np.array(v.numpy()) for v in variables]


def changed(before, variables):
    return any(not np.array_equal(b, v.numpy()) for b, v in zip(before, variables))


def iterations(optimizer):
    return int(optimizer.iterations.numpy())


def check_train_step(model, dataset):
    """fit runs, changes both networks, reports finite losses, and makes
    `batches_per_step` discriminator updates per generator update."""
    before = [snapshot(net.trainable_variables) for net in networks(model)]
    g_steps, d_steps = iterations(model.g_optimizer), iterations(model.d_optimizer)
    history = model.fit(dataset, epochs=1, verbose=0)
    for net, weights in zip(networks(model), before):
        assert changed(weights, net.trainable_variables), f"{net.name} did not change"
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


def check_replicas_agree_on_batchnorm_statistics(model):
    """After `fit` under a strategy of several replicas, every replica holds the
    same batch-norm statistics: the train step ended with `report_losses`,
    which averages them (Keras 3 lets each replica's copy drift)."""
    for copies in batchnorm_copies(model):
        for other in copies[1:]:
            np.testing.assert_allclose(other, copies[0], rtol=0, atol=1e-7)


def optimizer_state(optimizer):
    return {v.path: np.array(v.numpy()) for v in optimizer.variables}


def check_keras_round_trip(model, path):
    """`.keras` save/load: same outputs, both optimizers' iterations and slots,
    and the rest of the state (e.g. CycleGAN's image pools)."""
    model.save(path)
    restored = keras.models.load_model(path)
    assert type(restored) is type(model)
    np.testing.assert_allclose(sample(restored, 4, seed=3), sample(model, 4, seed=3), atol=1e-6)
    assert len(restored.weights) == len(model.weights)
    for original, loaded in zip(model.weights, restored.weights):
        np.testing.assert_array_equal(np.asarray(original), np.asarray(loaded), err_msg=original.path)
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


_PLAIN_TF_CONDITIONAL_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf
    assert "kgan" not in sys.modules
    loaded = tf.saved_model.load(sys.argv[1])
    z, y = np.load(sys.argv[2]), np.load(sys.argv[3])
    serve, serve_u8 = loaded.signatures["serving_default"], loaded.signatures["generate_uint8"]
    out = serve(latents=tf.constant(z), labels=tf.constant(y))["images"].numpy()
    u8 = serve_u8(latents=tf.constant(z), labels=tf.constant(y))["images"].numpy()
    other = serve(latents=tf.constant(z), labels=tf.constant((y + 1) % int(sys.argv[6])))["images"]
    try:
        serve(latents=tf.constant(z), labels=tf.fill([len(z)], int(sys.argv[6])))
        refused = False
    except tf.errors.InvalidArgumentError as err:
        refused = "labels must be class indices" in err.message
    np.save(sys.argv[4], out)
    np.save(sys.argv[5], u8)
    print(json.dumps({"kgan_imported": "kgan" in sys.modules, "dtype": str(out.dtype),
                      "labels_change_output": bool(np.abs(other.numpy() - out).max() > 0),
                      "out_of_range_refused": refused}))
    """
)


_PLAIN_TF_TRANSLATOR_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf
    assert "kgan" not in sys.modules
    loaded = tf.saved_model.load(sys.argv[1])
    a, b = np.load(sys.argv[2]), np.load(sys.argv[3])
    to_b = loaded.signatures["a_to_b"](images=tf.constant(a))["images"].numpy()
    to_a = loaded.signatures["b_to_a"](images=tf.constant(b))["images"].numpy()
    default = loaded.signatures["serving_default"](images=tf.constant(a))["images"].numpy()
    np.save(sys.argv[4], to_b)
    np.save(sys.argv[5], to_a)
    print(json.dumps({"kgan_imported": "kgan" in sys.modules, "dtype": str(to_b.dtype),
                      "default_is_a_to_b": bool((default == to_b).all())}))
    """
)


def _run_without_kgan(tmp_path, script, *args):
    """Run `script` in a fresh Python without kgan; return its last stdout line as JSON."""
    path = tmp_path / "serve.py"
    path.write_text(script)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run(
        [sys.executable, str(path), *map(str, args)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def check_export_round_trip(model, tmp_path):
    """SavedModel loads in a process without kgan and matches the model.

    Redraws the latent models' sampling weights first, so call it last on
    a model: briefly trained tiny models output images within about 4e-3 of
    zero (uint8 levels 127 and 128 only), where an export that applied tanh
    twice still matched. The translators' instance-normalized generators
    already spread their images.
    """
    export_dir = tmp_path / "export"
    if not is_translator(model):
        spread_weights(model, network=model.sampling_generator)
    kgan.export.export_generator(model, export_dir)
    if is_translator(model):
        _check_translator_export(model, export_dir, tmp_path)
        return export_dir
    z = model.latents(5, seed=11)
    np.save(tmp_path / "z.npy", z)
    if is_conditional(model):
        _check_conditional_export(model, export_dir, tmp_path, z)
        return export_dir
    report = _run_without_kgan(
        tmp_path, _PLAIN_TF_SCRIPT, export_dir, tmp_path / "z.npy", tmp_path / "out.npy",
        tmp_path / "u8.npy",
    )
    assert report == {"kgan_imported": False, "dtype": "float32"}
    served = np.load(tmp_path / "out.npy")
    expected = model.generate_from_latents(z)
    assert expected.std() > 0.1  # images, not near-constant outputs
    assert served.shape == expected.shape
    assert np.max(np.abs(served - expected)) <= 1e-5
    np.testing.assert_array_equal(np.load(tmp_path / "u8.npy"), kgan.images.to_uint8(expected))
    return export_dir


def _check_conditional_export(model, export_dir, tmp_path, z):
    """Both signatures take `(latents, labels)`, match `generate_from_latents`,
    depend on the labels and refuse a label out of range."""
    labels = (np.arange(len(z)) * 2 % model.num_classes).astype("int32")
    np.save(tmp_path / "y.npy", labels)
    report = _run_without_kgan(
        tmp_path, _PLAIN_TF_CONDITIONAL_SCRIPT, export_dir, tmp_path / "z.npy",
        tmp_path / "y.npy", tmp_path / "out.npy", tmp_path / "u8.npy", model.num_classes,
    )
    assert report == {"kgan_imported": False, "dtype": "float32", "labels_change_output": True,
                      "out_of_range_refused": True}
    served = np.load(tmp_path / "out.npy")
    expected = model.generate_from_latents(z, labels=labels)
    assert expected.std() > 0.1  # images, not near-constant outputs
    assert served.shape == expected.shape
    assert np.max(np.abs(served - expected)) <= 1e-5
    np.testing.assert_array_equal(np.load(tmp_path / "u8.npy"), kgan.images.to_uint8(expected))


def _check_translator_export(model, export_dir, tmp_path):
    """Both signatures take uint8 images of any size and match `translate`."""
    rng = np.random.default_rng(11)
    a = rng.integers(0, 256, (3, 37, 53, model.image_shape_a[-1]), dtype=np.uint8)
    b = rng.integers(0, 256, (2, 21, 16, model.image_shape_b[-1]), dtype=np.uint8)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    report = _run_without_kgan(
        tmp_path, _PLAIN_TF_TRANSLATOR_SCRIPT, export_dir, tmp_path / "a.npy",
        tmp_path / "b.npy", tmp_path / "to_b.npy", tmp_path / "to_a.npy",
    )
    assert report == {"kgan_imported": False, "dtype": "uint8", "default_is_a_to_b": True}
    np.testing.assert_array_equal(np.load(tmp_path / "to_b.npy"), model.translate(a, "a_to_b"))
    np.testing.assert_array_equal(np.load(tmp_path / "to_a.npy"), model.translate(b, "b_to_a"))
