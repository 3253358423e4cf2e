"""Operations below every layer: shared box and image geometry, and the RetinaNet anchors.

- `geometry.py`: resize + pad to the square model input, boxes between the original image and
  that input, horizontal flips, ROI align.
- `anchors.py`: anchors on the FPN levels and the box coder.
- `anchor_labeler.py`: anchors matched to ground-truth boxes: classification and regression
  targets.
"""
