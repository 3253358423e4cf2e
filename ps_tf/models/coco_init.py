"""Starts the detector from a TensorFlow Model Garden RetinaNet checkpoint trained on COCO.

The paper fine-tunes a RetinaNet pre-trained on MSCOCO (docs/choices.md#coco-initialisation). The
Model Garden's `retinanet_resnetfpn_coco` experiment (ResNet-50 + FPN, 91 classes) is such a
RetinaNet; its checkpoints are TF2 object-based checkpoints, written by its trainer as
`tf.train.Checkpoint(model=RetinaNetModel, ...)` (or with its `backbone`, `decoder` and `head`
at the top). `load_coco_checkpoint` reads one with `tf.train.load_checkpoint` (no Model Garden
code needed) and assigns every variable of a detector built in the garden layout
(`build_detector(layout='garden')`, the COCO anchors, `head_batch_norm`):

- backbone: the Model Garden's ResNet is a functional Keras model whose weighted layers are, in
  network order, the stem convolution, the stem batch norm and the 16 bottleneck blocks
  (`layer_with_weights-0` ... `-17`); a block's `_shortcut`, `_conv1..3`, `_norm0..3` are the
  detector's `conv<s>_block<b>_0_conv`, `_1_conv` ... `_0_bn` ... (`ps_tf.models.garden`);
- pyramid: its layers are named (`lateral_<l>`, `post_hoc_<l>`, `coarser_6/7`, `norm_<l>`; read
  from the variables' names in the checkpoint's object graph): the detector's `lateral['C<l>']`,
  `output_conv['P<l>']`, `p6`, `p7`, `norms['P<l>']`;
- head: `_cls_convs/<i>`, `_cls_norms/<level - 3>/<i>`, `_box_convs/<i>`, `_box_norms/...` are the
  detector's `class_convs[i]`, `class_norms['P<level>'][i]`, ...; the classifier `_classifier`
  has anchors x 91 output channels (channel a * 91 + c is anchor a's class c, the order of the
  Model Garden's detection generator), of which the person channels (c = 1) become the detector's
  `class_output`; the box regressor `_box_regressor` (anchor a's code k at channel a * 4 + k) is
  `box_output` scaled by the detector's box coder scales (the Model Garden's RetinaNet codes boxes
  unscaled, `box_coder_weights` None; ps_tf's coder multiplies by (10, 10, 5, 5)), so that both
  decode to the same boxes.

Every detector variable must receive a checkpoint value of the same shape, or nothing is assigned
and a ValueError names the variable and both shapes.
"""

from __future__ import annotations

import re

import numpy as np
import tensorflow as tf
from absl import logging
from tensorflow.core.protobuf import trackable_object_graph_pb2

from ps_tf.models import garden
from ps_tf.models.factory import layers_with_weights
from ps_tf.models.retinanet import RetinaNetDetector
from ps_tf.ops.anchors import COCO_ASPECT_RATIOS

PERSON_CLASS = 1          # COCO's 'person' in the Model Garden's 91 classes (0 = background)
COCO_NUM_SCALES = 3
COCO_ANCHOR_SIZE = 4.0
_BATCH_NORM = ('gamma', 'beta', 'moving_mean', 'moving_variance')
_VARIABLE = 'VARIABLE_VALUE'


class _ObjectGraph:
    """The object graph of a TF2 checkpoint: which object holds which object and variable."""

    def __init__(self, reader: tf.train.CheckpointReader, path: str):
        graph = trackable_object_graph_pb2.TrackableObjectGraph()
        try:
            graph.ParseFromString(reader.get_tensor('_CHECKPOINTABLE_OBJECT_GRAPH'))
        except tf.errors.NotFoundError as error:
            raise ValueError(f'{path} is not a TF2 object-based checkpoint (no object graph): '
                             f'not a Model Garden checkpoint') from error
        self.nodes = graph.nodes

    def children(self, node: int) -> dict[str, int]:
        return {child.local_name: child.node_id for child in self.nodes[node].children}

    def variable(self, node: int) -> tuple[str, str] | None:
        """(checkpoint key, variable name at saving) of a variable node, else None."""
        for attribute in self.nodes[node].attributes:
            if attribute.name == _VARIABLE:
                return attribute.checkpoint_key, attribute.full_name
        return None

    def variables(self, node: int) -> dict[str, tuple[str, str]]:
        """A layer's own variables: attribute name ('kernel', 'gamma', ...) -> `variable()`."""
        found = {}
        for name, child in self.children(node).items():
            variable = self.variable(child)
            if variable:
                found[name] = variable
        return found

    def find(self, names: tuple[str, ...]) -> int | None:
        """The first object (breadth first from the root) that holds objects called `names`."""
        queue, seen = [0], {0}
        while queue:
            node = queue.pop(0)
            children = self.children(node)
            if all(name in children for name in names):
                return node
            for child in children.values():
                if child not in seen:
                    seen.add(child)
                    queue.append(child)
        return None

    def layers_with_weights(self, node: int) -> list[int]:
        """A functional Keras model's weighted layers, in order (`layer_with_weights-<n>`)."""
        layers = {}
        for name, child in self.children(node).items():
            match = re.fullmatch(r'layer_with_weights-(\d+)', name)
            if match:
                layers[int(match.group(1))] = child
        return [layers[n] for n in sorted(layers)]


