"""The operator web app: its API over a small gallery (files by id only, tokens, bad requests,
uploaded queries, confirm / reject marks and query expansion, exports), and a real headless
Chromium that clicks a person, or uploads a picture and draws a box, and gets the other sightings
first.

The model is the content model of `search_fixtures` (people pasted on black, embedded by their
colours), so the right answer is unambiguous.
"""

import contextlib
import io
import json
import os
import re
import shutil
import socket
import threading
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from ps_tf.app.server import create_app
from ps_tf.app.session import GallerySession, check_state_dir
from ps_tf.app.uploads import MAX_UPLOAD_BYTES
from ps_tf.search import pipeline
from search_fixtures import (content_searcher, dressed, person, save_png, scene,
                             write_video)

ALICE, BOB, CAROL, DAVE = (person(seed) for seed in range(4))
ALICE_IN_Q = (10, 20, 26, 60)   # her box in q.png


def _gallery(directory) -> dict[str, np.ndarray]:
    """Four images; Alice is in q.png (the query) and c.png only. Returns name -> boxes."""
    directory.mkdir()
    boxes = {}
    for name, people in [('q.png', [(ALICE, (10, 20)), (BOB, (60, 12))]),
                         ('a.png', [(CAROL, (4, 8)), (DAVE, (70, 30))]),
                         ('b.png', [(BOB, (30, 20)), (DAVE, (70, 2))]),
                         ('c.png', [(DAVE, (5, 5)), (ALICE, (40, 30))])]:
        image, boxes[name] = scene(people)
        save_png(directory / name, image)
    return boxes


def _session(tmp_path, searcher=None, **options) -> GallerySession:
    if not (tmp_path / 'gallery').exists():
        _gallery(tmp_path / 'gallery')
    session = GallerySession(searcher or content_searcher(), [str(tmp_path / 'gallery')],
                             str(tmp_path / 'index.npz'), **options)
    session.wait()
    return session


def _png(image: np.ndarray, image_format: str = 'PNG') -> bytes:
    stream = io.BytesIO()
    Image.fromarray(image).save(stream, format=image_format)
    return stream.getvalue()


def _alice_elsewhere(scale: int = 1) -> np.ndarray:
    """A picture not in the gallery: Carol, and Alice at x 40, y 16 (box 40, 16, 56, 56)."""
    image = scene([(CAROL, (4, 20)), (ALICE, (40, 16))])[0]
    return np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)


def _alice_in_query(client) -> tuple[int, dict[str, int]]:
    files = {f['name']: f['id'] for f in client.get('/api/files').json()}
    detections = client.get(f'/api/files/{files["q.png"]}/detections').json()
    return next(d['detection'] for d in detections if d['box'][:2] == [10, 20]), files


def test_api_finds_alice_and_serves_only_gallery_files(tmp_path):
    client = TestClient(create_app(_session(tmp_path)))
    status = client.get('/api/status').json()
    assert status['state'] == 'ready' and status['files'] == 4 and status['detections'] == 8
    alice, files = _alice_in_query(client)
    result = client.get(f'/api/search?detection={alice}&top_k=3').json()
    assert [hit['file_id'] for hit in result['hits']][:1] == [files['c.png']]
    assert result['hits'][0]['similarity'] > 0.999 > result['hits'][1]['similarity']
    assert alice not in [hit['detection'] for hit in result['hits']]     # not itself
    frame = client.get(f'/api/files/{files["c.png"]}/frame')
    assert frame.status_code == 200 and frame.headers['content-type'] == 'image/jpeg'
    assert client.get(f'/api/detections/{alice}/crop').content[:2] == b'\xff\xd8'
    assert 'ps_tf person search' in client.get('/').text
    # Bad requests get a 4xx with a message; nothing outside the gallery is reachable.
    assert client.get('/api/files/99/frame').status_code == 404
    assert 'no gallery file 99' in client.get('/api/files/99/detections').json()['detail']
    assert client.get('/api/files/-1/frame').status_code == 404
    assert client.get('/api/files/..%2F..%2Fetc%2Fpasswd/frame').status_code in (404, 422)
    assert client.get('/api/detections/1000/crop').status_code == 404
    assert client.get('/api/search?detection=0&top_k=0').status_code == 422
    assert client.get('/api/search').status_code == 400                   # no query
    assert client.get('/api/status').status_code == 200                   # still serving


