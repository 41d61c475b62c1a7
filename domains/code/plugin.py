"""Registration of the ``code`` domain (imported by ``wmkit plugins``: keep it light)."""

import wmkit
from wmkit.options import Options
from wmkit.schema import Field

#: ``data.source = "default"``: seeded commits on the standard library's files plus the history of
#: the git repository in the working directory, when there is one (:mod:`wmkit_code.generator`)
DEFAULT_SOURCE = "embedded:stdlib+git"


class CodeOptions(Options):
    """The code domain's ``[data]`` options (declared once: the domain class reads them from here)."""

    action = Field(str, "15d", "edit action: the 7-D v1 vector or the 15-D rich vector (reference §2)",
                   choices=("7d", "15d"))
    tokens = Field(str, "ast", "state vocabulary: ast (code-ast-1, the reference's AST walk) or ast_text "
                   "(code-ast-text-1: also the words of comments and strings, so comment- and docstring-only "
                   "edits become visible transitions)", choices=("ast", "ast_text"))
    embedded_pairs = Field(int, 4000, "commits the embedded:stdlib generator yields (seeded edits of the "
                           "standard library's own files)", minimum=1, maximum=1_000_000)


@wmkit.hookimpl
def wmkit_register_domains(register):
    register(
        "code",
        "wmkit_code.domain:CodeDomain",
        options=CodeOptions,
        description="Python files before/after a commit: AST tokens, 7-D/15-D edit action (CodeWM 2)",
        default_source=DEFAULT_SOURCE,
        default_recipe="quickstart",
    )
