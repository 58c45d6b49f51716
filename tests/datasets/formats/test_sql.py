"""SQL export into a real PostgreSQL database of its own and a SQLite file: created,
appended, replaced, refused; options checked (url kept secret); unreachable targets."""

from __future__ import annotations

import io
import json
import sqlite3

import psycopg
import pytest
from django.conf import settings
from sqlalchemy import create_engine
from sqlalchemy.exc import OperationalError

from datasets.formats import export_format
from datasets.formats.base import InvalidExport
from datasets.formats.sql import SqlExport, SqlTargetError
from datasets.secrets import credentials_decrypt
from datasets.services.exports import export_build, export_options_for, export_request
from tests.datasets.formats.conftest import URL_BASE, version_of

pytestmark = pytest.mark.django_db

SQL = export_format("sql")


@pytest.fixture(autouse=True)
def _sqlite_dir(settings, tmp_path):
    settings.EXPORT_SQLITE_DIR = str(tmp_path)


def test_sqlite_files_only_under_the_directory_set_aside(tmp_path):
    with pytest.raises(InvalidExport, match="EXPORT_SQLITE_DIR") as caught:
        export_options_for(SQL, {"url": "sqlite:////etc/passwd.db", "table": "t"})
    assert caught.value.field == "options.url"
    with pytest.raises(InvalidExport, match="EXPORT_SQLITE_DIR"):
        export_options_for(SQL, {"url": f"sqlite:///{tmp_path}/../x.db", "table": "t"})
    options, secret = export_options_for(SQL, {"url": f"sqlite:///{tmp_path}/a.db", "table": "t"})
    assert secret == f"sqlite:///{tmp_path}/a.db" and options.extra["table"] == "t"


def box(label, x=1):
    return {
        "type": "rectanglelabels",
        "value": {"x": x, "y": 2, "width": 3, "height": 4, "rectanglelabels": [label]},
    }


def connect_params(dbname: str) -> dict:
    db = settings.DATABASES["default"]
    params = {
        "dbname": dbname,
        "host": db.get("HOST") or None,
        "port": db.get("PORT") or None,
        "user": db.get("USER") or None,
        "password": db.get("PASSWORD") or None,
    }
    return {key: value for key, value in params.items() if value is not None}


@pytest.fixture
def pg_target():
    """A PostgreSQL database of the test's own (dropped after): (SQLAlchemy URL, name)."""
    db = settings.DATABASES["default"]
    name = f"{db['NAME']}_sqltarget"[:63]
    with psycopg.connect(autocommit=True, **connect_params("postgres")) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    yield f"postgresql+psycopg://{user}{password}@{host}:{port}/{name}", name
    with psycopg.connect(autocommit=True, **connect_params("postgres")) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def export_sql(version, **options) -> bytes:
    checked, secret = export_options_for(SQL, options)
    out = io.BytesIO()
    export_build(
        version=version, fmt=SQL, options=checked, out=out, secret=secret, url_base=URL_BASE
    )
    return out.getvalue()


def pg_rows(name: str, sql: str) -> list[tuple]:
    with psycopg.connect(**connect_params(name)) as conn:
        return conn.execute(sql).fetchall()


def test_sql_export_creates_appends_replaces_and_refuses_in_postgresql(ops, pg_target):
    url, name = pg_target
    labels = [[box("car"), box("bus", x=5), box("car", x=9)], None, []]
    version = version_of(ops, labels=labels, splits=["train", "val", "train"])
    assert export_sql(version, url=url, table="items") == b""  # no file
    rows = pg_rows(
        name,
        "SELECT version_id, item_id, external_id, file_name, split, tags, width, height, "
        "url, label_names, label, metadata FROM items ORDER BY item_id",
    )
    assert len(rows) == 3
    first = rows[0]
    assert first[0] == version.pk and first[2] == "image-000.png" == first[3]
    assert first[4:8] == ("train", "[]", 64, 48)
    assert first[8].startswith(f"{URL_BASE}/api/v1/versions/{version.pk}/assets/")
    assert first[9] == "car, bus"
    assert json.loads(first[10]) == labels[0] and json.loads(first[11]) == {}
    assert rows[1][9:11] == (None, None) and rows[2][9:11] == ("", "[]")
    columns = pg_rows(
        name,
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'items' "
        "ORDER BY ordinal_position",
    )
    assert "text" not in {c for (c,) in columns}

    with pytest.raises(SqlTargetError, match="Table items already exists .*if_exists=replace"):
        export_sql(version, url=url, table="items")
    export_sql(version, url=url, table="items", if_exists="append")
    assert pg_rows(name, "SELECT count(*) FROM items") == [(6,)]
    export_sql(version, url=url, table="items", if_exists="replace", splits=["train"])
    assert pg_rows(name, "SELECT count(*), min(split), max(split) FROM items") == [
        (2, "train", "train")
    ]


def test_sql_export_into_a_schema_and_refuses_a_foreign_table_to_append_to(ops, pg_target):
    url, name = pg_target
    with psycopg.connect(autocommit=True, **connect_params(name)) as conn:
        conn.execute("CREATE SCHEMA analytics")
        conn.execute("CREATE TABLE analytics.other (id int)")
    version = version_of(ops, labels=[[box("car")]])
    export_sql(version, url=url, table="analytics.items")
    assert pg_rows(name, "SELECT count(*) FROM analytics.items") == [(1,)]
    with pytest.raises(SqlTargetError, match="has no column version_id, item_id"):
        export_sql(version, url=url, table="analytics.other", if_exists="append")
    assert pg_rows(name, "SELECT count(*) FROM analytics.other") == [(0,)]


