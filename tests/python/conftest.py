import onnx
import pytest

from op_harness import make_model, ort_run  # noqa: F401  (test modules import them from here too)

# The slow tier, which `make test-fast` (pytest -m "not slow") leaves out: the model zoos and example
# models, the notebooks, the ONNX node suite, soak-style server tests (overload, TLS, repository
# lifecycle, corrupted models), and single tests that wait on timers, reloads or memory sampling.
SLOW_MODULES = {"test_zoo.py", "test_real_zoo.py", "test_models.py", "test_notebooks.py", "test_onnx_node_suite.py",
                "test_overload.py", "test_tls.py", "test_serve_lifecycle.py", "test_robustness.py"}
SLOW_TESTS = {
    "test_grpc.py::test_deadline_passing_in_the_queue_drops_the_request",
    "test_grpc.py::test_stop_drains_calls_in_flight",
    "test_access.py::test_tokens_file_is_reloaded",
    "test_model_security.py::test_signed_versions_serve_and_bad_ones_are_refused",
    "test_api.py::test_zero_copy_peak_memory",
    "test_api.py::test_idle_model_does_not_spin",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        name = item.path.name
        if name in SLOW_MODULES or f"{name}::{getattr(item, 'originalname', item.name)}" in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def tmp_model(tmp_path):
    def save(model, name="m.onnx"):
        p = tmp_path / name
        onnx.save(model, str(p))
        return str(p)
    return save


def pytest_terminal_summary(terminalreporter):
    """Prints the real-size zoo's table and the ONNX node suite pass count when those tests ran."""
    try:
        from test_real_zoo import table
    except ImportError:
        pass
    else:
        for line in table():
            terminalreporter.write_line(line)
    try:
        from test_onnx_node_suite import SUMMARY
    except ImportError:
        return
    if SUMMARY:
        terminalreporter.write_line(
            f"ONNX backend node suite: {SUMMARY['passed']} of {SUMMARY['total']} cases pass in mserve")
