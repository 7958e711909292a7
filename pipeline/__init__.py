"""conform-pipeline: make every image and video fit each social platform before it is published."""

from __future__ import annotations

__version__ = "0.1.0"
