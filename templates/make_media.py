"""Make the gallery's example media: SVG street scenes and short WAV clips, with the standard library only.

Run from the checkout: ``python templates/make_media.py``. The output is deterministic (a fixed seed),
so re-running it changes no committed file unless this script changed.
"""

from __future__ import annotations

import math
import random
import struct
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


if __name__ == "__main__":
    main()
