"""Two-worker `MultiWorkerMirroredStrategy` training on 127.0.0.1.

Runs `examples/multiworker_dcgan.py` as two processes (one per worker, each
with its own `TF_CONFIG`), then checks that both ended with exactly the same
generator, discriminator and optimizer state, and that training moved it.
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "multiworker_dcgan.py"
TIMEOUT_S = 240
#: what a worker prints when its gRPC port was taken between our probe and its bind.
PORT_ERRORS = ("address already in use", "failed to bind", "could not start grpc server")


def free_ports(count):
    """`count` distinct ports that were free a moment ago (the OS picks them)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def launch_workers(tmp_path, args, num_workers=2, chief_job=False):
    """Start one process per worker; returns `[(returncode, log_text)]` per worker.

    With `chief_job`, the first process is task `chief` 0 and the others
    `worker` 0, 1, ... (TensorFlow's other cluster layout).
    """
    addresses = [f"127.0.0.1:{port}" for port in free_ports(num_workers)]
    if chief_job:
        cluster = {"chief": addresses[:1], "worker": addresses[1:]}
        tasks = [("chief", 0)] + [("worker", i) for i in range(num_workers - 1)]
    else:
        cluster = {"worker": addresses}
        tasks = [("worker", i) for i in range(num_workers)]
    processes = []
    for index, (task_type, task_index) in enumerate(tasks):
        env = dict(
            os.environ,
            TF_CPP_MIN_LOG_LEVEL="2",
            CUDA_VISIBLE_DEVICES="",
            # One thread pool each: two workers share this machine's cores.
            TF_NUM_INTEROP_THREADS="1",
            TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": task_type, "index": task_index}}),
        )
        log = open(tmp_path / f"worker{index}.log", "w")
        processes.append((subprocess.Popen(
            [sys.executable, str(EXAMPLE), *args, "--dump-weights", str(tmp_path / f"worker{index}.npz")],
            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
        ), log))
    deadline = time.monotonic() + TIMEOUT_S
    results = []
    try:
        for process, log in processes:
            try:
                process.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
    finally:
        for process, log in processes:
            if process.poll() is None:  # a worker waiting forever for a dead peer
                process.kill()
                process.wait()
            log.close()
    for index, (process, _) in enumerate(processes):
        results.append((process.returncode, (tmp_path / f"worker{index}.log").read_text()))
    return results


def launch_cluster(tmp_path_factory, args, chief_job=False, prepare=None):
    """`launch_workers` in a new folder (`prepare(folder)` first), retried when a port
    was taken between probing and binding."""
    for _ in range(3):
        tmp_path = tmp_path_factory.mktemp("multiworker")
        if prepare is not None:
            prepare(tmp_path)
        results = launch_workers(tmp_path, args, chief_job=chief_job)
        logs = "\n".join(log for _, log in results).lower()
        if all(code == 0 for code, _ in results) or not any(e in logs for e in PORT_ERRORS):
            break
    return tmp_path, results


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Both workers' logs and weight dumps after a few distributed steps."""
    # Two epochs backed up into one folder both workers see (as on a shared disk).
    args = ["--steps", "2", "--epochs", "2", "--global-batch-size", "16", "--filters", "4",
            "--latent-dim", "8", "--output", "chief_out", "--backup", "backup", "--keep-backup"]
    tmp_path, results = launch_cluster(tmp_path_factory, args)
    for index, (code, log) in enumerate(results):
        assert code == 0, f"worker {index} exited with {code}:\n{log[-4000:]}"
    dumps = [dict(np.load(tmp_path / f"worker{i}.npz")) for i in range(2)]
    return tmp_path, [log for _, log in results], dumps


def test_several_steps_per_execution_are_refused_on_several_workers(tmp_path_factory):
    # Keras's multi-step fit loop fails under a multi-worker strategy
    # (keras-team/keras#19246): each worker must stop with kgan's explanation,
    # not with Keras's "You must feed a value for placeholder tensor".
    _, results = launch_cluster(tmp_path_factory, ["--steps", "2", "--global-batch-size", "16",
                                                   "--filters", "4", "--latent-dim", "8",
                                                   "--steps-per-execution", "2"])
    for code, log in results:
        assert code == 2, log[-3000:]
        assert ("steps_per_execution=2 cannot run under a MultiWorkerMirroredStrategy of 2 "
                "replicas") in log and "keras-team/keras#19246" in log
        assert "placeholder" not in log


def test_both_workers_train_in_one_cluster(trained):
    _, logs, _ = trained
    for index, log in enumerate(logs):
        assert f"worker {index} of 2:" in log  # num_replicas_in_sync == 2: one cluster


