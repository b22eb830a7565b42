"""SavedModel export of generators, for serving without kgan.

The SavedModel of a latent GAN has two signatures:

* `serving_default`: float32 latents `[None, latent_dim]` -> `{"images":
  float32 [None, H, W, C] in [-1, 1]}`. Float, because it is exactly what
  `GAN.generate` returns (max |diff| <= 1e-5), loses nothing, and lets a
  client post-process (e.g. tile, blend, feed another model) before
  quantizing.
* `generate_uint8`: the same input -> `{"images": uint8 [None, H, W, C]}`,
  ready for PNG/JPEG encoding by a serving front end.

A class-conditional model's signatures take int32 `labels [None]` (or
`[None, 1]`) beside the latents. A CycleGAN's has `a_to_b`, `b_to_a` and
`serving_default` (= `a_to_b`), each on uint8 `images [None, H, W, C]` of
any size (`kgan.models.cyclegan.export_translator`). Inputs of the wrong
shape fail with an error saying the shape to pass.

It loads with plain TensorFlow: `tf.saved_model.load(path).signatures[...]`.

`export_tflite` converts the same two signatures (or a CycleGAN's `a_to_b` /
`b_to_a`) to one LiteRT (TFLite) flatbuffer, `generator.tflite`, with a fixed
batch size, for phones, microcontrollers and other runtimes without
TensorFlow; `tflite_interpreter` runs it.
"""

import numbers
import os
import tempfile
from pathlib import Path

import keras
import tensorflow as tf

from kgan import zoo
from kgan.atomic import absolute_folder, write_folder

#: file name of the LiteRT model inside an `export_tflite` folder.
TFLITE_FILE = "generator.tflite"

#: `quantize=` values of `export_tflite`: weights stored as float16 (half the
#: size; the interpreter dequantizes them, so inputs and outputs stay float32).
QUANTIZATIONS = ("float16",)


def export_generator(model, path, overwrite=False):
    """Write the generator of a kgan model as a SavedModel.

    The export is written to a temporary folder next to `path` and renamed
    into place, so an interrupted export never leaves a half-written model.

    Args:
        model: a `kgan.models.GAN` (its `generator` is exported).
        path: destination folder; must not exist unless `overwrite=True`.
        overwrite: replace an earlier export folder at `path` (never a file
            or a preset: `check_export_path`).

    Returns:
        `path` as a `Path`.

    Raises:
        TypeError: `model` is not a kgan model (e.g. a preset's name: load
            it first with `kgan.zoo.load`).
        FileExistsError: `path` is a file, or exists and `overwrite` is False.
        kgan.zoo.ZooError: `path` is, holds or lies inside a preset folder.

    Example:

    ```python
    kgan.export.export_generator(gan, "served/dcgan")
    served = tf.saved_model.load("served/dcgan")
    images = served.signatures["serving_default"](tf.random.normal([4, gan.latent_dim]))["images"]
    ```
    """
    _check_model(model, "export_generator")
    if hasattr(model, "export_serving"):  # models whose inputs are images, not latents
        return model.export_serving(path, overwrite=overwrite)  # (CycleGAN: a_to_b, b_to_a)
    path = check_export_path(path, overwrite)
    # The same two signatures as the TFLite export, at any batch size.
    archive = _archive(*_latent_signatures(model, batch_size=None))
    return write_folder(path, lambda folder: archive.write_out(str(folder), verbose=False))


