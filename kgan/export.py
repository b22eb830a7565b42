"""SavedModel export of generators, for serving without kgan.

The SavedModel has two signatures:

* `serving_default`: float32 latents `[None, latent_dim]` -> `{"images":
  float32 [None, H, W, C] in [-1, 1]}`. Float, because it is exactly what
  `GAN.generate` returns (max |diff| <= 1e-5), loses nothing, and lets a
  client post-process (e.g. tile, blend, feed another model) before
  quantizing.
* `generate_uint8`: the same input -> `{"images": uint8 [None, H, W, C]}`,
  ready for PNG/JPEG encoding by a serving front end.

It loads with plain TensorFlow: `tf.saved_model.load(path).signatures[...]`.
"""

import shutil
from pathlib import Path

import keras
import tensorflow as tf

from kgan.atomic import replace_folder, staging_dir


def export_generator(model, path, overwrite=False):
    """Write the generator of a kgan model as a SavedModel.

    The export is written to a temporary folder next to `path` and renamed
    into place, so an interrupted export never leaves a half-written model.

    Args:
        model: a `kgan.models.GAN` (its `generator` is exported).
        path: destination folder; must not exist unless `overwrite=True`.
        overwrite: replace an existing folder at `path`.

    Returns:
        `path` as a `Path`.

    Raises:
        FileExistsError: `path` exists and `overwrite` is False.

    Example:

    ```python
    kgan.export.export_generator(gan, "served/dcgan")
    served = tf.saved_model.load("served/dcgan")
    images = served.signatures["serving_default"](tf.random.normal([4, gan.latent_dim]))["images"]
    ```
    """
    if hasattr(model, "export_serving"):  # models whose inputs are images, not latents
        return model.export_serving(path, overwrite=overwrite)  # (CycleGAN: a_to_b, b_to_a)
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"Export path {path} already exists; pass overwrite=True "
            "(CLI: --overwrite) to replace it, or choose a new path."
        )
    generator = model.sampling_generator  # the EMA weights when enabled
    latent_dim = model.latent_dim
    spec = tf.TensorSpec([None, latent_dim], tf.float32, name="latents")

    def images_float(latents):
        return tf.cast(generator(latents, training=False), tf.float32)

    def serve_float(latents):
        return {"images": images_float(latents)}

    def serve_uint8(latents):
        scaled = tf.round((tf.clip_by_value(images_float(latents), -1.0, 1.0) + 1.0) * 127.5)
        return {"images": tf.cast(scaled, tf.uint8)}

    archive = keras.export.ExportArchive()
    archive.track(generator)
    archive.add_endpoint("serving_default", serve_float, input_signature=[spec])
    archive.add_endpoint("generate_uint8", serve_uint8, input_signature=[spec])

    staging = staging_dir(path)
    try:
        target = staging / "saved_model"
        archive.write_out(str(target), verbose=False)
        replace_folder(target, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path
