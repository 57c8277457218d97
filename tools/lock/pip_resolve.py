"""What an install would hold, resolved without installing (shared by the two lock scripts).

`resolve` asks pip (`pip install --dry-run --report`): its resolver reads each candidate's metadata (PEP 658
files on PyPI, so no wheel is downloaded) and writes the full set it would install as JSON; `--ignore-installed`
makes the answer independent of the interpreter that runs it. That is the light environment's resolve, done as
this machine's pip is set up. `compile_for` asks uv (`uv pip compile --python-platform`) for another machine
than this one: pip's backtracking over the miles stack's few hundred packages ran for over ten minutes here
without an answer, uv answers in about half a minute. uv's version is pinned (UV_VERSION): another resolver
version may pick otherwise.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

PYPI = "https://pypi.org/simple"


@dataclass(frozen=True)
class Resolved:
    name: str  # PEP 503 normalised
    version: str
    filename: str  # the file pip chose (its tags say which glibc it needs)


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def resolve(
    requirements: list[str],
    *,
    constraints: list[str] = (),
    target: tuple[str, str] | None = None,
    pypi_only: bool = False,
    no_deps: bool = False,
    find_links: Path | None = None,
) -> list[Resolved]:
    """The distributions pip resolves for `requirements` (sorted by name).

    target: (python_version, platform), e.g. ("3.12", "manylinux_2_34_x86_64"), to resolve for a machine
    other than this one. pypi_only: ignore this machine's pip configuration (extra indexes, find-links,
    constraints), so the answer depends on PyPI alone.
    """
    with tempfile.TemporaryDirectory(prefix="lock-") as tmp:
        req_file = Path(tmp, "requirements.txt")
        req_file.write_text("\n".join(requirements) + "\n", encoding="utf-8")
        report = Path(tmp, "report.json")
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
               "--report", str(report), "-r", str(req_file)]
        if constraints:
            con_file = Path(tmp, "constraints.txt")
            con_file.write_text("\n".join(constraints) + "\n", encoding="utf-8")
            cmd += ["-c", str(con_file)]
        if no_deps:
            cmd.append("--no-deps")
        if find_links is not None:
            cmd += ["--find-links", str(find_links)]
        env = dict(os.environ)
        if pypi_only:
            for key in [k for k in env if k.startswith("PIP_") and k != "PIP_CERT"]:
                del env[key]
            env["PIP_CONFIG_FILE"] = os.devnull
            cmd += ["--index-url", PYPI]
            cert = os.environ.get("PIP_CERT")
            if cert:
                cmd += ["--cert", cert]
        if target:
            python_version, platform = target
            cmd += ["--python-version", python_version, *platform_options(platform), "--only-binary=:all:",
                    "--implementation", "cp", "--target", str(Path(tmp, "target"))]  # older pip wants --target
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"pip could not resolve:\n{proc.stderr.strip()}\n(command: {' '.join(cmd)})")
        data = json.loads(report.read_text(encoding="utf-8"))
    out = []
    for item in data["install"]:
        meta = item["metadata"]
        url = item.get("download_info", {}).get("url", "")
        out.append(Resolved(normalise(meta["name"]), meta["version"], url.rsplit("/", 1)[-1]))
    return sorted(out, key=lambda r: r.name)


UV_VERSION = "0.13.9"


def uv_command() -> list[str]:
    """uv at UV_VERSION: `python -m uv` of this interpreter, else `uv` on PATH."""
    import shutil

    for cmd in ([sys.executable, "-m", "uv"], [shutil.which("uv") or "uv"]):
        try:
            out = subprocess.run([*cmd, "--version"], capture_output=True, text=True)
        except OSError:
            continue
        if out.returncode == 0:
            version = out.stdout.split()[1]
            if version != UV_VERSION:
                raise SystemExit(f"uv {version} found, the lock is made with uv {UV_VERSION}: "
                                 f"pip install uv=={UV_VERSION}")
            return cmd
    raise SystemExit(f"uv is needed to resolve for another platform: pip install uv=={UV_VERSION}")


def compile_for(requirements: list[str], constraints: list[str], python_version: str, uv_platform: str,
                find_links: Path | None = None) -> dict[str, str]:
    """{normalised name: version} that uv resolves from PyPI alone (no pip or uv configuration of this machine)
    for CPython `python_version` on `uv_platform` (e.g. x86_64-manylinux_2_34), wheels only."""
    with tempfile.TemporaryDirectory(prefix="lock-") as tmp:
        req_file, con_file, out_file = Path(tmp, "requirements.in"), Path(tmp, "constraints.txt"), Path(tmp, "out.txt")
        req_file.write_text("\n".join(requirements) + "\n", encoding="utf-8")
        con_file.write_text("\n".join(constraints) + "\n", encoding="utf-8")
        cmd = [*uv_command(), "pip", "compile", "--no-config", "--quiet", "--no-header", "--no-annotate",
               "--python-version", python_version, "--python-platform", uv_platform, "--index-url", PYPI,
               "--only-binary", ":all:", "-c", str(con_file), str(req_file), "-o", str(out_file)]
        if find_links is not None:
            cmd += ["--find-links", str(find_links)]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
        if os.environ.get("PIP_CERT"):
            env["SSL_CERT_FILE"] = os.environ["PIP_CERT"]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"uv could not resolve:\n{proc.stderr.strip()}\n(command: {' '.join(cmd)})")
        pins = {}
        for line in out_file.read_text(encoding="utf-8").splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                name, _, version = line.partition("==")
                pins[normalise(name.split("[", 1)[0])] = version.strip()
    return pins


def requires_dist(requirement: str, target: tuple[str, str]) -> list[str]:
    """The Requires-Dist lines of one exact release on PyPI, read from its metadata without installing it."""
    with tempfile.TemporaryDirectory(prefix="lock-") as tmp:
        report = Path(tmp, "report.json")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") or k == "PIP_CERT"}
        env["PIP_CONFIG_FILE"] = os.devnull
        python_version, platform = target
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-deps",
               "--quiet", "--report", str(report), "--index-url", PYPI, "--python-version", python_version,
               *platform_options(platform), "--only-binary=:all:", "--implementation", "cp", "--target",
               str(Path(tmp, "target")), requirement]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"pip could not read {requirement}:\n{proc.stderr.strip()}")
        (item,) = json.loads(report.read_text(encoding="utf-8"))["install"]
    return list(item["metadata"].get("requires_dist", []))


def stand_in_wheel(directory: Path, name: str, version: str, requires: list[str]) -> Path:
    """A metadata-only wheel: lets pip resolve around a package it cannot download (e.g. a +cu128 torch)."""
    import zipfile

    dist = f"{name.replace('-', '_')}-{version}"
    path = directory / f"{dist}-py3-none-any.whl"
    metadata = "".join(["Metadata-Version: 2.1\n", f"Name: {name}\n", f"Version: {version}\n"]
                       + [f"Requires-Dist: {line}\n" for line in requires])
    files = {f"{dist}.dist-info/METADATA": metadata,
             f"{dist}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: mileage\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    files[f"{dist}.dist-info/RECORD"] = "".join(f"{f},,\n" for f in [*files, f"{dist}.dist-info/RECORD"])
    with zipfile.ZipFile(path, "w") as zf:
        for arcname, text in sorted(files.items()):
            zf.writestr(zipfile.ZipInfo(arcname, date_time=(1980, 1, 1, 0, 0, 0)), text)
    return path


def platform_options(platform: str) -> list[str]:
    """`--platform` for `manylinux_2_X_<arch>` and every older manylinux tag (older pip does not expand it)."""
    match = re.fullmatch(r"manylinux_2_(\d+)_(\w+)", platform)
    if not match:
        return ["--platform", platform]
    newest, arch = int(match.group(1)), match.group(2)
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(newest, 4, -1)]
    tags += [f"manylinux2014_{arch}", f"manylinux2010_{arch}", f"manylinux1_{arch}"]
    return [opt for tag in tags for opt in ("--platform", tag)]


def write_or_check(out, text: str, script: str, check: bool) -> int:
    """Write the lock `text` to `out`, or with `check` say whether `out` already holds it (exit status 1 if not):
    what both lock scripts end with."""
    current = out.read_text(encoding="utf-8") if out.exists() else ""
    if check:
        if current != text:
            print(f"{out} differs from a fresh resolve: run python {script}", file=sys.stderr)
            return 1
        print(f"{out}: up to date")
        return 0
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out} ({len(text.splitlines())} lines)")
    return 0
