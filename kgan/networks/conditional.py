"""Class-conditional DCGAN networks: a label-embedding generator and a projection discriminator.

Both are the DCGAN stacks of `kgan.networks.dcgan` (same sizing rule, widths,
batch norm, N(0, 0.02) init, float32 last layers) with a second input,
`labels`: int32 class indices `[B]` in `[0, num_classes)`.

* **Generator** (Mirza & Osindero 2014, as in the keras.io conditional GAN
  example): a learned embedding of the label is concatenated with the latent
  vector and the DCGAN generator runs on the result. It is the simplest
  conditioning that works for DCGAN-sized models; conditional batch norm
  (BigGAN) pays off mainly for many classes and deep ResNet generators.
  `conditioning="cbn"` builds it (class terms start at zero); on 50 MNIST
  digits per class and 1200 steps it stayed diverse but did not learn the
  classes (label agreement 0.14). With few images per class the concat
  generator collapses within a class unless trained with
  `ConditionalGAN(mode_seeking=...)` (the default); see that class.
* **Projection discriminator** (Miyato & Koyama 2018): with `phi(x)` the
  DCGAN discriminator's flattened features and `psi` its final dense layer,
  `logit(x, y) = psi(phi(x)) + <embed(y), phi(x)>`. With the class embedding
  at zero it is exactly the DCGAN discriminator. The label enters through an
  inner product, not through an auxiliary classifier (AC-GAN): an auxiliary
  classification loss rewards the generator for images that are *easy to
  classify*, which pulls samples toward class prototypes and loses
  diversity (Odena et al. 2017 report it; Shu et al. 2017 and Miyato &
  Koyama 2018 explain and measure it). The projection form follows from the
  log-likelihood ratio of a conditional model and has no such incentive.
"""

import keras
from keras import layers

from kgan.networks.dcgan import _bn, _init, discriminator_features, generator_stack, stages_for


def _check_num_classes(num_classes):
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(
            f"num_classes must be an int >= 2 (e.g. 10 for MNIST), got {num_classes!r}."
        )
    return num_classes


@keras.saving.register_keras_serializable(package="kgan")
class ConditioningStrength(layers.Layer):
    """Multiplies its input by a non-trainable scalar `strength` in [0, 1].

    The knob of *transitional conditioning* (Shahbazi et al. 2022): a
    `ConditionalGAN` with `transition_steps` sets it from the training step,
    so the networks start unconditional (strength 0) and the class signal is
    ramped in. It is 1 (plain conditioning) unless a model sets it; being a
    weight, its value is saved with the network.

    Example:

    ```python
    strength = kgan.networks.conditional.ConditioningStrength()
    strength(np.ones((2, 3), "float32"))  # all 1.0: the weight starts at 1
    strength.strength.assign(0.25)
    strength(np.ones((2, 3), "float32"))  # all 0.25
    ```
    """

    def build(self, input_shape):
        self.strength = self.add_weight(
            shape=(), initializer="ones", trainable=False, name="strength",
            aggregation="only_first_replica",
        )

    def call(self, inputs):
        return inputs * keras.ops.cast(self.strength, inputs.dtype)


def _conditional_bn(x, labels, num_classes, index):
    """Conditional batch norm: batch norm, then a per-class scale and shift.

    `y = BN(x) * (1 + s * dgamma[label]) + s * dbeta[label]` with `s` a
    `ConditioningStrength` and `dgamma`, `dbeta` per-class embeddings
    initialized at zero (so it starts as the unconditional DCGAN's BN).
    """
    x = _bn()(x)
    channels = int(x.shape[-1])
    gamma = layers.Embedding(
        num_classes, channels, embeddings_initializer="zeros", name=f"class_gamma_{index}"
    )(labels)
    beta = layers.Embedding(
        num_classes, channels, embeddings_initializer="zeros", name=f"class_beta_{index}"
    )(labels)
    gamma = ConditioningStrength(name=f"gamma_strength_{index}")(gamma)
    beta = ConditioningStrength(name=f"beta_strength_{index}")(beta)
    gamma = layers.Reshape((1, 1, channels))(gamma)
    beta = layers.Reshape((1, 1, channels))(beta)
    scaled = layers.Multiply()([x, gamma])
    return layers.Add()([x, scaled, beta])


#: generator conditionings: see `conditional_generator`.
CONDITIONINGS = ("cbn", "concat")


def _labels_input():
    # Shape (): one class index per example, the layout kgan.data yields.
    return keras.Input((), dtype="int32", name="labels")


