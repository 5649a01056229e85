"""The warehouse: the Parquet lake and the Ibis engine (DuckDB or Spark) over it."""

from tenure.warehouse._index import INDEX_FILENAME, LakeIndex, Replacement, SwapPhase
from tenure.warehouse._lake import EVENT_PARTITION, Lake, StagedFile
from tenure.warehouse._schema import EVENT_COLUMNS, EVENT_SCHEMA
from tenure.warehouse._warehouse import Warehouse, connect_backend

__all__ = [
    "EVENT_COLUMNS",
    "EVENT_PARTITION",
    "EVENT_SCHEMA",
    "INDEX_FILENAME",
    "Lake",
    "LakeIndex",
    "Replacement",
    "StagedFile",
    "SwapPhase",
    "Warehouse",
    "connect_backend",
]