def _model_parts(graph: _ObjectGraph, path: str) -> tuple[int, int, int]:
    """The object ids of the Model Garden RetinaNet's backbone, decoder and head."""
    for names in (('_backbone', '_decoder', '_head'), ('backbone', 'decoder', 'head')):
        node = graph.find(names)
        if node is not None:
            children = graph.children(node)
            return tuple(children[name] for name in names)
    raise ValueError(f'{path}: no RetinaNet model (an object with a backbone, decoder and head) '
                     'in this checkpoint; expected a Model Garden retinanet_resnetfpn_coco '
                     'checkpoint')


class _Plan:
    """(checkpoint key, value transform, detector variable) pairs, checked before any is
    assigned."""

    def __init__(self, reader: tf.train.CheckpointReader, path: str):
        self.reader = reader
        self.path = path
        self.shapes = reader.get_variable_to_shape_map()
        self.entries: list[tuple[str, str, np.ndarray, tf.Variable]] = []

    def add(self, source: tuple[str, str] | None, variable: tf.Variable, what: str,
            transform=None) -> None:
        """Reads `source` (`_ObjectGraph.variable`), checks its shape against `variable`'s."""
        if source is None:
            raise ValueError(f'{self.path}: no checkpoint value for {what} (the detector\'s '
                             f'{variable.name}); not a Model Garden RetinaNet ResNet-50 FPN '
                             'checkpoint')
        key, name = source
        value = self.reader.get_tensor(key)
        if transform is not None:
            value = transform(value, key, name)
        if tuple(value.shape) != tuple(variable.shape):
            raise ValueError(f'{self.path}: checkpoint variable {key} ({name}) has shape '
                             f'{tuple(self.shapes[key])}, the detector\'s {variable.name} '
                             f'{tuple(variable.shape)} ({what}); the checkpoint is not the '
                             'architecture of the garden layout')
        self.entries.append((key, name, value, variable))

    def add_layer(self, sources: dict[str, tuple[str, str]], layer: tf.keras.layers.Layer,
                  what: str) -> None:
        """A convolution (kernel, bias if any) or batch norm, attribute by attribute."""
        names = _BATCH_NORM if isinstance(layer, tf.keras.layers.BatchNormalization) else (
            ('kernel', 'bias') if getattr(layer, 'use_bias', False) else ('kernel',))
        for name in names:
            self.add(sources.get(name), getattr(layer, name), f'{what} {name}')
        extra = set(sources) - set(names)
        if extra:
            raise ValueError(f'{self.path}: {what} has variables {sorted(extra)} the detector\'s '
                             f'{layer.name} lacks; not the garden layout\'s architecture')


def check_detector(detector: RetinaNetDetector) -> None:
    """Raises ValueError unless the detector has the Model Garden's architecture and anchors
    (naming what differs)."""
    anchors = detector.detection_generator.anchor_config
    head = detector.head
    problems = []
    if detector.layout != 'garden':
        problems.append(f"layout {detector.layout!r} (needs 'garden')")
    if not head.use_batch_norm:
        problems.append('no head batch norm (needs head_batch_norm)')
    if tuple(anchors.aspect_ratios) != COCO_ASPECT_RATIOS or \
            anchors.num_scales != COCO_NUM_SCALES:
        problems.append(f'anchors {anchors.num_scales} scales x aspect ratios '
                        f'{tuple(anchors.aspect_ratios)} (needs {COCO_NUM_SCALES} x '
                        f'{COCO_ASPECT_RATIOS}: aspect_ratios=2,1,0.5)')
    if (head.min_level, head.max_level) != (3, 7):
        problems.append(f'levels P{head.min_level}-P{head.max_level} (needs P3-P7)')
    if problems:
        raise ValueError('a Model Garden COCO RetinaNet checkpoint loads into the paper '
                         'preset\'s detector only; this one has ' + '; '.join(problems))
    if anchors.anchor_size != COCO_ANCHOR_SIZE:
        logging.warning('anchor_size %s differs from the COCO RetinaNet\'s %s: its head was '
                        'trained for other anchor sizes', anchors.anchor_size, COCO_ANCHOR_SIZE)


