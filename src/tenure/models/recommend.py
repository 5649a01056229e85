"""Next product or feature to adopt: item-to-item recommendations from co-usage.

:class:`CoUsageRecommender` learns how often two items (features, products,
add-ons) are used by the same entities (accounts or users), and recommends to
each entity the items it does not use yet that go with the ones it does, naming
the item that contributed most (``because``) so the message can say why:
"teams that use SSO also use audit logs".

The entity × item matrix is binary (used or not, however often). Two
similarities are offered:

* ``cosine``: co-users / sqrt(users of a · users of b), in [0, 1];
* ``lift``: co-users · entities / (users of a · users of b), > 1 when two items
  go together more often than chance.

A pair counts only with at least ``min_support`` co-users, so one odd account
does not create a recommendation. An entity's score for an item is the sum of
that item's similarities to the items the entity uses. Items are expected to
number in the hundreds or thousands (the similarity is an items × items matrix);
entities may be many, they are scored in blocks.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Sequence
from typing import Any, Self

import numpy as np
import pandas as pd
from scipy import sparse

from tenure.errors import ModelError
from tenure.models._base import Estimator, check_fitted

__all__ = ["CoUsageRecommender"]

SIMILARITIES = ("cosine", "lift")
RECOMMENDATION_COLUMNS = ["entity", "item", "score", "rank", "because"]

# cells of the (entities × candidates × used items) block scored at once
_BLOCK_CELLS = 4_000_000


class CoUsageRecommender(Estimator):
    """Recommends items an entity does not use yet from items used together.

    Parameters: *min_support*, the fewest entities that must use two items for
    the pair to count; *similarity*, ``"cosine"`` or ``"lift"``.
    """

    _fitted_attributes = ("similarity_", "items_")

    def __init__(self, min_support: int = 2, similarity: str = "cosine") -> None:
        self.min_support = min_support
        self.similarity = similarity

    def _check_params(self) -> None:
        problems = []
        if (
            isinstance(self.min_support, bool)
            or not isinstance(self.min_support, numbers.Integral)
            or self.min_support < 1
        ):
            problems.append(f"min_support must be an integer ≥ 1, got {self.min_support!r}")
        if self.similarity not in SIMILARITIES:
            problems.append(
                f"similarity must be one of {', '.join(SIMILARITIES)}, got {self.similarity!r}"
            )
        if problems:
            raise ModelError("; ".join(problems))

    @staticmethod
    def _pairs(usage: Any, entity_col: str, item_col: str) -> pd.DataFrame:
        if not isinstance(usage, pd.DataFrame):
            raise ModelError(f"usage must be a pandas DataFrame, got {type(usage).__name__}")
        missing = [c for c in (entity_col, item_col) if c not in usage.columns]
        if missing:
            raise ModelError(
                f"usage lacks the column(s) {', '.join(map(repr, missing))}; it has "
                f"{', '.join(map(repr, usage.columns))}",
                hint="pass entity_col= and item_col= to fit()",
            )
        return usage[[entity_col, item_col]].dropna().drop_duplicates()

    # ------------------------------------------------------------------ fit
    def fit(
        self, usage: pd.DataFrame, entity_col: str = "account_id", item_col: str = "feature"
    ) -> Self:
        """Learn item-item similarity from *usage*: one row per (entity, item) used."""
        self._check_params()
        pairs = self._pairs(usage, entity_col, item_col)
        if pairs.empty:
            raise ModelError("usage has no (entity, item) rows to learn from")
        entities = pd.Index(pairs[entity_col].unique())
        items = pd.Index(sorted(pairs[item_col].unique(), key=str))
        rows = entities.get_indexer(pairs[entity_col])
        cols = items.get_indexer(pairs[item_col])
        used = sparse.csr_matrix(
            (np.ones(len(pairs)), (rows, cols)), shape=(len(entities), len(items))
        )
        co_users = (used.T @ used).toarray()
        users = np.diag(co_users).copy()
        if self.similarity == "cosine":
            similarity = co_users / np.sqrt(np.outer(users, users))
        else:
            similarity = co_users * len(entities) / np.outer(users, users)
        similarity[co_users < self.min_support] = 0.0
        np.fill_diagonal(similarity, 0.0)

        self.entity_col_ = entity_col
        self.item_col_ = item_col
        self.items_ = items
        self.item_users_ = pd.Series(users.astype(int), index=items, name="users")
        self.similarity_ = similarity
        self.entities_ = entities
        self.usage_ = used
        self.n_entities_ = len(entities)
        return self

    def similarity_frame(self) -> pd.DataFrame:
        """The learned item × item similarity (0 where the pair lacks support)."""
        check_fitted(self)
        return pd.DataFrame(self.similarity_, index=self.items_, columns=self.items_)

    # ------------------------------------------------------------ recommend
    def recommend(
        self, usage_or_entities: pd.DataFrame | Iterable[Any], k: int = 3
    ) -> pd.DataFrame:
        """Top *k* items per entity that it does not use yet.

        Pass current usage (a frame with the columns fit saw) or entity ids, which
        are looked up in the usage fit saw. Items unknown at fit are ignored, and an
        entity with nothing to recommend (unknown, or using every related item)
        gets no rows. Columns: entity, item, score, rank (1 = best), because (the
        used item that contributed most to the score).
        """
        check_fitted(self)
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
            raise ModelError(f"k must be an integer ≥ 1, got {k!r}")
        entities, used = self._usage_of(usage_or_entities)
        frames = []
        n_items = len(self.items_)
        block = max(1, _BLOCK_CELLS // max(1, n_items * min(k, n_items)))
        for start in range(0, len(entities), block):
            chunk = used[start : start + block].toarray()
            frames.append(self._top_k(entities[start : start + block], chunk, int(k)))
        if not frames:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in RECOMMENDATION_COLUMNS})
        return pd.concat(frames, ignore_index=True)

    def _usage_of(self, usage_or_entities: Any) -> tuple[np.ndarray[Any, Any], Any]:
        if isinstance(usage_or_entities, pd.DataFrame):
            pairs = self._pairs(usage_or_entities, self.entity_col_, self.item_col_)
            pairs = pairs[pairs[self.item_col_].isin(self.items_)]
            entities = pd.Index(pairs[self.entity_col_].unique())
            used = sparse.csr_matrix(
                (
                    np.ones(len(pairs)),
                    (
                        entities.get_indexer(pairs[self.entity_col_]),
                        self.items_.get_indexer(pairs[self.item_col_]),
                    ),
                ),
                shape=(len(entities), len(self.items_)),
            )
            return entities.to_numpy(), used
        if isinstance(usage_or_entities, str | bytes):
            raise ModelError(
                "pass a list of entity ids (or a usage frame), not a single string",
                hint=f"recommend([{usage_or_entities!r}])",
            )
        wanted = list(usage_or_entities)
        positions = self.entities_.get_indexer(wanted)
        known = positions >= 0
        entities = np.asarray(wanted, dtype=object)[known]
        return entities, self.usage_[positions[known]]

    def _top_k(
        self, entities: Sequence[Any] | np.ndarray[Any, Any], used: np.ndarray[Any, Any], k: int
    ) -> pd.DataFrame:
        scores = used @ self.similarity_
        scores[used > 0] = 0.0  # never recommend what is already used
        k = min(k, scores.shape[1])
        # best first; ties broken by item order, so results are deterministic
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        top = np.take_along_axis(scores, order, axis=1)
        row, rank = np.nonzero(top > 0)
        item = order[row, rank]
        # per (entity, recommended item): the used item with the largest share
        contribution = used[row] * self.similarity_[:, item].T
        because = np.argmax(contribution, axis=1)
        return pd.DataFrame(
            {
                "entity": np.asarray(entities, dtype=object)[row],
                "item": self.items_.to_numpy()[item],
                "score": top[row, rank],
                "rank": rank + 1,
                "because": self.items_.to_numpy()[because],
            }
        )
