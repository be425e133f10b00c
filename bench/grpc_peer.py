"""The gRPC peer of bench_serve.py: the usual way to serve an ONNX model over TensorFlow Serving's
gRPC API from Python, a grpcio server (thread pool) calling onnxruntime, with stubs generated
from mserve's protos. Inputs are read from tensor_content (what tf.make_tensor_proto sends);
outputs go back as tensor_content too (cheaper in Python than filling float_val, so this favours
the peer).

    python bench/grpc_peer.py --port 8600 --threads 2 --stubs DIR name=path.onnx [...]
"""
from __future__ import annotations

import argparse
import sys
from concurrent import futures

import numpy as np
import onnxruntime as ort


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    ap.add_argument("--workers", type=int, default=16, help="grpcio thread pool size")
    ap.add_argument("--stubs", required=True, help="folder of Python modules generated from cpp/server/proto")
    ap.add_argument("models", nargs="+", help="name=path.onnx")
    args = ap.parse_args()
    sys.path.append(args.stubs)
    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    sessions = {}
    for spec in args.models:
        name, path = spec.split("=", 1)
        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        so.inter_op_num_threads = 1
        sessions[name] = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])

    class Prediction(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):
            s = sessions.get(request.model_spec.name)
            if s is None:
                context.abort(grpc.StatusCode.NOT_FOUND, f"model {request.model_spec.name} not found")
            feeds = {}
            for i in s.get_inputs():
                t = request.inputs[i.name]
                shape = [d.size for d in t.tensor_shape.dim]
                feeds[i.name] = np.frombuffer(t.tensor_content, np.float32).reshape(shape)
            reply = predict_pb2.PredictResponse()
            reply.model_spec.name = request.model_spec.name
            for o, value in zip(s.get_outputs(), s.run(None, feeds)):
                t = reply.outputs[o.name]
                t.dtype = 1  # DT_FLOAT
                for d in value.shape:
                    t.tensor_shape.dim.add().size = d
                t.tensor_content = np.ascontiguousarray(value, np.float32).tobytes()
            return reply

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=args.workers),
                         options=[("grpc.max_receive_message_length", 64 << 20)])
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Prediction(), server)
    server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    server.wait_for_termination()


if __name__ == "__main__":
    main()
