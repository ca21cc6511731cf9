"""Golden command lines of the renderers not installed here, and their output parsing.

The expected argument lists follow each vendor's documented command line; the
output lines are the formats those renderers document or print (see each
module's docstring).  Blender, POV-Ray and FFmpeg, checked against the real
programs, are in test_renderers.py.
"""

from __future__ import annotations

import pytest

from drqueue.errors import InvalidJob
from drqueue.models import FrameBlock
from drqueue.renderers import get_renderer
from drqueue.renderers.base import LineInfo, RenderContext


def build(name, block, scene=None, **params):
    cls = get_renderer(name)
    ctx = RenderContext(block=block, scene=scene, params=cls.validate_params(params))
    renderer = cls()
    return renderer.commands(ctx), renderer.outputs(ctx)


def parse(name, *lines):
    renderer = get_renderer(name)()
    return [renderer.parse_line(line) for line in lines]


# -- Maya and Turtle -----------------------------------------------------------------------------


def test_maya_lets_render_walk_the_block_by_its_step():
    commands, outputs = build(
        "maya", FrameBlock(1, 9, 2), "/p/shot.mb", renderer="arnold", camera="shotCam",
        project="/p", image_dir="/r", image_name="shot", image_format="exr", padding=4,
        width=1920, height=1080, output="/r/shot.####.exr",
    )  # fmt: skip
    assert commands == [
        ["Render", "-r", "arnold", "-s", "1", "-e", "9", "-b", "2", "-proj", "/p", "-cam", "shotCam",
         "-rd", "/r", "-im", "shot", "-of", "exr", "-pad", "4", "-x", "1920", "-y", "1080", "/p/shot.mb"]
    ]  # fmt: skip
    assert outputs == [f"/r/shot.{n:04d}.exr" for n in (1, 3, 5, 7, 9)]


def test_maya_defaults_to_the_scenes_renderer_and_checks_nothing_without_output():
    commands, outputs = build("maya", FrameBlock(10, 12), "/p/shot.ma")
    assert commands == [["Render", "-r", "file", "-s", "10", "-e", "12", "-b", "1", "/p/shot.ma"]]
    assert outputs == []


def test_maya_refuses_names_that_are_not_maya_names():
    with pytest.raises(InvalidJob, match="'camera' may hold only"):
        get_renderer("maya").validate_params({"camera": "cam; rm -rf /"})


def test_maya_progress_and_errors():
    assert parse(
        "maya",
        "00:00:05  812MB         |    45% done - 23 rays/pixel",
        "Percentage of rendering done: 30 (/r/shot.0001.iff)",
        "// Error: Scene /p/shot.mb failed to load",
        "Result: /r/shot.0001.exr",
    ) == [
        LineInfo(frame_fraction=0.45),
        LineInfo(frame_fraction=0.30),
        LineInfo(error="// Error: Scene /p/shot.mb failed to load"),
        None,
    ]


def test_turtle_is_maya_render_with_the_turtle_renderer():
    commands, _ = build("turtle", FrameBlock(4, 8, 4), "/p/bake.mb", camera="persp")
    assert commands == [
        ["Render", "-r", "turtle", "-s", "4", "-e", "8", "-b", "4", "-cam", "persp", "/p/bake.mb"]
    ]
    with pytest.raises(InvalidJob, match="no parameter 'renderer'"):
        get_renderer("turtle").validate_params({"renderer": "arnold"})


# -- mental ray and the RenderMan renderers --------------------------------------------------------


def test_mentalray_renders_a_range_of_one_mi_file_or_each_frame_with_a_step():
    commands, _ = build("mentalray", FrameBlock(1, 4), "/p/shot.mi", threads=8)
    assert commands == [
        ["ray", "-verbose", "5", "-threads", "8", "-render", "1", "4", "/p/shot.mi"]
    ]
    commands, _ = build("mentalray", FrameBlock(1, 5, 2), "/p/shot.mi")
    assert commands == [
        ["ray", "-verbose", "5", "-render", str(n), str(n), "/p/shot.mi"] for n in (1, 3, 5)
    ]


def test_mentalray_renders_a_file_per_frame():
    commands, _ = build("mentalray", FrameBlock(9, 11), "/p/mi/shot.####.mi")
    assert commands == [["ray", "-verbose", "5", f"/p/mi/shot.{n:04d}.mi"] for n in (9, 10, 11)]


