"""The bar tracker (issue 11, candidate B) on music whose every beat is known: synthetic grooves in
tests/synth.py. Each case follows the tracker as the engine does (audio in 20 ms blocks, a decision
every 0.5 s for the beats 0.25–0.75 s ahead) and measures the scheduled beats against the truth."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pytest
from synth import beat_times, groove

from livejpp.engine.activation import Activations
from livejpp.engine.trackers import HOLD_BELOW, TodayTracker, make_tracker
from livejpp.features.audio import AudioAnalyser
from livejpp.media.decode import AUDIO_RATE, read_audio_file

HOP, LEAD, BLOCK = 0.5, 0.25, 441
TOLERANCE = 0.07  # a cut within 70 ms of a true beat is on it


@dataclass
class Followed:
    times: np.ndarray  # scheduled beats (s)
    ones: np.ndarray  # bool: the tracker called it the bar's first beat
    meters: np.ndarray  # beats per bar the tracker said at each
    errors: np.ndarray  # seconds to the nearest true beat (signed: late > 0)
    on_true_one: np.ndarray  # bool: the nearest true beat is a downbeat
    estimates: list  # (now, Estimate | None) per hop


def follow(audio: np.ndarray, beats: np.ndarray, beats_per_bar: int = 4, tracker: str = "bar") -> Followed:
    """Run a tracker over `audio` as the engine would and score the beats it schedules."""
    clock = make_tracker(tracker)
    analyser = AudioAnalyser(keep_seconds=20)
    held = None
    scheduled: list[tuple[float, bool, int]] = []
    estimates = []
    next_hop, last = HOP, -math.inf
    for i in range(0, len(audio), BLOCK):
        analyser.push(audio[i : i + BLOCK])
        clock.advance(analyser)
        now = analyser.samples_in / AUDIO_RATE
        if now + 1e-9 < next_hop:
            continue
        next_hop += HOP
        est = clock.estimate(now)
        estimates.append((now, est))
        if est is not None and (est.follow if est.follow is not None else est.confidence >= 0.3):
            held = est  # what the clock does (BeatClock.update): follow the grid, or hold the last one
        if held is None:
            continue
        p = held.period
        beat = held.anchor + math.ceil((max(now + LEAD, last + 0.5 * p) - held.anchor) / p) * p
        while beat < now + LEAD + HOP:
            index = round((beat - held.bar_anchor) / p)
            scheduled.append((beat, index % held.beats_per_bar == 0, held.beats_per_bar))
            last = beat
            beat += p
    times = np.array([s[0] for s in scheduled])
    nearest = np.abs(times[:, None] - beats[None, :]).argmin(axis=1) if len(times) else np.zeros(0, int)
    return Followed(
        times,
        np.array([s[1] for s in scheduled], bool),
        np.array([s[2] for s in scheduled], int),
        times - beats[nearest] if len(times) else times,
        nearest % beats_per_bar == 0,
        estimates,
    )


def lock_time(f: Followed, after: float = 0.0) -> float:
    """The first scheduled beat after `after` from which 4 in a row lie within 70 ms (inf: never)."""
    ok = np.abs(f.errors) <= TOLERANCE
    for i in np.flatnonzero(f.times >= after):
        if i + 4 <= len(ok) and ok[i : i + 4].all():
            return float(f.times[i] - after)
    return math.inf


def on_beat(f: Followed, start: float, end: float = math.inf) -> float:
    """Share of the beats scheduled in [start, end) within 70 ms of a true beat."""
    sel = (f.times >= start) & (f.times < end)
    return float(np.mean(np.abs(f.errors[sel]) <= TOLERANCE)) if sel.any() else 0.0


def downbeat_share(f: Followed, start: float, end: float = math.inf) -> float:
    """Of the beats the tracker called a bar's one (in [start, end)), the share that are a true one."""
    sel = (f.times >= start) & (f.times < end) & f.ones
    return float(np.mean(f.on_true_one[sel] & (np.abs(f.errors[sel]) <= TOLERANCE))) if sel.any() else 0.0


def truth_ones(beats: np.ndarray, beats_per_bar: int) -> np.ndarray:
    return beats[::beats_per_bar]


SECONDS = 32.0


