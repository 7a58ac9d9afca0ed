"""The beat ground truth and its scorer: what the beat bench measures must itself be right."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))

from beats_truth import format_beats, from_times, grid, load_beats, parse_beats, phase_score, score  # noqa: E402

from livejpp.media.decode import read_audio_file  # noqa: E402

BEATS = Path(__file__).parent / "media" / "beats"
TRUTH = grid(120, 60.0)  # 120 BPM, 4/4, one minute: a downbeat every 2 s
BAR_CUTS = TRUTH.downbeats[1::2]  # a cut every two bars, on the one


def test_parse_reads_times_and_bar_positions_and_round_trips():
    truth = parse_beats("# a comment\n0.5\t1\n1.0\t2\n\n1.5\t3   # trailing\n2.0 4\n2.5\t1\n")
    assert truth.times.tolist() == [0.5, 1.0, 1.5, 2.0, 2.5]
    assert truth.positions.tolist() == [1, 2, 3, 4, 1]
    assert truth.downbeats.tolist() == [0.5, 2.5]
    assert truth.beats_per_bar == 4 and truth.bpm == pytest.approx(120)
    again = parse_beats(format_beats(truth))
    assert np.allclose(again.times, truth.times) and (again.positions == truth.positions).all()


@pytest.mark.parametrize(
    "text, problem",
    [("0.5\n", "two fields"), ("0.5\t1\n0.4\t2\n", "increase"), ("x\t1\n", "could not convert"), ("1\t0\n", ">= 1")],
)
def test_parse_names_the_file_and_line_of_a_bad_beat(text, problem):
    with pytest.raises(ValueError, match=rf"song\.beats:\d+: .*{problem}"):
        parse_beats(text, "song.beats")


def test_a_perfect_clock_scores_full_marks():
    s = score(TRUTH, TRUTH.times, BAR_CUTS, downbeats=TRUTH.downbeats)
    assert s.cuts == len(BAR_CUTS) == 15
    assert (s.on_beat, s.on_one, s.f_measure, s.cmlt, s.amlt, s.f_down) == (100, 100, 100, 100, 100, 100)
    assert s.lock == 0.0


def test_a_grid_half_a_beat_late_is_off_every_beat():
    half = 0.25
    s = score(TRUTH, TRUTH.times + half, BAR_CUTS + half, downbeats=TRUTH.downbeats + half)
    assert s.on_beat == 0 and s.on_one == 0 and s.f_measure == 0 and s.cmlt == 0 and s.f_down == 0
    assert s.amlt > 95  # the off-beat is an "allowed metrical level" in AMLt: that is why on-beat % is reported
    assert s.lock is None


def test_a_grid_one_beat_late_is_on_the_beat_but_never_on_the_one():
    s = score(TRUTH, TRUTH.times + 0.5, BAR_CUTS + 0.5, downbeats=TRUTH.downbeats + 0.5)
    assert s.on_beat == 100 and s.on_one == 0
    assert s.f_measure == pytest.approx(100, abs=1) and s.f_down == 0


def test_double_tempo_is_half_off_beat_and_never_locks():
    double = np.arange(0, 60, 0.25)
    s = score(TRUTH, double, double[3::16])  # cuts on the "and" of beat 2
    assert s.f_measure == pytest.approx(100 * 2 / 3, abs=1)  # precision 1/2, recall 1
    assert s.cmlt == 0 and s.amlt > 95 and s.on_beat == 0
    assert s.lock is None


def test_lock_time_counts_from_the_start_and_from_a_tempo_change():
    jump = from_times(np.concatenate([np.arange(0, 20, 0.5), 20 + np.arange(0, 20, 60 / 135)]))
    # a clock that is off the beat for its first 6 s, then right, then off the new beat for 3 s
    late = jump.times + 0.2  # 200 ms late: more than 70 ms from every true beat at either tempo
    clock = np.concatenate([late[jump.times < 6], jump.times[(jump.times >= 6) & (jump.times < 20)]])
    clock = np.concatenate([clock, late[(jump.times >= 20) & (jump.times < 23)], jump.times[jump.times >= 23]])
    s = score(jump, clock, [], changes=[20.0])
    assert s.lock == pytest.approx(6.0)
    assert s.relock == [pytest.approx(jump.times[jump.times >= 23][0] - 20)]
    assert np.isnan(s.on_beat) and s.cuts == 0  # no cuts: no share to report, not 0 %


def test_drop_to_cut_is_the_first_drop_cut_after_each_drop():
    s = score(TRUTH, TRUTH.times, [], drops=[10.0, 30.0], drop_cuts=[4.0, 10.5, 12.0])
    assert s.drop_to_cut == [pytest.approx(0.5), None]


def shipped() -> list[tuple[Path, Path]]:
    pairs = []
    for beats in sorted(BEATS.glob("*.beats")):
        audio = [p for p in BEATS.glob(f"{beats.stem}.*") if p.suffix != ".beats"]
        audio += list((BEATS.parent / "music").glob(f"{beats.stem}.*"))
        pairs.append((beats, audio[0] if audio else None))
    return pairs


def test_the_shipped_ground_truth_covers_the_bundled_lmms_songs():
    names = {b.stem for b, _ in shipped()}
    assert {"lmms_Skiessi-C64", "lmms_CapDan-ReggaeTry"} <= names
    assert all(audio is not None for _, audio in shipped()), "every .beats has its audio"
    licences = (BEATS.parent / "NOTICE.md").read_text()
    assert all(b.stem in licences for b, _ in shipped()), "every shipped song has its licence line"


@pytest.mark.parametrize("beats, audio", shipped(), ids=lambda p: p.stem if isinstance(p, Path) else "")
def test_shipped_beats_fall_on_the_onsets_not_half_a_beat_later(beats, audio):
    truth = load_beats(beats)
    samples = read_audio_file(audio)
    assert truth.times[0] < 0.5 and truth.times[-1] <= len(samples) / 22050
    assert truth.beats_per_bar in (3, 4) and (np.diff(truth.times) > 0.25).all()
    period = 60 / truth.bpm
    on, off = phase_score(samples, truth.times), phase_score(samples, truth.times + period / 2)
    assert on >= 1.3, f"{beats.name}: onsets on the beats only {on:.2f}x those half a beat later"
    assert off < 1.0, f"{beats.name}: the half-beat-late grid scores {off:.2f}"


def test_a_chart_tempo_map_and_time_signature_give_exact_beats(tmp_path):
    """A Frets on Fire notes.mid: 120 BPM for two 4/4 bars, then 3/4 at 90 BPM; beats up to the last note."""
    import mido
    from beats_data import midi_beats

    midi = mido.MidiFile(ticks_per_beat=480)
    tempo = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500000, time=0)])
    tempo += [mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0)]
    tempo += [mido.MetaMessage("set_tempo", tempo=666667, time=8 * 480)]
    tempo += [mido.MetaMessage("time_signature", numerator=3, denominator=4, time=0)]
    notes = mido.MidiTrack([mido.Message("note_on", note=60, time=0), mido.Message("note_off", note=60, time=14 * 480)])
    midi.tracks += [tempo, notes]
    midi.save(tmp_path / "notes.mid")
    truth = midi_beats(tmp_path / "notes.mid", delay=0.1)
    assert np.allclose(truth.times, 0.1 + np.concatenate([np.arange(8) * 0.5, 4 + np.arange(7) * 0.666667]))
    assert truth.positions.tolist() == [1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 1, 2, 3, 1]


def test_an_lmms_project_gives_tempo_metre_and_end_and_flags_tempo_automation():
    import xml.etree.ElementTree as ET

    from beats_data import project_facts

    song = """<lmms-project><head timesig_numerator="3" timesig_denominator="4">{bpm}</head><song>
      <trackcontainer><track type="0"><pattern pos="288" len="192"><note pos="0" len="24"/>
      <note pos="144" len="96"/></pattern></track><track type="1"><bbtco pos="0" len="384"/></track>
      <track type="6"><automationpattern pos="0" len="4000"><object id="7"/></automationpattern></track>
      </trackcontainer></song></lmms-project>"""
    facts = project_facts(ET.fromstring(song.format(bpm='<bpm value="96"/>')))
    bpm, numerator, denominator, automated, quarters = facts
    assert (bpm, numerator, denominator, automated) == (96.0, 3, 4, False)
    assert quarters == 10  # the pattern ends at tick 480 (its last note is cut at its end), after the clip (384)
    automated = project_facts(ET.fromstring(song.format(bpm='<bpm value="96" id="7"/>')))[3]
    assert automated
