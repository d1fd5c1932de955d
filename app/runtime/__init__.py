"""What one worker process holds while it runs: the app's Faust topic objects (channels), its
shared per-worker state and the service that runs it, and process tuning (GC).

Built on the Faust app (:mod:`app.main`) and every layer below it; the agents and the API
import from here. Nothing here imports an agent or a page.
"""
