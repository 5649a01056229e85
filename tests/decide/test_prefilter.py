"""The batch cycle's prefilter: guards read off conditions only ever skip customers no rule
could be eligible for."""

from __future__ import annotations

from typing import Any

import cel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tenure.decide._prefilter import Guard, Prefilter, guards

_COLUMNS = [("features", "a"), ("features", "b"), ("scores", "x"), ("traits", "plan")]


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (
            "scores.churn_probability > 0.6 && features.logins_30d >= 2.0",
            (
                Guard("scores", "churn_probability", ">", 0.6),
                Guard("features", "logins_30d", ">=", 2.0),
            ),
        ),
        ("0.5 < scores.x", (Guard("scores", "x", ">", 0.5),)),
        (
            "has(features.nps_last) && features.nps_last < 3",
            (
                Guard("features", "nps_last"),
                Guard("features", "nps_last", "<", 3.0),
            ),
        ),
        (
            "(features.a == -2 && (has(traits.plan)))",
            (
                Guard("features", "a", "==", -2.0),
                Guard("traits", "plan"),
            ),
        ),
        # only the plain parts are guards; the others are left to CEL
        (
            "features.a * 2 > 4 && stage == 'renewal' && features.b > 1e3",
            (Guard("features", "b", ">", 1000.0),),
        ),
        ("features.a != 1", ()),  # "x" != 1 is true in CEL: never a guard
        ("features.a > 1 || features.b > 1", ()),  # a disjunction: no part is necessary
        (
            "features.a > 1 && (features.b > 1 || scores.x > 1)",
            (Guard("features", "a", ">", 1.0),),
        ),
        ("features.a > 1 ? true : false", ()),
        ("traits.plan == 'a && b' && features.a > 1", (Guard("features", "a", ">", 1.0),)),
        ("traits.plan == 'x || y' && features.a > 1", (Guard("features", "a", ">", 1.0),)),
        ("account.mrr > 1 && features.a < 0", (Guard("features", "a", "<", 0.0),)),
    ],
)
def test_guards_are_the_plain_top_level_conjuncts(
    condition: str, expected: tuple[Guard, ...]
) -> None:
    assert guards(condition) == expected


_ATOMS = st.sampled_from(
    [
        "features.a > 1",
        "features.a >= 1.5",
        "2 < features.b",
        "scores.x <= 0.5",
        "scores.x == 0.25",
        "features.b == 3",
        "has(features.a)",
        "has(traits.plan)",
        "traits.plan == 'pro'",
        "features.a != 2",
        "features.a + 1.0 > 2.0",
        "size(features) >= 2",
        "stage == 'renewal'",
        "true",
        "false",
    ]
)
_CONDITIONS = st.recursive(
    _ATOMS,
    lambda inner: st.tuples(inner, st.sampled_from(["&&", "||"]), inner).map(
        lambda t: f"({t[0]} {t[1]} {t[2]})" if t[1] == "||" else f"{t[0]} {t[1]} {t[2]}"
    ),
    max_leaves=5,
)
_VALUES = st.one_of(
    st.none(),
    st.integers(-3, 4),
    st.sampled_from([0.25, 0.5, 1.5, 2.0, 3.0]),
    st.booleans(),
    st.sampled_from(["pro", "2", ""]),
)


def _context(stage: str | None, values: list[Any]) -> dict[str, Any]:
    """The context ``load_contexts`` builds from extracted values (absent when null)."""
    context: dict[str, Any] = {"features": {}, "scores": {}, "traits": {}, "stage": stage or ""}
    for (variable, name), value in zip(_COLUMNS, values, strict=True):
        if value is not None:
            context[variable][name] = value
    return context


def _true(program: Any, context: dict[str, Any]) -> bool:
    try:
        return program.execute(context) is True
    except (KeyError, TypeError, RuntimeError, ValueError, ArithmeticError):
        return False  # an error is not a match


@settings(max_examples=300, deadline=None)
@given(
    rules=st.lists(
        st.tuples(_CONDITIONS, st.one_of(st.none(), st.just(["renewal"]))), min_size=1, max_size=4
    ),
    customers=st.lists(
        st.tuples(
            st.sampled_from([None, "renewal", "mature"]),
            st.lists(_VALUES, min_size=len(_COLUMNS), max_size=len(_COLUMNS)),
        ),
        min_size=1,
        max_size=12,
    ),
)
def test_a_customer_is_skipped_only_when_no_rule_can_be_true_and_eligible(
    rules: list[tuple[str, list[str] | None]],
    customers: list[tuple[str | None, list[Any]]],
) -> None:
    prefilter = Prefilter([(guards(when), stages) for when, stages in rules], _COLUMNS)
    may_act = prefilter.may_act([s for s, _ in customers], [v for _, v in customers])
    programs = [(cel.compile(when), stages) for when, stages in rules]
    for (stage, values), keep in zip(customers, may_act.tolist(), strict=True):
        if keep:
            continue
        context = _context(stage, values)
        for program, stages in programs:
            eligible = stages is None or (stage or "") in stages
            assert not (eligible and _true(program, context)), (rules, stage, values)


def test_plain_rules_skip_the_customers_they_cannot_match() -> None:
    """Not vacuous: with plain rules most non-matching customers are skipped."""
    prefilter = Prefilter(
        [
            (guards("scores.x > 0.5 && features.a >= 2"), None),
            (guards("has(traits.plan)"), ["renewal"]),
        ],
        _COLUMNS,
    )
    rows = [
        (None, [3, None, 0.9, None]),  # rule 1 may match
        (None, [3, None, 0.1, "pro"]),  # neither: x too low, and not in renewal
        ("renewal", [None, None, None, "pro"]),  # rule 2 may match
        (None, [True, None, 0.9, None]),  # a bool is not a number: rule 1 cannot be true
        (None, ["3", None, 0.9, None]),  # nor is a string
    ]
    found = prefilter.may_act([s for s, _ in rows], [v for _, v in rows]).tolist()
    assert found == [True, False, True, False, False]
