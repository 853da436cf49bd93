"""`Generator`: text from a trained model with carried recurrent state.

The seed is read once; after that each new word is one recurrent step from the
carried state, never a re-run of the window. The steps run in NumPy on the
model's own weights (`Decoder`): for one word at a time that is far cheaper
than a TensorFlow call. Several samples run as one batch; one sample streams.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Sequence
from collections.abc import Generator as Generator_
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import Cancelled
from ..model.config import fresh_seed
from ..model.decoder import Decoder, State
from ..model.ngram import used_memory
from ..model.novelty import ItemSet
from ..model.perplexity import log_sum_exp
from ..text.tokens import (
    END,
    is_label,
    item_separator,
    item_texts,
    label_of,
    tokenizer_for,
)
from ..text.vocab import PAD_ID, UNK_ID
from .contract import GenerationRequest, SamplingSettings, SettingError
from .logprobs import Choice, choices
from .sampling import GREEDY_BELOW, next_ids, process

if TYPE_CHECKING:
    from ..model.file import ReadableModel

MAX_SEED_CHARS = 10_000  # a longer seed is cut to its end
# A seed: text, or the model's tokens already read (`serving/prompts.py`
# reads a prompt once and passes its tokens; a tuple, as seeds are keys).
Seed = str | tuple[str, ...]
BATCH_ROWS = 256  # rows `Generator.batches` generates (and holds) at once


@dataclass(frozen=True)
class Sample:
    """One generated text and how it was made."""

    seed: Seed
    text: str  # the seed and its continuation, detokenized
    words: list[str]  # the generated tokens
    sampling: SamplingSettings
    random_seed: int | None  # the one actually used (None: beam search)
    stopped_by: str  # "length", "until", "end" (of an item), "beam", or the stop string
    # Item models with `novel`: draws rejected as training items before this
    # one, and whether this one still is one (after `max_tries` rejections).
    rejected: int = 0
    training_item: bool | None = None
    # With `GenerationRequest.logprobs`: each generated token's `Choice`.
    choices: list[Choice] | None = None


@dataclass(frozen=True)
class Batch:
    """Some of a run's samples (see `Generator.batches`)."""

    first: int  # the run's number of its first sample (0 for the first batch)
    samples: list[Sample]
    seconds: float  # how long the batch took


def batch_seed(random_seed: int | None, batch: int) -> int | None:
    """The random seed of batch `batch` of a run: the run's own for the
    first, and one derived from it and `batch` for the rest."""
    if random_seed is None or batch == 0:
        return random_seed
    return int(np.random.SeedSequence([random_seed, batch]).generate_state(1)[0])


def sample_record(
    sample: Sample,
    number: int,
    words_per_second: float,
    fingerprint: Any,
    **settings: Any,
) -> dict[str, Any]:
    """One sample as a JSON-able record (a jsonl line, an API response):
    enough to reproduce it and script with it.

    Args:
        sample: the sample.
        number: its place in the run, from 0.
        words_per_second: the run's speed (the whole batch's).
        fingerprint: the model's `Fingerprint`, or None; gives
            `longest_copied_run` in tokens (None without one).
        settings: the run's other settings (model, length, beam, stop, ...).
    """
    copied = fingerprint.longest_copied_run(sample.words) if fingerprint else None
    return {
        "sample": number + 1,
        "seed": sample.seed,
        "text": sample.text,
        "words": len(sample.words),
        "words_per_second": round(words_per_second, 1),
        "stopped_by": sample.stopped_by,
        "longest_copied_run": copied,
        "random_seed": sample.random_seed,
        "rejected_draws": sample.rejected,
        "training_item": sample.training_item,
        **settings,
        **dataclasses.asdict(sample.sampling),
    }


