"""Dataset content checks before any model call: check_dataset_file (through resolve_dataset / dataset_uri, and
on an S3 download) and the checks of open_dataset once DuckDB has loaded the table."""

import os

import boto3
import duckdb
import pytest
from moto import mock_aws

from stepcrew.data import DEMO_DATASET
from stepcrew.tools import datasets
from stepcrew.tools.datasets import SNIFF_BYTES, check_dataset_file, dataset_uri, open_dataset, resolve_dataset
from stepcrew.tools.errors import DatasetError

PNG_HEADER = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x06\x00\x00\x00"
BUCKET = "stepcrew-test-data"

BAD_FILES = {
    "random bytes named .csv": ("noise.csv", os.urandom(4096) + b"\x00", "noise.csv is binary, not a text CSV file"),
    "PNG header named .csv": ("image.csv", PNG_HEADER, "image.csv is binary, not a text CSV file"),
    "latin-1 text": ("latin.csv", "name,city\nJosé,Zürich\n".encode("latin-1"), "latin.csv is not UTF-8 text"),
    "empty file": ("empty.csv", b"", "dataset empty.csv is empty"),
    "empty parquet": ("empty.parquet", b"", "dataset empty.parquet is empty"),
    "only blank lines": ("blank.csv", b"\n \n\t\n", "dataset blank.csv is empty"),
    "header only": ("header.csv", b"species,island\n\n  \n", "header.csv has a header but no rows"),
    "numeric first row": ("numbers.csv", b"1,2.5,-3\n4,5,6\n", "numbers.csv has no header row"),
    "numeric first row, ; separated": ("semi.csv", b"1;2,5;3\n4;5;6\n", "semi.csv has no header row"),
    "header of empty cells": ("gap.csv", b",,\nAdelie,1,Torgersen\n", "gap.csv has no header row"),
    "parquet with the wrong magic": ("fake.parquet", b"PAR0" + b"x" * 100, "fake.parquet is not a Parquet file"),
    "CSV named .parquet": ("text.parquet", b"a,b\n1,2\n", "text.parquet is not a Parquet file"),
    "JSON starting with text": ("notes.json", b'  hello {"a": 1}', "notes.json is not JSON"),
    "binary JSON": ("blob.json", b'{"a": "\x00"}', "blob.json is binary, not a text JSON file"),
    "JSON Lines starting with an array": ("rows.jsonl", b'\n[1, 2]\n{"a": 1}\n', "rows.jsonl is not JSON Lines"),
    "JSON Lines starting with text": ("log.jsonl", b"INFO started\n", "log.jsonl is not JSON Lines"),
}


@pytest.mark.parametrize(("name", "content", "message"), BAD_FILES.values(), ids=BAD_FILES.keys())
def test_a_bad_dataset_file_is_rejected_in_one_line(tmp_path, name, content, message):
    # Given a crafted file
    path = tmp_path / name
    path.write_bytes(content)
    # When it is resolved as a file:// URI, or given to the CLI
    for check in (lambda: resolve_dataset(path.as_uri()), lambda: dataset_uri(path)):
        with pytest.raises(DatasetError) as caught:
            check()
        # Then it is a one-line DatasetError naming the file, never its local path
        text = str(caught.value)
        assert message in text
        assert "\n" not in text and str(tmp_path) not in text


@pytest.mark.parametrize(("name", "content"), [
    ("bom.csv", b"\xef\xbb\xbfspecies,island\nAdelie,Torgersen\n"),
    ("semicolons.csv", b"species;mass\nAdelie;3750\n"),
    ("tabs.csv", b"species\tmass\nAdelie\t3750\n"),
    ("quoted.csv", b'"species","mass"\n"Adelie",3750\n'),
    ("leading_blank_lines.csv", b"\n\nspecies,mass\nAdelie,3750\n"),
    ("one_column.csv", b"a\n1\n"),
    ("array.json", b' \n[{"a": 1}]'),
    ("object.json", b'{"a": [1, 2]}'),
    ("rows.jsonl", b'\n{"a": 1}\n{"a": 2}\n'),
])
def test_good_small_files_pass(tmp_path, name, content):
    # Given a small valid file
    path = tmp_path / name
    path.write_bytes(content)
    # When / Then it is accepted
    assert resolve_dataset(path.as_uri()) == path