def test_mentalray_progress_and_errors():
    assert parse(
        "mentalray",
        "JOB  0.3  progr:    45.2% rendered on render07.3",
        "SCEN 0.0  progr: begin scene preprocessing for frame 12",
        'PHEN 0.0  error 051011: shader "mib_x" not found',
    ) == [
        LineInfo(frame_fraction=0.452),
        LineInfo(frame=12),
        LineInfo(error='PHEN 0.0  error 051011: shader "mib_x" not found'),
    ]


def test_3delight_renders_a_range_of_a_multi_frame_rib_or_each_frame():
    commands, outputs = build(
        "3delight", FrameBlock(1, 3), "/p/shot.rib", threads=4, output="/r/f.####.tif"
    )
    assert commands == [["renderdl", "-progress", "-t", "4", "-frames", "1", "3", "/p/shot.rib"]]
    assert outputs == ["/r/f.0001.tif", "/r/f.0002.tif", "/r/f.0003.tif"]
    commands, _ = build("3delight", FrameBlock(2, 6, 4), "/p/shot.rib")
    assert commands == [
        ["renderdl", "-progress", "-frames", n, n, "/p/shot.rib"] for n in ("2", "6")
    ]
    commands, _ = build("3delight", FrameBlock(2, 6, 4), "/p/rib/shot.####.rib")
    assert commands == [["renderdl", "-progress", f"/p/rib/shot.{n:04d}.rib"] for n in (2, 6)]


def test_3delight_errors():
    line = "3DL ERROR R2050: cannot open file '/p/tex/wood.tdl'"
    assert parse("3delight", line, "3DL INFO: rendering frame 2") == [LineInfo(error=line), None]


def test_aqsis_renders_a_range_or_each_frame_and_reads_its_progress():
    commands, _ = build("aqsis", FrameBlock(5, 7), "/p/shot.rib")
    assert commands == [["aqsis", "-progress", "-frames", "5", "7", "/p/shot.rib"]]
    commands, _ = build("aqsis", FrameBlock(5, 9, 2), "/p/shot.rib")
    assert [argv[2:5] for argv in commands] == [["-frames", n, n] for n in ("5", "7", "9")]
    assert parse(
        "aqsis", "Frame (7) 45.20% complete [ 3 secs / 4 left ]", "ERROR: cannot open x"
    ) == [
        LineInfo(frame=7, frame_fraction=0.452),
        LineInfo(error="ERROR: cannot open x"),
    ]


def test_pixie_renders_one_frame_per_command():
    commands, _ = build("pixie", FrameBlock(1, 3), "/p/shot.rib")
    assert commands == [["rndr", "-f", str(n), "/p/shot.rib"] for n in (1, 2, 3)]
    commands, _ = build("pixie", FrameBlock(10, 20, 10), "/p/rib/s.##.rib")
    assert commands == [["rndr", "/p/rib/s.10.rib"], ["rndr", "/p/rib/s.20.rib"]]


# -- compositors ------------------------------------------------------------------------------------


def test_nuke_executes_the_block_with_its_step_in_nukes_range_syntax():
    commands, _ = build(
        "nuke", FrameBlock(1, 99, 2), "/p/comp.nk", write_node="Write1", threads=8,
        interactive_license=True,
    )  # fmt: skip
    assert commands == [
        ["nuke", "-x", "-i", "-m", "8", "-X", "Write1", "-F", "1-99x2", "/p/comp.nk"]
    ]
    commands, _ = build("nuke", FrameBlock(10, 20), "/p/comp.nk")
    assert commands == [["nuke", "-x", "-F", "10-20", "/p/comp.nk"]]
    with pytest.raises(InvalidJob, match="'write_node' must be a node name"):
        get_renderer("nuke").validate_params({"write_node": "Write1 -x"})


def test_nuke_progress():
    assert parse(
        "nuke",
        "Frame 3 (3 of 10)",
        "Writing /r/comp.0003.exr took 1.20 seconds",
        "ERROR: Write1: Can't write /r/comp.0003.exr",
    ) == [
        LineInfo(frame=3),
        LineInfo(saved="/r/comp.0003.exr", frame_done=3),
        LineInfo(error="ERROR: Write1: Can't write /r/comp.0003.exr"),
    ]