def test_token_and_rescan(tmp_path):
    session = _session(tmp_path)
    client = TestClient(create_app(session, token='s3cret'))
    assert client.get('/api/status').status_code == 401
    assert client.get('/').status_code == 401
    assert client.get('/api/status?token=wrong').status_code == 401
    assert client.get('/api/status', headers={'X-Token': 's3cret'}).status_code == 200
    # A file added to the gallery is indexed by a rescan; the rest is reused.
    save_png(tmp_path / 'gallery' / 'd.png', scene([(ALICE, (20, 10))])[0])
    assert client.post('/api/rescan?token=s3cret').status_code == 200
    session.wait()
    status = client.get('/api/status?token=s3cret').json()
    assert status['state'] == 'ready' and status['files'] == 5 and status['detections'] == 9


def test_a_bad_gallery_file_is_reported_and_the_app_keeps_serving(tmp_path):
    gallery = tmp_path / 'gallery'
    _gallery(gallery)
    (gallery / 'broken.png').write_bytes(b'not an image')
    session = GallerySession(content_searcher(), [str(gallery)], str(tmp_path / 'index.npz'))
    session.wait()
    client = TestClient(create_app(session))
    status = client.get('/api/status').json()
    assert status['state'] == 'error' and 'broken.png' in status['error']
    assert client.get('/').status_code == 200


def test_an_uploaded_picture_with_a_drawn_box_finds_alice(tmp_path):
    session = _session(tmp_path)
    client = TestClient(create_app(session))
    files = {f['name']: f['id'] for f in client.get('/api/files').json()}
    for image_format in ('PNG', 'JPEG', 'BMP'):
        response = client.post('/api/uploads', content=_png(_alice_elsewhere(), image_format))
        assert response.status_code == 200, response.text
        upload = response.json()
        assert re.fullmatch(r'[0-9a-f]{20}\.(png|jpg|bmp)', upload['upload'])
        assert (upload['width'], upload['height']) == (96, 72)
        hits = client.get(f'/api/search?upload={upload["upload"]}&box=40,16,56,56').json()['hits']
        # Alice's two sightings (q.png and c.png) first; the JPEG's pixels differ a little.
        assert {hit['file_id'] for hit in hits[:2]} == {files['q.png'], files['c.png']}
        assert hits[1]['similarity'] > (0.999 if image_format != 'JPEG' else 0.98)
        assert hits[2]['similarity'] < hits[1]['similarity'] - 0.01
    # Kept in the session's state directory under the names the app made, not in the gallery.
    uploads = session.state_dir + '/uploads'
    assert sorted(os.path.splitext(n)[1] for n in os.listdir(uploads)) == ['.bmp', '.jpg', '.png']
    assert not os.path.commonpath([session.state_dir, str(tmp_path / 'gallery')]).endswith(
        'gallery')
    assert sorted(os.listdir(tmp_path / 'gallery')) == ['a.png', 'b.png', 'c.png', 'q.png']
    # The same picture again: the same name, nothing new kept.
    assert client.post('/api/uploads', content=_png(_alice_elsewhere())).json()['upload'] in (
        os.listdir(uploads))
    assert len(os.listdir(uploads)) == 3
    image = client.get(f'/api/uploads/{upload["upload"]}?box=40,16,56,56')
    assert Image.open(io.BytesIO(image.content)).size == (16, 40)
    # A bad box or name is a 4xx with a message.
    name = upload['upload']
    for box, message in (('1,2,3', 'x1,y1,x2,y2'), ('40,16,41,56', 'draw a box'),
                         ('200,200,300,300', 'draw a box'), ('a,b,c,d', 'x1,y1,x2,y2')):
        response = client.get(f'/api/search?upload={name}&box={box}')
        assert response.status_code == 400 and message in response.json()['detail'], box
    assert client.get(f'/api/search?upload={name}').status_code == 400
    assert client.get('/api/search').status_code == 400
    for bad in ('..%2F..%2Fetc%2Fpasswd', 'abc.png', '0123456789abcdef0123.gif'):
        assert client.get(f'/api/uploads/{bad}').status_code == 404, bad
        assert client.get(f'/api/search?upload={bad}&box=1,1,9,9').status_code == 404, bad


