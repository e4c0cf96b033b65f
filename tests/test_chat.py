"""Several workers on one assignment: lobby, conversation, partners who drop out, the notebook bot, bots."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
import websocket

import crowdnb as cn

from .conftest import Worker, wait_until

CHAT = '<p>{{ topic }}</p><input type="radio" name="rating" value="1" required><input type="radio" name="rating" value="5">'
TOPICS = [{"topic": "holidays"}, {"topic": "weather"}]


@pytest.fixture
def shared(project: cn.Project) -> Any:
    """``shared(**options)``: a run of a two-worker chat task; stopped after the test."""
    runs: list[cn.Run] = []

    def make(data: Any = None, procedures: dict[str, Any] | None = None, **options: Any) -> cn.Run:
        options.setdefault("workers_per_assignment", 2)
        task = cn.Task("chat", title="Chat", reward=0.5, html=CHAT, data=data or TOPICS, project=project, **options)
        for name, fn in (procedures or {}).items():
            task.procedure(fn, name=name)
        runs.append(task.launch())
        return runs[-1]

    yield make
    for run in runs:
        if run.serving:
            run.stop()


class Page:
    """A worker's open page: their unit (real HTTP) and its socket (a real websocket), messages kept in order."""

    def __init__(self, run: cn.Run, name: str) -> None:
        self.worker = Worker(run, name)
        assert self.worker.enter().status_code == 200
        self.run, self.heard, self.ws = run, [], None
        self.open()

    def open(self) -> None:
        url = self.run.url.replace("http", "ws") + "ws?token=" + self.worker.unit["token"]
        self.ws = websocket.create_connection(url, timeout=10)

    def close(self) -> None:
        self.ws.close()
        self.worker.http.close()

    def until(self, check: Any, what: str, timeout: float = 10.0) -> dict[str, Any]:
        """Read until a message satisfies ``check``; that message."""
        for message in self.heard:
            if check(message):
                self.heard.remove(message)
                return message
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.ws.settimeout(max(deadline - time.monotonic(), 0.01))
            message = json.loads(self.ws.recv())
            if check(message):
                return message
            self.heard.append(message)
        raise AssertionError(f"{self.worker.name} never heard {what}")

    def say(self, text: str, message_id: str | None = None) -> str:
        message_id = message_id or uuid.uuid4().hex
        self.ws.send(json.dumps({"type": "say", "id": message_id, "text": text}))
        return message_id


@pytest.fixture
def page() -> Any:
    """``page(run, name)``: a worker's open page; every socket closed after the test."""
    pages: list[Page] = []

    def open_page(run: cn.Run, name: str) -> Page:
        pages.append(Page(run, name))
        return pages[-1]

    yield open_page
    for opened in pages:
        opened.close()


def kind(name: str, **fields: Any) -> Any:
    return lambda m: m.get("type") == name and all(m.get(k) == v for k, v in fields.items())


def test_partners_meet_in_the_lobby_and_talk(shared: Any, page: Any) -> None:
    run = shared(roles=("teller", "listener"))
    ann = page(run, "ann")
    lobby = ann.until(kind("lobby"), "the lobby")
    assert (lobby["role"], lobby["here"], lobby["of"]) == ("teller", 1, 2)
    refused = ann.worker.submit({"rating": "5"})
    assert refused.status_code == 400 and "wait for your partner" in refused.json()["message"].lower()
    bob = page(run, "bob")
    for opened, role in ((ann, "teller"), (bob, "listener")):
        started = opened.until(kind("room", state="started"), "the start")
        assert started["role"] == role and started["roles"] == ["teller", "listener"]
    sent = time.perf_counter()
    message_id = ann.say("I went to the sea.")
    got = bob.until(kind("message"), "ann's message")
    latency = time.perf_counter() - sent
    assert (got["role"], got["text"], got["id"]) == ("teller", "I went to the sea.", message_id)
    assert ann.until(kind("message", id=message_id), "her own message back")["seq"] == got["seq"]
    ann.say("I went to the sea.", message_id)  # resent after a dropped socket: kept once
    bob.say("Lovely!")
    ann.until(kind("message", text="Lovely!"), "bob's answer")
    assert ann.worker.submit({"rating": "5"}).status_code == 200
    assert bob.until(kind("event", event="submitted"), "ann submitted")["role"] == "teller"
    assert bob.worker.submit({"rating": "1"}).status_code == 200
    transcript = run.transcript(int(run.df.loc[0, "assignment_id"]))
    said = transcript[transcript["kind"] == "message"]
    assert list(said["text"]) == ["I went to the sea.", "Lovely!"] and list(said["worker"]) == ["ann", "bob"]
    events = list(transcript.loc[transcript["kind"] == "event", "event"])
    assert events == ["joined", "joined", "started", "submitted", "submitted", "ended"]
    assert list(transcript["seq"]) == list(range(1, len(transcript) + 1))
    assert sorted(run.df["messages"]) == [1, 1]
    print(f"message latency on loopback: {latency * 1000:.1f} ms")  # measured in benchmarks/chat.py


