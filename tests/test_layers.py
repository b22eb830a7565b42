"""kgan.layers' faster implementations of Keras layers: ForwardGradConv2D /
ForwardGradConv2DTranspose (kernel gradient by a forward convolution, image-side
matmul), FusedBatchNormalization, AnalyticGradLayerNormalization,
FusedInstanceNormalization and SliceCropping2D."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import kgan
from kgan import layers as kgan_layers
from kgan.layers import ForwardGradConv2D, ForwardGradConv2DTranspose

#: Transposed layers: (height, in_channels, filters, kernel, stride, padding)
TRANSPOSED_SHAPES = [
    (7, 256, 128, 4, 2, "same"),  # the DCGAN generator's 7x7x256 -> 14x14x128
    (5, 64, 96, 3, 2, "valid"),  # CycleGAN's upsampling (VALID, cropped after)
    (6, 64, 64, 5, 1, "same"),  # stride 1 (a refining layer)
    (4, 64, 72, 3, 3, "same"),  # kernel == stride
    (5, 64, 64, 2, 3, "valid"),  # kernel < stride: gaps
]
#: Forward layers: the same fields; the output map is the small one.
FORWARD_SHAPES = [
    (14, 64, 128, 4, 2, "same"),  # the DCGAN discriminator's 14x14x64 -> 7x7x128
    (15, 64, 64, 4, 2, "same"),  # odd size: the extra padding row goes after
    (13, 64, 80, 3, 2, "valid"),
    (7, 64, 64, 3, 1, "same"),  # stride 1; 7x8 in and out
    (11, 64, 64, 2, 3, "valid"),  # rows the kernel never reaches
]
LAYERS = {ForwardGradConv2D: keras.layers.Conv2D,
          ForwardGradConv2DTranspose: keras.layers.Conv2DTranspose}
CASES = ([(ForwardGradConv2DTranspose,) + shape for shape in TRANSPOSED_SHAPES]
         + [(ForwardGradConv2D,) + shape for shape in FORWARD_SHAPES])


def _inputs(height, channels, seed=0):
    # Width != height: a swapped axis would show.
    return tf.constant(
        np.random.default_rng(seed).normal(size=(3, height, height + 1, channels)), tf.float32
    )


def _layer(cls, filters, kernel, stride, padding, **kwargs):
    keras.utils.set_random_seed(0)
    return cls(filters, kernel, strides=stride, padding=padding, **kwargs)


def _outputs_and_grads(layer, x, linear=False):
    """Outputs and the gradients of a loss w.r.t. kernel, bias and inputs.

    The loss is nonlinear in the outputs, or with `linear=True` a fixed
    weighting of them (so the output gradients do not depend on the outputs).
    """
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.cast(layer(x, training=True), tf.float32)
        if linear:
            weights = np.random.default_rng(2).normal(size=y.shape[1:]).astype("float32")
            loss = tf.reduce_sum(y * weights)
        else:
            loss = tf.reduce_sum(y * tf.sin(y))
    grads = tape.gradient(loss, [layer.kernel.value, layer.bias.value, x])
    return [y.numpy()] + [g.numpy() for g in grads]


def _exact_bias_grad(y, linear=False):
    """The bias gradient of `_outputs_and_grads`' loss summed exactly: its
    output gradient rounded to `y`'s 16-bit dtype, then added up in float64."""
    if linear:
        outputs_grad = np.random.default_rng(2).normal(size=y.shape[1:]).astype("float32")
        outputs_grad = np.broadcast_to(outputs_grad, y.shape)
    else:
        outputs_grad = np.sin(y) + y * np.cos(y)
    outputs_grad = tf.cast(tf.cast(outputs_grad, tf.bfloat16), tf.float64).numpy()
    return outputs_grad.sum(axis=(0, 1, 2))


def _assert_bias_grad_is_exact(bias_grad, y, linear=False):
    """A bfloat16 layer's bias gradient: the exact sum, rounded once to bfloat16."""
    exact = _exact_bias_grad(y, linear)
    np.testing.assert_allclose(bias_grad, exact, rtol=2**-8, atol=1e-6 * np.abs(exact).max())


