"""search.py (folder, glob and video galleries; the reused and extended index) and the chunked
exact search of `ps_tf.search.index`.

Two models: a random-weight J4 joint model (64 px, 8-d embeddings) in train.py's directory layout
for the pipeline (indexing, index reuse, video), and, for "finds the query at rank 1", a
content model whose answer is unambiguous: it detects the people pasted on a black background
and embeds a box by its mean colours, so the query person's pasted copy matches exactly. A
random-weight ResNet cannot play that part: its embeddings of all boxes have cosine >= 0.99.
"""

import dataclasses
import io
import json
import os
import pathlib

import numpy as np
import pytest
from PIL import Image

from ps_tf.search import media, pipeline
from search_fixtures import content_searcher, person, save_png, scene, write_video
from ps_tf.search import searcher as searcher_lib
from ps_tf.search.index import GalleryIndex, SourceKey, top_k_cosine

ROOT = pathlib.Path(__file__).resolve().parents[1]
IMAGE = 64


def random_model_dir(model_dir: str, embedding_dim: int = 8) -> str:
    """A train.py model_dir (stage 1 + stage 2 layout) holding a random-weight J4 model."""
    import tensorflow as tf

    from ps_tf import config as config_lib
    from ps_tf.models.reid import build_reid_branch
    from ps_tf.models import factory

    config = dataclasses.replace(config_lib.PRESETS['synthetic'].detection, variant='J4',
                                 image_size=IMAGE, weights='none')
    config_lib.save_config(config, model_dir)
    tf.keras.utils.set_random_seed(0)
    detector = factory.build_model(config)
    detector(tf.zeros([1, IMAGE, IMAGE, 3]), training=False)
    source = tf.train.Checkpoint(model=detector).save(os.path.join(model_dir, 'checkpoints',
                                                                   'ckpt'))
    reid_dir = os.path.join(model_dir, 'reid')
    tf.train.Checkpoint(reid=build_reid_branch('J4', embedding_dim)).save(
        os.path.join(reid_dir, 'checkpoints', 'ckpt'))
    with open(os.path.join(reid_dir, 'config.json'), 'w') as f:
        json.dump({'source_checkpoint': source, 'embedding_dim': embedding_dim,
                   'variant': 'J4'}, f)
    return model_dir


def iou(a, b) -> float:
    inter = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
    area = lambda box: (box[2] - box[0]) * (box[3] - box[1])
    return inter / (area(a) + area(b) - inter)


def test_finds_the_query_person_at_rank_1(tmp_path):
    alice, bob, carol, dave = (person(seed) for seed in range(4))
    query, query_boxes = scene([(alice, (10, 20)), (bob, (60, 12))])
    query_path = save_png(tmp_path / 'query.png', query)
    gallery = tmp_path / 'gallery'
    gallery.mkdir()
    truth = {}
    for name, people in [('a.png', [(carol, (4, 8)), (alice, (70, 30))]),
                         ('b.png', [(bob, (30, 20)), (dave, (70, 2))]),
                         ('c.png', [(dave, (5, 5)), (carol, (40, 30))])]:
        image, boxes = scene(people)
        save_png(gallery / name, image)
        truth[name] = boxes
    box_flag = ','.join(str(v) for v in query_boxes[0])
    result = pipeline.run('unused', str(gallery), str(tmp_path / 'out'), query_image=query_path,
                          query_box=box_flag, top_k=3, searcher=content_searcher())
    hits = result['hits']
    assert [hit['rank'] for hit in hits] == [1, 2, 3]
    assert os.path.basename(hits[0]['file']) == 'a.png' and hits[0]['frame_time'] is None
    assert iou(hits[0]['box'], truth['a.png'][1]) > 0.9
    assert hits[0]['similarity'] > 0.999 > hits[1]['similarity']
    assert hits[0]['similarity'] >= hits[1]['similarity'] >= hits[2]['similarity']
    written = json.loads((tmp_path / 'out' / 'hits.json').read_text())
    assert written['hits'] == hits and written['query_box'] == query_boxes[0].tolist()
    sheet = Image.open(result['contact_sheet'])
    assert sheet.size == (4 * 240, 180)    # the query and 3 hits in one row
    # The same person given as a crop: same answer.
    crop_path = save_png(tmp_path / 'crop.png', alice)
    by_crop = pipeline.run('unused', str(gallery / '*.png'), str(tmp_path / 'out2'),
                           query_crop=crop_path, top_k=1, searcher=content_searcher())
    assert os.path.basename(by_crop['hits'][0]['file']) == 'a.png'
    assert by_crop['hits'][0]['box'] == hits[0]['box']
    # Detections below --min_score (every one of this model scores 0.9) are not ranked.
    strict = pipeline.run('unused', str(gallery), str(tmp_path / 'out3'), query_crop=crop_path,
                          top_k=3, searcher=content_searcher(), min_score=0.95)
    assert strict['hits'] == [] and strict['indexed_files'] == 3


