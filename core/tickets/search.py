"""Full-text search over tickets: one search document per ticket, kept current on every write.

What is searched
    The subject; the requester's name and address, the client's name and the custom field
    values; the text of every mail, comment and note on the timeline. Words match case- and
    accent-insensitively ("łącze", "LACZE" and "Łącze" are the same word); several words must
    all occur (AND), the last one as a prefix, the word being typed ("łącz" finds "łączem",
    "drukarka tone" finds "toner"), the others whole.

The document (table ``ticket_search``, one row per ticket)
    ``subject``, ``meta_public`` (requester, client, fields clients may read), ``meta_private``
    (the other fields), ``body_public`` (text of public events) and ``body_private`` (internal
    notes and other staff-only text). Each part is *normalised in Python* by :func:`normalise`:
    ``ł``/``Ł`` become ``l`` (neither PostgreSQL's ``simple`` parser nor SQLite's
    ``remove_diacritics`` fold it: ł has no Unicode decomposition) and punctuation becomes
    spaces, so both databases cut the same words. Case and the other diacritics are left to
    the databases, as the issue asks:

    * PostgreSQL: two generated ``tsvector`` columns, ``tsv_public`` (subject, public meta,
      public bodies) and ``tsv_all`` (everything), ``to_tsvector('simple',
      pulpit_unaccent(...))`` with weights A (subject), B (people, client, fields), D (bodies),
      each with a GIN index. ``pulpit_unaccent`` is an IMMUTABLE SQL wrapper around
      ``public.unaccent('public.unaccent', $1)`` (``unaccent`` itself is only STABLE); where the
      extension cannot be created, migration 0020 defines it with ``translate()`` over the
      Latin letters with diacritics instead and logs a warning. Queries: ``to_tsquery('simple',
      pulpit_unaccent('word:* & word:*'))``, ranked by ``ts_rank_cd``.
    * SQLite: an FTS5 table ``ticket_search_fts`` over the same columns (external content,
      ``content_rowid = ticket_id``, kept by triggers), ``tokenize = "unicode61
      remove_diacritics 2"``; queries ``"word"* AND ...`` restricted to the allowed columns,
      ranked by ``bm25`` with the subject weighted 10, people/fields 4, bodies 1.

Who finds what
    Staff search everything (``tsv_all``). Clients and subcontractors search only the public
    document (subject, requester, client, fields clients may read, public mail and comments),
    within ``ticket_scope`` as always: a word that only an internal note holds finds nothing
    for them. (A subcontractor therefore does not find words of their own internal notes; the
    simple rule is worth it.) Snippets come from the events the user may read
    (``event_scope``).

Keeping it current
    Session events, not the services: ``after_flush`` collects the ids of tickets whose
    searched columns or timeline events were added, changed or deleted, and
    ``after_flush_postexec`` rebuilds those tickets' documents at once, with three SELECTs and
    one DELETE + INSERT for all of them together, in the same transaction: a change is found
    by any session that sees the change itself (another request, before or after the commit).
    Renaming (or erasing, GDPR) a person or a client rebuilds the documents of their tickets
    the same way. Bulk ``UPDATE`` statements that bypass the ORM (SLA bookkeeping, taking a
    ticket) change nothing searched. A new event on a ticket whose document exists and
    nothing else of which changed (a reply, a comment) is not a rebuild: its normalised text
    is added to the end of the stored part with one ``UPDATE`` for all such tickets
    (:func:`append_text`), so a reply to a ticket of 800 events normalises one event's text;
    an event dated before one already stored (an old mail delivered late), a savepoint rolled
    back, or anything else changed rebuilds as above. The document is the same either way.

Size
    Each event's text is cut at 20,000 characters and each part of a document at 400,000
    (PostgreSQL's ``tsvector`` is limited to 1 MB), which keeps a ticket with a very long
    thread searchable by its beginning.

Ranking
    With a query and the default sort (``-number``) the list is ordered by relevance: hits in
    the subject above hits in people and fields above hits in bodies, then newest first. An
    explicit sort keeps that sort. ``#1042`` matches the number only; ``1042`` the number or
    the word.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from markupsafe import Markup, escape
from sqlalchemy import (
    Boolean,
    ColumnElement,
    Float,
    ForeignKey,
    Integer,
    Table,
    Text,
    and_,
    bindparam,
    case,
    delete,
    event,
    false,
    func,
    insert,
    inspect,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.orm.attributes import PASSIVE_NO_INITIALIZE, get_history

from core.access.permissions import event_scope
from core.contracts.models import CustomField
from core.directory.models import Client, User
from core.orm import Base
from core.tickets.models import Ticket, TicketEvent

PENDING = "pulpit_search_pending"
# A search counts its hits up to COUNT_LIMIT ("1–50 of more than 500") and ranks them by
# relevance up to RANK_LIMIT (more are shown newest first): on PostgreSQL finding each hit
# costs 10 µs or more (two words in 1 % of a million tickets: 100 µs), so counting every
# hit of a common word would cost more than the page (docs/search.md, bench/search.py).
COUNT_LIMIT = 500
RANK_LIMIT = 500
EVENT_TEXT_LIMIT = 20_000
PART_LIMIT = 400_000
SNIPPET_CHARS = 160
MAX_WORDS = 8
BATCH = 500
# Objects the search keeps beside its model (generated columns, GIN indexes, the FTS5 table
# and its shadow tables): the schema comparison of tests/integration/test_migrations.py
# leaves them out.
FTS_TABLE = "ticket_search_fts"
PG_EXTRA_COLUMNS = ("tsv_public", "tsv_all")
PG_EXTRA_INDEXES = ("ix_ticket_search_tsv_public", "ix_ticket_search_tsv_all")


class TicketSearch(Base):
    """A ticket's search document (see the module's docstring)."""

    __tablename__ = "ticket_search"

    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    subject: Mapped[str] = mapped_column(Text, default="")
    meta_public: Mapped[str] = mapped_column(Text, default="")
    meta_private: Mapped[str] = mapped_column(Text, default="")
    body_public: Mapped[str] = mapped_column(Text, default="")
    body_private: Mapped[str] = mapped_column(Text, default="")


def schema_extra(difference: Any) -> bool:
    """Is this difference between the models and the database the search's own extras?"""
    if not isinstance(difference, tuple) or not difference:
        return False
    kind = difference[0]
    if kind == "remove_table":
        return str(difference[1].name).startswith(FTS_TABLE)
    if kind == "remove_column":
        return difference[2] == "ticket_search" and difference[3].name in PG_EXTRA_COLUMNS
    if kind == "remove_index":
        return str(difference[1].name) in PG_EXTRA_INDEXES
    return False


