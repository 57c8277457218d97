"""The pinned environments: conda env files, the Nix flake and its lock, the SLURM profile.

What a user relies on: every env file parses and pins every package exactly (so `--sdm conda` builds the
same env everywhere), the pins agree with pyproject.toml and mileage/pins.py (mileage/engines/miles/pins.py for the miles stack), the flake parses and its lock
is a valid lock of the stated nixpkgs revision, and the SLURM profile turns a rule's gpu resource into a
GPU request.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from mileage import pins
from mileage.engines.miles import env_lock
from mileage.engines.miles import pins as miles_pins

ROOT = Path(__file__).resolve().parents[1]
NIXPKGS_REV = "b43c397f6c213918d6cfe6e3550abfe79b5d1c51"
NIXPKGS_NARHASH = "sha256-1Cu92i1KSPbhPCKxoiVG5qnoRiKTgR5CcGSRyLpOd7Y="
NIXPKGS_LAST_MODIFIED = 1751211869

_CONDA_PIN = re.compile(r"^(?P<name>[A-Za-z0-9_.\-]+)(?:\[[^\]]+\])?=(?P<version>[0-9][A-Za-z0-9_.+\-]*)$")
_PIP_PIN = re.compile(r"^(?P<name>[A-Za-z0-9_.\-]+)(?:\[[^\]]+\])?==(?P<version>[0-9][A-Za-z0-9_.+!\-]*)$")
_PIP_GIT = re.compile(r"^(?P<name>[A-Za-z0-9_.\-]+)(?:\[[^\]]+\])? @ git\+https://\S+@(?P<commit>[0-9a-f]{40})(#\S*)?$")
_PIP_OPTIONS = ("--index-url ", "--extra-index-url ")


def unpinned(env: dict) -> list[str]:
    """Entries of a conda env that are not exact pins (conda `=`, pip `==`, or a git URL at a full commit)."""
    bad = []
    for dep in env.get("dependencies", []):
        if isinstance(dep, dict):
            for item in dep.get("pip", []):
                item = item.strip()
                if item.startswith(_PIP_OPTIONS):
                    continue
                if not (_PIP_PIN.match(item) or _PIP_GIT.match(item)):
                    bad.append(f"pip: {item}")
        elif not _CONDA_PIN.match(dep.strip()):
            bad.append(f"conda: {dep}")
    return bad


def pip_pins(env: dict) -> dict[str, str]:
    out = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for item in dep["pip"]:
                match = _PIP_PIN.match(item.strip())
                if match:
                    out[pins.normalise(match["name"])] = match["version"]
    return out


def conda_pins(env: dict) -> dict[str, str]:
    return {m["name"]: m["version"] for d in env["dependencies"] if isinstance(d, str) for m in [_CONDA_PIN.match(d)]}


def load_env(key: str) -> dict:
    return yaml.safe_load((ROOT / pins.ENV_FILES[key]).read_text(encoding="utf-8"))


@pytest.mark.parametrize("key", sorted(pins.ENV_FILES))
def test_env_file_parses_and_pins_everything(key):
    env = load_env(key)
    assert isinstance(env, dict) and env["name"].startswith("mileage-")
    assert env["channels"] and "defaults" not in env["channels"], "channels must be explicit (no anaconda defaults)"
    assert unpinned(env) == []
    assert conda_pins(env)["python"] == pins.PYTHON_VERSION


def test_pin_checker_rejects_loose_specs():
    env = {"dependencies": ["python=3.12", "numpy", "cuda-toolkit>=12.8", {"pip": [
        "torch==2.11.0+cu128", "ray[default]>=2.60", "pandas", "x==1.*",
        "megatron-core @ git+https://github.com/radixark/Megatron-LM.git@main",
        "--extra-index-url https://download.pytorch.org/whl/cu128",
    ]}]}
    assert unpinned(env) == [
        "conda: numpy", "conda: cuda-toolkit>=12.8", "pip: ray[default]>=2.60", "pip: pandas", "pip: x==1.*",
        "pip: megatron-core @ git+https://github.com/radixark/Megatron-LM.git@main",
    ]


@pytest.mark.parametrize("key", ["analysis", "local"])
def test_light_envs_agree_with_pyproject(key):
    wanted = pins.light_env_pins()
    env = pip_pins(load_env(key))
    shared = set(env) & set(wanted)
    assert len(shared) >= 10
    # The local engine's torch is the +cpu build of the pinned release.
    assert {n: env[n].split("+")[0] for n in shared} == {n: wanted[n] for n in shared}


def test_miles_env_matches_the_pins_module():
    env = load_env("miles")
    pip = pip_pins(env)
    assert pip["torch"] == pins.TORCH_CU128 and pip["torchvision"] == pins.TORCHVISION_CU128
    assert pip["torchaudio"] == pins.TORCHAUDIO_CU128
    assert pins.version_tuple(pip["torch"]) >= pins.MIN_TORCH_FOR_SM120
    assert pip["transformer-engine"] == pip["transformer-engine-cu12"] == miles_pins.TRANSFORMER_ENGINE_VERSION
    assert pip["ray"] == pins.RAY_VERSION == pins.light_env_pins()["ray"]
    items = [i for d in env["dependencies"] if isinstance(d, dict) for i in d["pip"]]
    assert f"--extra-index-url {pins.PYTORCH_CU128_INDEX}" in items
    megatron = [m for m in map(_PIP_GIT.match, items) if m and m["name"] == "megatron-core"]
    assert megatron and megatron[0]["commit"] == miles_pins.MEGATRON_COMMIT
    assert conda_pins(env)["cuda-toolkit"].startswith(pins.CUDA_VERSION + ".")
    assert any("cuda-" + conda_pins(env)["cuda-toolkit"] in c for c in env["channels"])


def test_flake_mirrors_the_cuda_pins():
    text = (ROOT / "flake.nix").read_text(encoding="utf-8")
    assert f'torchCu128 = "{pins.TORCH_CU128}"' in text
    assert f'torchvisionCu128 = "{pins.TORCHVISION_CU128}"' in text
    assert f'torchaudioCu128 = "{pins.TORCHAUDIO_CU128}"' in text
    assert f'"{pins.PYTORCH_CU128_INDEX}"' in text
    assert "cudaPackages_12_8" in text and 'cudaCapabilities = [ "12.0" ]' in text
    assert "allowUnfree = true" in text and "/run/opengl-driver/lib" in text


def test_flake_lock_pins_the_stated_nixpkgs():
    lock = json.loads((ROOT / "flake.lock").read_text(encoding="utf-8"))
    assert lock["version"] == 7 and lock["root"] == "root"
    node = lock["nodes"][lock["nodes"]["root"]["inputs"]["nixpkgs"]]
    assert node["locked"] == {
        "lastModified": NIXPKGS_LAST_MODIFIED, "narHash": NIXPKGS_NARHASH, "owner": "NixOS",
        "repo": "nixpkgs", "rev": NIXPKGS_REV, "type": "github",
    }
    original = node["original"]
    url = f"github:{original['owner']}/{original['repo']}/{original['ref']}"
    assert f'inputs.nixpkgs.url = "{url}";' in (ROOT / "flake.nix").read_text(encoding="utf-8")


def test_flake_parses():
    nix_instantiate = shutil.which("nix-instantiate")
    if nix_instantiate is None:
        pytest.skip("nix-instantiate not installed (apt-get install nix-bin): flake.nix parse not checked")
    result = subprocess.run([nix_instantiate, "--parse", str(ROOT / "flake.nix")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_flake_metadata_offline(tmp_path):
    nix, git = shutil.which("nix"), shutil.which("git")
    if nix is None or git is None:
        pytest.skip("nix or git not installed: `nix flake metadata --offline` not checked")
    # Flakes only see files git tracks: check a throwaway repository holding just the two files.
    for name in ("flake.nix", "flake.lock"):
        shutil.copy(ROOT / name, tmp_path / name)
    subprocess.run([git, "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([git, "add", "flake.nix", "flake.lock"], cwd=tmp_path, check=True)
    result = subprocess.run(
        [nix, "--extra-experimental-features", "nix-command flakes", "--offline",
         "flake", "metadata", "--no-update-lock-file", "--json", "."],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    meta = json.loads(result.stdout)
    assert meta["locks"]["nodes"]["nixpkgs"]["locked"]["rev"] == NIXPKGS_REV


def slurm_profile() -> dict:
    return yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text(encoding="utf-8"))


def test_slurm_profile_uses_the_pinned_plugin():
    profile = slurm_profile()
    assert profile["executor"] == "slurm"
    assert profile["default-resources"]["gpu"] == 0, "CPU rules must not ask SLURM for a GPU"
    dev = pins.light_env_pins(include_dev=True)
    assert "snakemake-executor-plugin-slurm" in dev


def test_slurm_plugin_maps_gpu_resource_to_a_gpu_request():
    utils = pytest.importorskip("snakemake_executor_plugin_slurm.utils")
    defaults = slurm_profile()["default-resources"]

    class Resources(dict):
        __getattr__ = dict.__getitem__

    train = SimpleNamespace(resources=Resources({**defaults, "gpu": 2}))
    assert utils.set_gres_string(train).strip() == "--gpus=2"
    model = SimpleNamespace(resources=Resources({**defaults, "gpu": 2, "gpu_model": "h100"}))
    assert utils.set_gres_string(model).strip() == "--gpus=h100:2"
    cpu_rule = SimpleNamespace(resources=Resources(defaults))
    assert utils.set_gres_string(cpu_rule).strip() == ""


def test_slurm_profile_dry_run_replaces_the_default_profile(tmp_path):
    snakemake = shutil.which("snakemake", path=str(Path(__import__("sys").executable).parent)) or shutil.which(
        "snakemake"
    )
    if snakemake is None:
        pytest.skip("snakemake not installed")
    pytest.importorskip("snakemake_executor_plugin_slurm")
    shutil.copytree(ROOT / "profiles/slurm", tmp_path / "profiles/slurm")
    (tmp_path / "profiles/default").mkdir(parents=True)
    (tmp_path / "profiles/default/config.yaml").write_text("resources:\n  gpu: 1\n")
    (tmp_path / "Snakefile").write_text(
        'rule train:\n    output: "done.txt"\n    resources: gpu=2\n    shell: "touch {output}"\n'
    )
    result = subprocess.run(
        [snakemake, "--workflow-profile", "profiles/slurm", "--dry-run"],
        cwd=tmp_path, capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # A gpu=2 job is scheduled although profiles/default would cap gpu at 1.
    assert re.search(r"resources: .*\bgpu=2\b", result.stdout + result.stderr)


def test_rtx5090_guide_names_the_pinned_commits_and_wheels():
    guide = (ROOT / "docs/rtx5090.md").read_text(encoding="utf-8")
    for value in (miles_pins.SGLANG_COMMIT, miles_pins.MEGATRON_COMMIT, miles_pins.MILES_COMMIT, pins.TORCH_CU128,
                  pins.TORCHVISION_CU128, pins.PYTORCH_CU128_INDEX, miles_pins.TRANSFORMER_ENGINE_VERSION,
                  miles_pins.FLASH_ATTN_VERSION, pins.RAY_VERSION, "NCCL_NVLS_ENABLE=0", "--attention-backend fused"):
        assert value in guide, value


# ---- the miles stack: every source at a full commit, the commits one truth (mileage/engines/miles/pins.py) ----------------

POST_DEPLOY = ROOT / Path(pins.ENV_FILES["miles"]).with_suffix(".post-deploy.sh")
_GIT_REF = re.compile(r"git\+(?P<repo>https://[^@\s\"]+?)(?:\.git)?@(?P<ref>[^#\s\"]+)")
_CLONE = re.compile(r"^checkout (?P<repo>https://\S+?)(?:\.git)? (?P<ref>\S+) ", re.M)
_FULL_COMMIT = re.compile(r"^[0-9a-f]{40}$")
MILES_LOCK = ROOT / "envs" / "miles.lock.txt"
STACK_COMMITS = {
    miles_pins.MILES_REPO.removesuffix(".git"): miles_pins.MILES_COMMIT,
    miles_pins.SGLANG_REPO.removesuffix(".git"): miles_pins.SGLANG_COMMIT,
    miles_pins.MEGATRON_REPO.removesuffix(".git"): miles_pins.MEGATRON_COMMIT,
    env_lock.MBRIDGE_REPO.removesuffix(".git"): env_lock.MBRIDGE_COMMIT,
}


def stack_sources() -> list[tuple[str, str, str]]:
    """(file, repository, ref) of every git source of the miles env: its yaml and its post-deploy script."""
    found = []
    for path in (ROOT / pins.ENV_FILES["miles"], POST_DEPLOY, MILES_LOCK):
        text = path.read_text(encoding="utf-8")
        for pattern in (_GIT_REF, _CLONE):
            found += [(path.name, m["repo"], m["ref"]) for m in pattern.finditer(text)]
    return found


def test_the_pinned_stack_commits_are_full_hashes():
    # A prefix would be a guess at which commit is meant: refuse it here, loudly.
    for name, commit in (("MILES_COMMIT", miles_pins.MILES_COMMIT), ("SGLANG_COMMIT", miles_pins.SGLANG_COMMIT),
                         ("MEGATRON_COMMIT", miles_pins.MEGATRON_COMMIT), ("MILES_FLAGS_COMMIT", miles_pins.MILES_FLAGS_COMMIT)):
        assert _FULL_COMMIT.match(commit), f"mileage.engines.miles.pins.{name} = {commit!r} is not a full 40-hex commit"


def test_the_miles_env_installs_miles_sglang_and_megatron_at_the_pinned_commits():
    sources = stack_sources()
    assert POST_DEPLOY.is_file(), "Snakemake runs <env>.post-deploy.sh after creating the env: it must exist"
    assert {repo for _, repo, _ in sources} == set(STACK_COMMITS), sources
    wrong = [(f, repo, ref) for f, repo, ref in sources if not _FULL_COMMIT.match(ref) or ref != STACK_COMMITS[repo]]
    assert wrong == []
    text = POST_DEPLOY.read_text(encoding="utf-8")
    for package in ("sglang", "sglang-kernel", "miles", "mbridge"):  # built or installed from the lock's git line
        assert f'"$(locked {package})"' in text, package
    # Both checkouts the jobs run from (train.py and tools/; megatron.training on PYTHONPATH) are cloned.
    assert {m["repo"] for m in _CLONE.finditer(text)} == {miles_pins.MILES_REPO.removesuffix(".git"),
                                                          miles_pins.MEGATRON_REPO.removesuffix(".git")}


def test_the_post_deploy_builds_against_the_envs_torch():
    text = POST_DEPLOY.read_text(encoding="utf-8")
    assert "set -euo pipefail" in text and 'PIP=(python -m pip install --no-deps)' in text
    for package in ("sglang-kernel", "transformer-engine-torch", "flash-attn"):  # compiled against the env's torch
        assert f'"${{PIP[@]}}" --no-build-isolation "$(locked {package})"' in text, package
    lock = lock_lines()
    assert lock["transformer-engine-torch"] == f"transformer-engine-torch=={miles_pins.TRANSFORMER_ENGINE_VERSION}"
    assert lock["flash-attn"] == f"flash-attn=={miles_pins.FLASH_ATTN_VERSION}"
    assert 'TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-12.0}"' in text
    bash = shutil.which("bash")
    if bash:
        result = subprocess.run([bash, "-n", str(POST_DEPLOY)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr


def test_the_commits_and_cuda_floor_agree_with_facts():
    facts = ROOT.parent / "shared" / "miles" / "FACTS.md"
    if not facts.is_file():
        pytest.skip(f"{facts} not here: the commits are checked against mileage/engines/miles/pins.py only")
    text = facts.read_text(encoding="utf-8")
    assert f"`v0.1.0` = commit `{miles_pins.MILES_COMMIT}`" in text
    assert f"SGLang `{miles_pins.SGLANG_COMMIT}`" in text and f"Megatron-LM `{miles_pins.MEGATRON_COMMIT}`" in text
    assert f"megatron-core {miles_pins.MEGATRON_CORE_VERSION}" in text
    cuda, torch = re.search(r"sm_120 needs CUDA >= ([\d.]+) and PyTorch >= ([\d.]+)", text).groups()
    assert pins.version_tuple(cuda) == pins.MIN_CUDA_FOR_SM120 and pins.version_tuple(torch) == pins.MIN_TORCH_FOR_SM120
    assert pins.version_tuple(pins.TORCH_CU128) >= pins.MIN_TORCH_FOR_SM120
    assert pins.version_tuple(pins.CUDA_VERSION) >= pins.MIN_CUDA_FOR_SM120
    assert pins.TORCH_CU128.endswith("+cu" + pins.CUDA_VERSION.replace(".", ""))


# ---- the locks: envs/miles.lock.txt (tools/lock/miles_env.py) and constraints.txt (tools/lock/light_env.py) -------

_LOCK_LINE = re.compile(r"^(?P<name>[a-z0-9\-]+)(==(?P<version>[0-9][A-Za-z0-9_.+!\-]*)"
                        r"| @ git\+https://\S+@(?P<commit>[0-9a-f]{40})(#subdirectory=[\w\-]+)?)(  # .+)?$")


def lock_lines(path: Path = MILES_LOCK) -> dict[str, str]:
    """{name: requirement} of a lock file, comments stripped; every line must be an exact pin."""
    out = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.startswith("#"):
            continue
        match = _LOCK_LINE.match(line)
        assert match, f"{path.name}:{number}: not an exact pin: {line!r}"
        assert match["name"] not in out, f"{path.name}:{number}: {match['name']} twice"
        out[match["name"]] = line.split("  #", 1)[0]
    return out


def test_the_miles_lock_pins_the_whole_stack():
    lock = lock_lines()
    assert len(lock) >= 40
    assert lock["torch"] == f"torch=={pins.TORCH_CU128}"
    assert lock["torchvision"] == f"torchvision=={pins.TORCHVISION_CU128}"
    assert "scikit-build-core" in lock and "flashinfer-python" in lock and "nvidia-cutlass-dsl" in lock
    for name, repo, commit in (("sglang", miles_pins.SGLANG_REPO, miles_pins.SGLANG_COMMIT),
                               ("sglang-kernel", miles_pins.SGLANG_REPO, miles_pins.SGLANG_COMMIT),
                               ("miles", miles_pins.MILES_REPO, miles_pins.MILES_COMMIT),
                               ("megatron-core", miles_pins.MEGATRON_REPO, miles_pins.MEGATRON_COMMIT),
                               ("mbridge", env_lock.MBRIDGE_REPO, env_lock.MBRIDGE_COMMIT)):
        assert lock[name].startswith(f"{name} @ git+{repo}@{commit}"), lock[name]
    # The kernel under its real distribution name: a line named sgl-kernel would not match what its folder builds.
    assert "sgl-kernel" not in lock
    # Left out with the reason (docs/miles-environment.md): PyPI has it for glibc >= 2.39 only.
    assert "nvidia-resiliency-ext" not in lock


def test_the_miles_lock_has_no_cuda_13_package_but_the_two_cutlass_dsl_needs():
    text = MILES_LOCK.read_text(encoding="utf-8")
    cuda13 = {name for name, line in lock_lines().items()
              if "cu13" in name or (name.startswith(("cuda-", "nvidia-cuda-")) and "==13." in line)}
    assert cuda13 == {"nvidia-cutlass-dsl-libs-cu13", "nvidia-cuda-nvdisasm"}
    for name in cuda13:
        assert re.search(rf"^{name}==\S+  # kept: ", text, re.M), name
    assert lock_lines()["cuda-python"].startswith("cuda-python==12.")  # miles' CUDA 12 rewrite of SGLang's >=13.0


def test_hand_pinned_lines_are_marked_and_everything_else_is_from_pypi():
    text = MILES_LOCK.read_text(encoding="utf-8")
    hand = {line.split(" ")[0].split("==")[0] for line in text.splitlines() if "# hand-pinned: " in line}
    assert hand == {"torch", "torchvision", "torchaudio", "megatron-core", "sglang", "sglang-kernel", "miles",
                    "mbridge", "transformer-engine-torch", "flash-attn"}
    assert re.search(r"^# requires-glibc: \d+\.\d+ ", text, re.M)


def test_the_miles_yaml_installs_the_locked_versions():
    lock = lock_lines()
    env_pip = pip_pins(load_env("miles"))
    differ = {n: (v, lock.get(n)) for n, v in env_pip.items() if lock.get(n) != f"{n}=={v}"}
    assert differ == {}


def test_the_post_deploy_installs_everything_else_from_the_lock_without_a_resolver():
    text = POST_DEPLOY.read_text(encoding="utf-8")
    assert 'LOCK="${MILES_LOCK:-envs/miles.lock.txt}"' in text
    assert "grep -v -e '^#' -e 'hand-pinned'" in text and '"${PIP[@]}" -r "$SRC/pypi-locked.txt"' in text
    # No step installs by name outside the lock: every pip install goes through PIP (--no-deps).
    assert re.findall(r"pip install(?! --no-deps\))", text) == []


LIGHT_LOCK = ROOT / "constraints.txt"


def test_the_light_lock_pins_every_pyproject_pin_at_its_version():
    lock = {name: line.split("==", 1)[1] for name, line in lock_lines(LIGHT_LOCK).items()}
    wanted = pins.light_env_pins(include_dev=True)
    assert len(wanted) >= 30
    # torch is the CPU build of the pinned release (a local version label, which pip's == ignores).
    differ = {n: (v, lock.get(n)) for n, v in wanted.items() if (lock.get(n) or "").split("+")[0] != v}
    assert differ == {}
    assert lock["torch"].endswith("+cpu")
    assert "mileage" not in lock and {"pip", "setuptools"} <= set(lock)  # what the Makefile installs besides


def test_the_makefile_installs_through_the_light_lock():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    installs = re.findall(r"pip install (.*)", makefile)
    assert installs and all("-c $(LOCK)" in line for line in installs), installs
    assert "LOCK := constraints.txt" in makefile
