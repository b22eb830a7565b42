"""DiffAugment transforms (correctness, differentiability, determinism) and
synthetic labeled data for classifiers (synthetic_dataset, mix_datasets,
filter_by_confidence)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from kgan_test_utils import record_inputs

from kgan import augment
from kgan.augment import DiffAugment

SEED = tf.constant([3, 4], tf.int64)


def images(batch=8, size=16, channels=1, seed=0):
    return tf.constant(np.random.default_rng(seed).uniform(-1, 1, (batch, size, size, channels)), tf.float32)


def test_translation_shifts_whole_images_with_zero_fill():
    x = images(batch=32, size=16)
    out = augment.translation(x, SEED).numpy()
    limit = int(16 * 0.125 + 0.5)
    shifts_seen = set()
    for original, shifted in zip(x.numpy(), out):
        found = False
        for dy in range(-limit, limit + 1):
            for dx in range(-limit, limit + 1):
                expected = np.zeros_like(original)
                src = original[max(0, -dy):16 - max(0, dy), max(0, -dx):16 - max(0, dx)]
                expected[max(0, dy):max(0, dy) + src.shape[0], max(0, dx):max(0, dx) + src.shape[1]] = src
                if np.allclose(expected, shifted):
                    found = True
                    shifts_seen.add((dy, dx))
        assert found, "output is not a zero-filled shift of the input"
    assert len(shifts_seen) > 5, "shifts should vary per image"


def test_cutout_zeroes_a_square_of_half_the_size():
    x = tf.ones((64, 16, 16, 1))
    out = augment.cutout(x, SEED).numpy()
    zeroed = (out == 0).reshape(64, -1).sum(axis=1)
    assert zeroed.max() == 64  # an 8x8 square fully inside
    assert zeroed.min() > 0  # always some cut, even at the border
    for mask in out[..., 0] == 0:
        rows, cols = np.where(mask)
        assert rows.max() - rows.min() < 8 and cols.max() - cols.min() < 8


def test_color_ranges():
    x = tf.zeros((256, 4, 4, 1))
    out = augment.color(x, SEED).numpy()
    # Brightness only moves a constant image: offsets in [-0.5, 0.5), varied.
    offsets = out[:, 0, 0, 0]
    assert offsets.min() >= -0.5 and offsets.max() < 0.5 and offsets.std() > 0.2
    np.testing.assert_allclose(out, offsets[:, None, None, None] * np.ones_like(out), atol=1e-6)


def test_color_scales_saturation_and_contrast_per_image():
    """DiffAugment's color (Zhao et al. 2020): x + b, then channel deviations
    from the pixel's mean times s in [0, 2), then deviations from the image's
    mean times c in [0.5, 1.5). On RGB images each image's b, s and c are
    recovered from the output, which must be exactly that map. (The test
    above, on constant gray images, sees brightness only: dropping the
    saturation or the contrast step passed it.)"""
    x = images(batch=256, size=4, channels=3).numpy().astype("float64")
    out = augment.color(tf.constant(x, tf.float32), SEED).numpy().astype("float64")
    gray_in, gray_out = x.mean(axis=3, keepdims=True), out.mean(axis=3, keepdims=True)
    image_mean = gray_in.mean(axis=(1, 2, 3), keepdims=True)
    # Gray part: c * (g - mean(g)) + mean(g) + b.
    centered = (gray_in - image_mean).reshape(256, -1)
    target = (gray_out - image_mean).reshape(256, -1)
    c = (centered * (target - target.mean(axis=1, keepdims=True))).sum(axis=1) / (
        centered**2).sum(axis=1)
    b = target.mean(axis=1)
    np.testing.assert_allclose(target, c[:, None] * centered + b[:, None], atol=1e-5)
    # Colour part: c * s * (x - g).
    chroma_in, chroma_out = (x - gray_in).reshape(256, -1), (out - gray_out).reshape(256, -1)
    s = (chroma_in * chroma_out).sum(axis=1) / (chroma_in**2).sum(axis=1) / c
    np.testing.assert_allclose(chroma_out, (c * s)[:, None] * chroma_in, atol=1e-5)
    for name, values, low, high in (("b", b, -0.5, 0.5), ("s", s, 0.0, 2.0), ("c", c, 0.5, 1.5)):
        assert values.min() >= low - 1e-5 and values.max() < high + 1e-5, name
        # Uniform over the range: 256 draws reach both ends' tenths.
        span = high - low
        assert values.min() < low + 0.1 * span and values.max() > high - 0.1 * span, name
    # Independent draws (one seed reused for two factors makes them one).
    assert abs(np.corrcoef([b, s, c])[np.triu_indices(3, 1)]).max() < 0.3


def test_transforms_are_differentiable():
    layer = DiffAugment("color,translation,cutout")
    x = tf.Variable(images())
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x, seed=SEED) ** 2)
    grad = tape.gradient(loss, x)
    assert grad is not None and np.abs(grad.numpy()).sum() > 0


def test_same_seed_same_output_and_different_seed_differs():
    layer = DiffAugment("color,translation,cutout")
    x = images()
    np.testing.assert_array_equal(layer(x, seed=SEED).numpy(), layer(x, seed=SEED).numpy())
    assert not np.allclose(layer(x, seed=SEED).numpy(), layer(x, seed=tf.constant([5, 6], tf.int64)).numpy())


def test_policy_parsing_and_config():
    assert augment.parse_policy("translation, cutout") == "translation,cutout"
    assert augment.parse_policy(["color"]) == "color"
    assert augment.parse_policy(None) is None
    with pytest.raises(ValueError, match="Unknown DiffAugment policy.*flip"):
        augment.parse_policy("color,flip")
    layer = DiffAugment("cutout")
    assert DiffAugment.from_config(layer.get_config()).policy == "cutout"


def test_gan_applies_augmentation_to_the_discriminator_view():
    from kgan.models import DCGAN

    plain = DCGAN.from_image_shape((16, 16, 1), latent_dim=4, filters=4, seed=0)
    augmented = DCGAN.from_image_shape((16, 16, 1), latent_dim=4, filters=4, seed=0, augment="cutout")
    x = tf.ones((4, 16, 16, 1))
    np.testing.assert_array_equal(plain.discriminator_view(x).numpy(), x.numpy())
    assert (augmented.discriminator_view(x).numpy() == 0).any()
    assert DCGAN.from_config(augmented.get_config()).augment == "cutout"


@pytest.mark.parametrize("arch", ["DCGAN", "WGAN", "WGANGP"])
def test_every_discriminator_call_of_a_step_sees_augmented_images(arch):
    """Reals are -1 and fakes 0.5, and cutout zeroes a square of every
    image: each real or fake the discriminator scores in a train step (its
    own update and the generator's) must hold zeros. The view test above
    calls `discriminator_view` itself; a step that scored the reals
    unaugmented (DiffAugment's leak: D learns the augmentations are fake)
    passed every test here and in test_ada.py."""
    from kgan import models

    cls = getattr(models, arch)
    z = keras.Input((2,))
    zeros = keras.layers.Lambda(lambda z: keras.ops.zeros_like(z[:, :1]))(z)
    fake = keras.layers.Dense(64, kernel_initializer="zeros", bias_initializer="ones")(zeros)
    generator = keras.Model(z, keras.layers.Reshape((8, 8, 1))(0.5 * fake))
    images = keras.Input((8, 8, 1))
    critic = keras.Model(images, keras.layers.Dense(1)(keras.layers.Flatten()(images)))
    extra = {} if cls is models.DCGAN else {"n_critic": 2}
    model = cls(generator, critic, seed=0, augment="cutout", **extra)
    model.compile(run_eagerly=True)
    d_inputs = record_inputs(critic)  # each concrete batch the discriminator sees
    model.fit(tf.data.Dataset.from_tensor_slices(np.full((8, 8, 8, 1), -1.0, "float32")).batch(8),
              epochs=1, verbose=0)
    seen, cutouts = {"real": 0, "fake": 0}, []
    for batch in d_inputs:
        groups = {"real": [], "fake": []}
        for image in batch:
            values = set(np.unique(image)) - {0.0}
            if values not in ({-1.0}, {0.5}):
                continue  # WGAN-GP's interpolates of the (augmented) reals and fakes
            kind = "real" if values == {-1.0} else "fake"
            seen[kind] += 1
            groups[kind].append(image == 0)
            assert (image == 0).any(), "the discriminator scored an unaugmented image"
        cutouts += [np.stack(masks) for masks in groups.values() if masks]
    # Every real once; fakes in the discriminator's updates and the generator's.
    n = 1 if cls is models.DCGAN else 2
    assert seen == {"real": 8, "fake": 8 + 8 // n}
    # Each view draws its own augmentation (a seed reused for every view cut
    # the same squares from reals and fakes, every step, and passed).
    for i in range(len(cutouts)):
        for j in range(i):
            assert not np.array_equal(cutouts[i][:4], cutouts[j][:4]), (i, j)


def test_every_discriminator_call_of_a_conditional_step_sees_augmented_images():
    """The same for ConditionalGAN's own train step. Its networks take labels
    and its fresh generator's fakes hold exact zeros (dead ReLUs at the
    borders), so here the discriminator's call is wrapped and the augmenter
    replaced by a marker (every pixel 0.25): the three calls (reals, fakes,
    the generator's fakes) must see only marked images."""
    from kgan.models import ConditionalGAN

    gan = ConditionalGAN.from_image_shape((8, 8, 1), 3, latent_dim=4, filters=2,
                                          embedding_dim=2, seed=0, augment="cutout")
    object.__setattr__(gan, "augmenter", lambda images, seed: tf.fill(tf.shape(images), 0.25))
    gan.compile(run_eagerly=True)
    seen, call = [], gan.discriminator.call

    def recording_call(inputs, *args, **kwargs):
        seen.append(np.array(inputs[0]))
        return call(inputs, *args, **kwargs)

    object.__setattr__(gan.discriminator, "call", recording_call)
    images, labels = np.full((6, 8, 8, 1), -1.0, "float32"), np.arange(6) % 3
    gan.fit(tf.data.Dataset.from_tensor_slices((images, labels)).batch(6), epochs=1, verbose=0)
    assert [batch.shape for batch in seen] == [(6, 8, 8, 1)] * 3
    for batch in seen:
        assert (batch == 0.25).all(), "the discriminator scored an unaugmented image"


# ---------------------------------------------------------------- synthetic data for classifiers
import kgan  # noqa: E402
from kgan.models import ConditionalGAN  # noqa: E402


@pytest.fixture(scope="module")
def conditional():
    """A tiny 3-class 16x16x1 ConditionalGAN with outputs spread over [-1, 1]."""
    from kgan_test_utils import spread_weights

    return spread_weights(ConditionalGAN.from_image_shape(
        (16, 16, 1), 3, latent_dim=4, filters=2, embedding_dim=2, seed=0))


def labels_of(dataset):
    return np.array([int(label) for _, label in dataset])


def test_synthetic_dataset_is_exactly_class_balanced(conditional):
    dataset = augment.synthetic_dataset(conditional, num_per_class=7, batch_size=4, seed=0)
    image_spec, label_spec = dataset.element_spec
    assert image_spec.shape == (16, 16, 1) and image_spec.dtype == tf.float32
    assert label_spec.shape == () and label_spec.dtype == tf.int32
    assert int(dataset.cardinality()) == 21
    labels = labels_of(dataset)
    np.testing.assert_array_equal(np.bincount(labels), [7, 7, 7])
    assert labels[:6].tolist() != [0] * 6  # shuffled: batches mix the classes
    # num= without a distribution: balanced up to one example.
    np.testing.assert_array_equal(np.bincount(labels_of(
        augment.synthetic_dataset(conditional, num=10, seed=0))), [4, 3, 3])


@pytest.mark.parametrize("kwargs, expected", [
    ({"num": 10, "class_distribution": [0.5, 0.3, 0.2]}, [5, 3, 2]),
    ({"num": 7, "class_distribution": [0.2, 0.2, 0.6]}, [2, 1, 4]),  # largest remainder
    ({"num": 5, "class_distribution": [0.0, 0.0, 1.0]}, [0, 0, 5]),
    ({"num_per_class": [1, 0, 3]}, [1, 0, 3]),
])
def test_class_counts_are_exact(conditional, kwargs, expected):
    np.testing.assert_array_equal(augment.class_counts(3, **kwargs), expected)
    labels = labels_of(augment.synthetic_dataset(conditional, seed=0, **kwargs))
    np.testing.assert_array_equal(np.bincount(labels, minlength=3), expected)


def test_synthetic_images_value_ranges_and_dtypes(conditional):
    float_pairs = list(augment.synthetic_dataset(conditional, num_per_class=2, seed=3, shuffle=False))
    images = np.stack([image for image, _ in float_pairs])
    labels = np.array([int(label) for _, label in float_pairs])
    np.testing.assert_array_equal(labels, [0, 0, 1, 1, 2, 2])
    assert images.min() >= -1 and images.max() <= 1 and images.std() > 0.05
    unit = np.stack([x for x, _ in augment.synthetic_dataset(
        conditional, num_per_class=2, seed=3, shuffle=False, value_range=(0, 1))])
    np.testing.assert_allclose(unit, (images + 1) / 2, atol=1e-6)
    pixels = augment.synthetic_dataset(conditional, num_per_class=2, seed=3, shuffle=False,
                                       image_dtype="uint8")
    assert pixels.element_spec[0].dtype == tf.uint8
    np.testing.assert_array_equal(np.stack([x for x, _ in pixels]), kgan.images.to_uint8(images))


def label_coded_generator(levels, image_shape=(16, 16, 1), latent_dim=4):
    """A conditional generator `[latents, labels] -> images` whose class-k images are all `levels[k]`.

    A trained generator's images do not show the label they were made for;
    these do, so each synthetic pair can be checked on its own.
    """
    latents = keras.Input((latent_dim,), name="latents")
    labels = keras.Input((), dtype="int32", name="labels")
    size = int(np.prod(image_shape))
    coded = keras.layers.Embedding(len(levels), size, name="label_embedding")(labels)
    # Zero, but it connects the latents input, as a functional model needs.
    unused = keras.layers.Dense(size, use_bias=False, kernel_initializer="zeros")(latents)
    generator = keras.Model([latents, labels], keras.layers.Reshape(image_shape)(coded + unused))
    rows = np.repeat(np.asarray(levels, "float32")[:, None], size, axis=1)
    generator.get_layer("label_embedding").set_weights([rows])
    return generator


def test_synthetic_images_match_the_generator_for_their_labels():
    levels = [-0.75, 0.25, 0.5]
    # 12 shuffled labels in batches of 5: each batch, the partial last one too,
    # must hand the generator the labels it attaches to the images.
    dataset = augment.synthetic_dataset(label_coded_generator(levels), num_per_class=[3, 5, 4],
                                        batch_size=5, seed=0)
    pairs = [(image.numpy(), int(label)) for image, label in dataset]
    labels = np.array([label for _, label in pairs])
    np.testing.assert_array_equal(np.bincount(labels), [3, 5, 4])
    assert labels.tolist() != sorted(labels.tolist())  # shuffled: a batch holds several classes
    for image, label in pairs:
        np.testing.assert_allclose(image, np.full((16, 16, 1), levels[label]), atol=1e-6)


def test_seed_fixes_the_images_and_none_draws_fresh_ones_each_pass(conditional):
    seeded = augment.synthetic_dataset(conditional, num_per_class=2, seed=1)
    first, second = (np.stack([x for x, _ in seeded]) for _ in range(2))
    np.testing.assert_array_equal(first, second)
    fresh = augment.synthetic_dataset(conditional, num_per_class=2)
    first, second = (np.stack([x for x, _ in fresh]) for _ in range(2))
    assert not np.array_equal(first, second)


def test_synthetic_images_do_not_depend_on_the_batch_size(conditional):
    # Latents were keyed by (stream seed, batch index): kgan synthesize
    # --batch-size 50 wrote other images than the default 256 for one --seed.
    def arrays(batch_size):
        dataset = augment.synthetic_dataset(conditional, num_per_class=200, seed=3,
                                            batch_size=batch_size)
        return np.stack([x for x, _ in dataset]), labels_of(dataset)

    images, labels = arrays(256)
    for batch_size in (7, 50, 1000):
        other_images, other_labels = arrays(batch_size)
        np.testing.assert_array_equal(other_labels, labels)
        np.testing.assert_allclose(other_images, images, atol=1e-6)
    # The documented blocks: block b's latents are seeded by the b-th draw of
    # the seed's stream and b (what batch b of 256 drew before blocks existed).
    stream = [int(v) for v in tf.data.Dataset.random(seed=3).take(3)]
    latents = np.concatenate([
        tf.random.stateless_normal([augment.LATENT_BLOCK, 4], seed=[stream[b], b]).numpy()
        for b in range(3)])[:600]
    expected = conditional.generator([latents, labels], training=False)
    np.testing.assert_allclose(images, np.asarray(expected), atol=1e-5)


def test_synthetic_dataset_streams(conditional):
    # 3 million images would take 3 GB; building the dataset and reading a
    # few must only generate the first batch.
    dataset = augment.synthetic_dataset(conditional, num_per_class=1_000_000, batch_size=8, seed=0)
    assert int(dataset.cardinality()) == 3_000_000
    assert len(list(dataset.take(3))) == 3


@pytest.mark.parametrize("kwargs, error, message", [
    ({"num_per_class": -1}, ValueError, "num_per_class must be >= 0"),
    ({"num_per_class": [1, 2]}, ValueError, "3 counts"),
    ({"num_per_class": 2.5}, ValueError, "num_per_class must be an int or 3 counts"),
    ({"num": 10, "class_distribution": [0.5, 0.4, 0.2]}, ValueError, "must sum to 1, got sum 1.1"),
    ({"num": 10, "class_distribution": [0.5, 0.5]}, ValueError, "has 2 entries; the generator has 3"),
    ({"num": 10, "class_distribution": [1.5, -0.5, 0.0]}, ValueError, "non-negative"),
    ({"num": -3}, ValueError, "num must be >= 0"),
    ({}, ValueError, "exactly one of num_per_class= .* or num="),
    ({"num": 3, "num_per_class": 1}, ValueError, "exactly one of"),
    ({"num_per_class": 1, "class_distribution": [1, 0, 0]}, ValueError, "applies to num="),
    ({"num_per_class": 0}, ValueError, "empty"),
    ({"num_per_class": 1, "value_range": (1, 0)}, ValueError, "low < high"),
    ({"num_per_class": 1, "image_dtype": "uint8", "value_range": (0, 1)}, ValueError, r"\(0, 255\)"),
])
def test_synthetic_dataset_bad_arguments(conditional, kwargs, error, message):
    with pytest.raises(error, match=message):
        augment.synthetic_dataset(conditional, **kwargs)


def test_synthetic_dataset_refuses_unconditional_generators():
    dcgan = kgan.DCGAN.from_image_shape((16, 16, 1), latent_dim=4, filters=2)
    with pytest.raises(TypeError, match="DCGAN generates from latents alone.*ConditionalGAN"):
        augment.synthetic_dataset(dcgan, num_per_class=1)
    with pytest.raises(TypeError, match="takes 1 input"):
        augment.synthetic_dataset(dcgan.generator, num_per_class=1)
    with pytest.raises(TypeError, match="got str"):
        augment.synthetic_dataset("dcgan_mnist", num_per_class=1)


def test_synthetic_dataset_takes_a_bare_conditional_generator(conditional):
    dataset = augment.synthetic_dataset(conditional.generator, num_per_class=1, seed=0)
    np.testing.assert_array_equal(np.bincount(labels_of(dataset)), [1, 1, 1])


def marked(value, label, num, batch=None):
    """`num` images of `value` labeled `label` (int64, as tfds yields).

    The last pixel is `-value`, so that images of +-1 span [-1, 1] as
    `mix_datasets`' range check expects.
    """
    images = np.full((num, 4, 4, 1), value, "float32")
    images[:, -1, -1, 0] = -value
    dataset = tf.data.Dataset.from_tensor_slices((images, np.full(num, label, "int64")))
    return dataset.batch(batch, drop_remainder=True) if batch else dataset


def test_mix_datasets_respects_the_fraction():
    real = marked(-1.0, 0, 20_000, batch=50)  # batched, like kgan.data.load
    synthetic = marked(1.0, 1, 20_000)  # unbatched, like synthetic_dataset
    mixed = augment.mix_datasets(real, synthetic, synthetic_fraction=0.25, seed=0)
    assert mixed.element_spec[0].shape.as_list() == [None, 4, 4, 1]
    assert mixed.element_spec[1].dtype == tf.int32
    batches = list(mixed.take(100))
    assert all(len(labels) == 50 for _, labels in batches)  # real's batch size
    labels = np.concatenate([labels.numpy() for _, labels in batches])
    images = np.concatenate([images.numpy() for images, _ in batches])
    np.testing.assert_array_equal(images[:, 0, 0, 0], 2.0 * labels - 1)  # pairs stay together
    # 5,000 draws: the share's standard error is 0.006.
    assert abs(labels.mean() - 0.25) < 0.02, labels.mean()
    again = np.concatenate([y.numpy() for _, y in augment.mix_datasets(
        real, synthetic, synthetic_fraction=0.25, seed=0).take(100)])
    np.testing.assert_array_equal(again, labels)  # the seed fixes the interleaving


def test_mix_datasets_extremes_and_stopping():
    real, synthetic = marked(-1.0, 0, 30), marked(1.0, 1, 30)
    only_real = augment.mix_datasets(real, synthetic, 0.0, batch_size=7)
    assert [len(y) for _, y in only_real] == [7, 7, 7, 7, 2]
    assert np.concatenate([y.numpy() for _, y in only_real]).sum() == 0
    only_synthetic = augment.mix_datasets(real, synthetic, 1, batch_size=30)
    assert np.concatenate([y.numpy() for _, y in only_synthetic]).tolist() == [1] * 30
    # Stops when one input is exhausted, so the tail is not all one source.
    mixed = np.concatenate([y.numpy() for _, y in augment.mix_datasets(real, synthetic, 0.5, seed=1)])
    counts = np.bincount(mixed, minlength=2)
    assert 30 in counts and counts.sum() < 60, counts


@pytest.mark.parametrize("empty_side", ["synthetic", "real"])
def test_mix_datasets_of_an_empty_input_says_which_when_iterated(empty_side):
    # filter_by_confidence can keep nothing; the mix then stopped at once and
    # a classifier's fit "trained" on no data, with only Keras's warning.
    nothing = marked(1.0, 1, 8).filter(lambda image, label: label > 5).repeat()
    some = marked(-1.0, 0, 8, batch=4).repeat()
    inputs = (some, nothing) if empty_side == "synthetic" else (nothing, some)
    mixed = augment.mix_datasets(*inputs, 0.5, seed=0, batch_size=4)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=f"the {empty_side} dataset yielded no"):
        list(mixed.take(3))
    assert len(list(augment.mix_datasets(*inputs, 0.0 if empty_side == "synthetic" else 1.0,
                                         batch_size=4).take(3))) == 3  # not drawn from: fine


def test_mix_datasets_with_synthetic_dataset_feeds_a_classifier(conditional):
    real = kgan.data.from_numpy(
        np.random.default_rng(0).integers(0, 256, (12, 16, 16, 1), dtype=np.uint8),
        np.arange(12) % 3, batch_size=4, seed=0)
    synthetic = augment.synthetic_dataset(conditional, num_per_class=4, seed=0)
    mixed = augment.mix_datasets(real, synthetic, 0.5, seed=0)
    classifier = keras.Sequential([keras.Input((16, 16, 1)), keras.layers.Flatten(),
                                   keras.layers.Dense(3)])
    classifier.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = classifier.fit(mixed, epochs=1, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"]).all()


def uniform_images(low, high, num=40):
    """`num` unbatched `(image, label)` of random values in [low, high]."""
    images = np.random.default_rng(0).uniform(low, high, (num, 4, 4, 1)).astype("float32")
    return tf.data.Dataset.from_tensor_slices((images, np.arange(num) % 3))


@pytest.mark.parametrize("real_range, synthetic_range, message", [
    # x / 255 real data and [-1, 1] samples used to mix without a word.
    ((0, 1), (-1, 1), r"real dataset do not fit value_range \(-1, 1\): they look like \[0, 1\] "
                      r"images. Rescale them with real.map\(lambda x, y: \(x \* 2 - 1, y\)\)"),
    # The float [0, 255] of keras.utils.image_dataset_from_directory.
    ((0, 255), (-1, 1), r"look like \[0, 255\] images. Rescale them with "
                        r"real.map\(lambda x, y: \(x / 127.5 - 1, y\)\), or make both inputs "
                        r"\[0, 255\] with synthetic_dataset\(..., value_range=\(0, 255\)\)"),
    ((-1, 1), (0, 1), r"first images of the synthetic dataset do not fit"),
    # [0, 1] images as 0..255 floats sit in its bottom tenth.
    ((0, 1), (0, 255), r"real dataset do not fit value_range \(0, 255\): they look like \[0, 1\]"),
    ((-300, 300), (-1, 1), r"do not look like value_range \(-1, 1\) images.*check_value_range=False"),
])
def test_mix_datasets_refuses_images_of_another_range_when_iterated(
        real_range, synthetic_range, message):
    # The synthetic images' range is the one both inputs should share,
    # except where the synthetic ones are the odd ones out.
    value_range = (-1, 1) if synthetic_range == (0, 1) else synthetic_range
    mixed = augment.mix_datasets(uniform_images(*real_range), uniform_images(*synthetic_range),
                                 0.5, seed=0, batch_size=4, value_range=value_range)
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        list(mixed)


@pytest.mark.parametrize("real_range", [
    (-1.06, 1.14),  # a bicubic resize of [-1, 1] digits
    (-1, -0.2),  # dark images
    (-1, -1),  # constant (black) images
    # An untrained generator's tanh near 0: the README example's 1-epoch GAN
    # drew [-0.0199, 0.0269] in one run, read as [0, 1] images.
    (-0.0199, 0.0269),
])
def test_mix_datasets_takes_images_of_the_right_convention_that_do_not_span_it(real_range):
    # The check refused these: it wanted values within 1% of [-1, 1] in both halves.
    mixed = augment.mix_datasets(uniform_images(*real_range), uniform_images(-1, 1), 0.5,
                                 seed=0, batch_size=4)
    assert len(list(mixed)) > 0  # read through without the check's error


def test_mix_datasets_takes_the_range_both_inputs_use():
    for value_range in [(0, 1), (0, 255)]:
        inputs = uniform_images(*value_range), uniform_images(*value_range)
        assert len(list(augment.mix_datasets(*inputs, 0.5, seed=0, value_range=value_range))) > 0
    unchecked = augment.mix_datasets(uniform_images(0, 1), uniform_images(-1, 1), 0.5, seed=0,
                                     check_value_range=False)
    assert len(list(unchecked)) > 0
    pixels = tf.data.Dataset.from_tensor_slices(
        (np.arange(40 * 16).reshape(40, 4, 4, 1).astype("uint8"), np.zeros(40, "int32")))
    assert len(list(augment.mix_datasets(pixels, pixels, 0.5, seed=0))) > 0  # uint8: 0..255
    with pytest.raises(ValueError, match=r"value_range must have low < high"):
        augment.mix_datasets(uniform_images(0, 1), uniform_images(0, 1), value_range=(1, 0))


@pytest.mark.parametrize("kwargs, error, message", [
    ({"synthetic_fraction": 1.5}, ValueError, r"synthetic_fraction must be in \[0, 1\], got 1.5"),
    ({"synthetic_fraction": -0.1}, ValueError, r"must be in \[0, 1\]"),
    ({"synthetic_fraction": "half"}, TypeError, "must be a number"),
    ({"synthetic_fraction": True}, TypeError, "must be a number"),
])
def test_mix_datasets_bad_fraction(kwargs, error, message):
    with pytest.raises(error, match=message):
        augment.mix_datasets(marked(0.0, 0, 4), marked(0.0, 1, 4), **kwargs)


def test_mix_datasets_bad_inputs():
    real = marked(0.0, 0, 4)
    with pytest.raises(ValueError, match=r"real must yield \(image, label\).*with_labels=True"):
        augment.mix_datasets(real.map(lambda x, y: x), real)
    with pytest.raises(ValueError, match="real images are float32 but synthetic ones uint8"):
        augment.mix_datasets(real, real.map(lambda x, y: (tf.cast(x, tf.uint8), y)))
    with pytest.raises(ValueError, match="shape"):
        augment.mix_datasets(real, real.map(lambda x, y: (tf.image.resize(x, (8, 8)), y)))
    with pytest.raises(ValueError, match="labels must be integer"):
        augment.mix_datasets(real, real.map(lambda x, y: (x, tf.cast(y, tf.float32))))
    with pytest.raises(TypeError, match="tf.data.Dataset"):
        augment.mix_datasets(np.zeros((4, 4, 4, 1)), real)


def test_filter_by_confidence_reads_16_bit_probabilities_as_probabilities():
    # A mixed-precision classifier's bfloat16 softmax sums to 1 only to its
    # rounding (off by 2e-3 here): it was taken for logits, softmaxed again,
    # and no example reached the threshold.
    values = np.arange(64) % 7
    dataset = tf.data.Dataset.from_tensor_slices(
        (np.ones((64, 4, 4, 1), "float32") * values[:, None, None, None], values))

    def classifier(dtype):
        def probabilities(images):
            value = tf.cast(tf.round(images[:, 0, 0, 0]), tf.int32)
            logits = 6.0 * tf.one_hot(value, 7) + tf.random.stateless_normal(
                [tf.shape(images)[0], 7], seed=[0, 1])
            return tf.nn.softmax(tf.cast(logits, dtype))
        return probabilities

    sums = classifier(tf.bfloat16)(tf.constant(np.ones((64, 4, 4, 1), "float32") * values[:, None, None, None]))
    assert np.abs(np.sum(np.asarray(tf.cast(sums, tf.float32)), -1) - 1).max() > 1e-3
    for dtype in (tf.float32, tf.float16, tf.bfloat16):
        kept = augment.filter_by_confidence(dataset, classifier(dtype), threshold=0.5)
        assert len(list(kept)) > 48, dtype.name


def test_filter_by_confidence_names_labels_the_classifier_does_not_have():
    dataset = tf.data.Dataset.from_tensor_slices((np.zeros((6, 4, 4, 1), "float32"), [0, 1, 2, 3, 4, 5]))
    three_classes = lambda x: tf.fill([tf.shape(x)[0], 3], 1 / 3)  # noqa: E731
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"not one of the classes of the classifier.*\] \[3\] \[0\] \[5\]"):
        list(augment.filter_by_confidence(dataset, three_classes, 0.1))


def test_filter_by_confidence_keeps_what_the_classifier_agrees_with():
    # Image value v in {0, 1, 2}: the "classifier" gives probability 0.9 to
    # class v; examples labeled v are kept, the mislabeled ones dropped.
    values = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    labels = np.array([0, 1, 2, 1, 1, 0, 0, 2])
    dataset = tf.data.Dataset.from_tensor_slices(
        (np.ones((8, 4, 4, 1), "float32") * values[:, None, None, None], labels))

    def probabilities(images):
        value = tf.cast(tf.round(images[:, 0, 0, 0]), tf.int32)
        return 0.05 + 0.85 * tf.one_hot(value, 3)

    kept = augment.filter_by_confidence(dataset, probabilities, threshold=0.8, batch_size=3)
    assert kept.element_spec[0].shape == (4, 4, 1)
    assert [int(y) for _, y in kept] == [0, 1, 2, 1, 0]
    # Logits are recognized and softmaxed; batched input stays batched.
    logits = augment.filter_by_confidence(
        dataset.batch(4, drop_remainder=True), lambda x: 10 * tf.math.log(probabilities(x)),
        threshold=0.99)
    assert [y.numpy().tolist() for _, y in logits] == [[0, 1, 2, 1], [0]]
    assert augment.filter_by_confidence(dataset, probabilities, 0.0).cardinality() != 0
    with pytest.raises(ValueError, match=r"threshold must be in \[0, 1\]"):
        augment.filter_by_confidence(dataset, probabilities, 1.2)
