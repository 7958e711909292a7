"""Settings: the one frozen configuration object, read from the environment in one place."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _env_int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as err:
        raise ConfigError(f"{name}: expected an integer, got {raw!r}") from err


def _env_seconds(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError as err:
        raise ConfigError(f"{name}: expected a number of seconds, got {raw!r}") from err
    if not value > 0 or value == float("inf"):
        raise ConfigError(f"{name}: must be a positive number of seconds, got {raw!r}")
    return value


def parse_networks(values: list[str] | tuple[str, ...]) -> tuple[IPNetwork, ...]:
    """Parse CIDR strings for the SSRF allow-list.

    Raises:
        ConfigError: a value is not a network.
    """
    nets: list[IPNetwork] = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            try:
                nets.append(ipaddress.ip_network(part, strict=False))
            except ValueError as err:
                raise ConfigError(f"allow-network: {part!r} is not a CIDR network") from err
    return tuple(nets)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a run needs besides the job; CLI flag > environment > default."""

    workdir: Path = field(default_factory=lambda: Path(os.environ.get("TMPDIR", "/tmp")))
    presets_dir: Path | None = None
    library: str | None = None
    # The one workspace this process serves (--workspace / CONFORM_WORKSPACE); a job naming
    # another is invalid. None: the job's workspace_id is trusted (single-tenant set-ups).
    workspace: str | None = None
    dest: str = "./conform-out"
    endpoint_url: str | None = None
    max_source_bytes: int = 4 * 1024**3 + 256 * 1024**2  # largest platform cap (4 GB) + slack
    http_connect_timeout_s: float = 10.0
    http_read_timeout_s: float = 30.0
    download_deadline_s: float = 900.0
    http_retries: int = 3
    max_redirects: int = 5
    allow_networks: tuple[IPNetwork, ...] = ()
    ffmpeg_timeout_s: float = 3600.0
    probe_timeout_s: float = 60.0
    job_deadline_s: float = 4 * 3600.0  # --job-deadline / CONFORM_JOB_DEADLINE_S
    max_image_pixels: int = 400_000_000  # 2x the largest phone sensor (200 MP); a bomb beyond
    max_animation_frames: int = 2000
    # Estimated peak memory of one image decode, and of all image decodes in flight in the
    # process at once (pipeline.budget): keeps any image job well under 1.5 GB.
    max_decode_bytes: int = 1_250_000_000
    # The largest video frame any platform takes (YouTube 8K; DCI 8K is 8192 wide): refused
    # from the headers, before a decode.
    max_video_side_px: int = 8192
    max_video_pixels: int = 8192 * 4320
    x264_preset: str = "medium"
    # Storage: re-make outputs that already exist; add a ``url`` next to each ``uri`` in the
    # manifest, from a public base URL mapped onto ``dest`` or as a presigned GET (S3 only).
    force: bool = False
    public_base_url: str | None = None
    presign_s: int | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``CONFORM_*`` variables.

        Raises:
            ConfigError: a variable has a value of the wrong type.
        """
        env = os.environ if environ is None else environ
        base = cls()
        values: dict[str, object] = {}
        if env.get("CONFORM_WORKDIR"):
            values["workdir"] = Path(env["CONFORM_WORKDIR"])
        if env.get("CONFORM_PRESETS_DIR"):
            values["presets_dir"] = Path(env["CONFORM_PRESETS_DIR"])
        if env.get("CONFORM_LIBRARY"):
            values["library"] = env["CONFORM_LIBRARY"]
        if env.get("CONFORM_WORKSPACE"):
            values["workspace"] = env["CONFORM_WORKSPACE"]
        if env.get("CONFORM_DEST"):
            values["dest"] = env["CONFORM_DEST"]
        if env.get("AWS_ENDPOINT_URL"):
            values["endpoint_url"] = env["AWS_ENDPOINT_URL"]
        if env.get("CONFORM_ALLOW_NETWORK"):
            values["allow_networks"] = parse_networks([env["CONFORM_ALLOW_NETWORK"]])
        if env.get("CONFORM_PUBLIC_BASE_URL"):
            values["public_base_url"] = env["CONFORM_PUBLIC_BASE_URL"]
        if env.get("CONFORM_PRESIGN_S"):
            values["presign_s"] = _env_int(env, "CONFORM_PRESIGN_S", 0)
        values["max_source_bytes"] = _env_int(env, "CONFORM_MAX_SOURCE_BYTES",
                                              base.max_source_bytes)
        values["ffmpeg_timeout_s"] = float(
            _env_int(env, "CONFORM_FFMPEG_TIMEOUT_S", int(base.ffmpeg_timeout_s))
        )
        values["job_deadline_s"] = _env_seconds(env, "CONFORM_JOB_DEADLINE_S",
                                                base.job_deadline_s)
        values["max_decode_bytes"] = _env_int(env, "CONFORM_MAX_DECODE_BYTES",
                                              base.max_decode_bytes)
        values["max_video_side_px"] = _env_int(env, "CONFORM_MAX_VIDEO_SIDE_PX",
                                               base.max_video_side_px)
        values["max_video_pixels"] = _env_int(env, "CONFORM_MAX_VIDEO_PIXELS",
                                              base.max_video_pixels)
        if env.get("CONFORM_X264_PRESET"):
            values["x264_preset"] = env["CONFORM_X264_PRESET"]
        return dataclasses.replace(base, **values)  # type: ignore[arg-type]

    def replace(self, **changes: object) -> Settings:
        """A copy with some fields changed (CLI flags that were given)."""
        given = {k: v for k, v in changes.items() if v is not None}
        return dataclasses.replace(self, **given)  # type: ignore[arg-type]
