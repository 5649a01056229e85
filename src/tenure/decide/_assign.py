"""Deterministic experiment assignment: arms, holdouts and the global control group.

A customer's arm is a pure function of ``(salt, experiment id, customer id)``: the
first 53 bits of ``SHA-256("experiment|{salt}|{experiment}|{customer}")`` read as a
number in ``[0, 1)`` (the *bucket*), and the arm is the one whose slice of the
cumulative weights holds the bucket. Nothing is stored to decide an arm, every
process and every run agrees, and Python's per-process ``hash()`` is never used.
Salts and experiment ids may not contain ``|``, so the hashed text is unambiguous.

The global control group is decided the same way with its own salt and its own
prefix (``"global-control|{salt}|{customer}"``), so its membership is independent
of every experiment's buckets: the customers held out of all campaigns are a
uniform sample of each experiment's arms and vice versa.

**Stratification by lifecycle stage.** The stage is deliberately *not* hashed. A
customer's stage changes during an experiment; a stage-dependent hash would move
them to another arm when it does, and a balanced scheme (rank customers by bucket
within their stage and deal arms in turn) would make one customer's arm depend on
who else is in the stage, so arms would shift as customers arrive. Because the
bucket is independent of the stage, every stage's split already matches the
weights in expectation (each stage's arm counts are multinomial with the
experiment's weights, which the sample-ratio check verifies per stage). With
``stratify_by_stage`` the stage at assignment is therefore required and recorded
with the assignment, and the analysis stratifies on it (per-stage lifts and a
post-stratified overall lift, see :func:`tenure.measure.experiments.segment_breakdown`),
which removes the chance imbalance between stages from the estimate.

``stages`` restricts an experiment to customers in those stages at assignment.
A per-campaign holdout is an experiment with a ``control`` arm that receives
nothing (e.g. 10 %) and one treatment arm; a multi-arm test has more arms.

It lives in decide, where customers are placed (:mod:`tenure.decide._holdouts`);
:mod:`tenure.measure.experiments` re-exports it beside the statistics.
"""

from __future__ import annotations

import enum
import hashlib
import math
from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import asdict, dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd

from tenure.errors import ConfigProblem, ExperimentError

__all__ = [
    "Arm",
    "Assignment",
    "AssignmentReason",
    "Experiment",
    "ExperimentError",
    "GlobalControl",
    "assign",
    "assign_many",
    "assignment",
    "bucket",
    "buckets",
    "in_global_control",
    "in_global_control_many",
]

_BITS = 53  # a float64 holds every 53-bit integer exactly, so k / 2**53 is exact
_SCALE = 2.0**-_BITS


def _key_problems(key: str, value: object, what: str) -> list[ConfigProblem]:
    if not isinstance(value, str) or not value:
        return [ConfigProblem(key, f"a non-empty {what}", value)]
    if "|" in value:
        return [ConfigProblem(key, f"a {what} without '|' (it separates the hashed parts)", value)]
    return []


@dataclass(frozen=True)
class Arm:
    """One arm of an experiment; *weight* is its share before normalization (> 0)."""

    name: str
    weight: float = 1.0

    def __post_init__(self) -> None:
        problems = _arm_problems(self.name, self.weight, "")
        if problems:
            raise ExperimentError("invalid arm", problems)


def _arm_problems(name: object, weight: object, where: str) -> list[ConfigProblem]:
    problems = []
    if not isinstance(name, str) or not name:
        problems.append(ConfigProblem(f"{where}name", "a non-empty arm name", name))
    if (
        isinstance(weight, bool)
        or not isinstance(weight, int | float)
        or not math.isfinite(weight)
        or weight <= 0
    ):
        problems.append(ConfigProblem(f"{where}weight", "a finite weight > 0", weight))
    return problems


