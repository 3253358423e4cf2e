"""The web app's HTTP side (FastAPI): one page of plain HTML and JavaScript (`page.py`, no build
step) and a JSON/JPEG API over a `GallerySession`.

    GET  /                                  the page
    GET  /api/status                        indexing progress: state, done, total, files, ...
    GET  /api/files                         the gallery files (id, name, video, detections)
    GET  /api/files/{id}/detections         a file's detections (row, time, box, score)
    GET  /api/files/{id}/frame?time=t       the image, or the video frame at t s, as JPEG
    GET  /api/detections/{row}/crop         a detection's thumbnail, as JPEG
    GET  /api/search?detection=row&top_k=k&min_similarity=s   ranked hits
    POST /api/rescan                        indexes files added to the galleries since

Safe by default: the command binds 127.0.0.1; files are addressed by id, never by path; with a
token every request must carry it (`?token=` or the `X-Token` header); a bad id or parameter is a
4xx answer with a message and the app keeps serving.
"""

from __future__ import annotations

import hmac

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from ps_tf.app.page import PAGE
from ps_tf.app.session import GallerySession, NotFound, jpeg


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

    @app.exception_handler(ValueError)
    async def bad_value(request: Request, error: ValueError):
        return JSONResponse({'detail': str(error)}, status_code=400)

    @app.get('/', response_class=HTMLResponse)
    def page() -> str:
        return PAGE

    @app.get('/api/status')
    def status() -> dict:
        return session.status()

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

    @app.get('/api/search')
    def search(detection: int, top_k: int = Query(20, ge=1, le=1000),
               min_similarity: float = Query(-1.0, ge=-1.0, le=1.0)) -> dict:
        return session.search(detection, top_k, min_similarity)

    @app.post('/api/rescan')
    def rescan() -> dict:
        session.rescan()
        return session.status()

    return app
