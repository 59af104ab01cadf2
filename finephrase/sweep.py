"""`finephrase sweep FILE`: a grid of rephrasing runs, prompts x models x sources, one run per grid point.

    finephrase sweep pipelines/sweep_example.toml --dry-run       # what would run, what is skipped and why
    finephrase sweep pipelines/sweep_example.toml --submit        # one sbatch array job per point (slurm/rephrase.sh)
    finephrase sweep pipelines/sweep_example.toml --local         # the points one after another, here

FILE is TOML, or Python defining a dict `SWEEP` with the same keys (docs/sweeps.md):

    output_root = "output/sweeps/demo"          # each point writes ROOT/<source>/<model>/<prompt>/
    [settings]                                  # common settings: RunConfig.for_backend keywords
    backend = "vllm"
    [[sources]]                                 # name, inputs, optional where; any setting may be overridden
    name = "fwe-hq"
    inputs = ["hf://datasets/HuggingFaceFW/fineweb-edu/sample/10BT"]
    where = ["int_score >= 4"]
    [[grids]]                                   # prompts x models x sources (default: all sources)
    prompts = ["faq", "math"]
    models = ["smollm2-1.7b", "gemma3-1b"]

Several grids may share points (the same folder): such a point runs once. A point whose manifest says
`finished` is skipped, one whose folder holds an unfinished run resumes it. Submissions are recorded in
ROOT/.sweep/submissions.jsonl; a point submitted before and not finished is not submitted again while its job is
still queued or running (asked with `squeue`), since two jobs on one run folder would write the same tasks twice.
"""

from __future__ import annotations

import argparse
import fnmatch
import re
import runpy
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from finephrase.errors import FinephraseError, UsageError

SUBMISSIONS = Path(".sweep") / "submissions.jsonl"

# The settings a sweep may give (common, per source, per grid): RunConfig.for_backend keywords, with their type.
# Each maps to the `finephrase rephrase` flag of the same name (underscores -> dashes) unless listed in _FLAG.
SETTINGS: dict[str, type] = {
    "backend": str, "endpoint_url": str, "api_key_env": str, "context_length": int, "vllm_args": list,
    "engine_args": list, "gpu_memory_utilization": float, "max_tokens": int, "temperature": float, "top_p": float,
    "top_k": int, "seed": int, "text_column": str, "id_column": str, "limit": int, "where": list, "languages": list,
    "min_chars": int, "max_chars": int, "sample_rate": float, "token_budget": int, "tasks": int, "workers": int,
    "chunk_size": int, "gpus_per_task": int, "max_concurrency": int, "max_held_docs": int, "request_timeout": float,
    "max_retries": int,
    "progress_interval": float, "prompts_dir": str, "constrain_format": bool,
}
_FLAG = {"languages": "--language", "vllm_args": "--vllm-arg", "engine_args": "--engine-arg"}
_LISTS_ADD = ("where",)  # conditions add up (common + source + grid: all must hold); other settings override
_TOP = {"output_root", "settings", "sources", "grids", "prompts", "models", "description"}
_GRID = {"name", "prompts", "models", "sources", "settings"}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")


@dataclass
class Point:
    """One grid point: one run of `finephrase rephrase` into its own folder."""

    source: str
    inputs: list[str]
    model: str | None  # as written in the sweep (a preset name, a Hub id, a path); None: the backend's default
    model_label: str
    prompt: str  # as written (a name, names joined by commas, or a .toml path)
    prompt_label: str
    settings: dict
    output: Path
    grids: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.source}/{self.model_label}/{self.prompt_label}"

    @property
    def backend(self) -> str:
        return self.settings.get("backend", "embedded")

    @property
    def tasks(self) -> int:
        return int(self.settings.get("tasks", 1))

    def config(self):
        """The point's RunConfig (built afresh: `execute` changes some fields)."""
        from finephrase.prompts import load_prompts
        from finephrase.run import RunConfig

        kw = {k: v for k, v in self.settings.items() if k not in ("backend", "prompts_dir")}
        return RunConfig.for_backend(self.backend, inputs=list(self.inputs), output=str(self.output),
                                     prompts=load_prompts(self.prompt, self.settings.get("prompts_dir")),
                                     model=self.model, **kw)

    def rephrase_args(self, for_slurm: bool = False) -> list[str]:
        """The `finephrase rephrase` arguments of this point (slurm/rephrase.sh adds --rank)."""
        args = ["rephrase", *self.inputs, "--prompt", self.prompt, "--output", str(self.output),
                "--backend", self.backend]
        if self.model is not None:
            args += ["--model", self.model]
        for key, value in self.settings.items():
            if key == "backend" or (for_slurm and key in ("workers", "tasks")):
                continue
            flag = _FLAG.get(key, "--" + key.replace("_", "-"))
            if isinstance(value, bool):  # a switch: the flag alone when on
                args += [flag] if value else []
                continue
            for v in value if isinstance(value, list) else [value]:
                args.append(f"{flag}={v}")  # one argv item: values may start with '-' (--vllm-arg, --limit=-1)
        if for_slurm:
            args.append(f"--tasks={self.tasks}")
        return args


