"""kgan.evaluators: the MNIST evaluator's recipe, folder format, loading and extractor."""

import json

import numpy as np
import pytest

from kgan import data, evaluators, metrics, zoo
from kgan.images import from_uint8


@pytest.fixture(scope="module")
def small_evaluator(tmp_path_factory):
    """An evaluator trained for one epoch on 500 images (format tests only)."""
    folder = tmp_path_factory.mktemp("evaluators") / "small"
    metadata = evaluators.train_mnist_classifier(
        folder, epochs=1, batch_size=100, train_split="train[:500]",
        test_split="train[4500:]", verbose=0, recipe="pytest",
    )
    return folder, metadata


def test_classifier_has_logits_and_an_embedding_layer():
    model = evaluators.build_mnist_classifier()
    out = model(np.zeros((2, 28, 28, 1), "float32"))
    assert out.shape == (2, 10)
    assert model.get_layer(evaluators.EMBEDDING_LAYER).output.shape[-1] == 128


def test_trained_folder_round_trips_with_its_sha256(small_evaluator):
    folder, metadata = small_evaluator
    assert {p.name for p in folder.iterdir()} == {
        "config.json", "model.weights.h5", "metadata.json", "README.md"
    }
    assert metadata["kind"] == "evaluator" and metadata["recipe"] == "pytest"
    assert 0.0 <= metadata["metrics"]["test_accuracy"] <= 1.0
    assert metadata["metrics"]["test_examples"] == 500
    model = evaluators.load_evaluator(folder)
    images, _ = data.embedded_split("mnist_5k", "train[4500:4510]")
    assert model(np.asarray(from_uint8(images))).shape == (10, 10)
    assert zoo.file_sha256(folder / "model.weights.h5") in (folder / "README.md").read_text()


def test_overlapping_splits_are_refused(tmp_path):
    with pytest.raises(ValueError, match="overlap"):
        evaluators.train_mnist_classifier(
            tmp_path / "x", epochs=1, train_split="train[:100]", test_split="train[50:150]", verbose=0
        )
    assert not (tmp_path / "x").exists()


def test_existing_output_is_refused(small_evaluator):
    folder, _ = small_evaluator
    with pytest.raises(FileExistsError, match="overwrite"):
        evaluators.train_mnist_classifier(folder, epochs=1, verbose=0)


def test_corrupt_weights_are_refused(small_evaluator, tmp_path):
    import shutil

    folder, _ = small_evaluator
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    with open(copy / "model.weights.h5", "r+b") as handle:
        handle.seek(200)
        handle.write(b"\x00\x01\x02")
    with pytest.raises(zoo.IntegrityError, match="sha256"):
        evaluators.load_evaluator(copy)


def test_unknown_evaluator_lists_the_shipped_ones():
    with pytest.raises(zoo.UnknownNameError, match="mnist_classifier"):
        evaluators.load_evaluator("no_such_evaluator")


def test_extractor_for_refuses_a_shape_the_evaluator_cannot_read():
    with pytest.raises(ValueError, match=r"\(28, 28, 1\).*inception_v3"):
        evaluators.extractor_for((32, 32, 3), "mnist_classifier")


def test_extractor_for_a_keras_file(tmp_path):
    model = evaluators.build_mnist_classifier()
    model.save(tmp_path / "features.keras")
    name, extractor = evaluators.extractor_for((28, 28, 1), str(tmp_path / "features.keras"))
    assert name == "features"
    assert np.asarray(extractor(np.zeros((3, 28, 28, 1), "float32"))["features"]).shape == (3, 10)


# ---------------------------------------------------------------- the shipped evaluator
def test_shipped_evaluator_is_listed_and_accurate_on_held_out_digits():
    assert evaluators.MNIST_CLASSIFIER in evaluators.list_evaluators()
    metadata = zoo.read_metadata(evaluators.evaluator_dir() / evaluators.MNIST_CLASSIFIER)
    classifier = evaluators.load_evaluator()
    images, labels = data.embedded_split("mnist_5k", "train[80%:]")
    predicted = np.argmax(classifier.predict(np.asarray(from_uint8(images)), verbose=0), -1)
    accuracy = float(np.mean(predicted == labels))
    # The figure in the metadata is the one this test reproduces.
    assert accuracy == pytest.approx(metadata["metrics"]["test_accuracy"], abs=1e-3)
    assert accuracy >= 0.97, accuracy
    assert json.loads((evaluators.evaluator_dir() / "mnist_classifier" / "config.json").read_text())


def test_mnist_extractor_gives_features_and_confident_probabilities():
    extractor = evaluators.mnist_extractor()
    images, labels = data.embedded_split("mnist_5k", "train[80%:90%]")
    stats = metrics.features_from(np.asarray(from_uint8(images)), extractor)
    assert stats.dim == 128 and stats.count == 500
    score, _ = metrics.inception_score(stats.probabilities, num_splits=1)
    # Real, balanced, correctly classified digits score close to the class count.
    assert score > 8.5, score