def _counting(monkeypatch, name):
    """Wrap `kgan.layers.<name>` to record its arguments; returns the record."""
    calls = []
    original = getattr(kgan_layers, name)

    def counting(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(kgan_layers, name, counting)
    return calls


@pytest.fixture
def count_forward_grads(monkeypatch):
    """How often the forward formulation computed a kernel gradient."""
    return _counting(monkeypatch, "_kernel_grad_by_forward_conv")


@pytest.fixture
def count_few_channel_matmuls(monkeypatch):
    """How often a transposed convolution ran as `_conv_transpose_by_matmul`."""
    return _counting(monkeypatch, "_conv_transpose_by_matmul")


@pytest.mark.parametrize("cls,height,channels,filters,kernel,stride,padding", CASES)
def test_forward_formulation_is_the_kernel_gradient(cls, height, channels, filters, kernel, stride,
                                                    padding):
    # In float32 the two formulations differ only by summation order.
    x = _inputs(height, channels)
    transposed = cls is ForwardGradConv2DTranspose
    shape = (kernel, kernel, filters, channels) if transposed else (kernel, kernel, channels, filters)
    w = tf.constant(np.random.default_rng(1).normal(size=shape), tf.float32)
    op = keras.ops.conv_transpose if transposed else keras.ops.conv
    with tf.GradientTape() as tape:
        tape.watch(w)
        y = op(x, w, strides=stride, padding=padding)
    dy = tf.constant(np.random.default_rng(2).normal(size=y.shape), tf.float32)
    native = tape.gradient(y, w, output_gradients=dy)
    # A transposed convolution's kernel gradient is that of the forward
    # convolution from its output back to its input.
    inputs, outputs_grad = (dy, x) if transposed else (x, dy)
    ours = kgan_layers._kernel_grad_by_forward_conv(
        inputs, outputs_grad, (kernel, kernel), (stride, stride), padding)
    assert ours.shape == native.shape
    np.testing.assert_allclose(ours, native, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize(
    "cls,height,channels,filters,kernel,stride,padding",
    CASES + [(ForwardGradConv2D, 14, 65, 64, 4, 2, "same")],  # odd: one convolution
)
def test_kernel_gradient_in_two_channel_halves_is_bitwise_the_same(
        cls, height, channels, filters, kernel, stride, padding, dtype, monkeypatch):
    # Under one thread per op the forward formulation is two convolutions, so
    # that two cores can run them at once; each weight's sum is unchanged.
    x = tf.cast(_inputs(height, channels), dtype)
    transposed = cls is ForwardGradConv2DTranspose
    op = keras.ops.conv_transpose if transposed else keras.ops.conv
    shape = (kernel, kernel, filters, channels) if transposed else (kernel, kernel, channels, filters)
    y = op(x, tf.ones(shape, dtype), strides=stride, padding=padding)
    dy = tf.cast(np.random.default_rng(2).normal(size=y.shape), dtype)
    args = ((dy, x) if transposed else (x, dy)) + ((kernel, kernel), (stride, stride), padding)
    monkeypatch.setattr(kgan_layers.performance, "runs_ops_side_by_side", lambda: False)
    whole = kgan_layers._kernel_grad_by_forward_conv(*args)
    monkeypatch.setattr(kgan_layers.performance, "runs_ops_side_by_side", lambda: True)
    convolutions = []
    conv2d = tf.nn.conv2d
    monkeypatch.setattr(tf.nn, "conv2d", lambda *a, **k: convolutions.append(a) or conv2d(*a, **k))
    halves = kgan_layers._kernel_grad_by_forward_conv(*args)
    assert len(convolutions) == (2 if args[0].shape[-1] % 2 == 0 else 1)
    np.testing.assert_array_equal(np.asarray(whole, np.float32), np.asarray(halves, np.float32))


@pytest.mark.parametrize("cls,height,channels,filters,kernel,stride,padding", CASES)
def test_bfloat16_layer_matches_keras(cls, height, channels, filters, kernel, stride, padding,
                                      count_forward_grads):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    x = _inputs(height, channels)
    ours = _outputs_and_grads(_layer(cls, filters, kernel, stride, padding), x)
    theirs = _outputs_and_grads(_layer(LAYERS[cls], filters, kernel, stride, padding), x)
    assert count_forward_grads, "the bfloat16 layer did not take the forward formulation"
    # Outputs and input gradients are Keras's own ops: identical.
    for a, b in zip(ours[:1] + ours[3:], theirs[:1] + theirs[3:]):
        np.testing.assert_array_equal(a, b)
    # The bias gradient sums the same output gradient in float32 (Keras's in bfloat16).
    _assert_bias_grad_is_exact(ours[2], ours[0])
    # The kernel gradient is summed in another order, then rounded to bfloat16.
    kernel_ours, kernel_theirs = ours[1], theirs[1]
    scale = np.abs(kernel_theirs).max()
    np.testing.assert_allclose(kernel_ours, kernel_theirs, rtol=0, atol=4e-3 * scale)
    assert kernel_ours.dtype == kernel_theirs.dtype


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
@pytest.mark.parametrize("mode", ["eager", "graph"])
@pytest.mark.parametrize("cls,height,channels,filters", [
    (ForwardGradConv2D, 14, 64, 128),  # the DCGAN discriminator's 14x14x64 -> 7x7x128
    (ForwardGradConv2D, 28, 1, 64),  # its first layer, on images
    (ForwardGradConv2D, 9, 8, 16),  # neither faster path: Keras's convolution
    (ForwardGradConv2DTranspose, 7, 128, 64),
    (ForwardGradConv2DTranspose, 9, 8, 16),
])
def test_sixteen_bit_bias_gradient_is_summed_in_float32(cls, height, channels, filters, mode,
                                                        policy):
    # TensorFlow's CPU BiasAddGrad sums 16-bit gradients in 16 bits: summing
    # ones over [64, 7, 7, 128] gave 256, and Keras's layers take its gradient.
    keras.mixed_precision.set_global_policy(policy)
    layer = _layer(cls, filters, 4, 2, "same")
    x = tf.constant(np.random.default_rng(0).normal(size=(64, height, height, channels)), tf.float32)

    def bias_grad(x):
        with tf.GradientTape() as tape:
            y = layer(x, training=True)
            loss = tf.reduce_sum(tf.cast(y, tf.float32))  # output gradient: ones
        return tape.gradient(loss, layer.bias.value), y.shape

    grad, shape = (tf.function(bias_grad) if mode == "graph" else bias_grad)(x)
    np.testing.assert_array_equal(grad.numpy(), np.full([filters], np.prod(shape[:3]), np.float32))


def _small_layer_case(cls):
    """`(inputs, layer arguments)` of a layer that takes the forward formulation."""
    height = 14 if cls is ForwardGradConv2D else 7  # a 7x7 small map either way
    return _inputs(height, 64), dict(filters=64, kernel=4, stride=2, padding="same")


@pytest.mark.parametrize(
    "cls,case",
    [(cls, case) for cls in LAYERS
     for case in ("float32", "narrow_inputs", "narrow_outputs", "large_map", "dilation",
                  "output_padding", "groups", "accelerator")
     # Keras's Conv2D has no output padding, its Conv2DTranspose no groups.
     if not (case == "output_padding" and cls is ForwardGradConv2D)
     and not (case == "groups" and cls is ForwardGradConv2DTranspose)],
)
def test_keras_kernel_gradient_where_the_forward_one_is_not_faster(cls, case, count_forward_grads,
                                                                   monkeypatch):
    keras.mixed_precision.set_global_policy("float32" if case == "float32" else "mixed_bfloat16")
    transposed = cls is ForwardGradConv2DTranspose
    channels, filters, kwargs = 64, 64, {}
    height = 7 if transposed else 14
    stride = 2
    if case == "narrow_inputs":
        channels = cls.MIN_CHANNELS - 1
    if case == "narrow_outputs":
        filters = cls.MIN_CHANNELS - 1
    if case == "large_map":  # the small map one row over MAX_SIDE
        height = cls.MAX_SIDE + 1 if transposed else 2 * (cls.MAX_SIDE + 1)
    if case == "dilation":
        stride, kwargs = 1, {"dilation_rate": 2}
        height = 7
    if case == "output_padding":
        kwargs = {"output_padding": 1}
    if case == "groups":  # 128 channels in, two groups of 64: kernel [4, 4, 64, 64]
        channels, kwargs = 128, {"groups": 2}
    if case == "accelerator":
        monkeypatch.setattr(kgan_layers, "_accelerator_present", lambda: True)
    x = _inputs(height, channels)
    ours = _outputs_and_grads(_layer(cls, filters, 4, stride, "same", **kwargs), x)
    theirs = _outputs_and_grads(_layer(LAYERS[cls], filters, 4, stride, "same", **kwargs), x)
    assert not count_forward_grads
    # Keras's ops, except that a bfloat16 bias gradient is summed in float32.
    exact_bias = case not in ("float32", "accelerator")
    for index, (a, b) in enumerate(zip(ours, theirs)):
        if index == 2 and exact_bias:
            _assert_bias_grad_is_exact(a, ours[0])
        else:
            np.testing.assert_array_equal(a, b)


def _ours_and_keras(cls, kernel_grad_of):
    """`kernel_grad_of(layer, x)` of kgan's layer and of Keras's, in bfloat16, on a
    case that takes the forward formulation."""
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    x, args = _small_layer_case(cls)
    return [kernel_grad_of(_layer(layer_cls, **args), x).numpy() for layer_cls in (cls, LAYERS[cls])]


def _penalty_kernel_grad(layer):
    """A gradient penalty's gradient w.r.t. `layer`'s kernel, as a `tf.function`:
    it differentiates the layer's input gradient w.r.t. the kernel."""

    @tf.function
    def run(x):
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                inner.watch(x)
                loss = tf.reduce_sum(tf.square(tf.cast(layer(x), tf.float32)))
            dx = inner.gradient(loss, x)
            penalty = tf.reduce_sum(tf.square(tf.cast(dx, tf.float32)))
        return outer.gradient(penalty, layer.kernel.value)

    return run


@pytest.mark.parametrize("cls", list(LAYERS))
def test_second_order_gradients_match_keras(cls, count_forward_grads):
    ours, theirs = _ours_and_keras(cls, lambda layer, x: _penalty_kernel_grad(layer)(x))
    assert count_forward_grads
    assert np.isfinite(ours).all() and np.abs(theirs).max() > 0
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=2e-2 * np.abs(theirs).max())


def test_penalty_through_a_forward_layer_takes_no_backprop_filter_op():
    # The second-order kernel gradient (of the input gradient) is the forward
    # formulation too, not TensorFlow's gradient of Conv2DBackpropInput.
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    x, args = _small_layer_case(ForwardGradConv2D)
    graph_def = _penalty_kernel_grad(_layer(ForwardGradConv2D, **args)).get_concrete_function(
        x).graph.as_graph_def()
    op_types = {node.op for node in graph_def.node} | {
        node.op for function in graph_def.library.function for node in function.node_def}
    assert "Conv2DBackpropInput" in op_types  # the first-order input gradient
    assert "Conv2DBackpropFilter" not in op_types


@pytest.mark.parametrize("height,channels,filters,kernel,stride,padding", FORWARD_SHAPES)
def test_input_gradient_differentiates_like_tensorflows(height, channels, filters, kernel, stride,
                                                        padding):
    # `_conv_input_grad` is TensorFlow's input gradient of a convolution, with
    # its own gradients (a penalty's second order) computed another way.
    x = _inputs(height, channels)
    w = tf.constant(np.random.default_rng(1).normal(size=(kernel, kernel, channels, filters)),
                    tf.float32)
    y = keras.ops.conv(x, w, strides=stride, padding=padding)
    dy = tf.constant(np.random.default_rng(2).normal(size=y.shape), tf.float32)

    def value_and_grads(input_grad):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch([dy, w])
            value = input_grad(dy, w)
            loss = tf.reduce_sum(value * tf.sin(value))
        return [t.numpy() for t in [value, *tape.gradient(loss, [dy, w])]]

    ours = value_and_grads(lambda dy, w: kgan_layers._conv_input_grad(
        dy, w, x, (kernel, kernel), (stride, stride), padding))
    native = value_and_grads(lambda dy, w: tf.nn.conv2d_transpose(
        dy, w, tf.shape(x), strides=stride, padding=padding.upper()))
    np.testing.assert_array_equal(ours[0], native[0])  # TensorFlow's op
    np.testing.assert_array_equal(ours[1], native[1])  # d/d dy: TensorFlow's conv2d
    np.testing.assert_allclose(ours[2], native[2], rtol=1e-4, atol=1e-3)  # another sum order


@pytest.mark.parametrize("cls", list(LAYERS))
def test_trains_under_xla(cls, count_forward_grads):
    def kernel_grad(layer, x):
        @tf.function(jit_compile=True)
        def run(x):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(tf.square(tf.cast(layer(x), tf.float32)))
            return tape.gradient(loss, layer.kernel.value)

        return run(x)

    ours, theirs = _ours_and_keras(cls, kernel_grad)
    assert count_forward_grads
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=4e-3 * np.abs(theirs).max())


