"""Smoke tests of `python -m kgan.benchmarks.mode_coverage` (tiny nets, a few steps)."""

import json

import pytest

from kgan.benchmarks import mode_coverage


def test_main_trains_scores_and_writes_the_report(tmp_path, capsys):
    output = tmp_path / "report.json"
    code = mode_coverage.main([
        "--architectures", "dcgan,wgan_gp", "--problems", "ring8", "--seeds", "0",
        "--steps", "4", "--steps-per-execution", "2", "--batch-size", "8",
        "--num-samples", "50", "--units", "8", "--layers", "1", "--quiet",
        "--output", str(output), "--markdown",
    ])
    assert code == 0
    report = json.loads(output.read_text())
    assert report["command"].startswith("python -m kgan.benchmarks.mode_coverage --architectures")
    assert set(report["versions"]) >= {"keras", "tensorflow", "numpy", "kgan"}
    assert report["wall_time_s"] > 0
    dcgan, wgan_gp = report["runs"]
    # The shared budget: one generator update per step for every architecture;
    # WGAN-GP's n_critic critic updates each get their own fresh minibatch.
    assert dcgan["generator_updates"] == wgan_gp["generator_updates"] == 4
    assert dcgan["batches_per_step"] == 1 and dcgan["discriminator_updates"] == 4
    assert wgan_gp["batches_per_step"] == 5 and wgan_gp["discriminator_updates"] == 20
    assert wgan_gp["real_points_seen"] == 4 * 8 * 5
    assert wgan_gp["hyperparameters"]["gp_weight"] == 10.0
    assert wgan_gp["d_optimizer"]["class"] == "FusedAdam"
    for run in report["runs"]:
        assert run["num_samples"] == 50 and run["num_modes"] == 8
        assert 0 <= run["modes_covered"] <= 8 and 0.0 <= run["high_quality"] <= 1.0
        assert len(run["mode_counts"]) == 8
    assert [r["architecture"] for r in report["summary"]] == ["dcgan", "wgan_gp"]
    out = capsys.readouterr().out
    assert "| problem | architecture | modes covered (≥1 within 3σ) | share within 3σ |" in out
    assert "| ring8 | wgan_gp |" in out


def test_summary_is_mean_and_sample_std_over_seeds():
    runs = [
        {"problem": "grid25", "architecture": "wgan", "seed": s, "modes_covered": m,
         "high_quality": q, "num_modes": 25, "steps": 10, "threshold": 3.0}
        for s, m, q in [(0, 20, 0.5), (1, 22, 0.7), (2, 24, 0.6)]
    ]
    (row,) = mode_coverage.summarize(runs)
    assert row["modes_covered_mean"] == 22 and row["modes_covered_std"] == pytest.approx(2.0)
    assert row["high_quality_mean"] == pytest.approx(0.6)
    assert row["high_quality_std"] == pytest.approx(0.1)
    table = mode_coverage.markdown_table([row])
    assert "| grid25 | wgan | 22.0 ± 2.0 / 25 | 0.600 ± 0.100 | 10 | 3 |" in table
    assert "modes covered (≥1 within 3σ)" in table


def test_rescore_recounts_modes_from_saved_counts(tmp_path, capsys):
    runs = [{"problem": "ring8", "architecture": "dcgan", "seed": 0, "num_modes": 8,
             "mode_counts": [300, 25, 3, 0, 310, 290, 1, 305], "modes_covered": 7,
             "high_quality": 0.49, "steps": 5, "threshold": 3.0, "min_count": 1}]
    assert mode_coverage.rescore(runs, 20)[0]["modes_covered"] == 5
    assert runs[0]["modes_covered"] == 7  # the saved runs are left alone
    saved = tmp_path / "report.json"
    saved.write_text(json.dumps({"runs": runs, "wall_time_s": 1.0, "command": "python -m x"}))
    assert mode_coverage.main(["--from-json", str(saved), "--min-count", "20", "--markdown"]) == 0
    assert "| ring8 | dcgan | 5.0 ± 0.0 / 8 | 0.490 ± 0.000 | 5 | 1 |" in capsys.readouterr().out
    with pytest.raises(ValueError, match="min_count"):
        mode_coverage.rescore(runs, 0)


def test_architecture_names_resolve_loosely():
    assert mode_coverage.resolve_architecture("WGAN-GP").name == "wgan_gp"
    assert mode_coverage.resolve_architecture("dcgan").name == "dcgan"
    with pytest.raises(KeyError, match="wgam"):
        mode_coverage.resolve_architecture("wgam")


@pytest.mark.parametrize("argv", [
    ["--steps", "10", "--steps-per-execution", "3"],   # Keras would run 12 steps
    ["--steps", "10", "--log-every", "4"],
    ["--seeds", "a,b"],
    ["--precision", "float8"],
    ["--threshold", "-1"],
])
def test_bad_arguments_exit_with_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        mode_coverage.parse_args(argv)
    assert exc.value.code == 2
