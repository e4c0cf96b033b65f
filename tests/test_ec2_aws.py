"""The EC2 architect's AWS side against moto in server mode: setup once, provision, teardown, list, cleanup.

What exists is asserted through boto3, not through the code under test; after a teardown (or a failed
provision) nothing billable is left (``clouds.billable``). The instance itself is emulated in
test_ec2_userdata.py; here the health check is a callable that says yes or no.
"""

from __future__ import annotations

import base64
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from crowdnb.architects.aws import Cloud
from crowdnb.architects.ec2_inventory import list_resources
from crowdnb.architects.ec2_removal import remove_setup
from crowdnb.architects.ec2_run import Ec2Run, cleanup, provision, teardown
from crowdnb.architects.ec2_setup import Ec2Setup, find_setup, setup
from crowdnb.architects.ec2_snapshot import snapshot
from crowdnb.cli import cli
from crowdnb.errors import ArchitectError, ConfigError

from .clouds import CREDENTIALS, DOMAIN, REGION, billable

RUN, OTHER = 7_000_000_000_000_000_001, 7_000_000_000_000_000_002


@pytest.fixture
def made(cloud: Cloud) -> Ec2Setup:
    return setup(cloud, DOMAIN)


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "crowdnb.db").write_bytes(b"not read here")
    path = tmp_path / "bundle.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(tmp_path / "project", arcname="project")
    return path


def up(url: str) -> bool:
    return True


def launched(cloud: Cloud, made: Ec2Setup, bundle: Path, run_id: int = RUN, sub: str = "sentiment") -> Ec2Run:
    return provision(cloud, made, run_id, bundle, sub, check=up)


def test_setup_makes_every_piece_once(cloud: Cloud) -> None:
    first = setup(cloud, DOMAIN)
    assert setup(cloud, DOMAIN.upper()) == first == find_setup(cloud, DOMAIN)
    ec2, elbv2, acm = cloud.client("ec2"), cloud.client("elbv2"), cloud.client("acm")
    assert [z["Name"] for z in cloud.client("route53").list_hosted_zones()["HostedZones"]] == [DOMAIN + "."]
    certificates = acm.list_certificates()["CertificateSummaryList"]
    assert [(c["DomainName"], c["Status"]) for c in certificates] == [(f"*.{DOMAIN}", "ISSUED")]
    assert len(elbv2.describe_load_balancers()["LoadBalancers"]) == 1
    (listener,) = elbv2.describe_listeners(LoadBalancerArn=first.alb_arn)["Listeners"]
    assert (listener["Protocol"], listener["Port"]) == ("HTTPS", 443)
    assert listener["Certificates"][0]["CertificateArn"] == first.certificate_arn
    assert listener["DefaultActions"][0]["FixedResponseConfig"]["StatusCode"] == "404"
    groups = {g["GroupId"]: g for g in ec2.describe_security_groups()["SecurityGroups"] if g["GroupName"] != "default"}
    assert set(groups) == {first.alb_security_group, first.instance_security_group}
    (world,) = groups[first.alb_security_group]["IpPermissions"]
    assert (world["FromPort"], world["ToPort"], world["IpRanges"]) == (443, 443, [{"CidrIp": "0.0.0.0/0"}])
    (inbound,) = groups[first.instance_security_group]["IpPermissions"]  # 8000 from the ALB alone; no SSH
    assert (inbound["FromPort"], inbound["ToPort"], inbound["IpRanges"]) == (8000, 8000, [])
    assert [p["GroupId"] for p in inbound["UserIdGroupPairs"]] == [first.alb_security_group]
    assert [b["Name"] for b in cloud.client("s3").list_buckets()["Buckets"]] == [first.bucket]