def test_shake_sets_the_time_range_before_executing_the_script():
    commands, _ = build("shake", FrameBlock(1, 99, 2), "/p/comp.shk", cpus=4)
    assert commands == [["shake", "-v", "-cpus", "4", "-t", "1-99x2", "-exec", "/p/comp.shk"]]
    commands, _ = build("shake", FrameBlock(5, 6), "/p/comp.shk")
    assert commands == [["shake", "-v", "-t", "5-6", "-exec", "/p/comp.shk"]]


def test_natron_renders_a_write_node_over_the_block_with_its_step():
    commands, outputs = build(
        "natron", FrameBlock(1, 9, 2), "/p/comp.ntp", writer="Write1", output="/r/comp_###.png"
    )
    assert commands == [
        ["NatronRenderer", "-w", "Write1", "/r/comp_###.png", "1-9:2", "/p/comp.ntp"]
    ]
    assert outputs == ["/r/comp_001.png", "/r/comp_003.png", "/r/comp_005.png", "/r/comp_007.png",
                       "/r/comp_009.png"]  # fmt: skip
    commands, _ = build("natron", FrameBlock(3, 4), "/p/comp.ntp", writer="Write2")
    assert commands == [["NatronRenderer", "-w", "Write2", "3-4", "/p/comp.ntp"]]
    with pytest.raises(InvalidJob, match="needs the parameter 'writer'"):
        get_renderer("natron").validate_params({})


def test_aftereffects_renders_a_range_or_each_frame_and_uses_bracketed_hashes():
    commands, outputs = build(
        "aftereffects", FrameBlock(1, 3), "/p/comp.aep", comp="Main", output="/r/ae_####.png",
        render_settings="Best Settings", output_module="PNG Sequence", multiprocessing=True,
    )  # fmt: skip
    assert commands == [
        ["aerender", "-project", "/p/comp.aep", "-comp", "Main", "-s", "1", "-e", "3",
         "-v", "ERRORS_AND_PROGRESS", "-output", "/r/ae_[####].png", "-RStemplate", "Best Settings",
         "-OMtemplate", "PNG Sequence", "-mp"]
    ]  # fmt: skip
    assert outputs == ["/r/ae_0001.png", "/r/ae_0002.png", "/r/ae_0003.png"]
    commands, _ = build("aftereffects", FrameBlock(1, 5, 2), "/p/comp.aep")
    assert [(argv[4], argv[6]) for argv in commands] == [("1", "1"), ("3", "3"), ("5", "5")]


def test_aftereffects_progress_and_errors():
    assert parse(
        "aftereffects",
        "PROGRESS:  0:00:00:01 (2): 0 Seconds",
        "aerender ERROR: No comp was found with the given name.",
    ) == [
        LineInfo(frame_done=2),
        LineInfo(error="aerender ERROR: No comp was found with the given name."),
    ]


# -- 3D packages with their own command lines ---------------------------------------------------------


def test_lightwave_passes_the_block_and_step_to_screamernet_mode_3():
    commands, _ = build(
        "lightwave", FrameBlock(1, 99, 2), "/p/shot.lws", config_dir="/p/cfg", content_dir="/p"
    )
    assert commands == [["lwsn", "-3", "-c/p/cfg", "-d/p", "/p/shot.lws", "1", "99", "2"]]


def test_lightwave_progress():
    assert parse(
        "lightwave",
        "Beginning frame: 2",
        "Render Complete 41%",
        "Finished frame: 2",
        "Writing RGB image to T:\\renders\\Final_Render_002.jpg",
    ) == [
        LineInfo(frame=2, frame_fraction=0.0),
        LineInfo(frame_fraction=0.41),
        LineInfo(frame_done=2),
        LineInfo(saved="T:\\renders\\Final_Render_002.jpg"),
    ]


def test_terragen_renders_each_frame_with_a_printf_output_pattern():
    commands, outputs = build(
        "terragen",
        FrameBlock(1, 5, 2),
        "/p/world.tgd",
        render_node="Render 01",
        output="/r/t.####.exr",
    )
    assert commands == [
        ["tgdcli", "-p", "/p/world.tgd", "-hide", "-exit", "-r", "-rendernode", "Render 01",
         "-o", "/r/t.%04d.exr", "-f", str(n)]
        for n in (1, 3, 5)
    ]  # fmt: skip
    assert outputs == ["/r/t.0001.exr", "/r/t.0003.exr", "/r/t.0005.exr"]


