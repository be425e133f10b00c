"""The peer of bench_serve.py: the usual way people serve an ONNX model from Python, a FastAPI app
under uvicorn calling onnxruntime, answering TensorFlow Serving's row format on the same path as
mserve (POST /v1/models/{name}:predict with {"instances": [...]} -> {"predictions": [...]}).

    python bench/fastapi_peer.py --port 8601 --threads 2 name=path.onnx [name=path.onnx ...]
"""
from __future__ import annotations

import argparse

import numpy as np
import onnxruntime as ort
import uvicorn
from fastapi import FastAPI, HTTPException, Request


def make_app(models: dict, threads: int) -> FastAPI:
    sessions = {}
    for name, path in models.items():
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        sessions[name] = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    app = FastAPI()

    @app.get("/v1/models/{name}")
    def status(name: str):
        if name not in sessions:
            raise HTTPException(404, f"model {name} not found")
        return {"model_version_status": [{"version": "1", "state": "AVAILABLE"}]}

    @app.post("/v1/models/{name}:predict")
    async def predict(name: str, request: Request):
        s = sessions.get(name)
        if s is None:
            raise HTTPException(404, f"model {name} not found")
        body = await request.json()
        x = np.asarray(body["instances"], dtype=np.float32)
        out = s.run(None, {s.get_inputs()[0].name: x})[0]
        return {"predictions": out.tolist()}

    return app


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("models", nargs="+", help="name=path.onnx")
    args = ap.parse_args()
    models = dict(m.split("=", 1) for m in args.models)
    uvicorn.run(make_app(models, args.threads), host="127.0.0.1", port=args.port, log_level="warning",
                access_log=False)


if __name__ == "__main__":
    main()
