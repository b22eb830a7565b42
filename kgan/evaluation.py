"""Evaluate presets, image folders and datasets; record the figures in model cards.

This is what `kgan evaluate` runs. A *source* is named the way a user names
it on the command line:

* a preset (a name from `kgan list`, a preset folder, or an https URL): its
  generator is sampled (`model.generate`, i.e. the EMA generator when the
  model keeps one; `live_generator=True` samples the trained generator);
* a folder of images (PNG/JPEG, read with `kgan.data.from_folder`);
* a dataset name for `kgan.data.load` (`mnist_5k`, `mnist`, ...), with a split
  (`train[50%:]`): how real-vs-real reference figures are measured.

Figures depend on the extractor, the sample count, the reference set and the
seed, so every result carries that *protocol*, and comparisons recorded in a
card must share the card's protocol.

Example:

```python
from kgan import evaluation

result = evaluation.evaluate(
    "dcgan_mnist", against="mnist_5k", against_split="train[:50%]", num=2500,
    reference="mnist_5k", reference_split="train[50%:]",
)
print(result["metrics"]["fcd"], result["reference"]["metrics"]["fcd"])
```
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
import time
from pathlib import Path

import numpy as np

from kgan import data, evaluators, metrics, zoo

__all__ = [
    "METRICS", "Source", "dumps", "evaluate", "label_agreement", "open_source",
    "record_comparison", "record_in_card", "recorded_dataset",
]

#: Metric groups `evaluate` understands (as in `kgan.metrics.evaluate`).
METRICS = ("fid", "kid", "is", "pr")


class Source:
    """Something to take images from, with a label for reports.

    Attributes:
        kind: `"preset"`, `"folder"` or `"dataset"`.
        label: how the source is named in results.
        images: what `kgan.metrics.features_from` reads (a model, an adapter
            or a `tf.data.Dataset`).
        image_shape: `(H, W, C)`.
        folder: the preset folder (presets only), for recording figures.
        metadata: the preset's metadata (presets only).

    Example:

    ```python
    from kgan import evaluation
    preset = evaluation.open_source("dcgan_mnist")  # how kgan makes one
    preset.kind, preset.image_shape, preset.metadata["dataset"]  # ('preset', (28, 28, 1), ...)
    noise = tf.data.Dataset.from_tensor_slices(
        np.random.uniform(-1, 1, (64, 28, 28, 1)).astype("float32")).batch(32)
    mine = evaluation.Source("dataset", "uniform noise", noise, (28, 28, 1))
    ```
    """

    def __init__(self, kind, label, images, image_shape, folder=None, metadata=None):
        self.kind, self.label, self.images = kind, label, images
        self.image_shape = tuple(int(d) for d in image_shape)
        self.folder, self.metadata = folder, metadata


class _TrainedGenerator:
    """Samples a model's trained generator rather than its EMA average."""

    def __init__(self, model):
        self.model = model
        self.image_shape = model.image_shape

    def generate(self, num, seed=None, batch_size=256):
        latents = self.model.latents(num, seed=seed)
        out = [
            np.asarray(self.model.generator(latents[i : i + batch_size], training=False), dtype="float32")
            for i in range(0, num, batch_size)
        ]
        return np.concatenate(out, axis=0)


def _is_image_folder(spec):
    path = Path(str(spec))
    return path.is_dir() and not (path / zoo.METADATA_FILE).is_file()


def _is_preset_source(spec):
    """Whether `spec` names a preset: registered, an http(s) URL, or a folder with metadata."""
    spec = str(spec)
    return (spec in zoo.list() or spec.startswith(("https://", "http://"))
            or (Path(spec) / zoo.METADATA_FILE).is_file())


def _first_image_shape(folder):
    """`(H, W, C)` of a folder's first image (C: 1 for grey, else 3), read as from_folder reads it."""
    files = data._walk_images(data._check_folder(folder))
    if not files:
        raise data._no_images_error(str(folder), "it and its sub-folders")
    return data._first_image_shape(files)