def conditional_generator(
    image_shape, num_classes, latent_dim=100, filters=64, embedding_dim=50, kernel_size=4,
    refine_layers=0, conditioning="concat", name="generator",
):
    """DCGAN generator conditioned on a class: `[latents, labels]` -> images in [-1, 1].

    Args:
        image_shape: `(H, W, C)` of the images, e.g. `(28, 28, 1)`, `(32, 32, 3)`.
        num_classes: number of classes K; labels are ints in `[0, K)`.
        latent_dim: size of the latent vector.
        filters: width of the last hidden stage (see `dcgan_generator`).
        embedding_dim: size of the label embedding concatenated with the latents.
        kernel_size: transposed-convolution kernel.
        refine_layers: stride-1 blocks at the start resolution (see `dcgan_generator`).
        conditioning: how the label enters. `"cbn"`: conditional
            batch norm (Miyato & Koyama 2018, BigGAN) -- every batch norm
            gets a per-class scale and shift, and the dense layer sees the
            latents only. `"concat"` (default): a learned label embedding of size
            `embedding_dim` concatenated with the latents (Mirza & Osindero
            2014). With few images per class `"concat"` collapses within a
            class (every latent draws the same digit); see `ConditionalGAN`.
        name: model name.

    Returns:
        A functional `keras.Model` with inputs `[latents [B, latent_dim]
        float32, labels [B] int32]` and output images `[B, H, W, C]` (float32).

    Example:

    ```python
    g = conditional_generator((28, 28, 1), num_classes=10, latent_dim=64)
    images = g([np.zeros((2, 64), "float32"), np.array([3, 7])])
    ```
    """
    stages_for(image_shape)  # a clear error for sizes it cannot build, before any layer
    num_classes = _check_num_classes(num_classes)
    if int(latent_dim) < 1 or int(filters) < 1 or int(embedding_dim) < 1:
        raise ValueError(
            "latent_dim, filters and embedding_dim must be positive, got "
            f"{latent_dim}, {filters}, {embedding_dim}."
        )
    if conditioning not in CONDITIONINGS:
        raise ValueError(
            f"conditioning must be one of {', '.join(map(repr, CONDITIONINGS))}, got "
            f"{conditioning!r}."
        )
    latents = keras.Input((latent_dim,), name="latents")
    labels = _labels_input()
    blocks = iter(range(1000))
    if conditioning == "concat":
        # Unit-variance embeddings, like the N(0, 1) latents they sit next to: a
        # small init (Keras' default U(-0.05, 0.05)) would start the label out
        # drowned by the latents in the first dense layer.
        embedded = layers.Embedding(
            num_classes, embedding_dim,
            embeddings_initializer=keras.initializers.RandomNormal(0.0, 1.0),
            name="label_embedding",
        )(labels)
        embedded = ConditioningStrength(name="label_strength")(embedded)
        x = layers.Concatenate(name="latents_and_label")([latents, embedded])

        def norm(x):
            return _bn()(x)
    else:
        x = latents

        def norm(x):
            return _conditional_bn(x, labels, num_classes, next(blocks))
    images = generator_stack(x, image_shape, filters, kernel_size, refine_layers, norm)
    return keras.Model([latents, labels], images, name=name)


def projection_discriminator(
    image_shape, num_classes, filters=64, kernel_size=4, normalization="batch", dropout=0.0,
    name="discriminator",
):
    """Projection discriminator: `[images, labels]` -> one logit per image (float32).

    `logit = psi(phi(x)) + <embed(y), phi(x)>` (Miyato & Koyama 2018), where
    `phi` is the DCGAN discriminator's conv stack, flattened, and `psi` a
    dense layer; see the module docstring for why projection and not an
    auxiliary classifier.

    Args:
        image_shape: `(H, W, C)` of the images.
        num_classes: number of classes K.
        filters: width of the first stage; each stage doubles it.
        kernel_size: convolution kernel size.
        normalization: `"batch"` (DCGAN), `"layer"` or `None`.
        dropout: dropout rate after each activation.
        name: model name.

    Returns:
        A functional `keras.Model` with inputs `[images, labels]` and
        output logits `[B, 1]` (float32).

    Example:

    ```python
    d = projection_discriminator((28, 28, 1), num_classes=10)
    logits = d([np.zeros((2, 28, 28, 1), "float32"), np.array([3, 7])])
    ```
    """
    _, _, stages = stages_for(image_shape)
    num_classes = _check_num_classes(num_classes)
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
    if normalization not in ("batch", "layer", None):
        raise ValueError(f"normalization must be 'batch', 'layer' or None, got {normalization!r}.")
    images = keras.Input(tuple(image_shape), name="images")
    labels = _labels_input()
    x = discriminator_features(images, stages, filters, kernel_size, normalization, dropout)
    features = layers.Flatten(name="features")(x)
    # The logit's three terms compute in float32 under mixed precision: they
    # sum thousands of products, which bf16 would round visibly.
    unconditional = layers.Dense(
        1, kernel_initializer=_init(), dtype="float32", name="unconditional_logit"
    )(features)
    class_embedding = layers.Embedding(
        num_classes, int(features.shape[-1]), embeddings_initializer=_init(), dtype="float32",
        name="class_projection",
    )(labels)
    projection = layers.Dot(axes=1, dtype="float32", name="projection")([features, class_embedding])
    projection = ConditioningStrength(dtype="float32", name="projection_strength")(projection)
    logits = layers.Add(dtype="float32", name="logits")([unconditional, projection])
    return keras.Model([images, labels], logits, name=name)
