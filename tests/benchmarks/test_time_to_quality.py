"""kgan.benchmarks.time_to_quality on a tiny budget."""

import json

import keras
import numpy as np
import pytest

from kgan.benchmarks import baselines, time_to_quality
from kgan_test_utils import (
    UNWRITABLE_OUTPUTS, fill_the_disk_halfway_through_writes, the_one_line_error, tiny_dcgan,
    unwritable_output)


def no_training(*args, **kwargs):
    pytest.fail("trained before checking the arguments")


@pytest.mark.slow  # trains a baseline and a kgan DCGAN for an epoch each: about a minute
def test_reports_both_sides_and_a_ratio_when_kgan_reaches_the_target():
    result = time_to_quality.run(baseline_epochs=1, max_kgan_epochs=2, num=300, log=lambda _: None)
    baseline, kgan = result["baseline"], result["kgan"]
    assert baseline["precision"] == "float32" and baseline["train_seconds"] > 0
    # The baseline's own curve: its last point is the target, its first-reached
    # point the first epoch at least as good.
    assert [p["epoch"] for p in baseline["curve"]] == [1]
    assert baseline["curve"][-1]["fcd"] == baseline["fcd"]
    assert baseline["first_reached"] == baseline["curve"][0]
    assert kgan["curve"] and all(p["train_seconds"] > 0 for p in kgan["curve"])
    if kgan["reached"] is not None:
        assert kgan["reached"]["fcd"] <= baseline["fcd"]
        ratio = baseline["train_seconds"] / kgan["reached"]["train_seconds"]
        assert result["speedup_to_baseline_quality"] == pytest.approx(ratio, abs=0.06)
        first = baseline["first_reached"]["train_seconds"] / kgan["reached"]["train_seconds"]
        assert result["speedup_to_first_reach"] == pytest.approx(first, abs=0.06)
    else:
        assert "speedup_to_baseline_quality" not in result
        assert "speedup_to_first_reach" not in result


def test_refuses_empty_budgets_before_training(capsys):
    with pytest.raises(ValueError, match="baseline_epochs must be at least 1, got 0"):
        time_to_quality.run(baseline_epochs=0)
    with pytest.raises(SystemExit) as exit_:
        time_to_quality.main(["--max-kgan-epochs", "0"])
    assert exit_.value.code == 2 and "must be >= 1" in capsys.readouterr().err


def test_the_ablations_keras_io_variant_is_the_keras_io_step():
    # The ablation's reference row must be the baseline itself, draw for draw.
    images = np.random.default_rng(0).uniform(-1, 1, (8, 16, 16, 1)).astype("float32")
    trained = {}
    for name, cls in (("keras.io", baselines.KerasIODCGAN),
                      ("variant", time_to_quality._DiscriminatorStepVariant)):
        keras.utils.set_random_seed(0)  # the networks' initializers draw from it
        gan = cls.from_kgan(tiny_dcgan((16, 16, 1), latent_dim=8))
        keras.utils.set_random_seed(1)
        gan.train_on_batch(images)
        trained[name] = gan.generator.get_weights() + gan.discriminator.get_weights()
    assert time_to_quality.ABLATION_STEPS["keras.io: one call on real + fake, label noise"] == (
        False, True)
    for ours, theirs in zip(trained["variant"], trained["keras.io"]):
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.slow  # four DCGANs for an epoch each: about a minute
def test_ablation_reports_every_variant_per_epoch(capsys):
    result = time_to_quality.ablation(epochs=1, num=300, log=lambda _: None)
    assert set(result["variants"]) == set(time_to_quality.ABLATION_STEPS)
    for label, variant in result["variants"].items():
        assert (variant["separate_calls"], variant["label_noise"]) == (
            time_to_quality.ABLATION_STEPS[label])
        assert len(variant["fcd_per_epoch"]) == 1 and np.isfinite(variant["fcd_per_epoch"][0])
    with pytest.raises(ValueError, match="epochs must be at least 1, got 0"):
        time_to_quality.ablation(epochs=0)


@pytest.mark.parametrize("ablation", [[], ["--ablation"]])
@pytest.mark.parametrize("where", UNWRITABLE_OUTPUTS)
def test_an_unwritable_json_is_refused_before_training(tmp_path, monkeypatch, capsys, where,
                                                        ablation):
    # It used to be found (with a traceback) only after both sides trained.
    target, says = unwritable_output(tmp_path, where)
    monkeypatch.setattr(time_to_quality, "run", no_training)
    monkeypatch.setattr(time_to_quality, "ablation", no_training)
    assert time_to_quality.main(["--json", str(target)] + ablation) == 2
    assert says in the_one_line_error(capsys, "time_to_quality: error: ")
    assert [p.name for p in tmp_path.iterdir()] == ["afile"]


def test_a_negative_seed_is_refused_before_training(monkeypatch, capsys):
    monkeypatch.setattr(time_to_quality, "run", no_training)
    with pytest.raises(SystemExit) as exit_:
        time_to_quality.main(["--seed", "-1"])
    assert exit_.value.code == 2 and "--seed must be >= 0" in capsys.readouterr().err


def test_a_failed_json_write_still_prints_the_result_and_leaves_no_partial_file(
        tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(time_to_quality, "run", lambda *args: {"speedup_to_baseline_quality": 2.0})
    fill_the_disk_halfway_through_writes(monkeypatch)
    assert time_to_quality.main(["--json", str(tmp_path / "ttq.json")]) == 2
    out, err = capsys.readouterr()
    assert json.loads(out)["speedup_to_baseline_quality"] == 2.0  # hours of training not lost
    assert err.startswith("time_to_quality: error: ") and "No space left" in err
    assert list(tmp_path.iterdir()) == []
