"""kgan.evaluation and `kgan evaluate`: sources, protocols, card records, bad input."""

import json
import shutil

import numpy as np
import pytest

from kgan import cli, evaluation, images, zoo
from kgan.models import DCGAN
from kgan_test_utils import TINY_METADATA, spread_weights

NUM = 200


@pytest.fixture(scope="module")
def digits_preset(tmp_path_factory):
    """A tiny untrained 28x28x1 DCGAN preset whose dataset is mnist_5k."""
    folder = tmp_path_factory.mktemp("evaluation") / "tiny_digits"
    model = spread_weights(DCGAN.from_image_shape((28, 28, 1), latent_dim=8, filters=4, seed=0))
    return zoo.save_preset(model, folder, dict(TINY_METADATA, name="tiny_digits", dataset="mnist_5k"))


@pytest.fixture(scope="module")
def real_vs_real():
    return evaluation.evaluate(
        "mnist_5k", split="train[50%:]", against="mnist_5k", against_split="train[:50%]", num=NUM
    )


def run(argv):
    try:
        return cli.main([str(a) for a in argv])
    except SystemExit as exit_:
        return exit_.code


def test_real_vs_real_is_close_and_an_untrained_generator_is_far(digits_preset, real_vs_real):
    fake = evaluation.evaluate(digits_preset, against_split="train[:50%]", num=NUM)
    real = real_vs_real["metrics"]
    assert set(fake["metrics"]) == {
        "fcd", "kid", "kid_std", "classifier_score", "classifier_score_std", "precision", "recall"
    }
    assert fake["protocol"] == {
        "against": "mnist_5k train[:50%]", "extractor": "mnist_classifier", "num": NUM, "seed": 0,
        "metrics": ["fid", "kid", "is", "pr"],
    }
    assert fake["metrics"]["fcd"] > 10 * real["fcd"]
    assert real["classifier_score"] > 8.0 > fake["metrics"]["classifier_score"]
    assert real["precision"] > 0.5 and real["recall"] > 0.5
    assert fake["preset_folder"] == str(digits_preset)


def test_evaluation_is_deterministic_for_a_seed(digits_preset):
    first = evaluation.evaluate(digits_preset, num=NUM, metrics_to_compute=("fid",))
    again = evaluation.evaluate(digits_preset, num=NUM, metrics_to_compute=("fid",))
    assert first["metrics"] == again["metrics"]


def test_a_folder_of_pngs_is_a_source(tmp_path, real_vs_real):
    real, _ = __import__("kgan").data.embedded_split("mnist_5k", "train[50%:]")
    images.save_pngs(images.from_uint8(real[:NUM]), tmp_path / "pngs")
    result = evaluation.evaluate(
        tmp_path / "pngs", against="mnist_5k", against_split="train[:50%]", num=NUM
    )
    # The same images as the dataset source, through PNG files: the same figures.
    assert result["metrics"]["fcd"] == pytest.approx(real_vs_real["metrics"]["fcd"], rel=1e-3)


def test_a_folder_of_pngs_against_a_folder_of_pngs(tmp_path, real_vs_real):
    # "--against takes a dataset or image folder": a folder source refused a folder.
    real, _ = __import__("kgan").data.embedded_split("mnist_5k", "train")
    half = len(real) // 2
    images.save_pngs(images.from_uint8(real[half:half + NUM]), tmp_path / "a")
    images.save_pngs(images.from_uint8(real[:NUM]), tmp_path / "b")
    result = evaluation.evaluate(tmp_path / "a", against=str(tmp_path / "b"), num=NUM)
    # The dataset-against-dataset figures, through PNG files on both sides.
    assert result["metrics"]["fcd"] == pytest.approx(real_vs_real["metrics"]["fcd"], rel=1e-3)


