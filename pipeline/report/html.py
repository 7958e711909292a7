"""The preview page: plain HTML with inline CSS, no script, nothing fetched from the network.

Every value that comes from the manifest (ids, messages, sources, and numbers too) is escaped:
a job is written by whoever calls the API. The manifest was checked against the published
schema before it got here; escaping and the page's Content-Security-Policy hold even if a
value slips past that check.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from ..presets import PresetRegistry, UiZone
from .pictures import Picture, zones_for
from .scope import media_origin

BOX_PX = 320  # the longer side of a picture on the page
REF_BOX_PX = 160  # the longer side of a picture that repeats one shown above
ZONE_RGB = (255, 0, 200)  # magenta: a colour no status badge or text uses
# Zones are outlined in that colour over a light tint: the picture under them stays readable.
ZONE_TINT_ALPHA = 0.12

# What the page may load: its own pictures (relative names under the report folder, so
# 'self': the page's own origin, file: or http(s) when the folder is served) and inline CSS.
# Nothing else: no script of any kind ('none' for default-src covers script-src, connect-src,
# frame-src, object-src, font-src...), no remote picture or media, no <base> that would move
# the relative names elsewhere, no form posting anywhere. A picture that slipped into the
# page with a remote URL is blocked by the browser before any request is made.
# The players of S3 videos load presigned URLs from the store: media-src then lists exactly
# those origins (scheme, host and port of the endpoint), nothing wider.
CSP = ("default-src 'none'; img-src 'self'; media-src 'self'{media}; "
       "style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'")


def content_security_policy(pictures: Mapping[str, Picture]) -> str:
    """The page's policy: its own files, plus the store's origin when videos play from it."""
    origins = sorted({o for p in pictures.values() if p.video
                      for o in [media_origin(p.video)] if o is not None})
    return CSP.format(media="".join(f" {o}" for o in origins))

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;background:#f4f4f6;color:#1d1d22}
h1{font-size:20px;margin:0 0 4px}
.meta{color:#555;margin:0 0 16px}
.account{background:#fff;border:1px solid #ddd;border-radius:8px;padding:12px 16px;
 margin:0 0 16px}
.account h2{font-size:16px;margin:0 0 8px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;color:#fff}
.ok{background:#1b7f3b}.failed{background:#b3261e}.other{background:#666}
.outputs{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
figure{margin:0;max-width:660px}
.pair{display:flex;flex-wrap:wrap;gap:4px}.player{display:block;background:#000}
.frame{position:relative;background:#222;overflow:hidden}
.frame img{display:block;width:100%;height:100%}
.zone{position:absolute;background:rgba(@ZONE@,@TINT@);overflow:hidden;box-sizing:border-box;
 border:2px solid rgb(@ZONE@);white-space:nowrap}
.zone span{background:rgb(@ZONE@);color:#fff;font-size:10px;padding:0 3px}
.z-top{top:0;left:0;right:0}.z-bottom{bottom:0;left:0;right:0}
.z-left{top:0;bottom:0;left:0}.z-right{top:0;bottom:0;right:0}
.strip{display:grid;grid-template-columns:repeat(5,1fr);gap:2px;margin-top:4px}
.strip img{display:block;width:100%}
.path{margin-top:4px;font-size:12px;color:#333}.path img{display:block;max-width:100%}
.path ul{margin:2px 0 0}
.file{color:#333}
figcaption{font-size:12px;color:#333;margin-top:4px;word-break:break-all}
.warn{color:#8a5a00}.err{color:#b3261e}
.note{max-width:180px;font-size:12px;color:#555;margin:0}
.small{background:#b3261e}
.missing{display:flex;align-items:center;justify-content:center;color:#eee;font-size:12px;
 padding:8px}
ul{margin:4px 0 8px;padding-left:20px}
.legend span{display:inline-block;width:12px;height:12px;vertical-align:middle;margin-right:4px;
 box-sizing:border-box;border:2px solid rgb(@ZONE@);background:rgba(@ZONE@,@TINT@)}
""".replace("@ZONE@", ",".join(str(c) for c in ZONE_RGB)).replace("@TINT@", str(ZONE_TINT_ALPHA))