@dataclass
class Sweep:
    path: Path
    root: Path
    points: list[Point]


# -- loading ------------------------------------------------------------------------------------------------------


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


def _check_settings(settings, where: str) -> dict:
    if settings is None:
        return {}
    if not isinstance(settings, dict):
        raise UsageError(f"{where}: expected a table of settings, got {settings!r}")
    out = {}
    for k, v in settings.items():
        if k not in SETTINGS:
            raise UsageError(f"{where}: unknown setting '{k}' (settings: {', '.join(sorted(SETTINGS))})")
        t = SETTINGS[k]
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
    out: dict = {}
    for layer in layers:
        for k, v in layer.items():
            out[k] = out.get(k, []) + v if k in _LISTS_ADD else v
    return out


def _label(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]", "_", text)


def model_label(model: str | None) -> str:
    """The folder name of a model: the preset name, `owner--name` for a Hub id, the file or folder name of a path."""
    from finephrase.models import get_preset

    if model is None:
        return "default"
    if (preset := get_preset(model)) is not None:
        return preset.name
    s = str(model).rstrip("/")
    if s.endswith(".gguf") or Path(s).exists() or s.startswith((".", "/", "~")):
        return _label(Path(s).stem if s.endswith(".gguf") else Path(s).name)
    return _label(s.replace("/", "--"))


def _check_model(model: str | None, backend: str, where: str):
    from finephrase.models import PRESETS, get_preset

    if model is None or backend != "vllm" or get_preset(model) or "/" in model or Path(model).exists():
        return
    raise UsageError(f"{where}: unknown model '{model}': not a preset ({', '.join(PRESETS)}; see `finephrase models`),"
                     f" a Hub id (owner/name) or a folder")


def load_sweep(path: str | Path) -> Sweep:
    """Read and check a sweep file; every point's settings are validated (prompts, models, conditions)."""
    from finephrase.prompts import load_prompts

    d = load_definition(path)
    unknown = set(d) - _TOP
    if unknown:
        raise UsageError(f"{path}: unknown key(s) {', '.join(sorted(unknown))} (keys: {', '.join(sorted(_TOP))})")
    if not d.get("output_root"):
        raise UsageError(f"{path}: output_root is missing (the folder under which each point gets its own)")
    root = Path(d["output_root"])
    common = _check_settings(d.get("settings"), "settings")

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
        extra = _check_settings({k: v for k, v in s.items() if k not in ("name", "inputs")}, f"source '{name}'")
        sources[name] = (inputs, extra)
    if not sources:
        raise UsageError(f"{path}: no sources (each [[sources]] needs a name and inputs)")

    if d.get("grids") is not None:
        if d.get("prompts") is not None or d.get("models") is not None:
            raise UsageError(f"{path}: give either [[grids]] or top-level prompts/models, not both")
        grids = d["grids"]
    else:
        grids = [{"name": "grid", "prompts": d.get("prompts"), "models": d.get("models")}]
    if not grids:
        raise UsageError(f"{path}: no grids")

    points: dict[str, Point] = {}
    for i, g in enumerate(grids):
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
        gsettings = _check_settings(g.get("settings"), f"grid '{gname}'.settings")
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
    return Sweep(Path(path), root, list(points.values()))


# -- state of a point ---------------------------------------------------------------------------------------------


@dataclass
class State:
    action: str  # "new" | "resume" | "skip"
    reason: str
    problem: bool = False  # skipped because something needs a decision (other settings, job still active)


def _comparable(fp: dict, model_known: bool) -> dict:
    fp = {k: v for k, v in fp.items() if k != "input_files"}
    if not model_known:
        fp.pop("model", None)
    return fp


def submissions(root: Path) -> dict[str, list[dict]]:
    """Recorded submissions by point key (ROOT/.sweep/submissions.jsonl), oldest first."""
    out: dict[str, list[dict]] = {}
    f = root / SUBMISSIONS
    if f.exists():
        for line in f.read_bytes().splitlines():
            if line.strip():
                rec = orjson.loads(line)
                out.setdefault(rec["point"], []).append(rec)
    return out


