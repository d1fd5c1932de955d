"""Programs around the pipeline, not part of a worker: the debug receiver (``hookstream
receiver``) and the JSON Schema generator (``make schemas``).

May import any layer below the Faust app; the worker never imports them.
"""
