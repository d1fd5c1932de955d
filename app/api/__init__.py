"""The worker's web routes: the admin API, the feedback endpoint, ``/health`` and ``/metrics``.

Served by the Faust worker's web server (aiohttp). Wiring like the agents: may import anything
below them, never an agent. :mod:`app.worker` imports them so they register.
"""