def _int(value: Any) -> str:
    """A whole number from the manifest, or ``?``: never its text."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else "?"


def _size(value: Any) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "?"
    return f"{value / 1_000_000:.2f} MB" if value >= 1_000_000 else f"{value / 1000:.1f} kB"


def _box(width: Any, height: Any, side: int) -> tuple[int, int]:
    w = width if isinstance(width, int) and width > 0 else 9
    h = height if isinstance(height, int) and height > 0 else 16
    scale = side / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def _zones_html(zones: tuple[UiZone, ...]) -> str:
    out = []
    for z in zones:
        size = "height" if z.edge in ("top", "bottom") else "width"
        out.append(f'<div class="zone z-{z.edge}" style="{size}:{z.fraction * 100:.2f}%" '
                   f'title="{escape(z.name)} ({escape(z.source)})">'
                   f"<span>{escape(z.what)}</span></div>")
    return "".join(out)


def _frame(pic: Picture | None, width: Any, height: Any, side: int,
           zones: tuple[UiZone, ...]) -> str:
    bw, bh = _box(width, height, side)
    vertical = isinstance(width, int) and isinstance(height, int) and height > width
    why = escape(pic.error or "") if pic else ""
    inner = (f'<img src="{escape(pic.still)}" alt="">' if pic is not None and pic.still
             else f'<div class="missing">no picture: {why}</div>')
    return (f'<div class="frame" style="width:{bw}px;height:{bh}px">{inner}'
            f'{_zones_html(zones) if vertical else ""}</div>')


def _list(items: list[Any], cls: str) -> str:
    if not items:
        return ""
    rows = "".join(f'<li class="{cls}">{escape(_text(i))}</li>' for i in items)
    return f"<ul>{rows}</ul>"


def _text(item: Any) -> str:
    if isinstance(item, dict):
        where = ""
        if item.get("content_index") is not None:
            where = f" (content[{item['content_index']}]"
            where += (f".media[{item['media_index']}])" if item.get("media_index") is not None
                      else ")")
        return f"{item.get('code', '?')}: {item.get('message', '')}{where}"
    return str(item)


def render(manifest: Mapping[str, Any], pictures: Mapping[str, Picture],
           presets: PresetRegistry, *, source: str) -> str:
    """The whole page for a manifest, given the pictures made for its outputs (by URI)."""
    shown: dict[str, tuple[str, str]] = {}  # output identity -> (anchor, where first shown)
    sections = []
    for index, account in enumerate(manifest.get("accounts") or []):
        if not isinstance(account, dict):
            continue
        sections.append(_account(index, account, pictures, presets, shown))
    uses = sum(len(a.get("media") or []) + isinstance(a.get("cover"), dict)
               for a in manifest.get("accounts") or [] if isinstance(a, dict))
    legend = ('<p class="legend"><span class="zone-key"></span>where the app draws its UI '
              "over vertical videos and photos (platform safe zones from the presets)</p>")
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" '
        f'content="{escape(content_security_policy(pictures))}">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>conform preview: {escape(str(manifest.get('job_id', '')))}</title>"
        f"<style>{_CSS}</style></head><body>"
        f"<h1>Preview of job {escape(str(manifest.get('job_id', '?')))}</h1>"
        f'<p class="meta">status {escape(str(manifest.get("status", "?")))} · '
        f"{len(sections)} account(s) · {len(shown)} distinct output(s) for {uses} use(s) · "
        f"manifest {_file_link(source, None)}</p>{legend}{''.join(sections)}</body></html>\n"
    )


def _account(index: int, account: Mapping[str, Any], pictures: Mapping[str, Picture],
             presets: PresetRegistry, shown: dict[str, tuple[str, str]]) -> str:
    account_id = str(account.get("account_id", "?"))
    variant = str(account.get("variant", ""))
    status = str(account.get("status", "?"))
    zones = zones_for(variant, presets)
    cover = account.get("cover")
    media = [m for m in account.get("media") or [] if isinstance(m, dict)]
    poster = cover_poster(account, pictures)
    cards = [_output(m, account_id, pictures, zones, shown,
                     poster=poster if m.get("kind") == "video" else None) for m in media]
    if isinstance(cover, dict):
        cards.append(_output({**cover, "kind": "cover"}, account_id, pictures, zones, shown))
    badge = status if status in ("ok", "failed") else "other"
    return (
        f'<section class="account" id="account-{index}" data-account="{escape(account_id)}">'
        f"<h2>{escape(account_id)} · {escape(str(account.get('platform', '?')))} · "
        f'{escape(variant)} <span class="badge {badge}">{escape(status)}</span></h2>'
        f"{_list(list(account.get('errors') or []), 'err')}"
        f"{_list(list(account.get('warnings') or []), 'warn')}"
        f'<div class="outputs">{"".join(cards)}</div></section>'
    )


def cover_poster(account: Mapping[str, Any], pictures: Mapping[str, Picture]
                 ) -> Picture | None:
    """The cover's picture when it is the poster of the account's one video, else ``None``.

    A video post's cover is the frame the platform shows before play.
    """
    cover = account.get("cover")
    videos = [m for m in account.get("media") or []
              if isinstance(m, dict) and m.get("kind") == "video"]
    if not isinstance(cover, dict) or len(videos) != 1:
        return None
    return pictures.get(str(cover.get("uri", "")))


def poster_for(pic: Picture | None, poster: Picture | None) -> Picture | None:
    """What a video's frame shows: the cover when there is one and the video is readable."""
    if poster is not None and poster.still and pic is not None and pic.still:
        return poster
    return pic


