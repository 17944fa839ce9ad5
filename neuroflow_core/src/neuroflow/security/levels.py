"""Security levels: one knob that sets how strict every isolation backend and guard is."""

from __future__ import annotations

import enum


class SandboxSecurityLevel(str, enum.Enum):
    """How strict a sandbox and the guards around it are.

    * ``PERMISSIVE``: actions no rule covers are allowed; limits a machine cannot enforce
      are reported and skipped.
    * ``STANDARD``: actions no rule covers are allowed, limits must be enforced.
    * ``STRICT``: actions no rule covers are denied, limits must be enforced, network off.
    """

    PERMISSIVE = "permissive"
    STANDARD = "standard"
    STRICT = "strict"

    def __str__(self) -> str:
        return self.value
