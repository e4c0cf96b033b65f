"""What the EC2 architect makes once per domain: the hosted zone, a wildcard certificate, the load balancer,
two security groups, a bucket and an instance role.

``setup`` finds each piece or makes it, so running it twice makes nothing new; ``find_setup`` only finds.
Runs then hang off the load balancer's HTTPS listener, one host-header rule per subdomain
(``ec2_run.provision``). The instances take traffic on port 8000 from the load balancer alone; no port is
open for SSH, since an instance is configured through its user data.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import asdict, dataclass, fields
from typing import Any

from ..errors import ArchitectError, ConfigError
from .aws import RUN_PREFIX, Cloud, aws_errors, slug, tags

log = logging.getLogger(__name__)

PORT = 8000  # where `crowdnb serve` listens on an instance
SSL_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
NOT_FOUND = {"StatusCode": "404", "ContentType": "text/plain", "MessageBody": "No crowdnb run at this address."}
SNAPSHOT_DAYS = 30  # objects a crash left under runs/ expire after this many days


@dataclass(frozen=True)
class Ec2Setup:
    """What ``setup`` made or found, by id; JSON-serialisable (``as_dict`` / ``from_dict``)."""

    domain: str
    region: str
    zone_id: str
    name_servers: tuple[str, ...]
    certificate_arn: str
    vpc_id: str
    subnet_ids: tuple[str, ...]
    alb_security_group: str
    instance_security_group: str
    bucket: str
    role: str
    instance_profile: str
    alb_arn: str
    alb_dns_name: str
    alb_zone_id: str
    listener_arn: str

    def as_dict(self) -> dict[str, object]:
        """Plain JSON values (tuples become lists)."""
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Ec2Setup:
        """The setup ``as_dict`` gave."""
        values: dict[str, Any] = {f.name: data[f.name] for f in fields(cls)}
        values.update({k: tuple(v) for k, v in values.items() if isinstance(v, list)})
        return cls(**values)


class _Missing(Exception):
    """A piece of the setup that ``find_setup`` did not find."""


def check_domain(domain: str) -> str:
    """``domain`` lower-cased, checked to be a DNS name with at least two labels."""
    name = domain.strip().lower().rstrip(".")
    labels = name.split(".")
    if len(labels) < 2 or not all(label and len(label) < 64 and label.replace("-", "").isalnum() for label in labels):
        raise ConfigError(f"domain {domain!r} is not a DNS name such as 'study.example.org'; pass a domain you own")
    return name


@aws_errors
def setup(cloud: Cloud, domain: str, *, vpc_id: str | None = None, certificate_wait: float = 900.0) -> Ec2Setup:
    """Find or make everything runs of ``domain`` need; waits up to ``certificate_wait`` s for the certificate."""
    return _build(cloud, check_domain(domain), vpc_id, create=True, certificate_wait=certificate_wait)


@aws_errors
def find_setup(cloud: Cloud, domain: str) -> Ec2Setup:
    """The setup of ``domain`` in this region, made earlier by ``setup``; nothing is made."""
    name = check_domain(domain)
    try:
        return _build(cloud, name, None, create=False, certificate_wait=0)
    except _Missing as exc:
        raise ConfigError(
            f"no crowdnb ec2 setup for domain {name!r} in region {cloud.region} (missing: {exc}); "
            f"run `crowdnb ec2 setup {name}` first"
        ) from None


def _build(cloud: Cloud, domain: str, vpc_id: str | None, *, create: bool, certificate_wait: float) -> Ec2Setup:
    zone_id, name_servers = _zone(cloud, domain, create)
    certificate = _certificate(cloud, domain, zone_id, create)
    vpc, subnets = _network(cloud, vpc_id)
    alb_group = _security_group(cloud, domain, vpc, "alb", create)
    instance_group = _security_group(cloud, domain, vpc, "instance", create)
    if create:
        _open(cloud, alb_group, [{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
                                  "IpRanges": [{"CidrIp": "0.0.0.0/0"}], "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}])  # fmt: skip
        _open(cloud, instance_group, [{"IpProtocol": "tcp", "FromPort": PORT, "ToPort": PORT,
                                       "UserIdGroupPairs": [{"GroupId": alb_group}]}])  # fmt: skip
    bucket = _bucket(cloud, domain, create)
    role = _role(cloud, domain, bucket, create)
    alb = _load_balancer(cloud, domain, subnets, alb_group, create)
    if create:
        _wait_issued(cloud, certificate, name_servers, domain, certificate_wait)
    listener = _listener(cloud, alb["LoadBalancerArn"], certificate, create)
    made = Ec2Setup(
        domain=domain, region=cloud.region, zone_id=zone_id, name_servers=tuple(name_servers),
        certificate_arn=certificate, vpc_id=vpc, subnet_ids=tuple(subnets), alb_security_group=alb_group,
        instance_security_group=instance_group, bucket=bucket, role=role, instance_profile=role,
        alb_arn=alb["LoadBalancerArn"], alb_dns_name=alb["DNSName"], alb_zone_id=alb["CanonicalHostedZoneId"],
        listener_arn=listener,
    )  # fmt: skip
    if create:
        log.info("ec2 setup for %s ready: %s", domain, json.dumps(made.as_dict()))
    return made


def _zone(cloud: Cloud, domain: str, create: bool) -> tuple[str, list[str]]:
    route53 = cloud.client("route53")
    zone_id = zone_of(cloud, domain)
    if zone_id is None:
        if not create:
            raise _Missing(f"the hosted zone {domain}")
        zone = route53.create_hosted_zone(Name=domain, CallerReference=f"crowdnb-{uuid.uuid4().hex}")
        zone_id = zone["HostedZone"]["Id"].rsplit("/", 1)[-1]
        route53.change_tags_for_resource(ResourceType="hostedzone", ResourceId=zone_id, AddTags=tags(domain))
        log.info("created the hosted zone %s (%s)", domain, zone_id)
    servers = route53.get_hosted_zone(Id=zone_id).get("DelegationSet", {}).get("NameServers", [])
    return zone_id, list(servers)


def zone_of(cloud: Cloud, domain: str) -> str | None:
    """The id of the public hosted zone named ``domain``, if there is one."""
    reply = cloud.client("route53").list_hosted_zones_by_name(DNSName=domain)
    for zone in reply["HostedZones"]:
        if zone["Name"].rstrip(".") == domain and not zone.get("Config", {}).get("PrivateZone"):
            return str(zone["Id"]).rsplit("/", 1)[-1]
    return None


def _certificate(cloud: Cloud, domain: str, zone_id: str, create: bool) -> str:
    acm = cloud.client("acm")
    wanted = f"*.{domain}"
    listed = acm.list_certificates(CertificateStatuses=["ISSUED", "PENDING_VALIDATION"])["CertificateSummaryList"]
    matching = sorted((c for c in listed if c["DomainName"] == wanted), key=lambda c: c.get("Status") != "ISSUED")
    if matching:
        return str(matching[0]["CertificateArn"])
    if not create:
        raise _Missing(f"a certificate for {wanted}")
    arn = str(acm.request_certificate(DomainName=wanted, ValidationMethod="DNS", Tags=tags(domain))["CertificateArn"])
    record = _validation_record(cloud, arn)
    cloud.client("route53").change_resource_record_sets(
        HostedZoneId=zone_id,
        ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": {
            "Name": record["Name"], "Type": record["Type"], "TTL": 300,
            "ResourceRecords": [{"Value": record["Value"]}]}}]},
    )  # fmt: skip
    log.info("requested a certificate for %s, validated by DNS (%s)", wanted, record["Name"])
    return arn


def _validation_record(cloud: Cloud, arn: str) -> dict[str, str]:
    """The CNAME ACM wants; it shows a few seconds after the request."""
    for _ in range(30):
        options = cloud.client("acm").describe_certificate(CertificateArn=arn)["Certificate"]
        for option in options.get("DomainValidationOptions", []):
            if "ResourceRecord" in option:
                return dict(option["ResourceRecord"])
        time.sleep(2)
    raise ArchitectError(f"ACM gave no DNS validation record for {arn}; run `crowdnb ec2 setup` again")


def _wait_issued(cloud: Cloud, arn: str, name_servers: list[str], domain: str, wait: float) -> None:
    from botocore.exceptions import WaiterError

    delay = 10
    try:
        cloud.client("acm").get_waiter("certificate_validated").wait(
            CertificateArn=arn, WaiterConfig={"Delay": delay, "MaxAttempts": max(1, int(wait // delay))}
        )
    except WaiterError as exc:
        raise ArchitectError(
            f"the certificate for *.{domain} is not issued yet: ACM validates it through DNS, so the domain's "
            f"name servers at its registrar must be {', '.join(name_servers)}; then run "
            f"`crowdnb ec2 setup {domain}` again (it makes nothing twice)"
        ) from exc


def _network(cloud: Cloud, vpc_id: str | None) -> tuple[str, list[str]]:
    ec2 = cloud.client("ec2")
    if vpc_id is None:
        vpcs = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
        if not vpcs:
            raise ConfigError(
                f"region {cloud.region} has no default VPC; create one with `aws ec2 create-default-vpc` or pass vpc_id"
            )
        vpc_id = str(vpcs[0]["VpcId"])
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]
    by_zone: dict[str, str] = {}
    for subnet in sorted(subnets, key=lambda s: (not s.get("MapPublicIpOnLaunch"), s["SubnetId"])):
        by_zone.setdefault(subnet["AvailabilityZone"], subnet["SubnetId"])
    if len(by_zone) < 2:
        raise ConfigError(
            f"VPC {vpc_id} has subnets in {len(by_zone)} availability zone(s); a load balancer needs two: "
            "add a subnet or pass another vpc_id"
        )
    return vpc_id, [by_zone[zone] for zone in sorted(by_zone)]


def _security_group(cloud: Cloud, domain: str, vpc_id: str, role: str, create: bool) -> str:
    ec2 = cloud.client("ec2")
    name = f"crowdnb-{role}-{slug(domain)}"
    found = ec2.describe_security_groups(
        Filters=[{"Name": "group-name", "Values": [name]}, {"Name": "vpc-id", "Values": [vpc_id]}]
    )["SecurityGroups"]
    if found:
        return str(found[0]["GroupId"])
    if not create:
        raise _Missing(f"the security group {name}")
    what = "HTTPS from anywhere" if role == "alb" else f"port {PORT} from the crowdnb load balancer only"
    return str(
        ec2.create_security_group(
            GroupName=name, Description=f"crowdnb {domain}: {what}", VpcId=vpc_id,
            TagSpecifications=[{"ResourceType": "security-group", "Tags": tags(domain, name=name)}],
        )["GroupId"]
    )  # fmt: skip


def _open(cloud: Cloud, group: str, permissions: list[dict[str, Any]]) -> None:
    from botocore.exceptions import ClientError

    try:
        cloud.client("ec2").authorize_security_group_ingress(GroupId=group, IpPermissions=permissions)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "InvalidPermission.Duplicate":
            raise


def bucket_name(cloud: Cloud, domain: str) -> str:
    """The bucket of bundles and snapshots: bucket names are global, so the account and region are in it."""
    return f"crowdnb-{cloud.account}-{cloud.region}-{slug(domain)}"


def _bucket(cloud: Cloud, domain: str, create: bool) -> str:
    from botocore.exceptions import ClientError

    s3, name = cloud.client("s3"), bucket_name(cloud, domain)
    try:
        s3.head_bucket(Bucket=name)
        return name
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("404", "NoSuchBucket", "NotFound"):
            raise
    if not create:
        raise _Missing(f"the bucket {name}")
    where = {} if cloud.region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": cloud.region}}
    s3.create_bucket(Bucket=name, **where)
    s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True})  # fmt: skip
    s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": tags(domain)})
    s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": [{
        "ID": "crowdnb-leftovers", "Status": "Enabled", "Filter": {"Prefix": RUN_PREFIX},
        "Expiration": {"Days": SNAPSHOT_DAYS}, "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}]})  # fmt: skip
    log.info("created the bucket %s", name)
    return name


def _role(cloud: Cloud, domain: str, bucket: str, create: bool) -> str:
    """The instances' role: write snapshots under the bucket's runs/ prefix, and nothing else."""
    iam, name = cloud.client("iam"), f"crowdnb-{cloud.region}-{slug(domain)}"
    try:
        iam.get_role(RoleName=name)
    except iam.exceptions.NoSuchEntityException:
        if not create:
            raise _Missing(f"the IAM role {name}") from None
        trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                 "Principal": {"Service": "ec2.amazonaws.com"}}]}  # fmt: skip
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust), Tags=tags(domain),
                        Description=f"crowdnb instances of {domain}: snapshots to s3://{bucket}/{RUN_PREFIX}")  # fmt: skip
    if create:  # put again on every setup: it is idempotent and mends a policy edited by hand
        policy = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/{RUN_PREFIX}*"},
            {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}",
             "Condition": {"StringLike": {"s3:prefix": f"{RUN_PREFIX}*"}}}]}  # fmt: skip
        iam.put_role_policy(RoleName=name, PolicyName="crowdnb-snapshots", PolicyDocument=json.dumps(policy))
    try:
        profile = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
    except iam.exceptions.NoSuchEntityException:
        if not create:
            raise _Missing(f"the instance profile {name}") from None
        profile = iam.create_instance_profile(InstanceProfileName=name, Tags=tags(domain))["InstanceProfile"]
    if create and not profile.get("Roles"):
        iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
    return name


def _load_balancer(cloud: Cloud, domain: str, subnets: list[str], group: str, create: bool) -> dict[str, Any]:
    elbv2, name = cloud.client("elbv2"), f"crowdnb-{slug(domain)}"
    try:
        return dict(elbv2.describe_load_balancers(Names=[name])["LoadBalancers"][0])
    except elbv2.exceptions.LoadBalancerNotFoundException:
        if not create:
            raise _Missing(f"the load balancer {name}") from None
    made = elbv2.create_load_balancer(
        Name=name, Subnets=subnets, SecurityGroups=[group], Scheme="internet-facing", Type="application",
        IpAddressType="ipv4", Tags=tags(domain, name=name),
    )["LoadBalancers"][0]  # fmt: skip
    log.info("created the load balancer %s (%s)", name, made["DNSName"])
    return dict(made)


def _listener(cloud: Cloud, alb_arn: str, certificate: str, create: bool) -> str:
    elbv2 = cloud.client("elbv2")
    for listener in elbv2.describe_listeners(LoadBalancerArn=alb_arn)["Listeners"]:
        if listener["Port"] == 443:
            return str(listener["ListenerArn"])
    if not create:
        raise _Missing("the HTTPS listener")
    return str(
        elbv2.create_listener(
            LoadBalancerArn=alb_arn, Protocol="HTTPS", Port=443, SslPolicy=SSL_POLICY,
            Certificates=[{"CertificateArn": certificate}],
            DefaultActions=[{"Type": "fixed-response", "FixedResponseConfig": NOT_FOUND}],
        )["Listeners"][0]["ListenerArn"]
    )  # fmt: skip
