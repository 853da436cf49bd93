"""`textgen evaluate` and `textgen info`: what a model is and how good."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click

from ..model.levels import level_policy
from ..terminal import count
from ..text.tokens import is_label, label_of, tokenizer_for
from .group import (
    _load,
    _model_path,
    cli,
    echo,
    model_option,
    no_ngram_option,
    source_options,
)


@cli.command()
@model_option
@no_ngram_option
@click.option(
    "--per-token",
    type=click.Path(dir_okay=False),
    help="Also write each token and its loss (nats; null where nothing "
    "predicts it) to this file, one JSON object per line.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Overwrite the --per-token file.  [default: refuse to]",
)
@source_options
@click.argument("text", nargs=-1, required=True)
def evaluate(
    model_path: str | None,
    no_ngram: bool,
    per_token: str | None,
    force: bool,
    text: tuple[str, ...],
    input_format: str | None,
    text_field: str | None,
    label_field: str | None,
    strict: bool,
) -> None:
    """Score a model on TEXT (files or folders): perplexity and OOV rate. With
    an n-gram memory, the mixture, the network alone and the n-gram alone."""
    from ..model.record import trained_source
    from ..outputs import Output, atomic_write, check_outputs
    from ..text.corpus import corpus_files
    from ..text.records import SourceFormat

    model_path = str(_model_path(model_path))
    model = _load(model_path)
    # What the options do not say: as the model's training files were read.
    given = SourceFormat(input_format, text_field, strict, label_field)
    source = trained_source(model, given)
    text = tuple(str(p) for p in corpus_files(text, source.suffixes))
    if per_token:
        # Never written over what is read: the model, any corpus file (those
        # inside folders too), a link to either.
        check_outputs(
            [Output(Path(per_token), "per-token losses", option="--per-token")],
            [Path(model_path), *corpus_files(text)],
            force,
        )
    from ..inference.evaluate import evaluate as evaluate_model

    result = evaluate_model(
        model, text, ngram=not no_ngram, per_token=bool(per_token), source=source
    )
    if per_token:
        atomic_write(per_token, lambda path: _write_losses(path, model, result))
    tokenizer = tokenizer_for(model.tokenizer_settings)
    unit = tokenizer.unit

    def score(cross_entropy: float) -> str:
        if result.items:
            bits = result.bits_per_character_of(cross_entropy)
            return (
                f"{cross_entropy:.4f} nats per {unit[:-1]}, {bits:.4f} bits per "
                "character (ends included)"
            )
        if level_policy(tokenizer.level).score_in_bits:
            return (
                f"{cross_entropy / math.log(2):.4f} "
                f"(perplexity {math.exp(cross_entropy):.2f} per character)"
            )
        return (
            f"{math.exp(cross_entropy):.2f} "
            f"(cross-entropy {cross_entropy:.4f} nats per word)"
        )

    if result.items:
        label = "cross-entropy"
        echo(f"items scored   {result.items:,}, each from a fresh start")
        echo(f"tokens scored  {result.tokens:,} (each item's end included)")
        echo(f"OOV rate       {result.oov_rate:.2%}")
    else:
        label = "bits per char" if unit == "characters" else "perplexity"
        echo(f"tokens scored  {result.tokens:,}")
        echo(f"OOV rate       {result.oov_rate:.2%} ({result.unknown:,} read as <unk>)")
    memory = result.ngram_cross_entropy is not None
    residual = memory and result.network_cross_entropy is None
    how = ": network trained on the n-gram memory" if residual else ""
    how = how or (": network and n-gram memory mixed" if memory else "")
    echo(f"{label:<14} {score(result.cross_entropy)}{how}")
    if residual:
        echo(f"  n-gram alone   {score(result.ngram_cross_entropy)}")
        gain = result.ngram_cross_entropy - result.cross_entropy
        echo(f"  network adds   {gain:.4f} nats per {unit[:-1]} to the memory")
    elif memory:
        echo(f"  network alone  {score(result.network_cross_entropy)}")
        echo(f"  n-gram alone   {score(result.ngram_cross_entropy)}")
    elif not no_ngram and not model.has_ngram:
        echo("(the network alone: this model has no n-gram memory)")
    if result.by_label:
        echo("by label (each record's text given its label):")
        for name, (cross_entropy, tokens) in result.by_label.items():
            echo(
                f"  {name:<12} {cross_entropy:.4f} nats per {unit[:-1]} (perplexity "
                f"{math.exp(cross_entropy):.2f}), {count(tokens, unit)}"
            )


@cli.command()
@click.argument("path", required=False, type=click.Path(dir_okay=False))
def info(path: str | None) -> None:
    """Show what a model is and how it was trained.  [default: newest in models/]"""
    from ..model.record import TrainingRecord

    # What it is, not what it computes: the memory's tables are read (what
    # the others mix in is what it describes), the weights are not.
    model = _load(path, weights=False, tables=True)
    config = model.model_config
    record = TrainingRecord.read(model.record) if model.record else None
    tokenizer = tokenizer_for(model.tokenizer_settings)
    unit = tokenizer.unit
    rows = [
        (
            "model",
            f"{config.cell.upper()}, {config.layers} x {config.units} units, "
            f"embedding {config.embedding_dim}, dropout {config.dropout:g}"
            + (", output tied to the embeddings" if config.tied else ""),
        ),
        ("parameters", f"{config.parameter_count():,}"),
        (
            "vocabulary",
            f"{count(len(model.vocabulary), unit)} "
            + ("(lower-cased)" if model.tokenizer_settings.lowercase else "(case kept)")
            + (
                ", split on whitespace (pre-tokenized text)"
                if model.tokenizer_settings.tokenizer == "whitespace"
                else ""
            ),
        ),
    ]
    rows += _label_rows(model)
    documents = model.tokenizer_settings.documents
    if documents == "files":
        rows.append(("documents", "files (each file one text)"))
    else:
        held = ((record and record.items) or {}).get("count", 0)
        rows.append(
            (
                "documents",
                f"{documents} (each {documents[:-1]} an item); "
                f"{held:,} training items held for --novel",
            )
        )
    if record:
        tokens = record.tokens
        rows += [
            (
                "corpus",
                ", ".join(
                    f"{f['name']} ({count(f['tokens'], unit)})" for f in record.corpus
                ),
            ),
            (
                "tokens",
                f"{tokens['train']:,} train, {tokens['validation']:,} validation",
            ),
            ("epochs", f"{record.epochs_run} run, best {record.best_epoch}"),
            (
                "validation perplexity",
                _figure(record.best_val_perplexity, ".2f")
                if record.best_val_perplexity
                else "none (no validation)",
            ),
            (
                "train perplexity",
                "none"
                if record.train_perplexity is None
                else _figure(record.train_perplexity, ".2f"),
            ),
            ("n-gram memory", _ngram_row(model.mixture, record.ngram)),
            *(
                (
                    "adapted",
                    f"{a['date']} from {a['from']} to "
                    + ", ".join(
                        f"{f['name']} ({count(f['tokens'], unit)})" for f in a["corpus"]
                    ),
                )
                for a in record.adaptations
            ),
            *_origin_rows(record, unit),
            (
                "settings",
                ", ".join(f"{k}={v}" for k, v in record.train_config.items()),
            ),
            ("trained", f"{record.date} with textgen {record.textgen_version}"),
        ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        echo(f"{name:<{width}}  {value}")


def _origin_rows(record: Any, unit: str) -> list[tuple[str, str]]:
    """Where a model fine-tuned with `--init-from` started ([] for others)."""
    origin = record.init_from
    if not isinstance(origin, dict):
        return []
    known = count(origin.get("vocabulary") or 0, unit)
    return [
        (
            "started from",
            f"{origin.get('name')} (its network; {known} of its own, the rest new)",
        )
    ]


def _label_rows(model: Any) -> list[tuple[str, str]]:
    """A labelled model's labels, with the records of each."""
    vocabulary = model.vocabulary
    labels = [
        f"{label_of(w)} ({vocabulary.counts[i]:,})"
        for i, w in enumerate(vocabulary.words)
        if is_label(w)
    ]
    return (
        [("labels", ", ".join(sorted(labels)) + ": records of each")] if labels else []
    )


