"""Human-readable summaries of a library and of what a build did."""

from __future__ import annotations

from collections import Counter

from livejpp.log import escape_controls


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def format_summary(summary: dict, report=None) -> str:
    lines = [f"library  {summary['library']}"]
    if report is not None:
        rate = report.seconds_added / report.wall_seconds if report.wall_seconds else 0.0
        lines.append(
            f"this run {report.videos_added} videos, {report.clips_added} clips, "
            f"{report.seconds_added / 60:.1f} min of footage in {report.wall_seconds:.1f} s ({rate:.1f}x real time)"
            + (f", {report.videos_resumed} resumed" if report.videos_resumed else "")
            + (f", {report.fingerprinted} soundtracks fingerprinted" if report.fingerprinted else "")
            + (f", {len(report.duplicates)} already in the library" if report.duplicates else "")
            + (" — interrupted, run again to resume" if report.interrupted else "")
        )
        if report.skipped:
            reasons = Counter(reason for _, reason in report.skipped)
            lines.append(
                f"not added {len(report.skipped)} file{'s' if len(report.skipped) != 1 else ''} this run: "
                + "; ".join(
                    escape_controls(f"{reason} ({n})" if n > 1 else reason) for reason, n in reasons.most_common()
                )
            )
    hours = summary["footage_hours"]
    lines.append(
        f"videos   {summary['videos']}"
        + (f" ({summary['videos_unfinished']} unfinished)" if summary["videos_unfinished"] else "")
    )
    lines.append(
        f"clips    {summary['clips']}: {summary['clips_with_music']} with music, {summary['clips_silent']} silent, "
        f"{summary['clips_without_audio']} without audio"
    )
    lines.append(f"footage  {hours:.3f} h ({hours * 60:.1f} min); {summary['tails_dropped']} short tails dropped")
    lines.append(_fingerprint_line(summary))
    settings = summary.get("settings") or {}
    if settings:
        lines.append(
            f"settings {settings['clip_seconds']:g} s clips"
            + (f" every {settings['hop']:g} s" if settings.get("hop") else "")
            + (
                f", playback ≤ {settings['playback_height']}p"
                if settings.get("transcode")
                else ", playing from sources"
            )
            + f", {settings['features']} features"
        )
    for name, fs in summary["feature_sets"].items():
        lines.append(f"features {name}: {fs['modality']}, {fs['dim']}-d per second (v{fs['version']})")
    size = summary["disk_bytes"]
    per_hour = f" ({_size(int(size / hours))} per hour of footage)" if hours > 0 else ""
    lines.append(f"disk     {_size(size)}{per_hour}")
    if summary["skipped"]:
        lines.append(f"skipped  {len(summary['skipped'])} files:")
        lines.extend(f"  {escape_controls(s['path'])}: {escape_controls(s['reason'])}" for s in summary["skipped"])
    return "\n".join(lines)


def _fingerprint_line(summary: dict) -> str:
    """How many videos sync can recognise by their soundtrack, and why the others cannot."""
    done, silent, mute = (
        summary["videos_fingerprinted"],
        summary["videos_soundtrack_silent"],
        summary["videos_without_audio"],
    )
    missing = summary["videos"] - done - silent - mute
    why = [
        f"{silent} silent soundtrack{'s' if silent != 1 else ''}" if silent else "",
        f"{mute} without audio" if mute else "",
        f"{missing} not yet: `library add` with their files adds them" if missing else "",
    ]
    why = [w for w in why if w]
    return f"sync     fingerprinted {done} of {summary['videos']} videos" + (f" ({'; '.join(why)})" if why else "")
