"""VADER sentiment: ordering on clear examples, the documented thresholds, missing text,
and that scoring is offline and lazy."""

from __future__ import annotations

import socket
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tenure.errors import ModelError
from tenure.models import sentiment
from tenure.models.sentiment import Sentiment, sentiment_label, sentiment_scores

POSITIVE = "I love this product, great support"
NEUTRAL = "The invoice was sent on Tuesday."
NEGATIVE = "This is terrible, the app keeps crashing and nobody answers"


def test_clear_examples_are_ordered() -> None:
    positive, neutral, negative = sentiment_scores([POSITIVE, NEUTRAL, NEGATIVE])
    assert positive > neutral > negative
    assert positive > 0.5
    assert neutral == 0.0
    assert negative < -0.3
    labels = [sentiment_label(s) for s in (positive, neutral, negative)]
    assert labels == ["positive", "neutral", "negative"]
    assert labels == [Sentiment.POSITIVE, Sentiment.NEUTRAL, Sentiment.NEGATIVE]


def test_scores_stay_in_range_and_match_the_input_length() -> None:
    texts = [
        POSITIVE,
        NEGATIVE,
        "AMAZING!!! best thing ever :) :) love love love",
        "worst, awful, horrible, hate it, useless, broken!!!",
        "ok",
    ]
    scores = sentiment_scores(texts)
    assert scores.shape == (5,)
    assert scores.dtype == np.float64
    assert np.all((scores >= -1.0) & (scores <= 1.0))
    assert scores[2] > 0.9
    assert scores[3] < -0.9
    # Any iterable works, including a generator and a pandas column.
    assert sentiment_scores(t for t in texts).tolist() == scores.tolist()
    assert sentiment_scores(pd.Series(texts)).tolist() == scores.tolist()


def test_missing_and_blank_text_is_neutral() -> None:
    scores = sentiment_scores([None, "", "   \n", float("nan"), POSITIVE])  # type: ignore[list-item]
    assert scores[:4].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert scores[4] > 0.5
    assert sentiment_scores([]).shape == (0,)


def test_labels_use_vaders_documented_thresholds() -> None:
    assert sentiment_label(0.05) is Sentiment.POSITIVE
    assert sentiment_label(0.0499) is Sentiment.NEUTRAL
    assert sentiment_label(-0.0499) is Sentiment.NEUTRAL
    assert sentiment_label(-0.05) is Sentiment.NEGATIVE
    assert sentiment_label(1) is Sentiment.POSITIVE
    assert sentiment_label(-1.0) is Sentiment.NEGATIVE


def test_bad_input_is_rejected() -> None:
    with pytest.raises(ModelError, match=r"wrap it in a list: sentiment_scores\(\[text\]\)"):
        sentiment_scores(POSITIVE)
    with pytest.raises(ModelError, match=r"text 1 is 3 \(int\); expected a string or None"):
        sentiment_scores(["fine", 3])  # type: ignore[list-item]
    with pytest.raises(ModelError, match=r"compound score in \[-1, 1\] \(got 1.5\)"):
        sentiment_label(1.5)
    with pytest.raises(ModelError, match=r"got nan"):
        sentiment_label(float("nan"))


def test_scoring_never_touches_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    sentiment._analyzer.cache_clear()  # rebuild the analyser (reads its lexicon files) offline
    assert sentiment_scores([POSITIVE])[0] > 0.5


def test_importing_the_module_does_not_load_vader() -> None:
    code = "import sys, tenure.models.sentiment; print('vaderSentiment' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
