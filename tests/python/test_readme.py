"""The README's Python quick start runs as written."""
import pathlib
import re


def test_readme_quick_start_runs():
    text = (pathlib.Path(__file__).parents[2] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "README has no python block"
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {})


def test_every_make_target_the_readme_and_makefile_name_has_a_rule():
    """`make serve`, `make demo`, `make bench`, ... must exist: every .PHONY target of the Makefile
    has a rule, and so does every `make X` the README shows."""
    root = pathlib.Path(__file__).resolve().parents[2]
    makefile = (root / "Makefile").read_text()
    rules = set(re.findall(r"^([A-Za-z][\w-]*):(?!=)", makefile, re.M))
    phony = set(re.search(r"^\.PHONY:(.*)$", makefile, re.M).group(1).split())
    readme = set(re.findall(r"\bmake ([a-z][\w-]*)", (root / "README.md").read_text()))
    assert phony - rules == set()
    assert readme - rules == set()
    assert {"serve", "demo", "test", "bench", "bench-serve"} <= rules
