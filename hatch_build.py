"""The wheel's build hook (pyproject.toml): what the wheel carries beyond the files git keeps.

- The compiled gettext catalogues. The .mo files are build output, ignored by git and
  compiled at start in a checkout (campaign.i18n.compile_catalogues); an installed package
  folder may be read-only, so the wheel carries them, compiled here from the .po files as
  that function does (fuzzy entries left out).
- deploy/gunicorn.conf.py as the module campaign.gunicorn_conf, so that a server installed
  from the wheel keeps tokens out of its logs:
  `gunicorn -c python:campaign.gunicorn_conf 'campaign:create_app()'` (docs/deploy.md).

Built from a git checkout, the wheel carries only the files git tracks (`git ls-files
--cached`) under the folders it ships: a file nobody added — a stray .env, a secret key, an
upload, an editor's backup — stays out even when no .gitignore names it (decision 0053).
Built from a tree without .git (an unpacked source archive), the folders go as they are.

An editable install gets none of this: it runs from the checkout, as the app always did.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from hatchling.builders.hooks.plugin.interface import BuildHookInterface

TRANSLATIONS = Path("campaign") / "translations"
GUNICORN_SETTINGS = {"deploy/gunicorn.conf.py": "campaign/gunicorn_conf.py"}
# The folders the wheel takes (pyproject.toml: only-include).
SHIPPED = ("campaign", "workers", "templates", "static", "migrations")


def untracked_files(root: Path) -> set[str] | None:
    """Files under SHIPPED that git does not track, as paths from `root` with "/";
    None when `root` is not a git checkout. A checkout whose git cannot answer stops the
    build rather than shipping whatever lies in the folders."""
    if not (root / ".git").exists():
        return None
    git = shutil.which("git")
    if git is None:
        raise RuntimeError("hatch_build: a git checkout, but no git to list its files")
    listed = subprocess.run(
        [git, "ls-files", "--cached", "-z", "--", *SHIPPED],
        cwd=root,
        check=True,
        capture_output=True,
    ).stdout.decode("utf-8")
    tracked = set(filter(None, listed.split("\0")))
    found = set()
    for folder in SHIPPED:
        for directory, _dirs, files in os.walk(root / folder):
            for name in files:
                path = (Path(directory) / name).relative_to(root).as_posix()
                if path not in tracked:
                    found.add(path)
    return found


class WheelHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or version == "editable":
            return
        root = Path(self.root)
        self._leave_out(untracked_files(root))
        for source, inside in GUNICORN_SETTINGS.items():
            build_data["force_include"][str(root / source)] = inside
        self._compiled = tempfile.TemporaryDirectory(prefix="campaign-mo-")
        for po_path in sorted((root / TRANSLATIONS).glob("*/LC_MESSAGES/messages.po")):
            language = po_path.parent.parent.name
            with po_path.open("rb") as source_file:
                catalogue = read_po(source_file, locale=language)
            mo_path = Path(self._compiled.name) / f"{language}.mo"
            with mo_path.open("wb") as target:
                write_mo(target, catalogue, use_fuzzy=False)
            build_data["force_include"][str(mo_path)] = (
                po_path.relative_to(root).with_suffix(".mo").as_posix()
            )

    def _leave_out(self, untracked: set[str] | None) -> None:
        """Exclude `untracked` from the files the wheel takes from its folders (the compiled
        .mo and gunicorn_conf.py above are added by force_include, which this leaves alone)."""
        if not untracked:
            return
        config = self.build_config
        excluded_before = config.path_is_excluded

        def path_is_excluded(relative_path: str) -> bool:
            path = relative_path.replace(os.sep, "/")
            return path in untracked or excluded_before(relative_path)

        config.path_is_excluded = path_is_excluded
        shown = sorted(p for p in untracked if "__pycache__" not in p and not p.endswith(".mo"))
        if shown:
            self.app.display_warning(
                "not in the wheel (git does not track them): " + ", ".join(shown)
            )

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        compiled = getattr(self, "_compiled", None)
        if compiled is not None:
            compiled.cleanup()
