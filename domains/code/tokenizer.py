"""Python AST tokenizer with a fixed, versioned vocabulary
(reference §1, defects D1 and D2 (docs/reference.md#s1, #d1, #d2) fixed).

A source file becomes ``[BOS, ..., EOS]``: for every node in breadth-first ``ast.walk`` order it
emits

1. the node-type token (from the fixed :data:`NODE_TYPES` list; a class not in it -> UNK),
2. the depth token ``DEPTH_min(d, 15)`` (the module is depth 0),
3. an identifier token for ``Name.id``, ``Attribute.attr``, the name of a ``FunctionDef`` /
   ``AsyncFunctionDef`` / ``ClassDef`` and the module of an ``ImportFrom``:
   ``IDENT + fnv1a_32(utf-8 bytes) % 512``,
4. an operator token for ``BinOp`` / ``UnaryOp`` / ``BoolOp`` (their ``op``) and ``Compare``
   (its first op),
5. a constant-type token for ``Constant`` nodes (``type(value).__name__``).

An empty (blank) source gives ``[BOS, EOS]``; a syntax error gives ``[BOS, PARSE_ERROR, EOS]``.
Sequences are returned untruncated; truncation and padding happen in :mod:`wmkit.prepare`.

Differences from the reference, on purpose:

- D1 (docs/reference.md#d1): identifiers are bucketed with FNV-1a 32-bit, not Python's per-process salted
  ``hash()``, so token ids are identical in every process.
- D2 (docs/reference.md#d2): every token kind has its own id range (:data:`RANGES`); node types no longer
  collide with identifier buckets. The table is written out below (Python 3.10-3.14 concrete node classes),
  not computed from the running interpreter, so the ids do not depend on the Python version.
- The reference hashed ``__const_<type>__`` into the identifier buckets; here each constant type
  has its own token (``CONST_<type>``, unknown types -> ``CONST_other``), so it cannot collide.

Any change to the tables below must bump :data:`VOCAB_VERSION`.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from wmkit.domain import Vocabulary

VOCAB_VERSION = "code-ast-1"

SPECIALS = ("PAD", "BOS", "EOS", "UNK", "PARSE_ERROR")
PAD, BOS, EOS, UNK, PARSE_ERROR = range(len(SPECIALS))

#: concrete AST node classes the parser produces in Python 3.10-3.14, alphabetical. Deprecated
#: aliases that the parser never produces (Num, Str, Bytes, NameConstant, Ellipsis, Index,
#: ExtSlice, Suite, AugLoad, AugStore, Param) are left out on purpose and map to UNK.
NODE_TYPES = (
    "Add", "And", "AnnAssign", "Assert", "Assign", "AsyncFor", "AsyncFunctionDef", "AsyncWith",
    "Attribute", "AugAssign", "Await", "BinOp", "BitAnd", "BitOr", "BitXor", "BoolOp", "Break",
    "Call", "ClassDef", "Compare", "Constant", "Continue", "Del", "Delete", "Dict", "DictComp",
    "Div", "Eq", "ExceptHandler", "Expr", "Expression", "FloorDiv", "For", "FormattedValue",
    "FunctionDef", "FunctionType", "GeneratorExp", "Global", "Gt", "GtE", "If", "IfExp", "Import",
    "ImportFrom", "In", "Interactive", "Interpolation", "Invert", "Is", "IsNot", "JoinedStr",
    "LShift", "Lambda", "List", "ListComp", "Load", "Lt", "LtE", "MatMult", "Match", "MatchAs",
    "MatchClass", "MatchMapping", "MatchOr", "MatchSequence", "MatchSingleton", "MatchStar",
    "MatchValue", "Mod", "Module", "Mult", "Name", "NamedExpr", "Nonlocal", "Not", "NotEq",
    "NotIn", "Or", "ParamSpec", "Pass", "Pow", "RShift", "Raise", "Return", "Set", "SetComp",
    "Slice", "Starred", "Store", "Sub", "Subscript", "TemplateStr", "Try", "TryStar", "Tuple",
    "TypeAlias", "TypeIgnore", "TypeVar", "TypeVarTuple", "UAdd", "USub", "UnaryOp", "While",
    "With", "Yield", "YieldFrom", "alias", "arg", "arguments", "comprehension", "keyword",
    "match_case", "withitem",
)

MAX_DEPTH = 15

#: the 29 operators: boolop, operator (binary), unaryop, cmpop
OPERATORS = (
    "And", "Or",
    "Add", "Sub", "Mult", "MatMult", "Div", "Mod", "Pow", "LShift", "RShift", "BitOr", "BitXor",
    "BitAnd", "FloorDiv",
    "Invert", "Not", "UAdd", "USub",
    "Eq", "NotEq", "Lt", "LtE", "Gt", "GtE", "Is", "IsNot", "In", "NotIn",
)

IDENT_BUCKETS = 512

#: ``type(Constant.value).__name__`` values; anything else -> "other"
CONSTANT_TYPES = ("NoneType", "bool", "int", "float", "complex", "str", "bytes", "ellipsis", "other")


def _layout() -> dict[str, tuple[int, int]]:
    sizes = (("specials", len(SPECIALS)), ("node_types", len(NODE_TYPES)), ("depths", MAX_DEPTH + 1),
             ("operators", len(OPERATORS)), ("identifiers", IDENT_BUCKETS), ("constants", len(CONSTANT_TYPES)))
    ranges, start = {}, 0
    for name, size in sizes:
        ranges[name] = (start, start + size)
        start += size
    return ranges


#: token kind -> [start, stop); disjoint and covering [0, VOCAB_SIZE)
RANGES = _layout()
NODE_BASE = RANGES["node_types"][0]
DEPTH_BASE = RANGES["depths"][0]
OP_BASE = RANGES["operators"][0]
IDENT_BASE = RANGES["identifiers"][0]
CONST_BASE = RANGES["constants"][0]
VOCAB_SIZE = RANGES["constants"][1]

VOCAB = Vocabulary(size=VOCAB_SIZE, pad_id=PAD, version=VOCAB_VERSION, ranges=dict(RANGES))

_NODE_ID = {name: NODE_BASE + i for i, name in enumerate(NODE_TYPES)}
_OP_ID = {name: OP_BASE + i for i, name in enumerate(OPERATORS)}
_CONST_ID = {name: CONST_BASE + i for i, name in enumerate(CONSTANT_TYPES)}
_CONST_OTHER = _CONST_ID["other"]
DEPTH_TOKENS = tuple(DEPTH_BASE + min(d, MAX_DEPTH) for d in range(MAX_DEPTH + 1))


def fnv1a_32(data: bytes) -> int:
    """FNV-1a 32-bit: ``h = 2166136261; h = (h ^ byte) * 16777619 mod 2**32`` per byte."""
    h = 0x811C9DC5
    for byte in data:
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


_IDENT_CACHE: dict[str, int] = {}


def identifier_token(name: str) -> int:
    """``IDENT_BASE + fnv1a_32(name.encode()) % 512`` (memoised; stable across processes)."""
    token = _IDENT_CACHE.get(name)
    if token is None:
        if len(_IDENT_CACHE) > 200_000:
            _IDENT_CACHE.clear()
        token = IDENT_BASE + fnv1a_32(name.encode("utf-8", "surrogatepass")) % IDENT_BUCKETS
        _IDENT_CACHE[name] = token
    return token


def node_type_token(cls: type) -> int:
    """The node-type token of an AST class (by name), or UNK for a class outside the table."""
    return _NODE_ID.get(cls.__name__, UNK)


def constant_token(value) -> int:
    return _CONST_ID.get(type(value).__name__, _CONST_OTHER)


# What extra token a node class emits, decided once per class.
_NO_EXTRA, _NAME, _ATTR, _DEF, _IMPORT_FROM, _OP, _COMPARE, _CONST = range(8)
_EXTRA_KIND = {"Name": _NAME, "Attribute": _ATTR, "FunctionDef": _DEF, "AsyncFunctionDef": _DEF,
               "ClassDef": _DEF, "ImportFrom": _IMPORT_FROM, "BinOp": _OP, "UnaryOp": _OP, "BoolOp": _OP,
               "Compare": _COMPARE, "Constant": _CONST}
_CLASS_INFO: dict[type, tuple[int, int, tuple[str, ...]]] = {}


# Fields that only ever hold identifiers, strings or numbers (never a child node), skipped while
# walking purely for speed. Per class where a field name is a child elsewhere (TypeAlias.name is
# an expression; Attribute.value, Constant.value differ).
_SCALAR_FIELDS = frozenset({"id", "attr", "module", "arg", "asname", "level", "kind", "type_comment", "conversion",
                            "is_async", "tag", "lineno", "simple", "rest", "kwd_attrs", "str"})
_SCALAR_BY_CLASS = {"Constant": {"value"}, "Global": {"names"}, "Nonlocal": {"names"},
                    **{name: {"name"} for name in ("FunctionDef", "AsyncFunctionDef", "ClassDef", "alias",
                                                   "ExceptHandler", "MatchAs", "MatchStar", "TypeVar", "ParamSpec",
                                                   "TypeVarTuple")}}


def _class_info(cls: type) -> tuple[int, int, tuple[str, ...]]:
    """(node-type token, extra-token kind, fields that can hold child nodes) of an AST class."""
    info = _CLASS_INFO.get(cls)
    if info is None:
        skip = _SCALAR_FIELDS | _SCALAR_BY_CLASS.get(cls.__name__, set())
        children = tuple(f for f in cls._fields if f not in skip)
        info = (node_type_token(cls), _EXTRA_KIND.get(cls.__name__, _NO_EXTRA), children)
        _CLASS_INFO[cls] = info
    return info


@dataclass
class ParsedSource:
    """One parsed source: its tokens and its nodes in breadth-first (``ast.walk``) order.

    ``parents[i]`` is the index in ``nodes`` of node i's parent (-1 for the root). ``ok`` is False
    for a syntax error (then ``nodes`` is empty and ``tokens == [BOS, PARSE_ERROR, EOS]``).
    """

    tokens: list[int]
    nodes: list = field(default_factory=list)
    parents: list[int] = field(default_factory=list)
    ok: bool = True


def parse_source(text: str) -> ParsedSource:
    """Parse ``text`` once and tokenize it (see the module docstring)."""
    if not text.strip():
        return ParsedSource([BOS, EOS])
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        # ValueError: source containing NUL bytes; RecursionError/MemoryError: absurdly deep nesting
        return ParsedSource([BOS, PARSE_ERROR, EOS], ok=False)
    return tokenize_tree(tree)


def tokenize_tree(tree: ast.AST) -> ParsedSource:
    """Tokens of an already-parsed tree, breadth-first exactly as ``ast.walk`` visits nodes.

    The walk goes level by level (the same order as ``ast.walk``'s FIFO queue), so the depth token
    is fixed per level.
    """
    tokens = [BOS]
    emit = tokens.append
    nodes: list = []
    parents: list[int] = []
    AST = ast.AST
    infos = _CLASS_INFO
    idents = _IDENT_CACHE
    op_ids = _OP_ID
    const_ids = _CONST_ID
    level = [tree]
    level_parents = [-1]
    depth = 0
    while level:
        base = len(nodes)
        nodes.extend(level)
        parents.extend(level_parents)
        depth_token = DEPTH_TOKENS[depth if depth < MAX_DEPTH else MAX_DEPTH]
        children: list = []
        child_parents: list[int] = []
        add_child, add_parent = children.append, child_parents.append
        index = base
        for node in level:
            cls = node.__class__
            info = infos.get(cls) or _class_info(cls)
            emit(info[0])
            emit(depth_token)
            kind = info[1]
            if kind:
                if kind == _NAME:
                    emit(idents.get(node.id) or identifier_token(node.id))
                elif kind == _ATTR:
                    emit(idents.get(node.attr) or identifier_token(node.attr))
                elif kind == _DEF:
                    emit(idents.get(node.name) or identifier_token(node.name))
                elif kind == _IMPORT_FROM:
                    if node.module:
                        emit(identifier_token(node.module))
                elif kind == _OP:
                    emit(op_ids.get(node.op.__class__.__name__, UNK))
                elif kind == _COMPARE:
                    if node.ops:
                        emit(op_ids.get(node.ops[0].__class__.__name__, UNK))
                else:  # _CONST
                    emit(const_ids.get(type(node.value).__name__, _CONST_OTHER))
            for name in info[2]:
                value = getattr(node, name, None)
                if value.__class__ is list:
                    for item in value:
                        if isinstance(item, AST):
                            add_child(item)
                            add_parent(index)
                elif isinstance(value, AST):
                    add_child(value)
                    add_parent(index)
            index += 1
        level, level_parents = children, child_parents
        depth += 1
    emit(EOS)
    return ParsedSource(tokens, nodes, parents)


def tokenize(text: str) -> list[int]:
    """Token ids of one Python source (untruncated, ``[BOS, ..., EOS]``)."""
    return parse_source(text).tokens


def token_names(tokens) -> list[str]:
    """Human-readable names of token ids (for debugging and tests)."""
    out = []
    for t in tokens:
        t = int(t)
        if t < NODE_BASE:
            out.append(SPECIALS[t])
        elif t < DEPTH_BASE:
            out.append(NODE_TYPES[t - NODE_BASE])
        elif t < OP_BASE:
            out.append(f"DEPTH_{t - DEPTH_BASE}")
        elif t < IDENT_BASE:
            out.append(f"OP_{OPERATORS[t - OP_BASE]}")
        elif t < CONST_BASE:
            out.append(f"ID_{t - IDENT_BASE}")
        elif t < VOCAB_SIZE:
            out.append(f"CONST_{CONSTANT_TYPES[t - CONST_BASE]}")
        else:
            out.append(f"?{t}")
    return out
