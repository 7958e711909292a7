"""Making a job's outputs: what ``runner.py`` hands over once the plan is known.

``run.py`` is the job's run record (settings, storage, work folders, deadline, events);
``produce.py`` reuses what earlier runs stored, runs shared decodes and makes every rendition
and cover; ``rendition.py`` renders one output, probes it and has ``verify.py`` check it
against every account sharing it; ``stored.py`` stores it with its ``meta.json``, content
addressed; ``sidecars.py`` does the same for caption files.

Its modules are imported by name (``from pipeline.outputs.produce import produce``).
"""

__all__: list[str] = []
