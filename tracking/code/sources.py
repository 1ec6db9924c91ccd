"""Where registered code comes from: a directory under CODE_ROOT, or a git URL at a commit.

A git project is checked out once per commit into CODE_CACHE_DIR/<commit>/ (on the web
server at registration, to read its MLproject, and on each worker before a run); later runs
of the same commit reuse the checkout. Git runs without a terminal prompt, with a timeout,
and only over file, git, http(s) and ssh (never `ext::`, which runs commands).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from .mlproject import MLprojectError

GIT_TIMEOUT = 120
SHA = re.compile(r"^[0-9a-f]{40}$")


def code_root() -> Path:
    from django.conf import settings

    return Path(settings.CODE_ROOT).resolve()


def cache_dir() -> Path:
    from django.conf import settings

    return Path(settings.CODE_CACHE_DIR).resolve()


def directory_check(path: str) -> Path:
    """The resolved directory, which must exist under CODE_ROOT (symlinks resolved first)."""
    root = code_root()
    if not path or not str(path).strip():
        raise MLprojectError("path", "give a directory under CODE_ROOT")
    candidate = Path(str(path).strip())
    target = (candidate if candidate.is_absolute() else root / candidate).resolve()
    if target != root and root not in target.parents:
        raise MLprojectError("path", f"{path} is outside CODE_ROOT ({root}); the workers may only run code "
                                     "from there")
    if not target.is_dir():
        raise MLprojectError("path", f"{target} is not a directory the server can read")
    return target


def directory_commit(path: Path) -> str:
    """The HEAD commit when the directory is in a git work tree, else ""."""
    try:
        out = _git(["rev-parse", "HEAD"], cwd=path, timeout=10)
    except MLprojectError:
        return ""
    return out.strip() if SHA.match(out.strip()) else ""


def _env():
    return {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ALLOW_PROTOCOL": "file:git:http:https:ssh",
            "GIT_ASKPASS": "/bin/true", "GIT_SSH_COMMAND": "ssh -o BatchMode=yes"}


def _git(args, *, cwd=None, timeout=GIT_TIMEOUT, field="git_url") -> str:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise MLprojectError(field, f"git {args[0]} took longer than {timeout}s") from None
    except FileNotFoundError:
        raise MLprojectError(field, "git is not installed on this machine") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        raise MLprojectError(field, (lines[-1] if lines else f"git {args[0]} failed")[:300])
    return done.stdout


def git_url_check(url: str) -> str:
    url = (url or "").strip()
    if not url:
        raise MLprojectError("git_url", "give a git URL")
    if "::" in url.split("/")[0] or url.startswith("-"):
        raise MLprojectError("git_url", "only file, git, http(s) and ssh URLs are allowed")
    return url


def git_resolve(url: str, ref: str) -> str:
    """The commit a branch, tag or commit id names in the repository at `url`; MLprojectError
    naming git_ref when there is no such ref."""
    url, ref = git_url_check(url), (ref or "").strip() or "HEAD"
    if ref.startswith("-"):
        raise MLprojectError("git_ref", "not a valid ref")
    listing = _git(["ls-remote", "--", url], timeout=GIT_TIMEOUT)
    refs = {}
    for line in listing.splitlines():
        sha, _, name = line.partition("\t")
        refs[name.strip()] = sha.strip()
    for name in (ref, f"refs/heads/{ref}", f"refs/tags/{ref}^{{}}", f"refs/tags/{ref}"):
        if name in refs:
            return refs[name]
    if re.fullmatch(r"[0-9a-f]{7,40}", ref):
        # A commit id: only a fetch can tell whether the repository has it.
        path = checkout(url, ref)
        return _git(["rev-parse", "HEAD"], cwd=path, field="git_ref").strip()
    raise MLprojectError("git_ref", f"{ref!r} is not a branch, tag or commit of {url}")


def checkout(url: str, commit: str) -> Path:
    """A working tree of `url` at `commit`, cloned once per commit into the cache."""
    url = git_url_check(url)
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    if SHA.match(commit):
        target = root / commit
        if (target / ".git").is_dir():
            return target
    staging = Path(tempfile.mkdtemp(prefix="clone-", dir=root))
    try:
        _git(["clone", "--quiet", "--no-checkout", "--", url, str(staging)])
        try:
            _git(["checkout", "--quiet", "--detach", commit], cwd=staging, field="git_ref")
        except MLprojectError:
            raise MLprojectError("git_ref", f"{commit!r} is not a commit of {url}") from None
        full = _git(["rev-parse", "HEAD"], cwd=staging).strip()
        target = root / full
        if (target / ".git").is_dir():
            return target
        try:
            os.rename(staging, target)  # atomic: another worker's checkout of the same commit wins
        except OSError:
            if not (target / ".git").is_dir():
                raise
        return target
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
