"""Run every benchmark in turn (`make bench`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ["list_10k.py", "auth_overhead.py", "acl_list.py", "realtime_fanout.py"]

if __name__ == "__main__":
    failed = 0
    for script in SCRIPTS:
        print(f"== {script}", flush=True)
        failed |= subprocess.run([sys.executable, str(HERE / script)], stderr=subprocess.DEVNULL).returncode
        print(flush=True)
    sys.exit(1 if failed else 0)
