"""The renderers: what every renderer promises, and Blender, POV-Ray and FFmpeg in detail.

Output fixtures below are real lines captured from Blender 3.4.1, POV-Ray
3.7.0.10 and FFmpeg 5.1 (Debian 12) rendering tests/e2e/scenes/; the other
renderers' golden tests are in test_renderers_others.py.
"""

from __future__ import annotations

import pytest

from drqueue.errors import InvalidJob
from drqueue.models import FrameBlock
from drqueue.renderers import all_renderers, get_renderer
from drqueue.renderers.base import LineInfo, RenderContext, hashes_to_printf
from drqueue.renderers.blender import MISSING_FILES_CHECK, Blender, blender_frame_path
from drqueue.renderers.ffmpeg import MAX_INLINE_LIST, FFmpeg
from drqueue.renderers.povray import Povray, povray_frame_path


def context(cls, block, scene=None, job_frames=None, **params):
    return RenderContext(
        block=block, scene=scene, params=cls.validate_params(params), job_frames=job_frames
    )


def feed(renderer, text: str) -> list[LineInfo]:
    """Split output the way the runner does (on \\n and \\r) and parse every line."""
    infos = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        info = renderer.parse_line(line)
        if info is not None:
            infos.append(info)
    return infos


# -- every renderer ----------------------------------------------------------------------------

#: A scene and parameters that every renderer accepts, each naming its outputs.
SAMPLES = {
    "3delight": ("/p/shot.rib", {"output": "/r/f.####.exr"}),
    "3dsmax": ("/p/shot.max", {"output": "/r/shot.png"}),
    "aftereffects": ("/p/comp.aep", {"comp": "Main", "output": "/r/ae_####.png"}),
    "aqsis": ("/p/shot.rib", {"output": "/r/f.####.tif"}),
    "arnold": ("/p/ass/shot.####.ass", {"output": "/r/f.####.exr"}),
    "blender": ("/p/shot.blend", {"output": "/r/f_####"}),
    "cinema4d": ("/p/shot.c4d", {"output": "/r/shot####.png"}),
    "ffmpeg": (None, {"input": "/r/f_####.png", "output": "/r/movie.mp4"}),
    "fractal": (None, {"output": "/r/f_####.png"}),
    "lightwave": ("/p/shot.lws", {"output": "/r/shot_####.png"}),
    "luxcore": ("/p/shot.####.cfg", {"halt_spp": 64, "output": "/r/f.####.png"}),
    "mantra": ("/p/ifd/shot.####.ifd", {"output": "/r/f.####.exr"}),
    "maya": ("/p/shot.mb", {"output": "/r/f.####.exr"}),
    "mentalray": ("/p/shot.mi", {"output": "/r/f.####.exr"}),
    "natron": ("/p/comp.ntp", {"writer": "Write1", "output": "/r/c_####.png"}),
    "nuke": ("/p/comp.nk", {"write_node": "Write1", "output": "/r/c.####.exr"}),
    "pixie": ("/p/shot.rib", {"output": "/r/f.####.tif"}),
    "povray": ("/p/clock.pov", {"output": "/r/clock.png", "last_frame": 100}),
    "shake": ("/p/comp.shk", {"output": "/r/c.####.iff"}),
    "shell": (None, {"cmd": "touch /r/f_{padframe}.png", "output": "/r/f_####.png"}),
    "terragen": ("/p/world.tgd", {"output": "/r/t.####.exr"}),
    "turtle": ("/p/shot.mb", {"output": "/r/f.####.exr"}),
    "vray": ("/p/shot.vrscene", {"output": "/r/f.####.exr"}),
    "xsi": ("/p/shot.scn", {"output": "/r/f.####.pic"}),
}

BLOCKS = [FrameBlock(1, 1, 1), FrameBlock(1, 10, 1), FrameBlock(2, 9, 3), FrameBlock(10, 20, 5)]


def test_every_renderer_module_is_found_with_a_name_and_description():
    renderers = all_renderers()
    assert sorted(renderers) == sorted(SAMPLES)
    for name, cls in renderers.items():
        assert cls.name == name
        assert cls.description
        assert get_renderer(name) is cls


