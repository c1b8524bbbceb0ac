"""Every audit event the code records has a label in the reader's language: the audit log
shows "Sending resumed after a restore from backup", never `backup.restore_release`."""

from __future__ import annotations

import re
from pathlib import Path

from campaign.labels import LABELS

CODE = Path(__file__).resolve().parents[1] / "campaign"
# record_event("kind.action", …): the action as the first argument, on the same or next line.
RECORDED = re.compile(r"record_event\(\s*\"([a-z_]+\.[a-z_.]+)\"")


def test_every_recorded_audit_event_has_a_label() -> None:
    recorded = {
        action
        for path in CODE.rglob("*.py")
        for action in RECORDED.findall(path.read_text(encoding="utf-8"))
    }
    assert len(recorded) > 50  # the pattern still finds the calls
    assert sorted(recorded - set(LABELS["audit_event"])) == []
