"""The packages import in one direction (docs/architecture.md draws it): a module imports only from its own layer
or the layers below, never from a layer above, and the feature packages of one tier never import each other.
No import cycle between modules. Read from the source with `ast` (imports under `if TYPE_CHECKING:` are type
hints, not imports)."""

import ast
from pathlib import Path

import pytest

from conftest import REPO

PACKAGE = REPO / "finephrase"

# low to high; a module belongs to the longest prefix that names it
LAYERS = [
    ("base", ["finephrase", "finephrase.errors", "finephrase.formatting", "finephrase.argtypes"]),
    ("process, store", ["finephrase.process", "finephrase.store"]),
    ("prompts, serving, quality", ["finephrase.prompts", "finephrase.serving", "finephrase.quality",
                                   "finephrase.contamination", "finephrase.scoring", "finephrase.project.bundled"]),
    ("monitor (a task's own)", ["finephrase.monitor.progress", "finephrase.monitor.occupancy",
                                "finephrase.monitor.engine_speed"]),
    ("pipeline", ["finephrase.pipeline"]),
    ("run", ["finephrase.run"]),
    ("readers of a run folder", ["finephrase.verify", "finephrase.monitor.status"]),
    ("commands that build on them", ["finephrase.card", "finephrase.compact"]),
    ("commands", ["finephrase.publish", "finephrase.dedup", "finephrase.decontam", "finephrase.score",
                  "finephrase.mix", "finephrase.sweep",
                  "finephrase.monitor.report", "finephrase.monitor.cost_plan", "finephrase.quality.recheck",
                  "finephrase.project.scaffold"]),
    ("cli", ["finephrase.cli"]),
]
FEATURE_LAYERS = {"readers of a run folder", "commands that build on them", "commands"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or \
        (isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, modules: set[str]) -> set[str]:
    found = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("finephrase"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in modules else node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("finephrase"))
        stack.extend(ast.iter_child_nodes(node))
    return {m for m in found if m in modules}


def import_graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    names = set(files)
    return {m: _imports(ast.parse(p.read_text()), names) - {m} for m, p in files.items()}


def layer_of(module: str) -> tuple[int, str, str]:
    """(layer index, layer name, the prefix that placed it)."""
    best = None
    for i, (name, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > len(best[2])):
                best = (i, name, prefix)
    assert best is not None, f"{module} is in no layer: add it to LAYERS (and to docs/architecture.md)"
    return best


def test_every_import_points_down_and_features_of_a_tier_do_not_reach_into_each_other():
    wrong = []
    for module, deps in sorted(import_graph().items()):
        mine = layer_of(module)
        for dep in sorted(deps):
            theirs = layer_of(dep)
            if theirs[0] > mine[0]:
                wrong.append(f"{module} ({mine[1]}) imports {dep} ({theirs[1]}), a layer above")
            elif theirs[0] == mine[0] and mine[1] in FEATURE_LAYERS and theirs[2] != mine[2]:
                wrong.append(f"{module} imports {dep}: two packages of the tier '{mine[1]}'")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle():
    graph = import_graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(v: str):  # Tarjan's strongly connected components (iterative would be longer; the graph is small)
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, cycles


def test_the_layers_name_every_package():
    """A new package must be placed (this fails before the direction test could pass it silently)."""
    for module in import_graph():
        layer_of(module)


def test_modules_and_functions_stay_small():
    """No module over 400 lines, no function over 60 (docstring included) in the library."""
    big_modules, big_functions = [], []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text()
        rel = path.relative_to(REPO)
        if text.count("\n") > 400:
            big_modules.append(f"{rel}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > 60:
                    big_functions.append(f"{rel}:{node.lineno} {node.name}: {n} lines")
    assert not big_modules and not big_functions, "\n".join(big_modules + big_functions)


def test_one_module_owns_the_document_metadata_keys():
    """Every `_fp_*` metadata key is spelled in finephrase/store/metadata.py only; the others use its names."""
    owner = PACKAGE / "store" / "metadata.py"
    spelled = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == owner:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("_fp_") \
                    and "\n" not in node.value:
                spelled.append(f"{path.relative_to(REPO)}:{node.lineno} {node.value!r}")
    assert not spelled, "\n".join(spelled)


def test_the_manifest_is_parsed_in_one_place():
    """store/layout.py's read_manifest parses DIR/manifest.json; everything else calls it (or load_manifest)."""
    import re

    bare = re.compile(r"orjson\.loads\(\(?[^)]*(MANIFEST|manifest\.json)")
    found = [f"{p.relative_to(REPO)}:{i}" for p in sorted(PACKAGE.rglob("*.py")) if p.name != "layout.py"
             for i, line in enumerate(p.read_text().splitlines(), 1) if bare.search(line)]
    assert not found, found


def test_tests_mirror_the_packages():
    """Every test file sits in the folder of a finephrase package (tests/store/ for finephrase/store/, ...) or in
    tests/repo/ (the repository as a whole); only helper modules stay at tests/ itself."""
    tests = REPO / "tests"
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()} | {"repo"}
    misplaced = sorted(str(p.relative_to(tests)) for p in tests.rglob("test_*.py")
                       if p.parent == tests or p.relative_to(tests).parts[0] not in packages)
    assert not misplaced, misplaced


def test_no_step_is_changed_after_it_is_built():
    """The run connects its own steps by building them again (`resuming`, `Rephrase.for_run`): nothing in the
    pipeline or run packages copies a step and sets its attributes (copy.copy, setattr), and a Rephrase's settings
    are a frozen object that cannot be assigned to."""
    import dataclasses

    from finephrase.pipeline import Endpoint, Rephrase, Sampling, load_prompts

    found = []
    for package in ("pipeline", "run"):
        for path in sorted((PACKAGE / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call) and ast.unparse(node.func) in ("setattr", "copy.copy", "copy"):
                    found.append(f"{path.relative_to(REPO)}:{node.lineno} {ast.unparse(node.func)}")
    assert not found, found
    step = Rephrase(load_prompts("faq"), Endpoint("http://127.0.0.1:9", "m"), Sampling(), max_concurrency=8)
    with pytest.raises(dataclasses.FrozenInstanceError):
        step.settings.max_concurrency = 9
    run_copy = step.for_run(chunk_size=5, resume_dir="/x")
    assert (run_copy.settings.chunk_size, step.settings.chunk_size) == (5, None) and run_copy is not step
    assert run_copy.settings == dataclasses.replace(step.settings, chunk_size=5, resume_dir="/x")


def test_tests_share_helpers_from_helper_modules_not_from_each_other():
    """A test file imports helpers (conftest, fakeserver, synthetic_runs, hub_client, ...), never another test
    file, and never edits sys.path (benchmarks/ is on pytest's pythonpath)."""
    offenders = []
    for path in sorted((REPO / "tests").rglob("test_*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("test_"):
                offenders.append(f"{path.name} imports {node.module}")
            if isinstance(node, ast.Import) and any(a.name.startswith("test_") for a in node.names):
                offenders.append(f"{path.name} imports a test file")
        if any(isinstance(node, ast.Call) and ast.unparse(node.func) in ("sys.path.insert", "sys.path.append")
               for node in ast.walk(tree)):  # (a script a test writes and runs may set its own path)
            offenders.append(f"{path.name} edits sys.path")
    assert not offenders, offenders
