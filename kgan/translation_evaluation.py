"""Measuring an image translator (CycleGAN): does it keep content, does it look right?

A translator is judged on three questions, each in both directions:

* **Class preservation**: translate labelled images and ask a classifier of
  the digits (kgan's MNIST evaluator) which digit it sees; the accuracy
  against the *source* labels says whether the translation kept the content.
* **Cycle reconstruction**: the mean absolute error of `F(G(x))` against
  `x` on the [0, 1] pixel scale: how much of the input survives a round trip.
* **Distribution match**: the Fréchet distance, in the classifier's feature
  space (FCD), between translations and real images of the target domain.

Each figure comes with the reference that gives it a scale: the classifier's
accuracy on real images of each domain (how well it reads that style at
all), the distance of the *untranslated* source images from the target
domain (what translating has to close), and the distance between two
disjoint real samples of the target domain (the floor).
"""

import os
import time

import numpy as np
import tensorflow as tf

from kgan import data, evaluators, metrics, zoo
from kgan.models.cyclegan import CycleGAN, translate_images

__all__ = ["evaluate_translation", "record_in_card", "is_translator_preset", "domains_of"]

DIRECTIONS = ("a_to_b", "b_to_a")


def is_translator_preset(metadata):
    """True for a preset whose model translates images instead of sampling latents.

    Example:

    ```python
    from kgan import translation_evaluation
    translation_evaluation.is_translator_preset(kgan.zoo.info("cyclegan_digits"))  # True
    translation_evaluation.is_translator_preset(kgan.zoo.info("dcgan_mnist"))  # False
    ```
    """
    return metadata.get("latent_dim") is None and metadata.get("architecture") == "cyclegan"


def domains_of(metadata):
    """`(dataset_a, dataset_b)` of a translator preset, from its metadata.

    Presets record `dataset_a`/`dataset_b`; older ones only a `"A <-> B"`
    dataset string, which is split.

    Example:

    ```python
    from kgan import translation_evaluation
    translation_evaluation.domains_of(kgan.zoo.info("cyclegan_digits"))
    # ('digits_8x8', 'mnist_5k')
    translation_evaluation.domains_of({"dataset": "horses <-> zebras"})  # ('horses', 'zebras')
    ```
    """
    if metadata.get("dataset_a") and metadata.get("dataset_b"):
        return metadata["dataset_a"], metadata["dataset_b"]
    parts = [p.strip() for p in str(metadata.get("dataset", "")).split("<->")]
    if len(parts) != 2 or not all(parts):
        raise ValueError(
            f"The preset's metadata names its domains as {metadata.get('dataset')!r}, not "
            "'A <-> B'; pass dataset_a= and dataset_b= (CLI: --against A,B)."
        )
    return parts[0], parts[1]


def _has_labels(name):
    """False for a folder of images without class sub-folders (images lie in it, or no
    sub-folder); dataset names are taken to carry labels."""
    folder = os.path.expanduser(str(name))
    if name in data.EMBEDDED_DATASETS or not os.path.isdir(folder):
        return True
    classes, loose = data._class_folders(folder)
    return bool(classes) and not any(not name.startswith(".") for name in loose)


def _domain_images(name, split, image_shape):
    """All images (float32 in [-1, 1]) of a dataset split, in order, and their int
    labels (None for a folder without class sub-folders)."""
    with_labels = _has_labels(name)
    dataset = data.load(
        name, split=split, batch_size=256, image_size=tuple(image_shape[:2]),
        channels=int(image_shape[2]), shuffle=False, with_labels=with_labels,
        drop_remainder=False, cache=False,
    )
    images, labels = [], []
    for batch in dataset:
        batch_images, batch_labels = batch if with_labels else (batch, None)
        images.append(batch_images.numpy())
        if with_labels:
            labels.append(batch_labels.numpy())
    return np.concatenate(images), np.concatenate(labels) if with_labels else None


def _translate(generator, images, batch_size):
    return np.concatenate([
        translate_images(generator, tf.constant(images[i : i + batch_size])).numpy()
        for i in range(0, len(images), batch_size)
    ])


