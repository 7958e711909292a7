"""The shape of the package: imports flow one way, with no cycle (not even inside a function)."""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "pipeline"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path) -> set[str]:
    """Every pipeline module ``name`` imports, anywhere in the file (functions included).

    Importing ``a.b.c`` also runs the packages ``a.b`` (and ``a``) first, so those count too,
    except the packages the importer itself lives in (they are already being imported).
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [module] + [f"{module}.{alias.name}" for alias in node.names]
        for target in targets:
            parts = target.split(".")
            for n in range(2, len(parts) + 1):
                candidate = ".".join(parts[:n])
                if candidate in MODULES and candidate != name and not (
                        name.startswith(candidate + ".") and candidate != target):
                    found.add(candidate)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


def test_import_graph_has_no_cycle() -> None:
    assert "pipeline.validate" in GRAPH and "pipeline.plan.jobplan" in GRAPH
    assert _cycles(GRAPH) == []


def test_cycle_finder_sees_imports_inside_functions() -> None:
    # The finder itself must catch the kind of cycle this package used to have: validate
    # importing plan inside a function while plan imported validate.
    source = "def f():\n    from .plan import animation_fits\n"
    tree_edges = _imports("pipeline.validate", _write(source))
    assert "pipeline.plan" in tree_edges
    graph = {**GRAPH, "pipeline.validate": tree_edges,
             "pipeline.plan": GRAPH["pipeline.plan"] | {"pipeline.validate"}}
    assert _cycles(graph)


def _write(source: str) -> Path:
    import tempfile

    path = Path(tempfile.mkdtemp()) / "validate.py"
    path.write_text(source, encoding="utf-8")
    return path


def test_validate_and_plan_share_types_from_models() -> None:
    # The planner takes what validation decided without importing the validator.
    assert "pipeline.validate" not in GRAPH["pipeline.plan.jobplan"]
    assert "pipeline.validate" not in GRAPH["pipeline.plan.covers"]
    models = importlib.import_module("pipeline.models")
    for name in ("Selected", "CoverChoice", "AccountCheck", "Probed"):
        assert hasattr(models, name)


def test_validation_reads_the_platform_rules_not_the_planner() -> None:
    # How an animated image travels (kept, a video, a still) is a platform rule: validation
    # asks rules.py, the one rule list, and never imports the planner.
    validate = {name: deps for name, deps in GRAPH.items()
                if name == "pipeline.validate" or name.startswith("pipeline.validate.")}
    assert "pipeline.validate.media" in validate
    assert {name: sorted(d for d in deps if d.startswith("pipeline.plan"))
            for name, deps in validate.items()} == {name: [] for name in validate}
    assert "pipeline.rules" in GRAPH["pipeline.validate.media"]
    assert not {d for d in GRAPH["pipeline.rules"] if d.startswith("pipeline.plan")}


# --------------------------------------------------------------------------- rooms

#: The three packages by role, and who may import each. The fleet runs many jobs and only the
#: commands (and the root's lazy library names) start it; making outputs is handed the plan
#: by the runner, and the manifest reads the stored records it makes; vision reads pixels for
#: the runner's framing step, the engines' crop paths, the outputs' checks and the preview sheet.
ROOM_READERS = {
    "pipeline.fleet": {"pipeline", "pipeline.cli"},
    "pipeline.outputs": {"pipeline.runner", "pipeline.manifest"},
    "pipeline.vision": {"pipeline.outputs", "pipeline.runner", "pipeline.report",
                        "pipeline.video.graph"},
}
#: What each room must never import: a room below another never reaches up into it.
ROOM_FORBIDDEN = {
    "pipeline.fleet": {"pipeline.cli"},
    "pipeline.outputs": {"pipeline.fleet", "pipeline.runner", "pipeline.examine", "pipeline.cli",
                         "pipeline.report"},
    "pipeline.vision": {"pipeline.fleet", "pipeline.outputs", "pipeline.runner", "pipeline.cli",
                        "pipeline.report", "pipeline.video", "pipeline.storage",
                        "pipeline.manifest", "pipeline.ingest"},
}
#: The shared leaves at the top: every room may use them, they use no room.
LEAVES = ("pipeline.errors", "pipeline.models", "pipeline.settings", "pipeline.ffmpeg",
          "pipeline.processes", "pipeline.version", "pipeline.files", "pipeline.workdir",
          "pipeline.deadline", "pipeline.budget", "pipeline.geometry", "pipeline.rules",
          "pipeline.bmff", "pipeline.presets", "pipeline.captions", "pipeline.reframes",
          "pipeline.moved")


def _within(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _strangers(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Per room, the modules outside it that import it without being one of its readers."""
    found: dict[str, set[str]] = {}
    for room, readers in ROOM_READERS.items():
        importers = {name for name, deps in graph.items()
                     if not _within(name, [room]) and any(_within(d, [room]) for d in deps)}
        if strangers := {name for name in importers
                         if not (name in readers or _within(name, readers - {"pipeline"}))}:
            found[room] = strangers
    return found


