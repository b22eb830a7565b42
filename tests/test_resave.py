"""kgan.resave: presets re-saved with today's layers keep their weights, outputs and figures."""

import json

import keras
import numpy as np
import pytest

from kgan import layers as kgan_layers
from kgan import zoo
from kgan.benchmarks.baselines import keras_layers
from kgan.resave import layer_swaps, main, recipe_model, resave_preset

RECIPE = "kgan train dcgan --dataset mnist_5k --epochs 1 --latent-dim 8 --filters 8 --seed 0 --output run"


def _metadata(recipe=RECIPE):
    return {"name": "tiny", "description": "tiny DCGAN", "dataset": "mnist_5k", "recipe": recipe,
            "license": "Apache-2.0", "metrics": {"fcd": 123.4}, "notes": "Trained for a test."}


def _trained_looking_weights(network, rng):
    """Weights for `network` that no freshly built model has, as a trained preset's are.

    Kernels at unit output scale (images spread over [-1, 1], not within 1e-3
    of zero), and batch-norm statistics away from their initial 0 and 1: a
    re-save that dropped the non-trainable weights would then change them.
    """
    weights = []
    for variable in network.weights:
        shape, kind = tuple(variable.shape), variable.path.rsplit("/", 1)[-1]
        if kind == "kernel":
            value = rng.normal(0.0, 1.0 / np.sqrt(np.prod(shape[:-1])), shape)
        elif kind == "moving_variance":
            value = rng.uniform(0.25, 4.0, shape)
        elif kind in ("gamma", "moving_mean"):
            value = (kind == "gamma") + rng.normal(0.0, 0.5, shape)
        else:  # biases, beta
            value = rng.normal(0.0, 0.1, shape)
        weights.append(value.astype(variable.dtype))
    network.set_weights(weights)


@pytest.fixture(scope="module")
def keras_layer_preset(tmp_path_factory):
    """A preset saved from a model with Keras's own layers, as older kgan builders made it."""
    model = recipe_model(_metadata())
    config = model.get_config()
    for name in ("generator", "discriminator"):
        config[name] = keras.saving.serialize_keras_object(keras_layers(getattr(model, name)))
    old = type(model).from_config(config)
    # Set on `old` itself: from_config rebuilds the networks with fresh weights.
    rng = np.random.default_rng(0)
    for name in ("generator", "discriminator"):
        _trained_looking_weights(getattr(old, name), rng)
    folder = tmp_path_factory.mktemp("presets") / "old"
    zoo.save_preset(old, folder, _metadata())
    return folder


def _layer_types(network):
    return {type(layer) for layer in network.layers}