def test_card_records_figures_reference_and_comparisons(digits_preset, tmp_path):
    import shutil

    folder = tmp_path / "card"
    shutil.copytree(digits_preset, folder)
    result = evaluation.evaluate(
        folder, against_split="train[:50%]", num=NUM, reference="mnist_5k",
        reference_split="train[50%:]",
    )
    evaluation.record_in_card(folder, result, "kgan evaluate ...")
    metadata = zoo.read_metadata(folder)
    assert metadata["metrics"] == result["metrics"]
    assert metadata["evaluation"]["reference"]["source"] == "mnist_5k train[50%:]"
    card = (folder / "README.md").read_text()
    assert "real vs real: mnist_5k train[50%:]" in card and "| fcd |" in card
    # A comparison measured the same way becomes a column ...
    evaluation.record_comparison(folder, "same again", result, "kgan evaluate again")
    assert "same again" in (folder / "README.md").read_text()
    # ... one measured another way is refused and changes nothing.
    other = dict(result, protocol=dict(result["protocol"], num=NUM + 1))
    before = (folder / "metadata.json").read_text()
    with pytest.raises(ValueError, match="protocol"):
        evaluation.record_comparison(folder, "different", other, "kgan evaluate other")
    assert (folder / "metadata.json").read_text() == before
    # Re-recording with the same protocol keeps the comparison rows.
    evaluation.record_in_card(folder, result, "kgan evaluate ...")
    assert zoo.read_metadata(folder)["evaluation"]["comparisons"][0]["label"] == "same again"


