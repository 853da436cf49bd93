"""Choose next words from logits: penalties, filters, temperature, drawing.

Pure NumPy functions of a (batch, vocab_size) logits array (and, for the
penalties, the ids so far), applied by `next_ids` in this fixed order:

1. banned ids (`<pad>`, `<unk>`) removed;
2. repetition penalty on words of the last `repeat_window` ids;
3. no-repeat n-gram: words that would repeat an n-gram are removed;
4. top-k, 5. top-p, 6. min-p filters (on the penalised distribution);
7. temperature (0, or below `GREEDY_BELOW`: the most likely word), 8. the draw.

Whatever the settings, a banned id is never chosen and every row gets a word
(see `process` for how a rule that rules out everything is relaxed).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .contract import SamplingSettings

# Temperatures below this are greedy: 1 / T must stay finite in float32, and
# so far below 1 the draw is the likeliest word anyway.
GREEDY_BELOW = 1e-30
_LARGEST = np.finfo(np.float32).max


def ban(logits: np.ndarray, banned_ids: Sequence[int]) -> np.ndarray:
    """Make the given ids impossible to choose (and a NaN score, which a
    damaged model could give, impossible too; +inf becomes the largest float)."""
    return _banned(logits, banned_ids)[0]


def _banned(logits: np.ndarray, banned_ids: Sequence[int]) -> tuple[np.ndarray, bool]:
    """`ban`, and whether every score was finite before (then, with a word
    left that is not banned, no row can have lost every word)."""
    logits = np.array(logits, dtype=np.float32)  # a copy
    finite = bool(np.isfinite(logits).all())  # rare otherwise: a cheap test first
    if not finite:
        np.nan_to_num(logits, copy=False, nan=-np.inf, posinf=_LARGEST, neginf=-np.inf)
    logits[..., list(banned_ids)] = -np.inf
    return logits, finite


def top_k_filter(logits: np.ndarray, k: int) -> np.ndarray:
    """Keep the k largest logits per row (ties at the k-th stay); 0 keeps all."""
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth_largest = np.partition(logits, -k, axis=-1)[..., -k, None]
    return np.where(logits >= kth_largest, logits, -np.inf)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities from logits along the last axis (-inf gives 0)."""
    shifted = logits - np.max(logits, axis=-1, keepdims=True)
    weights = np.exp(shifted)
    return weights / weights.sum(axis=-1, keepdims=True)


def top_p_filter(logits: np.ndarray, p: float) -> np.ndarray:
    """Keep, per row, the most likely words until their probability reaches p."""
    if p >= 1:
        return logits
    order = np.argsort(-logits, axis=-1)
    sorted_probs = np.take_along_axis(softmax(logits), order, axis=-1)
    mass_before = np.cumsum(sorted_probs, axis=-1) - sorted_probs
    keep_sorted = mass_before < p
    keep_sorted[..., 0] = True  # the likeliest stays, even if p is 0 in float32
    keep = np.zeros_like(keep_sorted)
    np.put_along_axis(keep, order, keep_sorted, axis=-1)
    return np.where(keep, logits, -np.inf)


def min_p_filter(logits: np.ndarray, min_p: float) -> np.ndarray:
    """Keep, per row, the words at least `min_p` times as likely as the likeliest."""
    if min_p <= 0:
        return logits
    # p_i >= min_p * p_max  <=>  logit_i >= logit_max + log(min_p)
    floor = logits.max(axis=-1, keepdims=True) + np.log(min_p)
    return np.where(logits >= floor, logits, -np.inf)


def repetition_penalty(
    logits: np.ndarray, history: np.ndarray, penalty: float, window: int
) -> np.ndarray:
    """Make the words among each row's last `window` ids less likely: a positive
    logit is divided by `penalty`, a negative one multiplied (as in CTRL), so
    the word's probability falls either way. Each word is penalised once.

    Args:
        logits: (batch, vocab_size).
        history: (batch, t) ids so far, oldest first.
    """
    if penalty == 1 or history.shape[-1] == 0:
        return logits
    logits = np.array(logits, dtype=np.float32)
    for row, recent in enumerate(history[:, -window:]):
        ids = np.unique(recent)
        values = logits[row, ids].astype(np.float64)
        # Clipped, so a huge penalty gives the most negative float32, quietly.
        with np.errstate(over="ignore", under="ignore"):
            penalised = np.where(values > 0, values / penalty, values * penalty)
        logits[row, ids] = np.clip(penalised, -_LARGEST, _LARGEST)
    return logits