def _ngram_row(mixture: Any, fit: dict | None) -> str:
    """What `info` says of the n-gram memory: what its tables hold (what
    `generate` and `evaluate` mix in), and from the record (`fit`, checked
    by `TrainingRecord.read`) how it fitted, where it says ("—" if not)."""
    if mixture is None:
        return "none (the network alone; trained before it, or --ngram-order 0)"
    ngram = mixture.ngram
    under = " under each label" if len(ngram.labels) else ""
    text = (
        f"order {ngram.text_order}{under}, {count(ngram.entries, 'entries')}, "
        f"{ngram.nbytes / 1e6:.1f} MB"
    )
    if ngram.pruned:
        text += f", {count(ngram.pruned, 'rare n-grams')} pruned"
    fit = fit or {}
    if fit.get("counted_tokens") is not None:
        text += f", counted over {count(fit['counted_tokens'], 'tokens')}"
    if hasattr(mixture, "scales"):
        text += "; the network trained on top of it, the memory's scale by "
        text += "context count " + " ".join(f"{w:.2f}" for w in mixture.scales)
    else:
        text += "; network's weight by context count " + " ".join(
            f"{w:.2f}" for w in mixture.weights
        )
    parts = {
        name: fit.get(f"{name}_cross_entropy") for name in ("mixed", "network", "ngram")
    }
    if hasattr(mixture, "scales") and parts["mixed"] is not None:
        shown = {name: _figure(value, ".3f") for name, value in parts.items()}
        return text + (
            f"; validation {shown['mixed']} nats (the memory alone {shown['ngram']})"
        )
    if any(value is not None for value in parts.values()):
        shown = {name: _figure(value, ".3f") for name, value in parts.items()}
        text += (
            f"; validation {shown['mixed']} nats mixed "
            f"(network {shown['network']}, n-gram {shown['ngram']})"
        )
    return text


def _figure(value: Any, spec: str) -> str:
    """A figure from the record as `info` shows it: "—" where it is missing,
    three significant digits where `spec` would print a very long number."""
    if value is None:
        return "—"
    return format(value, spec if abs(value) < 1e9 else ".3g")


def _write_losses(path: Path, model, result) -> None:
    """`--per-token`: one `{"token", "nats"}` line per token of the text."""
    words = model.vocabulary.words
    with open(path, "w", encoding="utf-8") as out:
        for token_id, loss in zip(result.token_ids, result.token_losses, strict=True):
            nats = None if math.isnan(loss) else float(loss)
            out.write(json.dumps({"token": words[token_id], "nats": nats}) + "\n")
