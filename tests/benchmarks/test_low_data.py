"""kgan.benchmarks.low_data: the splits and one tiny end-to-end row."""

import json

import numpy as np
import pytest

from kgan.benchmarks import low_data
from kgan_test_utils import fill_the_disk_halfway_through_writes, the_one_line_error

#: the smallest settings main accepts, for runs whose training is stubbed out.
TINY = ["--per-class", "10", "--seeds", "0", "--gan-steps", "10", "--filters", "4"]


def no_training(*args, **kwargs):
    pytest.fail("started work before checking the arguments")


def test_split_takes_n_per_class_and_tests_on_all_the_rest():
    (train_x, train_y), (test_x, test_y) = low_data.split_labelled(10, seed=0)
    assert train_x.shape == (100, 28, 28, 1) and np.bincount(train_y).tolist() == [10] * 10
    assert len(test_y) == 5000 - 100 and train_x.min() >= -1 and train_x.max() <= 1
    # Another seed draws other training digits.
    (other_x, _), _ = low_data.split_labelled(10, seed=1)
    assert not np.array_equal(train_x, other_x)


def test_fcd_compares_with_every_class_of_the_test_set():
    # The test set comes in class order; a reference of its first images
    # would hold a few classes only and make real digits look far from real.
    _, (test_x, test_y) = low_data.split_labelled(10, seed=0)
    assert test_y[0] == 0 and test_y[-1] == 9
    evaluator = low_data._Evaluator()
    # _check_arguments sizes the FCD's sample pool by this, before loading the evaluator.
    embedding = evaluator.classifier.get_layer(low_data.evaluators.EMBEDDING_LAYER)
    assert embedding.output.shape[-1] == low_data.EVALUATOR_FEATURES
    extractor = evaluator.features
    floor = low_data.real_floor(test_x, 1000, extractor, seed=0)["fcd"]
    quality = low_data.gan_quality(test_x[test_y == 1], test_x, extractor, seed=0)
    assert 0 < floor < 15 and quality["fcd"] > 10 * floor
    assert quality["recall"] < 0.3 < quality["precision"]


@pytest.mark.slow  # trains a GAN and seven classifiers: about a minute of CPU
def test_one_row_reports_every_figure_in_range():
    args = low_data.main.__globals__["argparse"].Namespace(
        gan_steps=20, gan_augment="translation", filters=4, ema_decay=0.99,
        classifier_steps=10, synthetic_per_class=20, fractions=[0.5], confidence=0.0,
        real_extra_per_class=20,
    )
    row = low_data.run_one(10, 0, args, low_data._Evaluator(), log=lambda _: None)
    for key in ("real_only", "cas", "gan_label_agreement", "mixed_0.5", "mixed_0.5_live_generator",
                "cas_live_generator", "mixed_0.5_filtered", "synthetic_then_real",
                "real_only_twice_the_steps"):
        assert 0.0 <= row[key] <= 1.0, key
    assert row["filtered_kept_fraction"] == 1.0  # threshold 0 keeps every sample
    assert row["gan_fcd_vs_test"] > 0 and row["real_fcd_floor"] > 0
    # The perfect-generator reference moves 20 digits per class out of the test set.
    assert row["reference_test_size"] == 5000 - 100 - 200
    assert 0 <= row["mixed_0.5_true_distribution"] <= 1 and 0 <= row["real_only_on_reference_test"] <= 1
    assert 0 <= row["gan_recall"] <= 1 and 0 <= row["real_precision_floor"] <= 1
    gan_only = low_data.run_one(10, 0, args.__class__(**dict(vars(args), gan_only=True)),
                                low_data._Evaluator(), log=lambda _: None)
    assert "real_only" not in gan_only and "cas" not in gan_only
    assert {k for k in row if k.startswith("gan_") or k.endswith("_floor")} <= set(gan_only)
    summary = low_data.summarize([row, dict(row, seed=1, real_only=row["real_only"] + 0.1)])
    assert summary["10"]["real_only"]["n"] == 2
    assert abs(summary["10"]["real_only"]["std"] - 0.05) < 1e-4  # population std (ddof=0)


