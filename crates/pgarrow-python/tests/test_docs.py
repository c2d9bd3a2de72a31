"""The documentation's Python examples stay true: every ```python block of README.md and the
book (docs/src/*.md) compiles, every name it takes from pgarrow (`pgarrow.NAME`,
`pgarrow.MODULE.NAME`, `from pgarrow import NAME`, `from pgarrow.MODULE import NAME`) exists
in the installed package, and every keyword it passes to a function of `pgarrow` is one the
function takes by its current name. Nothing is run: the examples need servers and data.

The package itself is imported; its submodules (spark, ray, dask, adbc, ...) are read, not
imported, so that pyspark, ray and dask need not be loaded to check a name."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import pathlib
import re
import types
import typing
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


def keywords(function) -> set[str] | None:
    """The keywords `function` takes: its parameters, and the keys of the TypedDict its
    ``**options: Unpack[...]`` names (None when its ``**`` takes anything). The old names of
    renamed keywords are not among them: the signature has the new ones only."""
    from pgarrow import _typing

    params = inspect.signature(function).parameters.values()
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    for p in params:
        if p.kind == p.VAR_KEYWORD:
            m = re.fullmatch(r"Unpack\[(\w+)\]", str(p.annotation))
            if not m:
                return None
            names |= set(typing.get_type_hints(getattr(_typing, m[1])))
    return names


@pytest.mark.parametrize("block", all_blocks(), ids=lambda b: f"{b.path}:{b.line}")
def test_python_example_keywords(block: Block):
    import pgarrow

    try:
        tree = ast.parse(block.code)
    except SyntaxError:
        return  # test_python_example names it
    wrong = []
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "pgarrow"
        ):
            continue
        function = getattr(pgarrow, node.func.attr, None)
        if not inspect.isfunction(function):
            continue
        taken = keywords(function)
        for kw in node.keywords:
            if taken is not None and kw.arg is not None and kw.arg not in taken:
                wrong.append(f"{block.path}:{block.line + node.lineno - 1}: pgarrow.{node.func.attr}({kw.arg}=...)")
    assert not wrong, "keywords the functions do not take (or take by another name now):\n" + "\n".join(wrong)
