"""`finephrase publish DIR --repo ORG/NAME`: upload a finished run to a Hugging Face dataset repo.

    finephrase publish output/fwe --repo my-org/fwe-faq --dry-run     # what would go up; no token needed
    finephrase publish output/fwe --repo my-org/fwe-faq --private     # rerun the same command after a failure

Steps: check the run (as `finephrase card`: finished and passing `finephrase verify`), refresh DIR/README.md (the
card; a README.md without the card's marker line is the user's and is uploaded as it is), create the repo if
needed, then upload in as few commits as the client allows:

1. the data files (`<prompt>/*.parquet`, and unless --no-rejects `rejects/<prompt>/*.parquet`,
   `filtered/*.parquet`, `removed/<prompt>/*.parquet`) in one resumable folder upload: huggingface_hub's
   `upload_large_folder` where the installed version has it, else `upload_folder`, which in huggingface_hub 2.4
   (with hf_xet) is the streamed multi-commit upload that replaced it (hundreds of files per commit, retries with
   backoff on 429 / 5xx, honours Retry-After, and on a rerun skips every file the repo already holds);
2. README.md and manifest.json in one last commit, so the configs appear once their files are there.

Never uploaded: `.ledger/`, `logs/`, `.cache/`, `.dedup/`, hidden files, locks, temporary files. manifest.json
goes up with anything shaped like a token replaced (`hf_***`), as the card.

The token comes from where huggingface_hub looks (HF_TOKEN, `hf auth login`); it is never printed, and every
message from the Hub is scrubbed of it before it is shown.
"""

from __future__ import annotations

import argparse
import glob
import re
import signal
import sys
import time
from collections import defaultdict
from pathlib import Path

from finephrase import card
from finephrase.argtypes import non_negative_int
from finephrase.errors import FinephraseError, UsageError

IGNORE = [".*", "*/.*", "*.tmp", "*.lock", ".ledger/*", "logs/*", ".cache/*", ".dedup/*"]
TRANSIENT = {408, 429, 500, 502, 503, 504}
REPO_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


def data_patterns(prompts: list[str], include_extras: bool = True) -> list[str]:
    pats = [f"{p}/*.parquet" for p in prompts]
    if include_extras:
        pats += [f"rejects/{p}/*.parquet" for p in prompts] + ["filtered/*.parquet"]
        pats += [f"removed/{p}/*.parquet" for p in prompts]
    return pats


def ignore_patterns() -> list[str]:
    from huggingface_hub.utils import DEFAULT_IGNORE_PATTERNS

    return IGNORE + [p for p in DEFAULT_IGNORE_PATTERNS if p not in IGNORE]


def data_files(root: Path, prompts: list[str], include_extras: bool = True
               ) -> tuple[list[tuple[str, int]], list[str], list[str]]:
    """(uploaded [(path, size)], left out [path], empty [path]): the same selection the upload makes (same
    patterns, same matcher). Parquet files with no rows (an older run's) are never uploaded: `datasets` refuses
    them and would fail their whole config."""
    from huggingface_hub.utils import filter_repo_objects

    from finephrase import datafiles

    every = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    chosen = set(filter_repo_objects(every, allow_patterns=data_patterns(prompts, include_extras),
                                     ignore_patterns=ignore_patterns()))
    empty = [p for p in every if p in chosen and p.endswith(".parquet") and datafiles.num_rows(root / p) == 0]
    chosen -= set(empty)
    up = [(p, (root / p).stat().st_size) for p in every if p in chosen]
    left = [p for p in every if p not in chosen and p not in empty and p not in (card.CARD, card.MANIFEST)]
    return up, left, empty


def _folder(path: str) -> str:
    parts = path.split("/")
    return "/".join(parts[:2]) if parts[0] in ("rejects", "removed") and len(parts) > 2 else (
        parts[0] if len(parts) > 1 else ".")


