"""The Platform API client against the local fake: auth, validation, retries, builds, scaling."""

from __future__ import annotations

import io
import tarfile

import pytest
import requests
from crowdnb_heroku.fake import ACCEPT, FakeHeroku
from crowdnb_heroku.platform import HerokuError, Platform

from crowdnb.errors import ArchitectError, CrowdError


def tarball(files: dict[str, str]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def built(platform: Platform, app: str, files: dict[str, str]) -> str:
    """Upload ``files`` as a source and build them; returns the build id."""
    blob = platform.create_source()
    platform.upload(blob["put_url"], tarball(files))
    return platform.create_build(app, blob["get_url"], "v1", checksum=None)["id"]  # type: ignore[arg-type]


def test_errors_are_architect_errors_of_the_crowdnb_tree() -> None:
    assert issubclass(HerokuError, ArchitectError) and issubclass(HerokuError, CrowdError)


def test_missing_token_is_refused_before_any_request(fake: FakeHeroku, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HEROKU_API_KEY", raising=False)
    with pytest.raises(HerokuError, match=r"set HEROKU_API_KEY") as caught:
        Platform(base_url=fake.base_url).create_app("crowdnb-study")
    assert caught.value.status == 401 and fake.calls == []


def test_token_comes_from_the_environment(fake: FakeHeroku, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEROKU_API_KEY", fake.api_key)
    assert Platform(base_url=fake.base_url, backoff=0).create_app("crowdnb-env")["name"] == "crowdnb-env"


def test_wrong_token_is_401_with_the_next_step(fake: FakeHeroku) -> None:
    with pytest.raises(HerokuError, match=r"401 unauthorized.*set HEROKU_API_KEY") as caught:
        Platform("not-the-key", fake.base_url).create_app("crowdnb-study")
    assert caught.value.id == "unauthorized" and "Invalid credentials" in caught.value.heroku_message
    assert "not-the-key" not in str(caught.value) and fake.apps == {}


def test_without_the_version_accept_header_the_api_answers_406(fake: FakeHeroku) -> None:
    answer = requests.post(f"{fake.base_url}/apps", headers={"Authorization": f"Bearer {fake.api_key}"}, timeout=5)
    assert answer.status_code == 406 and answer.json()["id"] == "not_acceptable"
    ok = requests.post(
        f"{fake.base_url}/apps",
        headers={"Authorization": f"Bearer {fake.api_key}", "Accept": ACCEPT},
        json={},
        timeout=5,
    )
    assert ok.status_code == 201


@pytest.mark.parametrize("name", ["ab", "1study", "Study", "study_one", "a" * 31])
def test_bad_app_name_is_422(platform: Platform, name: str) -> None:
    with pytest.raises(HerokuError, match=r"422 invalid_params.*lower-case letters") as caught:
        platform.create_app(name)
    assert caught.value.status == 422


def test_taken_name_is_409(platform: Platform) -> None:
    platform.create_app("crowdnb-study")
    with pytest.raises(HerokuError, match=r"409 conflict.*pass another app_name"):
        platform.create_app("crowdnb-study")


def test_heroku_chooses_a_name_when_none_is_given(platform: Platform) -> None:
    app = platform.create_app()
    assert platform.app_info(app["name"])["web_url"] == app["web_url"]
    assert app["web_url"].startswith("https://") and app["web_url"].endswith(".herokuapp.com/")


def test_unknown_app_is_404(platform: Platform) -> None:
    with pytest.raises(HerokuError, match=r"404 not_found\): Couldn't find that app; check the app name"):
        platform.app_info("no-such-app")


def test_throttled_call_is_retried_until_it_goes_through(fake: FakeHeroku, platform: Platform) -> None:
    fake.fail("POST", "/apps", status=429, times=2)
    assert platform.create_app("crowdnb-study")["name"] == "crowdnb-study"
    assert fake.count("POST", "/apps") == 3


def test_throttling_that_lasts_gives_up_with_advice(fake: FakeHeroku) -> None:
    fake.fail("GET", "/apps/*", status=429, times=10)
    with pytest.raises(HerokuError, match=r"429 rate_limit.*wait, then try again"):
        Platform(fake.api_key, fake.base_url, attempts=3, backoff=0).app_info("anything")
    assert fake.count("GET", "/apps/*") == 3


def test_server_error_retries_reads_but_never_a_post(fake: FakeHeroku, platform: Platform) -> None:
    platform.create_app("crowdnb-study")
    fake.fail("GET", "/apps/crowdnb-study", status=503, times=1)
    assert platform.app_info("crowdnb-study")["name"] == "crowdnb-study"
    fake.fail("POST", "/apps", status=503, times=1)  # it may have made the app: repeating could make two
    with pytest.raises(HerokuError, match=r"503 service_unavailable.*try again later"):
        platform.create_app("crowdnb-other")
    assert fake.count("POST", "/apps") == 2


def test_config_vars_set_and_delete(platform: Platform) -> None:
    platform.create_app("crowdnb-study")
    assert platform.set_config("crowdnb-study", {"A": "1", "B": "2"}) == {"A": "1", "B": "2"}
    assert platform.set_config("crowdnb-study", {"A": None}) == {"B": "2"}


def test_upload_carries_no_token_to_the_signed_url(fake: FakeHeroku, platform: Platform) -> None:
    blob = platform.create_source()
    refused = requests.put(blob["put_url"], data=b"x", headers={"Authorization": "Bearer t"}, timeout=5)
    assert refused.status_code == 400  # S3 refuses a second auth mechanism
    platform.upload(blob["put_url"], b"tarball bytes")
    assert requests.get(blob["get_url"], timeout=5).content == b"tarball bytes"


def test_build_goes_pending_then_succeeded(fake: FakeHeroku, platform: Platform) -> None:
    platform.create_app("crowdnb-study")
    build_id = built(platform, "crowdnb-study", {"requirements.txt": "flask\n", "Procfile": "web: run\n"})
    assert platform.build_info("crowdnb-study", build_id)["status"] == "pending"
    assert platform.wait_build("crowdnb-study", build_id, interval=0)["status"] == "succeeded"
    assert fake.count("GET", "/apps/crowdnb-study/builds/*") == 3


def test_failed_build_raises_with_the_end_of_its_output(platform: Platform) -> None:
    platform.create_app("crowdnb-study")
    build_id = built(platform, "crowdnb-study", {"Procfile": "web: run\n"})  # no requirements.txt
    with pytest.raises(
        HerokuError, match=r"(?s)build .* failed; its output ends:.*App not compatible with buildpack"
    ) as caught:
        platform.wait_build("crowdnb-study", build_id, interval=0)
    assert caught.value.id == "build_failed"


def test_wrong_checksum_fails_the_build(platform: Platform) -> None:
    platform.create_app("crowdnb-study")
    blob = platform.create_source()
    platform.upload(blob["put_url"], tarball({"requirements.txt": "flask\n"}))
    build = platform.create_build("crowdnb-study", blob["get_url"], "v1", checksum="SHA256:" + "0" * 64)
    with pytest.raises(HerokuError, match=r"checksum does not match"):
        platform.wait_build("crowdnb-study", build["id"], interval=0)


def test_build_without_a_source_blob_is_422(fake: FakeHeroku, platform: Platform) -> None:
    platform.create_app("crowdnb-study")
    answer = requests.post(  # the client always sends a source blob: ask the API as another client would
        f"{fake.base_url}/apps/crowdnb-study/builds",
        headers={"Authorization": f"Bearer {fake.api_key}", "Accept": ACCEPT},
        json={},
        timeout=5,
    )
    assert answer.status_code == 422 and answer.json()["id"] == "invalid_params"
    assert "source_blob" in answer.json()["message"]


def test_scale_needs_a_released_web_process_and_one_basic_dyno(platform: Platform) -> None:
    platform.create_app("crowdnb-study")
    with pytest.raises(HerokuError, match=r"404 not_found.*process type \(web\)"):
        platform.scale("crowdnb-study", "web", 1, "basic")
    platform.wait_build(
        "crowdnb-study",
        built(platform, "crowdnb-study", {"requirements.txt": "", "Procfile": "web: run\n"}),
        interval=0,
    )
    with pytest.raises(HerokuError, match=r"422 invalid_params.*more than 1 basic"):
        platform.scale("crowdnb-study", "web", 2, "basic")
    formation = platform.scale("crowdnb-study", "web", 1, "basic")
    assert (formation["type"], formation["quantity"], formation["size"]) == ("web", 1, "basic")


def test_destroyed_app_is_gone(platform: Platform) -> None:
    platform.create_app("crowdnb-study")
    platform.destroy("crowdnb-study")
    with pytest.raises(HerokuError, match=r"404"):
        platform.destroy("crowdnb-study")
