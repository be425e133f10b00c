"""The device checks that bench/gpu_check.py runs, one module per step: preflight, ops (each CUDA
kernel against the CPU's, op_cases.py lists the cases), sanitizer, zoo, roofline, latency.

Each step runs as its own process (``gpu_check.py --run-step NAME``) under a time limit, so a
crash or a hung kernel costs that step only; it prints its log to stdout and leaves its verdict
in a small JSON file (common.Result) that the driver reads for the summary table."""
