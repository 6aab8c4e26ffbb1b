"""A stateful, strict fake of GitHub's REST API on loopback (see :mod:`.fake`), with its records and routes."""

from tools.fakes.github.fake import FakeGitHub
from tools.fakes.github.records import (
    WRITE_METHODS,
    FakeGitHubError,
    RecordedCall,
    WriteEvent,
)

__all__ = ["WRITE_METHODS", "FakeGitHub", "FakeGitHubError", "RecordedCall", "WriteEvent"]
