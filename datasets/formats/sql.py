"""SQL: write a version into a table of any database SQLAlchemy reaches (PostgreSQL, MySQL,
SQLite, SQL Server ...), given its URL. No file: the export's result is the table.

Options (besides `splits` and `classes`; `images` is ignored, files are always URLs):

- `url` (required): a SQLAlchemy URL, e.g. `postgresql+psycopg://user:pw@host:5432/db`
  (`postgres://` and `postgresql://` use psycopg 3), `sqlite:////srv/exports/data.db`. The
  driver must be installed on the server. The URL is the export's secret: stored
  encrypted until the build ends, then erased; the export's public options keep it
  without password and query (`postgresql://user:***@host:5432/db`).
- `table` (required): a plain identifier (`[A-Za-z_][A-Za-z0-9_]*`, at most 63
  characters), optionally schema-qualified (`analytics.items`).
- `if_exists`: `fail` (default: refuse a table that exists), `replace` (drop it and
  create it again, in the same transaction as the rows where the database's DDL is
  transactional: PostgreSQL, SQLite, SQL Server), `append` (add the rows; the table must
  have our columns).

The table (created when missing) has one row per item of the selected splits, in item-id
order, and no primary key (appending a version twice gives two copies):

    version_id   varchar(64)  the version's id
    item_id      bigint
    external_id  text
    file_name    text         the item's path in a file export
    sha256       varchar(64)
    split        varchar(8)   train / val / test
    tags         text         JSON list
    width        integer      image pixels (null for texts)
    height       integer
    url          text         stable URL of the file (redirects to a fresh presigned URL)
    label_names  text         the label's class names, each once, ", "-joined (null when
                              unlabelled, "" for "nothing here"); `label` is the exact one
    label        text         JSON: labeling/results.py regions (exported classes only)
    metadata     text         JSON object, keys sorted
    text         text         text datasets only: the item's text

Rows are inserted BATCH_ROWS at a time (executemany) in one transaction: a failure
leaves the target as it was (for `replace` where DDL is transactional). A target that
cannot be reached, refuses the login or the statements raises SqlTargetError naming the
database (password hidden); the export is marked failed with that message.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    inspect,
)
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import NullPool
from sqlalchemy.schema import DropTable

from datasets.errors import DatasetError
from datasets.formats.base import ExportContext, InvalidExport
from datasets.manifest import label_names

IF_EXISTS = ("fail", "replace", "append")
# 63: PostgreSQL's identifier limit, the smallest of the common databases'.
TABLE_NAME = re.compile(r"(?:([A-Za-z_][A-Za-z0-9_]{0,62})\.)?([A-Za-z_][A-Za-z0-9_]{0,62})")
# Rows per executemany: few round trips, a bounded batch in memory.
BATCH_ROWS = 1_000
# Seconds to wait for a connection before saying the target cannot be reached.
CONNECT_TIMEOUT = 15


class SqlTargetError(DatasetError):
    """The target database could not be reached or refused the rows (the message names
    it, password hidden, and says why)."""

    code = "sql_target_error"


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _url(raw: str) -> URL:
    url = make_url(raw)
    driver = url.drivername
    if driver == "postgres" or driver.startswith("postgres+"):
        url = url.set(drivername="postgresql" + driver[len("postgres") :])
    return url


def _public(url: URL) -> str:
    return url.set(query={}).render_as_string(hide_password=True)


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip()
    return text.splitlines()[0] if text else type(orig).__name__


def items_table(name: str, schema: str | None, *, text: bool) -> Table:
    """The target table's definition (see the module docstring)."""
    columns = [
        Column("version_id", String(64), nullable=False),
        Column("item_id", BigInteger, nullable=False),
        Column("external_id", Text, nullable=False),
        Column("file_name", Text, nullable=False),
        Column("sha256", String(64), nullable=False),
        Column("split", String(8), nullable=False),
        Column("tags", Text, nullable=False),
        Column("width", Integer),
        Column("height", Integer),
        Column("url", Text, nullable=False),
        Column("label_names", Text),
        Column("label", Text),
        Column("metadata", Text, nullable=False),
    ]
    if text:
        columns.append(Column("text", Text))
    return Table(name, MetaData(), *columns, schema=schema)


