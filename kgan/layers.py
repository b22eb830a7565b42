"""Small reusable Keras layers: reflection padding, the image pool, and faster
implementations of Keras layers (`SliceCropping2D`, `FusedBatchNormalization`,
`FusedInstanceNormalization`, `AnalyticGradLayerNormalization`, `ForwardGradConv2D`,
`ForwardGradConv2DTranspose`: same config, variables and math as the Keras
layer they subclass). The `ForwardGrad*` names are from those layers' first
speed-up, a kernel gradient by forward convolution, and stay so saved models
load.

All are registered as `kgan>...` serializables, so models that use them
save to `.keras` files and load in Keras safe mode.

Example:

```python
pad = kgan.layers.ReflectionPadding2D(3)       # [B, H, W, C] -> [B, H + 6, W + 6, C]
pool = kgan.layers.ImagePool(50, (128, 128, 3))
images_for_d = pool(fake_images, seed=[0, 1])  # history of generated images
```
"""

import keras
import tensorflow as tf

from kgan import performance


def _pair(value, name):
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    try:
        first, second = (int(v) for v in value)
    except (TypeError, ValueError):
        first = second = -1
    if first < 0 or second < 0:
        raise ValueError(
            f"{name} must be a non-negative int or a pair of them, e.g. 3 or (3, 3); got {value!r}."
        )
    return first, second


@keras.saving.register_keras_serializable(package="kgan")
class ReflectionPadding2D(keras.layers.Layer):
    """Pads the height and width of `[B, H, W, C]` images by reflection.

    The border is mirrored without repeating the edge pixel (`tf.pad` mode
    `REFLECT`, PyTorch's `ReflectionPad2d`). CycleGAN pads this way before
    its 7x7 and 3x3 convolutions: zero padding would add a dark frame that
    the generator learns to reproduce as border artifacts. Keras 3.15 has no
    such layer (only `ZeroPadding2D`).

    Each padding must be smaller than the padded side (a 3-pixel reflection
    needs at least 4 pixels).

    Args:
        padding: int (same on all four sides) or `(pad_height, pad_width)`,
            each applied on both sides of its axis.
        **kwargs: passed to `keras.layers.Layer` (e.g. `name`).

    Example:

    ```python
    x = ReflectionPadding2D(1)(keras.Input((None, None, 8)))
    ```
    """

    def __init__(self, padding=1, **kwargs):
        super().__init__(**kwargs)
        self.padding = _pair(padding, "padding")

    def call(self, inputs):
        pad_h, pad_w = self.padding
        return tf.pad(inputs, [[0, 0], [pad_h, pad_h], [pad_w, pad_w], [0, 0]], mode="REFLECT")

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        pad_h, pad_w = self.padding
        height = None if height is None else height + 2 * pad_h
        width = None if width is None else width + 2 * pad_w
        return (batch, height, width, channels)

    def get_config(self):
        config = super().get_config()
        config["padding"] = list(self.padding)
        return config


@keras.saving.register_keras_serializable(package="kgan")
class SliceCropping2D(keras.layers.Cropping2D):
    """`keras.layers.Cropping2D` computed by `tf.slice`, whose gradient is one pad.

    Same arguments, config and outputs as the Keras layer, which crops with a
    strided slice; TensorFlow differentiates that with `StridedSliceGrad`,
    which in CycleGAN's train step (the generators' two upsampling crops,
    128 px, batch 1, `mixed_bfloat16`, AMD EPYC) took 3.8 ms per call, 4% of
    the step's op time. `tf.slice`'s gradient is a `Pad`. In-process,
    alternating A/B of the train step: 1303 -> 1254 ms (median of 8 rounds).

    Example:

    ```python
    x = SliceCropping2D(((1, 0), (1, 0)))(x)  # [B, 2H + 1, 2W + 1, C] -> [B, 2H, 2W, C]
    ```
    """

    def call(self, inputs):
        (top, bottom), (left, right) = self.cropping
        spatial = inputs.shape[2:4] if self.data_format == "channels_first" else inputs.shape[1:3]
        if any(size is not None and sum(crop) >= size
               for size, crop in zip(spatial, self.cropping)):
            raise ValueError(  # Keras's message
                "Values in `cropping` argument should be smaller than the "
                "corresponding spatial dimension of the input. Received: "
                f"inputs.shape={inputs.shape}, cropping={self.cropping}"
            )
        shape = tf.shape(inputs)
        # With a size known only at run time, a crop that leaves nothing gives
        # an empty map (as Keras's layer does): the size is clamped at 0 (-1
        # would mean "all the rest" to tf.slice) and the start at the size
        # (tf.slice refuses a start past the end).
        rows, cols = (2, 3) if self.data_format == "channels_first" else (1, 2)
        top_, left_ = tf.minimum(top, shape[rows]), tf.minimum(left, shape[cols])
        height = tf.maximum(shape[rows] - top - bottom, 0)
        width = tf.maximum(shape[cols] - left - right, 0)
        if self.data_format == "channels_first":
            begin, size = [0, 0, top_, left_], [-1, -1, height, width]
        else:
            begin, size = [0, top_, left_, 0], [-1, height, width, -1]
        outputs = tf.slice(inputs, begin, size)
        # A size tensor hides every static dimension; the channels are known.
        outputs.set_shape(self.compute_output_shape(inputs.shape))
        return outputs


