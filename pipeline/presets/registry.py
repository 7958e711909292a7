"""Finding the preset files and holding every platform by name: the registry.

Bundled files come first (the wheel's ``pipeline/_presets``, or ``<repo>/presets`` in a
source checkout); an operator's directory adds platforms or overrides bundled ones by file
name. Every file is validated when loaded, so a broken preset fails at start-up.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import PresetError
from .parse import load_preset_file
from .records import Preset, Variant

# pipeline/presets/registry.py -> <repo>/presets
REPO_PRESETS_DIR = Path(__file__).resolve().parent.parent.parent / "presets"


def bundled_presets_dir() -> Path:
    """Presets shipped with the package (wheel) or, in a source checkout, ``<repo>/presets``."""
    packaged = importlib.resources.files("pipeline") / "_presets"
    if packaged.is_dir():
        return Path(str(packaged))
    return REPO_PRESETS_DIR


@dataclass(frozen=True, slots=True)
class PresetRegistry:
    """All platforms by name, with aliases (``x`` → ``twitter``)."""

    presets: Mapping[str, Preset]
    aliases: Mapping[str, str]

    def get(self, name: str) -> Preset | None:
        """The preset for a platform name or alias, or None."""
        key = self.aliases.get(name.lower(), name.lower())
        return self.presets.get(key)

    def __iter__(self) -> Iterator[Preset]:
        return iter(self.presets[k] for k in sorted(self.presets))

    def version(self) -> str:
        """One string naming every platform's preset version (recorded in each manifest)."""
        return ",".join(f"{p.platform}@{p.version}" for p in self)

    def find_variant(self, variant_id: str) -> tuple[Preset, Variant] | None:
        """Look up ``platform-variant`` ids such as ``tiktok-video``."""
        for preset in self.presets.values():
            for variant in preset.variants.values():
                if variant.id == variant_id:
                    return preset, variant
        return None


def load_presets(extra_dir: Path | None = None) -> PresetRegistry:
    """Load the bundled presets, then files in ``extra_dir`` that add or override platforms.

    Raises:
        PresetError: any file is invalid (all files' problems are listed together).
    """
    files: dict[str, Path] = {}
    for folder in (bundled_presets_dir(), extra_dir):
        if folder is None:
            continue
        if not folder.is_dir():
            raise PresetError(f"presets directory not found: {folder}")
        for path in sorted(folder.glob("*.toml")):
            files[path.stem] = path
    problems: list[str] = []
    presets: dict[str, Preset] = {}
    for stem, path in sorted(files.items()):
        try:
            presets[stem] = load_preset_file(path)
        except PresetError as err:
            problems.append(err.message)
    if problems:
        raise PresetError("invalid presets: " + " | ".join(problems))
    if not presets:
        raise PresetError("no presets found")
    aliases: dict[str, str] = {}
    for preset in presets.values():
        for alias in preset.aliases:
            aliases[alias.lower()] = preset.platform
    return PresetRegistry(presets=presets, aliases=aliases)
