"""The shape of campaign/'s imports, read from the source: no circles, no private names, layers.

AST only: no app, no database, no import of the code (seconds). Every `import`
counts, those inside functions too (an import hidden in a function still ties the two
modules together; hiding it only postpones the circle to run time), except those under
`if TYPE_CHECKING:`, which never run. `from package import name` is an import of
`package.name` when that is a module, else of the package (decision 0058).

The layers, outermost first; an import may point down, never up:

- `campaign/__init__.py` (create_app, the composition root) and `cli.py` (the `campaign`
  entry point, built around create_app).
- `web/` and `commands/`: the edges (parse, call a service, commit). Neither imports the
  other.
- `demo/`: fictional data loaded through the public services; imported only by the
  `load-demo` and `dev` commands (commands/demo.py, commands/dev.py).
- `scheduling/`: the tick and what each kind of schedule does; its actions call services,
  and services call its stored texts, time zones and registry (modules apart, no circle).
- `services/`: the business rules.
- `letters/`, `inbound/`, `tracking/`: domain packages below the services (rendering,
  parsing mail, tracking hits); they never import services/, web/, commands/, demo/.
- `models/`: imports only `extensions.py` (and other models).
- `mail.py`, `queue.py` and the infrastructure modules (every other top-level module:
  config, extensions, smtp, tls, dkim, i18n, labels, clock …): never import services/,
  web/, commands/, demo/, scheduling/, cli.py or create_app. They may use letters/ (mail.py
  lays letters out with it).
- Nothing in campaign/ imports `workers/`: services enqueue jobs by dotted name.

The tests at the end plant each kind of violation in a small package of their own and
check that it is found and named: a checker that silently stopped seeing imports inside
functions, say, would otherwise pass forever.
"""

from __future__ import annotations

import ast
import functools
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "campaign"


@dataclass(frozen=True)
class Import:
    importer: str  # the module that imports
    target: str  # the module imported (resolved: `from a import b` is a.b when b is a module)
    line: int
    names: tuple[str, ...]  # the names taken (`from x import a, b`); () for `import x`
    type_checking: bool  # under `if TYPE_CHECKING:`: never runs


@functools.cache
def _nodes(path: Path) -> list[ast.AST]:
    """Every node of the file, parsed and walked once per run."""
    return list(ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))))


@functools.cache
def modules(root: Path) -> dict[str, Path]:
    """Dotted module name → file, for every .py under the package `root`."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _type_checking_nodes(nodes: list[ast.AST]) -> set[int]:
    inside: set[int] = set()
    for node in nodes:
        if isinstance(node, ast.If) and ast.unparse(node.test) in (
            "TYPE_CHECKING",
            "typing.TYPE_CHECKING",
        ):
            for statement in node.body:
                inside.update(id(child) for child in ast.walk(statement))
    return inside


def _known(name: str, known: dict[str, Path]) -> str:
    """The nearest module of ours that `name` (a.b.c) is, or is in; "" when none."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name


@functools.cache
def imports(root: Path) -> tuple[Import, ...]:
    """Every import of one of the package's modules by another, each with its line."""
    return tuple(_imports(root))