def no_repeat_ngram(logits: np.ndarray, history: np.ndarray, n: int) -> np.ndarray:
    """Remove, per row, every word that would complete an n-gram already in
    that row's history (the seed included)."""
    if n < 2 or history.shape[-1] < n:  # no whole n-gram yet
        return logits
    logits = np.array(logits, dtype=np.float32)
    for row, ids in enumerate(history):
        grams = np.lib.stride_tricks.sliding_window_view(ids, n)  # (len - n + 1, n)
        if not len(grams):
            continue
        repeats = (grams[:, :-1] == ids[len(ids) - n + 1 :]).all(axis=1)
        logits[row, grams[repeats, -1]] = -np.inf
    return logits


def process(
    logits: np.ndarray,
    settings: SamplingSettings,
    banned_ids: Sequence[int] = (),
    history: np.ndarray | None = None,
    relaxed: set[str] | None = None,
) -> np.ndarray:
    """Steps 1 to 6 of the order above: the logits a word is then drawn from.

    Every row keeps at least one word that is not banned: when the no-repeat
    n-gram rule leaves a row nothing, the rule is lifted for that row at that
    step (the softest way out; the filters after it always keep the likeliest
    word), and its name is added to `relaxed`. A row with no usable score at
    all (a damaged model) falls back to every allowed word alike.
    """
    logits, finite = _banned(logits, banned_ids)
    if history is not None and not settings.reads_history:
        history = None  # the rules that read it are off
    if history is not None:
        logits = repetition_penalty(
            logits, history, settings.repetition_penalty, settings.repeat_window
        )
        filtered = no_repeat_ngram(logits, history, settings.no_repeat_ngram)
        stuck = _stuck(filtered)
        if stuck.any() and np.isfinite(logits[stuck]).any(axis=-1).all():
            filtered[stuck] = logits[stuck]
            if relaxed is not None:
                relaxed.add("no_repeat_ngram")
        logits = filtered
    # Only a damaged model's scores, or a rule above, can leave a row nothing.
    unbanned = len(set(banned_ids)) < logits.shape[-1]
    stuck = None if finite and unbanned and history is None else _stuck(logits)
    if stuck is not None and stuck.any():
        allowed = np.zeros(logits.shape[-1], dtype=np.float32)
        allowed[list(banned_ids)] = -np.inf
        logits[stuck] = allowed
    logits = top_p_filter(top_k_filter(logits, settings.top_k), settings.top_p)
    return min_p_filter(logits, settings.min_p)


def _stuck(logits: np.ndarray) -> np.ndarray:
    """Which rows have no word left to choose."""
    return ~np.isfinite(logits).any(axis=-1)


# Words per block in `draw`: one cumulative sum over block totals, then one
# within the chosen block, instead of a cumulative sum over the whole vocabulary.
_BLOCK = 64
_ONES = np.ones(_BLOCK, dtype=np.float32)  # a block's total is a product with it
_ONES.flags.writeable = False


def draw(
    weights: np.ndarray,
    rng: np.random.Generator | None,
    uniforms: np.ndarray | None = None,
) -> np.ndarray:
    """One index per row, with probability proportional to `weights` (>= 0).

    An inverse-CDF draw done in two levels (blocks, then words), which costs a
    fraction of a full-vocabulary cumulative sum. Zero weights are never drawn.
    The one random number per row is `rng.random(rows)`, or `uniforms` if given.
    """
    batch, size = weights.shape
    padded = _in_blocks(batch, size)
    padded[:, :size] = weights
    return _draw_blocks(padded, rng, uniforms)


def _in_blocks(batch: int, size: int) -> np.ndarray:
    """Zero weights for `batch` rows of `size` words, widened to whole blocks
    (`draw` fills the first `size` columns; `next_ids` writes its weights
    straight into them)."""
    return np.zeros((batch, size + -size % _BLOCK), dtype=np.float32)