# --- normalising ------------------------------------------------------------------------------

_SEPARATORS = re.compile(r"[\W_]+")
_L_STROKE = str.maketrans({"ł": "l", "Ł": "L"})


def normalise(value: str) -> str:
    """Text as both databases should cut it: ł folded, punctuation to spaces."""
    return _SEPARATORS.sub(" ", value.translate(_L_STROKE)).strip()


def fold(value: str) -> str:
    """Lower case without diacritics (ł too): how a word is compared in Python (snippets)."""
    decomposed = unicodedata.normalize("NFKD", value.translate(_L_STROKE).casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def query_words(q: str) -> list[str]:
    """The words of a search, folded (at most :data:`MAX_WORDS`, duplicates dropped)."""
    words: list[str] = []
    for word in _SEPARATORS.split(fold(q)):
        if word and word not in words:
            words.append(word)
    return words[:MAX_WORDS]


def ticket_number(q: str) -> int | None:
    """``#1042`` or ``1042``: the number a search box jumps to."""
    value = q.strip().lstrip("#").strip()
    if value.isdigit() and len(value) <= 9:
        return int(value)
    return None


def _pg_query(words: Sequence[str]) -> str:
    return " & ".join(f"{w}:*" if last else w for w, last in _marked(words))


def _marked(words: Sequence[str]) -> list[tuple[str, bool]]:
    """The words, each with whether it matches as a prefix: only the last one, the word being
    typed ("drukarka tone" finds "toner"). A prefix on every word made PostgreSQL merge the
    posting lists of every word starting so, for each word: two common words that never
    meet took 0.5-0.8 s at a million tickets, whole words 4-30 ms (docs/search.md)."""
    return [(w, i == len(words) - 1) for i, w in enumerate(words)]


def _fts_query(words: Sequence[str], public: bool) -> str:
    columns = (
        "subject meta_public body_public"
        if public
        else "subject meta_public meta_private body_public body_private"
    )
    terms = (f'"{w}"*' if last else f'"{w}"' for w, last in _marked(words))
    return "{" + columns + "} : (" + " AND ".join(terms) + ")"


def public_only(user: User) -> bool:
    """Clients and subcontractors search only the public document."""
    return user.role in ("client", "subcontractor")


# --- the condition and the ranking ------------------------------------------------------------


class SearchHits(ColumnElement[bool]):
    """``tickets.id IN (the documents matching words)``, compiled per database."""

    inherit_cache = False
    type = Boolean()

    def __init__(self, words: Sequence[str], public: bool) -> None:
        self.words = tuple(words)
        self.public = public


@compiles(SearchHits, "postgresql")
def _hits_pg(element: SearchHits, compiler: Any, **kw: Any) -> str:
    column = "tsv_public" if element.public else "tsv_all"
    param = compiler.process(bindparam(None, _pg_query(element.words), type_=Text), **kw)
    return (
        "tickets.id IN (SELECT ticket_search.ticket_id FROM ticket_search "  # noqa: S608
        f"WHERE ticket_search.{column} @@ to_tsquery('simple', pulpit_unaccent({param})))"
    )


@compiles(SearchHits)
def _hits_sqlite(element: SearchHits, compiler: Any, **kw: Any) -> str:
    param = compiler.process(
        bindparam(None, _fts_query(element.words, element.public), type_=Text), **kw
    )
    return f"tickets.id IN (SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH {param})"  # noqa: S608


def match_condition(q: str, user: User) -> ColumnElement[bool]:
    """The ``TicketFilter.q`` condition: the words in the user's document, or the number."""
    raw = q.strip()
    number = ticket_number(raw)
    if raw.startswith("#") and number is not None:
        return Ticket.number == number
    words = query_words(raw)
    options: list[ColumnElement[bool]] = []
    if words:
        options.append(SearchHits(words, public_only(user)))
    if number is not None:
        options.append(Ticket.number == number)
    return or_(*options) if options else false()


def count_hits(session: Session, conds: Sequence[ColumnElement[bool]]) -> tuple[int, bool]:
    """The number of tickets matching ``conds``, counted up to :data:`COUNT_LIMIT`, and
    whether there are more."""
    capped = select(Ticket.id).where(*conds).limit(COUNT_LIMIT + 1).subquery()
    found = int(session.scalar(select(func.count()).select_from(capped)) or 0)
    return min(found, COUNT_LIMIT), found > COUNT_LIMIT


def ranked(session: Session, q: str, user: User) -> Any | None:
    """A subquery ``(ticket_id, rank)`` of the matching documents, higher ``rank`` first, to
    join for ordering by relevance; None when the query has no words."""
    words = query_words(q)
    if not words or (q.strip().startswith("#") and ticket_number(q) is not None):
        return None
    public = public_only(user)
    if session.get_bind().dialect.name == "postgresql":
        column = "tsv_public" if public else "tsv_all"
        stmt = text(
            f"SELECT ticket_id, ts_rank_cd({column}, q) AS rank "  # noqa: S608
            f"FROM ticket_search, to_tsquery('simple', pulpit_unaccent(:pulpit_q)) AS q "
            f"WHERE {column} @@ q"
        ).bindparams(pulpit_q=_pg_query(words))
    else:
        stmt = text(
            f"SELECT rowid AS ticket_id, -bm25({FTS_TABLE}, 10.0, 4.0, 4.0, 1.0, 1.0) AS rank "  # noqa: S608
            f"FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :pulpit_q"
        ).bindparams(pulpit_q=_fts_query(words, public))
    return stmt.columns(ticket_id=Integer, rank=Float).subquery("search_rank")


# --- building the documents -------------------------------------------------------------------


def _cut(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[:limit]


_TAGS = re.compile(r"<[^>]+>")


def event_text(e_body_text: str | None, e_body_html: str | None) -> str:
    if e_body_text and e_body_text.strip():
        return e_body_text
    if e_body_html:
        return html.unescape(_TAGS.sub(" ", e_body_html))
    return ""


def _field_words(value: Any) -> str:
    if value is None or value == "" or value == []:
        return ""
    if isinstance(value, list | tuple):
        return " ".join(str(v) for v in value)
    if isinstance(value, bool):
        return ""
    return str(value)


@dataclass
class Document:
    ticket_id: int
    subject: str = ""
    meta_public: str = ""
    meta_private: str = ""
    body_public: str = ""
    body_private: str = ""

    def row(self) -> dict[str, Any]:
        return {
            "ticket_id": self.ticket_id,
            "subject": normalise(self.subject),
            "meta_public": _cut(normalise(self.meta_public), PART_LIMIT),
            "meta_private": _cut(normalise(self.meta_private), PART_LIMIT),
            "body_public": _cut(normalise(self.body_public), PART_LIMIT),
            "body_private": _cut(normalise(self.body_private), PART_LIMIT),
        }


_REQUESTER = User.__table__.alias("requester")  # once: an alias's columns cost to build


def build_documents(session: Session, ticket_ids: Iterable[int]) -> list[Document]:
    """The documents of these tickets, read with three SELECTs whatever their number."""
    ids = sorted(set(ticket_ids))
    if not ids:
        return []
    requester = _REQUESTER
    rows = session.execute(
        select(
            Ticket.id,
            Ticket.subject,
            Ticket.contract_id,
            Ticket.custom_fields,
            requester.c.name,
            requester.c.email,
            Client.name,
        )
        .select_from(Ticket)
        .outerjoin(requester, requester.c.id == Ticket.requester_id)
        .outerjoin(Client, Client.id == Ticket.client_id)
        .where(Ticket.id.in_(ids))
    ).all()
    docs: dict[int, Document] = {}
    fields_of: dict[int, tuple[int | None, dict[str, Any]]] = {}
    for tid, subject, contract_id, custom, r_name, r_email, client in rows:
        email = r_email or ""
        meta = " ".join(p for p in (r_name or "", email, email.split("@")[0], client or "") if p)
        docs[tid] = Document(tid, subject=subject or "", meta_public=meta)
        fields_of[tid] = (contract_id, custom or {})
    if any(custom for _, custom in fields_of.values()):
        hidden: dict[tuple[int | None, str], bool] = {}
        for contract_id, name, visible in session.execute(
            select(CustomField.contract_id, CustomField.name, CustomField.visible_to_client)
        ):
            hidden[(contract_id, name)] = not visible
        for tid, (contract_id, custom) in fields_of.items():
            public_values: list[str] = []
            private_values: list[str] = []
            for name, value in custom.items():
                words = _field_words(value)
                if not words:
                    continue
                secret = hidden.get((contract_id, name), hidden.get((None, name), True))
                (private_values if secret else public_values).append(words)
            doc = docs[tid]
            doc.meta_public = " ".join([doc.meta_public, *public_values])
            doc.meta_private = " ".join(private_values)
    public_parts: dict[int, list[str]] = {}
    private_parts: dict[int, list[str]] = {}
    for tid, public, body_text, body_html in session.execute(
        select(
            TicketEvent.ticket_id, TicketEvent.public, TicketEvent.body_text, TicketEvent.body_html
        )
        .where(
            TicketEvent.ticket_id.in_(list(docs)),
            or_(TicketEvent.body_text.is_not(None), TicketEvent.body_html.is_not(None)),
        )
        .order_by(TicketEvent.ticket_id, TicketEvent.at, TicketEvent.id)
    ):
        value = _cut(event_text(body_text, body_html), EVENT_TEXT_LIMIT)
        if value:
            (public_parts if public else private_parts).setdefault(tid, []).append(value)
    for tid, doc in docs.items():
        doc.body_public = "\n".join(public_parts.get(tid, []))
        doc.body_private = "\n".join(private_parts.get(tid, []))
    return list(docs.values())


def rebuild(session: Session, ticket_ids: Iterable[int]) -> int:
    """Write the documents of these tickets again (a deleted ticket's row goes with it)."""
    ids = sorted(set(ticket_ids))
    written = 0
    table = cast(Table, TicketSearch.__table__)
    for start in range(0, len(ids), BATCH):
        chunk = ids[start : start + BATCH]
        docs = build_documents(session, chunk)
        session.execute(delete(table).where(table.c.ticket_id.in_(chunk)))
        if docs:
            session.execute(insert(table), [d.row() for d in docs])
        written += len(docs)
    return written


APPENDED = "pulpit_search_appended"  # ticket id -> the texts of its new events
_NewText = tuple[Any, int, bool, str]  # (at, event id, public, text cut to EVENT_TEXT_LIMIT)


def _joined(current: ColumnElement[str], new: ColumnElement[str]) -> ColumnElement[str]:
    """A part of a stored document with normalised new text added at its end, cut as
    Document.row cuts it: normalise(a + "\\n" + b) is normalise(a) + " " + normalise(b) when
    neither is empty, and text past the cut stays past it."""
    return case(
        (new == "", current),
        (current == "", func.substr(new, 1, PART_LIMIT)),
        (func.length(current) >= PART_LIMIT, current),
        else_=func.substr(current + " " + new, 1, PART_LIMIT),
    )


def append_text(
    session: Session, appended: dict[int, list[_NewText]], *, skip: Iterable[int] = ()
) -> set[int]:
    """Add the text of new events to the end of their tickets' documents, without reading
    what is stored: a reply to a ticket of 800 events normalises one event, not 800. Returns
    the tickets this cannot do, for :func:`rebuild`: those without a document yet, and those
    with an event already stored that comes after a new one (a mail dated in the past).
    Tickets in ``skip`` are left out (they are rebuilt anyway)."""
    skipped = set(skip)
    wanted = [(tid, texts) for tid, texts in appended.items() if tid not in skipped]
    left: set[int] = set()
    for start in range(0, len(wanted), BATCH):  # SQLite's limit on parameters, as rebuild
        left |= _append_some(session, dict(wanted[start : start + BATCH]))
    return left


def _append_some(session: Session, wanted: dict[int, list[_NewText]]) -> set[int]:
    new_ids = [event_id for texts in wanted.values() for _, event_id, _, _ in texts]
    stored = TicketEvent.__table__.alias("stored")
    table = cast(Table, TicketSearch.__table__)
    last = dict(
        session.execute(
            select(table.c.ticket_id, func.max(stored.c.at))
            .select_from(table)
            .outerjoin(
                stored,
                and_(
                    stored.c.ticket_id == table.c.ticket_id,
                    stored.c.id.not_in(new_ids),
                    or_(stored.c.body_text.is_not(None), stored.c.body_html.is_not(None)),
                ),
            )
            .where(table.c.ticket_id.in_(list(wanted)))
            .group_by(table.c.ticket_id)
        ).all()
    )
    rows: list[dict[str, Any]] = []
    for tid, unordered in wanted.items():
        texts = sorted(unordered, key=lambda t: (t[0], t[1]))
        if tid not in last or (last[tid] is not None and last[tid] > texts[0][0]):
            continue
        rows.append(
            {
                "tid": tid,
                "public": normalise("\n".join(t for _, _, public, t in texts if public)),
                "private": normalise("\n".join(t for _, _, public, t in texts if not public)),
            }
        )
    if rows:
        session.execute(
            update(table)
            .where(table.c.ticket_id == bindparam("tid"))
            .values(
                body_public=_joined(table.c.body_public, bindparam("public", type_=Text)),
                body_private=_joined(table.c.body_private, bindparam("private", type_=Text)),
            ),
            rows,
        )
    return set(wanted) - {row["tid"] for row in rows}


def rebuild_all(session: Session, batch: int = 2000) -> int:
    """Every ticket's document (the migration and ``--reindex``), in batches by id."""
    last, written = 0, 0
    while True:
        ids = list(
            session.scalars(
                select(Ticket.id).where(Ticket.id > last).order_by(Ticket.id).limit(batch)
            )
        )
        if not ids:
            return written
        written += rebuild(session, ids)
        last = ids[-1]


# --- keeping the documents current ------------------------------------------------------------


def _ticket_ids_of(obj: Any) -> list[int]:
    if isinstance(obj, Ticket):
        return [obj.id] if obj.id is not None else []
    if isinstance(obj, TicketEvent):
        state = inspect(obj)
        if state.deleted or state.was_deleted:
            changed = bool(obj.body_text or obj.body_html)
        else:
            # A changed event (new ones are appended, _collect) matters when it has text.
            changed = any(_history(obj, name).has_changes() for name in _SEARCHED_EVENT)
            changed = changed and bool(
                obj.body_text or obj.body_html or _history(obj, "body_text").deleted
            )
        if not changed:
            return []
        ids = [obj.ticket_id] if obj.ticket_id is not None else []
        ids += [i for i in _history(obj, "ticket_id").deleted or () if i is not None]
        return ids
    return []


def _history(obj: Any, key: str) -> Any:
    # get_history, not inspect(obj).attrs[key]: ``attrs`` builds a view of every attribute on
    # each call, which a flush of 1,000 tickets and events paid thousands of times.
    return get_history(obj, key, passive=PASSIVE_NO_INITIALIZE)


_SEARCHED_EVENT = ("body_text", "body_html", "public", "ticket_id")


PEOPLE = "pulpit_search_people"  # (kind, id) of renamed requesters and clients


@event.listens_for(Session, "after_flush")
def _collect(session: Session, _context: Any) -> None:
    pending: set[int] | None = None
    # Once: Session.dirty checks every changed object each time it is read.
    dirty = session.dirty
    for obj in dirty:
        # A renamed (or erased, GDPR) person or client: their tickets' documents hold the name.
        if isinstance(obj, User | Client) and obj.id is not None:
            names = ("name", "email") if isinstance(obj, User) else ("name",)
            if any(_history(obj, n).has_changes() for n in names):
                kind = "user" if isinstance(obj, User) else "client"
                session.info.setdefault(PEOPLE, set()).add((kind, obj.id))
    new = session.new
    opened = {obj.id for obj in new if isinstance(obj, Ticket)}  # their documents are built
    for obj in new:
        if isinstance(obj, TicketEvent) and obj.ticket_id not in opened | {None}:
            # A new event on the timeline: its text is added to the end of the document
            # (append_text) unless something else of the ticket changed too.
            value = _cut(event_text(obj.body_text, obj.body_html), EVENT_TEXT_LIMIT)
            if value:
                appended = session.info.setdefault(APPENDED, {})
                appended.setdefault(obj.ticket_id, []).append((obj.at, obj.id, obj.public, value))
    for obj in (*new, *dirty, *session.deleted):
        if isinstance(obj, Ticket) or (isinstance(obj, TicketEvent) and obj not in new):
            if isinstance(obj, Ticket) and obj in dirty and not _ticket_changed(obj):
                continue
            if pending is None:
                pending = session.info.setdefault(PENDING, set())
            pending.update(_ticket_ids_of(obj))


_SEARCHED_TICKET_COLUMNS = ("subject", "requester_id", "client_id", "custom_fields", "contract_id")


def _ticket_changed(ticket: Ticket) -> bool:
    """Did a flush change something of this ticket the document holds? (SLA bookkeeping,
    assignment and status changes do not rebuild it.)"""
    return any(_history(ticket, name).has_changes() for name in _SEARCHED_TICKET_COLUMNS)


def refresh(session: Session) -> None:
    """Flush (which rebuilds the documents of the tickets it changed) and rebuild any left."""
    session.flush()
    _rebuild_pending(session)


AT_COMMIT = "pulpit_search_at_commit"


def rebuild_at_commit(session: Session) -> None:
    """Rebuild this transaction's documents once, just before it commits, instead of after
    every flush: for a unit of work that changes many tickets in many flushes (a batch of
    inbound mail, ``mailgw.process.run_batch``), one rebuild of them all. Searches inside the
    transaction then miss its own changes until the commit."""
    session.info[AT_COMMIT] = True


@event.listens_for(Session, "before_commit")
def _rebuild_before_commit(session: Session) -> None:
    if session.info.get(AT_COMMIT):
        session.flush()
        _rebuild_pending(session)


@event.listens_for(Session, "after_transaction_end")
def _forget_at_commit(session: Session, transaction: Any) -> None:
    if transaction.parent is None:
        session.info.pop(AT_COMMIT, None)


@event.listens_for(Session, "after_flush_postexec")
def _rebuild_after_flush(session: Session, _context: Any) -> None:
    if not session.info.get(AT_COMMIT):
        _rebuild_pending(session)


def _rebuild_pending(session: Session) -> None:
    pending: set[int] = session.info.pop(PENDING, set())
    people: set[tuple[str, int]] = session.info.pop(PEOPLE, set())
    if people:
        users = [i for kind, i in people if kind == "user"]
        clients = [i for kind, i in people if kind == "client"]
        with session.no_autoflush:
            pending.update(
                session.scalars(
                    select(Ticket.id).where(
                        or_(Ticket.requester_id.in_(users), Ticket.client_id.in_(clients))
                    )
                )
            )
    appended: dict[int, list[_NewText]] = session.info.pop(APPENDED, {})
    if appended:
        with session.no_autoflush:
            pending.update(append_text(session, appended, skip=pending))
    if pending:
        with session.no_autoflush:
            rebuild(session, pending)


@event.listens_for(Session, "after_soft_rollback")
def _forget(session: Session, previous_transaction: Any) -> None:
    appended: dict[int, list[_NewText]] = session.info.pop(APPENDED, {})
    if previous_transaction.parent is None:
        session.info.pop(PENDING, None)
    elif appended:
        # A savepoint rolled back: some of those events are gone, which only a rebuild of
        # their tickets' documents knows.
        session.info.setdefault(PENDING, set()).update(appended)


# --- snippets ---------------------------------------------------------------------------------


def _folded_with_positions(value: str) -> tuple[str, list[int]]:
    """The folded text and, for each of its characters, the index in ``value`` it came from."""
    out: list[str] = []
    where: list[int] = []
    for i, ch in enumerate(value):
        f = fold(ch)
        out.append(f)
        where.extend([i] * len(f))
    return "".join(out), where


def highlight(value: str, words: Sequence[str], width: int = SNIPPET_CHARS) -> Markup | None:
    """A window of about ``width`` characters of ``value`` around the first word found (at a
    word's start, accent- and case-insensitively), every found word wrapped in ``<mark>``,
    everything else escaped; None when no word is in it."""
    if not words or not value:
        return None
    folded, where = _folded_with_positions(value)
    spans: list[tuple[int, int]] = []
    for word in words:
        for m in re.finditer(r"(?<![^\W_])" + re.escape(word) + r"[^\W_]*", folded):
            spans.append((where[m.start()], where[m.end() - 1] + 1))
    if not spans:
        return None
    spans.sort()
    first = spans[0][0]
    start = max(0, first - width // 3)
    if start:
        space = value.rfind(" ", 0, start + 1)
        start = space + 1 if space >= 0 and start - space < 20 else start
    end = min(len(value), start + width)
    if end < len(value):
        space = value.find(" ", end)
        end = space if 0 <= space < end + 20 else end
    parts: list[str | Markup] = ["…" if start else ""]
    pos = start
    for s, e in spans:
        if s < pos or s >= end:
            continue
        e = min(e, end)
        parts.append(value[pos:s])
        parts.append(Markup("<mark>") + escape(value[s:e]) + Markup("</mark>"))
        pos = e
    parts.append(value[pos:end])
    if end < len(value):
        parts.append("…")
    return Markup("").join(p if isinstance(p, Markup) else escape(_squash(p)) for p in parts)


def _squash(value: str) -> str:
    return re.sub(r"\s+", " ", value)


def snippets(session: Session, user: User, tickets: Sequence[Ticket], q: str) -> dict[int, Markup]:
    """For each ticket of a result page, the snippet of the newest text the user may read that
    holds a word of ``q`` (one query for the page); none when only the subject, the people or
    the fields matched."""
    words = query_words(q)
    if not words or not tickets:
        return {}
    ids = [t.id for t in tickets]
    found: dict[int, Markup] = {}
    rows = session.execute(
        select(TicketEvent.ticket_id, TicketEvent.body_text, TicketEvent.body_html)
        .where(
            TicketEvent.ticket_id.in_(ids),
            or_(TicketEvent.body_text.is_not(None), TicketEvent.body_html.is_not(None)),
            and_(event_scope(user)),
        )
        .order_by(TicketEvent.ticket_id, TicketEvent.at.desc(), TicketEvent.id.desc())
    )
    for tid, body_text, body_html in rows:
        if tid in found:
            continue
        snippet = highlight(_cut(event_text(body_text, body_html), EVENT_TEXT_LIMIT), words)
        if snippet is not None:
            found[tid] = snippet
    return found
