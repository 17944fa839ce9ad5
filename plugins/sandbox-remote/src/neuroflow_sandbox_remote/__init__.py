"""NeuroFlow's ``remote`` isolation backend: sandboxed commands spread over a Ray cluster.

The caller judges every command (guards, audit log) and sends only data -- command,
arguments, stdin, environment, limits and a digest of the sandbox configuration -- to one
actor per node, which runs it in a warm local backend (``process``, ``namespace``,
``wasm``...) built by name on that node.  See the README's "Remote sandbox" section.
"""