class _ClassifierView:
    """The evaluator classifier applied to images resized to its input size."""

    def __init__(self, classifier, batch_size):
        self.classifier = classifier
        self.input_shape = tuple(int(d) for d in classifier.inputs[0].shape[1:])
        self.extractor = evaluators.mnist_extractor(classifier)
        self.batch_size = batch_size
        self.feature_dim = metrics.feature_dim(self.extractor, self.input_shape)

    def resize(self, images):
        if images.shape[-1] != self.input_shape[-1]:
            raise ValueError(
                f"The classifier takes {self.input_shape[-1]}-channel images, the translator's "
                f"domain has {images.shape[-1]}; pass a classifier for this domain."
            )
        if images.shape[1:3] == self.input_shape[:2]:
            return images
        resized = tf.image.resize(images, self.input_shape[:2], method="bilinear", antialias=True)
        return np.clip(resized.numpy(), -1.0, 1.0)

    def accuracy(self, images, labels):
        logits = self.classifier.predict(self.resize(images), batch_size=self.batch_size, verbose=0)
        return float(np.mean(np.argmax(logits, axis=-1) == labels))

    def stats(self, images, seed):
        return metrics.features_from(
            self.resize(images), self.extractor, batch_size=self.batch_size, seed=seed
        )


def _fcd(view, first, second, seed):
    return float(metrics.fid_from_stats(view.stats(first, seed), view.stats(second, seed)))


def _round(value):
    return float(f"{value:.4g}")


