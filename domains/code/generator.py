"""The embedded default source ``embedded:stdlib``: seeded commits on the standard library's own files.

Described in full in docs/code.md#what-a-generated-commit-is.
"""

from __future__ import annotations

import ast
import hashlib
import os
import platform
import random
import re
import sysconfig
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Callable, Iterator

GENERATOR_VERSION = "code-gen-1"
REPO = "python/stdlib"
#: commits per chain (successive edits of one file)
CHAIN = 4
#: files this size (characters) or smaller; the code domain's default ``data.max_chars`` is 40000
MIN_CHARS, MAX_CHARS = 1500, 16000
#: standard-library folders that some installations split off or leave out (Debian's python3-tk,
#: the test suite, IDLE), and third-party folders
SKIP_DIRS = frozenset({"site-packages", "dist-packages", "test", "tests", "idle_test", "idlelib", "tkinter",
                       "turtledemo", "lib2to3", "ensurepip", "distutils", "pydoc_data", "__pycache__", "__phello__"})

EDITS = ("rename_function", "add_function", "delete_function", "add_branch", "delete_branch",
         "change_constant", "reorder_imports", "add_parameter", "edit_docstring")


# -- the files ----------------------------------------------------------------------------------
def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


@lru_cache(maxsize=4)
def stdlib_files(root: str | None = None) -> tuple[tuple[str, int], ...]:
    """``(relative path, size in bytes)`` of the usable standard-library files, sorted by path:
    ``MIN_CHARS..MAX_CHARS`` bytes, outside :data:`SKIP_DIRS` and ``config-*`` folders."""
    base = Path(root) if root else stdlib_root()
    found = []
    for folder, dirs, files in os.walk(base):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith(("config-", ".")))
        for name in files:
            if name.endswith(".py"):
                path = Path(folder) / name
                size = path.stat().st_size
                if MIN_CHARS <= size <= MAX_CHARS:
                    found.append((path.relative_to(base).as_posix(), size))
    return tuple(sorted(found))


def files_digest(files) -> str:
    return hashlib.sha256(repr(list(files)).encode()).hexdigest()[:16]


def fingerprint(n_pairs: int, root: str | None = None) -> str:
    """What the rows depend on: generator version, Python version, the file list and sizes, pairs."""
    files = stdlib_files(root)
    return (f"{GENERATOR_VERSION}:python={platform.python_version()}:files={len(files)}:{files_digest(files)}"
            f":pairs={n_pairs}")


def _read(base: Path, rel: str) -> tuple[str, ast.AST] | None:
    try:
        text = (base / rel).read_text(encoding="utf-8")
        return text, ast.parse(text)
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
        return None


# -- edit helpers --------------------------------------------------------------------------------
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
RENAME_STYLES = ("{}_impl", "_{}", "{}2", "do_{}", "{}_safe", "compute_{}", "{}_checked", "get_{}")
NEW_PARAMS = (("timeout", "None"), ("strict", "False"), ("encoding", "'utf-8'"), ("limit", "None"),
              ("verbose", "False"), ("default", "None"), ("copy", "True"), ("key", "None"))
DOC_NOTES = ("This is not thread-safe.", "The result is cached.", "Raises ValueError on bad input.",
             "Returns None when nothing matches.", "Kept for backward compatibility.",
             "See also the module documentation.", "The argument is not modified.")


class _Source:
    """A file's lines and parse tree, for line-based edits."""

    def __init__(self, text: str, tree: ast.AST):
        self.text = text
        self.lines = text.splitlines(keepends=True)
        self.tree = tree

    @cached_property
    def functions(self) -> list:
        """Every function and method, found through statement bodies only (much cheaper than
        ``ast.walk``: expressions cannot hold a ``def``)."""
        found, todo = [], [self.tree]
        while todo:
            node = todo.pop()
            for name in ("body", "orelse", "finalbody", "handlers", "cases"):
                for child in getattr(node, name, None) or ():
                    if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        found.append(child)
                    if isinstance(child, (ast.stmt, ast.excepthandler, ast.match_case)):
                        todo.append(child)
        return sorted(found, key=lambda n: (n.lineno, n.col_offset))

    def join(self, lines: list[str]) -> str:
        return "".join(lines)

    def start(self, node) -> int:
        """0-based first line of ``node`` including its decorators."""
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        return first - 1

    def indent_of(self, node) -> str:
        line = self.lines[node.lineno - 1]
        return line[:len(line) - len(line.lstrip())]