def _imports(root: Path) -> Iterator[Import]:
    known = modules(root)
    for module, path in known.items():
        nodes = _nodes(path)
        type_checking = _type_checking_nodes(nodes)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in nodes:
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            pairs: list[tuple[str, tuple[str, ...]]] = []
            if isinstance(node, ast.Import):
                pairs = [(alias.name, ()) for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    parts = parts[: len(parts) - node.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                for alias in node.names:
                    submodule = f"{base}.{alias.name}"
                    pairs.append((submodule, ()) if submodule in known else (base, (alias.name,)))
            for name, names in pairs:
                target = _known(name, known)
                if target and target != module:
                    yield Import(module, target, node.lineno, names, id(node) in type_checking)


def _runtime_graph(root: Path) -> dict[str, dict[str, int]]:
    graph: dict[str, dict[str, int]] = {module: {} for module in modules(root)}
    for found in imports(root):
        if not found.type_checking:
            graph[found.importer].setdefault(found.target, found.line)
    return graph


@dataclass(frozen=True)
class Circle:
    steps: list[tuple[str, str, int]]  # (importer, target, line), back to the first
    tied: frozenset[str]  # every module of the group (several circles may run through it)


def circles(root: Path) -> list[Circle]:
    """One circle per strongly connected group of modules: a shortest way round, and the group."""
    graph = _runtime_graph(root)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(start: str) -> None:  # Tarjan's algorithm, without recursion
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph[successor]))))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.add(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        groups.append(group)

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return [Circle(_one_circle(graph, group), frozenset(group)) for group in groups]


def _one_circle(graph: dict[str, dict[str, int]], group: set[str]) -> list[tuple[str, str, int]]:
    """A shortest way round from the group's first module back to it (breadth first)."""
    start = min(group)
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for successor in sorted(graph[node]):
                if successor == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    path.reverse()
                    path.append(start)
                    return [(a, b, graph[a][b]) for a, b in itertools.pairwise(path)]
                if successor in group and successor not in came_from:
                    came_from[successor] = node
                    following.append(successor)
        frontier = following
    raise AssertionError(f"no way round {sorted(group)}")  # a group always has one


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_imports(root: Path) -> list[str]:
    """Each place a module takes another's underscore name, named by both modules.

    Three ways: `from m import _name`; `m._name` on a module bound by an import, however
    reached (`import a.b.m` then `a.b.m._name`, `from a import b` then `b.m._name`); and a
    private module (`pkg/_types.py`) imported from outside its package `pkg`.
    """
    known = modules(root)
    found = []
    for each in imports(root):
        where = f"{known[each.importer].relative_to(root.parent)}:{each.line}"
        for name in each.names:
            if _is_private(name):
                found.append(f"{where}: {each.importer} imports {name} from {each.target}")
        private_part = next(
            (i for i, part in enumerate(each.target.split(".")) if _is_private(part)), None
        )
        if private_part is not None:
            owner = ".".join(each.target.split(".")[:private_part])
            if not (each.importer == owner or each.importer.startswith(owner + ".")):
                found.append(f"{where}: {each.importer} imports {each.target}, private to {owner}")
    for module, path in known.items():
        found += _private_attributes(module, path, known, root)
    return found


def _dotted(node: ast.expr) -> list[str] | None:
    """`a.b.c` as ["a", "b", "c"]; None for anything but names joined by dots."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return [node.id, *reversed(parts)]


def _private_attributes(module: str, path: Path, known: dict[str, Path], root: Path) -> list[str]:
    nodes = _nodes(path)
    bound: dict[str, str] = {}  # local name → module of ours it is bound to
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname and alias.name in known:
                    bound[alias.asname] = alias.name
                elif not alias.asname:
                    # `import a.b.c` binds `a`; the code then reaches c by `a.b.c`.
                    head = alias.name.split(".")[0]
                    if head in known:
                        bound[head] = head
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                if f"{node.module}.{alias.name}" in known:
                    bound[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    found = []
    for node in nodes:
        if not (isinstance(node, ast.Attribute) and _is_private(node.attr)):
            continue
        # The chain before the private name, followed to the module it names: `a._x`,
        # `a.b.c._x` after `import a.b.c`, `b.c._x` after `from a import b`. A chain that
        # ends on a class or a function (`a.Thing._x`) is not a module's private name.
        chain = _dotted(node.value)
        if chain is None or chain[0] not in bound:
            continue
        owner = ".".join([bound[chain[0]], *chain[1:]])
        if owner in known and owner != module:
            where = f"{path.relative_to(root.parent)}:{node.lineno}"
            found.append(f"{where}: {module} uses {node.attr} of {owner}")
    return found


# --- The layers ----------------------------------------------------------------------------


def _room(module: str) -> str:
    """ "web", "services", "models" …; a top-level module is its own room ("mail", "cli");
    the package itself (create_app) is "create_app"."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "create_app"


EDGES = {"web", "commands"}
DOMAIN = {"letters", "inbound", "tracking"}
PACKAGES = {"web", "commands", "demo", "scheduling", "services", "models", *DOMAIN}
ABOVE_INFRASTRUCTURE = {"services", "web", "commands", "demo", "scheduling", "cli", "create_app"}


def _infrastructure(room: str) -> bool:
    return room not in PACKAGES and room not in ("cli", "create_app")


# (who, what they must not import, why): each rule is read over every import, those
# under TYPE_CHECKING included (a lower layer does not even name an upper one's types).
LAYER_RULES: list[tuple[str, Callable[[str], bool], Callable[[str], bool]]] = [
    (
        "models/ imports only extensions.py and other models",
        lambda room: room == "models",
        lambda room: room not in ("models", "extensions"),
    ),
    (
        "mail.py, queue.py and infrastructure never import services/, web/, commands/, "
        "demo/, scheduling/, cli.py or create_app",
        _infrastructure,
        lambda room: room in ABOVE_INFRASTRUCTURE,
    ),
    (
        "letters/, inbound/ and tracking/ never import services/, web/, commands/, demo/, "
        "scheduling/, cli.py or create_app",
        lambda room: room in DOMAIN,
        lambda room: room in ABOVE_INFRASTRUCTURE,
    ),
    (
        "scheduling/ and services/ never import web/, commands/, demo/, cli.py or create_app",
        lambda room: room in ("scheduling", "services"),
        lambda room: room in (*EDGES, "demo", "cli", "create_app"),
    ),
    (
        "web/ and commands/ never import each other",
        lambda room: room in EDGES,
        lambda room: room in EDGES,
    ),
]


def layer_violations(root: Path) -> list[str]:
    known = modules(root)
    found = []
    for each in imports(root):
        mine, theirs = _room(each.importer), _room(each.target)
        if mine == theirs:
            continue
        for rule, applies, forbidden in LAYER_RULES:
            if applies(mine) and forbidden(theirs):
                where = f"{known[each.importer].relative_to(root.parent)}:{each.line}"
                found.append(f"{where}: {each.importer} imports {each.target} ({rule})")
    return list(dict.fromkeys(found))  # `from m import a, b` is one import


def workers_imports(root: Path) -> list[str]:
    """Imports of the top-level `workers` package (not one of ours, so `imports` skips it)."""
    found = []
    for module, path in modules(root).items():
        for node in _nodes(path):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            if any(name == "workers" or name.startswith("workers.") for name in names):
                found.append(f"{path.relative_to(root.parent)}:{node.lineno}: {module}")
    return found


DEMO_USERS = {"commands.demo", "commands.dev"}  # load-demo and dev


def demo_imports(root: Path) -> list[str]:
    """Modules outside demo/ that import it, other than the load-demo and dev commands."""
    package = root.name
    allowed = {f"{package}.{name}" for name in DEMO_USERS}
    known = modules(root)
    return [
        f"{known[each.importer].relative_to(root.parent)}:{each.line}: "
        f"{each.importer} imports {each.target}"
        for each in imports(root)
        if _room(each.target) == "demo"
        and _room(each.importer) != "demo"
        and each.importer not in allowed
    ]


def _circle_words(circle: Circle) -> str:
    words = " -> ".join(f"{a} (line {line})" for a, _b, line in circle.steps)
    words += f" -> {circle.steps[0][0]}"
    others = sorted(circle.tied - {a for a, _b, _line in circle.steps})
    return words + (f"; tied with them: {', '.join(others)}" if others else "")


# --- campaign/ as it is ------------------------------------------------------------------


def test_no_import_circles() -> None:
    found = circles(ROOT)
    assert not found, "import circles:\n" + "\n".join(_circle_words(c) for c in found)


def test_no_module_imports_another_modules_private_names() -> None:
    found = private_imports(ROOT)
    assert not found, "private names imported:\n" + "\n".join(found)


def test_each_layer_imports_only_what_is_below_it() -> None:
    found = layer_violations(ROOT)
    assert not found, "layers crossed upwards:\n" + "\n".join(found)


def test_nothing_in_campaign_imports_the_workers() -> None:
    found = workers_imports(ROOT)
    assert not found, "workers/ imported (enqueue by dotted name):\n" + "\n".join(found)


def test_only_the_load_demo_and_dev_commands_import_the_demo() -> None:
    found = demo_imports(ROOT)
    assert not found, "demo/ imported by:\n" + "\n".join(found)
    # …and they do: the rule is not met by a renamed module nobody checks any more.
    importers = {each.importer for each in imports(ROOT) if _room(each.target) == "demo"}
    assert {f"campaign.{name}" for name in DEMO_USERS} <= importers


def test_the_reading_sees_the_imports_that_matter() -> None:
    # Known facts of campaign/ that each part of the reading must find: a function-level
    # import, a relative-free `from package import module`, a TYPE_CHECKING one.
    found = {(each.importer, each.target): each for each in imports(ROOT)}
    assert ("campaign", "campaign.web") in found  # create_app registers the blueprints
    assert not found["campaign", "campaign.web"].type_checking
    assert ("campaign.services.sending.campaigns", "campaign.services.sending.followups") in found
    assert any(each.type_checking for each in found.values())


# --- Each check catches a planted violation --------------------------------------------


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "app"
    for name, text in {"__init__.py": "", **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        for folder in path.relative_to(root).parents:
            (root / folder / "__init__.py").touch()
        path.write_text(text, encoding="utf-8")
    return root


def test_a_circle_through_an_import_inside_a_function_is_found_and_named(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "services/a.py": "from app.services import b\n",
            "services/b.py": "def late():\n    from app.services.c import x\n",
            "services/c.py": "import app.services.a\n",
            "services/d.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from app.services.e import E\n"
            ),
            "services/e.py": "from app.services import d\n",
        },
    )
    [circle] = circles(root)
    assert _circle_words(circle) == (
        "app.services.a (line 1) -> app.services.b (line 2) -> app.services.c (line 1)"
        " -> app.services.a"
    )  # d ↔ e is no circle: d's import is for the type checker only