def resolve_checkpoint(path: str) -> str:
    """A checkpoint prefix from a prefix or a directory (its latest checkpoint).

    Raises:
        ValueError: neither.
    """
    if tf.io.gfile.isdir(path):
        latest = tf.train.latest_checkpoint(path)
        if not latest:
            raise ValueError(f'init_checkpoint {path} is a directory without a checkpoint')
        return latest
    if not tf.io.gfile.exists(path + '.index'):
        raise ValueError(f'init_checkpoint {path} does not exist (expected a checkpoint prefix '
                         'such as .../ckpt-33264, or its directory)')
    return path


def load_coco_checkpoint(detector: RetinaNetDetector, path: str) -> int:
    """Assigns a Model Garden COCO RetinaNet checkpoint to a built detector (module docstring).

    Args:
        detector: a built detector of the garden layout with the COCO anchors and head batch
            norm (the `paper` preset's).
        path: the checkpoint prefix, or its directory (then its latest checkpoint).

    Returns:
        The number of detector variables assigned (all of them).

    Raises:
        ValueError: the detector does not have the Model Garden's architecture, or the
            checkpoint does not fit it (naming the variable and both shapes); nothing is assigned.
    """
    check_detector(detector)
    path = resolve_checkpoint(path)
    reader = tf.train.load_checkpoint(path)
    graph = _ObjectGraph(reader, path)
    backbone, decoder, head = _model_parts(graph, path)
    plan = _Plan(reader, path)
    _plan_backbone(plan, graph, backbone, detector)
    _plan_pyramid(plan, graph, decoder, detector)
    _plan_head(plan, graph, head, detector)
    planned = {id(variable) for *_, variable in plan.entries}
    missing = [v.name for v in detector.weights if id(v) not in planned]
    if missing or len(planned) != len(plan.entries):
        raise ValueError(f'{path}: {len(missing)} detector variables without a checkpoint value '
                         f'({missing[:3]}) or assigned twice')
    for _, _, value, variable in plan.entries:
        variable.assign(value.astype(variable.dtype.as_numpy_dtype))
    logging.info('initialised the %s detector from the Model Garden checkpoint %s (%d variables,'
                 ' person = COCO class %d)', detector.variant, path, len(plan.entries),
                 PERSON_CLASS)
    return len(plan.entries)


def _plan_backbone(plan: _Plan, graph: _ObjectGraph, backbone: int,
                   detector: RetinaNetDetector) -> None:
    layers = {**layers_with_weights(detector.trunk), **layers_with_weights(detector.rest)}
    sources = graph.layers_with_weights(backbone)
    blocks = garden.bottleneck_blocks()
    if len(sources) != 2 + len(blocks):
        raise ValueError(f'{plan.path}: the checkpoint\'s backbone has {len(sources)} layers with '
                         f'weights, the Model Garden\'s ResNet-50 {2 + len(blocks)} (stem '
                         'convolution, stem batch norm, 16 bottleneck blocks): not a ResNet-50')
    plan.add_layer(graph.variables(sources[0]), layers['conv1_conv'], 'backbone stem conv')
    plan.add_layer(graph.variables(sources[1]), layers['conv1_bn'], 'backbone stem batch norm')
    for block, node in zip(blocks, sources[2:]):
        parts = graph.children(node)
        pairs = [('_conv1', '_1_conv'), ('_norm1', '_1_bn'), ('_conv2', '_2_conv'),
                 ('_norm2', '_2_bn'), ('_conv3', '_3_conv'), ('_norm3', '_3_bn')]
        if f'{block}_0_conv' in layers:   # the projection shortcut of a stage's first block
            pairs += [('_shortcut', '_0_conv'), ('_norm0', '_0_bn')]
        if ('_shortcut' in parts) != (f'{block}_0_conv' in layers):
            raise ValueError(f'{plan.path}: the checkpoint\'s bottleneck block for {block} '
                             f'{"has" if "_shortcut" in parts else "lacks"} a projection '
                             'shortcut, the detector\'s does not: not a ResNet-50')
        for source, target in pairs:
            if source not in parts:
                raise ValueError(f'{plan.path}: the checkpoint\'s block for {block} has no '
                                 f'{source}: not a Model Garden bottleneck block')
            plan.add_layer(graph.variables(parts[source]), layers[block + target],
                           f'backbone {block}{target}')


