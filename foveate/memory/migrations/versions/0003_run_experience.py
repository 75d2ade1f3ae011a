"""Structured experience: what a run's search measured (``runs.experience``, JSON) and the kind of question
it answered (``runs.question_kind``, indexed: experience is recalled by kind first).

Both columns are nullable with no default, so adding them leaves every existing row as it is (no
experience recorded) and rewrites no table on SQLite or PostgreSQL.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("question_kind", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("experience", sa.Text(), nullable=True))
        batch.create_index("ix_runs_question_kind", ["namespace", "question_kind"])


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_index("ix_runs_question_kind")
        batch.drop_column("experience")
        batch.drop_column("question_kind")