def _case(name: str) -> tuple[np.ndarray, np.ndarray, int]:
    """(audio, true beats, beats per bar) of a synthetic case; the first beat is a downbeat at 0 s."""
    if name == "rock 120":
        b = beat_times(120, SECONDS)
        return groove(b, SECONDS), b, 4
    if name == "click and bass 60":
        b = beat_times(60, SECONDS)
        return groove(b, SECONDS, hats="none"), b, 4
    if name == "rock 200":
        b = beat_times(200, SECONDS)
        return groove(b, SECONDS), b, 4
    if name == "waltz 140":
        b = beat_times(140, SECONDS)
        return groove(b, SECONDS, beats_per_bar=3, hats="none"), b, 3
    if name == "ramp 100-140 in 24 s":
        b = beat_times(lambda t: 100 + 40 * min(t, 24.0) / 24.0, SECONDS)
        return groove(b, SECONDS), b, 4
    if name == "loud off-beat hats":
        b = beat_times(120, SECONDS)
        return groove(b, SECONDS, hats="offbeat", hat_level=0.6, kick_level=0.4), b, 4
    if name == "swung hats 100":
        b = beat_times(100, SECONDS)
        return groove(b, SECONDS, hats="swing", hat_level=0.4), b, 4
    if name == "syncopated sixteenths 110":
        b = beat_times(110, SECONDS)
        return groove(b, SECONDS, hats="sixteenths", hat_level=0.4), b, 4
    raise KeyError(name)


STEADY = [
    "rock 120",
    "click and bass 60",
    "rock 200",
    "waltz 140",
    "ramp 100-140 in 24 s",
    "loud off-beat hats",
    "swung hats 100",
    "syncopated sixteenths 110",
]


@pytest.mark.parametrize("name", STEADY)
def test_locks_within_4_s_and_cuts_land_on_the_beats_and_the_ones(name):
    audio, beats, per_bar = _case(name)
    f = follow(audio, beats, per_bar)
    locked = lock_time(f)
    assert locked <= 4.0, f"{name}: locked after {locked:.2f} s"
    inside = f.times < beats[-1]  # beats scheduled past the song's end have nothing to hit
    after = (f.times >= locked) & inside
    errors_ms = np.abs(f.errors[after]) * 1000
    assert np.mean(errors_ms <= 70) >= 0.98, f"{name}: worst errors {np.sort(errors_ms)[-5:]} ms"
    assert np.median(errors_ms) <= 40, f"{name}: median error {np.median(errors_ms):.1f} ms"
    # the meter needs a few bars: its cues judge a beat a bar after it (the change over the bar that follows)
    start = max(14.0, locked + 5 * per_bar * float(np.median(np.diff(beats))))
    settled = (f.times >= start) & inside
    assert np.all(f.meters[settled] == per_bar), f"{name}: meter {np.bincount(f.meters[settled])}"
    share = downbeat_share(f, start, beats[-1])
    assert share >= 0.9, f"{name}: {share:.0%} of its ones are true ones"
    on = settled & (np.abs(f.errors) <= TOLERANCE)
    assert np.mean(f.ones[on] == f.on_true_one[on]) >= 0.95  # every bar's one called, and no other beat


def test_relocks_within_4_s_after_a_tempo_jump():
    b = beat_times(lambda t: 120.0 if t < 16.0 else 135.0, SECONDS)
    f = follow(groove(b, SECONDS), b)
    assert lock_time(f) <= 4.0
    relock = lock_time(f, after=16.0)
    assert relock <= 4.0, f"relocked {relock:.2f} s after the jump"
    after = (f.times >= 16.0 + relock) & (f.times < b[-1])
    assert np.all(np.abs(f.errors[after]) <= TOLERANCE)
    assert 60 / f.estimates[-1][1].period == pytest.approx(135.0, abs=1.0)


def test_holds_the_grid_through_16_beats_of_pads():
    """Drums stop for 16 beats (8 s) of pads and come back: the beats scheduled through the breakdown
    and after it stay on the grid (no drift), and the confidence sinks while nothing marks the beat."""
    b = beat_times(120, SECONDS)
    drums = np.ones(len(b), bool)
    drums[32:48] = False  # 16.0 s to 24.0 s
    f = follow(groove(b, SECONDS, drums=drums, pads=True), b)
    breakdown = (f.times >= 16.0) & (f.times < 24.0)
    errors_ms = np.abs(f.errors[breakdown]) * 1000
    assert breakdown.sum() >= 15 and errors_ms.max() <= 70, f"breakdown errors {errors_ms.round()} ms"
    back = (f.times >= 24.0) & (f.times < b[-1])
    assert np.all(np.abs(f.errors[back]) <= TOLERANCE)
    ones = f.ones[breakdown | back]
    assert np.all(f.on_true_one[breakdown | back][ones]), "the bar count slipped in the breakdown"
    confidence = {round(now, 1): e.confidence for now, e in f.estimates if e is not None}
    lowest = min(c for now, c in confidence.items() if 16.0 <= now < 24.0)
    assert confidence[15.5] > 0.8 and lowest < confidence[15.5] - 0.3


