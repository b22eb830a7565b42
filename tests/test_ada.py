"""Adaptive discriminator augmentation (`kgan.ada`, `augment="ada"`).

The heuristic and its arithmetic, the transforms, the state surviving
`.keras` files, `BackupAndRestore` and `MirroredStrategy`, and a train step
of every registered architecture with `augment="ada"`.
"""

import csv
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import kgan
from kgan import cli
from kgan.ada import DEFAULT_TRANSFORMS, P_MAX, TRANSFORMS, AdaptiveAugment
from kgan.models import DCGAN, WGANGP, CycleGAN

# The tiny per-architecture configs live with the architecture tests.
sys.path.insert(0, str(Path(__file__).parent / "models"))
from architecture_checks import TINY_CONFIGS, build_tiny, check_train_step, tiny_dataset  # noqa: E402

ARCHITECTURES = kgan.zoo.list(kind="architectures")
SEED = tf.constant([3, 4], tf.int64)


def images(batch=8, size=8, width=None, channels=1, seed=0):
    shape = (batch, size, width or size, channels)
    return tf.constant(np.random.default_rng(seed).uniform(-1, 1, shape), tf.float32)


def tiny_dcgan(**kwargs):
    return DCGAN.from_image_shape((16, 16, 1), latent_dim=4, filters=4, seed=0, augment="ada", **kwargs)


def state(ada):
    return {v.name: float(v.numpy()) for v in ada.weights}


# ---------------------------------------------------------------- the heuristic
def test_p_rises_every_interval_while_the_discriminator_is_sure_of_the_reals():
    ada = AdaptiveAugment(kimg=0.1, interval=4)  # 4 updates x 8 images move p by 0.32
    sure = tf.ones((8, 1))  # every real scored "real": r_t = 1 > 0.6
    for _ in range(3):
        ada.observe(sure)
    assert float(ada.p.numpy()) == 0.0 and int(ada.updates.numpy()) == 3  # not before the interval
    ada.observe(sure)
    assert float(ada.p.numpy()) == pytest.approx(0.32)
    assert float(ada.rt.numpy()) == 1.0
    assert (float(ada.sign_sum.numpy()), float(ada.image_count.numpy()), int(ada.updates.numpy())) == (0, 0, 0)
    for _ in range(4 * 3):
        ada.observe(sure)
    assert float(ada.p.numpy()) == P_MAX < 1.0  # clipped to [0, 1)


def test_default_speed_is_the_papers():
    ada = AdaptiveAugment()
    assert (ada.target, ada.kimg, ada.interval, ada.transforms) == (0.6, 500.0, 4, DEFAULT_TRANSFORMS)
    for _ in range(4):
        ada.observe(tf.ones((64, 1)))
    # sign(r_t - target) * batch * interval / (kimg * 1000): 0 -> 1 in 500k images.
    assert float(ada.p.numpy()) == pytest.approx(64 * 4 / 500_000)


def test_p_falls_below_the_target_and_stops_at_zero():
    ada = AdaptiveAugment(kimg=0.1, interval=1)
    ada.p.assign(0.5)
    logits = tf.constant([[2.0]] * 6 + [[-2.0]] * 2)  # r_t = (6 - 2) / 8 = 0.5 < 0.6
    ada.observe(logits)
    assert float(ada.rt.numpy()) == pytest.approx(0.5)
    assert float(ada.p.numpy()) == pytest.approx(0.5 - 8 / 100)
    for _ in range(10):
        ada.observe(logits)
    assert float(ada.p.numpy()) == 0.0


def test_the_center_is_per_architecture():
    assert DCGAN.ada_center == 0.0 and CycleGAN.ada_center == 0.5
    assert kgan.models.WGAN.ada_center == WGANGP.ada_center == "midpoint"
    # Least squares (targets 0/1): 0.7 counts as "real", 0.3 as "fake"; PatchGAN
    # maps [B, h, w, 1] are averaged per image.
    lsgan = AdaptiveAugment(center=0.5, interval=1)
    lsgan.observe(tf.fill((4, 2, 2, 1), 0.7))
    assert float(lsgan.rt.numpy()) == 1.0
    lsgan.observe(tf.fill((4, 2, 2, 1), 0.3))
    assert float(lsgan.rt.numpy()) == -1.0
    # Wasserstein critics: halfway between the mean real and fake score, so
    # the constant a critic's loss ignores does not change r_t.
    real = tf.constant([[5.0], [4.5], [3.0], [6.0]])
    fake = tf.constant([[3.0], [2.0], [4.0], [3.0]])  # midpoint (4.625 + 3) / 2 = 3.8125
    for shift in (0.0, -1000.0, 250.0):
        critic = AdaptiveAugment(center="midpoint", interval=1)
        critic.observe(real + shift, fake + shift)
        assert float(critic.rt.numpy()) == pytest.approx(0.5), shift  # 3 above, 1 below
    with pytest.raises(ValueError, match="pass fake_logits"):
        AdaptiveAugment(center="midpoint").observe(real)


