"""NeuroFlow memory stores on SQLAlchemy: ``sqlite`` (default) and ``postgres``.

The store classes live in :mod:`neuroflow_memory_sqlite.store`; this package's entry
point (:mod:`neuroflow_memory_sqlite.plugin`) only registers names, so importing it
does not import SQLAlchemy.
"""

__version__ = "0.1.0"
