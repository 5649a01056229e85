"""Policies: versioned YAML files of rules whose conditions are CEL.

A policy file (``policies/<name>.yaml``)::

    name: retention
    description: Save accounts at risk before renewal
    rules:
      - id: renewal_save_call
        when: stage == "renewal" && scores.churn_probability >= 0.4
        stages: [renewal]            # eligibility (optional): only these stages
        action: {channel: csm_task, template: renewal_call, campaign: renewal-save, cost: 40}
        priority: 90
        value: scores.churn_probability * account.value   # optional: see below
        cooldown: 30d                # not again for the same account within 30 days

Conditions see ``scores``, ``health``, ``features``, ``stage``, ``traits``,
``account`` and ``uplift`` (maps; see :mod:`tenure.decide._state`). They are
CEL — a side-effect-free language with no access to Python — compiled once
per rule when the file loads. A field that is missing for a customer (e.g. a
feature without data) makes that rule's condition an error for that customer:
the rule does not fire and the decision log says why; write
``has(features.nps_last) && features.nps_last < 7`` to test for it.

``value`` (optional) is a CEL expression over the same variables that gives a
number (int or double): how much acting on this customer is worth, where the
customer has no uplift estimate for the action's treatment. Candidates are
ranked by value (an estimate's ``uplift × value − cost`` where there is one,
else this), then priority; and while a budget applies, the batch cycle decides
the customers worth most first. A value that cannot be evaluated for a
customer leaves that candidate without one (ranked by priority), and the
decision log says why. Unlike an uplift estimate's expected value, it is a
ranking, not money: a negative one is not a reason to leave a customer alone.

A rule may carry an ``experiment`` instead of its one ``action``: named arms, each
a weight and an action, and a control arm without one (held out)::

      - id: save
        when: scores.churn_probability >= 0.5
        experiment:
          id: save-channel
          arms:
            call:  {weight: 40, action: {channel: csm_task, template: csm_call, cost: 40}}
            email: {weight: 40, action: {channel: email, template: tips, cost: 0.5}}
            control: {weight: 20}
          control: control             # the default

The customer's arm is a hash of the account, the experiment id and
``decide.holdouts.salt`` (:mod:`tenure.decide._assign`; the Decider builds the
assignment, since the salt is the project's). Experiment problems are collected
over every loaded policy and raised together, each naming file, rule and key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import cel
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from tenure._config_decide import Channel, Duration, parse_duration
from tenure.decide._prefilter import Guard, guards
from tenure.errors import ConfigError, ConfigProblem, PolicyError

__all__ = [
    "CONTEXT_VARIABLES",
    "Action",
    "CompiledRule",
    "ExperimentArm",
    "Policy",
    "PolicySet",
    "Rule",
    "RuleExperiment",
    "load_policies",
]

#: The variables a condition or value may use; each is a map except ``stage``.
CONTEXT_VARIABLES = ("scores", "health", "features", "stage", "traits", "account", "uplift")
_MAP_VARIABLES = frozenset(CONTEXT_VARIABLES) - {"stage"}
_M = TypeVar("_M", bound=BaseModel)
_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")


def _lower_name(value: str) -> str:
    """A policy, rule or experiment name: lower-case letters, digits, _ and -."""
    if not _NAME.match(value):
        raise ValueError(f"lower-case letters, digits, _ and - (got {value!r})")
    return value


#: CEL macros and methods: ``features.exists(…)`` is not a field called "exists".
_NOT_FIELDS = frozenset({"all", "exists", "exists_one", "map", "filter", "size"})
_BOUND = re.compile(r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(\s*([A-Za-z_]\w*)\s*,")
_STRING = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'")
#: The prefix of an experiment's holdout group (``experiment:<id>``).
EXPERIMENT_PREFIX = "experiment:"


class Action(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: Channel
    template: str
    campaign: str | None = None
    cost: float = Field(default=0.0, ge=0)
    #: A discount offered (0.2 = 20 %); above ``decide.review.max_discount`` it is reviewed.
    discount: float = Field(default=0.0, ge=0, le=1)
    #: What kind of treatment this is, for uplift estimates (default: the channel).
    type: str | None = None
    #: The webhook target (a key of ``delivery.webhooks``) of a webhook action.
    target: str | None = None

    @model_validator(mode="after")
    def _webhook_target(self) -> Action:
        if self.channel is Channel.WEBHOOK and not self.target:
            raise ValueError("a webhook action needs a target (a key of delivery.webhooks)")
        return self

    @property
    def treatment(self) -> str:
        return self.type or self.channel.value


class ExperimentArm(BaseModel):
    """One arm of a rule's experiment: its weight and, unless it is the control, its action."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weight: float = Field(allow_inf_nan=False)
    action: Action | None = None