def test_instance_role_may_only_write_under_runs(cloud: Cloud, made: Ec2Setup) -> None:
    iam = cloud.client("iam")
    profile = iam.get_instance_profile(InstanceProfileName=made.instance_profile)["InstanceProfile"]
    assert [r["RoleName"] for r in profile["Roles"]] == [made.role]
    assert iam.list_attached_role_policies(RoleName=made.role)["AttachedPolicies"] == []
    (name,) = iam.list_role_policies(RoleName=made.role)["PolicyNames"]
    document = iam.get_role_policy(RoleName=made.role, PolicyName=name)["PolicyDocument"]
    statements = (json.loads(document) if isinstance(document, str) else document)["Statement"]
    assert {(s["Action"], s["Resource"]) for s in statements} == {
        ("s3:PutObject", f"arn:aws:s3:::{made.bucket}/runs/*"),
        ("s3:ListBucket", f"arn:aws:s3:::{made.bucket}"),
    }


def test_setup_round_trips_through_json(made: Ec2Setup) -> None:
    assert Ec2Setup.from_dict(json.loads(json.dumps(made.as_dict()))) == made


def test_unknown_domain_names_it_and_the_next_step(cloud: Cloud, made: Ec2Setup) -> None:
    with pytest.raises(ConfigError) as caught:
        find_setup(cloud, "other.example.net")
    message = str(caught.value)
    assert "'other.example.net'" in message and "crowdnb ec2 setup other.example.net" in message
    assert "\n" not in message


@pytest.mark.parametrize("domain", ["localhost", "bad domain.org", "-.org", ""])
def test_a_domain_that_is_not_a_dns_name_is_refused(cloud: Cloud, domain: str) -> None:
    with pytest.raises(ConfigError, match="is not a DNS name"):
        setup(cloud, domain)
    assert cloud.client("route53").list_hosted_zones()["HostedZones"] == []


def test_unknown_profile_names_it_and_the_next_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    with pytest.raises(ConfigError) as caught:
        Cloud(profile_name="research-lab")
    assert "'research-lab'" in str(caught.value) and "aws configure --profile research-lab" in str(caught.value)


def test_provision_routes_the_subdomain_to_a_tagged_instance(cloud: Cloud, made: Ec2Setup, bundle: Path) -> None:
    asked: list[str] = []
    run = provision(cloud, made, RUN, bundle, "Sentiment", check=lambda url: asked.append(url) or True)
    assert run.url == f"https://sentiment.{DOMAIN}/" and asked == [run.url]
    ec2, elbv2 = cloud.client("ec2"), cloud.client("elbv2")
    (instance,) = ec2.describe_instances(InstanceIds=[run.instance_id])["Reservations"][0]["Instances"]
    assert instance["State"]["Name"] == "running" and "KeyName" not in instance  # configured by user data only
    assert {(t["Key"], t["Value"]) for t in instance["Tags"]} >= {("crowdnb:run", str(RUN)), ("crowdnb:setup", DOMAIN)}
    (interface,) = instance["NetworkInterfaces"]
    assert [g["GroupId"] for g in interface["Groups"]] == [made.instance_security_group]
    assert interface["SubnetId"] in made.subnet_ids and "PublicIp" in interface.get("Association", {})
    assert instance["IamInstanceProfile"]["Arn"].endswith("/" + made.instance_profile)
    image = cloud.client("ssm").get_parameter(
        Name="/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
    )
    assert instance["ImageId"] == image["Parameter"]["Value"]
    user_data = ec2.describe_instance_attribute(InstanceId=run.instance_id, Attribute="userData")["UserData"]["Value"]
    script = base64.b64decode(user_data).decode()
    assert f"RUN_ID=${{CROWDNB_RUN_ID:-{RUN}}}" in script and f"s3://{made.bucket}/runs/{RUN}/snapshot/" in script
    health = elbv2.describe_target_health(TargetGroupArn=run.target_group_arn)["TargetHealthDescriptions"]
    assert [(t["Target"]["Id"], t["Target"]["Port"]) for t in health] == [(run.instance_id, 8000)]
    (rule,) = [r for r in elbv2.describe_rules(ListenerArn=made.listener_arn)["Rules"] if not r["IsDefault"]]
    assert rule["Conditions"][0]["HostHeaderConfig"]["Values"] == [run.host]
    assert rule["Actions"][0]["TargetGroupArn"] == run.target_group_arn
    records = cloud.client("route53").list_resource_record_sets(HostedZoneId=made.zone_id)["ResourceRecordSets"]
    (alias,) = [r for r in records if r["Name"] == run.host + "." and r["Type"] == "A"]
    assert alias["AliasTarget"]["DNSName"].rstrip(".").endswith(made.alb_dns_name)
    objects = cloud.client("s3").list_objects_v2(Bucket=made.bucket)["Contents"]
    assert [o["Key"] for o in objects] == [f"runs/{RUN}/bundle.tar.gz"]