@pytest.mark.parametrize("name", sorted(SAMPLES))
@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: f"{b.start}-{b.end}x{b.step}")
def test_every_renderer_builds_argument_lists_and_names_each_frames_output(name, block):
    cls = get_renderer(name)
    scene, params = SAMPLES[name]
    ctx = context(cls, block, scene=scene, **params)
    renderer = cls()
    commands = renderer.commands(ctx)
    assert commands and all(
        argv and all(isinstance(word, str) for word in argv) for argv in commands
    )
    if cls.executable:
        assert all(argv[0] == cls.executable for argv in commands)
    outputs = renderer.outputs(ctx)
    expected = 1 if name == "ffmpeg" else len(block.frames)  # one movie per block
    assert len(outputs) == len(set(outputs)) == expected
    assert [renderer.frame_of_command(ctx, i) for i in range(len(commands))][0] == block.start


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_renderer_rejects_unknown_parameters(name):
    cls = get_renderer(name)
    with pytest.raises(InvalidJob, match="no parameter 'nonsense'"):
        cls.validate_params({**SAMPLES[name][1], "nonsense": 1})


TYPED_PARAMS = [
    (name, param.name, param.type)
    for name, cls in sorted(all_renderers().items())
    for param in cls.params
    if param.type in ("int", "float", "bool")
]
CHOICE_PARAMS = [
    (name, param.name)
    for name, cls in sorted(all_renderers().items())
    for param in cls.params
    if param.choices
]


@pytest.mark.parametrize(("name", "param", "kind"), TYPED_PARAMS)
def test_every_renderer_rejects_a_word_where_it_wants_a_number_or_a_bool(name, param, kind):
    with pytest.raises(InvalidJob, match=f"parameter '{param}' wants an? {kind}"):
        get_renderer(name).validate_params({**SAMPLES[name][1], param: "lots"})


@pytest.mark.parametrize(("name", "param"), CHOICE_PARAMS)
def test_every_renderer_rejects_a_choice_it_does_not_offer(name, param):
    with pytest.raises(InvalidJob, match=f"parameter '{param}' must be one of"):
        get_renderer(name).validate_params({**SAMPLES[name][1], param: "NO_SUCH_CHOICE"})


@pytest.mark.parametrize("name", sorted(n for n, c in all_renderers().items() if c.needs_scene))
def test_renderers_that_need_a_scene_refuse_to_build_without_one(name):
    cls = get_renderer(name)
    ctx = context(
        cls, FrameBlock(1, 2, 1), scene=None, job_frames=FrameBlock(1, 100), **SAMPLES[name][1]
    )
    with pytest.raises(InvalidJob):
        cls().commands(ctx)


def test_hashes_become_a_printf_field_and_literal_percent_signs_are_doubled():
    assert hashes_to_printf("/r/shot_####.exr") == "/r/shot_%04d.exr"
    assert hashes_to_printf("/r/100%/f.##.png") == "/r/100%%/f.%02d.png"
    assert hashes_to_printf("/r/movie.mp4") == "/r/movie.mp4"


# -- Blender -------------------------------------------------------------------------------------

BLENDER_3_4_CYCLES = """\
Blender 3.4.1
Read blend: /tmp/rndprobe/scene.blend
Fra:1 Mem:8.55M (Peak 10.21M) | Time:00:00.00 | Mem:0.00M, Peak:0.00M | Scene, ViewLayer | Synchronizing object | MovingCube
Fra:1 Mem:8.92M (Peak 10.21M) | Time:00:00.05 | Mem:0.00M, Peak:0.00M | Scene, ViewLayer | Updating Scene BVH | Building BVH 0%
Fra:1 Mem:9.43M (Peak 10.21M) | Time:00:00.05 | Mem:0.76M, Peak:0.76M | Scene, ViewLayer | Sample 0/4
Fra:1 Mem:9.48M (Peak 10.21M) | Time:00:00.06 | Remaining:00:00.00 | Mem:0.81M, Peak:0.81M | Scene, ViewLayer | Sample 1/4
Fra:1 Mem:9.53M (Peak 10.21M) | Time:00:00.06 | Mem:0.81M, Peak:0.81M | Scene, ViewLayer | Sample 4/4
Fra:1 Mem:9.53M (Peak 10.21M) | Time:00:00.06 | Mem:0.81M, Peak:0.81M | Scene, ViewLayer | Finished
Saved: '/tmp/rndprobe/out/frame_0001.png'
 Time: 00:00.18 (Saving: 00:00.12)

Fra:3 Mem:8.80M (Peak 10.21M) | Time:00:00.00 | Mem:0.00M, Peak:0.00M | Scene, ViewLayer | Synchronizing object | Plane
Fra:3 Mem:9.48M (Peak 10.21M) | Time:00:00.00 | Remaining:00:00.00 | Mem:0.81M, Peak:0.81M | Scene, ViewLayer | Sample 1/4
Fra:3 Mem:9.53M (Peak 10.21M) | Time:00:00.00 | Mem:0.81M, Peak:0.81M | Scene, ViewLayer | Finished
Saved: '/tmp/rndprobe/out/frame_0003.png'
 Time: 00:00.00 (Saving: 00:00.00)


Blender quit
"""

