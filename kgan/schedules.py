"""Learning-rate schedules of the papers kgan implements.

`LinearDecayAfterHalf` is CycleGAN's: "keep the same learning rate for the
first 100 epochs and linearly decay the rate to zero over the next 100
epochs" (Zhu et al. 2017, sec. 7.1).

It is a `keras.optimizers.schedules.LearningRateSchedule` of the optimizer's
step count, not a callback that sets the rate each epoch, because:

* it resumes exactly: the rate is a function of `optimizer.iterations`,
  which `BackupAndRestore` checkpoints and `.keras` files restore, and its
  own config (initial rate, lengths) is saved with the optimizer. A callback
  would have to recover the *initial* rate after a restore, when the
  optimizer already holds a decayed one;
* it needs no callback in `fit` to be remembered, and it is per step: the
  decay is the continuous line the paper describes (the reference code's
  once-per-epoch steps approximate it), and the rate reaches exactly zero
  after the last training step.

The price is that the schedule must know the number of steps per epoch
(`len(dataset)`, or `dataset.cardinality()` for a finite `tf.data` pipeline).

Example:

```python
schedule = kgan.schedules.LinearDecayAfterHalf(2e-4, epochs=200, steps_per_epoch=1000)
optimizer = keras.optimizers.Adam(schedule, beta_1=0.5)
```
"""

import keras
from keras import ops


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}.")
    return value


@keras.saving.register_keras_serializable(package="kgan")
class LinearDecayAfterHalf(keras.optimizers.schedules.LearningRateSchedule):
    """Constant, then linear decay to zero: CycleGAN's learning-rate schedule.

    With `T = epochs * steps_per_epoch` total steps and
    `D = decay_epochs * steps_per_epoch` decay steps, the rate at optimizer
    step `s` (0-based, the update about to be made) is

        initial_learning_rate * min(1, (T - s) / D),  and 0 for s >= T.

    So it is constant for the first `T - D` steps, falls by
    `initial_learning_rate / D` per step after that, and is zero once the
    last step has been made. By default `decay_epochs = epochs // 2`, i.e.
    the second half of training (the paper: 100 + 100 epochs).

    The schedule is stateless: one instance can serve both of CycleGAN's
    optimizers, each evaluating it at its own step count.

    Under `mixed_float16`, steps that `LossScaleOptimizer` skips (non-finite
    gradients) are not counted, so the decay then ends a few steps late.

    Args:
        initial_learning_rate: the constant rate of the first part (2e-4 in
            the paper).
        epochs: total training epochs, the `epochs` passed to `fit`.
        steps_per_epoch: optimizer steps per epoch (train steps per epoch).
        decay_epochs: epochs of linear decay at the end (default
            `epochs // 2`; at least 1, at most `epochs`).

    Example:

    ```python
    g_opt, d_opt = kgan.models.CycleGAN.default_optimizers(epochs=200, steps_per_epoch=1067)
    gan.compile(g_optimizer=g_opt, d_optimizer=d_opt)
    gan.fit(data, epochs=200)
    ```
    """

    def __init__(self, initial_learning_rate, epochs, steps_per_epoch, decay_epochs=None):
        try:
            rate = float(initial_learning_rate)
        except (TypeError, ValueError):
            rate = -1.0
        if isinstance(initial_learning_rate, bool) or not rate > 0.0:
            raise ValueError(
                f"initial_learning_rate must be a positive number (CycleGAN uses 2e-4), got "
                f"{initial_learning_rate!r}."
            )
        self.initial_learning_rate = rate
        self.epochs = _positive_int(epochs, "epochs")
        self.steps_per_epoch = _positive_int(steps_per_epoch, "steps_per_epoch")
        if decay_epochs is None:
            decay_epochs = max(1, epochs // 2)
        self.decay_epochs = _positive_int(decay_epochs, "decay_epochs")
        if self.decay_epochs > self.epochs:
            raise ValueError(
                f"decay_epochs={decay_epochs} exceeds epochs={epochs}: the decay happens "
                "at the end of training. Pass decay_epochs <= epochs (default epochs // 2)."
            )

    @property
    def total_steps(self):
        return self.epochs * self.steps_per_epoch

    @property
    def decay_steps(self):
        return self.decay_epochs * self.steps_per_epoch

    def __call__(self, step):
        step = ops.cast(step, "float32")
        remaining = ops.cast(self.total_steps, "float32") - step
        fraction = ops.clip(remaining / float(self.decay_steps), 0.0, 1.0)
        return self.initial_learning_rate * fraction

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "epochs": self.epochs,
            "steps_per_epoch": self.steps_per_epoch,
            "decay_epochs": self.decay_epochs,
        }
