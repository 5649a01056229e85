"""Sentiment of short customer text (tickets, survey comments, chat) with VADER.

VADER (Hutto & Gilbert, 2014) is a rule-based lexicon tuned for short, informal
text; its lexicon files ship inside the ``vaderSentiment`` package, so scoring
is offline and needs no model download. The analyser is built on first use and
then reused, so importing this module does no work.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from tenure.errors import ModelError

__all__ = ["Sentiment", "sentiment_label", "sentiment_scores"]

#: VADER's documented thresholds on the compound score: ≥ 0.05 is positive,
#: ≤ −0.05 negative, anything between neutral.
POSITIVE_FROM = 0.05
NEGATIVE_BELOW = -0.05


class Sentiment(StrEnum):
    """The polarity of a text, compared equal to its plain name ("negative", …)."""

    NEGATIVE = "negative"
    NEUTRAL = "neutral"
    POSITIVE = "positive"


def sentiment_scores(texts: Iterable[str | None]) -> npt.NDArray[np.float64]:
    """VADER compound scores in [−1, 1], one per text, in order.

    ``None``, NaN (a missing cell of a pandas column) and blank text score 0.0,
    VADER's neutral. Anything else that is not a string raises
    :class:`~tenure.errors.ModelError` naming its position.
    """
    if isinstance(texts, str | bytes):
        raise ModelError(
            "sentiment_scores expects a collection of texts, got a single string; "
            "wrap it in a list: sentiment_scores([text])"
        )
    scores: list[float] = []
    for position, text in enumerate(texts):
        if text is None or (isinstance(text, float) and math.isnan(text)):
            scores.append(0.0)
        elif not isinstance(text, str):
            raise ModelError(
                f"text {position} is {text!r} ({type(text).__name__}); expected a string or None"
            )
        elif not text.strip():
            scores.append(0.0)
        else:
            scores.append(float(_analyzer().polarity_scores(text)["compound"]))
    return np.asarray(scores, dtype=np.float64)


def sentiment_label(score: float) -> Sentiment:
    """Name the polarity of a compound score with VADER's ±0.05 thresholds."""
    if isinstance(score, bool) or not isinstance(score, int | float | np.floating | np.integer):
        raise ModelError(f"score must be a number in [-1, 1] (got {score!r})")
    if not -1.0 <= score <= 1.0:  # also rejects NaN
        raise ModelError(f"score must be a compound score in [-1, 1] (got {score!r})")
    if score >= POSITIVE_FROM:
        return Sentiment.POSITIVE
    if score <= NEGATIVE_BELOW:
        return Sentiment.NEGATIVE
    return Sentiment.NEUTRAL


@functools.cache
def _analyzer() -> Any:
    """The one VADER analyser, built on first use (it reads its lexicon files)."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()
