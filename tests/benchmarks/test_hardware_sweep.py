"""`python -m kgan.benchmarks.hardware_sweep`: a tiny real sweep, the table, the CLI."""

import json

import pytest

from kgan import bench, performance, zoo
from kgan.benchmarks import hardware_sweep
from kgan_test_utils import UNWRITABLE_OUTPUTS, the_one_line_error, unwritable_output


@pytest.fixture(scope="module")
def tiny_report():
    """One architecture, both XLA settings, timed for real (tiny networks, in-process)."""
    return hardware_sweep.run(architectures=["dcgan"], steps=3, repeats=1, isolate=False,
                              filters=8, latent_dim=8, split="train[:512]")


def test_a_sweep_times_every_precision_with_xla_off_and_on_beside_the_baseline(tiny_report):
    rows = tiny_report["rows"]
    configurations = [(r["config"], r["precision"], r["jit_compile"]) for r in rows]
    kgan_rows = [(p, x) for c, p, x in configurations if c == "kgan"]
    assert sorted(kgan_rows) == sorted(
        (p, x) for p in ("float32", "mixed_bfloat16") for x in (False, True))
    assert [c for c, _, _ in configurations].count("baseline") == 2  # one per XLA setting
    for row in rows:
        assert row["arch"] == "dcgan" and row["steady_images_per_s"] > 0
        assert row["networks_trained"] == {"generator": True, "discriminator": True}
    assert tiny_report["settings"]["xla"] == [False, True]


def test_the_report_names_when_and_what_it_ran_on(tiny_report):
    info = tiny_report["hardware"]
    assert set(info) >= {"date", "tensorflow", "keras", "cpu", "cpu_cores", "gpus", "fast_bfloat16"}
    assert info["fast_bfloat16"] == performance.fast_bfloat16()
    assert f"fast bfloat16: {info['fast_bfloat16'] or 'none'}." in hardware_sweep.format_markdown(tiny_report)
    assert info["cpu_cores"] >= 1 and info["gpus"] == []  # this project's machines have none
    text = hardware_sweep.format_markdown(tiny_report)
    assert info["date"] in text and f"TensorFlow {info['tensorflow']}" in text
    table = [line for line in text.splitlines() if line.startswith("| dcgan |")]
    assert len(table) == len(tiny_report["rows"])
    assert any("| on |" in line for line in table) and any("| off |" in line for line in table)


def test_default_precisions_add_float16_only_on_gpus():
    assert hardware_sweep.default_precisions(False) == ("float32", "mixed_bfloat16")
    assert hardware_sweep.default_precisions(True)[-1] == "mixed_float16"


def test_every_problem_is_an_architecture_of_the_zoo():
    assert set(hardware_sweep.PROBLEMS) <= set(zoo.list(kind="architectures"))


def test_unknown_architectures_are_refused_naming_the_known_ones(capsys):
    with pytest.raises(ValueError, match="choose from .*dcgan"):
        hardware_sweep.run(architectures=["dcgann"])
    assert hardware_sweep.main(["--architectures", "dcgann"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hardware_sweep: ") and "dcgann" in err and len(err.splitlines()) == 1


def test_main_writes_the_json_and_markdown(tiny_report, tmp_path, monkeypatch, capsys):
    calls = []

    def fake_run(architectures, precisions, xla, steps, repeats, on_architecture):
        calls.append((architectures, precisions, xla, steps, repeats))
        on_architecture(tiny_report)
        return tiny_report

    monkeypatch.setattr(hardware_sweep, "run", fake_run)
    code = hardware_sweep.main(["--architectures", "dcgan", "--precisions", "float32, mixed_bfloat16",
                                "--steps", "3", "--repeats", "1",
                                "--json", str(tmp_path / "s.json"), "--markdown", str(tmp_path / "s.md")])
    assert code == 0
    assert calls == [(["dcgan"], ["float32", "mixed_bfloat16"], (False, True), 3, 1)]
    assert json.loads((tmp_path / "s.json").read_text())["rows"] == tiny_report["rows"]
    assert (tmp_path / "s.md").read_text() == hardware_sweep.format_markdown(tiny_report)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json", "s.md"]  # no temporary files
    # Refusals exit 2 (argparse's usage error), naming what is wrong; nothing is run.
    calls.clear()
    for argv, message in ((["--steps", "0"], "--steps and --repeats must be positive"),
                          (["--xla", "maybe"], "invalid choice: 'maybe'")):
        with pytest.raises(SystemExit) as exit_:
            hardware_sweep.main(argv)
        assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert calls == []


def test_help_lists_the_xla_choices_readably(capsys):
    with pytest.raises(SystemExit):
        hardware_sweep.main(["--help"])
    usage = " ".join(capsys.readouterr().out.split())
    assert "--xla off | off,on | on" in usage and "{off,off,on,on}" not in usage


def test_an_interrupted_sweep_keeps_the_architectures_it_timed(tiny_report, tmp_path, monkeypatch, capsys):
    def interrupted_run(architectures, precisions, xla, steps, repeats, on_architecture):
        assert xla == (False,)
        on_architecture(tiny_report)  # dcgan timed ...
        raise KeyboardInterrupt  # ... then stopped during the next architecture

    monkeypatch.setattr(hardware_sweep, "run", interrupted_run)
    with pytest.raises(KeyboardInterrupt):
        hardware_sweep.main(["--xla", "off", "--json", str(tmp_path / "s.json"),
                             "--markdown", str(tmp_path / "s.md")])
    assert json.loads((tmp_path / "s.json").read_text())["rows"] == tiny_report["rows"]
    assert (tmp_path / "s.md").read_text() == hardware_sweep.format_markdown(tiny_report)
    assert "hardware_sweep: timed dcgan" in capsys.readouterr().err


def test_run_reports_after_each_architecture():
    seen = []
    report = hardware_sweep.run(architectures=["dcgan", "wgan"], precisions=["float32"], xla=(False,),
                                steps=1, repeats=1, isolate=False, filters=4, latent_dim=4,
                                split="train[:1024]", on_architecture=lambda r: seen.append(
                                    [row["arch"] for row in r["rows"]]))
    assert seen == [["dcgan", "dcgan"], ["dcgan", "dcgan", "wgan", "wgan"]]  # kgan + baseline each
    assert [row["arch"] for row in report["rows"]] == seen[-1]


@pytest.mark.parametrize("flag", ["--json", "--markdown"])
@pytest.mark.parametrize("where", UNWRITABLE_OUTPUTS)
def test_an_unwritable_output_is_refused_before_any_timing(tmp_path, monkeypatch, capsys, flag, where):
    # It used to time the first architecture, then fail with a traceback,
    # saving nothing.
    target, says = unwritable_output(tmp_path, where)
    monkeypatch.setattr(bench, "run", lambda *a, **k: pytest.fail("timed before checking the outputs"))
    assert hardware_sweep.main(["--architectures", "dcgan", flag, str(target)]) == 2
    assert says in the_one_line_error(capsys, "hardware_sweep: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_json_and_markdown_must_be_two_files(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench, "run", lambda *a, **k: pytest.fail("timed before checking the outputs"))
    with pytest.raises(SystemExit) as exit_:
        hardware_sweep.main(["--json", str(tmp_path / "s"), "--markdown", str(tmp_path / "s")])
    assert exit_.value.code == 2 and "name the same file" in capsys.readouterr().err
