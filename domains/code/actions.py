"""Edit actions of a Python commit: the reference's 7-D and 15-D vectors (reference §2, docs/reference.md#s2).

7-D (``compute_action``):

- ``[0:3]`` edit type, one-hot ADD / DELETE / MODIFY: ADD if the old text is blank, DELETE if the
  new text is blank, otherwise MODIFY.
- ``[3:6]`` scope, one-hot FUNC / CLASS / MODULE, first rule that holds:
  FUNC if the set of function names changed; CLASS if the set of class names changed; FUNC if any
  function's AST node count changed; else MODULE (also when either side does not parse).
- ``[6]`` location: index of the first differing line / the larger line count (when one file is a
  prefix of the other the index is the shorter line count, i.e. min/max).

15-D (``ast_diff``), dims 0-6 as above, then with ``cap(x, c) = min(x, c) / c``:

- ``[7]``  ``0.5 * clip((n_new - n_old) / max(n_new, n_old), -1, 1) + 0.5`` (n = AST node count)
- ``[8]``  ``cap(#function names added, 5)``
- ``[9]``  ``cap(#function names removed, 5)``
- ``[10]`` ``cap(#common functions whose node count changed, 10)``
- ``[11]`` ``cap(#imported names added, 5)``; an imported name is ``alias.name`` for ``import``
  and ``"." * level + module + "." + alias.name`` for ``from ... import``
- ``[12]`` ``cap(|delta #control-flow statements|, 10)``; control flow = For, AsyncFor, While,
  If, Try, TryStar, With, AsyncWith
- ``[13]`` ``cap(|delta #classes| + |delta #decorators|, 5)`` (decorators of functions and classes)
- ``[14]`` ``min(len(new) / len(old), 3) / 3`` in characters (old empty -> 1.0)

"Functions" are ``FunctionDef`` and ``AsyncFunctionDef`` nodes, keyed by name (a later definition
of the same name in ``ast.walk`` order wins, as a dict built while walking would do); a function's
node count is the size of its subtree in ``ast.walk``. When either side fails to parse, dims
[7]-[13] carry no AST information: [7] = 0.5 and [8]-[13] = 0.

Labels: ``edit_type`` = argmax [0:3], ``scope`` = argmax [3:6], ``joint`` = edit_type * 3 + scope.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

import numpy as np

EDIT_TYPES = ("ADD", "DELETE", "MODIFY")
SCOPES = ("FUNC", "CLASS", "MODULE")
ADD, DELETE, MODIFY = range(3)
FUNC, CLASS, MODULE = range(3)

ACTION_NAMES_7 = ("type_add", "type_delete", "type_modify", "scope_func", "scope_class", "scope_module",
                  "location")
ACTION_NAMES_15 = ACTION_NAMES_7 + ("node_delta", "funcs_added", "funcs_removed", "funcs_resized",
                                    "imports_added", "control_flow_delta", "class_decorator_delta",
                                    "length_ratio")

_FUNCTION_TYPES = ("FunctionDef", "AsyncFunctionDef")
_CONTROL_TYPES = frozenset({"For", "AsyncFor", "While", "If", "Try", "TryStar", "With", "AsyncWith"})


@dataclass
class TreeFacts:
    """What the actions need to know about one parsed source."""

    ok: bool = True
    node_count: int = 0
    functions: dict[str, int] = field(default_factory=dict)  # name -> subtree node count
    classes: set[str] = field(default_factory=set)
    class_count: int = 0
    decorator_count: int = 0
    control_count: int = 0
    imports: set[str] = field(default_factory=set)


PARSE_FAILED = TreeFacts(ok=False)


def facts_from_nodes(nodes: list, parents: list[int]) -> TreeFacts:
    """Facts of a tree given its nodes in ``ast.walk`` order and each node's parent index."""
    facts = TreeFacts(node_count=len(nodes))
    func_at: list[tuple[str, int]] = []
    control = 0
    for i, node in enumerate(nodes):
        name = node.__class__.__name__
        if name in _CONTROL_TYPES:
            control += 1
        elif name in _FUNCTION_TYPES:
            func_at.append((node.name, i))
            facts.decorator_count += len(node.decorator_list)
        elif name == "ClassDef":
            facts.classes.add(node.name)
            facts.class_count += 1
            facts.decorator_count += len(node.decorator_list)
        elif name == "Import":
            facts.imports.update(alias.name for alias in node.names)
        elif name == "ImportFrom":
            prefix = "." * (node.level or 0) + (node.module or "")
            facts.imports.update(f"{prefix}.{alias.name}" for alias in node.names)
    facts.control_count = control
    if func_at:
        sizes = _subtree_sizes(parents)
        for name, i in func_at:
            facts.functions[name] = sizes[i]
    return facts


