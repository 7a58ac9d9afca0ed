"""A source that is already fit to play, copied once into the library as it is (no re-encode).

Encoding a playback file per clip is most of a build's time (x264 at 720p: about 10x real time per
core, against 20x with no playback files). A source the player can start anywhere quickly (H.264 with
keyframes close together) needs none of it: its video stream is copied (remuxed) into the library, and
each clip plays its span of the copy. The library stays self-contained: the copy lives in its folder.

When a source is fit (measured with tools/bench.py scale --part build, 720p H.264 from x264 veryfast,
CPU ms to open a clip and decode its first picture on this 2-core machine): a cut clip starts on a keyframe
(~7 ms), or mid-clip at worst after a second of fastdecode frames (~23 ms). A clip of a copied source starts
wherever the clip boundary falls in the source's GOP, so at worst the decoder first works through a whole
keyframe gap of heavier frames: ~47 ms with a keyframe every 0.5 s, ~73 ms every 1 s, ~127 ms every 2 s,
~202 ms every 4 s. One second is the limit: about three cut clips' worst mid-clip start, under 5 frames at
60 fps; two seconds doubles it, and the live show prepares several candidates' first pictures in the beat
before a cut (430 ms at 140 BPM).

A source in a GPU codec (HAP, HAP Alpha, HAP Q; Resolume's DXV) is copied whatever the library's codec: every
frame is a keyframe, the player uploads its DXT blocks as they are (HAP's after Snappy, DXV's after its own coder:
media/dxv.py), and encoding it again would cost build time and a generation of quality. It
goes into a .mov by FFmpeg's stream copy (the ffmpeg binary of imageio-ffmpeg, as HAP encoding does: PyAV's
muxer tags every HAP stream Hap1, which would mislabel HAP Q and HAP Alpha for other players).

The sound is left out of the copy, as a per-clip file has none: the show never plays a clip's sound (the
music is the live input or the song being rendered), and the features are computed from the source's track.
"""

from __future__ import annotations

import os
import subprocess

import av

from livejpp.media.decode import VideoInfo, video_stream

MAX_KEYFRAME_GAP = 1.0  # seconds between keyframes (see the module's note for the measurement)
MAX_SIZE_FACTOR = 1.25  # a source up to this much taller than the library's playback height is copied as it is
COPYABLE_CODECS = frozenset({"h264"})  # what the player decodes cheaply on the CPU
COPYABLE_PIXELS = frozenset({"yuv420p", "yuvj420p"})  # 8-bit 4:2:0: 10-bit or 4:4:4 decodes slower
GPU_CODECS = frozenset({"hap", "dxv"})  # every frame a keyframe, texture blocks: copied into any library


def copy_name(info: VideoInfo) -> str:
    """The file name of `info`'s copy in the library: MP4 for H.264, QuickTime for the GPU codecs (their home)."""
    return "video.mov" if info.codec in GPU_CODECS else "video.mp4"


def unfit_to_copy(info: VideoInfo, playback_height: int, library_codec: str = "h264") -> str | None:
    """Why `info`'s video must be encoded per clip (None: it may be copied, if its keyframes are close
    enough, which `copy_video` checks while it copies). H.264 is copied into an H.264 library; a GPU codec into
    any library."""
    if info.codec not in GPU_CODECS and (info.codec not in COPYABLE_CODECS or library_codec != info.codec):
        return f"codec {info.codec}"
    if info.rotation:
        return f"rotated {info.rotation}°"  # the player shows stored pixels; a cut clip has them turned
    if info.height > playback_height * MAX_SIZE_FACTOR:
        return f"{info.height} px tall, the library plays ≤ {playback_height}"
    return None


def copy_video(source: str, destination: str) -> bool:
    """Copy `source`'s video stream into `destination` (MP4 for H.264, .mov for a GPU codec) packet for packet;
    False, and nothing written, when its pixels or keyframes make it unfit to play from (see the module's
    note). The keyframes are read first (packets only, no decoding: the file is in the page cache from its
    content hash), so a source that is not fit leaves no half-written file behind."""
    try:
        codec = _fit(source)
        if codec is None:
            return False
        if codec in GPU_CODECS:
            _copy_as_is(source, destination)
        else:
            _copy(source, destination)
    except (av.FFmpegError, OSError, subprocess.CalledProcessError):
        try:
            os.remove(destination)
        except FileNotFoundError:
            pass
        return False
    return True


def _fit(source: str) -> str | None:
    """The codec of `source`'s video if it is fit to copy, else None: each packet timed, the first a keyframe,
    keyframes ≤ MAX_KEYFRAME_GAP apart, and (H.264) 8-bit 4:2:0 pictures."""
    with av.open(source) as inp:
        stream = video_stream(inp)
        if stream is None:
            return None
        codec = stream.codec_context.name
        if codec not in GPU_CODECS and stream.codec_context.pix_fmt not in COPYABLE_PIXELS:
            return None
        limit = MAX_KEYFRAME_GAP + 0.5 / float(stream.average_rate or 25)
        last_key, end = None, None
        for packet in inp.demux(stream):
            if packet.dts is None:  # the demuxer's end-of-stream marker
                continue
            if packet.pts is None:
                return None  # no presentation times (an AVI's): the player could not seek it
            t = float(packet.pts * stream.time_base)
            if packet.is_keyframe:
                if last_key is not None and t - last_key > limit:
                    return None
                last_key = t if last_key is None else max(last_key, t)
            elif last_key is None:
                return None  # pictures before the first keyframe: a clip there would not start
            end = t if end is None else max(end, t)
        return codec if last_key is not None and end - last_key <= limit else None


def _copy(source: str, destination: str) -> None:
    with av.open(source) as inp, av.open(destination, "w", format="mp4", options={"movflags": "+faststart"}) as out:
        stream = video_stream(inp)
        copied = out.add_stream_from_template(stream)
        for packet in inp.demux(stream):
            if packet.dts is not None:
                packet.stream = copied
                out.mux(packet)


def _copy_as_is(source: str, destination: str) -> None:
    """A GPU codec's video stream into a .mov by FFmpeg's stream copy, its codec tag kept (see the module's note)."""
    import imageio_ffmpeg  # as HAP encoding: the library builder's dependency

    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-i", source]
    command += ["-map", "0:v:0", "-c", "copy", "-an", "-sn", "-dn", "-f", "mov", destination]
    subprocess.run(command, check=True, capture_output=True)
