"""Narration with espeak-ng: voices checked before use, speech as PCM, WAV and resampling exact."""

from __future__ import annotations

import numpy as np
import pytest

from tests.videokit.training.training_media import tone_speech
from videokit.training.narration import (
    EspeakSpeech,
    Speech,
    SpeechProvider,
    VoiceUnknown,
    read_wav,
    resample,
    ssml_for,
    synthesize_all,
    wav_bytes,
)


@pytest.fixture(scope="module")
def espeak() -> EspeakSpeech:
    provider = EspeakSpeech()
    available, reason = provider.availability()
    assert available, reason
    return provider


def test_espeak_meets_the_speech_contract_and_speaks_at_the_asked_rate(espeak):
    assert isinstance(espeak, SpeechProvider)
    text = "Brush off dry mud first. Then rinse the pack in cool water, and let it dry in the shade. " * 3
    slow, fast = (espeak.synthesize(text, "en-us", rate).trimmed() for rate in (120, 240))
    assert slow.sample_rate == 22050 and slow.samples.dtype == np.int16
    assert 10.0 < slow.duration_s < 30.0 and 1.5 < slow.duration_s / fast.duration_s < 2.5


def test_paragraphs_get_a_pause_and_markup_characters_are_spoken_safely(espeak):
    assert (
        ssml_for("A & B <c>\n\nNext.", 500) == '<speak>A &amp; B &lt;c&gt;<break time="500ms"/>Next.</speak>'
    )
    one = espeak.synthesize("First part. Second part.", "en-us", 170).trimmed()
    two = espeak.synthesize("First part.\n\nSecond part.", "en-us", 170).trimmed()
    assert two.duration_s > one.duration_s + 0.3


@pytest.mark.parametrize("voice", ["en-us", "en-gb", "en", "gmw/en-US", "en-us+f3"])
def test_known_voices_pass(espeak, voice):
    espeak.check_voice(voice)


@pytest.mark.parametrize(
    ("voice", "message"),
    [
        ("xx-nonsense", r"unknown voice 'xx-nonsense'; espeak-ng voices include en-\S+, .*en-us, "),
        ("English_(America)", r"unknown voice 'English_\(America\)'"),
        ("en-us+nobody", r"unknown voice variant 'nobody'"),
    ],
)
def test_unknown_voices_are_refused_with_the_voices_there_are(espeak, voice, message):
    with pytest.raises(VoiceUnknown, match=message):
        espeak.check_voice(voice)


def test_mbrola_voices_without_mbrola_are_refused(espeak):
    # espeak-ng knows MBROLA voice names, but they need the separate mbrola program and voice data.
    with pytest.raises(VoiceUnknown):
        espeak.check_voice("mb-us1")


def test_scenes_are_synthesized_in_parallel_in_order(espeak):
    texts = ["One.", "Two words here.", "Three words and some more besides."]
    speeches = synthesize_all(espeak, texts, "en-us", 200, workers=3)
    durations = [s.trimmed().duration_s for s in speeches]
    assert durations == sorted(durations)


def test_wav_round_trip_and_exact_resampling():
    speech = tone_speech(1.0, rate=22050)
    assert np.array_equal(read_wav(wav_bytes(speech)).samples, speech.samples)
    for rate in (48000, 44100, 16000):
        out = resample(speech.samples, 22050, rate)
        assert len(out) == rate
        # The tone survives: the same energy after resampling.
        assert np.std(out[100:-100]) == pytest.approx(np.std(speech.samples), rel=0.05)
    assert Speech(np.zeros(0, np.int16), 22050).trimmed().duration_s == 0.0