def _pick(rng: random.Random, seq):
    return seq[rng.randrange(len(seq))]


def _identifiers(src: _Source) -> set[str]:
    return set(_IDENT.findall(src.text))


def _top_functions(src: _Source) -> list:
    return [n for n in src.tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def _params(fn) -> list[str]:
    return [a.arg for a in fn.args.posonlyargs + fn.args.args + fn.args.kwonlyargs if a.arg not in ("self", "cls")]


def _body_start(fn) -> int:
    """Index in ``fn.body`` after the docstring."""
    first = fn.body[0]
    is_doc = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)
    return 1 if is_doc and len(fn.body) > 1 else 0


def rename_function(src: _Source, rng: random.Random) -> str | None:
    names = sorted({f.name for f in src.functions if not f.name.startswith("__")})
    if not names:
        return None
    old = _pick(rng, names)
    taken = _identifiers(src)
    for style in rng.sample(RENAME_STYLES, len(RENAME_STYLES)):
        new = style.format(old.lstrip("_")) if style.startswith("_") else style.format(old)
        if new not in taken:
            return re.sub(rf"\b{re.escape(old)}\b", new, src.text)
    return None


def _new_function(src: _Source, rng: random.Random, indent: str, method: bool) -> list[str]:
    words = sorted(w for w in _identifiers(src) if w.islower() and 3 <= len(w) <= 12 and not w.startswith("_"))
    subject = _pick(rng, words) if words else "value"
    name = f"_{_pick(rng, ('check', 'normalize', 'format', 'as', 'is_valid', 'coerce'))}_{subject}"
    if name in _identifiers(src):
        name += "_helper"
    self_ = "self, " if method else ""
    i1, i2 = indent + "    ", indent + "        "
    shape = rng.randrange(4)
    if shape == 0:
        body = [f'{i1}"""Return {subject} unchanged, or raise TypeError."""\n',
                f"{i1}if not isinstance({subject}, (str, bytes)):\n",
                f'{i2}raise TypeError("{subject} must be str or bytes, not %s" % type({subject}).__name__)\n',
                f"{i1}return {subject}\n"]
    elif shape == 1:
        body = [f"{i1}if {subject} is None:\n", f"{i2}return default\n",
                f"{i1}return str({subject}).strip()\n"]
        self_ += f"{subject}, default=None"
        return [f"{indent}def {name}({self_}):\n", *body]
    elif shape == 2:
        body = [f"{i1}result = []\n", f"{i1}for item in {subject}:\n", f"{i2}if item:\n",
                f"{i2}    result.append(item)\n", f"{i1}return result\n"]
    else:
        body = [f"{i1}try:\n", f"{i2}return int({subject})\n", f"{i1}except (TypeError, ValueError):\n",
                f"{i2}return None\n"]
    return [f"{indent}def {name}({self_}{subject}):\n", *body]


