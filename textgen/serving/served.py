"""The models `textgen serve` has loaded: each with its generator and its
batching engine (`Served`), what `/v1/models` says of it, and `/health`."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..inference.generate import Generator
from .engine import Engine
from .prompts import TokenIds


@dataclass
class Served:
    """One loaded model: its name, what `/v1/models` says, and its engine."""

    name: str
    model: Any  # a `model/file.py` `ModelFile`
    generator: Generator
    engine: Engine
    created: int
    ids: TokenIds  # its token ids as clients see them (`POST /tokenize`)
    reading: int = 0  # requests whose prompts are being read (not queued yet)
    # One request's prompts are read (and scored) at a time: side by side
    # they contend for the interpreter and each takes several times longer
    # (five 10,000-character prompts scored at once: 8.5 s, past a 5 s
    # --timeout, against ~1 s each alone).
    reading_lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    @property
    def queued(self) -> int:
        """Requests accepted and not yet generating: reading or waiting."""
        return self.reading + self.engine.waiting

    def card(self) -> dict[str, Any]:
        config = self.model.model_config
        settings = self.model.tokenizer_settings
        items = (self.model.record or {}).get("items") or {}
        return {
            "id": self.name,
            "object": "model",
            "created": self.created,
            "owned_by": "textgen",
            "textgen": {
                "cell": config.cell,
                "layers": config.layers,
                "units": config.units,
                "parameters": config.parameter_count(),
                "vocabulary": len(self.model.vocabulary),
                "level": settings.level,
                "documents": settings.documents,
                "training_items": items.get("count", 0),
                "labels": sorted(self.generator.labels),
            },
        }


def metrics_label(body: Any, served: Mapping[str, Served]) -> str:
    """The model a request is for, as the metrics label it ("" if none)."""
    name = body.get("model") if isinstance(body, dict) else None
    if name is None and len(served) == 1:
        return next(iter(served))
    return name if isinstance(name, str) and name in served else ""


def serve_models(
    models: Mapping[str, Any], max_rows: int | None, ngram: bool
) -> dict[str, Served]:
    """Each model with its generator and its batching engine."""
    served: dict[str, Served] = {}
    for name, model in models.items():
        generator = Generator(model, ngram=ngram)
        engine = Engine(generator, **({"max_rows": max_rows} if max_rows else {}))
        path = getattr(model, "path", None)
        created = int(path.stat().st_mtime) if path and path.exists() else 0
        ids = TokenIds(generator.vocabulary)
        served[name] = Served(name, model, generator, engine, created, ids)
    return served


def health_report(served: Mapping[str, Served]) -> dict[str, Any]:
    """`/health`: up, and how busy each model's engine is."""
    return {
        "status": "ok",
        "models": {
            name: {
                "active_rows": s.engine.active_rows,
                "waiting_requests": s.engine.waiting,
                "finished": s.engine.finished,
                "cancelled": s.engine.cancelled,
                "timed_out": s.engine.timed_out,
            }
            for name, s in served.items()
        },
    }
