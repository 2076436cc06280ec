"""Personal data for administrators (docs/privacy.md): the same as ``pulpit person export`` and
``pulpit person erase``.

``GET /api/v1/people/{email}/export`` answers the zip (``application/zip``, a file name);
``POST /api/v1/people/{email}/erase`` erases the person and answers the placeholder and the
counts. Administrators only (403 for anyone else, before the address is even looked up); an
unknown address is a 404.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from sqlalchemy.orm import Session

from core.blobs import BlobStore
from core.directory.models import User
from core.privacy.erase import erase_person
from core.privacy.export import build_export, export_filename
from core.privacy.people import check_access, person_by_email
from web.deps import DB, CurrentUser


@get(
    "/people/{email:str}/export",
    sync_to_thread=True,
    summary="Everything stored about a person, as a zip (GDPR)",
    media_type="application/zip",
)
def get_person_export(
    request: Request[Any, Any, Any], db: DB, user: CurrentUser, email: str
) -> Response[bytes]:
    check_access(user)
    person = person_by_email(db, email)
    return export_download(db, person, blobs=request.app.state.blobs, actor=user)


def export_download(db: Session, person: User, *, blobs: BlobStore, actor: User) -> Response[bytes]:
    """The person's export as a zip download, committed (the export is audited): one answer
    for the API and the console's button."""
    data = build_export(db, person, blobs=blobs, actor=actor.email)
    name = export_filename(person)
    db.commit()
    return Response(
        data,
        media_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )


@post(
    "/people/{email:str}/erase",
    sync_to_thread=True,
    status_code=200,
    summary="Erase a person's personal data (GDPR); cannot be undone",
)
def post_person_erase(
    request: Request[Any, Any, Any], db: DB, user: CurrentUser, email: str
) -> dict[str, Any]:
    check_access(user)
    person = person_by_email(db, email)
    result = erase_person(db, person, blobs=request.app.state.blobs, actor=user.email)
    db.commit()
    return {"erased": True, "placeholder": result.placeholder, "counts": result.counts}


people_handlers = [get_person_export, post_person_erase]
