from pathlib import Path

from echonet.tools.table_doc import render


def test_docs_property_table_matches_the_code() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "echonet.md").read_text(encoding="utf-8")
    assert render() in doc
