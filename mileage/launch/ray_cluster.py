"""Start a Ray head on this machine for one pipeline step, or join a Ray cluster that already runs.

Both engines are launched as a Ray job (see `ray_job.py`), so every training step first needs the
HTTP address of a Ray dashboard whose job API accepts submissions. `ray_cluster(spec)` yields it.

Starting a head (``spec.address is None``)
  * Everything listens on loopback by default: the dashboard's job API runs any shell command it is
    sent, so a dashboard on 0.0.0.0 would accept jobs from anyone who can reach the machine. Ray
    rewrites ``--node-ip-address 127.0.0.1`` to the machine's routable address unless it runs in
    single-node mode, so for a loopback head we set ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (the
    switch Ray itself reads to keep a node on loopback); then the GCS, raylet and dashboard all
    listen on 127.0.0.1 only (checked with `ss -ltn` on Ray 2.60). With a routable ``host`` (so
    other nodes can join), Ray's GCS and raylet listen on all interfaces.
  * The GCS and dashboard ports are checked before anything starts, so a clash is reported as
    `RayPortInUse` naming the config key, instead of as a Ray traceback half-way through start.
  * The head runs as ``ray start --head --block`` in its own session (process group). It is stopped
    by SIGTERM to that one process: Ray's own handler then shuts down exactly the processes that
    node started (raylet, GCS, dashboard, workers; jobs die with their supervisor), and anything of
    the group still alive after a grace period is killed. We never run ``ray stop``: it sends
    SIGTERM to every Ray process of the machine it is allowed to signal (it matches processes by
    name: raylet, gcs_server, dashboard, ...), so it would also take down the Ray clusters of other
    users and other pipeline steps on the same box. Ray 2.60 has no way to scope ``ray stop``.
  * If this Python process dies without cleaning up (SIGKILL, OOM), the kernel sends the head
    SIGTERM (Linux parent-death signal), so no orphaned cluster keeps the ports and GPUs.
  * The head gets this process's environment scrubbed of every secret (mileage.secrets), except
    the ones its job needs (`spec.secrets`: WANDB_API_KEY when tracking.wandb is on; HF_TOKEN
    never). Its jobs inherit that environment: a secret a job needs reaches it this way, never
    through the job's runtime_env, which Ray's job API shows to anyone who can reach the
    dashboard (see `ray_job.py`).
  * Token authentication (Ray >= 2.52, ``RAY_AUTH_MODE=token``): the head we start requires a
    fresh random token on its dashboard, job API and GCS. The token lives in a 0600 file in the
    head's private temp dir (``RAY_AUTH_TOKEN_PATH``, so it is no environment value that could be
    logged); our job client sends it, and the head's jobs read it from that file. Another local
    user who finds the port gets 401.
  * Ray's temp dir must be short: Ray puts unix sockets below it and a socket path is limited to
    107 bytes. The default is ``/tmp/mileage-ray-<uid>/<hash of user, host, port>`` (the parent private to the user; the dir removed when our head stops); Ray makes a fresh
    ``session_*`` directory inside it for every start, with the logs of that run; the newest
    5 are kept.

Joining (``spec.address`` given): the address must be a dashboard's HTTP address (port 8265 by
default). We check that its job API answers and yield it; a cluster we joined is never stopped.
"""

from __future__ import annotations

import contextlib
import ctypes
import secrets as token_source
import dataclasses
import hashlib
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Iterator, Sequence

from mileage.secrets import scrubbed_environ

# Ray appends e.g. "/session_2026-11-26_11-39-30_941430_1234567/sockets/dash_MetricsHead" (68
# bytes with a 7-digit pid) to the temp dir; a unix socket path may be at most 107 bytes.
MAX_TEMP_DIR_CHARS = 36
KEEP_SESSIONS = 5  # Ray session dirs (logs) kept in our default temp dir


class RayClusterError(RuntimeError):
    """A Ray head could not be started or a cluster could not be reached."""


class RayPortInUse(RayClusterError):
    """A port the head needs is taken; raised before anything is started."""


class RayClusterUnreachable(RayClusterError):
    """`ray.address` does not answer as a Ray dashboard with a job API."""


class RayStartFailed(RayClusterError):
    """`ray start` exited or its dashboard did not answer in time."""


