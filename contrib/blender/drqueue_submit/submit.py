"""The Submit button: the saved .blend, rendered by the farm with the scene's settings.

The farm renders the file on disk, not what is in this Blender's memory, so Submit refuses a
file never saved or with unsaved changes and says so; it does not save for the artist (a
save the artist did not ask for may overwrite a version they meant to keep).  The scene
gives the frame range, the output path and format; the DrQueue panel the rest.  A failure
is reported with the master's one-line message and leaves no job behind: the master makes a
job in one transaction, and a submit that got no answer is sent again, on the next press,
with the same Idempotency-Key (farm.PendingSubmits).
"""

from __future__ import annotations

import getpass
import os

import bpy

from . import farm
from .settings import preferences
from .watch import WATCH

#: The Idempotency-Keys of the submits that got no answer, for the next press of Submit.
PENDING = farm.PendingSubmits()


def scene_job(scene: bpy.types.Scene) -> farm.JobSettings:
    """What to submit: the saved .blend and *scene*'s frames, output and DrQueue settings."""
    blend_file = bpy.path.abspath(bpy.data.filepath)
    ours = scene.drqueue
    return farm.JobSettings(
        blend_file=blend_file,
        scene_name=scene.name,
        start=scene.frame_start,
        end=scene.frame_end,
        step=scene.frame_step,
        # As Blender writes it: "//" is the .blend's folder on the slave too.
        output=scene.render.filepath,
        file_format=scene.render.image_settings.file_format,
        block_size=ours.block_size,
        priority=ours.priority,
        pool=ours.pool,
        notify_on=ours.notify_on(),
        name=ours.job_name or os.path.splitext(os.path.basename(blend_file))[0],
        owner=getpass.getuser(),
    )


def unsaved_reason() -> str | None:
    """Why the file cannot be submitted as it is on disk, or None."""
    if not bpy.data.filepath:
        return "save the .blend first: the farm renders the saved file"
    if bpy.data.is_dirty:
        return "the .blend has unsaved changes: save it (File → Save) and submit again"
    return None


class DRQUEUE_OT_submit(bpy.types.Operator):
    bl_idname = "drqueue.submit"
    bl_label = "Submit to DrQueue"
    bl_description = "Render the saved .blend on the DrQueue farm, with this scene's frames"

    def execute(self, context: bpy.types.Context) -> set[str]:
        reason = unsaved_reason()
        if reason is not None:
            self.report({"ERROR"}, f"DrQueue: {reason}")
            return {"CANCELLED"}
        prefs = preferences(context)
        master, token = farm.master_url(prefs.master_url), farm.api_token(prefs.token)
        body: dict | None = None
        try:
            body = farm.job_body(scene_job(context.scene))
            key = PENDING.key(master, body)
            answer = farm.submit_job(master, token, body, key=key)
        except farm.FarmError as exc:
            if body is not None:
                if exc.answered:
                    PENDING.answered(master, body)
                else:
                    PENDING.unanswered(master, body, key)
            self.report({"ERROR"}, f"DrQueue: {exc}")
            return {"CANCELLED"}
        PENDING.answered(master, body)
        WATCH.start(answer["id"], master, token)
        self.report(
            {"INFO"},
            f"DrQueue job {answer['id']} submitted: frames {body['start']}-{body['end']}, "
            f"{answer['tasks']} tasks",
        )
        return {"FINISHED"}


register, unregister = bpy.utils.register_classes_factory((DRQUEUE_OT_submit,))
