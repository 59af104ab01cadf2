"""Prompt templates: data files in `prompts/`, one TOML file per template, or prompt files in the FinePhrase
paper's format (markdown with `[TEXT]` where the document goes: paper_files.py).

A template has a name, family, version, an optional system message and a user template that contains the
placeholder `{{document}}` (a paper file: `[TEXT]`) exactly where the document text goes. Rendering splits the
*template* on the placeholder and joins the pieces with the document, so placeholder-like text inside a document
is never substituted again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from finephrase.errors import UsageError

PLACEHOLDER = "{{document}}"
REQUIRED_KEYS = ("name", "family", "version", "template")
OPTIONAL_KEYS = ("description", "system", "extract_tag", "check", "request")
REQUEST_ENGINES = ("llamacpp", "vllm")  # [request.<engine>]: extra request fields for that engine
# what finephrase sends itself (run settings, --constrain-format): a template may not override them
OWN_REQUEST_FIELDS = {"model", "messages", "max_tokens", "temperature", "top_p", "top_k", "seed", "stream", "n",
                      "grammar", "json_schema", "response_format", "structured_outputs", "chat_template_kwargs"}


def default_prompts_dir() -> Path:
    """The built-in library: the repository's `prompts/` in a checkout, the copy inside an installed wheel."""
    from finephrase.project.bundled import project_path

    return project_path("prompts")


def library_dirs(prompts_dir: str | Path | None = None) -> list[Path]:
    """The folders the library is made of, later ones winning by template name: the built-in library, then
    `$FINEPHRASE_PROMPTS_DIR`, then `prompts_dir` (`--prompts-dir`). Each adds templates or overrides one of the
    same name."""
    dirs = [default_prompts_dir()]
    if env := os.environ.get("FINEPHRASE_PROMPTS_DIR"):
        dirs.append(Path(env).expanduser())
    if prompts_dir:
        dirs.append(Path(prompts_dir).expanduser())
    return dirs


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    family: str
    version: int
    template: str
    system: str | None = None
    description: str = ""
    extract_tag: str | None = None
    path: str | None = None
    check_items: tuple = ()  # the [check] table (the shape of a good answer), as sorted (key, value) pairs
    request_items: tuple = ()  # the [request.<engine>] tables, as sorted (engine, ((field, value), ...)) pairs
    placeholders: tuple = (PLACEHOLDER,)  # where the document goes (a paper-format file: [TEXT] and its synonyms)
    check_origin: str = ""  # where the [check] comes from, when not from the template itself (paper files)

    @property
    def paper_format(self) -> bool:
        return self.placeholders != (PLACEHOLDER,)

    def with_check(self, **spec) -> "PromptTemplate":
        """This template with another shape check, e.g. in a pipeline definition:
        `load_prompt("format/faq", CHECKOUT).with_check(kind="qa_pairs", min_pairs=3)` (checked like a [check])."""
        from dataclasses import replace

        from finephrase.quality.formats import validate_spec

        spec = validate_spec(spec, f"{self.name} (with_check)")
        return replace(self, check_items=tuple(sorted(spec.items())), check_origin="the pipeline definition")

    def _split(self) -> list[str]:
        """The template cut at every placeholder (the document goes between the pieces)."""
        return re.split("|".join(map(re.escape, self.placeholders)), self.template)

    def request_fields(self, engine: str | None) -> dict:
        """Extra fields for this template's requests on an engine of style `engine` ("llamacpp", "vllm"), e.g.
        llama.cpp's DRY sampler for `faq`; {} for other engines or none."""
        return dict(dict(self.request_items).get(engine, ()))

    @property
    def check(self) -> dict:
        """The template's `[check]` table: `kind` and parameters (see finephrase/quality/formats.py), and overrides of
        the non-answer thresholds (finephrase/quality/nonanswer.py). Empty: no shape check."""
        return dict(self.check_items)

    @property
    def hash(self) -> str:
        """Content hash of everything that changes what the model is asked (16 hex chars of sha256)."""
        parts = [self.system or "", self.template, self.extract_tag or ""]
        if self.request_items:  # only when set: the hashes of templates without it stay as they were
            parts.append(json.dumps({e: dict(f) for e, f in self.request_items}, sort_keys=True))
        if self.paper_format:
            parts.append(json.dumps(list(self.placeholders)))
        payload = "\x00".join(parts)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]

    def render(self, document: str) -> list[dict]:
        """Chat messages for one document."""
        user = document.join(self._split())
        messages = [{"role": "system", "content": self.system}] if self.system else []
        messages.append({"role": "user", "content": user})
        return messages

    @property
    def shared_prefix(self) -> tuple[str, str]:
        """What comes before the document (system message, user text): templates that begin alike let the
        engine compute a document's prefill once for all of them (prefix caching)."""
        return self.system or "", self._split()[0]

    def overhead_text(self) -> str:
        """The prompt text without the document (to count the template's own tokens)."""
        return (self.system or "") + "\n" + "".join(self._split())

    def to_dict(self) -> dict:
        paper = {"format": "paper", "placeholders": list(self.placeholders), "path": self.path} \
            if self.paper_format else {}
        return {
            "name": self.name,
            "family": self.family,
            "version": self.version,
            "hash": self.hash,
            "description": self.description,
            "system": self.system,
            "template": self.template,
            "extract_tag": self.extract_tag,
            "check": self.check or None,
            "request": {e: dict(f) for e, f in self.request_items} or None,
        } | paper


