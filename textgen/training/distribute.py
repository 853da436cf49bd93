"""Training on several devices or machines with TensorFlow's own strategies.

`--distribute mirrored` copies the model to every local GPU (or, with none,
every logical CPU device) with `tf.distribute.MirroredStrategy`;
`--distribute multi-worker` spans machines with
`tf.distribute.MultiWorkerMirroredStrategy`, configured by the standard
`TF_CONFIG` environment variable. Each step's batch is split across the
replicas and Keras scales the summed loss by the global batch size, so the
update is the one a single device would make.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

from ..errors import TrainingError
from ..model.config import DISTRIBUTE


def make_strategy(name: str) -> Any:
    """The `tf.distribute.Strategy` for `name`, or None for plain training.

    Raises:
        TrainingError: multi-worker without a usable `TF_CONFIG`.
    """
    import tensorflow as tf

    if name == "none":
        return None
    if name == "mirrored":
        devices = tf.config.list_logical_devices(
            "GPU"
        ) or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if name == "multi-worker":
        config = worker_config()
        if not config.get("cluster", {}).get("worker"):
            raise TrainingError(
                "--distribute multi-worker needs TF_CONFIG naming the workers, e.g. "
                'TF_CONFIG=\'{"cluster": {"worker": ["host1:2222", "host2:2222"]}, '
                '"task": {"type": "worker", "index": 0}}\''
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise TrainingError(f"unknown --distribute {name!r}; use one of {DISTRIBUTE}")


def worker_config() -> dict[str, Any]:
    """TF_CONFIG as a dict ({} when unset).

    Raises:
        TrainingError: TF_CONFIG is not JSON.
    """
    raw = os.environ.get("TF_CONFIG", "")
    if not raw.strip():
        return {}
    try:
        config = json.loads(raw)
    except ValueError:
        raise TrainingError(
            "TF_CONFIG is not valid JSON; see docs/training.md"
        ) from None
    return config if isinstance(config, dict) else {}


def is_chief(name: str) -> bool:
    """Whether this process writes the model: always, but for the workers of
    a multi-worker run other than the chief (the "chief" task, or worker 0
    when the cluster names no chief)."""
    if name != "multi-worker":
        return True
    config = worker_config()
    task = config.get("task", {})
    if "chief" in config.get("cluster", {}):
        return task.get("type") == "chief"
    return task.get("type", "worker") == "worker" and int(task.get("index", 0)) == 0


def scope(strategy: Any) -> Any:
    """`strategy.scope()`, or a do-nothing context without a strategy."""
    return strategy.scope() if strategy is not None else contextlib.nullcontext()