BLENDER_3_4_EEVEE = """\
EGL Error (0x3001): EGL_NOT_INITIALIZED: EGL is not initialized, or could not be initialized, for the specified EGL display connection.
Managed to successfully fallback to surfaceless EGL rendering!
Fra:1 Mem:10.29M (Peak 11.41M) | Time:00:01.20 | Syncing Plane
Fra:1 Mem:10.31M (Peak 11.41M) | Time:00:01.79 | Rendering 1 / 64 samples
Fra:1 Mem:10.31M (Peak 11.41M) | Time:00:04.07 | Rendering 26 / 64 samples
Fra:1 Mem:10.31M (Peak 11.41M) | Time:00:04.29 | Rendering 64 / 64 samples
Saved: '/tmp/rndprobe/out5/e_0001.png'
"""


#: The missing-files check Blender runs once the scene is loaded (missing_files="fail").
CHECK = ["--python-expr", MISSING_FILES_CHECK]


def test_blender_checks_for_missing_files_unless_told_to_ignore_them():
    assert "--python-expr" not in Blender().commands(blender_ctx(missing_files="ignore"))[0]
    line = Blender().parse_line("drqueue: missing file: /tex/wood.png")
    assert line.fatal and "/tex/wood.png" in line.error


def blender_ctx(block=FrameBlock(1, 2, 1), **params):
    return context(Blender, block, scene="/p/shot.blend", **params)


def test_blender_renders_the_block_in_one_process_with_options_before_render_anim():
    ctx = blender_ctx(
        FrameBlock(1, 2, 1),
        output="/r/shot/f_####",
        engine="CYCLES",
        threads=2,
        cycles_device="CPU",
    )
    assert Blender().commands(ctx) == [
        ["blender", "-b", "/p/shot.blend", *CHECK, "-E", "CYCLES", "-t", "2", "-o", "/r/shot/f_####",
         "-F", "PNG", "-s", "1", "-e", "2", "-j", "1", "-a", "--", "--cycles-device", "CPU"]
    ]  # fmt: skip


def test_blender_walks_the_block_by_its_step_and_keeps_the_scenes_output_when_none_is_given():
    ctx = blender_ctx(FrameBlock(3, 9, 3))
    assert Blender().commands(ctx) == [
        ["blender", "-b", "/p/shot.blend", *CHECK, "-F", "PNG", "-s", "3", "-e", "9", "-j", "3", "-a"]
    ]  # fmt: skip
    assert Blender().outputs(ctx) == []


def test_blender_selects_the_scene_before_the_engine_and_output_so_they_apply_to_it():
    ctx = blender_ctx(
        FrameBlock(5, 5), scene_name="Shot B", engine="BLENDER_WORKBENCH", format="JPEG"
    )
    assert Blender().commands(ctx) == [
        ["blender", "-b", "/p/shot.blend", *CHECK, "-S", "Shot B", "-E", "BLENDER_WORKBENCH",
         "-F", "JPEG", "-s", "5", "-e", "5", "-j", "1", "-a"]
    ]  # fmt: skip


def test_blender_negative_frames_get_a_leading_space_so_blender_reads_them_as_absolute():
    ctx = blender_ctx(FrameBlock(-2, 0, 1), output="/r/c_###", format="TGA")
    argv = Blender().commands(ctx)[0]
    assert argv[argv.index("-s") + 1] == " -2"
    assert argv[argv.index("-e") + 1] == "0"
    # Names as Blender 3.4.1 wrote them: c_-002.tga c_-001.tga c_000.tga
    assert Blender().outputs(ctx) == ["/r/c_-002.tga", "/r/c_-001.tga", "/r/c_000.tga"]


