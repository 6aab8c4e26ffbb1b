"""Reading one text file of a repository through the contents API (``repos/get-content``), 404 as None.

``GET /repos/{owner}/{repo}/contents/{path}`` answers a file as an object with ``type: "file"``,
``encoding: "base64"`` and ``content`` (GitHub's REST reference, "Get repository content"; githubkit
``ReposClient.get_content``); a directory as an array; a missing file, repository or ref — and a private
repository the installation cannot see — as 404. Files over 1 MB come without content (``encoding: "none"``):
read as "not a usable file" here, since no policy file is that large.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from shared.platforms.github.client import RequestFailed

#: Larger than this is refused before decoding (a policy file is a few hundred bytes).
MAX_FILE_BYTES = 256 * 1024


class RepoFileError(ValueError):
    """The path exists but is not a readable text file (a directory, too large, not UTF-8)."""


def read_repo_file(github: Any, repo: str, path: str, ref: str | None = None) -> str | None:
    """The UTF-8 text of ``path`` in ``repo`` (``owner/name``) at ``ref`` (default branch when None), or None
    when GitHub answers 404. Other failures raise (githubkit's ``RequestFailed`` / ``RequestError``), so a
    caller never mistakes an outage for "no file"."""
    owner, name = repo.split("/", 1)
    extra = {"ref": ref} if ref else {}
    try:
        data = github.rest.repos.get_content(owner, name, path, **extra).json()
    except RequestFailed as exc:
        if exc.response.status_code == 404:
            return None
        raise
    if not isinstance(data, dict) or data.get("type") != "file":
        raise RepoFileError(f"{path} in {repo} is not a file")
    if data.get("encoding") != "base64" or int(data.get("size") or 0) > MAX_FILE_BYTES:
        raise RepoFileError(f"{path} in {repo} is too large to read")
    try:
        return base64.b64decode(data.get("content") or "").decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise RepoFileError(f"{path} in {repo} is not UTF-8 text") from None


def file_reader(github_for_repo: Any) -> Any:
    """A ``shared.act.policy.FileReader`` over ``github_for_repo(repo) -> client``: ``(repo, path) -> text|None``.

    A path that is not a readable text file raises :class:`RepoFileError` (a ``ValueError``), which the policy
    loader reports as a bad file, never as "no file".
    """
    def read(repo: str, path: str) -> str | None:
        return read_repo_file(github_for_repo(repo), repo, path)
    return read