def evaluate_translation(
    source,
    dataset_a=None,
    dataset_b=None,
    split_a="train",
    split_b="train",
    num=None,
    classifier=evaluators.MNIST_CLASSIFIER,
    batch_size=250,
    seed=0,
    num_flag=None,
):
    """Class preservation, cycle error and FCD of a translator, in both directions.

    Args:
        source: a CycleGAN model, or a preset name, folder or URL.
        dataset_a: dataset of domain A (default: the preset's); labelled for
            class preservation.
        dataset_b: dataset of domain B (default: the preset's).
        split_a: split of domain A, e.g. `"train"` or `"train[:50%]"`.
        split_b: split of domain B. Its real-vs-real reference compares the
            first and second halves of the sample drawn from it.
        num: images per domain (default: the smaller domain's size); drawn
            in a fixed random order from `seed`.
        classifier: evaluator name or folder (see `kgan.evaluators`); its
            input size may differ from the domain's (images are resized).
        batch_size: images per call.
        seed: seed of the sample and of the feature reservoirs.
        num_flag: the command-line flag of `num`, for error messages (`kgan
            evaluate` passes `"--num"`); None names the argument `num`.

    Returns:
        A JSON-ready dict with `a_to_b` and `b_to_a` (`class_preservation`,
        `cycle_l1`, `fcd`), `reference` (`classifier_accuracy_real_a`,
        `classifier_accuracy_real_b`, `fcd_untranslated_a_vs_b`,
        `fcd_untranslated_b_vs_a`, `fcd_real_a_vs_real_a`,
        `fcd_real_b_vs_real_b`), `protocol` and `seconds`. Class preservation
        uses all `num` images; every FCD compares `num // 2` images with the
        other half of the target domain's sample. A domain that is a folder
        without class sub-folders has no labels: its class preservation and
        classifier accuracy are left out, and `not_measured` says why.

    Example:

    ```python
    result = evaluate_translation("cyclegan_digits")
    result["a_to_b"]["class_preservation"]  # MNIST evaluator accuracy on translations
    ```
    """
    start = time.perf_counter()
    label = getattr(source, "name", str(source))
    if isinstance(source, CycleGAN):
        model = source
    else:
        folder = zoo.resolve(str(source))
        model = zoo.load(folder)
        if not isinstance(model, CycleGAN):
            raise ValueError(
                f"{source} is a {type(model).__name__}, not an image translator; measure "
                "generators with kgan.evaluation.evaluate."
            )
        default_a, default_b = domains_of(zoo.read_metadata(folder))
        dataset_a, dataset_b = dataset_a or default_a, dataset_b or default_b
    if not dataset_a or not dataset_b:
        raise ValueError("Name both labelled domains: dataset_a= and dataset_b=.")
    view = _ClassifierView(evaluators.load_evaluator(classifier), batch_size)

    images_a, labels_a = _domain_images(dataset_a, split_a, model.image_shape_a)
    images_b, labels_b = _domain_images(dataset_b, split_b, model.image_shape_b)
    available = min(len(images_a), len(images_b))
    count = available if num is None else int(num)
    # Every FCD compares two halves of `count`, and a covariance of D features
    # needs more than D samples: checked now, not after all the translating.
    fewest = 2 * (view.feature_dim + 1)
    held = (f"{dataset_a} {split_a} holds {len(images_a)} images and {dataset_b} {split_b} "
            f"{len(images_b)}, and each FCD compares two halves of the sample with the "
            f"classifier's {view.feature_dim} features")
    if available < fewest:
        raise ValueError(f"{held}: each domain needs at least {fewest} images. Evaluate against "
                         "larger domains.")
    if count < fewest or count > available:
        given = f"{num_flag} {num}" if num_flag else f"num={num}"
        raise ValueError(f"{given}: {held}; pass {num_flag or 'num'} from {fewest} to {available}.")
    rng = np.random.default_rng(seed)
    pick_a = rng.permutation(len(images_a))[:count]
    pick_b = rng.permutation(len(images_b))[:count]
    images_a, images_b = images_a[pick_a], images_b[pick_b]
    labels_a = None if labels_a is None else labels_a[pick_a]
    labels_b = None if labels_b is None else labels_b[pick_b]

    generator_ab, generator_ba = model.generator, model.generator_ba
    a_to_b = _translate(generator_ab, images_a, batch_size)
    b_to_a = _translate(generator_ba, images_b, batch_size)
    a_cycled = _translate(generator_ba, a_to_b, batch_size)
    b_cycled = _translate(generator_ab, b_to_a, batch_size)
    # Every FCD compares `half` images with the second half of a real domain
    # sample, so the real-vs-real floor is measured at the same N (FCD is
    # biased by N) and no image is compared with itself.
    half = count // 2
    target_b, target_a = images_b[half:], images_a[half:]

    def accuracy(key, images, labels):  # needs the source domain's labels
        return {} if labels is None else {key: _round(view.accuracy(images, labels))}

    result = {
        "source": label,
        "a_to_b": {
            **accuracy("class_preservation", a_to_b, labels_a),
            # Pixels in [-1, 1]: half the mean absolute error is on the [0, 1] scale.
            "cycle_l1": _round(float(np.mean(np.abs(a_cycled - images_a))) / 2),
            "fcd": _round(_fcd(view, a_to_b[:half], target_b, seed)),
        },
        "b_to_a": {
            **accuracy("class_preservation", b_to_a, labels_b),
            "cycle_l1": _round(float(np.mean(np.abs(b_cycled - images_b))) / 2),
            "fcd": _round(_fcd(view, b_to_a[:half], target_a, seed)),
        },
        "reference": {
            **accuracy("classifier_accuracy_real_a", images_a, labels_a),
            **accuracy("classifier_accuracy_real_b", images_b, labels_b),
            "fcd_untranslated_a_vs_b": _round(_fcd(view, images_a[:half], target_b, seed)),
            "fcd_untranslated_b_vs_a": _round(_fcd(view, images_b[:half], target_a, seed)),
            "fcd_real_a_vs_real_a": _round(_fcd(view, images_a[:half], target_a, seed)),
            "fcd_real_b_vs_real_b": _round(_fcd(view, images_b[:half], target_b, seed)),
        },
        "protocol": {
            "domain_a": f"{dataset_a} {split_a}",
            "domain_b": f"{dataset_b} {split_b}",
            "num": count,
            "fcd_num": half,
            "classifier": str(classifier),
            "seed": seed,
            "resized_to": list(view.input_shape),
        },
    }
    unlabelled = [f"domain {side} ({name})" for side, name, labels in
                  (("A", dataset_a, labels_a), ("B", dataset_b, labels_b)) if labels is None]
    if unlabelled:
        result["not_measured"] = (
            f"class preservation of {' and '.join(unlabelled)}: a folder without class "
            "sub-folders has no labels. Class preservation needs labelled sub-folders, one per "
            "class, named so that they sort in the classifier's label order (0/ to 9/ for the "
            "MNIST evaluator)."
        )
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result


def record_in_card(folder, result, command):
    """Write a translation result into a preset's metadata and re-render its card.

    `metrics` gets flat keys (`a_to_b_class_preservation`, ...) for tables;
    `evaluation` keeps the full result, its protocol and the command.

    Returns:
        The updated metadata, as `kgan.evaluation.record_in_card` returns it.

    Example:

    ```python
    import shutil
    from kgan import translation_evaluation
    folder = shutil.copytree(kgan.zoo.resolve("cyclegan_digits"), "my_translator")  # a copy
    result = translation_evaluation.evaluate_translation(folder, num=300)  # FCD: num >= 258
    metadata = translation_evaluation.record_in_card(folder, result, "kgan evaluate my_translator")
    metadata["metrics"]["a_to_b_class_preservation"]  # as read_metadata(folder) now gives
    ```
    """
    figures = {
        f"{direction}_{key}": value
        for direction in DIRECTIONS
        for key, value in result[direction].items()
    }
    evaluation = {
        "kind": "translation",
        "command": command,
        "protocol": result["protocol"],
        "directions": {d: result[d] for d in DIRECTIONS},
        "reference": result["reference"],
    }
    return zoo.update_metadata(folder, {"metrics": figures, "evaluation": evaluation})