def test_an_oversized_or_non_image_upload_is_refused_and_the_app_keeps_serving(tmp_path):
    session = _session(tmp_path)
    client = TestClient(create_app(session))
    too_large = client.post('/api/uploads', content=b'\0' * (MAX_UPLOAD_BYTES + 1))
    assert too_large.status_code == 413 and 'limit is 20 MB' in too_large.json()['detail']
    # Without a declared length (chunked), the body is cut off while it is read.
    small = TestClient(create_app(_session(tmp_path, max_upload_bytes=1000)))
    chunked = small.post('/api/uploads', content=iter([b'\0' * 600, b'\0' * 600]))
    assert chunked.status_code == 413, chunked.text
    with io.BytesIO() as stream:   # 48 megapixels, but a small file: refused before decoding
        Image.new('1', (8000, 6000)).save(stream, format='PNG')
        huge = client.post('/api/uploads', content=stream.getvalue())
    assert huge.status_code == 413 and 'megapixels' in huge.json()['detail']
    png = _png(_alice_elsewhere())
    for content, message in ((b'not an image', 'not a readable'),
                             (png[:len(png) // 2], 'not a readable'),
                             (_png(_alice_elsewhere(), 'GIF'), 'a GIF image')):
        response = client.post('/api/uploads', content=content)
        assert response.status_code == 415 and message in response.json()['detail'], message
    assert not os.path.exists(session.state_dir + '/uploads')
    assert client.get('/api/status').json()['state'] == 'ready'


def _row(client, files, name, box) -> int:
    detections = client.get(f'/api/files/{files[name]}/detections').json()
    return next(d['detection'] for d in detections if d['box'] == list(map(float, box)))


def test_marks_are_kept_in_the_state_dir_and_restored_by_a_new_session(tmp_path):
    session = _session(tmp_path, state_dir=str(tmp_path / 'state'))
    client = TestClient(create_app(session))
    alice, files = _alice_in_query(client)
    bob_in_b = _row(client, files, 'b.png', (30, 20, 46, 60))
    alice_in_c = _row(client, files, 'c.png', (40, 30, 56, 70))
    before = client.get(f'/api/search?detection={alice}').json()
    assert bob_in_b in [hit['detection'] for hit in before['hits']]
    for hit, mark in ((alice_in_c, 'confirmed'), (bob_in_b, 'rejected')):
        response = client.post('/api/marks', json={'detection': alice, 'hit': hit, 'mark': mark})
        assert response.status_code == 200, response.text
    assert response.json() == {'confirmed': 1, 'rejected': 1}
    with open(tmp_path / 'state' / 'marks.json') as f:
        saved = json.load(f)
    assert [len(q['confirmed']) for q in saved['queries'].values()] == [1]
    assert not [n for n in os.listdir(tmp_path / 'state') if n != 'marks.json']   # no temporary
    # A new session on the same galleries and state dir: the index is reused and the marks apply.
    searcher = content_searcher()
    restarted = _session(tmp_path, searcher, state_dir=str(tmp_path / 'state'))
    again = TestClient(create_app(restarted))
    assert searcher.model_calls == 0
    after = again.get(f'/api/search?detection={alice}').json()
    assert after['marks'] == {'confirmed': 1, 'rejected': 1}
    hits = {hit['detection']: hit for hit in after['hits']}
    assert bob_in_b not in hits and hits[alice_in_c]['mark'] == 'confirmed'
    assert len(after['hits']) == len(before['hits']) - 1
    # a.png changed: indexed again, its detections move to the end and every row after them
    # moves up; the marks (recorded by file, time and box) follow.
    os.utime(tmp_path / 'gallery' / 'a.png', ns=(1, 1))
    restarted.rescan()
    restarted.wait()
    moved, files = _alice_in_query(again)
    assert moved != alice
    after_rescan = again.get(f'/api/search?detection={moved}').json()
    assert after_rescan['marks'] == {'confirmed': 1, 'rejected': 1}
    assert [hit['name'] for hit in after_rescan['hits'] if hit['mark'] == 'confirmed'] == ['c.png']
    alice, bob_in_b = moved, _row(again, files, 'b.png', (30, 20, 46, 60))
    assert bob_in_b not in [hit['detection'] for hit in after_rescan['hits']]
    # Unmarking, clearing, and what cannot be marked.
    assert again.post('/api/marks', json={'detection': alice, 'hit': bob_in_b,
                                          'mark': None}).json() == {'confirmed': 1, 'rejected': 0}
    assert again.post('/api/marks', json={'detection': alice, 'hit': alice,
                                          'mark': 'confirmed'}).status_code == 400
    assert again.post('/api/marks', json={'detection': alice, 'hit': 99,
                                          'mark': 'confirmed'}).status_code == 404
    assert again.post('/api/marks', json={'detection': alice, 'hit': bob_in_b,
                                          'mark': 'maybe'}).status_code == 422
    assert again.delete(f'/api/marks?detection={alice}').status_code == 200
    assert again.get(f'/api/search?detection={alice}').json()['marks'] == {'confirmed': 0,
                                                                           'rejected': 0}
    # A marks file the app cannot read stops it with the file's name, not a traceback later.
    (tmp_path / 'state' / 'marks.json').write_text('{"version": 1, "queries": []}')
    with pytest.raises(ValueError, match=r'state/marks.json is not a marks file'):
        _session(tmp_path, state_dir=str(tmp_path / 'state'))


def test_a_state_dir_inside_a_gallery_is_refused(tmp_path):
    """Its uploads would be indexed as gallery files by the next rescan."""
    with pytest.raises(ValueError, match='is inside gallery'):
        _session(tmp_path, state_dir=str(tmp_path / 'gallery' / 'state'))
    gallery = tmp_path / 'gallery'
    for galleries, state in (([f'{gallery}/*.png'], gallery / 'state'),
                             ([str(gallery / 'q.png'), str(gallery)], gallery / 'sub' / 'state')):
        with pytest.raises(ValueError, match='is inside gallery'):
            check_state_dir(str(state), galleries)
    # Beside a gallery folder, or beside a gallery that is one file: fine.
    check_state_dir(str(tmp_path / 'gallery.index.app'), [str(gallery)])
    check_state_dir(str(gallery / 'state'), [str(gallery / 'q.png')])


def test_confirming_a_sighting_reranks_towards_it(tmp_path):
    """Ann in a red top and blue trousers (the query), then in yellow trousers (ann_b, which the
    operator confirms) and once more in yellow, her head in other light (ann_c); Dee wears Ann's
    first clothes with a green head. By the query alone Dee ranks above ann_c; expanded by the
    confirmed ann_b, ann_c ranks above Dee."""
    skin, red, blue, yellow = (200, 160, 120), (200, 40, 40), (40, 40, 200), (200, 200, 60)
    gallery = tmp_path / 'gallery'
    gallery.mkdir()
    for name, crop in (('ann_a.png', dressed(skin, red, blue)),
                       ('ann_b.png', dressed(skin, red, yellow)),
                       ('ann_c.png', dressed((180, 150, 110), (190, 50, 40), yellow)),
                       ('dee.png', dressed((60, 200, 60), red, blue))):
        save_png(gallery / name, scene([(crop, (30, 16))])[0])
    client = TestClient(create_app(_session(tmp_path)))
    files = {f['name']: f['id'] for f in client.get('/api/files').json()}
    row = {name: _row(client, files, name, (30, 16, 46, 56)) for name in files}

    def ranked() -> list[str]:
        hits = client.get(f'/api/search?detection={row["ann_a.png"]}').json()['hits']
        return [hit['name'] for hit in hits]

    assert ranked() == ['dee.png', 'ann_b.png', 'ann_c.png']
    client.post('/api/marks', json={'detection': row['ann_a.png'], 'hit': row['ann_b.png'],
                                    'mark': 'confirmed'})
    assert ranked() == ['ann_b.png', 'ann_c.png', 'dee.png']
    client.post('/api/marks', json={'detection': row['ann_a.png'], 'hit': row['dee.png'],
                                    'mark': 'rejected'})
    assert ranked() == ['ann_b.png', 'ann_c.png']


def test_exports_are_search_py_s_hits_json_and_contact_sheet_and_a_video_frame_strip(tmp_path):
    gallery = tmp_path / 'gallery'
    _gallery(gallery)
    frames = [scene([(ALICE, (4 + 12 * second, 12))], size=(64, 96))[0]
              for second in range(5) for _ in range(5)]
    write_video(gallery / 'walk.mp4', frames, rate=5)
    client = TestClient(create_app(_session(tmp_path)))
    upload = client.post('/api/uploads', content=(gallery / 'q.png').read_bytes()).json()
    query = f'upload={upload["upload"]}&box={",".join(map(str, ALICE_IN_Q))}&top_k=3'
    response = client.get(f'/api/export/hits.json?{query}')
    assert 'attachment; filename="hits.json"' == response.headers['content-disposition']
    exported = response.json()
    # search.py on the same index, query picture and box writes the same hits.
    expected = pipeline.run('unused', str(gallery), str(tmp_path / 'out'),
                            query_image=str(gallery / 'q.png'),
                            query_box=','.join(map(str, ALICE_IN_Q)), top_k=3,
                            index=str(tmp_path / 'index.npz'), searcher=content_searcher(),
                            progress=False)
    with open(expected['hits_json']) as f:
        written = json.load(f)
    assert exported['hits'] == written['hits'] and len(written['hits']) == 3
    assert exported['query_box'] == written['query_box'] and exported['warning'] is None
    assert exported['query'].startswith(str(tmp_path / 'index.app' / 'uploads'))
    sheet = client.get(f'/api/export/contact_sheet.png?{query}')
    assert sheet.headers['content-type'] == 'image/png'
    assert Image.open(io.BytesIO(sheet.content)).size == (4 * 240, 180)   # query + 3 hits
    # A video hit's frame strip: its frame and two sampled frames each side.
    files = {f['name']: f['id'] for f in client.get('/api/files').json()}
    walk = client.get(f'/api/files/{files["walk.mp4"]}/detections').json()
    middle = next(d['detection'] for d in walk if d['time'] == 2.0)
    strip = client.get(f'/api/detections/{middle}/strip.png')
    assert strip.status_code == 200 and strip.headers['content-type'] == 'image/png'
    assert Image.open(io.BytesIO(strip.content)).size == (5 * 240, 180)
    in_image = client.get(f'/api/detections/{_alice_in_query(client)[0]}/strip.png')
    assert in_image.status_code == 400 and 'not a video' in in_image.json()['detail']
    # A detection query's export names its file and leaves the query out of its hits.
    alice = _alice_in_query(client)[0]
    by_detection = client.get(f'/api/export/hits.json?detection={alice}&top_k=2').json()
    assert by_detection['query'] == str(gallery / 'q.png')
    assert by_detection['query_box'] == list(map(float, ALICE_IN_Q))
    assert alice not in [hit['detection'] for hit in by_detection['hits']]


def _alice_walks_past_bob(path) -> str:
    """A 10 s video (5 frames/s) of Alice walking to the right towards Bob, who stands: 10 frames
    sampled at 1/s, each with the two of them and nothing else (at positions that are multiples
    of 8, the codec's blocks, so that its ringing makes no specks)."""
    frames = [scene([(ALICE, (8 * second, 16)), (BOB, (96, 8))], size=(64, 112))[0]
              for second in range(10)]
    return write_video(path, [frame for frame in frames for _ in range(5)], rate=5)


def _probing(searcher, probe):
    """`searcher`, calling `probe()` before each of its model calls: from the indexing thread,
    which waits for it, so what the probe sees follows the indexing step by step."""
    detect = searcher.detect

    def probed(images):
        probe()
        return detect(images)

    searcher.detect = probed
    return searcher


def test_status_counts_the_frames_of_the_video_being_indexed(tmp_path):
    """A long video is one file but minutes of model calls: the status says how far into it
    indexing is (`video`: its name, frames done, frames expected), and the page's bar moves
    with it."""
    gallery = tmp_path / 'gallery'
    gallery.mkdir()
    save_png(gallery / 'a.png', scene([(BOB, (10, 10))])[0])
    _alice_walks_past_bob(gallery / 'walk.mp4')
    seen = []
    session = GallerySession(
        _probing(content_searcher(), lambda: seen.append(client.get('/api/status').json())),
        [], str(tmp_path / 'index.npz'))
    client = TestClient(create_app(session))
    assert client.get('/api/status').json()['video'] is None
    session.add_gallery(str(gallery), wait=True)
    progress = [(s['state'], s['done'], s['total'], s['video']) for s in seen]
    walk = [{'name': 'walk.mp4', 'done': done, 'total': 10} for done in (0, 4, 8)]
    assert progress == [('indexing', 0, 2, None)] + [('indexing', 1, 2, v) for v in walk]
    final = client.get('/api/status').json()
    assert final['state'] == 'ready' and final['done'] == final['total'] == 2
    assert final['video'] is None and final['detections'] == 21


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _serving(session: GallerySession):
    """The app over `session` on 127.0.0.1 in a thread (its address), stopped afterwards."""
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(session), host='127.0.0.1', port=port,
                                           log_level='warning'))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.started, 'the app did not start within 30 s'
        yield f'http://127.0.0.1:{port}'
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def served_app(tmp_path):
    """The app over `_gallery` (indexed), served on 127.0.0.1 in a thread."""
    with _serving(_session(tmp_path)) as address:
        yield address


