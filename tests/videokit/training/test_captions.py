"""Captions: short cues, timed against the speech they caption; WebVTT out and back."""

from __future__ import annotations

import itertools

import pytest
import webvtt as webvtt_py

from tests.videokit.training.training_media import tone_speech
from videokit.training.captions import (
    MAX_LINE_CHARS,
    Chapter,
    Cue,
    chapters_json,
    chapters_webvtt,
    parse_webvtt,
    split_cues,
    time_cues,
    timestamp,
    webvtt,
)
from videokit.training.narration import EspeakSpeech, pauses

NARRATION = (
    "Everything starts with the care label. Every product we sell has one, usually sewn into a side seam or "
    "printed inside a pocket, and the symbols follow an international standard, so once you know them you can "
    "read any label in any shop. Ready?\n\nThe tub tells you how to wash."
)


def test_cues_hold_at_most_two_short_lines_and_keep_every_word():
    cues = split_cues(NARRATION)
    assert len(cues) >= 4
    for cue in cues:
        lines = time_cues([cue], 0.0, 1.0)[0].text.split("\n")
        assert len(lines) <= 2 and all(len(line) <= MAX_LINE_CHARS for line in lines), cue
    assert " ".join(cues).split() == NARRATION.split()
    assert "Ready?" in cues[-2]  # a short sentence shares a cue with its neighbour


def test_cue_times_follow_the_text_and_fill_the_speech_exactly():
    texts = ["a" * 10, "b" * 30, "c" * 60]
    cues = time_cues(texts, speech_start_s=0.5, speech_s=10.0)
    assert [(c.start_s, c.end_s) for c in cues] == [(0.5, 1.5), (1.5, 4.5), (4.5, 10.5)]


def test_cuts_move_onto_nearby_pauses_in_the_audio():
    speech = tone_speech(10.0, gaps=((1.2, 1.5), (7.0, 7.4)))
    quiet = pauses(speech)
    assert [(round(a, 2), round(b, 2)) for a, b in quiet] == [(1.2, 1.5), (7.0, 7.4)]
    cues = time_cues(["a" * 10, "b" * 30, "c" * 60], 0.5, 10.0, quiet)
    # Proportional cuts at 1.0 s and 4.0 s of speech: the first moves onto the pause at 1.35 s, the second has
    # no pause within reach and stays.
    assert [c.end_s for c in cues] == [1.85, 4.5, 10.5]


def test_captions_of_real_narration_span_its_audio():
    speech = EspeakSpeech().synthesize(NARRATION, "en-us", 180).trimmed()
    cues = time_cues(split_cues(NARRATION), 0.4, speech.duration_s, pauses(speech))
    assert cues[0].start_s == pytest.approx(0.4) and cues[-1].end_s == pytest.approx(
        0.4 + speech.duration_s, abs=1e-3
    )
    for before, after in itertools.pairwise(cues):
        assert before.end_s == after.start_s and after.end_s - after.start_s >= 0.6


def test_webvtt_round_trips_and_chapters_have_their_own_track():
    cues = [Cue(0.5, 2.25, "Hello there,\nand welcome."), Cue(2.25, 3661.5, "Bye.")]
    text = webvtt(cues)
    assert text.startswith("WEBVTT\n\n1\n00:00:00.500 --> 00:00:02.250\nHello there,\nand welcome.\n")
    assert "01:01:01.500" in text and parse_webvtt(text) == cues
    chapters = [Chapter(0.0, 30.0, "Welcome"), Chapter(30.0, 75.5, "Cleaning")]
    assert [c.text for c in parse_webvtt(chapters_webvtt(chapters))] == ["Welcome", "Cleaning"]
    assert '"title": "Cleaning"' in chapters_json(chapters)


HOSTILE_CUES = [
    Cue(0.0, 1.0, "Fish & chips <c.red>now</c>"),
    Cue(1.0, 2.0, "00:00:05.000 --> 00:00:09.000\nInjected cue"),
    Cue(2.0, 3.0, "first\n\n\nWEBVTT\n \nlast"),
    Cue(3.0, 4.0, "<script>alert(1)</script> &amp; -->"),
    Cue(4.0, 5.0, "line\r\n\r\nafter a CRLF blank"),
]


def test_cue_text_is_escaped_and_cannot_end_or_add_a_cue():
    text = webvtt(HOSTILE_CUES)
    parsed = webvtt_py.from_string(text)
    assert len(parsed.captions) == len(HOSTILE_CUES)
    for caption, cue in zip(parsed.captions, HOSTILE_CUES):
        assert "-->" not in caption.raw_text and "<" not in caption.raw_text and ">" not in caption.raw_text
        assert "\n\n" not in caption.raw_text
        assert caption.start == timestamp(cue.start_s)
    assert parsed.captions[0].raw_text == "Fish &amp; chips &lt;c.red&gt;now&lt;/c&gt;"
    assert parsed.captions[1].raw_text == "00:00:05.000 --&gt; 00:00:09.000\nInjected cue"
    assert parsed.captions[2].raw_text == "first\nWEBVTT\nlast"
    back = parse_webvtt(text)
    assert back[0].text == "Fish & chips <c.red>now</c>"
    assert back[3].text == "<script>alert(1)</script> &amp; -->"
    assert back[4].text == "line\nafter a CRLF blank"


def test_chapter_titles_are_escaped_too():
    parsed = webvtt_py.from_string(chapters_webvtt([Chapter(0.0, 2.0, "Q&A --> <b>bold</b>")]))
    assert [c.raw_text for c in parsed.captions] == ["Q&amp;A --&gt; &lt;b&gt;bold&lt;/b&gt;"]
