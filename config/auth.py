"""API token authentication: DRF's, with the token and its user read in one
hand-written query (every API request pays it; the ORM's query compile cost three times
the query itself here)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from rest_framework import authentication, exceptions
from rest_framework.authtoken.models import Token

from labeling.rows import Columns, sql_row

_USER_COLUMNS: Columns | None = None


def _user_columns() -> Columns:
    global _USER_COLUMNS
    if _USER_COLUMNS is None:
        _USER_COLUMNS = Columns(get_user_model(), "u")
    return _USER_COLUMNS


class TokenAuthentication(authentication.TokenAuthentication):
    """`Authorization: Token <key>`, as DRF's TokenAuthentication (same errors)."""

    def authenticate_credentials(self, key: str) -> tuple[Any, Token]:
        columns = _user_columns()
        user_table = get_user_model()._meta.db_table
        row = sql_row(
            f"SELECT {columns.sql} FROM {Token._meta.db_table} t "  # noqa: S608
            f"JOIN {user_table} u ON u.id = t.user_id WHERE t.key = %s",
            [key],
        )
        if row is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        (user,) = columns.build(row)
        if not user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        return user, Token(key=key, user=user)
