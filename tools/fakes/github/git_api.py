"""The fake GitHub's Git Data routes (blobs, trees, commits, refs) and its object store.

Built from GitHub's REST description (github/rest-api-description, ``descriptions/api.github.com``), by operation
id: ``git/create-blob``, ``git/create-tree``, ``git/create-commit``, ``git/get-commit``, ``git/get-ref``,
``git/create-ref``, ``git/update-ref``; the shapes are githubkit's models of them (``ShortBlob``, ``GitTree``,
``GitCommit``, ``GitRef``). Trees are stored flat (full paths), which the API allows on input ("path" may hold
slashes) and which is all ``base_tree`` semantics need; ``sha: null`` in a tree entry deletes that path.

A branch's files are also what the contents route (``repos_api.FILES``) serves: creating or moving a
``refs/heads/<b>`` ref writes that branch's snapshot there, and a branch seeded with ``repos_api.add_file`` gets a
root commit the first time the Git Data routes look at it.

Refusals (each modelled on what GitHub answers; sources in brackets):

=====================================================  ======  ================================================
request                                                status  message
=====================================================  ======  ================================================
create-blob with an ``encoding`` not utf-8/base64      422     Validation Failed (encoding) [REST reference]
create-tree with an unknown ``base_tree``              422     ``base_tree`` is not a valid tree oid [modelled]
create-tree entry with an unknown blob ``sha``         422     tree.sha … is not a valid blob [modelled]
create-commit with an unknown ``tree``                 422     Tree SHA does not exist [GitHub's answer, as
                                                               public clients' tests quote it]
create-commit with an unknown parent                   422     Parent SHA does not exist or is not a commit
                                                               object [idem; the REST reference lists 422]
get-ref / get-commit unknown                           404     Not Found
create-ref that exists                                 422     Reference already exists [usk6666/yorishiro-proxy
                                                               #82, GitHub's answer quoted]
create-ref not ``refs/…`` with two slashes             422     Reference name must start with 'refs/' and have
                                                               at least two slashes. [modelled]
create-ref / update-ref to an unknown sha              422     Object does not exist [modelled]
update-ref of a missing ref                            422     Reference does not exist [solana-foundation/
                                                               solana-developer-platform #602]
update-ref not a fast-forward, ``force`` false         422     Update is not a fast forward [octokit.js #21]
create-/update-ref of a protected branch               422     Protected branch update failed for <ref>.
                                                               [GitHub's GH006 wording for a refused push;
                                                               actions/github-script #455 shows the REST
                                                               ref routes answer 422 there]
=====================================================  ======  ================================================

Secondary rate limits and injected faults apply before any of this, as for every route of the fake.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from tools.fakes.github import repos_api
from tools.fakes.github.issues_api import reject_unknown_fields
from tools.fakes.github.records import (
    JSON,
    OWNER_REPO,
    Handler,
    HttpError,
    RequestContext,
    WriteEvent,
    error_body,
    timestamp,
)

if TYPE_CHECKING:
    from tools.fakes.github.fake import FakeGitHub

_D = "https://docs.github.com/rest/git"


@dataclass
class Commit:
    sha: str
    tree: str
    parents: list[str]
    message: str
    author: dict[str, str]
    committer: dict[str, str]


@dataclass
class GitStore:
    """One fake's objects and refs (repo full name, lower-cased, → …)."""

    blobs: dict[str, bytes] = field(default_factory=dict)
    trees: dict[str, dict[str, str]] = field(default_factory=dict)  # tree sha → path → blob sha
    commits: dict[str, Commit] = field(default_factory=dict)
    refs: dict[str, dict[str, str]] = field(default_factory=dict)  # repo → "refs/heads/x" → commit sha
    protected: dict[str, set[str]] = field(default_factory=dict)  # repo → branch names


STORES: WeakKeyDictionary[Any, GitStore] = WeakKeyDictionary()