@pytest.mark.parametrize(
    ("pattern", "file_format", "frame", "written"),
    [
        # Each pair checked against the file Blender 3.4.1 wrote.
        ("/r/a_####", "PNG", 1, "/r/a_0001.png"),
        ("/r/b_##.jpeg", "JPEG", 3, "/r/b_03.jpeg"),
        ("/r/f_####.PNG", "PNG", 3, "/r/f_0003.PNG"),
        ("/r/t_####.tiff", "TIFF", 3, "/r/t_0003.tiff"),
        ("/r/t2_####", "TIFF", 3, "/r/t2_0003.tif"),
        ("/r/m_####", "OPEN_EXR_MULTILAYER", 3, "/r/m_0003.exr"),
        ("/r/noh", "JPEG", 5, "/r/noh0005.jpg"),
        ("/r/x_##.exr", "OPEN_EXR", 7, "/r/x_07.exr"),
        ("/r/b_##_x_###", "BMP", 3, "/r/b_##_x_003.bmp"),
        ("/r/e_####", "IRIS", 1, "/r/e_0001.rgb"),
        ("/r/h_####", "JP2", 1, "/r/h_0001.jp2"),
        ("/r/w_####", "WEBP", 3, "/r/w_0003.webp"),
        ("/r/k_####.png", "JPEG", 1, "/r/k_0001.png.jpg"),
    ],
)
def test_blender_output_names_follow_blenders_own_rules(pattern, file_format, frame, written):
    from drqueue.renderers.blender import FORMATS

    assert blender_frame_path(pattern, frame, FORMATS[file_format]) == written


def test_blender_outputs_relative_to_the_blend_file_and_by_step():
    ctx = context(Blender, FrameBlock(2, 6, 2), scene="/p/shots/a.blend", output="//render/f_####")
    assert Blender().outputs(ctx) == [
        "/p/shots/render/f_0002.png",
        "/p/shots/render/f_0004.png",
        "/p/shots/render/f_0006.png",
    ]


def test_blender_rejects_formats_engines_and_thread_counts_it_would_not_honour():
    with pytest.raises(InvalidJob, match="'format' must be one of"):
        Blender.validate_params({"format": "TARGA"})  # Blender wants TGA; TARGA renders PNG
    with pytest.raises(InvalidJob, match="'format' must be one of"):
        Blender.validate_params({"format": "FFMPEG"})  # a movie is not one file per frame
    with pytest.raises(InvalidJob, match="'engine' must be one of"):
        Blender.validate_params({"engine": "NOPE"})
    with pytest.raises(InvalidJob, match="'threads' must be between 0 and 1024"):
        Blender.validate_params({"threads": -1})
    with pytest.raises(InvalidJob, match="'threads' wants an int"):
        Blender.validate_params({"threads": 2.5})


def test_blender_progress_from_real_cycles_output():
    infos = feed(Blender(), BLENDER_3_4_CYCLES)
    fractions = [(i.frame, i.frame_fraction) for i in infos if i.frame_fraction is not None]
    assert fractions == [(1, 0.0), (1, 0.25), (1, 1.0), (1, 1.0), (3, 0.25), (3, 1.0)]
    done = [(i.frame_done, i.saved) for i in infos if i.saved]
    assert done == [
        (1, "/tmp/rndprobe/out/frame_0001.png"),
        (3, "/tmp/rndprobe/out/frame_0003.png"),
    ]
    assert not [i for i in infos if i.error]


def test_blender_progress_from_real_eevee_output_and_egl_noise_is_not_an_error():
    infos = feed(Blender(), BLENDER_3_4_EEVEE)
    assert [i.frame_fraction for i in infos if i.frame_fraction is not None] == [
        1 / 64,
        26 / 64,
        1.0,
    ]
    assert infos[-1] == LineInfo(saved="/tmp/rndprobe/out5/e_0001.png", frame_done=1)
    assert not [i for i in infos if i.error]


@pytest.mark.parametrize(
    ("line", "fraction"),
    [
        # Blender 4.x Cycles (same layout as 3.x)
        (
            "Fra:1 Mem:24.3M (Peak 30.1M) | Time:00:00.20 | Remaining:00:01.10 | Mem:5.1M, Peak:5.1M"
            " | Scene, ViewLayer | Sample 8/16",
            0.5,
        ),
        # Cycles 2.9x counts finished tiles
        (
            "Fra:1 Mem:24.3M (Peak 30.1M) | Time:00:02.39 | Scene, View Layer | Rendered 3/16 Tiles",
            3 / 16,
        ),
        # Cycles 3.x+ tiled: tile in progress and its samples
        (
            "Fra:1 Mem:9.4M (Peak 9.4M) | Time:00:01.00 | Scene, ViewLayer | Sample 8/16, Tile 2/4",
            1.5 / 4,
        ),
    ],
)
def test_blender_progress_lines_of_other_versions(line, fraction):
    assert Blender().parse_line(line) == LineInfo(frame=1, frame_fraction=fraction)


