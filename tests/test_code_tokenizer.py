"""The code domain's AST tokenizer: stable ids (D1, docs/reference.md#d1), disjoint vocabulary
(D2, docs/reference.md#d2), reference order (§1, docs/reference.md#s1)."""

import ast
import json
import os
import subprocess
import sys

import pytest

from wmkit_code import tokenizer as tok

SNIPPET = """
import os.path as osp
from collections import OrderedDict

class Cache(OrderedDict):
    limit = 10

    def put(self, key, value):
        if key in self and not value:
            return -1
        self[key] = value ** 2
        while len(self) > self.limit:
            self.popitem(last=False)
        return {"k": b"v", 3.5: None, ...: True}
"""


def fnv1a(data: bytes) -> int:
    """FNV-1a 32-bit, written out independently of the module."""
    h = 2166136261
    for byte in data:
        h ^= byte
        h = (h * 16777619) % (1 << 32)
    return h


def test_fnv1a_matches_published_test_vectors():
    assert tok.fnv1a_32(b"") == 0x811C9DC5
    assert tok.fnv1a_32(b"a") == 0xE40C292C
    assert tok.fnv1a_32(b"foobar") == 0xBF9CF968
    assert tok.identifier_token("self") == tok.IDENT_BASE + fnv1a(b"self") % 512


