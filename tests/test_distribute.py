"""--distribute: MirroredStrategy over two logical CPU devices matches one
device, and two MultiWorkerMirroredStrategy workers on loopback train a model.

Both run in fresh processes: devices and strategies must be set up before
TensorFlow runs anything, which the test session has long done.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from textgen.errors import TextgenError
from textgen.model.config import TrainConfig

MIRRORED = """
import sys
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2
)
from textgen.model.config import ModelConfig, TrainConfig
from textgen.training.train import train

corpus, folder = sys.argv[1], sys.argv[2]
shape = ModelConfig(layers=1, units=8, embedding_dim=8, dropout=0.0)
weights, losses = {}, {}
for how in ("none", "mirrored"):
    config = TrainConfig(seq_len=8, epochs=2, batch_size=8, seed=3, distribute=how)
    model = train([corpus], f"{folder}/{how}.keras", shape, config, log=print)
    weights[how] = model.get_weights()
    losses[how] = [row["loss"] for row in model.record["history"]]
gap = max(
    float(np.abs(a - b).max())
    for a, b in zip(weights["none"], weights["mirrored"], strict=True)
)
print("losses", *losses["none"], *losses["mirrored"])
print("largest difference", gap)
"""


def _env() -> dict[str, str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "-1"}
    env.pop("TF_CONFIG", None)
    return env


@pytest.mark.slow
def test_mirrored_on_two_devices_matches_one(tmp_path: Path, pattern_file: Path):
    out = subprocess.run(
        [sys.executable, "-c", MIRRORED, str(pattern_file), str(tmp_path)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "2 replicas (mirrored)" in out.stdout
    # The mean loss per word is the same: each replica's loss is scaled by the
    # global batch, not its own half of it.
    single, mirrored = np.split(
        np.array(_after("losses", out.stdout).split(), float), 2
    )
    np.testing.assert_allclose(mirrored, single, rtol=1e-5)
    # The weights agree up to float summation order, which Adam's
    # normalised steps carry along: far below the size of one update.
    assert float(_after("largest difference", out.stdout)) < 3e-3
    assert (tmp_path / "mirrored.keras").exists()


def _after(label: str, text: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(label))[
        len(label) :
    ]


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_two_workers_train_a_model_together(tmp_path: Path, pattern_file: Path):
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    args = ["--units", "4", "--embedding-dim", "4", "--seq-len", "8"]
    args += ["--epochs", "2", "--random-seed", "1", "--no-plot"]
    processes = []
    for index in range(2):
        env = _env()
        env["TF_CONFIG"] = json.dumps(
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        )
        command = [sys.executable, "-m", "textgen", "train", str(pattern_file)]
        command += ["-o", str(tmp_path / f"w{index}.keras"), *args]
        command += ["--distribute", "multi-worker"]
        processes.append(
            subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env=env,
            )
        )
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=300)[0])
    finally:
        for process in processes:
            process.kill()
    assert [p.returncode for p in processes] == [0, 0], outputs
    assert "2 replicas (multi-worker)" in outputs[0]
    assert "epoch   2/2" in outputs[0] and "epoch   2/2" in outputs[1]
    assert "saved" in outputs[0] and "the chief worker saved" in outputs[1]
    assert (tmp_path / "w0.keras").exists() and not (tmp_path / "w1.keras").exists()


def test_multi_worker_settings_are_checked():
    with pytest.raises(TextgenError, match="--max-minutes cannot be used"):
        TrainConfig(distribute="multi-worker", max_minutes=5)
    from textgen.training.distribute import make_strategy

    old = os.environ.pop("TF_CONFIG", None)
    try:
        with pytest.raises(TextgenError, match="needs TF_CONFIG"):
            make_strategy("multi-worker")
    finally:
        if old is not None:
            os.environ["TF_CONFIG"] = old
