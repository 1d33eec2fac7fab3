# Event logs -> per-device update timelines and monthly hotpatch compliance for the sample
# fleet (7 Windows 11 24H2 devices, triage layout). HP-WS-007 has a damaged chunk: exit 3
# (partial) with a warning naming the file and offset, every intact record kept.
mkdir -p "$DEMO_OUT/timeline"
# A memory finding for HP-WS-001's last hotpatch (as `live` on that host writes it): the report
# shows installed per the logs vs live in memory for it.
python - "$DEMO_OUT/timeline/findings-HP-WS-001.json" <<'PY'
import json, sys
json.dump([{"source": "live:HP-WS-001", "module": "ntoskrnl.exe", "verdict": "hotpatch",
            "kb": "KB5089466", "patch_image": "hotpatch_KB5089466.sys", "sequence": 9}],
          open(sys.argv[1], "w"))
PY
set +e
hpforensics timeline samples/evtx -o "$DEMO_OUT/timeline" --jobs 2 \
    --findings "$DEMO_OUT/timeline/findings-HP-WS-001.json" 2> "$DEMO_OUT/timeline/warnings.txt"
rc=$?
set -e
cat "$DEMO_OUT/timeline/warnings.txt"
if [ "$rc" -ne 3 ]; then
    echo "expected exit 3 (partial input) from the fleet with a damaged log, got $rc" >&2; exit 1
fi
hpforensics timeline samples/evtx/HP-WS-001 -o "$DEMO_OUT/timeline/HP-WS-001" --no-html
hpforensics correlate --timeline "$DEMO_OUT/timeline/HP-WS-001" \
    --findings "$DEMO_OUT/timeline/findings-HP-WS-001.json" | tee "$DEMO_OUT/timeline/correlate.txt"
# The Autopatch view (Intune's hotpatch quality update report terms), per ring and per device
python - "$DEMO_OUT/timeline" <<'PY'
import csv, sys
for name in ("summary", "summary-devices"):
    rows = list(csv.reader(open(f"{sys.argv[1]}/{name}.csv", encoding="utf-8")))
    print(f"{name}.csv:")
    for row in rows[:8]:
        print("  " + " | ".join(row[:9]))
PY
# ETW traces (.etl) of one device (HP-ETW-01, three boot sessions): four compliant months.
hpforensics timeline samples/etl -o "$DEMO_OUT/timeline/etl" --no-html
echo "timeline -> $DEMO_OUT/timeline/ (open report.html)"
