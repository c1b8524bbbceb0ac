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


def _campaign(args: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    env = _bare_environment(home)
    env["CAMPAIGN_INSTANCE_PATH"] = str(home / "instance")
    return subprocess.run(
        [str(CAMPAIGN), *args],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["send", "--help"], "Usage: campaign send [OPTIONS] CAMPAIGN_ID"),
        (["worker", "--help"], "Usage: campaign worker [OPTIONS]"),
        (["db", "upgrade", "--help"], "Usage: campaign db upgrade"),
        (["help"], "Advocacy mailing and campaign automation."),
        (["help", "send"], "Usage: campaign send [OPTIONS] CAMPAIGN_ID"),
    ],
)
def test_the_help_of_one_command_needs_no_configuration(
    tmp_path: Path, args: list[str], expected: str
) -> None:
    result = _campaign(args, tmp_path)
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout
    assert "CAMPAIGN_SECRET_KEY" not in result.stderr + result.stdout


def test_a_command_given_help_as_a_value_still_refuses_without_a_key(tmp_path: Path) -> None:
    # "--help" taken as the value of --name: the command would run, so it must refuse.
    result = _campaign(["create-user", "a@example.org", "--name", "--help"], tmp_path)
    assert result.returncode != 0
    assert "CAMPAIGN_SECRET_KEY is still the development key" in result.stderr
    assert "Traceback" not in result.stderr
