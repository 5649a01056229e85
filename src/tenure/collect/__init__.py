"""Collection: reading inputs, validating them, and loading the lake.

Bad records are never dropped: they are quarantined with the reason.
"""

from tenure.collect._candidates import CANDIDATE_SCHEMA
from tenure.collect._ingest import IngestReport, InputReport, Progress, ingest, retry_quarantined
from tenure.collect._reasons import ReasonCode
from tenure.collect._tabular import (
    TabularBatch,
    TabularMapping,
    builtin_mappings,
    detect_mapping,
    load_mapping,
    read_tabular,
)

__all__ = [
    "CANDIDATE_SCHEMA",
    "IngestReport",
    "InputReport",
    "Progress",
    "ReasonCode",
    "TabularBatch",
    "TabularMapping",
    "builtin_mappings",
    "detect_mapping",
    "ingest",
    "load_mapping",
    "read_tabular",
    "retry_quarantined",
]