def test_ids_identical_in_fresh_processes_with_different_hash_seeds():
    code = ("import json, sys; from wmkit_code.tokenizer import tokenize; "
            "print(json.dumps(tokenize(sys.stdin.read())))")
    outputs = []
    for seed in ("1", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        proc = subprocess.run([sys.executable, "-c", code], input=SNIPPET, capture_output=True, text=True,
                              env=env, check=True, timeout=60)
        outputs.append(json.loads(proc.stdout))
    assert outputs[0] == outputs[1]
    assert outputs[0] == tok.tokenize(SNIPPET)
    assert len(set(outputs[0]) & set(range(*tok.RANGES["identifiers"]))) >= 5  # identifiers really present


def test_ranges_are_disjoint_and_cover_the_vocabulary():
    spans = sorted(tok.RANGES.values())
    assert spans[0][0] == 0
    for (a0, a1), (b0, b1) in zip(spans, spans[1:]):
        assert a0 < a1 == b0 < b1  # contiguous, non-empty, no overlap
    assert spans[-1][1] == tok.VOCAB_SIZE == tok.VOCAB.size
    assert tok.VOCAB.pad_id == tok.PAD == 0
    assert tok.VOCAB.version == tok.VOCAB_VERSION
    assert dict(tok.VOCAB.ranges) == tok.RANGES
    assert tok.RANGES["identifiers"][1] - tok.RANGES["identifiers"][0] == 512
    assert tok.RANGES["depths"][1] - tok.RANGES["depths"][0] == 16
    assert tok.RANGES["operators"][1] - tok.RANGES["operators"][0] == 29
    assert (tok.PAD, tok.BOS, tok.EOS, tok.UNK, tok.PARSE_ERROR) == (0, 1, 2, 3, 4)
    assert len(set(tok.NODE_TYPES)) == len(tok.NODE_TYPES) and list(tok.NODE_TYPES) == sorted(tok.NODE_TYPES)


def test_every_node_class_of_this_interpreter_maps_to_a_node_type_or_unk():
    node_range = range(*tok.RANGES["node_types"])
    classes = [getattr(ast, n) for n in dir(ast)
               if isinstance(getattr(ast, n), type) and issubclass(getattr(ast, n), ast.AST)]
    assert len(classes) > 100
    for cls in classes:
        token = tok.node_type_token(cls)
        assert token in node_range or token == tok.UNK, cls
    # every class the parser produces here is in the table (UNK only for deprecated aliases)
    for name in ("Module", "FunctionDef", "Match", "TryStar", "Load", "NotIn", "withitem", "JoinedStr"):
        assert tok.node_type_token(getattr(ast, name)) in node_range
    assert tok.node_type_token(type("NotAnAstNode", (), {})) == tok.UNK


def test_known_snippet_gives_the_hand_checked_sequence():
    # x = a + 1  ->  ast.walk: Module, Assign, Name x, BinOp, Store, Name a, Add, Constant, Load
    names = tok.token_names(tok.tokenize("x = a + 1\n"))
    x, a = f"ID_{fnv1a(b'x') % 512}", f"ID_{fnv1a(b'a') % 512}"
    assert names == ["BOS", "Module", "DEPTH_0", "Assign", "DEPTH_1",
                     "Name", "DEPTH_2", x, "BinOp", "DEPTH_2", "OP_Add",
                     "Store", "DEPTH_3", "Name", "DEPTH_3", a, "Add", "DEPTH_3", "Constant", "DEPTH_3", "CONST_int",
                     "Load", "DEPTH_4", "EOS"]
    ids = tok.tokenize("x = a + 1\n")
    assert ids[:3] == [1, tok.NODE_BASE + tok.NODE_TYPES.index("Module"), tok.DEPTH_BASE]


def test_names_operators_and_constants():
    names = tok.token_names(tok.tokenize("from pkg.mod import thing\nclass K: pass\nif not y < 2 or z: s = 'q'\n"))
    # identifier tokens: the ImportFrom module, the class name and the three Names (alias names are not
    # among the reference's identifier kinds)
    idents = sorted(n for n in names if n.startswith("ID_"))
    assert idents == sorted(f"ID_{fnv1a(w) % 512}" for w in (b"pkg.mod", b"K", b"y", b"z", b"s"))
    for op in ("OP_Or", "OP_Not", "OP_Lt"):
        assert names.count(op) == 1
    assert names.count("CONST_str") == 1 and names.count("CONST_int") == 1


def test_empty_parse_error_and_depth_cap():
    assert tok.tokenize("") == [tok.BOS, tok.EOS]
    assert tok.tokenize("  \n\t\n") == [tok.BOS, tok.EOS]
    assert tok.tokenize("def broken(:\n") == [tok.BOS, tok.PARSE_ERROR, tok.EOS]
    deep = "x = " + "-" * 25 + "1\n"  # nested unary minus: depth grows past 15
    depths = [t - tok.DEPTH_BASE for t in tok.tokenize(deep) if tok.DEPTH_BASE <= t < tok.OP_BASE]
    assert max(depths) == 15 and depths.count(15) > 10
    assert depths[:4] == [0, 1, 2, 2]


def test_walk_order_and_untruncated_output_on_a_real_module():
    source = open(ast.__file__, encoding="utf-8").read()
    tree = ast.parse(source)
    parsed = tok.tokenize_tree(tree)
    walked = list(ast.walk(tree))
    assert len(parsed.nodes) == len(walked) and all(a is b for a, b in zip(parsed.nodes, walked))
    assert all(parsed.parents[i] < i for i in range(1, len(parsed.parents)))
    assert len(parsed.tokens) > 2 * len(walked)  # nothing truncated
    assert all(0 <= t < tok.VOCAB_SIZE for t in parsed.tokens)
    assert tok.UNK not in parsed.tokens


@pytest.mark.skipif(sys.version_info < (3, 12), reason="PEP 695 syntax needs Python 3.12")
def test_type_parameter_nodes_are_in_the_table():  # pragma: no cover - only on 3.12+
    names = tok.token_names(tok.tokenize("type A[T] = list[T]\n"))
    assert "TypeAlias" in names and "TypeVar" in names and "UNK" not in names


def test_text_vocabulary_sees_comments_and_docstrings():
    from wmkit_code import text_tokens
    from wmkit_code.domain import CodeDomain

    old = 'def f(x):\n    """Add one."""\n    return x + 1  # fast path\n'
    doc = 'def f(x):\n    """Add two."""\n    return x + 1  # fast path\n'
    comment = 'def f(x):\n    """Add one."""\n    return x + 1  # slow path\n'
    ast_only = CodeDomain({"tokens": "ast"})
    text = CodeDomain({"tokens": "ast_text"})
    # the AST vocabulary cannot see either edit; the text vocabulary sees both
    assert ast_only.tokenize(old) == ast_only.tokenize(doc) == ast_only.tokenize(comment)
    assert len({tuple(text.tokenize(s)) for s in (old, doc, comment)}) == 3
    tokens = text.tokenize(old)
    # the AST tokens come first, unchanged; then the words of the docstring and the comment
    assert tokens[:-1][:len(ast_only.tokenize(old)) - 1] == ast_only.tokenize(old)[:-1]
    names = text_tokens.token_names(tokens)
    assert names.count("STRING") == 1 and names.count("COMMENT") == 1 and names[-1] == "EOS"
    assert text_tokens.word_tokens("Fast path") == text_tokens.word_tokens("fast PATH")
    assert text.vocab.version == "code-ast-text-1" and ast_only.vocab.version == "code-ast-1"
    assert max(tokens) < text.vocab.size and text.vocab.size == ast_only.vocab.size + 2 + 512
    assert text.fingerprint() != ast_only.fingerprint()
    # a syntax error stays [BOS, PARSE_ERROR, EOS]
    assert text.tokenize("def (:") == ast_only.tokenize("def (:")
    transition = text.transition({"old_contents": old, "new_contents": doc})
    assert transition.before != transition.after
