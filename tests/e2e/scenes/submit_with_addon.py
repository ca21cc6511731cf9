"""Drive the DrQueue add-on inside Blender, as an artist would: install, set up, submit.

Run with Blender on a scene, not with Python::

    blender -b [SCENE.blend] --factory-startup --python submit_with_addon.py -- \
        --zip drqueue_submit.zip --master URL --token TOKEN [--frames 1-3] [--block-size 2]
        [--change-after-save]

It installs the add-on's zip (Preferences → Add-ons → Install) and enables it, sets its
preferences (master URL, token), sets the scene's frames and the panel's block size, saves
the file (File → Save; not when Blender was started without one), optionally changes the
scene again without saving (an edit in the UI pushes an undo step, which marks the file
modified: a change by script alone does not), and presses Submit (the ``drqueue.submit``
operator).  Then it reads the submitted job once as the Watch
area does.  Last, it prints one line ``DRQUEUE_RESULT {json}``: the operator's result, or the
error it reported (Blender raises a RuntimeError for an operator's ERROR report), and the
Watch area's line.  Run with BLENDER_USER_SCRIPTS and BLENDER_USER_CONFIG pointing at a
folder of the test's own, so the add-on is installed there and not for the machine's user.
"""

import argparse
import json
import sys

import bpy


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--zip", required=True)
    parser.add_argument("--master", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--frames", default="1-3")
    parser.add_argument("--block-size", type=int, default=1)
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
    from drqueue_submit.watch import WATCH

    if WATCH.job is not None:
        WATCH.read_now()
        outcome["job_id"] = WATCH.job.job_id
        outcome["watch"] = WATCH.job.line
    print("DRQUEUE_RESULT " + json.dumps(outcome), flush=True)


main()
