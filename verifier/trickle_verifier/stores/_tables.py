"""The tables every database backend keeps, in terms both share: the checks on a table's name
(it is interpolated into SQL) and on a stream's total, and the columns of a purchase row."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from ..purchases import Purchase

_IDENTIFIER = "[A-Za-z_][A-Za-z0-9_]"
_TABLE_NAME_RE = re.compile(_IDENTIFIER + "{0,62}")
_TABLE_PREFIX_RE = re.compile(_IDENTIFIER + "{0,40}")  # room for the suffixes and index names


def check_table_name(table_name: str) -> str:
    """``table_name`` if it is a safe table name, else ``ValueError``."""
    if not _TABLE_NAME_RE.fullmatch(table_name):
        raise ValueError(
            f"expected a table name matching [A-Za-z_][A-Za-z0-9_]*, got {table_name!r}"
        )
    return table_name


def check_prefix(prefix: str) -> str:
    """``prefix`` if it is a safe table-name prefix, else ``ValueError``."""
    if not _TABLE_PREFIX_RE.fullmatch(prefix):
        raise ValueError(f"expected a table prefix matching [A-Za-z_][A-Za-z0-9_]*, got {prefix!r}")
    return prefix


def check_total(total_minor: int) -> int:
    """``total_minor`` if a BIGINT column holds it as a stream's total, else ``ValueError``."""
    if type(total_minor) is not int or not 0 <= total_minor < 2**63:
        raise ValueError(f"expected total_minor as an int in 0..2^63-1, got {total_minor!r}")
    return total_minor


PURCHASE_COLUMNS = tuple(field.name for field in dataclasses.fields(Purchase))
"""The columns of ``<prefix>_purchases``: the fields of ``Purchase``, in their order."""


def purchase_row(purchase: Purchase) -> tuple[Any, ...]:
    """The values of ``PURCHASE_COLUMNS`` for ``purchase``."""
    return dataclasses.astuple(purchase)


def purchase_of(row: Any) -> Purchase:
    """The purchase a row of ``PURCHASE_COLUMNS`` read back from the database holds."""
    sid, session_id, order_ref, jti, pay, amount, currency, scale, at_ms = row
    return Purchase(
        str(sid),
        str(session_id),
        str(order_ref),
        str(jti),
        str(pay),
        int(amount),
        str(currency),
        int(scale),
        int(at_ms),
    )