def test_silence_gives_no_opinion():
    f = follow(np.zeros(int(20 * AUDIO_RATE), np.float32), np.array([0.0]))
    assert all(e is None for _, e in f.estimates) and len(f.times) == 0


def test_silence_after_music_lowers_confidence_then_forgets():
    b = beat_times(120, 16.0)
    audio = np.concatenate([groove(b, 16.0), np.zeros(int(40 * AUDIO_RATE), np.float32)])
    f = follow(audio, b)
    by_time = dict((round(now, 1), e) for now, e in f.estimates)
    assert by_time[15.5].confidence > 0.8
    assert by_time[30.0].confidence < 0.3  # the clock holds its last grid
    assert by_time[50.0] is None  # long silence: no opinion at all


def test_a_file_and_a_stream_give_the_same_estimates():
    """Blocks of any size: the tracker steps per analyser frame, so only the audio decides."""
    audio, beats, _ = _case("swung hats 100")
    audio = audio[: int(12 * AUDIO_RATE)]
    estimates = []
    for block in (441, 11025):
        tracker, analyser, seen = make_tracker("bar"), AudioAnalyser(keep_seconds=20), []
        for i in range(0, len(audio), block):
            analyser.push(audio[i : i + block])
            tracker.advance(analyser)
            if (i + block) % 11025 == 0:
                seen.append(tracker.estimate(analyser.samples_in / AUDIO_RATE))
        estimates.append(seen)
    assert estimates[0][-1] is not None and [e is None for e in estimates[0]] == [e is None for e in estimates[1]]
    for a, b in zip(estimates[0], estimates[1], strict=True):  # the analyser's batched FFT rounds differently
        if a is not None:
            assert np.allclose(dataclasses.astuple(a), dataclasses.astuple(b), rtol=0, atol=1e-6), (a, b)


def test_resync_moves_the_bar_to_the_vjs_downbeat():
    b = beat_times(120, 20.0)
    audio = groove(b, 20.0)
    tracker, analyser = make_tracker("bar"), AudioAnalyser(keep_seconds=20)
    for i in range(0, len(audio), 441):
        analyser.push(audio[i : i + 441])
        tracker.advance(analyser)
    before = tracker.estimate(20.0)
    bar = 4 * 0.5
    assert (before.bar_anchor - b[0] + TOLERANCE / 2) % bar < TOLERANCE  # found the ones by itself
    tracker.resync(b[37] + 0.02)  # the VJ says the second beat of a bar is a one
    after = tracker.estimate(20.0)
    assert (after.bar_anchor - b[37] + TOLERANCE / 2) % bar < TOLERANCE, f"bar anchor {after.bar_anchor:.3f}"
    assert after.anchor == before.anchor and after.period == before.period  # the beat grid itself stays


def test_registry_names_the_tracker_after_its_source():
    assert make_tracker("bar").name == "bar"

    class BeatNetActivation:  # a source that only names itself: the registry's beatnet entry passes one
        fps = 50.0
        name = "beatnet"

        def advance(self, analyser):
            return None

    from livejpp.engine.bar_tracker import BarTracker

    assert BarTracker(BeatNetActivation()).name == "beatnet"


class PulseSource:
    """An ActivationSource (as BeatNet's) with a `down` activation: beats at `bpm`, every third marked as
    a downbeat (a 3/4 bar). It follows the audio clock of the analyser it is given."""

    fps = 50.0
    name = "pulses"

    def __init__(self, bpm: float = 140.0) -> None:
        self.next = 0
        self.period = 60.0 / bpm

    def advance(self, analyser: AudioAnalyser) -> Activations | None:
        last = int(analyser.samples_in / AUDIO_RATE * self.fps)
        if last <= self.next:
            return None
        t = np.arange(self.next, last) / self.fps
        index = np.round(t / self.period)
        near = np.abs(t - index * self.period) * self.fps < 0.5
        beat = np.where(near, 0.9, 0.02).astype(np.float32)
        down = np.where(near & (index % 3 == 0), 0.85, 0.01).astype(np.float32)
        acts = Activations(self.fps, self.next, beat, down)
        self.next = last
        return acts


