"""One run on EC2: its instance behind the setup's load balancer at ``https://<subdomain>.<domain>/``.

``provision`` uploads the run's bundle, starts an instance whose user data serves it
(``ec2_userdata.sh``), routes the subdomain to it and waits until ``/healthz`` answers through the
public URL; when any step fails, everything made so far is deleted again. ``teardown`` deletes every
per-run resource, found by its tags (so it works after a crash too), and ``cleanup`` does that for every
run a crash left.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

import requests

from ..errors import ArchitectError, ConfigError
from .aws import RUN_PREFIX, TAG_RUN, Cloud, aws_errors, tags, translated
from .ec2_inventory import Resource, delete, list_resources, run_ids
from .ec2_setup import PORT, Ec2Setup
from .ec2_userdata import render

log = logging.getLogger(__name__)

AMI_ALIAS = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-{arch}"
BUNDLE_LINK_SECONDS = 6 * 3600  # how long the instance may take to fetch its bundle
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")

Check = Callable[[str], bool]


@dataclass(frozen=True)
class Ec2Run:
    """What ``provision`` made for a run; JSON-serialisable like ``Ec2Setup``."""

    run_id: int
    url: str
    host: str
    instance_id: str
    instance_type: str
    target_group_arn: str
    rule_arn: str
    bucket: str
    snapshot_prefix: str  # the run's database and files land under s3://<bucket>/<snapshot_prefix>


def http_ok(url: str) -> bool:
    """True when ``GET <url>healthz`` answers 200."""
    try:
        return requests.get(url + "healthz", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def wait_healthy(url: str, check: Check = http_ok, timeout: float = 900.0, interval: float = 5.0) -> None:
    """Wait until ``check(url)`` passes (default: ``/healthz`` answers 200 through the public URL)."""
    deadline = time.monotonic() + timeout
    while not check(url):
        if time.monotonic() > deadline:
            raise ArchitectError(
                f"{url}healthz did not answer within {timeout:g} s; the instance's boot log is in the EC2 "
                "console (Actions → Monitor → Get system log)"
            )
        time.sleep(interval)


def check_subdomain(subdomain: str) -> str:
    """``subdomain`` checked to be one DNS label."""
    label = subdomain.strip().lower()
    if not _LABEL.match(label):
        raise ConfigError(
            f"subdomain {subdomain!r} is not a DNS label: use 1–63 letters, digits and inner hyphens, e.g. 'sentiment-1'"
        )
    return label


@aws_errors
def provision(
    cloud: Cloud,
    setup: Ec2Setup,
    run_id: int,
    bundle_path: str | Path,
    subdomain: str,
    instance_type: str = "t3.small",
    *,
    snapshot_seconds: int = 300,
    check: Check = http_ok,
    health_timeout: float = 900.0,
) -> Ec2Run:
    """Serve the run of ``bundle_path`` at ``https://<subdomain>.<domain>/``; returns once ``check`` passes."""
    bundle = Path(bundle_path)
    if not bundle.is_file():
        raise ConfigError(f"bundle {str(bundle)!r} is not a file; pass the run's .tar.gz bundle")
    host = f"{check_subdomain(subdomain)}.{setup.domain}"
    ami = _image(cloud, instance_type)
    _check_free(cloud, setup, host)
    # a failed provision deletes everything tagged with the run: never let it reach an earlier deployment
    if earlier := list_resources(cloud, run_id):
        raise ConfigError(
            f"run {run_id} already has {len(earlier)} resource(s) on AWS ({earlier[0].kind} {earlier[0].id} …); "
            f"`crowdnb ec2 teardown {run_id}` first"
        )
    try:
        made = _provision(cloud, setup, run_id, bundle, host, instance_type, ami, snapshot_seconds)
        wait_healthy(made.url, check, health_timeout)
    except BaseException:
        log.warning("provisioning run %s failed; deleting what was made", run_id)
        with translated("teardown after a failed provision"):
            delete(cloud, list_resources(cloud, run_id))
        raise
    log.info("run %s serves at %s (instance %s)", run_id, made.url, made.instance_id)
    return made