def open_source(
    spec, split="train", live_generator=False, sha256=None, batch_size=250, image_shape=None,
    split_flag="--split",
):
    """Resolve a command-line source name to a `Source`.

    Args:
        spec: preset name, preset folder, https URL, image folder or dataset name.
        split: dataset split (datasets only).
        live_generator: for a preset with an EMA generator, sample the trained
            generator instead (to measure what the EMA gains).
        sha256: full sha256 of a remote preset archive.
        batch_size: batch size of dataset and folder pipelines.
        image_shape: `(H, W, C)` images of a folder are resized and
            converted to (required for folders: files can differ in size).
        split_flag: the command-line flag of `split`, for error messages.

    Returns:
        A `Source`.

    Raises:
        ValueError: for a name that is none of these, or `live_generator`
            for a model without an EMA generator.

    Example:

    ```python
    from kgan import evaluation
    real = evaluation.open_source("mnist_5k", split="train[:10%]")
    real.kind, real.label, real.image_shape  # ('dataset', 'mnist_5k train[:10%]', (28, 28, 1))
    evaluation.open_source("dcgan_mnist").kind  # 'preset': images = the loaded model
    ```
    """
    spec = str(spec)
    path = Path(spec)
    is_preset = _is_preset_source(spec)
    if split != "train" and (is_preset or path.is_dir()):
        raise ValueError(
            f"split selects a dataset's examples, but {spec} is a "
            f"{'preset, whose images are generated' if is_preset else 'folder of images'}: "
            f"drop the split ({split_flag}); it slices datasets only."
        )
    if is_preset:
        # Resolve once: for a URL that is the download and its sha256 check.
        folder = zoo.resolve(spec, sha256=sha256)
        model = zoo.load(folder)
        images = model
        label = spec
        if live_generator:
            if model.ema_generator is None:
                raise ValueError(
                    f"{spec} keeps no EMA generator (its preset stores one generator); "
                    "--live-generator needs a run's full preset with ema_decay set."
                )
            images = _TrainedGenerator(model)
            label = f"{spec} (trained generator, no EMA)"
        return Source("preset", label, images, model.image_shape, folder, zoo.read_metadata(folder))
    if live_generator:
        raise ValueError("--live-generator applies to presets only.")
    if path.is_dir():
        # Its samples/*.png are training progress grids, not images to measure.
        zoo.check_not_train_output(path)
        if image_shape is None:
            raise ValueError(
                f"{spec} is a folder of images: say what to compare it with (--against "
                "a dataset), whose image shape the files are resized to."
            )
        dataset = data.from_folder(
            path, image_size=tuple(image_shape[:2]), channels=int(image_shape[2]),
            batch_size=batch_size, shuffle=False, cache=False, drop_remainder=False,
        )
        return Source("folder", spec, dataset, image_shape)
    if path.suffix or os.sep in spec:
        raise FileNotFoundError(
            f"{spec} is not a preset, a folder of images, or a dataset name; check the path."
        )
    try:
        dataset = data.load(
            spec, split=split, batch_size=batch_size, shuffle=False, drop_remainder=False, cache=False
        )
    except data.UnknownDatasetError as err:
        # A source can be a preset too: a misspelt preset deserves a preset suggestion.
        close = difflib.get_close_matches(spec, zoo.list(), n=3, cutoff=0.75)
        if not close:
            raise
        raise data.UnknownDatasetError(
            f"Unknown preset or dataset {spec!r}. Did you mean the preset "
            f"{' or '.join(repr(name) for name in close)}? (`kgan list` shows the presets.)"
        ) from err
    label = spec if split == "train" else f"{spec} {split}"
    return Source("dataset", label, dataset, dataset.element_spec.shape[1:])


def _figures(scores, extractor_name):
    """Rename `metrics.evaluate` keys: with a classifier, FID is the FCD."""
    classifier = extractor_name != "inception_v3"
    names = {
        "fid": "fcd" if classifier else "fid",
        "kid_mean": "kid",
        "kid_std": "kid_std",
        "is_mean": "classifier_score" if classifier else "inception_score",
        "is_std": "classifier_score_std" if classifier else "inception_score_std",
        "precision": "precision",
        "recall": "recall",
    }
    return {names[k]: _round(v) for k, v in scores.items()}


