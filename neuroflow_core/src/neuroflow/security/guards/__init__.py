"""The built-in guards: ``allowlist``, ``paths``, ``network`` and ``tools``.

Each guard module holds its config class (what ``[security.<name>]`` is checked against)
and the guard built from it.  They are registered in :mod:`neuroflow.security.builtin`.
"""
