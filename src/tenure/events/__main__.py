"""``python -m tenure.events [PATH]``: write the event catalog as Markdown.

PATH defaults to docs/events.md (run it from the repository root); ``-``
prints to standard output instead.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tenure.events._docs import render_catalog_markdown

DEFAULT_PATH = Path("docs") / "events.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tenure.events",
        description="Render the semantic event catalog as Markdown.",
    )
    parser.add_argument(
        "path",
        nargs="?",
        default=str(DEFAULT_PATH),
        help=f"where to write it (default: {DEFAULT_PATH}; '-' for standard output)",
    )
    args = parser.parse_args(argv)
    text = render_catalog_markdown()
    if args.path == "-":
        sys.stdout.write(text)
        return 0
    path = Path(args.path)
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
