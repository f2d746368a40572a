"""uploaded exercise versions stored in the database by content hash

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-08 02:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "package_archives",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("sha256"),
    )
    with op.batch_alter_table("exercise_packages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("archive_sha256", sa.String(length=64), nullable=True))
        batch_op.create_foreign_key(
            "fk_exercise_packages_archive_sha256", "package_archives", ["archive_sha256"], ["sha256"]
        )


def downgrade() -> None:
    with op.batch_alter_table("exercise_packages", schema=None) as batch_op:
        batch_op.drop_constraint("fk_exercise_packages_archive_sha256", type_="foreignkey")
        batch_op.drop_column("archive_sha256")
    op.drop_table("package_archives")
