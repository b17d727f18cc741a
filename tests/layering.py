"""Prism's layers, and the checker that keeps dependencies pointing down.

Every module under the ``prism`` import root belongs to one layer; a module may import its
own layer and the layers below it, never above. ``prism.agent`` and ``prism.evals`` share
layer 4 and stay independent of each other. On top of the layers, two rules:

* no module imports a private name (``_name``) from another module;
* an import inside a function is there only to delay a heavy dependency, and a comment with
  the word ``deferred`` (on the line or in the comment block just above) says so.

``tests/test_layers.py`` runs :func:`check` over the source tree (the folders that
``pyproject.toml`` maps into ``prism``), so an upward import fails ``make test``.
(import-linter's graph builder walks one package folder on disk, so it cannot see the
folders mapped into ``prism`` from the repository's top level; hence this small checker.)
New code goes in the lowest layer that can hold it (docs/architecture.md).
"""

from __future__ import annotations

import ast
import tomllib
from dataclasses import dataclass
from pathlib import Path

FOUNDATION, TOOLS, CORE, CONSUMERS, SURFACES = 1, 2, 3, 4, 5
LAYER_NAMES = {FOUNDATION: "foundation", TOOLS: "tools", CORE: "core", CONSUMERS: "agent/evals",
               SURFACES: "surfaces"}

# Longest prefix wins; a module no prefix covers is itself a violation (give it a layer).
LAYERS: dict[str, int] = {
    "prism": FOUNDATION,  # the package itself (its __init__) only
    "prism.settings": FOUNDATION, "prism.errors": FOUNDATION, "prism.weights": FOUNDATION,
    "prism.model_registry": FOUNDATION, "prism.prompts": FOUNDATION, "prism.untrusted": FOUNDATION, "prism.titles": FOUNDATION,
    "prism.genres": FOUNDATION, "prism.faithfulness": FOUNDATION, "prism.where": FOUNDATION,
    "prism.tools": TOOLS,
    "prism.catalog": CORE, "prism.store": CORE, "prism.chroma_server": CORE, "prism.spaces": CORE, "prism.ingest": CORE,
    "prism.ray_ingest": CORE,
    "prism.search": CORE, "prism.similar": CORE, "prism.history": CORE, "prism.starter": CORE, "prism.recommend": CORE,
    "prism.service": CORE, "prism.fusion": CORE, "prism.ranking": CORE,
    "prism.agent": CONSUMERS, "prism.evals": CONSUMERS,
    "prism.cli": SURFACES, "prism.api": SURFACES, "prism.demo": SURFACES, "prism.demo_data": SURFACES,
}
# Packages of one layer that must not import each other.
INDEPENDENT = ("prism.agent", "prism.evals")


@dataclass(frozen=True)
class Violation:
    module: str
    line: int
    problem: str

    def __str__(self) -> str:
        return f"{self.module}:{self.line}: {self.problem}"


def layer_of(module: str) -> int | None:
    """The layer of ``module`` (longest matching prefix in ``LAYERS``), None when unassigned."""
    parts = module.split(".")
    for end in range(len(parts), 1, -1):
        if (prefix := ".".join(parts[:end])) in LAYERS:
            return LAYERS[prefix]
    return LAYERS["prism"] if module == "prism" else None


def source_modules(root: Path) -> dict[str, Path]:
    """Every module of the ``prism`` import root in the repository at ``root``: dotted name →
    file, following ``[tool.setuptools] package-dir`` in ``pyproject.toml``."""
    config = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    package_dir: dict[str, str] = config["package-dir"]
    modules: dict[str, Path] = {}
    for package in config["packages"]:
        base = max((p for p in package_dir if package == p or package.startswith(p + ".")), key=len)
        folder = root / package_dir[base] / Path(*package[len(base):].strip(".").split(".") if package != base else ())
        for path in sorted(folder.glob("*.py")):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            modules[name] = path
    return modules


def _imports(tree: ast.Module, module: str, is_package: bool):
    """(node, imported module, names, inside a function) for every import in ``tree``."""
    def visit(node: ast.AST, in_function: bool):
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield child, alias.name, [], in_function
            elif isinstance(child, ast.ImportFrom):
                target = child.module or ""
                if child.level:  # relative: resolve against this module's package
                    package = module.split(".") if is_package else module.split(".")[:-1]
                    base = package[: len(package) - child.level + 1]
                    target = ".".join([*base, *([target] if target else [])])
                yield child, target, [a.name for a in child.names], in_function
            yield from visit(child, nested)

    yield from visit(tree, False)


def _has_deferred_comment(lines: list[str], lineno: int) -> bool:
    """True when the import at ``lineno`` (1-based) carries a ``deferred`` comment: on its own
    line, or in the block of comment, import and blank lines directly above it."""
    if "deferred" in lines[lineno - 1]:
        return True
    row = lineno - 2
    while row >= 0:
        text = lines[row].strip()
        if text.startswith("#"):
            if "deferred" in text:
                return True
        elif text and not text.startswith(("import ", "from ")):
            return False
        row -= 1
    return False


def check_source(module: str, source: str, is_package: bool = False, known: set[str] | None = None) -> list[Violation]:
    """The violations in one module's ``source`` (see the module docstring). ``known`` are the
    project's module names, used to tell a module from a name imported from a package."""
    violations = []
    own = layer_of(module)
    if own is None:
        return [Violation(module, 1, "module has no layer: add its prefix to LAYERS in tests/layering.py")]
    lines = source.splitlines()
    for node, target, names, in_function in _imports(ast.parse(source), module, is_package):
        if in_function and not _has_deferred_comment(lines, node.lineno):
            violations.append(Violation(module, node.lineno, f"import of {target} inside a function without a "
                                        "'deferred' comment saying which heavy dependency it delays"))
        if not (target == "prism" or target.startswith("prism.")):
            continue
        targets = [target]
        if names and known is not None:  # `from prism.fusion import checkpoints` imports a module
            targets += [f"{target}.{n}" for n in names if f"{target}.{n}" in known]
        for imported in targets:
            theirs = layer_of(imported)
            if theirs is not None and theirs > own:
                violations.append(Violation(module, node.lineno, f"upward import of {imported} "
                                            f"({LAYER_NAMES[theirs]}) from {LAYER_NAMES[own]}"))
            for a in INDEPENDENT:
                for b in INDEPENDENT:
                    if a != b and _within(module, a) and _within(imported, b):
                        violations.append(Violation(module, node.lineno, f"{a} imports {imported}: "
                                                    f"{a} and {b} stay independent"))
        for name in names:
            if name.startswith("_") and not name.startswith("__") and target != module:
                violations.append(Violation(module, node.lineno, f"imports the private name {name} from {target}"))
    return violations


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def check(root: Path) -> list[Violation]:
    """Every violation in the repository at ``root``."""
    modules = source_modules(root)
    known = set(modules)
    violations = []
    for module, path in modules.items():
        violations += check_source(module, path.read_text(encoding="utf-8"), path.stem == "__init__", known)
    return violations
