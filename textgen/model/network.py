"""The language model and its `.keras` file: `ModelConfig`, `build_model()`,
`LanguageModel` (which carries its vocabulary, tokenizer settings and training
record), and atomic save / checked load.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import keras
import numpy as np

from ..errors import ModelFileError
from ..outputs import atomic_write
from ..text.tokens import END, TokenizerSettings
from ..text.vocab import Vocabulary
from .config import CELLS, ModelConfig  # noqa: F401  (re-exported)
from .file import read_model
from .ngram import (
    ASSET,
    MAX_TABLE_BYTES,
    Mixture,
    Residual,
    memory_from_bytes,
    write_arrays,
)

# Residual training's loss also counts this share of the network's own
# cross-entropy (its logits without the memory's). A network whose output
# starts near zero on top of a strong prior can sit at the prior's loss for
# many epochs before it finds its first correction: *Pride and Prejudice*'s
# characters at 3 minutes stayed at the 7-gram's 1.206 nats for a whole run
# on one seed of three. The small pull toward predicting on its own gives
# the gradient somewhere to go from step 0 (docs/benchmarks.md, "The
# plateau"); 0.2 was too much (the model then gives up part of what the
# memory knows).
NETWORK_ALONE_SHARE = 0.05


def _recurrent_layer(config: ModelConfig, index: int) -> keras.layers.Layer:
    name = f"{config.cell}_{index}"
    # Imported here: `cells` imports Keras, whose import hook loads this module.
    from .cells import GRU, PeepholeLSTM, PeepholeLSTMCell, SequenceLSTM, SimpleRNN

    if config.cell == "peephole":
        cell = PeepholeLSTMCell(config.units, name=f"{name}_cell")
        return PeepholeLSTM(cell, return_sequences=True, return_state=True, name=name)
    # Default activations, no recurrent_dropout, unroll=False, use_bias=True:
    # the configuration Keras runs with the fused cuDNN kernels on a GPU (and
    # `SequenceLSTM` with its own few-large-products loop on a CPU).
    layer_class = {
        "lstm": SequenceLSTM,
        "gru": GRU,
        "rnn": SimpleRNN,
    }[config.cell]
    return layer_class(
        config.units,
        return_sequences=True,
        return_state=True,
        name=name,
    )


@keras.saving.register_keras_serializable(package="textgen")
class LanguageModel(keras.Model):
    """Embedding -> recurrent layers -> Dense logits over the vocabulary.

    Besides the weights it carries everything generation needs: `vocabulary`,
    `tokenizer_settings`, `model_config` and the training `record`, all saved
    in the one `.keras` file.
    """

    def __init__(
        self,
        model_config: dict[str, Any],
        vocabulary: dict[str, Any],
        tokenizer: dict[str, Any] | None = None,
        record: dict[str, Any] | None = None,
        frozen_embeddings: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_config = ModelConfig(**model_config)
        self.vocabulary = Vocabulary.from_config(vocabulary)
        self.tokenizer_settings = TokenizerSettings(**(tokenizer or {}))
        # A JSON string, so Keras's attribute tracking leaves it alone.
        self._record_json = json.dumps(record or {})
        config = self.model_config
        self.embedding = keras.layers.Embedding(
            config.vocab_size, config.embedding_dim, name="embedding"
        )
        # Saved, so a resumed model has the trainable variables (and so the
        # optimizer slots) it was trained with.
        self.frozen_embeddings = frozen_embeddings
        self.embedding.trainable = not frozen_embeddings
        self.recurrent_layers = [
            _recurrent_layer(config, i) for i in range(config.layers)
        ]
        self.dropout = keras.layers.Dropout(config.dropout, name="dropout")
        self.logits = self.projection = None
        if not config.tied:
            self.logits = keras.layers.Dense(config.vocab_size, name="logits")
        elif config.units != config.embedding_dim:
            # Tied output: map the hidden state to the embedding width first.
            self.projection = keras.layers.Dense(
                config.embedding_dim, use_bias=False, name="projection"
            )

    # The n-gram memory mixed with the network (`ngram.Mixture`), or None (a
    # model trained before it existed, or with --ngram-order 0). It travels
    # in the file as an asset: Keras calls `save_assets` and `load_assets`.
    mixture: Mixture | Residual | None = None

    def save_assets(self, dir_path: str) -> None:
        if self.mixture is not None:
            write_arrays(str(Path(dir_path) / ASSET), self.mixture.to_arrays())

    def load_assets(self, dir_path: str) -> None:
        path = Path(dir_path) / ASSET
        if path.exists():
            if path.stat().st_size > MAX_TABLE_BYTES:
                raise ValueError("its n-gram tables are larger than any can be")
            self.mixture = memory_from_bytes(
                path.read_bytes(), self.model_config.vocab_size
            )

    @property
    def record(self) -> dict[str, Any]:
        """The training record: corpora, token counts, epochs, perplexities, ..."""
        return json.loads(self._record_json)

    @record.setter
    def record(self, value: dict[str, Any]) -> None:
        self._record_json = json.dumps(value)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        batch, steps = input_shape[0], input_shape[1]
        self.embedding.build((batch, steps))
        width = self.model_config.embedding_dim
        for layer in self.recurrent_layers:
            layer.build((batch, steps, width))
            width = self.model_config.units
        if self.logits is not None:
            self.logits.build((batch, steps, width))
        else:
            if self.projection is not None:
                self.projection.build((batch, steps, width))
            self.output_bias = self.add_weight(
                shape=(self.model_config.vocab_size,),
                initializer="zeros",
                name="output_bias",
            )
        self.built = True

    def call(self, ids: Any, training: bool = False) -> Any:
        """Logits (batch, seq_len, vocab_size) for ids (batch, seq_len)."""
        logits, _ = self.forward(ids, None, training=training)
        return logits

    def forward(
        self, ids: Any, states: list[list[Any]] | None, training: bool = False
    ) -> tuple[Any, list[list[Any]]]:
        """Run ids from the given recurrent states (None: zeros).

        Returns the logits (batch, steps, vocab_size) and each layer's final
        states, to carry into the next call.
        """
        return self.forward_embedded(
            self.embedding(ids), states, training, keep=self.item_resets(ids)
        )

    def item_resets(self, ids: Any) -> Any:
        """For an item model, 0 at each end token of ids (batch, steps) and 1
        elsewhere: the recurrent states are zeroed before an end token, so
        each item is read from zero states as generation and evaluation read
        it, however the items are packed into windows. None otherwise."""
        if not self.tokenizer_settings.items or END not in self.vocabulary.word_to_id:
            return None
        end = self.vocabulary.word_to_id[END]
        return keras.ops.cast(keras.ops.not_equal(ids, end), "float32")

    def forward_embedded(
        self,
        x: Any,
        states: list[list[Any]] | None,
        training: bool = False,
        keep: Any = None,
    ) -> tuple[Any, list[list[Any]]]:
        """`forward` from word vectors (batch, steps, embedding_dim) instead of
        ids; `keep`: see `item_resets`."""
        new_states = []
        for i, layer in enumerate(self.recurrent_layers):
            x = self.dropout(x, training=training)  # on each layer's input
            outputs = layer(
                x,
                initial_state=None if states is None else states[i],
                training=training,
                **({} if keep is None else {"keep": keep}),
            )
            x = outputs[0]  # (batch, steps, units)
            new_states.append(list(outputs[1:]))
        x = self.dropout(x, training=training)
        return self.output_logits(x), new_states

    def output_logits(self, x: Any) -> Any:
        """Logits over the vocabulary from the last layer's outputs."""
        if self.logits is not None:
            return self.logits(x)
        if self.projection is not None:
            x = self.projection(x)  # (batch, steps, embedding_dim)
        embeddings = keras.ops.transpose(self.embedding.embeddings)
        return keras.ops.matmul(x, embeddings) + self.output_bias

    def named_weights(self) -> dict[str, np.ndarray]:
        """Every weight as a NumPy array, named as in `ModelConfig.weight_shapes`
        (what `Decoder` and the model file reader use)."""
        weights = {"embedding": self.embedding.embeddings}
        for i, layer in enumerate(self.recurrent_layers):
            for name in self.model_config.cell_spec.weights:
                weights[f"layer{i}.{name}"] = getattr(layer.cell, name)
        if self.logits is not None:
            weights["logits.kernel"] = self.logits.kernel
            weights["logits.bias"] = self.logits.bias
        else:
            if self.projection is not None:
                weights["projection.kernel"] = self.projection.kernel
            weights["output_bias"] = self.output_bias
        return {
            name: keras.ops.convert_to_numpy(value) for name, value in weights.items()
        }

    def _maybe_symbolic_build(self, iterator: Any = None, data_batch: Any = None):
        # Under a distribution strategy Keras builds the loss from one batch
        # averaged across replicas, and that average fails for a batch of
        # integer ids under MultiWorkerMirroredStrategy (keras-team/keras#20585).
        # The batch only lends its shapes and types, which are known here.
        if self._distribute_strategy is None:
            return super()._maybe_symbolic_build(iterator, data_batch)
        ids = keras.KerasTensor((None, None), "int32")
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=(ids, ids))

    def carry_states(
        self, rows: int | None, validation_rows: int | None = None
    ) -> None:
        """Train (and validate) on `data.make_stream_dataset` batches of `rows`
        (`validation_rows`), carrying each row's recurrent states from one
        batch into the next; None: independent windows, each from zero states
        (the default)."""
        self._carried = None if rows is None else CarriedStates(self, rows)
        self._carried_validation = (
            None if validation_rows is None else CarriedStates(self, validation_rows)
        )

    def train_step(self, data: Any) -> dict[str, Any]:
        carried = getattr(self, "_carried", None)
        if carried is None:
            return self._per_replica_logs(super().train_step(data))
        import tensorflow as tf

        (ids, reset), labels = data
        with tf.GradientTape() as tape:
            logits, states = self.forward(ids, carried.start(reset), training=True)
            loss = self._compute_loss(x=ids, y=labels, y_pred=logits, training=True)
            self._loss_tracker.update_state(loss, sample_weight=tf.shape(ids)[0])
            loss = self.optimizer.scale_loss(loss)
        weights = self.trainable_weights
        gradients = tape.gradient(loss, weights)
        self.optimizer.apply_gradients(zip(gradients, weights, strict=True))
        carried.keep(states)
        return self.compute_metrics(ids, labels, logits)

    def test_step(self, data: Any) -> dict[str, Any]:
        carried = getattr(self, "_carried_validation", None)
        if carried is None:
            return self._per_replica_logs(super().test_step(data))
        import tensorflow as tf

        (ids, reset), labels = data
        logits, states = self.forward(ids, carried.start(reset), training=False)
        loss = self._compute_loss(x=ids, y=labels, y_pred=logits, training=False)
        self._loss_tracker.update_state(loss, sample_weight=tf.shape(ids)[0])
        carried.keep(states)
        return self.compute_metrics(ids, labels, logits)

    def compute_loss(
        self,
        x: Any = None,
        y: Any = None,
        y_pred: Any = None,
        sample_weight: Any = None,
        training: bool = True,
    ) -> Any:
        """Cross-entropy of the logits, or with residual training (labels
        that come with the n-gram memory's log-probabilities, see
        `data.make_dataset`) of the logits plus those: the network learns
        only what the memory gets wrong. While training, a residual model
        also pays `NETWORK_ALONE_SHARE` of its network's own cross-entropy
        (see there); validation and evaluation score the model alone."""
        if not isinstance(y, tuple | list):
            return super().compute_loss(
                x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training
            )
        y, prior = y
        loss = super().compute_loss(
            x=x,
            y=y,
            y_pred=y_pred + prior,
            sample_weight=sample_weight,
            training=training,
        )
        if not training or not NETWORK_ALONE_SHARE:
            return loss
        alone = keras.losses.sparse_categorical_crossentropy(
            y, y_pred, from_logits=True
        )
        return loss + NETWORK_ALONE_SHARE * keras.ops.mean(alone)

    def _per_replica_logs(self, logs: dict[str, Any]) -> dict[str, Any]:
        # Keras averages each step's logs across MultiWorkerMirroredStrategy
        # workers along axis 0, which a scalar loss lacks; give it one.
        import tensorflow as tf

        strategy = self._distribute_strategy
        if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            return {name: tf.reshape(value, [1]) for name, value in logs.items()}
        return logs

    def get_config(self) -> dict[str, Any]:
        return {
            "model_config": dataclasses.asdict(self.model_config),
            "vocabulary": self.vocabulary.get_config(),
            "tokenizer": dataclasses.asdict(self.tokenizer_settings),
            "record": self.record,
            "frozen_embeddings": self.frozen_embeddings,
            "name": self.name,
        }


