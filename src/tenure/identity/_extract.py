"""What identity stitching reads from events, as Ibis expressions.

Every function takes a table of events (the lake's columns) and returns an
expression; nothing here runs a query. JSON fields are parsed with Ibis's JSON
support (``.try_cast("json")``, ``.map`` / ``.array`` and ``unnest``); text
that is not valid JSON reads as no value rather than failing the run.

Which identifier an event *belongs to* (its key) decides where it is counted,
whose traits it sets and whose graph edges it adds:

* person key: ``user_id``, else ``anonymous_id``, else ``email``, else the
  smallest person external id on the event;
* account key: ``group_id`` (a group call's id or ``context.groupId``), else
  the smallest account external id on the event.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import ibis

from tenure._event_values import typed_identifier
from tenure.identity._model import Entity, LinkRule

if TYPE_CHECKING:
    import ibis.expr.types as ir

__all__ = [
    "account_links",
    "account_nodes",
    "edges",
    "event_keys",
    "external_ids",
    "hash16",
    "memberships",
    "person_links",
    "person_nodes",
    "traits",
]

_NULL = ibis.null("string")


def _json_text(value: ir.JSONValue) -> ir.StringValue:
    """A JSON scalar as text: strings unquoted, integers printed, anything else null."""
    return ibis.coalesce(value.str, value.int.cast("string")).strip().nullif("")


def external_ids(events: ir.Table) -> ir.Table:
    """One row per ``context.externalIds`` entry: message_id, entity, identifier.

    ``collection: "accounts"`` belongs to accounts; anything else (Segment's
    default is ``users``) to people. The identifier is
    ``external_id:<type>:<id>``.
    """
    entries = events.select(
        "message_id",
        entry=events.context.try_cast("json")["externalIds"].array.unnest(),
    )
    parsed = entries.select(
        "message_id",
        ext_type=_json_text(entries.entry["type"]),
        ext_id=_json_text(entries.entry["id"]),
        collection=entries.entry["collection"].str.lower(),
    )
    parsed = parsed.filter(parsed.ext_type.notnull() & parsed.ext_id.notnull())
    return parsed.select(
        "message_id",
        entity=(parsed.collection == "accounts")
        .fill_null(False)
        .ifelse(Entity.ACCOUNT.value, Entity.PERSON.value),
        identifier=ibis.literal("external_id:") + parsed.ext_type + ":" + parsed.ext_id,
    ).distinct()


def event_keys(events: ir.Table, ext: ir.Table) -> ir.Table:
    """Each event with its typed identifiers and its person and account keys."""
    first_ext = ext.group_by("message_id").aggregate(
        person_ext=ext.identifier.min(where=ext.entity == Entity.PERSON.value),
        account_ext=ext.identifier.min(where=ext.entity == Entity.ACCOUNT.value),
    )
    typed = events.select(
        "message_id",
        "type",
        "event",
        "timestamp",
        "source",
        "ingest_run",
        "traits",
        "properties",
        "previous_id",
        user_key=typed_identifier("user_id", events.user_id),
        anon_key=typed_identifier("anonymous_id", events.anonymous_id),
        email_key=typed_identifier("email", events.email.lower()),
        group_key=typed_identifier("group_id", events.group_id),
    )
    joined = typed.left_join(first_ext, "message_id").select(
        *[typed[c] for c in typed.columns], first_ext.person_ext, first_ext.account_ext
    )
    return joined.mutate(
        person_key=ibis.coalesce(
            joined.user_key, joined.anon_key, joined.email_key, joined.person_ext
        ),
        account_key=ibis.coalesce(joined.group_key, joined.account_ext),
    )


def _alias_previous(keys: ir.Table, known_user_ids: ir.Table) -> ir.Table:
    """Alias calls with ``previous_id`` typed: a user id if one is known, else anonymous."""
    aliases = keys.filter((keys.type == "alias") & keys.user_key.notnull())
    aliases = aliases.mutate(
        as_user=typed_identifier("user_id", aliases.previous_id),
        as_anon=typed_identifier("anonymous_id", aliases.previous_id),
    ).filter(lambda t: t.as_user.notnull())
    known = known_user_ids.select(known_id="identifier").distinct()
    joined = aliases.left_join(known, aliases.as_user == known.known_id)
    return joined.select(
        "message_id",
        "timestamp",
        "ingest_run",
        "user_key",
        previous_key=joined.known_id.notnull().ifelse(joined.as_user, joined.as_anon),
    )


def person_nodes(keys: ir.Table, ext: ir.Table, known_user_ids: ir.Table) -> ir.Table:
    """Every person identifier in the events: identifier, kind, first/last seen, event count."""
    seen = [
        keys.select(identifier=keys[column], timestamp=keys.timestamp)
        for column in ("user_key", "anon_key", "email_key")
    ]
    aliases = _alias_previous(keys, known_user_ids)
    seen.append(aliases.select(identifier=aliases.previous_key, timestamp=aliases.timestamp))
    person_ext = ext.filter(ext.entity == Entity.PERSON.value)
    on_ext = person_ext.join(keys.select("message_id", "timestamp"), "message_id")
    seen.append(on_ext.select("identifier", "timestamp"))
    return _nodes(ibis.union(*seen), keys, "person_key")


def account_nodes(keys: ir.Table, ext: ir.Table) -> ir.Table:
    seen = [keys.select(identifier=keys.group_key, timestamp=keys.timestamp)]
    account_ext = ext.filter(ext.entity == Entity.ACCOUNT.value)
    on_ext = account_ext.join(keys.select("message_id", "timestamp"), "message_id")
    seen.append(on_ext.select("identifier", "timestamp"))
    return _nodes(ibis.union(*seen), keys, "account_key")


def _nodes(seen: ir.Table, keys: ir.Table, key_column: str) -> ir.Table:
    seen = seen.filter(seen.identifier.notnull())
    spans = seen.group_by("identifier").aggregate(
        first_seen=seen.timestamp.min(), last_seen=seen.timestamp.max()
    )
    owned = keys.filter(keys[key_column].notnull())
    counts = owned.group_by(identifier=owned[key_column]).aggregate(event_count=owned.count())
    joined = spans.left_join(counts, "identifier")
    return joined.select(
        spans.identifier,
        kind=spans.identifier.split(":")[0],
        first_seen=spans.first_seen,
        last_seen=spans.last_seen,
        event_count=joined.event_count.fill_null(0).cast("int64"),
    )


def person_links(keys: ir.Table, ext: ir.Table, known_user_ids: ir.Table) -> ir.Table:
    """Distinct person links: link_id, rule, left_id, right_id, first/last seen, events,
    and the message and ingest run of the earliest event carrying the link."""
    pairs = [
        _pairs(keys, LinkRule.ANONYMOUS_USER, keys.anon_key, keys.user_key),
        _pairs(keys, LinkRule.USER_EMAIL, keys.user_key, keys.email_key),
        _pairs(
            keys,
            LinkRule.ANONYMOUS_EMAIL,
            keys.anon_key,
            keys.user_key.isnull().ifelse(keys.email_key, _NULL),
        ),
    ]
    aliases = _alias_previous(keys, known_user_ids)
    pairs.append(_pairs(aliases, LinkRule.ALIAS, aliases.previous_key, aliases.user_key))
    person_ext = ext.filter(ext.entity == Entity.PERSON.value)
    on_ext = person_ext.join(keys, "message_id")
    main = ibis.coalesce(on_ext.user_key, on_ext.anon_key, on_ext.email_key)
    pairs.append(_pairs(on_ext, LinkRule.EXTERNAL_ID, on_ext.identifier, main))
    return _distinct_links(Entity.PERSON, ibis.union(*pairs))


def account_links(keys: ir.Table, ext: ir.Table) -> ir.Table:
    account_ext = ext.filter(ext.entity == Entity.ACCOUNT.value)
    on_ext = account_ext.join(keys, "message_id")
    pairs = _pairs(on_ext, LinkRule.GROUP_EXTERNAL_ID, on_ext.group_key, on_ext.identifier)
    return _distinct_links(Entity.ACCOUNT, pairs)


def _pairs(
    table: ir.Table, rule: LinkRule, left: ir.StringValue, right: ir.StringValue
) -> ir.Table:
    rows = table.select(
        rule=ibis.literal(rule.value),
        left_id=left,
        right_id=right,
        timestamp=table.timestamp,
        message_id=table.message_id,
        ingest_run=table.ingest_run,
    )
    return rows.filter(
        rows.left_id.notnull() & rows.right_id.notnull() & (rows.left_id != rows.right_id)
    )


def _distinct_links(entity: Entity, pairs: ir.Table) -> ir.Table:
    key = ["rule", "left_id", "right_id"]
    spans = pairs.group_by(key).aggregate(
        first_seen=pairs.timestamp.min(), last_seen=pairs.timestamp.max(), events=pairs.count()
    )
    order = ibis.row_number().over(group_by=key, order_by=[pairs.timestamp, pairs.message_id])
    first = pairs.mutate(_n=order)
    first = first.filter(first._n == 0).select(*key, "message_id", "ingest_run")
    joined = spans.join(first, key)
    sep = "\x1f"
    text = ibis.literal(entity.value + sep) + joined.rule + sep + joined.left_id + sep
    return joined.mutate(link_id=ibis.literal("l_") + hash16(text + joined.right_id))


def hash16(text: ir.StringValue) -> ir.StringValue:
    """The digits of :func:`tenure.identity._model.short_hash`, computed by the engine."""
    return text.hexdigest("sha256").substr(0, 16)


def traits(keys: ir.Table) -> ir.Table:
    """Trait values of identify (people) and group (accounts) calls, latest per source.

    One row per entity, identifier, trait key and source: the value as JSON
    text, with the time and message that set it. JSON nulls are ignored.
    """
    people = keys.filter((keys.type == "identify") & keys.person_key.notnull())
    people = people.select(
        "traits", "source", "timestamp", "message_id",
        entity=ibis.literal(Entity.PERSON.value), identifier=people.person_key,
    )  # fmt: skip
    groups = keys.filter((keys.type == "group") & keys.account_key.notnull())
    groups = groups.select(
        "traits", "source", "timestamp", "message_id",
        entity=ibis.literal(Entity.ACCOUNT.value), identifier=groups.account_key,
    )  # fmt: skip
    calls = ibis.union(people, groups)
    as_map = calls.traits.try_cast("json").map
    pairs = calls.select(
        "entity",
        "identifier",
        "source",
        "timestamp",
        "message_id",
        key=as_map.keys().unnest(),
        json=as_map.values().unnest(),
    )
    pairs = pairs.filter(pairs.key.notnull() & pairs.json.notnull())
    values = pairs.select(
        "entity", "identifier", "key", "source",
        value=pairs.json.cast("string"), timestamp=pairs.timestamp, message_id=pairs.message_id,
    )  # fmt: skip
    return latest_per(values, ["entity", "identifier", "key", "source"])


def latest_per(values: ir.Table, key: list[str]) -> ir.Table:
    """The row with the latest timestamp (then the largest message_id) per *key*."""
    order = ibis.row_number().over(
        group_by=key, order_by=[ibis.desc(values.timestamp), ibis.desc(values.message_id)]
    )
    ranked = values.mutate(_n=order)
    return ranked.filter(ranked._n == 0).drop("_n")


def memberships(keys: ir.Table) -> ir.Table:
    """Person key seen with an account key on one event."""
    both = keys.filter(keys.person_key.notnull() & keys.account_key.notnull())
    return both.group_by(
        person_identifier=both.person_key, account_identifier=both.account_key
    ).aggregate(
        first_seen=both.timestamp.min(), last_seen=both.timestamp.max(), events=both.count()
    )


def edges(keys: ir.Table) -> ir.Table:
    """Identifiers seen with tickets, opportunities and subscriptions.

    * ticket: ``properties.ticket_id`` of ``Ticket …`` events;
    * opportunity: ``properties.opportunity_id`` of any track event;
    * subscription: ``properties.subscription_id``, else ``properties.plan``,
      of ``Subscription …`` events.
    """
    track = keys.filter(
        (keys.type == "track")
        & keys.properties.notnull()
        & (keys.person_key.notnull() | keys.account_key.notnull())
    )
    props = track.properties.try_cast("json")
    objects = track.select(
        "person_key",
        "account_key",
        "timestamp",
        ticket=track.event.startswith("Ticket ").ifelse(_json_text(props["ticket_id"]), _NULL),
        opportunity=_json_text(props["opportunity_id"]),
        subscription=track.event.startswith("Subscription ").ifelse(
            ibis.coalesce(_json_text(props["subscription_id"]), _json_text(props["plan"])),
            _NULL,
        ),
    )
    rows = []
    for object_type in ("ticket", "opportunity", "subscription"):
        for entity, key in ((Entity.PERSON, "person_key"), (Entity.ACCOUNT, "account_key")):
            part = objects.filter(objects[object_type].notnull() & objects[key].notnull())
            rows.append(
                part.select(
                    entity=ibis.literal(entity.value),
                    identifier=part[key],
                    object_type=ibis.literal(object_type),
                    object_id=part[object_type],
                    timestamp=part.timestamp,
                )
            )
    found = ibis.union(*rows)
    return found.group_by(["entity", "identifier", "object_type", "object_id"]).aggregate(
        first_seen=found.timestamp.min(), last_seen=found.timestamp.max(), events=found.count()
    )