def check_export_path(path, overwrite=False, tflite=False):
    """Refuse, before any work, an export folder that must not be written.

    An export is assembled beside `path` and renamed over it, deleting what
    was there, so `overwrite` replaces only an empty folder or an earlier
    export folder of the same format: a file at `path`, any other folder, a
    preset folder (or a folder holding or inside one, `kgan.zoo.check_not_over_presets`)
    and, for `tflite`, a path named like the `.tflite` file itself are
    refused whatever `overwrite` says. `~` is expanded.

    Args:
        path: the export folder asked for.
        overwrite: whether an existing export folder may be replaced.
        tflite: the target of `export_tflite` (a folder for `generator.tflite`).

    Returns:
        `path` as a `Path`, `~` expanded.

    Raises:
        ValueError: an empty path, or a `.tflite`-named one for `tflite`.
        FileExistsError: `path` is a file, or an existing folder without
            `overwrite`, or with it one that is neither empty nor an earlier
            export of the same format (holding `saved_model.pb`, or
            `generator.tflite` for `tflite`).
        kgan.zoo.ZooError: `path` is, holds or lies inside a preset folder.

    Example:

    ```python
    path = kgan.export.check_export_path("~/served/dcgan")  # Path('/home/me/served/dcgan')
    kgan.export.check_export_path("notes.txt", overwrite=True)  # FileExistsError: a file
    ```
    """
    if not os.fspath(path).strip():
        # Path("") is the current folder: the export would replace it whole.
        raise ValueError(
            "The export path is empty: give the folder to write the export into, e.g. "
            "'served/dcgan'."
        )
    path = Path(path).expanduser()
    if tflite and path.suffix.lower() == ".tflite":
        raise ValueError(
            f"The export path is the folder the {TFLITE_FILE} file is written into; {path} "
            f"looks like the file. Give its folder, e.g. {path.parent / path.stem}."
        )
    zoo.check_not_over_presets(path, "export into")
    if path.exists() and not path.is_dir():
        raise FileExistsError(
            f"{path} exists and is not a folder; the export path names the folder the export "
            "is written into (overwrite replaces only an earlier export folder): choose a new "
            "folder, or move that file away."
        )
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"Export path {path} already exists; pass overwrite=True (CLI: --overwrite) to "
            "replace it, or choose a new path."
        )
    absolute_folder(path)  # not `.`, `..` or a folder holding the current one
    if path.is_dir():
        _check_earlier_export(path, tflite)
    return path


#: the file every SavedModel folder holds.
SAVED_MODEL_FILE = "saved_model.pb"


def _check_earlier_export(path, tflite):
    """Refuse to replace the folder `path` unless it is empty or an earlier export
    of the same format (holding `generator.tflite`, or `saved_model.pb`)."""
    marker, form = (TFLITE_FILE, "TFLite") if tflite else (SAVED_MODEL_FILE, "SavedModel")
    contents = sorted(p.name for p in path.iterdir())
    if not contents or (path / marker).is_file():
        return
    shown = ", ".join(contents[:5]) + (f" and {len(contents) - 5} more" if len(contents) > 5
                                        else "")
    raise FileExistsError(
        f"Refusing to replace {path}: it holds {shown}, not an earlier {form} export (a folder "
        f"holding {marker}), and overwrite replaces only such an export or an empty folder, "
        "deleting everything in it. Choose another export path, or move those files away."
    )


def _check_model(model, function):
    """Refuse anything but a kgan model before any work, naming what to pass."""
    from kgan.models.gan import GAN

    if isinstance(model, GAN):
        return
    if isinstance(model, (str, Path)):
        raise TypeError(
            f"{function} takes a kgan model, got the {type(model).__name__} {str(model)!r}; "
            f"load it first, e.g. {function}(kgan.zoo.load({str(model)!r}), ...), or use "
            "the CLI: kgan export NAME DIR."
        )
    raise TypeError(
        f"{function} takes a kgan model (kgan.models.GAN: DCGAN, WGAN, WGANGP, ConditionalGAN, "
        f"CycleGAN), got {type(model).__name__}. For a plain Keras model use "
        "keras.Model.export."
    )


def _computes_in_16_bits(model):
    """Whether any layer of `model`, nested networks included, computes in bf16/fp16."""
    return any(
        keras.backend.standardize_dtype(layer.compute_dtype) in ("bfloat16", "float16")
        for layer in model._flatten_layers(include_self=False)
    )


def _archive(networks, signatures):
    """A `keras.export.ExportArchive` tracking `networks` with `{name: (function, specs)}`."""
    archive = keras.export.ExportArchive()
    for network in networks:
        archive.track(network)
    for name, (function, specs) in signatures.items():
        archive.add_endpoint(name, function, input_signature=list(specs))
    return archive


