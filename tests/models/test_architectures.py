"""The shared contract, run over every registered architecture."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import kgan
from kgan.layers import _Float32BiasGrad
from kgan.models import InputValidationError
from architecture_checks import (
    TINY_CONFIGS,
    build_tiny,
    check_export_round_trip,
    check_keras_round_trip,
    check_replicas_agree_on_batchnorm_statistics,
    changed,
    check_train_step,
    networks,
    sample,
    snapshot,
    sample_shape,
    tiny_dataset,
)
from kgan_test_utils import slow_except

ARCHITECTURES = kgan.zoo.list(kind="architectures")
#: CycleGAN's four networks make its copy of the heaviest checks minutes of CPU;
#: it runs them with -m slow (tests/models/test_cyclegan.py covers two replicas
#: and its own training by default).
ARCHITECTURES_DEFAULT_RUN = slow_except(ARCHITECTURES, set(ARCHITECTURES) - {"cyclegan"})
#: For checks of `fit` itself: GAN.fit serves every architecture but CycleGAN,
#: which has its own.
DISTINCT_FITS = {"dcgan", "cyclegan"}
#: kgan's default (autotuning unset) for every architecture; a pipeline's
#: explicit choice once per fit (the others with -m slow).
AUTOTUNE_CASES = slow_except(
    [(arch, autotune) for autotune in (None, True, False) for arch in ARCHITECTURES],
    {(arch, None) for arch in ARCHITECTURES}
    | {(arch, autotune) for arch in DISTINCT_FITS for autotune in (True, False)},
)


def test_every_architecture_has_a_tiny_config():
    assert ARCHITECTURES, "no architectures registered"
    assert set(ARCHITECTURES) == set(TINY_CONFIGS)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_train_save_load_export(arch, tmp_path):
    model = build_tiny(arch)
    model.compile()
    check_train_step(model, tiny_dataset(model, arch))
    check_keras_round_trip(model, tmp_path / "model.keras")
    check_export_round_trip(model, tmp_path)


#: each architecture's networks by role (CycleGAN has two of each).
ROLES = {"generators": ("generator", "generator_ba"),
         "discriminators": ("discriminator", "discriminator_a")}


@pytest.mark.parametrize("frozen", sorted(ROLES))
@pytest.mark.parametrize("arch", ARCHITECTURES_DEFAULT_RUN)
def test_a_frozen_network_stays_as_it_is_while_the_other_trains(arch, frozen):
    # As in Keras, `trainable = False` leaves a network's weights alone: fit
    # failed instead with "not enough values to unpack (expected 2, got 0)"
    # from the frozen network's optimizer.
    model = build_tiny(arch)
    roles = {role: [getattr(model, n) for n in names if getattr(model, n, None) is not None]
             for role, names in ROLES.items()}
    for net in roles[frozen]:
        net.trainable = False
    model.compile()
    kept = roles[frozen] + ([model.ema_generator] if model.ema_generator is not None
                            and frozen == "generators" else [])
    before = {id(net): snapshot(net.weights) for net in kept}
    trained = [net for role, nets in roles.items() if role != frozen for net in nets]
    before_trained = [snapshot(net.trainable_variables) for net in trained]
    model.fit(tiny_dataset(model, arch, num_batches=2), epochs=1, verbose=0)
    for net in kept:  # frozen batch norm runs in inference mode: its statistics stay too
        for saved, variable in zip(before[id(net)], net.weights):
            np.testing.assert_array_equal(variable.numpy(), saved, err_msg=net.name)
    for net, weights in zip(trained, before_trained):
        assert changed(weights, net.trainable_variables), f"{net.name} did not train"


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_train_on_batch_trains_one_step_after_fits_checks(arch):
    # Keras packs (x, y, sample_weight) with Nones: kgan refused every call
    # as "a batch of 3 parts", and skipped fit's checks of the batch.
    model = build_tiny(arch)
    model.compile()
    batch = next(iter(tiny_dataset(model, arch)))
    parts = [np.asarray(part) for part in (batch if isinstance(batch, tuple) else (batch,))]
    before = [snapshot(net.trainable_variables) for net in networks(model)]
    losses = model.train_on_batch(*parts, return_dict=True)
    for net, weights in zip(networks(model), before):
        assert changed(weights, net.trainable_variables), f"{net.name} did not change"
    assert set(model.loss_names) <= set(losses) and all(np.isfinite(list(losses.values())))
    with pytest.raises(InputValidationError, match=r"scaled to \[-1, 1\]"):
        model.train_on_batch(parts[0] * 255, *parts[1:])
    with pytest.raises(ValueError, match=r"train_on_batch\(\) takes no sample_weight"):
        model.train_on_batch(*parts, sample_weight=np.ones(len(parts[0])))
    if len(parts) == 1:
        with pytest.raises(InputValidationError, match="would ignore the labels y"):
            model.train_on_batch(parts[0], np.zeros(len(parts[0]), "int32"))


def users_pipeline(dataset, autotune=None):
    """The batches of `dataset` in a pipeline as a user writes one, with
    tf.data's autotuning left unset (or set to `autotune`)."""
    batches = list(dataset.as_numpy_iterator())
    stacked = tf.nest.map_structure(lambda *parts: np.stack(parts), *batches)
    pipeline = tf.data.Dataset.from_tensor_slices(stacked).prefetch(tf.data.AUTOTUNE)
    if autotune is not None:
        options = tf.data.Options()
        options.autotune.enabled = autotune
        pipeline = pipeline.with_options(options)
    return pipeline