def _reaching_up(graph: dict[str, set[str]]) -> dict[str, list[str]]:
    """Modules of a room that import what their room must not."""
    reaching = {name: sorted(d for d in deps if _within(d, ROOM_FORBIDDEN[room]))
                for room in ROOM_FORBIDDEN for name, deps in graph.items()
                if _within(name, [room])}
    return {name: found for name, found in reaching.items() if found}


def _leaves_in_rooms(graph: dict[str, set[str]]) -> dict[str, list[str]]:
    """Shared leaves that import a room."""
    rooms = list(ROOM_READERS)
    leaves = {name: sorted(d for d in deps if _within(d, rooms))
              for name, deps in graph.items() if _within(name, LEAVES)}
    return {name: found for name, found in leaves.items() if found}


def test_each_room_is_imported_only_by_its_readers() -> None:
    assert set(ROOM_READERS) <= set(GRAPH)
    assert _strangers(GRAPH) == {}


def test_the_manifest_reads_only_the_stored_records_of_outputs() -> None:
    assert {d for d in GRAPH["pipeline.manifest"] if _within(d, ["pipeline.outputs"])} == {
        "pipeline.outputs", "pipeline.outputs.stored"}


def test_no_room_reaches_up() -> None:
    assert _reaching_up(GRAPH) == {}


def test_the_shared_leaves_use_no_room() -> None:
    assert "pipeline.geometry" in GRAPH and "pipeline.rules" in GRAPH
    assert _leaves_in_rooms(GRAPH) == {}


def test_the_shared_leaves_use_only_leaves() -> None:
    # A leaf that imported a stage would drag the stage into every room that uses the leaf.
    beyond = {name: sorted(d for d in deps if not _within(d, LEAVES))
              for name, deps in GRAPH.items() if _within(name, LEAVES)}
    assert {name: found for name, found in beyond.items() if found} == {}


def test_vision_libraries_live_in_vision_and_metrics_in_the_fleet() -> None:
    # OpenCV (a large import, models inside the wheel) is vision's alone; the Prometheus
    # client is the fleet's metrics module's alone.
    users = {lib: {name for name, path in MODULES.items() if lib in _third_party_imports(path)}
             for lib in ("cv2", "prometheus_client")}
    assert users["cv2"] and all(_within(n, ["pipeline.vision"]) for n in users["cv2"])
    assert users["prometheus_client"] == {"pipeline.fleet.metrics"}


def test_every_module_a_job_process_preloads_exists() -> None:
    # The forkserver skips a preload it cannot import without a word (and each job then pays
    # the import): a module renamed without its PRELOAD entry would go unnoticed.
    from pipeline.fleet.childprocess import PRELOAD

    ours = [name for name in PRELOAD if name.split(".")[0] == "pipeline"]
    assert ours and [name for name in ours if name not in MODULES] == []


def test_the_room_rules_catch_each_kind_of_breach() -> None:
    # The rules must see a breach when there is one: a stage starting the fleet, vision
    # reaching up into outputs, a leaf importing vision. A name that only starts like a
    # room ("pipeline.visionary") is not in it.
    breached = {**GRAPH, "pipeline.ingest": GRAPH["pipeline.ingest"] | {"pipeline.fleet.batch"},
                "pipeline.vision.cuts": {"pipeline.outputs.stored"},
                "pipeline.errors": {"pipeline.vision.subject"}}
    assert _strangers(breached) == {"pipeline.fleet": {"pipeline.ingest"},
                                    "pipeline.outputs": {"pipeline.vision.cuts"},
                                    "pipeline.vision": {"pipeline.errors"}}
    assert _reaching_up(breached) == {"pipeline.vision.cuts": ["pipeline.outputs.stored"]}
    assert _leaves_in_rooms(breached) == {"pipeline.errors": ["pipeline.vision.subject"]}
    assert not _within("pipeline.visionary", ["pipeline.vision"])


def test_the_top_level_holds_stages_and_leaves_only() -> None:
    # The flat top level was 32 modules; the rooms took the fleet, the outputs and vision.
    top = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__"))
    assert not {"batch", "worker", "produce", "rendition", "frames", "framing", "subject",
                "jobrun", "stored", "verify"} & set(top)
    assert len(top) <= 23, top  # 22 and moved.py, the old paths kept


