"""Fixtures for webhooks: a private CA trusted through CAMPAIGN_WEBHOOK_CA_FILE, a receiver."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.tls_ca import CertificateAuthority, ServerCertificate
from tests.webhooks.receiver import Receiver, running_receiver


@pytest.fixture(scope="session")
def webhook_ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return CertificateAuthority.create(tmp_path_factory.mktemp("webhook-ca"))


@pytest.fixture(scope="session")
def webhook_certificate(webhook_ca: CertificateAuthority) -> ServerCertificate:
    return webhook_ca.issue("receiver")  # for localhost and 127.0.0.1


@pytest.fixture
def app_overrides(
    app_overrides: dict[str, Any], webhook_ca: CertificateAuthority
) -> dict[str, Any]:
    return {
        **app_overrides,
        "WEBHOOK_CA_FILE": str(webhook_ca.ca_file),
        # The test's own queue in the shared test Redis.
        "QUEUE_NAME": f"test-{uuid.uuid4().hex[:12]}",
    }


@pytest.fixture
def receiver(webhook_certificate: ServerCertificate) -> Iterator[Receiver]:
    with running_receiver(webhook_certificate) as started:
        yield started