class CarriedStates:
    """The recurrent states carried between training batches: one variable
    per layer and state, (rows, units). Held outside Keras's tracking (a plain
    object), so they are never saved in the model file; every epoch starts
    them afresh (its first batch resets every row)."""

    def __init__(self, model: LanguageModel, rows: int) -> None:
        import tensorflow as tf

        units = model.model_config.units
        per_layer = model.model_config.cell_spec.states
        self.variables = [
            [
                tf.Variable(tf.zeros((rows, units)), trainable=False)
                for _ in range(per_layer)
            ]
            for _ in model.recurrent_layers
        ]

    def start(self, reset: Any) -> list[list[Any]]:
        """The states to start a batch from: zero where `reset` (rows,) is set."""
        import tensorflow as tf

        keep = 1.0 - tf.cast(reset, tf.float32)[:, None]
        return [[v * keep for v in layer] for layer in self.variables]

    def keep(self, states: list[list[Any]]) -> None:
        """Store a batch's final states for the next batch (no gradient flows
        back through them: truncated back-propagation)."""
        import tensorflow as tf

        for variables, values in zip(self.variables, states, strict=True):
            for variable, value in zip(variables, values, strict=True):
                variable.assign(tf.stop_gradient(value))


def build_model(
    config: ModelConfig,
    vocabulary: Vocabulary,
    tokenizer: TokenizerSettings = TokenizerSettings(),
    record: dict[str, Any] | None = None,
    frozen_embeddings: bool = False,
) -> LanguageModel:
    """Create an untrained, built model.

    Args:
        config: network shape; `config.vocab_size` must equal `len(vocabulary)`.
        vocabulary: the word <-> id mapping the model predicts over.
        tokenizer: how text was split into words.
        record: training facts to carry in the saved file.
        frozen_embeddings: the word vectors are not trained.
    """
    assert config.vocab_size == len(vocabulary), "config and vocabulary disagree"
    model = LanguageModel(
        model_config=dataclasses.asdict(config),
        vocabulary=vocabulary.get_config(),
        tokenizer=dataclasses.asdict(tokenizer),
        record=record,
        frozen_embeddings=frozen_embeddings,
        name="textgen_language_model",
    )
    model.build((None, None))
    return model


