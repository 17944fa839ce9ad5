"""Files put on a sandboxed program's import path (never imported by the host).

``host.py`` is the guest side of :mod:`neuroflow.sandbox.host_channel`:
``from host import tools; tools.NAME(...)``.  It needs only the standard library.
"""

from __future__ import annotations

from pathlib import Path

#: The folder holding ``host.py``, to copy or bind into a sandbox.
FOLDER = Path(__file__).resolve().parent