def store(fake: FakeGitHub) -> GitStore:
    return STORES.setdefault(fake, GitStore())


def _hash(kind: str, data: bytes) -> str:
    return hashlib.sha1(f"{kind} {len(data)}\0".encode() + data).hexdigest()  # noqa: S324 - git object ids


def put_blob(s: GitStore, data: bytes) -> str:
    sha = _hash("blob", data)
    s.blobs[sha] = data
    return sha


def put_tree(s: GitStore, entries: dict[str, str]) -> str:
    sha = _hash("tree", json.dumps(sorted(entries.items())).encode())
    s.trees[sha] = dict(entries)
    return sha


def put_commit(s: GitStore, tree: str, parents: list[str], message: str, who: dict[str, str]) -> str:
    raw = json.dumps([tree, parents, message, who]).encode()
    sha = _hash("commit", raw)
    s.commits[sha] = Commit(sha, tree, list(parents), message, dict(who), dict(who))
    return sha


def snapshot(s: GitStore, commit_sha: str) -> dict[str, bytes]:
    """The files of a commit (path → bytes)."""
    tree = s.trees[s.commits[commit_sha].tree]
    return {path: s.blobs[blob] for path, blob in tree.items()}


def is_ancestor(s: GitStore, ancestor: str, descendant: str) -> bool:
    seen: set[str] = set()
    todo = [descendant]
    while todo:
        sha = todo.pop()
        if sha == ancestor:
            return True
        if sha in seen or sha not in s.commits:
            continue
        seen.add(sha)
        todo.extend(s.commits[sha].parents)
    return False


def _who(fake: FakeGitHub, name: str) -> dict[str, str]:
    return {"name": name, "email": f"{name}@users.noreply.github.com", "date": timestamp(fake.clock())}


def branch_head(fake: FakeGitHub, repo: str, branch: str) -> str | None:
    """The commit ``refs/heads/<branch>`` points at; a branch seeded only as files gets a root commit now."""
    s = store(fake)
    refs = s.refs.setdefault(repo.lower(), {})
    ref = f"refs/heads/{branch}"
    if ref in refs:
        return refs[ref]
    files = repos_api.FILES.get(fake, {}).get(repo.lower(), {}).get(branch)
    if files is None:
        return None
    tree = put_tree(s, {path: put_blob(s, data) for path, data in files.items()})
    who = {"name": "seed", "email": "seed@example.invalid", "date": "2026-01-01T00:00:00Z"}
    refs[ref] = put_commit(s, tree, [], f"seed {branch}", who)
    return refs[ref]


def set_ref(fake: FakeGitHub, repo: str, ref: str, sha: str, ctx: RequestContext | None = None) -> None:
    """Point ``ref`` at ``sha``; a branch's files become what the contents route serves. Through the API
    (``ctx``), moving the head branch of an open pull request is a push GitHub tells as ``synchronize``."""
    s = store(fake)
    before = s.refs.setdefault(repo.lower(), {}).get(ref)
    s.refs[repo.lower()][ref] = sha
    if ref.startswith("refs/heads/"):
        branch = ref.removeprefix("refs/heads/")
        repos_api.FILES.setdefault(fake, {}).setdefault(repo.lower(), {})[branch] = snapshot(s, sha)
        if ctx is not None and before is not None and before != sha:
            from tools.fakes.github import pulls_api  # pulls are built on this module's store

            for pr in pulls_api.pulls(fake, repo).values():
                if pr.head == branch and pr.state == "open":
                    pr.updated_at = fake.clock()
                    ctx.writes.append(WriteEvent(
                        "push", fake._repo(repo).full_name, pr.number, 5_000_000 + pr.number,
                        dict(fake._users[ctx.login]), {"ref": ref, "before": before, "after": sha},
                        pulls_api.render_pull(fake, repo, pr), request_id=ctx.request_id))