@pytest.mark.parametrize(
    "line",
    [
        # Real Blender 3.4.1 error lines
        "Error: Cannot read file '/nonexist.blend': No such file or directory",
        "Error: File format is not supported in file '/tmp/rndprobe/bad.blend'",
        "Error: engine not found 'NOPE'",
        "Error: Render error (Invalid argument) cannot save: '/proc/nope/z_0001.png'",
        "Can't find scene: 'Nope' in file: '/tmp/rndprobe/scene.blend'",
        # Blender 4.x wording
        'Error: Cannot read file "/x.blend": No such file or directory',
        "Warning: Unable to open '/p/tex/wood.png'",
    ],
)
def test_blender_error_lines_are_reported(line):
    # Only "Can't find scene" fails a task by itself: Blender renders another scene, exit 0.
    fatal = line.startswith("Can't find scene:")
    assert Blender().parse_line(line) == LineInfo(error=line, fatal=fatal)


def test_blender_memory_leak_report_and_plain_lines_are_not_errors():
    renderer = Blender()
    assert (
        renderer.parse_line("Error: Not freed memory blocks: 2, total unfreed memory 0.001 MB")
        is None
    )
    assert renderer.parse_line("Blender quit") is None
    assert renderer.parse_line("Read blend: /tmp/rndprobe/scene.blend") is None


# -- POV-Ray -------------------------------------------------------------------------------------

# Real POV-Ray 3.7.0.10 output for +KFI1 +KFF12 +SF3 +EF6 +STP2 (frames 3 and 5), trimmed.
POVRAY_3_7_STEP = (
    "Rendering frame 1 of 4\n\nRendering frame 1 of 4\n\n\nParser Options\n"
    "  Input file: /work/main/tests/e2e/scenes/clock.pov\n"
    "Animation Options\n  Initial Frame:        1  Final Frame:       12\n"
    "  Frame Step:           2\n  Initial Clock:    0.000  Final Clock:    0.000\n"
    "  Cyclic Animation.....Off  Field render.........Off  Odd lines/frames.....Off\n"
    "Image Output Options\n"
    "  Image resolution.....64 by 48 (rows 1 to 48, columns 1 to 64).\n"
    "  Output file........../tmp/rndprobe/pov/z03.png, 24 bpp PNG\n"
    "==== [Parsing...] ==========================================================\n"
    "==== [Rendering...] ========================================================\n"
    "Rendered 1024 of 3072 pixels (33%)\rRendered 1536 of 3072 pixels (50%)\r"
    "Rendered 2048 of 3072 pixels (66%)\rRendered 3072 of 3072 pixels (100%)\r\n"
    "----------------------------------------------------------------------------\n"
    "Render Statistics\nImage Resolution 64 x 48\n"
    "----------------------------------------------------------------------------\n"
    "Render Time:\n  Photon Time:      No photons\n  Radiosity Time:   No radiosity\n"
    "  Trace Time:       0 hours  0 minutes  0 seconds (0.001 seconds)\n"
    "              using 2 thread(s) with 0.001 CPU-seconds total\n\n"
    "Rendering frame 3 of 4\n\nParser Options\n"
    "Animation Options\n  Initial Frame:        1  Final Frame:       12\n"
    "  Output file........../tmp/rndprobe/pov/z05.png, 24 bpp PNG\n"
    "==== [Rendering...] ========================================================\n"
    "Rendered 1024 of 3072 pixels (33%)\rRendered 3072 of 3072 pixels (100%)\r\n"
    "Render Time:\n"
    "POV-Ray finished\n"
)


def pov_ctx(block, job=None, **params):
    params = {"output": "/r/clock.png", "width": 64, "height": 48, **params}
    return context(Povray, block, scene="/p/clock.pov", job_frames=job, **params)