def test_workers_end_with_identical_weights_and_optimizer_state(trained):
    _, _, (first, second) = trained
    assert first.keys() == second.keys()
    finals = [k for k in first if k.startswith("final:")]
    # Both networks, their batch-norm statistics and both optimizers' slots.
    assert any("moving_mean" in k for k in finals) and any("g_optimizer" in k for k in finals)
    different = [k for k in finals if not np.array_equal(first[k], second[k])]
    assert different == []


def test_training_changed_the_weights(trained):
    _, _, (first, _) = trained
    unchanged = [
        k for k in first
        if k.startswith("final:") and ("generator/" in k or "discriminator/" in k)
        and np.array_equal(first[k], first["initial:" + k[len("final:"):]])
    ]
    assert unchanged == []  # every kernel, bias, BN scale/offset and statistic moved


def test_workers_started_from_the_chiefs_initial_weights(trained):
    _, _, (first, second) = trained
    for key in (k for k in first if k.startswith("initial:")):
        np.testing.assert_array_equal(first[key], second[key])


def test_only_the_chief_saves_the_model(trained):
    tmp_path, logs, _ = trained
    assert (tmp_path / "chief_out" / "dcgan.keras").is_file()
    assert "saved" in logs[0] and "saved" not in logs[1]


def test_the_chief_alone_writes_the_shared_backup(trained):
    # Both workers wrote it and deleted each other's temporary files: both
    # crashed after the first epoch.
    tmp_path, _, _ = trained
    backup = tmp_path / "backup"
    assert json.loads((backup / "training_metadata.json").read_text())["epoch"] == 2
    names = sorted(p.name for p in backup.iterdir())
    assert len(names) == 2 and names[0].startswith("ckpt-000002-") and names[1] == "training_metadata.json"


def test_a_cluster_with_a_chief_task_resumes_from_the_shared_backup(trained, tmp_path_factory):
    # The other TF_CONFIG layout: task "chief" 0 and "worker" 0. Both saved
    # the model when the example took index 0 for the chief.
    import shutil

    backup = trained[0] / "backup"
    args = ["--steps", "2", "--epochs", "3", "--global-batch-size", "16", "--filters", "4",
            "--latent-dim", "8", "--output", "chief_out", "--backup", "backup"]
    tmp_path, results = launch_cluster(
        tmp_path_factory, args, chief_job=True,
        prepare=lambda folder: shutil.copytree(backup, folder / "backup"))
    for index, (code, log) in enumerate(results):
        assert code == 0, f"process {index} exited with {code}:\n{log[-4000:]}"
    (_, chief_log), (_, worker_log) = results
    assert "chief 0 of 2:" in chief_log and "saved" in chief_log
    assert "worker 0 of 2:" in worker_log and "saved" not in worker_log
    dumps = [dict(np.load(tmp_path / f"worker{i}.npz")) for i in range(2)]
    for dump in dumps:  # both restored the 2 backed-up epochs: 4 steps, then 2 more
        iterations = [v for k, v in dump.items() if k.startswith("initial:g_optimizer")
                      and k.endswith("iteration")]
        finals = [v for k, v in dump.items() if k.startswith("final:g_optimizer")
                  and k.endswith("iteration")]
        assert [int(v) for v in iterations + finals] == [0, 6]
    finals = [k for k in dumps[0] if k.startswith("final:")]
    assert [k for k in finals if not np.array_equal(dumps[0][k], dumps[1][k])] == []
    assert not (tmp_path / "backup").exists()  # the chief deleted it at the end


# ---------------------------------------------------------------- in one process
@pytest.mark.parametrize("sync", [True, pytest.param(False, marks=pytest.mark.slow)])
def test_replicas_agree_on_batchnorm_statistics(two_cpu_strategy, monkeypatch, sync):
    # Keras 3 moving statistics have aggregation "none": each replica updates its
    # own copy. GAN.sync_batchnorm_statistics averages them at every step.
    import tensorflow as tf

    from kgan.models import GAN
    from kgan_test_utils import batchnorm_copies, tiny_dcgan

    if not sync:  # the control: without it the copies drift apart
        monkeypatch.setattr(GAN, "sync_batchnorm_statistics", lambda self: None)
    with two_cpu_strategy.scope():
        model = tiny_dcgan()
        model.compile()
    images = np.random.default_rng(0).uniform(-1, 1, (32, 16, 16, 1)).astype("float32")
    model.fit(tf.data.Dataset.from_tensor_slices(images).batch(8, drop_remainder=True),
              epochs=1, verbose=0)
    copies = batchnorm_copies(model)
    assert copies and all(len(c) == 2 for c in copies)
    agree = [np.allclose(first, second, rtol=0, atol=1e-7) for first, second in copies]
    assert all(agree) if sync else not any(agree)
