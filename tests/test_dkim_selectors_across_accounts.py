"""DKIM selectors across SMTP accounts (issue 14, item 6, review 2): one DNS name holds one
TXT record, so no two accounts (nor the default one) sign with different keys under the same
selector and domain."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from campaign import dkim
from campaign.extensions import db
from campaign.models import Role, SmtpAccount, User
from campaign.services.sending import smtp_accounts
from tests.factories import SmtpAccountFactory
from tests.fault_smtp import FaultSmtpServer
from tests.test_dkim import FROM, _cli

Login = Callable[[Role], User]
DOMAIN = "ngo.example.net"


@pytest.fixture
def app_overrides(app_overrides: dict[str, Any], fault_smtp: FaultSmtpServer) -> dict[str, Any]:
    return {
        **app_overrides,
        "MAIL_SERVER": fault_smtp.host,
        "MAIL_PORT": fault_smtp.port,
        "MAIL_TIMEOUT": 10,  # no stall tested: a loaded 3-worker run can take > 1 s
        "MAIL_DEFAULT_SENDER": FROM,
        "QUEUE_NAME": f"test-{uuid.uuid4().hex[:12]}",
    }


def _key(account: SmtpAccount) -> tuple[str, str, str]:
    db.session.expire_all()
    stored = db.session.get(SmtpAccount, account.id)
    assert stored is not None
    return stored.dkim_selector, stored.dkim_domain, stored.dkim_private_key_encrypted


def test_two_accounts_on_one_domain_get_different_default_selectors(
    app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    postfix = SmtpAccountFactory(name="postfix", server=fault_smtp, security="none", commit=True)
    relay = SmtpAccountFactory(name="relay3", server=fault_smtp, security="none", commit=True)
    first = _cli(app, "postfix", "--domain", DOMAIN)
    second = _cli(app, "relay3", "--domain", DOMAIN)
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    names = [
        re.findall(r"^(\S+)\._domainkey\." + re.escape(DOMAIN), result.output, re.M)
        for result in (first, second)
    ]
    assert names[0] and names[1] and names[0] != names[1]
    assert _key(postfix)[0] == dkim.default_selector()
    assert _key(relay)[0] == dkim.default_selector() + "b"


def test_a_selector_another_account_holds_or_held_is_refused(
    app: Flask, client: FlaskClient, login: Login, fault_smtp: FaultSmtpServer
) -> None:
    postfix = SmtpAccountFactory(name="postfix", server=fault_smtp, security="none", commit=True)
    relay = SmtpAccountFactory(name="relay3", server=fault_smtp, security="none", commit=True)
    assert _cli(app, "postfix", "--selector", "s1", "--domain", DOMAIN).exit_code == 0
    result = _cli(app, "relay3", "--selector", "S1", "--domain", DOMAIN)
    assert result.exit_code != 0
    assert "“s1” at ngo.example.net is the selector of the SMTP account “postfix”" in (
        result.output
    )
    assert "s1._domainkey.ngo.example.net" in result.output
    assert _key(relay) == ("", "", "")
    # The same selector at another domain is another DNS name: accepted.
    assert _cli(app, "relay3", "--selector", "s1", "--domain", "other.example.net").exit_code == 0
    # postfix moves to s2: its record under s1 may still be published (the audit log knows).
    assert _cli(app, "postfix", "--selector", "s2", "--domain", DOMAIN).exit_code == 0
    login(Role.ADMIN)
    page = client.post(
        f"/smtp-accounts/{relay.id}/dkim",
        data={"selector": "s1", "domain": DOMAIN, "algorithm": "rsa"},
    )
    assert page.status_code == 422
    assert "selector of the SMTP account “postfix”" in html.unescape(page.get_data(as_text=True))
    assert _key(relay)[:2] == ("s1", "other.example.net")
    # The page proposes a selector free across accounts.
    form = html.unescape(client.get(f"/smtp-accounts/{relay.id}/dkim").get_data(as_text=True))
    assert f'value="{dkim.default_selector()}"' in form
    assert smtp_accounts.fresh_selector(relay, DOMAIN) == dkim.default_selector()
    assert _key(postfix)[:2] == ("s2", DOMAIN)


def test_the_default_accounts_selector_is_not_given_to_an_account(
    app: Flask, fault_smtp: FaultSmtpServer
) -> None:
    app.config.update(DKIM_DOMAIN=DOMAIN, DKIM_SELECTOR=dkim.default_selector())
    relay = SmtpAccountFactory(name="relay3", server=fault_smtp, security="none", commit=True)
    refused = _cli(app, "relay3", "--selector", dkim.default_selector(), "--domain", DOMAIN)
    assert (
        refused.exit_code != 0 and "the default account (CAMPAIGN_DKIM_SELECTOR)" in refused.output
    )
    assert _key(relay) == ("", "", "")
    chosen = _cli(app, "relay3", "--domain", DOMAIN)
    assert chosen.exit_code == 0, chosen.output
    assert _key(relay)[0] == dkim.default_selector() + "b"


def test_the_default_account_takes_no_selector_of_an_account(
    app: Flask, fault_smtp: FaultSmtpServer, tmp_path: Path
) -> None:
    SmtpAccountFactory(name="postfix", server=fault_smtp, security="none", commit=True)
    assert _cli(app, "postfix", "--domain", DOMAIN).exit_code == 0
    out = tmp_path / "default.pem"
    taken = dkim.default_selector()
    refused = _cli(app, "default", "--selector", taken, "--domain", DOMAIN, "--key-out", str(out))
    assert refused.exit_code != 0 and "“postfix”" in refused.output
    assert not out.exists()  # nothing written
    chosen = _cli(app, "default", "--domain", DOMAIN, "--key-out", str(out))
    assert chosen.exit_code == 0, chosen.output
    assert f"CAMPAIGN_DKIM_SELECTOR={taken}b\n" in chosen.output
