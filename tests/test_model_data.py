"""Training data: the external-features format, libraries, splits, and clear refusals."""

import numpy as np
import pytest

from livejpp.library.build import build_library
from livejpp.model import synthetic
from livejpp.model.data import DataError, load, load_npz, split
from livejpp.model.metrics import batched_recall, gallery_recall, ranks


def write(path, **arrays):
    np.savez(path, **arrays)
    return path


def good(n=20, t=4):
    return synthetic.make(videos=n // 4, clips_per_video=4, seconds=t)


def test_external_features_round_trip(tmp_path):
    data = load_npz(write(tmp_path / "f.npz", **good()))
    assert data.audio.shape == (20, 4, 64) and data.visual.shape == (20, 4, 28)
    assert len(np.unique(data.video)) == 5


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda a: a.update(video=a["video"][:-1]), "lengths differ: audio 20, visual 20, video 19, clip 20"),
        (
            lambda a: a["audio"].__setitem__((3, 1, 2), np.nan),
            "audio has NaN or infinite values in 1 clips (first: row 3)",
        ),
        (lambda a: a.pop("visual"), "missing arrays visual (needs audio, visual, video, clip)"),
        (lambda a: a.update(visual=a["visual"][:, :3]), "audio has 4 seconds per clip, visual 3"),
        (lambda a: a.update(clip=np.zeros(20, int)), "clip ids are not unique"),
    ],
)
def test_bad_features_files_are_refused_clearly(tmp_path, change, message):
    arrays = good()
    change(arrays)
    path = write(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError) as err:
        load_npz(path)
    assert str(err.value) == f"{path}: {message}"


def test_a_library_without_music_has_nothing_to_pair(tmp_path, media):
    lib = tmp_path / "silent"
    build_library([media / "footage" / "earth.mp4", media / "footage" / "tree.avi"], lib, progress=False)
    with pytest.raises(DataError, match="no clip has real music"):
        load(lib)


def test_library_pairs_only_clips_with_music(real_library):
    lib, _ = real_library
    data = load(lib)
    assert len(data) == 5  # bunny ×3, bunny 5 s, sintel: the others are silent or have no audio
    assert data.audio.shape[1:] == (10, 64) and data.visual.shape[1:] == (10, 28)
    assert np.isfinite(data.audio).all()


def test_splits_hold_out_whole_videos_or_clips_and_repeat(tmp_path):
    data = load_npz(write(tmp_path / "f.npz", **synthetic.make(videos=30, clips_per_video=5, seconds=2)))
    train, val = split(data, "video", seed=1)
    assert not set(data.video[train]) & set(data.video[val])
    assert 0.15 < len(val) / len(data) < 0.3
    train_c, val_c = split(data, "clip", seed=1)
    assert len(val_c) == 30 and not set(train_c) & set(val_c)
    assert set(data.video[train_c]) & set(data.video[val_c])  # the original split mixes videos
    assert np.array_equal(split(data, "video", seed=1)[1], val)
    assert not np.array_equal(split(data, "video", seed=2)[1], val)


def test_recall_and_ranks():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 16))
    perfect = batched_recall(x, x + 1e-3, "cosine")
    assert perfect["audio_to_video"]["R@1"] == 1.0 and perfect["chance"]["R@5"] == 0.05
    noise = batched_recall(x, rng.standard_normal((300, 16)), "l2", n_batches=200)
    assert abs(noise["audio_to_video"]["R@5"] - 0.05) < 0.02
    assert ranks(np.eye(3), np.eye(3)[[2, 0, 1]], np.array([1, 2, 0]), "cosine").tolist() == [[0, 0]] * 3
    constant = batched_recall(np.ones((100, 4)), np.ones((100, 4)), "l2")  # a collapsed model
    assert constant["audio_to_video"]["R@5"] == pytest.approx(0.05)  # ties broken at random: chance
    g = gallery_recall(x[:10], x[:10], x, x, np.arange(10), "cosine")
    assert g["audio_to_video"]["median_rank"] == 1 and g["chance"]["median_rank"] == 150.5
