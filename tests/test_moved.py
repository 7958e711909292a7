"""The old module paths keep working after the top level was grouped by role (pipeline/moved.py).

Each old name is imported in a fresh interpreter: it is the very module of its new name (one
object, so a patch through either is seen by both), it warns once with the new path, and a name
that never existed is still not found.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pipeline.moved import MOVED

PACKAGE = Path(__file__).resolve().parent.parent / "pipeline"


def _python(script: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-W", "always::DeprecationWarning", "-c", script],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done


def test_every_old_path_is_the_module_of_its_new_path_with_a_warning() -> None:
    script = (
        "import importlib, sys, warnings\n"
        f"for old, new in {sorted(MOVED.items())!r}:\n"
        "    with warnings.catch_warnings(record=True) as seen:\n"
        "        warnings.simplefilter('always')\n"
        "        module = importlib.import_module(old)\n"
        "    assert module is importlib.import_module(new), old\n"
        "    assert sys.modules[old] is module, old\n"
        "    messages = [str(w.message) for w in seen if w.category is DeprecationWarning]\n"
        "    assert messages == [f'{old} moved to {new}; import it from there'], (old, messages)\n"
    )
    _python(script)


def test_names_are_taken_from_an_old_path_as_before() -> None:
    done = _python(
        "from pipeline.batch import process_batch\n"
        "from pipeline.worker import Worker\n"
        "from pipeline.verify import check_video\n"
        "import pipeline.subject\n"
        "from pipeline.fleet.batch import process_batch as new\n"
        "from pipeline.vision import subject\n"
        "assert process_batch is new and pipeline.subject is subject\n"
        "try:\n"
        "    import pipeline.never_was\n"
        "except ModuleNotFoundError:\n"
        "    print('not found')\n")
    assert done.stdout.strip() == "not found"
    assert "pipeline.batch moved to pipeline.fleet.batch" in done.stderr


def test_no_old_name_shadows_a_real_module() -> None:
    # An alias is asked only after the files: an old name that became a real module again
    # would be served by its file, and the alias would be a lie in the table.
    for old, new in MOVED.items():
        old_path = PACKAGE.parent.joinpath(*old.split("."))
        assert not old_path.with_suffix(".py").exists() and not old_path.is_dir(), old
        assert PACKAGE.parent.joinpath(*new.split(".")).with_suffix(".py").exists(), new


def test_the_promised_plan_names_are_still_exported() -> None:
    # plan's __all__ listed these before they moved to pipeline.geometry and pipeline.rules.
    _python("from pipeline.plan import (ANIMATION_PIXEL_BUDGET, Geometry, animation_fits,\n"
            "                           fit_geometry, round_even)\n"
            "from pipeline import geometry, rules\n"
            "assert Geometry is geometry.Geometry and animation_fits is rules.animation_fits\n")