needs_browser = pytest.mark.skipif(
    not shutil.which('chromedriver') and not os.environ.get('PS_TF_REQUIRE_BROWSER'),
    reason='needs chromium-driver (apt-get install chromium chromium-driver; .ci/run installs '
    'it and sets PS_TF_REQUIRE_BROWSER, which turns this skip into a failure)')


@pytest.fixture
def browser():
    """A headless Chromium (WebDriver), quit after the test."""
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    for argument in ('--headless=new', '--no-sandbox', '--disable-dev-shm-usage',
                     '--window-size=1400,900'):
        options.add_argument(argument)
    if shutil.which('chromium'):
        options.binary_location = shutil.which('chromium')
    driver = webdriver.Chrome(service=webdriver.ChromeService(shutil.which('chromedriver')),
                              options=options)
    try:
        yield driver
    finally:
        driver.quit()


@needs_browser
def test_in_chromium_clicking_alice_shows_her_other_sighting_first(served_app, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 30)
    browser.get(served_app)
    wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, '.file')))
    files = {e.text.split(' (')[0]: e for e in browser.find_elements(By.CSS_SELECTOR, '.file')}
    assert set(files) == {'q.png', 'a.png', 'b.png', 'c.png'}
    files['q.png'].click()
    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, '#frame .det')) == 2)
    # Alice is the left person of q.png (x 10 against Bob's 60).
    alice = min(browser.find_elements(By.CSS_SELECTOR, '#frame .det'),
                key=lambda e: e.location['x'])
    started = time.perf_counter()
    alice.click()
    wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, '#hits .hit')))
    click_to_hits = time.perf_counter() - started
    first = browser.find_elements(By.CSS_SELECTOR, '#hits .hit')[0]
    assert 'c.png' in first.text and '#1 sim 1.000' in first.text
    assert click_to_hits < 10, click_to_hits
    first.click()   # opens the hit's frame with the hit's box marked
    marked = wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, '#frame .det.hit'))
    assert 'c.png' in browser.find_element(By.ID, 'caption').text
    # The box outlines the hit and does not hide them (no card background painted over them).
    assert marked[0].value_of_css_property('background-color') == 'rgba(0, 0, 0, 0)'
    assert browser.find_element(By.ID, 'message').text == ''


