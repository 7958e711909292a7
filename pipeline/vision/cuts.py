"""Where a clip's shots change: hard cuts, jump cuts and short dissolves, each on its frame.

Smart framing reads every frame of the clip, tiny (``CUT_SIDE_PX`` wide), in one decode, so
the cost grows with the clip's length and nothing else. Three signals, all from pixels:

- a *hard cut* or a *jump cut* is one frame that differs from the frame before it far more
  than its neighbours differ from theirs (a spike of the per-frame difference). A jump cut
  (same room, the subject jumps) barely changes the colour histogram, but it moves pixels,
  so pixel differences find it where histograms do not;
- a *flash* (a strobe, a camera flash) is a spike whose picture comes back within a few
  frames (and the spike out of it lands on a picture seen just before): not a cut;
- a *dissolve* shorter than ``DISSOLVE_S`` is a stretch whose frames are blends of the frames
  on either side of it (each frame close to the straight line between the two ends), which a
  pan or a moving subject is not. It is placed on its middle frame.

:func:`find_cuts` returns the first frame of each new shot; frame ``i`` is shown at
``i / rate``.
"""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

CUT_SIDE_PX = 48  # a talking head's face is ~8 px wide here: a jump of it moves many pixels
MAX_FRAMES = 9000  # frames read per clip (memory: 9000 x 48x28 RGB = 36 MB); longer: sparser
# A cut frame differs from the one before by at least this mean level (0..255; a 100 px face
# jumping across a 640 px frame of an unchanged room changes ~5) ...
HARD_MIN = 3.0
# ... and by this many times the usual frame-to-frame change around it (motion, noise).
SPIKE_RATIO = 3.0
BASELINE_S = 0.3  # the "usual change" is the median over this much time either side
FLASH_FRAMES = 3  # a picture that comes back within this many frames was a flash
DISSOLVE_S = 0.5  # longest dissolve found as a cut; a slower one reads as a camera move
DISSOLVE_MIN = 14.0  # mean change across a dissolve (0..255)
BLEND_SHARE = 0.3  # a blend frame is this close to the straight line, relative to the change


def _diff(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> float:
    import numpy as np

    return float(np.abs(a - b).mean())


def frame_changes(tiny: npt.NDArray[np.uint8]) -> list[float]:
    """Per frame, its mean absolute difference from the frame before (0.0 for the first).

    Raises:
        Nothing.
    """
    import numpy as np

    out = [0.0]
    for i in range(1, len(tiny)):
        out.append(float(np.abs(tiny[i].astype(np.int16) - tiny[i - 1]).mean()))
    return out


def find_cuts(tiny: npt.NDArray[np.uint8], *, rate: float) -> list[int]:
    """The first frame of every new shot, in order (never frame 0).

    Args:
        tiny: every frame of the clip, small, as an array (frames, height, width, 3).
        rate: frames per second of ``tiny``.

    Raises:
        Nothing.
    """
    changes = frame_changes(tiny)
    hard = _hard_cuts(tiny, changes, rate)
    dissolves = _dissolves(tiny, changes, rate, hard)
    return sorted({*hard, *dissolves})


def _hard_cuts(tiny: npt.NDArray[np.uint8], changes: list[float], rate: float) -> list[int]:
    """Frames where the picture jumps, except flashes; one per jump."""
    import numpy as np

    reach = max(3, round(BASELINE_S * rate))
    found: list[int] = []
    for i in range(1, len(changes)):
        change = changes[i]
        if change < HARD_MIN:
            continue
        around = [changes[j] for j in range(max(1, i - reach), min(len(changes), i + reach + 1))
                  if abs(j - i) > 1]
        usual = statistics.median(around) if around else 0.0
        if change < SPIKE_RATIO * usual + HARD_MIN / 2:
            continue
        before, now = tiny[i - 1].astype(np.float32), tiny[i].astype(np.float32)
        # The picture comes back within a few frames (into a flash), or this frame is one
        # from a few frames ago (out of a flash): not a new shot.
        back = any(_diff(before, tiny[j].astype(np.float32)) < 0.5 * change
                   for j in range(i + 1, min(len(tiny), i + 1 + FLASH_FRAMES)))
        back = back or any(_diff(now, tiny[j].astype(np.float32)) < 0.5 * change
                           for j in range(max(0, i - 1 - FLASH_FRAMES), i - 1))
        if back:
            continue
        if found and i - found[-1] <= 2:
            if change > changes[found[-1]]:
                found[-1] = i  # two jumps in a row: the larger is the cut
            continue
        found.append(i)
    return found


def _dissolves(tiny: npt.NDArray[np.uint8], changes: list[float], rate: float,
               hard: list[int]) -> list[int]:
    """The middle frames of short dissolves (stretches of blends between two pictures)."""
    import numpy as np

    half = max(2, round(DISSOLVE_S * rate / 2))
    near_hard = {j for h in hard for j in range(h - half, h + half + 1)}
    candidates: list[tuple[int, float]] = []
    for i in range(half, len(tiny) - half):
        if i in near_hard:
            continue
        a, b = tiny[i - half].astype(np.float32), tiny[i + half].astype(np.float32)
        across = _diff(a, b)
        if across < DISSOLVE_MIN:
            continue
        # A dissolve spreads its change: no single step carries most of it.
        if max(changes[i - half + 1:i + half + 1]) > 0.5 * across:
            continue
        off_line = max(
            _diff(tiny[i + k].astype(np.float32), a + (b - a) * ((k + half) / (2 * half)))
            for k in (-half // 2, 0, half // 2))
        if off_line <= BLEND_SHARE * across:
            candidates.append((i, across))
    return _run_middles(candidates)


def _run_middles(candidates: list[tuple[int, float]]) -> list[int]:
    """One frame per run of neighbouring candidates: the middle of its strongest part."""
    out: list[int] = []
    run: list[tuple[int, float]] = []
    for item in [*candidates, (-10, 0.0)]:
        if run and item[0] != run[-1][0] + 1:
            peak = max(v for _, v in run)
            strong = [i for i, v in run if v >= 0.9 * peak]
            out.append(strong[len(strong) // 2])
            run = []
        run.append(item)
    return out
