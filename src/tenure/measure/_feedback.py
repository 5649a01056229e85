"""Feedback: the decision log's randomized outcomes become uplift models, and their scores.

A campaign with a holdout (``decide.holdouts``) is a randomized experiment run
every cycle: whether a customer is treated is a hash of the account and the
campaign, nothing the customer did. Each of its decisions is a labelled row:

* **features**: the snapshot the decision logged (what the policy saw then), and
  the account's firmographic traits (plan, industry, size: :func:`account_traits`);
* **treatment**: 1 for a decision the campaign's *pass* check assigned to the
  action (whatever review made of it), 0 for a held-out one (status ``holdout``) —
  intention to treat, as in the holdout report (:mod:`tenure.measure._report`);
* **outcome**: churned within the attribution window after the decision
  (a ``Subscription Canceled`` linked by :func:`tenure.decide.decision_outcomes`).

Only decisions whose window has elapsed by *as_of* are used. One model per
treatment type (the action's ``type``, else its channel) is either an
:class:`~tenure.measure.uplift.XLearner` on LightGBM or, for scarce outcomes, the
logit shift of :mod:`tenure.measure._logit_shift`: both are validated out of time
(the latest fifth of the decisions) by their Qini coefficient, the X-learner is
kept only when it is better with 95 % confidence (paired bootstrap), and the kept
one is refitted on every row and registered as a version of ``uplift-<type>``.

:func:`score_uplift` applies the production versions to the current feature
table and writes ``uplift_scores``: per account and treatment, the estimated gain
in the probability of staying through the window (the negated effect on churn),
which ``publish_state`` puts in the customer state, so rules rank by
``uplift × value − cost`` (:mod:`tenure.decide._engine`).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa

from tenure._config_decide import parse_duration
from tenure.decide._outcomes import decision_outcomes
from tenure.errors import ModelError
from tenure.measure._logit_shift import RISK_COLUMN, LogitShift
from tenure.measure._report import HELD_OUT, TREATED, _placements, holdout_rows
from tenure.measure._uplift_learners import MIN_ROWS_PER_ARM, XLearner
from tenure.measure._uplift_metrics import qini_coefficient
from tenure.models.registry import ModelStatus, ModelVersion, registry_for
from tenure.store._tables import decisions

if TYPE_CHECKING:
    from tenure.project import Project

__all__ = [
    "UPLIFT_PREFIX",
    "UPLIFT_TABLE",
    "VALIDATION_SHARE",
    "FeedbackReport",
    "UpliftScoring",
    "UpliftTraining",
    "account_traits",
    "score_uplift",
    "train_uplift",
    "uplift_frame",
]

UPLIFT_PREFIX = "uplift-"
UPLIFT_TABLE = "uplift_scores"
#: Each arm needs at least this many churned rows: fewer and the effect is noise.
MIN_EVENTS_PER_ARM = 5
VALIDATION_SHARE = 0.2
_META = ("decision_id", "account_id", "decided_at", "campaign", "treatment_type", "treated")


@dataclass(frozen=True, slots=True)
class UpliftTraining:
    """One treatment type's uplift model: its data, its validation and its version."""

    treatment: str
    rows: int
    treated: int
    control: int
    churn_treated: float  # observed churn rate in the window, treated rows
    churn_control: float
    #: Out-of-time Qini coefficient on the latest decisions (outcome: stayed);
    #: None when the validation rows are too few.
    qini: float | None
    version: ModelVersion
    promoted: bool


@dataclass(frozen=True, slots=True)
class FeedbackReport:
    as_of: dt.datetime
    window: dt.timedelta
    rows: int  # randomized decisions with an elapsed window
    pending: int  # randomized decisions whose window had not elapsed
    trained: dict[str, UpliftTraining] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # treatment → why
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class UpliftScoring:
    as_of: dt.datetime
    rows: int
    versions: dict[str, str] = field(default_factory=dict)  # treatment → model label


def _treatment_type(action_json: str | None, channel: str | None) -> str | None:
    action = orjson.loads(action_json) if action_json else {}
    kind = action.get("type") if isinstance(action, dict) else None
    return str(kind) if kind else channel


