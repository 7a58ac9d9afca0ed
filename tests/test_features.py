"""Hand-crafted features describe what a listener and a viewer would notice."""

import numpy as np
import pytest
from av.video.reformatter import VideoReformatter
from synth import click_track, tone

from livejpp.features import audio, visual, whole_seconds
from livejpp.media.decode import AUDIO_RATE, iter_video_frames, probe, read_audio_file


def column(name, names):
    return names.index(name)


def test_rows_per_second_with_half_second_rule():
    assert whole_seconds(10.0) == 10
    assert whole_seconds(7.4) == 7
    assert whole_seconds(7.5) == 8
    assert audio.audio_features(tone(440, 3.6)).shape == (4, audio.DIM)
    assert audio.audio_features(tone(440, 0.2)).shape == (0, audio.DIM)


def test_tone_shows_up_in_chroma_and_spectrum():
    rows = audio.audio_features(tone(440, 3))
    chroma = rows[:, column("chroma_C", audio.NAMES) : column("chroma_C", audio.NAMES) + 12]
    assert (chroma.argmax(axis=1) == 9).all()  # A
    low = audio.audio_features(tone(220, 3))[:, column("centroid", audio.NAMES)]
    high = audio.audio_features(tone(3520, 3))[:, column("centroid", audio.NAMES)]
    assert (high > 4 * low).all()


def test_louder_is_louder():
    quiet = audio.audio_features(tone(440, 2, level=0.01))[:, column("loudness_db", audio.NAMES)]
    loud = audio.audio_features(tone(440, 2, level=0.5))[:, column("loudness_db", audio.NAMES)]
    assert np.allclose(loud - quiet, 20 * np.log10(50), atol=0.5)


@pytest.mark.parametrize("bpm", [90, 120, 150])
def test_tempo_of_a_click_track(bpm):
    rows = audio.audio_features(click_track(bpm, 10))
    tempo = rows[4:, column("tempo", audio.NAMES)] * audio.TEMPO_RANGE_BPM[1]
    clarity = rows[4:, column("pulse_clarity", audio.NAMES)]
    assert np.median(tempo) == pytest.approx(bpm, rel=0.05)
    assert (clarity > 0.5).all()


def test_onsets_follow_the_beat_on_real_music(media):
    drums = np.tile(read_audio_file(media / "music" / "loop_amen.flac"), 4)  # a loop, played four times
    ambient = tone(440, len(drums) / AUDIO_RATE) * np.hanning(len(drums)).astype(np.float32)
    onset = column("onset_mean", audio.NAMES)
    assert audio.audio_features(drums)[:, onset].mean() > 5 * audio.audio_features(ambient)[:, onset].mean()


def test_silence_is_detected_not_described():
    assert audio.is_silent(np.zeros(AUDIO_RATE * 3, np.float32))
    noise_floor = (np.random.default_rng(1).standard_normal(AUDIO_RATE * 3) * 10 ** (-70 / 20)).astype(np.float32)
    assert audio.is_silent(noise_floor)
    assert not audio.is_silent(tone(440, 3, level=0.05))


def frames_of(color, n=10, size=(90, 160)):
    return [np.full((*size, 3), color, np.uint8) for _ in range(n)]


def test_colour_and_brightness():
    red, grey = visual.VisualFeatures(), visual.VisualFeatures()
    for i, f in enumerate(frames_of((220, 20, 20))):
        red.add(i / 10, f)
    for i, f in enumerate(frames_of((128, 128, 128))):
        grey.add(i / 10, f)
    r, g = red.rows(1)[0], grey.rows(1)[0]
    names = visual.NAMES
    assert r[column("hue00", names)] > 0.8  # red hue bin
    assert g[column("hue00", names) : column("hue00", names) + visual.HUE_BINS].sum() == pytest.approx(0)
    assert r[column("colourfulness", names)] > 5 * g[column("colourfulness", names)] + 0.1
    assert g[column("brightness", names)] == pytest.approx(128 / 255, abs=0.01)
    assert g[column("motion_mean", names)] == 0