# ---------------------------------------------------------------- transforms
def test_p_zero_is_the_identity():
    ada = AdaptiveAugment(transforms=TRANSFORMS)
    x = images()
    np.testing.assert_array_equal(ada(x, seed=SEED).numpy(), x.numpy())


@pytest.mark.parametrize(
    "transform, changed_if_chosen",
    # xflip: half of the chosen images flip; rotate90: 3 of 4 turns move;
    # translation: 8 of the 9 shifts in {-1, 0, 1}^2 of an 8-px image move.
    [("xflip", 0.5), ("rotate90", 0.75), ("translation", 8 / 9), ("color", 1.0), ("cutout", 1.0)],
)
def test_each_transform_applies_per_image_with_probability_p(transform, changed_if_chosen):
    ada = AdaptiveAugment(transforms=[transform])
    ada.p.assign(0.5)
    x = images(batch=600)
    out = ada(x, seed=SEED).numpy()
    changed = np.abs(out - x.numpy()).reshape(600, -1).max(axis=1) > 1e-6
    assert changed.mean() == pytest.approx(0.5 * changed_if_chosen, abs=0.08)


def test_flips_and_quarter_turns_are_exact_and_skip_non_square_images():
    x = images(batch=64).numpy()
    ada = AdaptiveAugment(transforms=["rotate90"])
    ada.p.assign(P_MAX)
    out = ada(tf.constant(x), seed=SEED).numpy()
    turns = []
    for original, rotated in zip(x, out):
        found = [k for k in range(4) if np.array_equal(np.rot90(original, k), rotated)]
        assert found, "not a quarter turn of the input"
        turns.append(found[0])
    assert set(turns) == {0, 1, 2, 3}
    flip = AdaptiveAugment(transforms=["xflip"])
    flip.p.assign(P_MAX)
    flipped = flip(tf.constant(x), seed=SEED).numpy()
    mirrored = [np.array_equal(o, x[i][:, ::-1]) for i, o in enumerate(flipped)]
    same = [np.array_equal(o, x[i]) for i, o in enumerate(flipped)]
    assert all(m or s for m, s in zip(mirrored, same)) and any(mirrored) and any(same)
    wide = images(batch=4, size=8, width=6)
    np.testing.assert_array_equal(ada(wide, seed=SEED).numpy(), wide.numpy())


def test_gradients_flow_through_the_augmentations_to_the_generator():
    model = tiny_dcgan()
    model.ada.p.assign(0.9)
    z = tf.random.normal((8, model.latent_dim), seed=1)
    with tf.GradientTape() as tape:
        fake = model.generator(z, training=True)
        scores = model.discriminator(model.discriminator_view(fake), training=True)
        loss = tf.reduce_mean(scores)
    grads = tape.gradient(loss, model.generator.trainable_variables)
    assert all(g is not None for g in grads)
    assert any(float(tf.reduce_sum(tf.abs(g))) > 0 for g in grads)
    x = tf.Variable(images())
    ada = AdaptiveAugment(transforms=TRANSFORMS)
    ada.p.assign(0.9)
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(ada(x, seed=SEED) ** 2)
    assert float(tf.reduce_sum(tf.abs(tape.gradient(total, x)))) > 0


