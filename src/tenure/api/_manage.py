"""What steers decisions: policies, templates and journeys, with their versions.

Policies and templates are compiled once per app and again only when a file
changes (:class:`ProjectFiles`); the next-best action and these routes share
that copy, so what they show is what the next decision uses. Version history
comes from ``policy_versions``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from tenure._config_decide import Channel
from tenure.api._auth import Principal, require
from tenure.api._errors import ApiError, JsonResponse, error_responses
from tenure.api._pii import PLAIN, audit_pii_read, masker_of
from tenure.decide import (
    Action,
    Decider,
    Guardrails,
    PolicySet,
    Rule,
    TemplateSet,
    load_journeys,
    load_policies,
    load_states,
    load_templates,
    versions,
)
from tenure.decide._cycle import preparer
from tenure.decide._engine import Prepare
from tenure.decide._policy import CompiledRule
from tenure.errors import NotFoundError
from tenure.govern.keys import Scope
from tenure.project import Project

__all__ = ["Compiled", "ProjectFiles", "project_files", "router"]

router = APIRouter()

_READ_ERRORS = error_responses(401, 403, 422, 429)


# --------------------------------------------------------- the compiled files
def _stamp(directory: str, suffixes: tuple[str, ...]) -> tuple[tuple[str, int, int, int], ...]:
    """What identifies the files' contents without reading them: name, mtime, size, inode.

    Symbolic links are followed, so a file swapped behind a link (a mounted
    Kubernetes ConfigMap) counts as changed.
    """
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return ()
    found = []
    for entry in entries:
        if entry.name.endswith(suffixes):
            info = entry.stat()
            found.append((entry.name, info.st_mtime_ns, info.st_size, info.st_ino))
    return tuple(sorted(found))


#: Versions of each policy and each template, by name.
Versions = tuple[dict[str, int], dict[str, int]]


@dataclass(slots=True)
class Compiled:
    """The policies and templates as one set of files was when it was read."""

    stamp: tuple[Any, ...]
    policies: PolicySet
    templates: TemplateSet
    prepare: Prepare
    decider: Decider
    #: Versions of the policies and templates, once written to the store.
    recorded: Versions | None = None
    #: The versions a dry run found they would get (nothing written).
    peeked: Versions | None = None


class ProjectFiles:
    """The project's policy and template files, compiled once and again when one changes.

    The two folders are stat-ed at most every :data:`RECHECK_SECONDS` (on the
    next-best-action path a stat per request was a tenth of the work); only a
    new, removed or changed file (name, mtime, size or inode) makes it read and
    compile them, so an edit is in force within that time. A file that no
    longer loads raises its error on every call until fixed.
    """

    def __init__(self, project: Project) -> None:
        self._project = project
        settings = project.config.decide
        self.policies_dir = _resolve(project, settings.policies_dir)
        self.templates_dir = _resolve(project, settings.templates_dir)
        self.journeys_dir = _resolve(project, settings.journeys_dir)
        self._watched = (str(self.policies_dir), str(self.templates_dir))
        self._guardrails = Guardrails(settings)
        self._lock = threading.Lock()
        self._current: Compiled | None = None
        self._checked = -float("inf")  # time.monotonic() of the last stat

    def _stamps(self) -> tuple[Any, ...]:
        return (
            _stamp(self._watched[0], (".yaml", ".yml")),
            _stamp(self._watched[1], (".yaml",)),
        )

    def current(self) -> Compiled:
        found = self._current
        now = time.monotonic()
        if found is not None and now - self._checked < RECHECK_SECONDS:
            return found
        stamp = self._stamps()
        self._checked = now
        if found is not None and found.stamp == stamp:
            return found
        with self._lock:
            found = self._current
            if found is None or found.stamp != stamp:
                policies = load_policies(self.policies_dir)
                templates = load_templates(self.templates_dir)
                prepare = preparer(self._project, templates)
                decider = Decider(policies, self._guardrails, prepare)
                found = Compiled(stamp, policies, templates, prepare, decider)
                self._current = found
        return found


#: How long a check of the policy and template files stays good.
RECHECK_SECONDS = 0.5


def _resolve(project: Project, name: str) -> FilePath:
    path = FilePath(name)
    return path if path.is_absolute() else project.root / path


_FILES_LOCK = threading.Lock()


def project_files(request: Request) -> ProjectFiles:
    """The app's :class:`ProjectFiles`, made on first use."""
    app_state = request.app.state
    files: ProjectFiles | None = getattr(app_state, "tenure_files", None)
    if files is None:
        with _FILES_LOCK:
            files = getattr(app_state, "tenure_files", None)
            if files is None:
                files = ProjectFiles(app_state.tenure.project)
                app_state.tenure_files = files
    return files


