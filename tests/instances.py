"""EC2 on this machine, for the EC2 architect's end-to-end tests: moto holds the account, and what moto cannot do
is played here, each part through the same interfaces as the real thing.

- ``Namespace``: a network namespace joined by a veth pair, all inside 127.0.0.0/8, so the "instance" has an
  address of its own (127.0.0.2 on this host's loopback when namespaces are not allowed).
- ``Hypervisor``: boots every instance moto reports running by running the user data moto holds for it (in the
  namespace, in a throwaway folder, with this interpreter's crowdnb instead of a venv); terminating an instance
  shuts its router down first (SIGTERM: its last snapshot goes to S3), as the instance's shutdown would.
- ``LoadBalancer``: the setup's HTTPS listener, played by a TLS proxy with a certificate of a test authority: it
  reads the host a client asks for (SNI), finds the listener rule moto holds for it, and pipes the connection to
  that rule's registered instance; no rule: the listener's 404.
- ``resolving``: DNS for the setup's domain, from the records moto's Route53 holds (an alias A record leads to
  the load balancer), for this process's ``socket.getaddrinfo``; Chromium gets ``--host-resolver-rules``.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import os
import select
import signal
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .clouds import DOMAIN, Moto
from .serving import free_port


@dataclass
class Namespace:
    """Where emulated instances live: the test reaches them at ``address``, and they reach the test's servers
    at ``host`` (moto binds there)."""

    host: str
    address: str
    prefix: list[str]  # the command prefix that runs a process there

    @property
    def isolated(self) -> bool:
        return bool(self.prefix)


def _sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=30)


def _forget_dead_namespaces() -> None:
    """Delete the namespaces (and their host-side veth) of test processes that died without cleaning up."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=30).stdout.split()
    live = {int(pid) % 100_000 for pid in os.listdir("/proc") if pid.isdigit()}  # tags are pid % 100_000 (+1)
    for name in listed:
        tag = name.removeprefix("cnb-ec2-")
        if name.startswith("cnb-ec2-") and tag.isdigit() and not {int(tag), int(tag) - 1} & live:
            subprocess.run(["ip", "link", "del", f"cnbh{tag}"], capture_output=True, timeout=30)
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


@contextlib.contextmanager
def namespace(tag: int) -> Iterator[Namespace]:
    """A network namespace joined by a veth pair, all inside 127.0.0.0/8; 127.0.0.2 when namespaces fail."""
    name, outer, inner, net = f"cnb-ec2-{tag}", f"cnbh{tag}", f"cnbn{tag}", f"127.77.{tag % 200 + 20}"
    try:
        _forget_dead_namespaces()
        _sh("ip", "netns", "add", name)
    except (OSError, subprocess.SubprocessError):
        yield Namespace("127.0.0.1", "127.0.0.2", [])
        return
    try:
        _sh("ip", "link", "add", outer, "type", "veth", "peer", "name", inner)
        _sh("ip", "link", "set", inner, "netns", name)
        _sh("ip", "addr", "add", f"{net}.1/24", "dev", outer)
        _sh("ip", "link", "set", outer, "up")
        _sh("sysctl", "-qw", f"net.ipv4.conf.{outer}.route_localnet=1")
        # without this route 127.77.x.2 would be delivered to this host's own lo
        _sh("ip", "route", "add", f"{net}.0/24", "dev", outer, "src", f"{net}.1", "table", "local")
        inside = ["ip", "netns", "exec", name]
        _sh(*inside, "ip", "link", "set", "lo", "up")
        _sh(*inside, "ip", "addr", "add", f"{net}.2/24", "dev", inner)
        _sh(*inside, "ip", "link", "set", inner, "up")
        _sh(*inside, "sysctl", "-qw", f"net.ipv4.conf.{inner}.route_localnet=1", "net.ipv4.conf.all.route_localnet=1")
        yield Namespace(f"{net}.1", f"{net}.2", inside)
    finally:
        subprocess.run(["ip", "link", "del", outer], capture_output=True, timeout=30)
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


