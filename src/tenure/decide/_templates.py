"""Message templates: YAML files of Jinja2 text, rendered in a sandbox, never with blanks.

A template file (``templates/<name>.yaml``) names its channel and its parts::

    channel: email
    subject: "{{ account.name }}: your renewal is in {{ features.days_to_renewal|int }} days"
    text: |
      Hi {{ contact.first_name }}, ...

Parts per channel: email ``subject``, ``text`` and optionally ``html``; in_app
``title`` and ``body``; webhook and csm_task ``body`` (a mapping whose string
values are templates). Rendering uses Jinja2's ``SandboxedEnvironment`` (no
attribute access to Python internals) with ``StrictUndefined``: a variable
that is not there is an error at preview and at send time, never an empty
string in a message. Email text that does not place ``{{ unsubscribe_url }}``
itself gets it in a footer, so every email carries a working link.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import markupsafe
import yaml
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from tenure._config_decide import Channel
from tenure.errors import TemplateError

__all__ = ["Rendered", "Template", "TemplateSet", "load_templates"]

_PARTS: dict[Channel, tuple[set[str], set[str]]] = {  # required, allowed
    Channel.EMAIL: ({"subject", "text"}, {"subject", "text", "html"}),
    Channel.IN_APP: ({"title", "body"}, {"title", "body"}),
    Channel.WEBHOOK: ({"body"}, {"body"}),
    Channel.CSM_TASK: ({"body"}, {"body"}),
}


class _TemplateFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: Channel
    description: str = ""
    subject: str | None = None
    text: str | None = None
    html: str | None = None
    title: str | None = None
    body: Any = None

    @model_validator(mode="after")
    def _parts(self) -> _TemplateFile:
        required, allowed = _PARTS[self.channel]
        given = {p for p in ("subject", "text", "html", "title", "body") if getattr(self, p)}
        missing = sorted(required - given)
        extra = sorted(given - allowed)
        if missing:
            raise ValueError(f"a {self.channel} template needs {', '.join(missing)}")
        if extra:
            raise ValueError(f"a {self.channel} template has no {', '.join(extra)}")
        text_body = self.channel in (Channel.IN_APP, Channel.EMAIL)
        if text_body and self.body is not None and not isinstance(self.body, str):
            raise ValueError("body is text")
        if self.channel in (Channel.WEBHOOK, Channel.CSM_TASK) and not isinstance(self.body, dict):
            raise ValueError("body is a mapping of fields")
        return self


@dataclass(frozen=True, slots=True)
class Rendered:
    channel: Channel
    parts: dict[str, Any]  # subject/text/html, title/body, or body (a JSON-able mapping)


class Template:
    """One template file, its parts compiled once."""

    def __init__(self, name: str, source: str, spec: _TemplateFile, env: SandboxedEnvironment):
        self.name = name
        self.source = source
        self.channel = spec.channel
        self.description = spec.description
        self.content_hash = hashlib.sha256(source.encode()).hexdigest()
        self._spec = spec
        try:
            self._compiled = {
                part: env.from_string(getattr(spec, part))
                for part in ("subject", "text", "html", "title")
                if getattr(spec, part)
            }
            if isinstance(spec.body, str):
                self._compiled["body"] = env.from_string(spec.body)
            self._fields = (
                {k: env.from_string(str(v)) for k, v in spec.body.items()}
                if isinstance(spec.body, dict)
                else {}
            )
        except jinja2.TemplateSyntaxError as error:
            raise TemplateError(
                f"template {name!r}, line {error.lineno}: {error.message}"
            ) from None
        self._env = env

    def render(self, variables: Mapping[str, Any]) -> Rendered:
        """The message for *variables*; :class:`TemplateError` names anything missing."""
        try:
            parts: dict[str, Any] = {p: t.render(variables) for p, t in self._compiled.items()}
            if self._fields:
                parts["body"] = {k: t.render(variables) for k, t in self._fields.items()}
        except jinja2.UndefinedError as error:
            raise TemplateError(
                f"template {self.name!r} uses a variable that is not there: {error.message}"
            ) from None
        except jinja2.exceptions.SecurityError as error:
            raise TemplateError(
                f"template {self.name!r} was stopped by the sandbox: {error}"
            ) from None
        if self.channel is Channel.EMAIL:
            url = variables.get("unsubscribe_url")
            if not url:
                raise TemplateError(f"template {self.name!r}: an email needs an unsubscribe_url")
            if str(url) not in parts["text"]:
                parts["text"] = f"{parts['text'].rstrip()}\n\n--\nUnsubscribe: {url}\n"
            if parts.get("html") and str(url) not in parts["html"]:
                link = markupsafe.escape(str(url))
                parts["html"] += f'\n<p><a href="{link}">Unsubscribe</a></p>'
        return Rendered(self.channel, parts)


@dataclass(frozen=True, slots=True)
class TemplateSet:
    templates: dict[str, Template]

    def get(self, name: str) -> Template:
        try:
            return self.templates[name]
        except KeyError:
            known = ", ".join(sorted(self.templates)) or "none"
            raise TemplateError(f"no template {name!r} (known: {known})") from None


def _environment() -> SandboxedEnvironment:
    return SandboxedEnvironment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # text parts; html parts escape with |e where they need to
        keep_trailing_newline=True,
    )


def load_templates(directory: Path) -> TemplateSet:
    env = _environment()
    templates: dict[str, Template] = {}
    if not directory.is_dir():
        return TemplateSet(templates)
    for path in sorted(directory.glob("*.yaml")):
        source = path.read_text(encoding="utf-8")
        try:
            spec = _TemplateFile.model_validate(yaml.safe_load(source))
        except (yaml.YAMLError, ValidationError) as error:
            raise TemplateError(f"{path}: {error}") from None
        templates[path.stem] = Template(path.stem, source, spec, env)
    return TemplateSet(templates)