def lean_copy(model: LanguageModel) -> LanguageModel:
    """The model with its weights and metadata only: no optimizer state (Adam's
    two moments and the weight average, three times the weights), which
    generation never reads."""
    copy = LanguageModel(**model.get_config())
    copy.build((None, None))
    copy.set_weights(model.get_weights())
    copy.mixture = model.mixture
    return copy


def count_parameters(model: keras.Model) -> int:
    """Number of weights in the network (trainable or not, optimizer excluded)."""
    return int(sum(keras.ops.size(w) for w in model.weights))


def save_model(model: LanguageModel, path: str | Path, optimizer: bool = True) -> Path:
    """Write the model to `path` atomically (see `outputs.atomic_write`): a
    crash, a kill or a power cut leaves any previous file at `path` untouched.

    Args:
        model: the model.
        path: a `.keras` file.
        optimizer: keep the optimizer's state (a checkpoint, for an exact
            `--resume`); without it the file is a lean model, a quarter the size.
    """
    path = Path(path)
    if path.suffix != ".keras":
        raise ModelFileError(f"{path}: model files must end in .keras")
    if not optimizer:
        model = lean_copy(model)
    try:
        return atomic_write(path, model.save)
    except OSError as err:
        raise ModelFileError(
            f"could not save {path} ({err.strerror or err}); "
            "any previous file there is unchanged"
        ) from None


