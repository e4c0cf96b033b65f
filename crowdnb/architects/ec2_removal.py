"""Undoing ``ec2_setup.setup``: the load balancer (which costs money even with no run on), the security groups,
the bucket, the instance role, the certificate and, when asked, the hosted zone.

The hosted zone is kept by default: deleting it and making it again changes its name servers, which then
have to be set at the domain's registrar again. A zone crowdnb did not make is never deleted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from ..errors import ArchitectError
from .aws import TAG_SETUP, Cloud, aws_errors, pages, slug, tag_map
from .ec2_inventory import list_resources, run_ids
from .ec2_setup import bucket_name, check_domain, zone_of

log = logging.getLogger(__name__)


@aws_errors
def remove_setup(cloud: Cloud, domain: str, *, keep_zone: bool = True, patience: float = 300.0) -> list[str]:
    """Delete what ``setup`` made for ``domain`` once no run of it is left; returns what was deleted."""
    domain = check_domain(domain)
    runs = run_ids(r for r in list_resources(cloud) if r.setup == domain)
    if runs:
        raise ArchitectError(
            f"run(s) {', '.join(map(str, runs))} of {domain} still have resources; "
            "`crowdnb ec2 teardown RUN` (or `crowdnb ec2 cleanup`) first"
        )
    removed = _load_balancer(cloud, domain)
    for role in ("instance", "alb"):  # the instances' group names the balancer's: it goes first
        removed += _security_group(cloud, domain, role, patience)
    removed += _bucket(cloud, domain) + _role(cloud, domain) + _certificates(cloud, domain, patience)
    if not keep_zone:
        removed += _zone(cloud, domain)
    for what in removed:
        log.info("deleted %s", what)
    return removed


def _retried(call: Callable[[], Any], codes: set[str], patience: float) -> None:
    """``call``, again every few seconds while AWS says the thing is still in use (ENIs linger after an ALB)."""
    from botocore.exceptions import ClientError

    deadline = time.monotonic() + patience
    while True:
        try:
            call()
            return
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in codes or time.monotonic() > deadline:
                raise
            time.sleep(5)


def _load_balancer(cloud: Cloud, domain: str) -> list[str]:
    elbv2, name = cloud.client("elbv2"), f"crowdnb-{slug(domain)}"
    try:
        (balancer,) = elbv2.describe_load_balancers(Names=[name])["LoadBalancers"]
    except elbv2.exceptions.LoadBalancerNotFoundException:
        return []
    arn = balancer["LoadBalancerArn"]
    for listener in elbv2.describe_listeners(LoadBalancerArn=arn)["Listeners"]:
        elbv2.delete_listener(ListenerArn=listener["ListenerArn"])
    elbv2.delete_load_balancer(LoadBalancerArn=arn)
    elbv2.get_waiter("load_balancers_deleted").wait(
        LoadBalancerArns=[arn], WaiterConfig={"Delay": 5, "MaxAttempts": 60}
    )
    return [f"load balancer {name}"]


def _security_group(cloud: Cloud, domain: str, role: str, patience: float) -> list[str]:
    ec2, name = cloud.client("ec2"), f"crowdnb-{role}-{slug(domain)}"
    found = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [name]}])["SecurityGroups"]
    for group in found:
        _retried(partial(ec2.delete_security_group, GroupId=group["GroupId"]), {"DependencyViolation"}, patience)
    return [f"security group {name}" for _ in found]


def _bucket(cloud: Cloud, domain: str) -> list[str]:
    from botocore.exceptions import ClientError

    s3, name = cloud.client("s3"), bucket_name(cloud, domain)
    try:
        s3.head_bucket(Bucket=name)
    except ClientError:
        return []
    keys = [{"Key": item["Key"]} for item in pages(s3, "list_objects_v2", "Contents", Bucket=name)]
    for start in range(0, len(keys), 1000):
        s3.delete_objects(Bucket=name, Delete={"Objects": keys[start : start + 1000], "Quiet": True})
    s3.delete_bucket(Bucket=name)
    return [f"bucket {name}"]


def _role(cloud: Cloud, domain: str) -> list[str]:
    iam, name, removed = cloud.client("iam"), f"crowdnb-{cloud.region}-{slug(domain)}", []
    try:
        profile = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
        for role in profile.get("Roles", []):
            iam.remove_role_from_instance_profile(InstanceProfileName=name, RoleName=role["RoleName"])
        iam.delete_instance_profile(InstanceProfileName=name)
        removed.append(f"instance profile {name}")
    except iam.exceptions.NoSuchEntityException:
        pass
    try:
        for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:
            iam.delete_role_policy(RoleName=name, PolicyName=policy)
        iam.delete_role(RoleName=name)
        removed.append(f"IAM role {name}")
    except iam.exceptions.NoSuchEntityException:
        pass
    return removed


def _certificates(cloud: Cloud, domain: str, patience: float) -> list[str]:
    """The wildcard certificates setup requested (tagged), and their validation records."""
    acm, removed = cloud.client("acm"), []
    zone = zone_of(cloud, domain)
    for summary in pages(acm, "list_certificates", "CertificateSummaryList"):
        arn = summary["CertificateArn"]
        if summary["DomainName"] != f"*.{domain}":
            continue
        if tag_map(acm.list_tags_for_certificate(CertificateArn=arn).get("Tags")).get(TAG_SETUP) != domain:
            continue
        options = acm.describe_certificate(CertificateArn=arn)["Certificate"].get("DomainValidationOptions", [])
        # ACM keeps a certificate "in use" for a while after its listener is gone
        _retried(partial(acm.delete_certificate, CertificateArn=arn), {"ResourceInUseException"}, patience)
        removed.append(f"certificate {arn}")
        if zone is not None:
            removed += _delete_records(
                cloud, zone, {o["ResourceRecord"]["Name"] for o in options if "ResourceRecord" in o}
            )
    return removed


def _delete_records(cloud: Cloud, zone: str, names: set[str]) -> list[str]:
    route53 = cloud.client("route53")
    doomed = [
        record
        for record in pages(route53, "list_resource_record_sets", "ResourceRecordSets", HostedZoneId=zone)
        if record["Name"] in names and record["Type"] not in ("NS", "SOA")
    ]
    if doomed:
        changes = [{"Action": "DELETE", "ResourceRecordSet": record} for record in doomed]
        route53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": changes})
    return [f"record {r['Type']} {r['Name']}" for r in doomed]


def _zone(cloud: Cloud, domain: str) -> list[str]:
    route53, zone = cloud.client("route53"), zone_of(cloud, domain)
    if zone is None:
        return []
    tagged = route53.list_tags_for_resource(ResourceType="hostedzone", ResourceId=zone)["ResourceTagSet"]
    if tag_map(tagged.get("Tags")).get(TAG_SETUP) != domain:
        log.info("kept the hosted zone %s: crowdnb did not make it", domain)
        return []
    records = pages(route53, "list_resource_record_sets", "ResourceRecordSets", HostedZoneId=zone)
    removed = _delete_records(cloud, zone, {r["Name"] for r in records})
    route53.delete_hosted_zone(Id=zone)
    return [*removed, f"hosted zone {domain}"]