def test_a_multibyte_character_cut_at_the_sniff_boundary_is_fine(tmp_path):
    # Given a CSV whose byte SNIFF_BYTES falls inside a 2-byte character ("é" = c3 a9)
    header = b"name,note\n"
    row = "x,é\n".encode()
    body = header + b"a," + b"x" * (SNIFF_BYTES - len(header) - 3) + "é".encode() + b"\n" + row * 10
    assert body[SNIFF_BYTES - 1:SNIFF_BYTES + 1] == "é".encode()
    path = tmp_path / "cut.csv"
    path.write_bytes(body)
    # When / Then the file is accepted, and DuckDB loads it
    check_dataset_file(path, path.as_uri())
    cur = open_dataset(path.as_uri())
    try:
        assert cur.execute("SELECT count(*) FROM data").fetchone()[0] == 11
    finally:
        cur.close()


def test_a_header_longer_than_the_sniffed_bytes_is_not_called_headerless(tmp_path):
    # Given a CSV whose header alone is longer than SNIFF_BYTES, cut right after a separator
    header = "a" * (SNIFF_BYTES - 1) + ",b"
    assert header[SNIFF_BYTES - 1] == ","
    path = tmp_path / "wide.csv"
    path.write_text(header + "\n1,2\n")
    # When / Then the cut (empty-looking) last cell does not make it headerless
    check_dataset_file(path, path.as_uri())


def test_the_bundled_penguins_dataset_is_fine():
    check_dataset_file(DEMO_DATASET, DEMO_DATASET.as_uri())
    assert resolve_dataset(DEMO_DATASET.as_uri()) == DEMO_DATASET


def test_a_real_parquet_file_is_fine(tmp_path):
    # Given a small Parquet file written by DuckDB
    path = tmp_path / "small.parquet"
    con = duckdb.connect()
    con.execute(f"COPY (SELECT range AS n, 'v' || range AS label FROM range(5)) TO '{path}' (FORMAT parquet)")
    con.close()
    # When / Then it passes the sniff and loads
    check_dataset_file(path, path.as_uri())
    cur = open_dataset(path.as_uri())
    try:
        assert cur.execute("SELECT count(*), max(n) FROM data").fetchone() == (5, 4)
    finally:
        cur.close()


# ------------------------------------------------------------------------------------------------ open_dataset
@pytest.mark.parametrize(("name", "content", "message"), [
    # the first row mixes text and numbers like the others: DuckDB detects no header and names the columns
    ("mixed.csv", b"Adelie,3750\nGentoo,5000\n", "dataset mixed.csv has no header row"),
    ("empty_array.json", b"[]", "dataset empty_array.json has no rows"),
    ("empty_table.parquet", None, "dataset empty_table.parquet has no rows"),
])
def test_open_dataset_rejects_what_duckdb_reads_as_headerless_or_empty(tmp_path, name, content, message):
    # Given a file that passes the sniff
    path = tmp_path / name
    if content is None:
        con = duckdb.connect()
        con.execute(f"COPY (SELECT 1 AS n WHERE false) TO '{path}' (FORMAT parquet)")
        con.close()
    else:
        path.write_bytes(content)
    check_dataset_file(path, path.as_uri())
    # When DuckDB loads it
    with pytest.raises(DatasetError) as caught:
        open_dataset(path.as_uri())
    # Then it is a one-line DatasetError, and nothing is cached
    text = str(caught.value)
    assert message in text and "\n" not in text and str(tmp_path) not in text
    assert not datasets._databases


# ------------------------------------------------------------------------------------------------ S3
@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def test_a_bad_s3_download_is_rejected_and_not_cached(s3):
    # Given a PNG uploaded as a CSV
    s3.put_object(Bucket=BUCKET, Key="in/photo.csv", Body=PNG_HEADER)
    uri = f"s3://{BUCKET}/in/photo.csv"
    # When it is resolved
    with pytest.raises(DatasetError, match="dataset photo.csv is binary, not a text CSV file"):
        resolve_dataset(uri)
    # Then the partial download is deleted and nothing is remembered
    assert list(datasets.CACHE_DIR.iterdir()) == []
    assert uri not in datasets._downloads


def test_a_good_s3_download_passes_the_check(s3):
    s3.upload_file(str(DEMO_DATASET), BUCKET, "in/penguins.csv")
    path = resolve_dataset(f"s3://{BUCKET}/in/penguins.csv")
    assert path.read_bytes() == DEMO_DATASET.read_bytes()


@pytest.mark.parametrize("content", [b",species,mass\n0,Adelie,3700\n1,Gentoo,5000\n",  # pandas' to_csv index
                                     b"species,mass,\nAdelie,3700,\nGentoo,5000,\n"])   # a trailing comma
def test_a_header_with_an_unnamed_column_is_fine(tmp_path, content):
    path = tmp_path / "pandas.csv"
    path.write_bytes(content)
    check_dataset_file(path, path.as_uri())
    cursor = open_dataset(path.as_uri())
    try:
        names = [r[0] for r in cursor.execute("DESCRIBE data").fetchall()]
    finally:
        cursor.close()
    assert "species" in names and "mass" in names