def test_povray_renders_the_block_as_a_subset_of_the_whole_jobs_animation():
    ctx = pov_ctx(FrameBlock(1, 6), job=FrameBlock(1, 6))
    assert Povray().commands(ctx) == [
        ["povray", 'Input_File_Name="/p/clock.pov"', 'Output_File_Name="/r/clock.png"', "+FN",
         "+W64", "+H48", "+KFI1", "+KFF6", "+SF1", "+EF6", "-D"]
    ]  # fmt: skip
    assert Povray().outputs(ctx) == [f"/r/clock{n}.png" for n in range(1, 7)]


def test_povray_steps_with_stp_and_pads_names_to_the_digits_of_the_last_frame():
    ctx = pov_ctx(FrameBlock(3, 7, 2), job=FrameBlock(1, 12), antialias=0.3)
    assert Povray().commands(ctx) == [
        ["povray", 'Input_File_Name="/p/clock.pov"', 'Output_File_Name="/r/clock.png"', "+FN",
         "+W64", "+H48", "+A0.3", "+KFI1", "+KFF12", "+SF3", "+EF7", "+STP2", "-D"]
    ]  # fmt: skip
    assert Povray().outputs(ctx) == ["/r/clock03.png", "/r/clock05.png", "/r/clock07.png"]


def test_povray_parameters_override_the_jobs_range_and_set_the_clock():
    ctx = pov_ctx(
        FrameBlock(98, 101),
        job=FrameBlock(98, 101),
        first_frame=1,
        last_frame=120,
        clock_start=0.5,
        clock_end=2,
        output="/r/clock.exr",
        format="exr",
        threads=2,
        quality=9,
    )
    assert Povray().commands(ctx)[0][2:] == [
        'Output_File_Name="/r/clock.exr"',
        "+FE", "+W64", "+H48", "+Q9", "+WT2", "+KFI1", "+KFF120", "+KI0.5", "+KF2",
        "+SF98", "+EF101", "-D",
    ]  # fmt: skip
    assert Povray().outputs(ctx) == [f"/r/clock{n:03d}.exr" for n in (98, 99, 100, 101)]


def test_povray_renders_a_one_frame_animation_as_a_still_because_its_clock_would_be_nan():
    ctx = pov_ctx(FrameBlock(5, 5), job=FrameBlock(5, 5), output="/r/one", format="jpeg")
    assert Povray().commands(ctx) == [
        ["povray", 'Input_File_Name="/p/clock.pov"', 'Output_File_Name="/r/one5.jpg"', "+FJ",
         "+W64", "+H48", "+K0", "-D"]
    ]  # fmt: skip
    assert Povray().outputs(ctx) == ["/r/one5.jpg"]


@pytest.mark.parametrize(
    ("output", "file_format", "written"),
    [
        # Each checked against the file POV-Ray 3.7 wrote for frame 3 of 1-12.
        ("/r/a.PNG", "png", "/r/a.PNG03.png"),
        ("/r/b.jpeg", "jpeg", "/r/b.jpeg03.jpg"),
        ("/r/c.jpg", "jpeg", "/r/c03.jpg"),
        ("/r/d.exr", "exr", "/r/d03.exr"),
        ("/r/g.tga", "tga_rle", "/r/g03.tga"),
        ("/r/j", "png", "/r/j03.png"),
        ("/r/tg.tga", "png", "/r/tg.tga03.png"),
    ],
)
def test_povray_output_names_follow_povrays_own_rules(output, file_format, written):
    assert povray_frame_path(output, 3, 12, file_format) == written


def test_povray_needs_the_animations_range_from_the_job_or_the_parameters():
    with pytest.raises(InvalidJob, match="needs the animation's last frame"):
        Povray().commands(pov_ctx(FrameBlock(1, 2), job=None))
    ctx = pov_ctx(FrameBlock(1, 2), job=None, last_frame=50)
    assert "+KFF50" in Povray().commands(ctx)[0]


def test_povray_refuses_blocks_outside_the_animation_and_negative_frames():
    with pytest.raises(InvalidJob, match="outside the animation 1-10"):
        Povray().commands(pov_ctx(FrameBlock(9, 12), job=FrameBlock(1, 12), last_frame=10))
    with pytest.raises(InvalidJob, match="negative frames"):
        Povray().commands(pov_ctx(FrameBlock(-2, 0), job=FrameBlock(-2, 0)))