def test_teardown_leaves_nothing_billable(cloud: Cloud, made: Ec2Setup, bundle: Path) -> None:
    run = launched(cloud, made, bundle)
    gone = teardown(cloud, RUN)
    assert {r.kind for r in gone} == {"instance", "rule", "target-group", "record", "objects"}
    assert billable(cloud) == []
    (instance,) = cloud.client("ec2").describe_instances(InstanceIds=[run.instance_id])["Reservations"][0]["Instances"]
    assert instance["State"]["Name"] == "terminated"
    assert teardown(cloud, RUN) == []  # twice is harmless
    assert find_setup(cloud, DOMAIN) == made  # the setup stays for the next run


def test_teardown_of_one_run_leaves_the_other_serving(cloud: Cloud, made: Ec2Setup, bundle: Path) -> None:
    launched(cloud, made, bundle, RUN, "first")
    second = launched(cloud, made, bundle, OTHER, "second")
    rules = [
        r for r in cloud.client("elbv2").describe_rules(ListenerArn=made.listener_arn)["Rules"] if not r["IsDefault"]
    ]
    assert sorted(r["Priority"] for r in rules) == ["1", "2"]
    teardown(cloud, RUN)
    left = billable(cloud)
    assert f"instance {second.instance_id} running" in left and f"record A {second.host}." in left
    assert not [item for item in left if "first" in item or str(RUN) in item]


def test_a_taken_subdomain_is_refused_before_anything_is_made(cloud: Cloud, made: Ec2Setup, bundle: Path) -> None:
    launched(cloud, made, bundle, RUN, "sentiment")
    before = billable(cloud)
    with pytest.raises(ConfigError, match=f"taken by run {RUN}"):
        launched(cloud, made, bundle, OTHER, "sentiment")
    assert billable(cloud) == before


def test_a_second_provision_of_a_run_is_refused_and_keeps_the_first(cloud: Cloud, made: Ec2Setup, bundle: Path) -> None:
    first = launched(cloud, made, bundle, RUN, "first")
    before = billable(cloud)
    with pytest.raises(ConfigError, match=f"run {RUN} already has 6 resource"):
        launched(cloud, made, bundle, RUN, "again")
    assert billable(cloud) == before and f"instance {first.instance_id} running" in before


def test_an_unknown_instance_type_names_it_and_makes_nothing(cloud: Cloud, made: Ec2Setup, bundle: Path) -> None:
    with pytest.raises(ConfigError, match=r"'t9.enormous'.*pick one such as"):
        provision(cloud, made, RUN, bundle, "sentiment", instance_type="t9.enormous", check=up)
    assert billable(cloud) == []


def test_a_health_check_that_never_passes_leaves_nothing(cloud: Cloud, made: Ec2Setup, bundle: Path) -> None:
    with pytest.raises(ArchitectError, match=f"https://sentiment.{DOMAIN}/healthz did not answer"):
        provision(cloud, made, RUN, bundle, "sentiment", check=lambda url: False, health_timeout=0)
    assert billable(cloud) == []


def test_a_failure_half_way_leaves_nothing(cloud: Cloud, made: Ec2Setup, bundle: Path) -> None:
    iam = cloud.client("iam")  # someone deleted the instance profile by hand: run_instances refuses it
    iam.remove_role_from_instance_profile(InstanceProfileName=made.instance_profile, RoleName=made.role)
    iam.delete_instance_profile(InstanceProfileName=made.instance_profile)
    with pytest.raises(ArchitectError, match=r"RunInstances.*Instance profile"):
        launched(cloud, made, bundle)  # after the bundle's upload and the target group
    assert billable(cloud) == []


