"""Small files that simulated workers upload: one of a type the field accepts, made here, under 1 kB.

PNG, GIF, BMP, WAV, SVG, PDF and text files are written with the standard library (a random colour,
tone or line each time). JPEG, WebP, MP3, Ogg, MP4 and WebM need encoders Python lacks: those are tiny
clips made once with ffmpeg (``-f lavfi -i color=…`` / ``sine=…``, metadata stripped) and kept below.
Any other extension gets a few random bytes under its name.
"""

from __future__ import annotations

import base64
import io
import json
import math
import mimetypes
import random
import struct
import wave
import zlib
from collections.abc import Callable

Sample = tuple[str, bytes, str]  # (file name, content, content type)

_CLIPS = {  # base64 of ffmpeg's output, one short clip each
    "jpg": (
        "/9j/4AAQSkZJRgABAgAAAQABAAD//gAQTGF2YzU5LjM3LjEwMAD/2wBDAAgEBAQEBAUFBQUFBQYGBgYGBgYGBgYGBgYHBwcICAgH"
        "BwcGBgcHCAgICAkJCQgICAgJCQoKCgwMCwsODg4RERT/xABLAAEBAAAAAAAAAAAAAAAAAAAABAEBAAAAAAAAAAAAAAAAAAAABhAB"
        "AAAAAAAAAAAAAAAAAAAAABEBAAAAAAAAAAAAAAAAAAAAAP/AABEIAAgACAMBIgACEQADEQD/2gAMAwEAAhEDEQA/AIwCsZf/2Q=="
    ),
    "webp": ("UklGRjYAAABXRUJQVlA4ICoAAADQAQCdASoIAAgAAgA0JaACdLoB+AADsAD+34A/8btxhvwXf+FXxuQsKAA="),
    "mp3": (
        "/+MYxAANIJaceUwAAAgLdwL3ve973vSlKUpSnXve97/O007EMCYEwJiOf8OBAEMTh///nOn3f0ghy/uxAAwf4Y6VyypquH9p/+MY"
        "xAYOONqsAZgwACrS2fpZTWjVJzuG5TKo07UpBdEwrDLwHpekaeFCSmCJCSNVVtBO9BgrWo4ShIGso6CsSpIkTWxjn/qS/+MYxAgM"
        "KMY0AckIASkmKQy0qKSWMkQqFTOSlLVQqGXoSVlZE0qhlFCyaFDAp5sLgV+Jv/+NTEFNRTMuMTAwVVVVVVVVVVVV"
    ),
    "ogg": (
        "T2dnUwACAAAAAAAAAAAAAAAAAAAAAAIotXIBE09wdXNIZWFkAQE4AYC7AAAAAABPZ2dTAAAAAAAAAAAAAAAAAAABAAAASZW+VAEu"
        "T3B1c1RhZ3MGAAAAZmZtcGVnAQAAABQAAABlbmNvZGVyPUxhdmMgbGlib3B1c09nZ1MABPgTAAAAAAAAAAAAAAIAAAB2ZY0EBhcX"
        "ERITFwiC4jRFRViat+CIYZ6h6NaH6eEDslqgCKNA6AM8NKIzSXGtsrmd44YAkSi2hlAInVXw5F373AQqhHdzHL1k+AidX7B3MqpX"
        "PgECbRazmSkPDAidX7B3MqpeWCLnpbuPIDqJ0YAIgw+ZD90fIWFfw5hQJUaFEUsNQVO9IA=="
    ),
    "mp4": (
        "AAAAHGZ0eXBpc29tAAACAGlzb21pc28ybXA0MQAAAAhmcmVlAAAAHG1kYXQAAAGzABAHAAABthDAoybbBmBefwAAAxxtb292AAAA"
        "bG12aGQAAAAAAAAAAAAAAAAAAAPoAAAAZAABAAABAAAAAAAAAAAAAAAAAQAAAAAAAAAAAAAAAAAAAAEAAAAAAAAAAAAAAAAAAEAA"
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAACAAACa3RyYWsAAABcdGtoZAAAAAMAAAAAAAAAAAAAAAEAAAAAAAAAZAAAAAAA"
        "AAAAAAAAAAAAAAAAAQAAAAAAAAAAAAAAAAAAAAEAAAAAAAAAAAAAAAAAAEAAAAAAEAAAABAAAAAAACRlZHRzAAAAHGVsc3QAAAAA"
        "AAAAAQAAAGQAAAAAAAEAAAAAAeNtZGlhAAAAIG1kaGQAAAAAAAAAAAAAAAAAACgAAAAEAFXEAAAAAAAtaGRscgAAAAAAAAAAdmlk"
        "ZQAAAAAAAAAAAAAAAFZpZGVvSGFuZGxlcgAAAAGObWluZgAAABR2bWhkAAAAAQAAAAAAAAAAAAAAJGRpbmYAAAAcZHJlZgAAAAAA"
        "AAABAAAADHVybCAAAAABAAABTnN0YmwAAADqc3RzZAAAAAAAAAABAAAA2m1wNHYAAAAAAAAAAQAAAAAAAAAAAAAAAAAAAAAAEAAQ"
        "AEgAAABIAAAAAAAAAAEKTGF2YyBtcGVnNAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAY//8AAABgZXNkcwAAAAADgICATwABAASAgIBB"
        "IBEAAAAAAw1AAAAGQAWAgIAvAAABsAEAAAG1iRMAAAEAAAABIADEjYgAVQCEAhRjAAABskxhdmM1OS4zNy4xMDAGgICAAQIAAAAQ"
        "cGFzcAAAAAEAAAABAAAAFGJ0cnQAAAAAAAMNQAAABkAAAAAYc3R0cwAAAAAAAAABAAAAAQAABAAAAAAcc3RzYwAAAAAAAAABAAAA"
        "AQAAAAEAAAABAAAAFHN0c3oAAAAAAAAAFAAAAAEAAAAUc3RjbwAAAAAAAAABAAAALAAAAD11ZHRhAAAANW1ldGEAAAAAAAAAIWhk"
        "bHIAAAAAAAAAAG1kaXJhcHBsAAAAAAAAAAAAAAAACGlsc3Q="
    ),
    "webm": (
        "GkXfo59ChoEBQveBAULygQRC84EIQoKEd2VibUKHgQJChYECGFOAZwEAAAAAAAG+EU2bdLpNu4tTq4QVSalmU6yBoU27i1OrhBZU"
        "rmtTrIHGTbuMU6uEElTDZ1OsggEMTbuMU6uEHFO7a1OsggGo7AEAAAAAAABZAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAVSalmoCrXsYMPQkBNgIRM"
        "YXZmV0GETGF2ZkSJiEBZAAAAAAAAFlSua8GuAQAAAAAAADjXgQFzxYgAAAAAAAAAAZyBACK1nIN1bmSIgQCGhVZfVlA4g4EBI+OD"
        "hAX14QDgibCBELqBEJqBAhJUw2fRc3POY8CLY8WIAAAAAAAAAAFnyJhFo4dFTkNPREVSRIeLTGF2YyBsaWJ2cHhnyKJFo4hEVVJB"
        "VElPTkSHlDAwOjAwOjAwLjEwMDAwMDAwMAAAH0O2dcHngQCjvIEAAICwAgCdASoQABAAAEcIhYWIhYSIAgICdaoD+AIM/SgA/u9R"
        "L/8ZU+MqfGVP+Mqf+++HvfD3vh/koBxTu2uRu4+zgQC3iveBAfGCAWLwgQM="
    ),
}
_WORDS = ("sample", "upload", "from", "a", "simulated", "worker", "test", "file", "crowdnb", "bot")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(rng: random.Random) -> bytes:
    side, colour = rng.randint(2, 8), bytes(rng.randrange(256) for _ in range(3))
    pixels = b"".join(b"\x00" + colour * side for _ in range(side))
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(pixels)) + _chunk(b"IEND", b"")
    )


