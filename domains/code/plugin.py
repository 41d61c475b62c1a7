"""Registration of the ``code`` domain (imported by ``wmkit plugins``: keep it light)."""

import wmkit
from wmkit.schema import Field


@wmkit.hookimpl
def wmkit_register_domains(register):
    register(
        "code",
        "wmkit_code.domain:CodeDomain",
        options={"action": Field(str, "15d", "edit action: the 7-D v1 vector or the 15-D rich vector (reference §2)",
                                 choices=("7d", "15d"))},
        description="Python files before/after a commit: AST tokens, 7-D/15-D edit action (CodeWM 2)",
        default_source="git:.",
        default_recipe="quickstart",
    )