def test_cuts_flashes_and_motion():
    feats = visual.VisualFeatures()
    seq = frames_of((20, 20, 20), 10) + frames_of((240, 240, 240), 5) + frames_of((20, 20, 20), 5)
    rng = np.random.default_rng(0)
    seq += [rng.integers(0, 255, (90, 160, 3), dtype=np.uint8) for _ in range(10)]
    for i, f in enumerate(seq):
        feats.add(i / 10, f)
    rows = feats.rows(3)
    names = visual.NAMES
    assert rows[0, column("cut_rate", names)] == 0
    assert rows[1, column("flash_rate", names)] == 1
    assert rows[1, column("cut_rate", names)] == 2  # dark → bright → dark
    assert rows[2, column("motion_mean", names)] > 0.2  # noise moves everywhere
    assert rows[2, column("edge_density", names)] > rows[0, column("edge_density", names)]


def test_a_second_without_frames_repeats_the_last():
    feats = visual.VisualFeatures()
    for i, f in enumerate(frames_of((200, 30, 30), 2)):
        feats.add(i * 0.5, f)  # 2 fps source: second 1 has a frame, second 2 has none
    rows = feats.rows(3)
    assert np.allclose(rows[2], rows[0]) and rows.shape == (3, visual.DIM)


def reference_frame_stats(rgb):
    """The per-frame statistics written out pixel by pixel, the plain numpy way (HSV by np.where, hue modulo 6,
    np.var): what visual.frame_stats must equal however it computes them."""
    r, g, b = np.moveaxis(rgb, 2, 0).astype(np.float32) * np.float32(1.0 / 255.0)  # the levels the library has
    value = np.maximum(np.maximum(r, g), b)
    chroma = value - np.minimum(np.minimum(r, g), b)
    saturation = np.where(value > 0, chroma / np.maximum(value, 1e-6), 0.0)
    numerator = np.where(value == r, g - b, np.where(value == g, b - r, r - g))
    offset = np.where(value == r, 0.0, np.where(value == g, 2.0, 4.0)).astype(np.float32)
    hue = ((numerator / np.maximum(chroma, 1e-6) + offset) % 6.0) / 6.0

    def hist(x, bins, weights=None):
        return np.bincount(np.minimum((x * bins).astype(int), bins - 1).ravel(), weights, bins) / x.size

    luma = 0.299 * r + 0.587 * g + 0.114 * b
    rg, yb = r - g, 0.5 * (r + g) - b
    colourfulness = np.sqrt(rg.var() + yb.var()) + 0.3 * np.sqrt(rg.mean() ** 2 + yb.mean() ** 2)
    gx, gy = np.diff(luma, axis=1)[:-1, :], np.diff(luma, axis=0)[:, :-1]
    edges = np.mean(gx**2 + gy**2 > visual.EDGE_THRESHOLD**2)
    hists = [hist(hue, visual.HUE_BINS, saturation.ravel()), hist(saturation, visual.SAT_BINS), hist(value, 4)]
    return np.concatenate([*hists, [luma.mean(), luma.std(), colourfulness, edges]]), luma


def real_small_pictures(media, every=7):
    """Every 7th picture of real videos (bright animation, dark film, natural footage) as the build sees them."""
    pictures, scaler = [], VideoReformatter()
    for name in ("av/sintel_clip.mp4", "av/bigbuckbunny_5s.mp4", "footage/tree.avi", "footage/mdn_flower.mp4"):
        info = probe(media / name)
        for i, (_, frame) in enumerate(iter_video_frames(info.path, origin=info.start)):
            if i % every == 0:
                pictures.append(visual.small_picture(scaler, frame))
    return pictures


def every_colour(frames=40, seed=0):
    """Frames of 160×90 pixels drawn from all 2^24 colours, each colour once: hue ties (two channels on top),
    greys, black, and reds leaning to blue (the hue wrap) all in there."""
    colours = np.random.default_rng(seed).permutation(1 << 24)[: frames * 90 * 160]
    rgb = np.stack([colours >> 16, (colours >> 8) & 255, colours & 255], axis=-1).astype(np.uint8)
    return list(rgb.reshape(frames, 90, 160, 3))