def test_a_private_name_taken_from_another_module_is_found(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "services/a.py": "def _rows():\n    pass\n",
            "services/b.py": "from app.services.a import _rows\n",
            "services/c.py": "from app.services import a\n\na._rows()\n",
            "models/_types.py": "",
            "models/user.py": "from app.models._types import x\n",  # its own package: fine
            "services/d.py": "from app.models._types import x\n",
            # Reached by the full dotted path, or from the package, or under another name.
            "web/e.py": "import app.services.a\n\napp.services.a._rows()\n",
            "web/f.py": "from app import services\n\nservices.a._rows()\n",
            "web/g.py": "import app.services.a as rows\n\nrows._rows()\n",
            # A class's private attribute, and a module's own names: fine.
            "web/h.py": "import app.services.a\n\napp.services.a.Thing._cache\n",
            "services/i.py": "import app.services.i\n\ndef _own():\n    app.services.i._own()\n",
        },
    )
    assert private_imports(root) == [
        "app/services/b.py:1: app.services.b imports _rows from app.services.a",
        "app/services/d.py:1: app.services.d imports app.models._types, private to app.models",
        "app/services/c.py:3: app.services.c uses _rows of app.services.a",
        "app/web/e.py:3: app.web.e uses _rows of app.services.a",
        "app/web/f.py:3: app.web.f uses _rows of app.services.a",
        "app/web/g.py:3: app.web.g uses _rows of app.services.a",
    ]


