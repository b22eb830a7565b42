"""Re-save a preset with the layers its recipe builds today, its weights unchanged.

kgan's builders adopt faster or more exact training layers over time
(`kgan.layers`: fused batch and instance norm, the closed-form layer norm,
forward kernel gradients, slice crops). Each subclasses the Keras layer it
replaces, with the same variables and config. A preset saved before such a
change still loads and samples the same, but fine-tuning it trains with the
layers it was saved with: slower, and for WGAN-GP's critic with Keras's
layer norm, whose second-order gradient (the penalty's) drops a term.

`resave_preset` rebuilds the model from the preset's recorded recipe (the
`kgan train` command in its metadata), checks that the two differ only in
layers that subclass the preset's layers with equal configs, copies the
weights, checks that the generators' outputs are bitwise unchanged, and
writes a new preset with the same metadata, figures and sample sheet. A
note in the metadata records the re-save and the previous weights' sha256.
The weights file's sha256 changes: Keras keys a layer's variables by its
class.

```sh
python -m kgan.resave dcgan_mnist --output zoo/dcgan_mnist --overwrite
```

Example:

```python
from kgan.resave import resave_preset
report = resave_preset("wgan_gp_mnist", "wgan_gp_mnist_resaved")
report["swapped"]  # {"LayerNormalization -> AnalyticGradLayerNormalization": 1, ...}
```
"""

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from kgan import performance, zoo

#: A discriminator's scores may differ by rounding only: kgan's layer norm
#: computes Keras's statistics but rounds its output formula differently.
_SCORE_TOLERANCE = 1e-6


def recipe_model(metadata):
    """The model the preset's `kgan train` recipe builds today, compiled, untrained.

    EMA is left off: a preset's generator already holds the averaged weights.

    Args:
        metadata: the preset's metadata (`kgan.zoo.read_metadata`).

    Returns:
        The compiled `kgan.models.GAN`, in the current dtype policy.

    Example:

    ```python
    model = recipe_model(kgan.zoo.read_metadata(kgan.zoo.resolve("dcgan_mnist")))
    ```
    """
    from kgan import cli

    recipe = metadata.get("recipe", "")
    argv = shlex.split(recipe) if isinstance(recipe, str) else []
    if argv[:2] != ["kgan", "train"]:
        raise zoo.PresetMismatchError(
            f"Preset {metadata.get('name')!r} records no `kgan train` recipe ({recipe!r}), so "
            "the model its recipe builds today is unknown; re-save it from a model you build "
            "with kgan.zoo.save_preset."
        )
    try:
        args = cli.build_parser().parse_args(argv[1:])
    except SystemExit as exit_:  # argparse has printed why
        raise zoo.PresetMismatchError(
            f"Preset {metadata.get('name')!r} records a recipe this kgan's `kgan train` does not "
            f"accept ({recipe!r}); re-save it from a model you build with kgan.zoo.save_preset."
        ) from exit_
    args.ema_decay = None
    # "auto" as kgan train resolves it: compile takes a number of steps only.
    args.steps_per_execution = performance.resolve(
        args.arch, steps_per_execution=args.steps_per_execution)["steps_per_execution"]
    arch = zoo.architecture(args.arch)
    _, model, _ = cli._build_and_compile(
        arch, args, cli.architecture_options(args), translation=hasattr(arch.cls, "translate")
    )
    return model


def _without_names(config):
    if isinstance(config, dict):
        return {k: _without_names(v) for k, v in config.items() if k != "name"}
    if isinstance(config, list):
        return [_without_names(v) for v in config]
    return config


def layer_swaps(preset_network, network, label="network"):
    """Count the layers of `network` that subclass `preset_network`'s in their place.

    Raises:
        PresetMismatchError: the networks differ otherwise (another layer
            type, count or config).

    Example:

    ```python
    layer_swaps(preset.discriminator, fresh.discriminator)
    # {"BatchNormalization -> FusedBatchNormalization": 1, "Conv2D -> ForwardGradConv2D": 2}
    ```
    """
    old_layers, new_layers = preset_network.layers, network.layers
    if len(old_layers) != len(new_layers):
        raise zoo.PresetMismatchError(
            f"The preset's {label} has {len(old_layers)} layers, its recipe builds "
            f"{len(new_layers)}: the builder changed more than layer classes. Retrain the "
            "preset with its recipe instead of re-saving it."
        )
    swaps = {}
    for old, new in zip(old_layers, new_layers):
        same_config = _without_names(old.get_config()) == _without_names(new.get_config())
        if not isinstance(new, type(old)) or not same_config:
            raise zoo.PresetMismatchError(
                f"The preset's {label} layer {old.name!r} ({type(old).__name__}) differs from "
                f"{new.name!r} ({type(new).__name__}) its recipe builds today"
                f"{'' if same_config else ' in its config'}: re-saving only swaps in subclasses "
                "with the same config. Retrain the preset with its recipe instead."
            )
        if type(new) is not type(old):
            key = f"{type(old).__name__} -> {type(new).__name__}"
            swaps[key] = swaps.get(key, 0) + 1
    return swaps