def _uint8(images):
    """Float images in [-1, 1] -> uint8, as `kgan.images.to_uint8` rounds them."""
    return tf.cast(tf.round((tf.clip_by_value(images, -1.0, 1.0) + 1.0) * 127.5), tf.uint8)


def _has_shape(shape, dims):
    """Whether the run-time `shape` (an int32 vector) is `dims` (ints, None for any size)."""
    rank = len(dims)
    # Padded, so that indexing a shorter (wrong) shape reads 1s instead of failing.
    padded = tf.concat([shape, tf.ones([rank], shape.dtype)], 0)[:rank]
    matches = tf.equal(tf.size(shape), rank)
    for index, size in enumerate(dims):
        if size is not None:
            matches = tf.logical_and(matches, tf.equal(padded[index], size))
    return matches


def _checked_shape(tensor, valid, message):
    """`tensor`, once `valid(shape)` holds at run time; else an error of `message` and the shape.

    A loaded SavedModel's signature does not enforce the input shape it
    declares: a wrong one fails deep inside the network ("Matrix
    size-incompatible", "output depth must be evenly divisible"). The
    shape is read from a copy whose static shape is unknown: on the
    input itself, TensorFlow would fold the declared rank into a constant
    and drop the check. The returned tensor keeps its static shape.

    Example:

    ```python
    latents = _checked_shape(latents, lambda shape: _has_shape(shape, [None, 100]),
                            "latents must be float32 [batch, 100].")
    ```
    """
    shape = tf.shape(tf.compat.v1.placeholder_with_default(tensor, shape=None))
    check = tf.debugging.Assert(valid(shape), [message + " Got shape:", shape])
    with tf.control_dependencies([check]):
        return tf.identity(tensor)


def _latent_signatures(model, batch_size):
    """`{name: (function, specs)}`: export_generator's two signatures at a batch size.

    A class-conditional model (one with `num_classes`) takes `labels` int32
    `[batch]` (or `[batch, 1]`, as `generate` does) beside the latents; a
    label outside `[0, num_classes)` fails with an error naming the range
    (an embedding lookup on a GPU would silently return zeros). Inputs of
    another shape fail with an error saying the shape to pass
    (`_checked_shape`); another dtype (e.g. int64 labels) is refused by
    TensorFlow before the graph runs: cast to the signature's dtype.
    """
    generator = model.sampling_generator  # the EMA weights when enabled
    latent_dim = model.latent_dim
    latents_spec = tf.TensorSpec([batch_size, latent_dim], tf.float32, name="latents")
    num_classes = getattr(model, "num_classes", None)

    def checked_latents(latents):
        return _checked_shape(
            latents, lambda shape: _has_shape(shape, [None, latent_dim]),
            f"latents must be float32 of shape [batch, {latent_dim}]: one {latent_dim}-number "
            "latent vector per image.",
        )

    if num_classes is None:
        def serve_float(latents):
            latents = checked_latents(latents)
            return {"images": tf.cast(generator(latents, training=False), tf.float32)}

        def serve_uint8(latents):
            return {"images": _uint8(serve_float(latents)["images"])}

        specs = (latents_spec,)
    else:
        message = f"labels must be class indices in [0, {num_classes})"

        def serve_float(latents, labels):
            latents = checked_latents(latents)
            labels = _checked_shape(
                labels, lambda shape: tf.logical_or(_has_shape(shape, [None]),
                                                    _has_shape(shape, [None, 1])),
                f"labels must be int32 of shape [batch] (or [batch, 1]): one class index in "
                f"[0, {num_classes}) per latent vector, not one-hot (pass argmax(-1) of those).",
            )
            # [batch, 1] as generate takes it; reshaped from the copy of unknown shape,
            # else Grappler drops a reshape of a (declared) vector as a no-op.
            labels = tf.reshape(tf.compat.v1.placeholder_with_default(labels, shape=None), [-1])
            checks = [
                tf.debugging.assert_equal(
                    tf.shape(latents)[0], tf.shape(labels)[0],
                    message="latents and labels must have the same batch size",
                ),
                tf.debugging.assert_non_negative(labels, message=message),
                tf.debugging.assert_less(labels, num_classes, message=message),
            ]
            with tf.control_dependencies(checks):
                labels = tf.identity(labels)
            # TFLite drops the assertions, and its embedding lookup read label -1
            # as the last class: an out-of-range label indexes past a table
            # instead, which its GATHER refuses (an error, not a wrong image).
            in_range = tf.logical_and(labels >= 0, labels < num_classes)
            labels = tf.gather(tf.range(num_classes, dtype=labels.dtype),
                               tf.where(in_range, labels, num_classes))
            return {"images": tf.cast(generator([latents, labels], training=False), tf.float32)}

        def serve_uint8(latents, labels):
            return {"images": _uint8(serve_float(latents, labels)["images"])}

        specs = (latents_spec, tf.TensorSpec([batch_size], tf.int32, name="labels"))
    return [generator], {"serving_default": (serve_float, specs), "generate_uint8": (serve_uint8, specs)}


