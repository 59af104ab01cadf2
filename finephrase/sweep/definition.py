"""Reading a sweep file: its sources, grids and settings, checked, expanded into points (one per folder)."""

from __future__ import annotations

import re
import runpy
import tomllib
from pathlib import Path

from finephrase.errors import UsageError
from finephrase.run.settings import SWEEPABLE
from finephrase.sweep.point import Point, Sweep

_TOP = {"output_root", "settings", "sources", "grids", "prompts", "models", "description"}
_GRID = {"name", "prompts", "models", "sources", "settings"}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")


def load_definition(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"sweep file {path} does not exist")
    if path.suffix == ".toml":
        try:
            return tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as e:
            raise UsageError(f"{path}: not valid TOML ({e})") from None
    if path.suffix == ".py":
        ns = runpy.run_path(str(path), run_name="__finephrase_sweep__")
        if not isinstance(ns.get("SWEEP"), dict):
            raise UsageError(f"{path} defines no dict SWEEP (see docs/sweeps.md)")
        return ns["SWEEP"]
    raise UsageError(f"sweep file {path}: expected a .toml or .py file")


def _as_list(value, what: str) -> list:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return [value]
    if isinstance(value, (list, tuple)):
        return list(value)
    raise UsageError(f"{what}: expected a list, got {value!r}")


def check_settings(settings, where: str) -> dict:
    """A table of settings (common, a source's, a grid's), each a sweepable setting with a value of its kind."""
    if settings is None:
        return {}
    if not isinstance(settings, dict):
        raise UsageError(f"{where}: expected a table of settings, got {settings!r}")
    out = {}
    for k, v in settings.items():
        if k not in SWEEPABLE:
            raise UsageError(f"{where}: unknown setting '{k}' (settings: {', '.join(sorted(SWEEPABLE))})")
        t = SWEEPABLE[k].kind
        if t is list:
            v = [str(x) for x in _as_list(v, f"{where}.{k}")]
        elif t is bool:
            if not isinstance(v, bool):
                raise UsageError(f"{where}.{k}: expected true or false, got {v!r}")
        elif isinstance(v, bool) or not (isinstance(v, t) or (t is float and isinstance(v, int))):
            raise UsageError(f"{where}.{k}: expected {t.__name__}, got {v!r}")
        out[k] = v
    return out


def _merge(*layers: dict) -> dict:
    """Later layers override earlier ones, except for settings that add up (conditions: all must hold)."""
    out: dict = {}
    for layer in layers:
        for k, v in layer.items():
            out[k] = out.get(k, []) + v if SWEEPABLE[k].accumulates else v
    return out


def label(text: str) -> str:
    """`text` as a folder or job name: anything but letters, digits and '._+-' becomes '_'."""
    return re.sub(r"[^A-Za-z0-9._+-]", "_", text)


def model_label(model: str | None) -> str:
    """The folder name of a model: the preset name, `owner--name` for a Hub id, the file or folder name of a path."""
    from finephrase.serving.models import get_preset

    if model is None:
        return "default"
    if (preset := get_preset(model)) is not None:
        return preset.name
    s = str(model).rstrip("/")
    if s.endswith(".gguf") or Path(s).exists() or s.startswith((".", "/", "~")):
        return label(Path(s).stem if s.endswith(".gguf") else Path(s).name)
    return label(s.replace("/", "--"))


def _check_model(model: str | None, backend: str, where: str):
    from finephrase.serving.models import PRESETS, get_preset

    if model is None or backend != "vllm" or get_preset(model) or "/" in model or Path(model).exists():
        return
    raise UsageError(f"{where}: unknown model '{model}': not a preset ({', '.join(PRESETS)}; see `finephrase models`),"
                     f" a Hub id (owner/name) or a folder")


def _sources(d: dict, path) -> dict[str, tuple[list[str], dict]]:
    """name -> (inputs, the source's own settings)."""
    sources: dict[str, tuple[list[str], dict]] = {}
    for i, s in enumerate(d.get("sources") or []):
        where = f"sources[{i}]"
        if not isinstance(s, dict):
            raise UsageError(f"{where}: expected a table with name, inputs and optional where")
        name = s.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise UsageError(f"{where}: needs a name of letters, digits, '.', '_', '+' or '-' (got {name!r})")
        if name in sources:
            raise UsageError(f"{where}: source '{name}' defined twice")
        if not s.get("inputs"):
            raise UsageError(f"source '{name}': inputs are missing")
        inputs = [str(x) for x in _as_list(s["inputs"], f"source '{name}'.inputs")]
        extra = check_settings({k: v for k, v in s.items() if k not in ("name", "inputs")}, f"source '{name}'")
        sources[name] = (inputs, extra)
    if not sources:
        raise UsageError(f"{path}: no sources (each [[sources]] needs a name and inputs)")
    return sources