def label_agreement(model, num=2500, seed=0, batch_size=250, classifier=None):
    """How often kgan's MNIST evaluator reads a conditional sample as its requested class.

    Args:
        model: a class-conditional model (`generate(num, labels=...)`) of
            28x28x1 digits with the MNIST classes.
        num: samples, class-balanced (labels cycle 0..K-1).
        seed: sampling seed.
        batch_size: images per classifier call.
        classifier: the evaluator (default: the shipped `mnist_classifier`).

    Returns:
        The fraction of samples whose predicted class is the requested label.

    Example:

    ```python
    label_agreement(kgan.zoo.load("cgan_mnist_50shot"))  # 0.91 (its card)
    ```
    """
    classifier = evaluators.load_evaluator() if classifier is None else classifier
    labels = np.arange(num) % model.num_classes
    images = model.generate(num, labels=labels, seed=seed)
    predicted = np.argmax(classifier.predict(images, batch_size=batch_size, verbose=0), axis=-1)
    return float(np.mean(predicted == labels))


def _round(value, digits=4):
    if value == 0 or not math.isfinite(value):
        return float(value)
    return round(float(value), max(digits - 1 - int(math.floor(math.log10(abs(value)))), 0))


#: A split as `kgan train` appends it to a recorded dataset: "train[:500]", "test".
_RECORDED_SPLIT = re.compile(r"[a-z_]+(\[[^\]\s]*\])?")


def recorded_dataset(dataset):
    """`(dataset, split or None)` of a preset's recorded `metadata["dataset"]`.

    `kgan train` records `--dataset` as given, followed by `--split` unless it
    is "train" (e.g. "mnist_5k train[:500]"); a path with a space in it is
    kept whole when it exists.

    Example:

    ```python
    kgan.evaluation.recorded_dataset("mnist_5k train[:500]")  # ('mnist_5k', 'train[:500]')
    kgan.evaluation.recorded_dataset("photos/")               # ('photos/', None)
    ```
    """
    name, _, split = dataset.rpartition(" ")
    if name and _RECORDED_SPLIT.fullmatch(split) and not os.path.exists(os.path.expanduser(dataset)):
        return name, split
    return dataset, None