def _translator_signatures(model, batch_size, image_size):
    """A CycleGAN's `a_to_b` / `b_to_a` on uint8 images of one fixed size."""
    from kgan.models.cyclegan import DIRECTIONS, MIN_SIZE, _channels, _uint8_translator

    if image_size is None:
        image_size = model.image_size  # the training crops: what it translates best
    if isinstance(image_size, numbers.Integral) and not isinstance(image_size, bool):
        image_size = (image_size, image_size)
    if (isinstance(image_size, (str, bytes)) or not hasattr(image_size, "__len__")
            or len(image_size) != 2
            or not all(isinstance(d, numbers.Integral) and not isinstance(d, bool)
                       for d in image_size)):
        raise ValueError(
            f"image_size must be an int or (height, width) ints, e.g. 256 or (256, 320); got "
            f"{image_size!r}."
        )
    height, width = (int(d) for d in image_size)
    if min(height, width) < MIN_SIZE:
        raise ValueError(f"image_size must be at least {MIN_SIZE}x{MIN_SIZE}, got {height}x{width}.")
    networks, signatures = [], {}
    for direction in DIRECTIONS:
        generator = model._direction(direction)
        networks.append(generator)
        channels = _channels(generator, "in")
        spec = tf.TensorSpec([batch_size, height, width, channels], tf.uint8, name="images")
        # The SavedModel's graph at a static shape: padding and crop fold to constants.
        signatures[direction] = (_uint8_translator(generator), (spec,))
    return networks, signatures


