"""The operator web app: person search over indexed galleries in a browser (`ps-search-app`).

Modules:
    session.py   the galleries, their index, searches, uploads, marks and exports (no web code)
    server.py    the HTTP API over a session (FastAPI), and the page
    page.py      the one page: plain HTML and JavaScript, no build step
    uploads.py   query images uploaded from the page: checked, kept in the state directory
    marks.py     the operator's confirm / reject marks per query, in marks.json
    exports.py   hits.json, the contact sheet and a video hit's frame strip as downloads
    errors.py    the errors answered with a 4xx status and a message

Search itself (indexing, ranking, contact sheets) is `ps_tf.search`'s; see docs/app.md.
"""
