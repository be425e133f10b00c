"""What serving through Ray Serve costs: one model behind mserve's Ray deployment
(mserve.integrations.ray), behind `mserve serve` on the same machine, and behind a Ray deployment
wrapping onnxruntime (the same @serve.batch settings, json and numpy as a user writes it), all
measured in one run with wrk on loopback, one target at a time (the others idle).

A local Ray instance (one node, every process on 127.0.0.1) runs one replica of each deployment
with the same intra-op threads as the server; the request bodies are TF Serving rows of the
example mlp (256 features). Answers are compared with onnxruntime before anything is timed.

Prints requests/s and p50/p99 latency per target, body and concurrency, and the ratios: Ray's cost
(rps of mserve-on-Ray / mserve serve) and the engine's part on Ray (rps of mserve-on-Ray /
onnxruntime-on-Ray). No thresholds.

    python bench/bench_ray.py [--seconds 5] [--concurrency 1 8 64] [--threads 1]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # every Ray process on 127.0.0.1

from bench_serve import WRK_SCRIPT, free_port, post, run_wrk, wait_up  # noqa: E402

from mserve import examples  # noqa: E402

BODIES = [("1x256", 1), ("8x256", 8)]


def ort_deployment(serve):
    """The peer: onnxruntime in a Ray Serve deployment, batched the same way."""
    @serve.deployment(max_ongoing_requests=128)
    class OrtModel:
        def __init__(self, path: str, threads: int, max_batch_size: int, wait: float):
            import onnxruntime as ort
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
            self.session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
            self.input = self.session.get_inputs()[0].name
            self.run_batch.set_max_batch_size(max_batch_size)
            self.run_batch.set_batch_wait_timeout_s(wait)

        @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.002, batch_size_fn=lambda xs: sum(len(x) for x in xs))
        async def run_batch(self, xs):
            counts = [len(x) for x in xs]
            y = await asyncio.to_thread(self.session.run, None, {self.input: np.concatenate(xs)})
            return np.split(y[0], np.cumsum(counts)[:-1])

        async def __call__(self, request):
            from starlette.responses import Response
            x = np.asarray(json.loads(await request.body())["instances"], np.float32)
            y = await self.run_batch(x)
            return Response(json.dumps({"predictions": y.tolist()}), media_type="application/json")

    return OrtModel


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=5, help="duration per measurement")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 64])
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads of every engine")
    ap.add_argument("--max-batch-size", type=int, default=64)
    ap.add_argument("--batch-wait", type=float, default=0.001, help="seconds a batch waits to fill (Ray deployments)")
    args = ap.parse_args()

    import ray
    from ray import serve

    from mserve.integrations.ray import ModelDeployment

    work = tempfile.mkdtemp(prefix="mserve-bench-ray-")
    model = os.path.join(work, "mlp.onnx")
    with open(model, "wb") as f:
        f.write(examples.mlp().SerializeToString())

    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning", log_to_driver=False)
    ray_port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": ray_port})
    serve.run(ModelDeployment.bind(model, name="mlp", threads=args.threads, max_batch_size=args.max_batch_size,
                                   batch_wait_timeout_s=args.batch_wait), name="mserve", route_prefix="/mserve")
    serve.run(ort_deployment(serve).bind(model, args.threads, args.max_batch_size, args.batch_wait), name="ort",
              route_prefix="/ort")
    serve_port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "mserve", "serve", f"--model_base_path={model}",
                               "--model_name=mlp", f"--rest_api_port={serve_port}", "--port=-1",
                               f"--tensorflow_intra_op_parallelism={args.threads}", "--host=127.0.0.1",
                               "--quiet"])
    targets = {
        "mserve serve": f"http://127.0.0.1:{serve_port}/v1/models/mlp:predict",
        "Ray + mserve": f"http://127.0.0.1:{ray_port}/mserve/v1/models/mlp:predict",
        "Ray + onnxruntime": f"http://127.0.0.1:{ray_port}/ort",
    }
    script = os.path.join(work, "post.lua")
    with open(script, "w") as f:
        f.write(WRK_SCRIPT)
    try:
        wait_up(f"http://127.0.0.1:{serve_port}/v2/health/ready", server)
        import onnxruntime as ort
        oracle = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
        results: dict[tuple[str, str, int], dict] = {}
        for body_name, rows in BODIES:
            x = examples.example_input("mlp", rows)
            body = json.dumps({"instances": x.tolist()}).encode()
            body_file = os.path.join(work, f"{body_name}.json")
            with open(body_file, "wb") as f:
                f.write(body)
            want = oracle.run(None, {oracle.get_inputs()[0].name: x})[0]
            for name, url in targets.items():
                got = np.asarray(post(url, body)["predictions"], np.float32)
                np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=name)
            for c in args.concurrency:
                for name, url in targets.items():
                    run_wrk(url, body_file, script, c, 1)  # warm-up
                    r = run_wrk(url, body_file, script, c, args.seconds)
                    if r["non2xx"] or r["socket_errors"]:
                        print(f"  {name} {body_name} c{c}: {r['non2xx']} non-2xx, socket errors {r['socket_errors']}")
                    results[(name, body_name, c)] = r
    finally:
        server.terminate()
        server.wait(timeout=30)
        serve.shutdown()
        ray.shutdown()

    print(f"\nRay Serve vs mserve serve, mlp, {args.threads} intra-op thread(s), wrk {args.seconds:g} s per point")
    print(f"{'body':<7} {'conc':>4} | " + " | ".join(f"{n:^26}" for n in targets) + " | Ray cost | engine on Ray")
    print(f"{'':<7} {'':>4} | " + " | ".join(f"{'rps':>8} {'p50 ms':>8} {'p99 ms':>8}" for _ in targets) +
          " | rps x    | rps x")
    for body_name, _ in BODIES:
        for c in args.concurrency:
            row = [results[(n, body_name, c)] for n in targets]
            cells = " | ".join(f"{r['rps']:>8.0f} {r['p50']:>8.2f} {r['p99']:>8.2f}" for r in row)
            print(f"{body_name:<7} {c:>4} | {cells} | {row[1]['rps'] / row[0]['rps']:>8.3f} | "
                  f"{row[1]['rps'] / row[2]['rps']:>6.2f}")
    print("Ray cost: rps of mserve on Ray / mserve serve; engine on Ray: mserve on Ray / onnxruntime on Ray.")


if __name__ == "__main__":
    main()
