"""describe_dataset and query_dataset on the real Palmer Penguins data, checked against the csv module."""

import json
import statistics
from collections import Counter

import duckdb
import pytest

from stepcrew.models import TOOL_OUTPUT_MAX_BYTES
from stepcrew.tools.dataset import DescribeDataset, QueryDataset
from stepcrew.tools.datasets import open_dataset

NUMERIC = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]


def _numbers(rows, column):
    return [float(r[column]) for r in rows if r[column] != "NA"]


def _describe(make_invocation, uri, **arguments):
    return DescribeDataset().invoke(make_invocation("describe_dataset", arguments, uri))


def _query(make_invocation, uri, sql, tool=None, **arguments):
    return (tool or QueryDataset()).invoke(make_invocation("query_dataset", {"sql": sql, **arguments}, uri))


# ------------------------------------------------------------------------------------------------ describe
def test_describe_all_columns_matches_an_independent_computation(make_invocation, penguins_uri, penguin_rows):
    # When
    result = _describe(make_invocation, penguins_uri)
    # Then
    assert result.ok and not result.truncated
    content = result.content
    assert content["dataset"] == "penguins.csv"
    assert content["rows"] == len(penguin_rows) == 344
    columns = {c["name"]: c for c in content["columns"]}
    assert list(columns) == list(penguin_rows[0])
    for name in NUMERIC:
        values = _numbers(penguin_rows, name)
        col = columns[name]
        assert col["nulls"] == len(penguin_rows) - len(values)
        assert col["distinct"] == len(set(values))
        assert col["min"] == pytest.approx(min(values))
        assert col["max"] == pytest.approx(max(values))
        assert col["mean"] == round(statistics.mean(values), 4)
        assert col["stddev"] == round(statistics.stdev(values), 4)
        assert col["median"] == round(statistics.median(values), 4)
    assert columns["body_mass_g"]["type"] == "BIGINT"
    assert isinstance(columns["body_mass_g"]["min"], int)


def test_describe_text_columns_give_top_values(make_invocation, penguins_uri, penguin_rows):
    result = _describe(make_invocation, penguins_uri, columns=["species", "sex"])
    assert result.ok
    species, sex = result.content["columns"]
    expected = Counter(r["species"] for r in penguin_rows).most_common()
    assert species["top"] == [{"value": v, "count": n} for v, n in expected]
    assert species["distinct"] == 3 and species["nulls"] == 0
    assert sex["nulls"] == sum(r["sex"] == "NA" for r in penguin_rows) == 11
    assert {t["value"] for t in sex["top"]} == {"female", "male"}
    assert "mean" not in species


def test_describe_matches_columns_case_insensitively_and_once(make_invocation, penguins_uri):
    result = _describe(make_invocation, penguins_uri, columns=["Species", "species", "YEAR"])
    assert [c["name"] for c in result.content["columns"]] == ["species", "year"]


def test_describe_unknown_column_lists_the_known_ones(make_invocation, penguins_uri):
    result = _describe(make_invocation, penguins_uri, columns=["species", "weight"])
    assert not result.ok
    assert result.error.type == "DatasetError"
    assert result.error.message.startswith("unknown column(s): weight; known columns: species, island,")


def test_describe_rejects_unknown_arguments(make_invocation, penguins_uri):
    result = _describe(make_invocation, penguins_uri, column="species")
    assert result.error.type == "InvalidArguments"
    assert result.error.message == "column: Extra inputs are not permitted"


@pytest.mark.parametrize("tool", [DescribeDataset(), QueryDataset()])
def test_no_dataset_is_a_typed_error(make_invocation, tool):
    args = {"sql": "SELECT 1"} if tool.name == "query_dataset" else {}
    result = tool.invoke(make_invocation(tool.name, args, None))
    assert result.error.type == "DatasetError"
    assert result.error.message.startswith("this run has no dataset")


def test_describe_shrinks_a_wide_dataset_to_the_cap(make_invocation, tmp_path):
    # Given a dataset of 80 text columns whose description exceeds 8 KiB
    path = tmp_path / "wide.csv"
    header = [f"column_with_a_long_name_{i:03d}" for i in range(80)]
    path.write_text(",".join(header) + "\n" + ",".join(f"value_{i}" for i in range(80)) + "\n")
    # When
    result = _describe(make_invocation, path.as_uri())
    # Then fewer columns come back, the rest are counted, and the content fits
    assert result.ok and result.truncated
    kept = len(result.content["columns"])
    assert 0 < kept < 80
    assert result.content["columns_omitted"] == 80 - kept
    assert len(json.dumps(result.content)) <= TOOL_OUTPUT_MAX_BYTES


