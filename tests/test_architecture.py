"""The shape of the package: imports flow one way, with no cycle (not even inside a function)."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
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
    assert users - {"pipeline.worker"} == {"pipeline.storage.s3"}


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
