"""The generation contract, declared once: what a generation call may ask
for, with every default, bound and check.

`SamplingSettings` (how each next token is picked) and `GenerationRequest`
(how long, where to stop, new items only, the random seed, log-probabilities)
are frozen dataclasses whose numeric fields are `knob`s: each carries its
default, its bounds and its help. The dataclass checks itself with them; the
command line builds its options' defaults and help from them; the server
checks a request's JSON with them and hands them to the playground (`GET
/v1/settings`). One default, one bound and one message, whichever door a
value comes in by: a value out of bounds raises `SettingError`, which names
the field, and each door words it with its own name for it (`--top-k`,
`top_k`).

Light (no NumPy), so the command line reads its defaults at once.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..errors import TextgenError

# A larger integer means the same as this one for a field with no upper bound
# (a top_k beyond the vocabulary keeps every word; a window beyond the text
# looks at all of it): a JSON client may send any size of integer.
COUNT_CAP = 1 << 31


class SettingError(TextgenError):
    """A generation setting out of its bounds: `field` is its name in the
    library, `problem` what is wrong ("must be 0 or more, not -1")."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field} {problem}")
        self.field, self.problem = field, problem

    def named(self, name: str) -> str:
        """The message with the field called `name` (a flag, a JSON key)."""
        return f"{name} {self.problem}"


class Knob(NamedTuple):
    """What one setting may be. `low`/`high` bound a number (`*_open`: the
    bound itself is excluded); `wanted` words the rule for messages, and
    `ok`, when given, is the rule itself (for one that is not a range). A
    named tuple rather than a dataclass: the command line reads these at
    start-up, and the class is cheaper to make (this module imports in about
    4.0 ms against 4.4, `python -X importtime`, 8 runs each)."""

    help: str
    kind: type = float
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    wanted: str | None = None
    ok: Callable[[Any], bool] | None = None

    def describe(self) -> str:
        """What the value must be, as a message says it."""
        if self.wanted:
            return self.wanted
        low = None if self.low is None else _shown(self.low)
        high = None if self.high is None else _shown(self.high)
        if self.low is not None and self.high is not None:
            if not self.low_open and not self.high_open:
                return f"from {low} to {high}"
            left = f"more than {low}" if self.low_open else f"at least {low}"
            right = f"below {high}" if self.high_open else f"at most {high}"
            return f"{left} and {right}"
        if self.low is not None:
            return f"more than {low}" if self.low_open else f"{low} or more"
        if self.high is not None:
            return f"below {high}" if self.high_open else f"{high} or less"
        return "a finite number" if self.kind is float else "an integer"

    def allows(self, value: float) -> bool:
        if self.ok is not None:
            return self.ok(value)
        if self.low is not None and (
            value < self.low or (self.low_open and value == self.low)
        ):
            return False
        return self.high is None or (
            value < self.high or (not self.high_open and value == self.high)
        )

    def check(self, name: str, value: Any) -> Any:
        """`value` as this setting's kind (an integral float is an integer;
        a huge unbounded integer is `COUNT_CAP`), or `SettingError`."""
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise SettingError(name, f"must be {_a(self.kind)}, not {kind_of(value)}")
        if self.kind is int:
            integral = isinstance(value, numbers.Integral)
            if not integral and not float(value).is_integer():
                raise SettingError(name, f"must be an integer, not {_shown(value)}")
            value = int(value)
        elif not math.isfinite(value):
            raise SettingError(name, "must be a finite number")
        if not self.allows(value):
            raise SettingError(name, f"must be {self.describe()}, not {_shown(value)}")
        if self.kind is int and self.high is None:
            value = min(value, COUNT_CAP)
        return self.kind(value)

    def card(self, default: Any) -> dict[str, Any]:
        """What a client needs to offer the setting: default, bounds, help."""
        card = {"default": default, "type": self.kind.__name__, "help": self.help}
        for key in ("low", "high", "low_open", "high_open", "wanted"):
            value = getattr(self, key)
            if value is not None and value is not False:  # a bound of 0 counts
                card[key] = value
        return card


def knob(default: Any, help: str, **bounds: Any) -> Any:
    """A dataclass field with its default and its `Knob` (see `checked`)."""
    return dataclasses.field(default=default, metadata={"knob": Knob(help, **bounds)})


def knobs(cls: type) -> dict[str, tuple[Knob, Any]]:
    """Each knob field of a dataclass: its `Knob` and default."""
    return {
        field.name: (field.metadata["knob"], field.default)
        for field in dataclasses.fields(cls)
        if "knob" in field.metadata
    }


def checked(instance: Any) -> None:
    """Check (and normalise in place) every knob field of a frozen dataclass
    instance; call it from `__post_init__`."""
    for name, (bounds, _) in knobs(type(instance)).items():
        value = bounds.check(name, getattr(instance, name))
        object.__setattr__(instance, name, value)


