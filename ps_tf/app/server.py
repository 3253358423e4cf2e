"""The web app's HTTP side (FastAPI): one page of plain HTML and JavaScript (`page.py`, no build
step) and a JSON/JPEG/PNG API over a `GallerySession`.

    GET    /                                  the page
    GET    /api/status                        indexing progress: state, files done of total, the
                                              video being indexed (frames done of expected), ...
    GET    /api/files                         the gallery files (id, name, video, detections)
    GET    /api/files/{id}/detections         a file's detections (row, time, box, score)
    GET    /api/files/{id}/frame?time=t       the image, or the video frame at t s, as JPEG
    GET    /api/detections/{row}/crop         a detection's thumbnail, as JPEG
    GET    /api/detections/{row}/strip.png    a video detection's frame and its neighbours, PNG
    POST   /api/uploads                       a query image (the request body: JPEG, PNG or BMP)
    GET    /api/uploads/{name}?box=...        an uploaded image (or the box's part), as JPEG
    GET    /api/search?QUERY&top_k=k&min_similarity=s   ranked hits (marks applied)
    POST   /api/marks                         {QUERY fields, hit, mark}: confirm / reject a hit
    DELETE /api/marks?QUERY                   forget the query's marks
    GET    /api/export/hits.json?QUERY&...    the hits as search.py's hits.json (a download)
    GET    /api/export/contact_sheet.png?QUERY&...   their contact sheet (a download)
    POST   /api/rescan                        indexes files added to the galleries since

QUERY is `detection=row` (a detection of the index) or `upload=name&box=x1,y1,x2,y2` (a box
drawn on an uploaded image).

Safe by default: the command binds 127.0.0.1; files are addressed by id, never by path, uploads
by the name the app made; with a token every request must carry it (`?token=` or the `X-Token`
header); a bad id, parameter or upload is a 4xx answer with a message and the app keeps serving.
"""

from __future__ import annotations

import hmac
from typing import Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from ps_tf.app.errors import NotFound, UploadRejected
from ps_tf.app.page import PAGE
from ps_tf.app.session import GallerySession, jpeg
from ps_tf.app.uploads import too_large


class MarkRequest(BaseModel):
    """POST /api/marks: mark detection `hit` as a sighting of the query (or unmark it)."""
    hit: int
    mark: Literal['confirmed', 'rejected'] | None = None
    detection: int | None = None
    upload: str | None = None
    box: str | None = None


def search_query(detection: int | None = None, upload: str | None = None,
                 box: str | None = None) -> dict:
    """The QUERY parameters: a detection row, or an upload name with a box."""
    return {'detection': detection, 'upload': upload, 'box': box}


def ranking(top_k: int = Query(20, ge=1, le=1000),
            min_similarity: float = Query(-1.0, ge=-1.0, le=1.0)) -> dict:
    return {'top_k': top_k, 'min_similarity': min_similarity}


def attachment(name: str) -> dict:
    return {'Content-Disposition': f'attachment; filename="{name}"'}


async def read_limited(request: Request, limit: int) -> bytes:
    """The request body, refused (413) as soon as it is larger than `limit` bytes: by its
    declared length before reading, else while reading (the declaration may be missing or
    false)."""
    declared = request.headers.get('content-length', '')
    if declared.isdigit() and int(declared) > limit:
        raise too_large(int(declared), limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large(len(body), limit)
    return bytes(body)


def create_app(session: GallerySession, token: str | None = None) -> FastAPI:
    """The app over `session`; with `token`, requests without it are refused (401)."""

    def check_token(request: Request) -> None:
        if token is None:
            return
        given = request.query_params.get('token') or request.headers.get('X-Token') or ''
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(401, 'missing or wrong token (add ?token=... to the address)')

    app = FastAPI(title='ps_tf person search', dependencies=[Depends(check_token)],
                  docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(NotFound)
    async def not_found(request: Request, error: NotFound):
        return JSONResponse({'detail': str(error)}, status_code=404)

    @app.exception_handler(UploadRejected)
    async def upload_rejected(request: Request, error: UploadRejected):
        return JSONResponse({'detail': str(error)}, status_code=error.status_code)

    @app.exception_handler(ValueError)
    async def bad_value(request: Request, error: ValueError):
        return JSONResponse({'detail': str(error)}, status_code=400)

    @app.get('/', response_class=HTMLResponse)
    def page() -> str:
        return PAGE

    @app.get('/api/status')
    def status() -> dict:
        return {**session.status(), 'max_upload_bytes': session.uploads.max_bytes}

    @app.get('/api/files')
    def files() -> list[dict]:
        return session.files()

    @app.get('/api/files/{file_id}/detections')
    def detections(file_id: int) -> list[dict]:
        return session.detections(file_id)

    @app.get('/api/files/{file_id}/frame')
    def frame(file_id: int, time: float | None = None) -> Response:
        return Response(jpeg(session.frame(file_id, time)), media_type='image/jpeg')

    @app.get('/api/detections/{row}/crop')
    def crop(row: int) -> Response:
        return Response(jpeg(session.crop(row)), media_type='image/jpeg')

    @app.get('/api/detections/{row}/strip.png')
    def strip(row: int) -> Response:
        return Response(session.frame_strip(row), media_type='image/png')

    @app.post('/api/uploads')
    async def upload(request: Request) -> dict:
        data = await read_limited(request, session.uploads.max_bytes)
        return await run_in_threadpool(session.upload, data)

    @app.get('/api/uploads/{name}')
    def uploaded(name: str, box: str | None = None) -> Response:
        return Response(jpeg(session.upload_image(name, box)), media_type='image/jpeg')

    @app.get('/api/search')
    def search(query: dict = Depends(search_query), order: dict = Depends(ranking)) -> dict:
        return session.search(**query, **order)

    @app.post('/api/marks')
    def mark(request: MarkRequest) -> dict:
        return session.mark(request.hit, request.mark, request.detection, request.upload,
                            request.box)

    @app.delete('/api/marks')
    def clear_marks(query: dict = Depends(search_query)) -> dict:
        session.clear_marks(**query)
        return {'confirmed': 0, 'rejected': 0}

    @app.get('/api/export/hits.json')
    def export_hits(query: dict = Depends(search_query),
                    order: dict = Depends(ranking)) -> JSONResponse:
        return JSONResponse(session.export_hits(**query, **order),
                            headers=attachment('hits.json'))

    @app.get('/api/export/contact_sheet.png')
    def export_contact_sheet(query: dict = Depends(search_query),
                             order: dict = Depends(ranking)) -> Response:
        return Response(session.export_contact_sheet(**query, **order), media_type='image/png',
                        headers=attachment('contact_sheet.png'))

    @app.post('/api/rescan')
    def rescan() -> dict:
        session.rescan()
        return session.status()

    return app