def each_hop(tracker, audio: np.ndarray):
    """(now, estimate) after each half second of `audio` pushed to a fresh analyser and read by `tracker`."""
    analyser = AudioAnalyser(keep_seconds=20)
    for i in range(0, len(audio), 11025):
        analyser.push(audio[i : i + 11025])
        tracker.advance(analyser)
        now = analyser.samples_in / AUDIO_RATE
        yield now, tracker.estimate(now)


def test_the_bar_comes_from_the_music_not_from_a_learned_downbeat_activation():
    """The activation's beats set the grid; its downbeats do not set the bar: measured on the truth set,
    BeatNet's downbeat activation put the one right on far fewer beats than the music's own changes of
    harmony and bass (engine/meter.py). Here the activation insists on 3/4 while the music is in 4/4."""
    from livejpp.engine.bar_tracker import BarTracker

    seconds = 24.0
    beats = beat_times(140, seconds)
    audio = groove(beats, seconds)
    tracker, analyser = BarTracker(PulseSource()), AudioAnalyser(keep_seconds=20)
    assert tracker.name == "pulses"
    for i in range(0, len(audio), 441):
        analyser.push(audio[i : i + 441])
        tracker.advance(analyser)
    est = tracker.estimate(seconds)
    period = 60.0 / 140.0
    assert abs(est.period - period) < 0.002
    assert abs((est.anchor + period / 2) % period - period / 2) < 0.02  # on the pulses
    assert est.beats_per_bar == 4, "the bar follows the learned downbeats (3/4), not the music (4/4)"
    bar = 4 * period
    assert abs((est.bar_anchor + bar / 2) % bar - bar / 2) < 0.02  # on the music's ones (the first beat is one)


def test_auto_counts_the_bars_on_the_pulse_it_follows_when_the_learned_grid_hears_other_beats():
    """The learned activation hears another tempo (as BeatNet does on some music): "auto" follows the
    pulse the music bears out, and its bars start where the music's harmony and bass mark the one, not
    on the first beat the pulse found (the song starts on the bar's second beat here)."""
    from livejpp.engine.bar_tracker import BarTracker
    from livejpp.engine.ensemble import EnsembleTracker

    seconds = 30.0
    audio = groove(beat_times(120, seconds + 0.5), seconds + 0.5)[int(0.5 * AUDIO_RATE) :]  # ones at 1.5, 3.5, ...
    tracker = EnsembleTracker(bar=BarTracker(PulseSource(bpm=170.0)), pulse=TodayTracker())
    _, est = list(each_hop(tracker, audio))[-1]
    assert tracker.following is tracker.pulse
    assert abs(est.period - 0.5) < 0.01 and est.beats_per_bar == 4
    assert abs((est.bar_anchor - 1.5 + 1.0) % 2.0 - 1.0) < 0.05, f"a one at {est.bar_anchor:.2f} s, not 1.5 + 2k"


def test_auto_puts_the_pulses_grid_on_the_beats_the_learned_activation_marks_not_on_the_loud_off_beat():
    """Syncopated music puts more onset on the off-beat (loud off-beat hats over a soft kick): the autocorrelation
    pulse's comb then sits on the off-beat. The learned activation marks the beats, so "auto" takes the pulse's
    tempo with its grid moved onto them: a grid on the beats to follow before the learned one alone is sure,
    and never one on the off-beat."""
    from livejpp.engine.bar_tracker import BarTracker
    from livejpp.engine.ensemble import EnsembleTracker

    seconds, period = 12.0, 0.5
    audio = groove(beat_times(120, seconds), seconds, hats="offbeat", hat_level=1.0, kick_level=0.05)
    tracker = EnsembleTracker(bar=BarTracker(PulseSource(bpm=120.0)), pulse=TodayTracker())

    def from_beat(t: float) -> float:
        return abs((t / period + 0.5) % 1.0 - 0.5) * period

    # per grid at the song's tempo that auto would have the clock follow: (its anchor, the pulse's own anchor,
    # whether the learned tracker alone was sure then). (The pulse also jumps to 2/3 of the tempo here at times,
    # and auto follows it there too: a fault of its own, see the notes.)
    followed = []
    for now, est in each_hop(tracker, audio):
        if est is not None and est.confidence >= HOLD_BELOW and abs(est.period - period) < 0.005:
            learned = tracker.bar.estimate(now)
            sure = learned is not None and learned.confidence >= HOLD_BELOW
            followed.append((est.anchor, tracker.pulse.anchor, sure))
    assert followed, "auto never had a grid to follow"
    assert all(from_beat(anchor) < 0.03 for anchor, _, _ in followed), [round(from_beat(a), 3) for a, _, _ in followed]
    anchor, pulse_own, learned_sure = followed[0]
    assert not learned_sure, "the first grid to follow came when the learned tracker alone was sure already"
    assert from_beat(pulse_own) > 0.2, "the pulse's own comb was not on the off-beat: nothing to move"