def uplift_frame(
    project: Project, *, as_of: dt.datetime, window: dt.timedelta | None = None
) -> tuple[pd.DataFrame, int]:
    """The randomized decisions (campaign holdouts) whose window elapsed by *as_of*, as
    rows of features, treatment and outcome; and how many are still pending."""
    window = window or parse_duration(project.config.decide.attribution_window)
    rows = holdout_rows(
        project,
        as_of,
        decisions.c.action,
        decisions.c.channel,
        decisions.c.features,
        decisions.c.scores,
    )
    records: list[dict[str, Any]] = []
    pending = 0
    for row in rows:
        placed = [p for p in _placements(row) if p.campaign is not None]
        if not placed:
            continue  # the global control: treated with whatever each rule chose
        decided = row["decided_at"]
        if decided.tzinfo is None:
            decided = decided.replace(tzinfo=dt.UTC)
        if decided + window > as_of:
            pending += 1
            continue
        features = orjson.loads(row["features"] or "{}")
        scores = orjson.loads(row["scores"] or "{}")
        if isinstance(scores, dict) and isinstance(scores.get("churn_probability"), int | float):
            features[RISK_COLUMN] = scores["churn_probability"]
        records.append(
            {
                "decision_id": row["id"],
                "account_id": row["account_id"],
                "decided_at": decided,
                "campaign": placed[0].campaign,
                "treatment_type": _treatment_type(row["action"], row["channel"]),
                "treated": int(placed[0].arm == TREATED),
                **{f"f.{k}": v for k, v in features.items()},
            }
        )
        assert placed[0].arm in (TREATED, HELD_OUT)
    frame = pd.DataFrame.from_records(records)
    if frame.empty:
        return pd.DataFrame(columns=[*_META, "churned"]), pending
    wanted = list(zip(frame["decision_id"], frame["account_id"], frame["decided_at"], strict=True))
    outcomes = decision_outcomes(project.warehouse, wanted, window=window)
    frame["churned"] = [
        int(any(o.kind == "churned" for o in outcomes[d])) for d in frame["decision_id"]
    ]
    frame.columns = [c.removeprefix("f.") for c in frame.columns]
    traits = account_traits(project)
    if not traits.empty:
        frame = frame.merge(traits, left_on="account_id", right_index=True, how="left")
    return frame, pending


#: Traits with more distinct values than this (names, ids) say nothing about who responds.
_MAX_CATEGORIES = 50


def account_traits(project: Project) -> pd.DataFrame:
    """Each account's firmographic traits (plan, industry, size…) as columns ``trait.<name>``.

    Numbers stay numbers; text becomes a category when it has at most 50 distinct
    values (so names and ids are left out). These are the account's current traits:
    firmographics that rarely change, read the same way for training and scoring.
    """
    backend = project.warehouse.backend
    if "accounts" not in backend.list_tables():
        return pd.DataFrame()
    rows = backend.to_pandas(backend.table("accounts").select("account_id", "traits"))
    records = {}
    for account_id, text in rows.itertuples(index=False):
        parsed = orjson.loads(text) if isinstance(text, str) and text else {}
        if isinstance(parsed, dict):
            records[str(account_id)] = parsed
    frame = pd.DataFrame.from_dict(records, orient="index")
    keep = {}
    for name in frame.columns:
        column = frame[name]
        numbers = pd.to_numeric(column, errors="coerce")
        if numbers.notna().sum() == column.notna().sum() and column.notna().any():
            keep[f"trait.{name}"] = numbers.astype("float64")
        elif 2 <= column.dropna().astype(str).nunique() <= _MAX_CATEGORIES:
            keep[f"trait.{name}"] = column.astype("string").astype("category")
    return pd.DataFrame(keep, index=frame.index)


def _features(frame: pd.DataFrame) -> pd.DataFrame:
    """The model's inputs: the logged features as numbers, the traits as they are."""
    names = [c for c in frame.columns if c not in (*_META, "churned")]
    found = {}
    for name in names:
        column = frame[name]
        if name.startswith("trait.") and isinstance(column.dtype, pd.CategoricalDtype):
            found[name] = column.astype("string").astype(object)
        else:
            found[name] = pd.to_numeric(column, errors="coerce").astype("float64")
    return pd.DataFrame(found, index=frame.index)