def _one_line(e: BaseException, secrets: list[str]) -> str:
    from huggingface_hub.errors import HfHubHTTPError

    if isinstance(e, HfHubHTTPError):
        status = e.response.status_code if getattr(e, "response", None) is not None else "?"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        server = (e.server_message or "").strip().replace("\n", " ")
        msg = f"the Hub answered HTTP {status}: {first}" + (f" ({server[:200]})" if server and server not in first
                                                            else "")
    else:
        text = " ".join(str(e).split())
        msg = f"{type(e).__name__}: {text[:300]}" if text else type(e).__name__
    return card.scrub(msg, secrets)


def _status(e: BaseException) -> int | None:
    from huggingface_hub.errors import HfHubHTTPError

    if isinstance(e, HfHubHTTPError) and getattr(e, "response", None) is not None:
        return e.response.status_code
    return None


def _is_transient(e: BaseException) -> bool:
    status = _status(e)
    if status is not None:
        return status in TRANSIENT
    try:
        import httpx2

        if isinstance(e, httpx2.TransportError):
            return True
    except ImportError:
        pass
    try:
        import httpx

        if isinstance(e, httpx.TransportError):
            return True
    except ImportError:
        pass
    return isinstance(e, (ConnectionError, TimeoutError))


def _retry_after(e: BaseException) -> float | None:
    try:
        v = e.response.headers.get("Retry-After")  # type: ignore[attr-defined]
        return float(v) if v is not None else None
    except (AttributeError, TypeError, ValueError):
        return None


class Publisher:
    def __init__(self, retries: int, secrets: list[str]):
        self.retries = retries
        self.secrets = secrets

    def call(self, what: str, fn, retries: int | None = None, base_wait: float = 10.0):
        """fn(), again after a transient failure (429, 5xx, connection): every step is idempotent (exist_ok, files
        already there are skipped), so a retry resumes. `retries`: default --retries (the upload steps, which
        huggingface_hub already retries inside); single requests that it does not retry get their own."""
        retries = self.retries if retries is None else retries
        for attempt in range(retries + 1):
            try:
                return fn()
            except UsageError:
                raise
            except Exception as e:
                if not _is_transient(e) or attempt == retries:
                    raise
                wait = _retry_after(e)
                wait = min(wait + 1, 600) if wait is not None else min(base_wait * 2 ** attempt, 120)
                print(f"publish: {what} failed ({_one_line(e, self.secrets)}); retrying in {wait:.0f}s "
                      f"({attempt + 1}/{retries}); what is committed stays", file=sys.stderr, flush=True)
                time.sleep(wait)


