"""The ``code`` domain: Python commits as AST-token transitions (package ``wmkit_code``)."""
