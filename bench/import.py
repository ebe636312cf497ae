"""Benchmark of ``nbo import``: rows/s from a core-banking extract into the training store.

Simulates a bank (``nbo simulate``), writes its history as the extract of
``examples/core_banking`` (``simulator.core_banking``: transactions, cards and holdings CSVs
through the mapping, profiles and hotline calls as contract JSONL), imports it into a fresh store
with ``nbo import`` and reports wall time, rows/s and the CPU each row cost in all processes
(this one and the contract-check pool), then imports the same files again (all duplicates).
Updates the "bench/import.py" section of docs/BENCHMARKS.md.

    .venv/bin/python bench/import.py                     # 45,000 customers x 30 days: ~1.5 M rows
    .venv/bin/python bench/import.py --customers 5000 --no-doc
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import write_section  # noqa: E402

SECTION = "## bench/import.py"
MAPPING = ROOT / "examples" / "core_banking" / "mapping.yaml"


def _cpu_s() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_import(files: list[Path], store: Path, workers: int) -> tuple[dict, float, float]:
    """(the import's JSON summary, wall s, CPU s of every process) of one ``nbo import``."""
    command = [sys.executable, "-m", "services.cli", "import", "--mapping", str(MAPPING), *map(str, files),
               "--store", str(store), "--workers", str(workers), "--quiet", "--json"]
    cpu0, wall0 = _cpu_s(), time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    return json.loads(done.stdout.strip().splitlines()[-1]), time.perf_counter() - wall0, _cpu_s() - cpu0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=45_000, help="customers to simulate")
    parser.add_argument("--days", type=int, default=30, help="days to simulate")
    parser.add_argument("--workers", type=int, default=(os.cpu_count() or 1) + 1,
                        help="contract-check processes (default as nbo import: the cores plus one)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the extract and store here")
    parser.add_argument("--no-doc", action="store_true", help="print only, do not update docs/BENCHMARKS.md")
    parser.add_argument("--json", action="store_true", help="end with one JSON object")
    args = parser.parse_args()

    from domain.catalog import load_catalog
    from simulator.bank import write_jsonl
    from simulator.core_banking import write_extract

    with tempfile.TemporaryDirectory(prefix="nbo-bench-import-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        events = work / "events.jsonl"
        print(f"simulating {args.customers:,} customers x {args.days} days ...", file=sys.stderr)
        write_jsonl(events, load_catalog(), args.customers, args.days, 1, progress=False)
        counts = write_extract(events, work / "extract")
        files = [work / "extract" / name for name in counts]
        size_mb = sum(f.stat().st_size for f in files) / 1e6
        store = work / "store"
        first, wall, cpu = run_import(files, store, args.workers)
        again, wall2, cpu2 = run_import(files, store, args.workers)
    rows = first["read"]
    result = {
        "rows": rows, "files": counts, "input_mb": round(size_mb, 1), "workers": args.workers,
        "wall_s": round(wall, 2), "rows_per_s": round(rows / wall), "cpu_us_per_row": round(cpu / rows * 1e6, 2),
        "rows_per_s_if_cores_free": round((os.cpu_count() or 1) / (cpu / rows)),
        "imported": first["imported"], "rejected": first["rejected"], "timings_s": first["timings_s"],
        "rerun": {"wall_s": round(wall2, 2), "rows_per_s": round(rows / wall2), "imported": again["imported"],
                  "duplicates": again["duplicates"]},
        "load_average": os.getloadavg()[0],
    }
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    lines = [
        f"{rows:,} rows ({', '.join(f'{n} {c:,}' for n, c in counts.items())}; {size_mb:.0f} MB) "
        f"into an empty store with {args.workers} contract-check workers: {wall:.1f} s, "
        f"**{rows / wall:,.0f} rows/s**; {cpu / rows * 1e6:.1f} us of CPU per row over all processes "
        f"(at most {result['rows_per_s_if_cores_free']:,} rows/s when the cores are free).",
        f"The same files again (every row a duplicate): {wall2:.1f} s, {rows / wall2:,.0f} rows/s, "
        f"{again['imported']:,} imported, {again['duplicates']:,} duplicates.",
        f"Store time within the first import: {first['timings_s']}. Load average at the end: {result['load_average']:.1f}.",
    ]
    for line in lines:
        print(line)
    if not args.no_doc:
        section = (f"{SECTION}\n\n`python bench/import.py --customers {args.customers} --days {args.days} "
                   f"--workers {args.workers}`. Machine: {machine}. Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} "
                   f"UTC.\n\n" + "\n".join(f"- {line}" for line in lines) + "\n")
        write_section(SECTION, section)
        print("updated docs/BENCHMARKS.md")
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
