"""Alembic environment: migrations run against the connection MLPE hands over (see db.py)."""

from alembic import context
from sqlmodel import SQLModel

from mlpe_core.store import models  # noqa: F401  (registers the tables)

config = context.config
target_metadata = SQLModel.metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:  # `alembic` run by hand with -x url=...
        from sqlalchemy import create_engine

        url = context.get_x_argument(as_dictionary=True).get("url", "sqlite:///data/mlpe.db")
        with create_engine(url).connect() as conn:
            _migrate(conn)
            conn.commit()
        return
    _migrate(connection)


def _migrate(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


run()