def train_uplift(
    project: Project,
    *,
    as_of: dt.datetime,
    window: dt.timedelta | None = None,
    actor: str = "system",
    promote: bool | None = None,
    random_state: int = 0,
) -> FeedbackReport:
    """Train one uplift model per treatment type from the randomized decisions (module doc).

    New versions are candidates; *promote* makes them production (default: only
    where no production version exists yet).
    """
    started = time.perf_counter()
    window = window or parse_duration(project.config.decide.attribution_window)
    frame, pending = uplift_frame(project, as_of=as_of, window=window)
    registry = registry_for(project)
    trained: dict[str, UpliftTraining] = {}
    skipped: dict[str, str] = {}
    for treatment, rows in frame.groupby("treatment_type", sort=True):
        why = _too_little(rows)
        if why:
            skipped[str(treatment)] = why
            continue
        rows = rows.sort_values(["decided_at", "decision_id"]).reset_index(drop=True)
        X, t, y = _features(rows), rows["treated"].to_numpy(), rows["churned"].to_numpy()
        learners = _learners(X, random_state)
        gains = {name: _validate(make, X, t, y) for name, make in learners.items()}
        qinis, chosen, margin = _choose(gains, t, y, random_state)
        qini = qinis[chosen]
        model = learners[chosen]().fit(X, t, y)
        name = UPLIFT_PREFIX + str(treatment)
        treated, control = t == 1, t == 0
        metrics: dict[str, float | int | None] = {
            "rows": len(rows),
            "treated": int(treated.sum()),
            "control": int(control.sum()),
            "churn_treated": float(y[treated].mean()),
            "churn_control": float(y[control].mean()),
            "qini_out_of_time": qini,
            **{f"qini_out_of_time_{n}": q for n, q in qinis.items()},
            "qini_difference_low": margin,
            "window_days": window.total_seconds() / 86_400,
        }
        version = registry.register(
            name,
            model,
            training_start=rows["decided_at"].min().to_pydatetime(),
            training_end=as_of,
            metrics=metrics,
            params={"learner": chosen, "features": list(X.columns)},
            description=f"uplift of {treatment} on churn within {metrics['window_days']:g} days",
            actor=actor,
        )
        make_production = promote if promote is not None else registry.production(name) is None
        if make_production:
            version = registry.promote(
                name, version.version, to=ModelStatus.PRODUCTION, actor=actor
            )
        trained[str(treatment)] = UpliftTraining(
            treatment=str(treatment),
            rows=len(rows),
            treated=int(treated.sum()),
            control=int(control.sum()),
            churn_treated=float(y[treated].mean()),
            churn_control=float(y[control].mean()),
            qini=qini,
            version=version,
            promoted=make_production,
        )
    return FeedbackReport(
        as_of=as_of,
        window=window,
        rows=len(frame),
        pending=pending,
        trained=trained,
        skipped=skipped,
        seconds=time.perf_counter() - started,
    )


def _too_little(rows: pd.DataFrame) -> str | None:
    for arm, mask in (("treated", rows["treated"] == 1), ("held-out", rows["treated"] == 0)):
        count, events = int(mask.sum()), int(rows.loc[mask, "churned"].sum())
        if count < MIN_ROWS_PER_ARM:
            return f"{count} {arm} decisions with an elapsed window; {MIN_ROWS_PER_ARM} needed"
        if events < MIN_EVENTS_PER_ARM or events == count:
            return (
                f"{events} of {count} {arm} decisions were followed by churn; at least "
                f"{MIN_EVENTS_PER_ARM} churned and some staying are needed"
            )
    return None


_SHIFT = "logit_shift"
_X = "x_learner"
Learner = XLearner | LogitShift


def _learners(X: pd.DataFrame, random_state: int) -> dict[str, Callable[[], Learner]]:
    """The candidate models: the X-learner, and the logit shift when the log has the risk."""
    found: dict[str, Callable[[], Learner]] = {
        _X: lambda: XLearner(
            n_estimators=100, num_leaves=7, min_child_samples=40, random_state=random_state
        )
    }
    if RISK_COLUMN in X.columns and X[RISK_COLUMN].notna().any():
        found[_SHIFT] = LogitShift
    return found


def _validate(
    make: Callable[[], Learner], X: pd.DataFrame, t: np.ndarray, y: np.ndarray
) -> np.ndarray | None:
    """The estimated gains in staying of a model fitted on the earlier four fifths, for
    the latest fifth; None when either part is too small."""
    cut = int(len(X) * (1 - VALIDATION_SHARE))
    fit_t, fit_y, val_t = t[:cut], y[:cut], t[cut:]
    if (
        _too_little(pd.DataFrame({"treated": fit_t, "churned": fit_y}))
        or min(int((val_t == 1).sum()), int((val_t == 0).sum())) < MIN_ROWS_PER_ARM
    ):
        return None
    model = make().fit(X.iloc[:cut], fit_t, fit_y)
    return np.asarray(-model.predict(X.iloc[cut:]), np.float64)