def test_no_hits_above_min_score_says_so_and_how_to_change_it(tmp_path, capsys):
    gallery = tmp_path / 'gallery'
    gallery.mkdir()
    save_png(gallery / 'a.png', scene([(person(1), (4, 8)), (person(2), (60, 20))])[0])
    crop = save_png(tmp_path / 'crop.png', person(1))
    result = pipeline.run('unused', str(gallery), str(tmp_path / 'out'), query_crop=crop,
                          searcher=content_searcher(), min_score=0.95, progress=False)
    assert result['hits'] == []    # every detection of the content model scores 0.9
    for text in (result['warning'], capsys.readouterr().err):
        assert 'no hits' in text and 'below --min_score 0.95' in text
        assert 'best scores 0.9000' in text and '--min_score=0.9 ' in text
    written = json.loads((tmp_path / 'out' / 'hits.json').read_text())
    assert written['hits'] == [] and written['warning'] == result['warning']
    # The suggested value ranks them; no warning then.
    again = pipeline.run('unused', str(gallery), str(tmp_path / 'out'), query_crop=crop,
                         searcher=content_searcher(), min_score=0.9, progress=False)
    assert len(again['hits']) == 2 and again['warning'] is None and again['indexed_files'] == 0
    assert 'warning' not in capsys.readouterr().err
    # A gallery without anyone in it: the detector found no one.
    empty = tmp_path / 'empty'
    empty.mkdir()
    save_png(empty / 'black.png', np.zeros((32, 32, 3), np.uint8))
    nobody = pipeline.run('unused', str(empty), str(tmp_path / 'out2'), query_crop=crop,
                          searcher=content_searcher(), progress=False)
    assert nobody['hits'] == [] and 'found no one' in nobody['warning']


def test_a_jpeg_gives_the_same_pixels_and_detections_as_query_and_in_the_gallery(tmp_path):
    from ps_tf import serving

    # People on a noisy background: TensorFlow's and PIL's JPEG decoders differ on it.
    image, boxes = scene([(person(0), (10, 20)), (person(1), (60, 12))])
    noise = np.random.default_rng(0).integers(0, 25, image.shape)
    image = np.where(image.max(axis=-1, keepdims=True) > 0, image, noise).astype(np.uint8)
    gallery = tmp_path / 'gallery'
    gallery.mkdir()
    path = str(gallery / 'scene.jpg')
    Image.fromarray(image).save(path, quality=85)
    content = content_searcher()
    seen = {}

    def detect_images(images):
        seen['gallery'] = np.asarray(images)[0]
        outputs = content._detect(images=images)
        seen['gallery_embeddings'] = outputs['detection_embeddings'][0]
        return outputs

    def embed_boxes(image_bytes, boxes):
        # What the SavedModel's embed_boxes does with the bytes it is given.
        seen['query'] = serving.decode_image(image_bytes).numpy()
        found = content._detect(images=seen['query'][None])
        seen['query_detections'] = found['detection_boxes'][0, :found['num_detections'][0]]
        encoded = io.BytesIO()
        Image.fromarray(seen['query']).save(encoded, format='PNG')
        seen['query_embedding'] = content._embed(image_bytes=encoded.getvalue(), boxes=boxes)
        return seen['query_embedding']

    searcher = searcher_lib.Searcher(detect_images, embed_boxes, 24, 'recording')

    def search(box):
        return pipeline.run('unused', str(gallery), str(tmp_path / 'out'), query_image=path,
                            query_box=','.join(str(v) for v in box), top_k=1,
                            searcher=searcher, progress=False)

    result = search(boxes[0])
    np.testing.assert_array_equal(seen['query'], seen['gallery'])     # bit-identical pixels
    index = GalleryIndex.load(result['index'])
    np.testing.assert_array_equal(seen['query_detections'], index.detections['det_boxes'])
    # A gallery detection's box as the query box finds itself, with the same embedding.
    detected = index.detections['det_boxes'][0]
    again = search(detected)['hits'][0]
    assert again['box'] == detected.tolist() and again['similarity'] > 0.999   # float16 index
    np.testing.assert_array_equal(seen['query_embedding']['embeddings'][0],
                                  seen['gallery_embeddings'][0])