# ----------------------------------------------------------------- versions
class StoredVersion(BaseModel):
    version: int
    content_hash: str = Field(description="sha256 of the file's text")
    created_at: dt.datetime
    created_by: str


_VERSION_EXAMPLE: dict[str, Any] = {
    "version": 2,
    "content_hash": "4f1c0b…",
    "created_at": "2024-06-01T12:00:00Z",
    "created_by": "key:k_0a1b2c3d",
}


def _histories(request: Request, kind: str) -> dict[str, list[dict[str, Any]]]:
    with request.app.state.tenure.project.store.connect() as connection:
        stored = versions(connection, kind)
    found: dict[str, list[dict[str, Any]]] = {}
    for row in stored:
        found.setdefault(str(row["name"]), []).append(
            {key: row[key] for key in StoredVersion.model_fields}
        )
    return found


def _current(history: list[dict[str, Any]], source: str) -> int | None:
    """The stored version of *source*, if the latest stored version is this text."""
    digest = hashlib.sha256(source.encode()).hexdigest()
    if history and history[-1]["content_hash"] == digest:
        return int(history[-1]["version"])
    return None


_VERSION_DOC = "the stored version of the file as it is now (None: no decision used it yet)"


# ----------------------------------------------------------------- policies
class RuleInfo(BaseModel):
    id: str
    when: str = Field(description="the CEL condition")
    priority: int
    stages: list[str] | None
    cooldown: str | None
    description: str
    action: dict[str, Any] | None = Field(
        description="channel, template, campaign, cost, … (None: the rule runs an experiment)"
    )
    experiment: dict[str, Any] | None = Field(
        default=None,
        description="instead of an action: the experiment's id, its arms (weight and action; "
        "the control arm has none) and the control arm's name",
    )


class PolicyInfo(BaseModel):
    name: str
    description: str
    content_hash: str
    version: int | None = Field(description=_VERSION_DOC)
    rules: list[RuleInfo]
    history: list[StoredVersion] = Field(description="every stored version, oldest first")


class PolicyList(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "policies": [
                        {
                            "name": "retention",
                            "description": "Keep accounts that are drifting away",
                            "content_hash": "4f1c0b…",
                            "version": 2,
                            "rules": [
                                {
                                    "id": "tips-in-app",
                                    "when": "features.logins_30d < 5",
                                    "priority": 40,
                                    "stages": None,
                                    "cooldown": "7d",
                                    "description": "",
                                    "action": {"channel": "in_app", "template": "tips_in_app"},
                                }
                            ],
                            "history": [_VERSION_EXAMPLE],
                        }
                    ]
                }
            ]
        }
    )

    policies: list[PolicyInfo]


