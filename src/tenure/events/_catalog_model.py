"""The shape of the semantic event catalog: which properties an event must carry."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

__all__ = ["EventGroup", "EventSpec", "PropertySpec", "PropertyType"]


class PropertyType(enum.StrEnum):
    STRING = "string"
    NUMBER = "number"  # integer or decimal
    INTEGER = "integer"
    BOOLEAN = "boolean"
    ARRAY = "array"
    OBJECT = "object"
    TIMESTAMP = "timestamp"  # ISO 8601 string


class EventGroup(enum.StrEnum):
    B2B_SAAS = "b2b_saas"  # Segment's B2B SaaS spec
    BILLING = "billing"
    SUPPORT = "support"
    CRM = "crm"
    SURVEY = "survey"
    MESSAGING = "messaging"
    ECOMMERCE = "ecommerce"  # Segment's e-commerce spec
    PRODUCT = "product"


@dataclass(frozen=True, slots=True)
class PropertySpec:
    name: str
    type: PropertyType
    description: str
    required: bool = True
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()

    def expectation(self) -> str:
        """How the property is described in a quarantine reason, e.g. 'an integer 0–10'."""
        article = {
            PropertyType.INTEGER: "an integer",
            PropertyType.NUMBER: "a number",
            PropertyType.STRING: "a string",
            PropertyType.BOOLEAN: "a boolean",
            PropertyType.ARRAY: "an array",
            PropertyType.OBJECT: "an object",
            PropertyType.TIMESTAMP: "an ISO 8601 timestamp string",
        }[self.type]
        if self.minimum is not None and self.maximum is not None:
            article += f" {self.minimum:g}–{self.maximum:g}"
        elif self.minimum is not None:
            article += f" ≥ {self.minimum:g}"
        elif self.maximum is not None:
            article += f" ≤ {self.maximum:g}"
        if self.choices:
            article += " (one of " + ", ".join(self.choices) + ")"
        return article


@dataclass(frozen=True, slots=True)
class EventSpec:
    name: str
    group: EventGroup
    description: str
    properties: tuple[PropertySpec, ...] = field(default=())
    #: Where the event comes from in practice (Segment SDK, Stripe, HubSpot, …).
    sources: tuple[str, ...] = ()

    def property(self, name: str) -> PropertySpec | None:
        return next((p for p in self.properties if p.name == name), None)