def test_povray_refuses_quotes_in_paths_because_it_reparses_its_command_line():
    with pytest.raises(InvalidJob, match="quote"):
        Povray.validate_params({"output": '/r/a"b.png'})
    ctx = RenderContext(
        block=FrameBlock(1, 2), scene='/p/a"b.pov', params=Povray.validate_params({"output": "/r/x.png"}),
        job_frames=FrameBlock(1, 2),
    )  # fmt: skip
    with pytest.raises(InvalidJob, match="quote"):
        Povray().commands(ctx)


def test_povray_validates_ranges():
    with pytest.raises(InvalidJob, match="'quality' must be between 0 and 11"):
        Povray.validate_params({"output": "/r/x.png", "quality": 12})
    with pytest.raises(InvalidJob, match="last_frame 3 is before first_frame 5"):
        Povray.validate_params({"output": "/r/x.png", "first_frame": 5, "last_frame": 3})
    with pytest.raises(InvalidJob, match="needs the parameter 'output'"):
        Povray.validate_params({})


def test_povray_progress_and_finished_frames_from_real_output():
    infos = feed(Povray(), POVRAY_3_7_STEP)
    fractions = [
        (i.frame, round(i.frame_fraction, 3)) for i in infos if i.frame_fraction is not None
    ]
    assert fractions == [
        (3, 0.333), (3, 0.5), (3, 0.667), (3, 1.0), (5, 0.333), (5, 1.0),
    ]  # fmt: skip
    done = [(i.frame_done, i.saved) for i in infos if i.frame_done is not None]
    assert done == [(3, "/tmp/rndprobe/pov/z03.png"), (5, "/tmp/rndprobe/pov/z05.png")]
    assert not [i for i in infos if i.error]


def test_povray_joins_an_output_path_wrapped_at_80_columns():
    # Real POV-Ray 3.7 output: the console is hard-wrapped at column 80.
    infos = feed(
        Povray(),
        "  Initial Frame:        1  Final Frame:       12\n"
        "  Output file........../tmp/rndprobe/a_very_long_directory_name_for_testing/anot\n"
        "her_level_of_directories/clock02.png, 24 bpp PNG\n"
        "  Dithering............Off\n"
        "Render Time:\n",
    )
    path = "/tmp/rndprobe/a_very_long_directory_name_for_testing/another_level_of_directories/clock02.png"
    assert infos == [LineInfo(frame=2), LineInfo(frame_done=2, saved=path)]


@pytest.mark.parametrize(
    "line",
    [
        # Real POV-Ray 3.7 error lines (missing scene, syntax error, missing output folder, bad option)
        "Parse Error: Cannot open input file.",
        "Fatal error in parser: Cannot parse input.",
        "Render failed",
        "File '/tmp/rndprobe/bad.pov' line 2: Parse Error: No matching } in 'sphere',",
        "Cannot create render state output file.",
        "Failed to parse command-line option",
        "Problem with option setting",
    ],
)
def test_povray_error_lines_are_reported(line):
    assert Povray().parse_line(line) == LineInfo(error=line)


def test_povray_assumed_gamma_warning_is_not_an_error():
    line = "Possible Parse Error: assumed_gamma not specified in this POV-Ray 3.7 or later"
    assert Povray().parse_line(line) is None


# -- FFmpeg --------------------------------------------------------------------------------------


def ffmpeg_ctx(block, **params):
    params = {"input": "/r/shot_####.png", "output": "/r/shot.mp4", **params}
    return context(FFmpeg, block, **params)


def test_ffmpeg_reads_exactly_the_blocks_frames_and_then_checks_the_movie_holds_them_all():
    assert FFmpeg().commands(ffmpeg_ctx(FrameBlock(1, 100))) == [
        ["ffmpeg", "-hide_banner", "-nostdin", "-y", "-framerate", "24", "-start_number", "1",
         "-start_number_range", "1", "-i", "/r/shot_%04d.png", "-frames:v", "100",
         "-c:v", "libx264", "-pix_fmt", "yuv420p", "/r/shot.mp4"],
        ["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-i", "/r/shot.mp4", "-map", "0:v:0",
         "-vf", "select=gte(n\\,99)", "-frames:v", "1", "-abort_on", "empty_output", "-f", "null", "-"],
    ]  # fmt: skip
    assert FFmpeg().outputs(ffmpeg_ctx(FrameBlock(1, 100))) == ["/r/shot.mp4"]