def test_describe_dates_and_nested_columns(make_invocation, tmp_path):
    # Given a Parquet file with a date, a timestamp, a list and a decimal column
    path = tmp_path / "mixed.parquet"
    con = duckdb.connect()
    con.execute(f"""COPY (SELECT * FROM (VALUES
        (DATE '2024-03-01', TIMESTAMP '2024-03-01 08:00:00', [1, 2], 1.25::DECIMAL(5,2)),
        (DATE '2023-12-31', NULL, [3], 2.75::DECIMAL(5,2))) t(day, seen_at, tags, price)) TO '{path}'""")
    con.close()
    # When
    result = _describe(make_invocation, path.as_uri())
    # Then
    day, seen_at, tags, price = result.content["columns"]
    assert day == {"name": "day", "type": "DATE", "nulls": 0, "distinct": 2, "min": "2023-12-31",
                   "max": "2024-03-01"}
    assert seen_at["nulls"] == 1 and seen_at["min"] == seen_at["max"] == "2024-03-01T08:00:00"
    assert tags == {"name": "tags", "type": "INTEGER[]", "nulls": 0, "distinct": 2}
    assert (price["type"], price["mean"], price["min"]) == ("DECIMAL(5,2)", 2.0, 1.25)


# ------------------------------------------------------------------------------------------------ query
def test_query_aggregates_match_an_independent_computation(make_invocation, penguins_uri, penguin_rows):
    sql = ("SELECT species, count(*) AS n, avg(body_mass_g) AS mass FROM data "
           "GROUP BY species ORDER BY mass DESC")
    result = _query(make_invocation, penguins_uri, sql)
    assert result.ok and not result.truncated
    content = result.content
    assert content["columns"] == ["species", "n", "mass"]
    assert content["row_count"] == 3 and content["truncated"] is False
    expected = {}
    for s in {r["species"] for r in penguin_rows}:
        rows = [r for r in penguin_rows if r["species"] == s]
        expected[s] = (len(rows), statistics.mean(_numbers(rows, "body_mass_g")))
    assert [r[0] for r in content["rows"]] == ["Gentoo", "Chinstrap", "Adelie"]
    for species, n, mass in content["rows"]:
        assert (n, mass) == (expected[species][0], pytest.approx(expected[species][1]))


def test_query_returns_at_most_max_rows(make_invocation, penguins_uri, penguin_rows):
    result = _query(make_invocation, penguins_uri, "SELECT species, island, year FROM data", max_rows=5)
    content = result.content
    assert content["row_count"] == 5 and len(content["rows"]) == 5
    assert content["truncated"] is True
    assert not result.truncated  # the byte cap was not needed
    assert content["rows"][0] == [penguin_rows[0]["species"], penguin_rows[0]["island"], 2007]


def test_query_values_are_json_safe(make_invocation, penguins_uri):
    sql = ("SELECT DATE '2009-11-05' AS d, TIMESTAMP '2009-11-05 10:30:00' AS ts, 12.50::DECIMAL(6,2) AS dec, "
           "'nan'::DOUBLE AS nan_value, NULL AS nothing, [1, 2] AS list, {'a': 1} AS struct")
    result = _query(make_invocation, penguins_uri, sql)
    assert result.ok
    assert result.content["rows"] == [["2009-11-05", "2009-11-05T10:30:00", 12.5, None, None, [1, 2], {"a": 1}]]
    json.dumps(result.content, allow_nan=False)


def test_query_output_is_capped_by_dropping_rows(make_invocation, penguins_uri, penguin_rows):
    # Given a query whose 200 rows serialise to more than 8 KiB
    result = _query(make_invocation, penguins_uri, "SELECT * FROM data", max_rows=200)
    # Then the first rows that fit are kept and both truncation flags are set
    assert result.ok and result.truncated and result.content["truncated"]
    rows = result.content["rows"]
    assert 0 < len(rows) < 200 and result.content["row_count"] == len(rows)
    assert len(json.dumps(result.model_dump(mode="json")["content"])) <= TOOL_OUTPUT_MAX_BYTES
    assert [r[0] for r in rows] == [r["species"] for r in penguin_rows[: len(rows)]]


