"""The revision counters the database's triggers move, read once per transaction.

A web process keeps what it has read under a revision that the database's triggers move on every
write to the tables it came from, whoever writes: verified tokens under ``auth_revision``
(``facilities.token_cache``), the facility table and the closures under ``routing_revision``
(``referral.live``). A route request needs both. Both are read by one statement the first time
either is asked for in a transaction, and kept on the session until that transaction ends.

Why that is as safe as reading each just before its rows: what is kept is checked against a
revision read *before* the rows, in the same transaction. A revision read earlier in the
transaction is still read before them.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

AUTH = "auth_revision"  # users and API tokens (facilities.models.AuthRevision)
ROUTING = "routing_revision"  # registry, live status, road closures (referral.models)
TABLES = (AUTH, ROUTING)

_SQL = "SELECT " + ", ".join(f"(SELECT revision FROM {table} WHERE id = 1)" for table in TABLES)
_KEY = "greenchannel.revisions"


def revision(session: Session, table: str) -> int | None:
    """The revision of ``table`` (one of :data:`TABLES`) as this session's transaction read it
    first; None when the database has no revision row (then nothing may be kept)."""
    connection = session.connection()  # begins the session's transaction when none is open
    transaction = session.get_transaction()
    memo = session.info.get(_KEY)
    if memo is None or memo[0] is not transaction:
        row = connection.exec_driver_sql(_SQL).one()
        memo = (
            transaction,
            {t: None if v is None else int(v) for t, v in zip(TABLES, row, strict=True)},
        )
        session.info[_KEY] = memo
    return memo[1][table]
