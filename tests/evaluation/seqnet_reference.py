"""Test oracle: SeqNet's `eval_func.py` transcribed loop for loop (serend1p1ty/SeqNet), plus the
OIM/NAE variants docs/evaluation.md#differences-from-other-implementations names (every duplicate
entry ranked; the working full-set mode).

Deliberately slow and literal: per-image Python loops, scalar `_compute_iou`, float32
`feat_g.dot(feat_q)` similarities and scikit-learn's `average_precision_score`. The only edits to
the original: inputs come from ps_tf's protocol structures, `det != []` became `len(det) != 0`
(NumPy >= 2 note in docs/evaluation.md#the-reference-in-the-tests), `dedupe_gallery` switches the
duplicate check, the full set follows OIM/NAE (rest of the gallery after the list, query image
excluded), and nothing is printed.
"""

import numpy as np
from sklearn.metrics import average_precision_score

from ps_tf.evaluation import protocol as protocol_lib

UNLABELED = 5555


def _compute_iou(a, b):
    x1 = max(a[0], b[0])
    y1 = max(a[1], b[1])
    x2 = min(a[2], b[2])
    y2 = min(a[3], b[3])
    inter = max(0, x2 - x1) * max(0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter * 1.0 / union


def reference_inputs(protocol, det_image, det_boxes, det_scores, det_embeddings):
    """SeqNet's inputs: annotations per gallery image, dets (n, 5) float32 and feats per image."""
    gallery = protocol.gallery
    gt = protocol.gallery_gt_boxes()
    annotations, dets, feats = [], [], []
    for n, name in enumerate(gallery.names.tolist()):
        rows = np.arange(gallery.box_offsets[n], gallery.box_offsets[n + 1])
        rows = rows[~gallery.ignore[rows]]
        pids = gallery.person_ids[rows].copy()
        pids[pids == protocol_lib.NO_IDENTITY] = UNLABELED
        annotations.append({'img_name': name, 'boxes': gt[rows], 'pids': pids,
                            'cam_id': int(gallery.cameras[n])})
        index = np.flatnonzero(det_image == n)
        dets.append(np.concatenate([det_boxes[index], det_scores[index, None]], axis=1))
        feats.append(det_embeddings[index])
    return annotations, dets, feats


def eval_detection(annos, gallery_dets, det_thresh=0.5, iou_thresh=0.5, labeled_only=False):
    y_true, y_score = [], []
    count_gt, count_tp = 0, 0
    for anno, det in zip(annos, gallery_dets):
        gt_boxes = anno['boxes']
        if labeled_only:
            inds = np.where(anno['pids'].ravel() != UNLABELED)[0]
            if len(inds) == 0:
                continue
            gt_boxes = gt_boxes[inds]
        num_gt = gt_boxes.shape[0]

        if len(det) != 0:
            det = np.asarray(det)
            inds = np.where(det[:, 4].ravel() >= det_thresh)[0]
            det = det[inds]
            num_det = det.shape[0]
        else:
            num_det = 0
        if num_det == 0:
            count_gt += num_gt
            continue

        ious = np.zeros((num_gt, num_det), dtype=np.float32)
        for i in range(num_gt):
            for j in range(num_det):
                ious[i, j] = _compute_iou(gt_boxes[i], det[j, :4])
        tfmat = ious >= iou_thresh
        for j in range(num_det):
            largest_ind = np.argmax(ious[:, j])
            for i in range(num_gt):
                if i != largest_ind:
                    tfmat[i, j] = False
        for i in range(num_gt):
            largest_ind = np.argmax(ious[i, :])
            for j in range(num_det):
                if j != largest_ind:
                    tfmat[i, j] = False
        for j in range(num_det):
            y_score.append(det[j, -1])
            y_true.append(tfmat[:, j].any())
        count_tp += tfmat.sum()
        count_gt += num_gt

    det_rate = count_tp * 1.0 / count_gt
    ap = average_precision_score(y_true, y_score) * det_rate
    return det_rate, ap


def _name_to_det_feat(annos, gallery_dets, gallery_feats, det_thresh):
    name_to_det_feat = {}
    for anno, det, feat in zip(annos, gallery_dets, gallery_feats):
        name = anno['img_name']
        if len(det) != 0:
            scores = det[:, 4].ravel()
            inds = np.where(scores >= det_thresh)[0]
            if len(inds) > 0:
                name_to_det_feat[name] = (det[inds], feat[inds])
    return name_to_det_feat


def _label(sim, det, gt_xyxy, w, h):
    """The first det in similarity order over the small-box IoU threshold is the TP."""
    label = np.zeros(len(sim), dtype=np.int32)
    count_tp = 0
    iou_thresh = min(0.5, (w * h * 1.0) / ((w + 10) * (h + 10)))
    inds = np.argsort(sim)[::-1]
    sim = sim[inds]
    det = det[inds]
    for j, roi in enumerate(det[:, :4]):
        if _compute_iou(roi, gt_xyxy) >= iou_thresh:
            label[j] = 1
            count_tp += 1
            break
    return label, sim, count_tp


def _ap_and_accs(y_true, y_score, count_tp, count_gt):
    y_score = np.asarray(y_score)
    y_true = np.asarray(y_true)
    assert count_tp <= count_gt
    if count_tp == 0:
        ap = 0
    else:
        ap = average_precision_score(y_true, y_score) * (count_tp * 1.0 / count_gt)
    inds = np.argsort(y_score)[::-1]
    y_true = y_true[inds]
    return ap, [min(1, sum(y_true[:k])) for k in (1, 5, 10)]


def cuhk_gallery_lists(protocol, gallery_size):
    """TestG-like lists: per query [(imname, int32 xywh or empty)], built on the smallest size
    for the full set (-1)."""
    size = min(protocol.gallery_sizes) if gallery_size == -1 else gallery_size
    lists = protocol.queries.galleries[size]
    names = protocol.gallery.names.tolist()
    is_positive = lists.is_positive
    boxes = protocol_lib.gt_boxes_int32(np.nan_to_num(lists.positive_box), protocol.box_convention)
    protoc = []
    for q in range(len(protocol.queries)):
        entries = []
        for e in range(lists.offsets[q], lists.offsets[q + 1]):
            if is_positive[e]:
                box = boxes[e]
                gt = np.asarray([box[0], box[1], box[2] - box[0], box[3] - box[1]], np.int32)
            else:
                gt = np.zeros(0)
            entries.append((names[lists.image_index[e]], gt))
        protoc.append(entries)
    return protoc


def eval_search_cuhk(protocol, annos, gallery_dets, gallery_feats, query_feats, det_thresh=0.5,
                     gallery_size=100, dedupe_gallery=True):
    use_full_set = gallery_size == -1
    protoc = cuhk_gallery_lists(protocol, gallery_size)
    name_to_det_feat = _name_to_det_feat(annos, gallery_dets, gallery_feats, det_thresh)
    aps, accs = [], []
    for i in range(len(protocol.queries)):
        y_true, y_score = [], []
        count_gt, count_tp = 0, 0
        feat_q = query_feats[i].ravel()
        query_imname = str(protocol.queries.image_names[i])
        tested = set([query_imname])
        name2sim = {}
        for gallery_imname, gt in protoc[i]:
            gt = gt.astype(np.int32)
            count_gt += gt.size > 0
            if gallery_imname not in name_to_det_feat:
                continue
            det, feat_g = name_to_det_feat[gallery_imname]
            if det.shape[0] == 0:
                continue
            sim = feat_g.dot(feat_q).ravel()
            if dedupe_gallery and gallery_imname in name2sim:
                continue
            name2sim[gallery_imname] = sim
            label = np.zeros(len(sim), dtype=np.int32)
            if gt.size > 0:
                w, h = gt[2], gt[3]
                gt[2:] += gt[:2]
                label, sim, tp = _label(sim, det, gt, w, h)
                count_tp += tp
            y_true.extend(list(label))
            y_score.extend(list(sim))
            tested.add(gallery_imname)
        if use_full_set:
            for anno in annos:
                gallery_imname = anno['img_name']
                if gallery_imname in tested:
                    continue
                if gallery_imname not in name_to_det_feat:
                    continue
                det, feat_g = name_to_det_feat[gallery_imname]
                sim = feat_g.dot(feat_q).ravel()
                y_true.extend([0] * len(sim))
                y_score.extend(list(sim))
        ap, acc = _ap_and_accs(y_true, y_score, count_tp, count_gt)
        aps.append(ap)
        accs.append(acc)
    return np.asarray(aps, np.float64), np.asarray(accs, np.float64)


def eval_search_prw(protocol, annos, gallery_dets, gallery_feats, query_feats, det_thresh=0.5,
                    ignore_cam_id=True):
    name_to_det_feat = _name_to_det_feat(annos, gallery_dets, gallery_feats, det_thresh)
    aps, accs = [], []
    for i in range(len(protocol.queries)):
        y_true, y_score = [], []
        count_gt, count_tp = 0, 0
        feat_p = query_feats[i].ravel()
        query_imname = str(protocol.queries.image_names[i])
        query_pid = int(protocol.queries.person_ids[i])
        query_cam = int(protocol.queries.cameras[i])

        query_gts = {}
        for x in annos:
            if query_pid in x['pids'] and x['img_name'] != query_imname:
                query_gts[x['img_name']] = x['boxes'][x['pids'] == query_pid]
        if ignore_cam_id:
            gallery_imgs = [x for x in annos if x['img_name'] != query_imname]
        else:
            gallery_imgs = [x for x in annos
                            if x['img_name'] != query_imname and x['cam_id'] != query_cam]

        name2sim = {}
        for item in gallery_imgs:
            gallery_imname = item['img_name']
            count_gt += gallery_imname in query_gts
            if gallery_imname not in name_to_det_feat:
                continue
            det, feat_g = name_to_det_feat[gallery_imname]
            sim = feat_g.dot(feat_p).ravel()
            if gallery_imname in name2sim:
                continue
            name2sim[gallery_imname] = sim
        for gallery_imname, sim in name2sim.items():
            det, feat_g = name_to_det_feat[gallery_imname]
            label = np.zeros(len(sim), dtype=np.int32)
            if gallery_imname in query_gts:
                gt = query_gts[gallery_imname].ravel()
                w, h = gt[2] - gt[0], gt[3] - gt[1]
                label, sim, tp = _label(sim, det, gt, w, h)
                count_tp += tp
            y_true.extend(list(label))
            y_score.extend(list(sim))
        if count_gt == 0:   # the original divides by zero here
            aps.append(0.0)
            accs.append([0, 0, 0])
            continue
        ap, acc = _ap_and_accs(y_true, y_score, count_tp, count_gt)
        aps.append(ap)
        accs.append(acc)
    return np.asarray(aps, np.float64), np.asarray(accs, np.float64)