def _gif(rng: random.Random) -> bytes:
    colour = bytes(rng.randrange(256) for _ in range(3))
    # one pixel: a two-colour table, then LZW data that paints colour 0
    return (
        b"GIF89a\x01\x00\x01\x00\x80\x00\x00"
        + colour
        + b"\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
    )


def _bmp(rng: random.Random) -> bytes:
    pixel = bytes(rng.randrange(256) for _ in range(3)) + b"\x00"  # one 24-bit pixel, its row padded to 4 bytes
    info = struct.pack("<IiiHHIIiiII", 40, 1, 1, 1, 24, 0, len(pixel), 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(info) + len(pixel), 0, 0, 14 + len(info)) + info + pixel


def _wav(rng: random.Random) -> bytes:
    rate, pitch = 8000, rng.choice((262, 330, 392, 440, 523))
    frames = b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * pitch * n / rate))) for n in range(400))
    out = io.BytesIO()
    with wave.open(out, "wb") as sound:
        sound.setnchannels(1)
        sound.setsampwidth(2)
        sound.setframerate(rate)
        sound.writeframes(frames)
    return out.getvalue()


def _text(rng: random.Random) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(4, 12)))


def _pdf(rng: random.Random) -> bytes:
    line = _text(rng).replace("\\", "").replace("(", "").replace(")", "")
    stream = f"BT /F1 12 Tf 72 720 Td ({line}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def _svg(rng: random.Random) -> bytes:
    colour = "".join(f"{rng.randrange(256):02x}" for _ in range(3))
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect width="8" height="8" fill="#{colour}"/></svg>'.encode()