def test_each_module_imports_alone() -> None:
    # Each module is imported into a package freshly emptied of pipeline modules: an import
    # order that only works because another module happened to be loaded first fails here.
    names = [m for m in sorted(MODULES) if m != "pipeline.__main__"]
    script = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    for loaded in [m for m in sys.modules if m.split('.')[0] == 'pipeline']:\n"
        "        del sys.modules[loaded]\n"
        "    importlib.import_module(name)\n"
    )
    _python(script)


def _python(script: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a fresh interpreter (a clean module table) and expect success."""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done


def test_every_public_name_exists() -> None:
    # In a child process: resolving every name imports the heavy modules (Pillow, OpenCV,
    # boto3), which would grow this test process (tests/test_decode_budget.py measures the
    # peak memory of processes it starts, and a child starts out the size of its parent).
    script = ("import pipeline\n"
              "assert len(set(pipeline.__all__)) == len(pipeline.__all__)\n"
              "missing = [n for n in pipeline.__all__ if getattr(pipeline, n, None) is None]\n"
              "assert not missing, missing\n")
    _python(script)


def test_import_pipeline_stays_cheap() -> None:
    # `import pipeline` (and so `conform --help`) loads no cloud SDK, array or vision library:
    # the heavy modules are imported on first use of the name that needs them.
    script = ("import sys, pipeline\n"
              "heavy = [m for m in ('boto3', 'botocore', 'numpy', 'cv2', 'PIL')"
              " if m in sys.modules]\n"
              "print(','.join(heavy))\n")
    done = _python(script)
    assert done.stdout.strip() == ""


def _third_party_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_s3_is_called_from_storage_only() -> None:
    # The worker's SQS client is the only other AWS user (a queue, not storage).
    aws = {"boto3", "botocore", "s3transfer"}
    users = {name for name, path in MODULES.items() if _third_party_imports(path) & aws}
    assert users - {"pipeline.fleet.worker"} == {"pipeline.storage.s3"}


def test_ffmpeg_argv_heads_and_input_lock_down_live_in_ffmpeg_py() -> None:
    # The binary, its banner/stdin flags, the protocol allow-list and the demuxer table are
    # spelled in one module; the others build only their own options.
    spelled = ("-hide_banner", "protocol_whitelist", "ffmpeg_exe(", "ffprobe_exe(",
               "DEMUXERS = ")
    for name, path in MODULES.items():
        if name == "pipeline.ffmpeg":
            continue
        text = path.read_text(encoding="utf-8")
        assert not [s for s in spelled if s in text], name


def _root_names_imported(path: Path, name: str) -> list[str]:
    """Names a module takes from the package root ``pipeline`` itself (not its submodules)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.ImportFrom):
            continue
        depth = len(package.split(".")) - node.level + 1 if node.level else 0
        from_root = (node.module == "pipeline" and not node.level) or (
            node.level and depth == 1 and node.module is None)
        if from_root:
            found += [a.name for a in node.names if f"pipeline.{a.name}" not in MODULES]
    return found


def test_no_module_reads_from_the_package_root() -> None:
    # The root's lazy exports reach half the pipeline; a module that needs the version (or
    # anything else) imports the leaf that defines it, so a low-level import stays low-level.
    offenders = {name: names for name, path in MODULES.items()
                 if name not in ("pipeline", "pipeline.__main__")
                 and (names := _root_names_imported(path, name))}
    assert offenders == {}


def test_root_import_finder_sees_a_version_import() -> None:
    path = _write("from .. import __version__\nfrom .. import probe\n")
    assert _root_names_imported(path, "pipeline.netguard.client") == ["__version__"]


# --------------------------------------------------------------------------- private names


