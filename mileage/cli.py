"""The `mileage` command: what a researcher asks beside `snakemake`.

  mileage experiments                 list the experiments of the config, resolved and checked
  mileage plan EXPERIMENT             memory preflight (per GPU and host), non-zero when it cannot fit
  mileage argv EXPERIMENT             the miles train.py argv, one token per line; runs nothing
  mileage keys [RULE]                 which config keys each rule reads, and whether a change continues a run
  mileage doctor [EXPERIMENT]         check this machine against what the experiment needs
  mileage import-log LOG OUTDIR       an existing miles/slime log -> metric TSVs and plots

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
        print(f"{name}\tengine={exp['engine']}\t{exp['description']}")
    return 0


def _config(args) -> dict:
    """The config's resolved top level (report, plots, ...), for params of the rules that read it."""
    config_path = Path(args.config)
    raw = load_yaml(config_path) if config_path.is_file() else {}
    return ExperimentResolver(raw, base_dir=config_path.resolve().parent.parent).config


def cmd_plan(args) -> int:
    from mileage.engines import engine_of

    name, exp = _experiment(args)
    print(f"mileage plan: {name}")
    return engine_of(exp).plan_main(exp, args.gpus, args.gpu_memory_gb, name=name)


def cmd_argv(args) -> int:
    from mileage.stages.job import train_job

    name, exp = _experiment(args)
    # Exactly what the train rule submits: the same params and the same paths.
    job = train_job(name, exp, args.config, args.results_dir)
    try:
        argv = job.argv()
    except NotImplementedError as exc:
        raise ConfigError(f"{name}: {exc}") from None
    for token in argv:
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
    return main_doctor(exp, Path(args.results_dir), name=name, config_path=args.config)


def cmd_import_log(args) -> int:
    from mileage.stages.import_log import import_log_with_figures

    report = import_log_with_figures(args.log, args.outdir, plot=not args.no_plots)
    print(report.summary())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mileage", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config/config.yaml", help="the pipeline config (default: %(default)s)")
    parser.add_argument("--results-dir", default="results", help="where the pipeline writes (default: %(default)s)")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("experiments", help="list the experiments of the config").set_defaults(func=cmd_experiments)

    plan = sub.add_parser("plan", help="memory preflight of an experiment")
    plan.add_argument("experiment")
    plan.add_argument("--gpus", type=int, default=None, help="ask about a box with N GPUs")
    plan.add_argument("--gpu-memory-gb", type=float, default=None, help="memory of each GPU in GB")
    plan.set_defaults(func=cmd_plan)

    argv = sub.add_parser("argv", help="print the miles train.py argv, one token per line")
    argv.add_argument("experiment")
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