def test_query_clips_huge_text_values(make_invocation, penguins_uri):
    result = _query(make_invocation, penguins_uri, "SELECT repeat('x', 10000) AS s")
    assert result.ok
    assert len(result.content["rows"][0][0]) == 200 and result.content["rows"][0][0].endswith("…")


@pytest.mark.parametrize(("sql", "kind"), [
    ("DROP TABLE data", "DROP"),
    ("DELETE FROM data", "DELETE"),
    ("UPDATE data SET year = 0", "UPDATE"),
    ("INSERT INTO data SELECT * FROM data", "INSERT"),
    ("CREATE TABLE t AS SELECT 1", "CREATE"),
    ("COPY data TO '/tmp/stepcrew-leak.csv'", "COPY"),
    ("ATTACH '/tmp/other.db' AS other", "ATTACH"),
    ("PRAGMA database_list", "PRAGMA"),
    ("SET enable_external_access = true", "SET"),
    ("INSTALL httpfs", "LOAD"),
    ("LOAD httpfs", "LOAD"),
    ("EXPORT DATABASE '/tmp/x'", "EXPORT"),
    ("CALL pragma_version()", "CALL"),
    ("EXPLAIN SELECT 1", "EXPLAIN"),
])
def test_only_select_is_allowed(make_invocation, penguins_uri, sql, kind):
    result = _query(make_invocation, penguins_uri, sql)
    assert result.error.type == "QueryError"
    assert result.error.message == f"only SELECT queries are allowed (read-only), got {kind}"


def test_the_table_is_unchanged_after_rejected_writes(make_invocation, penguins_uri):
    for sql in ("DROP TABLE data", "DELETE FROM data", "SELECT 1; DROP TABLE data"):
        assert not _query(make_invocation, penguins_uri, sql).ok
    assert _query(make_invocation, penguins_uri, "SELECT count(*) FROM data").content["rows"] == [[344]]


@pytest.mark.parametrize("sql", ["SELECT 1; SELECT 2", "SELECT 1; DROP TABLE data"])
def test_multiple_statements_are_rejected(make_invocation, penguins_uri, sql):
    result = _query(make_invocation, penguins_uri, sql)
    assert result.error.type == "QueryError"
    assert result.error.message == "give exactly one SQL statement, got 2"


@pytest.mark.parametrize("sql", [
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('/etc/hostname')",
    "SELECT * FROM glob('/etc/*')",
    "SELECT * FROM read_parquet('s3://bucket/key.parquet')",
])
def test_sql_cannot_reach_other_files(make_invocation, penguins_uri, sql):
    result = _query(make_invocation, penguins_uri, sql)
    assert result.error.type == "QueryError"
    assert result.error.message.startswith("Permission Error:")


def test_sql_cannot_read_duckdbs_temporary_folder(make_invocation, penguins_uri, tmp_path, monkeypatch):
    # Given a file in <cwd>/.tmp, the folder DuckDB would keep readable as its spill folder
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".tmp").mkdir()
    (tmp_path / ".tmp" / "secret.txt").write_text("do not read me")
    # When the model tries to read it
    result = _query(make_invocation, penguins_uri, "SELECT content FROM read_text('.tmp/secret.txt')")
    # Then it is refused like any other file
    assert result.error.type == "QueryError"
    assert result.error.message.startswith("Permission Error:")
    settings = _query(make_invocation, penguins_uri, "SELECT current_setting('allowed_directories')")
    assert settings.content["rows"] == [[[]]]


def test_duckdb_memory_is_capped(make_invocation, penguins_uri, monkeypatch):
    # Given a Lambda-like environment with 1024 MiB of function memory
    monkeypatch.delenv("STEPCREW_DUCKDB_MEMORY_MB", raising=False)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
    # When the model asks DuckDB for its memory limit
    result = _query(make_invocation, penguins_uri, "SELECT current_setting('memory_limit')")
    # Then it is 60% of the function's memory, not DuckDB's default of 80% of the host's RAM
    assert result.content["rows"] == [["614.0 MiB"]]


def test_a_query_needing_too_much_memory_is_a_typed_limit_error(make_invocation, penguins_uri, monkeypatch):
    # Given a 64 MiB memory cap
    monkeypatch.setenv("STEPCREW_DUCKDB_MEMORY_MB", "64")
    # When a query builds a ~1 GB value
    sql = "SELECT max(length(x)) FROM (SELECT repeat('x', 10000) || range AS x FROM range(1000000) ORDER BY x)"
    result = _query(make_invocation, penguins_uri, sql)
    # Then it fails with a typed, one-line limit error
    assert result.error.type == "LimitExceeded"
    assert "64 MiB memory limit" in result.error.message
    # and the dataset still answers afterwards
    assert _query(make_invocation, penguins_uri, "SELECT count(*) FROM data").content["rows"] == [[344]]


