"""DrQueue Submit: send the saved .blend to a DrQueue render farm and watch it render.

Install the zip `make blender-addon` builds (Preferences → Add-ons → Install on Blender 3.4 to
4.1, Get Extensions → Install from Disk on 4.2+), set the master's URL and your token in the
add-on's preferences, then use the "DrQueue" panel in Output Properties.  docs/blender.md has
the details.  The modules: ``farm`` talks HTTP (no bpy), ``settings`` holds the preferences
and the scene's job settings, ``submit`` is the Submit button, ``watch`` the Watch area and
``panel`` draws them.
"""

# Blender 3.4-4.1 read this; 4.2+ reads blender_manifest.toml instead (keep the two alike).
bl_info = {
    "name": "DrQueue Submit",
    "author": "DrQueue",
    "version": (0, 1, 0),
    "blender": (3, 4, 0),
    "location": "Properties → Output → DrQueue",
    "description": "Submit the saved .blend to a DrQueue render farm and watch its progress",
    "category": "Render",
}

from . import panel, settings, submit, watch  # noqa: E402 (bl_info comes first, as Blender reads it)

#: Registered in this order, unregistered in the reverse.
MODULES = (settings, watch, submit, panel)


def register() -> None:
    for module in MODULES:
        module.register()


def unregister() -> None:
    for module in reversed(MODULES):
        module.unregister()