class RuleExperiment(BaseModel):
    """A rule's experiment: arms by name, in the file's order (which the hash's slices
    follow), and the control arm, which has no action and is held out."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    arms: dict[str, ExperimentArm]
    control: str = "control"

    _id = field_validator("id")(_lower_name)

    @property
    def group(self) -> str:
        """The ``group`` of the holdout verdicts it logs: ``experiment:<id>``."""
        return f"{EXPERIMENT_PREFIX}{self.id}"

    @property
    def treatments(self) -> tuple[str, ...]:
        """The arms with an action, in order."""
        return tuple(name for name, arm in self.arms.items() if name != self.control)

    @property
    def percents(self) -> dict[str, float]:
        """Each arm's share of the customers the rule acts on, in percent."""
        total = sum(arm.weight for arm in self.arms.values())
        return {name: 100.0 * arm.weight / total for name, arm in self.arms.items()}

    def action(self, arm: str | None) -> Action:
        """*arm*'s action; for the control (or no arm yet) the first treatment arm's, which
        the control is ranked and checked with, so that both sides are selected alike."""
        found = self.arms[arm].action if arm is not None and arm in self.arms else None
        if found is None:
            found = self.arms[self.treatments[0]].action
        assert found is not None  # checked at load: every arm but the control has one
        return found


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    when: str
    #: What to do; a rule has exactly one of ``action`` and ``experiment`` (checked at load).
    action: Action | None = None
    #: Arms with an action each and a control arm without; instead of ``action``.
    experiment: RuleExperiment | None = None
    priority: int = 0
    #: CEL giving a number: the candidate's value where no uplift estimate gives one.
    value: str | None = None
    stages: list[str] | None = None
    cooldown: Duration | None = None
    description: str = ""

    _id = field_validator("id")(_lower_name)


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    rules: list[Rule] = Field(min_length=1)

    _name = field_validator("name")(_lower_name)


@dataclass(frozen=True, slots=True)
class CompiledRule:
    policy: str
    rule: Rule
    program: Any  # cel.Program
    cooldown: dt.timedelta | None
    #: Per map variable, the fields the condition reads (None: the whole map).
    fields: dict[str, frozenset[str] | None]
    #: The rule's value expression compiled (a cel.Program), when it has one.
    value_program: Any = None
    #: Per map variable, the fields the value expression reads.
    value_fields: dict[str, frozenset[str] | None] = field(default_factory=dict)
    #: A candidate's arm of the rule's experiment (see :meth:`with_arm`); None otherwise.
    arm: str | None = None
    #: Plain conjuncts of the condition that must hold for it to be true (a batch cycle
    #: evaluates in CEL only the customers some rule's guards allow; ``_prefilter``).
    guards: tuple[Guard, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.policy}/{self.rule.id}"

    @property
    def action(self) -> Action:
        """The action: the rule's, or its experiment's for :attr:`arm` (the control arm
        is ranked and checked with the first treatment arm's action)."""
        experiment = self.rule.experiment
        if experiment is not None:
            return experiment.action(self.arm)
        assert self.rule.action is not None  # checked at load: an action or an experiment
        return self.rule.action

    def with_arm(self, arm: str) -> CompiledRule:
        """This rule as the candidate of a customer in *arm* of its experiment."""
        return replace(self, arm=arm)


