"""Build the tiny animated Blender scene the end-to-end tests render.

Run with Blender, not Python::

    blender -b --factory-startup --python tests/e2e/scenes/make_scene.py -- OUT.blend [SAMPLES]

The scene: a cube that slides across the view over frames 1-12, a camera, a
sun, Cycles on the CPU at 64x48 with 4 samples (or SAMPLES) and no denoising,
so one frame renders in well under a second.  More samples make a frame last
longer (about 2.5 s per 1000 samples on one thread) without a bigger image:
the end-to-end tests use that to watch a render's progress, and to kill one
mid-frame.  Output defaults to PNG.
"""

import sys

import bpy


def build_scene(path: str, samples: int = 4) -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.frame_start = 1
    scene.frame_end = 12
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.use_denoising = False
    scene.cycles.use_adaptive_sampling = False
    scene.render.resolution_x = 64
    scene.render.resolution_y = 48
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"
    scene.render.filepath = "//render/frame_####"

    world = bpy.data.worlds.new("World")
    world.color = (0.05, 0.05, 0.08)
    scene.world = world

    bpy.ops.mesh.primitive_plane_add(size=20, location=(0, 0, 0))
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=(-3, 0, 0.5))
    cube = bpy.context.active_object
    cube.name = "MovingCube"
    scene.frame_set(1)
    cube.keyframe_insert(data_path="location", frame=1)
    cube.location = (3, 0, 0.5)
    cube.keyframe_insert(data_path="location", frame=12)

    bpy.ops.object.camera_add(location=(0, -9, 4), rotation=(1.2, 0, 0))
    scene.camera = bpy.context.active_object

    bpy.ops.object.light_add(type="SUN", location=(0, 0, 10), rotation=(0.5, 0.2, 0))
    bpy.context.active_object.data.energy = 3.0

    bpy.ops.wm.save_as_mainfile(filepath=path)


def main() -> None:
    argv = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else []
    if len(argv) not in (1, 2) or (len(argv) == 2 and not argv[1].isdigit()):
        print("usage: blender -b --factory-startup --python make_scene.py -- OUT.blend [SAMPLES]")
        sys.exit(2)
    build_scene(argv[0], int(argv[1]) if len(argv) == 2 else 4)


main()
