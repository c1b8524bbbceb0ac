"""Every notice kind the application enqueues has a builder in the one table create_app
installs (campaign/services/sending/notice_registry.py), and every builder there is for a
kind something enqueues. Read from the source: a `queue_notice(KIND, …)` added in a new
module, with no line in the table, fails here rather than logging "no notice of kind" in a
worker months later (decision 0057). Nothing registers a builder by being imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

from flask import Flask

from campaign.services.sending import notices
from campaign.services.sending.notice_registry import notice_builders

ROOTS = [Path(__file__).resolve().parents[2] / name for name in ("campaign", "workers")]


def _constants(tree: ast.Module) -> dict[str, str]:
    """Module-level NAME = "text" assignments."""
    found = {}
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            found[node.targets[0].id] = node.value.value
    return found


def enqueued_kinds(roots: list[Path]) -> dict[str, list[str]]:
    """Kind -> where it is enqueued ("path:line"), from every `queue_notice(kind, …)` call.

    The kind is a string literal or a module-level string constant of the calling module;
    anything else fails the test, which could not otherwise tell what it sends.
    """
    kinds: dict[str, list[str]] = {}
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            constants = _constants(tree)
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call):
                    continue
                func = node.func
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
                if name != "queue_notice":
                    continue
                where = f"{path.relative_to(root.parent)}:{node.lineno}"
                argument = node.args[0] if node.args else None
                if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                    kind = argument.value
                elif isinstance(argument, ast.Name) and argument.id in constants:
                    kind = constants[argument.id]
                else:
                    raise AssertionError(f"{where}: the kind is not a literal or a constant")
                kinds.setdefault(kind, []).append(where)
    return kinds


def test_every_enqueued_notice_kind_has_a_builder_in_the_table() -> None:
    enqueued = enqueued_kinds(ROOTS)
    table = notice_builders()
    # The finder sees the calls (ten kinds today): an AST walk that found none would pass.
    assert len(enqueued) >= 10
    missing = {kind: where for kind, where in enqueued.items() if kind not in table}
    assert missing == {}, f"enqueued, no builder in notice_registry.py: {missing}"
    unused = sorted(set(table) - set(enqueued))
    assert unused == [], f"a builder nothing enqueues: {unused}"


def test_create_app_installs_the_table_that_send_notice_reads(app: Flask) -> None:
    with app.app_context():
        assert dict(notices.builders()) == notice_builders()


def test_the_finder_sees_a_kind_missing_from_the_table(tmp_path: Path) -> None:
    package = tmp_path / "planted"
    package.mkdir()
    (package / "thing.py").write_text(
        "from campaign.services.sending.notices import queue_notice\n"
        'NEW_KIND = "planted_kind"\n'
        "def go(target_id):\n"
        "    queue_notice(NEW_KIND, target_id)\n"
        '    notices.queue_notice("signature_change", target_id)\n',
        encoding="utf-8",
    )
    found = enqueued_kinds([package])
    assert found == {
        "planted_kind": ["planted/thing.py:4"],
        "signature_change": ["planted/thing.py:5"],
    }
    assert "planted_kind" not in notice_builders()