@router.get(
    "/v1/policies",
    response_model=PolicyList,
    responses=error_responses(401, 403, 409, 422, 429),
    tags=["policies"],
    summary="The policies in force, their rules, current version and version history",
)
def policies_route(
    request: Request,
    _: Principal = Depends(require(Scope.POLICIES_READ)),  # noqa: B008
) -> Response:
    compiled = project_files(request).current()
    histories = _histories(request, "policy")
    found = []
    for name, policy in compiled.policies.policies.items():
        source = compiled.policies.sources[name]
        history = histories.get(name, [])
        found.append(
            {
                "name": name,
                "description": policy.description,
                "content_hash": compiled.policies.content_hash(name),
                "version": _current(history, source),
                "rules": [
                    {
                        **rule.model_dump(mode="json", exclude={"action", "experiment"}),
                        "action": (
                            None
                            if rule.action is None
                            else rule.action.model_dump(mode="json", exclude_none=True)
                        ),
                        "experiment": (
                            None
                            if rule.experiment is None
                            else rule.experiment.model_dump(mode="json", exclude_none=True)
                        ),
                    }
                    for rule in policy.rules
                ],
                "history": history,
            }
        )
    return JsonResponse({"policies": found})


# ---------------------------------------------------------------- templates
class TemplateInfo(BaseModel):
    name: str
    channel: Channel
    description: str
    content_hash: str
    version: int | None = Field(description=_VERSION_DOC)
    history: list[StoredVersion]


class TemplateList(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "templates": [
                        {
                            "name": "tips_in_app",
                            "channel": "in_app",
                            "description": "",
                            "content_hash": "9a0e…",
                            "version": 1,
                            "history": [_VERSION_EXAMPLE | {"version": 1}],
                        }
                    ]
                }
            ]
        }
    )

    templates: list[TemplateInfo]


@router.get(
    "/v1/templates",
    response_model=TemplateList,
    responses=error_responses(401, 403, 409, 422, 429),
    tags=["policies"],
    summary="The message templates, their channels, current version and version history",
)
def templates_route(
    request: Request,
    _: Principal = Depends(require(Scope.POLICIES_READ)),  # noqa: B008
) -> Response:
    compiled = project_files(request).current()
    histories = _histories(request, "template")
    found = [
        {
            "name": t.name,
            "channel": t.channel.value,
            "description": t.description,
            "content_hash": t.content_hash,
            "version": _current(histories.get(t.name, []), t.source),
            "history": histories.get(t.name, []),
        }
        for t in compiled.templates.templates.values()
    ]
    return JsonResponse({"templates": found})


