"""`GenerationRequest`: what one generation call asks for besides its seeds and
sampling settings (how long, where to stop, new items only, the random seed),
with the defaults every caller shares: `textgen generate`, `Generator`, the
batching engine and `textgen serve`. Light (no NumPy), so the command line
can read its defaults without importing the generator."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import TextgenError

UNTIL = ("sentence", "paragraph")  # where `until` may end a text
MAX_TOP = 20  # most alternatives recorded per token (as OpenAI allows)


@dataclass(frozen=True)
class GenerationRequest:
    """One generation call's length, endings and novelty."""

    length: int = 50  # most tokens generated per row (-n, max_tokens)
    stop: tuple[str, ...] = ()  # strings that end a row's text where they appear
    until: str | None = None  # "sentence" or "paragraph": end at the first one
    # An item model's rows that drew a training item are drawn again, up to
    # `max_tries` times.
    novel: bool = False
    max_tries: int = 20
    random_seed: int | None = None  # fixes the draws; None: a fresh one
    # Record each generated token's log-probability and this many most likely
    # alternatives (`Sample.choices`); None: record nothing (faster).
    logprobs: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "stop", tuple(self.stop))
        if self.until not in (None, *UNTIL):
            raise TextgenError(f"until must be one of {', '.join(UNTIL)}, or None")
        if self.length < 0 or self.max_tries < 0:
            raise TextgenError("length and max_tries must not be negative")
        if self.logprobs is not None and not 0 <= self.logprobs <= MAX_TOP:
            raise TextgenError(f"logprobs must be from 0 to {MAX_TOP}")
