from __future__ import annotations

from fractions import Fraction

import pytest

from catalog.ids import slugify, validate_title_id
from catalog.recipe import BUILTIN_RECIPES, Recipe, parse_recipe
from catalog.shots import plan_pieces, shot_table, timecode


@pytest.mark.parametrize("bad", ["", "../etc", "/abs", "a/b", "a\\b", "a\x00b", "A-Upper", "-lead", "trail-",
                                 "a b", "caf\u00e9", "a\u2215b", "x" * 65, "..", "a.b"])
def test_hostile_title_ids_are_refused(bad):
    with pytest.raises(ValueError, match="invalid title id"):
        validate_title_id(bad)


def test_slugify_makes_valid_ids():
    assert slugify("The General (1926)") == "the-general-1926"
    assert slugify("Caf\u00e9 Noir") == "cafe-noir"
    with pytest.raises(ValueError):
        slugify("???")


def test_shot_table_and_timecodes():
    t = shot_table([24, 50], 60, Fraction(24))
    assert t["start_frame"].tolist() == [0, 24, 50]
    assert t["end_frame"].tolist() == [24, 50, 60]
    assert t["frames"].sum() == 60
    assert t["start_timecode"].tolist() == ["00:00:00:00", "00:00:01:00", "00:00:02:02"]
    assert timecode(24 * 3600 + 5, Fraction(24)) == "01:00:00:05"
    with pytest.raises(ValueError):
        shot_table([0, 10], 20, Fraction(24))
    with pytest.raises(ValueError):
        shot_table([10, 5], 20, Fraction(24))


def test_pieces_tile_each_shot_and_halo_stays_inside_it():
    shots = shot_table([10, 110], 130, Fraction(24))
    pieces = plan_pieces(shots, max_frames=30, halo=4)
    covered = [f for p in pieces for f in range(p.start, p.end)]
    assert covered == list(range(130))
    for p in pieces:
        row = shots.iloc[p.shot]
        assert row.start_frame <= p.read_start <= p.start < p.end <= p.read_end <= row.end_frame
        assert p.end - p.start <= 30
    assert [p.part for p in pieces if p.shot == 1] == [0, 1, 2, 3]


def test_recipe_hash_follows_parameters_and_versions():
    a = Recipe(name="a", stages=["deflicker", "dust"])
    b = Recipe(name="b", stages=["deflicker", "dust"], masters=["ffv1"])
    c = Recipe(name="a", stages=[{"name": "deflicker", "params": {"radius": 3}}, "dust"])
    assert a.chain_hash() == b.chain_hash()  # names and masters do not change what the stages do
    assert a.chain_hash() != c.chain_hash()
    assert a.context_frames() == 2 * 7 + 2  # deflicker with tiles reads twice its radius
    assert BUILTIN_RECIPES["identity"].stages == []
    assert BUILTIN_RECIPES["default"].output_size(320, 240) == (640, 480)
    assert BUILTIN_RECIPES["uhd"].output_size(480, 368) == (2818, 2160)


def test_recipe_files_parse_and_bad_ones_say_why():
    r = parse_recipe("name: mine\nstages:\n  - deflicker\n  - {name: dust, params: {threshold: 5}}\nmasters: [ffv1]\n",
                     "yaml")
    assert [s.name for s in r.stages] == ["deflicker", "dust"] and r.masters == ["ffv1"]
    t = parse_recipe('name = "t"\nmasters = ["ffv1"]\n[[stages]]\nname = "denoise"\nparams = {keep = 0.5}\n', "toml")
    assert t.stages[0].params == {"keep": 0.5}
    with pytest.raises(ValueError, match="unknown stage"):
        parse_recipe("name: x\nstages: [sharpen]\n", "yaml")
    with pytest.raises(ValueError, match="radius"):
        parse_recipe("name: x\nstages: [{name: deflicker, params: {radius: 0}}]\n", "yaml")
    with pytest.raises(ValueError, match="not valid yaml"):
        parse_recipe("name: [", "yaml")
    with pytest.raises(ValueError, match="masters"):
        parse_recipe("name: x\nmasters: [ffv1, ffv1]\n", "yaml")


def test_a_title_recipe_keeps_the_frame_rate_but_may_rebuild_frames():
    with pytest.raises(ValueError, match=r"changes the frame rate.*reel stage interpolate MASTER OUT --set factor=2"):
        parse_recipe("name: x\nstages: [{name: interpolate, params: {factor: 2}}]\n", "yaml")
    with pytest.raises(ValueError, match="changes the frame rate"):  # the default factor is 2
        parse_recipe("name: x\nstages: [dust, interpolate]\n", "yaml")
    r = parse_recipe("name: x\nstages: [dust, {name: interpolate, params: {factor: 1, replace_duplicates: true, "
                     "rebuild_frames: [12, 40]}}]\n", "yaml")
    assert r.context_frames() > 0 and [s.name for s in r.build()] == ["dust", "interpolate"]
    with pytest.raises(ValueError, match="changes the frame rate"):  # overrides are checked the same way
        r.with_overrides({"interpolate": {"factor": 3}})
