import pytest
from typer.testing import CliRunner

from prism.cli import app

runner = CliRunner()


@pytest.mark.parametrize("command", [[], ["ingest"], ["search"], ["item"], ["demo"]])
def test_every_command_has_help(command):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_search_without_query_is_a_clear_error():
    result = runner.invoke(app, ["search"])
    assert result.exit_code == 2 and "needs text, an image or an audio file" in result.output


def test_bad_where_json_is_a_clear_error():
    result = runner.invoke(app, ["search", "x", "--where", "{nope"])
    assert result.exit_code == 2 and "--where is not valid JSON" in result.output


def test_missing_catalog_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["ingest", str(tmp_path / "missing.jsonl")])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_ingest_then_search_json(tmp_path):
    catalog = tmp_path / "c.jsonl"
    catalog.write_text('{"item_id": "x1", "title": "Harbour Lights", "description": "A lighthouse story."}\n')
    result = runner.invoke(app, ["ingest", str(catalog), "--json"])
    assert result.exit_code == 0 and '"ingested": 1' in result.output
    result = runner.invoke(app, ["search", "lighthouse", "--json", "-k", "1"])
    assert result.exit_code == 0 and '"item_id": "x1"' in result.output


def test_catalog_text_that_looks_like_markup_is_printed_as_text(tmp_path):
    catalog = tmp_path / "c.jsonl"
    catalog.write_text('{"item_id": "m1", "title": "[/] x [bold]", "description": "A lighthouse [red] story."}\n'
                       '{"item_id": "m2", "title": "Bad field", "[/]": {"nested": 1}}\n')
    result = runner.invoke(app, ["ingest", str(catalog)])
    assert result.exit_code == 0, result.output
    assert "failed c.jsonl:2 (m2)" in result.output or "failed c.jsonl:2" in result.output
    assert "'[/]'" in result.output  # the failure names the field as written
    result = runner.invoke(app, ["search", "lighthouse", "-k", "1"])
    assert result.exit_code == 0, result.output
    assert "[/] x [bold]" in result.output and "[red]" in result.output


def test_an_invalid_where_filter_is_a_clear_error_not_a_traceback(tmp_path):
    catalog = tmp_path / "c.jsonl"
    catalog.write_text('{"item_id": "x1", "title": "Harbour Lights", "description": "A lighthouse story."}\n')
    assert runner.invoke(app, ["ingest", str(catalog)]).exit_code == 0
    for where in ('{"$bogus": 1}', '{"genres": {"$nope": "x"}}', '"just a string"'):
        result = runner.invoke(app, ["search", "lighthouse", "--where", where])
        assert result.exit_code == 2 and "invalid metadata filter" in result.output, result.output
        assert "Traceback" not in result.output
