"""kgan.translation_evaluation and `kgan evaluate` of translators."""

import json

import keras
import numpy as np
import pytest

import kgan
from kgan import cli, data, translation_evaluation, zoo
from kgan.models import CycleGAN
from kgan.networks.cyclegan import patchgan_discriminator

NUM = 300  # FCD halves must exceed the 128 feature dimensions


def identity_translator():
    """A CycleGAN whose generators return their input: every figure has a known value."""

    def identity(name):
        inputs = keras.Input((None, None, 1))
        return keras.Model(inputs, keras.layers.Identity()(inputs), name=name)

    def critic(name):
        return patchgan_discriminator(1, filters=4, num_layers=2, name=name)

    return CycleGAN(identity("g_ab"), identity("g_ba"), critic("d_a"), critic("d_b"), (32, 32))


def run(argv):
    try:
        return cli.main([str(a) for a in argv])
    except SystemExit as exit_:
        return exit_.code


def test_an_identity_translator_scores_as_the_untranslated_images():
    result = translation_evaluation.evaluate_translation(
        identity_translator(), dataset_a="digits_8x8", dataset_b="mnist_5k", num=NUM
    )
    ref = result["reference"]
    assert result["a_to_b"]["cycle_l1"] == result["b_to_a"]["cycle_l1"] == 0.0
    assert result["a_to_b"]["class_preservation"] == ref["classifier_accuracy_real_a"]
    assert result["b_to_a"]["class_preservation"] == ref["classifier_accuracy_real_b"]
    assert result["a_to_b"]["fcd"] == ref["fcd_untranslated_a_vs_b"]
    assert result["b_to_a"]["fcd"] == ref["fcd_untranslated_b_vs_a"]
    # The real references have their expected order: MNIST reads MNIST, halves agree.
    assert ref["classifier_accuracy_real_b"] > 0.9 > ref["classifier_accuracy_real_a"]
    assert ref["fcd_real_b_vs_real_b"] < ref["fcd_untranslated_a_vs_b"] / 10
    assert result["protocol"]["num"] == NUM and result["protocol"]["fcd_num"] == NUM // 2


def test_the_shipped_preset_translates_digits_into_mnist_keeping_most_classes():
    result = translation_evaluation.evaluate_translation("cyclegan_digits", num=NUM)
    a_to_b, ref = result["a_to_b"], result["reference"]
    # The evaluator reads untranslated 8x8 digits badly and translated ones well.
    assert a_to_b["class_preservation"] > ref["classifier_accuracy_real_a"] + 0.3
    assert a_to_b["fcd"] < ref["fcd_untranslated_a_vs_b"] / 5
    assert result["b_to_a"]["fcd"] < ref["fcd_untranslated_b_vs_a"] / 5
    assert a_to_b["cycle_l1"] < 0.05 and result["b_to_a"]["cycle_l1"] < 0.05


def test_the_card_shows_the_figures_recorded_by_the_cli(tmp_path, capsys):
    metadata = {"name": "identity", "dataset": "digits_8x8 <-> mnist_5k", "recipe": "built in a test",
                "description": "identity translator", "license": "test"}
    model = identity_translator()
    sheet = model.translate(np.zeros((2, 32, 32, 1), "float32"))
    folder = zoo.save_preset(model, tmp_path / "identity", metadata, samples=sheet)
    assert run(["evaluate", folder, "--num", NUM, "--update-card"]) == 0
    printed = json.loads(capsys.readouterr().out)
    saved = zoo.read_metadata(folder)
    assert saved["metrics"]["a_to_b_class_preservation"] == printed["a_to_b"]["class_preservation"]
    assert saved["evaluation"]["kind"] == "translation"
    card = (folder / zoo.CARD_FILE).read_text()
    assert "| class preservation" in card and "evaluator accuracy on the real domain" in card
    assert "latent size" not in card and "translates | A (digits_8x8) <-> B (mnist_5k)" in card


def test_a_translator_of_unlabelled_folders_gets_the_figures_that_need_no_labels(tmp_path, capsys):
    # Folders of loose images, as kgan train --dataset FOLDER reads them: no labels.
    for side, source in (("a", "digits_8x8"), ("b", "mnist_5k")):
        (tmp_path / side).mkdir()
        for i, image in enumerate(data.embedded_split(source)[0][:NUM]):
            (tmp_path / side / f"{i:03d}.png").write_bytes(kgan.images.encode_png(image))
    domain_a, domain_b = str(tmp_path / "a"), str(tmp_path / "b")
    metadata = {"name": "identity", "dataset": f"{domain_a} <-> {domain_b}", "dataset_a": domain_a,
                "dataset_b": domain_b, "recipe": "built in a test", "description": "identity",
                "license": "test"}
    model = identity_translator()
    folder = zoo.save_preset(model, tmp_path / "identity", metadata,
                             samples=np.zeros((4, 32, 32, 1), "float32"))
    assert run(["evaluate", folder, "--num", NUM, "--update-card"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    for direction in ("a_to_b", "b_to_a"):
        assert sorted(result[direction]) == ["cycle_l1", "fcd"]
        assert result[direction]["cycle_l1"] == 0.0 and result[direction]["fcd"] > 0
    assert not any(key.startswith("classifier_accuracy") for key in result["reference"])
    assert result["a_to_b"]["fcd"] == result["reference"]["fcd_untranslated_a_vs_b"]
    assert "Class preservation needs labelled sub-folders" in result["not_measured"]
    assert f"domain A ({domain_a}) and domain B ({domain_b})" in result["not_measured"]
    assert "kgan: not measured: class preservation of domain A" in captured.err
    card = (folder / zoo.CARD_FILE).read_text()
    assert "| class preservation (evaluator accuracy vs source labels) | - | - |" in card


@pytest.mark.parametrize(
    "args, message",
    [
        (["--against", "digits_8x8"], "name both labelled domains as A,B"),
        (["--reference", "mnist_5k"], "--reference applies to generators"),
        # Refused, not ignored, saying what a translator's evaluation reports.
        (["--metrics", "kid", "--num", "300"], "--metrics applies to generators. A translator is "
         "measured on its two domains (--against A,B) in both directions: class preservation, "
         "cycle reconstruction error and FCD"),
        (["--inception-weights", "w.h5", "--metrics", "fid"], "--metrics, --inception-weights "
         "apply to generators"),
        (["--num", "100000"], "--num 100000: digits_8x8 train holds 1797 images"),
        # FCD on two halves needs more than the classifier's 128 features in
        # each: refused before any translating, not after. In the flag's words.
        (["--num", "200"], "; pass --num from 258 to 1797."),
    ],
)
def test_cli_bad_input_is_one_line(args, message, capsys):
    code = run(["evaluate", "cyclegan_digits"] + args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err.strip().splitlines()[-1] and "Traceback" not in err


def test_a_bad_num_is_named_as_the_argument_in_python():
    with pytest.raises(ValueError, match=r"^num=200: digits_8x8 train holds 1797 images .*; pass "
                       r"num from 258 to 1797\.$"):
        translation_evaluation.evaluate_translation(
            identity_translator(), dataset_a="digits_8x8", dataset_b="mnist_5k", num=200)


def test_domains_come_from_metadata_or_the_dataset_string():
    assert translation_evaluation.domains_of({"dataset_a": "x", "dataset_b": "y"}) == ("x", "y")
    assert translation_evaluation.domains_of({"dataset": "a <-> b"}) == ("a", "b")
    with pytest.raises(ValueError, match="dataset_a= and dataset_b="):
        translation_evaluation.domains_of({"dataset": "mnist"})
