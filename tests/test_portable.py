"""Portable data: two projects on "two machines" (two folders) run studies, are exported and merged into a
third, which then reads like its sources; backups are taken while a run is live and restored."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import crowdnb as cn

from .conftest import SENTENCES

FORM = '<p>{{ text }}</p><input type="text" name="why" required><input type="file" name="photo" accept=".pdf" required>'


def study(project: cn.Project, name: str = "sentiment", *, rows: int = 6, seed: int = 1, **options: Any) -> cn.Run:
    """A stopped run of ``name`` in ``project``: every row answered by simulated workers, a file each."""
    task = cn.Task(name, title="Sentiment", reward=0.1, html=FORM, data=SENTENCES[:rows], project=project, **options)
    run = task.launch(provider="mock", architect="local")
    try:
        sim = cn.simulate(run, workers=2, seed=seed)
        assert sim.errors == [] and sim.submitted == rows
    finally:
        run.stop()
    return run


def by_submission(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("unit_id").reset_index(drop=True)


def same(copy: pd.DataFrame, source: pd.DataFrame) -> None:
    """The same submissions, in the same order, column for column."""
    pd.testing.assert_frame_equal(copy, source)


@pytest.fixture
def machines(tmp_path: Path) -> tuple[cn.Project, cn.Project, dict[str, cn.Run]]:
    one, two = cn.open(tmp_path / "one", create=True), cn.open(tmp_path / "two", create=True)
    runs = {
        "one/sentiment": study(one, seed=1),
        "one/topics": study(one, "topics", rows=3, seed=2),
        "two/sentiment": study(two, rows=4, seed=3),
    }
    return one, two, runs


def test_two_machines_merge_into_a_third(machines: Any, tmp_path: Path) -> None:
    one, two, runs = machines
    third = cn.open(tmp_path / "third", create=True)
    first = third.import_db(one.export_db(tmp_path / "one.tar.gz"))
    second = third.import_db(two.export_db(tmp_path / "two.tar.gz"))
    assert first.conflicts == [] and second.conflicts == []
    assert first.rows["submissions"] == 9 and second.rows["submissions"] == 4
    assert first.files == 9 and second.files == 4

    merged = cn.open(tmp_path / "third", create=True)
    assert sorted(merged.runs) == sorted(run.id for run in runs.values())
    for run in runs.values():
        copy = merged.run(run.id)
        same(copy.df, run.df)
        assert copy.counts == run.counts
        for path in copy.df["photo"]:  # the uploads came along, byte for byte
            assert (merged.root / path).read_bytes() == (run.store.root / path).read_bytes()
    both = pd.concat([one.task_frame("sentiment"), two.task_frame("sentiment")])
    same(by_submission(merged.task_frame("sentiment")), by_submission(both))
    same(by_submission(merged.task_frame("topics")), by_submission(one.task_frame("topics")))
    # one task "sentiment", with the runs of both machines; workers matched by name
    assert sorted(merged.tasks["name"]) == ["sentiment", "topics"]
    assert len(merged.task_runs("sentiment")) == 2
    names = merged.store.query("SELECT provider, name, count(*) AS n FROM workers GROUP BY provider, name")
    assert all(row["n"] == 1 for row in names)


def test_a_second_import_writes_nothing(machines: Any, tmp_path: Path) -> None:
    one, _, _ = machines
    third = cn.open(tmp_path / "third", create=True)
    archive = one.export_db(tmp_path / "one.tar.gz")
    assert third.import_db(archive).changed
    before = third.store.scalar("SELECT value FROM meta WHERE key = 'rev'")
    again = third.import_db(archive)
    assert not again.changed and again.rows == {} and again.files == 0
    assert third.store.scalar("SELECT value FROM meta WHERE key = 'rev'") == before


def test_an_archive_merged_back_into_its_source_changes_nothing(machines: Any, tmp_path: Path) -> None:
    one, _, _ = machines
    assert not one.import_db(one.export_db(tmp_path / "one.tar.gz")).changed


def test_a_tampered_archive_is_refused_and_changes_nothing(machines: Any, tmp_path: Path) -> None:
    one, _, _ = machines
    good = one.export_db(tmp_path / "one.tar.gz")
    bad = tmp_path / "bad.tar.gz"
    with tarfile.open(good, "r:gz") as src, tarfile.open(bad, "w:gz") as dst:
        for member in src.getmembers():
            body = src.extractfile(member).read()  # type: ignore[union-attr]
            if member.name.startswith("files/") and member.name.endswith(".pdf"):
                body = body + b"tampered"
                member.size = len(body)
            dst.addfile(member, io.BytesIO(body))
    third = cn.open(tmp_path / "third", create=True)
    with pytest.raises(cn.DataError, match=r"bad\.tar\.gz is damaged: files/.*nothing was changed"):
        third.import_db(bad)
    assert third.store.scalar("SELECT count(*) FROM task_runs") == 0
    assert not (third.root / "files").exists()
    cli = subprocess.run(
        [sys.executable, "-m", "crowdnb", "db", "import", str(bad), "--home", str(third.root)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 1 and len(cli.stderr.strip().splitlines()) == 1
    assert "is damaged" in cli.stderr


def test_conflicts_are_reported(tmp_path: Path) -> None:
    one, two = cn.open(tmp_path / "one", create=True), cn.open(tmp_path / "two", create=True)
    study(one, rows=2)
    study(two, rows=2, description="another config")
    done = two.import_db(one.export_db(tmp_path / "one.tar.gz"))
    assert done.conflicts == ["task 'sentiment' has a different config here; its runs were added under the config here"]
    assert len(two.task_runs("sentiment")) == 2


def test_filters_select_what_they_say(machines: Any, tmp_path: Path) -> None:
    one, _, runs = machines
    topics = runs["one/topics"]

    def exported(**filters: Any) -> dict[str, Any]:
        path = one.export_db(tmp_path / "x.tar.gz", **filters)
        with tarfile.open(path, "r:gz") as tar:
            return dict(json.loads(tar.extractfile("manifest.json").read()))  # type: ignore[union-attr]

    assert exported(task="topics")["runs"] == [topics.id]
    assert exported(run=runs["one/sentiment"].id)["runs"] == [runs["one/sentiment"].id]
    started = one.store.get_run(topics.id)["created_at"]
    assert exported(since=started)["runs"] == [topics.id]
    assert exported(since="2000-01-01")["runs"] == sorted([runs["one/sentiment"].id, topics.id])
    manifest = exported(task="topics")
    assert manifest["rows"]["submissions"] == 3 and manifest["rows"]["tasks"] == 1
    assert manifest["selection"] == {"task": "topics", "run": None, "since": None}
    assert all(name == "crowdnb.db" or name.startswith(f"files/{topics.id}/") for name in manifest["sha256"])
    assert manifest["schema"] >= 6 and manifest["crowdnb"] == cn.__version__

    third = cn.open(tmp_path / "third", create=True)
    third.import_db(one.export_db(tmp_path / "t.tar.gz", task="topics"))
    assert list(third.runs) == [topics.id]
    same(third.run(topics.id).df, topics.df)

    with pytest.raises(cn.NotFound, match="no task 'nope'"):
        one.export_db(tmp_path / "y.tar.gz", task="nope")
    with pytest.raises(cn.DataError, match="'last tuesday' is not a date"):
        one.export_db(tmp_path / "y.tar.gz", since="last tuesday")
    with pytest.raises(cn.DataError, match="no run matches"):
        one.export_db(tmp_path / "y.tar.gz", since="2999-01-01")
    assert not (tmp_path / "y.tar.gz").exists()


def test_backup_while_live_and_restore(project: cn.Project, tmp_path: Path) -> None:
    run = cn.Task("sentiment", title="S", reward=0.1, html=FORM, data=SENTENCES, project=project).launch()
    try:
        assert cn.simulate(run, workers=1, units=3, seed=5).submitted == 3
        archive = project.backup(tmp_path / "backup.tar.gz")  # while the run is live
        cn.simulate(run, workers=2, seed=6)
        frame_at_backup = run.df.iloc[:3]
        with pytest.raises(cn.StateError, match="served by this process"):
            cn.restore(archive, into=project.root)
    finally:
        run.stop()

    elsewhere = cn.restore(archive, into=tmp_path / "elsewhere")
    assert len(elsewhere.run(run.id).df) == 3
    same(elsewhere.run(run.id).df, frame_at_backup)
    for path in elsewhere.run(run.id).df["photo"]:
        assert (elsewhere.root / path).is_file()

    # the backup holds the run marked running: restoring over that copy is refused unless forced
    with pytest.raises(cn.StateError, match=r"live run\(s\) .* pass --force \(force=True\)"):
        cn.restore(archive, into=tmp_path / "elsewhere")
    assert len(cn.restore(archive, into=tmp_path / "elsewhere", force=True).run(run.id).df) == 3

    restored = cn.restore(archive, into=project.root)  # the run has stopped: the project goes back in time
    assert len(restored.run(run.id).df) == 3
    with pytest.raises(cn.DataError, match="is an export, not a backup"):
        cn.restore(project.export_db(tmp_path / "e.tar.gz"), into=tmp_path / "e")


def test_the_cli(machines: Any, tmp_path: Path) -> None:
    one, _, runs = machines

    def crowdnb(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "crowdnb", "db", *args], capture_output=True, text=True, timeout=120
        )

    done = crowdnb("export", str(tmp_path / "a.tar.gz"), "--home", str(one.root), "--task", "topics")
    assert done.returncode == 0 and "archive written to" in done.stdout, done.stderr
    done = crowdnb("import", str(tmp_path / "a.tar.gz"), "--home", str(tmp_path / "third"))
    assert done.returncode == 0 and "3 submissions" in done.stdout, done.stderr
    done = crowdnb("import", str(tmp_path / "a.tar.gz"), "--home", str(tmp_path / "third"))
    assert done.stdout.startswith("nothing new"), done.stderr
    done = crowdnb("backup", str(tmp_path / "b.tar.gz"), "--home", str(one.root))
    assert done.returncode == 0, done.stderr
    done = crowdnb("restore", str(tmp_path / "b.tar.gz"), "--home", str(tmp_path / "fourth"))
    assert done.returncode == 0 and "2 run(s)" in done.stdout, done.stderr
    done = crowdnb("export", str(tmp_path / "c.tar.gz"), "--home", str(one.root), "--since", "soon")
    assert done.returncode == 1 and done.stderr.strip() == (
        "error: --since 'soon' is not a date; write it like 2026-12-01 or 2026-12-01T09:30"
    )
    assert runs


def test_a_worker_id_seen_with_two_names_is_reported(tmp_path: Path) -> None:
    one, third = cn.open(tmp_path / "one", create=True), cn.open(tmp_path / "third", create=True)
    run = study(one, rows=2)
    third.import_db(one.export_db(tmp_path / "first.tar.gz"))
    worker = one.store.query("SELECT id, name FROM workers ORDER BY id")[0]
    with one.store.write() as conn:  # the source now knows that id under another name
        conn.execute("UPDATE workers SET name = 'someone-else' WHERE id = ?", (worker["id"],))
    done = third.import_db(one.export_db(tmp_path / "second.tar.gz"))
    assert done.conflicts == [
        f"worker id {worker['id']} is 'mock someone-else' there but 'mock {worker['name']}' here; given a new id"
    ]
    assert third.store.worker_name(worker["id"]) == worker["name"]  # what was here stays
    same(third.run(run.id).df, one.run(run.id).df)  # the run reads as its source says
