"""Identity stitching, profiles, accounts and the customer graph.

``stitch`` is the batch step: it reads the events of ingest runs not stitched
yet, links identifiers seen together, merges them into profiles under the
over-merge limits, and rebuilds the ``profiles``, ``accounts``,
``account_memberships`` and ``graph_edges`` warehouse tables.
``find_profile`` is the read side, ``split_link`` undoes a wrong merge.
"""

from tenure.identity._lookup import (
    AccountMembership,
    AccountSummary,
    GraphNeighbour,
    IdentityLink,
    ProfileView,
    RecentEvent,
    find_profile,
    resolve_profile_id,
)
from tenure.identity._model import Entity, LinkRule, LinkStatus
from tenure.identity._split import SPLIT_ACTION, SplitResult, split_link, split_link_in
from tenure.identity._stitch import StitchReport, stitch, stitch_warehouse
from tenure.identity._tables import table_schemas

__all__ = [
    "SPLIT_ACTION",
    "AccountMembership",
    "AccountSummary",
    "Entity",
    "GraphNeighbour",
    "IdentityLink",
    "LinkRule",
    "LinkStatus",
    "ProfileView",
    "RecentEvent",
    "SplitResult",
    "StitchReport",
    "find_profile",
    "resolve_profile_id",
    "split_link",
    "split_link_in",
    "stitch",
    "stitch_warehouse",
    "table_schemas",
]
