"""What stage 2 trains, per variant: the re-ID branch of a joint model (J2/J3/J4) or the separate
embedding network of the disjoint baseline (Disj).

Stage 2 is the same for both (docs/architecture.md#stage-2-re-id; the paper's Table 1a "Disj."
row): P x K batches from a pooled-record directory, TFA triplet losses, one schedule, checkpoints.
Only the records and the network differ:

- J2/J3/J4: ROI-pooled shared maps (e.g. J3: (32, 16, 512) float16); a `ReidBranch`, whose
  replicated stages start as the detector's stages after the trunk, or as those of another
  ResNet-50 (`initial_weights`: a weights file such as the run's pretraining, 'imagenet',
  'none').
- Disj: ground-truth crops of the padded input image, (256, 128, 3) uint8; a `DisjointEmbedder`
  (a whole ResNet-50), initialised from the detector's whole ResNet-50 (or `initial_weights`).

Why the choice: detection training specialises the detector's C4-C5 to tell people from
background, which is not what tells one person from another. On the synthetic data J3's branch
searched twice as well started from the pretrained ResNet-50's C4-C5 as from the detector's
(docs/choices.md#the-re-id-branchs-initial-weights).

Disj crops are cut from the image exactly as `DisjointModel` cuts detections at inference (the
resized and padded model input, bilinear, 256 x 128), so training and search see the same crops.
"""

from __future__ import annotations

from ps_tf.models.disjoint import DISJOINT, DisjointEmbedder, DisjointModel, \
    build_disjoint_embedder
from ps_tf.models.joint import JointModel, PersonSearchModel
from ps_tf.models.reid import SNIPPET_SIZE, ReidBranch, build_reid_branch, copy_detector_stages, \
    pooled_shape
from ps_tf.models.backbone import assign_layer_weights, is_weights_file, read_weights_file, \
    split_resnet50
from ps_tf.models.factory import layers_with_weights
from ps_tf.models.retinanet import RetinaNetDetector

CROP_DTYPE = 'uint8'
# 'detector': stage 2's network starts as the stage-1 detector's stages (Disj: its whole
# ResNet-50; J2/J3/J4: the stages after the trunk).
FROM_DETECTOR = 'detector'


def record_shape(variant: str) -> tuple[int, int, int]:
    """(h, w, c) of a stage-2 record of `variant`."""
    return SNIPPET_SIZE + (3,) if variant == DISJOINT else pooled_shape(variant)


def record_dtype(variant: str, pooled_dtype: str) -> str:
    """The storage dtype: crops are 8-bit images; pooled maps use the `pooled_dtype` setting."""
    return CROP_DTYPE if variant == DISJOINT else pooled_dtype


def copy_detector_resnet(embedder: DisjointEmbedder, detector: RetinaNetDetector) -> None:
    """Initialises the embedder's ResNet-50 with the detector's (its trunk and rest hold exactly
    one ResNet-50's layers; matched by Keras layer name, as a weights file's are).

    Raises:
        ValueError: the two ResNets' layers or weight shapes differ.
    """
    source = {**layers_with_weights(detector.trunk), **layers_with_weights(detector.rest)}
    target = layers_with_weights(embedder.resnet)
    if set(source) != set(target):
        raise ValueError(f'the detector\'s ResNet-50 layers differ from the embedder\'s: '
                         f'{sorted(set(source) ^ set(target))[:5]}')
    assign_layer_weights(target, {name: layer.weights for name, layer in source.items()},
                         "the detector's ResNet-50")


def copy_stages_from_weights(branch: ReidBranch, variant: str, weights: str,
                             layout: str) -> None:
    """Initialises the branch's replicated stages from a ResNet-50 `weights` ('imagenet' or a
    weights file): an HDF5 file's layers are read directly (`read_weights_file`), anything else
    through a ResNet-50 built with those weights.

    Raises:
        FileNotFoundError: no such weights file.
        ValueError: the weights do not fit the branch's stages (named).
    """
    if layout == 'keras' and is_weights_file(weights):
        layers = layers_with_weights(branch.rest)
        assign_layer_weights(layers, read_weights_file(weights, layers), weights)
        return
    _, rest = split_resnet50(variant, weights=weights, layout=layout)
    copy_detector_stages(branch, rest)


def build_stage2_model(variant: str, detector: RetinaNetDetector, embedding_dim: int,
                       freeze_batch_norm: bool, policy: str,
                       initial_weights: str = FROM_DETECTOR,
                       initialise: bool = True) -> ReidBranch | DisjointEmbedder:
    """The network stage 2 trains for `variant`.

    Args:
        variant: 'J2', 'J3', 'J4' or 'Disj'.
        detector: the stage-1 detector (its stages initialise the network by default).
        embedding_dim, freeze_batch_norm, policy: as the stage-2 settings say.
        initial_weights: what the ResNet stages start as: 'detector' (default), or a ResNet-50
            ('none', 'imagenet' or a weights file) whose matching stages are copied (J*: the
            ones after the shared stage; Disj: all).
        initialise: False when a checkpoint will be restored over it anyway.
    """
    layout = getattr(detector, 'layout', 'keras')   # the detector's (None when not initialising)
    if variant != DISJOINT:
        branch = build_reid_branch(variant, embedding_dim, freeze_batch_norm, policy, layout)
        if initialise and initial_weights == FROM_DETECTOR:
            copy_detector_stages(branch, detector.rest)
        elif initialise and initial_weights not in ('none', None, ''):
            copy_stages_from_weights(branch, variant, initial_weights, layout)
        return branch
    weights = initial_weights if initialise and initial_weights != FROM_DETECTOR else 'none'
    embedder = build_disjoint_embedder(embedding_dim, weights, freeze_batch_norm, policy, layout)
    if initialise and initial_weights == FROM_DETECTOR:
        copy_detector_resnet(embedder, detector)
    return embedder


def person_search_model(detector: RetinaNetDetector,
                        network: ReidBranch | DisjointEmbedder) -> PersonSearchModel:
    """The detector and the trained stage-2 network as one search model."""
    if isinstance(network, DisjointEmbedder):
        return DisjointModel(detector, network)
    return JointModel(detector, network)