# ---------------------------------------------------------------- state
def test_config_round_trip_and_other_augment_options_are_unchanged():
    model = tiny_dcgan(ada_target=0.7, ada_kimg=50, ada_interval=2)
    config = model.get_config()
    assert (config["augment"], config["ada_target"], config["ada_kimg"], config["ada_interval"]) == (
        "ada", 0.7, 50.0, 2)
    restored = DCGAN.from_config(config)
    assert (restored.ada.target, restored.ada.kimg, restored.ada.interval) == (0.7, 50.0, 2)
    assert [m.name for m in restored.metrics] == ["d_loss", "g_loss", "ada_p", "ada_rt"]
    diff = DCGAN.from_image_shape((16, 16, 1), latent_dim=4, filters=4, augment="cutout")
    assert diff.ada is None and diff.augmenter is not None and diff.adaptive_augments == []
    assert [m.name for m in diff.metrics] == ["d_loss", "g_loss"]


def test_p_is_saved_and_loaded_with_keras_files(tmp_path):
    model = tiny_dcgan(ada_interval=2)
    model.compile()
    values = {"p": 0.3, "rt": 0.9, "sign_sum": 2.0, "image_count": 16.0, "updates": 1}
    for name, value in values.items():
        getattr(model.ada, name).assign(value)
    model.save(tmp_path / "ada.keras")
    restored = keras.models.load_model(tmp_path / "ada.keras")
    assert state(restored.ada) == state(model.ada) == pytest.approx(values)

    cycle = build_tiny("cyclegan", augment="ada", pool_size=0)
    cycle.ada_a.p.assign(0.25)
    cycle.ada.p.assign(0.75)
    cycle.save(tmp_path / "cycle.keras")
    loaded = keras.models.load_model(tmp_path / "cycle.keras")
    assert float(loaded.ada_a.p.numpy()) == 0.25 and float(loaded.ada.p.numpy()) == 0.75
    assert [m.name for m in loaded.metrics][-4:] == ["ada_p_a", "ada_rt_a", "ada_p_b", "ada_rt_b"]


def test_backup_and_restore_brings_p_back(tmp_path):
    backup = str(tmp_path / "backup")

    class CrashAfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt("simulated crash")

    model = build_tiny("dcgan", augment="ada", ada_interval=1, ada_kimg=1)
    model.compile(run_eagerly=True)  # no tracing: the checkpoint is the same
    model.ada.p.assign(0.5)
    data = tiny_dataset(model, "dcgan", num_batches=1)
    with pytest.raises(KeyboardInterrupt):
        model.fit(data, epochs=2, verbose=0,
                  callbacks=[keras.callbacks.BackupAndRestore(backup), CrashAfterFirstEpoch()])
    saved = state(model.ada)
    assert saved["p"] == pytest.approx(0.5 + 0.008) or saved["p"] == pytest.approx(0.5 - 0.008)

    resumed = build_tiny("dcgan", augment="ada", ada_interval=1, ada_kimg=1)
    resumed.compile(run_eagerly=True)
    at_start = []
    probe = keras.callbacks.LambdaCallback(on_train_begin=lambda logs: at_start.append(state(resumed.ada)))
    history = resumed.fit(data, epochs=2, verbose=0,
                          callbacks=[keras.callbacks.BackupAndRestore(backup), probe])
    assert at_start == [saved]
    assert history.history["ada_p"] == [pytest.approx(float(resumed.ada.p.numpy()))]


def test_mirrored_strategy_keeps_p_equal_and_uses_the_global_batch(two_cpu_strategy):
    with two_cpu_strategy.scope():
        # One step: 8 images (4 per replica) move p by 8 / 800 = 0.01.
        model = build_tiny("dcgan", augment="ada", ada_interval=1, ada_kimg=0.8)
        model.compile()
    model.ada.p.assign(0.5)
    history = model.fit(tiny_dataset(model, "dcgan", num_batches=3), epochs=1, verbose=0)
    for variable in model.ada.weights:
        copies = [np.asarray(v) for v in variable.value.values]
        assert len(copies) == 2 and np.array_equal(copies[0], copies[1]), variable.name
    p = float(model.ada.p.numpy())
    # Three steps of +-0.01 each: the count all-reduced (not 4 per replica).
    assert round((p - 0.5) / 0.01, 3) in (-3, -1, 1, 3)
    assert history.history["ada_p"] == [pytest.approx(p)]
    assert -1 <= history.history["ada_rt"][0] <= 1


