"""Shared fixtures. Topic-specific fixtures live in tests/support/ and are imported by tests."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from pipeline.presets import PresetRegistry, load_presets

pytest_plugins = ["tests.support.httpserver", "tests.support.s3server", "tests.support.media",
                  "tests.support.jobkit"]

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO.parent / "shared" / "corpus"


# Modules of whole-pipeline runs (every test encodes, renders or starts services): marked
# ``slow``, so ``scripts/test --quick`` (``-m "not slow"``) leaves them to the full suite, which
# CI runs. Single slow tests elsewhere carry ``@pytest.mark.slow`` themselves.
SLOW_MODULES = frozenset({
    "test_animation_memory", "test_batch_processes", "test_bench_smoke", "test_bench_stages",
    "test_bmff_limits", "test_camera", "test_captions_burn", "test_captions_run",
    "test_container", "test_cover_subject", "test_decode_budget", "test_e2e_run",
    "test_fidelity", "test_fidelity_timing", "test_framing", "test_framing_footage",
    "test_framing_limits", "test_image_framing", "test_image_memory", "test_image_shapes",
    "test_job_logs", "test_report", "test_report_path", "test_report_sheet",
    "test_runner_storage", "test_sample_manifest", "test_smuggled_boxes",
    "test_tenant_isolation", "test_tonemap_once", "test_upload_deadline", "test_video",
    "test_video_decode_proof", "test_video_frames", "test_video_low_resolution",
    "test_video_quality", "test_worker", "test_worker_metrics", "test_worker_processes",
})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the slow modules; skip ffmpeg tests where ffmpeg is missing, unless CI demands it."""
    for item in items:
        if item.path.stem in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
    if shutil.which("ffmpeg") and shutil.which("ffprobe"):
        return
    if os.environ.get("CONFORM_REQUIRE_FFMPEG"):
        raise pytest.UsageError("CONFORM_REQUIRE_FFMPEG is set but ffmpeg/ffprobe are missing")
    skip = pytest.mark.skip(reason="ffmpeg/ffprobe not installed")
    for item in items:
        if "ffmpeg" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The shared real-world media corpus (../shared/corpus)."""
    if not CORPUS.is_dir():
        pytest.skip("shared corpus not present")
    return CORPUS


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A media library for the batch, worker and trust tests: ``photo-0.jpg`` to ``photo-9.jpg``
    and ``clip.mp4`` (see :func:`tests.support.jobkit.make_library`); one per test module,
    which may add files to it. Modules that need another library define their own."""
    # Imported here: tests.support.jobkit is a plugin (pytest_plugins), and importing it
    # before pytest registers it would keep its asserts from being rewritten.
    from tests.support.jobkit import make_library

    return make_library(tmp_path_factory.mktemp("library"), images=10)


@pytest.fixture(scope="module")
def presets() -> PresetRegistry:
    """The bundled presets, loaded once per test module."""
    return load_presets()
