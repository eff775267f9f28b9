"""Issue 20: a stray comma never shifts a catalogue's columns; catalogue and recipe sizes are bounded."""

from __future__ import annotations

import pytest

from catalog.recipe import parse_recipe
from infra.catalogue_io import read_catalogue


def test_a_stray_comma_is_an_error_naming_the_line(tmp_path):
    path = tmp_path / "titles.csv"
    path.write_text("id,source\nfine,a.mkv\nfoo,bar,../base.mkv\n")
    with pytest.raises(ValueError, match=r"line 3: 3 fields but the header has 2"):
        read_catalogue(path)
    path.write_text("id,source,name\nfoo,bar\n")
    with pytest.raises(ValueError, match=r"line 2: 2 fields but the header has 3"):
        read_catalogue(path)


def test_quoted_commas_and_blank_lines_are_fine(tmp_path):
    path = tmp_path / "titles.csv"
    path.write_text('id,source,name\nfoo,a.mkv,"Smith, John"\n\n')
    [title] = read_catalogue(path)
    assert title.name == "Smith, John"


def test_catalogue_limits(tmp_path):
    path = tmp_path / "titles.csv"
    path.write_text("id,source\n" + "".join(f"t{i},s{i}.mkv\n" for i in range(11)))
    with pytest.raises(ValueError, match="more than 10 titles"):
        read_catalogue(path, max_rows=10)
    with pytest.raises(ValueError, match="more than the limit of 100"):
        read_catalogue(path, max_bytes=100)


def test_a_huge_recipe_is_refused_before_parsing():
    text = "name: big\nstages: []\n" + "# padding\n" * 200_000
    with pytest.raises(ValueError, match="more than the limit"):
        parse_recipe(text, "yaml")


def test_a_huge_recipe_file_is_refused_before_reading(tmp_path, monkeypatch):
    from flows.recipes import resolve_recipe

    path = tmp_path / "big.yaml"
    path.write_text("name: big\nstages: []\n" + "#" * 2_000_000)
    with pytest.raises(ValueError, match="more than the limit of 1048576"):
        resolve_recipe(str(path))