def _outputs(model):
    """The generators' outputs and the discriminators' scores on fixed inputs."""
    rng = np.random.default_rng(0)
    if hasattr(model, "translate"):
        a = rng.uniform(-1, 1, (8, *model.image_shape_a)).astype("float32")
        b = rng.uniform(-1, 1, (8, *model.image_shape_b)).astype("float32")
        images = [model.translate(a), model.translate(b, direction="b_to_a")]
        scores = [model.discriminator(b[:4]), model.discriminator_a(a[:4])]
    else:
        images = [model.generate(16, seed=0)]
        scores = []
        if not isinstance(model.discriminator.input, list):  # conditional: (image, label)
            real = rng.uniform(-1, 1, (4, *model.image_shape)).astype("float32")
            scores = [model.discriminator(real)]
    return [np.asarray(x) for x in images], [np.asarray(x) for x in scores]


def resave_preset(source, folder, overwrite=False):
    """Write `source` as a preset in `folder` with the layers its recipe builds today.

    Args:
        source: registered preset name or preset folder.
        folder: destination; may be the source's own folder (with
            `overwrite`), which is replaced atomically.
        overwrite: replace an existing `folder`.

    Returns:
        A report dict: `swapped` (layer classes replaced, with counts),
        `max_score_difference` (relative), and both weights' sha256.

    Raises:
        PresetMismatchError: the recipe builds a different model, or the
            outputs would change; nothing is written.

    Example:

    ```python
    resave_preset("dcgan_mnist", "zoo/dcgan_mnist", overwrite=True)
    ```
    """
    source_folder = zoo.resolve(source)
    metadata = zoo.read_metadata(source_folder)
    preset = zoo.load(source_folder)
    model = recipe_model(metadata)
    networks = getattr(preset, "preset_networks", ("generator", "discriminator"))
    swapped = {}
    for name in networks:
        for key, count in layer_swaps(getattr(preset, name), getattr(model, name), name).items():
            swapped[key] = swapped.get(key, 0) + count
        getattr(model, name).set_weights(getattr(preset, name).get_weights())
    (old_images, old_scores), (new_images, new_scores) = _outputs(preset), _outputs(model)
    if not all(np.array_equal(x, y) for x, y in zip(old_images, new_images)):
        raise zoo.PresetMismatchError(
            f"{source}: the rebuilt generator's outputs differ from the preset's, so a re-save "
            "would change what the preset samples. Retrain the preset with its recipe instead."
        )
    difference = max(
        [float(np.abs(x - y).max() / max(np.abs(x).max(), 1e-30)) for x, y in zip(old_scores, new_scores)],
        default=0.0,
    )
    if difference > _SCORE_TOLERANCE:
        raise zoo.PresetMismatchError(
            f"{source}: the rebuilt discriminator's scores differ from the preset's by "
            f"{difference:.2g} (relative), more than rounding. Retrain the preset instead."
        )
    kept = {k: v for k, v in metadata.items() if k not in zoo.DERIVED_METADATA}
    if swapped:
        note = (
            f"Re-saved on {time.strftime('%Y-%m-%d')} with the layers kgan's builders now train "
            f"with ({'; '.join(sorted(swapped))}), so that fine-tuning uses them. The weights are "
            f"the trained ones, unchanged (previous weights sha256 {metadata['weights_sha256']}); "
            "the generator's outputs are bitwise equal to before, so the figures above stand."
        )
        kept["notes"] = (kept.get("notes", "") + "\n\n" + note).strip()
    zoo.save_preset(model, folder, kept, overwrite=overwrite,
                    samples=Path(source_folder) / zoo.SAMPLES_FILE)
    return {
        "preset": metadata.get("name"),
        "swapped": swapped,
        "max_score_difference": difference,
        "previous_weights_sha256": metadata["weights_sha256"],
        "weights_sha256": zoo.read_metadata(folder)["weights_sha256"],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m kgan.resave",
        description="Re-save a preset with the layers its recipe builds today, weights unchanged.",
    )
    parser.add_argument("source", help="registered preset name or preset folder")
    parser.add_argument("--output", required=True, help="destination preset folder")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    args = parser.parse_args(argv)
    if Path(args.output).exists() and not args.overwrite:
        print(f"error: {args.output} exists; pass --overwrite to replace it.", file=sys.stderr)
        return 2
    try:
        report = resave_preset(args.source, args.output, overwrite=args.overwrite)
    except (zoo.ZooError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
