"""NeuroFlow agent-to-agent on the official ``a2a-sdk`` (A2A protocol 1.0).

Transports ``jsonrpc``, ``http-json`` and ``grpc`` (kind ``transport``, ``[a2a] backend``)
call any A2A agent and serve NeuroFlow agents; the ``sql`` registry backend (kind
``registry``) shares registrations between processes through SQLite or PostgreSQL.
"""