def evaluate(
    source,
    split="train",
    against=None,
    against_split="train",
    num=2500,
    metrics_to_compute=None,
    extractor="auto",
    inception_weights=None,
    reference=None,
    reference_split="train",
    live_generator=False,
    seed=0,
    batch_size=250,
    progress=False,
    sha256=None,
):
    """Evaluate `source` against a real dataset; optionally a real reference too.

    Args:
        source: anything `open_source` accepts.
        split: the source's split, when it is a dataset.
        against: the real dataset compared with (default: a preset's
            training dataset from its metadata).
        against_split: its split, e.g. `"train[:50%]"`.
        num: images taken from each set.
        metrics_to_compute: any of `"fid"`, `"kid"`, `"is"`, `"pr"`; None
            for all the extractor supports (`"is"` needs class probabilities,
            which InceptionV3's pooled features and most `.keras` feature
            models do not give).
        extractor: see `kgan.evaluators.extractor_for`.
        inception_weights: InceptionV3 weights file, for that extractor.
        reference: a second source (typically the held-out real split)
            evaluated the same way, so readers see the real-vs-real scale.
        reference_split: its split.
        live_generator: see `open_source`.
        seed: seed of sampling, reservoirs and KID subsets.
        batch_size: images per batch.
        progress: show progress bars.
        sha256: full sha256 of a remote preset archive.

    Returns:
        A JSON-ready dict: `source`, `metrics`, `protocol`, `seconds`,
        `reference` (`source`, `metrics`) when a reference was given, and
        `preset_folder` when the source is a preset.

    Example:

    ```python
    from kgan import evaluation
    result = evaluation.evaluate(
        "dcgan_mnist", against="mnist_5k", num=500, metrics_to_compute=("fid",))
    result["metrics"]["fcd"], result["protocol"]["extractor"]  # FCD via 'mnist_classifier'
    ```
    """
    if metrics_to_compute is not None:
        unknown = set(metrics_to_compute) - set(METRICS)
        if unknown or not metrics_to_compute:
            raise ValueError(f"Unknown metrics {sorted(unknown) or metrics_to_compute}; choose from {', '.join(METRICS)}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0 (--seed), got {seed!r}.")
    start = time.perf_counter()
    opened = dict(sha256=sha256, batch_size=batch_size)
    if _is_image_folder(source):
        if against is None:
            raise ValueError(f"Say which real dataset to compare {source} with: pass --against DATASET.")
        # Folder against folder: both at the size of the evaluated folder's first image.
        shape = _first_image_shape(source) if _is_image_folder(against) else None
        real = open_source(against, split=against_split, batch_size=batch_size, image_shape=shape,
                           split_flag="--against-split")
        evaluated = open_source(source, image_shape=real.image_shape, **opened)
    else:
        evaluated = open_source(source, split=split, live_generator=live_generator, **opened)
        if evaluated.kind == "preset" and getattr(evaluated.images, "latent_dim", 0) is None:
            raise ValueError(
                f"{source} is an image translator, which has no latent samples to score: "
                "evaluate it with kgan.translation_evaluation.evaluate_translation (what "
                f"`kgan evaluate {source}` runs)."
            )
        recorded = against is None
        if recorded:
            if evaluated.metadata is None:
                raise ValueError(f"Say which real dataset to compare {source} with: pass --against DATASET.")
            against, recorded_split = recorded_dataset(evaluated.metadata["dataset"])
            if recorded_split is not None and against_split == "train":
                against_split = recorded_split
        try:
            real = open_source(
                against, split=against_split, batch_size=batch_size,
                image_shape=evaluated.image_shape, split_flag="--against-split",
            )
        except (FileNotFoundError, data.UnknownDatasetError) as err:
            if not (recorded and data._is_folder_name(against)):
                raise
            # kgan train records a folder as it was given, relative to where it ran.
            raise type(err)(
                f"{source} was trained on the folder {against!r} (its metadata's dataset), "
                f"which is not found from {os.getcwd()}: {err} Run from the folder kgan train "
                "ran in, or pass --against with the real images' folder or dataset name."
            ) from err
    if real.kind == "preset":
        raise ValueError(f"--against {against} is a preset; compare with real images (a dataset or folder).")
    if real.image_shape != evaluated.image_shape:
        raise ValueError(
            f"{source} gives images of shape {evaluated.image_shape} but {real.label} holds "
            f"{real.image_shape}; compare sets of the same shape (resize the folder or dataset)."
        )
    ref = None
    if reference is not None:  # opened before any work: a wrong one is refused at once
        ref = open_source(reference, split=reference_split, batch_size=batch_size,
                          image_shape=real.image_shape, split_flag="--reference-split")
        if ref.kind == "preset":
            raise ValueError(
                f"--reference {reference} is a preset; the reference is a second set of real "
                "images (e.g. the held-out split) that shows the real-vs-real scale. To compare "
                "with another model, evaluate it and add it with --compare-into."
            )
    extractor_name, extractor_fn = evaluators.extractor_for(
        evaluated.image_shape, extractor, inception_weights=inception_weights
    )
    # Known before any image is read: the Inception Score failed after both sets.
    probabilities = _gives_probabilities(extractor_fn, evaluated.image_shape)
    if metrics_to_compute is None:
        metrics_to_compute = [m for m in METRICS if m != "is" or probabilities]
    elif "is" in metrics_to_compute and not probabilities:
        raise ValueError(
            f"The Inception Score ('is') needs class probabilities, and the extractor "
            f"{extractor_name!r} gives features only: leave 'is' out of the metrics (--metrics "
            f"{','.join(m for m in METRICS if m in metrics_to_compute and m != 'is') or 'fid'})."
        )
    wanted = tuple(m for m in METRICS if m in metrics_to_compute)
    keep = bool({"kid", "pr"} & set(wanted))
    common = dict(batch_size=batch_size, seed=seed, keep_features=keep, max_features=min(num, 10_000))
    real_stats = metrics.features_from(
        real.images, extractor_fn, num=num, progress=f"{real.label}" if progress else False, **common
    )

    def score(src):
        stats = metrics.features_from(
            src.images, extractor_fn, num=num, progress=src.label if progress else False, **common
        )
        scores = metrics.evaluate(
            real_stats, stats, extractor_fn, metrics=wanted, num=num, seed=seed,
            kid_subset_size=min(1000, num),
        )
        return _figures(scores, extractor_name)

    result = {"source": evaluated.label, "metrics": score(evaluated)}
    num_classes = getattr(evaluated.images, "num_classes", None)
    if num_classes and extractor_name == evaluators.MNIST_CLASSIFIER:
        result["metrics"]["label_agreement"] = _round(
            label_agreement(evaluated.images, num=num, seed=seed, batch_size=batch_size)
        )
    if evaluated.kind == "preset" and not live_generator:
        result["preset_folder"] = str(evaluated.folder)
    if reference is not None:
        result["reference"] = {"source": ref.label, "metrics": score(ref)}
    result["protocol"] = {
        "against": real.label,
        "extractor": extractor_name,
        "num": num,
        "seed": seed,
        "metrics": list(wanted),
    }
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result