def add_function(src: _Source, rng: random.Random) -> str | None:
    classes = [n for n in src.tree.body if isinstance(n, ast.ClassDef)]
    anchors = _top_functions(src) + classes
    if not anchors:
        return None
    anchor = _pick(rng, anchors)
    if isinstance(anchor, ast.ClassDef) and rng.random() < 0.5:  # a new method at the end of the class
        methods = [n for n in anchor.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        if methods:
            last = methods[-1]
            new = _new_function(src, rng, src.indent_of(last), method=True)
            at = last.end_lineno
            return src.join(src.lines[:at] + ["\n"] + new + src.lines[at:])
    new = _new_function(src, rng, "", method=False)
    at = anchor.end_lineno
    return src.join(src.lines[:at] + ["\n", "\n"] + new + src.lines[at:])


def delete_function(src: _Source, rng: random.Random) -> str | None:
    candidates = [f for f in _top_functions(src) if not f.name.startswith("__")]
    for cls in (n for n in src.tree.body if isinstance(n, ast.ClassDef)):
        methods = [n for n in cls.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        if len(methods) > 1 and len(cls.body) > 1:
            candidates += [m for m in methods if not m.name.startswith("__")]
    if not candidates:
        return None
    fn = _pick(rng, candidates)
    first, last = src.start(fn), fn.end_lineno
    while last < len(src.lines) and not src.lines[last].strip():  # the blank lines after it go too
        last += 1
    return src.join(src.lines[:first] + src.lines[last:])


def add_branch(src: _Source, rng: random.Random) -> str | None:
    usable = [f for f in src.functions if _params(f)]
    if not usable:
        return None
    fn = _pick(rng, usable)
    param = _pick(rng, _params(fn))
    stmt = fn.body[_body_start(fn)]
    indent = src.indent_of(stmt)
    if not src.lines[stmt.lineno - 1].startswith(indent) or stmt.lineno == fn.lineno:
        return None  # a one-line def: no room for a guard
    shape = rng.randrange(3)
    if shape == 0:
        guard = [f"{indent}if {param} is None:\n", f'{indent}    raise ValueError("{param} is required")\n']
    elif shape == 1:
        guard = [f"{indent}if not {param}:\n", f"{indent}    return None\n"]
    else:
        guard = [f"{indent}if isinstance({param}, str):\n", f"{indent}    {param} = {param}.strip()\n"]
    at = stmt.lineno - 1
    return src.join(src.lines[:at] + guard + src.lines[at:])


def delete_branch(src: _Source, rng: random.Random) -> str | None:
    candidates = []
    for fn in src.functions:
        for stmt in fn.body:
            if isinstance(stmt, ast.If) and len(fn.body) > 1 and stmt.lineno != fn.lineno:
                candidates.append(stmt)
    if not candidates:
        return None
    stmt = _pick(rng, candidates)
    return src.join(src.lines[:stmt.lineno - 1] + src.lines[stmt.end_lineno:])


def change_constant(src: _Source, rng: random.Random) -> str | None:
    found = []
    for node in ast.walk(src.tree):
        if (isinstance(node, ast.Constant) and type(node.value) in (int, float) and node.lineno == node.end_lineno
                and not isinstance(node.value, bool)):
            found.append(node)
    if not found:
        return None
    node = _pick(rng, found)
    line = src.lines[node.lineno - 1]
    old = line[node.col_offset:node.end_col_offset]
    value = node.value
    shape = rng.randrange(3)
    if shape == 0:  # a limit scaled up, written as the product a reader checks
        new = f"{old} * {_pick(rng, (2, 4, 10))}"
    elif shape == 1:  # an integer becomes a float (a timeout, a ratio)
        new = f"{float(value) * _pick(rng, (0.5, 1.5, 2.0))!r}"
    else:  # a different value of the same type
        new = repr(value + _pick(rng, (1, 2, 5)) if isinstance(value, int) else value * 2)
    if new == old:
        return None
    lines = list(src.lines)
    lines[node.lineno - 1] = line[:node.col_offset] + new + line[node.end_col_offset:]
    return src.join(lines)


def reorder_imports(src: _Source, rng: random.Random) -> str | None:
    body = src.tree.body
    pairs = []
    for a, b in zip(body, body[1:]):
        if (isinstance(a, (ast.Import, ast.ImportFrom)) and isinstance(b, (ast.Import, ast.ImportFrom))
                and a.lineno == a.end_lineno and b.lineno == b.end_lineno and b.lineno == a.lineno + 1):
            pairs.append((a, b))
    if not pairs:
        return None
    a, b = _pick(rng, pairs)
    lines = list(src.lines)
    lines[a.lineno - 1], lines[b.lineno - 1] = lines[b.lineno - 1], lines[a.lineno - 1]
    text = src.join(lines)
    return text if text != src.text else None


def add_parameter(src: _Source, rng: random.Random) -> str | None:
    usable = []
    for fn in src.functions:
        a = fn.args
        if fn.lineno != fn.body[0].lineno and not a.vararg and not a.kwarg and not a.kwonlyargs:
            line = src.lines[fn.lineno - 1]
            if line.rstrip().endswith(":") and ")" in line and line.count("(") == line.count(")"):
                usable.append(fn)
    if not usable:
        return None
    fn = _pick(rng, usable)
    taken = set(_params(fn))
    options = [p for p in NEW_PARAMS if p[0] not in taken]
    if not options:
        return None
    name, default = _pick(rng, options)
    line = src.lines[fn.lineno - 1]
    close = line.rindex(")")
    inner = line[line.index("(") + 1:close].strip()
    new_line = line[:close] + (", " if inner else "") + f"{name}={default}" + line[close:]
    lines = list(src.lines)
    lines[fn.lineno - 1] = new_line
    return src.join(lines)


def edit_docstring(src: _Source, rng: random.Random) -> str | None:
    documented = []
    for fn in src.functions:
        first = fn.body[0]
        if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str) and first.lineno == first.end_lineno):
            documented.append(first)
    if not documented:
        return None
    doc = _pick(rng, documented)
    line = src.lines[doc.lineno - 1]
    quote = '"""' if '"""' in line else ("'''" if "'''" in line else None)
    if quote is None:
        return None
    end = line.rindex(quote)
    if end <= line.index(quote):
        return None
    note = _pick(rng, DOC_NOTES)
    lines = list(src.lines)
    lines[doc.lineno - 1] = line[:end].rstrip() + " " + note + line[end:]
    return src.join(lines)