def commit_files(fake: FakeGitHub, repo: str, branch: str, files: dict[str, str | None], message: str,
                 login: str, base: str | None = None) -> str:
    """Seeding helper (no HTTP): commit ``files`` (None deletes) on ``branch`` — created from ``base`` when it does
    not exist — and move the branch. Returns the new commit sha."""
    s = store(fake)
    parent = branch_head(fake, repo, branch)
    if parent is None:
        parent = branch_head(fake, repo, base or repos_api.DEFAULT_BRANCH)
    entries = dict(s.trees[s.commits[parent].tree]) if parent else {}
    for path, text in files.items():
        if text is None:
            entries.pop(path, None)
        else:
            entries[path] = put_blob(s, text.encode())
    sha = put_commit(s, put_tree(s, entries), [parent] if parent else [], message, _who(fake, login))
    set_ref(fake, repo, f"refs/heads/{branch}", sha)
    return sha


def protect_branch(fake: FakeGitHub, repo: str, branch: str) -> None:
    """Mark ``branch`` protected: the ref routes refuse to create or move it."""
    with fake._lock:
        store(fake).protected.setdefault(repo.lower(), set()).add(branch)


# ----------------------------------------------------------------------------------------------- rendering
def _repo(ctx: RequestContext) -> str:
    return f"{ctx.params['owner']}/{ctx.params['repo']}"


def _unprocessable(ctx: RequestContext, message: str) -> HttpError:
    return HttpError(422, error_body(422, message, ctx.doc))


def render_commit(fake: FakeGitHub, repo: str, c: Commit) -> dict[str, Any]:
    api = f"{fake._api}/repos/{repo}/git"
    return {"sha": c.sha, "node_id": f"C_{c.sha[:20]}", "url": f"{api}/commits/{c.sha}",
            "html_url": f"https://github.com/{repo}/commit/{c.sha}", "author": c.author, "committer": c.committer,
            "message": c.message, "tree": {"sha": c.tree, "url": f"{api}/trees/{c.tree}"},
            "parents": [{"sha": p, "url": f"{api}/commits/{p}", "html_url": f"https://github.com/{repo}/commit/{p}"}
                        for p in c.parents],
            "verification": {"verified": False, "reason": "unsigned", "signature": None, "payload": None,
                             "verified_at": None}}


def _render_ref(fake: FakeGitHub, repo: str, ref: str, sha: str) -> dict[str, Any]:
    return {"ref": ref, "node_id": f"REF_{hashlib.sha1(ref.encode()).hexdigest()[:16]}",  # noqa: S324
            "url": f"{fake._api}/repos/{repo}/git/{ref}",
            "object": {"type": "commit", "sha": sha, "url": f"{fake._api}/repos/{repo}/git/commits/{sha}"}}


def _render_tree(fake: FakeGitHub, repo: str, sha: str) -> dict[str, Any]:
    s = store(fake)
    api = f"{fake._api}/repos/{repo}/git"
    return {"sha": sha, "url": f"{api}/trees/{sha}", "truncated": False,
            "tree": [{"path": path, "mode": "100644", "type": "blob", "sha": blob, "size": len(s.blobs[blob]),
                      "url": f"{api}/blobs/{blob}"} for path, blob in sorted(s.trees[sha].items())]}


# ------------------------------------------------------------------------------------------------- routes
def create_blob(fake: FakeGitHub, ctx: RequestContext) -> tuple[int, JSON]:
    """``git/create-blob``: ``{content, encoding}`` → 201 ``{url, sha}``."""
    body = ctx.body
    reject_unknown_fields(fake, ctx, {"content", "encoding"})
    content, encoding = body.get("content"), body.get("encoding", "utf-8")
    if not isinstance(content, str):
        raise HttpError(422, error_body(422, "Invalid request.\n\n\"content\" wasn't supplied.", ctx.doc))
    if encoding == "utf-8":
        data = content.encode()
    elif encoding == "base64":
        try:
            data = base64.b64decode(content, validate=True)
        except binascii.Error as exc:
            raise _unprocessable(ctx, "Invalid base64 content") from exc
    else:
        raise HttpError(422, error_body(422, "Validation Failed", ctx.doc, errors=[
            {"resource": "Blob", "field": "encoding", "code": "invalid"}]))
    sha = put_blob(store(fake), data)
    return 201, {"url": f"{fake._api}/repos/{_repo(ctx)}/git/blobs/{sha}", "sha": sha}