@pytest.mark.parametrize("arch, autotune", AUTOTUNE_CASES)
def test_fit_trains_without_autotuning_unless_the_pipeline_chooses(arch, autotune, monkeypatch):
    """Autotuning stalls epoch ends (see `kgan.data.without_teardown_stall`):
    fit turns it off for a user's dataset that leaves it unset, keeps an
    explicit choice, and leaves the user's dataset object as it was."""
    model = build_tiny(arch)
    model.compile()
    pipeline = users_pipeline(tiny_dataset(model, arch, num_batches=2), autotune)
    trained_on = []
    keras_fit = keras.Model.fit

    def recording_fit(self, x=None, *args, **kwargs):
        trained_on.append(x.options().autotune.enabled)
        return keras_fit(self, x, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", recording_fit)
    history = model.fit(pipeline, epochs=2, verbose=0)
    assert trained_on == [False if autotune is None else autotune]
    assert pipeline.options().autotune.enabled is autotune
    assert all(len(values) == 2 for values in history.history.values())


@pytest.mark.parametrize("arch", ARCHITECTURES_DEFAULT_RUN)
def test_mirrored_strategy(arch, tmp_path, two_cpu_strategy):
    with two_cpu_strategy.scope():
        model = build_tiny(arch)
        model.compile()
    assert model.distribute_strategy is two_cpu_strategy
    check_train_step(model, tiny_dataset(model, arch))
    check_replicas_agree_on_batchnorm_statistics(model)
    restored = check_keras_round_trip(model, tmp_path / "model.keras")
    assert sample(restored, 2, seed=0).shape == sample_shape(model, 2)
    check_export_round_trip(model, tmp_path)


def rebatched(dataset, batch_size, num_examples):
    """The first `num_examples` examples of `dataset`, in batches of
    `batch_size` as `Dataset.batch` cuts them by default: without
    drop_remainder, so the batch size is unknown until run time and the
    last batch is partial."""
    return dataset.unbatch().take(num_examples).batch(batch_size)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_fit_on_batches_of_unknown_size_with_a_partial_last_batch(arch):
    """The pipeline most users write. CycleGAN used to fail here when tracing
    its step: its fused instance norm lost the static image shape when the
    batch size was unknown, and the image pool refused (None, None, None, 3)."""
    model = build_tiny(arch)
    model.compile()
    per_step = TINY_CONFIGS[arch]["batch"] * model.batches_per_step
    partial = model.batches_per_step  # still splits into the step's minibatches
    data = rebatched(tiny_dataset(model, arch), per_step, 2 * per_step + partial)
    images_spec = tf.nest.flatten(data.element_spec)[0]
    assert images_spec.shape[0] is None
    history = model.fit(data, epochs=1, verbose=0).history
    assert set(history) == set(model.loss_names)
    assert all(np.isfinite(values).all() for values in history.values())
    assert all(np.isfinite(v.numpy()).all() for v in model.trainable_variables)


def _stop_on_a_batch_too_small_for_the_replicas(model, arch):
    """Fit a full batch, then one of 1 example on 2 replicas; return the
    error, the model's variables but its random streams, and their values
    after the full step and now."""
    per_step = TINY_CONFIGS[arch]["batch"] * model.batches_per_step
    data = rebatched(tiny_dataset(model, arch), per_step, per_step + 1)
    kept = [v for v in model.variables if "seed_generator_state" not in v.path]
    after_full_step = []
    snapshot = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: (
        after_full_step.extend(v.numpy().copy() for v in kept) if batch == 0 else None))
    with pytest.raises(InputValidationError) as raised:
        model.fit(data, epochs=1, verbose=0, callbacks=[snapshot])
    # Only the full step counts (see test_an_unknown_length_pipeline_counts_only_its_steps).
    assert int(model.g_optimizer.iterations.numpy()) == 1
    assert int(model.d_optimizer.iterations.numpy()) == model.batches_per_step
    return str(raised.value), kept, after_full_step, [v.numpy() for v in kept]


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_a_batch_that_leaves_a_replica_without_examples_is_stopped_unapplied(
        arch, two_cpu_strategy):
    """A last batch of one example on two replicas leaves one replica none;
    it failed deep in a layer ("input depth must be evenly divisible by
    filter depth: 1 vs 8"). fit now stops as the pipeline yields it, with
    what to change, and the networks, their batch-norm statistics and the
    image pools are as the full step left them."""
    with two_cpu_strategy.scope():
        model = build_tiny(arch)
        model.compile()
    message, _, after_full_step, now = _stop_on_a_batch_too_small_for_the_replicas(model, arch)
    assert message.startswith("A replica would get no examples: a batch (the epoch's last")
    assert "2 replicas" in message and "drop_remainder=True" in message
    assert len(now) == len(after_full_step) > 0
    for saved, current in zip(after_full_step, now):
        np.testing.assert_array_equal(current, saved)


