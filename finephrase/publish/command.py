"""The `publish` command: check the folder and the Hub's limits, refresh the card, create the repo (only with
--private or --public: a new repo's visibility is always chosen), upload the data in paced commits of fewer than
100 files, then the card and manifest."""

from __future__ import annotations

import argparse
import contextlib
import re
import signal
import sys
from pathlib import Path

from finephrase import card
from finephrase.argtypes import non_negative_int, positive_int
from finephrase.errors import FinephraseError, UsageError
from finephrase.formatting import human_bytes
from finephrase.process.exits import INTERRUPTED_EXIT_CODE
from finephrase.publish.commits import CommitPace, upload_in_commits
from finephrase.publish.dry_run import dry_run
from finephrase.publish.hub_errors import Publisher, _is_transient, _one_line, _status
from finephrase.publish.selection import data_files
from finephrase.store.hub_limits import COMMITS_PER_HOUR, HubLimits, violations
from finephrase.verify.finished import check_finished, load_run_manifest

REPO_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


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
        return INTERRUPTED_EXIT_CODE
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
    manifest = load_run_manifest(root)
    check_finished(root, manifest, verify=not args.no_verify)
    prompts = card.prompt_names(manifest)
    include = not args.no_rejects
    secrets = card.secret_values()

    card_text, card_note, refresh = _card_to_upload(root, manifest, repo, include, secrets, args)
    card_data = card_text.encode()
    manifest_data = card.scrub((root / card.MANIFEST).read_text(encoding="utf-8"), secrets).encode()
    up, left, empty = data_files(root, prompts, include)
    endpoint = constants.ENDPOINT.rstrip("/")
    url = f"{endpoint}/datasets/{repo}" + (f"/tree/{revision}" if revision != "main" else "")

    problems = violations(up, HubLimits(), extra_files=2)  # before anything is uploaded (or a dry run shown)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise UsageError(f"{root} cannot go to the Hub as it is: {problems[0]}{more}; compact it into Hub-sized "
                         f"shards first (`finephrase compact {root} --output {root.name}-compacted`) and publish that")
    if args.dry_run:
        return dry_run(root, repo, url, revision, _visibility(args), up, left, empty, len(card_data), card_note,
                       len(manifest_data))

    if not get_token():
        raise UsageError("no Hugging Face token found: run `hf auth login`, or set HF_TOKEN to a token with write "
                         "access to the repo")
    api, publisher = HfApi(), Publisher(args.retries, secrets)
    exists = _repo_exists(api, publisher, args)  # a new repo without --private / --public: refused here
    if refresh:
        card.write_card(root, card_text)
    size = sum(s for _, s in up)
    info = _upload(api, publisher, args, root, url, up, card_data, manifest_data, create=not exists)
    commit = getattr(info, "oid", None)
    print(f"published {len(up) + 2:,} files ({human_bytes(size + len(card_data) + len(manifest_data))}) to {url}"
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


def _visibility(args) -> str:
    """What the run does about the repo's visibility, as the dry run says it."""
    if args.private:
        return "private if created; an existing public repo is refused"
    if args.public:
        return "public if created"
    return "not chosen: an existing repo keeps its own; a new one is not created without --private or --public"


@contextlib.contextmanager
def _hub_errors(repo: str, secrets):
    """A failure of the Hub (or of the way there) as one line with what to do; our own errors pass."""
    try:
        yield
    except (FinephraseError, KeyboardInterrupt):
        raise
    except Exception as e:
        hint = ("rerun the same command to continue: what is committed stays and is skipped"
                if _is_transient(e) else "fix that and rerun the same command: what is committed stays")
        if _status(e) in (401, 403):
            hint = "check that the token (HF_TOKEN or `hf auth login`) has write access to the namespace"
        raise FinephraseError(f"publish to {repo} stopped: {_one_line(e, secrets)}; {hint}") from None


def _repo_exists(api, p: "Publisher", args) -> bool:
    """Whether the repo exists. Nothing is created without a choice: a new repo needs --private or --public, and
    an existing one keeps its visibility (--private on a public one is refused: the data would be public)."""
    from huggingface_hub.errors import RepositoryNotFoundError

    repo = args.repo
    with _hub_errors(repo, p.secrets):
        try:
            info = p.call("reading the repo", lambda: api.repo_info(repo, repo_type="dataset"),
                          retries=max(args.retries, 5), base_wait=1)
        except RepositoryNotFoundError as e:
            if _status(e) != 404:
                raise
            if not (args.private or args.public):
                raise UsageError(f"{repo} does not exist yet: add --private (nothing public until you say so) or "
                                 f"--public to create it; nothing was uploaded") from None
            return False
    if args.private and not info.private:
        raise UsageError(f"{repo} exists and is public: --private does not change an existing repo; make it "
                         f"private on the Hub first, or publish without --private")
    if args.public and info.private:
        print(f"publish: {repo} exists and is private: it stays private (--public does not change an existing "
              f"repo)", file=sys.stderr, flush=True)
    return True


def _upload(api, p: "Publisher", args, root: Path, url: str, up, card_data: bytes, manifest_data: bytes,
            create: bool):
    """Create the repo (`create`: with the visibility chosen) and branch, upload the data files, then commit the
    card and manifest. Returns the last commit's info; an error is one line with what to do."""
    from huggingface_hub import CommitOperationAdd

    repo, revision = args.repo, args.revision or "main"
    size = sum(s for _, s in up)
    with _hub_errors(repo, p.secrets):
        if create:
            p.call("creating the repo", lambda: api.create_repo(repo, repo_type="dataset", private=bool(args.private),
                                                                exist_ok=True), retries=max(args.retries, 5),
                   base_wait=1)
        if revision != "main":
            p.call("creating the branch", lambda: api.create_branch(repo, branch=revision, repo_type="dataset",
                                                                    exist_ok=True),
                   retries=max(args.retries, 5), base_wait=1)
        print(f"publish: uploading {len(up):,} data files ({human_bytes(size)}) from {root} to {url} ...",
              file=sys.stderr, flush=True)

        if up:
            commits = upload_in_commits(api, p, repo, revision, root, up, HubLimits(),
                                        CommitPace(args.max_commits_per_hour))
            print(f"publish: data in {commits} commit(s) of at most {HubLimits().files_per_commit - 1} files",
                  file=sys.stderr, flush=True)
        print("publish: committing README.md and manifest.json ...", file=sys.stderr, flush=True)
        info = p.call("the card commit", lambda: api.create_commit(
            repo, repo_type="dataset", revision=revision, commit_message="Dataset card and manifest (finephrase)",
            operations=[CommitOperationAdd("README.md", card_data), CommitOperationAdd("manifest.json",
                                                                                       manifest_data)]),
            retries=max(args.retries, 5), base_wait=1)  # huggingface_hub does not retry this commit itself
    return info


def add_parser(sub):
    p = sub.add_parser(
        "publish", help="upload a finished run to a Hugging Face dataset repo (resumable, few commits)",
        description="Check the run and the Hub's limits (fewer than 10,000 files per folder, 100,000 per repo,\n"
        "files under 20 GB: a chunked run of a large job is refused with the `finephrase compact` command to run),\n"
        "refresh its card (DIR/README.md), create the dataset repo if needed (a new repo only with --private or\n"
        "--public: choose; an existing one keeps its visibility), upload the data in commits of\n"
        "fewer than 100 files, paced under the Hub's commit rate (retries on 429 and 5xx; rerun the same command\n"
        "after an interruption and it skips what the repo holds), then README.md and manifest.json in a last\n"
        "commit. The token comes from HF_TOKEN or `hf auth login`\n"
        "and is never shown. Not uploaded: .ledger/, logs/, .cache/, .dedup/, hidden, lock and temporary files.\n"
        "See docs/publishing.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  finephrase publish output/fwe --repo my-org/fwe-faq --dry-run\n"
        "  finephrase publish output/fwe --repo my-org/fwe-faq --private\n"
        "  HF_TOKEN=... finephrase publish output/fwe --repo my-org/fwe-faq --public --no-rejects --license odc-by")
    p.add_argument("run_dir", metavar="DIR", help="a finished run's output folder (or a dedup output)")
    p.add_argument("--repo", required=True, metavar="ORG/NAME", help="the dataset repo (created if missing)")
    visibility = p.add_mutually_exclusive_group()
    visibility.add_argument("--private", action="store_true",
                            help="create the repo private (an existing public repo is refused, not changed)")
    visibility.add_argument("--public", action="store_true",
                            help="create the repo public. A new repo needs --private or --public (refused without "
                            "one); an existing repo keeps its visibility and needs neither")
    p.add_argument("--revision", metavar="BRANCH", help="branch to upload to (default main; created if missing)")
    p.add_argument("--dry-run", action="store_true",
                   help="list what would be uploaded (files, sizes, total, target) and upload nothing; no token needed")
    p.add_argument("--retries", type=non_negative_int, default=2,
                   help="times to retry each step (creating the repo, each data commit, the card commit) after a "
                   "429 / 5xx / connection error, at least 5 (default 2, so 5); waits the server's Retry-After + 1 s, "
                   "else 1 s, 2 s, 4 s, ... Each retry continues where the last stopped")
    p.add_argument("--max-commits-per-hour", type=positive_int, default=100,
                   help=f"pace the data commits under this rate (default 100; the Hub answers 429 past about "
                   f"{COMMITS_PER_HOUR} per hour per repo)")
    card.add_card_options(p)
    p.set_defaults(func=publish)
