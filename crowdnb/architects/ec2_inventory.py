"""Everything the EC2 architect made in a region, found by its tags, with what it costs, and its deletion.

Per-run resources (tag ``crowdnb:run``): the instance and any volume it left, the target group, the
listener rule, the DNS records (an alias A record and a TXT record ``crowdnb:run=<id>`` beside it, since
Route53 records carry no tags) and the S3 objects under ``runs/<id>/``. Setup resources (tag
``crowdnb:setup`` only) are listed too, because the load balancer costs money while no run is on.
Prices are approximate on-demand figures for us-east-1 in US dollars; other regions differ a little.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import ArchitectError
from .aws import RUN_PREFIX, TAG_RUN, TAG_SETUP, Cloud, elb_tags, pages, tag_map
from .ec2_setup import zone_of

log = logging.getLogger(__name__)

HOURS_A_MONTH = 730
PUBLIC_IPV4 = 0.005  # an instance's public address, per hour
LOAD_BALANCER = 0.0225 + 0.008  # per hour, plus about one LCU at a study's traffic
HOSTED_ZONE = 0.50 / HOURS_A_MONTH
GP3_GB = 0.08 / HOURS_A_MONTH
S3_GB = 0.023 / HOURS_A_MONTH
INSTANCE_HOURLY = {  # Linux on demand
    "t2.micro": 0.0116, "t2.small": 0.023, "t3.micro": 0.0104, "t3.small": 0.0208, "t3.medium": 0.0416,
    "t3.large": 0.0832, "t3a.small": 0.0188, "t3a.medium": 0.0376, "t4g.micro": 0.0084, "t4g.small": 0.0168,
    "t4g.medium": 0.0336, "t4g.large": 0.0672, "c7g.large": 0.0725, "c7g.xlarge": 0.145, "c6i.large": 0.085,
    "c6i.xlarge": 0.17, "m7g.large": 0.0816, "m6i.large": 0.096, "m6i.xlarge": 0.192, "c7i.2xlarge": 0.357,
}  # fmt: skip
RUN_KINDS = ("rule", "record", "target-group", "instance", "volume", "objects")  # the order of deletion
LIVE_STATES = ["pending", "running", "stopping", "stopped", "shutting-down"]


@dataclass(frozen=True)
class Resource:
    """One thing in the account: ``kind``, its id, the run it belongs to (None: the setup's), and its cost."""

    kind: str
    id: str
    setup: str
    run_id: int | None = None
    hourly: float = 0.0  # US dollars an hour, approximate
    note: str = ""
    where: str = ""  # the zone of a record, the bucket of objects

    def __str__(self) -> str:
        owner = f"run {self.run_id}" if self.run_id is not None else f"setup {self.setup}"
        monthly = self.hourly * HOURS_A_MONTH
        cost = f"≈${self.hourly:.4f}/h (${monthly:.2f}/month)" if monthly >= 0.005 else "free or under a cent a month"
        return f"{self.kind:13} {self.id}  [{owner}] {cost}{'  ' + self.note if self.note else ''}"


def list_resources(cloud: Cloud, run_id: int | None = None) -> list[Resource]:
    """Every resource tagged crowdnb in the region (only those of ``run_id`` when given)."""
    domains = setups(cloud)
    found = [
        *_instances(cloud, run_id), *_volumes(cloud, run_id), *_elb(cloud, run_id),
        *_records(cloud, domains, run_id), *_objects(cloud, run_id),
    ]  # fmt: skip
    if run_id is None:
        found += _setup_resources(cloud, domains)
    return found


def setups(cloud: Cloud) -> list[str]:
    """The domains set up in this region (their load balancers or buckets carry the tag)."""
    domains = {tag for _, tag in _tagged_balancers(cloud)} | {tag for _, tag in _tagged_buckets(cloud)}
    return sorted(domains)


def run_ids(resources: Iterable[Resource]) -> list[int]:
    """The runs that own any of ``resources``."""
    return sorted({r.run_id for r in resources if r.run_id is not None})


def delete(cloud: Cloud, resources: Iterable[Resource]) -> list[Resource]:
    """Delete per-run resources in dependency order; carries on past failures and names them at the end."""
    from botocore.exceptions import ClientError

    done: list[Resource] = []
    failed: list[str] = []
    todo = sorted((r for r in resources if r.run_id is not None), key=lambda r: RUN_KINDS.index(r.kind))
    terminated: list[str] = []
    for resource in todo:
        if resource.kind in ("volume", "objects") and terminated:
            _wait_terminated(cloud, terminated)
            terminated = []
        try:
            _delete(cloud, resource)
            done.append(resource)
            if resource.kind == "instance":
                terminated.append(resource.id)
            log.info("deleted %s", resource)
        except ClientError as exc:
            if exc.response["Error"]["Code"] in GONE:
                done.append(resource)
            else:
                failed.append(f"{resource.kind} {resource.id}: {exc.response['Error'].get('Message') or exc}")
    if failed:
        raise ArchitectError(
            "ec2 teardown left "
            + "; ".join(failed)
            + "; run `crowdnb ec2 cleanup` again, or delete them in the console"
        )
    return done


def _wait_terminated(cloud: Cloud, instances: list[str]) -> None:
    """Wait for the instances' shutdown: its last snapshot lands in S3 before the run's objects are deleted."""
    from botocore.exceptions import WaiterError

    try:
        cloud.client("ec2").get_waiter("instance_terminated").wait(
            InstanceIds=instances, WaiterConfig={"Delay": 5, "MaxAttempts": 60}
        )
    except WaiterError as exc:  # the objects go anyway; a late snapshot expires with the bucket's lifecycle rule
        log.warning("instances %s not terminated after 5 minutes (%s); deleting their objects now", instances, exc)


GONE = {"InvalidInstanceID.NotFound", "TargetGroupNotFound", "RuleNotFound", "NoSuchKey", "NoSuchBucket",
        "InvalidVolume.NotFound", "InvalidChangeBatch"}  # fmt: skip


def _delete(cloud: Cloud, r: Resource) -> None:
    if r.kind == "rule":
        cloud.client("elbv2").delete_rule(RuleArn=r.id)
    elif r.kind == "target-group":
        cloud.client("elbv2").delete_target_group(TargetGroupArn=r.id)
    elif r.kind == "instance":
        cloud.client("ec2").terminate_instances(InstanceIds=[r.id])
    elif r.kind == "volume":
        cloud.client("ec2").delete_volume(VolumeId=r.id)
    elif r.kind == "record":
        _delete_record(cloud, r)
    elif r.kind == "objects":
        s3, prefix = cloud.client("s3"), f"{RUN_PREFIX}{r.run_id}/"
        keys = [{"Key": o["Key"]} for o in pages(s3, "list_objects_v2", "Contents", Bucket=r.where, Prefix=prefix)]
        for start in range(0, len(keys), 1000):
            s3.delete_objects(Bucket=r.where, Delete={"Objects": keys[start : start + 1000], "Quiet": True})


def _delete_record(cloud: Cloud, r: Resource) -> None:
    kind, name = r.id.split(" ", 1)
    route53 = cloud.client("route53")
    for record in pages(route53, "list_resource_record_sets", "ResourceRecordSets", HostedZoneId=r.where):
        if record["Type"] == kind and record["Name"].rstrip(".") == name.rstrip("."):
            route53.change_resource_record_sets(
                HostedZoneId=r.where, ChangeBatch={"Changes": [{"Action": "DELETE", "ResourceRecordSet": record}]}
            )


def _instances(cloud: Cloud, run_id: int | None) -> list[Resource]:
    filters = [{"Name": "instance-state-name", "Values": LIVE_STATES}, _run_filter(run_id)]
    found = []
    for reservation in pages(cloud.client("ec2"), "describe_instances", "Reservations", Filters=filters):
        for instance in reservation["Instances"]:
            tagged = tag_map(instance.get("Tags"))
            kind = instance["InstanceType"]
            price = INSTANCE_HOURLY.get(kind)
            public = PUBLIC_IPV4 if instance.get("PublicIpAddress") else 0.0
            found.append(Resource(
                "instance", instance["InstanceId"], tagged.get(TAG_SETUP, ""), int(tagged[TAG_RUN]),
                (price or 0.0) + public,
                f"{kind} {instance['State']['Name']}" + ("" if price else " (price unknown: see aws.amazon.com/ec2/pricing)"),
            ))  # fmt: skip
    return found


def _volumes(cloud: Cloud, run_id: int | None) -> list[Resource]:
    """Volumes no instance holds (a terminated instance's root volume goes with it)."""
    filters = [{"Name": "status", "Values": ["available"]}, _run_filter(run_id)]
    return [
        Resource("volume", v["VolumeId"], tag_map(v.get("Tags")).get(TAG_SETUP, ""),
                 int(tag_map(v.get("Tags"))[TAG_RUN]), v["Size"] * GP3_GB, f"{v['Size']} GB, unattached")
        for v in pages(cloud.client("ec2"), "describe_volumes", "Volumes", Filters=filters)
    ]  # fmt: skip


def _run_filter(run_id: int | None) -> dict[str, object]:
    if run_id is None:
        return {"Name": "tag-key", "Values": [TAG_RUN]}
    return {"Name": f"tag:{TAG_RUN}", "Values": [str(run_id)]}


def _tagged_balancers(cloud: Cloud) -> list[tuple[str, str]]:
    """(ARN, domain) of the load balancers setup made."""
    arns = [lb["LoadBalancerArn"] for lb in pages(cloud.client("elbv2"), "describe_load_balancers", "LoadBalancers")]
    return [(arn, t[TAG_SETUP]) for arn, t in elb_tags(cloud, arns).items() if TAG_SETUP in t]


def _tagged_buckets(cloud: Cloud) -> list[tuple[str, str]]:
    """(name, domain) of this region's crowdnb buckets."""
    from botocore.exceptions import ClientError

    s3, found = cloud.client("s3"), []
    for bucket in s3.list_buckets().get("Buckets", []):
        if bucket["Name"].startswith("crowdnb-") and f"-{cloud.region}-" in bucket["Name"]:
            try:
                tagged = tag_map(s3.get_bucket_tagging(Bucket=bucket["Name"])["TagSet"])
            except ClientError:  # no tags: not ours
                continue
            if TAG_SETUP in tagged:
                found.append((bucket["Name"], tagged[TAG_SETUP]))
    return found


def _elb(cloud: Cloud, run_id: int | None) -> list[Resource]:
    elbv2, found = cloud.client("elbv2"), []
    rules = [
        (rule, domain)
        for alb, domain in _tagged_balancers(cloud)
        for listener in elbv2.describe_listeners(LoadBalancerArn=alb)["Listeners"]
        for rule in pages(elbv2, "describe_rules", "Rules", ListenerArn=listener["ListenerArn"])
        if not rule.get("IsDefault")
    ]
    rule_tags = elb_tags(cloud, [rule["RuleArn"] for rule, _ in rules])
    for rule, domain in rules:
        owner = rule_tags.get(rule["RuleArn"], {}).get(TAG_RUN)
        if owner is not None and (run_id is None or owner == str(run_id)):
            hosts = [v for c in rule.get("Conditions", []) for v in c.get("HostHeaderConfig", {}).get("Values", [])]
            found.append(Resource("rule", rule["RuleArn"], domain, int(owner), note=", ".join(hosts)))
    groups = pages(elbv2, "describe_target_groups", "TargetGroups")
    for arn, tagged in elb_tags(cloud, [g["TargetGroupArn"] for g in groups]).items():
        owner = tagged.get(TAG_RUN)
        if owner is not None and (run_id is None or owner == str(run_id)):
            found.append(Resource("target-group", arn, tagged.get(TAG_SETUP, ""), int(owner)))
    return found


def _records(cloud: Cloud, domains: list[str], run_id: int | None) -> list[Resource]:
    """A run's records: its TXT marker and every A record at the same name."""
    route53, found = cloud.client("route53"), []
    for domain in domains:
        zone = zone_of(cloud, domain)
        if zone is None:
            continue
        records = pages(route53, "list_resource_record_sets", "ResourceRecordSets", HostedZoneId=zone)
        owners: dict[str, int] = {}
        for record in records:
            for value in record.get("ResourceRecords", []) if record["Type"] == "TXT" else []:
                text = value["Value"].strip('"')
                if text.startswith(f"{TAG_RUN}=") and (run_id is None or text == f"{TAG_RUN}={run_id}"):
                    owners[record["Name"]] = int(text.split("=", 1)[1])
        for record in records:
            if record["Name"] in owners and record["Type"] in ("TXT", "A"):
                name = record["Name"].rstrip(".")
                found.append(Resource("record", f"{record['Type']} {name}", domain, owners[record["Name"]], where=zone))
    return found


def _objects(cloud: Cloud, run_id: int | None) -> list[Resource]:
    s3, found = cloud.client("s3"), []
    prefix = RUN_PREFIX if run_id is None else f"{RUN_PREFIX}{run_id}/"
    for bucket, domain in _tagged_buckets(cloud):
        sizes: dict[int, list[int]] = {}
        for item in pages(s3, "list_objects_v2", "Contents", Bucket=bucket, Prefix=prefix):
            owner = item["Key"][len(RUN_PREFIX) :].split("/", 1)[0]
            if owner.isdigit():
                sizes.setdefault(int(owner), []).append(int(item["Size"]))
        for owner, each in sorted(sizes.items()):
            size = sum(each)
            note = f"{len(each)} object(s), {size / 1e6:.1f} MB"
            found.append(Resource("objects", f"s3://{bucket}/{RUN_PREFIX}{owner}/", domain, owner,
                                  size / 1e9 * S3_GB, note, where=bucket))  # fmt: skip
    return found


def _setup_resources(cloud: Cloud, domains: list[str]) -> list[Resource]:
    found = [
        Resource("load-balancer", arn, domain, hourly=LOAD_BALANCER, note="the setup's; `crowdnb ec2 cleanup --setup`")
        for arn, domain in _tagged_balancers(cloud)
    ]
    found += [Resource("bucket", f"s3://{name}", domain) for name, domain in _tagged_buckets(cloud)]
    for domain in domains:
        zone = zone_of(cloud, domain)
        if zone is not None:
            found.append(Resource("hosted-zone", zone, domain, hourly=HOSTED_ZONE, note=domain))
    return found
