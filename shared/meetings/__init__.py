"""Meeting intelligence: a Teams transcript (WebVTT) becomes cited, deduplicated action items proposed on a card.

One module per concern, all pure (no I/O, no clock): :mod:`.vtt` parses the transcript, :mod:`.items` holds the
action item models and the evidence check, :mod:`.extraction` the structured-output schema and the model's
answer parsing, :mod:`.chunks` splits long transcripts within a token budget and merges items said twice,
:mod:`.dedup` drops items already open as issues, :mod:`.recap` builds the recap card of proposals and
:mod:`.nudges` the due-date reminders. Activities and the orchestration call these; nothing here talks to Graph.
"""