def _resolve(name: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute module an ``from ... import`` in module ``name`` (at ``path``) reads."""
    if not node.level:
        return node.module or ""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    base = package.split(".")[: len(package.split(".")) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _private_imports(name: str, path: Path) -> list[str]:
    """``module._name`` for every private name module ``name`` takes from another module:
    imported (``from .base import _check_key``) or read off an imported module
    (``from . import probe`` ... ``probe._limits``).

    Private means one leading underscore (``_check_key``, ``_MiB``); dunders such as
    ``__version__`` are public by convention. A name is private to the module that defines
    it, so a sibling in the same package reading it counts too.
    """
    found: list[str] = []
    tree = ast.parse(path.read_text(encoding="utf-8"))
    aliases: dict[str, str] = {}  # local name -> the pipeline module it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = _resolve(name, path, node)
            if module.split(".")[0] != "pipeline" or module == name:
                continue
            found += [f"{module}.{a.name}" for a in node.names if _is_private(a.name)]
            aliases |= {a.asname or a.name: f"{module}.{a.name}" for a in node.names
                        if f"{module}.{a.name}" in MODULES}
        elif isinstance(node, ast.Import):
            aliases |= {a.asname: a.name for a in node.names if a.asname and a.name in MODULES}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in aliases and _is_private(node.attr)
                and aliases[node.value.id] != name):
            found.append(f"{aliases[node.value.id]}.{node.attr}")
    return found


def test_no_module_imports_another_modules_private_name() -> None:
    offenders = {name: names for name, path in MODULES.items()
                 if (names := _private_imports(name, path))}
    assert offenders == {}


def test_private_import_finder_sees_relative_and_absolute_imports() -> None:
    source = ("from .base import IMMUTABLE, _check_key\nfrom pipeline.storage.local import "
              "_MiB\nfrom .. import __version__\nfrom . import keys\nkeys._PRESIGN_MAX_S\n"
              "keys.MIB\n")
    path = _write(source)
    assert _private_imports("pipeline.storage.s3", path) == [
        "pipeline.storage.base._check_key", "pipeline.storage.local._MiB",
        "pipeline.storage.keys._PRESIGN_MAX_S"]


# --------------------------------------------------------------------------- __all__

PACKAGES = sorted(name for name, path in MODULES.items() if path.name == "__init__.py")


#: Everything that may import a package: its siblings, the tests and the bench scripts.
READERS = {**MODULES, **{".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts): p
                         for folder in ("tests", "bench")
                         for p in sorted((PACKAGE.parent / folder).rglob("*.py"))}}


def _names_taken_from(package: str) -> dict[str, set[str]]:
    """Names modules outside ``package`` import from it (``from package import X``), each with
    the modules that do; submodules (``from pipeline import probe``) are not names."""
    taken: dict[str, set[str]] = {}
    for name, path in READERS.items():
        if name == package or name.startswith(package + "."):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and _resolve(name, path, node) == package:
                for alias in node.names:
                    if f"{package}.{alias.name}" not in MODULES:
                        taken.setdefault(alias.name, set()).add(name)
    return taken


def test_every_package_declares_what_it_exposes() -> None:
    assert "pipeline.storage" in PACKAGES and "pipeline.plan" in PACKAGES
    for package in PACKAGES:
        assert "__all__" in MODULES[package].read_text(encoding="utf-8"), package


def test_what_other_modules_import_from_a_package_is_in_its_all() -> None:
    # The rule: a package's __all__ is its public surface. Every name another module (outside
    # the package: its siblings, tests, bench) takes from the package itself must be listed
    # there, so nothing relied on can drop out of it unnoticed; and nothing private is listed.
    # (Names the package's own modules share stay internal.)
    missing: dict[str, list[str]] = {}
    script = ("import importlib, json\n"
              f"print(json.dumps({{p: importlib.import_module(p).__all__ "
              f"for p in {PACKAGES!r}}}))\n")
    declared = json.loads(_python(script).stdout)
    for package in PACKAGES:
        assert not [n for n in declared[package]
                    if n.startswith("_") and not n.startswith("__")], package
        taken = _names_taken_from(package)
        if absent := sorted(n for n in taken if n not in declared[package]):
            missing[package] = [f"{n} (by {', '.join(sorted(taken[n]))})" for n in absent]
    assert missing == {}


def test_every_name_in_each_packages_all_exists() -> None:
    # Every package, not only the root: a stale entry in __all__ breaks `from p import *` and
    # promises a name that is gone. Resolved in a child (lazy names load heavy modules).
    script = (
        "import importlib\n"
        f"for package in {PACKAGES!r}:\n"
        "    module = importlib.import_module(package)\n"
        "    names = list(module.__all__)\n"
        "    assert len(set(names)) == len(names), (package, 'duplicates')\n"
        "    missing = [n for n in names if not hasattr(module, n)]\n"
        "    assert not missing, (package, missing)\n"
    )
    _python(script)


def test_all_rule_sees_a_name_taken_from_outside(tmp_path: Path) -> None:
    reader = tmp_path / "reader.py"
    reader.write_text("from pipeline.storage import LocalStorage, local\n", encoding="utf-8")
    READERS["tests.reader_probe"] = reader
    try:
        taken = _names_taken_from("pipeline.storage")
    finally:
        del READERS["tests.reader_probe"]
    assert "tests.reader_probe" in taken["LocalStorage"] and "local" not in taken