def _clip(ext: str) -> Callable[[random.Random], bytes]:
    return lambda rng: base64.b64decode(_CLIPS[ext])


MAKERS: dict[str, tuple[str, Callable[[random.Random], bytes]]] = {  # extension → (content type, maker)
    "png": ("image/png", _png),
    "gif": ("image/gif", _gif),
    "bmp": ("image/bmp", _bmp),
    "svg": ("image/svg+xml", _svg),
    "jpg": ("image/jpeg", _clip("jpg")),
    "jpeg": ("image/jpeg", _clip("jpg")),
    "webp": ("image/webp", _clip("webp")),
    "wav": ("audio/wav", _wav),
    "mp3": ("audio/mpeg", _clip("mp3")),
    "ogg": ("audio/ogg", _clip("ogg")),
    "oga": ("audio/ogg", _clip("ogg")),
    "opus": ("audio/ogg", _clip("ogg")),
    "mp4": ("video/mp4", _clip("mp4")),
    "webm": ("video/webm", _clip("webm")),
    "pdf": ("application/pdf", _pdf),
    "txt": ("text/plain", lambda rng: (_text(rng) + "\n").encode()),
    "md": ("text/markdown", lambda rng: f"# {_text(rng)}\n".encode()),
    "csv": ("text/csv", lambda rng: f"word,count\n{rng.choice(_WORDS)},{rng.randint(1, 9)}\n".encode()),
    "json": ("application/json", lambda rng: json.dumps({"note": _text(rng)}).encode()),
}
# for "image/*" and the like: the first maker of that kind
_BY_KIND = {"image": "png", "audio": "wav", "video": "webm", "text": "txt", "application": "pdf"}


def sample_file(accept: str, rng: random.Random, stem: str = "upload") -> Sample:
    """A file that an ``accept`` list (``".pdf,image/*"``; "" takes anything) lets through, and its type.

    The server checks an extension rule against the file's name and a type rule against its declared
    content type, as browsers do; both are made to agree with the rule that was picked.
    """
    rules = [r.strip().lower() for r in accept.split(",") if r.strip()]
    rule = rng.choice(rules) if rules else ".txt"
    if rule.startswith("."):
        ext = rule[1:]
        kind = MAKERS[ext][0] if ext in MAKERS else mimetypes.guess_type(f"x.{ext}")[0] or "application/octet-stream"
    elif rule.endswith("/*"):
        ext = _BY_KIND.get(rule[:-2], "bin")
        kind = MAKERS[ext][0] if ext in MAKERS else f"{rule[:-2]}/octet-stream"
    else:
        kind = rule
        ext = next((e for e, (k, _) in MAKERS.items() if k == kind), None) or (
            mimetypes.guess_extension(kind) or ".bin"
        ).lstrip(".")
    make = MAKERS[ext][1] if ext in MAKERS else (lambda r: r.randbytes(r.randint(16, 256)))
    return f"{stem}.{ext}", make(rng), kind