def test_the_train_step_checks_the_replicas_batches_too(two_cpu_strategy, monkeypatch):
    """The step's own check, for inputs that fit cannot check as they are
    yielded: it stops the step before its losses and updates."""
    monkeypatch.setattr(kgan.models.GAN, "_checked_for_the_replicas", lambda self, data: data)
    with two_cpu_strategy.scope():
        model = build_tiny("dcgan")
        model.compile()
    message, kept, after_full_step, now = _stop_on_a_batch_too_small_for_the_replicas(
        model, "dcgan")
    assert message.startswith("A replica would get no examples")
    trainable = {id(v) for v in model.trainable_variables}
    for variable, saved, current in zip(kept, after_full_step, now):
        if id(variable) in trainable:  # (replica 0's forward pass may move batch-norm statistics)
            np.testing.assert_array_equal(current, saved)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_an_unknown_length_pipeline_counts_only_its_steps(arch):
    """Keras (3.15) ends each epoch of a pipeline of unknown length with a
    call whose data runs out, and its optimizer counts an update for it (a
    plain keras.Sequential: 8 iterations for 2 epochs of 3 batches). kgan's
    updates wait for the step's loss, so nothing is counted without data:
    Adam's bias correction and rate schedules see the steps made."""
    model = build_tiny(arch)
    model.compile()
    data = tiny_dataset(model, arch, num_batches=3).filter(lambda *batch: True)
    assert int(data.cardinality()) == tf.data.UNKNOWN_CARDINALITY
    model.fit(data, epochs=2, verbose=0)
    assert int(model.g_optimizer.iterations.numpy()) == 6
    assert int(model.d_optimizer.iterations.numpy()) == 6 * model.batches_per_step


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_an_unknown_length_pipeline_logs_the_mean_of_its_steps(arch):
    """The loss trackers count only the steps made, too: their counts do not
    depend on the losses, and counted the call that ends such an epoch
    without data, so an epoch of 3 steps logged 3/4 of its mean losses (a
    custom train_step's keras.metrics.Mean does the same in plain Keras)."""
    model = build_tiny(arch)
    model.compile()
    data = tiny_dataset(model, arch, num_batches=3).filter(lambda *batch: True)
    last_batch = {}
    record = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: last_batch.update(logs))
    history = model.fit(data, epochs=1, verbose=0, callbacks=[record])
    assert [float(t.count.numpy()) for t in model.loss_trackers] == [3.0] * len(model.loss_trackers)
    for name in model.loss_names:  # running means: the last batch's is the epoch's
        assert history.history[name][0] == pytest.approx(float(last_batch[name]), rel=1e-6)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_fit_refuses_a_first_batch_that_splits_unevenly_over_the_replicas(arch, two_cpu_strategy):
    # Keras adds the replicas' parts of the first batch to build the model:
    # 3 examples on 2 replicas failed deep in TensorFlow ("AddN must have the
    # same size and shape"), for any Keras model.
    # n_critic=3: with 2 the batch is even (a multiple of n_critic) and splits.
    odd = {"n_critic": 3} if "n_critic" in TINY_CONFIGS[arch]["build"] else {}
    with two_cpu_strategy.scope():
        model = build_tiny(arch, **odd)
        model.compile()
    data = tiny_dataset(model, arch).unbatch().batch(3 * model.batches_per_step)
    with pytest.raises(InputValidationError, match=r"first batch holds \d+ examples, which do not "
                       r"split evenly over the strategy's 2 replicas.*multiple of 2"):
        model.fit(data, epochs=1, verbose=0)
    assert int(model.g_optimizer.iterations.numpy()) == 0


