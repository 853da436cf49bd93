"""Pictures of training: learning curves of perplexity per epoch.

matplotlib is an optional extra (`pip install 'textgen[plot]'`); without it
textgen trains as usual and says how to get the pictures.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import TextgenError
from ..outputs import atomic_write

INSTALL_HINT = "install it with: pip install 'textgen[plot]'"


def matplotlib_available() -> bool:
    """Whether matplotlib can be imported (without importing it)."""
    try:
        return importlib.util.find_spec("matplotlib") is not None
    except ValueError:  # a stub module without a spec, as in some tests
        return False


def require_matplotlib() -> None:
    """Raise a one-line error with the install command if matplotlib is missing."""
    if not matplotlib_available():
        raise TextgenError(f"pictures need matplotlib; {INSTALL_HINT}")


def _axes() -> tuple[Any, Any, Any]:
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")  # no screen needed
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    return plt, figure, axes


def _save(plt: Any, figure: Any, axes: Any, path: str | Path, title: str) -> Path:
    axes.set_yscale("log")
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    path = Path(path)
    try:
        # Written whole or not at all, like models.
        return atomic_write(path, lambda temporary: figure.savefig(temporary, dpi=100))
    finally:
        plt.close(figure)


def plot_learning_curves(
    histories: Mapping[str, Sequence[Mapping[str, Any]]],
    path: str | Path,
    title: str = "",
) -> Path:
    """Draw train (dashed) and validation (solid) perplexity per epoch.

    Args:
        histories: per label (a model or cell name), the training record's
            `history` rows.
        path: the PNG file to write.
        title: shown above the plot.
    """
    plt, figure, axes = _axes()
    for index, (label, history) in enumerate(histories.items()):
        color = f"C{index}"
        epochs = [row["epoch"] for row in history]
        if any("val_perplexity" in row for row in history):
            validation = [row.get("val_perplexity") for row in history]
            axes.plot(
                epochs, validation, color=color, marker="o", label=f"{label} validation"
            )
        training = [row["perplexity"] for row in history]
        axes.plot(epochs, training, color=color, linestyle="--", label=f"{label} train")
    axes.set_xlabel("epoch")
    axes.set_ylabel("perplexity (log scale)")
    return _save(plt, figure, axes, path, title)


def plot_gradient_decay(
    curves: Mapping[str, Sequence[float]], path: str | Path, title: str = ""
) -> Path:
    """Draw relative gradient norm against distance back, one line per cell."""
    plt, figure, axes = _axes()
    for label, curve in curves.items():
        axes.plot(range(len(curve)), curve, label=label)
    axes.set_xlabel("distance back (words)")
    axes.set_ylabel("gradient norm, relative to the last word")
    return _save(plt, figure, axes, path, title)