def test_cinema4d_passes_the_step_to_frame():
    commands, _ = build(
        "cinema4d", FrameBlock(0, 90, 10), "/p/shot.c4d", take="Main", image_base="/r/shot",
        image_format="PNG", threads=16,
    )  # fmt: skip
    assert commands == [
        ["Commandline", "-render", "/p/shot.c4d", "-frame", "0", "90", "10", "-take", "Main",
         "-oimage", "/r/shot", "-oformat", "PNG", "-threads", "16"]
    ]  # fmt: skip


def test_cinema4d_progress_and_errors():
    assert parse(
        "cinema4d",
        "Rendering frame 12 at Tue Jan 2 10:00:00 2024",
        "Progress: 45%",
        "Files cannot be written - please check output paths!",
    ) == [
        LineInfo(frame=12, frame_fraction=0.0),
        LineInfo(frame_fraction=0.45),
        LineInfo(error="Files cannot be written - please check output paths!"),
    ]


def test_3dsmax_passes_the_step_as_nth_frame_and_names_outputs_with_four_digits():
    commands, outputs = build(
        "3dsmax", FrameBlock(1, 5, 2), "C:\\p\\shot.max", output="C:\\r\\shot.png", camera="Cam01",
        width=640, height=480,
    )  # fmt: skip
    assert commands == [
        ["3dsmaxcmd", "C:\\p\\shot.max", "-start:1", "-end:5", "-nthFrame:2", "-v:5",
         "-outputName:C:\\r\\shot.png", "-width:640", "-height:480", "-camera:Cam01"]
    ]  # fmt: skip
    assert outputs == ["C:\\r\\shot0001.png", "C:\\r\\shot0003.png", "C:\\r\\shot0005.png"]


def test_3dsmax_progress():
    assert parse("3dsmax", "Frame 12 completed", "progr: 45% rendered") == [
        LineInfo(frame_done=12),
        LineInfo(frame_fraction=0.45),
    ]


def test_xsi_passes_start_end_and_step_to_frames_and_never_skips():
    commands, _ = build(
        "xsi", FrameBlock(1, 99, 2), "/p/shot.scn", render_pass="beauty,shadow", output_dir="/r"
    )
    assert commands == [
        ["xsibatch", "-render", "/p/shot.scn", "-frames", "1,99,2", "-pass", "beauty,shadow",
         "-output_dir", "/r", "-skip", "off"]
    ]  # fmt: skip


def test_xsi_progress_and_errors():
    assert parse(
        "xsi",
        "' INFO : Rendering frame 12",
        "' INFO : progr: 45.0% rendered",
        "' ERROR : 2000 - Argument 0 (Scene) is invalid",
    ) == [
        LineInfo(frame=12, frame_fraction=0.0),
        LineInfo(frame_fraction=0.45),
        LineInfo(error="' ERROR : 2000 - Argument 0 (Scene) is invalid"),
    ]


# -- standalone renderers that take one scene file per frame ---------------------------------------


def test_vray_renders_the_block_in_one_command_when_the_scene_names_the_files():
    commands, outputs = build(
        "vray", FrameBlock(1, 99, 2), "/p/shot.vrscene", threads=8, camera="cam1"
    )
    assert commands == [
        ["vray", "-sceneFile=/p/shot.vrscene", "-display=0", "-autoClose=1", "-progressUseCR=0",
         "-progressUseColor=0", "-numThreads=8", "-camera=cam1", "-frames=1-99,2"]
    ]  # fmt: skip
    assert outputs == []


def test_vray_writes_exactly_the_named_file_per_frame_when_given_an_output():
    commands, outputs = build(
        "vray", FrameBlock(7, 8), "/p/shot.vrscene", output="/r/shot.####.exr", width=64, height=48
    )
    assert [argv[-5:] for argv in commands] == [
        ["-imgWidth=64", "-imgHeight=48", f"-frames={n}", "-noFrameNumbers=1", f"-imgFile=/r/shot.000{n}.exr"]
        for n in (7, 8)
    ]  # fmt: skip
    assert outputs == ["/r/shot.0007.exr", "/r/shot.0008.exr"]


