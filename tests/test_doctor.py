"""`mileage doctor`: the verdicts a user acts on (exit code, FAIL rows with hints) for machines we have
(this CPU box) and for machines we describe (GPU boxes, an RTX 5090 with the wrong torch)."""

from __future__ import annotations

import dataclasses
import re
import io
import socket
import sys
import time
import types
from pathlib import Path

import pytest

from mileage import doctor, pins
from mileage.engines.contract import ProgramCheck
from mileage.engines.miles import pins as miles_pins
from mileage.doctor import DoctorError, GpuInfo, MachineFacts

DEMO = {"engine": "local", "resources": {"gpus": 0, "device": "cpu"}, "model": {"source": "demo"},
        "data": {"train": {"source": "demo"}, "eval": {"source": "demo"}}}
MILES = {"engine": "miles", "resources": {"gpus": 2, "device": "auto"},
         "model": {"source": "demo"}, "data": {"train": {"source": "demo"}, "eval": {"source": "demo"}}}
RTX5090 = GpuInfo(0, "NVIDIA GeForce RTX 5090", (12, 0), 31.4)


def light_env_versions() -> dict[str, str]:
    return dict(pins.light_env_pins())


def cpu_facts(**overrides) -> MachineFacts:
    facts = MachineFacts(python="3.12.11", versions=light_env_versions(), torch_version="2.13.0+cpu",
                         importable={m.module: False for m in doctor.STACK_MODULES})
    for key, value in overrides.items():
        setattr(facts, key, value)
    return facts


def gpu_box(n: int = 2, gpu: GpuInfo = RTX5090, arch=("sm_90", "sm_100", "sm_120"), torch="2.11.0+cu128",
            cuda="12.8", stack: bool = True) -> MachineFacts:
    versions = light_env_versions()
    if stack:
        versions.update({"miles": "0.1.0", "megatron-core": miles_pins.MEGATRON_CORE_VERSION, "sglang": "0.5.19",
                         "transformer-engine": miles_pins.TRANSFORMER_ENGINE_VERSION, "flash-attn": "2.8.3"})
    return MachineFacts(
        python="3.12.11", versions=versions, torch_version=torch, torch_cuda=cuda, torch_arch_list=list(arch),
        cuda_available=True, gpus=[GpuInfo(i, gpu.name, gpu.capability, gpu.memory_gb) for i in range(n)],
        nccl="2.27.3", driver="580.65", smi_gpus=[f"{gpu.name}, 32607 MiB"] * n,
        importable={m.module: stack or m.module == "ray" for m in doctor.STACK_MODULES},
    )


def miles_req(tmp_path: Path, experiment: dict = MILES) -> doctor.DoctorRequirements:
    """Requirements of a miles experiment, with the disk check sized for the test machine."""
    return dataclasses.replace(doctor.requirements_for_experiment(experiment, tmp_path), min_free_disk_gb=0.001)


def rows(report) -> dict[str, doctor.DoctorRow]:
    return {row.check.strip(): row for row in report.rows}


@pytest.fixture
def plan(monkeypatch):
    """Give the miles engine's memory plan (another part of mileage) a chosen verdict."""
    from mileage.engines.miles.engine import MilesEngine

    calls = []

    def set_verdict(fits: bool, summary: str = "needs 40 GiB per GPU"):
        def memory_plan(self, experiment, name=None, gpus=None, gpu_memory_gb=None):
            calls.append((gpus, gpu_memory_gb))
            return types.SimpleNamespace(
                fits=fits, summary=summary, problems=[] if fits else [summary],
                gpu_peak_gib=40.0, gpu_memory_gib=31.8 if not fits else 79.6, host_total_gib=177.0,
            )

        monkeypatch.setattr(MilesEngine, "memory_plan", memory_plan)
        return calls

    return set_verdict


def test_demo_passes_on_this_machine(tmp_path):
    """The real probe on the machine the tests run on: the CPU demo can run (exit code 0)."""
    out = io.StringIO()
    code = doctor.main_doctor(DEMO, results_dir=tmp_path / "results", name="demo", stream=out)
    table = out.getvalue()
    assert code == 0, table
    assert "verdict: can run here (0 FAIL" in table


