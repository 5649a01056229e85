"""Project secrets: from an environment variable, else a key file the project makes once."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

__all__ = ["project_secret"]


def project_secret(root: Path, name: str, env: str) -> bytes:
    """The secret in environment variable *env*, else ``.tenure/<name>.key`` under *root*.

    The file is made on first use with 256 random bits, readable by its owner
    only. It is written whole under another name and then linked into place,
    so a concurrent first use either wins or reads the winner's complete key.
    """
    value = os.environ.get(env)
    if value:
        return value.encode()
    path = root / ".tenure" / f"{name}.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{name}.{os.getpid()}.{secrets.token_hex(4)}")
        draft.write_text(secrets.token_urlsafe(32))
        draft.chmod(0o600)
        with contextlib.suppress(FileExistsError):
            os.link(draft, path)
        draft.unlink()
    return path.read_text().strip().encode()
