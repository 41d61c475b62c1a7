"""The ``code`` domain: registration, options, transitions."""

import subprocess
import sys

import numpy as np
import pytest

from wmkit.domain import Domain, SkipRow
from wmkit.errors import RecipeError
from wmkit_code import tokenizer as tok
from wmkit_code.domain import CodeDomain


def test_class_facts():
    d = CodeDomain()
    assert isinstance(d, Domain)
    assert d.name == "code" and d.default_source == "embedded:stdlib+git" and d.default_recipe == "quickstart"
    assert d.vocab is tok.VOCAB and d.vocab.version == "code-ast-1"
    assert d.action_dim == 15 and CodeDomain({"action": "7d"}).action_dim == 7
    assert d.label_names == {"edit_type": ["ADD", "DELETE", "MODIFY"], "scope": ["FUNC", "CLASS", "MODULE"],
                             "joint": [f"{t}/{s}" for t in ("ADD", "DELETE", "MODIFY") for s in ("FUNC", "CLASS", "MODULE")]}
    assert d.fingerprint() != CodeDomain({"action": "7d"}).fingerprint()
    assert "code-ast-1" in d.fingerprint()
    with pytest.raises(RecipeError, match="data.action"):
        CodeDomain({"action": "9d"})


def test_file_filters():
    d = CodeDomain()
    assert d.accepts_file("pkg/mod.py") and not d.accepts_file("README.md") and not d.accepts_file("x.pyc")
    assert d.accepts_text("a.py", "x = 1", "x = 2") and not d.accepts_text("a.py", "x\x00", "y")


def test_transition_tokens_action_and_labels():
    d = CodeDomain()
    old, new = "def f():\n    return 1\n", "def f():\n    return 2\n\ndef g():\n    pass\n"
    tr = d.transition({"old_contents": old, "new_contents": new, "commit": "c"})
    assert tr.before == tok.tokenize(old) and tr.after == tok.tokenize(new)
    assert tr.action.shape == (15,) and tr.action[2] == 1.0 and tr.action[3] == 1.0
    assert tr.labels == {"edit_type": 2, "scope": 0, "joint": 6}
    # the same text again (successive edits share a side) gives identical results from the memo
    tr2 = d.transition({"old_contents": new, "new_contents": old})
    assert tr2.before == tr.after and tr2.after == tr.before
    with pytest.raises(SkipRow, match="unchanged"):
        d.transition({"old_contents": old, "new_contents": old})
    bad = d.transition({"old_contents": "def (:\n", "new_contents": "x = 1\n"})
    assert bad.before == [tok.BOS, tok.PARSE_ERROR, tok.EOS] and bad.labels["scope"] == 2


def test_plugin_registration_is_light_and_complete():
    calls = []

    def register(name, target, **kwargs):
        calls.append((name, target, kwargs))

    from wmkit_code import plugin

    plugin.wmkit_register_domains(register)
    (name, target, info), = calls
    assert name == "code" and target == "wmkit_code.domain:CodeDomain"
    assert info["default_source"] == "embedded:stdlib+git" and info["default_recipe"] == "quickstart"
    fields = info["options"].fields  # the one declaration: the domain reads its settings through it
    assert set(fields) == {"action", "tokens", "embedded_pairs"} and fields["action"].choices == ("7d", "15d")
    assert fields["tokens"].choices == ("ast", "ast_text") and CodeDomain().settings.__class__ is info["options"]
    assert fields["action"].default == CodeDomain().settings.action == "15d"
    code = ("import sys, wmkit_code.plugin; "
            "print(','.join(m for m in ('torch', 'datasets', 'transformers', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == ""


def test_host_builds_the_domain_with_options(wmkit_host):
    assert "code" in wmkit_host.names("domain")
    domain = wmkit_host.domain("code", {"action": "7d"})
    assert isinstance(domain, CodeDomain) and domain.action_dim == 7
    tr = domain.transition({"old_contents": "x = 1\n", "new_contents": "x = 1\ny = 2\n"})
    assert np.asarray(tr.action).shape == (7,)