def script_env(root: Path, **extra: str) -> dict[str, str]:
    """The user data's overrides: a throwaway root and this test's Python (no venv, no pip)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CROWDNB_"))}
    return env | {"CROWDNB_ROOT": str(root), "CROWDNB_PYTHON": sys.executable, **extra}


class Hypervisor:
    """Boots the instances moto reports running (their user data, run here) and shuts them down on termination."""

    def __init__(self, moto: Moto, where: Namespace, folder: Path) -> None:
        self.moto, self.where, self.folder = moto, where, folder
        self.ec2 = moto.cloud().client("ec2")
        self.booted: dict[str, tuple[subprocess.Popen[bytes], int]] = {}  # instance id → (process, port)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ports = iter(range(8000, 8100))
        self._thread = threading.Thread(target=self._watch, name="test-hypervisor", daemon=True)

    def start(self) -> Hypervisor:
        self._thread.start()
        return self

    def address(self, instance: str) -> tuple[str, int] | None:
        """Where a booted instance's router listens."""
        with self._lock:
            found = self.booted.get(instance)
        return (self.where.address, found[1]) if found else None

    def log(self, instance: str) -> str:
        path = self.folder / instance / "boot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _watch(self) -> None:
        while not self._stop.wait(0.2):
            try:
                reply = self.ec2.describe_instances(Filters=[{"Name": "instance-state-name", "Values": ["running"]}])
            except Exception:  # moto reset or stopping between two looks
                continue
            for instance in (i for r in reply["Reservations"] for i in r["Instances"]):
                with self._lock:
                    known = instance["InstanceId"] in self.booted
                if not known:
                    self._boot(instance["InstanceId"])

    def _boot(self, instance: str) -> None:
        data = self.ec2.describe_instance_attribute(InstanceId=instance, Attribute="userData")["UserData"]
        if "Value" not in data:
            return
        folder = self.folder / instance
        folder.mkdir(parents=True)
        script = folder / "user-data.sh"
        script.write_bytes(base64.b64decode(data["Value"]))
        port = next(self._ports) if self.where.isolated else free_port()
        env = script_env(folder / "root", CROWDNB_FOREGROUND="1",
                         CROWDNB_HOST="0.0.0.0" if self.where.isolated else self.where.address,
                         CROWDNB_PORT=str(port), **self.moto.env())  # fmt: skip
        with (folder / "boot.log").open("wb") as out:
            process = subprocess.Popen([*self.where.prefix, "bash", str(script)], env=env, stdout=out,
                                       stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        with self._lock:
            self.booted[instance] = (process, port)

    def shut_down(self, instance: str) -> None:
        """The instance's shutdown: its router stops (and snapshots) before EC2 calls it terminated."""
        with self._lock:
            found = self.booted.get(instance)
        if found is not None:
            _stop(found[0])

    def running(self) -> list[str]:
        """The instances whose router still runs."""
        with self._lock:
            return [i for i, (process, _) in self.booted.items() if process.poll() is None]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        with self._lock:
            processes = [process for process, _ in self.booted.values()]
        for process in processes:
            _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture
def hypervisor(moto_server: Moto, ec2_namespace: Namespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
               ) -> Iterator[Hypervisor]:  # fmt: skip
    """Instances that boot for real (their user data) and shut down when terminated."""
    from moto.ec2.models.instances import Instance

    running = Hypervisor(moto_server, ec2_namespace, tmp_path / "instances").start()
    terminate = Instance.terminate

    def shut_down_then_terminate(self: Any) -> Any:
        running.shut_down(self.id)
        return terminate(self)

    monkeypatch.setattr(Instance, "terminate", shut_down_then_terminate)  # moto's side: no boot, no shutdown
    yield running
    running.close()


# --- TLS: a test certificate authority and the load balancer's certificate -------------------------------
@dataclass
class Authority:
    ca: Path  # PEM of the authority (what clients trust)
    cert: Path  # the wildcard certificate of the domain, and its key
    key: Path


def authority(folder: Path, domain: str = DOMAIN) -> Authority:
    """A certificate authority of the test, and a certificate of ``*.domain`` it signed (ACM's stand-in)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(text: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)
    end = start + datetime.timedelta(days=2)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("crowdnb test CA")).issuer_name(name("crowdnb test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))  # fmt: skip
    leaf = (x509.CertificateBuilder().subject_name(name(f"*.{domain}")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(f"*.{domain}"), x509.DNSName(domain)]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))  # fmt: skip
    made = Authority(folder / "ca.pem", folder / "cert.pem", folder / "key.pem")
    made.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    made.cert.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    made.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    return made


NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 31\r\nConnection: close\r\n\r\nNo crowdnb run at this address."
UNAVAILABLE = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class LoadBalancer:
    """The setup's HTTPS listener on 127.0.0.1: TLS ends here, and each connection goes to the instance that
    moto's host-header rule for its server name forwards to."""

    def __init__(self, moto: Moto, hypervisor: Hypervisor, tls: Authority) -> None:
        self.elbv2, self.hypervisor = moto.cloud().client("elbv2"), hypervisor
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(tls.cert, tls.key)
        self.context.sni_callback = self._named
        self._names: dict[int, str] = {}
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._stop = threading.Event()
        threading.Thread(target=self._accept, name="test-load-balancer", daemon=True).start()

    def _named(self, sock: Any, name: str | None, context: Any) -> None:
        self._names[id(sock)] = name or ""

    def target(self, host: str) -> tuple[str, int] | bool | None:
        """The instance the rule for ``host`` forwards to; False when no rule is for ``host`` (the listener's 404)."""
        for balancer in self.elbv2.describe_load_balancers()["LoadBalancers"]:
            for listener in self.elbv2.describe_listeners(LoadBalancerArn=balancer["LoadBalancerArn"])["Listeners"]:
                for rule in self.elbv2.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"]:
                    hosts = [v for c in rule["Conditions"] for v in c.get("HostHeaderConfig", {}).get("Values", [])]
                    if host in hosts:
                        group = rule["Actions"][0]["TargetGroupArn"]
                        health = self.elbv2.describe_target_health(TargetGroupArn=group)["TargetHealthDescriptions"]
                        return next((a for t in health if (a := self.hypervisor.address(t["Target"]["Id"]))), None)
        return False

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            tls = self.context.wrap_socket(client, server_side=True)
        except (OSError, ssl.SSLError):
            client.close()
            return
        with tls:
            target = self.target(self._names.pop(id(tls), ""))
            if not target:
                with contextlib.suppress(OSError):
                    tls.sendall(UNAVAILABLE if target is None else NOT_FOUND)
                return
            try:
                upstream = socket.create_connection(target, timeout=10)  # type: ignore[arg-type]
            except OSError:
                with contextlib.suppress(OSError):
                    tls.sendall(UNAVAILABLE)
                return
            with upstream:
                upstream.settimeout(None)
                _pipe(tls, upstream)

    def close(self) -> None:
        self._stop.set()
        self.listener.close()


def _pipe(tls: ssl.SSLSocket, plain: socket.socket) -> None:
    """Both ways until either side closes; one thread, so the TLS object is never used by two at once."""
    while True:
        ready = [tls] if tls.pending() else select.select([tls, plain], [], [], 30)[0]
        if not ready:
            continue
        try:
            for sock in ready:
                data = sock.recv(65536)
                if not data:
                    return
                (plain if sock is tls else tls).sendall(data)
        except (OSError, ssl.SSLError):
            return


def resolver(moto_url: str, port: int) -> Any:
    """A ``socket.getaddrinfo`` for which names under the domain resolve as moto's Route53 says: an alias A
    record leads to the load balancer on 127.0.0.1:``port``; other names resolve as usual."""
    import boto3

    route53 = boto3.client("route53", endpoint_url=moto_url, region_name="us-east-1", aws_access_key_id="testing",
                           aws_secret_access_key="testing")  # fmt: skip
    real = socket.getaddrinfo

    def aliased(host: str) -> bool:
        for zone in route53.list_hosted_zones()["HostedZones"]:
            records = route53.list_resource_record_sets(HostedZoneId=zone["Id"])["ResourceRecordSets"]
            if any(r["Name"].rstrip(".") == host and r["Type"] == "A" and "AliasTarget" in r for r in records):
                return True
        return False

    def getaddrinfo(host: Any, service: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and (host == DOMAIN or host.endswith("." + DOMAIN)):
            if not aliased(host):
                raise socket.gaierror(socket.EAI_NONAME, f"Name or service not known: {host}")
            return real("127.0.0.1", port, *args, **kwargs)
        return real(host, service, *args, **kwargs)

    return getaddrinfo


def patch_resolver(moto_url: str, port: int) -> None:
    """Install ``resolver`` in this process (a child process that plays a notebook)."""
    socket.getaddrinfo = resolver(moto_url, port)


@contextlib.contextmanager
def resolving(moto: Moto, balancer: LoadBalancer, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Names under the domain resolve as moto's Route53 says, in this process."""
    monkeypatch.setattr(socket, "getaddrinfo", resolver(moto.url, balancer.port))
    yield
