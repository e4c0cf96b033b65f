"""Make the gallery's example media: SVG street scenes, short WAV clips and short WebM videos.

Run from the checkout: ``python templates/make_media.py``. Pictures and sounds need the standard library
only and are deterministic (a fixed seed), so re-running it changes no committed file unless this script
changed. The videos are drawn here frame by frame and encoded to VP8 WebM (which Chromium, Firefox and
Safari play) by Debian's ``ffmpeg`` (``make media`` installs it); their bytes can differ with another
libvpx, their pictures and timings cannot.
"""

from __future__ import annotations

import math
import random
import shutil
import struct
import subprocess
import wave
from pathlib import Path

HERE = Path(__file__).resolve().parent
RATE = 8000  # Hz: small files, and plenty for hearing noise, hum, clipping and dropouts
SECONDS = 1.5

# --- pictures for bounding_boxes --------------------------------------------------------------------


def _car(x: int, y: int, color: str) -> str:
    return (
        f'<rect x="{x}" y="{y + 20}" width="170" height="40" rx="10" fill="{color}"/>'
        f'<path d="M{x + 35} {y + 20} L{x + 55} {y} H{x + 120} L{x + 140} {y + 20} Z" fill="{color}"/>'
        f'<rect x="{x + 60}" y="{y + 5}" width="25" height="15" fill="#cfe6f5"/>'
        f'<rect x="{x + 92}" y="{y + 5}" width="25" height="15" fill="#cfe6f5"/>'
        f'<circle cx="{x + 40}" cy="{y + 60}" r="13" fill="#222"/><circle cx="{x + 130}" cy="{y + 60}" r="13" fill="#222"/>'
    )


def _person(x: int, y: int, shirt: str) -> str:
    return (
        f'<circle cx="{x + 20}" cy="{y + 12}" r="12" fill="#e0b48a"/>'
        f'<rect x="{x + 6}" y="{y + 26}" width="28" height="45" rx="6" fill="{shirt}"/>'
        f'<rect x="{x + 8}" y="{y + 70}" width="10" height="50" fill="#334"/>'
        f'<rect x="{x + 22}" y="{y + 70}" width="10" height="50" fill="#334"/>'
    )


def _bicycle(x: int, y: int) -> str:
    return (
        f'<g fill="none" stroke="#222" stroke-width="4">'
        f'<circle cx="{x + 22}" cy="{y + 48}" r="22"/><circle cx="{x + 98}" cy="{y + 48}" r="22"/>'
        f'<path d="M{x + 22} {y + 48} L{x + 50} {y + 15} L{x + 85} {y + 15} L{x + 98} {y + 48} M{x + 50} {y + 15} L{x + 60} {y + 48} L{x + 85} {y + 15}"/>'
        f"</g>"
    )


def _scene(title: str, sky: str, things: str) -> str:
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="480" height="320" viewBox="0 0 480 320">'
        f"<title>{title}</title>"
        f'<rect width="480" height="320" fill="{sky}"/>'
        '<rect y="250" width="480" height="70" fill="#6b6f76"/><rect y="282" width="480" height="4" fill="#e8e8e8"/>'
        '<rect x="20" y="90" width="110" height="160" fill="#c9a27e"/><rect x="360" y="60" width="100" height="190" fill="#9fb3c8"/>'
        f"{things}</svg>\n"
    )


PICTURES = {
    "street.svg": _scene(
        "A street with a car and a pedestrian", "#bfe3ff", _car(40, 190, "#c0392b") + _person(300, 150, "#2e86c1")
    ),
    "crossing.svg": _scene(
        "Two people and a bicycle at a crossing",
        "#d6ecff",
        _person(150, 140, "#8e44ad") + _person(210, 145, "#27ae60") + _bicycle(300, 190),
    ),
    "parking.svg": _scene(
        "Two parked cars", "#fbe7c6", _car(20, 190, "#2471a3") + _car(250, 195, "#f1c40f") + _bicycle(190, 195)
    ),
}

# --- clips for audio_rating ---------------------------------------------------------------------------


def _tone(t: float) -> float:
    """A soft two-note chime with a gentle fade in and out."""
    envelope = min(t / 0.05, 1.0, (SECONDS - t) / 0.2)
    return envelope * (0.45 * math.sin(2 * math.pi * 440 * t) + 0.25 * math.sin(2 * math.pi * 660 * t))


def _clip(kind: str, rng: random.Random) -> list[float]:
    out = []
    for i in range(int(RATE * SECONDS)):
        t = i / RATE
        v = _tone(t)
        if kind == "noisy":
            v += rng.uniform(-0.35, 0.35)
        elif kind == "hum":
            v = 0.6 * v + 0.35 * math.sin(2 * math.pi * 50 * t)
        elif kind == "clipped":
            v = max(-0.3, min(0.3, 3 * v))
        elif kind == "dropouts" and int(t * 6) % 3 == 1:
            v = 0.0
        out.append(v)
    return out


def _write_wav(path: Path, samples: list[float]) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(b"".join(struct.pack("<h", round(max(-1.0, min(1.0, s)) * 32000)) for s in samples))


# --- clips for video_annotation -----------------------------------------------------------------------
WIDTH, HEIGHT, FPS, CLIP_SECONDS = 320, 180, 10, 6.0
RGB = tuple[int, int, int]


def _hex(color: str) -> RGB:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