def _draw_blocks(
    padded: np.ndarray, rng: np.random.Generator | None, uniforms: np.ndarray | None
) -> np.ndarray:
    """`draw` of weights already widened to whole blocks (`_in_blocks`)."""
    batch = padded.shape[0]
    blocks = padded.reshape(batch, -1, _BLOCK)  # (batch, n_blocks, _BLOCK)
    block_mass = (blocks @ _ONES).cumsum(axis=-1, dtype=np.float64)
    if batch == 1:  # the same draw with scalars: half the time for one row
        uniform = rng.random() if uniforms is None else uniforms[0]
        return _draw_row(blocks[0], block_mass[0], uniform)
    if uniforms is None:
        uniforms = rng.random(batch)
    target = uniforms * block_mass[:, -1]  # (batch,)
    rows = np.arange(batch)
    # The first block, then the first word, whose cumulative mass passes target.
    k = np.minimum((block_mass <= target[:, None]).sum(axis=-1), blocks.shape[1] - 1)
    before = np.where(k > 0, block_mass[rows, k - 1], 0.0)
    inner = blocks[rows, k]  # (batch, _BLOCK)
    word_mass = np.cumsum(inner, axis=-1, dtype=np.float64)
    j = np.minimum((word_mass <= (target - before)[:, None]).sum(axis=-1), _BLOCK - 1)
    # Rounding can carry the target past the block's last word; then take the
    # last word in the block that has weight.
    last = _BLOCK - 1 - np.argmax(inner[:, ::-1] > 0, axis=-1)
    j = np.where(inner[rows, j] > 0, j, last)
    return k * _BLOCK + j


def _draw_row(blocks: np.ndarray, block_mass: np.ndarray, uniform: float) -> np.ndarray:
    """`draw` for one row: (n_blocks, _BLOCK) weights, their blocks'
    cumulative mass. Counting the masses <= target is a binary search, as
    the masses never fall. (Python floats and array methods: each NumPy
    scalar or module-level call costs microseconds, and this runs per word.)"""
    target = float(uniform) * float(block_mass[-1])
    k = min(int(block_mass.searchsorted(target, "right")), len(blocks) - 1)
    before = float(block_mass[k - 1]) if k > 0 else 0.0
    inner = blocks[k]
    word_mass = inner.cumsum(dtype=np.float64)
    j = min(int(word_mass.searchsorted(target - before, "right")), _BLOCK - 1)
    if not inner[j] > 0:  # see `draw`
        j = _BLOCK - 1 - int(np.argmax(inner[::-1] > 0))
    return np.array([k * _BLOCK + j])


def next_ids(
    logits: np.ndarray,
    settings: SamplingSettings | Sequence[SamplingSettings],
    rng: np.random.Generator | None,
    banned_ids: Sequence[int] = (),
    history: np.ndarray | None = None,
    relaxed: set[str] | None = None,
    uniforms: np.ndarray | None = None,
) -> np.ndarray:
    """Pick one id per row of `logits` (batch, vocab_size).

    Args:
        logits: unnormalised scores from the model.
        settings: one `SamplingSettings` for every row, or one per row.
        rng: the only source of randomness, so a seed fixes the output.
        banned_ids: ids never to pick (`<pad>`, `<unk>`).
        history: (batch, t) ids so far, for the repetition controls.
        relaxed: collects the names of rules lifted because they left a row
            no word (see `process`).
        uniforms: with one `settings`, the row's random number in [0, 1) for
            the draw, instead of `rng.random(batch)`: so rows of several
            requests are drawn in one call, each from its own generator.
    """
    if not isinstance(settings, SamplingSettings):  # one per row
        assert uniforms is None, "uniforms are for one shared setting"
        rows = [
            next_ids(
                logits[i : i + 1],
                one,
                rng,
                banned_ids,
                None if history is None else history[i : i + 1],
                relaxed,
            )
            for i, one in enumerate(settings)
        ]
        return np.concatenate(rows)
    logits = process(logits, settings, banned_ids, history, relaxed)
    if settings.temperature < GREEDY_BELOW:
        return np.argmax(logits, axis=-1)
    # In place on the private copy `ban` made: exp((logits - max) / T). With
    # T >= GREEDY_BELOW, 1 / T is finite in float32, so nothing overflows to
    # NaN: scores far below the maximum become -inf, then probability 0.
    logits -= logits.max(axis=-1, keepdims=True)
    scale = np.float32(1.0 / settings.temperature)
    if scale == 1:
        pass  # nothing to scale (the default)
    elif scale > 0:
        with np.errstate(over="ignore"):  # far below the maximum: -inf, as meant
            logits *= scale
    else:  # so hot that every allowed word is alike (and -inf * 0 is NaN)
        logits = np.where(np.isfinite(logits), np.float32(0), np.float32(-np.inf))
    batch, size = logits.shape
    weights = _in_blocks(batch, size)
    np.exp(logits, out=weights[:, :size])
    return _draw_blocks(weights, rng, uniforms)