@pytest.mark.parametrize(
    ("song", "max_lock", "min_on_beat", "min_on_one"),
    [
        ("lmms_Skiessi-C64", 6.0, 0.9, 0.7),  # 127 BPM chiptune, 4/4
        # 180 BPM (LMMS quarter notes) reggae: at times followed at half or 2/3 tempo; the one-drop puts
        # its kick on beat 3, so the bar's one is not found: no claim about ones
        ("lmms_CapDan-ReggaeTry", 12.0, 0.75, None),
    ],
)
def test_real_songs_loosely(media, song, max_lock, min_on_beat, min_on_one):
    """Two bundled LMMS songs against their exact beats (tests/media/beats, from the projects' tempo).
    Loose bounds, no constant was set from them: they show what generalises, the bench measures more."""
    truth = np.loadtxt(media / "beats" / f"{song}.beats")
    audio = read_audio_file(media / "music" / f"{song}.ogg", 0.0, float(truth[-1, 0]) + 0.3)
    f = follow(audio, truth[:, 0], int(truth[:, 1].max()))
    locked = lock_time(f)
    assert locked <= max_lock, f"{song}: locked after {locked:.1f} s"
    assert on_beat(f, locked, truth[-1, 0]) >= min_on_beat
    if min_on_one is not None:
        ones = truth[np.abs(f.times[:, None] - truth[None, :, 0]).argmin(axis=1), 1] == 1
        said = f.ones & (f.times >= locked) & (np.abs(f.errors) <= TOLERANCE)
        assert np.mean(ones[said]) >= min_on_one


def _noise(colour: float, seconds: float, seed: int) -> np.ndarray:
    """Noise whose power falls as 1/f**colour (0 white, 1 pink, 2 brown), at -20 dBFS rms."""
    white = np.random.default_rng(seed).standard_normal(int(seconds * AUDIO_RATE))
    spectrum = np.fft.rfft(white)
    f = np.fft.rfftfreq(len(white))
    spectrum[1:] /= f[1:] ** (colour / 2)
    spectrum[0] = 0.0
    noise = np.fft.irfft(spectrum, len(white))
    return (0.1 * noise / noise.std()).astype(np.float32)


@pytest.mark.parametrize("tracker", ["bar", "beatnet", "auto"])
@pytest.mark.parametrize("colour", [0.0, 1.0, 2.0], ids=["white", "pink", "brown"])
def test_noise_is_never_trusted_with_a_beat(tracker, colour):
    """Hiss, a crowd, a detuned radio: no grid may be trusted enough to cut on. (A learned activation
    hallucinates here: BeatNet reads white noise as P(beat) 0.8 everywhere, pink noise as a ~110 BPM
    pulse; its filter's phase was 0.8-0.98 sure.)"""
    f = follow(_noise(colour, 40.0, seed=7), np.array([0.0]), tracker=tracker)
    confidences = [e.confidence for _, e in f.estimates if e is not None]
    assert max(confidences, default=0.0) < 0.3, f"{tracker}: trusted a grid on noise ({max(confidences):.2f})"