EDIT_FUNCTIONS: dict[str, Callable[[_Source, random.Random], str | None]] = {
    "rename_function": rename_function, "add_function": add_function, "delete_function": delete_function,
    "add_branch": add_branch, "delete_branch": delete_branch, "change_constant": change_constant,
    "reorder_imports": reorder_imports, "add_parameter": add_parameter, "edit_docstring": edit_docstring,
}
SUBJECTS = {"rename_function": "Rename {}", "add_function": "Add a helper to {}",
            "delete_function": "Remove an unused function from {}", "add_branch": "Guard against bad input in {}",
            "delete_branch": "Drop a special case in {}", "change_constant": "Tune a constant in {}",
            "reorder_imports": "Reorder imports in {}", "add_parameter": "Add a parameter in {}",
            "edit_docstring": "Clarify a docstring in {}"}


def _rng(chain: int) -> random.Random:
    digest = hashlib.sha256(f"{GENERATOR_VERSION}:{chain}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _apply(src: _Source, kind_order: list[str], rng: random.Random) -> tuple[str, _Source] | None:
    """The first edit kind in ``kind_order`` that applies and leaves a parseable, changed text."""
    for kind in kind_order:
        new = EDIT_FUNCTIONS[kind](src, rng)
        if new is None or new == src.text:
            continue
        try:
            tree = ast.parse(new)
        except (SyntaxError, ValueError):
            continue
        return kind, _Source(new, tree)
    return None


def make_chain(chain: int, root: str | None = None) -> list[dict]:
    """The rows of chain ``chain`` (up to :data:`CHAIN` successive commits on one file)."""
    base = Path(root) if root else stdlib_root()
    files = stdlib_files(root)
    if not files:
        return []
    rng = _rng(chain)
    for _attempt in range(4):
        rel = files[rng.randrange(len(files))][0]
        found = _read(base, rel)
        if found is not None:
            break
    else:
        return []
    src = _Source(*found)
    rows = []
    for step in range(CHAIN):
        index = chain * CHAIN + step
        start = (chain + step) % len(EDITS)  # every kind comes in turn; the first that applies is used
        order = list(EDITS[start:] + EDITS[:start])
        done = _apply(src, order, rng)
        if done is None:
            break
        kind, new_src = done
        text, new = src.text, new_src.text
        subject = SUBJECTS[kind].format(rel.rsplit("/", 1)[-1])
        rows.append({"commit": f"stdlib-{index}", "old_file": f"Lib/{rel}", "new_file": f"Lib/{rel}",
                     "old_contents": text, "new_contents": new, "subject": subject, "message": subject,
                     "lang": "Python", "license": "PSF-2.0", "repos": REPO, "edit": kind})
        src = new_src
    return rows


def generate(n_pairs: int, root: str | None = None) -> Iterator[dict]:
    """The first ``n_pairs`` rows of chains 0, 1, 2, ..."""
    made, chain = 0, 0
    misses = 0
    while made < n_pairs and misses < 64:
        rows = make_chain(chain, root)
        misses = 0 if rows else misses + 1
        for row in rows[:n_pairs - made]:
            yield row
            made += 1
        chain += 1
