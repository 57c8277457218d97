"""The architecture stays visible: no engine switch outside mileage/engines/, nothing outside an engine's folder
knows its keys, flags, pins or imports, the library has no import cycle (lazy imports included), and the batch
identity is computed in one place."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from mileage.batch import BatchIdentityError, batch_identity
from mileage.config import ConfigError, fill_batch_identity
from mileage.engines.local.grpo import LocalEngineError, batch_layout
from mileage.engines.miles.argv import MilesConfigError, batch_identity as miles_batch_identity

REPO = Path(__file__).resolve().parents[1]
ENGINE_NAMES = ("local", "miles")
# `engine == "local"`, `["engine"] != 'miles'`, `engine in ("local", ...)`: a question about which engine it is.
SWITCH = re.compile(r"""engine["']?\]?\s*(==|!=|\bin\b|\bnot in\b)\s*\(?["'](local|miles)["']""")


def outside_engines():
    for pattern in ("mileage/**/*.py", "rules/*.smk", "scripts/*.py", "Snakefile"):
        for file in REPO.glob(pattern):
            if "engines" not in file.relative_to(REPO).parts:
                yield file


def test_no_engine_switch_outside_the_engines():
    found = [f"{f.relative_to(REPO)}:{n}" for f in outside_engines()
             for n, line in enumerate(f.read_text().splitlines(), 1) if SWITCH.search(line)]
    assert not found, f"engine switches outside mileage/engines/: {found}"


def test_the_switch_pattern_catches_a_switch():
    assert SWITCH.search('if exp["engine"] == "miles":') and SWITCH.search("engine != 'local'")


def test_the_schema_offers_exactly_the_registered_engines():
    """An engine is its folder plus one registry line (mileage.engines) and its name in the schema's enum."""
    import yaml

    from mileage import engines

    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text(encoding="utf-8"))
    assert sorted(schema["$defs"]["experiment"]["properties"]["engine"]["enum"]) == sorted(engines.ENGINE_NAMES)
    for name in engines.ENGINE_NAMES:
        assert engines.get_engine(name).name == name


def test_no_rule_has_per_engine_twins():
    rules = re.findall(r"^rule (\w+):", "".join(f.read_text() for f in (REPO / "rules").glob("*.smk")), re.M)
    assert not [r for r in rules if r.endswith(tuple(f"_{e}" for e in ENGINE_NAMES))], rules


def test_config_never_imports_an_engines_internals_and_metrics_never_import_report():
    assert not re.search(r"mileage\.engines\.(miles|local)", (REPO / "mileage" / "config.py").read_text())
    for file in (REPO / "mileage" / "metrics").glob("*.py"):
        assert "mileage.report" not in file.read_text(), file


def test_no_engine_imports_a_stage():
    for file in (REPO / "mileage" / "engines").rglob("*.py"):
        assert "mileage.stages" not in file.read_text(), file


# ---- what only mileage/engines/miles/ knows ------------------------------------------------------------------------

def _docstrings(tree: ast.AST) -> set[int]:
    return {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}


def _own_cli_options(tree: ast.AST) -> set[int]:
    """String constants given to argparse's add_argument: mileage's own command-line options."""
    return {id(arg) for node in ast.walk(tree) if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute) and node.func.attr == "add_argument"
            for arg in node.args if isinstance(arg, ast.Constant)}


def miles_knowledge(path: Path, source: str) -> list[str]:
    """Where `source` names a miles config key (`miles.<key>`, `x["miles"]`), a flag of miles' train.py, a miles
    stack pin (a value or a name of mileage.engines.miles.pins) or imports miles (or mileage.engines.miles).
    Docstrings and comments may talk about miles; code may not know it."""
    from mileage.engines.miles import pins as miles_pins
    from mileage.engines.miles.flags import known_flags

    flags = known_flags("megatron") | known_flags("fsdp")
    pin_names = {name for name in vars(miles_pins) if name.isupper()}
    pin_values = {value for name, value in vars(miles_pins).items() if name.isupper() and isinstance(value, str)}
    tree = ast.parse(source)
    prose, options = _docstrings(tree), _own_cli_options(tree)
    found = []
    for node in ast.walk(tree):
        at = f"{path}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [f"{at} imports {m}" for m in modules
                      if m.split(".")[0] == "miles" or m.startswith("mileage.engines.miles")]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in prose | options:
            found += [f"{at} key {k}" for k in re.findall(r"(?<![\w/])miles\.[a-z_]+", node.value)]
            found += [f"{at} flag {f}" for f in re.findall(r"(?<![\w-])--[a-z0-9][a-z0-9-]*", node.value)
                      if f in flags]
            found += [f"{at} pin {node.value!r}"] if node.value in pin_values else []
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and node.slice.value == "miles":
            found.append(f"{at} key miles (a subscript)")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" \
                and node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value == "miles":
            found.append(f"{at} key miles (.get)")
        elif isinstance(node, ast.Name) and node.id in pin_names or \
                isinstance(node, ast.Attribute) and node.attr in pin_names:
            found.append(f"{at} pin {getattr(node, 'id', getattr(node, 'attr', ''))}")
    return found