def test_resave_swaps_in_todays_layers_and_keeps_weights_outputs_and_figures(keras_layer_preset, tmp_path):
    old = zoo.load(keras_layer_preset)
    assert keras.layers.BatchNormalization in _layer_types(old.generator)
    # The preset's batch-norm statistics are not the initial ones the recipe's
    # fresh model holds, so the equalities below need them copied.
    variances = [np.asarray(v) for v in old.generator.non_trainable_variables if "variance" in v.path]
    assert variances and all(np.abs(v - 1).min() > 0.01 for v in variances)
    report = resave_preset(keras_layer_preset, tmp_path / "new")
    assert report["swapped"] == {
        "BatchNormalization -> FusedBatchNormalization": 3,  # no refine block at this size
        "Conv2DTranspose -> ForwardGradConv2DTranspose": 2,
        "Conv2D -> ForwardGradConv2D": 2,
    }
    assert report["max_score_difference"] == 0.0
    new = zoo.load(tmp_path / "new")
    assert kgan_layers.FusedBatchNormalization in _layer_types(new.generator)
    assert keras.layers.BatchNormalization not in _layer_types(new.generator)
    assert kgan_layers.ForwardGradConv2D in _layer_types(new.discriminator)
    for a, b in zip(old.weights, new.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(np.asarray(old.generate(8, seed=3)), np.asarray(new.generate(8, seed=3)))
    before, after = zoo.read_metadata(keras_layer_preset), zoo.read_metadata(tmp_path / "new")
    assert after["metrics"] == before["metrics"] and after["recipe"] == before["recipe"]
    assert after["weights_sha256"] == report["weights_sha256"] != before["weights_sha256"]
    assert after["notes"].startswith("Trained for a test.\n\nRe-saved on ")
    assert before["weights_sha256"] in after["notes"]
    assert (tmp_path / "new" / "samples.png").read_bytes() == (keras_layer_preset / "samples.png").read_bytes()


def test_resaving_a_current_preset_changes_no_layer_and_adds_no_note(keras_layer_preset, tmp_path):
    resave_preset(keras_layer_preset, tmp_path / "new")
    report = resave_preset(tmp_path / "new", tmp_path / "again")
    assert report["swapped"] == {}
    assert zoo.read_metadata(tmp_path / "again")["notes"] == zoo.read_metadata(tmp_path / "new")["notes"]


def test_resave_refuses_a_recipe_that_builds_another_model_and_writes_nothing(keras_layer_preset, tmp_path):
    changed = tmp_path / "changed"
    resave_preset(keras_layer_preset, changed)
    zoo.update_metadata(changed, {"recipe": RECIPE.replace("--filters 8", "--filters 16")})
    with pytest.raises(zoo.PresetMismatchError, match="Retrain the preset with its recipe"):
        resave_preset(changed, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_resave_in_place_replaces_the_folder_and_refuses_without_overwrite(keras_layer_preset, tmp_path):
    folder = tmp_path / "preset"
    resave_preset(keras_layer_preset, folder)
    with pytest.raises(FileExistsError, match="overwrite"):
        resave_preset(folder, folder)
    before = zoo.load(folder)
    samples = (folder / zoo.SAMPLES_FILE).read_bytes()
    resave_preset(folder, folder, overwrite=True)
    assert zoo.read_metadata(folder)["weights_sha256"] == zoo.file_sha256(folder / zoo.WEIGHTS_FILE)
    assert sorted(p.name for p in folder.iterdir()) == sorted(zoo.PRESET_FILES)
    # Read from the folder it replaces, the preset keeps its weights, outputs and sample sheet.
    after = zoo.load(folder)
    assert len(after.weights) == len(before.weights)
    for a, b in zip(before.weights, after.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(np.asarray(before.generate(8, seed=3)), np.asarray(after.generate(8, seed=3)))
    assert (folder / zoo.SAMPLES_FILE).read_bytes() == samples


@pytest.mark.parametrize("recipe", [None, "python train.py --epochs 3"])
def test_recipe_model_needs_a_kgan_train_recipe(recipe):
    with pytest.raises(zoo.PresetMismatchError, match="records no `kgan train` recipe"):
        recipe_model({"name": "x", "recipe": recipe})


def test_recipe_model_refuses_a_recipe_kgan_train_does_not_accept():
    with pytest.raises(zoo.PresetMismatchError, match="does not accept"):
        recipe_model({"name": "x", "recipe": "kgan train dcgan --no-such-flag"})


def test_layer_swaps_names_the_first_layer_that_differs():
    a = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.LayerNormalization()])
    b = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3),
                          kgan_layers.AnalyticGradLayerNormalization()])
    assert layer_swaps(a, b) == {"LayerNormalization -> AnalyticGradLayerNormalization": 1}
    c = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5), keras.layers.LayerNormalization()])
    with pytest.raises(zoo.PresetMismatchError, match="layer 'dense.*in its config"):
        layer_swaps(a, c)
    d = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    with pytest.raises(zoo.PresetMismatchError, match="has 2 layers, its recipe builds 1"):
        layer_swaps(a, d)


def test_main_prints_the_report_or_a_one_line_error(keras_layer_preset, tmp_path, capsys):
    assert main([str(keras_layer_preset), "--output", str(tmp_path / "new")]) == 0
    assert json.loads(capsys.readouterr().out)["preset"] == "tiny"
    assert main([str(keras_layer_preset), "--output", str(tmp_path / "new")]) == 2
    assert "exists; pass --overwrite to replace it" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(zoo.list()))
def test_shipped_presets_hold_the_layers_their_recipes_build_today(name):
    """If this fails after a builder change, re-save: python -m kgan.resave NAME --output zoo/NAME --overwrite."""
    preset = zoo.load(name)
    model = recipe_model(zoo.read_metadata(zoo.resolve(name)))
    for network in getattr(preset, "preset_networks", ("generator", "discriminator")):
        assert layer_swaps(getattr(preset, network), getattr(model, network), network) == {}, (
            f"{name}'s {network} was saved with older layers: python -m kgan.resave {name} "
            f"--output zoo/{name} --overwrite"
        )