# --------------------------------------------------------------------- the joint model

@pytest.fixture(scope='module')
def searcher(tmp_path_factory):
    model_dir = random_model_dir(str(tmp_path_factory.mktemp('model')))
    return searcher_lib.Searcher.load(model_dir, score_threshold=0.0, max_detections=5)


def _gallery_image(seed: int) -> np.ndarray:
    people = [(person(seed), (8 + 7 * seed, 10)), (person(seed + 10), (60, 20))]
    return scene(people, background=40 + 10 * seed)[0]


@pytest.mark.slow
def test_index_is_reused_and_extended(searcher, tmp_path):
    gallery = tmp_path / 'gallery'
    gallery.mkdir()
    for seed in range(2):
        save_png(gallery / f'{seed}.png', _gallery_image(seed))
    query = save_png(tmp_path / 'query.png', _gallery_image(5))
    index_path = str(tmp_path / 'index' / 'gallery.npz')

    def search():
        return pipeline.run('unused', str(gallery), str(tmp_path / 'out'), query_image=query,
                            query_box='10,10,30,50', index=index_path, top_k=4,
                            searcher=searcher, progress=False, min_score=0.0)

    first = search()
    assert first['indexed_files'] == 2 and first['model_calls'] == 3   # 2 images + the query
    assert len(first['hits']) == 4 and all(-1.0 <= h['similarity'] <= 1.0 for h in first['hits'])
    before = GalleryIndex.load(index_path)
    assert len(before) == 10 and before.model_id == searcher.model_id   # 5 detections each

    second = search()                      # nothing new: only the query runs through the model
    assert second['indexed_files'] == 0 and second['model_calls'] == 1
    assert second['hits'] == first['hits']

    save_png(gallery / '2.png', _gallery_image(2))
    third = search()
    assert third['indexed_files'] == 1 and third['model_calls'] == 2
    after = GalleryIndex.load(index_path)
    assert len(after) == 15 and [k.path for k in after.keys][:2] == [k.path for k in before.keys]
    np.testing.assert_array_equal(after.detections['det_embeddings'][:10],
                                  before.detections['det_embeddings'])
    # The embeddings stored are the model's (float16 on disk).
    again = searcher.detect(_gallery_image(2)[None])[0]
    np.testing.assert_allclose(after.detections['det_embeddings'][10:].astype(np.float32),
                               again['embeddings'], atol=2e-3)
    np.testing.assert_allclose(after.detections['det_boxes'][10:], again['boxes'], atol=1e-4)


def test_video_gallery(searcher, tmp_path):
    frames = [scene([(person(1), (4 + 6 * t, 12)), (person(2), (70, 20))], size=(64, 96),
                    background=50)[0] for t in range(10)]
    video = str(tmp_path / 'walk.mp4')
    write_video(video, frames, rate=5)
    sampled = list(media.video_frames(video, fps=2.5))
    assert [t for t, _ in sampled] == pytest.approx([0.0, 0.4, 0.8, 1.2, 1.6])
    assert sampled[0][1].shape == (64, 96, 3) and sampled[0][1].dtype == np.uint8
    # Lossy coding, but the first frame is close to what was written.
    assert np.abs(sampled[0][1].astype(int) - frames[0]).mean() < 12
    query = save_png(tmp_path / 'query.png', frames[0])
    result = pipeline.run('unused', video, str(tmp_path / 'out'), query_image=query,
                          query_box='4,12,20,52', top_k=3, fps=2.5, searcher=searcher,
                          progress=False, min_score=0.0)
    assert result['indexed_files'] == 1 and result['model_calls'] == 3   # 5 frames in 2 batches
    index = GalleryIndex.load(result['index'])
    assert sorted(set(index.detections['det_time'].round(3))) == [0.0, 0.4, 0.8, 1.2, 1.6]
    assert index.keys[0].fps == 2.5
    for hit in result['hits']:
        assert hit['file'] == os.path.abspath(video)
        assert hit['frame_time'] in (0.0, 0.4, 0.8, 1.2, 1.6)
        x1, y1, x2, y2 = hit['box']
        assert 0 <= x1 < x2 <= 96 and 0 <= y1 < y2 <= 64
    assert Image.open(result['contact_sheet']).size == (4 * 240, 180)


