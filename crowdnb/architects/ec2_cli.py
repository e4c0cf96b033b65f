"""``crowdnb ec2 setup|list|teardown|cleanup``: a thin skin over ``ec2_setup``, ``ec2_run`` and ``ec2_inventory``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from ..store import setups
from ..store.db import Store, holds_project, project_root
from .aws import Cloud

HOME = "Project folder whose database keeps the setup (default $CROWDNB_HOME or ./crowdnb_data)."


def _cloud(options: dict[str, Any]) -> Cloud:
    return Cloud(profile_name=options["profile"], region=options["region"], endpoint_url=options["endpoint_url"])


def _aws_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--profile, --region and the hidden --endpoint-url (moto in tests) on every command."""
    for option in reversed([
        click.option("--profile", help="AWS profile (default: boto3's chain: AWS_PROFILE, ~/.aws, a role)."),
        click.option("--region", help="AWS region (default: the profile's, else us-east-1)."),
        click.option("--endpoint-url", envvar="CROWDNB_AWS_ENDPOINT_URL", hidden=True),
    ]):  # fmt: skip
        command = option(command)
    return command


@click.group()
def ec2() -> None:
    """Run routers on EC2: set a domain up once, list and tear down what runs left."""


@ec2.command("setup")
@click.argument("domain")
@click.option("--vpc", "vpc_id", help="VPC for the load balancer and instances (default: the region's default VPC).")
@click.option(
    "--wait", "certificate_wait", default=900.0, show_default=True, help="Seconds to wait for the certificate."
)
@click.option("--home", type=click.Path(file_okay=False), help=HOME)
@_aws_options
def setup_command(domain: str, vpc_id: str | None, certificate_wait: float, home: str | None, **options: Any) -> None:
    """Once per DOMAIN: hosted zone, certificate, load balancer, security groups, bucket, instance role."""
    from .ec2 import KIND, setup_name
    from .ec2_setup import setup

    made = setup(_cloud(options), domain, vpc_id=vpc_id, certificate_wait=certificate_wait)
    root = project_root(home)
    fresh = not holds_project(root)
    store = Store(root)
    try:
        setups.keep(store, KIND, setup_name(made.region, made.domain), made.as_dict())
    finally:
        store.close()
    click.echo(f"ec2 setup for {made.domain} in {made.region} is ready (running it again makes nothing new)")
    click.echo(f"  kept in the project at {root}" + (" (a new project)" if fresh else ""))
    click.echo(f"  launch with task.launch(architect='ec2', architect_options={{'domain': {made.domain!r}}})")
    click.echo(f"  name servers (set them at the domain's registrar): {', '.join(made.name_servers)}")
    click.echo(f"  load balancer {made.alb_dns_name}, bucket {made.bucket}")
    click.echo("  the load balancer costs about $0.03/h while it exists; `crowdnb ec2 list` shows every cost")


@ec2.command("list")
@click.option("--run", "run_id", type=int, help="Only the resources of this run.")
@_aws_options
def list_command(run_id: int | None, **options: Any) -> None:
    """Every resource crowdnb made in the region, by run, with what it costs."""
    from .ec2_inventory import HOURS_A_MONTH, list_resources

    found = list_resources(_cloud(options), run_id)
    for resource in found:
        click.echo(str(resource))
    hourly = sum(r.hourly for r in found)
    click.echo(f"{len(found)} resource(s); about ${hourly:.3f}/h (${hourly * HOURS_A_MONTH:.2f}/month)")


@ec2.command("teardown")
@click.argument("run_id", type=int)
@_aws_options
def teardown_command(run_id: int, **options: Any) -> None:
    """Delete everything of RUN_ID: instance, rule, target group, DNS records, its S3 objects."""
    from .ec2_run import teardown

    gone = teardown(_cloud(options), run_id)
    for resource in gone:
        click.echo(f"deleted {resource}")
    click.echo(f"run {run_id}: {len(gone)} resource(s) deleted" if gone else f"run {run_id} left nothing on AWS")


@ec2.command("cleanup")
@click.option("--keep", type=int, multiple=True, help="A run that is still on: leave it alone (repeatable).")
@click.option("--dry-run", is_flag=True, help="Only say what would be deleted.")
@click.option(
    "--setup", "domain", help="Then remove DOMAIN's setup too (the load balancer costs money while it exists)."
)
@click.option("--zone", is_flag=True, help="With --setup: delete the hosted zone too, if crowdnb made it.")
@click.option("--home", type=click.Path(file_okay=False), help="With --setup: the project that keeps it.")
@_aws_options
def cleanup_command(
    keep: tuple[int, ...], dry_run: bool, domain: str | None, zone: bool, home: str | None, **options: Any
) -> None:
    """Tear down every run that left resources in the region (a crash, a closed laptop), except --keep."""
    from .ec2_inventory import list_resources
    from .ec2_removal import remove_setup
    from .ec2_run import cleanup

    cloud = _cloud(options)
    if dry_run:
        doomed = [r for r in list_resources(cloud) if r.run_id is not None and r.run_id not in keep]
        for resource in doomed:
            click.echo(f"would delete {resource}")
        click.echo(f"{len(doomed)} resource(s) would be deleted" + (f", then the setup of {domain}" if domain else ""))
        return
    gone = cleanup(cloud, keep=keep)
    for resource in gone:
        click.echo(f"deleted {resource}")
    click.echo(f"{len(gone)} resource(s) deleted")
    if domain:
        for what in remove_setup(cloud, domain, keep_zone=not zone):
            click.echo(f"deleted {what}")
        click.echo(
            f"the setup of {domain} is removed" + ("" if zone else " (its hosted zone is kept; --zone deletes it)")
        )
        _forget(home, cloud.region, domain)


def _forget(home: str | None, region: str, domain: str) -> None:
    """The project no longer keeps a setup that is gone."""
    from .ec2 import KIND, setup_name

    root = project_root(home)
    if not holds_project(root):
        return
    store = Store(root)
    try:
        if setups.forget(store, KIND, setup_name(region, domain)):
            click.echo(f"  and the project at {root} no longer keeps it")
    finally:
        store.close()