def _named_variables(graph: _ObjectGraph, node: int) -> dict[str, dict[str, tuple[str, str]]]:
    """A functional model's layers by the layer name in their variables' names ('lateral_3')."""
    named: dict[str, dict[str, tuple[str, str]]] = {}
    for layer in graph.layers_with_weights(node):
        for attribute, (key, name) in graph.variables(layer).items():
            parts = name.split('/')
            if len(parts) >= 2:
                named.setdefault(parts[-2], {})[attribute] = (key, name)
    return named


def _plan_pyramid(plan: _Plan, graph: _ObjectGraph, decoder: int,
                  detector: RetinaNetDetector) -> None:
    fpn = detector.fpn
    named = _named_variables(graph, decoder)
    targets = {**{f'lateral_{k}': fpn.lateral[f'C{k}'] for k in (3, 4, 5)},
               **{f'post_hoc_{k}': fpn.output_conv[f'P{k}'] for k in (3, 4, 5)},
               'coarser_6': fpn.p6, 'coarser_7': fpn.p7,
               **{f'norm_{k}': fpn.norms[f'P{k}'] for k in range(3, 8)}}
    extra = set(named) - set(targets)
    if extra:
        raise ValueError(f'{plan.path}: the checkpoint\'s FPN has layers {sorted(extra)} the '
                         'garden layout\'s pyramid lacks (not an FPN of levels 3-7?)')
    for name, layer in targets.items():
        plan.add_layer(named.get(name, {}), layer, f'FPN {name}')


def _plan_head(plan: _Plan, graph: _ObjectGraph, head: int, detector: RetinaNetDetector) -> None:
    ours = detector.head
    parts = graph.children(head)

    def part(name):   # {} when the checkpoint's head has no such object (then add() names it)
        return graph.children(parts[name]) if name in parts else {}

    for prefix, convs, norms in (('_cls', ours.class_convs, ours.class_norms),
                                 ('_box', ours.box_convs, ours.box_norms)):
        for i, conv in enumerate(convs):
            node = part(f'{prefix}_convs').get(str(i))
            plan.add_layer(graph.variables(node) if node is not None else {}, conv,
                           f'head {prefix}_convs/{i}')
        levels = part(f'{prefix}_norms')
        for level in range(ours.min_level, ours.max_level + 1):
            per_level = levels.get(str(level - ours.min_level))
            per_level = graph.children(per_level) if per_level is not None else {}
            for i, norm in enumerate(norms[f'P{level}']):
                node = per_level.get(str(i))
                plan.add_layer(graph.variables(node) if node is not None else {}, norm,
                               f'head {prefix}_norms/{level - ours.min_level}/{i}')
    anchors = ours.anchors_per_location
    scales = np.tile(np.asarray(detector.detection_generator.box_coder.scales, np.float32),
                     anchors)

    def scale_boxes(value, key, name):   # the Model Garden's unscaled codes -> ps_tf's
        if value.shape[-1] != scales.shape[0]:
            return value   # the shape check names it
        return value * scales

    def person_channels(value, key, name):   # channel a * classes + c -> anchor a, class c
        if value.shape[-1] % anchors or value.shape[-1] // anchors <= PERSON_CLASS:
            raise ValueError(f'{plan.path}: checkpoint variable {key} ({name}) has shape '
                             f'{tuple(value.shape)}: its {value.shape[-1]} output channels are '
                             f'not {anchors} anchors x classes (the detector\'s '
                             f'{ours.class_output.name} needs {anchors} person channels)')
        return value[..., PERSON_CLASS::value.shape[-1] // anchors]

    box = graph.variables(parts['_box_regressor']) if '_box_regressor' in parts else {}
    plan.add(box.get('kernel'), ours.box_output.kernel, 'head box regressor kernel', scale_boxes)
    plan.add(box.get('bias'), ours.box_output.bias, 'head box regressor bias', scale_boxes)
    scores = graph.variables(parts['_classifier']) if '_classifier' in parts else {}
    plan.add(scores.get('kernel'), ours.class_output.kernel, 'head classifier kernel',
             person_channels)
    plan.add(scores.get('bias'), ours.class_output.bias, 'head classifier bias', person_channels)
