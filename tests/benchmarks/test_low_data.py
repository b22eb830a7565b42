"""kgan.benchmarks.low_data: the splits and one tiny end-to-end row."""

import numpy as np
import pytest

from kgan.benchmarks import low_data


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
    extractor = low_data._Evaluator().features
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
    assert abs(summary["10"]["real_only"]["std"] - 0.05) < 1e-4