def test_summary_keeps_a_figure_the_first_seed_lacks():
    # run_one leaves out a filtered mix that kept under 10 images; the
    # summary took its keys from the first seed's row only.
    rows = [{"per_class": 10, "seed": 0, "real_only": 0.5},
            {"per_class": 10, "seed": 1, "real_only": 0.7, "mixed_0.25_filtered": 0.6},
            {"per_class": 10, "seed": 2, "real_only": 0.6, "mixed_0.25_filtered": 0.8}]
    for order in (rows, rows[::-1]):
        summary = low_data.summarize(order)["10"]
        assert summary["mixed_0.25_filtered"] == {"mean": 0.7, "std": 0.1, "n": 2}
        assert summary["real_only"] == {"mean": 0.6, "std": 0.0816, "n": 3}


@pytest.mark.parametrize("steps, schedule", [
    (20, (1, 20)), (250, (1, 250)), (1200, (12, 100)), (1250, (5, 250)), (2100, (21, 100))])
def test_the_gan_trains_exactly_the_steps_asked(steps, schedule):
    # --gan-steps 250 was 2 epochs of 125 steps, each rounded up by Keras to
    # whole executions of 10: 260 steps, recorded as 250.
    assert low_data._schedule(steps) == schedule
    epochs, per_epoch = schedule
    assert epochs * per_epoch == steps and per_epoch % low_data.STEPS_PER_EXECUTION == 0


@pytest.mark.parametrize("argv, says", [
    (["--json", "{tmp}"], "it is a folder"),
    (["--json", "{tmp}/afile/low_data.json"], "afile is a file"),
    (["--per-class", "0"], "need per-class >= 1"),
    (["--per-class", "500"], "smallest class"),
    (["--per-class", "400", "--real-extra-per-class", "100"], "smallest class"),
    (["--seeds", "-1"], "--seeds must be >= 0"),
    (["--gan-steps", "0"], "--gan-steps must be at least 1"),
    (["--gan-steps", "255"], "--gan-steps must be a multiple of 10 (the GAN trains 10 steps per execution), got 255; e.g. 250"),
    (["--classifier-steps", "0"], "--classifier-steps must be at least 1"),
    # Used to train the GAN, then die in FID: 50 samples of 128 features.
    (["--synthetic-per-class", "5"], "--synthetic-per-class 5 gives 50 samples, too few for the "
                                     "GAN's FCD: it needs more than the evaluator's 128 feature "
                                     "dimensions. Use --synthetic-per-class 13 or more."),
    (["--fractions", "0.5", "1.5"], "--fractions must be in [0, 1]"),
    (["--confidence", "2"], "--confidence must be in [0, 1]"),
    (["--gan-augment", "colour"], "Unknown DiffAugment policy"),
    (["--ema-decay", "1.5"], "ema_decay must be in (0, 1)"),
    (["--mode-seeking", "-1"], "mode_seeking must be >= 0"),
    (["--precision", "float8"], "Cannot convert 'float8'"),
])
def test_mistakes_are_one_line_before_any_work(tmp_path, monkeypatch, capsys, argv, says):
    # A bad --json used to fail (with a traceback, from open) only after
    # every GAN and classifier had trained; the rest failed part-way.
    (tmp_path / "afile").write_text("")
    monkeypatch.setattr(low_data, "_Evaluator", no_training)
    monkeypatch.setattr(low_data, "run_one", no_training)
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in argv]
    assert low_data.main(TINY + argv) == 2
    assert says in the_one_line_error(capsys, "low_data: error: ")
    assert [p.name for p in tmp_path.iterdir()] == ["afile"]


def test_main_writes_the_results_whole_or_not_at_all(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(low_data, "_Evaluator", lambda: None)
    monkeypatch.setattr(low_data, "run_one", lambda per_class, seed, args, extractor: {
        "per_class": per_class, "seed": seed, "real_only": 0.5})
    output = tmp_path / "low_data.json"
    assert low_data.main(TINY + ["--precision", "float32", "--json", str(output)]) == 0
    assert json.loads(output.read_text())["summary"]["10"]["real_only"]["mean"] == 0.5
    assert [p.name for p in tmp_path.iterdir()] == ["low_data.json"]
    fill_the_disk_halfway_through_writes(monkeypatch)
    capsys.readouterr()
    assert low_data.main(TINY + ["--precision", "float32", "--json", str(output)]) == 2
    out, err = capsys.readouterr()
    assert '"real_only"' in out  # the summary is printed before the write
    assert err.startswith("low_data: error: ") and "No space left" in err
    assert json.loads(output.read_text())["rows"]  # the previous results, whole
    assert [p.name for p in tmp_path.iterdir()] == ["low_data.json"]
