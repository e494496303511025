"""The package's house rules, read from its source: imports flow one way (no circle, not even one
a ``TYPE_CHECKING`` guard hides), and the top level holds the commands and the public API."""

import ast
from pathlib import Path

import wae_lightning

PACKAGE = Path(wae_lightning.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """Every project module that the file imports, at any depth of its code (functions and
    ``if TYPE_CHECKING:`` blocks included). ``from package import name`` imports the module
    ``package.name`` when there is one, and what ``package`` defines otherwise."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in known else node.module)
    return {name for name in found if name in known}


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imported_modules(path, set(known)) - {name} for name, path in known.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of imports, as the modules along it, or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    assert len(graph) > 50 and sum(map(len, graph.values())) > 100  # the walk saw the package
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_cycle_finder_sees_a_circle_a_type_checking_guard_hides(tmp_path):
    source = (
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from wae_lightning.b import B\n"
    )
    (tmp_path / "a.py").write_text(source)
    found = imported_modules(tmp_path / "a.py", {"wae_lightning.b"})
    assert found == {"wae_lightning.b"}
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_the_top_level_holds_the_commands_and_the_public_api():
    top = sorted(path.stem for path in PACKAGE.glob("*.py"))
    assert top == ["__init__", "evaluate", "sample", "train"]


def test_the_checkpoint_format_sits_below_the_models_and_the_data():
    graph = import_graph()
    below = graph["wae_lightning.outputs.checkpoint_format"]
    assert not {
        name for name in below if name.startswith(("wae_lightning.models", "wae_lightning.data"))
    }
    assert "wae_lightning.outputs.checkpoint_format" in graph["wae_lightning.data.base"]
    assert "wae_lightning.outputs.checkpoint_format" in graph["wae_lightning.models.base"]
