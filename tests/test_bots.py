"""Bots complete any task a person can: every field type and validator, patterns, files, through real HTTP."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import crowdnb as cn
from crowdnb.bots.files import sample_file
from crowdnb.bots.strings import matching
from crowdnb.forms import validators
from crowdnb.forms.rules import python_regex
from crowdnb.pages.page import Field
from crowdnb.router.validation import field_error

FORMS = Path(__file__).parent / "forms"

# the Python twins of two custom validators of forms/every_rule (the third is left to browsers)
validators.register("botsOddLength", lambda field, value, check: None if len(value) % 2 else "Odd, please.")
validators.register("botsInRange", lambda field, value, low, high: None if low <= float(value) <= high else "No.")

# magic numbers of what each extension should hold
MAGIC = {
    "pdf": b"%PDF-",
    "txt": b"",
    "png": b"\x89PNG\r\n\x1a\n",
    "gif": b"GIF89a",
    "bmp": b"BM",
    "jpg": b"\xff\xd8\xff",
    "jpeg": b"\xff\xd8\xff",
    "webp": b"RIFF",
    "wav": b"RIFF",
    "mp3": b"\xff",
    "ogg": b"OggS",
    "mp4": b"\x00\x00\x00",
    "webm": b"\x1a\x45\xdf\xa3",
}


def stored_file(run: cn.Run, path: str) -> bytes:
    return (run.store.root / path).read_bytes()


def test_bots_pass_every_rule_of_a_form(project: cn.Project) -> None:
    run = cn.Task(
        "every", title="Every rule", reward=0.1, form=FORMS / "every_rule", data=[{}] * 8, project=project
    ).launch()
    try:
        sim = cn.simulate(run, workers=3, seed=11)
        assert sim.errors == [] and sim.submitted == 8  # not one refusal
        frame = run.df
    finally:
        run.stop()
    assert len(frame) == 8
    assert frame["email"].str.fullmatch(r"[^@\s]+@([a-z0-9-]+\.)*example\.org", flags=re.I).all()
    assert frame["passcode"].map(lambda s: len(s) >= 12 and re.search(r"[0-9]", s) is not None).all()
    assert frame["postcode"].str.fullmatch(r"[0-9]{5}").all()
    assert frame["plate"].str.fullmatch(r"(?P<area>[A-Z]{2})-[0-9]{3}-(?P=area)").all()
    assert frame["strong"].map(lambda s: bool(re.fullmatch(r"(?=.*[A-Z])(?=.*[0-9])[A-Za-z0-9!?]{8,16}", s))).all()
    assert frame["motto"].map(lambda s: 20 <= len(s) <= 60 and re.fullmatch(r"[a-z ,.]+", s, re.I) is not None).all()
    assert frame["first_line"].map(lambda s: re.search(r"^first$", s, re.M) is not None).all()
    assert frame["span"].map(lambda s: re.fullmatch(r"a.+z", s, re.S) is not None and len(s) <= 30).all()
    assert frame["nickname"].map(lambda s: len(s) % 2 == 1 and len(s) <= 12).all()  # a Python custom validator
    assert frame["age"].astype(float).between(30, 60).all()  # found by trying wider numbers
    inputs = ["full_name", "email", "passcode", "postcode", "plate", "strong", "nickname", "greeting"]
    assert not frame[inputs].apply(lambda column: column.str.contains("\n")).any().any()  # one line each
    everything = " ".join(
        str(v) for v in frame.drop(columns=["cv", "photo", "clip"], errors="ignore").to_numpy().ravel()
    )
    assert everything.isascii()
    assert set(frame["site"]) <= {"north", "south"} and frame["shift"].isin(["morning", "evening", "night"]).all()
    assert (
        frame["languages"].map(lambda x: 2 <= len(x) <= 3).all()
        and frame["skills"].map(lambda x: 1 <= len(x) <= 2).all()
    )
    for column, allowed in (("cv", {"pdf", "txt"}), ("photo", {"png", "jpg", "jpeg", "gif", "webp", "bmp"})):
        for path, name in zip(frame[column], frame[f"{column}_name"], strict=True):
            extension = name.rsplit(".", 1)[-1]
            assert extension in allowed and path.endswith(f".{extension}")
            assert stored_file(run, path).startswith(MAGIC[extension]) and 0 < len(stored_file(run, path)) < 2048


def test_bots_fill_the_volunteer_form(project: cn.Project) -> None:
    """Mephisto's volunteer example: a required CV upload, an e-mail that must end in a domain, a passcode."""
    run = cn.Task("v", title="V", reward=0.1, form=FORMS / "volunteer", data=[{}] * 4, project=project).launch()
    try:
        sim = cn.simulate(run, workers=2, seed=5)
        assert sim.errors == [] and sim.submitted == 4
        frame = run.df
    finally:
        run.stop()
    assert frame["email"].str.fullmatch(r"[^@\s]+@([a-z0-9-]+\.)*example\.org", flags=re.I).all()
    assert frame["passcode"].map(lambda s: len(s) >= 6 and re.search("[0-9]", s) is not None).all()
    assert frame["cv_name"].str.endswith((".pdf", ".txt")).all()


