"""The `mileage` command: what a researcher asks beside `snakemake`.

  mileage experiments                 list the experiments of the config, resolved and checked
  mileage plan EXPERIMENT             memory preflight (per GPU and host), non-zero when it cannot fit
  mileage argv EXPERIMENT             the miles train.py argv, one token per line; runs nothing
  mileage argv EXPERIMENT --eval base|final   its base or final evaluation's argv (each evaluation set)
  mileage keys [RULE]                 which config keys each rule reads, and whether a change continues a run
  mileage doctor [EXPERIMENT]         check this machine against what the experiment needs
  mileage import-log LOG OUTDIR       an existing miles/slime log -> metric TSVs and plots
  mileage status [--json]             every run: state, rollout i of N, rate, ETA, reward, eval, checkpoint
  mileage live EXPERIMENT OUTDIR      the metric tables and figures of a run as far as it has trained
  mileage power EXPERIMENT --delta D  seeds and samples per problem a gain D needs, from a finished pilot

EXPERIMENT is a name in the config (config/config.yaml unless --config says otherwise) or the path of an
experiment YAML file (e.g. config/experiments/glm-z1-9b-8xh100.yaml).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mileage.config import ConfigError, ExperimentResolver, load_experiment, load_yaml


def _experiment(args) -> tuple[str, dict]:
    return load_experiment(args.experiment, args.config)


def cmd_experiments(args) -> int:
    config_path = Path(args.config)
    resolver = ExperimentResolver(load_yaml(config_path), base_dir=config_path.parent.parent)
    for name, exp in resolver.resolve_all().items():
        point = exp.get("sweep_point")
        varies = f"\tsweep {point['of']}: " + ", ".join(f"{k}={v}" for k, v in point["values"].items()) if point else ""
        seeds = f"\tseeds={','.join(map(str, exp['seeds']))}" if exp.get("seeds") else ""
        print(f"{name}\tengine={exp['engine']}{seeds}{varies}\t{exp['description']}".rstrip("\t"))
    return 0


def _config(args) -> dict:
    """The config's resolved top level (report, plots, ...), for params of the rules that read it."""
    config_path = Path(args.config)
    raw = load_yaml(config_path) if config_path.is_file() else {}
    return ExperimentResolver(raw, base_dir=config_path.resolve().parent.parent).config


def _results_dir(args) -> str:
    """--results-dir, else the config's `results_dir` (where the pipeline writes)."""
    return args.results_dir or _config(args).get("results_dir") or "results"


def cmd_plan(args) -> int:
    from mileage.engines import engine_of

    name, exp = _experiment(args)
    return engine_of(exp).plan_main(exp, args.gpus, args.gpu_memory_gb, name=name)  # its first line names it


def cmd_argv(args) -> int:
    from mileage.stages.job import train_job

    name, exp = _experiment(args)
    if args.eval:
        return _print_eval_argvs(name, exp, args)
    # Exactly what the train rule submits: the same params and the same paths.
    job = train_job(name, exp, args.config, _results_dir(args))
    try:
        argv = job.argv()
    except NotImplementedError as exc:
        # No command line to show: show what the train rule hands the job instead (its params, exactly).
        import yaml

        print(f"# {name}: {exc}.\n# The train rule gives its job these settings (its params; `mileage keys train`"
              " says which keys they come from):")
        print(yaml.safe_dump(job.params, sort_keys=False, default_flow_style=None, width=100), end="")
        return 0
    for token in argv:
        print(token)
    return 0


def _print_eval_argvs(name, exp, args) -> int:
    from mileage.stages.job import evaluation_jobs

    # Exactly what the eval_base / eval_final rule runs, one job per evaluation set.
    jobs = evaluation_jobs(name, exp, args.config, _results_dir(args), args.eval)
    for set_name, spec in jobs:
        if spec.argv is None:
            print(f"# {name}: engine {exp['engine']} has no command line of its own for its {args.eval} evaluation")
            return 0
        if len(jobs) > 1:
            print(f"# {args.eval} evaluation of set {set_name}")
        for token in spec.argv:
            print(token)
    return 0


def cmd_keys(args) -> int:
    from mileage.keys import STAGES, declaration, format_declaration

    if args.rule is not None and args.rule not in STAGES:
        raise ConfigError(f"no rule {args.rule!r} reads config keys (rules: {', '.join(STAGES)})")
    print(format_declaration(declaration(args.rule)), end="")
    return 0


def cmd_doctor(args) -> int:
    from mileage.doctor import main_doctor

    name, exp = _experiment(args) if args.experiment else (None, None)
    return main_doctor(exp, Path(_results_dir(args)), name=name, config_path=args.config)


def cmd_import_log(args) -> int:
    import logging

    from mileage.stages.import_log import import_log_with_figures

    # The readers log each warning as they parse; the summary below lists them, once.
    logging.getLogger("mileage.metrics").addHandler(logging.NullHandler())
    report = import_log_with_figures(args.log, args.outdir, plot=not args.no_plots)
    print(report.summary())
    return 0