@pytest.mark.parametrize("cls", list(LAYERS))
def test_config_and_keras_file_round_trip(cls, tmp_path):
    layer = cls(64, 4, strides=2, padding="same", use_bias=False, name="conv")
    config = layer.get_config()
    assert config == LAYERS[cls].from_config(config).get_config()
    x, _ = _small_layer_case(cls)
    inputs = keras.Input(x.shape[1:])
    model = keras.Model(inputs, layer(inputs))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded.get_layer("conv")) is cls
    np.testing.assert_array_equal(model(x), loaded(x))


@pytest.mark.parametrize("arch", ["dcgan", "wgan_gp"])
def test_a_mirrored_bfloat16_gan_trains_through_the_forward_gradients(arch, two_cpu_strategy,
                                                                      count_forward_grads,
                                                                      count_few_channel_matmuls):
    # The 28x28 networks at full width: both 7x7 layers take the forward
    # formulation, on two replicas, with WGAN-GP's penalty differentiating it.
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    with two_cpu_strategy.scope():
        gan = kgan.zoo.build(arch, image_shape=(28, 28, 1), latent_dim=8, filters=64, seed=0)
        gan.compile()
    before = [w.numpy() for w in gan.generator.trainable_weights + gan.discriminator.trainable_weights]
    images = np.random.default_rng(0).uniform(-1, 1, (4 * gan.batches_per_step, 28, 28, 1))
    history = gan.fit(tf.data.Dataset.from_tensor_slices(images.astype("float32")).batch(
        4 * gan.batches_per_step), epochs=1, verbose=0)
    kinds = {type(layer) for layer in gan.generator.layers + gan.discriminator.layers}
    assert {ForwardGradConv2D, ForwardGradConv2DTranspose} <= kinds
    # Traced per replica: the generator's layer and the discriminator's.
    assert {tuple(args[0].shape[1:3]) for args in count_forward_grads} == {(14, 14)}
    # And the image side: the generator's last layer and the discriminator's first
    # layer's input gradient, both from 14x14x64 to 28x28x1.
    assert {tuple(args[0].shape[1:]) for args in count_few_channel_matmuls} == {(14, 14, 64)}
    assert all(np.isfinite(v).all() for v in history.history.values())
    after = gan.generator.trainable_weights + gan.discriminator.trainable_weights
    assert all(np.isfinite(w.numpy()).all() for w in after)
    assert any(not np.array_equal(b, w.numpy()) for b, w in zip(before, after))