class WrongIntroSource(PulseSource):
    """A learned activation that hears the intro at another tempo (as BeatNet heard Saber-FinalStep's intro
    at 170 BPM for 40 s), then the music's own."""

    def __init__(self, wrong_bpm: float, bpm: float, until: float) -> None:
        super().__init__(wrong_bpm)
        self.right, self.until = 60.0 / bpm, until

    def advance(self, analyser: AudioAnalyser) -> Activations | None:
        if self.next / self.fps >= self.until:
            self.period = self.right
        return super().advance(analyser)


def test_after_an_intro_followed_at_a_wrong_tempo_the_bars_are_counted_again_on_the_right_grid():
    """The grid follows a wrong tempo for 20 s, then the music's 128 BPM (whose first beat is not its bar's
    one). The bars must start where the music's harmony and kick mark its ones soon after: a meter that runs
    on over a new grid judges it with bars it counted on the old one. The bar tracker counts them again, on
    the new grid, over the audio kept."""
    from livejpp.engine.bar_tracker import BarTracker

    seconds, period, change = 44.0, 60.0 / 128.0, 20.0
    audio = groove(beat_times(128, seconds + period), seconds + period)[int(period * AUDIO_RATE) :]
    ones = np.arange(3 * period, seconds, 4 * period)  # the song enters on its bar's second beat
    tracker = BarTracker(WrongIntroSource(171.0, 128.0, change))
    placed = []
    for now, est in each_hop(tracker, audio):
        if est is not None and now >= change + 4.0 and abs(est.period - period) < 0.01:
            bar = 4 * period  # the true bar: the estimate's period is a little off, and the ones are far apart
            placed.append(
                (now, est.beats_per_bar == 4 and abs((est.bar_anchor - ones[0] + bar / 2) % bar - bar / 2) < 0.07)
            )
    assert len(placed) >= 30
    wrong = [round(t, 1) for t, right in placed if not right]
    assert not wrong, f"the one not on the music's ones at {wrong}"


def test_a_grid_left_for_a_moment_takes_its_bars_back_where_the_music_no_longer_marks_them():
    """A tracker leaves its grid for a hop (another tempo) and comes back, in a section whose every beat sounds
    alike (a kick and a new bass note on each: nothing marks the bar). The bar must stay on the ones the music
    marked before it: counted again over the 16 s kept, that section says nothing, and the bar fell back to
    every fourth beat from the counter's first (the song enters on its bar's second beat here)."""
    from livejpp.engine.bar_counter import BarCounter

    period, marked, flat = 60.0 / 120.0, 40, 48  # beats: bars the music marks, then beats that all sound alike
    beats = beat_times(120, (marked + flat + 1) * period)
    audio = np.concatenate(
        [
            groove(beats[: marked + 1], marked * period)[: int(marked * period * AUDIO_RATE)],
            groove(beats[: flat + 1], flat * period, beats_per_bar=1)[: int(flat * period * AUDIO_RATE)],
        ]
    )[int(period * AUDIO_RATE) :]  # from the first bar's second beat: ones at 1.5, 3.5, ...
    counter, analyser = BarCounter(), AudioAnalyser(keep_seconds=20)
    away = (marked + 36) * period - period  # 18 s into the flat section: all the audio kept is flat
    placed = []
    for i in range(0, len(audio), 11025):
        analyser.push(audio[i : i + 11025])
        now = analyser.samples_in / AUDIO_RATE
        left = abs(now - away) < 0.25
        grid = (4 / 3 * period, 0.0) if left else (period, period)  # the true grid: beats at 0.5 k
        counter.count(analyser, *grid, now)
        if now > 30.0 and not left:
            one = counter.bar_anchor(period, period)
            placed.append((round(now, 1), counter.beats_per_bar == 4 and abs((one - 1.5 + 1.0) % 2.0 - 1.0) < 0.05))
    assert len(placed) > 20
    assert all(right for _, right in placed[:4]), f"the bar was not the music's before the grid left: {placed[:4]}"
    wrong = [t for t, right in placed if not right]
    assert not wrong, f"the one not on the music's ones at {wrong} (the grid left at {away:.1f} s)"


