"""Helpers shared by test modules (importable because tests/ is on sys.path)."""

import errno
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from kgan.models import DCGAN

#: metadata fields a test preset needs besides what save_preset derives.
TINY_METADATA = {
    "name": "tiny",
    "description": "a tiny test preset",
    "dataset": "random",
    "recipe": "pytest",
    "license": "Apache-2.0",
    "metrics": {"example": 1.0},
}


def slow_except(values, default_run):
    """Parameters for `pytest.mark.parametrize`: those in `default_run` run by
    default, the others only with `-m slow`. A tuple is one case of several
    arguments (`parametrize("a, b", ...)`).

    For checks whose cost is mostly compilation or a subprocess, where the
    cases left out share their code path with one kept (the reason belongs in
    a comment at the call).

    Example:
        @pytest.mark.parametrize("arch", slow_except(ARCHITECTURES, {"dcgan"}))
    """
    unknown = set(default_run) - set(values)
    if unknown:
        raise ValueError(f"slow_except: {sorted(unknown)} are not among {list(values)}")
    def slow(value):
        return pytest.param(*value if isinstance(value, tuple) else (value,), marks=pytest.mark.slow)

    return [v if v in default_run else slow(v) for v in values]


#: Python source that gives a fresh process two logical CPU devices, the way a
#: machine with two GPUs has two, before anything else initializes TensorFlow.
#: For subprocesses: a pytest worker already holds conftest's MirroredStrategy,
#: and a second strategy in one process can collide on collective keys.
TWO_CPU_DEVICES_PRELUDE = (
    "import tensorflow as tf\n"
    "cpu = tf.config.list_physical_devices('CPU')[0]\n"
    "tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)\n"
)


def spread_weights(model, seed=0, network=None):
    """Redraw the generator's kernels at unit scale (in place) and return the model.

    A freshly initialized DCGAN (N(0, 0.02) kernels) outputs images within
    about 1e-3 of zero, which would make tolerances and uint8 comparisons
    meaningless; these weights give images spread over [-1, 1]. `network`
    redraws another of the model's networks instead (its `sampling_generator`).
    """
    rng = np.random.default_rng(seed)
    for variable in (network or model.generator).trainable_variables:
        if len(variable.shape) > 1:
            std = 1.0 / np.sqrt(np.prod(variable.shape[:-1]))
            variable.assign(rng.normal(0.0, std, variable.shape).astype("float32"))
    return model


def batchnorm_copies(model):
    """Per-replica values of every BatchNormalization moving statistic of a model
    built under a `tf.distribute` strategy: one list of arrays per statistic."""
    return [
        [np.asarray(copy) for copy in variable.value.values]
        for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)
        for variable in (layer.moving_mean, layer.moving_variance)
    ]


def record_inputs(layer):
    """Wrap `layer.call` (in place) to record what it is called on; return the list.

    Each call appends its inputs as numpy arrays (a list for a list of
    inputs). Concrete values only: compile the model with run_eagerly=True.
    """
    calls, call = [], layer.call

    def recording(inputs, *args, **kwargs):
        calls.append(tf.nest.map_structure(np.array, inputs))
        return call(inputs, *args, **kwargs)

    object.__setattr__(layer, "call", recording)
    return calls


def tiny_dcgan(image_shape=(16, 16, 1), latent_dim=8, seed=0, spread=False, **kwargs):
    """A DCGAN small enough for unit tests."""
    model = DCGAN.from_image_shape(image_shape, latent_dim=latent_dim, filters=4, seed=seed, **kwargs)
    return spread_weights(model, seed) if spread else model


def fill_the_disk_halfway_through_writes(monkeypatch):
    """Make `Path.write_text` write the first few characters, then fail as a full disk does.

    What a report written in place would leave behind: a truncated file.
    """
    real_write_text = Path.write_text

    def disk_full(path, text, *args, **kwargs):
        real_write_text(path, text[:10], *args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(Path, "write_text", disk_full)


#: the kinds of output path `unwritable_output` makes.
UNWRITABLE_OUTPUTS = ("folder", "under_a_file")


def unwritable_output(tmp_path, kind):
    """`(path, what the error says)` for an output path no file can be written to.

    `"folder"` is `tmp_path` itself; `"under_a_file"` a name inside the file
    `tmp_path/afile`, which this creates. A test that nothing was written
    checks that `tmp_path` holds `afile` alone.
    """
    (tmp_path / "afile").write_text("")
    if kind == "folder":
        return tmp_path, "it is a folder"
    return tmp_path / "afile" / "report.json", "afile is a file"


def the_one_line_error(capsys, prefix):
    """What a command printed to stderr, checked to be one line starting with `prefix`."""
    err = capsys.readouterr().err.strip()
    assert err.startswith(prefix) and len(err.splitlines()) == 1, err
    return err


class BatchSequence(keras.utils.PyDataset):
    """A `keras.utils.PyDataset` of the given batches (tuples, as Keras wants), in order."""

    def __init__(self, batches):
        super().__init__()
        self.batches = list(batches)

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, index):
        return self.batches[index]