class SqlExport:
    name = "sql"
    title = "SQL table (any database SQLAlchemy reaches)"
    kinds = frozenset({"image", "text"})
    extension = "sql"
    content_type = "application/octet-stream"
    # Writing to a database is an action, not a file: every request builds.
    cached = False
    extra_options = ("url", "table", "if_exists")

    def extra_options_check(self, raw: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """Check url, table and if_exists; return the public options (url without its
        password and query) and the full URL as the secret. InvalidExport otherwise."""
        raw_url = raw.get("url")
        if not isinstance(raw_url, str) or not raw_url.strip():
            raise InvalidExport(
                "options.url is required: the SQLAlchemy URL of the target database, e.g. "
                "postgresql+psycopg://user:password@host:5432/db.",
                field="options.url",
            )
        try:
            url = _url(raw_url.strip())
        except ArgumentError as exc:
            raise InvalidExport(
                "options.url is not a database URL (dialect+driver://user:password@host:port"
                "/database).",
                field="options.url",
            ) from exc
        try:
            dialect = url.get_dialect()
        except NoSuchModuleError as exc:
            raise InvalidExport(
                f"options.url names the database kind {url.drivername!r}, which this server "
                "does not know (postgresql, mysql, sqlite, mssql, oracle ...).",
                field="options.url",
            ) from exc
        try:
            dialect.import_dbapi()
        except ImportError as exc:
            raise InvalidExport(
                f"options.url needs the driver {url.get_driver_name()!r}, which is not "
                "installed on this server.",
                field="options.url",
            ) from exc
        if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
            raise InvalidExport(
                "options.url names an in-memory SQLite database, which would vanish with the "
                "export: give a file, sqlite:////path/to/file.db.",
                field="options.url",
            )
        table = raw.get("table")
        if not isinstance(table, str) or TABLE_NAME.fullmatch(table) is None:
            raise InvalidExport(
                "options.table is required: a table name of letters, digits and _ (not "
                "starting with a digit, at most 63), optionally schema.table; "
                f"got {table!r}.",
                field="options.table",
            )
        if_exists = raw.get("if_exists", "fail")
        if if_exists not in IF_EXISTS:
            raise InvalidExport(
                f"options.if_exists is one of {', '.join(IF_EXISTS)}; got {if_exists!r}.",
                field="options.if_exists",
            )
        if url.get_backend_name() == "sqlite":
            # The server writes the file: only under the directory set aside for it, so a
            # URL cannot overwrite the server's own files.
            allowed = Path(settings.EXPORT_SQLITE_DIR).resolve()
            target = Path(str(url.database)).resolve()
            if not target.is_relative_to(allowed):
                raise InvalidExport(
                    f"options.url: SQLite files are written under {allowed} on this server "
                    f"(EXPORT_SQLITE_DIR), e.g. sqlite:///{allowed}/data.db; not {target}.",
                    field="options.url",
                )
        public = {"url": _public(url), "table": table, "if_exists": if_exists}
        return public, url.render_as_string(hide_password=False)

    def write(self, ctx: ExportContext, out: IO[bytes]) -> None:
        """Insert the rows into the target table; write nothing to `out`."""
        if not ctx.secret:
            raise SqlTargetError("The target database URL is missing (it is erased once used).")
        extra = ctx.options.extra
        url = _url(ctx.secret)
        where = _public(url)
        match = TABLE_NAME.fullmatch(extra["table"])
        assert match is not None  # checked by extra_options_check
        schema, name = match.group(1), match.group(2)
        text = ctx.dataset_kind == "text"
        table = items_table(name, schema, text=text)
        engine = create_engine(url, poolclass=NullPool, **_connect_args(url))
        if url.get_backend_name() == "sqlite":
            _transactional_sqlite(engine)
        try:
            try:
                connection = engine.connect()
            except SQLAlchemyError as exc:
                raise SqlTargetError(
                    f"Cannot connect to the target database {where}: {_reason(exc)}"
                ) from exc
            try:
                with connection, connection.begin():
                    self._prepare(connection, table, extra["if_exists"], where)
                    self._insert(ctx, connection, table, text=text)
            except SQLAlchemyError as exc:
                raise SqlTargetError(
                    f"Writing table {extra['table']} to {where} failed (nothing was "
                    f"written): {_reason(exc)}"
                ) from exc
        finally:
            engine.dispose()

    def _prepare(self, connection: Connection, table: Table, if_exists: str, where: str) -> None:
        inspector = inspect(connection)
        full_name = table.fullname
        if not inspector.has_table(table.name, schema=table.schema):
            table.create(connection)
            return
        if if_exists == "fail":
            raise SqlTargetError(
                f"Table {full_name} already exists in {where}; ask again with "
                "if_exists=replace to overwrite it, or if_exists=append to add the rows."
            )
        if if_exists == "replace":
            connection.execute(DropTable(Table(table.name, MetaData(), schema=table.schema)))
            table.create(connection)
            return
        existing = {column["name"] for column in inspector.get_columns(table.name, table.schema)}
        missing = [column.name for column in table.columns if column.name not in existing]
        if missing:
            raise SqlTargetError(
                f"Table {full_name} in {where} has no column {', '.join(missing)}: append "
                "needs a table this export created (or if_exists=replace)."
            )

    def _insert(
        self, ctx: ExportContext, connection: Connection, table: Table, *, text: bool
    ) -> None:
        version_id = ctx.version_id
        insert = table.insert()
        rows = ctx.rows_with_content() if text else ((row, b"") for row in ctx.rows())
        batch: list[dict[str, Any]] = []
        for row, content in rows:
            label = row["label"]
            if label is None:
                names = label_json = None
            else:
                regions = ctx.regions(label)
                label_json = _dumps(regions)
                names = ", ".join(dict.fromkeys(label_names(regions)))
            record = {
                "version_id": version_id,
                "item_id": row["id"],
                "external_id": row["external_id"],
                "file_name": row["file_name"],
                "sha256": row["sha256"],
                "split": row["split"],
                "tags": _dumps(row["tags"]),
                "width": row["width"],
                "height": row["height"],
                "url": ctx.image_url(row),
                "label_names": names,
                "label": label_json,
                "metadata": _dumps(row["metadata"]),
            }
            if text:
                record["text"] = content.decode("utf-8", errors="replace")
            batch.append(record)
            if len(batch) >= BATCH_ROWS:
                connection.execute(insert, batch)
                batch = []
        if batch:
            connection.execute(insert, batch)


def _connect_args(url: URL) -> dict[str, Any]:
    backend = url.get_backend_name()
    if backend == "postgresql":
        return {"connect_args": {"connect_timeout": CONNECT_TIMEOUT}}
    if backend == "sqlite":
        return {"connect_args": {"timeout": CONNECT_TIMEOUT}}
    return {}


def _transactional_sqlite(engine: Any) -> None:
    """Let SQLite's DDL (DROP/CREATE TABLE) join the transaction: pysqlite otherwise runs
    it outside one (SQLAlchemy's documented recipe, "Serializable isolation / Savepoints
    / Transactional DDL")."""

    @event.listens_for(engine, "connect")
    def _no_implicit_transactions(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN")


EXPORT = SqlExport()