def export_tflite(model, path, batch_size=1, quantize=None, image_size=None, overwrite=False):
    """Write a generator as a LiteRT (TFLite) model, `path/generator.tflite`.

    The flatbuffer holds the SavedModel's signatures with a fixed batch size
    (static shapes are what mobile delegates and microcontrollers need):
    `serving_default` (float32 latents `[batch_size, latent_dim]` -> float32
    images in [-1, 1]) and `generate_uint8` (-> uint8 images). A CycleGAN
    gets `a_to_b` and `b_to_a` on uint8 images `[batch_size, H, W, C]` of one
    fixed size (`image_size`, default the training crop size): TFLite models
    are compiled for one shape, and unlike the SavedModel's any-size
    translators, resizing the input tensor at run time would re-plan every op.

    Only TFLite builtin ops are used, so the file runs in any LiteRT
    interpreter without the TensorFlow (Flex) delegate. A model trained under
    mixed precision is converted from a float32 copy (`kgan.zoo.portable_copy`,
    what its preset would hold): LiteRT has no bfloat16 kernels. The conversion goes
    through a SavedModel (Keras 3's own LiteRT export path):
    `TFLiteConverter.from_concrete_functions` on Keras 3 variables produced
    garbage weights in TF 2.21. The folder is assembled beside `path` and
    renamed into place.

    Args:
        model: a `kgan.models.GAN` (its `sampling_generator` is exported) or a
            `CycleGAN`.
        path: destination folder; must not exist unless `overwrite=True`.
        batch_size: the fixed batch size (default 1); `None` leaves it
            dynamic (the interpreter then resizes per call).
        quantize: `None` (float32) or `"float16"` (float16 weights: half
            the file; outputs within about 5e-3 of float32 on `dcgan_mnist`,
            4.0e-3 measured).
        image_size: `(H, W)` or an int, for a CycleGAN only.
        overwrite: replace an existing folder at `path`.

    Returns:
        The `.tflite` file's `Path`.

    Raises:
        TypeError: `model` is not a kgan model (e.g. a preset's name: load
            it first with `kgan.zoo.load`).
        FileExistsError: `path` is a file, or exists and `overwrite` is False.
        kgan.zoo.ZooError: `path` is, holds or lies inside a preset folder.
        ValueError: a bad `batch_size`, `quantize` or `image_size`.

    Example:

    ```python
    tflite_file = kgan.export.export_tflite(gan, "served/dcgan_tflite")
    runner = kgan.export.tflite_interpreter(tflite_file).get_signature_runner("serving_default")
    images = runner(latents=gan.latents(1, seed=0))["images"]  # float32 [1, 28, 28, 1]
    ```
    """
    _check_model(model, "export_tflite")
    path = check_export_path(path, overwrite, tflite=True)
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
    ):
        raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}.")
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise ValueError(f"quantize must be None or one of {QUANTIZATIONS}, got {quantize!r}.")
    if _computes_in_16_bits(model):
        # LiteRT has no bfloat16 kernels: the converter refuses a bf16 MatMul
        # or convolution. The float32 copy a preset stores converts.
        model, _ = zoo.portable_copy(model)
    if hasattr(model, "translate"):
        networks, signatures = _translator_signatures(model, batch_size, image_size)
    elif image_size is not None:
        raise ValueError(
            "image_size is for image-to-image models (CycleGAN); a latent GAN's output size "
            f"is fixed by its generator ({model.image_shape})."
        )
    else:
        networks, signatures = _latent_signatures(model, batch_size)

    archive = _archive(networks, signatures)

    def write(folder):
        with tempfile.TemporaryDirectory(prefix="kgan-tflite-") as scratch:
            saved_model = str(Path(scratch) / "saved_model")
            archive.write_out(saved_model, verbose=False)
            converter = tf.lite.TFLiteConverter.from_saved_model(
                saved_model, signature_keys=list(signatures)
            )
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
            if quantize == "float16":
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
                converter.target_spec.supported_types = [tf.float16]
            flatbuffer = converter.convert()
        folder.mkdir()
        (folder / TFLITE_FILE).write_bytes(flatbuffer)

    return write_folder(path, write) / TFLITE_FILE


def tflite_interpreter(model_path, num_threads=None):
    """A LiteRT interpreter for a `.tflite` file, tensors allocated.

    Uses `ai_edge_litert` (pip install ai-edge-litert) when installed, else
    `tf.lite.Interpreter`, which TensorFlow deprecates in its favour.

    Args:
        model_path: the `.tflite` file (e.g. what `export_tflite` returned).
        num_threads: CPU threads for the interpreter (None: its default).

    Raises:
        FileNotFoundError: `model_path` is not a file.

    Example:

    ```python
    interpreter = kgan.export.tflite_interpreter("served/dcgan_tflite/generator.tflite")
    print(interpreter.get_signature_list())
    uint8_images = interpreter.get_signature_runner("generate_uint8")(latents=z)["images"]
    ```
    """
    model_path = Path(model_path).expanduser()
    if not model_path.is_file():
        raise FileNotFoundError(
            f"No LiteRT model at {model_path}: give the .tflite file that export_tflite wrote "
            f"(its folder's {TFLITE_FILE}; CLI: kgan export NAME DIR --format tflite)."
        )
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover - depends on the installation
        Interpreter = tf.lite.Interpreter
    interpreter = Interpreter(model_path=str(model_path), num_threads=num_threads)
    interpreter.allocate_tensors()
    return interpreter
