"""README.md's Python examples run as written (with training cut to a step)."""

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parent.parent / "README.md"


def _python_blocks(section_title):
    text = README.read_text()
    start = text.index(f"## {section_title}")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start:end], flags=re.S)


def test_the_augmentation_example_runs():
    (code,) = _python_blocks("Enlarging a small labelled dataset")
    # The same calls, a few seconds' worth of them.
    shortened = (code.replace("epochs=300, steps_per_epoch=7", "epochs=1, steps_per_epoch=1")
                 .replace("num_per_class=500", "num_per_class=7"))
    assert shortened != code
    names = {}
    exec(compile(shortened, str(README), "exec"), names)
    assert names["threes"].shape == (16, 28, 28, 1)
    images, labels = next(iter(names["mixed"]))
    assert images.shape == (64, 28, 28, 1) and images.dtype == "float32"
    assert set(np.unique(labels.numpy())) <= set(range(10))


def test_the_distributed_training_example_runs(two_cpu_strategy):
    """The example on the session's two-replica strategy: a second strategy in
    one process collides with it on collective keys (see conftest)."""
    (code,) = _python_blocks("Several GPUs, machines or TPUs")
    shortened = (code.replace("epochs=20", "epochs=1")
                 .replace('"mnist_5k", batch_size', '"mnist_5k", split="train[:5%]", batch_size')
                 .replace("tf.distribute.MirroredStrategy()", "two_cpu_strategy"))
    assert shortened.count("epochs=1") == 1 and "train[:5%]" in shortened
    assert "strategy = two_cpu_strategy" in shortened
    import kgan

    names = {"kgan": kgan, "two_cpu_strategy": two_cpu_strategy}
    exec(compile(shortened, str(README), "exec"), names)
    gan = names["gan"]
    assert gan.distribute_strategy is two_cpu_strategy and two_cpu_strategy.num_replicas_in_sync == 2
    assert int(gan.g_optimizer.iterations.numpy()) > 0