def create_tree(fake: FakeGitHub, ctx: RequestContext) -> tuple[int, JSON]:
    """``git/create-tree``: ``{tree: [{path, mode, type, sha|content}], base_tree?}`` → 201 tree."""
    s = store(fake)
    reject_unknown_fields(fake, ctx, {"tree", "base_tree"})
    base = ctx.body.get("base_tree")
    if base is not None and base not in s.trees:
        raise _unprocessable(ctx, "base_tree is not a valid tree oid")
    entries = dict(s.trees[base]) if base else {}
    items = ctx.body.get("tree")
    if not isinstance(items, list):
        raise HttpError(422, error_body(422, "Invalid request.\n\n\"tree\" wasn't supplied.", ctx.doc))
    for item in items:
        path = item.get("path") if isinstance(item, dict) else None
        if not isinstance(path, str) or not path or item.get("type", "blob") != "blob" or \
                item.get("mode", "100644") not in ("100644", "100755"):
            raise _unprocessable(ctx, "Must supply a valid tree.path, tree.mode (blob modes) and tree.type blob")
        if "content" in item:
            entries[path] = put_blob(s, str(item["content"]).encode())
        elif item.get("sha") is None:
            entries.pop(path, None)
        elif item["sha"] in s.blobs:
            entries[path] = item["sha"]
        else:
            raise _unprocessable(ctx, f"tree.sha {item['sha']} is not a valid blob")
    sha = put_tree(s, entries)
    return 201, _render_tree(fake, _repo(ctx), sha)


def create_commit(fake: FakeGitHub, ctx: RequestContext) -> tuple[int, JSON]:
    """``git/create-commit``: ``{message, tree, parents, author?}`` → 201 commit (the token's user commits)."""
    s = store(fake)
    body = ctx.body
    reject_unknown_fields(fake, ctx, {"message", "tree", "parents", "author"})
    if not isinstance(body.get("message"), str) or not isinstance(body.get("tree"), str):
        raise HttpError(422, error_body(422, "Invalid request.\n\n\"message\", \"tree\" weren't supplied.", ctx.doc))
    if body["tree"] not in s.trees:
        raise _unprocessable(ctx, "Tree SHA does not exist")
    parents = body.get("parents") or []
    if not isinstance(parents, list) or any(p not in s.commits for p in parents):
        raise _unprocessable(ctx, "Parent SHA does not exist or is not a commit object")
    who = _who(fake, ctx.login)
    author = body.get("author")
    if isinstance(author, dict) and isinstance(author.get("name"), str) and isinstance(author.get("email"), str):
        who = {"name": author["name"], "email": author["email"], "date": who["date"]}
    sha = put_commit(s, body["tree"], parents, body["message"], who)
    return 201, render_commit(fake, _repo(ctx), s.commits[sha])


def get_commit(fake: FakeGitHub, ctx: RequestContext) -> tuple[int, JSON]:
    """``git/get-commit``."""
    c = store(fake).commits.get(ctx.params["sha"])
    if c is None:
        raise HttpError(404, error_body(404, "Not Found", ctx.doc))
    return 200, render_commit(fake, _repo(ctx), c)


def _known_ref(fake: FakeGitHub, repo: str, ref: str) -> str | None:
    if ref.startswith("refs/heads/"):
        return branch_head(fake, repo, ref.removeprefix("refs/heads/"))
    return store(fake).refs.get(repo.lower(), {}).get(ref)