class RayClusterConfigError(ValueError):
    """A `ray.*` config value cannot work."""


@dataclasses.dataclass(frozen=True)
class RayClusterSpec:
    """The `ray:` section of an experiment's config."""

    address: str | None = None  # dashboard address of a running cluster, e.g. "http://10.0.0.1:8265"
    host: str = "127.0.0.1"
    port: int = 6379  # GCS
    dashboard_port: int = 8265
    num_cpus: int | None = None  # None: Ray counts them
    num_gpus: int | None = None  # None: Ray counts them
    temp_dir: str | None = None  # None: /tmp/mileage-ray-<uid>/<hash>
    include_dashboard: bool = True
    allow_remote: bool = False  # a non-loopback host only when the config says so (ray.allow_remote)
    secrets: tuple[str, ...] = ()  # secret env variables the head's jobs may inherit (mileage.secrets)
    auth: bool = True  # Ray's token authentication on the head we start


def cluster_spec(ray: dict, gpus: int, secrets: Sequence[str] = ()) -> RayClusterSpec:
    """The cluster of an experiment's `ray:` section; unset ports become free ones (experiments side by side).
    `secrets`: the secret variables its job needs (mileage.secrets.job_secret_names)."""
    return RayClusterSpec(
        address=ray["address"],
        host=ray["host"],
        port=ray["port"] or free_port(ray["host"]),
        dashboard_port=ray["dashboard_port"] or free_port(ray["host"]),
        num_cpus=ray["num_cpus"],
        num_gpus=gpus,
        allow_remote=ray["allow_remote"],
        secrets=tuple(secrets),
    )


REMOTE_RISK = ("Ray's dashboard and job API accept jobs that run code as this user from anyone who can reach {host} "
               "and holds the head's token (without token authentication, from anyone: CVE-2023-48022)")


def remote_host_problem(host: str, allow_remote: bool) -> tuple[str | None, str | None]:
    """(error, warning) for a head bound to `host`: a routable address is refused unless allowed, and warned about
    when it is."""
    if is_loopback(host):
        return None, None
    risk = REMOTE_RISK.format(host=host)
    if not allow_remote:
        return f"{host!r} is not a loopback address; {risk}. Set ray.allow_remote: true to bind it anyway", None
    return None, f"ray.host is {host!r}: {risk}"


def ray_cli() -> Path:
    """The `ray` command installed beside the running Python (the same Ray as the one imported)."""
    cli = Path(sys.executable).parent / "ray"
    if not cli.exists():
        raise RayStartFailed(
            f"no `ray` command beside {sys.executable}; install ray[default] into this environment"
        )
    return cli


def default_temp_dir(spec: RayClusterSpec) -> Path:
    """A short temp dir that is the same for the same user, host and GCS port, inside a directory of this user's
    alone (Ray makes its temp dir world-writable; the private parent keeps other users out of its sockets and
    logs)."""
    key = f"{os.getuid()}:{spec.host}:{spec.port}"
    return Path("/tmp") / f"mileage-ray-{os.getuid()}" / hashlib.sha1(key.encode()).hexdigest()[:10]


def dashboard_url(host: str, port: int) -> str:
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return f"http://{host}:{port}"


def normalize_address(address: str) -> str:
    """`ray.address` as an HTTP URL without a trailing slash ("10.0.0.1:8265" -> "http://10.0.0.1:8265")."""
    address = address.strip().rstrip("/")
    if not address:
        raise RayClusterConfigError("ray.address is empty; leave it unset (null) to start a Ray head here")
    if address.startswith("ray://"):
        raise RayClusterConfigError(
            f"ray.address {address!r} is a Ray Client address; mileage submits Ray jobs, so give the "
            "dashboard's HTTP address instead, e.g. http://HEAD_IP:8265"
        )
    if "://" not in address:
        address = f"http://{address}"
    return address