def test_sql_export_of_texts_into_sqlite(ops, tmp_path):
    text = "שלום 👋 Zoë"
    span = {
        "type": "labels",
        "value": {"start": 7, "end": 10, "text": "Zoë", "labels": ["PER"]},
    }
    version = version_of(
        ops, kind="text", contents=[text.encode(), b"second"], labels=[[span], None]
    )
    path = tmp_path / "target.db"
    url = f"sqlite:///{path}"
    export_sql(version, url=url, table="texts")
    export_sql(version, url=url, table="texts", if_exists="replace")
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT text, label_names, label, width FROM texts ORDER BY item_id"
        ).fetchall()
    assert rows[0][0] == text and rows[0][0][7:10] == "Zoë"
    assert rows[0][1] == "PER" and json.loads(rows[0][2]) == [span] and rows[0][3] is None
    assert rows[1] == ("second", None, None, None)
    export_sql(version, url=url, table="texts", if_exists="append", classes=["LOC"])
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM texts").fetchone() == (4,)
        assert conn.execute("SELECT label FROM texts ORDER BY rowid").fetchall()[2] == ("[]",)


def test_sql_export_to_an_unreachable_database_says_so(ops):
    version = version_of(ops, labels=[None])
    with pytest.raises(SqlTargetError) as caught:
        export_sql(version, url="postgresql://someone:hunter2@127.0.0.1:1/nowhere", table="t")
    message = str(caught.value)
    assert message.startswith(
        "Cannot connect to the target database postgresql://someone:***@127.0.0.1:1/nowhere:"
    )
    assert "hunter2" not in message


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        ({"table": "t"}, "options.url", "options.url is required"),
        ({"url": "not a url", "table": "t"}, "options.url", "is not a database URL"),
        ({"url": "nosuchdb://h/x", "table": "t"}, "options.url", "'nosuchdb', which this"),
        ({"url": "sqlite://", "table": "t"}, "options.url", "in-memory SQLite"),
        ({"url": "sqlite:////tmp/x.db"}, "options.table", "options.table is required"),
        ({"url": "sqlite:////tmp/x.db", "table": "t; DROP TABLE x"}, "options.table", "letters"),
        ({"url": "sqlite:////tmp/x.db", "table": "a.b.c"}, "options.table", "schema.table"),
        ({"url": "sqlite:////tmp/x.db", "table": "1t"}, "options.table", "digit"),
        (
            {"url": "sqlite:////tmp/x.db", "table": "t", "if_exists": "upsert"},
            "options.if_exists",
            "fail, replace, append",
        ),
        (
            {"url": "sqlite:////tmp/x.db", "table": "t", "colour": 1},
            "options.colour",
            "Unknown option",
        ),
    ],
)
def test_sql_options_are_checked(options, field, message):
    with pytest.raises(InvalidExport, match=message) as caught:
        export_options_for(SQL, options)
    assert caught.value.field == field


def test_sql_url_is_a_secret_and_the_public_options_check_again():
    options, secret = export_options_for(
        SQL,
        {"url": "postgres://u:s3cret@db.example:5433/prod?sslmode=require", "table": "t"},
    )
    assert options.extra == {
        "url": "postgresql://u:***@db.example:5433/prod",
        "table": "t",
        "if_exists": "fail",
    }
    assert secret == "postgresql://u:s3cret@db.example:5433/prod?sslmode=require"
    # What the export job does with the stored (public) options: they pass again.
    again, _ = export_options_for(SQL, options.as_dict())
    assert again == options


@pytest.mark.django_db(transaction=True)
def test_sql_export_request_stores_the_url_encrypted_and_never_caches(ops, tmp_path):
    version = version_of(ops, labels=[[box("car")]])
    url = f"sqlite:///{tmp_path / 'x.db'}"
    options = {"url": url, "table": "t", "if_exists": "append"}
    first, building = export_request(
        version=version, fmt="sql", options=options, created_by=ops, submit=False
    )
    second, _ = export_request(
        version=version, fmt="sql", options=options, created_by=ops, submit=False
    )
    assert building and first.pk != second.pk  # an action, not a cached file
    assert first.options["url"] == url and first.options["table"] == "t"
    assert url not in first.secret and credentials_decrypt(first.secret) == {"secret": url}
    checked, _ = export_options_for(SQL, first.options)
    out = io.BytesIO()
    export_build(version=version, fmt=SQL, options=checked, out=out, secret=url, url_base=URL_BASE)
    with sqlite3.connect(tmp_path / "x.db") as conn:
        assert conn.execute("SELECT count(*), min(label_names) FROM t").fetchone() == (1, "car")


@pytest.mark.parametrize("target", ["sqlite", "postgresql"])
def test_sql_replace_that_fails_leaves_the_table_as_it_was(
    ops, tmp_path, monkeypatch, request, target
):
    if target == "sqlite":
        url = f"sqlite:///{tmp_path / 'x.db'}"
    else:
        url = request.getfixturevalue("pg_target")[0]
    version = version_of(ops, labels=[[box("car")]])
    export_sql(version, url=url, table="t")
    insert = SqlExport._insert

    def insert_then_fail(self, ctx, connection, table, *, text):
        insert(self, ctx, connection, table, text=text)
        raise OperationalError("INSERT INTO t", {}, Exception("disk full"))

    monkeypatch.setattr(SqlExport, "_insert", insert_then_fail)
    with pytest.raises(SqlTargetError, match=r"nothing was written\): disk full"):
        export_sql(version, url=url, table="t", if_exists="replace")
    engine = create_engine(url)
    with engine.connect() as conn:
        # Dropped, created and filled in the transaction that failed: the old table stays.
        assert conn.exec_driver_sql("SELECT count(*), min(label_names) FROM t").one() == (1, "car")
    engine.dispose()
