"""The operator web app: its API over a small gallery (files by id only, tokens, bad requests),
and a real headless Chromium that clicks a person and gets the other sightings first.

The model is the content model of `search_fixtures` (people pasted on black, embedded by their
colours), so the right answer is unambiguous.
"""

import os
import shutil
import socket
import threading
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

from ps_tf.app.server import create_app
from ps_tf.app.session import GallerySession
from search_fixtures import content_searcher, person, save_png, scene

ALICE, BOB, CAROL, DAVE = (person(seed) for seed in range(4))


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


def _session(tmp_path) -> GallerySession:
    _gallery(tmp_path / 'gallery')
    session = GallerySession(content_searcher(), [str(tmp_path / 'gallery')],
                             str(tmp_path / 'index.npz'))
    session.wait()
    return session


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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture
def served_app(tmp_path):
    """The app on 127.0.0.1 in a thread, stopped after the test."""
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(_session(tmp_path)), host='127.0.0.1',
                                           port=port, log_level='warning'))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, 'the app did not start within 30 s'
    yield f'http://127.0.0.1:{port}'
    server.should_exit = True
    thread.join(timeout=10)


@pytest.mark.skipif(not shutil.which('chromedriver') and not os.environ.get(
    'PS_TF_REQUIRE_BROWSER'), reason='needs chromium-driver (apt-get install chromium '
    'chromium-driver; .ci/run installs it and sets PS_TF_REQUIRE_BROWSER, which turns this '
    'skip into a failure)')
def test_in_chromium_clicking_alice_shows_her_other_sighting_first(served_app):
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    for argument in ('--headless=new', '--no-sandbox', '--disable-dev-shm-usage',
                     '--window-size=1400,900'):
        options.add_argument(argument)
    if shutil.which('chromium'):
        options.binary_location = shutil.which('chromium')
    browser = webdriver.Chrome(service=webdriver.ChromeService(shutil.which('chromedriver')),
                               options=options)
    try:
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
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, '#frame .det.hit'))
        assert 'c.png' in browser.find_element(By.ID, 'caption').text
        assert browser.find_element(By.ID, 'message').text == ''
    finally:
        browser.quit()


def test_the_command_names_a_bad_gallery_or_model_without_a_traceback(tmp_path):
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    (tmp_path / 'empty').mkdir()
    _gallery(tmp_path / 'gallery')
    for gallery, message in ((tmp_path / 'empty', 'no images'),
                             (tmp_path / 'gallery', 'is neither a train.py model_dir')):
        result = subprocess.run([sys.executable, os.path.join(root, 'search_app.py'),
                                 f'--model={tmp_path / "missing"}', f'--gallery={gallery}'],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode != 0 and message in result.stderr, result.stderr[-2000:]
        assert 'Traceback' not in result.stderr
