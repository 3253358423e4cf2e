"""Test fixtures of search and the web app: drawn "people" pasted on a black background, and a
content model whose answer is unambiguous: it detects the pasted people and embeds a box by its
mean colours, so a person's pasted copies match exactly. (A random-weight ResNet cannot play
that part: its embeddings of all boxes have cosine >= 0.99.)"""

import io

import numpy as np
from PIL import Image

from ps_tf.search import searcher as searcher_lib


def person(seed: int, height: int = 40, width: int = 16) -> np.ndarray:
    """A 'person': head, torso, legs and stripes in colours (>= 60) fixed by the seed."""
    colours = np.random.default_rng(seed).integers(60, 256, (4, 3))
    crop = np.zeros((height, width, 3), np.uint8)
    crop[:height // 4], crop[height // 4:height * 3 // 5] = colours[0], colours[1]
    crop[height * 3 // 5:], crop[height // 4:height * 3 // 5:4] = colours[2], colours[3]
    return crop


def scene(people, size=(72, 96), background: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) image with `people` [(crop, (x1, y1)), ...] pasted; their x1, y1, x2, y2."""
    image = np.full(size + (3,), background, np.uint8)
    boxes = []
    for crop, (x, y) in people:
        image[y:y + crop.shape[0], x:x + crop.shape[1]] = crop
        boxes.append([x, y, x + crop.shape[1], y + crop.shape[0]])
    return image, np.asarray(boxes, np.float32)


def save_png(path, image) -> str:
    Image.fromarray(image).save(path)
    return str(path)


def _colour_embedding(crop: np.ndarray) -> np.ndarray:
    grid = np.asarray(Image.fromarray(crop).resize((2, 4), Image.BOX), np.float32).reshape(-1)
    return grid / np.linalg.norm(grid)


def content_searcher(max_detections: int = 4):
    from scipy import ndimage

    def detect_images(images):
        boxes = np.zeros((len(images), max_detections, 4), np.float32)
        scores = np.zeros((len(images), max_detections), np.float32)
        embeddings = np.zeros((len(images), max_detections, 24), np.float32)
        counts = np.zeros(len(images), np.int32)
        for i, image in enumerate(np.asarray(images)):
            labels, _ = ndimage.label(image.max(axis=-1) > 30)
            for k, (rows, cols) in enumerate(ndimage.find_objects(labels)[:max_detections]):
                boxes[i, k] = [cols.start, rows.start, cols.stop, rows.stop]
                scores[i, k] = 0.9
                embeddings[i, k] = _colour_embedding(image[rows, cols])
                counts[i] = k + 1
        return {'detection_boxes': boxes, 'detection_scores': scores, 'num_detections': counts,
                'detection_embeddings': embeddings}

    def embed_boxes(image_bytes, boxes):
        image = np.asarray(Image.open(io.BytesIO(image_bytes)).convert('RGB'))
        return {'embeddings': np.stack([_colour_embedding(image[int(y1):int(y2), int(x1):int(x2)])
                                        for x1, y1, x2, y2 in boxes])}

    return searcher_lib.Searcher(detect_images, embed_boxes, 24, 'content-model')