def test_miles_fails_on_this_cpu_machine_with_reasons(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the CPU verdict is covered by the facts-based tests")
    out = io.StringIO()
    code = doctor.main_doctor(MILES, results_dir=tmp_path, name="glm", stream=out)
    table = out.getvalue()
    assert code == 1
    assert "verdict: cannot run here" in table
    assert f"install torch=={pins.TORCH_CU128}" in table
    assert miles_pins.MILES_CONTAINER_IMAGE in table


def test_miles_on_cpu_facts_fails_each_missing_piece(tmp_path):
    req = doctor.requirements_for_experiment(MILES, results_dir=tmp_path)
    report = doctor.run_doctor(req, cpu_facts())
    found = rows(report)
    assert report.exit_code == 1
    assert found["torch CUDA build"].status == "FAIL"
    assert found["NVIDIA driver"].status == "FAIL"
    assert found["CUDA GPUs"].status == "FAIL" and "resources.gpus=2" in found["CUDA GPUs"].hint
    for module in ("miles", "megatron.core", "sglang", "transformer_engine"):
        assert found[f"{module} importable"].status == "FAIL"
        assert "envs/README.md" in found[f"{module} importable"].hint
    assert found["flash_attn importable"].status == "WARN"  # the fused attention path remains


def test_local_engine_on_cuda_device_needs_a_gpu(tmp_path):
    exp = {**DEMO, "resources": {"gpus": 1, "device": "cuda"}}
    report = doctor.run_doctor(doctor.requirements_for_experiment(exp, tmp_path), cpu_facts())
    assert rows(report)["CUDA GPUs"].status == "FAIL"
    # device auto falls back to the CPU: a warning, not a failure
    exp = {**DEMO, "resources": {"gpus": 1, "device": "auto"}}
    report = doctor.run_doctor(doctor.requirements_for_experiment(exp, tmp_path), cpu_facts())
    assert report.exit_code == 0 and rows(report)["CUDA GPUs"].status == "WARN"


def test_rtx5090_box_with_the_pinned_stack_passes(tmp_path, plan, monkeypatch):
    monkeypatch.setenv("NCCL_NVLS_ENABLE", "0")
    calls = plan(fits=True, summary="fits: 28 of 31 GiB per GPU")
    report = doctor.run_doctor(miles_req(tmp_path), gpu_box())
    found = rows(report)
    assert [r for r in report.rows if r.status == "FAIL"] == []
    assert found["sm_120 support"].status == "OK"
    assert found["memory plan"].found == "peak 40.0 of 79.6 GiB/GPU, host 177 GiB"
    assert calls == [(2, RTX5090.memory_gb)], "the plan must judge the GPUs that are actually here"


def test_rtx5090_with_a_torch_lacking_sm120_fails(tmp_path, plan):
    plan(fits=True)
    facts = gpu_box(arch=("sm_80", "sm_90"), torch="2.6.0+cu126", cuda="12.6")
    report = doctor.run_doctor(miles_req(tmp_path), facts)
    found = rows(report)
    assert report.exit_code == 1
    assert found["torch arch list"].status == "FAIL" and "sm_120" in found["torch arch list"].hint
    assert found["sm_120 support"].status == "FAIL"
    assert found["NCCL_NVLS_ENABLE"].status == "WARN"


def test_hopper_box_needs_no_sm120_checks(tmp_path, plan):
    plan(fits=True)
    h100 = GpuInfo(0, "NVIDIA H100 80GB HBM3", (9, 0), 79.1)
    report = doctor.run_doctor(miles_req(tmp_path), gpu_box(n=8, gpu=h100))
    assert report.exit_code == 0
    assert "sm_120 support" not in rows(report)


def test_plan_that_does_not_fit_fails(tmp_path, plan):
    plan(fits=False, summary="needs 62 GiB per GPU, has 31")
    report = doctor.run_doctor(miles_req(tmp_path), gpu_box())
    assert rows(report)["memory plan"].status == "FAIL" and report.exit_code == 1


def test_missing_plan_module_is_a_warning(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mileage.engines.miles.plan", None)  # import raises ImportError
    report = doctor.run_doctor(miles_req(tmp_path), gpu_box())
    row = rows(report)["memory plan"]
    assert (row.status, row.found) == ("WARN", "plan failed") and "mileage.engines.miles.plan" in row.hint


def test_ray_version_must_match_the_driver(tmp_path, plan):
    plan(fits=True)
    facts = gpu_box()
    facts.versions["ray"] = "2.53.0"
    report = doctor.run_doctor(miles_req(tmp_path), facts)
    assert rows(report)["ray importable"].status == "FAIL"


def test_light_env_missing_package_fails_local_but_only_warns_miles(tmp_path, plan):
    plan(fits=True)
    versions = light_env_versions()
    del versions["trl"]
    local = doctor.run_doctor(doctor.requirements_for_experiment(DEMO, tmp_path), cpu_facts(versions=versions))
    assert rows(local)["trl"].status == "FAIL" and local.exit_code == 1
    facts = gpu_box()
    del facts.versions["trl"]
    remote = doctor.run_doctor(miles_req(tmp_path), facts)
    assert rows(remote)["trl"].status == "WARN"


def test_local_build_label_satisfies_a_pin(tmp_path):
    versions = light_env_versions()
    versions["torch"] = versions["torch"] + "+cpu"
    versions["numpy"] = "1.26.4"
    report = doctor.run_doctor(doctor.requirements_for_experiment(DEMO, tmp_path), cpu_facts(versions=versions))
    found = rows(report)
    assert "torch" not in [r.check.strip() for r in report.rows if r.status != "OK"]
    assert found["numpy"].status == "WARN" and report.exit_code == 0


def test_too_little_disk_fails(tmp_path):
    req = doctor.DoctorRequirements(results_dir=tmp_path / "not" / "yet", min_free_disk_gb=1e9)
    row = rows(doctor.run_doctor(req, cpu_facts()))["free disk"]
    assert row.status == "FAIL"


def test_offline_hub_needs_lock_and_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    from mileage.fetch.hf_snapshot import snapshot_dir

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    exp = {**DEMO, "data": {"train": {"source": "hf", "repo": "org/math", "revision": None},
                            "eval": {"source": "demo"}}}
    lock = tmp_path / "hf.lock.json"
    req = doctor.requirements_for_experiment(exp, tmp_path, hf_lock=lock)
    assert rows(doctor.run_doctor(req, cpu_facts()))["HF cache (offline)"].status == "FAIL"
    sha = "a" * 40
    lock.write_text('{"dataset:org/math": "%s"}' % sha)
    snapshot_dir(constants.HF_HUB_CACHE, "org/math", "dataset", sha).mkdir(parents=True)
    assert rows(doctor.run_doctor(req, cpu_facts()))["HF cache (offline)"].status == "OK"


def test_model_card_repo_is_checked(tmp_path, monkeypatch):
    models = tmp_path / "models"
    models.mkdir()
    (models / "glm.yaml").write_text("hf:\n  repo: zai-org/GLM-Z1-9B-0414\n  revision: main\n")
    exp = {**MILES, "model": {"source": "hf", "card": "glm", "repo": None, "revision": None}}
    req = doctor.requirements_for_experiment(exp, tmp_path, models_dir=models)
    assert req.hf_repos == (doctor.HfRepo("zai-org/GLM-Z1-9B-0414", "model", "main"),)


def test_silent_hub_does_not_hang():
    # A server that accepts the connection but never answers: the check must give up on its own.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        start = time.monotonic()
        reachable, detail = doctor.hub_reachable(f"http://127.0.0.1:{server.getsockname()[1]}/", timeout=0.5)
    assert not reachable and detail
    assert time.monotonic() - start < 2.0


def test_bad_experiment_keys_are_named():
    with pytest.raises(DoctorError, match=r"experiments\.x\.engine"):
        doctor.requirements_for_experiment({"engine": "vllm"}, name="x")
    with pytest.raises(DoctorError, match=r"resources\.gpus"):
        doctor.requirements_for_experiment({"engine": "miles", "resources": {"gpus": -1}})


def test_table_lists_rows_hints_and_verdict(tmp_path):
    report = doctor.run_doctor(doctor.requirements_for_experiment(MILES, tmp_path, name="glm"), cpu_facts())
    table = doctor.format_table(report)
    lines = table.splitlines()
    assert lines[0] == "mileage doctor: glm (engine miles)"
    header = lines[1]
    assert header.split() == ["check", "expected", "found", "status"]
    status_col = header.index("status")
    body = lines[3:3 + len(report.rows)]
    assert [line[status_col:].strip() for line in body] == [r.status for r in report.rows]
    assert "FAIL torch CUDA build: install torch==" in table
    fails = sum(r.status == "FAIL" for r in report.rows)
    assert lines[-1] == f"verdict: cannot run here ({fails} FAIL, {sum(r.status == 'WARN' for r in report.rows)} WARN)"


def test_light_env_pins_come_from_pyproject():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    expected = {pins.normalise(d.split("[")[0].split("==")[0]): d.split("==")[1] for d in project["dependencies"]}
    assert pins.light_env_pins() == expected


# ---- miles' own parser on the experiment's argv (the stand-in miles of tests/fake_miles plays the installed one)

REPO = Path(__file__).resolve().parents[1]
FAKE_MILES = REPO / "tests" / "fake_miles"
H100 = GpuInfo(0, "NVIDIA H100 80GB HBM3", (9, 0), 79.6)


def shipped_miles_req(tmp_path: Path, file: Path) -> doctor.DoctorRequirements:
    from mileage.config import load_experiment

    name, exp = load_experiment(str(file), REPO / "config" / "config.yaml")
    req = doctor.requirements_for_experiment(exp, tmp_path / "results", name=name,
                                             config_path=REPO / "config" / "config.yaml")
    assert req.job is not None, req.job_error
    return req


def miles_experiment_files():
    from mileage.config import load_experiment

    files = sorted((REPO / "config" / "experiments").glob("*.yaml"))
    return [f for f in files if load_experiment(str(f), REPO / "config" / "config.yaml")[1]["engine"] != "local"]


@pytest.mark.parametrize("file", miles_experiment_files(), ids=lambda f: f.stem)
def test_installed_miles_accepts_every_shipped_experiments_argv(tmp_path, monkeypatch, file):
    monkeypatch.setenv("PYTHONPATH", str(FAKE_MILES))
    report = doctor.run_doctor(shipped_miles_req(tmp_path, file), cpu_facts())
    row = rows(report)["miles parse_args"]
    assert (row.found, row.status) == ("accepted", "OK"), row


def test_installed_miles_refusal_is_shown_and_fails(tmp_path, monkeypatch):
    # An installed parser that has none of the flags: argparse's own refusal, as miles' parser gives it.
    package = tmp_path / "site" / "miles" / "utils"
    package.mkdir(parents=True)
    (package.parent / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "arguments.py").write_text(
        "import argparse\ndef parse_args():\n    return argparse.ArgumentParser(prog='train.py').parse_args()\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "site"))
    report = doctor.run_doctor(shipped_miles_req(tmp_path, REPO / "config/experiments/glm-z1-9b-8xh100.yaml"),
                               cpu_facts())
    row = rows(report)["miles parse_args"]
    assert (row.found, row.status) == ("refused", "FAIL")
    assert "train.py: error: unrecognized arguments: --" in row.hint
    assert report.exit_code == 1


def test_parse_runs_in_the_jobs_environment(tmp_path, monkeypatch):
    # Megatron asserts CUDA_DEVICE_MAX_CONNECTIONS=1 for tensor parallelism on Hopper: the verdict must come from
    # the environment the job gets, not from the doctor's own.
    monkeypatch.setenv("PYTHONPATH", str(FAKE_MILES))
    monkeypatch.delenv("CUDA_DEVICE_MAX_CONNECTIONS", raising=False)
    req = shipped_miles_req(tmp_path, REPO / "config/experiments/glm-z1-9b-8xh100.yaml")
    argv = req.job.argv()
    bare = doctor.parse_with_program(dataclasses.replace(req.job.spec().program, python=sys.executable, cwd=""), argv, {}, 60)
    assert bare.verdict == "refused" and "CUDA_DEVICE_MAX_CONNECTIONS" in bare.message
    assert rows(doctor.run_doctor(req, cpu_facts()))["miles parse_args"].status == "OK"


@pytest.mark.parametrize("facts, status", [(cpu_facts(), "WARN"), (gpu_box(n=8, gpu=H100), "FAIL")],
                         ids=["cpu-box", "gpu-box"])
def test_miles_not_importable_warns_off_the_gpu_box_and_fails_on_it(tmp_path, monkeypatch, facts, status):
    monkeypatch.delenv("PYTHONPATH", raising=False)
    report = doctor.run_doctor(shipped_miles_req(tmp_path, REPO / "config/experiments/glm-z1-9b-8xh100.yaml"),
                               facts)
    row = rows(report)["miles parse_args"]
    assert (row.found, row.status) == ("miles.utils.arguments not importable", status)
    assert "No module named 'miles'" in row.hint


def test_a_parser_that_hangs_gets_no_verdict(tmp_path):
    (tmp_path / "miles" / "utils").mkdir(parents=True)
    (tmp_path / "miles" / "__init__.py").write_text("")
    (tmp_path / "miles" / "utils" / "__init__.py").write_text("")
    (tmp_path / "miles" / "utils" / "arguments.py").write_text("import time\ndef parse_args():\n    time.sleep(60)\n")
    parser = ProgramCheck("miles parse_args", sys.executable, str(tmp_path), "miles.utils.arguments", "parse_args",
                          "train.py")
    verdict = doctor.parse_with_program(parser, ["--lr", "1e-6"], {}, timeout_s=1)
    assert verdict.verdict == "no answer" and "1 s" in verdict.message


def test_cli_doctor_shows_the_miles_verdict(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(FAKE_MILES))
    monkeypatch.chdir(REPO)
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    from mileage.cli import main

    main(["--results-dir", str(tmp_path / "results"), "doctor", "config/experiments/glm-z1-9b-8xh100.yaml"])
    assert re.search(r"miles parse_args\s+accepted \(python3?.*tokens\)\s+accepted\s+OK", out.getvalue())
