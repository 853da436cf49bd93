"""The codebase stays legible (docs/architecture.md): short functions, and
what differs between token levels asked of the tokenizer classes."""

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "textgen"


def _functions():
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                yield path.relative_to(PACKAGE.parent), node


def test_no_function_is_longer_than_100_lines():
    long = [
        f"{path}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1})"
        for path, node in _functions()
        if node.end_lineno - node.lineno + 1 > 100
    ]
    assert not long, long


def test_no_level_name_is_compared_outside_tokens_py():
    compared = re.compile(r"""(==|!=|\bin)\s*\(?\s*["'](word|char)["']""")
    found = [
        f"{path}:{number}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "tokens.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if compared.search(line)
    ]
    assert not found, found


# The package's floors, bottom up: a module may import its own floor's
# modules and any floor below, never one above or beside it (docs/architecture.md).
# The top-level modules (`errors`, `outputs`, `terminal`, `_registration`) are
# the ground every floor stands on.
FLOORS = {
    "": 0,
    "text": 1,
    "model": 2,
    "inference": 3,
    "training": 4,
    "serving": 4,
    "cli": 5,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                lines.update(range(inner.lineno, inner.end_lineno + 1))
    return lines


def _imports(path: Path, with_type_checking: bool = True) -> set[str]:
    """The package's modules that `path` imports, wherever in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    skipped = set() if with_type_checking else _type_checking_lines(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("textgen."))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            elif (node.module or "").startswith("textgen"):
                target = node.module
            else:
                continue
            for alias in node.names:
                inner = f"{target}.{alias.name}"
                found.add(inner if _is_module(inner) else target)
    return found - {name}


def _floor(module: str) -> str:
    """The subpackage a module belongs to; "" for the package's own modules."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and (PACKAGE / parts[1]).is_dir() else ""


def test_imports_run_down_the_floors_of_the_package():
    back = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        if module in ("textgen", "textgen.__main__"):
            continue  # the public face (lazy names) and `python -m textgen`
        here = _floor(module)
        for target in _imports(path):
            there = _floor(target)
            if there != here and FLOORS[there] >= FLOORS[here]:
                back.append(f"{module} -> {target}")
    assert not back, back


def test_every_subpackage_has_a_floor():
    folders = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert folders == set(FLOORS) - {""}


def test_no_modules_import_each_other_in_a_circle():
    graph = {
        _module_name(path): _imports(path, with_type_checking=False)
        for path in sorted(PACKAGE.rglob("*.py"))
    }
    circles = []
    for start in graph:
        seen, stack = set(), [start]
        while stack:
            for target in graph.get(stack.pop(), ()):
                if target == start:
                    circles.append(start)
                elif target not in seen:
                    seen.add(target)
                    stack.append(target)
    assert not circles, circles


def test_training_fits_the_memory_without_importing_evaluation():
    """The mixture's fit lives with the memory (`model/fitting.py`): training
    reaches it without going through `inference/evaluate.py`."""
    importing = [
        _module_name(path)
        for path in sorted((PACKAGE / "training").rglob("*.py"))
        if "textgen.inference.evaluate" in _imports(path)
    ]
    assert not importing, importing


def test_every_package_folder_is_in_the_wheel():
    """pyproject.toml lists the packages by hand: a folder missing there
    works in an editable install and is absent from `pip install .`."""
    pyproject = (PACKAGE.parent / "pyproject.toml").read_text()
    block = re.search(r"packages = \[(.*?)\]", pyproject, re.S).group(1)
    listed = set(re.findall(r'"([\w.]+)"', block))
    folders = {_module_name(init) for init in PACKAGE.rglob("__init__.py")}
    assert listed == folders
    data = re.search(r'"textgen.serving" = \[(.*?)\]', pyproject).group(1)
    shipped = set(re.findall(r"\*(\.\w+)", data))
    assert shipped >= {p.suffix for p in (PACKAGE / "serving" / "playground").iterdir()}