def _grids(d: dict, path) -> list:
    if d.get("grids") is not None:
        if d.get("prompts") is not None or d.get("models") is not None:
            raise UsageError(f"{path}: give either [[grids]] or top-level prompts/models, not both")
        grids = d["grids"]
    else:
        grids = [{"name": "grid", "prompts": d.get("prompts"), "models": d.get("models")}]
    if not grids:
        raise UsageError(f"{path}: no grids")
    return grids


def _grid(i: int, g, sources: dict) -> tuple[str, list[str], list, list, dict]:
    """A checked grid: its name, prompts, models, source names and settings."""
    if not isinstance(g, dict) or set(g) - _GRID:
        raise UsageError(f"grids[{i}]: expected a table with keys {', '.join(sorted(_GRID))}")
    gname = str(g.get("name") or f"grids[{i}]")
    if not g.get("prompts"):
        raise UsageError(f"grid '{gname}': prompts are missing")
    prompts = [str(p) for p in _as_list(g["prompts"], f"grid '{gname}'.prompts")]
    models = [None] if not g.get("models") else [str(m) for m in _as_list(g["models"], f"grid '{gname}'.models")]
    names = list(sources) if g.get("sources") is None else _as_list(g["sources"], f"grid '{gname}'.sources")
    for n in names:
        if n not in sources:
            raise UsageError(f"grid '{gname}': unknown source '{n}' (sources: {', '.join(sources)})")
    return gname, prompts, models, names, check_settings(g.get("settings"), f"grid '{gname}'.settings")


def _add_point(points: dict[str, Point], p: Point, templates: list, gname: str):
    """Add `p`, or note that grid `gname` shares it; two grids may share a folder only with the same settings."""
    from finephrase.prompts.library import load_prompts

    old = points.get(p.key)
    if old is None:
        p.config()  # validates the settings (backend, conditions, model files) before anything runs
        points[p.key] = p
    elif (old.inputs, old.model, old.settings) != (p.inputs, p.model, p.settings) or \
            [t.hash for t in load_prompts(old.prompt, old.settings.get("prompts_dir"))] != \
            [t.hash for t in templates]:
        raise UsageError(f"grids '{old.grids[0]}' and '{gname}' both write {p.output} with different "
                         f"settings: give one of them other names or the same settings")
    else:
        old.grids.append(gname)


def load_sweep(path: str | Path) -> Sweep:
    """Read and check a sweep file; every point's settings are validated (prompts, models, conditions)."""
    from finephrase.prompts.library import load_prompts

    d = load_definition(path)
    unknown = set(d) - _TOP
    if unknown:
        raise UsageError(f"{path}: unknown key(s) {', '.join(sorted(unknown))} (keys: {', '.join(sorted(_TOP))})")
    if not d.get("output_root"):
        raise UsageError(f"{path}: output_root is missing (the folder under which each point gets its own)")
    root = Path(d["output_root"])
    common = check_settings(d.get("settings"), "settings")
    sources = _sources(d, path)
    points: dict[str, Point] = {}
    for i, g in enumerate(_grids(d, path)):
        gname, prompts, models, names, gsettings = _grid(i, g, sources)
        for src in names:
            inputs, extra = sources[src]
            settings = _merge(common, extra, gsettings)
            for model in models:
                _check_model(model, settings.get("backend", "embedded"), f"grid '{gname}'")
                for prompt in prompts:
                    templates = load_prompts(prompt, settings.get("prompts_dir"))
                    plabel = "+".join(t.name for t in templates)
                    mlabel = model_label(model)
                    p = Point(src, inputs, model, mlabel, prompt, plabel, settings, root / src / mlabel / plabel,
                              [gname])
                    _add_point(points, p, templates, gname)
    return Sweep(Path(path), root, list(points.values()))