def _check_protected(fake: FakeGitHub, ctx: RequestContext, repo: str, ref: str) -> None:
    if ref.startswith("refs/heads/") and ref.removeprefix("refs/heads/") in store(fake).protected.get(
            repo.lower(), set()):
        raise _unprocessable(ctx, f"Protected branch update failed for {ref}.")


def get_ref(fake: FakeGitHub, ctx: RequestContext) -> tuple[int, JSON]:
    """``git/get-ref``: ``GET /git/ref/{ref}`` with ``ref`` as ``heads/<branch>``."""
    repo, ref = _repo(ctx), "refs/" + ctx.params["ref"]
    sha = _known_ref(fake, repo, ref)
    if sha is None:
        raise HttpError(404, error_body(404, "Not Found", ctx.doc))
    return 200, _render_ref(fake, repo, ref, sha)


def create_ref(fake: FakeGitHub, ctx: RequestContext) -> tuple[int, JSON]:
    """``git/create-ref``: ``{ref: "refs/heads/x", sha}`` → 201."""
    reject_unknown_fields(fake, ctx, {"ref", "sha"})
    repo, ref, sha = _repo(ctx), ctx.body.get("ref"), ctx.body.get("sha")
    if not isinstance(ref, str) or not ref.startswith("refs/") or ref.count("/") < 2:
        raise _unprocessable(ctx, "Reference name must start with 'refs/' and have at least two slashes.")
    if not isinstance(sha, str) or sha not in store(fake).commits:
        raise _unprocessable(ctx, "Object does not exist")
    if _known_ref(fake, repo, ref) is not None:
        raise _unprocessable(ctx, "Reference already exists")
    _check_protected(fake, ctx, repo, ref)
    set_ref(fake, repo, ref, sha, ctx)
    return 201, _render_ref(fake, repo, ref, sha)


def update_ref(fake: FakeGitHub, ctx: RequestContext) -> tuple[int, JSON]:
    """``git/update-ref``: ``PATCH /git/refs/{ref}`` ``{sha, force}``; fast-forward only unless forced."""
    reject_unknown_fields(fake, ctx, {"sha", "force"})
    repo, ref, sha = _repo(ctx), "refs/" + ctx.params["ref"], ctx.body.get("sha")
    s = store(fake)
    current = _known_ref(fake, repo, ref)
    if current is None:
        raise _unprocessable(ctx, "Reference does not exist")
    if not isinstance(sha, str) or sha not in s.commits:
        raise _unprocessable(ctx, "Object does not exist")
    _check_protected(fake, ctx, repo, ref)
    if ctx.body.get("force") is not True and not is_ancestor(s, current, sha):
        raise _unprocessable(ctx, "Update is not a fast forward")
    set_ref(fake, repo, ref, sha, ctx)
    return 200, _render_ref(fake, repo, ref, sha)


ROUTE_SPECS: list[tuple[str, str, Handler, str]] = [
    ("POST", OWNER_REPO + r"/git/blobs", create_blob, f"{_D}/blobs#create-a-blob"),
    ("POST", OWNER_REPO + r"/git/trees", create_tree, f"{_D}/trees#create-a-tree"),
    ("POST", OWNER_REPO + r"/git/commits", create_commit, f"{_D}/commits#create-a-commit"),
    ("GET", OWNER_REPO + r"/git/commits/(?P<sha>[0-9a-f]{40})", get_commit, f"{_D}/commits#get-a-commit-object"),
    ("GET", OWNER_REPO + r"/git/ref/(?P<ref>.+)", get_ref, f"{_D}/refs#get-a-reference"),
    ("POST", OWNER_REPO + r"/git/refs", create_ref, f"{_D}/refs#create-a-reference"),
    ("PATCH", OWNER_REPO + r"/git/refs/(?P<ref>.+)", update_ref, f"{_D}/refs#update-a-reference"),
]
ROUTES = [(m, re.compile(p), h, d) for m, p, h, d in ROUTE_SPECS]