# ---------------------------------------------------------------- few image-side channels
@pytest.mark.parametrize("height,channels,filters,kernel,stride,padding", [
    (14, 64, 1, 4, 2, "same"),  # the DCGAN generator's output layer, 14x14x64 -> 28x28x1
    (7, 8, 3, 4, 2, "valid"),
    (5, 4, 2, 2, 2, "same"),  # kernel == stride: no overlap
    (6, 3, 1, 6, 3, "same"),  # stride 3, three blocks
    (7, 5, 4, 4, 4, "valid"),
    (9, 6, 2, 4, 2, "same"),  # odd map
])
def test_matmul_formulation_is_the_transposed_convolution(height, channels, filters, kernel,
                                                          stride, padding):
    x = _inputs(height, channels)
    w = tf.constant(np.random.default_rng(1).normal(size=(kernel, kernel, filters, channels)),
                    tf.float32)
    size = [height * stride if padding == "same" else (height - 1) * stride + kernel,
            (height + 1) * stride if padding == "same" else height * stride + kernel]
    want = tf.nn.conv2d_transpose(x, w, [3] + size + [filters], stride, padding.upper())
    got = kgan_layers._conv_transpose_by_matmul(x, w, stride, padding, size)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-5 * np.abs(want).max())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_matmul_formulation_fills_rows_a_valid_convolution_skips(dtype):
    # A 'valid' stride-2 convolution of 29 rows reads rows 0-27 only; the
    # input gradient (this transposed convolution) is zero on row 28.
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(2, 13, 14, 8)), dtype)
    w = tf.constant(rng.normal(size=(4, 4, 1, 8)), dtype)
    want = tf.nn.conv2d_transpose(x, w, [2, 29, 31, 1], 2, "VALID")
    got = kgan_layers._conv_transpose_by_matmul(x, w, 2, "valid", (29, 31))
    assert got.shape == want.shape and got.dtype == want.dtype
    # float64 accumulates in float64: no float32 rounding.
    tolerance = 1e-12 if dtype == "float64" else 2e-5
    np.testing.assert_allclose(got, want, rtol=0, atol=tolerance * np.abs(want).max())
    assert not np.any(got[:, 28]) and not np.any(got[:, :, 30])


def test_matmul_formulation_rounds_bfloat16_once_like_tensorflow():
    # Accumulated in float32 and rounded once: the same error as TensorFlow's
    # kernel against the exact sum of the bfloat16 inputs (rounding each block
    # before the shifted sum doubled it).
    rng = np.random.default_rng(0)
    x = tf.cast(tf.constant(rng.normal(size=(8, 14, 14, 64)), tf.float32), tf.bfloat16)
    w = tf.cast(tf.constant(rng.normal(size=(4, 4, 1, 64)) * 0.1, tf.float32), tf.bfloat16)
    exact = tf.nn.conv2d_transpose(tf.cast(x, tf.float32), tf.cast(w, tf.float32),
                                   [8, 28, 28, 1], 2, "SAME")
    native = tf.nn.conv2d_transpose(x, w, [8, 28, 28, 1], 2, "SAME")
    ours = kgan_layers._conv_transpose_by_matmul(x, w, 2, "same", (28, 28))
    assert ours.dtype == tf.bfloat16
    error = [float(tf.reduce_mean(tf.abs(tf.cast(v, tf.float32) - exact))) for v in (native, ours)]
    assert error[1] <= 1.05 * error[0], error


#: Layers whose image side has 1-4 channels: (class, height, in channels, filters).
FEW_CHANNEL_CASES = [
    (ForwardGradConv2D, 28, 1, 8),  # a discriminator's first layer, MNIST
    (ForwardGradConv2D, 16, 3, 8),  # RGB
    (ForwardGradConv2DTranspose, 14, 8, 1),  # a generator's last layer, MNIST
    (ForwardGradConv2DTranspose, 8, 8, 3),
]


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16", "float64"])
@pytest.mark.parametrize("cls,height,channels,filters", FEW_CHANNEL_CASES)
def test_few_channel_layers_match_keras(cls, height, channels, filters, policy,
                                        count_few_channel_matmuls):
    keras.mixed_precision.set_global_policy(policy)
    x = _inputs(height, channels)
    ours = _outputs_and_grads(_layer(cls, filters, 4, 2, "same"), x, linear=True)
    theirs = _outputs_and_grads(_layer(LAYERS[cls], filters, 4, 2, "same"), x, linear=True)
    assert count_few_channel_matmuls, "the layer did not take the matmul formulation"
    # bfloat16: the same sums in another order, rounded.
    tolerance = {"float32": 1e-5, "mixed_bfloat16": 1e-2, "float64": 1e-13}[policy]
    for index, (a, b) in enumerate(zip(ours, theirs)):
        assert a.dtype == b.dtype
        if index == 2 and policy == "mixed_bfloat16":
            continue  # the bias gradient: below
        np.testing.assert_allclose(a, b, rtol=0, atol=tolerance * max(1.0, np.abs(b).max()))
    # The bias gradient sums the output gradients, which a linear loss makes
    # the same on both sides: Keras's own op on the same numbers, except that
    # in bfloat16 kgan sums them in float32.
    if policy == "mixed_bfloat16":
        _assert_bias_grad_is_exact(ours[2], ours[0], linear=True)
    else:
        np.testing.assert_array_equal(ours[2], theirs[2])
    if cls is ForwardGradConv2D:  # its forward pass and kernel gradient are TensorFlow's ops
        np.testing.assert_array_equal(ours[0], theirs[0])
        np.testing.assert_array_equal(ours[1], theirs[1])


def test_few_channel_input_gradient_where_valid_padding_skips_rows(count_few_channel_matmuls):
    # 29x30 images, kernel 4, stride 2, 'valid': the last row and column meet
    # no output, so their gradient is zero and the input gradient keeps the
    # images' shape.
    x = _inputs(29, 1)
    ours = _outputs_and_grads(_layer(ForwardGradConv2D, 8, 4, 2, "valid"), x, linear=True)
    theirs = _outputs_and_grads(_layer(keras.layers.Conv2D, 8, 4, 2, "valid"), x, linear=True)
    assert count_few_channel_matmuls
    assert ours[3].shape == x.shape
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5 * max(1.0, np.abs(b).max()))


