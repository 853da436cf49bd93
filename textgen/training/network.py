"""The network stage of `train`: a new network built (pretrained vectors,
the budget's plan, the size check) or a resumed one made ready, and
compiled the way textgen trains (`compile_model`)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from ..errors import TrainingError
from ..model.config import ModelConfig, TrainConfig
from .embeddings import read_vectors
from .reading import TrainingText
from .sizing import Measure, plan_training


@dataclass(frozen=True)
class Network:
    """The network to fit, and what chose its shape."""

    model: Any  # the Keras `LanguageModel`
    model_config: ModelConfig
    config: TrainConfig  # with what the budget's plan chose
    plan: Any = None  # `sizing.Plan` of a budget, if any
    vectors: Any = None  # pretrained word vectors, if any
    planning_seconds: float = 0.0  # timing candidate sizes' steps


def compile_model(model: Any, config: TrainConfig, steps_per_epoch: int) -> None:
    """Adam with clipping and (with `config.average`) a moving average of the
    weights over about the last epoch's steps; cross-entropy on logits.

    On a CPU the step is compiled with XLA (Keras leaves it off there): it
    fuses each time step's gate arithmetic into one kernel, 2-3x faster at
    the default size (benchmarks/step.py). Not on a GPU, where cuDNN runs the
    recurrent layers and cannot be compiled, nor under a distribution strategy.
    """
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(
            learning_rate=config.learning_rate,
            clipnorm=config.clipnorm or None,
            use_ema=config.average,
            ema_momentum=min(max(1 - 1 / steps_per_epoch, 0.9), 0.999),
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=use_xla(model.model_config, config),
    )


# XLA takes seconds to compile a step; below this size a whole training run
# is over in about that time, so it is left off (tests lower it to cover XLA).
XLA_MIN_PARAMETERS = 200_000


def use_xla(model_config: ModelConfig, config: TrainConfig) -> bool:
    """Whether `train` compiles its step with XLA (see `compile_model`)."""
    from ..model.cells import on_gpu

    return (
        config.distribute == "none"
        and model_config.parameter_count() >= XLA_MIN_PARAMETERS
        and not on_gpu()
    )


def check_trainable_size(config: ModelConfig) -> None:
    """Refuse, before building it, a network this machine cannot train.

    Training holds each weight about six times (the weights, Adam's two
    moments, the average, the gradient, the best epoch's copy), 4 bytes each.

    Raises:
        TrainingError: the network needs more memory than the machine has,
            or one of its matrices is too big for TensorFlow.
    """
    parameters = config.parameter_count()
    largest = config.largest_matrix()
    fix = "lower --units, --embedding-dim, --layers or --max-vocab"
    if largest >= 2**31:
        raise TrainingError(
            f"one matrix of this network would have {largest:,} entries, more "
            f"than TensorFlow handles (2,147,483,647); {fix}"
        )
    need, memory = parameters * 4 * 6, _physical_memory()
    if memory and need > memory:
        raise TrainingError(
            f"a network of {parameters:,} parameters needs about "
            f"{need / 2**30:,.1f} GiB to train, more than this machine's "
            f"{memory / 2**30:,.1f} GiB; {fix}"
        )


def _physical_memory() -> int:
    """Bytes of memory in the machine (0 when it cannot be told)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 0


def build_network(
    text: TrainingText,
    model_config: ModelConfig,
    config: TrainConfig,
    planned: Collection[str],
    *,
    seed: int,
    strategy: Any,
    steps_per_epoch: int,
    reserved_seconds: float,
    measure: Measure,
    log: Callable[[str], None],
) -> Network:
    """A new network: pretrained vectors, the budget's plan, the size check."""
    import keras

    from ..model.network import build_model
    from .distribute import scope

    vocabulary, vectors = text.vocabulary, None
    if config.pretrained_embeddings:
        vectors = read_vectors(config.pretrained_embeddings, vocabulary)
        if vectors.dimension != model_config.embedding_dim:
            log(f"embedding size set to {vectors.dimension}, the vectors' size")
            model_config = dataclasses.replace(
                model_config, embedding_dim=vectors.dimension
            )
        log(
            f"pretrained vectors for {vectors.covered.sum():,} of "
            f"{len(vocabulary) - 2:,} words ({vectors.covered[2:].mean():.0%})"
        )
    keras.utils.set_random_seed(seed)
    model_config = dataclasses.replace(model_config, vocab_size=len(vocabulary))
    plan = plan_training(
        model_config,
        config,
        text.n_train,
        planned,
        reserved_seconds=reserved_seconds,
        measure=measure,
    )
    planning_seconds = 0.0
    if plan is not None:
        model_config, config = plan.model_config, plan.config
        planning_seconds = plan.measuring_seconds
        log(plan.describe(text.unit))
        keras.utils.set_random_seed(seed)  # as if nothing had been measured
    check_trainable_size(model_config)
    with scope(strategy):
        model = build_model(
            model_config,
            vocabulary,
            text.tokenizer,
            frozen_embeddings=config.freeze_embeddings,
        )
        if vectors is not None:
            covered = vectors.covered
            start = model.embedding.embeddings.numpy().copy()
            start[covered] = vectors.matrix[covered]
            model.embedding.embeddings.assign(start)
        compile_model(model, config, steps_per_epoch)
    return Network(model, model_config, config, plan, vectors, planning_seconds)


def grown_network(
    base: Any,
    name: str,
    text: TrainingText,
    config: TrainConfig,
    *,
    seed: int,
    strategy: Any,
    steps_per_epoch: int,
    log: Callable[[str], None],
) -> Network:
    """A network started from `base` (`train --init-from`): its shape and
    weights, its vocabulary grown to `text.vocabulary` (the base's words
    first, keeping their ids): a new word's embedding row (and, untied, its
    output column and bias) starts as the mean of the known words'."""
    import keras
    import numpy as np

    from ..model.network import build_model
    from .distribute import scope

    keras.utils.set_random_seed(seed)
    known, size = len(base.vocabulary), len(text.vocabulary)
    model_config = dataclasses.replace(base.model_config, vocab_size=size)
    check_trainable_size(model_config)
    with scope(strategy):
        model = build_model(
            model_config,
            text.vocabulary,
            text.tokenizer,
            frozen_embeddings=config.freeze_embeddings,
        )
        for new, old in zip(model.weights, base.weights, strict=True):
            value = old.numpy()
            if tuple(new.shape) != value.shape:  # the vocabulary's axis grew
                axis = next(
                    a
                    for a, n in enumerate(new.shape)
                    if n == size and value.shape[a] == known
                )
                known_rows = np.take(value, np.arange(2, known), axis=axis)
                mean = known_rows.mean(axis=axis, keepdims=True)
                value = np.concatenate(
                    [value, np.repeat(mean, size - known, axis=axis)], axis=axis
                )
            new.assign(value)
        compile_model(model, config, steps_per_epoch)
    log(
        f"started from {name}: {known:,} words known, "
        f"{size - known:,} new (each starting as the known words' mean)"
    )
    return Network(model, model_config, config)


def resume_network(
    model: Any,
    config: TrainConfig,
    *,
    seed: int,
    strategy: Any,
    steps_per_epoch: int,
    log: Callable[[str], None],
) -> Network:
    """The resumed network, with a fresh optimizer where it has none (or
    what it trains changed)."""
    import keras

    from .distribute import scope

    keras.utils.set_random_seed(seed)
    # The saved choice was made for another machine, perhaps.
    model.jit_compile = use_xla(model.model_config, config)
    fresh = ""
    if getattr(model, "optimizer", None) is None:
        fresh = "it is a lean model, saved without the optimizer's state"
    elif model.frozen_embeddings != config.freeze_embeddings:
        fresh = "--freeze-embeddings changed what is trained"
    if fresh:
        log(
            f"starting a fresh optimizer: {fresh} (for an exact continuation, "
            "resume from the .last.keras checkpoint of --checkpoint-every)"
        )
        with scope(strategy):
            model.frozen_embeddings = config.freeze_embeddings
            model.embedding.trainable = not config.freeze_embeddings
            compile_model(model, config, steps_per_epoch)
    elif config.lr_schedule == "constant":  # plateau goes on from the saved rate
        model.optimizer.learning_rate = config.learning_rate
    return Network(model, model.model_config, config)