_BOOTSTRAP = 200


def _choose(
    gains: dict[str, np.ndarray | None], t: np.ndarray, y: np.ndarray, random_state: int
) -> tuple[dict[str, float | None], str, float | None]:
    """Each learner's out-of-time Qini, the learner to keep, and the lower 95 % bound of
    the X-learner's Qini minus the logit shift's.

    With rare outcomes the validation Qini is mostly noise (on a few thousand rows
    even the true effects can score about 0), so the X-learner, which needs far more
    data, is kept only when a paired bootstrap of the validation rows puts its Qini
    above the logit shift's with 95 % confidence; otherwise the logit shift.
    """
    cut = int(len(t) * (1 - VALIDATION_SHARE))
    stayed, treated = 1 - y[cut:], t[cut:]
    qinis = {
        name: None if g is None else float(qini_coefficient(stayed, treated, g))
        for name, g in gains.items()
    }
    x_gain, shift_gain = gains.get(_X), gains.get(_SHIFT)
    if _SHIFT not in gains:
        return qinis, _X, None
    if x_gain is None or shift_gain is None:
        return qinis, _SHIFT, None
    rng = np.random.default_rng(random_state)
    differences = []
    for _ in range(_BOOTSTRAP):
        rows = rng.integers(0, len(stayed), len(stayed))
        if treated[rows].min() == treated[rows].max():
            continue
        differences.append(
            qini_coefficient(stayed[rows], treated[rows], x_gain[rows])
            - qini_coefficient(stayed[rows], treated[rows], shift_gain[rows])
        )
    low = float(np.quantile(differences, 0.025)) if differences else None
    return qinis, (_X if low is not None and low > 0 else _SHIFT), low


def score_uplift(project: Project, *, as_of: dt.datetime) -> UpliftScoring:
    """Every production uplift model on the current feature table → ``uplift_scores``."""
    registry = registry_for(project)
    backend = project.warehouse.backend
    names = sorted({v.name for v in registry.list() if v.name.startswith(UPLIFT_PREFIX)})
    production = [v for v in (registry.production(n) for n in names) if v is not None]
    if not production or "features_account" not in backend.list_tables():
        if UPLIFT_TABLE in backend.list_tables():
            backend.drop_table(UPLIFT_TABLE)
        return UpliftScoring(as_of, 0)
    features = backend.to_pandas(backend.table("features_account"))
    traits = account_traits(project)
    if not traits.empty:
        features = features.merge(traits, left_on="entity_id", right_index=True, how="left")
    if "scores" in backend.list_tables():  # the churn model's risk now, as decisions log it
        risk = backend.to_pandas(backend.table("scores").select("account_id", "churn_probability"))
        features = features.merge(
            risk.rename(columns={"churn_probability": RISK_COLUMN}),
            left_on="entity_id", right_on="account_id", how="left",
        ).drop(columns=["account_id"])  # fmt: skip
    parts = []
    labels = {}
    for version in production:
        model = registry.load(version)
        if not isinstance(model, XLearner | LogitShift):
            raise ModelError(f"{version.label} is not an uplift model ({type(model).__name__})")
        X = pd.DataFrame(index=features.index)
        for name in model.feature_names_in_:
            X[name] = features[name] if name in features.columns else np.nan
        gain = -model.predict(_features(X)) if len(X) else np.zeros(0)
        treatment = version.name.removeprefix(UPLIFT_PREFIX)
        labels[treatment] = version.label
        parts.append(
            pa.table(
                {
                    "account_id": pa.array(features["entity_id"].astype(str), pa.string()),
                    "treatment": pa.array([treatment] * len(X), pa.string()),
                    "uplift": pa.array(np.asarray(gain, np.float64), pa.float64()),
                    "model": pa.array([version.label] * len(X), pa.string()),
                    "as_of": pa.array([as_of] * len(X), pa.timestamp("us", tz="UTC")),
                }
            )
        )
    table = pa.concat_tables(parts)
    project.warehouse.replace_table(UPLIFT_TABLE, table)
    return UpliftScoring(as_of, table.num_rows, labels)