def _drag(browser, element, start, end) -> None:
    """Presses the mouse at `start` and releases it at `end`, in pixels of `element`."""
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    rect = element.rect
    actions = ActionBuilder(browser)
    actions.pointer_action.move_to_location(round(rect['x'] + start[0]),
                                            round(rect['y'] + start[1]))
    actions.pointer_action.pointer_down()
    actions.pointer_action.move_to_location(round(rect['x'] + end[0]), round(rect['y'] + end[1]))
    actions.pointer_action.pointer_up()
    actions.perform()


@needs_browser
def test_in_chromium_upload_draw_a_box_confirm_rerank_and_export(served_app, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 30)
    (tmp_path / 'notes.png').write_bytes(b'not an image')
    picture = save_png(tmp_path / 'alice.png', _alice_elsewhere(scale=4))   # 384 x 288
    browser.get(served_app)
    wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, '.file')))
    # A file that is no image: the server's message is shown, and the app keeps serving.
    browser.find_element(By.ID, 'upload').send_keys(str(tmp_path / 'notes.png'))
    wait.until(lambda b: 'not a readable' in b.find_element(By.ID, 'message').text)
    browser.find_element(By.ID, 'upload').send_keys(picture)
    image = wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, '#frame.drawing img')))
    assert browser.find_element(By.ID, 'message').text == ''
    assert image.size == {'width': 384, 'height': 288}   # shown at its own size: 1 px = 1 px
    _drag(browser, image, (160, 64), (224, 224))         # Alice: 40, 16, 56, 56, times 4
    assert browser.find_element(By.ID, 'box-text').text == 'box 160, 64, 224, 224'
    browser.find_element(By.ID, 'search-box').click()
    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, '#hits .hit')) == 8)   # all
    hits = browser.find_elements(By.CSS_SELECTOR, '#hits .hit')
    names = [hit.find_element(By.CSS_SELECTOR, '.name').text for hit in hits]
    assert set(names[:2]) == {'q.png', 'c.png'} and '#1 sim 1.000' in hits[0].text, names
    # Confirm the first, reject the last, re-rank: the rejected one is gone, the first kept.
    confirmed, rejected = (hit.get_attribute('data-detection') for hit in (hits[0], hits[-1]))
    hits[0].find_element(By.CSS_SELECTOR, '.confirm').click()
    wait.until(lambda b: 'confirmed' in hits[0].get_attribute('class'))
    hits[-1].find_element(By.CSS_SELECTOR, '.reject').click()
    wait.until(lambda b: 'rejected' in hits[-1].get_attribute('class'))
    assert browser.find_element(By.ID, 'marks').text == '1 confirmed, 1 rejected'
    browser.find_element(By.ID, 'rerank').click()
    wait.until(lambda b: not b.find_elements(By.CSS_SELECTOR,
                                             f'#hits .hit[data-detection="{rejected}"]'))
    shown = [hit.get_attribute('data-detection')
             for hit in browser.find_elements(By.CSS_SELECTOR, '#hits .hit')]
    assert len(shown) == 7 and confirmed in shown
    assert 'confirmed' in browser.find_element(
        By.CSS_SELECTOR, f'#hits .hit[data-detection="{confirmed}"]').get_attribute('class')
    # The page's hits.json link gives the hits it shows, in its order.
    exported = browser.execute_async_script(
        'fetch(document.getElementById("export-json").href).then(r => r.json())'
        '.then(arguments[0])')
    assert [str(hit['detection']) for hit in exported['hits']] == shown
    assert len(exported['marks']['confirmed']) == 1 and len(exported['marks']['rejected']) == 1
    assert browser.find_element(By.ID, 'message').text == ''


