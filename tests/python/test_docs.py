"""docs/ops.md is generated from the op list; it must match what the runtime reports."""
import pathlib

from mserve.__main__ import ops_markdown


def test_ops_md_is_current():
    path = pathlib.Path(__file__).parents[2] / "docs" / "ops.md"
    assert path.read_text() == ops_markdown(), "docs/ops.md is stale: run `make docs`"