def cmd_status(args) -> int:
    import json

    from mileage.status import statuses, table

    rows = statuses(args.config, args.results_dir)
    if args.json:
        print(json.dumps([row.to_dict() for row in rows], indent=2))
    else:
        print(table(rows), end="")
    return 0


def cmd_power(args) -> int:
    import json

    from mileage.evaluation.power import format_plan, plan_experiment

    result = plan_experiment(_results_dir(args), args.experiment, args.delta, eval_set=args.set)
    print(json.dumps(result, indent=2) if args.json else format_plan(result))
    return 0


def cmd_live(args) -> int:
    import time

    from mileage.engines import engine_of
    from mileage.live_metrics import check_outdir, summary_line, write_live
    from mileage.status import config_runs, lock_holder, read_quietly

    results, runs = config_runs(args.config, args.results_dir)
    found = {name: exp for name, exp, _, _ in runs}
    if args.experiment not in found:
        raise ConfigError(f"no run {args.experiment!r} in {args.config} (runs: {', '.join(found)})")
    outdir = check_outdir(args.outdir, results)
    run_dir = Path(results) / args.experiment / "run"
    engine = engine_of(found[args.experiment])
    plot = None
    if not args.no_plots:
        from mileage.report.plots import plot_training  # matplotlib: only when figures are asked for

        style = _config(args).get("plots")
        plot = lambda metrics, figures: plot_training(metrics, figures, style)  # noqa: E731

    def read(run):
        events, said = read_quietly(engine.collect_events, run)
        for line in said:
            print(f"mileage live: {line}", file=sys.stderr)
        return events

    try:
        while True:
            print(summary_line(write_live(run_dir, read, outdir, plot), args.outdir), flush=True)
            if args.every is None or lock_holder(run_dir) is None:  # once, or until the training ends
                return 0
            time.sleep(args.every)
    except KeyboardInterrupt:  # the way to stop --every
        return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mileage", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config/config.yaml", help="the pipeline config (default: %(default)s)")
    parser.add_argument("--results-dir", default=None,
                        help="where the pipeline writes (default: the config's results_dir)")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("experiments", help="list the experiments of the config").set_defaults(func=cmd_experiments)

    plan = sub.add_parser("plan", help="memory preflight of an experiment")
    plan.add_argument("experiment")
    plan.add_argument("--gpus", type=int, default=None, help="ask about a box with N GPUs")
    plan.add_argument("--gpu-memory-gb", type=float, default=None, help="memory of each GPU in GB")
    plan.set_defaults(func=cmd_plan)

    argv = sub.add_parser("argv", help="print the miles train.py argv, one token per line")
    argv.add_argument("experiment")
    argv.add_argument("--eval", choices=("base", "final"), default=None,
                      help="the evaluation run's argv instead (of the starting model or the final checkpoint)")
    argv.set_defaults(func=cmd_argv)

    keys = sub.add_parser("keys", help="which config keys each rule reads, and which may change under a run")
    keys.add_argument("rule", nargs="?", help="only the keys this rule reads (e.g. train, eval_final, plots)")
    keys.set_defaults(func=cmd_keys)

    doctor = sub.add_parser("doctor", help="check this machine against an experiment's needs")
    doctor.add_argument("experiment", nargs="?")
    doctor.set_defaults(func=cmd_doctor)

    imp = sub.add_parser("import-log", help="turn a miles/slime stdout log into metric TSVs and plots")
    imp.add_argument("log")
    imp.add_argument("outdir")
    imp.add_argument("--no-plots", action="store_true", help="write the TSVs only")
    imp.set_defaults(func=cmd_import_log)

    status = sub.add_parser("status", help="every run's state, progress, ETA and latest scores (reads only)")
    status.add_argument("--json", action="store_true", help="a JSON list of objects, one per run")
    status.set_defaults(func=cmd_status)

    live = sub.add_parser("live", help="metric tables and figures of a run as far as it has trained")
    live.add_argument("experiment", help="a run as `mileage status` names it (e.g. demo, demo/seeds/2)")
    live.add_argument("outdir", help="where to write them: outside the results tree")
    live.add_argument("--every", type=float, default=None, metavar="SECONDS",
                      help="write them again every SECONDS while the run trains")
    live.add_argument("--no-plots", action="store_true", help="write the tables only")
    live.set_defaults(func=cmd_live)

    power = sub.add_parser("power", help="seeds and samples per problem to detect a gain, from a finished pilot")
    power.add_argument("experiment", help="a finished experiment (its results/<exp>/ and, with seeds, each seed's)")
    power.add_argument("--delta", type=float, required=True,
                       help="the gain to detect, as a fraction of the score (0.05 = 5 points)")
    power.add_argument("--set", default=None, help="an evaluation set's name (default: the headline set)")
    power.add_argument("--json", action="store_true", help="one JSON object (delta, seeds, samples_per_problem, "
                                                             "power, current, variance, ...)")
    power.set_defaults(func=cmd_power)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # `mileage argv X | head`
        sys.stderr.close()
        return 0
    except (ConfigError, ValueError, RuntimeError, FileNotFoundError) as exc:
        print(f"mileage {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
