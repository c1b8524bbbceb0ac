"""`campaign --help` lists every command even where nothing is configured yet."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CAMPAIGN = Path(sys.executable).parent / "campaign"


def _bare_environment(home: Path) -> dict[str, str]:
    # What a fresh shell on a new machine has: no CAMPAIGN_* variable, not even debug.
    return {"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8"}


@pytest.mark.parametrize("with_instance", [False, True])
def test_help_lists_the_commands_without_any_configuration(
    tmp_path: Path, with_instance: bool
) -> None:
    env = _bare_environment(tmp_path)
    if with_instance:
        # A fresh instance folder: certainly no key in it.
        env["CAMPAIGN_INSTANCE_PATH"] = str(tmp_path / "instance")
    result = subprocess.run(
        [str(CAMPAIGN), "--help"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "CAMPAIGN_SECRET_KEY" not in result.stderr
    assert "Advocacy mailing and campaign automation." in result.stdout
    # The application's own commands, not only Flask's run/shell/routes.
    for command in ("import-contacts", "create-user", "load-demo", "dev", "routes"):
        assert f"  {command} " in result.stdout, result.stdout


def test_running_a_command_without_a_key_still_says_why(tmp_path: Path) -> None:
    env = _bare_environment(tmp_path)
    env["CAMPAIGN_INSTANCE_PATH"] = str(tmp_path / "instance")
    result = subprocess.run(
        [str(CAMPAIGN), "routes"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "CAMPAIGN_SECRET_KEY is still the development key" in result.stderr
