"""The ``sql`` agent registry: registrations in SQLite or PostgreSQL (SQLAlchemy asyncio,
``aiosqlite`` / ``asyncpg``), so every process and machine pointed at one database shares
one registry.  A terms table indexes capabilities, skills and tags: discovery is one
indexed join, whatever the number of agents."""

from __future__ import annotations

import builtins
import copy
import json
from typing import Any

import attrs
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from neuroflow.a2a import AgentRegistration
from neuroflow.config import file_relative
from neuroflow.errors import ConfigError

#: How many parsed registrations a backend keeps (keyed by their stored JSON).
_PARSED_MAX = 50_000


def tables(prefix: str) -> tuple[sa.MetaData, sa.Table, sa.Table]:
    """The registry's two tables, named with ``prefix``: agents, and their terms."""
    metadata = sa.MetaData()
    agents = sa.Table(
        f"{prefix}agents", metadata,
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("last_seen", sa.Float, nullable=False),
        sa.Column("ttl", sa.Float, nullable=True),
    )
    terms = sa.Table(
        f"{prefix}agent_terms", metadata,
        sa.Column("term", sa.String(256), nullable=False),
        sa.Column("agent_id", sa.String(128),
                  sa.ForeignKey(f"{prefix}agents.id", ondelete="CASCADE"), nullable=False),
        sa.PrimaryKeyConstraint("term", "agent_id"),
    )
    sa.Index(f"{prefix}agent_terms_agent", terms.c.agent_id)
    return metadata, agents, terms


def _check_url(_obj: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, str) or not value.startswith(
            ("sqlite://", "sqlite+aiosqlite://", "postgresql://", "postgresql+asyncpg://",
             "postgres://")):
        raise ConfigError(f"{attribute.name}: expected a sqlite:/// or postgresql:// URL, "
                          f"got {value!r}")


def _check_prefix(_obj: Any, attribute: attrs.Attribute, value: Any) -> None:
    import re

    if not isinstance(value, str) or not re.fullmatch(r"[a-z][a-z0-9_]{0,30}", value):
        raise ConfigError(f"{attribute.name}: expected lower-case letters, digits and _ "
                          f"(starting with a letter, at most 31), got {value!r}")


def _positive(_obj: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                              or value <= 0):
        raise ConfigError(f"{attribute.name}: expected a number > 0, got {value!r}")


@attrs.frozen(kw_only=True)
class SQLRegistryConfig:
    """``[registry.sql]``.

    Attributes:
        url: ``sqlite:///agents.db`` (relative to the configuration file's folder) or
            ``postgresql://user@host/db``.
        default_ttl_seconds: how long a registration without its own ``ttl_seconds``
            stays alive without a heartbeat (``None``: until unregistered).
        table_prefix: the tables are ``<prefix>agents`` and ``<prefix>agent_terms``.
    """

    url: str = file_relative("sqlite-url", default="sqlite:///neuroflow-agents.db",
                             validator=_check_url)
    default_ttl_seconds: float | None = attrs.field(default=None, validator=_positive)
    table_prefix: str = attrs.field(default="neuroflow_", validator=_check_prefix)


def _async_url(url: str) -> str:
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///"):]
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        return "postgresql+asyncpg://" + url[len("postgresql://"):]
    return url