PAGE = r"""
<p>{{ text }}</p>
<input name="code" pattern="[A-Z]{3}-\d{2}" required>
<input type="email" name="mail" maxlength="30" required>
<input type="number" name="count" min="3" max="7" required>
<input type="range" name="share" min="0.2" max="0.8" step="any">
<input type="date" name="day" required>
<input type="url" name="link" required>
<textarea name="essay" minlength="30" maxlength="60" required></textarea>
<select name="size" required><option value="">--</option><option>small</option><option>large</option></select>
<input type="file" name="photo" accept="image/*" required>
<input type="file" name="papers" accept=".pdf,application/pdf,text/plain" multiple required>
<input type="file" name="voice" accept="audio/*">
"""


def test_bots_pass_the_rules_of_an_html_page(make_run: Any) -> None:
    run = make_run(html=PAGE, data=[{"text": f"t{i}"} for i in range(6)], max_upload_mb=0.05)
    sim = cn.simulate(run, workers=2, seed=2)
    assert sim.errors == [] and sim.submitted == 6
    frame = run.df
    assert frame["code"].str.fullmatch(r"[A-Z]{3}-[0-9]{2}").all()
    assert frame["count"].astype(int).between(3, 7).all() and frame["share"].astype(float).between(0.2, 0.8).all()
    assert frame["essay"].str.len().between(30, 60).all() and frame["mail"].str.len().le(30).all()
    assert frame["photo_name"].str.endswith(".png").all()
    assert frame["voice_name"].str.endswith(".wav").all()
    assert (
        frame["papers_name"]
        .map(lambda n: n if isinstance(n, list) else [n])
        .map(lambda names: all(n.endswith((".pdf", ".txt")) for n in names))
        .all()
    )


@pytest.mark.parametrize(
    ("pattern", "flags", "count"),
    [
        (r"^[^@\s]+@([a-z0-9-]+\.)*example\.org$", "i", 10),
        (r"^[0-9]{5}$", "g", 10),
        (r"^(?<w>[a-z]+)-\k<w>$", "", 10),  # JavaScript's named groups
        (r"^(?=.*[A-Z])(?=.*\d)(?!.*\s)[A-Za-z\d!?]{8,16}$", "", 10),  # lookarounds
        (r"\d{3}-\w+", "", 10),
        (r"^(a)?(?(1)b|c)$", "", 2),  # a conditional group: "ab" or "c"
        (r"^first$", "m", 1),
    ],
)
def test_strings_match_as_the_server_checks_and_repeat_by_seed(pattern: str, flags: str, count: int) -> None:
    drawn = matching(pattern, flags, count=10, seed=4)
    assert len(drawn) == count and len(set(drawn)) == count
    assert all(python_regex(pattern, flags).search(s) and s.isascii() and s == s.strip() for s in drawn)
    assert matching(pattern, flags, count=10, seed=4) == drawn
    assert count < 3 or matching(pattern, flags, count=10, seed=5) != drawn  # another seed, other strings


