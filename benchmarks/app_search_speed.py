"""The web app's click-to-hits time in a real browser on a large gallery index, against the
search alone (`GallerySession.search`, no HTTP, no browser) measured in the same run.

A gallery of `--images` drawn 320 x 240 PNGs is written to a temporary folder with an index of
`--people` detections per image (random boxes, random L2-normalised 128-d embeddings), so no
model runs: the app finds every file indexed. Headless Chromium (Debian's chromium +
chromium-driver, Selenium) opens the app on 127.0.0.1, picks a file, clicks a person and waits
(a) for the ranked hits to appear and (b) for every hit's thumbnail to load; the page's own
timing of the search request (fetch + JSON) is printed beside them. The outer times include
WebDriver's polling round trips.

    python benchmarks/app_search_speed.py                  # 1,000 images, 5 people each
    python benchmarks/app_search_speed.py --images=5000 --top_k=50
"""

from __future__ import annotations

import shutil
import socket
import statistics
import tempfile
import threading
import time

import numpy as np
from absl import app, flags
from PIL import Image

from ps_tf.app.server import create_app
from ps_tf.app.session import GallerySession
from ps_tf.search.index import GalleryIndex, SourceKey
from ps_tf.search.searcher import Searcher

flags.DEFINE_integer('images', 1000, 'Gallery images.')
flags.DEFINE_integer('people', 5, 'Detections per image.')
flags.DEFINE_integer('top_k', 20, 'Hits per search.')
flags.DEFINE_integer('clicks', 5, 'Searches timed (different people).')
FLAGS = flags.FLAGS
MODEL_ID = 'benchmark-random-embeddings'


def write_gallery(directory: str, index_path: str) -> None:
    rng = np.random.default_rng(0)
    index = GalleryIndex(MODEL_ID, 128)
    for i in range(FLAGS.images):
        path = f'{directory}/{i:05d}.png'
        Image.fromarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)).save(path)
        x = rng.uniform(0, 260, FLAGS.people)
        y = rng.uniform(0, 120, FLAGS.people)
        boxes = np.stack([x, y, x + 40, y + 100], axis=1)
        embeddings = rng.standard_normal((FLAGS.people, 128))
        embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
        index.add(SourceKey.of(path), np.full(FLAGS.people, -1.0), boxes,
                  np.full(FLAGS.people, 0.9), embeddings)
    index.save(index_path)


def no_model(*args, **kwargs):
    raise AssertionError('every file is indexed: the model must not run')


def main(argv):
    del argv
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    directory = tempfile.mkdtemp(prefix='app_search_speed_')
    try:
        write_gallery(directory, f'{directory}.index.npz')
        session = GallerySession(Searcher(no_model, no_model, 128, MODEL_ID), [directory],
                                 f'{directory}.index.npz')
        session.wait()
        print(f'gallery: {session.status()}')
        rows = [p * FLAGS.people for p in range(FLAGS.clicks)]
        alone = []
        for row in rows:
            started = time.perf_counter()
            session.search(row, FLAGS.top_k)
            alone.append(time.perf_counter() - started)

        import uvicorn
        with socket.socket() as s:
            s.bind(('127.0.0.1', 0))
            port = s.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(create_app(session), host='127.0.0.1', port=port,
                                               log_level='warning'))
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.05)
        options = webdriver.ChromeOptions()
        for argument in ('--headless=new', '--no-sandbox', '--disable-dev-shm-usage'):
            options.add_argument(argument)
        options.binary_location = shutil.which('chromium') or ''
        browser = webdriver.Chrome(service=webdriver.ChromeService(shutil.which('chromedriver')),
                                   options=options)
        wait = WebDriverWait(browser, 60, poll_frequency=0.005)
        hits_shown, thumbnails_loaded, in_page = [], [], []
        try:
            browser.get(f'http://127.0.0.1:{port}/')
            wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, '.file'))
            browser.find_element(By.ID, 'topk').clear()
            browser.find_element(By.ID, 'topk').send_keys(str(FLAGS.top_k))
            for image in range(FLAGS.clicks):
                entry = browser.find_elements(By.CSS_SELECTOR, '.file')[image]
                file_id = entry.get_attribute('data-id')
                entry.click()
                wait.until(lambda b: b.execute_script(
                    "const f = document.getElementById('frame');"
                    "return f.dataset.fileId === arguments[0] && f.querySelector('.det')",
                    file_id))
                person = browser.find_elements(By.CSS_SELECTOR, '#frame .det')[-1]
                browser.execute_script("document.getElementById('hits').innerHTML = ''")
                started = time.perf_counter()
                person.click()
                wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, '#hits .hit'))
                hits_shown.append(time.perf_counter() - started)
                wait.until(lambda b: b.execute_script(
                    "return [...document.querySelectorAll('#hits img')]"
                    ".every(i => i.complete && i.naturalWidth > 0)"))
                thumbnails_loaded.append(time.perf_counter() - started)
                in_page.append(float(browser.find_element(By.ID, 'query').text
                                     .split(' hits in ')[1].split(' s')[0]))
        finally:
            browser.quit()
            server.should_exit = True
        detections = FLAGS.images * FLAGS.people
        print(f'{FLAGS.images} images, {detections} detections, top-{FLAGS.top_k}, '
              f'{FLAGS.clicks} searches (medians):')
        print(f'  search alone (GallerySession.search): {statistics.median(alone) * 1e3:.1f} ms')
        print(f'  in the page, the search request (fetch + JSON): '
              f'{statistics.median(in_page) * 1e3:.0f} ms')
        print(f'  browser, click to hits shown: {statistics.median(hits_shown) * 1e3:.0f} ms '
              f'({statistics.median(hits_shown) / statistics.median(alone):.1f}x the search)')
        print(f'  browser, click to every thumbnail loaded: '
              f'{statistics.median(thumbnails_loaded) * 1e3:.0f} ms')
    finally:
        shutil.rmtree(directory, ignore_errors=True)
        shutil.rmtree(f'{directory}.index.npz', ignore_errors=True)


if __name__ == '__main__':
    app.run(main)
