"""What a compiled graph costs: its multiply-adds (TensorFlow's graph profiler) and where its time
goes (a TensorFlow profiler trace, summarised by op type).

- `count_flops`: freezes a concrete function (variables to constants, nested functions and
  `tf.cond` inlined: `convert_variables_to_constants_v2_as_graph`) and sums the `flops` statistic
  TensorFlow registers per op (`tf.compat.v1.profiler`, `float_operation()`): 2 per multiply-add
  of Conv2D / MatMul, 1 per element of BiasAdd, Add, Mul, ... Ops without a statistic (NMS,
  crop_and_resize, top-k, casts) count 0.
- `profile_op_times`: traces a function with `tf.profiler.experimental` into a log directory that
  TensorBoard's profile tab opens (`pip install tensorboard-plugin-profile`; `tensorboard
  --logdir=...`), and reads the trace back (XPlane) to total the host time of each op type.
"""

from __future__ import annotations

import collections
import glob
import os
import re
from typing import Callable

import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import (
    convert_variables_to_constants_v2_as_graph)
from tensorflow.tsl.profiler.protobuf import xplane_pb2

# Ops that only call other ops (their time is the time of what they call).
_CALL_OPS = {'PartitionedCall', 'StatefulPartitionedCall', 'If', 'StatelessIf', 'While',
             'StatelessWhile'}
_OP_EVENT = re.compile(r'^([^:\s]+):([A-Za-z_][A-Za-z0-9_]*)$')
SCOPE_DEPTH = 2


def count_flops(function: tf.types.experimental.ConcreteFunction) -> int:
    """Floating-point operations of one call of a concrete function with fully defined input
    shapes (2 per multiply-add), as TensorFlow's graph profiler counts them."""
    _, graph_def = convert_variables_to_constants_v2_as_graph(function)
    with tf.Graph().as_default() as graph:
        tf.graph_util.import_graph_def(graph_def, name='')
        options = (tf.compat.v1.profiler.ProfileOptionBuilder(
            tf.compat.v1.profiler.ProfileOptionBuilder.float_operation())
            .with_empty_output().build())
        profile = tf.compat.v1.profiler.profile(graph=graph, run_meta=tf.compat.v1.RunMetadata(),
                                                cmd='op', options=options)
    return int(profile.total_float_ops)


def profile_op_times(function: Callable[[], object], logdir: str, runs: int = 3
                     ) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """Traces `runs` calls of `function` (already warmed up) and totals the time of its ops.

    Args:
        function: a compiled function; its result is fetched (`.numpy()`) inside the trace.
        logdir: the trace is written to `<logdir>/plugins/profile/<run>/`.
        runs: calls traced.

    Returns:
        ([(op type, seconds)], [(scope, seconds)]), longest first: seconds summed over the host
        threads and the runs; the scope of an op is the first `SCOPE_DEPTH` parts of its name
        (e.g. `retinanet_J4/trunk_J4`, `reid_J4/resnet_rest_J4`).
    """
    tf.profiler.experimental.start(logdir)
    try:
        for _ in range(runs):
            tf.nest.map_structure(lambda t: t.numpy(), function())
    finally:
        tf.profiler.experimental.stop()
    runs_dir = sorted(glob.glob(os.path.join(logdir, 'plugins', 'profile', '*')))[-1]
    by_type: dict[str, float] = collections.defaultdict(float)
    by_scope: dict[str, float] = collections.defaultdict(float)
    for path in glob.glob(os.path.join(runs_dir, '*.xplane.pb')):
        space = xplane_pb2.XSpace()
        with open(path, 'rb') as stream:
            space.ParseFromString(stream.read())
        for plane in space.planes:
            if plane.name != '/host:CPU':
                continue
            for line in plane.lines:
                for event in line.events:
                    # Executed ops are named "<op name>:<op type>"; everything else on the host
                    # (executor, runtime, Python) is not.
                    match = _OP_EVENT.match(plane.event_metadata[event.metadata_id].name)
                    if not match or match.group(2) in _CALL_OPS:
                        continue
                    seconds = event.duration_ps * 1e-12
                    by_type[match.group(2)] += seconds
                    by_scope['/'.join(match.group(1).split('/')[:SCOPE_DEPTH])] += seconds
    return (sorted(by_type.items(), key=lambda item: -item[1]),
            sorted(by_scope.items(), key=lambda item: -item[1]))