def active_jobs(job_ids: list[str]) -> set[str] | None:
    """The job ids among `job_ids` that SLURM still has queued or running; None when `squeue` is not available."""
    exe = shutil.which("squeue")
    if exe is None:
        return None
    active = set()
    for job in job_ids:
        try:
            r = subprocess.run([exe, "-h", "-j", job, "-o", "%i"], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            return None
        if r.returncode == 0:
            if r.stdout.strip():
                active.add(job)
        elif "invalid job id" not in (r.stderr + r.stdout).lower():  # e.g. the controller is unreachable
            return None  # gone from the controller's memory is the only other answer that means "not active"
    return active


def point_state(p: Point, submitted: list[dict] | None = None, active: set[str] | None = None) -> State:
    """What a run of `p` would do: start, resume, or nothing (and why)."""
    from finephrase.ledger import LEDGER_DIR
    from finephrase.run import _describe_difference

    manifest_path = p.output / "manifest.json"
    last = (submitted or [None])[-1]
    if not manifest_path.exists():
        if p.output.is_dir() and any(x.name != ".lock" for x in p.output.iterdir()) and \
                not (p.output / LEDGER_DIR).exists():
            return State("skip", "the folder exists and is not a finephrase run: move it away", True)
        state = State("new", "no run yet")
    else:
        m = orjson.loads(manifest_path.read_bytes())
        cfg = p.config()
        want = _comparable(cfg.fingerprint([]), cfg.model is not None)
        have = _comparable(m.get("config", {}), cfg.model is not None)
        diff = _describe_difference(have, want) if have != want else ""
        status = m.get("status", "?")
        if status == "finished":
            if diff:
                return State("skip", f"finished, but with other settings ({diff}): delete the folder to redo it")
            return State("skip", "finished")
        if diff:
            return State("skip", f"holds an unfinished run with other settings ({diff}): it would be refused; "
                         f"delete the folder or change output_root", True)
        counts = m.get("counts") or {}
        state = State("resume", f"{status}: {counts.get('tasks_finished', 0)}/{m.get('config', {}).get('tasks', '?')} "
                      f"tasks finished")
    if last is not None:
        job = str(last.get("job_id"))
        if active is None:
            return State("skip", f"submitted as job {job} on {last.get('at')} and not finished; squeue could not "
                         f"tell whether it still runs: pass --resubmit once it is gone", True)
        if job in active:
            return State("skip", f"job {job} (submitted {last.get('at')}) is still queued or running", True)
        state.reason += f"; job {job} is gone"
    return state


# -- the command ----------------------------------------------------------------------------------------------------


def add_parser(sub):
    p = sub.add_parser(
        "sweep", help="run a grid of runs (prompts x models x sources) from a TOML or Python file",
        description="Expand the grid of FILE (prompts x models x sources, see docs/sweeps.md) into one run per point, "
        "each in ROOT/<source>/<model>/<prompt>/, and list them (--dry-run), submit each as a SLURM array job "
        "(--submit: sbatch --array=0-(tasks-1) slurm/rephrase.sh rephrase ...) or run them one after another here "
        "(--local). Points whose run has finished are skipped; unfinished ones resume.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  finephrase sweep pipelines/sweep_example.toml --dry-run\n"
        "  finephrase sweep pipelines/sweep_example.toml --submit --sbatch-arg=--partition=gpu --sbatch-arg=--qos=low\n"
        "  finephrase sweep my_sweep.py --local --only 'fwe-hq/*/faq'")
    p.add_argument("file", metavar="FILE", help="the sweep definition (.toml, or .py defining SWEEP)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--submit", action="store_true", help="submit one sbatch array job per point to run")
    mode.add_argument("--local", action="store_true", help="run the points one after another on this machine")
    p.add_argument("--dry-run", action="store_true",
                   help="only list the points, what would be done with each and why, and the commands")
    p.add_argument("--only", action="append", default=[], metavar="GLOB",
                   help="only points whose SOURCE/MODEL/PROMPT matches GLOB (repeatable), e.g. 'fwe-hq/*/faq'")
    p.add_argument("--sbatch-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for sbatch (repeatable; write it as --sbatch-arg=--partition=gpu)")
    p.add_argument("--script", default=None,
                   help="the sbatch script (default: slurm/rephrase.sh here, else the repository's)")
    p.add_argument("--resubmit", action="store_true",
                   help="submit points submitted before without asking squeue whether their last job is still "
                   "queued or running (cancel it first: two jobs on one run would write the same tasks twice)")
    p.set_defaults(func=main)


def _script(arg: str | None) -> str:
    if arg:
        if not Path(arg).is_file():
            raise UsageError(f"sbatch script {arg} does not exist")
        return arg
    if Path("slurm/rephrase.sh").is_file():
        return "slurm/rephrase.sh"
    repo = Path(__file__).resolve().parent.parent / "slurm" / "rephrase.sh"
    if repo.is_file():
        return str(repo)
    raise UsageError("slurm/rephrase.sh not found: run from the repository root or pass --script")


def sbatch_command(p: Point, script: str, extra: list[str]) -> list[str]:
    # --array always: the script's own #SBATCH --array=0-99 would otherwise start 100 tasks
    return ["sbatch", "--parsable", f"--array=0-{p.tasks - 1}", f"--job-name=fp-{_label(p.key.replace('/', '-'))}",
            *extra, script, *p.rephrase_args(for_slurm=True)]


def main(args) -> int:
    from finephrase.drain import DRAIN, Drained

    sweep = load_sweep(args.file)
    points = [p for p in sweep.points if not args.only or any(fnmatch.fnmatchcase(p.key, g) for g in args.only)]
    if not points:
        raise UsageError(f"no point of {args.file} matches --only {' '.join(args.only)}")
    subs = {} if args.resubmit else submissions(sweep.root)
    active = None
    if any(p.key in subs for p in points):
        active = active_jobs(sorted({str(subs[p.key][-1]["job_id"]) for p in points if p.key in subs}))
    states = [(p, point_state(p, subs.get(p.key), active)) for p in points]
    todo = [p for p, s in states if s.action != "skip"]

    w = max(len(p.key) for p in points)
    print(f"sweep {args.file}: {len(sweep.points)} points under {sweep.root}"
          + (f", {len(points)} selected by --only" if args.only else ""))
    for p, s in states:
        print(f"  {s.action:<6}  {p.key:<{w}}  {s.reason}")
    skipped = len(points) - len(todo)
    print(f"{len(todo)} to run, {skipped} skipped")

    if args.submit:
        script = _script(args.script)
        commands = [(p, sbatch_command(p, script, args.sbatch_arg)) for p in todo]
    else:
        commands = [(p, ["finephrase", *p.rephrase_args()]) for p in todo]
    if args.dry_run or not (args.submit or args.local):
        if commands:
            print("would submit:" if args.submit else "would run (as with these commands):")
            for _, cmd in commands:
                print("  " + shlex.join(cmd))
        if not args.dry_run:
            print("(nothing done: pass --submit or --local)")
        return 0
    failed: list[str] = [p.key for p, s in states if s.problem]  # skipped: needs a decision
    if args.submit and todo:
        if shutil.which("sbatch") is None:
            raise UsageError("sbatch not found: submit from a SLURM login node (or use --local)")
        log = sweep.root / SUBMISSIONS
        log.parent.mkdir(parents=True, exist_ok=True)
        for p, cmd in commands:
            r = subprocess.run(cmd, capture_output=True, text=True)
            job = r.stdout.strip().split(";")[0].strip() if r.returncode == 0 else ""
            if not job:
                print(f"error: sbatch failed for {p.key} (exit {r.returncode}): {(r.stderr or r.stdout).strip()}",
                      file=sys.stderr)
                failed.append(p.key)
                continue
            with open(log, "ab") as f:
                f.write(orjson.dumps({"point": p.key, "job_id": job, "tasks": p.tasks, "output": str(p.output),
                                      "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                      "sweep": str(args.file), "command": cmd}) + b"\n")
            print(f"submitted {p.key}: job {job} ({p.tasks} task{'s' if p.tasks > 1 else ''})")
    elif args.local and todo:
        from finephrase.run import execute

        for i, p in enumerate(todo, 1):
            print(f"[sweep] {i}/{len(todo)} {p.key} -> {p.output}", file=sys.stderr)
            try:
                ok = execute(p.config())["status"] == "finished"
            except Drained:
                raise
            except FinephraseError as e:
                print(f"error: {p.key}: {e}", file=sys.stderr)
                ok = False
            except Exception as e:  # a task failed: one line, the traceback is in the run's task logs
                print(f"error: {p.key}: {type(e).__name__}: {e} (task logs: {p.output}/logs/logs/)", file=sys.stderr)
                ok = False
            if not ok:
                failed.append(p.key)
            if DRAIN.is_set():
                raise Drained(f"sweep stopped after {p.key}")
        print(f"sweep: {sum(p.key not in failed for p in todo)} of {len(todo)} runs finished", file=sys.stderr)
    if failed:
        print(f"not done: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