def test_ffmpeg_encoder_options_and_no_check():
    ctx = ffmpeg_ctx(
        FrameBlock(10, 33), fps=23.976, codec="prores_ks", pix_fmt="", crf=18, preset="slow",
        check_frames="no",
    )  # fmt: skip
    assert FFmpeg().commands(ctx) == [
        ["ffmpeg", "-hide_banner", "-nostdin", "-y", "-framerate", "23.976", "-start_number", "10",
         "-start_number_range", "1", "-i", "/r/shot_%04d.png", "-frames:v", "24",
         "-c:v", "prores_ks", "-preset", "slow", "-crf", "18", "/r/shot.mp4"],
    ]  # fmt: skip


def test_ffmpeg_with_a_step_lists_the_frames_for_the_concat_demuxer_inline():
    argv = FFmpeg().commands(ffmpeg_ctx(FrameBlock(2, 8, 3), input="/r/it's/f_####.png"))[0]
    assert argv[4:12] == [
        "-r", "24", "-f", "concat", "-safe", "0", "-i",
        "data:text/plain,ffconcat version 1.0\n"
        "file 'file:/r/it'\\''s/f_0002.png'\n"
        "file 'file:/r/it'\\''s/f_0005.png'\n"
        "file 'file:/r/it'\\''s/f_0008.png'\n",
    ]  # fmt: skip
    assert argv[12:14] == ["-frames:v", "3"]


def test_ffmpeg_refuses_a_frame_list_too_long_for_one_argument():
    frames = MAX_INLINE_LIST // 20
    with pytest.raises(InvalidJob, match="too many for one ffmpeg command"):
        FFmpeg().commands(ffmpeg_ctx(FrameBlock(1, 2 * frames, 2)))


def test_ffmpeg_sets_drqueue_frame_to_the_first_frame_for_both_commands():
    ctx = ffmpeg_ctx(FrameBlock(5, 6))
    assert [FFmpeg().frame_of_command(ctx, i) for i in (0, 1)] == [5, 5]


def test_ffmpeg_validates_its_parameters():
    with pytest.raises(InvalidJob, match="'input' needs ####"):
        FFmpeg.validate_params({"input": "/r/shot.png", "output": "/r/m.mp4"})
    with pytest.raises(InvalidJob, match="'fps' must be above 0"):
        FFmpeg.validate_params({"input": "/r/#.png", "output": "/r/m.mp4", "fps": 0})
    with pytest.raises(InvalidJob, match="'codec' may hold only"):
        FFmpeg.validate_params({"input": "/r/#.png", "output": "/r/m.mp4", "codec": "libx264 -y"})
    with pytest.raises(InvalidJob, match="'crf' must be between 0 and 63"):
        FFmpeg.validate_params({"input": "/r/#.png", "output": "/r/m.mp4", "crf": 99})
    with pytest.raises(InvalidJob, match="needs the parameter 'output'"):
        FFmpeg.validate_params({"input": "/r/#.png"})


@pytest.mark.parametrize(
    "line",
    [
        # Real FFmpeg 5.1 lines: missing first frame, a gap, a missing listed frame
        "[image2 @ 0x5579b9c309c0] Could find no file with path '/r/seq/f_%04d.png' and index in the range 4-4",
        "[image2 @ 0x55bf91d4f9c0] Could not open file : /tmp/rndprobe/seq/f_0004.png",
        "[concat @ 0x556e4d9739c0] Impossible to open 'file:/tmp/rndprobe/seq/f_0004.png'",
        "/tmp/rndprobe/seq/f_%04d.png: No such file or directory",
    ],
)
def test_ffmpeg_missing_input_lines_are_reported(line):
    assert FFmpeg().parse_line(line) == LineInfo(error=line)


def test_ffmpeg_check_failure_names_the_likely_cause():
    info = FFmpeg().parse_line("Empty output")
    assert info is not None and "fewer frames than the job" in (info.error or "")


def test_ffmpeg_progress_lines_say_nothing():
    line = "frame=    3 fps=0.0 q=28.0 Lsize=       2kB time=00:00:00.04 bitrate= 445.3kbits/s speed=6.36x"
    assert FFmpeg().parse_line(line) is None


def test_a_list_or_object_is_no_parameter_value_not_even_as_its_repr():
    from drqueue.errors import InvalidJob
    from drqueue.renderers import get_renderer

    cmd = next(p for p in get_renderer("shell").params if p.name == "cmd")
    for bad in (["a"], {"b": 1}, ("c",)):
        with pytest.raises(InvalidJob, match="wants a"):
            cmd.convert(bad)
    assert cmd.convert("echo 1") == "echo 1"
