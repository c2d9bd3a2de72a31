"""The documentation's Python examples stay true: every ```python block of README.md and the
book (docs/src/*.md) compiles, and every name it takes from pgarrow (`pgarrow.NAME`,
`pgarrow.MODULE.NAME`, `from pgarrow import NAME`, `from pgarrow.MODULE import NAME`) exists
in the installed package. Nothing is run: the examples need servers and data.

The package itself is imported; its submodules (spark, ray, dask, adbc, ...) are read, not
imported, so that pyspark, ray and dask need not be loaded to check a name."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import pathlib
import re
import types
from dataclasses import dataclass

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]


@dataclass
class Block:
    path: str  # relative to the repository
    line: int  # of the block's first code line, from 1
    code: str


def documents() -> list[pathlib.Path]:
    pages = sorted((ROOT / "docs" / "src").glob("*.md"))
    return [ROOT / "README.md", *pages]


FENCE = re.compile(r"^(?P<indent>\s*)(?P<marker>`{3,}|~{3,})\s*(?P<info>[^`]*)$")


def python_blocks(path: pathlib.Path) -> list[Block]:
    """The fenced blocks whose info string starts with python (or py)."""
    blocks = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        marker, indent = m["marker"], len(m["indent"])
        lang = re.split(r"[\s,{]", m["info"].strip(), maxsplit=1)[0].lower()
        start = i + 1
        i += 1
        body = []
        while i < len(lines) and not lines[i].lstrip().startswith(marker):
            line = lines[i]
            strip = min(indent, len(line) - len(line.lstrip()))
            body.append(line[strip:])
            i += 1
        i += 1
        if lang in ("python", "py", "python3"):
            rel = path.relative_to(ROOT).as_posix()
            blocks.append(Block(rel, start + 1, "\n".join(body) + "\n"))
    return blocks


def all_blocks() -> list[Block]:
    return [b for p in documents() for b in python_blocks(p)]


def module_names(name: str) -> set[str] | None:
    """The top-level names a submodule of pgarrow defines, read from its source (None when
    there is no such module)."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        return None
    if not spec.origin.endswith(".py"):
        # A native module: importing it loads nothing else.
        return set(dir(importlib.import_module(name)))
    tree = ast.parse(pathlib.Path(spec.origin).read_text(encoding="utf-8"))
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                for n in ast.walk(t):
                    if isinstance(n, ast.Name):
                        names.add(n.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for a in node.names:
                names.add((a.asname or a.name).split(".")[0])
    if spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            names.update(p.stem for p in pathlib.Path(loc).glob("*.py"))
    return names


def resolve(dotted: str) -> str | None:
    """None when `pgarrow.a.b...` exists, else what is missing. Past a submodule that the
    package does not import, only the submodule's own top-level names are checked."""
    import pgarrow

    parts = dotted.split(".")
    obj, where = pgarrow, "pgarrow"
    for k, name in enumerate(parts[1:], start=1):
        if hasattr(obj, name):
            obj, where = getattr(obj, name), f"{where}.{name}"
            continue
        if isinstance(obj, types.ModuleType):
            names = module_names(f"{where}.{name}")
            if names is not None:
                rest = parts[k + 1 :]
                if rest and rest[0] not in names:
                    return f"{where}.{name} has no {rest[0]!r}"
                return None
        return f"{where} has no {name!r}"
    return None


def pgarrow_names(tree: ast.AST) -> list[tuple[int, str]]:
    """The dotted names the code takes from pgarrow, with their line within the block:
    `pgarrow.x.y` chains (also on a name bound by `import pgarrow.mod as m`), imported
    submodules, and `from pgarrow[.mod] import x`."""
    aliases = {"pgarrow": "pgarrow"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname and (a.name == "pgarrow" or a.name.startswith("pgarrow.")):
                    aliases[a.asname] = a.name
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("pgarrow."):
                    found.add((node.lineno, a.name))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "pgarrow" or node.module.startswith("pgarrow."):
                for a in node.names:
                    found.add((node.lineno, f"{node.module}.{a.name}"))
        elif isinstance(node, ast.Attribute):
            chain = []
            cur: ast.AST = node
            while isinstance(cur, ast.Attribute):
                chain.append(cur.attr)
                cur = cur.value
            if isinstance(cur, ast.Name) and cur.id in aliases:
                found.add((node.lineno, ".".join([aliases[cur.id], *reversed(chain)])))
    # The walk meets a chain at each of its prefixes: keep the longest of each line.
    return sorted(
        (line, name)
        for line, name in found
        if not any(at == line and other.startswith(name + ".") for at, other in found)
    )


def test_the_documents_have_python_examples():
    blocks = all_blocks()
    assert len(blocks) >= 10, (
        f"only {len(blocks)} ```python blocks found: is the extraction broken?"
    )
    pages = {b.path for b in blocks}
    assert "README.md" in pages and "docs/src/python.md" in pages, pages


@pytest.mark.parametrize("block", all_blocks(), ids=lambda b: f"{b.path}:{b.line}")
def test_python_example(block: Block):
    try:
        tree = compile(block.code, f"{block.path}:{block.line}", "exec", ast.PyCF_ONLY_AST)
    except SyntaxError as e:
        pytest.fail(f"{block.path}:{block.line + (e.lineno or 1) - 1}: {e.msg}", pytrace=False)
    missing = []
    for line, dotted in pgarrow_names(tree):
        problem = resolve(dotted)
        if problem:
            missing.append(f"{block.path}:{block.line + line - 1}: {dotted}: {problem}")
    assert not missing, (
        "names the example takes from pgarrow that the package lacks:\n" + "\n".join(missing)
    )
