"""Namespaces: every run and insight belongs to one (a user or project); existing rows to "default".

A column with a constant server default, so that adding it fills every existing row in place: on SQLite
the batch below is a plain ALTER TABLE ADD COLUMN (alembic copies a table only for changes SQLite's ALTER
cannot make), which is quick on a large memory and needs no second copy on disk; PostgreSQL adds such a
column without rewriting the table.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

DEFAULT_NAMESPACE = "default"  # foveate.memory.schema.DEFAULT_NAMESPACE when this was written; fixed here


def upgrade() -> None:
    for table in ("runs", "insights"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column(
                    "namespace", sa.String(length=128), server_default=DEFAULT_NAMESPACE, nullable=False
                )
            )
            batch.create_index(f"ix_{table}_namespace", ["namespace"])


def downgrade() -> None:
    for table in ("insights", "runs"):
        with op.batch_alter_table(table) as batch:
            batch.drop_index(f"ix_{table}_namespace")
            batch.drop_column("namespace")
