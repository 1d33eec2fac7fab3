# Fleet scale: 20 synthetic devices x 12 months, judged per device on a local Dask cluster of
# 2 worker processes; the same CSVs as a single process plus Parquet partitions.
mkdir -p "$DEMO_OUT/fleet"
python samples/build_fleet.py --devices 20 --out "$DEMO_OUT/fleet/logs"
hpforensics timeline "$DEMO_OUT/fleet/logs" -o "$DEMO_OUT/fleet/timeline" --workers 2
python - "$DEMO_OUT/fleet" <<'PY'
import csv, sys
from collections import Counter
from pathlib import Path
import pyarrow.dataset as ds
root = Path(sys.argv[1])
plan = {(r["device"], r["month"]): r["status"] for r in csv.DictReader(open(root / "logs/fleet-plan.csv"))}
got = {(r["device"], r["month"]): r["status"] for r in csv.DictReader(open(root / "timeline/compliance.csv"))}
table = ds.dataset(root / "timeline/parquet/compliance", partitioning="hive").to_table()
print(f"{len(got)} device-months, {sum(plan[k] == got.get(k) for k in plan)} as the simulator planned; "
      f"Parquet: {table.num_rows} rows in {len(set(table.column('device').to_pylist()))} device= partitions")
print("status:", dict(Counter(got.values())))
PY
rm -rf "$DEMO_OUT/fleet/logs"
