"""``neuroflow doctor``: what this machine can enforce, as a list of checks.

Plugins add their own checks through the ``neuroflow_doctor_checks`` hook.
"""

from __future__ import annotations

import attrs


@attrs.frozen
class Check:
    """One capability and whether this machine has it.

    Attributes:
        name: what is checked ("user namespaces", "pids cgroup (v1)").
        ok: whether it is present and usable.
        detail: what was found, or what to do about it when ``ok`` is false.
        required: whether the active configuration needs it (a missing required
            capability makes ``neuroflow doctor`` exit non-zero).
    """

    name: str
    ok: bool
    detail: str = ""
    required: bool = False
