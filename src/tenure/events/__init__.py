"""Events: the canonical Segment-spec event model and the semantic event catalog."""

from tenure.events._catalog import CATALOG, catalog_event
from tenure.events._catalog_model import EventGroup, EventSpec, PropertySpec, PropertyType
from tenure.events._docs import render_catalog_markdown
from tenure.events._spec import (
    AliasEvent,
    BatchRequest,
    Event,
    GroupEvent,
    IdentifyEvent,
    PageEvent,
    ScreenEvent,
    TrackEvent,
    parse_batch,
    parse_event,
)

__all__ = [
    "CATALOG",
    "AliasEvent",
    "BatchRequest",
    "Event",
    "EventGroup",
    "EventSpec",
    "GroupEvent",
    "IdentifyEvent",
    "PageEvent",
    "PropertySpec",
    "PropertyType",
    "ScreenEvent",
    "TrackEvent",
    "catalog_event",
    "parse_batch",
    "parse_event",
    "render_catalog_markdown",
]
