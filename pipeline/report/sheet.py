"""The PNG contact sheet: the page's content as one picture, for chat and tickets.

Same as the page: per account its status, errors and warnings; per output its picture (UI zones
outlined over a light tint), size, bytes, duration, actions and warnings; an output several
accounts share is drawn once and referred to after; a legend for the zones. Text is wrapped to
the sheet's width, never cut. ``layout`` decides what goes where (tested without pixels),
``render`` paints it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from ..presets import PresetRegistry, UiZone
from .html import (
    ZONE_RGB,
    ZONE_TINT_ALPHA,
    below_recommended,
    caption_facts,
    cover_poster,
    output_label,
    poster_for,
)
from .pictures import Picture, zones_for

TILE_PX = 220  # the longer side of a picture on the sheet
REF_TILE_PX = 110  # the longer side of a picture shown again (an output shared by accounts)
CELL_MIN_PX = 200  # a caption is at least this wide
PAD_PX = 12
LINE_PX = 17
WIDTH_PX = 1200
_INK = (20, 20, 20)
_WARN = (138, 90, 0)
_ERR = (179, 38, 30)
_STATUS_RGB = {"ok": (27, 127, 59), "failed": _ERR}
Line = tuple[str, tuple[int, int, int]]


@dataclass(frozen=True, slots=True)
class Cell:
    """One output on the sheet: its picture (or a reference to where it is) and caption."""

    pic: Picture | None
    width: Any
    height: Any
    zones: tuple[UiZone, ...]
    caption: tuple[Line, ...]
    ref: bool = False
    path: str | None = None  # smart framing's path drawn (a picture in the report folder)


@dataclass(frozen=True, slots=True)
class Row:
    """One account: a status line, its errors and warnings, its outputs."""

    head: str
    colour: tuple[int, int, int]
    lines: tuple[Line, ...]
    cells: tuple[Cell, ...]


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def layout(manifest: Mapping[str, Any], pictures: Mapping[str, Picture],
           presets: PresetRegistry) -> list[Row]:
    """What the sheet shows, account by account (the texts as the page writes them)."""
    rows: list[Row] = []
    shown: dict[str, str] = {}  # output identity -> where it was first drawn
    for account in manifest.get("accounts") or []:
        if not isinstance(account, dict):
            continue
        zones = zones_for(str(account.get("variant", "")), presets)
        items = [m for m in account.get("media") or [] if isinstance(m, dict)]
        if isinstance(account.get("cover"), dict):
            items.append({**account["cover"], "kind": "cover"})
        account_id = str(account.get("account_id", "?"))
        poster = cover_poster(account, pictures)
        cells = tuple(_cell(m, account_id, pictures, zones, shown,
                            poster if m.get("kind") == "video" else None) for m in items)
        status = str(account.get("status", "?"))
        lines = [(_error_text(e), _ERR) for e in account.get("errors") or []]
        lines += [(f"warning: {w}", _WARN) for w in account.get("warnings") or []]
        rows.append(Row(f"{account_id}  {account.get('platform', '?')}  "
                        f"{account.get('variant', '')}  {status}",
                        _STATUS_RGB.get(status, (90, 90, 90)), tuple(lines), cells))
    return rows


def _cell(m: Mapping[str, Any], account_id: str, pictures: Mapping[str, Picture],
          zones: tuple[UiZone, ...], shown: dict[str, str], poster: Picture | None) -> Cell:
    uri = str(m.get("uri", ""))
    label = output_label(m)
    identity = str(m.get("sha256") or uri)
    pic = poster_for(pictures.get(uri), poster)
    if identity in shown:
        return Cell(pic, m.get("width"), m.get("height"), zones,
                    ((f"{label}: the same file as {shown[identity]}", _INK),), ref=True)
    shown[identity] = f"{account_id} {label}"
    caption: list[Line] = [(" · ".join(caption_facts(m)), _INK)]
    if below_recommended(m):
        caption.append(("below the recommended size", _ERR))
    actions = ", ".join(str(a) for a in m.get("actions") or [])
    if actions:
        caption.append((f"actions: {actions}", _INK))
    if pic is not None and pic.error:
        caption.append((f"no picture: {pic.error}", _ERR))
    caption += [(f"warning: {w}", _WARN) for w in m.get("warnings") or []]
    own = pictures.get(uri)  # the video's own pictures (``pic`` may be the cover's)
    if own is not None and own.path_text:
        caption += [(text, _INK) for text in own.path_text]
    return Cell(pic, m.get("width"), m.get("height"), zones, tuple(caption),
                path=own.path if own is not None else None)


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        return f"{error.get('code', '?')}: {error.get('message', '')}"
    return str(error)


def wrap(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
         width_px: int) -> list[str]:
    """``text`` in lines no wider than ``width_px`` (a word longer than that is split)."""
    lines: list[str] = []
    current = ""
    for word in text.split(" "):
        candidate = f"{current} {word}" if current else word
        if font.getlength(candidate) <= width_px:
            current = candidate
            continue
        if current:
            lines.append(current)
        current = word
        while font.getlength(current) > width_px and len(current) > 1:
            cut = max(1, next((i for i in range(len(current), 0, -1)
                               if font.getlength(current[:i]) <= width_px), 1))
            lines.append(current[:cut])
            current = current[cut:]
    lines.append(current)
    return lines


def _tile(pic: Picture | None, width: Any, height: Any, zones: tuple[UiZone, ...],
          base: Path, side: int) -> Image.Image:
    w = width if isinstance(width, int) and width > 0 else 9
    h = height if isinstance(height, int) and height > 0 else 16
    scale = side / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if pic is not None and pic.still:
        with Image.open(base / pic.still) as img:
            tile = img.convert("RGB").resize(size, Image.Resampling.LANCZOS)
    else:
        tile = Image.new("RGB", size, (34, 34, 34))
    if h > w and zones:
        tile = _draw_zones(tile, zones)
    return tile


def _draw_zones(tile: Image.Image, zones: tuple[UiZone, ...]) -> Image.Image:
    """Each zone outlined in magenta over a light tint, like the page."""
    overlay = Image.new("RGBA", tile.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    fill = (*ZONE_RGB, round(ZONE_TINT_ALPHA * 255))
    w, h = tile.size
    for z in zones:
        dx, dy = round(w * z.fraction), round(h * z.fraction)
        box = {"top": (0, 0, w - 1, dy), "bottom": (0, h - dy - 1, w - 1, h - 1),
               "left": (0, 0, dx, h - 1), "right": (w - dx - 1, 0, w - 1, h - 1)}
        draw.rectangle(box[z.edge], fill=fill, outline=(*ZONE_RGB, 255), width=2)
    return Image.alpha_composite(tile.convert("RGBA"), overlay).convert("RGB")


def _cell_image(cell: Cell, base: Path) -> Image.Image:
    tile = _tile(cell.pic, cell.width, cell.height, cell.zones, base,
                 REF_TILE_PX if cell.ref else TILE_PX)
    drawn = _path_image(cell.path, base) if cell.path and not cell.ref else None
    width = max(tile.width, CELL_MIN_PX, drawn.width if drawn else 0)
    font = _font(12)
    lines = [(text, colour) for caption, colour in cell.caption
             for text in wrap(caption, font, width)]
    top = tile.height + (drawn.height + 4 if drawn else 0)
    image = Image.new("RGB", (width, top + 4 + LINE_PX * len(lines)), _BACKGROUND)
    image.paste(tile, (0, 0))
    if drawn:
        image.paste(drawn, (0, tile.height + 4))
    draw = ImageDraw.Draw(image)
    for i, (text, colour) in enumerate(lines):
        draw.text((0, top + 4 + i * LINE_PX), text, fill=colour, font=font)
    return image


def _path_image(name: str, base: Path) -> Image.Image:
    """The path's drawing, narrowed to the sheet's width when it is wider."""
    with Image.open(base / name) as img:
        drawn = img.convert("RGB")
    room = WIDTH_PX - 2 * PAD_PX
    if drawn.width > room:
        drawn = drawn.resize((room, max(1, round(drawn.height * room / drawn.width))),
                             Image.Resampling.LANCZOS)
    return drawn


_BACKGROUND = (244, 244, 246)


def _row_image(row: Row, base: Path) -> Image.Image:
    """An account's block: head, wrapped lines, then its cells flowed into lines."""
    text_width = WIDTH_PX - 2 * PAD_PX - 14
    small = _font(12)
    lines = [(t, c) for text, c in row.lines for t in wrap(text, small, text_width)]
    cells = [_cell_image(c, base) for c in row.cells]
    places: list[tuple[int, int]] = []
    x, y, line_h = PAD_PX, 24 + LINE_PX * len(lines) + 4, 0
    for cell in cells:
        if x + cell.width > WIDTH_PX - PAD_PX and x > PAD_PX:
            x, y, line_h = PAD_PX, y + line_h + PAD_PX, 0
        places.append((x, y))
        x, line_h = x + cell.width + PAD_PX, max(line_h, cell.height)
    image = Image.new("RGB", (WIDTH_PX, y + line_h + PAD_PX), _BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.rectangle((PAD_PX, 4, PAD_PX + 8, 20), fill=row.colour)
    draw.text((PAD_PX + 14, 2), wrap(row.head, _font(15), text_width)[0], fill=_INK,
              font=_font(15))
    for i, (text, colour) in enumerate(lines):
        draw.text((PAD_PX + 14, 24 + i * LINE_PX), text, fill=colour, font=small)
    for cell, place in zip(cells, places, strict=True):
        image.paste(cell, place)
    return image


def _header(manifest: Mapping[str, Any], uses: int, distinct: int) -> Image.Image:
    image = Image.new("RGB", (WIDTH_PX, 64), _BACKGROUND)
    draw = ImageDraw.Draw(image)
    title = (f"conform preview: job {manifest.get('job_id', '?')} "
             f"({manifest.get('status', '?')}) · {distinct} distinct output(s) for {uses} use(s)")
    draw.text((PAD_PX, 10), wrap(title, _font(20), WIDTH_PX - 2 * PAD_PX)[0], fill=_INK,
              font=_font(20))
    key = Image.new("RGB", (14, 14), (255, 255, 255))
    image.paste(_draw_zones(key, (UiZone("top", 1.0, "", ""),)), (PAD_PX, 42))
    draw.text((PAD_PX + 20, 41), "where the app draws its UI over vertical videos and photos "
              "(platform safe zones from the presets)", fill=_INK, font=_font(12))
    return image


def render(manifest: Mapping[str, Any], pictures: Mapping[str, Picture],
           presets: PresetRegistry, base: Path) -> Image.Image:
    """The sheet as an image: a title and the zones' legend, then one block per account."""
    rows = layout(manifest, pictures, presets)
    cells = [c for r in rows for c in r.cells]
    blocks = [_header(manifest, len(cells), sum(1 for c in cells if not c.ref)),
              *(_row_image(r, base) for r in rows)]
    sheet = Image.new("RGB", (WIDTH_PX, sum(b.height for b in blocks)), _BACKGROUND)
    y = 0
    for block in blocks:
        sheet.paste(block, (0, y))
        y += block.height
    return sheet
