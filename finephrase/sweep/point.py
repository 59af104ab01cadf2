"""A sweep's points: one run of `finephrase rephrase` each, into its own folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from finephrase.run.settings import SWEEPABLE


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
        """The point's RunConfig."""
        from finephrase.prompts.library import load_prompts
        from finephrase.run.config import RunConfig

        kw = {k: v for k, v in self.settings.items() if k != "backend" and SWEEPABLE[k].config}
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
            flag = SWEEPABLE[key].flag
            if isinstance(value, bool):  # a switch: the flag alone when on (--no-<flag> when it has one)
                negated = f"--no-{flag[2:]}" if SWEEPABLE[key].negatable else None
                args += [flag] if value else [negated] if negated else []
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
