"""Many videos: each into ROOT/<name>/ through the single-video Pipeline, on a local process pool
or as Ray tasks, with one summary in ROOT/batch.json.

Modules: `inputs` (which videos, which folders), `jobs` (what travels to a worker and back),
`worker` (one video in a worker process), `local` and `ray_engine` (the two engines) and `runner`
(options, progress, summary). Only `runner` and `inputs` import heavy libraries at the top, so a
worker sets its thread limits before numpy, torch or OpenCV are loaded.
"""