def test_strings_reach_a_length_and_a_browser_only_pattern_gives_none() -> None:
    long_ones = matching(r"^[a-z ]+$", count=5, seed=1, length=(20, 40), keep=lambda s: 20 <= len(s) <= 40)
    assert len(long_ones) == 5 and all(20 <= len(s) <= 40 for s in long_ones)
    padded = matching(r"[0-9]", count=5, seed=1, length=(12, None), keep=lambda s: len(s) >= 12)
    assert len(padded) == 5 and all(re.search("[0-9]", s) for s in padded)  # words around an unanchored pattern
    assert matching(r"^\p{L}+$", "u") == []  # Python's re cannot read it; the server does not check it either
    assert matching(r"[^]") == []


@pytest.mark.parametrize(
    "accept",
    [".pdf,.txt", "image/*", "audio/*", "video/*", "image/png", "image/jpeg", "application/pdf", ".docx", "", ".gif",
     ".bmp", ".svg", ".webp", ".mp3", ".ogg", ".mp4", ".webm", ".csv", ".json", "text/*"],
)  # fmt: skip
def test_a_sample_file_is_of_an_accepted_type(accept: str) -> None:
    rng = random.Random(3)
    for _ in range(5):
        name, content, kind = sample_file(accept, rng)
        field = Field("f", "file", required=True, accept=accept)
        assert field_error(field, None, [(name, kind)]) is None
        assert content.startswith(MAGIC.get(name.rsplit(".", 1)[-1], b"")) and 0 < len(content) < 1024


def one_field_form(field: dict[str, Any]) -> dict[str, Any]:
    return {
        "form": {
            "title": "T",
            "sections": [{"title": "S", "fieldsets": [{"title": "F", "rows": [{"fields": [field]}]}]}],
        }
    }


def test_bots_answer_each_rows_own_form_version(project: cn.Project) -> None:
    """Form versions differ row by row: a bot is sent the fields of its unit's row, not of the preview's."""
    versions = [
        one_field_form({"type": "input", "name": "code", "label": "Code", "validators": {"required": True, "regexp": ["^[a-z]{4}$", ""]}}),
        one_field_form({"type": "radio", "name": "pick", "label": "Pick", "validators": {"required": True},
                        "options": [{"label": "X", "value": "x"}, {"label": "Y", "value": "y"}]}),
    ]  # fmt: skip
    data = [{"form_version": i % 2} for i in range(6)]
    run = cn.Task("versions", title="V", reward=0.1, form=versions, data=data, project=project).launch()
    try:
        sim = cn.simulate(run, workers=2, seed=1)
        assert sim.errors == [] and sim.submitted == 6
        frame = run.df.sort_values("row_index")
    finally:
        run.stop()
    assert frame["code"].iloc[0::2].str.fullmatch("[a-z]{4}").all() and frame["code"].iloc[1::2].isna().all()
    assert frame["pick"].iloc[1::2].isin(["x", "y"]).all() and frame["pick"].iloc[0::2].isna().all()


def test_strings_are_the_same_in_another_process() -> None:
    """Nothing depends on string hashing (a new seed per process): a seed gives the same strings anywhere."""
    pattern = r"^[^@\s]+@[a-z]+\.org$"
    code = f"from crowdnb.bots.strings import matching; print(hash('x')); print(matching({pattern!r}, seed=9))"
    env = {**os.environ, "PYTHONHASHSEED": "2" if os.environ.get("PYTHONHASHSEED") == "1" else "1"}
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    their_hash, theirs = child.stdout.splitlines()
    assert int(their_hash) != hash("x")  # the other process hashes strings differently
    assert theirs == str(matching(pattern, seed=9))