def _provision(cloud: Cloud, setup: Ec2Setup, run_id: int, bundle: Path, host: str, instance_type: str,
               ami: str, snapshot_seconds: int) -> Ec2Run:  # fmt: skip
    s3, elbv2 = cloud.client("s3"), cloud.client("elbv2")
    key, prefix = f"{RUN_PREFIX}{run_id}/bundle.tar.gz", f"{RUN_PREFIX}{run_id}/snapshot/"
    s3.upload_file(str(bundle), setup.bucket, key, ExtraArgs={"Tagging": f"{TAG_RUN}={run_id}"})
    link = s3.generate_presigned_url(
        "get_object", Params={"Bucket": setup.bucket, "Key": key}, ExpiresIn=BUNDLE_LINK_SECONDS
    )
    group = elbv2.create_target_group(
        Name=f"crowdnb-{run_id}"[:32], Protocol="HTTP", Port=PORT, VpcId=setup.vpc_id, TargetType="instance",
        HealthCheckPath="/healthz", HealthCheckIntervalSeconds=10, HealthyThresholdCount=2, Matcher={"HttpCode": "200"},
        Tags=tags(setup.domain, run_id),
    )["TargetGroups"][0]["TargetGroupArn"]  # fmt: skip
    # a finished run's connections are not worth the default 300 s of draining
    elbv2.modify_target_group_attributes(
        TargetGroupArn=group, Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "10"}]
    )
    url = f"https://{host}/"
    script = render(run_id=run_id, bundle_url=link, public_url=url, snapshot_uri=f"s3://{setup.bucket}/{prefix}",
                    region=cloud.region, snapshot_seconds=snapshot_seconds)  # fmt: skip
    instance = _launch(cloud, setup, run_id, ami, instance_type, script)
    elbv2.register_targets(TargetGroupArn=group, Targets=[{"Id": instance, "Port": PORT}])
    rule = _route(cloud, setup, run_id, host, group)
    _point(cloud, setup, run_id, host)
    return Ec2Run(run_id, url, host, instance, instance_type, group, rule, setup.bucket, prefix)


def _image(cloud: Cloud, instance_type: str) -> str:
    """Amazon Linux 2023 for the instance type's architecture (from the SSM public alias)."""
    from botocore.exceptions import ClientError

    try:
        info = cloud.client("ec2").describe_instance_types(InstanceTypes=[instance_type])["InstanceTypes"]
    except ClientError as exc:
        raise ConfigError(
            f"instance type {instance_type!r} is not offered in {cloud.region}: {exc.response['Error'].get('Message')}; "
            "pick one such as 't3.small' or 't4g.small'"
        ) from exc
    arches = info[0]["ProcessorInfo"]["SupportedArchitectures"] if info else ["x86_64"]
    arch = "arm64" if "arm64" in arches and "x86_64" not in arches else "x86_64"
    return str(cloud.client("ssm").get_parameter(Name=AMI_ALIAS.format(arch=arch))["Parameter"]["Value"])


def _check_free(cloud: Cloud, setup: Ec2Setup, host: str) -> None:
    """Refuse a host name another run (or anything else) already answers at."""
    reply = cloud.client("route53").list_resource_record_sets(
        HostedZoneId=setup.zone_id, StartRecordName=host, MaxItems="10"
    )
    records = [r for r in reply["ResourceRecordSets"] if r["Name"].rstrip(".") == host]
    if any(r["Type"] in ("A", "AAAA", "CNAME", "TXT") for r in records):
        owners = [v["Value"].strip('"') for r in records for v in r.get("ResourceRecords", []) if TAG_RUN in v["Value"]]
        whose = f" by {owners[0].replace(TAG_RUN + '=', 'run ')}" if owners else ""
        raise ConfigError(
            f"subdomain {host!r} is taken{whose}; pick another subdomain, or `crowdnb ec2 teardown` the run on it"
        )


def _launch(cloud: Cloud, setup: Ec2Setup, run_id: int, ami: str, instance_type: str, script: str) -> str:
    ec2 = cloud.client("ec2")
    labels = tags(setup.domain, run_id, name=f"crowdnb-run-{run_id}")
    instance = ec2.run_instances(
        ImageId=ami, InstanceType=instance_type, MinCount=1, MaxCount=1, UserData=script,
        IamInstanceProfile={"Name": setup.instance_profile}, InstanceInitiatedShutdownBehavior="terminate",
        NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": setup.subnet_ids[run_id % len(setup.subnet_ids)],
                            "Groups": [setup.instance_security_group], "AssociatePublicIpAddress": True}],
        MetadataOptions={"HttpTokens": "required", "HttpPutResponseHopLimit": 1},
        TagSpecifications=[{"ResourceType": kind, "Tags": labels} for kind in ("instance", "volume")],
    )["Instances"][0]["InstanceId"]  # fmt: skip
    log.info("started instance %s (%s) for run %s", instance, instance_type, run_id)
    ec2.get_waiter("instance_running").wait(InstanceIds=[instance], WaiterConfig={"Delay": 5, "MaxAttempts": 60})
    return str(instance)


