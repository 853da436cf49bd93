"""`textgen generate`: seeds in, text out; several temperatures, seeds from
a file or stdin, jsonl, beam search and the interactive prompt."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from ..errors import TextgenError
from ..inference.contract import (
    UNTIL,
    GenerationRequest,
    SamplingSettings,
    SettingError,
    resolve_novel,
)
from ..terminal import count
from ..text.tokens import tokenizer_for
from .group import (
    _load,
    _newest_model,
    cli,
    echo,
    knob_option,
    model_option,
    no_ngram_option,
    setting_error,
)


class _Temperatures(click.ParamType):
    """One temperature, or several separated by commas: "0.2,0.5,1.0"."""

    name = "T[,T...]"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        if isinstance(value, tuple):
            return value
        try:
            values = tuple(float(part) for part in str(value).split(","))
        except ValueError:
            self.fail(
                f"{value!r} is not a number or a comma-separated list", param, ctx
            )
        return values  # their bounds are SamplingSettings' to check


@cli.command()
@model_option
@click.option(
    "-s",
    "--seed",
    default="",
    help="Text to start from; - reads it from stdin.  "
    "[default: none: start a new paragraph]",
)
@click.option(
    "--seed-file",
    type=click.Path(dir_okay=False),
    help="One seed per line; one sample each, generated as one batch.  [default: none]",
)
@click.option(
    "-n",
    "--length",
    type=click.IntRange(min=1),
    default=GenerationRequest.length,
    show_default=True,
    help="Most words to generate.",
)
@click.option(
    "-t",
    "--temperature",
    type=_Temperatures(),
    default=str(SamplingSettings.temperature),
    show_default=True,
    help="Randomness; 0 is greedy. Several, comma-separated, give one labelled "
    "sample each.",
)
@knob_option(SamplingSettings, "top_k", "--top-k")
@knob_option(SamplingSettings, "top_p", "--top-p")
@knob_option(SamplingSettings, "min_p", "--min-p")
@knob_option(
    SamplingSettings,
    "repetition_penalty",
    "--repetition-penalty",
    help="Make words of the last --repeat-window words less likely (1: off).",
)
@knob_option(SamplingSettings, "repeat_window", "--repeat-window")
@knob_option(SamplingSettings, "no_repeat_ngram", "--no-repeat-ngram")
@click.option(
    "--beam",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Beam search with this many beams: the likeliest text, deterministic, "
    "length-normalised (0: sample instead).",
)
@click.option(
    "--stop",
    multiple=True,
    help="End the text where this appears (not printed); repeatable.  [default: none]",
)
@click.option(
    "--until",
    type=click.Choice(UNTIL),
    help="End at the end of the first complete sentence or paragraph (-n is "
    "the most words).  [default: -n words]",
)
@click.option(
    "--label",
    multiple=True,
    help="With a model trained with --label-field: write like this label's "
    "records; repeatable (the samples of each, one after another).  "
    "[default: no label]",
)
@click.option(
    "--num-samples",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Independent samples per seed and temperature, generated as one batch.",
)
@knob_option(
    GenerationRequest,
    "random_seed",
    "--random-seed",
    help="Make the output repeatable.  [default: random]",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "jsonl"]),
    default="text",
    show_default=True,
    help="jsonl: one JSON object per sample with the seed, every setting, the "
    "random seed used, the text, word count and words/s.",
)
@click.option(
    "-i",
    "--interactive",
    is_flag=True,
    help="A prompt: each line is a seed; :t 0.7, :n 100, :k 40, :p 0.9 change "
    "settings; Ctrl-D leaves.  [default: off]",
)
@click.option(
    "--novel/--no-novel",
    default=None,
    help="With a model trained on items (--documents lines or paragraphs): draw "
    "an item again when it is one of the training items.  [default: on for "
    "item models]",
)
@knob_option(
    GenerationRequest,
    "max_tries",
    "--max-tries",
    help="With --novel: most times one sample is drawn again.",
)
@no_ngram_option
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="After the text, report on stderr the speed, the model, and the longest "
    "run of words copied verbatim from the training text.  [default: off]",
)
def generate(
    model_path: str | None,
    seed: str,
    seed_file: str | None,
    length: int,
    temperature: tuple[float, ...],
    beam: int,
    stop: tuple[str, ...],
    until: str | None,
    label: tuple[str, ...],
    num_samples: int,
    random_seed: int | None,
    output_format: str,
    interactive: bool,
    novel: bool | None,
    max_tries: int,
    no_ngram: bool,
    verbose: bool,
    **controls: Any,
) -> None:
    """Generate text from a trained model, starting with SEED."""
    labels = label  # (repeatable)
    if seed_file and seed:
        raise click.UsageError("give --seed or --seed-file, not both")
    if beam and len(temperature) > 1:
        raise click.UsageError("--beam is deterministic: give one temperature")
    if beam and labels:
        raise click.UsageError("--label steers sampling; it cannot be used with --beam")
    if interactive and (seed_file or seed == "-" or output_format != "text"):
        raise click.UsageError(
            "--interactive reads seeds from the prompt and prints text"
        )
    try:
        samplings = [SamplingSettings(temperature=t, **controls) for t in temperature]
        request = GenerationRequest(length, stop, until, False, max_tries, random_seed)
    except SettingError as err:
        raise setting_error(err) from None
    seeds, lengths = _read_seeds(seed, seed_file)
    path = Path(model_path) if model_path else _newest_model()
    model = _load(str(path))
    from ..inference.generate import Generator

    generator = Generator(model, ngram=not no_ngram)
    items = model.tokenizer_settings.items
    given = click.get_current_context().get_parameter_source("max_tries")
    try:
        novel = resolve_novel(
            novel, items, given is not click.core.ParameterSource.DEFAULT
        )
    except SettingError as err:
        raise setting_error(err) from None
    request = dataclasses.replace(request, novel=novel)
    try:
        for label in labels:
            generator.label_tokens(label)
    except SettingError as err:
        raise setting_error(err) from None
    if interactive:
        request = dataclasses.replace(request, label=labels[0] if labels else None)
        _interactive(generator, samplings[0], request)
        return
    seeds = _usable_seeds(generator, seeds, lengths)
    rows = len(seeds) * len(samplings) * num_samples * max(len(labels), 1)
    stream = output_format == "text" and rows == 1 and not beam
    one_per_line = items and len(seeds) == len(samplings) == 1 and len(labels) < 2
    fingerprint = model.fingerprint() if output_format == "jsonl" or verbose else None
    report = _Report(fingerprint)
    for label in labels or [None]:
        job = _Job(generator, path, dataclasses.replace(request, label=label), beam)
        # Samples are made, printed and let go a batch at a time: memory does
        # not grow with --num-samples.
        for first, samples, seconds in job.batches(
            seeds, samplings, num_samples, stream
        ):
            report.add(samples, seconds)
            rate = sum(len(s.words) for s in samples) / max(seconds, 1e-9)
            for number, sample in enumerate(samples, first):
                if output_format == "jsonl":
                    echo(json.dumps(job.record(sample, number, rate, fingerprint)))
                elif stream:
                    pass
                elif one_per_line:  # one item per line, nothing else
                    echo(" ".join(sample.text.split("\n")))
                else:
                    title = job.label(sample, number, seeds, samplings, num_samples)
                    if len(labels) > 1:
                        title = f"label {label}, {title}"
                    echo(f"--- {title} ---\n{sample.text}\n")
    _report_relaxed(generator, controls)
    if verbose:
        report.print(path, tokenizer_for(model.tokenizer_settings).unit)
        if novel and not beam:
            report.print_novelty(max_tries)


MAX_SEEDS = 1000  # lines of a --seed-file: each is a row of one batch


def _read_seeds(seed: str, seed_file: str | None) -> tuple[list[str], list[int]]:
    """The seeds to generate from, and each one's whole length in characters.

    `--seed -` and `--seed-file` are read as streams (the corpus decoder:
    binary or undecodable input is one clear error), keeping at most twice
    the characters a seed can use, so no input can exhaust memory.
    """
    from ..inference.generate import MAX_SEED_CHARS
    from ..text.corpus import decode_chunks, lines, read_pieces, stream_chunks, tail

    keep = 2 * MAX_SEED_CHARS
    if seed == "-":
        stdin = getattr(sys.stdin, "buffer", None)
        if stdin is None:  # a text-only stream (some embedding programs)
            chunks = iter(lambda: sys.stdin.read(1 << 20).encode("utf-8"), b"")
        else:
            chunks = stream_chunks(stdin)
        text, total = tail(decode_chunks(chunks, "the seed on stdin"), keep)
        return [text], [total]
    if seed_file:
        name = f"--seed-file {seed_file}"
        found = lines(
            read_pieces(Path(seed_file), "--seed-file"), keep, MAX_SEEDS, name
        )
        if not found:
            raise click.ClickException(f"{name} has no seeds in it")
        return [line for line, _ in found], [length for _, length in found]
    return [seed], [len(seed)]


def _report_relaxed(generator: Any, controls: dict[str, Any]) -> None:
    """Say once which sampling rule was lifted because it left no word."""
    if "no_repeat_ngram" in generator.relaxed:
        echo(
            f"note: --no-repeat-ngram {controls['no_repeat_ngram']} ruled out every "
            "word at some steps (a small vocabulary); it was lifted there",
            err=True,
        )


def _usable_seeds(generator: Any, seeds: list[str], lengths: list[int]) -> list[str]:
    """The seeds the model reads, with one note on stderr about long seeds
    and one about unknown words, however many seeds there are."""
    from ..inference.generate import MAX_SEED_CHARS

    usable = [generator.usable_seed(seed) for seed in seeds]
    cut = [
        max(length, len(seed))
        for seed, kept, length in zip(seeds, usable, lengths, strict=True)
        if len(kept) < max(length, len(seed))
    ]
    if cut:
        which = (
            f"the seed has {count(cut[0], 'characters')}"
            if len(seeds) == 1
            else f"{len(cut):,} of {len(seeds):,} seeds have more than "
            f"{MAX_SEED_CHARS:,} characters"
        )
        echo(
            f"note: {which}; only the last {MAX_SEED_CHARS:,} characters of a "
            "seed are read and printed",
            err=True,
        )
    unknown: dict[str, None] = {}
    for seed in usable:
        unknown.update(dict.fromkeys(generator.unknown_seed_words(seed)))
    if unknown:
        words = list(unknown)
        shown = " ".join(words[:20]) + (" ..." if len(words) > 20 else "")
        echo(
            "warning: seed words not in the model's vocabulary, read as <unk>: "
            + shown,
            err=True,
        )
    return usable


def _usable_seed(generator: Any, seed: str) -> str:
    """One seed typed at the prompt (see `_usable_seeds`)."""
    return _usable_seeds(generator, [seed], [len(seed)])[0]


class _Report:
    """What --verbose says after the text, gathered a batch at a time."""

    def __init__(self, fingerprint: Any) -> None:
        self.fingerprint = fingerprint
        self.samples = self.words = self.rejected = self.known = 0
        self.seconds = 0.0
        self.runs: list[int] = []  # longest copied run of the first samples
        self.longest = 0

    def add(self, samples: list, seconds: float) -> None:
        self.samples += len(samples)
        self.seconds += seconds
        for sample in samples:
            self.words += len(sample.words)
            self.rejected += sample.rejected
            self.known += bool(sample.training_item)
            if self.fingerprint is not None:
                run = self.fingerprint.longest_copied_run(sample.words)
                self.longest = max(self.longest, run)
                if len(self.runs) < _RUNS_LISTED:
                    self.runs.append(run)

    def print(self, path: Path, unit: str) -> None:
        echo(f"model: {path}", err=True)
        rate = self.words / max(self.seconds, 1e-9)
        echo(f"speed: {rate:,.0f} {unit}/s ({self.words:,} {unit})", err=True)
        if self.fingerprint is None:
            echo(
                "copied: unknown (the model has no training-text fingerprint of "
                "this textgen version)",
                err=True,
            )
            return
        shown = ", ".join(f"{run:,} {unit}" if run else "none" for run in self.runs)
        if self.samples > len(self.runs):
            shown = (
                f"{self.longest:,} {unit} at most in {self.samples:,} samples "
                f"(the first {len(self.runs)}: {shown})"
            )
        echo(f"longest run copied verbatim from the training text: {shown}", err=True)

    def print_novelty(self, max_tries: int) -> None:
        """The --verbose lines of --novel: draws rejected, items still known."""
        echo(
            f"novel: {count(self.rejected, 'draws')} rejected as training items; "
            f"{self.samples - self.known:,} of {self.samples:,} samples are new",
            err=True,
        )
        if self.known:
            echo(
                f"note: {count(self.known, 'samples')} "
                f"{'is' if self.known == 1 else 'are'} still a training item after "
                f"--max-tries {max_tries}; a higher temperature or --max-tries "
                "helps",
                err=True,
            )


_RUNS_LISTED = 20  # samples whose longest copied run --verbose lists one by one


@dataclasses.dataclass
class _Job:
    """One `generate` run: its fixed settings, and how samples are labelled."""

    generator: Any
    model_path: Path
    request: GenerationRequest
    beam: int

    def batches(
        self,
        seeds: list[str],
        samplings: list[Any],
        num_samples: int,
        stream: bool,
    ) -> Iterator[tuple[int, list, float]]:
        """The run's samples, a batch at a time (`Generator.batches`): the
        first sample's number, the batch's samples and the seconds it took."""
        for batch in self.generator.batches(
            seeds,
            samplings,
            num_samples,
            self.request,
            self.beam,
            on_text=(lambda text: echo(text, nl=False)) if stream else None,
        ):
            if stream:
                echo()
            yield batch.first, batch.samples, batch.seconds

    def label(
        self,
        sample: Any,
        number: int,
        seeds: list[str],
        samplings: list[Any],
        num_samples: int,
    ) -> str:
        """What varies between the samples of this run: "seed 2, temperature 0.5"."""
        parts = []
        if len(seeds) > 1:
            parts.append(f"seed {number // (len(samplings) * num_samples) + 1}")
        if len(samplings) > 1:
            parts.append(f"temperature {sample.sampling.temperature:g}")
        if num_samples > 1:
            parts.append(f"sample {number % num_samples + 1}")
        return ", ".join(parts) or "sample 1"

    def record(
        self, sample: Any, number: int, rate: float, fingerprint: Any
    ) -> dict[str, Any]:
        """One jsonl line (see `generate.sample_record`)."""
        from ..inference.generate import sample_record

        return sample_record(
            sample,
            number,
            rate,
            fingerprint,
            model=str(self.model_path),
            length=self.request.length,
            beam=self.beam,
            stop=list(self.request.stop),
            until=self.request.until,
            label=self.request.label,
        )


_COMMANDS = {
    ":t": ("temperature", float),
    ":k": ("top_k", int),
    ":p": ("top_p", float),
    ":minp": ("min_p", float),
    ":rep": ("repetition_penalty", float),
    ":n": ("length", int),
}


def _interactive(generator: Any, sampling: Any, request: GenerationRequest) -> None:
    """Read seeds line by line and stream each continuation; `:x value`
    commands change settings; end of input (Ctrl-D) leaves."""
    stdin = sys.stdin
    names = ", ".join(f"{k} {v[0]}" for k, v in _COMMANDS.items())
    echo(f"a seed per line; {names}; Ctrl-D to leave", err=True)
    while True:
        echo("> ", nl=False, err=True)
        try:
            line = _read_line(stdin)
        except UnicodeDecodeError:
            echo("that line is not UTF-8 text; type it again", err=True)
            continue
        if line is None:
            echo(err=True)
            return
        command, _, value = line.strip().partition(" ")
        if command in _COMMANDS:
            name, kind = _COMMANDS[command]
            try:
                if name == "length":
                    request = dataclasses.replace(request, length=max(kind(value), 1))
                else:
                    sampling = dataclasses.replace(sampling, **{name: kind(value)})
            except (ValueError, TextgenError) as err:
                echo(f"{command}: {err}", err=True)
                continue
            shown = request.length if name == "length" else getattr(sampling, name)
            echo(f"{name} = {shown}", err=True)
            continue
        if command.startswith(":"):
            echo(f"unknown command {command}; try {names}", err=True)
            continue
        generator.sample(
            [_usable_seed(generator, line)],
            [sampling],
            request,
            on_text=lambda text: echo(text, nl=False),
        )
        echo()


def _read_line(stdin: Any) -> str | None:
    """One line typed at the prompt (None at the end of input); of a line
    longer than a seed can use, only its end is kept."""
    from ..inference.generate import MAX_SEED_CHARS

    line, keep = "", 2 * MAX_SEED_CHARS
    while True:
        part = stdin.readline(keep)
        if not part:
            return line or None
        line = (line + part)[-keep:]
        if part.endswith("\n"):
            return line.rstrip("\n")
