"""moto in server mode for the EC2 architect's tests: a real HTTP endpoint speaking AWS's wire protocols.

moto reads its settings at import time, so they are set here before ``moto`` is imported. The server
binds to ``MOTO_HOST`` (127.0.0.1 unless a test module needs another address), and its state is wiped
between tests.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest
import requests

os.environ["MOTO_ACM_VALIDATION_WAIT"] = "0"  # certificates are ISSUED at once (default: after 60 s)
os.environ["MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION"] = "true"  # run_instances refuses an unknown type

REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
DOMAIN = "study.example.org"


class Moto:
    """A running moto server and how to reach it."""

    def __init__(self, host: str) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # verbose=False leaves the request log on
        self.server = ThreadedMotoServer(ip_address=host, port=0, verbose=False)
        self.server.start()
        address, port = self.server.get_host_and_port()
        self.url = f"http://{address}:{port}"

    def reset(self) -> None:
        requests.post(self.url + "/moto-api/reset", timeout=10).raise_for_status()

    def cloud(self, region: str = REGION) -> Any:
        import boto3

        from crowdnb.architects.aws import Cloud

        return Cloud(region=region, endpoint_url=self.url, session=boto3.Session(region_name=region, **CREDENTIALS))

    def env(self) -> dict[str, str]:
        """What a child process (the instance's snapshot timer) needs to reach this server."""
        return {"AWS_ENDPOINT_URL": self.url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": REGION}  # fmt: skip

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture(scope="module")
def moto_server() -> Iterator[Moto]:
    """One moto server per test module, on 127.0.0.1."""
    server = Moto("127.0.0.1")
    yield server
    server.stop()


@pytest.fixture
def cloud(moto_server: Moto) -> Any:
    """A ``Cloud`` on a freshly reset moto."""
    moto_server.reset()
    return moto_server.cloud()


def billable(cloud: Any) -> list[str]:
    """What a run could leave that costs money or holds its name, read straight through boto3: instances not
    terminated, unattached volumes, target groups, listener rules, A/TXT records and objects under runs/."""
    ec2, elbv2, route53, s3 = (cloud.client(name) for name in ("ec2", "elbv2", "route53", "s3"))
    left = [
        f"instance {i['InstanceId']} {i['State']['Name']}"
        for r in ec2.describe_instances()["Reservations"]
        for i in r["Instances"]
        if i["State"]["Name"] != "terminated"
    ]
    left += [f"volume {v['VolumeId']}" for v in ec2.describe_volumes()["Volumes"] if v["State"] == "available"]
    left += [f"target group {g['TargetGroupName']}" for g in elbv2.describe_target_groups()["TargetGroups"]]
    for balancer in elbv2.describe_load_balancers()["LoadBalancers"]:
        for listener in elbv2.describe_listeners(LoadBalancerArn=balancer["LoadBalancerArn"])["Listeners"]:
            rules = elbv2.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"]
            left += [f"rule {r['Priority']}" for r in rules if not r["IsDefault"]]
    for zone in route53.list_hosted_zones()["HostedZones"]:
        records = route53.list_resource_record_sets(HostedZoneId=zone["Id"])["ResourceRecordSets"]
        left += [f"record {r['Type']} {r['Name']}" for r in records if r["Type"] in ("A", "AAAA", "TXT")]
    for bucket in s3.list_buckets()["Buckets"]:
        objects = s3.list_objects_v2(Bucket=bucket["Name"], Prefix="runs/").get("Contents", [])
        left += [f"object {o['Key']}" for o in objects]
    return left