# ---------------------------------------------------------------- every architecture
@pytest.mark.parametrize(
    "run_eagerly", [True, pytest.param(False, marks=pytest.mark.slow)], ids=["eager", "graph"]
)
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_architecture_trains_with_ada(arch, run_eagerly):
    if arch not in TINY_CONFIGS:
        pytest.fail(f"{arch} has no tiny config in tests/models/architecture_checks.py")
    # A long interval: p stays put, so the counters show what each update observed.
    model = build_tiny(arch, augment="ada", ada_interval=100)
    model.compile(run_eagerly=run_eagerly)  # eager: no tracing, a few seconds per model
    assert model.adaptive_augments and model.get_config()["augment"] == "ada"
    for ada in model.adaptive_augments:
        ada.p.assign(0.5)  # the transforms run (at p = 0 they are skipped)
    history = check_train_step(model, tiny_dataset(model, arch, num_batches=1))
    logged = sorted(k for k in history.history if k.startswith("ada_"))
    suffixes = ["_a", "_b"] if len(model.adaptive_augments) == 2 else [""]
    assert logged == sorted(f"ada_{x}{s}" for x in ("p", "rt") for s in suffixes)
    # Every discriminator update (n_critic of them for WGANs) observed its real minibatch.
    batch, updates = TINY_CONFIGS[arch]["batch"], model.batches_per_step
    for ada in model.adaptive_augments:
        assert int(ada.updates.numpy()) == updates
        assert float(ada.image_count.numpy()) == updates * batch
        assert abs(float(ada.sign_sum.numpy())) <= updates * batch
        assert float(ada.p.numpy()) == 0.5


def test_the_call_that_ends_an_epoch_of_unknown_length_is_no_update():
    # Keras ends such an epoch with a call whose data runs out; its counter of
    # updates since the last adjustment advanced in it (3 updates counted 4, and
    # p moved one update early every epoch).
    model = tiny_dcgan(ada_interval=100)
    model.compile()
    data = tf.data.Dataset.from_tensor_slices(images(batch=24, size=16)).batch(8)
    model.fit(data.filter(lambda batch: True), epochs=2, verbose=0)
    assert int(model.ada.updates.numpy()) == 6
    assert float(model.ada.image_count.numpy()) == 6 * 8


@pytest.mark.parametrize("augmented", ["a", "b"])
def test_each_cyclegan_discriminator_has_its_own_ada(augmented):
    """D_A sees images through `ada_a` and `ada_a` observes D_A's scores; D_B
    likewise with `ada`. One ADA at p = 0 (the identity), the other near
    P_MAX: only the second discriminator's inputs may differ from the batch.
    The test above counts what each ADA observed, which is the same for
    either discriminator: augmenting D_A with D_B's ADA, or feeding ada_a
    D_B's scores, passed it and test_cyclegan.py."""
    model = build_tiny("cyclegan", augment="ada", ada_interval=100)
    model.compile(run_eagerly=True)
    adas = {"a": model.ada_a, "b": model.ada}
    for domain, ada in adas.items():
        ada.p.assign(0.9 if domain == augmented else 0.0)
    inputs, outputs, observed = {"a": [], "b": []}, {"a": [], "b": []}, {"a": [], "b": []}
    for domain, network in (("a", model.discriminator_a), ("b", model.discriminator)):
        def recording(x, *args, _call=network.call, _domain=domain, **kwargs):
            out = _call(x, *args, **kwargs)
            inputs[_domain].append(np.array(x))
            outputs[_domain].append(np.array(out))
            return out

        object.__setattr__(network, "call", recording)
    for domain, ada in adas.items():
        def observing(real, *args, _observe=ada.observe, _domain=domain, **kwargs):
            observed[_domain].append(np.array(real))
            return _observe(real, *args, **kwargs)

        object.__setattr__(ada, "observe", observing)
    data = tiny_dataset(model, "cyclegan", num_batches=1)
    real = dict(zip("ab", (np.array(x) for x in next(iter(data)))))
    model.fit(data, epochs=1, verbose=0)
    for domain in "ab":
        unchanged = [np.array_equal(x, real[domain]) for x in inputs[domain]]
        # The discriminator update scores the domain's reals once.
        assert any(unchanged) is (domain != augmented), (domain, unchanged)
        # Its ADA observed that discriminator's scores of them, once.
        assert len(observed[domain]) == 1
        assert any(np.array_equal(observed[domain][0], out) for out in outputs[domain])
        other = "b" if domain == "a" else "a"
        assert not any(np.array_equal(observed[domain][0], out) for out in outputs[other])