@pytest.mark.parametrize("cls,height,channels,filters", FEW_CHANNEL_CASES[::2])
def test_few_channel_second_order_gradients_and_xla(cls, height, channels, filters,
                                                    count_few_channel_matmuls):
    # A gradient penalty on the images differentiates the matmul formulation again.
    x = _inputs(height, channels)

    def penalty_grad(layer, jit_compile):
        @tf.function(jit_compile=jit_compile)
        def run(x):
            with tf.GradientTape() as outer:
                with tf.GradientTape() as inner:
                    inner.watch(x)
                    loss = tf.reduce_sum(tf.sin(layer(x, training=True)))
                dx = inner.gradient(loss, x)
                penalty = tf.reduce_sum(tf.square(dx))
            return outer.gradient(penalty, layer.kernel.value)

        return run(x).numpy()

    for jit_compile in (False, True):
        count_few_channel_matmuls.clear()
        ours = penalty_grad(_layer(cls, filters, 4, 2, "same"), jit_compile)
        theirs = penalty_grad(_layer(LAYERS[cls], filters, 4, 2, "same"), jit_compile)
        assert count_few_channel_matmuls
        assert np.abs(theirs).max() > 0
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-4 * np.abs(theirs).max())


def test_few_channel_transposed_layer_is_keras_at_inference(count_few_channel_matmuls):
    # Sampling and export run Keras's op (every runtime has a good kernel for it).
    x = _inputs(14, 8)
    ours = _layer(ForwardGradConv2DTranspose, 1, 4, 2, "same")
    theirs = _layer(keras.layers.Conv2DTranspose, 1, 4, 2, "same")
    for training in (None, False):
        np.testing.assert_array_equal(ours(x, training=training), theirs(x))
    assert not count_few_channel_matmuls
    ours(x, training=True)
    assert count_few_channel_matmuls


@pytest.mark.parametrize("cls,case", [
    (cls, case) for cls in LAYERS
    for case in ("five_channels", "kernel_not_multiple_of_stride", "unequal_strides",
                 "stride_one", "groups", "accelerator")
    if not (case == "groups" and cls is ForwardGradConv2DTranspose)  # Keras's has no groups
])
def test_keras_ops_where_the_matmul_formulation_does_not_apply(cls, case,
                                                               count_few_channel_matmuls,
                                                               monkeypatch):
    few, kernel, stride, kwargs = 1, 4, 2, {}
    if case == "five_channels":
        few = cls.MAX_FEW_CHANNELS + 1
    if case == "kernel_not_multiple_of_stride":
        kernel = 3
    if case == "unequal_strides":
        stride = (2, 1)
    if case == "stride_one":  # every kernel is a multiple of 1; speed was measured at 2
        stride = 1
    if case == "groups":  # 4 channels in two groups of 2
        few, kwargs = 4, {"groups": 2}
    if case == "accelerator":
        monkeypatch.setattr(kgan_layers, "_accelerator_present", lambda: True)
    channels, filters = (few, 8) if cls is ForwardGradConv2D else (8, few)
    x = _inputs(12, channels)
    ours = _outputs_and_grads(_layer(cls, filters, kernel, stride, "same", **kwargs), x)
    theirs = _outputs_and_grads(_layer(LAYERS[cls], filters, kernel, stride, "same", **kwargs), x)
    assert not count_few_channel_matmuls
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- FusedBatchNormalization
def _batch_norm_step(layer, x, training=True):
    """Outputs, gradients w.r.t. inputs, gamma and beta, and the moving statistics after one call."""
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.cast(layer(x, training=training), tf.float32)
        loss = tf.reduce_sum(y * tf.sin(3.0 * y))
    grads = tape.gradient(loss, [x, layer.gamma.value, layer.beta.value])
    return [y.numpy()] + [g.numpy() for g in grads] + [
        layer.moving_mean.numpy(), layer.moving_variance.numpy()]


@pytest.mark.parametrize("policy,tolerance", [("float32", 2e-5), ("mixed_bfloat16", 2e-2)])
def test_fused_batch_norm_trains_with_keras_math(policy, tolerance):
    keras.mixed_precision.set_global_policy(policy)
    # Off-centre, non-unit data: a wrong (Bessel-corrected) variance would show.
    x = _inputs(5, 16) * 3.0 + 1.5
    settings = dict(momentum=0.9, epsilon=1e-5,
                    gamma_initializer=keras.initializers.RandomNormal(1.0, 0.2, seed=0),
                    beta_initializer=keras.initializers.RandomNormal(0.0, 0.2, seed=1))
    ours = _batch_norm_step(kgan_layers.FusedBatchNormalization(**settings), x)
    theirs = _batch_norm_step(keras.layers.BatchNormalization(**settings), x)
    names = ["outputs", "inputs grad", "gamma grad", "beta grad", "moving mean", "moving variance"]
    for name, a, b in zip(names, ours, theirs):
        np.testing.assert_allclose(a, b, rtol=tolerance, atol=tolerance * np.abs(b).max(),
                                   err_msg=name)


@pytest.mark.parametrize("case", ["inference", "rank_2", "channels_first", "renorm", "frozen",
                                  "float64", "small_epsilon_on_an_accelerator"])
def test_fused_batch_norm_is_keras_outside_training_on_4d_channels_last(case, monkeypatch):
    kwargs, x, training = {}, _inputs(5, 8), True
    if case == "float64":  # FusedBatchNormV3 takes no float64
        kwargs, x = {"dtype": "float64"}, tf.cast(x, "float64")
    if case == "small_epsilon_on_an_accelerator":  # below cuDNN's 1.001e-5
        kwargs = {"epsilon": 1e-6}
        monkeypatch.setattr(kgan_layers, "_accelerator_present", lambda: True)
    fused = _counting(monkeypatch, "_fused_batch_norm")
    if case == "inference":
        training = False
    if case == "rank_2":
        x = tf.reshape(x, (-1, 8))
    if case == "channels_first":
        kwargs = {"axis": 1}
    if case == "renorm":
        kwargs = {"renorm": True}
    ours_layer = kgan_layers.FusedBatchNormalization(**kwargs)
    if case == "frozen":
        ours_layer.trainable = False
    theirs_layer = keras.layers.BatchNormalization(**kwargs)
    theirs_layer.trainable = ours_layer.trainable
    ours, theirs = (_batch_norm_step(layer, x, training) if layer.trainable
                    else [layer(x, training=training).numpy()]
                    for layer in (ours_layer, theirs_layer))
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)
    assert not fused


def test_fused_batch_norm_config_is_keras():
    layer = kgan_layers.FusedBatchNormalization(momentum=0.8, epsilon=1e-3, name="bn")
    assert layer.get_config() == keras.layers.BatchNormalization.from_config(
        layer.get_config()).get_config()


