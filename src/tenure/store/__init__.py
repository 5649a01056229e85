"""The operational store: transactional state in SQLite (default) or PostgreSQL.

Reached only through SQLAlchemy; the schema is owned by Alembic migrations.
"""

from tenure.store._audit import AuditEntry, append_audit, read_audit, verify_audit_chain
from tenure.store._engine import create_store_engine, resolve_store_url
from tenure.store._ingest import (
    IngestRun,
    NewQuarantined,
    QuarantineRecord,
    QuarantineStatus,
    add_quarantined,
    finish_run,
    get_quarantined,
    latest_run,
    list_quarantined,
    quarantine_counts,
    resolve_quarantined,
    start_run,
)
from tenure.store._locks import write_lock
from tenure.store._migrate import current_revision, head_revision, is_current, upgrade
from tenure.store._tables import metadata

__all__ = [
    "AuditEntry",
    "IngestRun",
    "NewQuarantined",
    "QuarantineRecord",
    "QuarantineStatus",
    "add_quarantined",
    "append_audit",
    "create_store_engine",
    "current_revision",
    "finish_run",
    "get_quarantined",
    "head_revision",
    "is_current",
    "latest_run",
    "list_quarantined",
    "metadata",
    "quarantine_counts",
    "read_audit",
    "resolve_quarantined",
    "resolve_store_url",
    "start_run",
    "upgrade",
    "verify_audit_chain",
    "write_lock",
]