def test_cleanup_tears_down_what_a_crash_left_and_keeps_live_runs(cloud: Cloud, made: Ec2Setup, bundle: Path) -> None:
    live = launched(cloud, made, bundle, RUN, "live")
    launched(cloud, made, bundle, OTHER, "crashed")
    # a crash between run_instances and anything else: a lone tagged instance
    image = cloud.client("ssm").get_parameter(
        Name="/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
    )
    cloud.client("ec2").run_instances(
        ImageId=image["Parameter"]["Value"], InstanceType="t3.micro", MinCount=1, MaxCount=1,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "crowdnb:run", "Value": "42"},
                                                                 {"Key": "crowdnb:setup", "Value": DOMAIN}]}],
    )  # fmt: skip
    assert {r.run_id for r in list_resources(cloud)} == {None, RUN, OTHER, 42}
    gone = cleanup(cloud, keep={RUN})
    assert {r.run_id for r in gone} == {OTHER, 42}
    assert {r.run_id for r in list_resources(cloud)} == {None, RUN}
    assert f"instance {live.instance_id} running" in billable(cloud)


def test_list_says_what_each_resource_costs(cloud: Cloud, made: Ec2Setup, bundle: Path) -> None:
    launched(cloud, made, bundle)
    found = {r.kind: r for r in list_resources(cloud)}
    assert found["instance"].hourly == pytest.approx(0.0208 + 0.005)  # t3.small and its public address
    assert "$0.0258/h ($18.83/month)" in str(found["instance"])
    assert found["load-balancer"].run_id is None and found["load-balancer"].hourly > 0.02
    assert found["hosted-zone"].hourly * 730 == pytest.approx(0.50)
    assert [r.run_id for r in list_resources(cloud, RUN)] == [RUN] * 6


def setup_left(cloud: Cloud) -> list[str]:
    """What setup makes, read through boto3."""
    ec2, iam = cloud.client("ec2"), cloud.client("iam")
    left = [
        f"load balancer {b['LoadBalancerName']}"
        for b in cloud.client("elbv2").describe_load_balancers()["LoadBalancers"]
    ]
    left += [
        f"group {g['GroupName']}"
        for g in ec2.describe_security_groups()["SecurityGroups"]
        if g["GroupName"] != "default"
    ]
    left += [f"bucket {b['Name']}" for b in cloud.client("s3").list_buckets()["Buckets"]]
    left += [f"role {r['RoleName']}" for r in iam.list_roles()["Roles"] if r["RoleName"].startswith("crowdnb-")]
    left += [f"profile {p['InstanceProfileName']}" for p in iam.list_instance_profiles()["InstanceProfiles"]]
    left += [
        f"certificate {c['DomainName']}" for c in cloud.client("acm").list_certificates()["CertificateSummaryList"]
    ]
    for zone in cloud.client("route53").list_hosted_zones()["HostedZones"]:
        records = cloud.client("route53").list_resource_record_sets(HostedZoneId=zone["Id"])["ResourceRecordSets"]
        left += [f"zone {zone['Name']}"] + [f"record {r['Type']}" for r in records if r["Type"] not in ("NS", "SOA")]
    return left


def test_remove_setup_waits_for_runs_then_deletes_everything_but_the_zone(
    cloud: Cloud, made: Ec2Setup, bundle: Path
) -> None:
    launched(cloud, made, bundle)
    with pytest.raises(ArchitectError, match=f"run\\(s\\) {RUN} of {DOMAIN} still have resources"):
        remove_setup(cloud, DOMAIN)
    teardown(cloud, RUN)
    removed = remove_setup(cloud, DOMAIN)
    assert "load balancer crowdnb-df7734de" in removed and f"bucket {made.bucket}" in removed
    assert setup_left(cloud) == [f"zone {DOMAIN}."]  # the validation CNAME went with its certificate
    assert remove_setup(cloud, DOMAIN, keep_zone=False) == [f"hosted zone {DOMAIN}"]
    assert setup_left(cloud) == []


