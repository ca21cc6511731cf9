"""Turtle (Illuminate Labs, then Autodesk), rendered through Maya's ``Render``.

Turtle ships as a Maya renderer, so it takes Maya's command line with
``-r turtle``; everything else, including the block's ``-s``/``-e``/``-b``, is
the Maya renderer's (see :mod:`drqueue.renderers.maya`)::

    Render -r turtle -s START -e END -b STEP [-proj DIR] [-cam CAMERA] … SCENE
"""

from __future__ import annotations

from drqueue.renderers.maya import Maya


class Turtle(Maya):
    name = "turtle"
    description = "Turtle, through Maya's batch renderer (Render -r turtle)"
    executable = "Render"
    params = tuple(p for p in Maya.params if p.name != "renderer")
    fixed_renderer = "turtle"
