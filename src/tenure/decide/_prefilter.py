"""Which customers a batch cycle need not evaluate: necessary conditions read off the rules.

A batch cycle evaluates every rule's CEL condition for every published customer,
and almost all of the cost of a quiet cycle (one in which a few per cent of the
customers match anything) is CEL converting each customer's context into its own
values. Most conditions are conjunctions whose parts are plain comparisons of a
stored number with a literal (``scores.churn_probability > 0.6 && …``): a
customer for whom one such part is false cannot match that rule, whatever the
other parts say.

So each rule carries its **guards**, the top-level conjuncts of its condition
that are of one of two plain forms:

* ``<map>.<name> <op> <number>`` (or the literal first), ``op`` one of
  ``< <= > >= ==``;
* ``has(<map>.<name>)``;

with ``<map>`` one of the stored maps (scores, health, features, traits,
uplift). A guard is *necessary* for the condition to be true: CEL's ``&&`` is
true only when every operand is, a missing key or a non-number compared with a
number is an error (not true), and ``has`` of a missing key is false. ``!=`` is
never a guard (CEL's heterogeneous equality makes ``"a" != 1`` true).

A customer is evaluated in CEL only if some rule's guards all hold and its stage
eligibility allows it; for every other customer no rule could have been
eligible, which is exactly the set the cycle would have dropped after
evaluating. The result is the same; the test suite checks that on random
rules and states. Conditions with a top-level ``||`` or ``?:``, or any other
form, simply have fewer guards (none at worst): a guard can only ever skip
work, never change a decision.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Guard", "Prefilter", "guards"]

_MAPS = ("scores", "health", "features", "traits", "uplift")
_PATH = rf"(?P<variable>{'|'.join(_MAPS)})\.(?P<name>[A-Za-z_]\w*)"
_NUMBER = r"(?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)"
_OP = r"(?P<op><=|>=|==|<|>)"
_PATH_FIRST = re.compile(rf"^{_PATH}\s*{_OP}\s*{_NUMBER}$")
_NUMBER_FIRST = re.compile(rf"^{_NUMBER}\s*{_OP}\s*{_PATH}$")
_HAS = re.compile(rf"^has\(\s*{_PATH}\s*\)$")
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
}
#: ``literal op path`` is ``path flipped(op) literal``.
_FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "=="}


@dataclass(frozen=True, slots=True)
class Guard:
    """A necessary condition: ``variable.name`` is present and, with *op*, a number
    that compares true with *number* (``op`` None: present at all)."""

    variable: str
    name: str
    op: str | None = None
    number: float = 0.0


def _split(text: str) -> list[str] | None:
    """*text*'s top-level ``&&`` operands; None when it is not a plain conjunction
    (a top-level ``||`` or ``?``, or something this scanner does not follow)."""
    parts: list[str] = []
    depth, start, n = 0, 0, 0
    while n < len(text):
        char = text[n]
        if char in "\"'":
            if text.startswith(char * 3, n):
                return None  # triple-quoted strings: not followed
            end = n + 1
            while end < len(text) and text[end] != char:
                end += 2 if text[end] == "\\" else 1
            if end >= len(text):
                return None
            n = end + 1
            continue
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth < 0:
                return None
        elif depth == 0:
            if text.startswith("||", n) or char == "?":
                return None
            if text.startswith("&&", n):
                parts.append(text[start:n])
                start = n + 2
                n += 2
                continue
        n += 1
    if depth != 0:
        return None
    parts.append(text[start:])
    return [p.strip() for p in parts]


def _enclosed(text: str) -> bool:
    """Whether *text* is one parenthesised expression, ``( … )``."""
    if not (text.startswith("(") and text.endswith(")")):
        return False
    depth = 0
    for n, char in enumerate(text):
        depth += char == "("
        depth -= char == ")"
        if depth == 0 and n < len(text) - 1:
            return False
    return True


def guards(condition: str) -> tuple[Guard, ...]:
    """The guards of a CEL *condition* (module doc); empty when it has none."""
    parts = _split(condition.strip())
    if parts is None:
        return ()
    found: list[Guard] = []
    for part in parts:
        if _enclosed(part):
            found.extend(guards(part[1:-1]))
        elif match := _PATH_FIRST.match(part):
            found.append(
                Guard(match["variable"], match["name"], match["op"], float(match["number"]))
            )
        elif match := _NUMBER_FIRST.match(part):
            op = _FLIPPED[match["op"]]
            found.append(Guard(match["variable"], match["name"], op, float(match["number"])))
        elif match := _HAS.match(part):
            found.append(Guard(match["variable"], match["name"]))
    return tuple(found)


@dataclass(frozen=True, slots=True)
class _RuleCheck:
    #: (column index, guard) pairs; every one must hold.
    guards: tuple[tuple[int, Guard], ...]
    #: The stages the rule is for (None: any).
    stages: frozenset[str] | None


def _number(value: Any) -> float:
    """*value* as a float when it is a JSON number (not a bool), else NaN."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return math.nan


class Prefilter:
    """Whether any rule could be eligible for each customer, from the values extracted
    for matching: *columns* names each position of the extracted values
    ``(variable, name)`` (``name`` None: the whole map)."""

    def __init__(
        self,
        rules: Sequence[tuple[tuple[Guard, ...], Sequence[str] | None]],
        columns: Sequence[tuple[str, str | None]],
    ) -> None:
        index = {column: n for n, column in enumerate(columns)}
        checks = []
        for rule_guards, stages in rules:
            usable = tuple(
                (index[(g.variable, g.name)], g)
                for g in rule_guards
                if (g.variable, g.name) in index
            )
            checks.append(_RuleCheck(usable, None if stages is None else frozenset(stages)))
        self._checks = tuple(checks)

    def may_act(
        self, stages: Sequence[str | None], rows: Sequence[Sequence[Any]]
    ) -> npt.NDArray[np.bool_]:
        """Per customer (its stage, its extracted values): False only when no rule can
        be both true and stage-eligible for it."""
        count = len(rows)
        present: dict[int, npt.NDArray[np.bool_]] = {}
        numbers: dict[int, npt.NDArray[np.float64]] = {}
        for check in self._checks:
            for n, _ in check.guards:
                if n in present:
                    continue
                values = [row[n] if n < len(row) else None for row in rows]
                present[n] = np.fromiter((v is not None for v in values), bool, count)
                numbers[n] = np.fromiter((_number(v) for v in values), np.float64, count)
        stage_of = np.array([s or "" for s in stages], dtype=object)
        found = np.zeros(count, dtype=bool)
        for check in self._checks:
            mask = np.ones(count, dtype=bool)
            if check.stages is not None:
                mask &= np.isin(stage_of, list(check.stages))
            for n, guard in check.guards:
                if guard.op is None:
                    mask &= present[n]
                else:  # NaN (missing, or not a number) compares false
                    mask &= _OPS[guard.op](numbers[n], guard.number)
            found |= mask
        return found