def _gives_probabilities(extractor_fn, image_shape):
    """Whether `extractor_fn` returns class probabilities beside its features (one image tried)."""
    out = extractor_fn(np.zeros((1, *image_shape), "float32"))
    return metrics._split_output(out, 1)[1] is not None


def record_in_card(folder, result, command):
    """Write `result` into a preset's metadata (`metrics`, `evaluation`) and card.

    Comparisons recorded earlier are kept only if they share the new protocol.

    Example:

    ```python
    import shutil
    from kgan import evaluation
    folder = shutil.copytree(kgan.zoo.resolve("dcgan_mnist"), "my_preset")  # a copy to edit
    result = evaluation.evaluate(folder, against="mnist_5k", num=500, metrics_to_compute=("fid",))
    metadata = evaluation.record_in_card(folder, result, "kgan evaluate my_preset --num 500")
    metadata["metrics"]["fcd"]  # also in the Measured figures of my_preset/README.md
    ```
    """
    metadata = zoo.read_metadata(folder)
    previous = metadata.get("evaluation") or {}
    comparisons = [
        c for c in previous.get("comparisons", []) if c.get("protocol") == result["protocol"]
    ]
    evaluation = {"command": command, "protocol": result["protocol"]}
    if "reference" in result:
        evaluation["reference"] = result["reference"]
    if comparisons:
        evaluation["comparisons"] = comparisons
    return zoo.update_metadata(folder, {"metrics": result["metrics"], "evaluation": evaluation})


def record_comparison(folder, label, result, command):
    """Add (or replace) a labelled comparison row in a preset's card.

    The preset must already have figures from the same protocol (same real
    set, extractor, sample count and seed): rows measured differently would
    not be comparable.

    Example:

    ```python
    import shutil
    from kgan import evaluation
    folder = shutil.copytree(kgan.zoo.resolve("dcgan_mnist"), "my_preset")  # a copy to edit
    same = dict(against="mnist_5k", num=500, metrics_to_compute=("fid",))
    evaluation.record_in_card(folder, evaluation.evaluate(folder, **same), "kgan evaluate ...")
    other = evaluation.evaluate("wgan_mnist", **same)  # same protocol: comparable
    evaluation.record_comparison(folder, "WGAN", other, "kgan evaluate wgan_mnist --num 500")
    # my_preset/README.md's figures table now has a "WGAN" column
    ```
    """
    problem = comparison_mismatch(folder, result)
    if problem:
        raise ValueError(problem)
    metadata = zoo.read_metadata(folder)
    evaluation = dict(metadata.get("evaluation") or {})
    rows = [c for c in evaluation.get("comparisons", []) if c["label"] != label]
    rows.append(
        {"label": label, "source": result["source"], "command": command,
         "protocol": result["protocol"], "metrics": result["metrics"]}
    )
    evaluation["comparisons"] = rows
    return zoo.update_metadata(folder, {"evaluation": evaluation})


def comparison_mismatch(folder, result):
    """Why `result` cannot be a comparison row of the preset in `folder`, or None.

    Rows must share the preset's protocol (real set, extractor, sample count,
    seed, metrics). `kgan evaluate` asks before it writes anything.

    Example:

    ```python
    from kgan import evaluation
    result = evaluation.evaluate("wgan_mnist", num=500, metrics_to_compute=("fid",))
    evaluation.comparison_mismatch(kgan.zoo.resolve("dcgan_mnist"), result)  # "... protocol ..."
    ```
    """
    protocol = (zoo.read_metadata(folder).get("evaluation") or {}).get("protocol")
    if protocol == result["protocol"]:
        return None
    return (
        f"{folder} was evaluated with protocol {protocol}, this run used "
        f"{result['protocol']}; evaluate both the same way (same --against, --extractor, "
        "--num, --seed, --metrics)."
    )


def dumps(result):
    """`result` as indented JSON.

    Example:

    ```python
    from kgan import evaluation
    result = evaluation.evaluate("dcgan_mnist", num=500, metrics_to_compute=("fid",))
    print(evaluation.dumps(result))  # the JSON `kgan evaluate` prints (sorted keys)
    ```
    """
    return json.dumps(result, indent=2, sort_keys=True)
