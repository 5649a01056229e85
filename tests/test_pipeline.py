"""Ingest → stitch → split on each operational store, through the CLI where a user would."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
from typer.testing import CliRunner

from tenure.cli import app
from tenure.collect import ingest
from tenure.identity import SPLIT_ACTION, find_profile, split_link, stitch
from tenure.project import Project
from tenure.store import read_audit, verify_audit_chain


def _events(path: Path) -> Path:
    records = [
        # a visitor signs up as u1; a second user u2 is wrongly aliased to u1 by a buggy SDK
        {
            "messageId": "e1",
            "type": "page",
            "name": "Pricing",
            "anonymousId": "a1",
            "timestamp": "2024-05-01T09:00:00Z",
        },
        {
            "messageId": "e2",
            "type": "identify",
            "anonymousId": "a1",
            "userId": "u1",
            "traits": {"email": "ann@acme.example"},
            "timestamp": "2024-05-01T09:05:00Z",
        },
        {
            "messageId": "e3",
            "type": "identify",
            "userId": "u2",
            "traits": {"email": "bob@acme.example"},
            "timestamp": "2024-05-02T10:00:00Z",
        },
        {
            "messageId": "e4",
            "type": "alias",
            "previousId": "u2",
            "userId": "u1",
            "timestamp": "2024-05-03T10:00:00Z",
        },
    ]
    path.write_text("\n".join(orjson.dumps(r).decode() for r in records), encoding="utf-8")
    return path


def test_ingest_stitch_split_keeps_an_audit_trail(project: Project, tmp_path: Path) -> None:
    ingest(project, [_events(tmp_path / "e.jsonl")])
    report = stitch(project)
    assert report.profiles == 1  # the alias merged both users
    merged = find_profile(project.warehouse, "u2")
    assert set(merged.identifiers["user_id"]) == {"u1", "u2"}
    # the visitor's page view before sign-up belongs to the profile
    assert any(e.event == "Pricing" for e in merged.recent_events)
    (alias,) = [link for link in merged.links if link.rule == "alias"]
    result = split_link(project, alias.link_id, actor="ops@acme", reason="SDK bug aliased users")
    assert len(result.profiles_after) == 2
    ann, bob = find_profile(project.warehouse, "u1"), find_profile(project.warehouse, "u2")
    assert ann.profile_id != bob.profile_id
    assert bob.identifiers["email"] == ("bob@acme.example",)
    with project.store.connect() as connection:
        (entry,) = read_audit(connection, action=SPLIT_ACTION)
        assert entry.actor == "ops@acme"
        assert entry.target == alias.link_id
        assert verify_audit_chain(connection) is None
    # a later stitch with no new data does not merge them again
    stitch(project)
    assert (
        find_profile(project.warehouse, "u1").profile_id
        != find_profile(project.warehouse, "u2").profile_id
    )


def test_cli_ingest_stitch_profile_split(tmp_path: Path) -> None:
    runner = CliRunner()
    root = tmp_path / "p"
    assert runner.invoke(app, ["init", str(root)]).exit_code == 0
    events = _events(tmp_path / "e.jsonl")
    assert runner.invoke(app, ["ingest", str(events), "-p", str(root)]).exit_code == 0
    stitched = runner.invoke(app, ["identity", "stitch", "-p", str(root), "--json"])
    assert json.loads(stitched.stdout)["profiles"] == 1
    shown = runner.invoke(app, ["profile", "ann@acme.example", "-p", str(root), "--json"])
    view = json.loads(shown.stdout)
    (alias,) = [link for link in view["links"] if link["rule"] == "alias"]
    split = runner.invoke(
        app,
        [
            "identity",
            "split",
            alias["link_id"],
            "--reason",
            "wrong alias",
            "-p",
            str(root),
            "--json",
        ],
    )
    assert split.exit_code == 0, split.stderr
    assert len(json.loads(split.stdout)["profiles_after"]) == 2
    missing = runner.invoke(app, ["identity", "split", "l_nope", "--reason", "x", "-p", str(root)])
    assert missing.exit_code == 1
    assert missing.stderr.startswith("error: ")