@pytest.mark.parametrize("told", [20.5, 21.0, 21.5, 22.0])
def test_a_vjs_resync_stands_when_the_grid_is_refined_by_a_fraction_of_a_beat(told):
    """Where the music does not mark the bar (every beat alike), the VJ says where the one is (on each of the
    four beats of the bar the counter had). The tracker then refines its grid by a fifth of a beat (a phase the
    filter settles on): the bar counted on the refined grid must stay where the VJ put it, not fall back to a
    bar counted before the VJ spoke."""
    from livejpp.engine.bar_counter import BarCounter

    period, seconds = 60.0 / 120.0, 40.0
    audio = groove(beat_times(120, seconds + 1.0), seconds + 1.0, beats_per_bar=1)[: int(seconds * AUDIO_RATE)]
    counter, analyser = BarCounter(), AudioAnalyser(keep_seconds=20)
    refined = 26.0  # when the grid moves by 0.2 beat
    placed = []
    for i in range(0, len(audio), 11025):
        analyser.push(audio[i : i + 11025])
        now = analyser.samples_in / AUDIO_RATE
        anchor = 0.2 * period if now >= refined else 0.0
        counter.count(analyser, period, anchor, now)
        if told <= now < told + 0.5:
            counter.resync(told, period, anchor)
        if now >= told + 0.5:
            one = counter.bar_anchor(period, anchor)
            bar = 4 * period
            placed.append((round(now, 1), abs((one - told + bar / 2) % bar - bar / 2) < 0.3 * period))
    assert len(placed) > 30
    assert all(right for t, right in placed if t < refined), f"the resync did not take: {placed[:8]}"
    wrong = [t for t, right in placed if not right]
    assert not wrong, f"the one left the VJ's at {wrong} (the grid moved at {refined} s)"


def test_a_vjs_resync_holds_against_the_musics_own_bar_until_the_tempo_changes():
    """The VJ counts the bar from another beat than the music marks (the harmony changes on the music's ones):
    the VJ's word stands for as long as the song plays, and is not voted back by the music's cues a few bars
    later (it was, 8.5 s after the resync)."""
    from livejpp.engine.bar_counter import BarCounter

    period, seconds = 60.0 / 120.0, 60.0
    audio = groove(beat_times(120, seconds + 1.0), seconds + 1.0)[: int(seconds * AUDIO_RATE)]  # ones at 2 k
    counter, analyser = BarCounter(), AudioAnalyser(keep_seconds=20)
    told, bar = 20.5, 4 * period  # the VJ's one: the music's second beat
    placed = []
    for i in range(0, len(audio), 11025):
        analyser.push(audio[i : i + 11025])
        now = analyser.samples_in / AUDIO_RATE
        counter.count(analyser, period, 0.0, now)
        if told <= now < told + 0.5:
            assert abs((counter.bar_anchor(period, 0.0) + bar / 2) % bar - bar / 2) < 0.05, "premise: the music's ones"
            counter.resync(told, period, 0.0)
        if now >= told + 0.5:
            placed.append(
                (round(now, 1), abs((counter.bar_anchor(period, 0.0) - told + bar / 2) % bar - bar / 2) < 0.05)
            )
    wrong = [t for t, right in placed if not right]
    assert len(placed) > 70 and not wrong, f"the one left the VJ's at {wrong}"


def test_auto_following_the_pulse_counts_the_bar_from_the_vjs_resync():
    """ "auto" follows the pulse (the learned activation hears another tempo) and counts the bars on it: a VJ's
    resync must move that bar too, not only the learned tracker's, which "auto" is not following (it moved only
    that one). Judged while "auto" follows the pulse's grid as its comb put it."""
    from livejpp.engine.bar_tracker import BarTracker
    from livejpp.engine.ensemble import EnsembleTracker

    seconds = 45.0
    audio = groove(beat_times(120, seconds), seconds)  # the music's ones at 2 k
    tracker, told, placed = EnsembleTracker(bar=BarTracker(PulseSource(bpm=170.0)), pulse=TodayTracker()), 30.5, []
    for now, est in each_hop(tracker, audio):
        on_pulse = tracker.following is tracker.pulse and not tracker._half_beat and abs(est.period - 0.5) < 0.01
        if told <= now < told + 0.5:
            assert on_pulse and abs((est.bar_anchor + 1.0) % 2.0 - 1.0) < 0.05, "premise: the pulse, the music's ones"
            tracker.resync(told)  # the VJ: the music's second beat is a one
        elif now >= told + 0.5 and on_pulse:
            placed.append((now, abs((est.bar_anchor - told + 1.0) % 2.0 - 1.0) < 0.05))
    wrong = [t for t, right in placed if not right]
    assert len(placed) >= 6 and not wrong, f"the one not the VJ's ({told} s) at {wrong} of {placed}"
