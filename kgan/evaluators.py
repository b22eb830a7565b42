"""Evaluator networks: the feature extractors kgan measures quality with.

InceptionV3 features are the usual choice for natural images, but they say
little about 28x28 grey digits and need weights that cannot be downloaded
here. For MNIST-like data kgan ships its own classifier, trained by the recipe
in this module on the embedded `mnist_5k` set, and measures with it what
TF-GAN measured for MNIST:

* the **Fréchet classifier distance** (FCD): the Fréchet distance between
  the classifier's `embedding` features of real and generated images;
* the **classifier score**: the Inception Score computed with the
  classifier's class probabilities (10 for confident, balanced digits, 1 for
  images the classifier cannot tell apart).

An evaluator is a folder in the catalog (`zoo/evaluators/NAME`) with the
preset files: `config.json` (a functional Keras model), `model.weights.h5`,
`metadata.json` (recipe, held-out accuracy, sha256 of the weights) and a card
`README.md`. `load_evaluator` checks the sha256 before reading the weights and
rebuilds the model in Keras safe mode.

Rebuild the shipped evaluator (about two minutes on two CPU cores):

```sh
python -m kgan.evaluators train --output zoo/evaluators/mnist_classifier --overwrite
```

Example:

```python
import kgan
from kgan import evaluators, metrics

gan = kgan.zoo.load("dcgan_mnist")
real = kgan.data.load("mnist_5k", split="train[:50%]", batch_size=250, shuffle=False)
scores = metrics.evaluate(real, gan, evaluators.mnist_extractor(), metrics=("fid", "is"), num=2500)
print(scores["fid"], scores["is_mean"])  # FCD and classifier score
```
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kgan import data, metrics, zoo
from kgan.atomic import replace_folder, staging_dir
from kgan.images import from_uint8

__all__ = [
    "EVALUATORS_FOLDER",
    "MNIST_CLASSIFIER",
    "build_mnist_classifier",
    "extractor_for",
    "evaluator_dir",
    "list_evaluators",
    "load_evaluator",
    "mnist_extractor",
    "train_mnist_classifier",
]

#: Sub-folder of the catalog holding evaluators (not GAN presets).
EVALUATORS_FOLDER = "evaluators"
#: Name of the shipped MNIST evaluator.
MNIST_CLASSIFIER = "mnist_classifier"
#: Layer whose output is the FCD feature vector.
EMBEDDING_LAYER = "embedding"

_DEFAULT_TRAIN_SPLIT = "train[:80%]"
_DEFAULT_TEST_SPLIT = "train[80%:]"


# ---------------------------------------------------------------------- network
def build_mnist_classifier(num_classes=10, width=32, embedding_dim=128, dropout=0.5):
    """A small CNN for 28x28x1 images in [-1, 1] that outputs class logits.

    Two blocks of two 3x3 convolutions (width, then 2·width filters) with
    batch norm and max pooling, then the `embedding` layer (a dense ReLU
    layer whose output is the FCD feature), dropout and the logits.

    Args:
        num_classes: number of classes.
        width: filters of the first block.
        embedding_dim: size of the feature vector.
        dropout: dropout rate before the logits (training only).

    Returns:
        A functional `keras.Model` named `mnist_classifier`.

    Example:

    ```python
    classifier = build_mnist_classifier()
    logits = classifier(np.zeros((1, 28, 28, 1), "float32"))
    ```
    """
    layers = keras.layers
    inputs = keras.Input((28, 28, 1), name="images")
    x = inputs
    for block, filters in enumerate((width, 2 * width)):
        for conv in range(2):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{block}_{conv}")(x)
            x = layers.BatchNormalization(name=f"bn{block}_{conv}")(x)
            x = layers.ReLU(name=f"relu{block}_{conv}")(x)
        x = layers.MaxPooling2D(name=f"pool{block}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(embedding_dim, activation="relu", name=EMBEDDING_LAYER)(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    logits = layers.Dense(num_classes, name="logits", dtype="float32")(x)
    return keras.Model(inputs, logits, name=MNIST_CLASSIFIER)


# ---------------------------------------------------------------------- training
def _jitter():
    # Small shifts and rotations: the generated digits a GAN draws are not
    # centred as carefully as MNIST's, and the evaluator must not punish that.
    return keras.Sequential(
        [
            keras.layers.RandomTranslation(0.1, 0.1, fill_mode="constant", fill_value=-1.0),
            keras.layers.RandomRotation(0.04, fill_mode="constant", fill_value=-1.0),
        ],
        name="jitter",
    )


def train_mnist_classifier(
    output,
    epochs=30,
    batch_size=128,
    learning_rate=1e-3,
    seed=0,
    train_split=_DEFAULT_TRAIN_SPLIT,
    test_split=_DEFAULT_TEST_SPLIT,
    overwrite=False,
    verbose=2,
    recipe=None,
):
    """Train the MNIST evaluator on `mnist_5k` and save it as an evaluator folder.

    The classifier trains on `train_split` with random shifts and rotations
    (Adam, cosine-decayed learning rate) and is tested on the disjoint,
    class-balanced `test_split`; its test accuracy goes in the metadata.

    Args:
        output: destination folder (written atomically).
        epochs: training epochs.
        batch_size: examples per step.
        learning_rate: initial Adam learning rate.
        seed: seed of initialization, shuffling and jitter.
        train_split, test_split: slices of `mnist_5k` (see
            `kgan.data.embedded_split`).
        overwrite: replace an existing `output`.
        verbose: Keras `fit` verbosity.
        recipe: the command line to record (defaults to this call's argv).

    Returns:
        The metadata dict written to `output/metadata.json`.

    Example:

    ```python
    train_mnist_classifier("/tmp/mnist_classifier", epochs=2)
    ```
    """
    output = Path(output)
    if output.exists() and not overwrite:
        raise FileExistsError(f"{output} exists; pass overwrite=True (--overwrite) to replace it.")
    keras.utils.set_random_seed(seed)
    train_images, train_labels = data.embedded_split("mnist_5k", train_split)
    test_images, test_labels = data.embedded_split("mnist_5k", test_split)
    train_keys = {x.tobytes() for x in train_images}
    if any(x.tobytes() in train_keys for x in test_images):
        raise ValueError(f"{train_split!r} and {test_split!r} overlap; the test set must be held out.")

    jitter = _jitter()
    train = (
        tf.data.Dataset.from_tensor_slices((from_uint8(train_images), train_labels))
        .cache()
        .shuffle(len(train_images), seed=seed)
        .batch(batch_size)
        .map(lambda x, y: (jitter(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
    test_x = np.asarray(from_uint8(test_images))
    classifier = build_mnist_classifier()
    steps = epochs * ((len(train_images) + batch_size - 1) // batch_size)
    classifier.compile(
        optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(learning_rate, steps)),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    start = time.perf_counter()
    history = classifier.fit(train, epochs=epochs, verbose=verbose, shuffle=False)
    wall = time.perf_counter() - start
    logits = classifier.predict(test_x, batch_size=500, verbose=0)
    accuracy = float(np.mean(np.argmax(logits, axis=-1) == test_labels))
    per_class = {
        str(c): round(float(np.mean(np.argmax(logits[test_labels == c], -1) == c)), 4)
        for c in np.unique(test_labels)
    }
    metadata = {
        "name": output.name,
        "kind": "evaluator",
        "description": (
            "CNN classifier of 28x28 grey digits: kgan's MNIST evaluator for the "
            "Fréchet classifier distance (features of the `embedding` layer) and "
            "the classifier score (its softmax)"
        ),
        "dataset": f"mnist_5k {train_split} (test: {test_split})",
        "image_shape": [28, 28, 1],
        "feature_layer": EMBEDDING_LAYER,
        "num_classes": 10,
        "license": "CC-BY-SA-3.0 (MNIST, LeCun & Cortes); weights Apache-2.0",
        "recipe": recipe or "python -m kgan.evaluators " + shlex.join(sys.argv[1:]),
        "metrics": {
            "test_accuracy": round(accuracy, 4),
            "test_examples": int(len(test_labels)),
            "train_accuracy_last_epoch": round(float(history.history["accuracy"][-1]), 4),
        },
        "per_class_test_accuracy": per_class,
        "training": {
            "epochs": epochs,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "seed": seed,
            "wall_time_s": round(wall, 1),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "machine": zoo.machine_summary(),
        },
        "parameters": int(classifier.count_params()),
        "created": time.strftime("%Y-%m-%d"),
    }
    _save_evaluator(classifier, output, metadata)
    return metadata


def _save_evaluator(model, folder, metadata):
    staging = staging_dir(folder)
    try:
        config = keras.saving.serialize_keras_object(model)
        (staging / zoo.CONFIG_FILE).write_text(json.dumps(config, indent=2))
        model.save_weights(staging / zoo.WEIGHTS_FILE)
        metadata["weights_sha256"] = zoo.file_sha256(staging / zoo.WEIGHTS_FILE)
        metadata["weights_bytes"] = (staging / zoo.WEIGHTS_FILE).stat().st_size
        (staging / zoo.METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
        (staging / zoo.CARD_FILE).write_text(render_card(metadata))
        replace_folder(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def render_card(metadata):
    """The Markdown card of an evaluator folder.

    Example:

    ```python
    folder = kgan.evaluators.evaluator_dir() / "mnist_classifier"
    card = kgan.evaluators.render_card(kgan.zoo.read_metadata(folder))
    card == (folder / "README.md").read_text()  # True: the shipped card is this text
    ```
    """
    m = metadata
    lines = [
        f"# {m['name']}",
        "",
        m["description"] + ".",
        "",
        "| field | value |",
        "|---|---|",
        f"| data | {m['dataset']} |",
        f"| input | {tuple(m['image_shape'])}, float in [-1, 1] |",
        f"| feature layer | `{m['feature_layer']}` |",
        f"| parameters | {m['parameters']:,} |",
        *zoo.card_weights_and_recipe(m),
        "## Measured figures",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in sorted(m["metrics"].items())]
    lines += ["", "Per-class test accuracy: " + ", ".join(f"{k}: {v}" for k, v in m["per_class_test_accuracy"].items()), ""]
    lines += ["## Training", "", "| field | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in sorted(m["training"].items())]
    lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------- loading
def evaluator_dir():
    """The catalog folder holding evaluators.

    Example:

    ```python
    folder = kgan.evaluators.evaluator_dir() / "mnist_classifier"
    kgan.zoo.read_metadata(folder)["metrics"]["test_accuracy"]  # held-out accuracy
    ```
    """
    return zoo.catalog_dir() / EVALUATORS_FOLDER


def list_evaluators():
    """Names of the shipped evaluators.

    Example:

    ```python
    kgan.evaluators.list_evaluators()  # ['mnist_classifier']
    ```
    """
    root = evaluator_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / zoo.METADATA_FILE).is_file())


def load_evaluator(source=MNIST_CLASSIFIER):
    """Load an evaluator classifier by name or folder, checking its sha256.

    Args:
        source: a shipped evaluator's name (see `list_evaluators`) or a folder
            written by `train_mnist_classifier`.

    Returns:
        The `keras.Model` (logits output; see `mnist_extractor` for features).

    Raises:
        kgan.zoo.UnknownNameError: for an unknown name.
        kgan.zoo.IntegrityError: if the weights do not match their sha256.

    Example:

    ```python
    classifier = load_evaluator("mnist_classifier")
    ```
    """
    folder = Path(source)
    if not (folder / zoo.METADATA_FILE).is_file():
        known = list_evaluators()
        if str(source) not in known:
            raise zoo.UnknownNameError(
                f"Unknown evaluator {str(source)!r}: not a shipped evaluator "
                f"({', '.join(known) or 'none'}) nor a folder with {zoo.METADATA_FILE}."
            )
        folder = evaluator_dir() / str(source)
    metadata = zoo.read_metadata(folder)
    actual = zoo.file_sha256(folder / zoo.WEIGHTS_FILE)
    if actual != metadata.get("weights_sha256"):
        raise zoo.IntegrityError(
            f"{folder / zoo.WEIGHTS_FILE} has sha256 {actual}, but metadata.json records "
            f"{metadata.get('weights_sha256')}: the file is corrupt or was replaced. "
            "Reinstall kgan or retrain the evaluator with its recipe."
        )
    config = json.loads((folder / zoo.CONFIG_FILE).read_text())
    try:
        model = keras.saving.deserialize_keras_object(config, safe_mode=True)
    except ValueError as err:
        zoo._unsafe_or_raise(err, folder / zoo.CONFIG_FILE)
        raise
    model.load_weights(folder / zoo.WEIGHTS_FILE)
    return model


def mnist_extractor(classifier=None):
    """The MNIST evaluator as a `FeatureExtractor`: FCD features and probabilities.

    Args:
        classifier: a classifier from `build_mnist_classifier` (trained);
            defaults to the shipped `mnist_classifier`.

    Returns:
        A `kgan.metrics.KerasFeatureExtractor` giving `embedding` features and
        softmax probabilities, so `metrics.evaluate` reports the FCD (as
        `fid`) and the classifier score (as `is_mean`).

    Example:

    ```python
    extractor = mnist_extractor()
    stats = kgan.metrics.features_from(gan, extractor, num=2500)
    ```
    """
    classifier = load_evaluator(MNIST_CLASSIFIER) if classifier is None else classifier
    return metrics.keras_model_extractor(
        classifier, layer=EMBEDDING_LAYER, probabilities=True, from_logits=True
    )


def extractor_for(image_shape, name="auto", inception_weights=None):
    """Pick a feature extractor for images of `image_shape`.

    Args:
        image_shape: `(H, W, C)` of the images to evaluate.
        name: `"auto"` (the MNIST classifier for 28x28x1, else InceptionV3),
            `"mnist_classifier"`, `"inception_v3"`, a folder of an evaluator,
            or a `.keras` file of a model taking these images.
        inception_weights: path of InceptionV3 weights (see
            `kgan.metrics.inception_v3_extractor`).

    Returns:
        `(name, extractor)`: the resolved name and the `FeatureExtractor`.

    Example:

    ```python
    name, extractor = extractor_for((28, 28, 1))  # "mnist_classifier"
    ```
    """
    image_shape = tuple(int(d) for d in image_shape)
    if name == "auto":
        name = MNIST_CLASSIFIER if image_shape == (28, 28, 1) else "inception_v3"
    if name == "inception_v3":
        return name, metrics.inception_v3_extractor(inception_weights)
    if str(name).endswith(".keras"):
        path = Path(name)
        if not path.is_file():
            raise FileNotFoundError(f"Extractor model {path} does not exist.")
        try:
            model = keras.saving.load_model(path, safe_mode=True, compile=False)
        except ValueError as err:  # safe mode refused a Lambda / pickled function
            zoo._unsafe_or_raise(err, path)
            raise
        return path.stem, metrics.keras_model_extractor(model)
    classifier = load_evaluator(name)
    expected = tuple(classifier.inputs[0].shape[1:])
    if expected != image_shape:
        raise ValueError(
            f"The evaluator {name!r} takes images of shape {expected}, but the images "
            f"to evaluate are {image_shape}. Use --extractor inception_v3 or a "
            "model for this shape."
        )
    return Path(str(name)).name, mnist_extractor(classifier)


# ---------------------------------------------------------------------- CLI
def main(argv=None):
    """`python -m kgan.evaluators train --output FOLDER [--epochs N] [--seed S]`."""
    parser = argparse.ArgumentParser(prog="python -m kgan.evaluators", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train the MNIST evaluator classifier")
    train.add_argument("--output", required=True)
    train.add_argument("--epochs", type=int, default=30)
    train.add_argument("--batch-size", type=int, default=128)
    train.add_argument("--learning-rate", type=float, default=1e-3)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--overwrite", action="store_true")
    train.add_argument("--verbose", type=int, default=2)
    args = parser.parse_args(argv)
    recipe = "python -m kgan.evaluators " + shlex.join(sys.argv[1:] if argv is None else argv)
    metadata = train_mnist_classifier(
        args.output, epochs=args.epochs, batch_size=args.batch_size,
        learning_rate=args.learning_rate, seed=args.seed, overwrite=args.overwrite,
        verbose=args.verbose, recipe=recipe,
    )
    print(json.dumps(metadata["metrics"], indent=2))


if __name__ == "__main__":
    main()
