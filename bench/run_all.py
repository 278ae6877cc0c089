"""Run every benchmark in turn (`make bench`); a failing script's stderr is shown, others' is not
(it only holds the server's start-up warnings)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ["list_10k.py", "auth_overhead.py", "acl_list.py", "realtime_fanout.py", "feed.py"]


def main() -> int:
    failed = []
    for script in SCRIPTS:
        print(f"== {script}", flush=True)
        start = time.perf_counter()
        done = subprocess.run([sys.executable, str(HERE / script)], stderr=subprocess.PIPE, text=True, check=False)
        if done.returncode:
            failed.append(script)
            print(done.stderr, file=sys.stderr)
        print(f"   ({time.perf_counter() - start:.0f} s{', FAILED' if done.returncode else ''})\n", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