@pytest.mark.parametrize(("sql", "start"), [
    ("SELEC species FROM data", "Parser Error:"),
    ("SELECT weight FROM data", "Binder Error:"),
    ("SELECT * FROM penguins", "Catalog Error:"),
    ("", None),
])
def test_bad_sql_gives_duckdbs_first_line(make_invocation, penguins_uri, sql, start):
    result = _query(make_invocation, penguins_uri, sql)
    if start is None:
        assert result.error.type == "InvalidArguments"
        return
    assert result.error.type == "QueryError"
    assert result.error.message.startswith(start)
    assert "\n" not in result.error.message


def test_max_rows_is_validated(make_invocation, penguins_uri):
    result = _query(make_invocation, penguins_uri, "SELECT 1", max_rows=201)
    assert result.error.type == "InvalidArguments"
    assert result.error.message == "max_rows: Input should be less than or equal to 200"


def test_a_slow_query_hits_the_time_limit(make_invocation, penguins_uri):
    # Given a tiny time limit and a cross join of 344^4 rows
    tool = QueryDataset(timeout_s=0.2)
    sql = "SELECT sum(a.body_mass_g + b.year * c.flipper_length_mm - d.year) FROM data a, data b, data c, data d"
    # When
    result = _query(make_invocation, penguins_uri, sql, tool=tool)
    # Then
    assert result.error.type == "LimitExceeded"
    assert "0.2 s limit" in result.error.message
    # and the dataset still answers afterwards
    assert _query(make_invocation, penguins_uri, "SELECT count(*) FROM data").content["rows"] == [[344]]


# ------------------------------------------------------------------------------------------------ formats
@pytest.mark.parametrize(("suffix", "copy_options"), [
    (".parquet", "(FORMAT parquet)"),
    (".json", "(FORMAT json, ARRAY true)"),
    (".jsonl", "(FORMAT json)"),
])
def test_parquet_and_json_datasets_load(make_invocation, penguins_uri, tmp_path, suffix, copy_options):
    # Given the penguins written in another format by a separate DuckDB connection
    path = tmp_path / f"penguins{suffix}"
    con = duckdb.connect()
    con.execute(f"COPY (SELECT * FROM read_csv('{penguins_uri[7:]}', nullstr = 'NA')) TO '{path}' {copy_options}")
    con.close()
    # When
    result = _query(make_invocation, path.as_uri(),
                    "SELECT count(*), count(body_mass_g), max(flipper_length_mm) FROM data")
    # Then
    assert result.content["rows"] == [[344, 342, 231]]


def test_a_loaded_dataset_is_reused(make_invocation, penguins_uri, monkeypatch):
    # Given the dataset loaded once
    open_dataset(penguins_uri).close()

    # When DuckDB could not open a new database
    def no_connect(*_a, **_k):
        raise AssertionError("dataset reloaded")

    monkeypatch.setattr(duckdb, "connect", no_connect)
    # Then the cached one still answers
    assert _query(make_invocation, penguins_uri, "SELECT count(*) FROM data").content["rows"] == [[344]]


@pytest.mark.parametrize("sql", [
    "SELECT length(repeat('x', 500000000)) FROM data",
    "SELECT repeat(species, 2e9) FROM data",
    "SELECT rpad(species, body_mass_g * 100000) FROM data",
    "SELECT count(*) FROM range(10000000000)",
    "SELECT count(*) FROM generate_series(1, n) t(n)",
    "SELECT string_agg(species, ',') FROM data",
    "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t) SELECT count(*) FROM t",
])
def test_queries_that_build_unbounded_values_are_refused_before_they_run(sql, make_invocation, penguins_uri):
    import time

    start = time.monotonic()
    result = _query(make_invocation, penguins_uri, sql)
    assert not result.ok and result.error.type == "LimitExceeded"
    assert time.monotonic() - start < 2.0  # refused, not run into the time limit


def test_bounded_uses_of_the_same_functions_still_run(make_invocation, penguins_uri):
    result = _query(make_invocation, penguins_uri, "SELECT lpad(species, 10, ' ') AS s, repeat('-', 3) AS d FROM data LIMIT 1")
    assert result.ok and result.content["rows"][0][1] == "---"
