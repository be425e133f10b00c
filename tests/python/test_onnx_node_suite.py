"""The ONNX backend node test suite, run through mserve (tests/python/node_suite.py).

tests/python/node_expectations.tsv lists every case that does not pass, with why. A listed
case that starts passing, or an unlisted case that fails, fails this test, so coverage changes
show up in diffs. Regenerate the list with `make node-expectations` after adding operators.
"""
import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).parent
EXPECTATIONS = HERE / "node_expectations.tsv"
SUMMARY = {}


def read_tsv(text):
    rows = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, status, detail = (line.split("\t") + ["", ""])[:3]
            rows[name] = (status, detail)
    return rows


def test_node_suite_matches_expectations(tmp_path):
    out = tmp_path / "results.tsv"
    proc = subprocess.run([sys.executable, str(HERE / "node_suite.py"), "--out", str(out)],
                          capture_output=True, text=True, timeout=1800)
    results = read_tsv(out.read_text()) if out.exists() else {}
    assert proc.returncode == 0, (
        f"the node suite runner died after {len(results)} cases (last: {list(results)[-1:]}):\n{proc.stderr[-3000:]}")
    expected = read_tsv(EXPECTATIONS.read_text())
    passed = [n for n, (s, _) in results.items() if s == "pass"]
    SUMMARY.update(total=len(results), passed=len(passed))
    now_passing = sorted(n for n in passed if n in expected)
    new_failures = sorted(f"{n}: {s} {d}" for n, (s, d) in results.items() if s != "pass" and n not in expected)
    stale = sorted(n for n in expected if n not in results)
    assert not now_passing, (f"{len(now_passing)} listed cases now pass; remove them from {EXPECTATIONS.name}: "
                             f"{now_passing[:20]}")
    assert not new_failures, f"{len(new_failures)} unlisted cases fail:\n" + "\n".join(new_failures[:40])
    assert not stale, f"{len(stale)} listed cases no longer exist in the suite: {stale[:20]}"