# ---------------------------------------------------------------- CLI
def test_cli_prints_json_writes_a_file_and_updates_the_card(digits_preset, tmp_path, capsys):
    import shutil

    folder = tmp_path / "cli_card"
    shutil.copytree(digits_preset, folder)
    code = run(["evaluate", folder, "--num", NUM, "--metrics", "fid,is", "--json",
                tmp_path / "out" / "result.json", "--update-card"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    printed = json.loads(captured.out)
    assert set(printed["metrics"]) == {"fcd", "classifier_score", "classifier_score_std"}
    assert printed["command"].startswith("kgan evaluate ")
    assert json.loads((tmp_path / "out" / "result.json").read_text()) == printed
    assert "image" in captured.err  # the progress bar went to stderr
    assert zoo.read_metadata(folder)["metrics"] == printed["metrics"]


def test_cli_a_refused_comparison_row_changes_neither_card_and_keeps_the_figures(
        digits_preset, tmp_path, capsys):
    # --update-card used to rewrite this card before --compare-into's protocol
    # check failed, dropping its reference and comparison rows, and printed nothing.
    import shutil

    this, other = tmp_path / "this", tmp_path / "other"
    for folder in (this, other):
        shutil.copytree(digits_preset, folder)
    assert run(["evaluate", other, "--num", NUM, "--metrics", "fid", "--seed", "1",
                "--update-card"]) == 0
    before = {f: (f / "metadata.json").read_text() for f in (this, other)}
    cards = {f: (f / "README.md").read_text() for f in (this, other)}
    capsys.readouterr()
    code = run(["evaluate", this, "--num", NUM, "--metrics", "fid", "--update-card",
                "--compare-into", other, "--label", "x", "--json", tmp_path / "out.json"])
    captured = capsys.readouterr()
    assert code == 2
    assert "was evaluated with protocol" in captured.err and "Nothing was recorded" in captured.err
    assert "updated" not in captured.err
    assert json.loads(captured.out)["metrics"]["fcd"] > 0  # the figures are not lost
    assert json.loads((tmp_path / "out.json").read_text()) == json.loads(captured.out)
    for folder in (this, other):
        assert (folder / "metadata.json").read_text() == before[folder]
        assert (folder / "README.md").read_text() == cards[folder]


def test_cli_default_metrics_leave_out_is_for_an_extractor_without_probabilities(
        digits_preset, tmp_path, capsys, monkeypatch):
    # The default (fid,kid,is,pr) failed after both sets were extracted, for
    # InceptionV3 or any features-only .keras extractor.
    import keras

    features = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                                 keras.layers.Dense(8)])
    features.save(tmp_path / "features.keras")
    assert run(["evaluate", digits_preset, "--num", NUM, "--extractor",
                tmp_path / "features.keras"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["protocol"]["metrics"] == ["fid", "kid", "pr"]
    assert "fcd" in printed["metrics"] and not any("score" in k for k in printed["metrics"])
    # Asked for by name, it is refused before any image is read.
    read = []
    monkeypatch.setattr(evaluation.metrics, "features_from", lambda *a, **k: read.append(1))
    assert run(["evaluate", digits_preset, "--num", NUM, "--metrics", "fid,is", "--extractor",
                tmp_path / "features.keras"]) == 2
    err = capsys.readouterr().err
    assert "needs class probabilities" in err and "--metrics fid" in err and not read


def test_cli_update_card_of_a_folder_of_images_is_refused_before_any_work(tmp_path, capsys):
    (tmp_path / "pngs").mkdir()
    images.save_grid(np.zeros((1, 28, 28, 1), "float32"), tmp_path / "pngs" / "a.png", ncols=1)
    assert run(["evaluate", tmp_path / "pngs", "--against", "mnist_5k", "--update-card"]) == 2
    assert "--update-card needs a preset" in capsys.readouterr().err


def test_cli_card_writes_into_the_installed_catalog_are_refused_before_any_work(
        digits_preset, tmp_path, monkeypatch, capsys):
    catalog = tmp_path / "_catalog"
    shipped = shutil.copytree(digits_preset, catalog / "tiny_digits")
    monkeypatch.setattr(zoo, "_installed_catalog", lambda: catalog)
    zoo.register_preset("tiny_digits_shipped", path=shipped)
    read = []
    monkeypatch.setattr(evaluation.metrics, "features_from", lambda *a, **k: read.append(1))
    before = (shipped / zoo.METADATA_FILE).read_bytes()
    try:
        for argv in (["evaluate", "tiny_digits_shipped", "--update-card"],
                     ["evaluate", shipped, "--update-card"],
                     ["evaluate", digits_preset, "--compare-into", shipped, "--label", "x"]):
            assert run(argv + ["--num", NUM, "--metrics", "fid"]) == 2
            err = capsys.readouterr().err
            assert "installed kgan package" in err and "Copy it" in err, err
    finally:
        zoo.unregister_preset("tiny_digits_shipped")
    assert not read and (shipped / zoo.METADATA_FILE).read_bytes() == before


def test_reference_preset_translator_seed_and_split_flags_are_refused_by_name(digits_preset):
    with pytest.raises(ValueError, match="--reference dcgan_mnist is a preset.*--compare-into"):
        evaluation.evaluate(digits_preset, num=NUM, reference="dcgan_mnist")
    with pytest.raises(ValueError, match="cyclegan_digits is an image translator.*evaluate_translation"):
        evaluation.evaluate("cyclegan_digits", num=NUM)
    with pytest.raises(ValueError, match=r"seed must be an integer >= 0 \(--seed\), got -1"):
        evaluation.evaluate(digits_preset, num=NUM, seed=-1)
    with pytest.raises(ValueError, match=r"drop the split \(--against-split\)"):
        evaluation.evaluate(digits_preset, num=NUM, against="dcgan_mnist", against_split="train[:5]")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--seed", "-1"], "--seed must be >= 0, got -1"),
        (["--metrics", "fid,lpips"], "unknown metrics"),
        (["--against", "no_such_dataset_kgan"], "no_such_dataset_kgan"),
        (["--compare-into", "."], "needs --label"),
        (["--extractor", "inception_v3", "--inception-weights", "/nonexistent/w.h5"], "w.h5"),
        (["--against", "mnist_5k", "--against-split", "test"], "only the split 'train'"),
        (["--live-generator"], "no EMA generator"),
        (["--num", "0"], "positive integer"),
    ],
)
def test_cli_bad_input_is_one_line(digits_preset, capsys, args, message):
    code = run(["evaluate", digits_preset] + args)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("kgan")]
    assert code == 2, err
    assert message in lines[-1] and "Traceback" not in err


def test_cli_unknown_source_and_folder_without_against(tmp_path, capsys):
    assert run(["evaluate", tmp_path / "missing.png"]) == 2
    assert "not a preset, a folder of images, or a dataset" in capsys.readouterr().err
    (tmp_path / "pngs").mkdir()
    assert run(["evaluate", tmp_path / "pngs"]) == 2
    assert "--against" in capsys.readouterr().err


