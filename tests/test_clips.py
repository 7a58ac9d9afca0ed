"""Cutting plans and playback sizes."""

from fractions import Fraction

import pytest

from livejpp.media.clips import plan_clips, playback_size
from livejpp.media.decode import output_rate


def spans(duration, clip=10.0, hop=None):
    return [(c.start, c.end) for c in plan_clips(duration, clip, hop)]


def test_back_to_back_clips_and_tail_rule():
    assert spans(30.0) == [(0, 10), (10, 20), (20, 30)]
    assert spans(34.9) == [(0, 10), (10, 20), (20, 30)]  # 4.9 s tail dropped
    assert spans(35.0) == [(0, 10), (10, 20), (20, 30), (30, 35)]  # 5 s tail kept
    assert spans(4.0) == []
    assert spans(6.0) == [(0, 6)]


def test_overlapping_windows():
    assert spans(30.0, hop=5.0) == [(0, 10), (5, 15), (10, 20), (15, 25), (20, 30)]
    assert spans(27.0, hop=5.0)[-1] == (20, 27)  # covers footage the clip before did not


@pytest.mark.parametrize(
    "size,limit,expected",
    [
        ((1920, 1080), 720, (1280, 720)),
        ((640, 360), 720, (640, 360)),
        ((321, 241), 720, (320, 240)),
        ((1080, 1920), 720, (404, 720)),
        ((720, 405), 720, (720, 404)),
    ],
)
def test_playback_size_fits_never_upscales_and_is_even(size, limit, expected):
    assert playback_size(*size, limit) == expected


def test_variable_rates_snap_to_a_standard_rate():
    assert output_rate(Fraction(13900, 609)) == Fraction(24000, 1001)
    assert output_rate(Fraction(1000000, 66667)) == 15
    assert output_rate(Fraction(30000, 1001)) == Fraction(30000, 1001)
    assert output_rate(Fraction(120)) == 60