def test_an_import_up_the_layers_is_found(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "letters/letter.py": "def f():\n    from app.services.statements import latest\n",
            "mail.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from app.web.x import X\n"
            ),
            "models/user.py": "from app import mail\n",
            "services/statements.py": "from app.commands import named\n",
            "commands/__init__.py": "def named():\n    pass\n",
            "web/x.py": "from app.services import statements\n",  # down: fine
        },
    )
    assert [line.split(" (")[0] for line in layer_violations(root)] == [
        "app/letters/letter.py:2: app.letters.letter imports app.services.statements",
        "app/mail.py:3: app.mail imports app.web.x",
        "app/models/user.py:1: app.models.user imports app.mail",
        "app/services/statements.py:1: app.services.statements imports app.commands",
    ]


def test_workers_and_demo_imports_are_found(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "demo/loader.py": "",
            "commands/dev.py": "from app.demo import loader\n",  # allowed
            "services/x.py": "import workers.jobs\n",
            "web/y.py": "def f():\n    from app.demo.loader import load\n",
        },
    )
    assert workers_imports(root) == ["app/services/x.py:1: app.services.x"]
    assert demo_imports(root) == ["app/web/y.py:2: app.web.y imports app.demo.loader"]


@pytest.mark.parametrize("room", ["web", "commands"])
def test_the_edges_may_not_import_each_other(tmp_path: Path, room: str) -> None:
    other = "commands" if room == "web" else "web"
    root = _package(tmp_path, {f"{room}/a.py": f"from app.{other} import b\n", f"{other}/b.py": ""})
    assert len(layer_violations(root)) == 1