def settings_card(*classes: type) -> dict[str, dict[str, Any]]:
    """Every knob of `classes`, as `Knob.card` gives it."""
    return {
        name: bounds.card(default)
        for cls in classes
        for name, (bounds, default) in knobs(cls).items()
    }


def _a(kind: type) -> str:
    return "an integer" if kind is int else "a number"


def kind_of(value: Any) -> str:
    """What a value is, as a message names it."""
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _shown(value: float) -> str:
    """A number as a message shows it: short, however large."""
    if isinstance(value, int) and abs(value) < 10**15:
        return f"{value:,}"
    if isinstance(value, float) and value.is_integer() and abs(value) < 10**15:
        return f"{int(value):,}"
    return f"{value:.3g}"


@dataclass(frozen=True)
class SamplingSettings:
    """How each next word is picked from the model's logits. Each field's
    default, bounds and help are its `knob`, which every front end reads.

    The default temperature is 0.8, for the library, the command line, the
    server and the playground alike: the small networks textgen trains give
    noticeably less coherent text at 1.0 (the distribution's long tail of
    rare words), and 0.8 keeps most of its variety; 0 is greedy."""

    temperature: float = knob(
        0.8, "Randomness; 0 is greedy.", low=0, wanted="0 (greedy) or more"
    )
    top_k: int = knob(
        0,
        "Sample from the k most likely words only (0: off).",
        kind=int,
        low=0,
        wanted="0 (off) or more",
    )
    top_p: float = knob(
        1.0,
        "Sample from the most likely words covering probability p (1: off).",
        low=0,
        low_open=True,
        high=1,
    )
    min_p: float = knob(
        0.0,
        "Drop words less likely than min-p times the likeliest (0: off).",
        low=0,
        high=1,
        high_open=True,
    )
    repetition_penalty: float = knob(
        1.0,
        "Make words of the last repeat-window words less likely (1: off).",
        low=1,
        wanted="1 (off) or more",
    )
    repeat_window: int = knob(
        64, "Recent words the repetition penalty looks at.", kind=int, low=1
    )
    no_repeat_ngram: int = knob(
        0,
        "Never repeat a run of this many words (0: off; 2 or more).",
        kind=int,
        low=0,
        wanted="0 (off) or 2 or more",
        ok=lambda n: n == 0 or n >= 2,
    )

    @property
    def reads_history(self) -> bool:
        """Whether the words so far change the choice (the repetition rules)."""
        return self.repetition_penalty != 1 or self.no_repeat_ngram >= 2

    def __post_init__(self) -> None:
        checked(self)


UNTIL = ("sentence", "paragraph")  # where `until` may end a text
MAX_TOP = 20  # most alternatives recorded per token (as OpenAI allows)


@dataclass(frozen=True)
class GenerationRequest:
    """One generation call's length, endings and novelty (the numbers are
    `knob`s, as in `SamplingSettings`)."""

    length: int = knob(50, "Most words to generate.", kind=int, low=0)  # -n, max_tokens
    stop: tuple[str, ...] = ()  # strings that end a row's text where they appear
    until: str | None = None  # "sentence" or "paragraph": end at the first one
    # An item model's rows that drew a training item are drawn again, up to
    # `max_tries` times.
    novel: bool = False
    max_tries: int = knob(
        20,
        "With novel: most times one sample is drawn again.",
        kind=int,
        low=0,
        high=1000,
    )
    random_seed: int | None = knob(
        None, "Make the output repeatable.", kind=int, low=0, high=2**32 - 1
    )  # None: a fresh one
    # A labelled model's label to write like (`Generator.labels`); None: none.
    label: str | None = None
    # Record each generated token's log-probability and this many most likely
    # alternatives (`Sample.choices`); None: record nothing (faster).
    logprobs: int | None = knob(
        None,
        "Each token's log-probability and this many likeliest alternatives.",
        kind=int,
        low=0,
        high=MAX_TOP,
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "stop", tuple(self.stop))
        if self.until not in (None, *UNTIL):
            raise SettingError("until", f"must be one of {', '.join(UNTIL)}, or none")
        if self.label is not None and not isinstance(self.label, str):
            raise SettingError("label", f"must be text, not {kind_of(self.label)}")
        checked(self)


def resolve_novel(novel: bool | None, items: bool, max_tries_given: bool) -> bool:
    """Whether a call draws new items only: `novel` as asked (None: on for an
    item model), refused for a model trained on one text, as is a `max_tries`
    given without it (`SettingError` naming the field)."""
    trained_on_items = "needs a model trained with --documents lines or paragraphs"
    if novel and not items:
        raise SettingError("novel", trained_on_items)
    novel = items if novel is None else novel
    if max_tries_given and not novel:
        raise SettingError(
            "max_tries",
            f"is for novel, which {trained_on_items}"
            if not items
            else "is for novel, which this request turns off (leave out --no-novel)",
        )
    return novel