class SQLRegistry:
    """An :class:`~neuroflow.a2a.AgentRegistryBackend` on one SQL database."""

    def __init__(self, config: SQLRegistryConfig | None = None) -> None:
        self.config = config or SQLRegistryConfig()
        self._metadata, self.agents, self.terms = tables(self.config.table_prefix)
        self._engine: AsyncEngine | None = None
        self._parsed: dict[str, AgentRegistration] = {}

    async def _db(self) -> AsyncEngine:
        if self._engine is None:
            url = _async_url(self.config.url)
            engine = create_async_engine(url, pool_pre_ping=False)
            if url.startswith("sqlite"):
                @sa.event.listens_for(engine.sync_engine, "connect")
                def _pragmas(dbapi_connection: Any, _record: Any) -> None:
                    cursor = dbapi_connection.cursor()
                    cursor.execute("PRAGMA foreign_keys=ON")
                    cursor.execute("PRAGMA journal_mode=WAL")
                    cursor.execute("PRAGMA busy_timeout=5000")
                    cursor.close()
            async with engine.begin() as connection:
                await connection.run_sync(self._metadata.create_all)
            self._engine = engine
        return self._engine

    def _alive(self, now: float) -> Any:
        ttl = sa.func.coalesce(self.agents.c.ttl, sa.literal(self.config.default_ttl_seconds,
                                                        sa.Float))
        return sa.or_(ttl.is_(None), self.agents.c.last_seen + ttl >= now)

    async def put(self, registration: AgentRegistration) -> None:
        """Add or replace ``registration`` and its terms, in one transaction."""
        engine = await self._db()
        data = json.dumps(registration.to_dict())
        async with engine.begin() as connection:
            agents, terms = self.agents, self.terms
            await connection.execute(terms.delete().where(terms.c.agent_id == registration.id))
            await connection.execute(agents.delete().where(agents.c.id == registration.id))
            await connection.execute(self.agents.insert().values(
                id=registration.id, data=data, last_seen=registration.last_seen,
                ttl=registration.ttl_seconds))
            terms = sorted(registration.terms())
            if terms:
                await connection.execute(self.terms.insert(), [
                    {"term": term[:256], "agent_id": registration.id} for term in terms])

    async def put_many(self, registrations: builtins.list[AgentRegistration]) -> None:
        """Add many registrations in one transaction (bulk loading)."""
        engine = await self._db()
        ids = [r.id for r in registrations]
        async with engine.begin() as connection:
            await connection.execute(self.terms.delete().where(self.terms.c.agent_id.in_(ids)))
            await connection.execute(self.agents.delete().where(self.agents.c.id.in_(ids)))
            await connection.execute(self.agents.insert(), [
                {"id": r.id, "data": json.dumps(r.to_dict()), "last_seen": r.last_seen,
                 "ttl": r.ttl_seconds} for r in registrations])
            rows = [{"term": t[:256], "agent_id": r.id} for r in registrations
                    for t in sorted(r.terms())]
            if rows:
                await connection.execute(self.terms.insert(), rows)

    async def remove(self, agent_id: str) -> bool:
        """Drop ``agent_id``."""
        engine = await self._db()
        async with engine.begin() as connection:
            agents, terms = self.agents, self.terms
            await connection.execute(terms.delete().where(terms.c.agent_id == agent_id))
            result = await connection.execute(agents.delete().where(agents.c.id == agent_id))
        return bool(result.rowcount)

    def _load(self, data: str, last_seen: float) -> AgentRegistration:
        """The registration stored as ``data``; parsed once per distinct ``data``."""
        cached = self._parsed.get(data)
        if cached is None:
            cached = AgentRegistration.from_dict(json.loads(data))
            if len(self._parsed) >= _PARSED_MAX:
                self._parsed.clear()
            self._parsed[data] = cached
        if cached.last_seen == last_seen:
            return cached
        beat = copy.copy(cached)  # the same checked fields, a later heartbeat
        object.__setattr__(beat, "last_seen", last_seen)
        return beat

    async def get(self, agent_id: str) -> AgentRegistration | None:
        """The registration ``agent_id``, or ``None``."""
        engine = await self._db()
        async with engine.connect() as connection:
            agents = self.agents
            row = (await connection.execute(
                sa.select(agents.c.data, agents.c.last_seen).where(agents.c.id == agent_id)
            )).first()
        return None if row is None else self._load(row.data, row.last_seen)

    async def list(self, now: float | None = None) -> builtins.list[AgentRegistration]:
        """Every registration alive at ``now``, by id."""
        engine = await self._db()
        query = sa.select(self.agents.c.data, self.agents.c.last_seen).order_by(self.agents.c.id)
        if now is not None:
            query = query.where(self._alive(now))
        async with engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        return [self._load(row.data, row.last_seen) for row in rows]

    async def find(self, term: str, now: float) -> builtins.list[AgentRegistration]:
        """Registrations alive at ``now`` found by ``term``, by id."""
        engine = await self._db()
        query = (sa.select(self.agents.c.data, self.agents.c.last_seen)
                 .join(self.terms, self.terms.c.agent_id == self.agents.c.id)
                 .where(self.terms.c.term == term.strip().lower(), self._alive(now))
                 .order_by(self.agents.c.id))
        async with engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        return [self._load(row.data, row.last_seen) for row in rows]

    async def touch(self, agent_id: str, when: float) -> bool:
        """Record a heartbeat."""
        engine = await self._db()
        async with engine.begin() as connection:
            result = await connection.execute(
                self.agents.update().where(self.agents.c.id == agent_id).values(last_seen=when))
        return bool(result.rowcount)

    async def purge(self, now: float) -> int:
        """Drop registrations not alive at ``now``."""
        engine = await self._db()
        async with engine.begin() as connection:
            dead = [row.id for row in (await connection.execute(
                sa.select(self.agents.c.id).where(sa.not_(self._alive(now))))).all()]
            if dead:
                await connection.execute(self.terms.delete().where(self.terms.c.agent_id.in_(dead)))
                await connection.execute(self.agents.delete().where(self.agents.c.id.in_(dead)))
        return len(dead)

    async def aclose(self) -> None:
        """Dispose of the connection pool."""
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None