@dataclass(frozen=True)
class Experiment:
    """An experiment (or a campaign's holdout): who is eligible and how arms are split.

    Weights are normalized to sum to 1. *control* names the arm the others are
    compared against. *stages*, when given, restricts eligibility to customers in
    those lifecycle stages at assignment. *stratify_by_stage* requires the stage at
    assignment (it is recorded and the analysis stratifies on it; the hash never
    includes it — see the module docstring).
    """

    id: str
    salt: str
    arms: tuple[Arm, ...]
    control: str = "control"
    stages: AbstractSet[str] | None = None
    stratify_by_stage: bool = False
    _cumulative: npt.NDArray[np.float64] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "arms", tuple(self.arms))
        if self.stages is not None:
            object.__setattr__(self, "stages", frozenset(str(s) for s in self.stages))
        problems = self._problems()
        if problems:
            raise ExperimentError(f"invalid experiment {self.id!r}", problems)
        weights = np.array([a.weight for a in self.arms], dtype=np.float64)
        cumulative = np.cumsum(weights / weights.sum())
        cumulative[-1] = 1.0  # rounding must never leave a bucket past the last arm
        object.__setattr__(self, "_cumulative", cumulative)

    def _problems(self) -> list[ConfigProblem]:
        problems = _key_problems("id", self.id, "experiment id")
        problems += _key_problems("salt", self.salt, "salt")
        if len(self.arms) < 2:
            problems.append(ConfigProblem("arms", "at least two arms", len(self.arms)))
        names = [a.name for a in self.arms if isinstance(a, Arm)]
        for i, arm in enumerate(self.arms):
            if not isinstance(arm, Arm):
                problems.append(ConfigProblem(f"arms[{i}]", "an Arm(name, weight)", arm))
            elif names.count(arm.name) > 1 and names.index(arm.name) < i:
                problems.append(ConfigProblem(f"arms[{i}].name", "a unique arm name", arm.name))
        if names and self.control not in names:
            problems.append(ConfigProblem("control", f"one of the arms {names}", self.control))
        if self.stages is not None:
            from tenure.lifecycle._stages import Stage  # lazily: lifecycle imports Ibis

            known = {s.value for s in Stage}
            unknown = sorted(self.stages - known)
            if not self.stages or unknown:
                problems.append(
                    ConfigProblem("stages", f"lifecycle stages among {sorted(known)}", unknown)
                )
        return problems

    @property
    def arm_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.arms)

    @property
    def weights(self) -> dict[str, float]:
        """Each arm's normalized share of the eligible customers."""
        total = sum(a.weight for a in self.arms)
        return {a.name: a.weight / total for a in self.arms}

    def arm_of_bucket(self, values: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Index of the arm holding each bucket value in ``[0, 1)``."""
        index = np.searchsorted(self._cumulative, np.asarray(values), side="right")
        return np.asarray(index, dtype=np.int64)


@dataclass(frozen=True)
class GlobalControl:
    """A share of all customers held out of every campaign, with its own salt."""

    percent: float
    salt: str

    def __post_init__(self) -> None:
        problems = _key_problems("salt", self.salt, "salt")
        p = self.percent
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0 <= p < 100:
            problems.append(ConfigProblem("percent", "a percentage in [0, 100)", p))
        if problems:
            raise ExperimentError("invalid global control group", problems)


def _text(customer_id: object) -> str:
    if isinstance(customer_id, bool) or not isinstance(customer_id, str | int | np.integer):
        raise ExperimentError(
            f"customer id {customer_id!r} is a {type(customer_id).__name__}; "
            "expected a string or an integer"
        )
    return str(customer_id)


def _unit(prefix: str, customer_id: object) -> float:
    digest = hashlib.sha256(f"{prefix}{_text(customer_id)}".encode()).digest()
    return (int.from_bytes(digest[:8], "big") >> (64 - _BITS)) * _SCALE


def bucket(customer_id: str | int, experiment: Experiment) -> float:
    """The customer's uniform number in ``[0, 1)`` for *experiment*."""
    return _unit(f"experiment|{experiment.salt}|{experiment.id}|", customer_id)


def buckets(customer_ids: Iterable[str | int], experiment: Experiment) -> npt.NDArray[np.float64]:
    """:func:`bucket` for many customers, as an array (exactly equal to the scalar one)."""
    prefix = f"experiment|{experiment.salt}|{experiment.id}|"
    return np.fromiter((_unit(prefix, c) for c in customer_ids), dtype=np.float64)


def in_global_control(customer_id: str | int, control: GlobalControl) -> bool:
    """Whether the customer is held out of every campaign."""
    return _unit(f"global-control|{control.salt}|", customer_id) < control.percent / 100


def in_global_control_many(
    customer_ids: Iterable[str | int], control: GlobalControl
) -> npt.NDArray[np.bool_]:
    """:func:`in_global_control` for many customers."""
    prefix = f"global-control|{control.salt}|"
    values = np.fromiter((_unit(prefix, c) for c in customer_ids), dtype=np.float64)
    return values < control.percent / 100


class AssignmentReason(enum.StrEnum):
    """Why a customer got the arm (or no arm) they got."""

    ASSIGNED = "assigned"
    GLOBAL_CONTROL = "global_control"
    INELIGIBLE_STAGE = "ineligible_stage"


@dataclass(frozen=True)
class Assignment:
    """One customer's assignment, as the decision log records it."""

    experiment_id: str
    customer_id: str
    arm: str | None
    reason: AssignmentReason
    bucket: float
    stage: str | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _check_stage(experiment: Experiment, stage: object) -> None:
    if stage is None and experiment.stratify_by_stage:
        raise ExperimentError(
            f"experiment {experiment.id!r} stratifies by stage; the stage at assignment "
            "is required (got None)",
            hint="pass the customer's current lifecycle stage",
        )


def assignment(
    customer_id: str | int,
    experiment: Experiment,
    *,
    stage: str | None = None,
    control: GlobalControl | None = None,
) -> Assignment:
    """The customer's arm in *experiment*, with the reason and bucket behind it.

    A customer in the global *control* group, or (with ``experiment.stages``) in
    another stage, gets no arm.
    """
    _check_stage(experiment, stage)
    value = bucket(customer_id, experiment)
    stage = None if stage is None else str(stage)
    if control is not None and in_global_control(customer_id, control):
        arm, reason = None, AssignmentReason.GLOBAL_CONTROL
    elif experiment.stages is not None and stage not in experiment.stages:
        arm, reason = None, AssignmentReason.INELIGIBLE_STAGE
    else:
        arm = experiment.arm_names[int(experiment.arm_of_bucket(value))]
        reason = AssignmentReason.ASSIGNED
    return Assignment(experiment.id, str(customer_id), arm, reason, value, stage)


def assign(
    customer_id: str | int,
    experiment: Experiment,
    *,
    stage: str | None = None,
    control: GlobalControl | None = None,
) -> str | None:
    """The customer's arm name in *experiment*, or None when not eligible."""
    return assignment(customer_id, experiment, stage=stage, control=control).arm


def assign_many(
    customer_ids: Sequence[str | int] | pd.Series,
    experiment: Experiment,
    *,
    stages: Sequence[str | None] | pd.Series | None = None,
    control: GlobalControl | None = None,
) -> pd.Series:
    """:func:`assign` for many customers: a Series of arm names (None: no arm).

    The result is indexed like *customer_ids* when it is a Series, else by
    position; *stages* is aligned by position.
    """
    ids = list(customer_ids)
    index = customer_ids.index if isinstance(customer_ids, pd.Series) else None
    stage_list: list[object] = [None] * len(ids) if stages is None else list(stages)
    if len(stage_list) != len(ids):
        raise ExperimentError(
            f"stages has {len(stage_list)} values for {len(ids)} customers; "
            "expected one stage per customer"
        )
    if experiment.stratify_by_stage and any(s is None or s != s for s in stage_list):
        _check_stage(experiment, None)
    arms = np.array(experiment.arm_names, dtype=object)[
        experiment.arm_of_bucket(buckets(ids, experiment))
    ]
    if control is not None:
        arms[in_global_control_many(ids, control)] = None
    if experiment.stages is not None:
        eligible = np.array([s is not None and str(s) in experiment.stages for s in stage_list])
        arms[~eligible] = None
    return pd.Series(arms, index=index, name="arm", dtype=object)
