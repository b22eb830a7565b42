"""`FusedAdam`: `keras.optimizers.Adam` that updates each weight with one kernel.

Keras 3's Adam updates a weight with about a dozen small TensorFlow ops
(cast, power, sub, mul, square, sqrt, divide and three assigns). A GAN
train step updates every weight of two networks each step, and at
DCGAN's sizes those ops cost more in per-op overhead than in arithmetic.
TensorFlow's `ResourceApplyAdam` kernel does the same update in one op.

The math is Keras's (and the paper's), unchanged:

    alpha = lr * sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)
    m <- beta_1 * m + (1 - beta_1) * g
    v <- beta_2 * v + (1 - beta_2) * g ** 2
    w <- w - alpha * m / (sqrt(v) + epsilon)

`FusedAdam` has Adam's arguments, variables and config, so it saves,
restores and resumes like Adam (a checkpoint of either loads into the
other). The fused kernel runs on the TensorFlow backend for dense float32
gradients outside distribution strategies; everything else (amsgrad,
sparse gradients, other dtypes or backends, replicas of a
`tf.distribute` strategy) runs Keras's own update.

Example:

```python
from kgan.optimizers import FusedAdam
gan.compile(g_optimizer=FusedAdam(2e-4, beta_1=0.5), d_optimizer=FusedAdam(2e-4, beta_1=0.5))
```
"""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="kgan")
class FusedAdam(keras.optimizers.Adam):
    """`keras.optimizers.Adam`, one `ResourceApplyAdam` kernel per weight update.

    Takes exactly `keras.optimizers.Adam`'s arguments.

    Example:

    ```python
    optimizer = FusedAdam(learning_rate=2e-4, beta_1=0.5)
    ```
    """

    def _fusable(self, gradient, variable):
        return (
            keras.backend.backend() == "tensorflow"
            and not self.amsgrad
            and not isinstance(gradient, tf.IndexedSlices)
            and variable.dtype == "float32"
            and not tf.distribute.has_strategy()
        )

    def update_step(self, gradient, variable, learning_rate):
        if not self._fusable(gradient, variable):
            return super().update_step(gradient, variable, learning_rate)
        index = self._get_variable_index(variable)
        step = tf.cast(self.iterations + 1, tf.float32)
        beta_1 = tf.constant(self.beta_1, tf.float32)
        beta_2 = tf.constant(self.beta_2, tf.float32)
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable),
            m=_handle(self._momentums[index]),
            v=_handle(self._velocities[index]),
            beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, tf.float32),
            beta1=beta_1,
            beta2=beta_2,
            epsilon=tf.constant(self.epsilon, tf.float32),
            grad=tf.cast(gradient, tf.float32),
            use_locking=False,
        )


def _handle(variable):
    """The resource handle of a Keras or TensorFlow variable."""
    if isinstance(variable, keras.Variable):
        variable = variable.value
    return variable.handle
