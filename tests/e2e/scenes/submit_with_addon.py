"""Drive the DrQueue add-on inside Blender, as an artist would: install, set up, submit.

Run with Blender on a scene, not with Python::

    blender -b [SCENE.blend] --factory-startup --python submit_with_addon.py -- \
        --zip drqueue_submit.zip --master URL --token TOKEN [--frames 1-3] [--block-size 2]
        [--pool NAME] [--change-after-save]

It installs the add-on's zip (Preferences → Add-ons → Install) and enables it, sets its
preferences (master URL, token), sets the scene's frames and the panel's block size and
pool, saves the file (File → Save; not when Blender was started without one), optionally
changes the scene again without saving (an edit in the UI pushes an undo step, which marks
the file modified: a change by script alone does not), and presses Submit (the
``drqueue.submit`` operator).  Then it reads the submitted job once as the Watch area does,
and draws the DrQueue panel into a RecordingLayout.  Last, it prints one line
``DRQUEUE_RESULT {json}``: the operator's result, or the error it reported (Blender raises a
RuntimeError for an operator's ERROR report), the Watch area's line and what the panel
showed.  Run with BLENDER_USER_SCRIPTS and BLENDER_USER_CONFIG pointing at a folder of the
test's own, so the add-on is installed there and not for the machine's user.
"""

import argparse
import json
import sys
import types

import bpy


class RecordingLayout:
    """Stands in for the panel's UILayout, which needs a window (there is none with -b): it
    checks that every property and operator the panel draws exists, and records the texts
    shown, so the panel's draw() runs as it would on screen."""

    def __init__(self, drawn: list[str]) -> None:
        self.drawn = drawn
        self.use_property_split = self.use_property_decorate = False

    def prop(self, data, name: str, **options) -> None:
        assert name in data.bl_rna.properties, f"{type(data).__name__} has no property {name}"
        self.drawn.append(f"prop {name}")

    def operator(self, idname: str, **options) -> None:
        module, name = idname.split(".")
        assert hasattr(getattr(bpy.ops, module), name), f"no operator {idname}"
        self.drawn.append(f"operator {idname}")

    def label(self, *, text: str = "", **options) -> None:
        self.drawn.append(f"label {text}")

    def column(self, **options) -> "RecordingLayout":
        return self

    row = box = column


def draw_panel(panel_class) -> list[str]:
    """What the DrQueue panel shows now, as RecordingLayout records it."""
    drawn: list[str] = []
    # A Panel's layout is Blender's to set: draw() runs here on a stand-in for the panel.
    panel = types.SimpleNamespace(layout=RecordingLayout(drawn), draw_watch=panel_class.draw_watch)
    panel_class.draw(panel, bpy.context)
    return drawn


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--zip", required=True)
    parser.add_argument("--master", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--frames", default="1-3")
    parser.add_argument("--block-size", type=int, default=1)
    parser.add_argument("--pool", default="")
    parser.add_argument("--change-after-save", action="store_true")
    args = parser.parse_args(sys.argv[sys.argv.index("--") + 1 :])

    bpy.ops.preferences.addon_install(filepath=args.zip)
    bpy.ops.preferences.addon_enable(module="drqueue_submit")
    prefs = bpy.context.preferences.addons["drqueue_submit"].preferences
    prefs.master_url = args.master
    prefs.token = args.token

    scene = bpy.context.scene
    start, end = (int(frame) for frame in args.frames.split("-"))
    scene.frame_start, scene.frame_end = start, end
    scene.drqueue.block_size = args.block_size
    scene.drqueue.pool = args.pool
    if bpy.data.filepath:
        bpy.ops.wm.save_mainfile()
    if args.change_after_save:
        scene.frame_end = end + 1
        bpy.ops.ed.undo_push(message="Frame End")

    outcome = {"result": None, "error": None, "watch": None}
    try:
        outcome["result"] = sorted(bpy.ops.drqueue.submit())
    except RuntimeError as exc:  # the operator reported an ERROR
        outcome["error"] = str(exc).strip()
    from drqueue_submit.panel import DRQUEUE_PT_submit
    from drqueue_submit.watch import WATCH

    if WATCH.job is not None:
        # As the Watch area does, ask again while the master does not answer (a busy machine).
        for _ in range(10):
            if WATCH.read_now():
                break
        outcome["job_id"] = WATCH.job.job_id
        outcome["watch"] = WATCH.job.line
    outcome["panel"] = draw_panel(DRQUEUE_PT_submit)
    print("DRQUEUE_RESULT " + json.dumps(outcome), flush=True)


main()