def test_a_train_step_that_never_observes_fails_clearly():
    class Forgetful(DCGAN):
        def train_step(self, data):
            real, _ = self._split_batch(data)
            self.discriminator(self.discriminator_view(real), training=True)
            return self.report_losses(d_loss=0.0, g_loss=0.0)

    plain = DCGAN.from_image_shape((16, 16, 1), latent_dim=4, filters=4)
    model = Forgetful(plain.generator, plain.discriminator, augment="ada")
    model.compile(run_eagerly=True)
    with pytest.raises(RuntimeError, match="never called self.observe_discriminator"):
        model.fit(np.zeros((8, 16, 16, 1), "float32"), batch_size=8, epochs=1, verbose=0)


# ---------------------------------------------------------------- arguments
def test_bad_ada_arguments_raise_clear_errors():
    networks = DCGAN.from_image_shape((16, 16, 1), latent_dim=4, filters=4)
    target, kimg, interval = (
        r"ada_target must be a number in \(0, 1\)", "ada_kimg must be a positive number",
        "ada_interval must be a positive int",
    )
    cases = [
        ({"ada_target": 0.0}, target), ({"ada_target": 1.0}, target),
        ({"ada_target": -0.6}, target), ({"ada_target": "high"}, target),
        ({"ada_target": "0.6"}, target), ({"ada_kimg": "1e3"}, kimg),
        ({"ada_kimg": 0}, kimg), ({"ada_kimg": -500}, kimg), ({"ada_kimg": float("inf")}, kimg),
        ({"ada_interval": 0}, interval), ({"ada_interval": 2.5}, interval),
        ({"ada_interval": True}, interval),
    ]
    for kwargs, match in cases:
        with pytest.raises(ValueError, match=match):
            DCGAN(networks.generator, networks.discriminator, augment="ada", **kwargs)


def test_ada_is_not_combined_and_needs_images():
    with pytest.raises(ValueError, match="combines 'ada' with DiffAugment"):
        DCGAN.from_image_shape((16, 16, 1), latent_dim=4, filters=4, augment="ada,cutout")
    with pytest.raises(ValueError, match="CycleGAN takes augment='ada'"):
        build_tiny("cyclegan", augment="translation")
    points = kgan.networks.mlp_generator(latent_dim=2, data_dim=2)
    with pytest.raises(ValueError, match=r"not \(H, W, C\) images"):
        WGANGP(points, kgan.networks.mlp_discriminator(data_dim=2), augment="ada")
    with pytest.raises(ValueError, match="Unknown ADA transforms"):
        AdaptiveAugment(transforms="xflip,flip")
    with pytest.raises(ValueError, match="center must be a number"):
        AdaptiveAugment(center="middle")


# ---------------------------------------------------------------- command line
def test_kgan_train_augment_ada_logs_p_and_records_the_recipe(tmp_path):
    # Written "ADA": it trained ADA but refused --ada-kimg, and recorded "ADA".
    output = tmp_path / "run"
    argv = ["train", "dcgan", "--dataset", "digits_8x8", "--image-size", "16", "--epochs", "1",
            "--batch-size", "250", "--latent-dim", "8", "--filters", "4", "--verbose", "0", "--augment", "ADA",
            "--ada-kimg", "1", "--ada-target", "0.5", "--output", str(output)]
    assert cli.main(argv) == 0
    with open(output / "log.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert 0.0 <= float(rows[0]["ada_p"]) < 1.0 and -1 <= float(rows[0]["ada_rt"]) <= 1
    training = kgan.zoo.read_metadata(output / "preset")["training"]
    assert (training["augment"], training["ada_kimg"], training["ada_target"]) == ("ada", 1.0, 0.5)
    model = kgan.zoo.load(output / "preset")
    assert model.augment == "ada" and (model.ada.kimg, model.ada.target) == (1.0, 0.5)


def test_kgan_train_refuses_ada_options_without_ada(tmp_path, capsys):
    argv = ["train", "dcgan", "--dataset", "digits_8x8", "--epochs", "1", "--ada-kimg", "100",
            "--output", str(tmp_path / "x")]
    assert cli.main(argv) == 2
    assert "--ada-kimg only apply with --augment ada" in capsys.readouterr().err
