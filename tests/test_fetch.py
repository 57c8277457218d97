"""Offline tests of hub fetching: pinned revisions, verified snapshots, normalised datasets.

Every test runs against a cache laid out by tests/hf_cache_fixture.py exactly as huggingface_hub writes one,
with HF_HUB_OFFLINE=1, so nothing reaches the network.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from mileage.data.problems import read_problems
from mileage.fetch.datasets import DatasetFormatError, fetch_dataset, normalise_dataset
from mileage.fetch.hf_snapshot import IncompleteSnapshot, fetch_snapshot, read_marker, snapshot_dir
from mileage.fetch.revision_lock import RevisionLockError, read_lock, resolve_revision
try:  # tests/ is on sys.path under pytest's default import mode; a package layout needs the prefix
    from hf_cache_fixture import FakeHub, make_hf_cache, safetensors_bytes
except ImportError:  # pragma: no cover
    from tests.hf_cache_fixture import make_hf_cache, safetensors_bytes

SHARED = Path(__file__).resolve().parents[2] / "shared"
DAPO = SHARED / "data" / "dapo-math-17k" / "dapo-math-17k.head84.jsonl"
AIME = SHARED / "data" / "aime-2024" / "aime-2024.jsonl"
MODEL = "zai-org/tiny-test-model"
SECRET = "hf_mileageTESTtokenDoNotLeak_7f3a9c"


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub read the variable at import; make its own HTTP layer refuse too.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def go_online(monkeypatch):
    """For tests that pass a fake api: the code takes its network path, but no real request can be made."""
    import huggingface_hub.constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)


def model_files() -> dict[str, bytes]:
    return {
        "config.json": json.dumps({"model_type": "llama", "hidden_size": 4}).encode(),
        "tokenizer.json": json.dumps({"version": "1.0", "model": {"type": "BPE"}}).encode(),
        "model.safetensors": safetensors_bytes({"w": [1.0, 2.0, 3.0, 4.0], "b": [0.5]}),
    }


def storage(cache: Path, repo_id: str, repo_type: str) -> Path:
    return cache / "--".join([f"{repo_type}s", *repo_id.split("/")])


# ---- the fixture really is huggingface_hub's layout -------------------------------------------------


def test_fixture_layout_matches_huggingface_hub(tmp_path):
    from huggingface_hub import scan_cache_dir
    from safetensors.numpy import load_file

    sha = make_hf_cache(tmp_path, MODEL, "model", model_files())
    link = storage(tmp_path, MODEL, "model") / "snapshots" / sha / "model.safetensors"
    assert link.is_symlink() and os.readlink(link).startswith("../../blobs/")
    assert (storage(tmp_path, MODEL, "model") / "refs" / "main").read_text() == sha
    assert list(load_file(str(link))["w"]) == [1.0, 2.0, 3.0, 4.0]
    # huggingface_hub's own cache scanner sees one repo, one revision, three files, no warnings.
    info = scan_cache_dir(tmp_path)
    assert not info.warnings
    (repo,) = info.repos
    assert repo.repo_id == MODEL and [r.commit_hash for r in repo.revisions] == [sha]
    assert {f.file_name for f in next(iter(repo.revisions)).files} == set(model_files())


# ---- fetch_snapshot ---------------------------------------------------------------------------------


def test_fetch_snapshot_offline_returns_snapshot_and_writes_marker(tmp_path):
    cache = tmp_path / "hf"
    files = model_files()
    sha = make_hf_cache(cache, MODEL, "model", files)
    marker = tmp_path / "out" / "model.done.json"
    folder = fetch_snapshot(MODEL, "model", sha, cache, expected_files=sorted(files), marker_path=marker)
    assert folder == snapshot_dir(cache, MODEL, "model", sha)
    assert (folder / "config.json").read_bytes() == files["config.json"]
    got = read_marker(marker)
    assert (got["repo_id"], got["repo_type"], got["revision"]) == (MODEL, "model", sha)
    assert got["files"] == {name: len(data) for name, data in files.items()}
    assert Path(got["snapshot_dir"]) == folder


def test_allow_patterns_limit_what_the_marker_vouches_for(tmp_path):
    cache = tmp_path / "hf"
    sha = make_hf_cache(cache, MODEL, "model", model_files())
    marker = tmp_path / "m.json"
    fetch_snapshot(MODEL, "model", sha, cache, ["config.json"], allow_patterns=["*.json"], marker_path=marker)
    assert sorted(read_marker(marker)["files"]) == ["config.json", "tokenizer.json"]


@pytest.mark.parametrize("tree_cache", [True, False], ids=["with-tree-listing", "without-tree-listing"])
def test_missing_file_raises_and_leaves_no_marker(tmp_path, tree_cache):
    cache = tmp_path / "hf"
    sha = make_hf_cache(cache, MODEL, "model", model_files(), tree_cache=tree_cache)
    (storage(cache, MODEL, "model") / "snapshots" / sha / "tokenizer.json").unlink()  # an interrupted download
    marker = tmp_path / "m.json"
    marker.write_text("{}")  # left by an earlier, complete run: must not survive a failed check
    with pytest.raises(IncompleteSnapshot, match="tokenizer.json") as err:
        fetch_snapshot(MODEL, "model", sha, cache, sorted(model_files()), marker_path=marker)
    assert err.value.missing == ["tokenizer.json"]
    assert not marker.exists()


def test_dangling_blob_link_is_incomplete(tmp_path):
    cache = tmp_path / "hf"
    sha = make_hf_cache(cache, MODEL, "model", model_files(), tree_cache=False)
    link = storage(cache, MODEL, "model") / "snapshots" / sha / "config.json"
    (link.parent / os.readlink(link)).unlink()
    with pytest.raises(IncompleteSnapshot, match="config.json"):
        fetch_snapshot(MODEL, "model", sha, cache, None, marker_path=tmp_path / "m.json")
    assert not (tmp_path / "m.json").exists()


def test_empty_expected_file_and_min_sizes(tmp_path):
    cache = tmp_path / "hf"
    files = {**model_files(), "generation_config.json": b""}
    sha = make_hf_cache(cache, MODEL, "model", files)
    with pytest.raises(IncompleteSnapshot, match="generation_config.json: empty"):
        fetch_snapshot(MODEL, "model", sha, cache, ["config.json", "generation_config.json"])
    too_big = len(files["config.json"]) + 1
    with pytest.raises(IncompleteSnapshot, match=f"config.json: size .* < minimum {too_big}"):
        fetch_snapshot(MODEL, "model", sha, cache, ["config.json"], min_sizes={"config.json": too_big})
    fetch_snapshot(MODEL, "model", sha, cache, ["config.json"], min_sizes={"config.json": too_big - 1})


def test_shards_named_in_safetensors_index_must_all_be_present(tmp_path):
    cache = tmp_path / "hf"
    index = {
        "metadata": {"total_size": 24},
        "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"},
    }
    files = {
        "config.json": b"{}",
        "model.safetensors.index.json": json.dumps(index).encode(),
        "model-00001-of-00002.safetensors": safetensors_bytes({"a": [1.0]}),
    }
    # The repo itself lacks shard 2 (no tree listing can flag it): only the index check catches it.
    sha = make_hf_cache(cache, MODEL, "model", files, tree_cache=False)
    with pytest.raises(IncompleteSnapshot, match="model-00002-of-00002.safetensors") as err:
        fetch_snapshot(MODEL, "model", sha, cache, ["config.json"], marker_path=tmp_path / "m.json")
    assert err.value.missing == ["model-00002-of-00002.safetensors"]
    assert not (tmp_path / "m.json").exists()


@pytest.mark.parametrize("tree_cache", [True, False], ids=["with-tree-listing", "without-tree-listing"])
def test_truncated_safetensors_is_incomplete(tmp_path, tree_cache):
    cache = tmp_path / "hf"
    sha = make_hf_cache(cache, MODEL, "model", model_files(), tree_cache=tree_cache)
    blob = (storage(cache, MODEL, "model") / "snapshots" / sha / "model.safetensors").resolve()
    blob.write_bytes(blob.read_bytes()[:-4])
    with pytest.raises(IncompleteSnapshot, match="model.safetensors: .*truncated"):
        fetch_snapshot(MODEL, "model", sha, cache, ["config.json"])


def test_offline_without_cached_commit_says_to_run_online(tmp_path):
    cache = tmp_path / "hf"
    make_hf_cache(cache, MODEL, "model", model_files())
    with pytest.raises(IncompleteSnapshot, match="HF_HUB_OFFLINE.*run once online"):
        fetch_snapshot(MODEL, "model", "0" * 40, cache, ["config.json"])


def test_fetch_snapshot_rejects_a_branch_name(tmp_path):
    with pytest.raises(ValueError, match="40-hex commit sha"):
        fetch_snapshot(MODEL, "model", "main", tmp_path, None)


# ---- online, against an in-process fake of the hub's HTTP API --------------------------------------


def test_online_download_into_empty_cache_then_reuse_without_requests(tmp_path, monkeypatch):
    go_online(monkeypatch)
    monkeypatch.setenv("HF_TOKEN", SECRET)
    cache = tmp_path / "hf"
    files = model_files()
    hub = FakeHub()
    sha = hub.add(MODEL, "model", files)
    marker = tmp_path / "model.done.json"
    with hub:
        folder = fetch_snapshot(MODEL, "model", sha, cache, sorted(files), marker_path=marker)
        n_requests = len(hub.requests)
        assert fetch_snapshot(MODEL, "model", sha, cache, sorted(files), marker_path=marker) == folder
    assert len(hub.requests) == n_requests  # a verified cache is reused without asking the hub again
    assert {name: (folder / name).read_bytes() for name in files} == files
    assert all((folder / name).is_symlink() for name in files)  # laid out as the standard HF cache
    assert read_marker(marker)["files"] == {name: len(data) for name, data in files.items()}
    # The token goes to the hub (and only there): every request carries it; no written file does.
    repo_requests = [r for r in hub.requests if MODEL in r.url.path]
    assert len(repo_requests) >= 4  # tree listing + the files
    assert {r.headers.get("authorization") for r in repo_requests} == {f"Bearer {SECRET}"}
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]


def test_online_fetch_completes_an_interrupted_snapshot(tmp_path, monkeypatch):
    go_online(monkeypatch)
    cache = tmp_path / "hf"
    files = model_files()
    sha = make_hf_cache(cache, MODEL, "model", files)
    link = storage(cache, MODEL, "model") / "snapshots" / sha / "model.safetensors"
    link.resolve().unlink()
    link.unlink()  # the run was killed before this file finished
    hub = FakeHub()
    hub.add(MODEL, "model", files, commit=sha)
    with hub:
        folder = fetch_snapshot(MODEL, "model", sha, cache, sorted(files), marker_path=tmp_path / "m.json")
    fetched = [r.url.path.rsplit("/", 1)[-1] for r in hub.requests if r.method == "GET" and "/resolve/" in r.url.path]
    assert fetched == ["model.safetensors"]  # files already in the cache are not fetched again
    assert (folder / "model.safetensors").read_bytes() == files["model.safetensors"]
    assert (tmp_path / "m.json").exists()


def test_online_dataset_fetch_downloads_only_the_data_file(tmp_path, monkeypatch):
    needs_shared()
    go_online(monkeypatch)
    hub = FakeHub()
    sha = hub.add("zhuzilin/aime-2024", "dataset", {"aime-2024.jsonl": AIME.read_bytes(), "README.md": b"# c\n"})
    with hub:
        fetch_dataset("zhuzilin/aime-2024", sha, tmp_path / "hf", tmp_path / "aime.jsonl")
    assert len(read_jsonl(tmp_path / "aime.jsonl")) == 30
    fetched = {r.url.path.rsplit("/", 1)[-1] for r in hub.requests if r.method == "GET" and "/resolve/" in r.url.path}
    assert fetched == {"aime-2024.jsonl"}


def test_resolve_revision_with_the_real_hfapi(tmp_path, monkeypatch):
    go_online(monkeypatch)
    hub = FakeHub()
    sha = hub.add(MODEL, "model", model_files())
    lock = tmp_path / "hf.lock.json"
    with hub:
        assert resolve_revision(MODEL, "model", None, lock) == sha
        assert resolve_revision(MODEL, "model", "main", lock) == sha
    assert read_lock(lock) == {f"model:{MODEL}": sha, f"model:{MODEL}@main": sha}


# ---- revision lock ----------------------------------------------------------------------------------


class FakeApi:
    """Stands in for HfApi: records calls, answers repo_info with a fixed sha."""

    def __init__(self, sha: str):
        self.sha = sha
        self.calls: list[tuple[str, str, str | None]] = []

    def repo_info(self, repo_id, *, repo_type=None, revision=None, **kwargs):
        self.calls.append((repo_id, repo_type, revision))

        class Info:
            sha = self.sha

        return Info()


class NoNetwork:
    def repo_info(self, *args, **kwargs):
        raise AssertionError("the hub was asked although the answer should come from the lock or the config")


def test_branch_resolved_once_then_read_from_lock(tmp_path, monkeypatch):
    go_online(monkeypatch)
    lock = tmp_path / "config" / "hf.lock.json"
    lock.parent.mkdir()
    other = "dataset:zhuzilin/aime-2024"
    lock.write_text(json.dumps({other: "a" * 40}))
    api = FakeApi("B" * 40)
    first = resolve_revision("zhuzilin/dapo-math-17k", "dataset", None, lock, api=api)
    second = resolve_revision("zhuzilin/dapo-math-17k", "dataset", None, lock, api=api)
    assert first == second == "b" * 40
    assert api.calls == [("zhuzilin/dapo-math-17k", "dataset", None)]
    text = lock.read_text()
    assert json.loads(text) == {other: "a" * 40, "dataset:zhuzilin/dapo-math-17k": "b" * 40}
    assert list(json.loads(text)) == sorted(json.loads(text))
    # later, offline: the lock alone answers
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_revision("zhuzilin/dapo-math-17k", "dataset", None, lock, api=NoNetwork()) == "b" * 40


def test_named_ref_gets_its_own_lock_entry(tmp_path, monkeypatch):
    go_online(monkeypatch)
    lock = tmp_path / "hf.lock.yaml"
    resolve_revision(MODEL, "model", None, lock, api=FakeApi("1" * 40))
    assert resolve_revision(MODEL, "model", "v1.0", lock, api=FakeApi("2" * 40)) == "2" * 40
    assert read_lock(lock) == {f"model:{MODEL}": "1" * 40, f"model:{MODEL}@v1.0": "2" * 40}


def test_explicit_sha_used_as_is_and_conflict_names_lock_and_key(tmp_path):
    lock = tmp_path / "hf.lock.json"
    sha = "c" * 40
    assert resolve_revision(MODEL, "model", sha, lock, api=NoNetwork()) == sha
    assert not lock.exists()  # explicit pins live in the config, not the lock
    lock.write_text(json.dumps({f"model:{MODEL}": "d" * 40}))
    with pytest.raises(RevisionLockError) as err:
        resolve_revision(MODEL, "model", sha, lock, api=NoNetwork())
    assert str(lock) in str(err.value) and f"model:{MODEL}" in str(err.value)


def test_offline_without_lock_entry_says_run_online_or_pin(tmp_path):
    with pytest.raises(RevisionLockError, match="Run once online.*pin a 40-hex commit sha"):
        resolve_revision(MODEL, "model", "main", tmp_path / "hf.lock.json", api=NoNetwork())


def test_malformed_lock_names_file_and_key(tmp_path):
    lock = tmp_path / "hf.lock.json"
    lock.write_text(json.dumps({f"model:{MODEL}": "main"}))
    with pytest.raises(RevisionLockError) as err:
        resolve_revision(MODEL, "model", None, lock, api=NoNetwork())
    assert str(lock) in str(err.value) and f"model:{MODEL}" in str(err.value)


# ---- datasets ---------------------------------------------------------------------------------------


def needs_shared():
    if not (DAPO.exists() and AIME.exists()):
        pytest.skip(f"shared data fixtures not found under {SHARED / 'data'}")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.mark.parametrize(
    "repo_id, source, filename, n_rows, prefix",
    [
        ("zhuzilin/dapo-math-17k", DAPO, "dapo-math-17k.jsonl", 84, "dapo-math-17k"),
        ("zhuzilin/aime-2024", AIME, "aime-2024.jsonl", 30, "aime-2024"),
    ],
)
def test_fetch_dataset_normalises_real_fixtures(tmp_path, repo_id, source, filename, n_rows, prefix):
    needs_shared()
    cache = tmp_path / "hf"
    raw = source.read_bytes()
    sha = make_hf_cache(cache, repo_id, "dataset", {filename: raw, "README.md": b"# card\n"})
    out = tmp_path / "data" / f"{prefix}.jsonl"
    marker = tmp_path / "data" / f"{prefix}.fetched.json"
    fetch_dataset(repo_id, sha, cache, out, marker_path=marker)
    rows = read_jsonl(out)
    src_rows = read_jsonl(source)
    assert len(rows) == n_rows == len(src_rows)
    assert all(isinstance(r["label"], str) and r["label"] for r in rows)
    assert [r["label"] for r in rows] == [str(s["label"]) for s in src_rows]
    assert [r["prompt"] for r in rows] == [s["prompt"] for s in src_rows]
    assert [r["id"] for r in rows] == [f"{prefix}-{i}" for i in range(n_rows)]
    assert read_marker(marker)["files"] == {filename: len(raw)}  # only the dataset file was fetched
    # the contract's reader (mileage.data.problems) accepts what we wrote, ids included
    assert [p.id for p in read_problems(out)] == [r["id"] for r in rows]


def test_fetch_dataset_missing_file_is_incomplete(tmp_path):
    cache = tmp_path / "hf"
    sha = make_hf_cache(cache, "zhuzilin/aime-2024", "dataset", {"README.md": b"# card\n"})
    with pytest.raises(IncompleteSnapshot, match="aime-2024.jsonl"):
        fetch_dataset("zhuzilin/aime-2024", sha, cache, tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()


def test_normalise_row_lacking_label_names_file_and_line(tmp_path):
    src = tmp_path / "raw.jsonl"
    src.write_text(json.dumps({"prompt": "1+1?", "label": 2}) + "\n" + json.dumps({"prompt": "2+2?"}) + "\n")
    out = tmp_path / "out.jsonl"
    with pytest.raises(DatasetFormatError, match=r"raw.jsonl:line 2: missing key 'label'"):
        normalise_dataset(src, out, id_prefix="x")
    assert not out.exists()


def test_normalise_converts_labels_renames_keys_and_limits(tmp_path):
    src = tmp_path / "raw.jsonl"
    rows = [{"problem": "a", "answer": 34}, {"problem": "b", "answer": -2.0}, {"problem": "c", "answer": "7"}]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows) + "\n")
    out = tmp_path / "out.jsonl"
    assert normalise_dataset(src, out, input_key="problem", label_key="answer", id_prefix="t") == 3
    assert read_jsonl(out) == [
        {"prompt": "a", "label": "34", "id": "t-0"},
        {"prompt": "b", "label": "-2", "id": "t-1"},
        {"prompt": "c", "label": "7", "id": "t-2"},
    ]
    assert normalise_dataset(src, out, input_key="problem", label_key="answer", id_prefix="t", limit=2) == 2
    assert len(read_jsonl(out)) == 2


def test_normalise_reads_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = tmp_path / "train.parquet"
    prompts = [[{"role": "user", "content": "What is 6*7?"}], [{"role": "user", "content": "2^10?"}]]
    pq.write_table(pa.table({"prompt": prompts, "label": ["42", "1024"]}), src)
    out = tmp_path / "out.jsonl"
    normalise_dataset(src, out, id_prefix="p")
    assert read_jsonl(out) == [
        {"prompt": prompts[0], "label": "42", "id": "p-0"},
        {"prompt": prompts[1], "label": "1024", "id": "p-1"},
    ]


# ---- the token never lands on disk or in logs -------------------------------------------------------


def test_token_is_never_written_or_logged(tmp_path, monkeypatch, caplog, capfd):
    needs_shared()
    monkeypatch.setenv("HF_TOKEN", SECRET)
    caplog.set_level(logging.DEBUG)
    cache = tmp_path / "hf"
    sha = make_hf_cache(cache, MODEL, "model", model_files())
    fetch_snapshot(MODEL, "model", sha, cache, ["config.json"], marker_path=tmp_path / "model.done.json")
    dsha = make_hf_cache(cache, "zhuzilin/aime-2024", "dataset", {"aime-2024.jsonl": AIME.read_bytes()})
    fetch_dataset("zhuzilin/aime-2024", dsha, cache, tmp_path / "aime.jsonl", marker_path=tmp_path / "aime.done")
    with pytest.raises(IncompleteSnapshot) as err:
        fetch_snapshot(MODEL, "model", "e" * 40, cache, ["config.json"])
    go_online(monkeypatch)
    resolve_revision(MODEL, "model", "main", tmp_path / "hf.lock.json", api=FakeApi("f" * 40))

    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(written) > 5
    for path in written:
        assert SECRET.encode() not in path.read_bytes(), path
    captured = capfd.readouterr()
    assert SECRET not in captured.out + captured.err + caplog.text + str(err.value)