def test_bad_query_and_gallery(searcher, tmp_path):
    save_png(tmp_path / 'a.png', _gallery_image(0))
    for box in ('10,10,5,50', '1,2,3', 'a,b,c,d'):
        with pytest.raises(ValueError, match='x1,y1,x2,y2'):
            searcher_lib.query_embedding(searcher, str(tmp_path / 'a.png'), box)
    with pytest.raises(ValueError, match='either --query_crop or --query_image'):
        searcher_lib.query_embedding(searcher)
    with pytest.raises(ValueError, match='no images'):
        media.list_gallery(str(tmp_path / 'nothing' / '*.png'))


# --------------------------------------------------------------------- index and exact search

@pytest.mark.parametrize('chunk_size', [1, 3, 7, 1000])
def test_top_k_cosine_matches_brute_force(chunk_size):
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(50, 6)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    queries = embeddings[[3, 17]] + 0.01
    scores, index = top_k_cosine(queries, embeddings, k=5, chunk_size=chunk_size)
    expected = np.argsort(-(queries @ embeddings.T), axis=1)[:, :5]
    np.testing.assert_array_equal(index, expected)
    assert index[0, 0] == 3 and index[1, 0] == 17
    np.testing.assert_allclose(scores, np.take_along_axis(queries @ embeddings.T, expected, 1),
                               rtol=1e-6)
    short, _ = top_k_cosine(queries, embeddings[:2], k=5, chunk_size=chunk_size)
    assert short.shape == (2, 2)


def test_top_k_cosine_on_float16_memmap(tmp_path):
    rng = np.random.default_rng(1)
    embeddings = rng.normal(size=(1000, 8)).astype(np.float16)
    path = str(tmp_path / 'e.npy')
    np.save(path, embeddings)
    mapped = np.load(path, mmap_mode='r')
    query = embeddings[[123]].astype(np.float32)
    _, index = top_k_cosine(query, mapped, k=10, chunk_size=64)
    expected = np.argsort(-(query @ embeddings.astype(np.float32).T), axis=1)[:, :10]
    np.testing.assert_array_equal(index, expected)
    with pytest.raises(ValueError, match='must be'):
        top_k_cosine(query[:, :4], mapped, k=1)


def test_gallery_index_round_trip_and_replacement(tmp_path):
    index = GalleryIndex('model', 2)
    one = SourceKey('/g/one.png', 1, 10)
    index.add(one, [-1, -1], [[0, 0, 1, 1], [1, 1, 2, 2]], [0.5, 0.6], [[1, 0], [0, 1]])
    index.add(SourceKey('/g/v.mp4', 2, 20, 1.0), [0.0], [[0, 0, 3, 3]], [0.7], [[1, 0]])
    index.add(SourceKey('/g/one.png', 3, 10), [-1], [[5, 5, 6, 6]], [0.9], [[0, 1]])  # changed
    path = str(tmp_path / 'i.npz')
    index.save(path)
    loaded = GalleryIndex.load(path)
    assert [k.path for k in loaded.keys] == ['/g/v.mp4', '/g/one.png'] and len(loaded) == 2
    np.testing.assert_array_equal(loaded.detections['det_file'], [0, 1])
    np.testing.assert_array_equal(loaded.detections['det_boxes'][1], [5, 5, 6, 6])
    assert loaded.missing([one, SourceKey('/g/v.mp4', 2, 20, 1.0)]) == [one]
    np.testing.assert_array_equal(loaded.detections_of(['/g/one.png']), [False, True])
    assert os.listdir(tmp_path) == ['i.npz']     # no temporary files left behind