def test_a_zone_crowdnb_did_not_make_is_kept(cloud: Cloud) -> None:
    cloud.client("route53").create_hosted_zone(Name=DOMAIN, CallerReference="the lab's own")
    setup(cloud, DOMAIN)
    remove_setup(cloud, DOMAIN, keep_zone=False)
    assert setup_left(cloud) == [f"zone {DOMAIN}."]


def test_snapshot_uploads_each_file_once_and_a_fresh_database(cloud: Cloud, made: Ec2Setup, tmp_path: Path) -> None:
    import sqlite3

    project = tmp_path / "project"
    (project / "files" / "1" / "2").mkdir(parents=True)
    (project / "files" / "1" / "2" / "photo.jpg").write_bytes(b"jpeg")
    with sqlite3.connect(project / "crowdnb.db") as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE t (x)")
        db.execute("INSERT INTO t VALUES (1)")
    s3, uri = cloud.client("s3"), f"s3://{made.bucket}/runs/{RUN}/snapshot/"
    assert snapshot(project, uri, s3) == 2
    with sqlite3.connect(project / "crowdnb.db") as db:
        db.execute("INSERT INTO t VALUES (2)")
    assert snapshot(project, uri, s3) == 1  # the file is there already
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=made.bucket)["Contents"]]
    assert sorted(keys) == [f"runs/{RUN}/snapshot/crowdnb.db", f"runs/{RUN}/snapshot/files/1/2/photo.jpg"]
    s3.download_file(made.bucket, f"runs/{RUN}/snapshot/crowdnb.db", str(tmp_path / "copy.db"))
    with sqlite3.connect(tmp_path / "copy.db") as db:
        assert db.execute("SELECT x FROM t ORDER BY x").fetchall() == [(1,), (2,)]


def invoke(moto: Any, *args: str) -> Any:
    env = {"CROWDNB_AWS_ENDPOINT_URL": moto.url, "AWS_ACCESS_KEY_ID": CREDENTIALS["aws_access_key_id"],
           "AWS_SECRET_ACCESS_KEY": CREDENTIALS["aws_secret_access_key"], "AWS_PROFILE": None}  # fmt: skip
    return CliRunner().invoke(cli, ["ec2", *args, "--region", REGION], env=env, catch_exceptions=False)


def test_cli_setup_list_teardown_cleanup(cloud: Cloud, moto_server: Any, bundle: Path) -> None:
    done = invoke(moto_server, "setup", DOMAIN)
    assert done.exit_code == 0 and "name servers" in done.output
    launched(cloud, find_setup(cloud, DOMAIN), bundle, RUN)
    launched(cloud, find_setup(cloud, DOMAIN), bundle, OTHER, "other")
    listed = invoke(moto_server, "list").output
    assert f"[run {RUN}]" in listed and "load-balancer" in listed and "/month" in listed
    assert invoke(moto_server, "cleanup", "--dry-run", "--keep", str(RUN)).output.count("would delete") == 6
    assert f"run {RUN}: 6 resource(s) deleted" in invoke(moto_server, "teardown", str(RUN)).output
    done = invoke(moto_server, "cleanup", "--setup", DOMAIN, "--zone")
    assert "6 resource(s) deleted" in done.output and f"the setup of {DOMAIN} is removed" in done.output
    assert billable(cloud) == [] and setup_left(cloud) == []


def test_cli_error_is_one_line(tmp_path: Path, moto_server: Any) -> None:
    runner = CliRunner()
    env = {"AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    done = runner.invoke(cli, ["ec2", "list", "--profile", "nobody"], env=env)
    assert done.exit_code == 1
    assert done.output.startswith("error: AWS profile 'nobody' not found") and done.output.count("\n") == 1