def check_port_free(host: str, port: int, key: str, *, all_interfaces: bool = False) -> None:
    """Raise RayPortInUse if something listens on `port` (on `host`, or on any interface)."""
    if not 1024 <= port <= 65535:
        raise RayClusterConfigError(f"{key}: {port} is not a port Ray accepts (1024-65535)")
    hosts = [host] + (["0.0.0.0"] if all_interfaces and host != "0.0.0.0" else [])
    for bind_host in hosts:
        family = socket.AF_INET6 if ":" in bind_host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            # SO_REUSEADDR: a port whose last connection is in TIME_WAIT is usable; only a
            # socket that listens on it makes bind fail.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((bind_host, port))
            except OSError as exc:
                raise RayPortInUse(
                    f"{key}: port {port} is already in use on {bind_host} ({exc.strerror}), so a Ray "
                    f"head cannot start there. Either set {key} to a free port, or, if that is a Ray "
                    "cluster you want to use, set ray.address to its dashboard address (e.g. "
                    f"http://{host}:8265) to join it."
                ) from None


def free_port(host: str) -> int:
    """A port the kernel considers free right now (for Ray's auxiliary servers)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class RayHeadDied(RayClusterError):
    """The Ray head we started died under its job."""


# The heads this process started and has not stopped yet, by dashboard URL: ray_job asks them for the token to send
# and, when the job API stops answering, whether the head itself died.
_STARTED: dict[str, "RayHead"] = {}


def auth_headers(url: str) -> dict[str, str]:
    """The Authorization header for a head we started at `url` ({} for a cluster we joined: Ray's own client then
    uses the user's RAY_AUTH_MODE / ~/.ray/auth_token)."""
    head = _STARTED.get(url.rstrip("/"))
    return dict(head.headers) if head else {}


def head_death(url: str) -> str | None:
    """Why the head we started at `url` is gone ("the Ray head at ... died ..."), or None while it runs (or when
    we did not start it)."""
    head = _STARTED.get(url.rstrip("/"))
    return head.death() if head else None


def _get_json(url: str, timeout_s: float, headers: dict[str, str] | None = None) -> object:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=timeout_s) as resp:  # noqa: S310 (http only, our URL)
        return json.loads(resp.read().decode("utf-8"))


