"""kgan.benchmarks.time_to_quality on a tiny budget."""

import pytest

from kgan.benchmarks import time_to_quality


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
    with pytest.raises(ValueError, match="baseline_epochs must be a positive int, got 0"):
        time_to_quality.run(baseline_epochs=0)
    with pytest.raises(SystemExit) as exit_:
        time_to_quality.main(["--max-kgan-epochs", "0"])
    assert exit_.value.code == 2 and "must be >= 1" in capsys.readouterr().err