@dataclass(frozen=True, slots=True)
class PolicySet:
    """Every loaded policy, its source text and hash, and its rules compiled once."""

    policies: dict[str, Policy]
    sources: dict[str, str]
    rules: tuple[CompiledRule, ...]
    #: All conditions as one CEL list: one evaluation per customer instead of one per rule.
    combined: Any = None
    #: Per map variable, the fields conditions and value expressions read (None: all).
    fields: dict[str, frozenset[str] | None] = field(default_factory=dict)
    #: What the conditions alone read: what a context for matching must hold. Values are
    #: evaluated on full states, only for the customers a rule may act on.
    condition_fields: dict[str, frozenset[str] | None] = field(default_factory=dict)

    @property
    def guards(self) -> list[tuple[tuple[Guard, ...], list[str] | None]]:
        """Each rule's guards and stages: what :class:`~tenure.decide._prefilter.Prefilter`
        needs to skip customers no rule can be eligible for."""
        return [(r.guards, r.rule.stages) for r in self.rules]

    def content_hash(self, name: str) -> str:
        return hashlib.sha256(self.sources[name].encode()).hexdigest()

    @property
    def experiments(self) -> dict[str, RuleExperiment]:
        """The rules' experiments by id (ids are unique across the loaded policies)."""
        return {
            r.rule.experiment.id: r.rule.experiment
            for r in self.rules
            if r.rule.experiment is not None
        }

    def context(self, full: Mapping[str, Any]) -> dict[str, Any]:
        """*full* narrowed to what conditions and values read (CEL converts every value passed)."""
        narrowed: dict[str, Any] = {}
        for name, wanted in self.fields.items():
            value = full.get(name)
            if value is None:
                continue
            if wanted is None or not isinstance(value, Mapping):
                narrowed[name] = value
            else:
                narrowed[name] = {k: value[k] for k in wanted if k in value}
        return narrowed


def _fields(source: str) -> dict[str, frozenset[str] | None]:
    """Which fields of each context variable *source* reads, where that is plain."""
    text = _STRING.sub('""', source)
    found: dict[str, frozenset[str] | None] = {}
    for variable in CONTEXT_VARIABLES:
        uses = list(re.finditer(rf"(?<![\w.]){variable}\b", text))
        if not uses:
            continue
        if variable not in _MAP_VARIABLES:
            found[variable] = None
            continue
        names: set[str] = set()
        plain = True
        for use in uses:
            after = re.match(r"\s*\.\s*([A-Za-z_]\w*)", text[use.end() :])
            if after is None or after.group(1) in _NOT_FIELDS:
                plain = False
                break
            names.add(after.group(1))
        found[variable] = frozenset(names) if plain else None
    return found


def _merge_fields(
    parts: Iterable[dict[str, frozenset[str] | None]],
) -> dict[str, frozenset[str] | None]:
    merged: dict[str, frozenset[str] | None] = {}
    for part in parts:
        for variable, names in part.items():
            if variable in merged and merged[variable] is None:
                continue
            if names is None:
                merged[variable] = None
            else:
                merged[variable] = (merged.get(variable) or frozenset()) | names
    return merged


def _compile(where: str, source: str, *, what: str = "the condition") -> Any:
    """*source* compiled; a PolicyError names *where* (file, rule, key) and *what* it is."""
    try:
        program = cel.compile(source)
    except ValueError as error:
        raise PolicyError(f"{where}: {what} is not valid CEL: {error}") from None
    # a macro's iteration variable (``features.exists(k, …)``) is reported as a variable
    bound = set(_BOUND.findall(_STRING.sub('""', source)))
    unknown = sorted(set(program.variables()) - set(CONTEXT_VARIABLES) - bound)
    if unknown:
        raise PolicyError(
            f"{where}: unknown variable {', '.join(map(repr, unknown))} in {source!r}; "
            f"conditions and values see {', '.join(CONTEXT_VARIABLES)}"
        )
    return program


