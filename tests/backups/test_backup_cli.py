"""`campaign backup-key`, `campaign backup` and `campaign restore` through the installed
console script, as an operator runs them (decision 0087)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from campaign.config import PROJECT_ROOT
from campaign.extensions import db
from tests import servers
from tests.backups.helpers import make_identity
from tests.burst_worker import app_for
from tests.factories import ContactFactory

CAMPAIGN = str(Path(sys.executable).with_name("campaign"))


def _run(settings: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGN_")}
    env.update(settings, LC_ALL="C.UTF-8", LANG="C.UTF-8")
    return subprocess.run(
        [CAMPAIGN, *arguments],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _installation(folder: Path, template: Path, redis: servers.RedisServer) -> dict[str, str]:
    folder.mkdir()
    database = folder / "campaign.sqlite3"
    shutil.copyfile(template, database)
    return {
        "CAMPAIGN_SECRET_KEY": "cli-test-secret-key-not-for-production",
        "CAMPAIGN_INSTANCE_PATH": str(folder / "instance"),
        "CAMPAIGN_DATABASE_URL": f"sqlite:///{database}",
        "CAMPAIGN_REDIS_URL": redis.url,
    }


def test_an_operator_makes_a_key_backs_up_and_restores_from_the_command_line(
    tmp_path: Path, sqlite_template: Path, redis_server: servers.RedisServer
) -> None:
    # The key pair is made on a laptop that has no configuration at all.
    key = tmp_path / "laptop" / "backup-identity.txt"
    key.parent.mkdir()
    made = _run({}, "backup-key", str(key))
    assert made.returncode == 0, made.stderr
    public = made.stdout.strip()
    assert public.startswith("age1") and "Keep it OFF the server" in made.stderr
    assert key.stat().st_mode & 0o777 == 0o600

    original = _installation(tmp_path / "original", sqlite_template, redis_server)
    with app_for(original).app_context():
        ContactFactory(email="rapporteur@un.example", given_name="Clément")
        db.session.commit()
        db.session.remove()
        db.engine.dispose()

    archive = tmp_path / "nightly.age"
    done = _run(original, "backup", str(archive), "--recipient", public)
    assert done.returncode == 0, done.stderr
    rows = re.search(r"backing up: (\d+) of \1 rows", done.stderr)  # the progress line
    assert rows, done.stderr
    assert f"{archive}: " in done.stdout and f" {rows[1]} rows, " in done.stdout
    assert archive.exists() and b"rapporteur@un.example" not in archive.read_bytes()

    copy = _installation(tmp_path / "copy", sqlite_template, redis_server)
    stranger, _public = make_identity(tmp_path)
    wrong = _run(copy, "restore", str(archive), "--identity", str(stranger))
    assert wrong.returncode == 1
    assert f"Error: {archive} was not encrypted to this identity" in wrong.stderr

    restored = _run(copy, "restore", str(archive), "--identity", str(key))
    assert restored.returncode == 0, restored.stderr
    assert f"restoring: {rows[1]} of {rows[1]} rows" in restored.stderr
    assert f"restored {rows[1]} rows of " in restored.stdout
    assert "Sending is held" in restored.stdout
