"""The provider contract: a platform-side provider passed as an object, and returns it reports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import crowdnb as cn
from crowdnb.providers import Completion, Identity, Provider, Report, RunInfo
from crowdnb.providers.mock import MockProvider

from .conftest import FORM, SENTENCES, Worker, wait_until


class FakePlatform(MockProvider):
    """A stand-in for an outside crowd platform: MTurk-style ids in the URL, returns reported by polling."""

    name = "fakeplatform"
    fee_rate = 0.2
    poll_seconds = 0.1

    def __init__(self, store) -> None:
        super().__init__(store)
        self.returned: list[Report] = []

    def identify(self, params: Mapping[str, str]) -> Identity | None:
        if params.get("assignmentId", "ASSIGNMENT_ID_NOT_AVAILABLE") == "ASSIGNMENT_ID_NOT_AVAILABLE":
            return None
        return Identity(worker=params["workerId"], external={"assignment_id": params["assignmentId"]})

    def worker_url(self, base_url: str, worker: str) -> str:
        return f"{base_url}?workerId={worker}&assignmentId=A-{worker}&hitId=H1"

    def completion(self, run: RunInfo, external: Mapping[str, str]) -> Completion:
        return Completion(
            "form_post", "https://platform.invalid/externalSubmit", {"assignmentId": external["assignment_id"]}
        )

    def sync(self, run: RunInfo) -> Sequence[Report]:
        reports, self.returned = self.returned, []
        return reports


def test_mock_provider_implements_the_protocol(project: cn.Project) -> None:
    assert isinstance(MockProvider(project.store), Provider)


def test_a_returned_unit_is_offered_again(project: cn.Project) -> None:
    platform = FakePlatform(project.store)
    task = cn.Task("plat", title="T", reward=0.2, html=FORM, data=SENTENCES[:1], project=project)
    run = task.launch(provider=platform)
    try:
        alice = Worker(run, "alice")
        assert alice.enter().status_code == 200
        assert run.counts["assigned"] == 1
        platform.returned.append(Report("alice", "returned", {"assignment_id": "A-alice"}))
        wait_until(lambda: run.counts["launched"] == 1)
        assert run.store.scalar("SELECT status FROM agents") == "returned"
        late = alice.submit({"label": "pos"})
        assert late.status_code == 409  # a returned unit cannot be submitted
        bob = Worker(run, "bob")
        bob.enter()
        reply = bob.submit({"label": "neg"})
        client_id = run.store.scalar("SELECT client_id FROM submissions")
        assert reply.json()["completion"] == {
            "kind": "form_post", "url": "https://platform.invalid/externalSubmit",
            "fields": {"assignmentId": "A-bob", "crowdnb_submission_id": client_id},
            "message": "Thank you! Your answers are saved.",
        }  # fmt: skip
        assert run.config["provider"]["name"] == "fakeplatform"
    finally:
        run.stop()


def test_platform_preview_mode(project: cn.Project) -> None:
    import requests

    task = cn.Task("plat", title="T", reward=0.2, html=FORM, data=SENTENCES[:1], project=project)
    run = task.launch(provider=FakePlatform(project.store))
    try:
        page = requests.get(run.url + "?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=H1", timeout=10)
        assert page.status_code == 200 and "Preview" in page.text
        assert run.store.scalar("SELECT count(*) FROM agents") == 0
    finally:
        run.stop()
