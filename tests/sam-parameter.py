#!/usr/bin/env python3
"""Checks the argument `make deploy` gives `sam deploy --parameter-overrides`: SAM CLI's own
parser (the version `make deploy` installs) must give back every parameter, and the
SesguardConfig value must be the same TOML document as the configuration file.

Usage: sam-parameter.py SESGUARD_BINARY   (with the Python of .venv/sam-parser, see Makefile)
"""

import os
import subprocess
import sys
import tempfile
import tomllib

from samcli.cli.types import CfnParameterOverridesType

# What `make deploy PARAMS=...` appends after the configuration.
OTHERS = {
    "BackupRoleArns": "arn:aws:iam::222222222222:role/sesguard-sender",
    "WebhookTopicArns": "arn:aws:sns:eu-west-1:222222222222:ses-feedback,arn:aws:sns:us-east-1:333333333333:b",
}


def check(binary: str, path: str) -> list[str]:
    parameter = subprocess.run(
        [binary, "--config", path, "config", "deploy-parameter"],
        check=True, capture_output=True, text=True,
    ).stdout.rstrip("\n")
    argument = parameter + " " + " ".join(f"{k}={v}" for k, v in OTHERS.items())
    parsed = CfnParameterOverridesType().convert(argument, None, None)
    problems = []
    with open(path, "rb") as f:
        expected = tomllib.load(f)
    try:
        if tomllib.loads(parsed.get("SesguardConfig", "")) != expected:
            problems.append(f"{path}: SAM reads another configuration: {parsed.get('SesguardConfig')!r}")
    except tomllib.TOMLDecodeError as error:
        problems.append(f"{path}: SAM reads text that is not TOML ({error}): {parsed.get('SesguardConfig')!r}")
    for key, value in OTHERS.items():
        if parsed.get(key) != value:
            problems.append(f"{path}: {key} reads {parsed.get(key)!r}, expected {value!r}")
    return problems


def main() -> int:
    binary = sys.argv[1]
    example = "infra/sesguard.example.toml"
    with open(example) as f:
        text = f.read()
    # Spaces, apostrophes, `=`, `,` and non-ASCII text inside a value: all must pass unchanged.
    awkward = text.replace(
        'file = ".sesguard/alerts.jsonl"',
        "file = \"/var/log/o'brien's alerts, a=b é.jsonl\"",
    )
    assert awkward != text, "the example's alerts.file line changed: update this check"
    problems = []
    with tempfile.TemporaryDirectory() as work:
        path = os.path.join(work, "awkward.toml")
        with open(path, "w") as f:
            f.write(awkward)
        for config in (example, path):
            found = check(binary, config)
            problems += found
            print(("FAIL " if found else "ok   ") + f"deploy parameter: {os.path.basename(config)} through SAM's parser")
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
