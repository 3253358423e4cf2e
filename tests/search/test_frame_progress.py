"""Frame progress of video indexing: `sampled_frame_count` predicts how many frames
`video_frames` yields, and `update_index(on_frame=...)` reports a video's frames as they are
indexed (the web app's progress bar within a long video)."""

import numpy as np
import pytest

from ps_tf.search.media import sampled_frame_count, video_frames
from ps_tf.search.searcher import FRAME_BATCH, update_index
from search_fixtures import content_searcher, person, save_png, scene, write_video


def _walk(count: int) -> list[np.ndarray]:
    return [scene([(person(0), (4 + i % 70, 12))], size=(64, 96))[0] for i in range(count)]


@pytest.mark.parametrize('container', ['mp4', 'mkv', 'avi'])   # mkv: no frame count, a duration
@pytest.mark.parametrize('rate,count', [(5, 26), (30, 95)])
def test_sampled_frame_count_is_what_video_frames_yields(tmp_path, container, rate, count):
    path = write_video(tmp_path / f'walk.{container}', _walk(count), rate)
    for fps in (0.5, 1.0, 2.0, 7.0, 50.0):
        assert sampled_frame_count(path, fps) == len(list(video_frames(path, fps))), fps
    with pytest.raises(ValueError, match='fps must be > 0'):
        sampled_frame_count(path, 0)


def test_update_index_reports_each_video_s_frames(tmp_path):
    gallery = tmp_path / 'gallery'
    gallery.mkdir()
    save_png(gallery / 'a.png', scene([(person(1), (10, 10))])[0])
    video = write_video(gallery / 'walk.mp4', _walk(50), rate=5)   # 10 s: 10 frames at 1/s
    paths = [str(gallery / 'a.png'), video]
    frames, files = [], []
    index, indexed = update_index(content_searcher(), paths, str(tmp_path / 'index.npz'), 1.0,
                                  progress=False, on_file=lambda *a: files.append(a),
                                  on_frame=lambda *a: frames.append(a))
    assert FRAME_BATCH == 4 and indexed == 2
    assert frames == [(video, 0, 10), (video, 4, 10), (video, 8, 10), (video, 10, 10)]
    assert files == [(0, 2), (1, 2), (2, 2)]
    assert len(np.unique(index.detections['det_time'][index.detections_of([video])])) == 10
    # Nothing to index: no calls; and without on_frame, indexing is as it was.
    frames.clear()
    update_index(content_searcher(), paths, str(tmp_path / 'index.npz'), 1.0, progress=False,
                 on_frame=lambda *a: frames.append(a))
    assert frames == []
    plain, _ = update_index(content_searcher(), paths, str(tmp_path / 'plain.npz'), 1.0,
                            progress=False)
    for name, values in plain.detections.items():
        np.testing.assert_array_equal(values, index.detections[name], err_msg=name)
