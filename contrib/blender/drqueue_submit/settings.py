"""Where the add-on keeps its settings.

* :class:`DrQueuePreferences`: the master's URL and the token, in Blender's preferences
  (Preferences → Add-ons → DrQueue Submit), never in a .blend: a file sent to someone else
  carries no token.  Blank, they fall back to DRQUEUE_MASTER and DRQUEUE_TOKEN.
* :class:`DrQueueJobSettings`: the job's own choices (block size, priority, pool, notify),
  stored with the scene (``scene.drqueue``) like Blender's other output settings.
"""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, IntProperty, PointerProperty, StringProperty

# The package's name: "drqueue_submit" as an add-on, "bl_ext.<repo>.drqueue_submit" as an
# extension (Blender 4.2+); preferences are looked up by it.
ADDON = __package__


class DrQueuePreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON

    master_url: StringProperty(
        name="Master URL",
        description="The DrQueue master's HTTP API, e.g. http://master:7680 "
        "(blank: DRQUEUE_MASTER, else http://127.0.0.1:7680)",
        default="",
    )
    token: StringProperty(
        name="Token",
        description="Your DrQueue API token (drqueue token create --role artist --owner NAME); "
        "blank: DRQUEUE_TOKEN",
        default="",
        subtype="PASSWORD",
    )

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.use_property_split = True
        layout.prop(self, "master_url")
        layout.prop(self, "token")


class DrQueueJobSettings(bpy.types.PropertyGroup):
    job_name: StringProperty(
        name="Job Name", description="The job's name on the farm (blank: the .blend's name)"
    )
    block_size: IntProperty(
        name="Frames per Task",
        description="How many frames one task renders (one Blender process on one slave)",
        default=1,
        min=1,
        soft_max=100,
    )
    priority: IntProperty(
        name="Priority",
        description="Higher runs first",
        default=50,
        min=-1_000_000,
        max=1_000_000,
        soft_min=0,
        soft_max=100,
    )
    pool: StringProperty(
        name="Pool", description="Only slaves of this pool render the job (blank: any slave)"
    )
    notify_finished: BoolProperty(name="Finished", description="Notify when the job finishes")
    notify_error: BoolProperty(name="Error", description="Notify when the job ends in error")
    notify_first_frame: BoolProperty(
        name="First Frame", description="Notify when the first frame is done, to check it early"
    )

    def notify_on(self) -> list[str]:
        """The job's ``notify.on`` events, as farm.NOTIFY_EVENTS names them."""
        ticked = {
            "finished": self.notify_finished,
            "error": self.notify_error,
            "first-frame": self.notify_first_frame,
        }
        return [event for event, on in ticked.items() if on]


def preferences(context: bpy.types.Context) -> DrQueuePreferences:
    return context.preferences.addons[ADDON].preferences


CLASSES = (DrQueuePreferences, DrQueueJobSettings)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.drqueue = PointerProperty(type=DrQueueJobSettings)


def unregister() -> None:
    del bpy.types.Scene.drqueue
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
