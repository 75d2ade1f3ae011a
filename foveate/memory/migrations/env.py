"""Alembic environment for the insight memory.

foveate runs migrations itself when a memory is opened (``foveate.memory.store``), handing the open
connection over in ``config.attributes["connection"]``; there is no alembic.ini. To write a new
revision by hand, see ``versions/`` for the pattern; ``render_as_batch`` keeps ALTERs working on SQLite.
"""

from __future__ import annotations

from alembic import context

from foveate.memory.schema import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reached if someone runs the alembic CLI without foveate
    raise RuntimeError("foveate's memory migrations run from foveate.memory.store, which passes a connection")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
