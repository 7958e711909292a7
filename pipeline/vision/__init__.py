"""Vision: what is in the picture, and where a crop should go.

``sampling.py`` decodes a few small frames of a video or a still; ``subject.py`` finds the
subject in a frame (faces, people, motion, salient detail) and says whether a platform's UI
covers it; ``cuts.py`` finds shot changes; ``camera.py`` plans a crop window per shot;
``framing.py`` runs the analysis for smart framing; ``coversubject.py`` checks a cover frame.
Nothing here encodes or stores: it reads pixels and returns boxes, shots and paths.

Its modules are imported by name (``from pipeline.vision.subject import find_subjects``).
"""

__all__: list[str] = []