def _subtree_sizes(parents: list[int]) -> list[int]:
    """Subtree sizes from breadth-first parent indices (children always come after parents)."""
    sizes = [1] * len(parents)
    for i in range(len(parents) - 1, 0, -1):
        sizes[parents[i]] += sizes[i]
    return sizes


def tree_facts(tree: ast.AST | None) -> TreeFacts:
    """Facts of a parsed tree (``None`` = did not parse). Walks the tree once."""
    if tree is None:
        return PARSE_FAILED
    nodes, parents = [tree], [-1]
    i = 0
    while i < len(nodes):
        for child in ast.iter_child_nodes(nodes[i]):
            nodes.append(child)
            parents.append(i)
        i += 1
    return facts_from_nodes(nodes, parents)


def _parse(text: str) -> ast.AST | None:
    try:
        return ast.parse(text)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None


def edit_type(old: str, new: str) -> int:
    """ADD if ``old`` is blank, DELETE if ``new`` is blank, else MODIFY."""
    if not old.strip():
        return ADD
    if not new.strip():
        return DELETE
    return MODIFY


def scope(old: TreeFacts, new: TreeFacts) -> int:
    """FUNC / CLASS / MODULE by the reference's rules, in order (MODULE on a parse error)."""
    if not (old.ok and new.ok):
        return MODULE
    if set(old.functions) != set(new.functions):
        return FUNC
    if old.classes != new.classes:
        return CLASS
    if old.functions != new.functions:  # same names, so some node count changed
        return FUNC
    return MODULE


def location(old: str, new: str) -> float:
    """First differing line index / the larger line count (min/max when one is a prefix)."""
    a, b = old.splitlines(), new.splitlines()
    longest = max(len(a), len(b))
    if longest == 0:
        return 0.0
    first = min(len(a), len(b))
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            first = i
            break
    return first / longest


def _cap(count: int, limit: int) -> float:
    return min(count, limit) / limit


def action_from_facts(old: str, new: str, old_facts: TreeFacts, new_facts: TreeFacts, dims: int = 15) -> np.ndarray:
    """The 7-D or 15-D action (module docstring) from the texts and their :class:`TreeFacts`."""
    if dims not in (7, 15):
        raise ValueError(f"action dims must be 7 or 15, got {dims}")
    vec = np.zeros(dims, dtype=np.float32)
    vec[edit_type(old, new)] = 1.0
    vec[3 + scope(old_facts, new_facts)] = 1.0
    vec[6] = location(old, new)
    if dims == 7:
        return vec
    if old_facts.ok and new_facts.ok:
        n_old, n_new = old_facts.node_count, new_facts.node_count
        biggest = max(n_old, n_new)
        change = (n_new - n_old) / biggest if biggest else 0.0
        vec[7] = 0.5 * min(max(change, -1.0), 1.0) + 0.5
        old_f, new_f = old_facts.functions, new_facts.functions
        vec[8] = _cap(len(new_f.keys() - old_f.keys()), 5)
        vec[9] = _cap(len(old_f.keys() - new_f.keys()), 5)
        vec[10] = _cap(sum(1 for k in old_f.keys() & new_f.keys() if old_f[k] != new_f[k]), 10)
        vec[11] = _cap(len(new_facts.imports - old_facts.imports), 5)
        vec[12] = _cap(abs(new_facts.control_count - old_facts.control_count), 10)
        vec[13] = _cap(abs(new_facts.class_count - old_facts.class_count)
                       + abs(new_facts.decorator_count - old_facts.decorator_count), 5)
    else:
        vec[7] = 0.5
    vec[14] = min(len(new) / len(old), 3.0) / 3.0 if old else 1.0
    return vec


def compute_action(old: str, new: str, dims: int = 15) -> np.ndarray:
    """The action of the edit ``old -> new`` (parses both sides; see :func:`action_from_facts`)."""
    old_facts = tree_facts(_parse(old)) if old.strip() else TreeFacts()  # blank: no nodes at all
    new_facts = tree_facts(_parse(new)) if new.strip() else TreeFacts()
    return action_from_facts(old, new, old_facts, new_facts, dims)


def labels_of(action: np.ndarray) -> dict[str, int]:
    """``edit_type`` = argmax [0:3], ``scope`` = argmax [3:6], ``joint`` = edit_type * 3 + scope."""
    kind = int(np.argmax(action[0:3]))
    where = int(np.argmax(action[3:6]))
    return {"edit_type": kind, "scope": where, "joint": kind * 3 + where}
