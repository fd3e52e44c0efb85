#!/usr/bin/env python3
"""`make api-check`: schemathesis against the admin function under `cargo lambda watch`.

Serves the functions on 127.0.0.1 with a throwaway embedded store (as `make demo` does), then
runs `schemathesis run infra/openapi.json --checks all` with the bearer token against the
admin function's URL: examples, coverage, fuzzing and stateful phases, every check. The run
must end with no failure and no error. Arguments after the script's name go to schemathesis
(`--seed N`, `--max-examples N`).
"""

import os
import pathlib
import shutil
import subprocess
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import demo  # noqa: E402  the same watch as the demo

ROOT = demo.ROOT
SCHEMATHESIS = os.environ.get("SCHEMATHESIS", str(ROOT / ".venv/schemathesis/bin/schemathesis"))


def main():
    work = demo.local_run("sesguard-api.")
    subprocess.run(["cargo", "build", "--quiet", "--locked", "--bins"], cwd=ROOT, check=True)
    watch = demo.Watch(work)
    try:
        args = sys.argv[1:] or ["--seed", "1"]
        done = subprocess.run(
            [SCHEMATHESIS, "run", str(ROOT / "infra/openapi.json"),
             "--url", f"http://127.0.0.1:{watch.port}/lambda-url/admin",
             "--checks", "all", "--workers", "1", "--no-color", "--request-timeout", "60", "--rate-limit", "40/s",
             "-H", f"Authorization: Bearer {demo.TOKEN}", *args],
            # Run outside the tree: `cargo lambda watch` restarts the functions when files in it
            # change, and schemathesis keeps its example database in its working directory.
            cwd=work, env={**os.environ, "SCHEMATHESIS_HOOKS": "schemathesis_hooks",
                           "PYTHONPATH": str(ROOT / "tests")},
            timeout=900,
        )
        if done.returncode != 0:
            # What the emulator and the function said, for the failure's cause.
            kept = ROOT / "target" / "api-check-watch.log"
            kept.parent.mkdir(exist_ok=True)
            shutil.copy(work / "watch.log", kept)
            print(f"--- cargo lambda watch's log: {kept}; its errors: ---")
            lines = kept.read_text().splitlines()
            print("\n".join([line for line in lines if "ERROR" in line or "panicked" in line][-20:]))
        return done.returncode
    finally:
        watch.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