def test_no_module_outside_the_engines_knows_miles():
    found = []
    for file in sorted((REPO / "mileage").rglob("*.py")):
        if "engines" not in file.relative_to(REPO).parts:
            found += miles_knowledge(file.relative_to(REPO), file.read_text(encoding="utf-8"))
    assert not found, "miles knowledge outside mileage/engines/:\n" + "\n".join(found)


@pytest.mark.parametrize("line", [
    'exp["miles"]["extra_args"]', 'KEYS = ("miles.miles_dir",)', 'argv = ["--rm-type", "deepscaler"]',
    "from miles.utils.arguments import parse_args", "import mileage.engines.miles.pins",
    'IMAGE = "docker://radixark/miles:v0.1.0-cu12"', "hint = pins.SGLANG_COMMIT", 'params.get("miles")',
])
def test_the_scan_catches_miles_knowledge(line):
    assert miles_knowledge(Path("x.py"), line)


def test_the_scan_lets_prose_and_our_own_options_be():
    source = '"""Runs miles (miles.extra_args, --rm-type)."""\nparser.add_argument("--config")\n# miles.python\n'
    assert not miles_knowledge(Path("x.py"), source)


def test_no_engine_imports_the_config_loader():
    """Engines raise mileage.errors.ConfigError; mileage.config asks the engines, never the reverse."""
    for file in (REPO / "mileage" / "engines").rglob("*.py"):
        tree = ast.parse(file.read_text(encoding="utf-8"))
        modules = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        modules += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
        modules += [f"{n.module}.{a.name}" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
                    for a in n.names]
        assert "mileage.config" not in modules, f"{file.relative_to(REPO)} imports mileage.config"


# ---- no import cycle ------------------------------------------------------------------------------------------------

def import_graph(root: Path = REPO / "mileage") -> dict[str, set[str]]:
    """module -> the mileage modules it imports, at any depth of its code: a lazy import inside a function is an
    edge too, so no cycle hides behind one."""
    files = {}
    for file in root.rglob("*.py"):
        parts = list(file.relative_to(root.parent).with_suffix("").parts)
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = file
    graph: dict[str, set[str]] = {}
    for module, file in files.items():
        package = module if file.name == "__init__.py" else module.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                edges |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base]).strip(".")
                edges |= {f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names}
        graph[module] = {m for m in edges if m in files and m != module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_library_has_no_import_cycle():
    assert not cycles(import_graph()), f"import cycles (lazy imports count): {cycles(import_graph())}"


def test_the_cycle_finder_finds_a_lazy_cycle(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "a.py").write_text("from pkg.b import f\n")
    (tmp_path / "pkg" / "b.py").write_text("def f():\n    from pkg import a\n")
    assert cycles(import_graph(tmp_path / "pkg")) == [["pkg.a", "pkg.b"]]


@pytest.mark.parametrize("rollout, train", [
    ({"rollout_batch_size": 8, "n_samples_per_prompt": 8}, {"global_batch_size": None, "num_steps_per_rollout": 2}),
    ({"rollout_batch_size": 8, "n_samples_per_prompt": 8}, {"global_batch_size": 16, "num_steps_per_rollout": None}),
    ({"rollout_batch_size": 8, "n_samples_per_prompt": 8}, {"global_batch_size": 48, "num_steps_per_rollout": None}),
    ({"rollout_batch_size": 8, "n_samples_per_prompt": 8}, {"global_batch_size": 32, "num_steps_per_rollout": 1}),
])
def test_config_argv_and_the_local_engine_agree_on_the_batch_identity(rollout, train):
    try:
        expected = batch_identity(rollout, train)
    except BatchIdentityError as err:
        with pytest.raises(ConfigError, match=re.escape(err.key)):
            fill_batch_identity(rollout, train, "x")
        with pytest.raises(MilesConfigError, match=re.escape(err.key)):
            miles_batch_identity({"rollout": rollout, "train": train})
        return
    assert fill_batch_identity(rollout, train, "x") == expected
    assert miles_batch_identity({"rollout": rollout, "train": train}) == expected
    gbs, steps = expected
    filled = {**train, "global_batch_size": gbs, "num_steps_per_rollout": steps, "micro_batch_size": 1}
    assert batch_layout(rollout, filled)["steps_per_rollout"] == steps
    with pytest.raises(LocalEngineError):
        batch_layout(rollout, {**filled, "num_steps_per_rollout": steps + 1})
