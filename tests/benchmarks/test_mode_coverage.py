"""Smoke tests of `python -m kgan.benchmarks.mode_coverage` (tiny nets, a few steps)."""

import json
import time

import pytest

from kgan import toy
from kgan.benchmarks import mode_coverage
from kgan_test_utils import fill_the_disk_halfway_through_writes, the_one_line_error

#: a run small enough for seconds: tiny MLPs, a few steps, no progress lines.
TINY_RUN = ["--problems", "ring8", "--seeds", "0", "--steps", "4", "--steps-per-execution", "2",
            "--batch-size", "8", "--num-samples", "50", "--units", "8", "--layers", "1", "--quiet"]


def fake_run_one(problem, architecture, seed, steps, **kwargs):
    """What run_one returns, without training."""
    return {"problem": problem, "architecture": architecture, "seed": seed, "steps": steps,
            "num_modes": 8, "mode_counts": [1] * 8, "modes_covered": 8, "high_quality": 1.0,
            "threshold": 3.0, "min_count": 1, "train_time_s": 0.0}


def no_training(*args, **kwargs):
    pytest.fail("trained before checking the arguments")


def test_main_trains_scores_and_writes_the_report(tmp_path, monkeypatch, capsys):
    built, real_build_model = [], mode_coverage.build_model
    monkeypatch.setattr(mode_coverage, "build_model",
                        lambda *a, **k: built.append(real_build_model(*a, **k)) or built[-1])
    output = tmp_path / "report.json"
    code = mode_coverage.main(
        TINY_RUN + ["--architectures", "dcgan,wgan_gp", "--output", str(output), "--markdown"])
    assert code == 0
    report = json.loads(output.read_text())
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # no temporary files
    assert report["command"].startswith("python -m kgan.benchmarks.mode_coverage --problems")
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
    ring8 = toy.problem("ring8")
    for run, model in zip(report["runs"], built, strict=True):
        assert run["num_samples"] == 50 and run["num_modes"] == 8
        assert 0 <= run["modes_covered"] <= 8 and 0.0 <= run["high_quality"] <= 1.0
        assert len(run["mode_counts"]) == 8
        # The scores are the trained generator's samples', not another set's.
        scores = toy.mode_coverage(model.generate(50, seed=run["seed"]), ring8.centers, ring8.std)
        assert (run["mode_counts"], run["modes_covered"], run["high_quality"]) == (
            scores["mode_counts"], scores["modes_covered"], scores["high_quality"])
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
    # The saved counts are at 3 std: another radius was silently ignored.
    assert mode_coverage.main(["--from-json", str(saved), "--threshold", "3"]) == 0
    capsys.readouterr()
    assert mode_coverage.main(["--from-json", str(saved), "--threshold", "0.5"]) == 2
    assert "--threshold 0.5 cannot re-score" in capsys.readouterr().err


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


@pytest.mark.parametrize("argv, says", [
    (["--output", "{tmp}"], "it is a folder"),
    (["--output", "{tmp}/"], "it is a folder"),
    (["--output", "{tmp}/afile/report.json"], "afile is a file"),
    (["--architectures", "wgam"], "wgam"),
    (["--problems", "ring9"], "Unknown toy problem 'ring9'"),
    (["--from-json", "{tmp}/nope.json"], "No such file or directory"),
    (["--from-json", "{tmp}/afile"], "afile is not a JSON file"),
    (["--from-json", "{tmp}/list.json"], "list.json is not a mode_coverage report"),
    (["--from-json", "{tmp}/old.json"], "old.json: run 0 lacks mode_counts"),
])
def test_user_mistakes_are_one_line_before_any_training(tmp_path, monkeypatch, capsys, argv, says):
    # They used to be tracebacks; --output ones only after the first run's
    # training, leaving a stray adir.tmp or adir/.tmp behind.
    (tmp_path / "afile").write_text("not json")
    (tmp_path / "list.json").write_text("[]")
    old_run = fake_run_one("ring8", "dcgan", 0, 4)
    del old_run["mode_counts"]  # what rescore needs, absent from an older report
    (tmp_path / "old.json").write_text(json.dumps(
        {"runs": [old_run], "wall_time_s": 1.0, "command": "python -m x"}))
    before = sorted(tmp_path.iterdir())
    monkeypatch.setattr(mode_coverage, "run_one", no_training)
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in argv]
    assert mode_coverage.main(TINY_RUN + argv) == 2
    assert says in the_one_line_error(capsys, "mode_coverage: error: ")
    assert sorted(tmp_path.iterdir()) == before  # nothing written, no temporary left


def test_a_report_write_that_fails_leaves_no_partial_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(mode_coverage, "run_one", fake_run_one)
    fill_the_disk_halfway_through_writes(monkeypatch)
    output = tmp_path / "report.json"
    assert mode_coverage.main(TINY_RUN + ["--architectures", "dcgan", "--output", str(output)]) == 2
    assert "No space left" in the_one_line_error(capsys, "mode_coverage: error: ")
    assert list(tmp_path.iterdir()) == []  # neither report.json nor a temporary file


def test_step_ms_leaves_out_the_first_execution_that_traces_and_compiles(monkeypatch):
    # step_ms was the whole fit over the steps, compilation included: 30x
    # the steady cost at 50 steps, 2.4x at 1000. A train step that takes a
    # second to trace stands in for a slow compilation here.
    real_build_model = mode_coverage.build_model

    def slow_to_trace(*args, **kwargs):
        model = real_build_model(*args, **kwargs)
        train_step = model.train_step

        def traced_slowly(data):
            time.sleep(1.0)  # Python: runs while tracing, not in the compiled step
            return train_step(data)

        model.train_step = traced_slowly
        return model

    monkeypatch.setattr(mode_coverage, "build_model", slow_to_trace)
    options = dict(batch_size=8, num_samples=50, units=8, layers=1, steps_per_execution=2,
                   verbose=False)
    run = mode_coverage.run_one("ring8", "dcgan", 0, steps=6, **options)
    assert run["step_ms"] < 100  # 4 steady steps of tiny MLPs: a few ms each, not 170+
    assert run["warmup_s"] >= 1.0 and run["train_time_s"] >= run["warmup_s"]
    assert run["generator_updates"] == 6  # the warm-up is part of the budget, not extra
    # Only the first execution before the last: nothing is left to time.
    assert mode_coverage.run_one("ring8", "dcgan", 0, steps=2, **options)["step_ms"] is None