class _Frame:
    """One RGB picture, drawn with rectangles and discs (clipped at the edges)."""

    def __init__(self, background: bytes) -> None:
        self.pixels = bytearray(background)

    def rect(self, x: float, y: float, w: float, h: float, color: str) -> None:
        left, right = max(0, round(x)), min(WIDTH, round(x + w))
        if left >= right:
            return
        row = bytes(_hex(color)) * (right - left)
        for line in range(max(0, round(y)), min(HEIGHT, round(y + h))):
            at = (line * WIDTH + left) * 3
            self.pixels[at : at + len(row)] = row

    def disc(self, cx: float, cy: float, r: float, color: str) -> None:
        for dy in range(-round(r), round(r) + 1):
            half = math.sqrt(max(0.0, r * r - dy * dy))
            self.rect(cx - half, cy + dy, 2 * half, 1, color)


def _street() -> bytes:
    frame = _Frame(bytes(_hex("#bfe3ff")) * (WIDTH * HEIGHT))
    frame.rect(10, 40, 70, 90, "#c9a27e")
    frame.rect(240, 25, 70, 105, "#9fb3c8")
    frame.rect(0, 130, WIDTH, 50, "#6b6f76")
    frame.rect(0, 152, WIDTH, 3, "#e8e8e8")
    return bytes(frame.pixels)


def _film_car(f: _Frame, x: float, t: float, color: str) -> None:
    f.rect(x, 132, 80, 20, color)
    f.rect(x + 16, 118, 46, 15, color)
    f.rect(x + 22, 121, 14, 9, "#cfe6f5")
    f.rect(x + 42, 121, 14, 9, "#cfe6f5")
    f.disc(x + 18, 152, 7, "#222222")
    f.disc(x + 62, 152, 7, "#222222")


def _film_person(f: _Frame, x: float, t: float, color: str) -> None:
    stride = 4 if int(t * 4) % 2 else -4  # legs apart, then together: walking
    f.disc(x + 8, 104, 6, "#e0b48a")
    f.rect(x + 1, 111, 14, 22, color)
    f.rect(x + 2 + stride / 2, 133, 5, 22, "#333344")
    f.rect(x + 9 - stride / 2, 133, 5, 22, "#333344")


def _film_bicycle(f: _Frame, x: float, t: float, color: str) -> None:
    for cx in (x + 10, x + 50):
        f.disc(cx, 150, 10, "#222222")
        f.disc(cx, 150, 7, "#6b6f76")
    f.rect(x + 10, 138, 40, 4, color)
    f.rect(x + 28, 126, 4, 14, color)
    f.disc(x + 30, 102, 6, "#e0b48a")
    f.rect(x + 24, 109, 12, 18, color)


_DRAW = {"car": (_film_car, 80), "person": (_film_person, 16), "bicycle": (_film_bicycle, 60)}  # how, and how wide

# (label, color, first and last second in view, direction): what each clip shows, and so the true segments
CLIPS: dict[str, list[tuple[str, str, float, float, int]]] = {
    "street.webm": [("car", "#c0392b", 0.5, 3.0, 1), ("person", "#2e86c1", 2.0, 5.5, -1)],
    "crossing.webm": [("person", "#8e44ad", 0.5, 4.5, 1), ("bicycle", "#27ae60", 1.5, 4.0, -1)],
    "parking.webm": [("bicycle", "#d35400", 0.5, 2.5, 1), ("car", "#2471a3", 3.0, 5.5, -1)],
}


def _frames(things: list[tuple[str, str, float, float, int]]) -> list[bytes]:
    """Each thing enters at one edge at its first second and has left by the other at its last."""
    street = _street()
    out = []
    for index in range(int(CLIP_SECONDS * FPS)):
        t = index / FPS
        frame = _Frame(street)
        for label, color, start, end, direction in things:
            if not start <= t < end:
                continue
            draw, width = _DRAW[label]
            travelled = (t - start) / (end - start) * (WIDTH + width)
            draw(frame, travelled - width if direction > 0 else WIDTH - travelled, t, color)
        out.append(bytes(frame.pixels))
    return out


def _write_webm(path: Path, frames: list[bytes]) -> None:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise SystemExit("the video clips need ffmpeg: `make media` (or apt-get install ffmpeg)")
    command = [
        ffmpeg, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{WIDTH}x{HEIGHT}",
        "-r", str(FPS), "-i", "-", "-an", "-c:v", "libvpx", "-pix_fmt", "yuv420p", "-b:v", "120k",
        "-deadline", "good", "-cpu-used", "0", "-g", str(FPS), "-threads", "1",
        "-fflags", "+bitexact", "-flags:v", "+bitexact", "-metadata", "title=" + path.stem, str(path),
    ]  # fmt: skip
    subprocess.run(command, input=b"".join(frames), check=True)


def main() -> None:
    """Write every picture and clip into the templates' static folders."""
    pictures = HERE / "bounding_boxes" / "static"
    pictures.mkdir(parents=True, exist_ok=True)
    for name, svg in PICTURES.items():
        (pictures / name).write_text(svg, encoding="utf-8")
    clips = HERE / "audio_rating" / "static"
    clips.mkdir(parents=True, exist_ok=True)
    for kind in ("clean", "noisy", "hum", "clipped", "dropouts"):
        _write_wav(clips / f"{kind}.wav", _clip(kind, random.Random(7)))
    videos = HERE / "video_annotation" / "static"
    videos.mkdir(parents=True, exist_ok=True)
    for name, things in CLIPS.items():
        _write_webm(videos / name, _frames(things))


if __name__ == "__main__":
    main()