class TemplatePreview(BaseModel):
    """A template rendered for a real customer, exactly as a send would be; nothing is sent."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "template": "tips",
                    "account_id": "acme",
                    "channel": "email",
                    "recipient": "dee@acme.example",
                    "message": {
                        "to": "dee@acme.example",
                        "subject": "Three things Acme has not tried yet",
                        "text": "Hi Dee, …",
                        "html": None,
                        "unsubscribe_url": "http://127.0.0.1:8000/unsubscribe/…",
                    },
                }
            ]
        }
    )

    template: str
    account_id: str
    channel: Channel
    recipient: str
    message: dict[str, Any] = Field(description="the payload a send would queue")


@router.get(
    "/v1/templates/{name}/preview",
    response_model=TemplatePreview,
    responses=error_responses(401, 403, 404, 409, 422, 429),
    tags=["policies"],
    summary="Render a template for a real customer, exactly as a send would",
    description="Uses the account's published state and first contact. A variable the "
    "template uses but the customer lacks is a 409 naming it, as it would block a send.",
)
def template_preview_route(
    request: Request,
    name: str = Path(min_length=1, max_length=200, pattern=PLAIN),
    account_id: str = Query(min_length=1, max_length=64, pattern=PLAIN),
    principal: Principal = Depends(require(Scope.POLICIES_READ)),  # noqa: B008
) -> Response:
    state = request.app.state.tenure
    compiled = project_files(request).current()
    template = compiled.templates.templates.get(name)
    if template is None:
        known = ", ".join(sorted(compiled.templates.templates)) or "none"
        raise NotFoundError(f"no template {name!r} (known: {known})")
    with state.project.store.connect() as connection:
        found = load_states(connection, [account_id])
    if not found:
        raise NotFoundError(f"no published state for account {account_id!r}")
    customer = found[0]
    contact = customer.contacts[0] if customer.contacts else None
    if template.channel in (Channel.EMAIL, Channel.IN_APP):
        missing = (
            "no contact"
            if contact is None
            else ("no email address" if template.channel is Channel.EMAIL and not contact.email
                  else ("no user id" if not contact.user_id else None))
        )  # fmt: skip
        if missing is not None:
            raise ApiError(
                409, "conflict",
                f"account {account_id!r} has {missing} to render a {template.channel} for",
                field="query.account_id",
            )  # fmt: skip
    if contact is not None and not principal.sees_pii:
        # render for a stand-in: the message as sent, with pseudonyms for the person
        masker = masker_of(request)
        contact = dataclasses.replace(
            contact,
            email=masker.value(contact.email),
            name=masker.value(contact.name),
            first_name=masker.value(contact.first_name),
            identifiers=(),
        )
        customer = dataclasses.replace(customer, contacts=(contact,))
    action = Action(channel=template.channel, template=name, target="preview")
    rule = CompiledRule("preview", Rule(id="preview", when="true", action=action), None, None, {})
    recipient, payload = compiled.prepare("d_preview", rule, customer, contact)
    payload.pop("consent_identifiers", None)
    if principal.sees_pii:
        with state.project.store.begin() as connection:
            audit_pii_read(
                connection, principal, state.project.clock(), "GET /v1/templates/{name}/preview",
                [account_id],
            )  # fmt: skip
    return JsonResponse(
        {
            "template": name,
            "account_id": account_id,
            "channel": template.channel.value,
            "recipient": recipient,
            "message": payload,
        }
    )


# ----------------------------------------------------------------- journeys
class JourneyStep(BaseModel):
    id: str
    kind: Literal["send", "wait", "branch"]
    send: dict[str, Any] | None = Field(description="the action of a send step")
    wait: str | None = Field(description="the duration of a wait step")
    branch: list[dict[str, str]] | None = Field(description="a branch step's {when, goto}")


class JourneyInfo(BaseModel):
    name: str
    description: str
    enter: str
    stages: list[str] | None
    goal: str | None
    exit: str | None
    reenter: str
    steps: list[JourneyStep]
    content_hash: str
    version: int | None = Field(description=_VERSION_DOC)
    history: list[StoredVersion]


class JourneyList(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "journeys": [
                        {
                            "name": "onboarding",
                            "description": "",
                            "enter": 'stage == "onboarding"',
                            "stages": None,
                            "goal": "features.logins_30d >= 10",
                            "exit": None,
                            "reenter": "never",
                            "steps": [
                                {
                                    "id": "welcome",
                                    "kind": "send",
                                    "send": {"channel": "email", "template": "getting_started"},
                                    "wait": None,
                                    "branch": None,
                                }
                            ],
                            "content_hash": "77c2…",
                            "version": 1,
                            "history": [_VERSION_EXAMPLE | {"version": 1}],
                        }
                    ]
                }
            ]
        }
    )

    journeys: list[JourneyInfo]


@router.get(
    "/v1/journeys",
    response_model=JourneyList,
    responses=error_responses(401, 403, 409, 422, 429),
    tags=["policies"],
    summary="The journeys, their steps, current version and version history",
)
def journeys_route(
    request: Request,
    _: Principal = Depends(require(Scope.POLICIES_READ)),  # noqa: B008
) -> Response:
    loaded = load_journeys(project_files(request).journeys_dir)
    histories = _histories(request, "journey")
    found = []
    for name, item in loaded.items():
        journey = item.journey
        history = histories.get(name, [])
        steps = [
            {
                "id": step.id,
                "kind": "send" if step.send else ("wait" if step.wait else "branch"),
                "send": step.send.model_dump(mode="json", exclude_none=True) if step.send else None,
                "wait": step.wait,
                "branch": [b.model_dump() for b in step.branch] if step.branch else None,
            }
            for step in journey.steps
        ]
        found.append(
            {
                **journey.model_dump(mode="json", exclude={"steps"}),
                "steps": steps,
                "content_hash": hashlib.sha256(item.source.encode()).hexdigest(),
                "version": _current(history, item.source),
                "history": history,
            }
        )
    return JsonResponse({"journeys": found})
