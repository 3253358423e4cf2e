"""Requests to the exported model behind `tensorflow_model_server` (see export/README.md).

The command is `ps-serving-client` (`ps_tf/commands/serving_client.py`, also
`python export/serving_client.py`). The request-building functions are plain and testable:
`rest_payload` / `rest_embed_payload` give the JSON body of `POST /v1/models/<name>:predict`,
`grpc_request` / `grpc_embed_request` the `tensorflow_serving.apis.predict_pb2.PredictRequest`
(package `tensorflow-serving-api`, the `serving` extra).
"""

from __future__ import annotations

import base64
import json
import urllib.request

import numpy as np

MODEL_NAME = 'ps_tf'


def _b64(image_bytes: bytes) -> dict[str, str]:
    return {'b64': base64.b64encode(image_bytes).decode('ascii')}


def rest_payload(images: list[bytes], signature_name: str = 'serving_default') -> dict:
    """REST body for `serving_default` (or `detect_examples` with serialized Examples): one
    instance per encoded image (`{"b64": ...}`: TF Serving decodes it to the string input)."""
    return {'signature_name': signature_name, 'instances': [_b64(image) for image in images]}


def rest_embed_payload(image: bytes, boxes_xyxy) -> dict:
    """REST body for `embed_boxes`: columnar `inputs` (the image is a scalar, the boxes (M, 4)
    original pixel x1, y1, x2, y2)."""
    return {'signature_name': 'embed_boxes',
            'inputs': {'image_bytes': _b64(image),
                       'boxes': np.asarray(boxes_xyxy, np.float32).reshape(-1, 4).tolist()}}


def grpc_request(images: list[bytes], model_name: str = MODEL_NAME,
                 signature_name: str = 'serving_default'):
    """gRPC `PredictRequest` for `serving_default` (input `image_bytes`, (B,) string) or
    `detect_examples` (input `examples`)."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    key = 'examples' if signature_name == 'detect_examples' else 'image_bytes'
    request.inputs[key].CopyFrom(tf.make_tensor_proto(images, dtype=tf.string,
                                                      shape=[len(images)]))
    return request


def grpc_embed_request(image: bytes, boxes_xyxy, model_name: str = MODEL_NAME):
    """gRPC `PredictRequest` for `embed_boxes`: `image_bytes` () string, `boxes` (M, 4) float32
    original pixel x1, y1, x2, y2."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = 'embed_boxes'
    request.inputs['image_bytes'].CopyFrom(tf.make_tensor_proto(image, dtype=tf.string,
                                                                shape=[]))
    request.inputs['boxes'].CopyFrom(tf.make_tensor_proto(
        np.asarray(boxes_xyxy, np.float32).reshape(-1, 4)))
    return request


def post_rest(server: str, payload: dict, model_name: str = MODEL_NAME,
              timeout: float = 60.0) -> dict:
    """Sends a REST predict request; returns the decoded JSON response."""
    request = urllib.request.Request(f'http://{server}/v1/models/{model_name}:predict',
                                     data=json.dumps(payload).encode(),
                                     headers={'Content-Type': 'application/json'})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def send_grpc(server: str, request, timeout: float = 60.0) -> dict[str, np.ndarray]:
    """Sends a gRPC predict request; returns the outputs as numpy arrays."""
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    with grpc.insecure_channel(server) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.Predict(request, timeout)
    return {key: tf.make_ndarray(value) for key, value in response.outputs.items()}
