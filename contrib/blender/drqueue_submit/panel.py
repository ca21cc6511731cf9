"""The "DrQueue" panel in Output Properties: the job's settings, Submit, and the Watch area."""

from __future__ import annotations

import bpy

from . import farm
from .settings import preferences
from .watch import WATCH


class DRQUEUE_PT_submit(bpy.types.Panel):
    bl_label = "DrQueue"
    bl_space_type = "PROPERTIES"
    bl_region_type = "WINDOW"
    bl_context = "output"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        scene = context.scene
        ours = scene.drqueue

        layout.label(text=f"Master: {farm.master_url(preferences(context).master_url)}")
        frames = layout.column(align=True)
        frames.prop(scene, "frame_start", text="Frames Start")
        frames.prop(scene, "frame_end", text="End")
        frames.prop(scene, "frame_step", text="Step")
        layout.prop(ours, "block_size")
        layout.prop(ours, "priority")
        layout.prop(ours, "pool")
        layout.prop(ours, "job_name")
        notify = layout.column(heading="Notify", align=True)
        notify.prop(ours, "notify_finished")
        notify.prop(ours, "notify_error")
        notify.prop(ours, "notify_first_frame")
        layout.operator("drqueue.submit", icon="EXPORT")
        self.draw_watch(layout)

    @staticmethod
    def draw_watch(layout: bpy.types.UILayout) -> None:
        job = WATCH.job
        if job is None:
            return
        box = layout.box()
        row = box.row()
        row.label(text=f"Watch: job {job.job_id}", icon="RENDER_ANIMATION")
        row.operator("drqueue.open_job", text="", icon="URL")
        row.operator("drqueue.stop_watching", text="", icon="X")
        if hasattr(box, "progress"):  # UILayout.progress is Blender 4.0+
            box.progress(factor=job.fraction, type="BAR", text=f"{job.fraction:.0%}")
        box.label(text=job.line)


register, unregister = bpy.utils.register_classes_factory((DRQUEUE_PT_submit,))
