"""The wheel's build hook (pyproject.toml): what the wheel carries beyond the files git keeps.

- The compiled gettext catalogues. The .mo files are build output, ignored by git and
  compiled at start in a checkout (campaign.i18n.compile_catalogues); an installed package
  folder may be read-only, so the wheel carries them, compiled here from the .po files as
  that function does (fuzzy entries left out).
- deploy/gunicorn.conf.py as the module campaign.gunicorn_conf, so that a server installed
  from the wheel keeps tokens out of its logs:
  `gunicorn -c python:campaign.gunicorn_conf 'campaign:create_app()'` (docs/deploy.md).

An editable install gets neither: it runs from the checkout, as the app always did.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from hatchling.builders.hooks.plugin.interface import BuildHookInterface

TRANSLATIONS = Path("campaign") / "translations"
GUNICORN_SETTINGS = {"deploy/gunicorn.conf.py": "campaign/gunicorn_conf.py"}


class WheelHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or version == "editable":
            return
        root = Path(self.root)
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

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        compiled = getattr(self, "_compiled", None)
        if compiled is not None:
            compiled.cleanup()
