"""Burned-in captions: the ASS script libass draws, sized and placed for one output.

The style is fixed and documented (docs/media.md, "Captions"): DejaVu Sans (it ships with the
container and with Debian's ``fonts-dejavu-core``), white with a black outline so it reads on
any picture, its size a fraction of the frame's shorter side, centred above the surface's bottom
UI band and inside its side bands. The script's resolution is the output's, so every number
below is in output pixels; an encode retried at a smaller size is scaled by libass with the
picture. Changing any of it changes the pixels: bump ``BURN_IN_STYLE_VERSION`` in
plan/targets.py.
"""

from __future__ import annotations

import math
from pathlib import Path

from ..captions import Cue
from ..plan import BurnIn

FONT_NAME = "DejaVu Sans"
FONTS_DIR = Path("/usr/share/fonts/truetype/dejavu")
# The text's height (the font size) as a share of the frame's shorter side: 54 px on a
# 1080-wide vertical video, 36 px at 720p. Phones show vertical video at full width, so the
# short side is what the eye measures the text against.
FONT_FRACTION = 0.05
# Clear space kept beyond a UI band (or from the frame's edge where there is none).
MARGIN_FRACTION = 0.03
OUTLINE_FRACTION = 0.08  # of the font size


def write_script(burn: BurnIn, width: int, height: int, path: Path) -> Path:
    """Write the ASS script for ``burn`` at ``width`` x ``height`` to ``path``."""
    font = max(12, round(FONT_FRACTION * min(width, height)))
    outline = max(1.5, round(OUTLINE_FRACTION * font, 1))
    bottom = math.ceil((burn.bottom + MARGIN_FRACTION) * height)
    left = math.ceil((burn.left + MARGIN_FRACTION) * width)
    right = math.ceil((burn.right + MARGIN_FRACTION) * width)
    head = (
        "[Script Info]\nScriptType: v4.00+\nWrapStyle: 0\nScaledBorderAndShadow: yes\n"
        f"PlayResX: {width}\nPlayResY: {height}\n\n"
        "[V4+ Styles]\nFormat: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, "
        "OutlineColour, BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, "
        "Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, "
        "Encoding\n"
        f"Style: Caption,{FONT_NAME},{font},&H00FFFFFF,&H00FFFFFF,&H00000000,&H80000000,0,0,0,"
        f"0,100,100,0,0,1,{outline},0,2,{left},{right},{bottom},1\n\n"
        "[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, "
        "Text\n")
    events = "".join(f"Dialogue: 0,{_time(c.start_ms)},{_time(c.end_ms)},Caption,,0,0,0,,"
                     f"{_text(c)}\n" for c in burn.cues)
    path.write_text(head + events, encoding="utf-8")
    return path


def _time(ms: int) -> str:
    """ASS time, h:mm:ss.cc (centiseconds, rounded down so a cue never starts late)."""
    cs = ms // 10
    return f"{cs // 360_000}:{cs // 6000 % 60:02d}:{cs // 100 % 60:02d}.{cs % 100:02d}"


def _text(cue: Cue) -> str:
    # "{...}" is an override block and "\" starts an escape in ASS: the caption's own
    # braces and backslashes become their full-width look-alikes, lines become \N.
    text = cue.text.replace("\\", "\uff3c").replace("{", "\uff5b").replace("}", "\uff5d")
    return text.replace("\n", "\\N")