def test_fit_refuses_arrays_whose_last_batch_leaves_a_replica_empty(two_cpu_strategy):
    with two_cpu_strategy.scope():
        model = build_tiny("dcgan")
        model.compile()
    images = np.zeros((9, 16, 16, 1), "float32")
    with pytest.raises(InputValidationError, match=r"the last holds 1, fewer than the "
                       r"strategy's 2 replicas.*Pass 8 examples \(x\[:8\]\)"):
        model.fit(images, batch_size=4, epochs=1, verbose=0)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_mixed_bfloat16(arch, tmp_path):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model = build_tiny(arch)
    model.compile()
    assert model.generator.layers[1].compute_dtype == "bfloat16"
    assert all(v.dtype == "float32" for v in model.generator.trainable_variables)
    # TensorFlow's CPU BiasAddGrad sums a 16-bit bias gradient in 16 bits (most
    # of it rounds away): every biased layer computing in 16 bits must sum it
    # in float32 (tests/test_layers.py checks the sums themselves).
    sixteen_bit_biased = [
        layer for network in networks(model) for layer in network._flatten_layers()
        if getattr(layer, "use_bias", False) and layer.compute_dtype != "float32"
    ]
    assert sixteen_bit_biased, "expected a biased bfloat16 layer (a discriminator's first)"
    assert [l.name for l in sixteen_bit_biased if not isinstance(l, _Float32BiasGrad)] == []
    check_train_step(model, tiny_dataset(model, arch))
    images = sample(model, 3, seed=0)
    assert images.dtype == np.float32 and np.abs(images).max() <= 1.0
    check_keras_round_trip(model, tmp_path / "model.keras")
    check_export_round_trip(model, tmp_path)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_xla_compiled_training_in_bfloat16(arch):
    """The configuration a TPU runs (and GPUs can): the whole train step
    compiled by XLA, in mixed_bfloat16, with EMA, DiffAugment and pools."""
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model = build_tiny(arch)
    model.compile(jit_compile=True)
    assert model.jit_compile is True
    check_train_step(model, tiny_dataset(model, arch))
    assert np.isfinite(sample(model, 2, seed=0)).all()


@pytest.mark.parametrize("arch", ARCHITECTURES_DEFAULT_RUN)
def test_mixed_float16_wraps_both_optimizers(arch):
    keras.mixed_precision.set_global_policy("mixed_float16")
    model = build_tiny(arch)
    model.compile()
    assert isinstance(model.g_optimizer, keras.optimizers.LossScaleOptimizer)
    assert isinstance(model.d_optimizer, keras.optimizers.LossScaleOptimizer)
    # Dynamic loss scaling starts at 2**15 and halves on every overflowing
    # step, which it skips: CycleGAN's x10 cycle loss skips its first 4.
    check_train_step(model, tiny_dataset(model, arch, num_batches=6))
    assert np.isfinite(sample(model, 2, seed=0)).all()


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_backup_and_restore_resumes_optimizers(arch, tmp_path):
    """An interrupted fit resumes with both optimizers' iteration counts and
    the networks' weights of the backup."""
    backup = str(tmp_path / "backup")

    class StopAfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                raise KeyboardInterrupt("simulated crash")

    model = build_tiny(arch)
    model.compile()
    data = tiny_dataset(model, arch, num_batches=2)
    with pytest.raises(KeyboardInterrupt):
        model.fit(data, epochs=3, verbose=0,
                  callbacks=[keras.callbacks.BackupAndRestore(backup), StopAfterFirstEpoch()])
    steps_done = int(model.d_optimizer.iterations.numpy())
    # Two train_steps, each making batches_per_step discriminator updates.
    assert steps_done == 2 * model.batches_per_step
    assert int(model.g_optimizer.iterations.numpy()) == 2
    backed_up = [w.numpy().copy() for w in model.generator.weights + model.discriminator.weights]

    resumed = build_tiny(arch)
    resumed.compile()
    seen_epochs = []
    record = keras.callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: seen_epochs.append(e))
    # Capture state right at the start of training, after the restore.
    restored_iterations, restored_weights = [], []

    def capture(logs):
        restored_iterations.append(
            (int(resumed.g_optimizer.iterations.numpy()), int(resumed.d_optimizer.iterations.numpy())))
        restored_weights.extend(
            w.numpy().copy() for w in resumed.generator.weights + resumed.discriminator.weights)

    at_start = keras.callbacks.LambdaCallback(on_train_begin=capture)
    resumed.fit(data, epochs=3, verbose=0,
                callbacks=[keras.callbacks.BackupAndRestore(backup), at_start, record])
    assert seen_epochs == [1, 2]
    assert restored_iterations[0] == (2, steps_done)
    assert len(restored_weights) == len(backed_up)
    for saved, restored in zip(backed_up, restored_weights):
        np.testing.assert_array_equal(restored, saved)
    assert int(resumed.d_optimizer.iterations.numpy()) == steps_done * 3
