"""7-D and 15-D edit actions (reference §2, docs/reference.md#s2) on crafted edits, values
computed by hand."""

import numpy as np
import pytest

from wmkit_code import actions as act
from wmkit_code.domain import CodeDomain


def both(old, new):
    full = act.compute_action(old, new, 15)
    short = act.compute_action(old, new, 7)
    np.testing.assert_array_equal(short, full[:7])
    assert full.dtype == np.float32 and full.shape == (15,)
    return full


def test_add_a_file_with_a_function():
    new = "def f():\n    return 1\n"
    v = both("", new)
    np.testing.assert_allclose(v, [1, 0, 0,  1, 0, 0,  0.0,   # ADD, FUNC (names changed), first line
                                   1.0,                       # (n - 0) / n -> +1 -> 1.0
                                   1 / 5, 0, 0, 0, 0, 0,      # one function added
                                   1.0], atol=1e-6)           # old empty -> ratio capped -> 1.0
    assert act.labels_of(v) == {"edit_type": 0, "scope": 0, "joint": 0}


def test_delete_a_file():
    v = both("x = 1\n", "")
    # old nodes: Module, Assign, Name, Constant, Store = 5; new: none -> change -1 -> 0.0
    np.testing.assert_allclose(v, [0, 1, 0,  0, 0, 1,  0.0,  0.0,  0, 0, 0, 0, 0, 0,  0.0], atol=1e-6)
    assert act.labels_of(v) == {"edit_type": 1, "scope": 2, "joint": 5}


def test_class_added_to_a_module():
    old = "class A:\n    pass\n"
    new = "class A:\n    pass\nclass B(A):\n    x = 1\n"
    v = both(old, new)
    # old nodes: Module, ClassDef, Pass = 3; new: Module, ClassDef A, ClassDef B, Pass, Name A, Assign, Load,
    # Name x, Constant, Store = 10
    expected = [0, 0, 1,  0, 1, 0,  2 / 4,  0.5 * (10 - 3) / 10 + 0.5,  0, 0, 0, 0, 0,  1 / 5,
                min(len(new) / len(old), 3) / 3]
    np.testing.assert_allclose(v, expected, atol=1e-6)
    assert act.labels_of(v) == {"edit_type": 2, "scope": 1, "joint": 7}


def test_function_body_changed_is_func_scope():
    old = "import os\n\ndef f(x):\n    return x\n"
    new = "import os\n\ndef f(x):\n    return x + 1\n"
    v = both(old, new)
    # f: FunctionDef, arguments, Return, arg, Name x, Load = 6 nodes -> Return of BinOp(Name, Add, Constant) = 9
    n_old, n_new = 1 + 1 + 1 + 6, 1 + 1 + 1 + 9  # Module, Import, alias + the function
    expected = [0, 0, 1,  1, 0, 0,  3 / 4,  0.5 * (n_new - n_old) / n_new + 0.5,  0, 0, 1 / 10, 0, 0, 0,
                len(new) / len(old) / 3]
    np.testing.assert_allclose(v, expected, atol=1e-6)
    facts = act.tree_facts(__import__("ast").parse(new))
    assert facts.functions == {"f": 9} and facts.node_count == n_new


def test_module_scope_when_nothing_structural_changed():
    v = both("x = 1\ny = 2\n", "x = 1\ny = 3\n")
    np.testing.assert_allclose(v, [0, 0, 1,  0, 0, 1,  1 / 2,  0.5,  0, 0, 0, 0, 0, 0,  1 / 3], atol=1e-6)


def test_location_prefix_and_first_difference():
    assert act.location("a\nb\n", "a\nb\nc\nd\n") == pytest.approx(2 / 4)  # prefix: min / max
    assert act.location("a\nb\nc\n", "a\nX\nc\n") == pytest.approx(1 / 3)
    assert act.location("a\n", "b\n") == 0.0
    assert act.location("", "") == 0.0


def test_counts_are_capped_at_their_divisors():
    old = "import a\n\nclass Base:\n    pass\n"
    funcs = "".join(f"def f{i}():\n    pass\n" for i in range(7))
    ifs = "".join(f"if x{i}:\n    pass\n" for i in range(12))
    classes = "".join(f"@d1\n@d2\nclass C{i}:\n    pass\n" for i in range(2))
    new = "import a, b, c\nfrom .pkg import d\n\nclass Base:\n    pass\n" + funcs + ifs + classes
    v = act.compute_action(old, new, 15)
    assert v[8] == 1.0        # 7 functions added, cap 5
    assert v[9] == 0.0
    assert v[11] == pytest.approx(3 / 5)  # b, c, .pkg.d
    assert v[12] == 1.0       # 12 more if statements, cap 10
    assert v[13] == 1.0       # 2 classes + 4 decorators = 6, cap 5
    assert v[14] == 1.0       # much longer: ratio capped at 3
    assert v[3] == 1.0        # function names changed -> FUNC first
    removed = act.compute_action(new, old, 15)
    assert removed[8] == 0.0 and removed[9] == 1.0 and removed[11] == 0.0 and removed[12] == 1.0
    assert removed[7] < 0.5


def test_scope_rule_order_and_parse_errors():
    # function names AND class names change: FUNC wins (first rule)
    v = act.compute_action("class A: pass\n", "class B:\n    def g(self): pass\n", 15)
    assert v[3:6].tolist() == [1, 0, 0]
    # a side that does not parse: MODULE, no AST dims
    v = act.compute_action("def f(:\n", "def f():\n    pass\n", 15)
    np.testing.assert_allclose(v[:8], [0, 0, 1, 0, 0, 1, 0.0, 0.5])
    assert v[8:14].tolist() == [0.0] * 6


def test_domain_action_matches_the_standalone_computation():
    pairs = [("", "def f():\n    return 1\n"), ("x = 1\n", ""),
             ("class A:\n    pass\n", "class A:\n    pass\nclass B(A):\n    x = 1\n"),
             ("import os\ndef f(x):\n    return x\n", "import os, sys\n@dec\ndef f(x):\n    for i in x:\n        pass\n"),
             ("def f(:\n", "x = 2\n")]
    for option, dims in (("15d", 15), ("7d", 7)):
        domain = CodeDomain({"action": option})
        for old, new in pairs:
            tr = domain.transition({"old_contents": old, "new_contents": new})
            np.testing.assert_allclose(tr.action, act.compute_action(old, new, dims), atol=1e-7)
            assert tr.labels == act.labels_of(tr.action)
