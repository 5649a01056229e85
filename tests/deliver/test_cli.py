"""``tenure worker`` and ``tenure deliveries …`` through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tenure.cli import app
from tenure.project import Project, utc_now
from tests.conftest import make_project
from tests.deliver.conftest import SmtpServer, email_payload, queue

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def _project(tmp_path: Path, smtp: SmtpServer) -> Project:
    project = make_project(tmp_path / "p", f"sqlite:///{tmp_path / 'store.db'}", clock=utc_now)
    text = project.config_path.read_text(encoding="utf-8")
    project.config_path.write_text(
        text.replace("    port: 25\n", f"    port: {smtp.port}\n"), encoding="utf-8"
    )
    return project


def test_worker_once_then_list_show_and_retry(tmp_path: Path, smtp_server: SmtpServer) -> None:
    project = _project(tmp_path, smtp_server)
    engine = project.store
    mail = queue(engine, "email", email_payload("dee@acme.com"), key="mail-1", now=utc_now())
    tip = queue(
        engine,
        "in_app",
        {"user_id": "u1", "title": "Tip", "body": "Try reports.", "consent_identifiers": []},
        key="tip-1",
        now=utc_now(),
    )
    nowhere = queue(
        engine, "webhook", {"target": "nowhere", "body": {}}, key="hook-1", now=utc_now()
    )
    project.close()
    where = ("--project", str(project.root))

    code, out, _ = invoke("worker", "--once", "--worker-id", "cli-1", *where, "--json")
    assert code == 0
    assert json.loads(out) == {
        "sent": 2,
        "retried": 0,
        "dead": 1,
        "cancelled": 0,
        "resent": 0,
        "released": 0,
        "lost": 0,
    }
    assert smtp_server.mailbox.message_ids() == ["<mail-1@tenure>"]

    code, out, _ = invoke("deliveries", "list", *where, "--json")
    assert code == 0
    listed = json.loads(out)
    assert [(d["id"], d["channel"], d["status"]) for d in listed] == [
        (nowhere, "webhook", "dead"),
        (tip, "in_app", "sent"),
        (mail, "email", "sent"),
    ]
    assert listed[0]["last_error"] == (
        "webhook target 'nowhere' is not configured (known: none); add it under delivery.webhooks"
    )
    code, out, _ = invoke("deliveries", "list", "--status", "dead", *where, "--json")
    assert [d["id"] for d in json.loads(out)] == [nowhere]

    code, out, _ = invoke("deliveries", "show", str(mail), *where)
    assert code == 0
    assert f"delivery {mail} email → dee@acme.com (sent)" in out
    assert "cli-1" in out

    code, out, _ = invoke("deliveries", "retry", str(nowhere), *where, "--json")
    assert code == 0
    assert (json.loads(out)["status"], json.loads(out)["attempts"]) == ("queued", 0)
    code, _, err = invoke("deliveries", "retry", str(mail), *where)
    assert code == 1
    assert f"error: delivery {mail} is sent, not dead; only dead deliveries can be retried" in err
    assert "tenure deliveries list --status dead" in err


def test_list_refuses_an_unknown_status(tmp_path: Path, smtp_server: SmtpServer) -> None:
    project = _project(tmp_path, smtp_server)
    project.close()
    code, _, err = invoke("deliveries", "list", "--status", "lost", "-p", str(project.root))
    assert code == 1
    assert "error: status 'lost' is not one of queued, sending, sent, retry, dead, cancelled" in err


def test_worker_names_every_missing_secret(tmp_path: Path, smtp_server: SmtpServer) -> None:
    project = _project(tmp_path, smtp_server)
    project.close()
    text = project.config_path.read_text(encoding="utf-8")
    text = text.replace(
        "  webhooks: {}\n",
        "  webhooks: {crm: {url: 'http://127.0.0.1:9/x', secret_env: TENURE_TEST_NO_SECRET}}\n",
    )
    project.config_path.write_text(text, encoding="utf-8")
    code, _, err = invoke("worker", "--once", "-p", str(project.root))
    assert code == 1
    assert "delivery.webhooks.crm.secret_env: environment variable TENURE_TEST_NO_SECRET" in err