def _clustered(rng, count, dim=32, clusters=200):
    centres = rng.standard_normal((clusters, dim))
    vectors = centres[rng.integers(0, clusters, count)] + 0.3 * rng.standard_normal((count, dim))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def test_hnsw_search_agrees_with_exact_and_caches_its_graph(tmp_path):
    pytest.importorskip('faiss')
    from ps_tf.search.index import top_k_hnsw
    rng = np.random.default_rng(0)
    embeddings = _clustered(rng, 5000)
    queries = _clustered(rng, 20)
    exact_scores, exact = top_k_cosine(queries, embeddings, 10)
    cache = str(tmp_path / 'index.npz')
    scores, found = top_k_hnsw(queries, embeddings, 10, ef_search=256, cache_path=cache)
    recall = np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact)])
    assert recall >= 0.99, recall
    np.testing.assert_allclose(scores[:, 0], exact_scores[:, 0], atol=1e-5)
    graphs = list(tmp_path.glob('index.npz.5000-*.hnsw'))
    assert len(graphs) == 1
    stamp = graphs[0].stat().st_mtime_ns
    again = top_k_hnsw(queries, embeddings, 10, ef_search=256, cache_path=cache)
    np.testing.assert_array_equal(again[1], found)
    assert graphs[0].stat().st_mtime_ns == stamp                 # loaded, not rebuilt
    top_k_hnsw(queries, embeddings[:4000], 10, cache_path=cache)  # other embeddings: new graph
    assert len(list(tmp_path.glob('index.npz.*.hnsw'))) == 2


def test_search_command_with_approximate_search(tmp_path):
    pytest.importorskip('faiss')
    alice, bob = person(0), person(1)
    query, query_boxes = scene([(alice, (10, 20))])
    gallery = tmp_path / 'gallery'
    gallery.mkdir()
    save_png(gallery / 'a.png', scene([(bob, (4, 8)), (alice, (70, 30))])[0])
    save_png(gallery / 'b.png', scene([(bob, (30, 20))])[0])
    result = pipeline.run('unused', str(gallery), str(tmp_path / 'out'),
                          query_image=save_png(tmp_path / 'q.png', query),
                          query_box=','.join(str(v) for v in query_boxes[0]), top_k=2,
                          searcher=content_searcher(), ann_ef_search=64)
    assert os.path.basename(result['hits'][0]['file']) == 'a.png'
    assert result['hits'][0]['similarity'] > 0.999


def _index_arrays(path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def test_sharded_indexing_merges_into_the_index_of_one_run(tmp_path, capsys):
    gallery = tmp_path / 'gallery'
    gallery.mkdir()
    for i in range(7):   # 1 to 3 people each, so the shards hold different detection counts
        save_png(gallery / f'{i}.png', scene([(person(10 * i + k), (4 + 30 * k, 8 + 5 * k))
                                              for k in range(1 + i % 3)])[0])
    crop = save_png(tmp_path / 'crop.png', person(31))
    whole = pipeline.run('unused', str(gallery), str(tmp_path / 'one'), query_crop=crop,
                         searcher=content_searcher(), progress=False)

    index = str(tmp_path / 'sharded' / 'index.npz')
    shards = [pipeline.index_shard('unused', str(gallery), index, i, 3,
                                   searcher=content_searcher(), progress=False)
              for i in (2, 0)]
    assert [s['indexed_files'] for s in shards] == [2, 3]         # files 2, 5 and 0, 3, 6
    assert sorted(os.listdir(tmp_path / 'sharded')) == [
        'index.shard-000-of-003.npz', 'index.shard-002-of-003.npz']
    # An incomplete set is not merged: this search indexes the gallery itself.
    pending = pipeline.run('unused', str(gallery), str(tmp_path / 'pending'), query_crop=crop,
                           searcher=content_searcher(), progress=False,
                           index=str(tmp_path / 'pending.npz'))
    assert pending['indexed_files'] == 7
    searcher = content_searcher()
    pipeline.index_shard('unused', str(gallery), index, 1, 3, searcher=searcher,
                         progress=False)
    merged = pipeline.run('unused', str(gallery), str(tmp_path / 'merged'), query_crop=crop,
                          searcher=searcher, progress=False, index=index)
    assert merged['indexed_files'] == 0 and 'merged 7 files from 3 shard files' in \
        capsys.readouterr().out
    assert os.listdir(tmp_path / 'sharded') == ['index.npz']      # the shards are deleted
    expected, got = _index_arrays(whole['index']), _index_arrays(index)
    assert expected.keys() == got.keys()
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
    assert merged['hits'] == whole['hits']
    # A shard job skips what the index already holds.
    again = pipeline.index_shard('unused', str(gallery), index, 0, 3,
                                 searcher=content_searcher(), progress=False)
    assert again['indexed_files'] == 0
    with pytest.raises(ValueError, match=r'shard_index must be in \[0, 3\)'):
        pipeline.index_shard('unused', str(gallery), index, 3, 3, searcher=content_searcher())
