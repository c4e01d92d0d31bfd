"""`python -m benchmarks [NAME ...]`: run every benchmark (or those whose name contains NAME), one process each,
then one summary table of their headline figures: figure, value, target, met?"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __name__ == "__main__":
    here = Path(__file__).parent
    wanted = sys.argv[1:]
    scripts = [p for p in sorted(here.glob("bench_*.py")) if not wanted or any(w in p.stem for w in wanted)]
    failed = []
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results.jsonl"
        env = dict(os.environ, BENCH_RESULTS=str(results))
        for script in scripts:
            print(f"=== {script.stem}", flush=True)
            start = time.perf_counter()
            if subprocess.run([sys.executable, str(script)], env=env).returncode != 0:
                failed.append(script.stem)
            print(f"=== {script.stem}: {time.perf_counter() - start:.0f}s", flush=True)
        rows = [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []
    print("\n| figure | value | target | met? |\n|---|---|---|---|")
    for row in rows:
        met = "-" if row["met"] is None else ("yes" if row["met"] else "**no**")
        print(f"| {row['figure']} | {row['value']:.4g}{row['unit']} | {row['target'] or '-'} | {met} |")
    judged = [r for r in rows if r["met"] is not None]
    print(f"\nbenchmarks: {len(scripts) - len(failed)} ran, {len(failed)} failed {failed or ''}; "
          f"{sum(r['met'] for r in judged)}/{len(judged)} targets met")
    sys.exit(1 if failed else 0)