def test_vray_progress():
    assert parse(
        "vray",
        "Rendering image...: 45.20%",
        'Successfully written image file "/r/shot.0007.exr"',
        "error: Cannot open file /p/tex.png",
    ) == [
        LineInfo(frame_fraction=0.452),
        LineInfo(saved="/r/shot.0007.exr"),
        LineInfo(error="error: Cannot open file /p/tex.png"),
    ]


def test_arnold_kicks_one_ass_file_per_frame():
    commands, outputs = build(
        "arnold", FrameBlock(1, 5, 4), "/p/ass/shot.####.ass", threads=4, width=1920, height=1080,
        output="/r/shot.####.exr",
    )  # fmt: skip
    assert commands == [
        ["kick", "-i", f"/p/ass/shot.{n:04d}.ass", "-dw", "-dp", "-nstdin", "-v", "2", "-t", "4",
         "-r", "1920", "1080", "-o", f"/r/shot.{n:04d}.exr"]
        for n in (1, 5)
    ]  # fmt: skip
    assert outputs == ["/r/shot.0001.exr", "/r/shot.0005.exr"]


def test_arnold_needs_a_scene_per_frame_and_both_dimensions():
    with pytest.raises(InvalidJob, match="the scene needs ####"):
        build("arnold", FrameBlock(1, 2), "/p/shot.ass")
    with pytest.raises(InvalidJob, match="'width' and 'height' go together"):
        get_renderer("arnold").validate_params({"width": 640})


def test_arnold_progress_and_errors():
    error = "00:00:00    95MB ERROR   | [ass] can't read in /p/ass/shot.0001.ass"
    assert parse("arnold", "00:00:05   812MB         |    45% done - 23 rays/pixel", error) == [
        LineInfo(frame_fraction=0.45),
        LineInfo(error=error),
    ]


def test_mantra_renders_one_ifd_per_frame():
    commands, outputs = build(
        "mantra",
        FrameBlock(10, 30, 10),
        "/p/ifd/shot.####.ifd",
        threads=8,
        output="/r/shot.####.exr",
    )
    assert commands == [
        ["mantra", "-V", "2a", "-j", "8", "-f", f"/p/ifd/shot.{n:04d}.ifd", f"/r/shot.{n:04d}.exr"]
        for n in (10, 20, 30)
    ]
    assert outputs == ["/r/shot.0010.exr", "/r/shot.0020.exr", "/r/shot.0030.exr"]
    with pytest.raises(InvalidJob, match="the scene needs ####"):
        build("mantra", FrameBlock(1, 2), "/p/ifd/shot.ifd")


def test_mantra_progress():
    assert parse(
        "mantra",
        "ALF_PROGRESS 45%",
        "Generating Image: /r/shot.0010.exr (1920x1080)",
        "No licenses could be found to run this application",
    ) == [
        LineInfo(frame_fraction=0.45),
        LineInfo(saved="/r/shot.0010.exr"),
        LineInfo(error="No licenses could be found to run this application"),
    ]


def test_luxcore_renders_one_scene_file_per_frame_with_halt_conditions():
    commands, outputs = build(
        "luxcore", FrameBlock(1, 3, 2), "/p/lux/shot.####.cfg", halt_spp=64, halt_time=600,
        width=640, height=480, output="/r/shot.####.png",
    )  # fmt: skip
    assert commands == [
        ["luxcoreconsole", "-D", "batch.haltspp", "64", "-D", "batch.halttime", "600", "-w", "640",
         "-e", "480", "-D", "film.outputs.99.type", "RGB_IMAGEPIPELINE",
         "-D", "film.outputs.99.filename", f"/r/shot.000{n}.png", f"/p/lux/shot.000{n}.cfg"]
        for n in (1, 3)
    ]  # fmt: skip
    assert outputs == ["/r/shot.0001.png", "/r/shot.0003.png"]


def test_luxcore_progress_from_samples_or_time_whichever_is_further():
    line = "[Elapsed time:  12/60sec][Samples   40/100][Convergence 0.000000%][Avg. samples/sec  1.23M on 0.1K tris]"
    assert parse("luxcore", line, "RUNTIME ERROR: Unknown file extension: x.obj") == [
        LineInfo(frame_fraction=0.4),
        LineInfo(error="RUNTIME ERROR: Unknown file extension: x.obj"),
    ]
