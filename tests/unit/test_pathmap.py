"""Path mapping between the OSes of the farm."""

from __future__ import annotations

import pytest

from drqueue.errors import ConfigError
from drqueue.pathmap import check_rules, map_params, map_path
from drqueue.renderers.blender import Blender
from drqueue.renderers.ffmpeg import FFmpeg

PROJECTS = {"linux": "/mnt/projects", "windows": "P:\\projects", "darwin": "/Volumes/projects"}
RULES = [PROJECTS]


@pytest.mark.parametrize(
    ("path", "target", "mapped"),
    [
        ("/mnt/projects/shot/a.blend", "windows", "P:\\projects\\shot\\a.blend"),
        ("/mnt/projects/shot/a.blend", "darwin", "/Volumes/projects/shot/a.blend"),
        ("/mnt/projects/shot/a.blend", "linux", "/mnt/projects/shot/a.blend"),
        ("P:\\projects\\shot\\a.blend", "linux", "/mnt/projects/shot/a.blend"),
        ("/Volumes/projects/shot/a.blend", "windows", "P:\\projects\\shot\\a.blend"),
        ("/mnt/projects", "windows", "P:\\projects"),
    ],
)
def test_a_path_under_a_rules_prefix_moves_to_the_target_os_prefix_and_separators(
    path, target, mapped
):
    assert map_path(path, RULES, target) == mapped


def test_windows_prefixes_match_in_any_case_and_with_either_separator():
    assert map_path("p:/PROJECTS/shot/A.blend", RULES, "linux") == "/mnt/projects/shot/A.blend"
    assert (
        map_path("P:\\Projects/shot\\a.blend", RULES, "darwin") == "/Volumes/projects/shot/a.blend"
    )


def test_posix_prefixes_match_case_sensitively():
    assert map_path("/MNT/projects/a.blend", RULES, "windows") == "/MNT/projects/a.blend"


def test_a_prefix_matches_only_up_to_a_separator():
    assert map_path("/mnt/projects2/a.blend", RULES, "windows") == "/mnt/projects2/a.blend"
    assert map_path("P:\\projectsX\\a.blend", RULES, "linux") == "P:\\projectsX\\a.blend"


def test_the_longest_matching_prefix_wins_whatever_the_rule_order():
    rules = [
        {"linux": "/mnt", "windows": "M:\\"},
        {"linux": "/mnt/projects/cache", "windows": "C:\\cache"},
        {"linux": "/mnt/projects", "windows": "P:\\"},
    ]
    assert map_path("/mnt/projects/cache/sim.vdb", rules, "windows") == "C:\\cache\\sim.vdb"
    assert map_path("/mnt/projects/shot/a.blend", rules, "windows") == "P:\\shot\\a.blend"
    assert map_path("/mnt/other/a.blend", rules, "windows") == "M:\\other\\a.blend"
    assert map_path("C:/Cache/sim.vdb", rules, "linux") == "/mnt/projects/cache/sim.vdb"


def test_drive_roots_and_trailing_separators_in_prefixes():
    rules = [{"linux": "/mnt/p/", "windows": "P:\\"}]
    assert map_path("/mnt/p/shot/a.blend", rules, "windows") == "P:\\shot\\a.blend"
    assert map_path("P:\\shot\\a.blend", rules, "linux") == "/mnt/p/shot/a.blend"
    assert map_path("/mnt/p", rules, "windows") == "P:\\"


def test_unc_shares_map_like_any_prefix():
    rules = [{"linux": "/mnt/render", "windows": "\\\\filer\\render"}]
    assert (
        map_path("\\\\filer\\render\\out\\f_0001.exr", rules, "linux")
        == "/mnt/render/out/f_0001.exr"
    )
    assert (
        map_path("/mnt/render/out/f_0001.exr", rules, "windows")
        == "\\\\filer\\render\\out\\f_0001.exr"
    )


def test_unmatched_paths_and_rules_without_the_target_os_leave_the_path_alone():
    assert map_path("/home/ana/a.blend", RULES, "windows") == "/home/ana/a.blend"
    assert map_path("relative/a.blend", RULES, "windows") == "relative/a.blend"
    linux_windows_only = [{"linux": "/mnt/p", "windows": "P:\\"}]
    assert map_path("/mnt/p/a.blend", linux_windows_only, "darwin") == "/mnt/p/a.blend"
    assert map_path("/mnt/p/a.blend", [], "windows") == "/mnt/p/a.blend"


def test_an_unknown_target_os_is_an_error():
    with pytest.raises(ValueError, match="target OS"):
        map_path("/mnt/projects/a.blend", RULES, "plan9")


def test_map_params_maps_the_scene_and_every_path_parameter_only():
    params = Blender.validate_params(
        {"output": "/mnt/projects/render/f_####", "scene_name": "/mnt/projects/not/a/path"}
    )
    scene, mapped = map_params(Blender, params, "/mnt/projects/shot/a.blend", RULES, "windows")
    assert scene == "P:\\projects\\shot\\a.blend"
    assert mapped["output"] == "P:\\projects\\render\\f_####"
    assert mapped["scene_name"] == "/mnt/projects/not/a/path"  # a str parameter, not a path
    assert params["output"] == "/mnt/projects/render/f_####"  # the input is not changed


def test_map_params_without_a_scene_and_with_empty_paths():
    params = FFmpeg.validate_params(
        {"input": "P:\\projects\\f_####.png", "output": "P:\\projects\\m.mp4"}
    )
    scene, mapped = map_params(FFmpeg, params, None, RULES, "linux")
    assert scene is None
    assert (mapped["input"], mapped["output"]) == (
        "/mnt/projects/f_####.png",
        "/mnt/projects/m.mp4",
    )
    scene, mapped = map_params(Blender, Blender.validate_params({}), "", RULES, "linux")
    assert scene == "" and mapped["output"] == ""


def test_check_rules_accepts_the_toml_form_and_names_what_is_wrong():
    check_rules(RULES)
    check_rules([])
    with pytest.raises(ConfigError, match="'solaris' is not one of linux, windows, darwin"):
        check_rules([{"solaris": "/p"}])
    with pytest.raises(ConfigError, match="windows prefix must be a non-empty string"):
        check_rules([{"linux": "/p", "windows": ""}])
    with pytest.raises(ConfigError, match="rule 2 must be a table"):
        check_rules([PROJECTS, "P:"])
    with pytest.raises(ConfigError, match="must be a list"):
        check_rules(PROJECTS)
