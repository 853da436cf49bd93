"""`Generator`: text from a trained model with carried recurrent state.

The seed is run through the model once; after that each new word is one step
of the recurrent layers from the carried state, never a re-run of the window.
Several samples run as one batch; a single sample can stream as it is made.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from .sampling import SamplingSettings, next_ids
from .tokens import PARAGRAPH, StreamingDetokenizer, detokenize, tokenize
from .vocab import PAD_ID, UNK_ID

if TYPE_CHECKING:
    from .model import LanguageModel


class Generator:
    """Generates text from a `LanguageModel`; reuse one for many calls."""

    def __init__(self, model: LanguageModel) -> None:
        """Args:
        model: a trained model (from `train` or `load_model`).
        """
        import tensorflow as tf

        self.model = model
        self.vocabulary = model.vocabulary
        self.capitalize = model.tokenizer_settings.lowercase
        self._banned_ids = (PAD_ID, UNK_ID)
        # One compiled graph per input shape; reduce_retracing makes the
        # batch and seed length symbolic after the first retrace.
        self._step = tf.function(self._forward_last, reduce_retracing=True)

    def _forward_last(self, ids: Any, states: Any) -> tuple[Any, Any]:
        logits, states = self.model.forward(ids, states, training=False)
        return logits[:, -1, :], states  # (batch, vocab_size), carried states

    def seed_words(self, seed: str) -> list[str]:
        """The seed as the model's tokens."""
        return tokenize(seed, self.model.tokenizer_settings)

    def unknown_seed_words(self, seed: str) -> list[str]:
        """Seed words the model does not know; they are read as `<unk>`."""
        return self.vocabulary.unknown(self.seed_words(seed))

    def generate(
        self,
        seed: str = "",
        length: int = 50,
        sampling: SamplingSettings = SamplingSettings(),
        num_samples: int = 1,
        random_seed: int | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> list[str]:
        """Continue `seed` by `length` words, `num_samples` times in one batch.

        Args:
            seed: text to start from; empty starts a new paragraph.
            length: words (tokens) to generate after the seed.
            sampling: temperature, top-k and top-p.
            num_samples: independent continuations, run as one batch.
            random_seed: fixes the sampled words; None draws a fresh seed.
            on_text: with one sample, called with each piece of text as soon as
                it can be printed (the seed first); the pieces join to the result.

        Returns:
            One detokenized text per sample, each starting with the seed.
        """
        import tensorflow as tf

        rng = np.random.default_rng(random_seed)
        seed_words = self.seed_words(seed)
        context = seed_words or [PARAGRAPH]
        seed_ids = self.vocabulary.encode(context)
        batch_ids = np.repeat(seed_ids[None, :], num_samples, axis=0)  # (batch, seed)
        logits, states = self._step(tf.constant(batch_ids), None)

        stream = StreamingDetokenizer(self.capitalize) if on_text else None
        if stream is not None:
            for word in seed_words:
                on_text(stream.push(word))
        generated = np.zeros((num_samples, length), dtype=np.int64)
        for t in range(length):
            chosen = next_ids(logits.numpy(), sampling, rng, self._banned_ids)
            generated[:, t] = chosen
            if stream is not None:
                on_text(stream.push(self.vocabulary.words[chosen[0]]))
            if t + 1 < length:
                step_ids = tf.constant(chosen[:, None], dtype=tf.int32)  # (batch, 1)
                logits, states = self._step(step_ids, states)
        if stream is not None:
            on_text(stream.finish())
        return [
            detokenize(seed_words + self.vocabulary.decode(row), self.capitalize)
            for row in generated
        ]
