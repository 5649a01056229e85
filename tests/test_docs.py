"""The README's promises: exactly two set-up commands, and CI runs the second."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _quickstart_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    setup = section.split("Then look around", 1)[0]
    return [c.strip() for c in re.findall(r"```bash\n(.*?)```", setup, flags=re.S)]


def test_quickstart_has_exactly_two_commands() -> None:
    commands = _quickstart_commands()
    assert len(commands) == 2
    assert all("\n" not in c for c in commands)
    assert commands[0].endswith("tenure demo")
    assert "[test]" in commands[1]


def test_ci_runs_the_readme_test_command() -> None:
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert _quickstart_commands()[1] in script.splitlines()


def test_event_catalog_doc_is_linked() -> None:
    assert "docs/events.md" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_mapping_format_example_is_a_valid_mapping() -> None:
    from tenure.collect._tabular import parse_mapping_yaml

    doc = (ROOT / "docs" / "mappings.md").read_text(encoding="utf-8")
    example = doc.split("## The format", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    mapping = parse_mapping_yaml(example, origin="docs/mappings.md")
    assert mapping.name == "custom.orders"
    assert [e.event for e in mapping.events] == ["Order Completed"]


_GROUPS = {
    "models",
    "quarantine",
    "identity",
    "db",
    "review",
    "policies",
    "deliveries",
    "journeys",
    "templates",
    "erasures",
}


def _documented_commands() -> set[tuple[str, ...]]:
    """Every ``tenure …`` command line in the README and docs, as its command path."""
    found: set[tuple[str, ...]] = set()
    for path in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        for block in path.read_text(encoding="utf-8").split("```")[1::2]:
            for line in block.splitlines():
                for part in line.split("&&"):
                    words = part.split("#")[0].split()
                    if len(words) < 2 or words[0] != "tenure":
                        continue
                    command = (words[1],)
                    if words[1] in _GROUPS and len(words) > 2:
                        # "list|show|promote" documents several subcommands at once
                        found.update((words[1], sub) for sub in words[2].split("|"))
                        continue
                    found.add(command)
    return found


def test_every_documented_command_exists() -> None:
    from typer.testing import CliRunner

    from tenure.cli import app

    commands = _documented_commands()
    assert {("score",), ("models", "rollback"), ("quarantine", "list")} <= commands
    runner = CliRunner()
    for command in sorted(commands):
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0, f"tenure {' '.join(command)}: {result.output}"
