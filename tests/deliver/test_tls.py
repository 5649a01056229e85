"""SMTP over STARTTLS and implicit TLS, against aiosmtpd with a throwaway certificate."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import pytest

from tenure._config_decide import SmtpSettings
from tenure.deliver import SmtpChannel
from tenure.project import Project
from tests.deliver.conftest import (
    Mailbox,
    MovableClock,
    email_payload,
    make_worker,
    queue,
    start_smtp,
)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (needed to make a test certificate)")
    root = tmp_path_factory.mktemp("tls")
    cert, key = root / "cert.pem", root / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_email_over_tls(
    sqlite_project: Project,
    clock: MovableClock,
    certificate: tuple[Path, Path],
    security: str,
) -> None:
    cert, key = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    tls = (
        {"tls_context": server_context, "require_starttls": True}
        if security == "starttls"
        else {"ssl_context": server_context}
    )
    controller, server = start_smtp(Mailbox(), **tls)
    try:
        channel = SmtpChannel(
            SmtpSettings(host=server.host, port=server.port, security=security, timeout_seconds=5),
            clock=clock,
            ssl_context=ssl.create_default_context(cafile=str(cert)),
        )
        engine = sqlite_project.store
        queue(engine, "email", email_payload("dee@acme.com"), key="tls-1", now=clock())
        assert make_worker(engine, {"email": channel}, clock).deliver_once().sent == 1
        assert server.mailbox.message_ids() == ["<tls-1@tenure>"]
    finally:
        controller.stop()


def test_an_untrusted_certificate_is_retried_not_ignored(
    sqlite_project: Project, clock: MovableClock, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    controller, server = start_smtp(Mailbox(), ssl_context=server_context)
    try:
        channel = SmtpChannel(  # the system's trust store does not know the test certificate
            SmtpSettings(host=server.host, port=server.port, security="ssl", timeout_seconds=5),
            clock=clock,
        )
        engine = sqlite_project.store
        queue(engine, "email", email_payload("dee@acme.com"), key="tls-2", now=clock())
        assert make_worker(engine, {"email": channel}, clock).deliver_once().retried == 1
        assert server.mailbox.message_ids() == []
    finally:
        controller.stop()