def dry_run(root: Path, repo: str, url: str, revision: str, private: bool, up, left, empty, card_bytes: int,
            card_note: str, manifest_bytes: int) -> int:
    from huggingface_hub import get_token

    print(f"dry run: nothing is uploaded. Target: {url} (dataset repo, revision {revision}, "
          f"{'private' if private else 'visibility: public if created, unchanged if it exists'})")
    w = max([len(f"{s:,}") for _, s in up] + [len(f"{card_bytes:,}"), 5])
    print(f"{card_bytes:>{w},}  README.md  ({card_note}; committed last)")
    print(f"{manifest_bytes:>{w},}  manifest.json  (committed last)")
    for path, size in up:
        print(f"{size:>{w},}  {path}")
    groups = defaultdict(lambda: [0, 0])
    for path, size in up:
        groups[_folder(path)][0] += 1
        groups[_folder(path)][1] += size
    print("by folder: " + "; ".join(f"{k}/ {n:,} files {card.human_bytes(b)}" for k, (n, b) in groups.items()))
    total = sum(s for _, s in up) + card_bytes + manifest_bytes
    print(f"total: {len(up) + 2:,} files, {card.human_bytes(total)} ({total:,} bytes)")
    if left:
        lg = defaultdict(int)
        for p in left:
            lg[p.split("/")[0] + ("/" if "/" in p else "")] += 1
        print("left out: " + ", ".join(f"{k} ({n:,} files)" for k, n in sorted(lg.items())))
    if empty:
        more = f" (+{len(empty) - 20:,} more)" if len(empty) > 20 else ""
        print(f"left out, empty (0 rows; `datasets` refuses such files): {', '.join(empty[:20])}{more}")
    print("token: " + ("found" if get_token() else "none found: run `hf auth login` or set HF_TOKEN before "
                       "publishing"))
    return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def publish(args) -> int:
    """The command: SIGTERM / SIGUSR1 (a SLURM time limit) stop it like Ctrl-C; a rerun continues."""
    old = {s: signal.signal(s, _interrupt) for s in (signal.SIGTERM, signal.SIGUSR1)}
    try:
        return _publish(args)
    except KeyboardInterrupt:
        print("\npublish interrupted: what is committed stays on the Hub; rerun the same command to continue",
              file=sys.stderr)
        return 130
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _publish(args) -> int:
    from huggingface_hub import HfApi, constants, get_token

    root = Path(args.run_dir)
    repo = args.repo
    if not REPO_RE.match(repo or ""):
        raise UsageError(f"--repo must be ORG/NAME (a namespace and a dataset name), not '{repo}'")
    revision = args.revision or "main"
    manifest = card.load_manifest(root)
    card.check_finished(root, manifest, verify=not args.no_verify)
    prompts = card.prompt_names(manifest)
    include = not args.no_rejects
    secrets = card.secret_values()

    card_text, card_note, refresh = _card_to_upload(root, manifest, repo, include, secrets, args)
    card_data = card_text.encode()
    manifest_data = card.scrub((root / card.MANIFEST).read_text(encoding="utf-8"), secrets).encode()
    up, left, empty = data_files(root, prompts, include)
    endpoint = constants.ENDPOINT.rstrip("/")
    url = f"{endpoint}/datasets/{repo}" + (f"/tree/{revision}" if revision != "main" else "")

    if args.dry_run:
        return dry_run(root, repo, url, revision, args.private, up, left, empty, len(card_data), card_note,
                       len(manifest_data))

    if refresh:
        card.write_card(root, card_text)
    if not get_token():
        raise UsageError("no Hugging Face token found: run `hf auth login`, or set HF_TOKEN to a token with write "
                         "access to the repo")
    size = sum(s for _, s in up)
    info = _upload(HfApi(), Publisher(args.retries, secrets), args, root, url, prompts, up, empty, card_data,
                   manifest_data)
    commit = getattr(info, "oid", None)
    print(f"published {len(up) + 2:,} files ({card.human_bytes(size + len(card_data) + len(manifest_data))}) to {url}"
          + (f" (commit {commit[:12]})" if commit else ""))
    print(f'load: datasets.load_dataset("{repo}", "all")  # or a prompt: '
          + ", ".join(f'"{q}"' for q in prompts))
    return 0


def _card_to_upload(root: Path, manifest: dict, repo: str, include: bool, secrets, args) -> tuple[str, str, bool]:
    """The README.md to upload, what it is, and whether it is ours to refresh on disk."""
    readme = root / card.CARD
    if readme.exists() and not card.is_ours(readme):
        return card.scrub(readme.read_text(encoding="utf-8"), secrets), \
            "yours (no `finephrase card` marker): uploaded as it is", False
    stats = card.collect_stats(root, manifest)
    text = card.render(root, manifest, stats, card.compute_stats(root, manifest), repo=repo, include_extras=include,
                       **card.card_options(args))
    return text, "the card, refreshed", True


