"""`library info --check`: open every clip's file and list the ones that cannot play.

A clip file can go missing (deleted, a stick half-copied) or break (bad sectors, a truncated copy)
long after the build; the manifest cannot notice, so this looks at the files themselves.
"""

from __future__ import annotations

import os

from livejpp.library.store import LibraryStore, UnsafePath
from livejpp.media.decode import MediaError, iter_video_frames


def clip_problem(path: str, start: float) -> str | None:
    """Why the file cannot show the clip's first picture, or None when it can."""
    if not os.path.isfile(path):
        return "missing"
    frames = iter_video_frames(path, start)
    try:
        if next(frames, None) is None:
            return "no pictures (truncated or corrupt?)"
    except MediaError as exc:
        return exc.reason
    finally:
        frames.close()
    return None


def check_clips(store: LibraryStore) -> list[dict]:
    """One entry per clip whose file is refused, missing or does not decode."""
    problems = []
    for record in store.all_clips():
        try:
            path, start, _ = record.pictures(store.root)
        except UnsafePath as exc:
            reason = str(exc).split(": ", 1)[-1]  # without the clip name, printed beside it
            problems.append({"clip": record.uid, "file": record.playback or record.source, "problem": reason})
            continue
        problem = clip_problem(path, start)
        if problem is not None:
            problems.append({"clip": record.uid, "file": path, "problem": problem})
    return problems


def format_problems(problems: list[dict], clips: int, library: str) -> str:
    if not problems:
        return f"check    all {clips} clip files play"
    lines = [f"check    {len(problems)} of {clips} clips cannot play:"]
    lines.extend(f"  {p['clip']}  {p['file']}: {p['problem']}" for p in problems)
    lines.append(f"         (run `livejpp library build` on the same sources and {library} to re-create missing files)")
    return "\n".join(lines)
