from __future__ import annotations

import json
import re
from pathlib import Path

import orjson
import pytest
from typer.main import get_command
from typer.testing import CliRunner

from tenure.cli import app

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def _commands() -> list[list[str]]:
    root = get_command(app)
    paths: list[list[str]] = []

    def walk(command: object, prefix: list[str]) -> None:
        subcommands = getattr(command, "commands", None)
        if subcommands:
            for name, sub in subcommands.items():
                walk(sub, [*prefix, name])
        else:
            paths.append(prefix)

    walk(root, [])
    return paths


@pytest.mark.parametrize("path", _commands(), ids=lambda p: " ".join(p))
def test_every_command_has_help(path: list[str]) -> None:
    code, out, _ = invoke(*path, "--help")
    assert code == 0
    assert "Usage:" in out
    # every command says what it does in one line
    assert re.search(r"\n\s+\S.+\n", out.split("Usage:", 1)[1])


def test_init_then_status_json(tmp_path: Path) -> None:
    code, out, _ = invoke("init", str(tmp_path / "p"), "--json")
    assert code == 0
    info = json.loads(out)
    assert info["config"].endswith("tenure.yaml")
    assert (
        (tmp_path / "p" / "tenure.yaml")
        .read_text(encoding="utf-8")
        .startswith("# tenure project file")
    )
    code, out, _ = invoke("status", "--project", str(tmp_path / "p"), "--json")
    assert code == 0
    status = json.loads(out)
    assert status["store_revision"] == "0006"
    assert status["store_tables"] == {
        name: 0
        for name in (
            "api_keys", "audit_log", "consent", "customer_state", "decisions",
            "delivery_attempts", "erasure_requests", "erasure_suppressions", "in_app_messages",
            "inbox", "ingest_runs", "journey_runs",
            "journey_steps", "model_events", "model_versions", "outbox", "policy_versions",
            "quarantine", "review_queue",
        )
    }  # fmt: skip
    assert status["last_ingest"] is None
    assert (status["lake_events"], status["lake_files"]) == (0, 0)


def test_ingest_quarantine_list_show(tmp_path: Path) -> None:
    invoke("init", str(tmp_path / "p"))
    events = tmp_path / "e.jsonl"
    good = {
        "messageId": "m1",
        "type": "track",
        "event": "Signed In",
        "userId": "u1",
        "timestamp": "2024-05-01T10:00:00Z",
    }
    events.write_text(orjson.dumps(good).decode() + "\n{oops\n", encoding="utf-8")
    code, out, _ = invoke("ingest", str(events), "-p", str(tmp_path / "p"), "--json")
    assert code == 0
    report = json.loads(out)
    assert (report["loaded"], report["duplicates"], report["quarantined"]) == (1, 0, 1)
    code, out, _ = invoke("ingest", str(events), "-p", str(tmp_path / "p"))
    assert code == 0
    assert "loaded 0 · duplicate 1 · quarantined 0" in out
    code, out, _ = invoke("quarantine", "list", "-p", str(tmp_path / "p"), "--json")
    (record,) = json.loads(out)
    assert (record["reason_code"], record["record_number"], record["raw"]) == (
        "malformed_json",
        2,
        "{oops",
    )
    code, out, _ = invoke("quarantine", "show", str(record["id"]), "-p", str(tmp_path / "p"))
    assert code == 0
    assert "malformed_json: line is not valid JSON" in out
    assert "{oops" in out


def test_errors_are_one_line_with_a_hint(tmp_path: Path) -> None:
    code, _, err = invoke("status", "-p", str(tmp_path))
    assert code == 1
    lines = err.strip().splitlines()
    assert lines[0] == f"error: no tenure.yaml in {tmp_path}"
    assert lines[1].startswith("hint: run `tenure init`")
    assert "Traceback" not in err


def test_config_error_lists_keys(tmp_path: Path) -> None:
    (tmp_path / "tenure.yaml").write_text("store:\n  url: oracle://x\nlake: 3\n", encoding="utf-8")
    code, _, err = invoke("status", "-p", str(tmp_path))
    assert code == 1
    assert "2 problems" in err
    assert "store.url: a SQLAlchemy URL for SQLite or PostgreSQL" in err
    assert "lake: Input should be a valid dictionary" in err


def test_debug_shows_traceback(tmp_path: Path) -> None:
    code, _, err = invoke("--debug", "quarantine", "show", "5", "-p", str(tmp_path))
    assert code == 1
    assert "Traceback" in err


def test_unknown_quarantine_record(tmp_path: Path) -> None:
    invoke("init", str(tmp_path / "p"))
    code, _, err = invoke("quarantine", "show", "42", "-p", str(tmp_path / "p"))
    assert code == 1
    assert "error: no quarantined record with id 42" in err
    assert "hint: `tenure quarantine list` shows the ids" in err


def test_list_mappings() -> None:
    code, out, _ = invoke("ingest", "--list-mappings", "--json")
    assert code == 0
    mappings = json.loads(out)
    assert {"stripe.subscriptions", "hubspot.contacts", "zendesk.tickets"} <= set(mappings)
