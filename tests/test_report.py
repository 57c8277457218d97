"""The Markdown report and the cross-experiment comparison: right numbers, every problem, robust to gaps."""

from __future__ import annotations

import csv
import json
import struct
from pathlib import Path

import pytest

from mileage.report.compare import CompareError, compare_experiments
from mileage.report.markdown import write_report
from mileage.report.plots import SummaryError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_tsv(path: Path, columns: list[str], rows: list[list[float | None]]) -> None:
    """A wide metrics TSV as docs/contracts.md describes it (None = empty cell)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["\t".join(columns)]
    # The step is an int, metric values floats written with repr(), as the metrics writer does.
    lines += ["\t".join([str(int(row[0]))] + ["" if v is None else repr(float(v)) for v in row[1:]]) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_metrics(metrics: Path, rewards: list[float | None], evals: dict[int, float]) -> None:
    write_tsv(metrics / "rollout.tsv", ["rollout/step", "rollout/raw_reward"],
              [[i, r] for i, r in enumerate(rewards)])
    write_tsv(metrics / "train.tsv", ["train/step", "train/loss"], [[i, 0.1] for i in range(len(rewards))])
    write_tsv(metrics / "perf.tsv", ["rollout/step", "perf/step_time"], [[i, 1800.0] for i in range(len(rewards))])
    write_tsv(metrics / "eval.tsv", ["eval/step", "eval/aime"], [[s, v] for s, v in sorted(evals.items())])


def entry(value: float, low: float, high: float) -> dict:
    return {"value": value, "ci95": [low, high]}


def problem(pid: str, label: str, n_correct: int, majority: str | None, majority_correct: bool, n: int = 4) -> dict:
    return {"problem_id": pid, "label": label, "n": n, "n_correct": n_correct, "mean_reward": n_correct / n,
            "majority_answer": majority, "majority_correct": majority_correct}


def make_summary(experiment: str = "demo", shift: float = 0.0) -> dict:
    base = {
        "n_problems": 3, "n_samples": 12, "k": 4,
        "metrics": {"avg@4": entry(0.25, 0.1, 0.4), "pass@1": entry(0.25, 0.1, 0.4),
                    "pass@2": entry(0.4, 0.2, 0.6), "pass@4": entry(0.5, 0.3, 0.7), "maj@4": entry(0.3, 0.0, 0.6)},
        "per_problem": [problem("aime-2024-0", "204", 1, "17", False),
                        problem("aime-2024-1", "33", 2, "33", True),
                        problem("aime-2024-2", "a|b", 3, "a|b", True)],
    }
    final = {
        "n_problems": 3, "n_samples": 12, "k": 4,
        "metrics": {"avg@4": entry(0.5 + shift, 0.3, 0.7), "pass@1": entry(0.5 + shift, 0.3, 0.7),
                    "pass@2": entry(0.6, 0.4, 0.8), "pass@4": entry(0.75, 0.5, 0.9), "maj@4": entry(0.6, 0.3, 0.9)},
        "per_problem": [problem("aime-2024-0", "204", 4, "204", True),
                        problem("aime-2024-1", "33", 2, "33", True),
                        problem("aime-2024-2", "a|b", 0, None, False)],
    }
    return {"experiment": experiment, "dataset": "aime-2024", "k": 4, "base": base, "final": final}


def table_row(text: str, first_cell: str) -> list[str]:
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no table row starting with {first_cell!r}")


def test_report_has_scores_with_ci_and_difference(tmp_path: Path) -> None:
    write_metrics(tmp_path / "metrics", [0.1, 0.2, 0.35], {0: 0.05, 2: 0.125})
    out = tmp_path / "report" / "report.md"
    write_report(make_summary(), tmp_path / "metrics", out, [], "GRPO demo")
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# GRPO demo\n")
    assert "`demo`" in text and "`aime-2024`" in text
    # metric | base | base CI | final | final CI | delta | p, in percent; no paired test in this summary.
    assert table_row(text, "avg@4") == ["avg@4", "25.0", "[10.0, 40.0]", "50.0", "[30.0, 70.0]", "+25.0 pp", "—"]
    with pytest.raises(AssertionError):  # pass@1 would repeat avg@4 (binary rewards): not a row of its own
        table_row(text, "pass@1")
    assert table_row(text, "pass@4") == ["pass@4", "50.0", "[30.0, 70.0]", "75.0", "[50.0, 90.0]", "+25.0 pp", "—"]
    assert table_row(text, "maj@4") == ["maj@4", "30.0", "[0.0, 60.0]", "60.0", "[30.0, 90.0]", "+30.0 pp", "—"]


def test_report_difference_has_the_paired_interval_and_p_value(tmp_path: Path) -> None:
    write_metrics(tmp_path / "metrics", [0.1], {})
    summary = make_summary()
    summary["paired"] = {"avg@4": {"estimate": 0.25, "ci95": [0.05, 0.45], "p_value": 0.0123,
                                   "prob_improvement": 0.7, "n_problems": 3}}
    summary["final"]["metrics"]["answer_avg@4"] = entry(0.9, 0.8, 1.0)
    summary["provenance"] = {"git_commit": "abc123", "git_dirty": False, "seeds": [1, 2, 3],
                             "config": {"train": {"lr": 0.001}, "rollout": {"reward": "deepscaler"}},
                             "hardware": {"cpu": "Test CPU", "cpu_count": 2, "gpu": [], "gpu_count": 0},
                             "gpu_hours": 0.0, "wall_seconds": {"train": 42.0},
                             "hf_revisions": {"model:org/m": "f" * 40}, "data_sha256": {"d.jsonl": "e" * 64},
                             "packages": {"numpy": "2.4.6"}}
    out = tmp_path / "report" / "report.md"
    write_report(summary, tmp_path / "metrics", out, [], "GRPO demo")
    text = out.read_text(encoding="utf-8")
    assert table_row(text, "avg@4")[-2:] == ["+25.0 pp [+5.0, +45.0]", "0.012"]
    assert table_row(text, "answer_avg@4")[3] == "90.0"  # the format-free accuracy beside the reward
    assert table_row(text, "`train.lr`") == ["`train.lr`", "0.001"]
    assert "`abc123` (clean)" in text and "seeds: 1, 2, 3" in text and "train 42 s" in text
    assert f"`model:org/m` at `{'f' * 40}`" in text and "numpy 2.4.6" in text
    tex = (out.parent / "final_scores.tex").read_text(encoding="utf-8")
    assert "\\toprule" in tex and "\\bottomrule" in tex
    # final beats base on avg@4 significantly (p = 0.012, the one test of the family): the final's estimate is
    # bold, its interval under it; maj@4 is higher after training too but untested, so not bold.
    assert "\\textbf{50.0}\\\\{\\scriptsize [30.0, 70.0]}" in tex and "\\textbf{25.0}" not in tex
    assert "\\textbf{60.0}" not in tex and "\\label{tab:demo:aime-2024:final-scores}" in tex
    hyper = (out.parent / "hyperparameters.tex").read_text(encoding="utf-8")
    assert "\\label{tab:demo:aime-2024:hyperparameters}" in hyper
    assert "train.\\allowbreak{}lr} & 0.001" in hyper  # a key may wrap, a number never


def test_report_lists_every_problem_with_change(tmp_path: Path) -> None:
    write_metrics(tmp_path / "metrics", [0.1], {})
    out = tmp_path / "report.md"
    write_report(make_summary(), tmp_path / "metrics", out, [], "t")
    text = out.read_text(encoding="utf-8")
    assert table_row(text, "aime-2024-0") == ["aime-2024-0", "204", "1/4", "4/4", "204 ✓", "↑"]
    assert table_row(text, "aime-2024-1") == ["aime-2024-1", "33", "2/4", "2/4", "33 ✓", "="]
    # A pipe in a label must not break the table: it is escaped, and the row still has six cells.
    row = next(line for line in text.splitlines() if line.startswith("| aime-2024-2"))
    assert "a\\|b" in row and row.endswith("| 3/4 | 0/4 | — | ↓ |")


def test_report_training_section_reads_last_logged_values(tmp_path: Path) -> None:
    # The last rollout did not log a reward: the report gives the last one that was logged.
    write_metrics(tmp_path / "metrics", [0.1, 0.2, 0.35, None], {0: 0.05, 2: 0.125})
    out = tmp_path / "report.md"
    write_report(make_summary(), tmp_path / "metrics", out, [], "t")
    text = out.read_text(encoding="utf-8")
    assert "rollouts logged: 3" in text
    assert "last raw reward: 0.3500 (rollout 2)" in text
    assert "`eval/aime`: 0.1250 (rollout 2)" in text
    assert "total step time: 2.00 h over 4 rollouts" in text  # 4 x 1800 s


@pytest.mark.parametrize("seconds, shown", [(41.6, "42 s"), (600.0, "10.0 min"), (30 * 3600.0, "30.00 h")])
def test_report_step_time_reads_at_the_scale_of_the_run(seconds: float, shown: str) -> None:
    from mileage.report.markdown import format_duration

    assert format_duration(seconds) == shown


def test_report_without_metrics_says_not_logged(tmp_path: Path) -> None:
    out = tmp_path / "report.md"
    write_report(make_summary(), tmp_path / "no-metrics-here", out, [], "t")
    text = out.read_text(encoding="utf-8")
    assert "last raw reward: not logged" in text
    assert "last in-training eval: not logged" in text


def test_report_links_figures_relative_to_itself(tmp_path: Path) -> None:
    report_dir = tmp_path / "results" / "demo" / "report"
    figures = [str(report_dir / "reward.png"), str(report_dir / "reward.pdf"), str(report_dir / "figs" / "eval.pdf")]
    for figure in figures:  # the HTML page embeds them: they must exist
        Path(figure).parent.mkdir(parents=True, exist_ok=True)
        Path(figure).write_bytes(b"stand-in")
    out = report_dir / "report.md"
    write_report(make_summary(), tmp_path / "metrics", out, figures, "t")
    text = out.read_text(encoding="utf-8")
    assert "![reward](reward.png)" in text and "(reward.pdf)" in text
    assert "(figs/eval.pdf)" in text
    assert str(tmp_path) not in text
    assert not [p for p in report_dir.iterdir() if p.name.endswith(".tmp")]


def test_report_links_cwd_relative_figures_relative_to_itself(tmp_path: Path, monkeypatch) -> None:
    # The pipeline passes paths relative to the working directory (results/<exp>/report/figures/...).
    monkeypatch.chdir(tmp_path)
    out = Path("results/demo/report/report.md")
    figures = ["results/demo/report/figures/reward.png", "results/demo/report/figures/reward.pdf"]
    for figure in figures:  # the HTML page embeds them: they must exist
        Path(figure).parent.mkdir(parents=True, exist_ok=True)
        Path(figure).write_bytes(b"stand-in")
    write_report(make_summary(), tmp_path / "metrics", out, figures, "t")
    text = out.read_text(encoding="utf-8")
    assert "![reward](figures/reward.png) ([pdf](figures/reward.pdf))" in text, text
    assert "results/" not in text


def test_report_rejects_summary_missing_a_key(tmp_path: Path) -> None:
    summary = make_summary()
    del summary["dataset"]
    with pytest.raises(SummaryError, match="'dataset'"):
        write_report(summary, tmp_path, tmp_path / "report.md", [], "t")
    assert not (tmp_path / "report.md").exists()


def make_experiment(root: Path, name: str, rewards: list[float], shift: float = 0.0) -> Path:
    exp = root / name
    write_metrics(exp / "metrics", rewards, {0: rewards[0], len(rewards) - 1: rewards[-1]})
    (exp / "report").mkdir(parents=True, exist_ok=True)
    (exp / "report" / "summary.json").write_text(json.dumps(make_summary(name, shift)), encoding="utf-8")
    return exp


def read_scores(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def test_compare_two_experiments(tmp_path: Path) -> None:
    experiments = {
        "lr-1e-6": make_experiment(tmp_path, "a", [0.1, 0.2, 0.3]),
        "lr-3e-6": make_experiment(tmp_path, "b", [0.1, 0.3, 0.4, 0.5], shift=0.125),
    }
    out = tmp_path / "compare"
    written = compare_experiments(experiments, out, {"formats": ["png", "pdf"]})
    names = {p.name for p in written}
    assert {"reward.png", "reward.pdf", "eval.png", "eval.pdf", "final_scores.tsv", "final_scores.md"} <= names
    data = (out / "reward.png").read_bytes()
    assert data[:8] == PNG_MAGIC and abs(struct.unpack(">I", data[16:20])[0] - 990) <= 1
    assert (out / "eval.pdf").read_bytes().startswith(b"%PDF-")

    rows = read_scores(out / "final_scores.tsv")
    assert [r["experiment"] for r in rows] == ["lr-1e-6", "lr-3e-6"]
    assert float(rows[0]["final_avg@k"]) == 0.5 and float(rows[1]["final_avg@k"]) == 0.625
    assert float(rows[1]["base_maj@k"]) == 0.3 and float(rows[1]["base_maj@k_ci_hi"]) == 0.6
    assert float(rows[0]["final_pass@k_ci_lo"]) == 0.5 and rows[0]["k"] == "4"

    md = (out / "final_scores.md").read_text(encoding="utf-8")
    assert table_row(md, "`lr-3e-6`")[5:7] == ["25.0 [10.0, 40.0]", "62.5 [30.0, 70.0]"]
    scores, paired = md.split("## Paired differences")
    assert sum(line.startswith("| `lr-") for line in scores.splitlines()) == 2
    # lr-3e-6 against the baseline lr-1e-6 (the first), on the three compared metrics.
    assert sum(line.startswith("| `lr-3e-6` | — | `lr-1e-6` |") for line in paired.splitlines()) == 3


def test_compare_one_experiment_without_training_curves(tmp_path: Path) -> None:
    exp = make_experiment(tmp_path, "only", [0.2])
    for tsv in (exp / "metrics").iterdir():
        tsv.unlink()  # evaluated but never trained: no curves at all
    written = compare_experiments({"only": exp}, tmp_path / "compare", None)
    assert {p.name for p in written} >= {"final_scores.html", "final_scores.md", "final_scores.tex",
                                         "final_scores.tsv", "paired.tsv"}
    assert not any(p.name.startswith(("reward", "eval")) for p in written)  # no curves to draw
    assert len(read_scores(tmp_path / "compare" / "final_scores.tsv")) == 1
    page = (tmp_path / "compare" / "final_scores.html").read_text()  # the tables as a page for snakemake --report
    assert page.startswith("<!DOCTYPE html>") and "<table>" in page and "<td><code>only</code></td>" in page


def test_compare_needs_each_summary_and_some_experiment(tmp_path: Path) -> None:
    with pytest.raises(CompareError):
        compare_experiments({}, tmp_path / "compare")
    (tmp_path / "bare" / "metrics").mkdir(parents=True)
    with pytest.raises(SummaryError, match=r"bare.*summary\.json"):
        compare_experiments({"bare": tmp_path / "bare"}, tmp_path / "compare")


def test_report_is_also_a_self_contained_html_page(tmp_path: Path) -> None:
    write_metrics(tmp_path / "metrics", [0.1], {})
    out = tmp_path / "report" / "report.md"
    (out.parent / "figures").mkdir(parents=True)
    (out.parent / "figures" / "reward.png").write_bytes(PNG_MAGIC + b"fake")
    write_report(make_summary(), tmp_path / "metrics", out, [str(out.parent / "figures" / "reward.png")], "Demo")
    page = (out.parent / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<table>" in page and "<td>avg@4</td>" in page
    assert 'src="data:image/png;base64,' in page and "figures/reward.png" not in page.split("<img")[1][:80]


def test_compare_pairs_every_two_experiments_on_the_same_problems(tmp_path: Path) -> None:
    experiments = {"demo": make_experiment(tmp_path, "demo", [0.1]), "lr": make_experiment(tmp_path, "lr", [0.2])}
    compare_experiments(experiments, tmp_path / "compare", {"formats": ["png"]})
    rows = read_scores(tmp_path / "compare" / "paired.tsv")
    assert list(rows[0]) == ["a", "b", "change", "dataset", "metric", "estimate", "ci95_low", "ci95_high",
                             "interval", "se", "mde80", "p_value", "p_exact", "p_floor", "p_holm", "significant",
                             "prob_improvement", "n_problems", "seeds_a", "seeds_b"]
    assert {(r["a"], r["b"]) for r in rows} == {("demo", "lr")}
    assert [r["metric"] for r in rows] == ["avg@4", "pass@4", "maj@4"]  # the registry's compared metrics
    avg = next(r for r in rows if r["metric"] == "avg@4")
    assert float(avg["estimate"]) == 0.0 and float(avg["p_value"]) == 1.0  # the same final per-problem scores
    assert float(avg["p_holm"]) == 1.0 and avg["significant"] == "False"
    tex = (tmp_path / "compare" / "final_scores.tex").read_text(encoding="utf-8")
    assert "\\toprule" in tex and "\\textbf" not in tex  # equal scores: no best, nothing bold


def test_compare_refuses_to_pair_experiments_on_different_problems(tmp_path: Path) -> None:
    a, b = make_experiment(tmp_path, "a", [0.1]), make_experiment(tmp_path, "b", [0.1])
    summary = json.loads((b / "report" / "summary.json").read_text(encoding="utf-8"))
    summary["final"]["per_problem"][2]["problem_id"] = "aime-2025-9"
    (b / "report" / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    compare_experiments({"a": a, "b": b}, tmp_path / "compare", {"formats": ["png"]})
    assert read_scores(tmp_path / "compare" / "paired.tsv") == []
    text = (tmp_path / "compare" / "final_scores.md").read_text(encoding="utf-8")
    assert "`a` and `b` were not evaluated on the same problems" in text
    assert "'aime-2024-2'" in text and "'aime-2025-9'" in text


def test_each_experiment_says_what_it_changes_relative_to_the_baseline() -> None:
    from mileage.config import ExperimentResolver
    from mileage.report.changes import NO_CHANGE, change_text, changes_against

    import yaml

    root = Path(__file__).resolve().parents[1]
    config = yaml.safe_load((root / "config" / "config.yaml").read_text())
    config["experiments"] = {
        "demo": {**config["experiments"]["demo"], "seeds": [1, 2]},
        "demo-lr": {"extends": "demo", "train": {"lr": 0.001}, "label": "higher lr", "seeds": [3]},
        "hot": {"extends": "demo", "rollout": {"temperature": 0.6, "top_p": 0.9}, "train": {"lr": 0.002,
                                                                                               "clip_grad": 0.5}},
    }
    resolved = ExperimentResolver(config, base_dir=root).resolve_all()
    base_lr = resolved["demo"]["train"]["lr"]
    changes = changes_against("demo", resolved)
    assert changes["demo"] == "baseline"
    # The label and the seeds are not changes of the recipe; spelled-out defaults are not either.
    assert changes["demo-lr"] == f"train.lr {base_lr!r} -> 0.001"
    assert changes["hot"].count(" -> ") == 3 and changes["hot"].endswith("; +1 more")
    assert change_text(resolved["demo"], resolved["demo"]) == NO_CHANGE
    with pytest.raises(KeyError, match="compare.baseline: no experiment 'nope'"):
        changes_against("nope", resolved)


def test_a_two_seed_report_says_its_across_seed_interval_is_not_informative(tmp_path: Path) -> None:
    write_metrics(tmp_path / "metrics", [0.1], {})
    out = tmp_path / "report" / "report.md"
    summary = make_summary()
    write_report(summary, tmp_path / "metrics", out, [], "one run")
    assert "not informative" not in out.read_text(encoding="utf-8")
    summary["seeds"] = [1, 2]
    write_report(summary, tmp_path / "metrics", out, [], "two seeds")
    assert "With 2 seeds the across-seed part of these intervals is not informative" in out.read_text(encoding="utf-8")


def test_an_unknown_compare_baseline_is_an_error_naming_the_key() -> None:
    import yaml

    from mileage.config import ExperimentResolver
    from mileage.errors import ConfigError
    from mileage.stages.params import comparison_design

    root = Path(__file__).resolve().parents[1]
    config = yaml.safe_load((root / "config" / "config.yaml").read_text())
    config["experiments"]["demo-lr"] = {"extends": "demo", "train": {"lr": 0.001}}
    config["compare"] = {"baseline": "demo-lr", "pairs": "all"}
    resolver = ExperimentResolver(config, base_dir=root)
    experiments = resolver.resolve_all()
    design = comparison_design(experiments, resolver.config)
    assert design["baseline"] == "demo-lr" and design["pairs"] == "all"
    assert design["changes"]["demo-lr"] == "baseline" and design["changes"]["demo"].startswith("train.lr 0.001 ->")
    config["compare"]["baseline"] = "nope"
    resolver = ExperimentResolver(config, base_dir=root)
    with pytest.raises(ConfigError, match="compare.baseline: no experiment 'nope'"):
        comparison_design(resolver.resolve_all(), resolver.config)