def _upload(api, p: "Publisher", args, root: Path, url: str, prompts: list[str], up, empty, card_data: bytes,
            manifest_data: bytes):
    """Create the repo (and branch), upload the data files, then commit the card and manifest. Returns the last
    commit's info; an error is one line with what to do."""
    from huggingface_hub import CommitOperationAdd

    repo, revision, include, secrets = args.repo, args.revision or "main", not args.no_rejects, p.secrets
    size = sum(s for _, s in up)
    try:
        p.call("creating the repo", lambda: api.create_repo(repo, repo_type="dataset", private=args.private or None,
                                                            exist_ok=True), retries=max(args.retries, 5), base_wait=1)
        if args.private:
            info = p.call("reading the repo", lambda: api.repo_info(repo, repo_type="dataset"),
                          retries=max(args.retries, 5), base_wait=1)
            if not info.private:
                raise UsageError(f"{repo} exists and is public: --private does not change an existing repo; make it "
                                 f"private on the Hub first, or publish without --private")
        if revision != "main":
            p.call("creating the branch", lambda: api.create_branch(repo, branch=revision, repo_type="dataset",
                                                                    exist_ok=True),
                   retries=max(args.retries, 5), base_wait=1)
        print(f"publish: uploading {len(up):,} data files ({card.human_bytes(size)}) from {root} to {url} ...",
              file=sys.stderr, flush=True)

        def upload_data():
            kw = dict(repo_id=repo, folder_path=root, repo_type="dataset", revision=revision,
                      allow_patterns=data_patterns(prompts, include),
                      ignore_patterns=ignore_patterns() + [glob.escape(p) for p in empty])
            if hasattr(api, "upload_large_folder"):  # older huggingface_hub (2.4 has none)
                return api.upload_large_folder(private=args.private or None, **kw)
            return api.upload_folder(commit_message=f"Upload finephrase data ({', '.join(prompts)})", **kw)

        if up:
            p.call("the data upload", upload_data)
        print("publish: committing README.md and manifest.json ...", file=sys.stderr, flush=True)
        info = p.call("the card commit", lambda: api.create_commit(
            repo, repo_type="dataset", revision=revision, commit_message="Dataset card and manifest (finephrase)",
            operations=[CommitOperationAdd("README.md", card_data), CommitOperationAdd("manifest.json",
                                                                                       manifest_data)]),
            retries=max(args.retries, 5), base_wait=1)  # huggingface_hub does not retry this commit itself
    except FinephraseError:
        raise
    except KeyboardInterrupt:
        raise
    except Exception as e:
        hint = ("rerun the same command to continue: what is committed stays and is skipped"
                if _is_transient(e) else "fix that and rerun the same command: what is committed stays")
        status = _status(e)
        if status in (401, 403):
            hint = "check that the token (HF_TOKEN or `hf auth login`) has write access to the namespace"
        raise FinephraseError(f"publish to {repo} stopped: {_one_line(e, secrets)}; {hint}") from None
    return info


def add_parser(sub):
    p = sub.add_parser(
        "publish", help="upload a finished run to a Hugging Face dataset repo (resumable, few commits)",
        description="Check the run, refresh its card (DIR/README.md), create the dataset repo if needed, upload\n"
        "the data with huggingface_hub's resumable folder upload (hundreds of files per commit, retries on\n"
        "429 and 5xx; rerun the same command after an interruption and it continues where it stopped),\n"
        "then README.md and manifest.json in a last commit. The token comes from HF_TOKEN or `hf auth login`\n"
        "and is never shown. Not uploaded: .ledger/, logs/, .cache/, .dedup/, hidden, lock and temporary files.\n"
        "See docs/publishing.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  finephrase publish output/fwe --repo my-org/fwe-faq --dry-run\n"
        "  finephrase publish output/fwe --repo my-org/fwe-faq --private\n"
        "  HF_TOKEN=... finephrase publish output/fwe --repo my-org/fwe-faq --no-rejects --license odc-by")
    p.add_argument("run_dir", metavar="DIR", help="a finished run's output folder (or a dedup output)")
    p.add_argument("--repo", required=True, metavar="ORG/NAME", help="the dataset repo (created if missing)")
    p.add_argument("--private", action="store_true",
                   help="create the repo private (an existing public repo is refused, not changed)")
    p.add_argument("--revision", metavar="BRANCH", help="branch to upload to (default main; created if missing)")
    p.add_argument("--dry-run", action="store_true",
                   help="list what would be uploaded (files, sizes, total, target) and upload nothing; no token needed")
    p.add_argument("--retries", type=non_negative_int, default=2,
                   help="times to retry the data upload after huggingface_hub's own retries gave up on a 429 / 5xx "
                   "/ connection error (default 2); each retry continues where the last stopped. Single requests "
                   "(create the repo, the card commit) are retried max(5, RETRIES) times")
    card.add_card_options(p)
    p.set_defaults(func=publish)
