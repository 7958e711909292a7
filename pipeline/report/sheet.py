"""The PNG contact sheet: one row per account, its pictures with the UI zones drawn on.

For places where an HTML page with files next to it does not travel (chat, tickets).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from ..presets import PresetRegistry, UiZone
from .html import ZONE_RGB, ZONE_TINT_ALPHA
from .pictures import Picture, zones_for

TILE_PX = 220  # the longer side of a picture on the sheet
PAD_PX = 12
HEADER_PX = 40
WIDTH_PX = 1200
_STATUS_RGB = {"ok": (27, 127, 59), "failed": (179, 38, 30)}


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _tile(pic: Picture | None, width: Any, height: Any, zones: tuple[UiZone, ...],
          base: Path) -> Image.Image:
    w = width if isinstance(width, int) and width > 0 else 9
    h = height if isinstance(height, int) and height > 0 else 16
    scale = TILE_PX / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if pic is not None and pic.still:
        with Image.open(base / pic.still) as img:
            tile = img.convert("RGB").resize(size, Image.Resampling.LANCZOS)
    else:
        tile = Image.new("RGB", size, (34, 34, 34))
    if h > w and zones:
        overlay = Image.new("RGBA", size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(overlay)
        fill = (*ZONE_RGB, round(ZONE_TINT_ALPHA * 255))
        for z in zones:
            dx, dy = round(size[0] * z.fraction), round(size[1] * z.fraction)
            box = {"top": (0, 0, size[0] - 1, dy), "bottom": (0, size[1] - dy - 1, size[0] - 1,
                                                               size[1] - 1),
                   "left": (0, 0, dx, size[1] - 1),
                   "right": (size[0] - dx - 1, 0, size[0] - 1, size[1] - 1)}
            draw.rectangle(box[z.edge], fill=fill, outline=(*ZONE_RGB, 255), width=2)
        tile = Image.alpha_composite(tile.convert("RGBA"), overlay).convert("RGB")
    return tile


def render(manifest: Mapping[str, Any], pictures: Mapping[str, Picture],
           presets: PresetRegistry, base: Path) -> Image.Image:
    """The sheet as an image: a title, then per account its status line and pictures."""
    rows: list[tuple[str, tuple[int, int, int], str, list[Image.Image]]] = []
    for account in manifest.get("accounts") or []:
        if not isinstance(account, dict):
            continue
        zones = zones_for(str(account.get("variant", "")), presets)
        items = [m for m in account.get("media") or [] if isinstance(m, dict)]
        if isinstance(account.get("cover"), dict):
            items.append(account["cover"])
        tiles = [_tile(pictures.get(str(m.get("uri", ""))), m.get("width"), m.get("height"),
                       zones, base) for m in items]
        status = str(account.get("status", "?"))
        codes = [str(e.get("code", "?")) if isinstance(e, dict) else str(e)
                 for e in account.get("errors") or []]
        warnings = [str(w) for m in items for w in m.get("warnings") or []]
        warnings += [str(w) for w in account.get("warnings") or []]
        head = (f"{account.get('account_id', '?')}  {account.get('platform', '?')}  "
                f"{account.get('variant', '')}  {status}")
        detail = "; ".join([*codes, *(f"warning: {w}" for w in warnings)])
        rows.append((head, _STATUS_RGB.get(status, (90, 90, 90)), detail, tiles))
    heights = [HEADER_PX + (max((t.height for t in tiles), default=0) + PAD_PX if tiles else 0)
               for _, _, _, tiles in rows]
    sheet = Image.new("RGB", (WIDTH_PX, 50 + sum(heights) + PAD_PX), (244, 244, 246))
    draw = ImageDraw.Draw(sheet)
    draw.text((PAD_PX, 12), f"conform preview: job {manifest.get('job_id', '?')} "
              f"({manifest.get('status', '?')})", fill=(20, 20, 20), font=_font(20))
    y = 50
    for (head, colour, detail, tiles), height in zip(rows, heights, strict=True):
        draw.rectangle((PAD_PX, y + 4, PAD_PX + 8, y + 20), fill=colour)
        draw.text((PAD_PX + 14, y + 2), head[:110], fill=(20, 20, 20), font=_font(15))
        draw.text((PAD_PX + 14, y + 21), detail[:150], fill=(120, 80, 0), font=_font(12))
        x = PAD_PX
        for tile in tiles:
            if x + tile.width > WIDTH_PX:
                break  # a very long carousel: the page has them all
            sheet.paste(tile, (x, y + HEADER_PX))
            x += tile.width + PAD_PX
        y += height
    return sheet
