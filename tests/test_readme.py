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


def test_the_sampling_and_serving_examples_run_top_to_bottom(tmp_path, monkeypatch):
    """Followed as written: the serving snippet used `tf` without importing it."""
    blocks = _python_blocks("Use")
    load = next(b for b in blocks if 'kgan.zoo.load("dcgan_mnist")' in b)
    serve = next(b for b in blocks if "export_generator" in b)
    monkeypatch.chdir(tmp_path)
    import kgan

    names = {"kgan": kgan}  # what the first snippet imported, and nothing else
    exec(compile(load + serve, str(README), "exec"), names)
    assert names["out"].shape == (8, 28, 28, 1)


def test_the_cli_exports_write_other_folders_than_the_python_ones():
    """`kgan export` refuses an existing folder, which the Python snippets had made."""
    text = README.read_text()
    python = set(re.findall(r'export_(?:generator|tflite)\(gan, "([^"]+)"', text))
    cli = set(re.findall(r"^kgan export \S+ (\S+)", text, flags=re.M))
    assert python and cli and not python & cli


def test_the_measuring_commands_name_log_columns_and_a_folder_of_single_images():
    block = README.read_text().split("## Measuring quality", 1)[1].split("\n## ", 1)[0]
    (evaluated,) = re.findall(r"^kgan evaluate (\S+/) ", block, flags=re.M)
    grids = re.findall(r'SampleGrid\("([^"]+)"\)', README.read_text())
    assert grids and evaluated not in grids  # SampleGrid's sheets are not single images
    eval_every = next(line for line in block.splitlines() if "--eval-every" in line)
    assert "fid" in eval_every and "is_mean" in eval_every and "FCD in log.csv" not in eval_every
    assert "`fid`" in block and "`is_mean`" in block
