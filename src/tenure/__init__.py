"""tenure: customer lifecycle intelligence.

The public Python API mirrors the CLI: open a :class:`Project`, then call the
step functions (:func:`tenure.collect.ingest`, :func:`tenure.identity.stitch`, …).
"""

from importlib.metadata import PackageNotFoundError, version

from tenure.config import ProjectConfig, load_config
from tenure.errors import TenureError
from tenure.project import Project, init_project

try:
    __version__ = version("tenure")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = ["Project", "ProjectConfig", "TenureError", "__version__", "init_project", "load_config"]