# ---------------------------------------------------------------- layer normalization
#: AnalyticGradLayerNormalization settings: the critic's (over a whole image),
#: the usual last-axis one, and without beta or gamma.
LAYER_NORM_CASES = {
    "image": dict(axis=[1, 2, 3]),
    "last_axis": dict(axis=-1),
    "no_center": dict(axis=[1, 2, 3], center=False),
    "no_scale": dict(axis=-1, scale=False),
}
LAYER_NORM_OUTPUTS = ["outputs", "inputs grad", "gamma grad", "beta grad", "pre grad"]


def _layer_norm(cls, dtype, shape, **kwargs):
    """A built layer norm with the same off-unit gamma and beta in every dtype."""
    layer = cls(dtype=dtype, **kwargs)
    layer.build(shape)
    rng = np.random.default_rng(0)
    for weight, mean in ((layer.gamma, 1.0), (layer.beta, 0.0)):
        if weight is not None:
            weight.assign(rng.normal(mean, 0.3, size=weight.shape))
    return layer


def _exact_layer_norm(layer):
    """`layer`'s math by plain float64 ops, exact to any order of differentiation.

    (`tf.nn.moments`, which Keras uses, stops the gradient through the mean
    inside the variance: harmless once, wrong twice.)
    """

    def call(x):
        axes = sorted(a % x.shape.rank for a in layer.axis)
        shape = [x.shape[a] if a in axes else 1 for a in range(x.shape.rank)]
        centered = x - tf.reduce_mean(x, axes, keepdims=True)
        variance = tf.reduce_mean(tf.square(centered), axes, keepdims=True)
        y = centered * tf.math.rsqrt(variance + layer.epsilon)
        if layer.gamma is not None:
            y = y * tf.reshape(layer.gamma, shape)
        if layer.beta is not None:
            y = y + tf.reshape(layer.beta, shape)
        return y

    return call


def _layer_norm_penalty_step(layer, x, mode="graph", call=None):
    """Outputs, input gradient, and a gradient penalty's gradients w.r.t. the
    layer's weights and a weight `pre` before the layer (the second-order
    pass through the layer that a WGAN-GP critic's earlier layers see)."""
    call = call or layer
    wide = tf.float64 if x.dtype == tf.float64 else tf.float32
    rng = np.random.default_rng(3)
    pre = tf.Variable(tf.constant(rng.normal(1.0, 0.3, size=x.shape[1:]), wide))
    readout = tf.constant(rng.normal(size=(int(np.prod(x.shape[1:])), 1)), wide)

    def step(x):
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                inner.watch(x)
                y = tf.cast(call(x * tf.cast(pre, x.dtype)), wide)
                scores = tf.matmul(tf.reshape(tf.nn.leaky_relu(y, 0.2), [x.shape[0], -1]), readout)
                total = tf.reduce_sum(scores)
            x_grad = tf.cast(inner.gradient(total, x), wide)
            norms = tf.sqrt(tf.reduce_sum(tf.square(x_grad), axis=[1, 2, 3]) + 1e-12)
            loss = tf.reduce_mean(tf.square(norms - 1.0)) + 0.1 * total
        return [y, x_grad] + outer.gradient(loss, layer.trainable_weights + [pre])

    if mode != "eager":
        step = tf.function(step, jit_compile=mode == "xla")
    return [t.numpy() for t in step(x)]


def _relative_errors(results, exact):
    return [np.abs(a - b).max() / np.abs(b).max() for a, b in zip(results, exact)]


def _exact_penalty_step(kwargs, x):
    layer = _layer_norm(keras.layers.LayerNormalization, "float64", x.shape, **kwargs)
    return _layer_norm_penalty_step(layer, tf.cast(x, tf.float64), call=_exact_layer_norm(layer))


def _off_centre_inputs():
    # Off-centre, non-unit data, as a convolution's outputs are.
    return _inputs(5, 16) * 3.0 + 1.5


@pytest.mark.parametrize("mode", ["eager", "graph", "xla"])
@pytest.mark.parametrize("case", list(LAYER_NORM_CASES))
def test_analytic_layer_norm_is_exact_through_a_gradient_penalty(case, mode):
    x, kwargs = _off_centre_inputs(), LAYER_NORM_CASES[case]
    exact = _exact_penalty_step(kwargs, x)
    ours = _layer_norm_penalty_step(
        _layer_norm(kgan_layers.AnalyticGradLayerNormalization, "float32", x.shape, **kwargs),
        x, mode)
    assert len(ours) == len(exact) == 3 + kwargs.get("center", True) + kwargs.get("scale", True)
    for value in exact:
        assert np.abs(value).max() > 0
    # float32 rounding, nothing more.
    assert max(_relative_errors(ours, exact)) < 2e-5


@pytest.mark.parametrize("case", list(LAYER_NORM_CASES))
def test_keras_layer_norm_is_exact_once_but_not_twice(case):
    # Why the layer exists besides speed: through Keras's layer the penalty's
    # gradient w.r.t. anything before the norm is off, even in float64,
    # because tf.nn.moments stops the gradient of the variance w.r.t. the mean
    # (zero once, not twice). If this fails, Keras became exact and
    # AnalyticGradLayerNormalization's docstring should say so.
    x, kwargs = _off_centre_inputs(), LAYER_NORM_CASES[case]
    exact = _exact_penalty_step(kwargs, x)
    keras_layer = _layer_norm(keras.layers.LayerNormalization, "float64", x.shape, **kwargs)
    errors = _relative_errors(_layer_norm_penalty_step(keras_layer, tf.cast(x, tf.float64)), exact)
    assert max(errors[:-1]) < 1e-12  # outputs, first-order and the norm's own weights
    assert errors[-1] > 1e-5  # the pre-norm weight


@pytest.mark.parametrize("case", ["image", "last_axis"])
def test_analytic_layer_norm_in_bfloat16_is_at_least_as_accurate_as_keras(case):
    # Under mixed_bfloat16 both round inputs, outputs and the input gradient
    # to bfloat16; against exact float64 arithmetic kgan's error is at most
    # Keras's (and lower for the pre-norm weight, where Keras's is wrong).
    x, kwargs = _off_centre_inputs(), LAYER_NORM_CASES[case]
    exact = _exact_penalty_step(kwargs, x)
    x = tf.cast(x, tf.bfloat16)
    ours, theirs = (
        _relative_errors(_layer_norm_penalty_step(_layer_norm(cls, "mixed_bfloat16", x.shape,
                                                              **kwargs), x), exact)
        for cls in (kgan_layers.AnalyticGradLayerNormalization, keras.layers.LayerNormalization))
    for name, a, b in zip(LAYER_NORM_OUTPUTS, ours, theirs):
        assert a <= 1.25 * b + 1e-6, (name, a, b)