def test_taking_turns_refuses_a_message_out_of_turn(shared: Any, page: Any) -> None:
    run = shared(roles=("asker", "answerer"), chat=cn.Chat(turns="alternate"))
    ann, bob = page(run, "ann"), page(run, "bob")
    assert ann.until(kind("room"), "the start")["turn"] == "asker"
    early = bob.say("me first")
    assert "asker's turn" in bob.until(kind("refused", id=early), "a refusal")["message"]
    ann.say("Where to?")
    assert bob.until(kind("message"), "the question")["turn"] == "answerer"
    assert "answerer's turn" in ann.until(kind("refused", id=ann.say("and?")), "a refusal")["message"]
    assert run.messages_df.query("kind == 'message'")["text"].tolist() == ["Where to?"]


def test_a_partner_who_reconnects_within_the_grace_gets_the_history(shared: Any, page: Any) -> None:
    run = shared(chat=cn.Chat(partner_grace=30))
    ann, bob = page(run, "ann"), page(run, "bob")
    bob.until(kind("room"), "the start")
    ann.say("one")
    bob.until(kind("message", text="one"), "the first message")
    bob.close()
    assert ann.until(kind("event", event="away"), "bob away")["role"] == "worker 2"
    ann.say("two, while you were away")
    bob.open()
    replay = bob.until(kind("room", state="started"), "the history again")
    assert [m["text"] for m in replay["history"] if m["type"] == "message"] == ["one", "two, while you were away"]
    assert ann.until(kind("event", event="back"), "bob back")["role"] == "worker 2"
    bob.say("three")
    assert ann.until(kind("message", text="three"), "bob's message")["role"] == "worker 2"
    time.sleep(1.5)  # monitor ticks: nothing ends the room
    assert run.counts["assigned"] == 2


def test_a_partner_who_does_not_come_back_ends_the_conversation_cleanly(shared: Any, page: Any) -> None:
    run = shared(chat=cn.Chat(partner_grace=0.5), disconnect_grace=0.2)
    ann, bob = page(run, "ann"), page(run, "bob")
    ann.until(kind("room"), "the start")
    bob.say("bye")
    bob.close()
    ended = ann.until(kind("ended"), "the end", timeout=15)
    assert ended["reason"] == "partner_left" and "paid for your time" in ended["message"]
    assert "ended" in ann.until(kind("refused", id=ann.say("hello?")), "a refusal")["message"]
    assert ann.worker.submit({"rating": "1"}).status_code == 200
    units = run.store.query("SELECT status FROM units WHERE task_run_id = ? AND assignment_id = ?",
                            (run.id, int(run.df.loc[0, "assignment_id"])))  # fmt: skip
    assert sorted(u["status"] for u in units) == ["completed", "expired"]  # bob's seat is not offered again
    events = run.messages_df.query("kind == 'event'")["event"].tolist()
    assert events[-4:] == ["away", "left", "ended", "submitted"]
    assert Worker(run, "bob").enter().json()["agent_id"] != bob.worker.unit["agent_id"]  # a new seat, elsewhere
    ann.close()
    time.sleep(1.5)  # monitor ticks: the ended room with no open page is forgotten, then rebuilt from the store
    ann.open()
    again = ann.until(kind("room"), "the ended room")
    assert again["state"] == "ended" and [m["text"] for m in again["history"] if m["type"] == "message"] == ["bye"]


def test_a_worker_who_waits_too_long_is_released_paid_and_told(shared: Any, page: Any) -> None:
    run = shared(chat=cn.Chat(lobby_timeout=1, waiting_bonus=0.05), data=[{"topic": "x"}])
    ann = page(run, "ann")
    released = ann.until(kind("released"), "the release", timeout=15)
    assert "No partner arrived" in released["message"] and "$0.05 bonus for waiting" in released["message"]
    assert run.spend["bonuses"] == pytest.approx(0.05)
    assert run.counts["launched"] == 2  # both seats on offer again
    ann.close()
    again = page(run, "ann")  # she may wait again; paid once per wait, never twice for the same one
    again.close()
    assert run.messages_df["event"].dropna().tolist()[:2] == ["joined", "released"]
    assert len(run.store.query("SELECT * FROM reviews WHERE action = 'bonus'")) == 1


def test_human_and_notebook_bot(shared: Any, page: Any) -> None:
    def reply(args: dict[str, Any], worker: Any) -> dict[str, Any]:
        return {"text": f"You said {args['text']!r} ({len(args['history'])} so far, I am the {args['role']})."}

    run = shared(
        workers_per_assignment=1,
        roles=("customer", "assistant"),
        chat=cn.Chat(bot="reply", turns="alternate"),
        procedures={"reply": reply},
    )
    ann = page(run, "ann")
    assert ann.until(kind("room"), "the start")["role"] == "customer"
    ann.say("hello")
    answer = ann.until(kind("message", role="assistant"), "the bot's answer")
    assert answer["text"] == "You said 'hello' (1 so far, I am the assistant)." and answer["turn"] == "customer"
    assert ann.worker.submit({"rating": "5"}).status_code == 200
    assert run.calls_df.loc[0, "name"] == "reply" and run.df.loc[0, "messages"] == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"workers_per_assignment": 2, "units_per_assignment": 2}, "give one"),
        ({"workers_per_assignment": 2, "roles": ("a",)}, "give 2 different role names"),
        ({"workers_per_assignment": 2, "roles": ("a", "a")}, "give 2 different role names"),
        ({"roles": ("a", "b")}, "roles= and chat= are for shared tasks"),
        ({"workers_per_assignment": 0}, "workers_per_assignment=0"),
        ({"workers_per_assignment": 2, "gold": cn.Gold([{"topic": "g", "answers": {"rating": "1"}}])}, "gold="),
    ],
)
def test_shared_task_options_are_checked(project: cn.Project, options: dict[str, Any], message: str) -> None:
    with pytest.raises(cn.ConfigError, match=message):
        cn.Task("bad", title="T", reward=0.1, html=CHAT, data=TOPICS, project=project, **options)


