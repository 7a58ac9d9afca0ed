"""The `livejpp` command: one entry point, one subcommand per job."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from livejpp import __version__
from livejpp.errors import LivejppError
from livejpp.log import setup_logging

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
    info.set_defaults(func=_cmd_info)
    return parser


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
    )
    return _build(args, args.videos, args.out, settings, create=True)


def _cmd_add(args: argparse.Namespace) -> int:
    return _build(args, args.videos, args.library, None, create=False)


def _build(args, videos, out, settings, create: bool) -> int:
    from livejpp.library.build import build_library
    from livejpp.library.store import LibraryStore

    report = build_library(videos, out, settings, jobs=args.jobs, progress=not args.quiet, create=create)
    with LibraryStore(out) as store:
        _print_summary(store.summary(), report)
    return 130 if report.interrupted else 0


def _cmd_info(args: argparse.Namespace) -> int:
    from livejpp.library.store import LibraryStore

    with LibraryStore(args.library) as store:
        summary = store.summary()
        log_lines = store.recent_log(args.log) if args.log else []
    if args.json:
        summary["log"] = log_lines
        print(json.dumps(summary, indent=2))
    else:
        _print_summary(summary)
        if log_lines:
            print("build log (oldest first):")
            for line in log_lines:
                print(f"  {line['at']}  {line['level']:7}  {line['path'] or '-'}: {line['message']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose, getattr(args, "quiet", False))
    try:
        return args.func(args)
    except LivejppError as exc:
        print(f"livejpp: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("livejpp: interrupted", file=sys.stderr)
        return 130
