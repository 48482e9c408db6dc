"""Which worker this process is, what it may write, and whether XLA is safe under its strategy.

Under MultiWorkerMirroredStrategy every worker runs the same program. Only the chief writes
the files of the model dir (checkpoints, TensorBoard events, result.json, the export); the
others still call every save that runs collective ops (`tf.saved_model.save`), but into a
private folder they delete afterwards, as TensorFlow's multi-worker guide prescribes.
"""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

__all__ = ["WorkerRole", "multi_worker", "strategy_name", "use_xla", "worker_role"]


@dataclass(frozen=True)
class WorkerRole:
    """Attributes:
    chief: this worker writes the model dir's files.
    task_type, task_id: from TF_CONFIG ("worker", 0 for a single-machine run).
    """

    chief: bool = True
    task_type: str = "worker"
    task_id: int = 0

    def private_dir(self, model_dir: str) -> str:
        """Where a non-chief worker puts what it must write but nobody reads."""
        return f"{model_dir.rstrip('/')}/.worker-{self.task_type}-{self.task_id}"


def multi_worker(strategy: tf.distribute.Strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def strategy_name(strategy: tf.distribute.Strategy) -> str:
    """The public name (MultiWorkerMirroredStrategy's class is CollectiveAllReduceStrategy)."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "MultiWorkerMirroredStrategy"
    return type(strategy).__name__


def worker_role(strategy: tf.distribute.Strategy) -> WorkerRole:
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return WorkerRole()
    resolver = strategy.cluster_resolver
    task_type, task_id = resolver.task_type or "worker", int(resolver.task_id or 0)
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    chief = task_type == "chief" or (task_type == "worker" and task_id == 0 and not has_chief)
    return WorkerRole(chief, task_type, task_id)


def use_xla(requested: str, strategy: tf.distribute.Strategy, gpus: int) -> tuple[bool, str]:
    """(XLA on?, why): `auto` turns it on for one GPU; never under a multi-replica strategy.

    Keras compiles the whole train step, whose cross-replica updates read the mirrored
    variables of other devices: with 2 replicas the first step fails ("Trying to access
    resource conv1/kernel/replica_1 ... located in device CPU:1 from device CPU:0"). Keras'
    own `auto` stays off under a strategy for that reason.
    """
    multi = strategy.num_replicas_in_sync > 1 or isinstance(
        strategy, tf.distribute.MultiWorkerMirroredStrategy
    )
    if requested == "off":
        return False, "off (--jit-compile off)"
    if multi:
        return False, f"off (not safe under {strategy_name(strategy)})"
    if requested == "on":
        return True, "on (--jit-compile on)"
    return (True, "on (one GPU)") if gpus else (False, "off (no GPU)")
