"""The one secrets policy: which names hold credentials, for config validation and log redaction alike.

A credential must come from the environment of the process that needs it, never from the config: a config value
reaches Snakemake's params records, the run's fingerprint.json and Ray's job info in plain text.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Iterator, Mapping, Sequence

# Environment variable names that hold secrets: HF_TOKEN, WANDB_API_KEY, AWS_SECRET_ACCESS_KEY, ...
SECRET_ENV_NAME = re.compile(r"(^|_)(TOKEN|KEY|SECRET)$|PASSWORD", re.IGNORECASE)
# Option names (flags, SGLang server arguments) that take secrets. Narrower than env names on purpose: miles has
# --input-key/--label-key (dataset columns) and --max-tokens-per-gpu, which are not secrets.
SECRET_OPTION_NAME = re.compile(r"(^|_)(TOKEN|SECRET|PASSWORD|API_KEY|WANDB_KEY)$", re.IGNORECASE)

_WHY = ("takes a secret, which must not be in the config (it would reach Snakemake's params records, the run's "
        "fingerprint.json and Ray's job info); export it in the environment that starts the pipeline instead "
        "(e.g. WANDB_API_KEY)")


def is_secret_env_name(name: str) -> bool:
    return bool(SECRET_ENV_NAME.search(name))


def is_secret_option(name: str) -> bool:
    """`--wandb-key`, `--hf-token=X`, `api_key`: an option (flag or key) whose value is a credential."""
    name = name.lstrip("-").split("=", 1)[0].replace("-", "_")
    return bool(name) and bool(SECRET_OPTION_NAME.search(name))


def secret_config_problems(exp: Mapping[str, Any], free_form_keys: Iterable[Any]) -> Iterator[tuple[str, str]]:
    """(key path relative to the experiment, why) for every credential a resolved experiment would carry in the
    free-form keys its engine declares (mileage.engines.contract.FreeFormKey: `.key` dotted, `.form` "argv" for
    a list of command-line tokens or "options" for a mapping of option names)."""
    for entry in free_form_keys:
        value: Any = exp
        for part in entry.key.split("."):
            value = value[part]
        if entry.form == "argv":
            tokens: Sequence[str] = value
            for i, token in enumerate(tokens):
                if token.startswith("-") and is_secret_option(token):
                    yield f"{entry.key}[{i}]", f"{token.split('=', 1)[0]} {_WHY}"
        else:
            for key in sorted(value):
                if is_secret_option(key):
                    yield f"{entry.key}.{key}", f"option {key} {_WHY}"


# ---- environment variables --------------------------------------------------------------------------------------
# Which secret a job may inherit, by what the job does. Every other secret-looking variable (SECRET_ENV_NAME) is
# dropped from the environment of the Ray head we start, so its jobs never see it. HF_TOKEN is never on the list:
# downloads happen in the fetch rules, outside Ray.
JOB_SECRETS: dict[str, str] = {
    "WANDB_API_KEY": "tracking.wandb",
}


def job_secret_names(params: Mapping[str, Any]) -> tuple[str, ...]:
    """The secret variables a job with these params needs (WANDB_API_KEY only when tracking.wandb is on)."""
    needed = []
    for name, key in JOB_SECRETS.items():
        section, leaf = key.split(".")
        if (params.get(section) or {}).get(leaf):
            needed.append(name)
    return tuple(needed)


def scrubbed_environ(environ: Mapping[str, str], keep: Sequence[str] = ()) -> dict[str, str]:
    """`environ` without its secret-looking variables, except the names in `keep` (what the job needs)."""
    return {k: v for k, v in environ.items() if k in keep or not is_secret_env_name(k)}


def secret_env_problems(env_vars: Mapping[str, str]) -> list[str]:
    """Secret-looking names in a job's runtime_env.env_vars: Ray's job API returns env_vars in plain text to anyone
    who reaches the dashboard, so a secret travels through the head's environment instead."""
    return sorted(k for k in env_vars if is_secret_env_name(k))