def job_api_version(url: str, timeout_s: float = 5.0, headers: dict[str, str] | None = None) -> dict:
    """The job API's /api/version answer (ray_version, session_name); raises OSError/ValueError if none.

    /api/version is served by the dashboard's job module itself, so an answer means jobs can be
    submitted (a submission then waits for the head's job agent on its own).
    """
    version = _get_json(f"{url}/api/version", timeout_s, headers if headers is not None else auth_headers(url))
    if not isinstance(version, dict) or "ray_version" not in version:
        raise ValueError(f"{url}/api/version did not answer like a Ray dashboard: {version!r}")
    return version


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _die_with_parent_hook() -> Callable[[], None] | None:
    """A preexec_fn that makes the child get SIGTERM when the thread that started it dies (Linux).

    prctl is looked up here, in the parent: loading a library between fork and exec can deadlock.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def hook() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)

    return hook


def _prune_sessions(temp_dir: Path, keep: int) -> None:
    """Delete all but the newest `keep` Ray session dirs (logs of earlier runs, ~2 MB each).

    Only for our default temp dir: it is keyed by the GCS port, which we just found free, so no
    live head uses it. A user's ray.temp_dir may be shared, so it is left alone.
    """
    sessions = sorted(p for p in temp_dir.glob("session_2*") if p.is_dir() and not p.is_symlink())
    for old in sessions[: max(len(sessions) - keep, 0)]:
        shutil.rmtree(old, ignore_errors=True)


def _tail(path: Path, n: int = 40) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "(no output)"
    return "\n".join(lines[-n:]) or "(no output)"


class RayHead:
    """One `ray start --head --block` process that we started and must stop."""

    def __init__(self, spec: RayClusterSpec, log: Callable[[str], None]):
        self.spec = spec
        self.log = log
        self.temp_dir = Path(spec.temp_dir) if spec.temp_dir else default_temp_dir(spec)
        self.url = dashboard_url(spec.host, spec.dashboard_port)
        self.output_path = self.temp_dir / f"ray-start-{spec.port}.log"
        self.session_dir: Path | None = None
        self.proc: subprocess.Popen | None = None
        self.token_path = self.temp_dir / "auth_token"
        self.headers: dict[str, str] = {}

    def command(self) -> list[str]:
        spec = self.spec
        cmd = [
            str(ray_cli()), "start", "--head", "--block",
            "--node-ip-address", spec.host,
            "--port", str(spec.port),
            "--dashboard-host", spec.host,
            "--dashboard-port", str(spec.dashboard_port),
            "--include-dashboard", "true",
            # Ray's defaults for these (10001, 52365) are fixed ports; two heads on one box (two
            # pipeline steps, or another user's Ray) would clash on them.
            "--ray-client-server-port", str(free_port(spec.host)),
            "--dashboard-agent-listen-port", str(free_port(spec.host)),
            "--disable-usage-stats",
            "--temp-dir", str(self.temp_dir),
        ]
        if spec.num_cpus is not None:
            cmd += ["--num-cpus", str(spec.num_cpus)]
        if spec.num_gpus is not None:
            cmd += ["--num-gpus", str(spec.num_gpus)]
        return cmd

    def environment(self) -> dict[str, str]:
        # No secret but those the job needs (mileage.secrets): the head's jobs inherit this environment.
        env = scrubbed_environ(os.environ, keep=self.spec.secrets)
        # A RAY_ADDRESS meant for some other cluster must not leak into this head or its jobs.
        env.pop("RAY_ADDRESS", None)
        for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):  # the user's, for other clusters
            env.pop(name, None)
        if self.spec.auth:
            env["RAY_AUTH_MODE"] = "token"
            env["RAY_AUTH_TOKEN_PATH"] = str(self.token_path)
        else:
            env["RAY_AUTH_MODE"] = "disabled"
        # Ray drains a node for up to 30 s on SIGTERM (for Serve); nothing of ours needs that.
        env["RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S"] = "0"
        if is_loopback(self.spec.host):
            env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # keeps the node IP on loopback
        return env

    def start(self, timeout_s: float) -> str:
        spec = self.spec
        if len(str(self.temp_dir)) > MAX_TEMP_DIR_CHARS:
            raise RayClusterConfigError(
                f"ray.temp_dir {str(self.temp_dir)!r} is {len(str(self.temp_dir))} characters long; Ray "
                f"puts unix sockets below it and socket paths are limited to 107 bytes, so keep it at "
                f"most {MAX_TEMP_DIR_CHARS} characters (e.g. /tmp/ray-mine) or leave it unset"
            )
        check_port_free(spec.host, spec.port, "ray.port", all_interfaces=True)  # GCS listens on all
        check_port_free(spec.host, spec.dashboard_port, "ray.dashboard_port")
        if spec.port == spec.dashboard_port:
            raise RayClusterConfigError(f"ray.port and ray.dashboard_port are both {spec.port}")

        if spec.temp_dir is None:
            # Ours alone: in a private parent (its sockets and logs are this user's), removed when the head stops.
            self.temp_dir.parent.mkdir(mode=0o700, exist_ok=True)
            self.temp_dir.parent.chmod(0o700)
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        if spec.temp_dir is None:
            _prune_sessions(self.temp_dir, keep=KEEP_SESSIONS)
        if spec.auth:
            self._write_token()
        cmd = self.command()
        self.log(f"ray: starting a head on {spec.host}:{spec.port}, dashboard {self.url}, "
                 f"temp dir {self.temp_dir}")
        self.log("ray: " + " ".join(cmd))
        with open(self.output_path, "w", encoding="utf-8") as out:
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.environment(),
                # Own session: a terminal's Ctrl-C reaches us, not the head, so we can stop the
                # job first and the head after it; and the whole head is one process group.
                start_new_session=True,
                preexec_fn=_die_with_parent_hook(),
            )
        _STARTED[self.url] = self
        try:
            self._wait_until_ready(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self.url

    def death(self) -> str | None:
        """None while the `ray start --block` process runs; else what happened to it."""
        code = self.proc.poll() if self.proc is not None else None
        if code is None:
            return None
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        return (f"the Ray head at {self.url} (pid {self.proc.pid}, {how}) died; its output: {self.output_path}"
                f"\n{_tail(self.output_path, 10)}")

    def _write_token(self) -> None:
        """A fresh token for this head, readable by this user only (created 0600, never world-readable)."""
        token = token_source.token_urlsafe(32)
        with contextlib.suppress(FileNotFoundError):
            self.token_path.unlink()
        fd = os.open(self.token_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(token)
        self.headers = {"Authorization": f"Bearer {token}"}

    def _wait_until_ready(self, timeout_s: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                raise RayStartFailed(
                    f"`ray start` exited with code {code} before its dashboard answered at {self.url}. "
                    f"Its output ({self.output_path}):\n{_tail(self.output_path)}"
                )
            try:
                version = job_api_version(self.url, timeout_s=2.0, headers=self.headers)
            except (OSError, ValueError) as exc:  # URLError is an OSError
                last_error = exc
                time.sleep(0.5)
                continue
            session = version.get("session_name")
            self.session_dir = self.temp_dir / session if session else None
            self.log(f"ray: head ready (Ray {version.get('ray_version')}, session dir {self.session_dir})")
            return
        raise RayStartFailed(
            f"the Ray dashboard at {self.url} did not answer within {timeout_s:.0f} s "
            f"(last error: {last_error}). Output of `ray start` ({self.output_path}):\n"
            f"{_tail(self.output_path)}"
        )

    def stop(self, timeout_s: float = 60.0) -> None:
        """SIGTERM the `ray start --block` process; then kill whatever of its process group is left."""
        proc = self.proc
        if proc is None:
            return
        group = proc.pid  # start_new_session: the group id is the leader's pid
        if proc.poll() is None:
            self.log(f"ray: stopping the head we started (pid {proc.pid})")
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.log(f"ray: head did not stop within {timeout_s:.0f} s; killing it")
                proc.kill()
                proc.wait()
        self._kill_group(group)
        self.proc = None
        _STARTED.pop(self.url, None)
        with contextlib.suppress(FileNotFoundError):
            self.token_path.unlink()
        if self.spec.temp_dir is None:  # the default temp dir is keyed by a port found free: no one else's
            shutil.rmtree(self.temp_dir, ignore_errors=True)

    def _kill_group(self, group: int, grace_s: float = 5.0) -> None:
        """Members of the head's process group that outlived it (only ours: the group is ours)."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(group, sig)
            except (ProcessLookupError, PermissionError):
                return  # nothing left in the group
            deadline = time.monotonic() + grace_s
            while time.monotonic() < deadline:
                try:
                    os.killpg(group, 0)
                except (ProcessLookupError, PermissionError):
                    return
                time.sleep(0.2)


