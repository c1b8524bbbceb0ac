"""The installable wheel's parts that need no build (docs/decisions/0053-installable-wheel.md).

scripts/wheel-smoke builds the wheel, checks that it holds every template, static file,
migration and data file and a .mo per language, installs it into a fresh virtual
environment outside the checkout and runs it there; .ci/run calls it after the suite.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from campaign import config, create_app
from campaign.cli import cli
from campaign.config import PROJECT_ROOT


def _project_version() -> str:
    with (PROJECT_ROOT / "pyproject.toml").open("rb") as file:
        return str(tomllib.load(file)["project"]["version"])


def test_campaign_version_prints_the_project_version_without_any_configuration(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("CAMPAIGN_SECRET_KEY", raising=False)
    monkeypatch.delenv("CAMPAIGN_DEBUG", raising=False)
    monkeypatch.setenv("CAMPAIGN_INSTANCE_PATH", str(tmp_path / "never-made"))
    result = CliRunner().invoke(cli, ["--version"], prog_name="campaign")
    assert result.exit_code == 0, result.output
    assert result.output == f"campaign {_project_version()}\n"
    # Nothing was built: no app, so no instance folder.
    assert not (tmp_path / "never-made").exists()


def test_from_a_checkout_the_app_uses_the_checkouts_folders(tmp_path: Path) -> None:
    assert config.INSTALLED is False
    app = create_app({"INSTANCE_PATH": str(tmp_path), "DEBUG": True})
    assert app.template_folder == str(PROJECT_ROOT / "templates")
    assert app.static_folder == str(PROJECT_ROOT / "static")
    assert app.extensions["migrate"].directory == str(PROJECT_ROOT / "migrations")
    assert (PROJECT_ROOT / "templates" / "base.html").is_file()
    assert (PROJECT_ROOT / "static" / "style.css").is_file()
    assert (PROJECT_ROOT / "migrations" / "env.py").is_file()
    instance = config.Config().INSTANCE_PATH
    assert instance == str(PROJECT_ROOT / "instance")


def test_installed_from_the_wheel_the_package_holds_the_folders_and_the_instance_is_outside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The wheel's layout: site-packages/campaign/{config.py,templates,static,migrations}.
    package = tmp_path / "site-packages" / "campaign"
    for name in ("templates", "static", "migrations"):
        (package / name).mkdir(parents=True)
    shutil.copy(config.__file__, package / "config.py")
    spec = importlib.util.spec_from_file_location("wheel_layout_config", package / "config.py")
    assert spec is not None and spec.loader is not None
    installed = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, installed)
    spec.loader.exec_module(installed)

    assert installed.INSTALLED is True
    folders = {
        "templates": installed.TEMPLATES_DIR,
        "static": installed.STATIC_DIR,
        "migrations": installed.MIGRATIONS_DIR,
    }
    assert folders == {name: package.resolve() / name for name in folders}
    # Never inside site-packages: Flask's place for an installed package's instance.
    instance = installed.Config.from_env({}).INSTANCE_PATH
    assert instance == str(Path(sys.prefix) / "var" / "campaign-instance")
    assert not Path(instance).is_relative_to(package.parent)


def test_ci_runs_the_wheel_smoke_test_after_the_suite() -> None:
    run = (PROJECT_ROOT / ".ci" / "run").read_text()
    commands = [line.strip() for line in run.splitlines() if not line.lstrip().startswith("#")]
    suite = next(i for i, line in enumerate(commands) if line.startswith("scripts/test "))
    # Its own line under `set -e`: a failed smoke test fails the run.
    assert "set -euo pipefail" in commands
    assert commands.index("scripts/wheel-smoke") > suite
    smoke = PROJECT_ROOT / "scripts" / "wheel-smoke"
    assert smoke.stat().st_mode & 0o111, "scripts/wheel-smoke is not executable"
