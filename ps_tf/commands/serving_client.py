"""`ps-serving-client`: one request to the exported model behind `tensorflow_model_server`.

    ps-serving-client --image=scene.jpg --server=localhost:8501 --protocol=rest
    ps-serving-client --image=scene.jpg --server=localhost:8500 --protocol=grpc
    ps-serving-client --image=scene.jpg --box=10,20,60,150 ...   # embed_boxes

(`python export/serving_client.py` in a checkout; the requests: `ps_tf/serving_client.py`.)
"""

from __future__ import annotations

import ps_tf.quiet  # noqa: F401  (first: keeps TensorFlow's start-up noise off stderr)

import json

from absl import flags

from ps_tf import commands
from ps_tf import serving_client as client

FLAGS = flags.FLAGS


def define_flags() -> None:
    flags.DEFINE_string('image', None, 'An image file (JPEG, PNG, BMP or GIF).')
    flags.DEFINE_string('box', None, 'x1,y1,x2,y2: embed this box (embed_boxes) instead of '
                        'detecting (serving_default).')
    flags.DEFINE_string('server', 'localhost:8501', 'host:port (REST 8501, gRPC 8500).')
    flags.DEFINE_enum('protocol', 'rest', ['rest', 'grpc'], 'Transport.')
    flags.DEFINE_string('model_name', client.MODEL_NAME, 'The --model_name given to the server.')
    flags.mark_flag_as_required('image')


def main(argv) -> None:
    del argv
    with open(FLAGS.image, 'rb') as f:
        image = f.read()
    box = [float(v) for v in FLAGS.box.split(',')] if FLAGS.box else None
    if FLAGS.protocol == 'rest':
        payload = client.rest_embed_payload(image, [box]) if box else client.rest_payload([image])
        print(json.dumps(client.post_rest(FLAGS.server, payload, FLAGS.model_name))[:2000])
    else:
        request = (client.grpc_embed_request(image, [box], FLAGS.model_name) if box
                   else client.grpc_request([image], FLAGS.model_name))
        for key, value in client.send_grpc(FLAGS.server, request).items():
            print(key, value.shape, value.reshape(-1)[:8])


def cli() -> None:
    """`ps-serving-client`: parses the flags and sends one request."""
    define_flags()
    commands.run(main, __name__)


if __name__ == '__main__':
    cli()