def test_analytic_layer_norm_takes_keras_path_for_rms_scaling(monkeypatch):
    calls = _counting(monkeypatch, "_layer_norm_analytic_grad")
    x = _inputs(5, 8)
    with pytest.warns(UserWarning, match="rms_scaling"):
        ours = kgan_layers.AnalyticGradLayerNormalization(rms_scaling=True)
        theirs = keras.layers.LayerNormalization(rms_scaling=True)
    np.testing.assert_array_equal(ours(x), theirs(x))
    assert not calls
    kgan_layers.AnalyticGradLayerNormalization()(x)
    assert len(calls) == 1


@pytest.mark.parametrize("axis", [[1, -1], [-1, 1, 2]])
def test_analytic_layer_norm_takes_keras_weight_shape_for_mixed_sign_axes(axis):
    # Keras shapes gamma and beta by `axis` in its given order and reshapes
    # them (not transposes) to the broadcast shape; so must this layer.
    x = _inputs(5, 4)
    ours, theirs = (_layer_norm(cls, "float32", x.shape, axis=axis)
                    for cls in (kgan_layers.AnalyticGradLayerNormalization,
                                keras.layers.LayerNormalization))
    assert ours.gamma.shape == theirs.gamma.shape
    np.testing.assert_allclose(ours(x), theirs(x), rtol=0, atol=2e-6)


def test_analytic_layer_norm_config_and_keras_file_round_trip(tmp_path):
    x = _inputs(5, 8)
    layer = _layer_norm(kgan_layers.AnalyticGradLayerNormalization, "float32", x.shape,
                        axis=[1, 2, 3], epsilon=1e-5, name="norm")
    _assert_keras_config_and_file_round_trip(layer, keras.layers.LayerNormalization, x, tmp_path)


def _assert_keras_config_and_file_round_trip(layer, keras_cls, x, path):
    """`layer`'s config is `keras_cls`'s, and a model of it saves and loads as itself."""
    config = layer.get_config()
    assert config == keras_cls.from_config(config).get_config()
    inputs = keras.Input(x.shape[1:])
    model = keras.Model(inputs, layer(inputs))
    model.save(path / "model.keras")
    loaded = keras.saving.load_model(path / "model.keras", safe_mode=True)
    assert type(loaded.get_layer(layer.name)) is type(layer)
    np.testing.assert_array_equal(model(x), loaded(x))


# ---------------------------------------------------------------- instance normalization
def _instance_norm(cls, dtype, shape, affine, epsilon=1e-5, axis=-1, groups=-1):
    layer = cls(groups=groups, axis=axis, center=affine, scale=affine, epsilon=epsilon, dtype=dtype)
    layer.build(shape)
    if affine:
        rng = np.random.default_rng(0)
        layer.gamma.assign(rng.normal(1.0, 0.3, size=layer.gamma.shape))
        layer.beta.assign(rng.normal(0.0, 0.3, size=layer.beta.shape))
    return layer


def _instance_norm_step(layer, x, training=True):
    """Outputs and the gradients w.r.t. inputs (and gamma, beta) of a nonlinear loss."""
    weights = [layer.gamma.value, layer.beta.value] if layer.scale else []
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.cast(layer(x, training=training), tf.float64)
        loss = tf.reduce_sum(y * tf.sin(3.0 * y))
    return [t.numpy() for t in [y] + tape.gradient(loss, [x] + weights)]


@pytest.fixture
def count_fused_batch_norms(monkeypatch):
    calls = []
    original = tf.raw_ops.FusedBatchNormV3

    def counting(**kwargs):
        calls.append(kwargs["x"].shape)
        return original(**kwargs)

    monkeypatch.setattr(tf.raw_ops, "FusedBatchNormV3", counting)
    return calls


@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("batch", [1, 3])
def test_fused_instance_norm_trains_with_keras_math(batch, affine, count_fused_batch_norms):
    # Off-centre, non-unit data; against exact float64 arithmetic kgan's
    # error is float32 rounding in float32 and at most Keras's in bfloat16.
    x = tf.constant(np.random.default_rng(1).normal(1.5, 3.0, size=(batch, 6, 7, 16)))
    exact = _instance_norm_step(
        _instance_norm(keras.layers.GroupNormalization, "float64", x.shape, affine), x)
    ours = _instance_norm_step(_instance_norm(
        kgan_layers.FusedInstanceNormalization, "float32", x.shape, affine), tf.cast(x, tf.float32))
    # One example takes the kernel as it is; more are moved to [1, H, W, B * C].
    assert count_fused_batch_norms == [tf.TensorShape([1, 6, 7, batch * 16])]
    assert max(_relative_errors(ours, exact)) < 2e-6
    x16 = tf.cast(x, tf.bfloat16)
    ours, theirs = (
        _relative_errors(_instance_norm_step(
            _instance_norm(cls, "mixed_bfloat16", x.shape, affine), x16), exact)
        for cls in (kgan_layers.FusedInstanceNormalization, keras.layers.GroupNormalization))
    for name, a, b in zip(["outputs", "inputs grad", "gamma grad", "beta grad"], ours, theirs):
        assert a <= 1.25 * b + 1e-6, (name, a, b)


@pytest.mark.parametrize("case", ["inference", "two_groups", "channels_first", "rank_3",
                                  "float64", "small_epsilon_on_an_accelerator"])
def test_fused_instance_norm_is_keras_elsewhere(case, count_fused_batch_norms, monkeypatch):
    settings, x, training = dict(affine=True), _inputs(5, 8), True
    if case == "inference":
        training = False
    if case == "two_groups":
        settings["groups"] = 2
    if case == "channels_first":
        settings["axis"] = 1
    if case == "rank_3":
        x = tf.reshape(x, (3, -1, 8))
    dtype = "float64" if case == "float64" else "float32"
    x = tf.cast(x, dtype)
    if case == "small_epsilon_on_an_accelerator":
        monkeypatch.setattr(kgan_layers, "_accelerator_present", lambda: True)
    ours, theirs = (
        _instance_norm_step(_instance_norm(cls, dtype, x.shape, **settings), x, training)
        for cls in (kgan_layers.FusedInstanceNormalization, keras.layers.GroupNormalization))
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)
    assert not count_fused_batch_norms


