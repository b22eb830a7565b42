"""Test setup: quiet TensorFlow, two logical CPU devices for distribution tests."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# Must happen before TensorFlow initializes its devices: MirroredStrategy tests
# need two devices and this machine has one CPU device.
_cpus = tf.config.list_physical_devices("CPU")
try:
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2
    )
except RuntimeError:  # already initialized by an earlier import
    pass


@pytest.fixture(autouse=True)
def _float32_policy():
    """Each test starts and ends with the float32 policy and a clear session."""
    keras.mixed_precision.set_global_policy("float32")
    yield
    keras.mixed_precision.set_global_policy("float32")
    # Not free_memory=True: its full gc.collect() over a worker's large heap of
    # TensorFlow objects took 0.3-4 s per test, most of the default run's time
    # in teardowns (37 of 64 s for test_data, test_conditional, test_safe_loading).
    # Python's own generational collector still frees cycles as it goes.
    keras.backend.clear_session(free_memory=False)


@pytest.fixture(scope="session")
def two_cpu_strategy():
    """One MirroredStrategy for the session: separate strategies in one process
    can collide on collective-op instance keys."""
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    if len(devices) < 2:
        pytest.fail("conftest could not create two logical CPU devices")
    return tf.distribute.MirroredStrategy(devices[:2])