def _route(cloud: Cloud, setup: Ec2Setup, run_id: int, host: str, group: str) -> str:
    """A host-header rule on the HTTPS listener at the lowest free priority (retried if another run took it)."""
    from botocore.exceptions import ClientError

    elbv2 = cloud.client("elbv2")
    for _ in range(5):
        rules = elbv2.describe_rules(ListenerArn=setup.listener_arn)["Rules"]
        taken = {int(r["Priority"]) for r in rules if r["Priority"].isdigit()}
        priority = min(set(range(1, len(taken) + 2)) - taken)
        try:
            return str(
                elbv2.create_rule(
                    ListenerArn=setup.listener_arn, Priority=priority,
                    Conditions=[{"Field": "host-header", "HostHeaderConfig": {"Values": [host]}}],
                    Actions=[{"Type": "forward", "TargetGroupArn": group}], Tags=tags(setup.domain, run_id),
                )["Rules"][0]["RuleArn"]
            )  # fmt: skip
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "PriorityInUse":
                raise
    raise ArchitectError(f"no free rule priority on {setup.listener_arn} after 5 tries; provision run {run_id} again")


def _point(cloud: Cloud, setup: Ec2Setup, run_id: int, host: str) -> None:
    """The alias A record to the load balancer, and the TXT record that says which run owns it."""
    alias = {"HostedZoneId": setup.alb_zone_id, "DNSName": f"dualstack.{setup.alb_dns_name}",
             "EvaluateTargetHealth": False}  # fmt: skip
    changes = [
        {"Action": "CREATE", "ResourceRecordSet": {"Name": host, "Type": "TXT", "TTL": 60,
                                                   "ResourceRecords": [{"Value": f'"{TAG_RUN}={run_id}"'}]}},
        {"Action": "CREATE", "ResourceRecordSet": {"Name": host, "Type": "A", "AliasTarget": alias}},
    ]  # fmt: skip
    route53 = cloud.client("route53")
    change = route53.change_resource_record_sets(HostedZoneId=setup.zone_id, ChangeBatch={"Changes": changes})
    route53.get_waiter("resource_record_sets_changed").wait(
        Id=change["ChangeInfo"]["Id"], WaiterConfig={"Delay": 5, "MaxAttempts": 60}
    )


@aws_errors
def teardown(cloud: Cloud, run_id: int) -> list[Resource]:
    """Delete every resource of ``run_id`` (instance, rule, target group, records, S3 objects); returns them."""
    gone = delete(cloud, list_resources(cloud, run_id))
    log.info("run %s torn down: %d resource(s) deleted", run_id, len(gone))
    return gone


@aws_errors
def cleanup(cloud: Cloud, keep: Collection[int] = ()) -> list[Resource]:
    """Tear down every run that left resources in the region, except the runs in ``keep``."""
    found = list_resources(cloud)
    return delete(cloud, [r for r in found if r.run_id is not None and r.run_id not in keep])


@aws_errors
def fetch_snapshot(cloud: Cloud, run: Ec2Run, folder: str | Path) -> list[Path]:
    """Download the run's latest snapshot (``crowdnb.db`` and ``files/``) into ``folder``; returns the files."""
    s3, target, written = cloud.client("s3"), Path(folder), []
    reply = s3.get_paginator("list_objects_v2").paginate(Bucket=run.bucket, Prefix=run.snapshot_prefix)
    for item in (obj for page in reply for obj in page.get("Contents", [])):
        relative = Path(item["Key"][len(run.snapshot_prefix) :])
        if relative.is_absolute() or ".." in relative.parts:
            continue
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(run.bucket, item["Key"], str(target / relative))
        written.append(target / relative)
    return written


def runs_left(cloud: Cloud) -> list[int]:
    """The runs that have resources in the region."""
    return run_ids(list_resources(cloud))
