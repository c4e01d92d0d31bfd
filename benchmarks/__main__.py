"""`python -m benchmarks [NAME ...]`: run every benchmark (or those whose name contains NAME), one process each."""

import subprocess
import sys
import time
from pathlib import Path

if __name__ == "__main__":
    here = Path(__file__).parent
    wanted = sys.argv[1:]
    scripts = [p for p in sorted(here.glob("bench_*.py")) if not wanted or any(w in p.stem for w in wanted)]
    failed = []
    for script in scripts:
        print(f"=== {script.stem}", flush=True)
        start = time.perf_counter()
        if subprocess.run([sys.executable, str(script)]).returncode != 0:
            failed.append(script.stem)
        print(f"=== {script.stem}: {time.perf_counter() - start:.0f}s", flush=True)
    print(f"benchmarks: {len(scripts) - len(failed)} ran, {len(failed)} failed {failed or ''}")
    sys.exit(1 if failed else 0)