@keras.saving.register_keras_serializable(package="kgan")
class ImagePool(keras.layers.Layer):
    """A history of generated images for the discriminator (Shrivastava et al. 2017).

    The discriminator is shown a mix of the newest fakes and fakes from
    earlier steps, so it does not forget what the generator used to produce
    and the two networks oscillate less. This is the rule of CycleGAN's
    reference `ImagePool`, applied to the images of a batch in order:

    * while fewer than `pool_size` images are stored, store the new image and
      return it;
    * once full, with probability 0.5 return a uniformly chosen stored image
      and put the new one in its place; otherwise return the new image.

    The pool lives in non-trainable Keras variables (the images and a count),
    so it works inside a compiled `tf.function` / XLA train step (the update
    is a fixed-shape select, no Python state) and is saved with the model:
    `.keras` files, `save_weights` and `BackupAndRestore` checkpoints (an
    empty pool is saved as nothing, and loads empty). Because
    its variables have a fixed shape, it holds images of one size: train on
    fixed-size crops of `image_shape`.

    Under a `tf.distribute` strategy call it with the same `seed` on every
    replica and pass `distributed=True` (the default): each replica gathers
    the whole global batch, makes the same update of the one shared pool and
    returns its own slice, so the pool behaves exactly as on one device
    (the reference runs one pool over the global batch, too).

    Randomness is stateless: the caller passes a seed (e.g. from a
    `keras.random.SeedGenerator`), so runs are reproducible.

    Args:
        pool_size: how many images to keep; 0 disables the pool (images pass
            through unchanged and no variables are created).
        image_shape: `(H, W, C)` of the images stored.
        **kwargs: passed to `keras.layers.Layer` (e.g. `name`). The layer
            always computes in float32: the stored images are the float32
            outputs of a generator.

    Example:

    ```python
    pool = ImagePool(50, (128, 128, 3))
    older_or_new = pool(fake_b, seed=tf.constant([1, 2]))
    ```
    """

    def __init__(self, pool_size=50, image_shape=None, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 0:
            raise ValueError(
                f"pool_size must be an int >= 0 (the paper uses 50; 0 disables the pool), "
                f"got {pool_size!r}."
            )
        self.pool_size = pool_size
        if image_shape is None or len(tuple(image_shape)) != 3 or any(
            isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in image_shape
        ):
            raise ValueError(
                f"image_shape must be (height, width, channels) with positive ints, got "
                f"{image_shape!r}. The pool stores fixed-size images: train on fixed-size crops."
            )
        self.image_shape = tuple(image_shape)
        self.images = None
        self.count = None
        if pool_size:
            # ONLY_FIRST_REPLICA: every replica computes the same new pool
            # (same gathered batch, same seed); one copy is kept.
            self.images = self.add_weight(
                shape=(pool_size,) + self.image_shape, initializer="zeros", trainable=False,
                name="images", aggregation="only_first_replica",
            )
            self.count = self.add_weight(
                shape=(), initializer="zeros", dtype="int32", trainable=False, name="count",
                aggregation="only_first_replica",
            )
        self.built = True

    def call(self, images, seed, distributed=True):
        """Images for the discriminator: new ones, or stored ones they replace.

        Args:
            images: float `[B, H, W, C]` generated images (gradients stop here).
            seed: stateless seed, int tensor of shape `[2]`; the same on all
                replicas of a strategy.
            distributed: inside a multi-replica strategy, share one pool over
                the global batch (see the class docstring).

        Returns:
            float32 `[B, H, W, C]`.
        """
        images = tf.stop_gradient(tf.cast(images, tf.float32))
        if not self.pool_size:
            return images
        if tuple(images.shape[1:]) != self.image_shape:
            raise ValueError(
                f"ImagePool {self.name!r} stores images of shape {self.image_shape}, got a "
                f"batch of shape {tuple(images.shape)}. Train on fixed-size crops of "
                f"{self.image_shape[:2]}."
            )
        context = tf.distribute.get_replica_context()
        replicas = 1 if context is None else context.num_replicas_in_sync
        local = images
        if distributed and replicas > 1:
            images = context.all_gather(local, axis=0)
        new_pool, new_count, returned = pool_update(
            tf.convert_to_tensor(self.images), tf.convert_to_tensor(self.count), images, seed
        )
        self.images.assign(new_pool)
        self.count.assign(new_count)
        if distributed and replicas > 1:
            size = tf.shape(local)[0]
            # This replica's rows start after the earlier replicas' rows, whose
            # counts differ on an uneven (last, partial) batch: replica_id * size
            # handed a replica another replica's images there.
            sizes = context.all_gather(tf.reshape(size, [1]), axis=0)
            replica = tf.cast(context.replica_id_in_sync_group, tf.int32)
            start = tf.reduce_sum(sizes[:replica])
            returned = returned[start : start + size]
            returned.set_shape(local.shape)
        return returned

    def compute_output_spec(self, images, seed=None, distributed=True):
        return keras.KerasTensor(images.shape, dtype="float32")

    def save_own_variables(self, store):
        # An empty pool is saved as nothing, so a preset (whose pools are
        # empty: they are training state) keeps the configured pool_size
        # without `pool_size` zeros of images in its weight file.
        if self.pool_size and int(self.count.numpy()) > 0:
            super().save_own_variables(store)

    def load_own_variables(self, store):
        if self.pool_size and not len(store.keys()):
            self.count.assign(0)  # saved empty: rows past `count` are never read
            return
        super().load_own_variables(store)

    def get_config(self):
        config = super().get_config()
        config.update({"pool_size": self.pool_size, "image_shape": list(self.image_shape)})
        config.pop("dtype", None)  # always float32 (set in __init__)
        return config


def pool_update(pool, count, images, seed):
    """One pure step of the image-pool rule over a batch, in order.

    Equivalent to feeding the images one by one to the reference `ImagePool`
    (later images of the batch see the swaps of earlier ones), written with
    fixed shapes so XLA and `tf.distribute` can run it: for each image, the
    slot it writes (if any) and the slot it reads are computed, and the
    stored image it returns is the last earlier write to that slot, or the
    pool's content.

    Args:
        pool: `[N, H, W, C]` stored images (rows `>= count` are unused).
        count: int32 scalar, how many rows are filled.
        images: `[B, H, W, C]` new images.
        seed: stateless seed `[2]`.

    Returns:
        `(new_pool, new_count, returned)`.

    Example:

    ```python
    pool, count = tf.zeros([4, 8, 8, 3]), tf.constant(0)  # an empty pool of 4
    images = tf.random.uniform([3, 8, 8, 3], -1.0, 1.0)
    pool, count, returned = kgan.layers.pool_update(pool, count, images, seed=[0, 1])
    int(count)  # 3; while the pool fills, `returned` is `images` unchanged
    ```
    """
    size = tf.shape(pool)[0]
    batch = tf.shape(images)[0]
    order = tf.range(batch)
    seed = tf.cast(seed, tf.int64)
    coin = tf.random.stateless_uniform([batch], seed=seed)
    picks = tf.random.stateless_uniform(
        [batch], seed=tf.random.experimental.stateless_fold_in(seed, 1),
        minval=0, maxval=size, dtype=tf.int32,
    )
    # Image i finds count + i images stored (or a full pool).
    fills = count + order < size
    swaps = tf.logical_and(tf.logical_not(fills), coin > 0.5)  # the reference's `p > 0.5`
    writes = tf.where(fills, count + order, tf.where(swaps, picks, -1))  # slot written, -1: none

    # What image i reads from slot picks[i]: the last earlier batch image that
    # wrote that slot, else the stored image.
    earlier = order[None, :] < order[:, None]  # [i, j]: j before i
    hits = tf.logical_and(earlier, tf.equal(writes[None, :], picks[:, None]))
    last = tf.argmax(tf.where(hits, order[None, :] + 1, 0), axis=1, output_type=tf.int32)
    read = tf.where(
        _expand_like(tf.reduce_any(hits, axis=1), images),
        tf.gather(images, last),
        tf.gather(pool, picks),
    )
    returned = tf.where(_expand_like(swaps, images), read, images)

    # Each slot ends with its last writer's image.
    slots = tf.range(size)
    writers = tf.equal(writes[None, :], slots[:, None])  # [slot, j]
    last_writer = tf.argmax(tf.where(writers, order[None, :] + 1, 0), axis=1, output_type=tf.int32)
    new_pool = tf.where(
        _expand_like(tf.reduce_any(writers, axis=1), pool), tf.gather(images, last_writer), pool
    )
    new_count = tf.minimum(count + batch, size)
    return new_pool, new_count, returned


def _expand_like(mask, images):
    """A `[B]` mask broadcastable against `[B, H, W, C]`."""
    ones = tf.ones([tf.rank(images) - 1], tf.int32)
    return tf.reshape(mask, tf.concat([tf.shape(mask), ones], 0))


@keras.saving.register_keras_serializable(package="kgan")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` that trains with TensorFlow's fused kernel.

    Same arguments, variables, config and math as the Keras layer: in
    training it normalizes by the batch mean and *biased* batch variance and
    moves `moving_mean` / `moving_variance` toward them with `momentum`. Only
    the implementation differs, in training mode on 4-D channels-last
    inputs: one `FusedBatchNormV3` op (oneDNN on CPU, cuDNN on GPU) and its
    fused gradient replace Keras 3's ~10 separate ops, and under mixed
    precision its round trip to float32 and back, since the kernel reads
    bfloat16/float16 and accumulates the statistics in float32. On this
    project's CPUs that cut the CPU time of a DCGAN train step (28x28, batch
    64) by 26% under `mixed_bfloat16` and 8% in float32. Everything else
    (inference, masks, renorm, `synchronized=True`, other ranks or axes,
    float64, an epsilon below cuDNN's 1.001e-5 with a GPU visible, other
    backends) runs Keras's own implementation.

    One difference in results: through a gradient penalty (a gradient
    differentiated again) this layer is exact and Keras's is not. Keras's
    TensorFlow backend takes the variance with `tf.nn.moments`, which stops
    the gradient through the mean inside it: exact once, but a term is
    dropped on the second differentiation (see
    `AnalyticGradLayerNormalization`). The fused kernel's gradient is
    differentiated by TensorFlow's own rule. Against float64 arithmetic, a
    penalty's gradient through a `[2, 6, 6, 8]` map was off by 7.9e-7 here
    and 3.7e-2 with Keras's layer (relative to its largest entry).

    Example:

    ```python
    x = FusedBatchNormalization(momentum=0.9, epsilon=1e-5)(x)  # x: [B, H, W, C]
    ```
    """

    def _fusable(self, inputs, training, mask):
        return (
            training
            and self.trainable
            and mask is None
            and not self.renorm
            and not self.synchronized
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
            and self.compute_dtype in _FUSED_BATCH_NORM_DTYPES
            and (self.epsilon >= _CUDNN_MIN_EPSILON or not _accelerator_present())
            and keras.backend.backend() == "tensorflow"
        )

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        x = tf.cast(inputs, self.compute_dtype)
        channels = x.shape[-1]
        outputs, mean, variance = _fused_batch_norm(x, *_scale_and_offset(self, channels),
                                                    self.epsilon)
        # The kernel returns the Bessel-corrected variance; Keras averages the
        # biased one (the one it normalized with), so undo the correction.
        count = tf.cast(tf.size(x) // channels, tf.float32)
        variance = variance * (count - 1.0) / tf.maximum(count, 1.0)
        momentum = self.momentum
        self.moving_mean.assign(self.moving_mean * momentum + mean * (1.0 - momentum))
        self.moving_variance.assign(
            self.moving_variance * momentum + variance * (1.0 - momentum)
        )
        return outputs


def _scale_and_offset(layer, channels):
    """A normalization layer's gamma and beta in float32, or 1 and 0 without them."""
    scale = tf.cast(layer.gamma, tf.float32) if layer.scale else tf.ones([channels])
    offset = tf.cast(layer.beta, tf.float32) if layer.center else tf.zeros([channels])
    return scale, offset


def _fused_batch_norm(x, scale, offset, epsilon):
    """Training-mode `FusedBatchNormV3` of NHWC `x`: outputs, batch mean and
    the kernel's (Bessel-corrected) batch variance."""
    outputs, mean, variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
        x=x, scale=scale, offset=offset, mean=tf.zeros([0]), variance=tf.zeros([0]),
        epsilon=epsilon, data_format="NHWC", is_training=True,
    )
    return outputs, mean, variance


#: cuDNN's smallest batch-norm epsilon (with float32 rounding to spare).
_CUDNN_MIN_EPSILON = 1.001e-5

#: The compute dtypes `FusedBatchNormV3` takes; float64 keeps Keras's arithmetic.
_FUSED_BATCH_NORM_DTYPES = ("float16", "bfloat16", "float32")


@keras.saving.register_keras_serializable(package="kgan")
class FusedInstanceNormalization(keras.layers.GroupNormalization):
    """Instance normalization (`GroupNormalization` with one group per channel),
    trained with TensorFlow's fused batch-norm kernel.

    Same arguments, variables, config and math as the Keras layer. With one
    group per channel it normalizes each example's channels over height and
    width, which for a single example is batch normalization's training
    mode, so in training a batch of one `[1, H, W, C]` (CycleGAN's) runs as
    one `FusedBatchNormV3` op (oneDNN on CPU, cuDNN on GPU) and its fused
    gradient instead of Keras's ~10 separate ops and their automatic
    gradient. Larger batches are moved to one example of `B * C` channels
    (`[1, H, W, B * C]`) by a transpose each way. Statistics are accumulated
    in float32 from bfloat16/float16 inputs, as Keras's float32 round trip
    does. In CycleGAN's networks (128 px, `mixed_bfloat16`, AMD EPYC) one
    norm's forward and backward pass took 1.5-1.9x less time than Keras's.
    Everything else (inference, other group counts, ranks or axes, other
    backends, and with a GPU or TPU visible an epsilon below cuDNN's minimum
    1.001e-5) runs Keras's own implementation. Through a gradient penalty
    this layer is exact and Keras's is not, as for `FusedBatchNormalization`:
    3.1e-7 against 6.4e-2 (relative to the largest entry) for a `[2, 6, 6, 8]`
    map, compared with float64 arithmetic.

    Example:

    ```python
    x = FusedInstanceNormalization(groups=-1, center=False, scale=False, epsilon=1e-5)(x)
    ```
    """

    def _fusable(self, inputs, training):
        return (
            training
            and keras.backend.backend() == "tensorflow"
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
            and self.groups == inputs.shape[-1]
            and inputs.dtype.name in _FUSED_BATCH_NORM_DTYPES
            and (self.epsilon >= _CUDNN_MIN_EPSILON or not _accelerator_present())
        )

    def call(self, inputs, training=None):
        if not self._fusable(inputs, training):
            return super().call(inputs)
        x = tf.convert_to_tensor(inputs)
        channels = x.shape[-1]
        scale, offset = _scale_and_offset(self, channels)
        if x.shape[0] == 1:
            outputs, _, _ = _fused_batch_norm(x, scale, offset, self.epsilon)
        else:
            # [B, H, W, C] -> [1, H, W, B * C]: each (example, channel) a channel.
            batch, height, width = tf.unstack(tf.shape(x)[:3])
            stacked = tf.reshape(tf.transpose(x, [1, 2, 0, 3]), [1, height, width, -1])
            outputs, _, _ = _fused_batch_norm(
                stacked, tf.tile(scale, [batch]), tf.tile(offset, [batch]), self.epsilon)
            outputs = tf.transpose(
                tf.reshape(outputs, [height, width, batch, channels]), [2, 0, 1, 3])
            # The run-time reshapes lose what is known statically; with an
            # unknown batch size (a pipeline without drop_remainder) every
            # later layer would see (None, None, None, C).
            outputs.set_shape(x.shape)
        return tf.cast(outputs, self.compute_dtype)


def _layer_norm_analytic_grad(inputs, gamma, beta, axes, epsilon):
    """Layer normalization of `inputs` over `axes` with its gradient in closed form.

    `gamma` and `beta` are float32 (float64 for float64 inputs), already
    shaped to broadcast against `inputs`, or None. Statistics and outputs are
    computed in float32 and rounded once to the input dtype, as Keras's
    `ops.layer_normalization` does. The gradient is the textbook one,
    `rstd * (g - mean(g) - x_hat * mean(g * x_hat))` with `g` the output
    gradient times gamma, a few ops where automatic differentiation of the
    forward pass makes about twice as many. It is built from differentiable
    ops on tensors the tape recorded in the forward pass, so its own gradient
    (a gradient penalty's second-order pass) is exact.
    """
    compute_dtype = tf.float64 if inputs.dtype == tf.float64 else tf.float32
    batch_axes = [a for a in range(inputs.shape.rank) if a not in axes]
    params = [p for p in (gamma, beta) if p is not None]

    @tf.custom_gradient
    def normalize(x, *params):
        x32 = tf.cast(x, compute_dtype)
        mean = tf.reduce_mean(x32, axes, keepdims=True)
        centered = x32 - mean
        variance = tf.reduce_mean(tf.square(centered), axes, keepdims=True)
        rstd = tf.math.rsqrt(variance + epsilon)
        normalized = centered * rstd
        outputs = normalized if gamma is None else normalized * params[0]
        if beta is not None:
            outputs = outputs + params[-1]

        def grad(outputs_grad):
            g = tf.cast(outputs_grad, compute_dtype)
            params_grads = []
            if gamma is not None:
                params_grads.append(tf.reduce_sum(g * normalized, batch_axes, keepdims=True))
            if beta is not None:
                params_grads.append(tf.reduce_sum(g, batch_axes, keepdims=True))
            if gamma is not None:
                g = g * params[0]
            x_grad = rstd * (
                g - tf.reduce_mean(g, axes, keepdims=True)
                - normalized * tf.reduce_mean(g * normalized, axes, keepdims=True)
            )
            return (tf.cast(x_grad, x.dtype), *params_grads)

        return tf.cast(outputs, x.dtype), grad

    return normalize(inputs, *params)


@keras.saving.register_keras_serializable(package="kgan")
class AnalyticGradLayerNormalization(keras.layers.LayerNormalization):
    """`keras.layers.LayerNormalization` whose gradient is the closed-form one.

    Same arguments, variables and config as the Keras layer, and its outputs
    up to float32 rounding (the same statistics; Keras computes
    `x * inv + (beta - mean * inv)`, this layer `(x - mean) * rstd * gamma +
    beta`: 3.5e-7 apart, relative, in `wgan_gp_mnist`'s critic). Two
    reasons to use it where a gradient penalty differentiates through the norm
    (WGAN-GP's critic):

    * Exact second-order gradients. Keras (TensorFlow backend) takes the
      variance with `tf.nn.moments`, which stops the gradient through the mean
      inside it. That changes nothing once (the term is zero) but drops a
      term when differentiated again, so a penalty's gradient w.r.t. the
      weights *before* the norm is off even in float64 (relative error
      1.6e-4 normalizing a 5x6x16 map, 1e-2 normalizing 16 channels). Here
      the gradient is built from differentiable ops on the exact forward
      pass, and its own gradient is exact.
    * Speed. Automatic differentiation of Keras's forward pass makes about
      twice the elementwise ops of the closed form
      `rstd * (g - mean(g) - x_hat * mean(g * x_hat))`, and a penalty
      differentiates them again. In WGAN-GP's critic (28x28, batch 64,
      `mixed_bfloat16`, AMD EPYC) this cut the train step by 1.7-4.9%
      (medians of three in-process A/B runs).

    Statistics and outputs are computed in float32 and rounded once, as in
    Keras. With `rms_scaling=True` (deprecated in Keras) or on other
    backends it runs Keras's own implementation.

    Example:

    ```python
    x = AnalyticGradLayerNormalization(axis=[1, 2, 3])(x)  # x: [B, H, W, C]
    ```
    """

    def call(self, inputs):
        if self.rms_scaling or keras.backend.backend() != "tensorflow":
            return super().call(inputs)
        inputs = tf.convert_to_tensor(inputs)
        rank = inputs.shape.rank
        axes = sorted(a % rank for a in self.axis)
        # Keras's broadcast shape: the weights (shaped by `self.axis` in its
        # given order) are reshaped, not transposed, to it.
        shape = [inputs.shape[a] if a in axes else 1 for a in range(rank)]
        compute_dtype = tf.float64 if inputs.dtype == tf.float64 else tf.float32
        gamma, beta = (
            None if weight is None else tf.reshape(tf.cast(weight, compute_dtype), shape)
            for weight in (self.gamma, self.beta)
        )
        outputs = _layer_norm_analytic_grad(inputs, gamma, beta, axes, self.epsilon)
        return tf.cast(outputs, self.compute_dtype)


def _same_or_valid_padding(padding, size, kernel, stride):
    """`(before, after)` rows a forward convolution of `size` rows pads.

    TensorFlow's rule: "valid" pads none; "same" pads up to
    `ceil(size / stride)` outputs, the odd row after.
    """
    if padding == "valid":
        return 0, 0
    outputs = -(-size // stride)
    total = max((outputs - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _kernel_grad_by_forward_conv(inputs, outputs_grad, kernel_size, strides, padding):
    """Kernel gradient `[kh, kw, in, out]` of a 2-D forward convolution, as one convolution.

    For a convolution of `inputs` `[B, H, W, in]` to outputs `[B, h, w, out]`,
    `dW[i, j, c, o] = sum_{b, p, q} x[b, p*s + i, q*s + j, c] * dy[b, p, q, o]`
    over the padded inputs `x`: a convolution of `x` by `dy` dilated by the
    stride, once batch and channels swap places. The sum TensorFlow's
    `Conv2DBackpropFilter` computes, in another order. Needs static `H`, `W`.

    Where TensorFlow runs one thread per op (`kgan.performance.
    runs_ops_side_by_side`), it is two convolutions over halves of the input
    channels, which two cores run at once: each weight's sum is the same
    (bitwise). WGAN-GP's step waited on these alone at the end of each
    critic update, one core idle: in a trace (AMD EPYC family 26, 2 cores,
    bf16) 12.5 ms of its 129 ms ran with one thread busy in them; split, its
    step took 122.1 against 126.7 ms and 121.6 against 123.7 ms (in-process,
    10 and 12 alternated rounds of 20 steps, median). The WGAN was unchanged
    (68.0 against 67.3 ms); the DCGAN, which keeps TensorFlow's pools, does
    not split.
    """
    (top, bottom), (left, right) = (
        _same_or_valid_padding(padding, inputs.shape[1], kernel_size[0], strides[0]),
        _same_or_valid_padding(padding, inputs.shape[2], kernel_size[1], strides[1]),
    )
    outputs_grad = tf.transpose(outputs_grad, [1, 2, 0, 3])  # [h, w, B, out]
    channels = inputs.shape[-1]
    halves = channels is not None and channels % 2 == 0 and performance.runs_ops_side_by_side()
    grads = []
    for part in tf.split(inputs, 2, axis=3) if halves else [inputs]:
        # Transpose, then pad: the same values, but TensorFlow's CPU transpose
        # was 4x slower on the padded map of the 28x28 networks (bfloat16
        # [64, 16, 16, 64], batch and channels swapped: 1.85 ms, one thread,
        # AMD EPYC) than on the unpadded [64, 14, 14, 64] (0.47 ms), a
        # power-of-two layout being the likely cause.
        swapped = tf.transpose(part, [3, 1, 2, 0])  # [in, H, W, B]
        grads.append(tf.nn.conv2d(
            tf.pad(swapped, [[0, 0], [top, bottom], [left, right], [0, 0]]),
            outputs_grad, strides=1, padding="VALID", dilations=list(strides),
        ))  # [in, kh + extra, kw + extra, out]: rows past the kernel meet no output
    grad = tf.concat(grads, axis=0) if halves else grads[0]
    return tf.transpose(grad[:, : kernel_size[0], : kernel_size[1], :], [1, 2, 0, 3])


def _conv_input_grad(outputs_grad, kernel, inputs, kernel_size, strides, padding):
    """TensorFlow's input gradient of a 2-D convolution, with a faster kernel gradient of its own.

    The value is `conv2d_transpose(dy, w)`, TensorFlow's op. A gradient
    penalty differentiates it w.r.t. `w` once more: TensorFlow would use
    `Conv2DBackpropFilter`; here it is `_kernel_grad_by_forward_conv(g, dy)`,
    the kernel gradient of the layer's convolution with `g` as its input.
    The gradient w.r.t. `dy` is TensorFlow's, `conv2d(g, w)`. The result has
    the shape of the layer's `inputs`, whose height and width must be static.
    """

    @tf.custom_gradient
    def input_grad(dy, w):
        def grad(upstream):
            upstream.set_shape(inputs.shape)
            dy_grad = tf.nn.conv2d(upstream, w, strides=strides, padding=padding.upper())
            kernel_grad = _kernel_grad_by_forward_conv(upstream, dy, kernel_size, strides, padding)
            return dy_grad, kernel_grad

        value = tf.nn.conv2d_transpose(
            dy, w, tf.shape(inputs), strides=strides, padding=padding.upper()
        )
        value.set_shape(inputs.shape)
        return value, grad

    return input_grad(outputs_grad, kernel)


def _conv_transpose_by_matmul(inputs, kernel, stride, padding, output_size):
    """A stride-`s` transposed convolution as one matmul and a shifted sum.

    `inputs` `[B, h, w, C]`, `kernel` `[kh, kw, F, C]` (a transposed
    kernel's layout), each kernel side a multiple of `s`; returns
    `[B, H, W, F]` for `output_size` `(H, W)`. Every input pixel adds
    `kernel . x` to a `kh x kw` patch of the output; split each side of the
    kernel into `kh / s` blocks of `s` rows, and the patches are `(kh / s) *
    (kw / s)` copies, shifted by whole blocks, of one `[B, h, w, s*s*F]`
    matmul, interleaved by `depth_to_space`. The sum TensorFlow's
    `Conv2DBackpropInput` computes, in another order.
    """
    dtype = inputs.dtype
    # Accumulate in float32 (float64 for float64) and round once, as
    # TensorFlow's kernel does: a bfloat16 matmul would round every block
    # before the sum.
    accumulate = tf.float64 if dtype == tf.float64 else tf.float32
    inputs, kernel = tf.cast(inputs, accumulate), tf.cast(kernel, accumulate)
    kh, kw, filters, channels = (int(d) for d in kernel.shape)
    blocks_h, blocks_w = kh // stride, kw // stride
    height, width = int(inputs.shape[1]), int(inputs.shape[2])
    # Columns ordered (block row, block column, row in block, column in block, filter).
    columns = tf.reshape(
        tf.transpose(tf.reshape(kernel, [blocks_h, stride, blocks_w, stride, filters, channels]),
                     [5, 0, 2, 1, 3, 4]),
        [channels, -1],
    )
    taps = tf.matmul(tf.reshape(inputs, [-1, channels]), columns)
    taps = tf.reshape(taps, [-1, height, width, blocks_h * blocks_w * stride * stride * filters])
    total = None
    for index, part in enumerate(tf.split(taps, blocks_h * blocks_w, axis=-1)):
        row, column = divmod(index, blocks_w)
        shifted = tf.pad(part, [[0, 0], [row, blocks_h - 1 - row],
                                [column, blocks_w - 1 - column], [0, 0]])
        total = shifted if total is None else total + shifted
    full = tf.nn.depth_to_space(total, stride) if stride > 1 else total
    top, _ = _same_or_valid_padding(padding, output_size[0], kh, stride)
    left, _ = _same_or_valid_padding(padding, output_size[1], kw, stride)
    # With "valid" padding a forward convolution may skip the last rows and
    # columns of its input (when (H - kh) % s != 0); their gradient is zero.
    rows, cols = (height + blocks_h - 1) * stride, (width + blocks_w - 1) * stride
    full = tf.pad(full, [[0, 0], [0, max(top + output_size[0] - rows, 0)],
                         [0, max(left + output_size[1] - cols, 0)], [0, 0]])
    return tf.cast(full[:, top : top + output_size[0], left : left + output_size[1], :], dtype)


def _few_channel_conv_transpose(inputs, kernel, stride, padding, output_size):
    """`tf.nn.conv2d_transpose` to a few channels, forward by `_conv_transpose_by_matmul`.

    Its gradients are TensorFlow's own for a transposed convolution (a
    forward convolution and `Conv2DBackpropFilter`, both fast at these
    shapes), so they are differentiable again, e.g. for gradient penalties.
    """

    @tf.custom_gradient
    def conv_transpose(x, w):
        def grad(outputs_grad):
            inputs_grad = tf.nn.conv2d(outputs_grad, w, strides=stride, padding=padding.upper())
            kernel_grad = tf.compat.v1.nn.conv2d_backprop_filter(
                outputs_grad, tf.shape(w), x, strides=[1, stride, stride, 1],
                padding=padding.upper(),
            )
            return inputs_grad, kernel_grad

        return _conv_transpose_by_matmul(x, w, stride, padding, output_size), grad

    return conv_transpose(inputs, kernel)


class _FewChannelMatmul:
    """Where a transposed convolution to few channels runs as `_few_channel_conv_transpose`.

    TensorFlow's CPU kernel for a transposed convolution (also the input
    gradient of a convolution) is slow when it writes 1 to 4 channels, the
    image side of a generator's last layer and of a discriminator's first:
    the DCGAN's 14x14x64 -> 28x28x1 at batch 64 takes 4.1-4.3 ms on one
    thread in float32 (6 GFLOP/s, a tenth of the speed of the same layer's
    forward convolution) and 2.9-3.3 ms in bfloat16. As one matmul and a
    shifted sum, accumulated in float32 and rounded once like TensorFlow's
    kernel, it takes 1.0 and 1.2 ms (AMD EPYC). Applies on CPUs (not with a
    GPU or TPU visible), in any float dtype, channels-last, without dilation,
    groups or output padding, with equal strides of 2 or more that divide
    the kernel (the speed was measured at stride 2).
    """

    #: The most image-side channels that take the matmul (RGBA).
    MAX_FEW_CHANNELS = 4

    def _few_channel_matmul_applies(self, few_channels, spatial_shapes):
        strides = tuple(self.strides)
        return (
            keras.backend.backend() == "tensorflow"
            and self.data_format == "channels_last"
            and tuple(self.dilation_rate) == (1, 1)
            and getattr(self, "output_padding", None) is None
            and 0 < (few_channels or 0) <= self.MAX_FEW_CHANNELS
            and getattr(self, "groups", 1) == 1
            and strides[0] == strides[1] >= 2
            and all(k % s == 0 for k, s in zip(self.kernel_size, strides))
            and None not in spatial_shapes
            and not _accelerator_present()
        )


class _ForwardKernelGrad:
    """Where a layer's kernel gradient is computed by `_kernel_grad_by_forward_conv`.

    Under bfloat16 compute on a CPU, TensorFlow's `Conv2DBackpropFilter` is
    barely faster than in float32 on CPUs without AMX, while a forward
    convolution runs 1.9x faster. The forward formulation convolves with
    the smaller of the layer's two feature maps as its kernel, which oneDNN
    handles well only while that map is small. Measured with batch 64 on an
    AMD EPYC with AVX512-BF16, kernel gradient plus forward pass, ms:
    DCGAN generator 7x7x256 -> 14x14x128: 25.4 -> 19.8; 14x14x128 ->
    28x28x64: 21.6 -> 22.1; CycleGAN's 32x32x256 -> 65x65x128 at batch 1:
    5.2 -> 8.0. Elsewhere (float32, float16, a GPU or TPU, narrow or large
    layers) the layer is Keras's, unchanged.
    """

    #: Fewer channels on either side keep TensorFlow's kernel gradient (slower there).
    MIN_CHANNELS = 64
    #: The smaller feature map's largest side that takes the forward formulation.
    MAX_SIDE = 8

    def _forward_grad_applies(self, inputs, small_map):
        return (
            keras.backend.backend() == "tensorflow"
            and self.compute_dtype == "bfloat16"
            and self.data_format == "channels_last"
            and tuple(self.dilation_rate) == (1, 1)
            and getattr(self, "output_padding", None) is None
            and getattr(self, "groups", 1) == 1
            and self.filters >= self.MIN_CHANNELS
            and (inputs.shape[-1] or 0) >= self.MIN_CHANNELS
            and None not in tuple(inputs.shape[1:3]) + tuple(small_map[1:3])
            and max(small_map[1:3]) <= self.MAX_SIDE
            and not _accelerator_present()
        )


class _Float32BiasGrad:
    """Where a 16-bit layer's bias gradient is summed in float32, as float32 training sums it.

    Keras adds a convolution's bias with `tf.nn.bias_add`, whose gradient on
    a CPU (`BiasAddGrad`) sums a bfloat16 or float16 gradient in 16 bits:
    once a channel's running sum is large, each new term rounds away. Summing
    ones over `[64, 7, 7, 128]` gives 256 instead of 3136, and the bias
    gradient of the DCGAN discriminator's first layer in a mixed_bfloat16
    step was off by a median 58% per channel (cosine 0.57 with the exact
    sum; tensorflow/tensorflow#86378 reports the CPU/GPU mismatch). Here the
    bias gradient is summed in float32 and rounded once: `tf.reduce_sum`
    (which accumulates bfloat16 in float32) or, for float16, a float32 sum.
    The forward pass is `bias_add` as before. GPUs and TPUs keep
    TensorFlow's gradient.
    """

    def _float32_bias_grad_applies(self):
        return (
            self.use_bias
            and keras.backend.backend() == "tensorflow"
            and self.compute_dtype in ("bfloat16", "float16")
            and self.data_format == "channels_last"
            and not _accelerator_present()
        )

    def _bias_and_activation(self, outputs):
        # The rest of Keras's `BaseConv.call` / `BaseConvTranspose.call`.
        if self.use_bias:
            if self._float32_bias_grad_applies():
                outputs = _bias_add_summed_in_float32(outputs, tf.cast(self.bias, outputs.dtype))
            else:
                bias_shape = (1,) * (self.rank + 1) + (self.filters,)
                outputs = keras.ops.add(outputs, keras.ops.reshape(self.bias, bias_shape))
        if self.activation is not None:
            return self.activation(outputs)
        return outputs


@tf.custom_gradient
def _bias_add_summed_in_float32(outputs, bias):
    """`tf.nn.bias_add` (channels last) whose bias gradient is `tf.reduce_sum`."""

    def grad(outputs_grad):
        axes = tf.range(tf.rank(outputs_grad) - 1)
        if outputs_grad.dtype == tf.bfloat16:
            # TensorFlow's CPU Sum accumulates bfloat16 in float32 (0.18 ms for
            # [64, 14, 14, 64], against 0.35 ms for BiasAddGrad or cast-then-sum).
            return outputs_grad, tf.reduce_sum(outputs_grad, axis=axes)
        # float16's Sum accumulates in float16 (ones over 12544 rows sum to 8192).
        summed = tf.reduce_sum(tf.cast(outputs_grad, tf.float32), axis=axes)
        return outputs_grad, tf.cast(summed, outputs_grad.dtype)

    return tf.nn.bias_add(outputs, bias), grad


@keras.saving.register_keras_serializable(package="kgan")
class ForwardGradConv2D(
    _ForwardKernelGrad, _FewChannelMatmul, _Float32BiasGrad, keras.layers.Conv2D
):
    """`keras.layers.Conv2D` whose gradients are computed the faster way on a CPU.

    Same arguments, variables, config, outputs and math as the Keras layer;
    only how its gradients are computed differs, where measured faster:

    * with bfloat16 compute, 64 or more channels in and out and an output
      map of at most 8x8, the kernel gradient is one dilated forward
      convolution instead of `Conv2DBackpropFilter` (`_ForwardKernelGrad`),
      and so is the kernel gradient of the input gradient, which a gradient
      penalty takes (`_conv_input_grad`);
    * with 1-4 input channels (a discriminator's first layer, on images),
      the input gradient, a transposed convolution to those channels, is one
      matmul and a shifted sum (`_FewChannelMatmul`): 3.3 -> 1.2 ms in
      bfloat16 for MNIST's 28x28x1 <- 14x14x64 at batch 64, one thread.

    The forward pass is TensorFlow's own op, and the gradients are
    differentiable again (gradient penalties). Elsewhere (a GPU or TPU,
    other shapes) this is Keras's layer. With 16-bit compute on a CPU the
    bias gradient is summed in float32 (`_Float32BiasGrad`).

    Weights move to and from a Keras `Conv2D` with `get_weights` /
    `set_weights` (the variables are the same); a `.weights.h5` file does not
    load across the two, because Keras names each layer's entry in the file
    after its class.

    Example:

    ```python
    x = ForwardGradConv2D(128, 4, strides=2, padding="same")(x)  # [B, 14, 14, 64]
    ```
    """

    def call(self, inputs):
        if not self._float32_bias_grad_applies():
            return super().call(inputs)
        return self._bias_and_activation(self.convolution_op(inputs, self.kernel))

    def convolution_op(self, inputs, kernel):
        inputs = tf.convert_to_tensor(inputs)
        output_map = self.compute_output_shape(tuple(inputs.shape))
        if self._few_channel_matmul_applies(inputs.shape[-1], tuple(inputs.shape[1:3])):
            return self._few_channel_input_convolution(inputs, kernel)
        if not self._forward_grad_applies(inputs, output_map):
            return super().convolution_op(inputs, kernel)
        strides, padding, kernel_size = tuple(self.strides), self.padding, tuple(self.kernel_size)
        convolve = super().convolution_op

        @tf.custom_gradient
        def conv(x, w):
            def grad(outputs_grad):
                inputs_grad = _conv_input_grad(outputs_grad, w, x, kernel_size, strides, padding)
                kernel_grad = _kernel_grad_by_forward_conv(
                    x, outputs_grad, kernel_size, strides, padding
                )
                return inputs_grad, kernel_grad

            return convolve(x, w), grad

        return conv(inputs, tf.cast(kernel, self.compute_dtype))

    def _few_channel_input_convolution(self, inputs, kernel):
        stride, padding = int(self.strides[0]), self.padding
        size = tuple(int(d) for d in inputs.shape[1:3])
        convolve = super().convolution_op

        @tf.custom_gradient
        def conv(x, w):
            def grad(outputs_grad):
                inputs_grad = _few_channel_conv_transpose(outputs_grad, w, stride, padding, size)
                kernel_grad = tf.compat.v1.nn.conv2d_backprop_filter(
                    x, tf.shape(w), outputs_grad, strides=[1, stride, stride, 1],
                    padding=padding.upper(),
                )
                return inputs_grad, kernel_grad

            return convolve(x, w), grad

        return conv(inputs, tf.cast(kernel, self.compute_dtype))


@keras.saving.register_keras_serializable(package="kgan")
class ForwardGradConv2DTranspose(
    _ForwardKernelGrad, _FewChannelMatmul, _Float32BiasGrad, keras.layers.Conv2DTranspose
):
    """`keras.layers.Conv2DTranspose` computed the faster way on a CPU.

    Same arguments, variables, config, outputs and math as the Keras layer.
    Where measured faster:

    * with bfloat16 compute, 64 or more channels in and out and an input
      map of at most 8x8, the kernel gradient is one dilated forward
      convolution (`_ForwardKernelGrad`; a transposed convolution of `x` is
      the input gradient of a forward convolution from its output back to
      `x`, so its kernel gradient is that convolution's): for the DCGAN
      generator's 7x7x256 -> 14x14x128 layer (batch 64, AMD EPYC) 10.3
      instead of 17.7 ms;
    * training with 1-4 output channels (a generator's image layer), the
      layer itself runs as one matmul and a shifted sum
      (`_FewChannelMatmul`): 4.1 -> 1.0 ms in float32 for MNIST's 14x14x64
      -> 28x28x1 at batch 64, one thread. Its gradients are TensorFlow's
      own. Inference (`training=False`) runs Keras's op.

    Elsewhere (a GPU or TPU, other shapes) this is Keras's layer, except
    that with 16-bit compute on a CPU the bias gradient is summed in float32
    (`_Float32BiasGrad`). As for `ForwardGradConv2D`, weights move to and
    from Keras's layer with `get_weights` / `set_weights`, not weight files.

    Example:

    ```python
    x = ForwardGradConv2DTranspose(128, 4, strides=2, padding="same")(x)  # [B, 7, 7, 256]
    ```
    """

    def call(self, inputs, training=None):
        inputs = tf.convert_to_tensor(inputs)
        # Training only: sampling and exported generators keep Keras's op,
        # which every runtime (LiteRT, GPUs serving a SavedModel) runs well.
        few_channels = training and self._few_channel_matmul_applies(
            self.filters, tuple(inputs.shape[1:3])
        )
        if not few_channels and not self._forward_grad_applies(inputs, tuple(inputs.shape)):
            if not self._float32_bias_grad_applies():
                return super().call(inputs)
            return self._bias_and_activation(keras.ops.conv_transpose(
                inputs, self.kernel, strides=list(self.strides), padding=self.padding,
                output_padding=self.output_padding, dilation_rate=self.dilation_rate,
                data_format=self.data_format,
            ))
        kernel = tf.cast(self.kernel, self.compute_dtype)
        if few_channels:
            size = self.compute_output_shape(tuple(inputs.shape))[1:3]
            outputs = _few_channel_conv_transpose(
                inputs, kernel, int(self.strides[0]), self.padding, size
            )
            return self._bias_and_activation(outputs)
        strides, padding = tuple(self.strides), self.padding
        kernel_size, data_format = tuple(self.kernel_size), self.data_format

        @tf.custom_gradient
        def conv_transpose(x, kernel):
            outputs = keras.ops.conv_transpose(
                x, kernel, strides=strides, padding=padding, data_format=data_format
            )

            def grad(outputs_grad):
                # The input gradient TensorFlow's own gradient computes.
                inputs_grad = tf.nn.conv2d(
                    outputs_grad, kernel, strides=strides, padding=padding.upper()
                )
                # [kh, kw, filters, in]: the layout of a transposed kernel.
                kernel_grad = _kernel_grad_by_forward_conv(
                    outputs_grad, x, kernel_size, strides, padding
                )
                return inputs_grad, kernel_grad

            return outputs, grad

        return self._bias_and_activation(conv_transpose(inputs, kernel))


def _accelerator_present():
    """Whether TensorFlow sees a GPU or TPU (the forward-gradient trick targets CPUs)."""
    return bool(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))