def prefix_groups(prompts: list[PromptTemplate]) -> list[list[str]]:
    """The prompts' names grouped by the text before the document (one group: all begin alike)."""
    groups: dict[tuple[str, str], list[str]] = {}
    for p in prompts:
        groups.setdefault(p.shared_prefix, []).append(p.name)
    return list(groups.values())


def parse_template(data: dict, source: str) -> PromptTemplate:
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise UsageError(f"prompt template {source} lacks {', '.join(missing)}")
    unknown = sorted(set(data) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
    if unknown:
        raise UsageError(f"prompt template {source} has unknown keys: {', '.join(unknown)}")
    template = data["template"]
    if not isinstance(template, str) or PLACEHOLDER not in template:
        raise UsageError(
            f"prompt template {source} has no {PLACEHOLDER} placeholder: add it where the document text goes"
        )
    system = data.get("system")
    for key in ("system", "extract_tag", "description"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise UsageError(f"prompt template {source}: '{key}' must be a string")
    if system and PLACEHOLDER in system:
        raise UsageError(f"prompt template {source}: put {PLACEHOLDER} in 'template', not in 'system'")
    try:
        version = int(data["version"])
    except (TypeError, ValueError):
        raise UsageError(f"prompt template {source}: version must be an integer") from None
    check = {}
    if data.get("check") is not None:
        from finephrase.quality.formats import validate_spec

        check = validate_spec(data["check"], source)
    return PromptTemplate(
        check_items=tuple(sorted(check.items())),
        request_items=_request_items(data.get("request"), source),
        name=str(data["name"]),
        family=str(data["family"]),
        version=version,
        template=template,
        system=system or None,
        description=str(data.get("description", "")),
        extract_tag=data.get("extract_tag") or None,
        path=source,
    )


def _request_items(table, source: str) -> tuple:
    """The `[request.<engine>]` tables, checked: known engines, scalar or list values, no field finephrase sets."""
    if table is None:
        return ()
    if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
        raise UsageError(f"prompt template {source}: [request] holds one table per engine, e.g. [request.llamacpp]")
    items = []
    for engine, fields in sorted(table.items()):
        if engine not in REQUEST_ENGINES:
            raise UsageError(f"prompt template {source}: [request.{engine}]: unknown engine (known: "
                             f"{', '.join(REQUEST_ENGINES)})")
        if own := sorted(set(fields) & OWN_REQUEST_FIELDS):
            raise UsageError(f"prompt template {source}: [request.{engine}] may not set {', '.join(own)} (a run "
                             f"setting or --constrain-format sends it)")
        for k, v in fields.items():
            if isinstance(v, dict):
                raise UsageError(f"prompt template {source}: [request.{engine}] {k}: a value, not a table")
        items.append((engine, tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in fields.items()))))
    return tuple(items)


def load_template_file(path: str | Path) -> PromptTemplate:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"prompt file {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UsageError(f"prompt file {path} is not valid TOML: {e}") from None
    tpl = parse_template(data, str(path))
    if tpl.name != path.stem:
        raise UsageError(f"prompt file {path}: name '{tpl.name}' must equal the file name '{path.stem}'")
    return tpl