def test_fused_instance_norm_with_cudnn_epsilon_is_fused_on_an_accelerator(
        count_fused_batch_norms, monkeypatch):
    monkeypatch.setattr(kgan_layers, "_accelerator_present", lambda: True)
    x = _inputs(5, 8)
    _instance_norm_step(_instance_norm(kgan_layers.FusedInstanceNormalization, "float32", x.shape,
                                       affine=False, epsilon=1e-3), x)
    assert len(count_fused_batch_norms) == 1


def test_fused_instance_norm_config_and_keras_file_round_trip(tmp_path):
    layer = kgan_layers.FusedInstanceNormalization(groups=-1, center=False, scale=False,
                                                   epsilon=1e-5, name="norm")
    _assert_keras_config_and_file_round_trip(layer, keras.layers.GroupNormalization,
                                             _inputs(5, 8), tmp_path)


# ---------------------------------------------------------------- cropping
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("cropping", [((1, 0), (1, 0)), ((2, 1), (0, 3)), 1])
def test_slice_cropping_is_keras_cropping(cropping, data_format):
    x = tf.constant(np.random.default_rng(0).normal(size=(2, 9, 10, 11)), tf.float32)
    weights = tf.constant(np.random.default_rng(1).normal(size=(2, 9, 10, 11)), tf.float32)

    def outputs_and_input_grad(layer):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            # A loss that weights every output element differently.
            loss = tf.reduce_sum(tf.cast(y, tf.float32) * tf.cast(
                layer(weights), tf.float32))
        return y.numpy(), tape.gradient(loss, x).numpy()

    ours, theirs = (outputs_and_input_grad(cls(cropping, data_format=data_format))
                    for cls in (kgan_layers.SliceCropping2D, keras.layers.Cropping2D))
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)
    assert ours[0].size and np.abs(ours[1]).max() > 0


def test_slice_cropping_keeps_the_static_shape_keras_knows():
    # Traced on images of any size, the channels stay known (the next layer
    # needs them), and known sizes stay known.
    ours, theirs = kgan_layers.SliceCropping2D(((1, 0), (2, 1))), keras.layers.Cropping2D(((1, 0), (2, 1)))
    for shape in [(None, None, None, 8), (2, 9, 10, 8)]:
        shapes = [tf.function(layer).get_concrete_function(tf.TensorSpec(shape)).output_shapes
                  for layer in (ours, theirs)]
        assert shapes[0] == shapes[1]
        assert shapes[0][-1] == 8


@pytest.mark.parametrize("cropping", [((2, 2), (0, 0)), ((4, 0), (0, 0)), ((0, 0), (0, 5))])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_slice_cropping_of_a_size_known_at_run_time_only_is_keras(data_format, cropping):
    # Traced for any size, then called on one the crop leaves nothing of:
    # Keras returns an empty map (tf.slice would read a size of -1 as "all",
    # and refused a start past the end: cropping 4 rows from the top of 3).
    x = tf.zeros((1, 3, 4, 1) if data_format == "channels_last" else (1, 1, 3, 4))
    spec = tf.TensorSpec([1, None, None, 1] if data_format == "channels_last"
                         else [1, 1, None, None])
    shapes = [tf.function(cls(cropping, data_format=data_format),
                          input_signature=[spec])(x).shape
              for cls in (kgan_layers.SliceCropping2D, keras.layers.Cropping2D)]
    assert shapes[0] == shapes[1]
    assert 0 in shapes[0]


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_slice_cropping_refuses_what_keras_refuses(data_format):
    x = tf.zeros((2, 4, 4, 4))
    with pytest.raises(ValueError, match="should be smaller than the corresponding spatial"):
        kgan_layers.SliceCropping2D(((2, 2), (0, 0)), data_format=data_format)(x)


def test_slice_cropping_config_and_keras_file_round_trip(tmp_path):
    layer = kgan_layers.SliceCropping2D(((1, 0), (1, 0)), name="crop")
    _assert_keras_config_and_file_round_trip(layer, keras.layers.Cropping2D, _inputs(5, 8),
                                             tmp_path)


# ---------------------------------------------------------------- static shapes
_TRAINING_LAYERS = {
    "instance_norm": (lambda: kgan_layers.FusedInstanceNormalization(groups=-1), (8, 8, 4)),
    "batch_norm": (lambda: kgan_layers.FusedBatchNormalization(), (8, 8, 4)),
    "layer_norm": (lambda: kgan_layers.AnalyticGradLayerNormalization(axis=[1, 2, 3]), (7, 7, 8)),
    "conv": (lambda: ForwardGradConv2D(64, 4, strides=2, padding="same"), (14, 14, 64)),
    "conv_few_channels_in": (lambda: ForwardGradConv2D(8, 4, strides=2, padding="same"),
                             (28, 28, 1)),
    "conv_transpose": (lambda: ForwardGradConv2DTranspose(64, 4, strides=2, padding="same"),
                       (7, 7, 128)),
    "conv_transpose_to_1": (lambda: ForwardGradConv2DTranspose(1, 4, strides=2, padding="same"),
                            (14, 14, 64)),
    "crop": (lambda: kgan_layers.SliceCropping2D(1), (9, 9, 4)),
    "reflection_pad": (lambda: kgan_layers.ReflectionPadding2D(1), (8, 8, 4)),
}


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("name", sorted(_TRAINING_LAYERS))
def test_training_layers_keep_static_shapes_when_the_batch_size_is_unknown(name, dtype):
    """A pipeline without drop_remainder has batches of unknown size. The
    layers' fast paths reshape at run time; had they dropped the known image
    shape, later layers would see (None, None, None, C) (the fused instance
    norm did: CycleGAN's image pool then refused to trace)."""
    make, shape = _TRAINING_LAYERS[name]
    layer = make()
    layer.build((None,) + shape)
    x = tf.cast(_inputs(shape[0], shape[-1]), dtype)[:2, :, : shape[1]]
    expected = layer(x, training=True).shape[1:]

    @tf.function(input_signature=[tf.TensorSpec((None,) + shape, dtype)])
    def outputs_and_input_grad(images):
        with tf.GradientTape() as tape:
            tape.watch(images)
            outputs = layer(images, training=True)
            loss = tf.reduce_sum(tf.cast(outputs, tf.float32))
        gradient = tape.gradient(loss, images)
        assert tuple(outputs.shape) == (None,) + tuple(expected), (name, outputs.shape)
        # A crop's input gradient is a Pad by run-time amounts, shapeless in
        # the graph as Keras's own crop's StridedSliceGrad is; no layer reads it.
        if name != "crop":
            assert tuple(gradient.shape) == (None,) + shape, (name, gradient.shape)
        return outputs

    assert outputs_and_input_grad(x).shape[1:] == expected
