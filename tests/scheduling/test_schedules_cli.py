"""`campaign schedules` and `campaign tick --now`: what operators see."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Flask

from campaign.extensions import db
from campaign.scheduling.schedules import create_send_at, create_yearly
from tests.factories import CampaignFactory

CREATED = datetime(2027, 6, 1, 12, tzinfo=UTC)


def test_schedules_list_and_tick_print_each_fire_and_a_summary(app: Flask) -> None:
    runner = app.test_cli_runner()
    assert runner.invoke(args=["schedules"]).output == "no schedules\n"
    create_send_at(
        CampaignFactory(name="Summit letter", commit=True),
        "2027-06-26T09:00",
        "Europe/Paris",
        now=CREATED,
    )
    create_yearly(
        CampaignFactory(name="Torture day", recipients=("b@example.org",), commit=True),
        6,
        26,
        "09:00",
        "Australia/Sydney",
        now=CREATED,
    )
    db.session.commit()

    listing = runner.invoke(args=["schedules"]).output.splitlines()
    assert listing[0].endswith(
        "yearly_campaign\tTorture day\tnext 2027-06-25 23:00 UTC "
        "(2027-06-26 09:00 Australia/Sydney)"
    )
    assert listing[1].endswith(
        "send_at\tSummit letter\tnext 2027-06-26 07:00 UTC (2027-06-26 09:00 Europe/Paris)"
    )

    result = runner.invoke(args=["tick", "--now", "2027-06-29T08:00:00Z"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("skipped\tyearly_campaign\tTorture day\tdue 2027-06-25 23:00 UTC")
    assert lines[1].endswith("3 days late: not sent")
    assert lines[-1] == "0 fired, 2 skipped"

    bad = runner.invoke(args=["tick", "--now", "yesterday"])
    assert bad.exit_code == 2 and "not an ISO 8601 time" in bad.output
