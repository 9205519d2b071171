"""Captions and chapters: narration split into short cues timed against the speech, written as WebVTT.

A cue holds at most two lines of about 42 characters (the usual subtitle limits). Narration is cut at sentence
ends first, then at clause punctuation, then between words, and sentences short enough to share one line are
kept together. Within a scene, cue times are proportional to each cue's share of the text over the speech's
length; a cut that lands near a pause in the audio moves onto the pause, where the speaker actually stops.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass

MAX_LINE_CHARS = 42
MAX_LINES = 2
MIN_CUE_S = 0.6
SHORT_SENTENCE = 24  # characters: a sentence this short shares a cue when it fits


@dataclass(frozen=True)
class Cue:
    start_s: float
    end_s: float
    text: str  # lines separated by "\n"


@dataclass(frozen=True)
class Chapter:
    start_s: float
    end_s: float
    title: str


def wrap(text: str, width: int = MAX_LINE_CHARS) -> list[str]:
    """Greedy word wrap; a word longer than `width` gets a line of its own."""
    lines: list[str] = []
    for word in text.split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines


def balanced_lines(text: str, width: int = MAX_LINE_CHARS) -> list[str]:
    """One line if it fits, else two lines as even as the words allow (easier to read than greedy)."""
    words = text.split()
    if len(text) <= width or len(words) < 2:
        return [" ".join(words)]
    best = None
    for cut in range(1, len(words)):
        first, second = " ".join(words[:cut]), " ".join(words[cut:])
        if len(first) <= width and len(second) <= width:
            score = max(len(first), len(second))
            if best is None or score < best[0]:
                best = (score, [first, second])
    return best[1] if best else wrap(text, width)


def _fits(text: str) -> bool:
    return len(wrap(text)) <= MAX_LINES


def _pieces(sentence: str) -> list[str]:
    """A sentence too long for one cue, cut at clause punctuation, then between words, into cues that fit."""
    clauses = [c for c in re.split(r"(?<=[,;:\u2013\u2014])\s+", sentence) if c]
    pieces: list[str] = []
    for clause in clauses:
        if pieces and _fits(f"{pieces[-1]} {clause}"):
            pieces[-1] = f"{pieces[-1]} {clause}"
        elif _fits(clause):
            pieces.append(clause)
        else:
            words, current = clause.split(), ""
            for word in words:
                candidate = f"{current} {word}".strip()
                if current and not _fits(candidate):
                    pieces.append(current)
                    current = word
                else:
                    current = candidate
            if current:
                pieces.append(current)
    return pieces


def split_cues(text: str) -> list[str]:
    """Caption texts for `text`, in order, each fitting MAX_LINES lines of MAX_LINE_CHARS characters."""
    cues: list[str] = []
    for paragraph in (p for p in text.split("\n\n") if p.strip()):
        sentences = [s for s in re.split(r"(?<=[.!?])[\"')\]]*\s+", " ".join(paragraph.split())) if s]
        first = len(cues)  # cues of earlier paragraphs stay apart: the speaker pauses between paragraphs
        for sentence in sentences:
            short = len(sentence) < SHORT_SENTENCE or (len(cues) > first and len(cues[-1]) < SHORT_SENTENCE)
            if len(cues) > first and short and _fits(f"{cues[-1]} {sentence}"):
                cues[-1] = f"{cues[-1]} {sentence}"  # a short sentence reads better with its neighbour
            elif _fits(sentence):
                cues.append(sentence)
            else:
                cues.extend(_pieces(sentence))
    return cues


def time_cues(
    texts: Sequence[str],
    speech_start_s: float,
    speech_s: float,
    pauses: Sequence[tuple[float, float]] = (),
    snap_s: float = 0.6,
) -> list[Cue]:
    """Cues over [speech_start_s, speech_start_s + speech_s], each as long as its share of the characters.

    `pauses` are quiet stretches of the speech (seconds from its start); an inner cut within `snap_s` of a
    pause's middle moves there, as long as every cue keeps at least MIN_CUE_S.
    """
    if not texts:
        return []
    weights = [max(1, len(text)) for text in texts]
    total = float(sum(weights))
    cuts, running = [], 0.0
    for weight in weights[:-1]:
        running += weight
        cuts.append(speech_s * running / total)
    middles = [(a + b) / 2 for a, b in pauses if 0 < (a + b) / 2 < speech_s]
    snapped = []
    for index, cut in enumerate(cuts):
        nearest = min(middles, key=lambda m: abs(m - cut), default=None)
        if nearest is not None and abs(nearest - cut) <= snap_s:
            low = (snapped[-1] if snapped else 0.0) + MIN_CUE_S
            high = (cuts[index + 1] if index + 1 < len(cuts) else speech_s) - MIN_CUE_S
            if low <= nearest <= high:
                cut = nearest
        snapped.append(cut)
    bounds = [0.0, *snapped, speech_s]
    return [
        Cue(
            round(speech_start_s + bounds[i], 3),
            round(speech_start_s + bounds[i + 1], 3),
            "\n".join(balanced_lines(text)),
        )
        for i, text in enumerate(texts)
    ]


def shifted(cues: Sequence[Cue], offset_s: float) -> list[Cue]:
    return [Cue(round(c.start_s + offset_s, 3), round(c.end_s + offset_s, 3), c.text) for c in cues]


def timestamp(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"


def cue_payload(text: str) -> str:
    """Cue text as WebVTT cue payload: `&`, `<` and `>` escaped (so no `-->` and no tags survive), and no
    blank line inside, since a blank line ends the cue in every player."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    lines = escaped.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(line for line in lines if line.strip())


def webvtt(cues: Sequence[Cue]) -> str:
    blocks = ["WEBVTT", ""]
    for index, cue in enumerate(cues, start=1):
        blocks += [str(index), f"{timestamp(cue.start_s)} --> {timestamp(cue.end_s)}", cue_payload(cue.text), ""]
    return "\n".join(blocks)


def chapters_webvtt(chapters: Sequence[Chapter]) -> str:
    """Chapters as a WebVTT `kind="chapters"` track: one cue per chapter, its title as the text."""
    return webvtt([Cue(c.start_s, c.end_s, c.title) for c in chapters])


def chapters_json(chapters: Sequence[Chapter]) -> str:
    return json.dumps([asdict(c) for c in chapters], indent=2)


def parse_webvtt(text: str) -> list[Cue]:
    """Cues of a WebVTT file written by `webvtt` (for tests and for reading a module back)."""
    cues = []
    for block in text.strip().split("\n\n")[1:]:
        lines = block.split("\n")
        timing = next(i for i, line in enumerate(lines) if "-->" in line)
        start, end = (part.strip() for part in lines[timing].split("-->"))
        cues.append(Cue(_seconds(start), _seconds(end), html.unescape("\n".join(lines[timing + 1 :]))))
    return cues


def _seconds(stamp: str) -> float:
    hours, minutes, seconds = stamp.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