def _output(m: Mapping[str, Any], account_id: str, pictures: Mapping[str, Picture],
            zones: tuple[UiZone, ...], shown: dict[str, tuple[str, str]], *,
            poster: Picture | None = None) -> str:
    uri = str(m.get("uri", ""))
    kind = str(m.get("kind", "image"))
    pic = pictures.get(uri)
    still = poster_for(pic, poster)
    label = output_label(m)
    identity = str(m.get("sha256") or uri)
    where = f"{account_id} {label}"
    if identity in shown:
        anchor, first = shown[identity]
        frame = _frame(pic, m.get("width"), m.get("height"), REF_BOX_PX, zones)
        return (f'<figure class="ref">{frame}'
                f"<figcaption>{escape(label)}: the same file as "
                f'<a href="#{anchor}">{escape(first)}</a></figcaption></figure>')
    anchor = f"out-{len(shown)}"
    shown[identity] = (anchor, where)
    facts = caption_facts(m)
    actions = ", ".join(str(a) for a in m.get("actions") or [])
    return (
        f'<figure id="{anchor}" class="{escape(kind)}">'
        f'<div class="pair">{_frame(still, m.get("width"), m.get("height"), BOX_PX, zones)}'
        f'{_player(pic, m.get("width"), m.get("height"))}</div>'
        f"{_strip(pic, m.get('width'), m.get('height'))}{_path(pic)}"
        f"<figcaption>{SMALL_BADGE if below_recommended(m) else ''}"
        f"{escape(' · '.join(facts))}"
        + (f"<br>actions: {escape(actions)}" if actions else "")
        + f"<br>{_file_link(uri, m.get('bytes'))}{_list(list(m.get('warnings') or []), 'warn')}"
        "</figcaption></figure>"
    )


def _player(pic: Picture | None, width: Any, height: Any) -> str:
    """A ``<video>`` of the output itself (controls, metadata only until played), or why
    there is none."""
    if pic is not None and pic.note:
        return f'<p class="note">no player: {escape(pic.note)}</p>'
    if pic is None or not pic.video:
        return ""
    bw, bh = _box(width, height, BOX_PX)
    return (f'<video class="player" controls preload="metadata" width="{bw}" height="{bh}" '
            f'src="{escape(pic.video)}"></video>')


LOW_RESOLUTION = "low_resolution"  # the warning of an output below its surface's minimum size
SMALL_BADGE = '<span class="badge small">below the recommended size</span> '


def below_recommended(m: Mapping[str, Any]) -> bool:
    """The output is smaller than its surface recommends (the platform will upscale it)."""
    return any(isinstance(w, str) and w.startswith(LOW_RESOLUTION)
               for w in m.get("warnings") or [])


def output_label(m: Mapping[str, Any]) -> str:
    """``content[0].media[1]``, or ``cover``: which of the post's media an output is."""
    if m.get("kind") == "cover":
        return "cover"
    return f"content[{_int(m.get('content_index'))}].media[{_int(m.get('media_index'))}]"


def caption_facts(m: Mapping[str, Any]) -> list[str]:
    """What the caption says of an output: which medium, size, bytes, duration, cover time."""
    facts = [output_label(m), f"{_int(m.get('width'))}x{_int(m.get('height'))}",
             _size(m.get("bytes"))]
    if isinstance(m.get("duration_ms"), int):
        facts.append(f"{m['duration_ms'] / 1000:.1f} s")
    if isinstance(m.get("timestamp_ms"), int):
        facts.append(f"frame at {m['timestamp_ms']} ms")
    return facts


def _strip(pic: Picture | None, width: Any, height: Any) -> str:
    """The filmstrip: the five frames across the width of the poster and player above it."""
    if pic is None or not pic.strip:
        return ""
    bw, _ = _box(width, height, BOX_PX)
    across = bw * 2 + 4 if pic.video else bw
    frames = "".join(f'<img src="{escape(s)}" alt="">' for s in pic.strip)
    return f'<div class="strip" style="width:{across}px">{frames}</div>'


def _path(pic: Picture | None) -> str:
    """Smart framing's path: the window over the source per shot (see :mod:`.path`), and the
    shots in words."""
    if pic is None or not pic.path_text:
        return ""
    drawing = (f'<img src="{escape(pic.path)}" alt="the window shot by shot">' if pic.path
               else "")
    return (f'<div class="path">{drawing}where the delivered window sits in the source, shot '
            "by shot (grey: as far as the window reaches; the source may be wider)"
            f"{_list(list(pic.path_text), 'shot')}</div>")


def _file_link(uri: str, size: Any) -> str:
    """The file's name and size; its full URI (a server path) only as the link's target.

    Only ``file:`` and ``s3:`` URIs (what our storage writes) become links: never
    ``javascript:``, ``https:`` or other schemes a manifest could name.
    """
    parts = urlsplit(uri)
    name = PurePosixPath(unquote(parts.path)).name or uri
    sized = f"{name} ({_size(size)})" if size is not None else name
    text = f'<span class="file">{escape(sized)}</span>'
    if parts.scheme in ("file", "s3"):
        return f'<a href="{escape(uri)}">{text}</a>'
    return text
