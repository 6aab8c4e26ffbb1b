"""A WebVTT parser for Microsoft Teams meeting transcripts: cues with timings, speaker and text.

Sources:

* W3C, "WebVTT: The Web Video Text Tracks Format" (w3.org/TR/webvtt1, §4 syntax): an optional U+FEFF byte order
  mark, the string ``WEBVTT`` followed by a space, tab or line end, blocks separated by blank lines; a ``NOTE``
  block (``NOTE`` then space, tab or line end) is a comment; ``STYLE`` and ``REGION`` blocks precede the cues; a
  cue is an optional identifier line (never containing ``-->``), the timings line ``start --> end`` (timestamps
  ``[hh:]mm:ss.ttt``, hours two or more digits) with optional settings, then payload lines up to a blank line; the
  voice span ``<v Name>…</v>`` (also ``<v.class Name>``; the end tag may be omitted) names the speaker; other
  spans (``<c>``, ``<i>``, ``<b>``, ``<u>``, ``<lang>``, ``<ruby>``) and inline timestamps ``<00:01.000>`` are
  markup; ``&amp; &lt; &gt; &lrm; &rlm; &nbsp;`` are character references. Line ends may be CRLF, LF or CR.
* Microsoft Graph, "Get callTranscript" (learn.microsoft.com/graph/api/calltranscript-get, example "Get a
  callTranscript content", ``GET …/onlineMeetings/{id}/transcripts/{id}/content?$format=text/vtt``): Teams writes
  one cue per utterance, each payload a single ``<v Display Name>text</v>`` span, with a cue identifier line
  (``<guid>/<n>-<m>``). Transcripts downloaded from Teams have also been seen with unpadded timings
  (``0:0:3.450``); this parser accepts one or more digits per field so such files are not lost (a deliberate
  leniency over the spec, which requires two).

The parser is strict where a mistake would lose text: a file without the ``WEBVTT`` header or with a malformed
timing line raises :class:`VttError` naming the line; it never guesses a speaker.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

_TIMING = re.compile(
    r"^(?P<start>(?:\d+:)?\d+:\d+\.\d+)[ \t]+-->[ \t]+(?P<end>(?:\d+:)?\d+:\d+\.\d+)(?:[ \t]+(?P<settings>.*))?$"
)
_VOICE = re.compile(r"<v(?:\.[^ \t>]+)*[ \t]+(?P<name>[^>]+)>", re.IGNORECASE)
_TAG = re.compile(r"</?[a-zA-Z][^>]*>|<\d[\d:.]*>")
_WS = re.compile(r"\s+")


class VttError(ValueError):
    """The text is not a WebVTT file this parser can read (the message names the line)."""


@dataclass(frozen=True)
class Cue:
    """One cue: its identifier (may be empty), timings in milliseconds, speaker (``None`` without a voice tag) and
    plain text (markup removed, lines joined with ``\\n``)."""

    identifier: str
    start_ms: int
    end_ms: int
    speaker: str | None
    text: str

    @property
    def timestamp(self) -> str:
        """The start as ``hh:mm:ss.mmm``: how items cite the cue."""
        return format_timestamp(self.start_ms)


@dataclass(frozen=True)
class Transcript:
    """A parsed transcript: its cues in file order."""

    cues: tuple[Cue, ...]

    @property
    def speakers(self) -> list[str]:
        """Speakers in order of first appearance."""
        seen: dict[str, None] = {}
        for cue in self.cues:
            if cue.speaker:
                seen.setdefault(cue.speaker, None)
        return list(seen)

    def cues_at(self, timestamp: str) -> list[Cue]:
        """The cues a cited timestamp points at: those starting exactly then, else those spanning it."""
        at = parse_timestamp(timestamp)
        exact = [cue for cue in self.cues if cue.start_ms == at]
        return exact or [cue for cue in self.cues if cue.start_ms <= at < cue.end_ms]


def parse_timestamp(value: str) -> int:
    """Milliseconds of a WebVTT timestamp ``[h:]m:s.fff`` (fractions of any length are rounded to ms)."""
    match = re.fullmatch(r"(?:(\d+):)?(\d+):(\d+)\.(\d+)", value.strip())
    if match is None:
        raise VttError(f"not a WebVTT timestamp: {value[:40]!r}")
    hours, minutes, seconds, fraction = match.groups()
    if int(minutes) > 59 or int(seconds) > 59:
        raise VttError(f"minutes and seconds must be below 60: {value[:40]!r}")
    millis = round(int(fraction) * 1000 / 10 ** len(fraction))
    return ((int(hours or 0) * 60 + int(minutes)) * 60 + int(seconds)) * 1000 + millis


def format_timestamp(millis: int) -> str:
    """``hh:mm:ss.mmm`` for a number of milliseconds."""
    seconds, ms = divmod(millis, 1000)
    minutes, sec = divmod(seconds, 60)
    hours, mins = divmod(minutes, 60)
    return f"{hours:02d}:{mins:02d}:{sec:02d}.{ms:03d}"


def _payload(lines: list[str]) -> tuple[str | None, str]:
    raw = "\n".join(lines)
    voice = _VOICE.search(raw)
    speaker = html.unescape(voice.group("name")).strip() if voice else None
    text = html.unescape(_TAG.sub("", raw)).replace("\u200e", "").replace("\u200f", "").replace("\xa0", " ")
    return speaker or None, "\n".join(line.strip() for line in text.split("\n")).strip()


def parse_vtt(text: str) -> Transcript:
    """Parse a WebVTT transcript (``str``; decode bytes as UTF-8 first). Raises :class:`VttError`."""
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    if not re.match(r"^WEBVTT(?:[ \t]|$)", lines[0]):
        raise VttError("line 1: a WebVTT file starts with 'WEBVTT'")
    cues: list[Cue] = []
    index = 1
    while index < len(lines) and lines[index].strip():  # the rest of the header block
        index += 1
    while index < len(lines):
        if not lines[index].strip():
            index += 1
            continue
        start = index
        while index < len(lines) and lines[index].strip():
            index += 1
        block = lines[start:index]
        head = block[0]
        if re.match(r"^(NOTE|STYLE|REGION)(?:[ \t]|$)", head) and "-->" not in head:
            continue
        if "-->" in head:
            identifier, timing, payload = "", head, block[1:]
        elif len(block) > 1 and "-->" in block[1]:
            identifier, timing, payload = head.strip(), block[1], block[2:]
        else:
            raise VttError(f"line {start + 1}: a block that is neither a cue, a NOTE, a STYLE nor a REGION")
        match = _TIMING.match(timing.strip())
        if match is None:
            raise VttError(f"line {start + 1 + (1 if identifier else 0)}: malformed cue timings")
        begin, end = parse_timestamp(match["start"]), parse_timestamp(match["end"])
        if end <= begin:
            raise VttError(f"line {start + 1}: a cue must end after it starts")
        speaker, body = _payload(payload)
        cues.append(Cue(identifier, begin, end, speaker, body))
    return Transcript(tuple(cues))


def normalize(text: str) -> str:
    """Text for comparison: typographic quotes and dashes folded, case folded, whitespace collapsed."""
    folded = (text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
              .replace("\u2013", "-").replace("\u2014", "-"))
    return _WS.sub(" ", folded).strip().casefold()