def test_the_command_names_a_bad_gallery_state_dir_or_model_without_a_traceback(tmp_path):
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    (tmp_path / 'empty').mkdir()
    _gallery(tmp_path / 'gallery')
    for gallery, more, message in (
            (tmp_path / 'empty', [], 'no images'),
            (tmp_path / 'gallery', [f'--state_dir={tmp_path / "gallery" / "app"}'],
             'is inside gallery'),   # checked before the (missing) model is loaded
            (tmp_path / 'gallery', [], 'is neither a train.py model_dir')):
        result = subprocess.run([sys.executable, os.path.join(root, 'search_app.py'),
                                 f'--model={tmp_path / "missing"}', f'--gallery={gallery}',
                                 *more], capture_output=True, text=True, timeout=300)
        assert result.returncode != 0 and message in result.stderr, result.stderr[-2000:]
        assert 'Traceback' not in result.stderr


@needs_browser
def test_in_chromium_the_bar_moves_within_a_video_whose_hits_sit_on_a_timeline(tmp_path, browser):
    """Indexing holds at the video's second batch of frames until the page has shown it; then
    Alice's hits grouped by file put the video's on a timeline, a tick per frame (its best hit:
    Alice, not Bob), one of which opens its frame."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    _gallery(tmp_path / 'gallery')
    _alice_walks_past_bob(tmp_path / 'gallery' / 'walk.mp4')
    shown = threading.Event()

    def hold_in_the_video():
        video = session.status()['video']
        if video and video['done'] == 4:
            shown.wait(timeout=60)   # longer than the page's wait below: that one fails first

    session = GallerySession(_probing(content_searcher(), hold_in_the_video), [],
                             str(tmp_path / 'index.npz'))
    wait = WebDriverWait(browser, 30)
    with _serving(session) as address:
        try:
            session.add_gallery(str(tmp_path / 'gallery'))
            browser.get(address)
            wait.until(lambda b: b.find_element(By.ID, 'status').text
                       == 'indexing 4/5 files · walk.mp4: frame 4 of 10 sampled')
            bar = browser.find_element(By.ID, 'progress')
            filled = bar.find_element(By.CSS_SELECTOR, 'div').size['width']
            assert abs(filled - bar.size['width'] * 4.4 / 5) < 1.5, filled   # not 4/5 files
        finally:
            shown.set()
        wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, '.file')))
        assert browser.find_element(By.ID, 'status').text == '5 files, 28 detections'
        browser.find_element(By.ID, 'topk').clear()
        browser.find_element(By.ID, 'topk').send_keys('40')   # every other detection: 27
        next(e for e in browser.find_elements(By.CSS_SELECTOR, '.file')
             if e.text.startswith('q.png')).click()
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, '#frame .det')) == 2)
        min(browser.find_elements(By.CSS_SELECTOR, '#frame .det'),
            key=lambda e: e.location['x']).click()   # Alice
        wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, '#hits .hit')))
        browser.find_element(By.ID, 'group').click()
        ticks = wait.until(lambda b: b.find_elements(By.CSS_SELECTOR,
                                                     '.group .timeline .tick.sighting'))
        groups = [g.text.split('\n')[0] for g in browser.find_elements(By.CSS_SELECTOR, '.group')]
        assert groups == ['a.png · 2 hits', 'b.png · 2 hits', 'c.png · 2 hits', 'q.png · 1 hit',
                          'walk.mp4 · 20 hits'], groups
        assert len(ticks) == 10 and all('and 1 more hit in this frame' in tick.get_attribute(
            'title') for tick in ticks)
        positions = sorted(tick.location['x'] for tick in ticks)   # 0 s to 9 s, evenly spaced
        assert np.ptp(np.diff(positions)) <= 1, positions
        ticks[0].find_element(By.XPATH, '..').find_element(
            By.XPATH, './div[contains(@title, "at 5.0 s")]').click()
        wait.until(lambda b: b.find_element(By.ID, 'caption').text.endswith('@ 5.0 s'))
        assert 'walk.mp4' in browser.find_element(By.ID, 'caption').text
        hit = browser.find_element(By.CSS_SELECTOR, '#frame .det.hit')   # Alice at x 40
        assert browser.execute_script(
            'return arguments[0].offsetLeft / document.querySelector("#frame img").clientWidth'
            ' * document.querySelector("#frame img").naturalWidth', hit) == pytest.approx(40, abs=1)
        assert browser.find_element(By.CSS_SELECTOR, '#timeline .selected').text == '5.0 s'
        assert browser.find_element(By.ID, 'message').text == ''
