"""Loudness normalisation's first pass, as loudnorm reports it (pure parsing)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from ..errors import ProcessingFailed


@dataclass(frozen=True, slots=True)
class Loudness:
    """First-pass EBU R128 measurement (ffmpeg ``loudnorm`` ``print_format=json``)."""

    input_i: float
    input_tp: float
    input_lra: float
    input_thresh: float
    target_offset: float



def parse_loudness(stderr_tail: str) -> Loudness | None:
    """The JSON block loudnorm prints last (its machine-readable report, not a log line).

    Returns:
        The measurement, or None when the input is silent (loudnorm reports ``-inf``).

    Raises:
        ProcessingFailed: no JSON report in the text.
    """
    start, end = stderr_tail.rfind("{"), stderr_tail.rfind("}")
    try:
        data = json.loads(stderr_tail[start:end + 1]) if 0 <= start < end else None
    except json.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        raise ProcessingFailed("loudnorm did not report a measurement",
                               details={"stderr": stderr_tail})
    try:
        values = [float(data[k]) for k in ("input_i", "input_tp", "input_lra", "input_thresh",
                                           "target_offset")]
    except (KeyError, TypeError, ValueError) as err:
        raise ProcessingFailed("loudnorm reported an unreadable measurement") from err
    if not all(math.isfinite(v) for v in values):
        return None
    return Loudness(*values)