class Generator:
    """Generates text from a model (a `ModelFile` or a Keras `LanguageModel`);
    reuse one for many calls."""

    def __init__(self, model: ReadableModel, ngram: bool = True) -> None:
        """Args:
        model: a trained model (from `train`, `load_model` or `read_model`).
        ngram: mix in its n-gram memory, if it has one (else the network alone).
        """
        self.vocabulary = model.vocabulary
        self.tokenizer_settings = model.tokenizer_settings
        self.tokenizer = tokenizer_for(model.tokenizer_settings)
        self.join, self.stream = self.tokenizer.join, self.tokenizer.streamer
        self.decoder = Decoder(model.model_config, model.named_weights())
        # An item model's training items (hashes), for `novel`; else None.
        saved = (model.record or {}).get("items")
        self.items = ItemSet.from_config(saved) if saved else None
        # A labelled model's labels and their tokens (never drawn: read).
        self.labels = {label_of(w): w for w in self.vocabulary.words if is_label(w)}
        self._banned_ids = (
            PAD_ID,
            UNK_ID,
            *(self.vocabulary.word_to_id[w] for w in self.labels.values()),
        )
        self.mixture = used_memory(model, ngram)
        # An item model's start token is the start of the text to the n-gram.
        self._item_start = (
            self.vocabulary.word_to_id[END] if self.tokenizer_settings.items else None
        )
        # Sampling rules lifted at some step because they left no word (see
        # `sampling.process`); the command line says so once.
        self.relaxed: set[str] = set()

    def next_logits(self, logits: np.ndarray, history: np.ndarray) -> np.ndarray:
        """The scores the next word is drawn from: the network's `logits`
        (rows, vocab_size) mixed with the n-gram memory's distribution after
        each row's `history` of ids (left-padded with `<pad>`), if it has one."""
        if self.mixture is None:
            return logits
        return self.mixture.logits(logits, self.ngram_contexts(history))

    def ngram_contexts(self, history: np.ndarray) -> np.ndarray:
        """The n-gram memory's contexts of rows of ids (see `next_logits`)."""
        return self.mixture.contexts(history, PAD_ID, self._item_start)

    @staticmethod
    def usable_seed(seed: str) -> str:
        """The seed, or for a very long one its last `MAX_SEED_CHARS` characters
        from a word boundary: more text than that cannot change the state the
        model carries forward, and reading it would only cost time."""
        if len(seed) <= MAX_SEED_CHARS:
            return seed
        tail = seed[-MAX_SEED_CHARS:]
        cut = next((i for i, c in enumerate(tail) if c.isspace()), len(tail))
        return tail[cut:].lstrip() if cut < len(tail) else tail

    def seed_words(self, seed: Seed) -> list[str]:
        """The (usable part of the) seed as the model's tokens; a seed given
        as tokens is taken as it is (a word the vocabulary lacks is read as
        `<unk>`)."""
        if not isinstance(seed, str):
            return list(seed)
        return self.tokenizer.tokenize(self.usable_seed(seed))

    def echo_words(
        self, prompt: str, words: list[str] | None = None
    ) -> tuple[list[str], list[str]]:
        """A scored prompt's tokens as written and as scored (`logprobs`
        with `echo`): its tokens, as `textgen evaluate` reads a text. For an
        item model, its items as `evaluate` reads a file's (each line or
        paragraph, whitespace-normalised), with a line or paragraph end
        written between them and scored as `END`, each item read from a
        fresh start; the prompt's last item ends only if a break follows it.
        All of the prompt is read (the caller bounds it). `words`: its
        tokens, if already read.
        """
        settings = self.tokenizer_settings
        if not settings.items:
            words = self.tokenizer.tokenize(prompt) if words is None else words
            return words, words
        items = list(item_texts([prompt], settings.documents))
        after_last_break = item_separator(settings.documents).split(prompt)[-1]
        ended = bool(items) and not after_last_break.strip(" \t")
        shown: list[str] = []
        scored: list[str] = []
        for i, item in enumerate(items):
            tokens = self.tokenizer.tokenize(item)
            if i:
                shown.append(self.tokenizer.paragraph_end)
                scored.append(END)
            shown += tokens
            scored += tokens
        if ended:
            shown.append(self.tokenizer.paragraph_end)
            scored.append(END)
        return shown, scored

    def label_tokens(self, label: str | None) -> list[str]:
        """What a seed is read after to write like `label` (none: [])."""
        if label is None:
            return []
        if label not in self.labels:
            known = ", ".join(sorted(self.labels)[:20])
            raise SettingError(
                "label",
                f"is {label!r}, not one of this model's labels ({known})"
                if self.labels
                else "was given, but this model was trained without labels",
            )
        return [self.labels[label]]

    def unknown_seed_words(self, seed: str) -> list[str]:
        """Seed words the model does not know; they are read as `<unk>`."""
        return self.vocabulary.unknown(self.seed_words(seed))

    def generate(
        self,
        seed: str = "",
        length: int = GenerationRequest.length,
        sampling: SamplingSettings = SamplingSettings(),
        num_samples: int = 1,
        random_seed: int | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> list[str]:
        """Continue `seed` by `length` words, `num_samples` times in one batch.

        Args:
            seed: text to start from; empty starts a new paragraph; of a very
                long one only the end is read (see `usable_seed`).
            length: words (tokens) to generate after the seed.
            sampling: temperature, top-k, top-p and the other controls.
            num_samples: independent continuations, run as one batch.
            random_seed: fixes the sampled words; None draws a fresh seed.
            on_text: with one sample, called with each piece of text as soon as
                it can be printed (the seed first); the pieces join to the result.

        Returns:
            One detokenized text per sample, each starting with the seed.
        """
        samples = self.sample(
            [seed] * num_samples,
            [sampling] * num_samples,
            GenerationRequest(length=length, random_seed=random_seed),
            on_text=on_text,
        )
        return [sample.text for sample in samples]

    def sample(
        self,
        seeds: Sequence[Seed],
        samplings: Sequence[SamplingSettings],
        request: GenerationRequest = GenerationRequest(),
        on_text: Callable[[str], None] | None = None,
        **changes: Any,
    ) -> list[Sample]:
        """One continuation per (seed, sampling) pair, all in one batch.

        Args:
            seeds: the text each row starts from (see `generate`), or its
                tokens already read (a tuple of str).
            samplings: each row's sampling controls.
            request: the length, stop strings, `until`, `novel` and random
                seed (`request.GenerationRequest`): with `stop`, a row's text ends where
                a stop string first appears (it is not part of it); with
                `until` ("sentence", "paragraph") at the end of its first
                complete one; with `novel`, an item model draws a row again
                when its item (the seed and what follows, up to the end
                token) is one of the training items. A random seed of None
                draws a fresh one (each `Sample` reports the one used).
            on_text: with one row, called with each piece of text as soon as
                it is safe to print; the pieces join to the sample's text.
            changes: fields of `request` to change, e.g. `length=30`.
        """
        assert on_text is None or len(seeds) == 1, "streaming is for one row"
        request = dataclasses.replace(request, **changes)
        if request.random_seed is None:
            request = dataclasses.replace(request, random_seed=fresh_seed())
        steps = self.draws(seeds, samplings, request, [on_text] * len(seeds))
        try:
            draw = next(steps)
            while True:
                while not draw.take(draw.choose()):
                    draw.advance(*self.decoder.step(draw.chosen, draw.states))
                draw = steps.send(None)
        except StopIteration as finished:
            return finished.value

    def batches(
        self,
        seeds: Sequence[str],
        samplings: Sequence[SamplingSettings],
        num_samples: int = 1,
        request: GenerationRequest = GenerationRequest(),
        beams: int = 0,
        on_text: Callable[[str], None] | None = None,
    ) -> Iterator[Batch]:
        """Every (seed, sampling, sample) row of a run, seed-major, made
        `BATCH_ROWS` at a time so that memory does not grow with the run:
        what `textgen generate` does with several seeds, temperatures and
        `--num-samples`, and with the same random seed the same samples.
        With a random seed, the first batch uses it as given and batch k one
        derived from it and k (`batch_seed`); with None, one fresh seed is
        drawn for the run. With `beams`, each (seed, sampling) pair is one
        beam search giving `num_samples` results. `on_text`: with one row,
        each piece of its text as it comes."""
        if request.random_seed is None:
            request = dataclasses.replace(request, random_seed=fresh_seed())
        per_seed = len(samplings) * num_samples
        total = len(seeds) * per_seed
        step = num_samples if beams else BATCH_ROWS
        for batch, first in enumerate(range(0, total, step)):
            numbers = range(first, min(first + step, total))
            started = time.perf_counter()
            if beams:
                samples = self.beam_search(
                    seeds[first // per_seed],
                    request.length,
                    beams,
                    samplings[first % per_seed // num_samples],
                    num_samples,
                    request.until,
                    request.stop,
                )
            else:
                samples = self.sample(
                    [seeds[i // per_seed] for i in numbers],
                    [samplings[i % per_seed // num_samples] for i in numbers],
                    request,
                    on_text=on_text,
                    random_seed=batch_seed(request.random_seed, batch),
                )
            yield Batch(first, samples, time.perf_counter() - started)

    def draws(
        self,
        seeds: Sequence[Seed],
        samplings: Sequence[SamplingSettings],
        request: GenerationRequest,
        on_texts: Sequence[Callable[[str], None] | None],
        cancelled: Callable[[], bool] | None = None,
        on_choices: Sequence[Callable[[Choice], None] | None] | None = None,
    ) -> Generator_[Draw, None, list[Sample]]:
        """What `sample` does, as the `Draw`s it runs, one after another.

        Each draw is yielded to be run to its end by the caller (`sample`
        steps it alone; the server's `Engine` steps it with other requests'
        draws in one batch); the next one depends on how it ended: with `novel`,
        rows that drew a training item are drawn again, as a smaller batch
        from the same random generator. Returns (as `StopIteration.value`)
        the samples. `on_texts`: one callback or None per row (see `sample`'s
        `on_text`); with `novel`, a row's text is passed whole once accepted.
        `cancelled`: asked while the seeds are read; says when to give up
        (raises `errors.Cancelled`). `on_choices`: with `request.logprobs`,
        one callback or None per row, called with each token's `Choice` as
        it is taken (not with `novel`: the accepted samples carry theirs).
        """
        assert len(seeds) == len(samplings) == len(on_texts) > 0, "one per seed"
        random_seed = request.random_seed
        assert random_seed is not None, "the caller chooses the random seed"
        rng = np.random.default_rng(random_seed)
        items = self.items if request.novel else None
        shown = on_texts if items is None else [None] * len(seeds)
        told = on_choices if items is None else None
        first = Draw(self, seeds, samplings, request, rng, shown, cancelled, told)
        yield first
        samples = first.samples(random_seed)
        if items is None:
            return samples
        # A rejected item must not have been shown: pass on only accepted ones.
        seed_words = first.seed_words
        tries = [0] * len(samples)

        def known(row: int) -> bool:
            return seed_words[row] + samples[row].words in items

        while again := [
            r for r in range(len(samples)) if tries[r] < request.max_tries and known(r)
        ]:
            redraw = Draw(
                self,
                [seeds[r] for r in again],
                [samplings[r] for r in again],
                request,
                rng,
                [None] * len(again),
                cancelled,
            )
            yield redraw
            for row, sample in zip(again, redraw.samples(random_seed), strict=True):
                samples[row] = sample
                tries[row] += 1
        samples = [
            dataclasses.replace(sample, rejected=tries[row], training_item=known(row))
            for row, sample in enumerate(samples)
        ]
        for on_text, sample in zip(on_texts, samples, strict=True):
            if on_text is not None:
                on_text(sample.text)
        return samples

    def _read_seeds(
        self,
        seed_words: Sequence[list[str]],
        cancelled: Callable[[], bool] | None = None,
    ) -> tuple[np.ndarray, list[State], np.ndarray]:
        """Run each distinct seed through the network once.

        Returns the next-word logits and states per row, and the seeds' ids
        left-padded with `<pad>` into one (rows, longest) array.
        """
        read: dict[tuple[str, ...], tuple[np.ndarray, list[State], np.ndarray]] = {}
        for words in seed_words:
            key = tuple(words)
            if key not in read:
                start = [self.tokenizer.start_token]
                # An item model reads every seed as the start of an item.
                first = start + words if self.tokenizer_settings.items else words
                ids = self.vocabulary.encode(first or start)
                logits, states = self.decoder.read(ids[None, :], None, cancelled)
                read[key] = (logits, states, ids)
        parts = [read[tuple(words)] for words in seed_words]
        logits = np.concatenate([p[0] for p in parts])
        states = [
            [np.concatenate([p[1][layer][k] for p in parts]) for k in range(len(st))]
            for layer, st in enumerate(parts[0][1])
        ]
        longest = max(len(p[2]) for p in parts)
        history = np.full((len(parts), longest), PAD_ID, dtype=np.int32)
        for row, (_, _, ids) in enumerate(parts):
            history[row, longest - len(ids) :] = ids
        return logits, states, history

    def beam_search(
        self,
        seed: str,
        length: int,
        beams: int,
        sampling: SamplingSettings = SamplingSettings(),
        num_results: int = 1,
        until: str | None = None,
        stop: Sequence[str] = (),
    ) -> list[Sample]:
        """The most likely continuations by beam search: deterministic.

        Keeps the `beams` best partial continuations by total log-probability
        (after the banned words and `sampling`'s penalties and filters; its
        temperature is not used), and ranks finished ones by the mean
        log-probability per word (length normalisation), so short endings are
        not favoured just for being short.

        Returns:
            The `num_results` best, best first, each cut at the first of the
            `stop` strings in it (the search itself does not see them).
        """
        words = self.seed_words(seed)
        logits, states, history = self._read_seeds([words])
        logits = self.next_logits(logits, history)
        scores = np.zeros(1)
        finished: list[tuple[float, np.ndarray]] = []
        width = history.shape[1]
        for t in range(length):
            processed = process(
                logits, sampling, self._banned_ids, history, self.relaxed
            )
            logp = processed - log_sum_exp(processed)
            total = (scores[:, None] + logp).ravel()
            best = np.argsort(-total, kind="stable")[: beams * 2]
            best = best[np.isfinite(total[best])]
            parents, chosen = np.divmod(best, logp.shape[1])
            keep_rows, keep_ids, keep_scores = [], [], []
            for parent, word_id, score in zip(
                parents, chosen, total[best], strict=True
            ):
                ending = self.tokenizer.ends_text(self.vocabulary.words[word_id], until)
                if ending:
                    kept = history[parent, width:]
                    if ending != "before":
                        kept = np.append(kept, word_id)
                    if len(kept):
                        mean = (score if ending != "before" else scores[parent]) / len(
                            kept
                        )
                        finished.append((float(mean), kept))
                    continue
                if len(keep_rows) < beams:
                    keep_rows.append(parent)
                    keep_ids.append(word_id)
                    keep_scores.append(score)
            if not keep_rows:
                break
            rows = np.array(keep_rows)
            chosen = np.array(keep_ids)
            history = np.concatenate([history[rows], chosen[:, None]], axis=1)
            scores = np.array(keep_scores)
            states = [[part[rows] for part in layer] for layer in states]
            if t + 1 < length:
                logits, states = self.decoder.step(chosen, states)
                logits = self.next_logits(logits, history)
        generated = history[:, width:]
        if generated.shape[1]:
            for score, row in zip(scores, generated, strict=True):
                finished.append((float(score) / len(row), row))
        finished.sort(key=lambda item: -item[0])
        results = []
        for _, ids in finished[:num_results]:
            found = self.vocabulary.decode(ids)
            text, stopped_by = self.join(words + found), "beam"
            if stop:
                watch = _StopWatch(words, self, stop, None)
                for word in found:
                    if watch.push(word):
                        break
                text, stopped_by = watch.finish(), watch.stopped_by or "beam"
            results.append(
                Sample(
                    seed=seed,
                    text=text,
                    words=found,
                    sampling=sampling,
                    random_seed=None,
                    stopped_by=stopped_by,
                )
            )
        return results


def _grown(history: np.ndarray, columns: int) -> np.ndarray:
    """`history` (rows, t) widened to `columns` with room for new ids."""
    wider = np.zeros((history.shape[0], columns), dtype=np.int32)
    wider[:, : history.shape[1]] = history
    return wider


class Draw:
    """One draw in progress: rows read from their seeds, then grown one word
    at a time by whoever runs it, which alternates `choose` and `take` with a
    decoder step on `chosen` and `states` (`Generator.sample` runs one draw
    alone; `serving/engine.py`'s `Engine` steps the rows of many draws as one batch)."""

    def __init__(
        self,
        generator: Generator,
        seeds: Sequence[Seed],
        samplings: Sequence[SamplingSettings],
        request: GenerationRequest,
        rng: np.random.Generator,
        on_texts: Sequence[Callable[[str], None] | None],
        cancelled: Callable[[], bool] | None = None,
        on_choices: Sequence[Callable[[Choice], None] | None] | None = None,
    ) -> None:
        self.generator = generator
        length, stop = request.length, request.stop
        self.seeds, self.samplings, self.length = seeds, samplings, length
        self.rng, self.until = rng, request.until
        self.rows = len(seeds)
        tokenized = {}
        label = generator.label_tokens(request.label)  # read before each seed
        for seed in dict.fromkeys(seeds):
            if cancelled is not None and cancelled():
                raise Cancelled("cancelled while reading the seeds")
            tokenized[seed] = label + generator.seed_words(seed)
        self.seed_words = [tokenized[seed] for seed in seeds]
        self.logits, self.states, history = generator._read_seeds(
            self.seed_words, cancelled
        )
        self.logits = generator.next_logits(self.logits, history)
        if generator.tokenizer_settings.items:
            # An item has at least one token: a row with no seed cannot end
            # before it has begun.
            empty = [row for row, words in enumerate(self.seed_words) if not words]
            if empty:
                end = generator.vocabulary.word_to_id[END]
                self.logits = np.array(self.logits, copy=True)
                self.logits[empty, end] = -np.inf
        self.width = history.shape[1]
        # Grown as words come (not `length` up front: -n may be huge).
        self.history = _grown(history, self.width + min(length, 256))
        self.shared = samplings[0] if len(set(samplings)) == 1 else samplings
        self.watchers = [
            _StopWatch(words, generator, stop, on_text)
            for words, on_text in zip(self.seed_words, on_texts, strict=True)
        ]
        # Without stop strings or streaming, detokenize once at the end.
        self.watch = bool(stop) or any(on_texts)
        self.ends = [length] * self.rows
        self.ended_by = ["length"] * self.rows
        self.live = list(range(self.rows))  # the rows that have not ended
        self.t = 0  # words taken
        self.chosen = np.zeros(self.rows, dtype=np.int32)  # the last ones
        # With `request.logprobs`: each row's choices so far, and who is told.
        self.top = request.logprobs
        self.choices: list[list[Choice]] | None = (
            None if self.top is None else [[] for _ in range(self.rows)]
        )
        self.on_choices = on_choices or [None] * self.rows

    def advance(self, logits: np.ndarray, states: list, mixed: bool = False) -> None:
        """Take the decoder's step for these rows (after `take`): its logits,
        mixed with the n-gram memory's (unless `mixed` already), and states."""
        if not mixed:
            logits = self.generator.next_logits(logits, self.written)
        self.logits, self.states = logits, states

    @property
    def written(self) -> np.ndarray:
        """Each row's ids so far, the seed's (left-padded) included."""
        return self.history[:, : self.width + self.t]

    def choose(self) -> np.ndarray:
        """Every row's next word, drawn from the current logits."""
        generator = self.generator
        return next_ids(
            self.logits,
            self.shared,
            self.rng,
            generator._banned_ids,
            self.history[:, : self.width + self.t],
            generator.relaxed,
        )

    def take(self, chosen: np.ndarray) -> bool:
        """Add one word per row; True when the draw is over (every row has
        ended, or `length` words are taken) and needs no further step."""
        column = self.width + self.t
        if column == self.history.shape[1]:
            self.history = _grown(self.history, 2 * column)
        self.history[:, column] = chosen
        self.chosen = chosen
        words, tokenizer = self.generator.vocabulary.words, self.generator.tokenizer
        # Python ints and lists: this runs for every word, and a NumPy call
        # or scalar costs microseconds.
        ids, live, going = chosen.tolist(), self.live, []
        if self.choices is not None:
            scored = choices(self.logits[live], chosen[live], self.top, words)
            taken = dict(zip(live, scored, strict=True))
        for row in live:
            word = words[ids[row]]
            finished = tokenizer.ends_text(word, self.until)
            if finished:
                self.ended_by[row] = "end" if word == END else "until"
            if finished == "before":  # a paragraph or item end, unwritten
                self.ends[row] = self.t
                continue
            if self.choices is not None:
                self.choices[row].append(taken[row])
                if self.on_choices[row] is not None:
                    self.on_choices[row](taken[row])
            if (self.watch and self.watchers[row].push(word)) or finished:
                self.ends[row] = self.t + 1
                continue
            going.append(row)
        self.live = going
        self.t += 1
        return not going or self.t == self.length

    def samples(self, random_seed: int) -> list[Sample]:
        """The finished rows (call once, after `take` returned True)."""
        generator, width = self.generator, self.width
        samples = []
        for row, end in enumerate(self.ends):
            words = generator.vocabulary.decode(self.history[row, width : width + end])
            watcher = self.watchers[row]
            if self.watch:
                text = watcher.finish()
            else:
                text = generator.join(self.seed_words[row] + words)
            ended = self.ends[row] < self.length
            samples.append(
                Sample(
                    seed=self.seeds[row],
                    text=text,
                    words=words,
                    sampling=self.samplings[row],
                    random_seed=random_seed,
                    stopped_by=watcher.stopped_by
                    or (self.ended_by[row] if ended else "length"),
                    choices=None if self.choices is None else self.choices[row],
                )
            )
        return samples


def choose_together(draws: Sequence[Draw]) -> list[np.ndarray]:
    """Each draw's `choose()`, with the draws that share one setting (and do
    not read their history) sampled in one call: the same words, as each
    row's random number still comes from its own draw's generator."""
    chosen: dict[int, np.ndarray] = {}
    groups: dict[SamplingSettings, list[int]] = {}
    for i, draw in enumerate(draws):
        shared = draw.shared
        if isinstance(shared, SamplingSettings) and not shared.reads_history:
            groups.setdefault(shared, []).append(i)
        else:
            chosen[i] = draw.choose()
    for settings, members in groups.items():
        if len(members) == 1:
            chosen[members[0]] = draws[members[0]].choose()
            continue
        group = [draws[i] for i in members]
        uniforms = None
        if settings.temperature >= GREEDY_BELOW:  # greedy draws no number
            uniforms = np.concatenate([d.rng.random(d.rows) for d in group])
        generator = group[0].generator
        ids = next_ids(
            np.concatenate([d.logits for d in group]),
            settings,
            None,
            generator._banned_ids,
            None,
            generator.relaxed,
            uniforms,
        )
        start = 0
        for i, draw in zip(members, group, strict=True):
            chosen[i] = ids[start : start + draw.rows]
            start += draw.rows
    return [chosen[i] for i in range(len(draws))]


class _StopWatch:
    """Detokenizes one row as it grows, watches its continuation for stop
    strings, and streams the text that can no longer be part of one.

    Each word costs time for its own text only: the text is kept as a list
    of pieces, and a stop string is looked for in the new piece and the few
    characters before it that a stop string could start in."""

    def __init__(
        self,
        seed_words: list[str],
        generator: Generator,
        stop: Sequence[str],
        on_text: Callable[[str], None] | None,
    ) -> None:
        self.stream = generator.stream()
        self.stop = [s for s in stop if s]
        self.hold = max((len(s) for s in self.stop), default=1) - 1
        self.on_text = on_text
        # Where the continuation starts in the text (the seed's own text).
        self.start = len(generator.join(seed_words))
        seed_text = self.stream.push_many(seed_words)
        self.parts = [seed_text]
        self.size = len(seed_text)
        self.tail = ""  # the last `hold` characters, from `start` on
        self.unshown = seed_text if on_text is not None else ""
        self.shown = 0  # characters passed to on_text
        self.stopped_by: str | None = None
        self._show(min(self.size, self.start))

    def push(self, word: str) -> bool:
        """Add a word; True once a stop string has appeared."""
        if self.stopped_by is None:
            self._add(self.stream.push(word), final=False)
        return self.stopped_by is not None

    def finish(self) -> str:
        """The whole text: the seed and the continuation, cut at a stop string."""
        if self.stopped_by is None:
            self._add(self.stream.finish(), final=True)
        if len(self.parts) > 1:
            self.parts = ["".join(self.parts)]
        return self.parts[0]

    def _add(self, piece: str, final: bool) -> None:
        before = self.size
        self.parts.append(piece)
        self.size += len(piece)
        if self.on_text is not None:
            self.unshown += piece
        region = self.tail + piece  # starts at `before - len(tail)`
        offset = before - len(self.tail)
        skip = max(self.start - offset, 0)  # the seed's own text is not searched
        hits = [
            (found + offset, s)
            for s in self.stop
            if (found := region.find(s, skip)) != -1
        ]
        if hits:
            cut, self.stopped_by = min(hits)
            text = "".join(self.parts)[:cut].rstrip()
            self.parts, self.size = [text], len(text)
            if self.on_text is not None:
                self.unshown = text[self.shown :]
        elif self.hold:
            keep = max(len(region) - self.hold, skip)
            self.tail = region[keep:]
        done = final or bool(hits)
        self._show(self.size if done else max(self.size - self.hold, 0))

    def _show(self, upto: int) -> None:
        if self.on_text is not None and upto > self.shown:
            count = upto - self.shown
            self.on_text(self.unshown[:count])
            self.unshown = self.unshown[count:]
            self.shown = upto
