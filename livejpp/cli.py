"""The `livejpp` command: one entry point, one subcommand per job."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading

from livejpp import __version__
from livejpp.errors import LivejppError
from livejpp.log import escape_controls, setup_logging
from livejpp.signals import Terminated, stop_cleanly_on_sigterm

log = logging.getLogger("livejpp")


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a whole number greater than 0, got {text}")
    return value


def _add_jobs(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--jobs",
        "-j",
        type=_positive_int,
        default=os.cpu_count() or 1,
        help="videos processed at once (default: all %(default)s cores)",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar; print only problems and the summary")
    p.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="run the per-video work on a Dask distributed scheduler (tcp://host:8786); needs livejpp[cluster]",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="livejpp",
        description="Live visuals that follow the music: turn videos into a clip library, "
        "then play the clips that fit what you hear.",
    )
    parser.add_argument("--version", action="version", version=f"livejpp {__version__}")
    parser.add_argument("--verbose", "-v", action="count", default=0, help="say more about what happens")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    library = commands.add_parser(
        "library",
        help="build and inspect clip libraries",
        description="Clip libraries: videos cut into clips, with per-second features and playback-ready files.",
    )
    lib_commands = library.add_subparsers(dest="library_command", metavar="ACTION", required=True)

    build = lib_commands.add_parser(
        "build",
        help="cut videos into a new library (or resume one)",
        description="Cut VIDEOS (files or folders, searched recursively) into clips, extract per-second "
        "audio and visual features and write playback-ready clips into the library at --out. "
        "Run it again after an interruption: it resumes where it stopped.",
    )
    build.add_argument("videos", nargs="+", metavar="VIDEOS", help="video files or folders")
    build.add_argument("--out", "-o", required=True, metavar="LIB", help="library folder (created if missing)")
    build.add_argument(
        "--clip-seconds", type=_positive_float, default=10.0, metavar="S", help="clip length (default: %(default)g)"
    )
    build.add_argument(
        "--hop",
        type=_positive_float,
        default=None,
        metavar="S",
        help="start a clip every S seconds (overlapping clips when S < --clip-seconds; default: back to back)",
    )
    build.add_argument(
        "--playback-height",
        type=_positive_int,
        default=720,
        metavar="PX",
        help="fit playback clips within this height, never upscaling (default: %(default)s)",
    )
    build.add_argument(
        "--no-transcode",
        dest="transcode",
        action="store_false",
        help="play from the source files instead of writing playback clips",
    )
    build.add_argument(
        "--no-remux",
        dest="remux",
        action="store_false",
        help="encode a playback clip per clip even for H.264 sources fit to play, which are otherwise copied "
        "into the library once as they are (a keyframe every second or closer, at most 1.25x the playback height)",
    )
    build.add_argument(
        "--features",
        choices=("hand", "pretrained", "all"),
        default="hand",
        help="hand-crafted features, pretrained extractors (models/), or both (default: %(default)s)",
    )
    build.add_argument(
        "--x264-preset",
        default="ultrafast",
        metavar="NAME",
        help="x264 speed preset for playback clips (default: %(default)s; slower = smaller files)",
    )
    build.add_argument("--crf", type=int, default=23, help="x264 quality, lower is better (default: %(default)s)")
    build.add_argument(
        "--codec",
        choices=("h264", "hap"),
        default="h264",
        help="playback clips as H.264 (small) or HAP (large; the GPU takes its frames as they are, "
        "almost no CPU a layer) (default: %(default)s)",
    )
    _add_jobs(build)
    build.set_defaults(func=_cmd_build)

    add = lib_commands.add_parser(
        "add",
        help="add videos to an existing library",
        description="Add VIDEOS to the library LIB with the settings it was built with. "
        "A video already in the library (same content, any name) is not added twice.",
    )
    add.add_argument("library", metavar="LIB", help="library folder")
    add.add_argument("videos", nargs="+", metavar="VIDEOS", help="video files or folders")
    _add_jobs(add)
    add.set_defaults(func=_cmd_add)

    info = lib_commands.add_parser(
        "info",
        help="summarise a library",
        description="Videos, clips, hours of footage, feature sets, skipped files and why, size on disk.",
    )
    info.add_argument("library", metavar="LIB", help="library folder")
    info.add_argument("--json", action="store_true", help="print the summary as JSON")
    info.add_argument("--log", type=int, default=0, metavar="N", help="also print the last N lines of the build log")
    info.add_argument(
        "--check", action="store_true", help="open every clip file and list those missing or broken (exit 1 if any)"
    )
    info.set_defaults(func=_cmd_info)

    embed = lib_commands.add_parser(
        "embed",
        help="embed every clip under a model and build the search index",
        description="Compute the visual embedding of every clip of LIB (silent ones too) with MODEL and build "
        "the hnswlib index that live, render and query search. Redone only when the model or the library changed.",
    )
    embed.add_argument("library", metavar="LIB", help="library folder")
    embed.add_argument(
        "--model", "-m", default="default", help="model name under models/ or a folder (default: %(default)s)"
    )
    embed.add_argument("--force", action="store_true", help="rebuild even when the index is up to date")
    embed.set_defaults(func=_cmd_embed)

    train = commands.add_parser(
        "train",
        help="train an audio/visual embedding (needs the train extra: TensorFlow)",
        description="Train a model that maps a clip's music and its pictures close together, from a library's clips "
        "with real soundtracks or from an external features file (.npz with audio [N,T,Da], visual [N,T,Dv], "
        "video [N], clip [N]). Writes OUT/audio.onnx, OUT/visual.onnx and OUT/card.json; the export is checked "
        "against the trained model. Same seed, same data: same model.",
    )
    train.add_argument("source", metavar="LIB|FEATURES.npz", help="library folder or features file")
    train.add_argument(
        "--preset",
        "-p",
        default="infonce",
        choices=("seed", "seed_tf1", "regression", "infonce", "rules"),
        help="seed: the 2019 siamese network (dropout rate 0.9); seed_tf1: the same with dropout .9 read as "
        "TF1's keep probability; regression: its baseline; infonce: ours (default); "
        "rules: the hand-made default model, no training",
    )
    train.add_argument("--out", "-o", required=True, metavar="models/NAME", help="model folder to write")
    train.add_argument(
        "--split",
        choices=("video", "clip"),
        default="video",
        help="hold out whole videos (default) or 20%% of clip pairs, as the 2019 project did",
    )
    train.add_argument(
        "--features",
        choices=("hand", "pretrained"),
        default="hand",
        help="hand-crafted feature sets or the pretrained ones (musicnn, effnet)",
    )
    train.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    train.add_argument(
        "--max-epochs", type=_positive_int, default=None, metavar="N", help="stop after N epochs at most"
    )
    train.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    train.set_defaults(func=_cmd_train)

    evaluate = commands.add_parser(
        "eval",
        help="Recall@K of a model against chance, with plots",
        description="Measure MODEL on SOURCE: audio → video and video → audio Recall@K under the original protocol "
        "(random batches of 100 held-out pairs) or the video-level one (the model's split), and every held-out "
        "clip against the whole gallery (R@1/5/10, median rank). Chance is printed beside every figure. "
        "Writes metrics.json, training.png, recall.png and tsne.png. With --table: trains every preset on both "
        "splits and prints them side by side.",
    )
    evaluate.add_argument("args", nargs="+", metavar="[MODEL] SOURCE", help="model (not with --table) and data")
    evaluate.add_argument("--table", action="store_true", help="train each preset on both splits; print one table")
    evaluate.add_argument(
        "--presets",
        nargs="+",
        default=["seed", "seed_tf1", "regression", "infonce"],
        metavar="P",
        help="presets for --table (default: %(default)s)",
    )
    evaluate.add_argument("--features", choices=("hand", "pretrained"), default="hand", help="for --table")
    evaluate.add_argument("--max-epochs", type=_positive_int, default=None, metavar="N", help="for --table")
    evaluate.add_argument("--out", metavar="DIR", help="where reports go (default: eval/MODEL)")
    evaluate.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    evaluate.set_defaults(func=_cmd_eval)

    render = commands.add_parser(
        "render",
        help="stitch a music video for a song from a library",
        description="Feed SONG to the engine as if it were live, cut between the clips that fit it on the beat, "
        "crossfade them and write an H.264/AAC mp4 with the song's audio, plus the cut list (OUT.cuts.json and "
        "OUT.cuts.csv: time, clip, video, source time, distance, beat). SONG is any audio PyAV reads, or a video's "
        "soundtrack.",
    )
    render.add_argument("song", metavar="SONG", help="audio file (mp3, ogg, flac, wav, m4a, ...) or a video")
    render.add_argument("--library", "-l", required=True, metavar="LIB", help="library folder")
    render.add_argument("--model", "-m", default="default", help="model (default: %(default)s)")
    render.add_argument("--out", "-o", required=True, metavar="OUT.mp4", help="video to write")
    render.add_argument("--size", default="1280x720", metavar="WxH", help="output size (default: %(default)s)")
    render.add_argument("--fps", type=_positive_int, default=30, help="frames per second (default: %(default)s)")
    render.add_argument(
        "--transition",
        choices=("crossfade", "dip", "wipe"),
        default="crossfade",
        help="how one clip gives way to the next (default: %(default)s)",
    )
    render.add_argument(
        "--layer",
        action="append",
        default=[],
        metavar="N:CLIP:OPACITY:BLEND",
        help="a layer over the matched cuts: N 2..4, a clip uid or a video's file name (its first clip, looping "
        "from the start), opacity 0..1 (default 1), blend alpha|add|screen|multiply (default alpha); repeatable",
    )
    _add_selector_options(render)
    _add_sync_option(render)
    render.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    render.set_defaults(func=_cmd_render)

    query = commands.add_parser(
        "query",
        help="the clips nearest to and farthest from a song or a video",
        description="Embed a window of INPUT (audio: audio → video through the model; video: video → video) and "
        "print the k nearest and k farthest clips of the library; also writes a contact sheet PNG.",
    )
    query.add_argument("input", metavar="INPUT", help="audio or video file")
    query.add_argument("--library", "-l", required=True, metavar="LIB", help="library folder")
    query.add_argument("--model", "-m", default="default", help="model (default: %(default)s)")
    query.add_argument("-k", type=_positive_int, default=5, help="how many nearest and farthest (default: %(default)s)")
    query.add_argument("--start", type=float, default=0.0, metavar="S", help="window start in INPUT (default: 0)")
    query.add_argument("--as", dest="kind", choices=("audio", "video"), help="treat INPUT as audio or video")
    query.add_argument("--sheet", metavar="PNG", help="contact sheet to write (default: INPUT name + .query.png)")
    query.set_defaults(func=_cmd_query)

    live = commands.add_parser(
        "live",
        help="the show: audio in, matched clips crossfaded on the beat in a window",
        description="Listen to an input device (or play a file as if live), match the rolling 10 s window against "
        "the library every half second, and crossfade to the clips that fit, on the beat, in an OpenGL window. "
        "Press ? in the window for the keys.",
    )
    live.add_argument("--library", "-l", required=True, metavar="LIB", help="library folder")
    live.add_argument("--model", "-m", default="default", help="model (default: %(default)s)")
    source = live.add_mutually_exclusive_group()
    source.add_argument("--input", "-i", metavar="DEVICE", help="capture device, by name or number (livejpp devices)")
    source.add_argument("--play", metavar="FILE", help="play FILE as if it were live (heard where an output exists)")
    live.add_argument("--silent", action="store_true", help="with --play: follow the wall clock without sound")
    live.add_argument(
        "--size", default="1280x720", metavar="WxH", help="window and picture size (default: %(default)s)"
    )
    live.add_argument("--fps", type=_positive_int, default=30, help="frames per second (default: %(default)s)")
    live.add_argument("--fullscreen", action="store_true", help="fullscreen (see --screen)")
    live.add_argument("--screen", type=int, metavar="N", help="which screen for fullscreen (0 = first)")
    live.add_argument("--headless", action="store_true", help="no display needed: draw offscreen (EGL)")
    live.add_argument(
        "--frames",
        choices=("auto", "rgb", "gpu"),
        default="auto",
        help="what the decoder hands the GPU: pictures as decoded (gpu: planes or HAP blocks, the shader converts "
        "and scales, the CPU only decodes), RGB converted on the CPU (rgb), or gpu on a hardware GL and rgb on a "
        "software one (auto, the default)",
    )
    live.add_argument(
        "--max-texture",
        type=_positive_int,
        metavar="PX",
        help="largest picture side to upload (default: the GL's limit); larger pictures are scaled down first",
    )
    live.add_argument("--no-hud", dest="hud", action="store_false", help="start with the HUD hidden (tab shows it)")
    live.add_argument("--duration", type=float, metavar="S", help="stop the show after S seconds")
    live.add_argument("--record", metavar="OUT.mp4", help="record what the window shows, with the input audio")
    live.add_argument("--stats", metavar="OUT.json", help="write what the HUD measures at exit")
    live.add_argument(
        "--transition",
        choices=("crossfade", "dip", "wipe"),
        default="crossfade",
        help="how one clip gives way to the next; keys 1-3 switch (default: %(default)s)",
    )
    live.add_argument(
        "--effect",
        choices=("none", "mirror", "invert", "pixelate"),
        default="none",
        help="an effect over the pictures; key e cycles, , and . set its amount (default: none)",
    )
    live.add_argument(
        "--layers",
        type=int,
        choices=range(1, 5),
        default=2,
        metavar="N",
        help="layers drawn, 1..4: layer 1 is the matcher's crossfade, 2..N are set by hand (bus command "
        "`layer N clip|opacity|blend VALUE`: OSC, MIDI, presets) and start empty (default: %(default)s)",
    )
    _add_selector_options(live)
    _add_sync_option(live)
    sync = live.add_argument_group("sync (the picture meets the sound in the room; Ableton Link)")
    sync.add_argument(
        "--output-latency",
        type=float,
        metavar="MS",
        help="how long a drawn picture takes to be seen (default: one frame at --fps: the flip waits for the "
        "display's next refresh; a projector adds its own, measure it with --calibrate)",
    )
    sync.add_argument(
        "--av-offset", type=float, default=0.0, metavar="MS", help="move the pictures later (negative: earlier)"
    )
    sync.add_argument(
        "--calibrate",
        nargs="?",
        const="tap",
        choices=("tap", "loop"),
        help="tap: tap t on the beat you hear, 8 times: the A/V offset is measured, set and printed; loop: flash "
        "and click on each beat at 120 BPM, to film (or --record through a microphone) for `livejpp calibrate`",
    )
    sync.add_argument(
        "--calibrate-save",
        metavar="PRESET.toml",
        help="with --calibrate: keep the offset found as av_offset in this show preset (made if missing)",
    )
    sync.add_argument(
        "--clock",
        choices=("music", "link"),
        default="music",
        help="what drives the beat: the music heard, or an Ableton Link session (needs livejpp[link])",
    )
    sync.add_argument(
        "--link", action="store_true", help="join Ableton Link and publish the tempo and bar the show hears"
    )
    control = live.add_argument_group("control (OSC, MIDI, presets: `livejpp commands` lists what they can do)")
    control.add_argument(
        "--osc-port", type=int, default=9000, metavar="PORT", help="OSC UDP port (default: %(default)s)"
    )
    control.add_argument(
        "--osc-host",
        default="127.0.0.1",
        metavar="HOST",
        help="address OSC listens on (default: %(default)s, this machine only; 0.0.0.0 for the network)",
    )
    control.add_argument("--no-osc", dest="osc", action="store_false", help="no OSC server")
    control.add_argument(
        "--osc-feedback", metavar="HOST:PORT", help="send what plays (/livejpp/state/...) to this OSC client"
    )
    control.add_argument(
        "--midi-in",
        action="append",
        default=[],
        metavar="PORT",
        help="MIDI input port by name or pattern ('nanoKONTROL*'); repeat for more (livejpp devices lists them)",
    )
    control.add_argument(
        "--midi-map", default="generic", metavar="PRESET", help="MIDI mapping preset, name or file (default: generic)"
    )
    control.add_argument("--midi-api", choices=("alsa", "jack"), help="MIDI system (default: $LIVEJPP_MIDI_API)")
    control.add_argument("--midi-clock", action="store_true", help="follow MIDI clock (24 ppqn) for the beat")
    control.add_argument(
        "--learn",
        metavar="FILE",
        help="MIDI learn (key l): bindings are added to the --midi-map bindings and saved to FILE",
    )
    control.add_argument("--preset", metavar="NAME", help="show preset to start with (presets/NAME.toml)")
    control.add_argument("--presets", metavar="DIR", help="a folder of your own presets, searched first")
    live.set_defaults(func=_cmd_live)

    calibrate = commands.add_parser(
        "calibrate",
        help="measure the A/V offset from a film of the flashes and clicks of `live --calibrate loop`",
        description="Finds the white flashes in FILM's picture and the clicks in its sound, and prints how long "
        "after its click each flash is seen (the median): move the pictures by minus that (av_offset). Film the "
        "screen and the speaker together (a phone's camera and microphone are in step), or give the --record file "
        "of a show that heard its clicks through a microphone. Good to half a frame of the film.",
    )
    calibrate.add_argument("film", metavar="FILM", help="a video: the flashes in its picture, the clicks in its sound")
    calibrate.add_argument(
        "--recorded",
        action="store_true",
        help="FILM is the --record file of the loop, its sound the clicks as the show's input heard them",
    )
    calibrate.set_defaults(func=_cmd_calibrate)

    commands_help = commands.add_parser(
        "commands",
        help="what keys, OSC and MIDI can do in a live show",
        description="Every command a live show takes, with its OSC address, its key and its MIDI use.",
    )
    commands_help.add_argument("--presets", metavar="DIR", help="a folder of your own presets, listed too")
    commands_help.set_defaults(func=_cmd_commands)

    devices = commands.add_parser(
        "devices",
        help="list audio devices and MIDI inputs",
        description="Audio devices livejpp can capture from (inputs) and play to (outputs), and MIDI input ports.",
    )
    devices.add_argument("--midi-api", choices=("alsa", "jack"), help="MIDI system (default: $LIVEJPP_MIDI_API)")
    devices.set_defaults(func=_cmd_devices)
    return parser


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from livejpp.engine.calibrate import flash_click_offset

    offset, spread, pairs = flash_click_offset(args.film)
    ms = offset * 1000
    move = ms if args.recorded else -ms  # a recording's flashes and clicks mean the other way (engine/calibrate.py)
    print(
        f"flashes {abs(ms):.0f} ms {'after' if ms >= 0 else 'before'} their clicks ({pairs} flashes, within "
        f'{spread * 1000:.0f} ms): move the pictures by {move:+.0f} ms (/livejpp/av_offset "{move:+.0f}", keys ; \')'
    )
    return 0


def _cmd_devices(args: argparse.Namespace) -> int:
    from livejpp.audio_io import list_devices

    found = list_devices()
    if not found:
        print("no audio devices")
    for d in found:
        print(f"{d['index']:>3}  {d['name']:<40} in {d['inputs']:>2}  out {d['outputs']:>2}  {d['rate']:.0f} Hz")
    from livejpp.control.midi import input_names

    try:
        ports = input_names(args.midi_api)
    except Exception as exc:  # noqa: BLE001 - no MIDI system running is an answer, not a crash
        print(f"MIDI inputs: none ({exc})")
        return 0
    print("MIDI inputs:" + ("" if ports else " none"))
    for name in ports:
        print(f"     {name}")
    return 0


def _cmd_commands(args: argparse.Namespace) -> int:
    from livejpp.control.commands import table
    from livejpp.control.keys import help_text
    from livejpp.control.mapping import MODES, Presets

    print(table())
    print("\nOSC: /livejpp/COMMAND [VALUE], /livejpp/COMMAND/WORD (buttons), /livejpp/COMMAND/step [N],")
    print("     /livejpp/state (replies with every /livejpp/state/KEY VALUE)\n")
    print(help_text())
    print("\nMIDI binding modes:")
    for mode, doc in MODES.items():
        print(f"  {mode:<10} {doc}")
    print("\npresets: " + ", ".join(Presets(args.presets).names()))
    return 0


def _cmd_live(args: argparse.Namespace) -> int:
    link = None
    if args.clock == "link" or args.link:  # first: a missing extra is said before the library loads
        from livejpp.control.link import LinkClock

        link = LinkClock(follow=args.clock == "link")
    try:
        return _play_live(args, link)
    finally:  # a show that fails to start leaves the session at once, not when the peers time it out
        if link is not None:
            link.close()


def _play_live(args: argparse.Namespace, link) -> int:
    """The show, with its Link session (or None), which the caller closes."""
    from pathlib import Path

    from livejpp.audio_io import DeviceSource, FileSource
    from livejpp.control.inputs import ControlOptions, Controls
    from livejpp.engine.live import LiveShow
    from livejpp.render import window

    if args.stats:  # before the show, not after it: one line, and the show's figures are not lost at the end
        folder = Path(args.stats).parent
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise LivejppError(f"--stats {args.stats}: cannot write there (no writable folder {folder})")
    if args.play:
        source = FileSource(args.play, play=not args.silent)
    else:
        device = int(args.input) if args.input and args.input.isdigit() else args.input
        source = DeviceSource(device)
    output = (1000.0 / args.fps if args.output_latency is None else args.output_latency) / 1000.0
    show = LiveShow(
        args.library, source, args.model, _engine_settings(args), _size(args.size), args.fps, layers=args.layers
    )
    from livejpp.media.compose import EFFECTS, TRANSITIONS

    show.transition, show.effect = TRANSITIONS.index(args.transition), EFFECTS.index(args.effect)
    show.latency.output = output
    show.set_av_offset(args.av_offset / 1000.0)
    show.set_sync(args.sync)
    show.link = link
    if args.calibrate == "tap":
        show.calibrate()
    elif args.calibrate == "loop":
        show.calibrate_loop()
    if args.calibrate_save:
        from livejpp.control.mapping import save_show_setting

        def save(offset: float) -> None:
            try:
                path = save_show_setting(args.calibrate_save, "av_offset", round(offset * 1000, 1))
                log.info("A/V offset kept in %s (--presets %s --preset %s)", path, path.parent, path.stem)
            except (LivejppError, OSError) as exc:  # the show goes on; the offset is set, only not kept
                log.warning("A/V offset not kept: %s", exc)

        show.on_calibrated = save
    controls = Controls(
        show,
        ControlOptions(
            osc=args.osc,
            osc_host=args.osc_host,
            osc_port=args.osc_port,
            osc_feedback=args.osc_feedback,
            midi_in=args.midi_in,
            midi_map=args.midi_map,
            midi_api=args.midi_api,
            midi_clock=args.midi_clock,
            learn=args.learn,
            presets=args.presets,
            preset=args.preset,
        ),
    )
    try:
        summary = window.run(
            show,
            args.duration,
            args.fullscreen,
            args.screen,
            args.headless,
            args.record,
            args.hud,
            controls=controls,
            frames=args.frames,
            max_texture=args.max_texture,
        )
    except (LivejppError, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001 - on stage, one line and no traceback (-vv shows where)
        log.debug("the show stopped here:", exc_info=True)
        raise LivejppError(f"the show stopped: {type(exc).__name__}: {exc} (-vv shows where)") from exc
    if args.stats:
        try:
            Path(args.stats).write_text(json.dumps(summary, indent=2) + "\n")
        except OSError as exc:  # a disk that filled during the show: the show itself went well
            log.warning("stats not written to %s: %s", args.stats, exc.strerror or exc)
    print(
        f"show over: {summary['seconds']:.0f} s, {summary['frames_drawn']} frames ({summary['fps']:.1f} fps), "
        f"{summary['frames_dropped']} dropped, {len(summary['cuts'])} cuts, "
        f"analysis p99 {summary['analysis_latency_ms']['p99']} ms"
    )
    if summary["latency"]["calibration"]:
        print(summary["latency"]["calibration"])
    return 0


def _add_sync_option(p: argparse.ArgumentParser) -> None:
    from livejpp.engine.sync import SYNC_MODES

    p.add_argument(
        "--sync",
        choices=SYNC_MODES,
        default="auto",
        help="where the music is the soundtrack of one of the library's videos, play that video in sync with it "
        "(auto, on: also through 4 s of doubt) or not (off); the library's fingerprints (library build/add) "
        "recognise it (default: %(default)s)",
    )


def _add_selector_options(p: argparse.ArgumentParser) -> None:
    from livejpp.engine.trackers import DEFAULT_TRACKER, NAMES

    p.add_argument("--bars", type=_positive_int, default=2, help="cut every N bars of 4 beats (default: %(default)s)")
    p.add_argument("--min-clip", type=float, default=2.0, metavar="S", help="least time on one clip (default: 2)")
    p.add_argument("--max-clip", type=float, default=16.0, metavar="S", help="most time on one clip (default: 16)")
    p.add_argument(
        "--no-repeat",
        type=float,
        default=45.0,
        metavar="S",
        help="a clip is not shown again within S seconds (default: 45)",
    )
    p.add_argument("--crossfade", type=float, default=1.0, metavar="BEATS", help="crossfade length (default: 1)")
    p.add_argument(
        "--stay-with-video",
        type=float,
        default=0.0,
        metavar="W",
        help="prefer clips of the video on screen by W in distance (default: 0, off)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed for the choices among the best clips (default: 0)")
    p.add_argument(
        "--phrase",
        type=int,
        choices=(0, 4, 8, 16),
        default=0,
        metavar="N",
        help="also cut at every phrase start, a phrase being N bars: 4, 8 or 16 (default: 0, off)",
    )
    p.add_argument(
        "--beat-tracker",
        choices=NAMES,
        default=DEFAULT_TRACKER,
        help="what follows the beat and the bar in the music (default: %(default)s)",
    )


def _selector_settings(args: argparse.Namespace):
    from livejpp.engine.selector import SelectorSettings

    return SelectorSettings(
        bars_per_cut=args.bars,
        min_seconds=args.min_clip,
        max_seconds=args.max_clip,
        no_repeat_seconds=args.no_repeat,
        crossfade_beats=args.crossfade,
        stay_with_video=args.stay_with_video,
        seed=args.seed,
        phrase_bars=args.phrase,
    )


def _engine_settings(args: argparse.Namespace):
    from livejpp.engine.engine import EngineSettings

    return EngineSettings(selector=_selector_settings(args), beat_tracker=args.beat_tracker)


def _size(text: str) -> tuple[int, int]:
    from livejpp.media.sizes import parse_size

    return parse_size(text)


def _cmd_render(args: argparse.Namespace) -> int:
    from pathlib import Path

    from livejpp.engine.music_video import render

    result = render(
        args.song,
        args.library,
        args.out,
        args.model,
        _size(args.size),
        args.fps,
        _engine_settings(args),
        progress=not args.quiet,
        transition=args.transition,
        sync=args.sync,
        layers=args.layer,
    )
    speed = result.song_seconds / result.wall_seconds
    print(
        f"wrote {result.video}: {result.song_seconds:.1f} s, {len(result.cuts)} cuts, {result.bpm:.0f} BPM, "
        f"rendered in {result.wall_seconds:.1f} s ({speed:.1f}x real time)"
    )
    print(f"cut list: {result.cut_list_json} and {result.cut_list_csv}")
    synced = [c for c in result.cuts if c["reason"] == "sync"]
    if synced:
        videos = sorted({Path(c["video"]).name for c in synced})
        print(f"in sync with the song's own video: {', '.join(videos)} (from {synced[0]['time']:.1f} s)")
    return 0


def _cmd_query(args: argparse.Namespace) -> int:
    from pathlib import Path

    from livejpp.query import contact_sheet, format_matches, query

    kind, nearest, farthest = query(args.input, args.library, args.model, args.k, args.start, args.kind)
    print(format_matches(kind, args.input, nearest, farthest))
    sheet = args.sheet or f"{Path(args.input).stem}.query.png"
    contact_sheet(sheet, kind, args.input, nearest, farthest)
    print(f"contact sheet: {sheet}")
    return 0


def _cmd_embed(args: argparse.Namespace) -> int:
    from livejpp.index import embed_library

    meta, rebuilt = embed_library(args.library, args.model, force=args.force)
    state = "built" if rebuilt else "up to date"
    print(
        f"index {state}: {meta['count']} clips of {args.library} under {meta['model']} "
        f"({meta['metric']}, {meta['dim']}-d)"
    )
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from livejpp.model.pipeline import train_model

    card = train_model(
        args.source,
        args.preset,
        args.out,
        args.split,
        args.seed,
        args.features,
        args.max_epochs,
        progress=not args.quiet,
    )
    from livejpp.model.evaluate import format_result

    print(
        f"model written to {args.out}: {card['preset']}, {card['data']['pairs']} pairs, "
        f"{card['training_seconds']:.1f} s, best epoch {card['best_epoch']}"
    )
    print(
        format_result({"model": card["name"], "preset": card["preset"], "source": str(args.source), **card["metrics"]})
    )
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    if args.table:
        if len(args.args) != 1:
            raise SystemExit("livejpp eval --table takes one SOURCE (a library or a features file)")
        from livejpp.model.pipeline import format_table, table

        rows = table(
            args.args[0],
            tuple(args.presets),
            features=args.features,
            max_epochs=args.max_epochs,
            progress=not args.quiet,
        )
        text = format_table(rows, args.args[0])
        print(text)
        if args.out:
            out = Path(args.out)
            out.mkdir(parents=True, exist_ok=True)
            (out / "table.txt").write_text(text + "\n")
            (out / "table.json").write_text(json.dumps(rows, indent=2) + "\n")
        return 0
    if len(args.args) != 2:
        raise SystemExit("livejpp eval takes MODEL SOURCE (or --table SOURCE)")
    from livejpp.model.card import resolve
    from livejpp.model.evaluate import evaluate as run_eval
    from livejpp.model.evaluate import format_result

    model, source = args.args
    out = Path(args.out) if args.out else Path("eval") / resolve(model).name
    result = run_eval(model, source, out)
    print(format_result(result))
    print(f"reports written to {out}/ (metrics.json, recall.png, tsne.png, training.png where trained)")
    return 0


def _print_summary(summary: dict, report=None) -> None:
    from livejpp.library.report import format_summary

    print(format_summary(summary, report))


def _cmd_build(args: argparse.Namespace) -> int:
    from livejpp.library.worker import BuildSettings

    settings = BuildSettings(
        clip_seconds=args.clip_seconds,
        hop=args.hop,
        playback_height=args.playback_height,
        transcode=args.transcode,
        features=args.features,
        x264_preset=args.x264_preset,
        crf=args.crf,
        codec=args.codec,
        remux=args.remux,
    )
    return _build(args, args.videos, args.out, settings, create=True)


def _cmd_add(args: argparse.Namespace) -> int:
    from livejpp.index import update_saved_indexes

    code = _build(args, args.videos, args.library, None, create=False)
    if code < 128:  # not interrupted: the new clips join the saved indexes (extended, not rebuilt)
        update_saved_indexes(args.library)
    return code


def _build(args, videos, out, settings, create: bool) -> int:
    from livejpp.library.build import build_library
    from livejpp.library.store import LibraryStore

    report = build_library(
        videos, out, settings, jobs=args.jobs, progress=not args.quiet, create=create, cluster=args.cluster
    )
    with LibraryStore(out) as store:
        _print_summary(store.summary(), report)
    if report.interrupted:
        return 128 + (signal.SIGTERM if report.terminated else signal.SIGINT)
    return 1 if report.skipped else 0  # a file not added is a failure a script must see (the reasons are above)


def _cmd_info(args: argparse.Namespace) -> int:
    from livejpp.library.check import check_clips, format_problems
    from livejpp.library.store import LibraryStore

    with LibraryStore(args.library, readonly=True) as store:
        summary = store.summary()
        log_lines = store.recent_log(args.log) if args.log else []
        problems = check_clips(store) if args.check else None
    if problems is not None:
        summary["check"] = {"clips": summary["clips"], "problems": problems}
    if args.json:
        summary["log"] = log_lines
        print(json.dumps(summary, indent=2))
    else:
        _print_summary(summary)
        if log_lines:
            print("build log (oldest first):")
            for line in log_lines:
                print(f"  {line['at']}  {line['level']:7}  {line['path'] or '-'}: {line['message']}")
        if problems is not None:
            print(format_problems(problems, summary["clips"], args.library))
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose, getattr(args, "quiet", False))
    if threading.current_thread() is threading.main_thread():  # tests call main() from threads
        stop_cleanly_on_sigterm()
    try:
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return code
    except BrokenPipeError:  # `livejpp library info LIB | head -1`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 1
    except LivejppError as exc:
        print(f"livejpp: error: {escape_controls(str(exc))}", file=sys.stderr)
        return 1
    except Terminated:
        print("livejpp: stopped (SIGTERM); nothing half-written is left", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("livejpp: interrupted", file=sys.stderr)
        return 130