def load_model(path: str | Path, compile: bool = False) -> LanguageModel:
    """Load a model written by `save_model`, with one clear error if it cannot.

    Args:
        path: the `.keras` file.
        compile: also restore the optimizer and its state (to resume training).

    Raises:
        ModelFileError: missing, not a `.keras` archive, damaged, or foreign.
    """
    path = Path(path)
    # Every field, weight and table checked, within budgets, before Keras
    # builds or inflates anything (Keras reads whatever the archive holds).
    read_model(path)
    if path.suffix != ".keras":
        raise ModelFileError(f"{path}: rename it to end in .keras to load it")
    try:
        model = keras.saving.load_model(path, compile=compile)
    except Exception as err:  # Keras raises many types for damaged archives
        # Its messages can quote objects (`<LanguageModel name=...>`): cut.
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        reason = re.sub(r"<[^<>]*>?", "", first).strip()[:120] or type(err).__name__
        raise ModelFileError(
            f"{path} is damaged and cannot be loaded ({reason}); "
            "retrain it with `textgen train`"
        ) from None
    if not isinstance(model, LanguageModel):
        raise ModelFileError(f"{path} is not a textgen model")
    if not all(np.isfinite(w).all() for w in model.get_weights()):
        raise ModelFileError(
            f"{path} has weights that are not numbers (NaN or infinity); "
            "retrain it with `textgen train`"
        )
    return model