def test_frame_stats_equal_the_pixel_by_pixel_formulas(media):
    """frame_stats takes shortcuts (byte thresholds for the histograms, no float modulo for the hue, ..), so
    it is held to the plain formulas: on real decoded pictures, turned ones, and every kind of colour. One pixel
    in a wrong bin moves a histogram by 1/14400 = 7e-5, far outside the tolerance."""
    pictures = real_small_pictures(media)
    pictures += [np.rot90(p) for p in pictures[::10]] + every_colour()
    for rgb in pictures:
        stats, luma = visual.frame_stats(rgb)
        expected, expected_luma = reference_frame_stats(rgb)
        assert stats.shape == (len(visual.NAMES) - 4,)
        np.testing.assert_allclose(stats, expected, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(luma, expected_luma, rtol=1e-6, atol=1e-7)


def test_clip_rows_equal_the_reference_on_real_video(media):
    """A clip's rows (means of the per-frame statistics, motion, cuts and flashes per second) on real video
    equal what the plain formulas give."""
    pictures = real_small_pictures(media, every=1)[:300]
    pictures += [255 - p for p in pictures[:24]]  # a second of negatives: cuts and flashes
    feats = visual.VisualFeatures()
    seconds = (len(pictures) + 23) // 24
    sums, motion = np.zeros((seconds, len(visual.NAMES) - 4)), [[] for _ in range(seconds)]
    cuts, flashes = np.zeros(seconds), np.zeros(seconds)
    previous = None
    for i, rgb in enumerate(pictures):
        feats.add(i / 24, rgb)
        stats, luma = reference_frame_stats(rgb)
        s = i // 24
        sums[s] += stats
        hist = np.histogram(luma, 64, (0.0, 1.0))[0] / luma.size
        if previous is not None:
            motion[s].append(np.abs(luma - previous[0]).mean())
            cuts[s] += 0.5 * np.abs(hist - previous[1]).sum() > visual.CUT_THRESHOLD
            flashes[s] += luma.mean() - previous[0].mean() > visual.FLASH_THRESHOLD
        previous = luma, hist
    counts = np.bincount(np.arange(len(pictures)) // 24)[:, None]
    expected = np.column_stack(
        [sums / counts, [np.mean(m) for m in motion], [np.max(m) for m in motion], cuts, flashes]
    )
    rows = feats.rows(seconds)
    assert cuts.sum() >= 2 and flashes.sum() >= 1  # the reference saw some: the comparison covers them
    np.testing.assert_allclose(rows, expected, rtol=1e-5, atol=1e-7)


def test_streamed_audio_gives_the_rows_of_the_whole(media):
    """Live analysis (audio arriving in odd-sized blocks, memory bounded) = analysis of the file."""
    music = read_audio_file(media / "music" / "lmms_Skiessi-C64.ogg", 0, 24)
    whole = audio.audio_features(music)
    live = audio.AudioAnalyser(keep_seconds=12)
    rng = np.random.default_rng(0)
    at = 0
    while at < len(music):
        n = int(rng.integers(100, 9000))
        live.push(music[at : at + n])
        at += n
    live.finish()
    # the last 8 s: their rows, tempo history included, lie inside the 12 s kept
    assert np.allclose(live.rows(16.0, 8), whole[16:24], atol=1e-4)
    # so are the per-frame onsets the beat trackers read (the low band too), and the raw samples
    file = audio.AudioAnalyser(keep_seconds=None)
    file.push(music)
    file.finish()
    for name in ("onset", "onset_low"):
        first, values = live.frames_since(name, 0)  # asked from the start: what is kept, and where it begins
        assert first == len(file.frames_since(name, 0)[1]) - len(values) > 0
        assert np.allclose(values, file.frames_since(name, first)[1], atol=1e-4)
    assert np.array_equal(live.samples(20 * 22050, 21 * 22050), music[20 * 22050 : 21 * 22050])
    assert np.array_equal(file.samples(-100, 50), np.concatenate([np.zeros(100, np.float32), music[:50]]))
    with pytest.raises(ValueError, match="no analysed audio"):
        live.row(0.0, 1.0)  # forgotten: more than 12 s ago
    with pytest.raises(ValueError, match="not kept"):
        live.samples(0, 100)