def parse_yaml_model(model: type[_M], text: str, *, source: str) -> _M:
    """*text* as YAML validated by *model*; a ConfigError names *source* and every bad key."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        problem = ConfigProblem("(file)", f"valid YAML ({error})", None)
        raise ConfigError(source, [problem]) from None
    try:
        return model.model_validate(data)
    except ValidationError as error:
        problems = [
            ConfigProblem(
                ".".join(str(p) for p in item["loc"]) or "(top level)",
                item["msg"].removeprefix("Value error, "),
                item.get("input"),
            )
            for item in error.errors()
        ]
        raise ConfigError(source, problems) from None


def _rule_problems(rule: Rule) -> list[tuple[str, str]]:
    """(key, what is wrong) for a rule's action or experiment; empty when it is sound."""
    experiment = rule.experiment
    if (rule.action is None) == (experiment is None):
        found = "both" if experiment is not None else "neither"
        return [("action", f"a rule has an action or an experiment, not {found}")]
    if experiment is None:
        return []
    problems = []
    names = list(experiment.arms)
    if len(names) < 2:
        problems.append(("experiment.arms", f"at least two arms (got {len(names)})"))
    for name, arm in experiment.arms.items():
        key = f"experiment.arms.{name}"
        if not _NAME.match(name):
            problems.append((key, f"an arm name of lower-case letters, digits, _ and - ({name!r})"))
        if arm.weight <= 0:
            problems.append((f"{key}.weight", f"a weight > 0 (got {arm.weight:g})"))
        if name == experiment.control and arm.action is not None:
            problems.append((f"{key}.action", "none: the control arm gets nothing (held out)"))
        elif name != experiment.control and arm.action is None:
            problems.append((f"{key}.action", "an action (only the control arm has none)"))
    if experiment.control not in experiment.arms:
        arms = ", ".join(names)
        problems.append(
            ("experiment.control", f"one of the arms {arms} (got {experiment.control!r})")
        )
    return problems


def _experiment_problems(policies: dict[str, Policy], paths: dict[str, Path]) -> list[str]:
    """Every rule's action or experiment problem, each naming file, policy, rule and key."""
    lines = []
    first: dict[str, str] = {}  # experiment id → where it is defined
    for name, policy in policies.items():
        for rule in policy.rules:
            where = f"{paths[name]}: policy {name!r}, rule {rule.id!r}"
            lines += [f"{where}, key {key!r}: {what}" for key, what in _rule_problems(rule)]
            if rule.experiment is None:
                continue
            other = first.setdefault(rule.experiment.id, where)
            if other != where:
                lines.append(
                    f"{where}, key 'experiment.id': a unique experiment id "
                    f"({rule.experiment.id!r} is already the experiment of {other})"
                )
    return lines


def parse_policy(text: str, *, source: str) -> Policy:
    return parse_yaml_model(Policy, text, source=source)


def load_policies(directory: Path) -> PolicySet:
    """Every ``*.yaml`` in *directory*, validated and compiled; errors name file and key."""
    policies: dict[str, Policy] = {}
    sources: dict[str, str] = {}
    paths: dict[str, Path] = {}
    files = sorted(directory.glob("*.yaml")) + sorted(directory.glob("*.yml"))
    for path in files:
        text = path.read_text(encoding="utf-8")
        policy = parse_policy(text, source=str(path))
        if policy.name in policies:
            raise PolicyError(f"{path}: a second policy named {policy.name!r}")
        policies[policy.name] = policy
        sources[policy.name] = text
        paths[policy.name] = path
    problems = _experiment_problems(policies, paths)
    if len(problems) == 1:
        raise PolicyError(problems[0])
    if problems:
        listed = "\n".join(f"  - {p}" for p in problems)
        raise PolicyError(f"{len(problems)} problems in the policies' rules:\n{listed}")
    compiled: list[CompiledRule] = []
    for name, policy in policies.items():
        seen: set[str] = set()
        for rule in policy.rules:
            if rule.id in seen:
                raise PolicyError(f"{paths[name]}: policy {name!r}: two rules with id {rule.id!r}")
            seen.add(rule.id)
            where = f"{paths[name]}: policy {name!r}, rule {rule.id!r}"
            value = rule.value
            compiled.append(
                CompiledRule(
                    policy=name,
                    rule=rule,
                    program=_compile(f"{where}, key 'when'", rule.when),
                    cooldown=parse_duration(rule.cooldown) if rule.cooldown else None,
                    fields=_fields(rule.when),
                    value_program=(
                        None
                        if value is None
                        else _compile(f"{where}, key 'value'", value, what="the value")
                    ),
                    value_fields={} if value is None else _fields(value),
                    guards=guards(rule.when),
                )
            )
    combined = None
    if compiled:
        combined = cel.compile("[" + ", ".join(f"({r.rule.when})" for r in compiled) + "]")
    return PolicySet(
        policies=policies,
        sources=sources,
        rules=tuple(compiled),
        combined=combined,
        fields=_merge_fields([*(r.fields for r in compiled), *(r.value_fields for r in compiled)]),
        condition_fields=_merge_fields(r.fields for r in compiled),
    )