def test_a_train_output_folder_is_not_read_as_its_sample_grids(digits_preset, tmp_path, capsys):
    # kgan train's OUTPUT holds samples/*.png progress grids beside OUTPUT/preset:
    # evaluating OUTPUT used to measure those grids as if they were the model's images.
    output = tmp_path / "run"
    shutil.copytree(digits_preset, output / "preset")
    (output / "samples").mkdir()
    shutil.copy(digits_preset / "samples.png", output / "samples" / "epoch_001.png")
    for argv in (["evaluate", output, "--num", 1, "--against", "mnist_5k"],
                 ["evaluate", "mnist_5k", "--against", output, "--num", 1]):
        assert run(argv) == 2
        assert f"its preset is {output / 'preset'}" in capsys.readouterr().err


@pytest.mark.parametrize("recorded", ["digits/", "./digits"])
def test_a_recorded_training_folder_not_found_from_here_says_to_pass_against(
        tmp_path, monkeypatch, capsys, recorded):
    # kgan train records --dataset as given, relative to where it ran; evaluating
    # from elsewhere said only "not a preset, a folder of images, or a dataset name".
    model = spread_weights(DCGAN.from_image_shape((16, 16, 1), latent_dim=8, filters=4, seed=0))
    folder = zoo.save_preset(model, tmp_path / "run" / "preset",
                             dict(TINY_METADATA, dataset=recorded))
    monkeypatch.chdir(tmp_path)
    assert run(["evaluate", folder, "--num", 1]) == 2
    err = capsys.readouterr().err
    assert (f"was trained on the folder {recorded!r} (its metadata's dataset), which is not "
            f"found from {tmp_path}") in err and "pass --against" in err
    assert run(["evaluate", folder, "--num", 1, "--against", recorded]) == 2  # given: as it was
    assert "its metadata's dataset" not in capsys.readouterr().err


@pytest.mark.parametrize("recorded, expected", [
    ("mnist_5k train[:500]", ("mnist_5k", "train[:500]")),
    ("mnist_5k test", ("mnist_5k", "test")),
    ("mnist_5k", ("mnist_5k", None)),
    ("my photos/", ("my photos/", None)),
    ("cycle_gan/horse2zebra", ("cycle_gan/horse2zebra", None)),
])
def test_recorded_dataset_splits_off_the_split_kgan_train_appends(recorded, expected):
    assert evaluation.recorded_dataset(recorded) == expected


def test_a_preset_trained_on_a_split_is_compared_with_that_split():
    # cgan_mnist_50shot records "mnist_5k train[:500]" (kgan train appends a
    # --split): evaluating it without --against failed, "Unknown dataset".
    result = evaluation.evaluate("cgan_mnist_50shot", num=200, metrics_to_compute=("fid",))
    assert result["protocol"]["against"] == "mnist_5k train[:500]"
    assert result["metrics"]["fcd"] > 0


def test_shape_mismatch_between_source_and_against(tmp_path):
    model = spread_weights(DCGAN.from_image_shape((16, 16, 1), latent_dim=8, filters=4, seed=0))
    folder = zoo.save_preset(model, tmp_path / "small", TINY_METADATA)
    with pytest.raises(ValueError, match=r"\(16, 16, 1\).*\(28, 28, 1\)"):
        evaluation.evaluate(folder, against="mnist_5k", num=10)


def test_the_shipped_conditional_preset_makes_the_requested_classes():
    """kgan's MNIST evaluator reads most samples of cgan_mnist_50shot as their label."""
    model = zoo.load("cgan_mnist_50shot")
    agreement = evaluation.label_agreement(model, num=500, seed=1)
    recorded = zoo.read_metadata(zoo.resolve("cgan_mnist_50shot"))["metrics"]["label_agreement"]
    assert agreement > 0.85 and abs(agreement - recorded) < 0.05
    # And it is diverse within a class: the mode-seeking term prevents collapse.
    threes = model.generate(64, labels=3, seed=0)
    assert threes.std(axis=0).mean() > 0.15
