"""Train a DCGAN on several machines with `tf.distribute.MultiWorkerMirroredStrategy`.

Start one process per worker. Every process gets the same cluster in
`TF_CONFIG` and its own `task`; the chief (task type "chief", or worker 0 in a
cluster of workers only) saves the model and writes the backup:

    # machine 1 (chief)
    TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]},
                "task": {"type": "worker", "index": 0}}' \\
        python examples/multiworker_dcgan.py --steps 500 --output runs/multiworker
    # machine 2: the same command with "index": 1

(Both on one machine: use 127.0.0.1 with two ports.) Without `TF_CONFIG` it
trains on this machine alone. With `--backup DIR` (a folder every worker sees,
e.g. on a shared disk) the run is backed up after every epoch, and the same
commands resume a cluster that was stopped after its last finished epoch. `--global-batch-size` is split evenly over the
workers; each step all-reduces the gradients, so every worker holds the same
weights after every step.

Input sharding: each worker builds its own pipeline in
`strategy.distribute_datasets_from_function` and keeps every N-th batch
(`dataset.shard(num_input_pipelines, input_pipeline_id)`) of a shuffle seeded
identically on all workers, so workers read disjoint batches of the per-replica
size. A plain `tf.data.Dataset` passed to `fit` would be auto-sharded instead:
the default policy (AUTO) tries to shard by file, and an in-memory dataset
such as `mnist_5k` has none, so tf.data falls back to DATA sharding, in which
every worker still runs the whole pipeline and drops the other workers'
elements (set `options.experimental_distribute.auto_shard_policy =
tf.data.experimental.AutoShardPolicy.DATA` to say so and skip the warning).

Example:

```sh
python examples/multiworker_dcgan.py --steps 20 --filters 8 --output runs/mw_smoke
```
"""

import argparse
import json
import os
from pathlib import Path

import numpy as np
import tensorflow as tf

import kgan


def weights_by_name(gan):
    """The weights that must agree across workers: both networks and both optimizers."""
    # Positional keys: layer variable names repeat across networks (e.g. "kernel").
    arrays = {}
    for prefix, variables in (
        ("generator", gan.generator.weights),
        ("discriminator", gan.discriminator.weights),
        ("g_optimizer", gan.g_optimizer.variables),
        ("d_optimizer", gan.d_optimizer.variables),
    ):
        for i, variable in enumerate(variables):
            arrays[f"{prefix}/{i:03d}/{variable.path}"] = np.asarray(variable.numpy())
    return arrays


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist_5k")
    parser.add_argument("--global-batch-size", type=int, default=64,
                        help="examples per step over all workers (a multiple of the worker count)")
    parser.add_argument("--steps", type=int, default=100, help="train steps per epoch")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--backup", metavar="DIR",
                        help="back up every epoch into DIR (shared by all workers) and resume from it")
    parser.add_argument("--keep-backup", action="store_true",
                        help="keep --backup after training (for checking; it is deleted otherwise)")
    parser.add_argument("--latent-dim", type=int, default=100)
    parser.add_argument("--filters", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps-per-execution", type=int, default=1,
                        help="train steps per call of the compiled step (kgan train uses 10)")
    parser.add_argument("--output", default="runs/multiworker_dcgan",
                        help="the chief saves dcgan.keras here")
    parser.add_argument("--dump-weights", metavar="NPZ",
                        help="write this worker's initial and final weights (for checking)")
    args = parser.parse_args(argv)

    # The strategy must exist before TensorFlow runs anything: it configures the
    # collective ops of this process. It reads the cluster from TF_CONFIG.
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    task = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {})
    # The chief by TensorFlow's rule: task type "chief", or worker 0 of a
    # cluster without one (the index alone made a chief/0 and a worker/0 both save).
    is_chief = strategy.extended.should_checkpoint
    if args.global_batch_size % strategy.num_replicas_in_sync:
        parser.error(f"--global-batch-size must be a multiple of {strategy.num_replicas_in_sync}")

    def dataset_fn(context):
        per_replica = context.get_per_replica_batch_size(args.global_batch_size)
        # The same seed on every worker: the same shuffled order, so the shards
        # below are disjoint. repeat() keeps every worker stepping in lock-step.
        dataset = kgan.data.load(args.dataset, batch_size=per_replica, seed=args.seed)
        return dataset.shard(context.num_input_pipelines, context.input_pipeline_id).repeat()

    image_shape = tuple(kgan.data.load(args.dataset, batch_size=1).element_spec.shape[1:])
    # Variables created in the scope are mirrored; their initial values are
    # broadcast from the chief, so every worker starts from the same weights.
    with strategy.scope():
        gan = kgan.DCGAN.from_image_shape(
            image_shape, latent_dim=args.latent_dim, filters=args.filters, seed=args.seed
        )
        try:
            gan.compile(steps_per_execution=args.steps_per_execution)
        except ValueError as err:  # e.g. several steps per execution on several workers
            parser.error(str(err))
    initial = weights_by_name(gan) if args.dump_weights else None

    distributed = strategy.distribute_datasets_from_function(dataset_fn)
    callbacks = []
    if args.backup:
        # The chief writes it, every worker restores from it (kgan's callback).
        callbacks.append(kgan.callbacks.BackupAndRestore(
            args.backup, delete_checkpoint=not args.keep_backup))
    history = gan.fit(distributed, epochs=args.epochs, steps_per_epoch=args.steps, shuffle=False,
                      verbose=2, callbacks=callbacks)

    if args.dump_weights:
        final = weights_by_name(gan)
        np.savez(args.dump_weights, **{f"initial:{k}": v for k, v in initial.items()},
                 **{f"final:{k}": v for k, v in final.items()})
    # Empty when a resumed run had nothing left to train.
    losses = {k: round(float(v[-1]), 4) for k, v in history.history.items() if v}
    print(f"{task.get('type', 'worker')} {task.get('index', 0)} of "
          f"{strategy.num_replicas_in_sync}: {losses}")
    # Only the chief writes the model (the weights are the same everywhere); the
    # others would race it for the same file on a shared disk.
    if is_chief:
        Path(args.output).mkdir(parents=True, exist_ok=True)
        gan.save(Path(args.output) / "dcgan.keras")
        print(f"saved {Path(args.output) / 'dcgan.keras'}")


if __name__ == "__main__":
    main()