def test_chat_rules_are_checked() -> None:
    with pytest.raises(cn.ConfigError, match="turns='random' is not one of free, alternate"):
        cn.Chat(turns="random")
    with pytest.raises(cn.ConfigError, match="lobby_timeout=0"):
        cn.Chat(lobby_timeout=0)


def test_a_bot_chat_needs_its_procedure(project: cn.Project) -> None:
    task = cn.Task("lonely", title="T", reward=0.1, html=CHAT, data=TOPICS, project=project, chat=cn.Chat(bot="reply"))
    with pytest.raises(cn.ConfigError, match=r"@task\.procedure def reply"):
        task.launch()


def test_simulated_workers_join_chat_in_turns_and_call_procedures(shared: Any) -> None:
    def mood(args: dict[str, Any], worker: Any) -> dict[str, Any]:
        return {"mood": "sunny" if "sun" in args["text"] else "grey", "role": worker.role}

    script = {"teller": ["The sun is out.", "Shall we walk?"], "listener": ["Nice!", "Yes, let's."]}

    def play(bot: Any) -> dict[str, Any]:
        for line in script[bot.join()]:
            bot.say(line)
        heard = bot.wait_for(4)
        seen = bot.call("mood", {"text": heard[0]["text"]})
        return {"rating": "5" if seen["mood"] == "sunny" and seen["role"] == bot.role else "1"}

    run = shared(roles=("teller", "listener"), chat=cn.Chat(turns="alternate"), procedures={"mood": mood})
    sim = cn.simulate(run, workers=2, play=play)
    assert sim.errors == [] and sim.submitted == 4
    frame = run.df
    assert set(frame["rating"]) == {"5"} and set(frame["messages"]) == {2} and set(frame["calls"]) == {1}
    said = run.messages_df.query("kind == 'message'")
    for _, room in said.groupby("assignment_id"):
        assert room["text"].tolist() == ["The sun is out.", "Nice!", "Shall we walk?", "Yes, let's."]
        assert room["role"].tolist() == ["teller", "listener"] * 2


def test_simulated_workers_without_a_script_join_before_they_submit(shared: Any) -> None:
    run = shared()
    sim = cn.simulate(run, workers=2, answer=lambda row: {"rating": "5"})
    assert sim.errors == [] and sim.submitted == 4
    wait_until(lambda: run.counts["completed"] == 4, "every seat submitted")
    assert run.messages_df.query("event == 'started'").shape[0] == 2


def test_transcripts_are_in_the_export_the_review_app_and_the_review_grid(
    shared: Any, page: Any, tmp_path: Any
) -> None:
    from crowdnb.notebook.review_grid import ReviewGrid
    from crowdnb.review.app import create_review_app
    from crowdnb.review.pages import task_view

    run = shared(roles=("teller", "listener"), data=[{"topic": "x"}])
    ann, bob = page(run, "ann"), page(run, "bob")
    ann.until(kind("room"), "the start")
    ann.say("<b>not bold</b>")
    bob.until(kind("message"), "ann's message")
    for opened in (ann, bob):
        assert opened.worker.submit({"rating": "5"}).status_code == 200
    written = run.export(tmp_path / "chat.csv")
    exported = (tmp_path / "chat.messages.csv").read_text()
    assert written.name == "chat.csv" and "<b>not bold</b>" in exported and "started" in exported
    units = [u for group in task_view(run.project, "chat")["workers"] for u in group["units"]]
    assert len(units) == 2 and all(u["transcript"][-1]["kind"] == "event" for u in units)
    assert [line["text"] for line in units[0]["transcript"] if line["kind"] == "message"] == ["<b>not bold</b>"]
    app = create_review_app(run.project, "a-long-enough-review-token").test_client()
    assert app.get("/?token=a-long-enough-review-token").status_code == 200
    html = app.get("/tasks/chat").text
    assert (
        "Conversation (1 messages)" in html
        and '<b>teller</b> <small class="rv-muted">ann</small>: &lt;b&gt;not bold' in html
    )
    grid = ReviewGrid(run)
    grid.opened = [grid.rows[0]["id"]]
    assert "<b>teller</b>: &lt;b&gt;not bold&lt;/b&gt;" in grid.details[grid.rows[0]["id"]]
