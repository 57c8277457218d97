"""Starting/joining a Ray cluster on loopback and running commands as Ray jobs.

The slow tests share one real Ray head (num_cpus=1, non-default ports) because starting one costs
several seconds; a second head is started only to check that it is stopped afterwards.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from mileage.launch.ray_cluster import (
    RayClusterConfigError,
    RayClusterSpec,
    RayClusterUnreachable,
    RayPortInUse,
    auth_headers,
    default_temp_dir,
    job_api_version,
    ray_cluster,
)
from mileage.launch.ray_job import RayJobError, RayJobFailed, redact, run_job, secret_env_values

HEAD_PORT, HEAD_DASHBOARD_PORT = 6390, 8275
# In the environment the head starts in: the head's jobs inherit the one the job needs (WANDB_API_KEY, as for a
# tracked run) and never see the other secrets.
INHERITED_SECRET_NAME, INHERITED_SECRET = "WANDB_API_KEY", "inherited-" + uuid.uuid4().hex
DROPPED = {"HF_TOKEN": "hf-" + uuid.uuid4().hex, "MILEAGE_TEST_TOKEN": "other-" + uuid.uuid4().hex}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def head() -> str:
    saved = {name: os.environ.get(name) for name in (INHERITED_SECRET_NAME, *DROPPED)}
    os.environ.update({INHERITED_SECRET_NAME: INHERITED_SECRET, **DROPPED})
    spec = RayClusterSpec(port=HEAD_PORT, dashboard_port=HEAD_DASHBOARD_PORT, num_cpus=1, num_gpus=0,
                          secrets=(INHERITED_SECRET_NAME,))
    try:
        with ray_cluster(spec) as url:
            yield url
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


# -- fast: no Ray started --------------------------------------------------------------------


def test_redact_masks_every_secret_longest_first():
    text = "token=abcd1234 and again abcd1234; prefix abcd12 stays visible"
    assert redact(text, ["abcd1234", "abcd12"]) == "token=*** and again ***; prefix *** stays visible"
    assert redact("nothing secret here", []) == "nothing secret here"


def test_secret_env_values_picks_secret_looking_names():
    env = {
        "HF_TOKEN": "hf_aaaaaaaa",
        "WANDB_API_KEY": "wandb-bbbbbbbb",
        "DB_PASSWORD_PROD": "pw-cccccccc",
        "AWS_SECRET": "sec-dddddddd",
        "PATH": "/usr/bin:/bin",
        "TOKENIZERS_PARALLELISM": "false",
        "MAX_TOKENS": "4096",
    }
    assert set(secret_env_values(env)) == {"hf_aaaaaaaa", "wandb-bbbbbbbb", "pw-cccccccc", "sec-dddddddd"}


def test_port_in_use_is_reported_before_anything_starts(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        temp_dir = f"/tmp/mileage-t-{uuid.uuid4().hex[:8]}"
        spec = RayClusterSpec(port=port, dashboard_port=_free_port(), temp_dir=temp_dir)
        with pytest.raises(RayPortInUse) as err:
            with ray_cluster(spec, log=lambda _: None):
                pytest.fail("the context must not be entered")
        assert f"port {port}" in str(err.value) and "ray.port" in str(err.value)
        assert "ray.address" in str(err.value)  # says how to join instead
        assert not Path(temp_dir).exists()  # nothing was started

        spec = RayClusterSpec(port=_free_port(), dashboard_port=port, temp_dir=temp_dir)
        with pytest.raises(RayPortInUse, match="ray.dashboard_port"):
            with ray_cluster(spec, log=lambda _: None):
                pytest.fail("the context must not be entered")


def test_joining_an_address_that_does_not_answer_names_the_key():
    address = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(RayClusterUnreachable) as err:
        with ray_cluster(RayClusterSpec(address=address)):
            pytest.fail("the context must not be entered")
    assert "ray.address" in str(err.value) and address in str(err.value)


# -- slow: a real Ray head -------------------------------------------------------------------


@pytest.mark.slow
def test_job_output_and_env_var_land_in_the_log(head, tmp_path, capsys):
    log = tmp_path / "logs" / "train.log"
    log.parent.mkdir()
    log.write_text("earlier attempt\n")
    script = 'for i in 1 2 3; do echo "step $i  loss=0.$i"; done; echo "lr is $LEARNING_RATE"'
    run_job(head, ["sh", "-c", script], {"env_vars": {"LEARNING_RATE": "3e-6"}}, log, job_id_prefix="t-print")

    lines = log.read_text().splitlines()
    assert lines[0] == "earlier attempt"  # appended, not overwritten
    job_lines = [ln for ln in lines if ln.startswith("step ") or ln.startswith("lr is")]
    assert job_lines == ["step 1  loss=0.1", "step 2  loss=0.2", "step 3  loss=0.3", "lr is 3e-6"]
    assert "step 2  loss=0.2" in capsys.readouterr().out  # also streamed to stdout


@pytest.mark.slow
def test_failed_job_raises_with_its_last_lines(head, tmp_path):
    log = tmp_path / "train.log"
    script = "for i in $(seq 1 60); do echo line-$i; done; exit 3"
    with pytest.raises(RayJobFailed) as err:
        run_job(head, ["sh", "-c", script], {}, log, job_id_prefix="t-fail", tail_lines=5)
    exc = err.value
    assert exc.status == "FAILED" and exc.job_id.startswith("t-fail-")
    assert exc.job_id in str(exc) and "exit code 3" in str(exc)
    assert len(exc.tail) == 5
    # Ray writes its own "Running entrypoint for job ..." line into the job's log, at a moment that
    # races with the job's first output; it may land among the last lines.
    job_lines = [ln for ln in exc.tail if not ln.startswith("Running entrypoint for job")]
    assert len(job_lines) >= 4 and job_lines == [f"line-{i}" for i in range(61 - len(job_lines), 61)]
    assert "line-60" in str(exc) and "line-55" not in str(exc)


@pytest.mark.slow
def test_secrets_never_reach_the_log(head, tmp_path, capsys):
    log = tmp_path / "train.log"
    flag = "hf_" + uuid.uuid4().hex
    script = 'echo "inherited=$WANDB_API_KEY hf=[$HF_TOKEN] other=[$MILEAGE_TEST_TOKEN]"; echo done'
    run_job(head, ["sh", "-c", script, "sh", "--hf-token", flag], {}, log, job_id_prefix="t-secret")
    text = log.read_text()
    out = capsys.readouterr().out
    # The job got the one secret its head was allowed to pass on, masked in the log; the others never reached it.
    assert "inherited=*** hf=[] other=[]" in text
    for secret in (flag, INHERITED_SECRET, *DROPPED.values()):
        assert secret not in text and secret not in out


@pytest.mark.slow
def test_a_secret_in_the_runtime_env_is_refused_before_submitting(head, tmp_path):
    from ray.job_submission import JobSubmissionClient

    before = len(JobSubmissionClient(head, headers=auth_headers(head)).list_jobs())
    with pytest.raises(RayJobError, match="WANDB_API_KEY.*plain text"):
        run_job(head, ["true"], {"env_vars": {"WANDB_API_KEY": "w-" + uuid.uuid4().hex}}, tmp_path / "log",
                job_id_prefix="t-refused")
    assert len(JobSubmissionClient(head, headers=auth_headers(head)).list_jobs()) == before


@pytest.mark.slow
def test_the_job_api_of_a_head_we_started_wants_its_token(head):
    import urllib.error
    import urllib.request

    for headers, status in (({}, 401), ({"Authorization": "Bearer not-the-token"}, 403)):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(urllib.request.Request(f"{head}/api/jobs/", headers=headers), timeout=10)
        assert err.value.code == status
    with urllib.request.urlopen(urllib.request.Request(f"{head}/api/jobs/", headers=auth_headers(head)), timeout=10):
        pass


@pytest.mark.slow
def test_joined_cluster_is_left_running(head):
    with ray_cluster(RayClusterSpec(address=head.replace("http://", "")), log=lambda _: None) as url:
        assert url == head
    assert job_api_version(head)["ray_version"]  # still there (and still ours: the token is still known)


@pytest.mark.slow
def test_started_head_is_stopped_on_exit_even_after_an_error():
    port, dashboard_port = 6391, 8276
    spec = RayClusterSpec(port=port, dashboard_port=dashboard_port, num_cpus=1, num_gpus=0)
    group = None

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with ray_cluster(spec, log=lambda _: None) as url:
            assert job_api_version(url)["ray_version"]
            assert not _port_is_free(port)
            out = subprocess.run(["pgrep", "-f", "--", f"--block .*--port {port} "], capture_output=True, text=True)
            group = os.getpgid(int(out.stdout.split()[0]))
            raise Boom
    assert _port_is_free(port) and _port_is_free(dashboard_port)
    assert group is not None and not _group_alive(group)
    assert str(default_temp_dir(spec)).startswith(f"/tmp/mileage-ray-{os.getuid()}/")


@pytest.mark.slow
def test_sigterm_stops_the_job_and_exits_nonzero(head, tmp_path):
    from ray.job_submission import JobSubmissionClient

    prefix = f"t-sigterm-{uuid.uuid4().hex[:6]}"
    log = tmp_path / "train.log"
    code = textwrap.dedent(
        f"""
        from pathlib import Path
        from mileage.launch.ray_job import run_job
        run_job({head!r}, ["sleep", "60"], {{}}, Path({str(log)!r}), job_id_prefix={prefix!r})
        """
    )
    # Another process reaches our head the way Ray documents: RAY_AUTH_MODE=token and the token's file.
    token_env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(default_temp_dir(RayClusterSpec(
        port=HEAD_PORT, dashboard_port=HEAD_DASHBOARD_PORT)) / "auth_token")}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, **token_env})
    client = JobSubmissionClient(head, headers=auth_headers(head))
    job_id, deadline = None, time.monotonic() + 60
    while time.monotonic() < deadline and job_id is None:
        for job in client.list_jobs():
            if (job.submission_id or "").startswith(prefix) and str(job.status.value) == "RUNNING":
                job_id = job.submission_id
        time.sleep(0.5)
    assert job_id is not None, f"the job never ran: {proc.stderr.read() if proc.poll() is not None else ''}"

    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("run_job did not exit within 20 s of SIGTERM")
    assert proc.returncode != 0
    assert time.monotonic() - started < 20
    assert str(client.get_job_status(job_id).value) == "STOPPED"
    assert "stopping ray job" in log.read_text()


def test_a_head_on_a_routable_address_is_refused_before_it_starts(tmp_path):
    # Defence in depth beside the config check: the launcher itself never opens the job API to the network.
    spec = RayClusterSpec(host="0.0.0.0", port=6390, dashboard_port=8290, temp_dir=str(tmp_path / "ray"))
    with pytest.raises(RayClusterConfigError, match="CVE-2023-48022"):
        with ray_cluster(spec, log=lambda _: None):
            pass
    assert not (tmp_path / "ray").exists()


@pytest.mark.slow
def test_the_default_temp_dir_is_private_and_removed_when_the_head_stops():
    spec = RayClusterSpec(port=_free_port(), dashboard_port=_free_port(), num_cpus=1, num_gpus=0)
    temp_dir = default_temp_dir(spec)
    with ray_cluster(spec, log=lambda _: None):
        assert temp_dir.is_dir() and (temp_dir.parent.stat().st_mode & 0o777) == 0o700
    assert not temp_dir.exists()


def test_a_submission_waits_for_the_heads_job_agent(tmp_path):
    """A fresh head whose job agent is not up yet answers 'No available agent': the submission is tried again (and
    said so in the log); any other refusal, or an agent that never comes, is raised."""
    from mileage.launch.ray_job import NO_AGENT, _JobLog, _submit

    class Head:
        def __init__(self, refusals: int, answer: str = f"Request failed with status code 500: {NO_AGENT} to "
                                                           "submit job, please try again later.."):
            self.refusals, self.answer, self.calls = refusals, answer, 0

        def submit_job(self, **job):
            self.calls += 1
            if self.calls <= self.refusals:
                raise RuntimeError(self.answer)

    sink = _JobLog(tmp_path / "job.log", [], 5)
    late = Head(refusals=2)
    _submit(late, sink, poll_s=0, entrypoint="true")
    assert late.calls == 3
    with pytest.raises(RuntimeError, match="runtime_env"):
        _submit(Head(refusals=1, answer="Request failed with status code 400: bad runtime_env"), sink, poll_s=0,
                entrypoint="true")
    with pytest.raises(RuntimeError, match=NO_AGENT):
        _submit(Head(refusals=10**6), sink, wait_s=0, poll_s=0, entrypoint="true")
    sink.close()
    assert "no job agent yet" in (tmp_path / "job.log").read_text()


def test_a_job_that_needs_no_cluster_runs_here_through_the_same_runner(tmp_path, monkeypatch, capsys):
    """The runner runs a spec with cluster=False as a child process (no Ray head): prepared first, its runtime env
    given, its output in the log; a failing job raises with its last lines."""
    import mileage.stages.runner as runner
    from mileage.engines.contract import JobSpec
    from mileage.launch.local_job import LocalJobFailed

    monkeypatch.setattr(runner, "ray_cluster", lambda *a, **kw: pytest.fail("no Ray head for a cluster-free job"))
    prepared = []
    job = JobSpec(entrypoint=[sys.executable, "-c", "import os; print('job says', os.environ['JOB_WORD'])"],
                  runtime_env={"env_vars": {"JOB_WORD": "hello"}}, prepare=(lambda: prepared.append(1),),
                  cluster=False)
    runner.run_spec(job, {}, tmp_path / "job.log", "mileage-eval-base")
    assert prepared == [1] and "job says hello" in (tmp_path / "job.log").read_text()
    failing = JobSpec(entrypoint=[sys.executable, "-c", "print('last words'); raise SystemExit(3)"], runtime_env={},
                      cluster=False)
    with pytest.raises(LocalJobFailed, match="status 3(.|\n)*last words"):
        runner.run_spec(failing, {}, tmp_path / "job.log", "mileage-eval-base")
