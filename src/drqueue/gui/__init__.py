"""The desktop GUI, ``drqueue gui``: a PySide6 window on one master, for wranglers' workstations.

It is a client of the master's HTTP API and nothing else, through :class:`drqueue.Client`
(docs/gui.md).  The parts, each a module:

- ``controller``: the only code that talks to the master.  Every request runs on a worker
  thread and answers on the UI thread by a signal; the live stream is read on its own thread.
- ``models``: Qt table models over the client's typed objects (``Job``, ``Task``,
  ``Computer``), and the jobs filter.  Views read these, never the network.
- ``states``: each state's colour, glyph and word, in one place.
- ``widgets``: the stacked progress bar, the frame grid, the connection banner.
- ``jobs_view``, ``job_detail``, ``computers_view``, ``submit_dialog``, ``settings``:
  the views.  ``notify`` is the tray message when a job of yours ends.
- ``window``: the main window that holds them; ``app.run`` starts it all.

PySide6 is an optional dependency (``pip install 'drqueue[gui]'``): only ``drqueue gui``
imports this package.
"""
