"""`textgen evaluate` and `textgen info`: what a model is and how good."""

from __future__ import annotations

import math

import click

from ..terminal import count
from ..tokens import tokenizer_for
from . import _load, cli, echo, model_option


@cli.command()
@model_option
@click.argument("text", nargs=-1, required=True)
def evaluate(model_path: str | None, text: tuple[str, ...]) -> None:
    """Score a model on TEXT (files or folders): perplexity and OOV rate."""
    model = _load(model_path)
    from ..evaluate import evaluate as evaluate_model

    result = evaluate_model(model, text)
    if result.items:
        unit = tokenizer_for(model.tokenizer_settings).unit
        echo(f"items scored   {result.items:,}, each from a fresh start")
        echo(f"tokens scored  {result.tokens:,} (each item's end included)")
        echo(f"OOV rate       {result.oov_rate:.2%}")
        echo(
            f"cross-entropy  {result.cross_entropy:.4f} nats per "
            f"{unit[:-1]}, {result.bits_per_character:.4f} bits per character "
            "(ends included)"
        )
        return
    echo(f"tokens scored  {result.tokens:,}")
    echo(f"OOV rate       {result.oov_rate:.2%} ({result.unknown:,} read as <unk>)")
    if model.tokenizer_settings.level == "char":
        echo(
            f"bits per char  {result.cross_entropy / math.log(2):.4f} "
            f"(perplexity {result.perplexity:.2f} per character)"
        )
        return
    echo(
        f"perplexity     {result.perplexity:.2f} "
        f"(cross-entropy {result.cross_entropy:.4f} nats per word)"
    )


@cli.command()
@click.argument("path", required=False, type=click.Path(dir_okay=False))
def info(path: str | None) -> None:
    """Show what a model is and how it was trained.  [default: newest in models/]"""
    model = _load(path, weights=False)  # what it is, not what it computes
    config = model.model_config
    record = model.record
    unit = tokenizer_for(model.tokenizer_settings).unit
    rows = [
        (
            "model",
            f"{config.cell.upper()}, {config.layers} x {config.units} units, "
            f"embedding {config.embedding_dim}, dropout {config.dropout:g}"
            + (", output tied to the embeddings" if config.tie_embeddings else ""),
        ),
        ("parameters", f"{config.parameter_count():,}"),
        (
            "vocabulary",
            f"{count(len(model.vocabulary), unit)} "
            + (
                "(lower-cased)" if model.tokenizer_settings.lowercase else "(case kept)"
            ),
        ),
    ]
    documents = model.tokenizer_settings.documents
    if documents == "files":
        rows.append(("documents", "files (each file one text)"))
    else:
        held = (record.get("items") or {}).get("count", 0)
        rows.append(
            (
                "documents",
                f"{documents} (each {documents[:-1]} an item); "
                f"{held:,} training items held for --novel",
            )
        )
    if record:
        tokens = record["tokens"]
        rows += [
            (
                "corpus",
                ", ".join(
                    f"{f['name']} ({count(f['tokens'], unit)})"
                    for f in record["corpus"]
                ),
            ),
            (
                "tokens",
                f"{tokens['train']:,} train, {tokens['validation']:,} validation",
            ),
            ("epochs", f"{record['epochs_run']} run, best {record['best_epoch']}"),
            (
                "validation perplexity",
                f"{record['best_val_perplexity']:.2f}"
                if record["best_val_perplexity"]
                else "none (no validation)",
            ),
            ("train perplexity", f"{record['train_perplexity']:.2f}"),
            (
                "settings",
                ", ".join(f"{k}={v}" for k, v in record["train_config"].items()),
            ),
            ("trained", f"{record['date']} with textgen {record['textgen_version']}"),
        ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        echo(f"{name:<{width}}  {value}")