def check_cluster(address: str, timeout_s: float = 10.0) -> str:
    """Check that `ray.address` answers as a Ray dashboard with a job API; return it normalised."""
    url = normalize_address(address)
    try:
        job_api_version(url, timeout_s=timeout_s)
    except (OSError, ValueError) as exc:
        raise RayClusterUnreachable(
            f"ray.address {address!r}: no Ray job API answers at {url} ({exc}). Give the dashboard's "
            "HTTP address of a running cluster (port 8265 by default, not the GCS port 6379), or leave "
            "ray.address unset to start a Ray head here."
        ) from None
    return url


@contextlib.contextmanager
def ray_cluster(
    spec: RayClusterSpec,
    log: Callable[[str], None] = print,
    *,
    start_timeout_s: float = 180.0,
    stop_timeout_s: float = 60.0,
) -> Iterator[str]:
    """Yield the dashboard address to submit Ray jobs to; stop the head afterwards if we started it."""
    if spec.address is not None:
        url = check_cluster(spec.address)
        log(f"ray: joining the running cluster at {url} (it is left running afterwards)")
        yield url
        return
    if not spec.include_dashboard:
        raise RayClusterConfigError(
            "ray.include_dashboard is false, but mileage submits its training as a Ray job through "
            "the dashboard's job API; set it to true"
        )
    error, warning = remote_host_problem(spec.host, spec.allow_remote)
    if error:
        raise RayClusterConfigError(f"ray.host: {error}")
    if warning:
        log(f"ray: WARNING: {warning}")
    head = RayHead(spec, log)
    url = head.start(start_timeout_s)
    try:
        yield url
    except Exception as exc:
        died = head.death()
        if died and not isinstance(exc, RayHeadDied):
            raise RayHeadDied(died) from exc
        raise
    finally:
        head.stop(stop_timeout_s)
