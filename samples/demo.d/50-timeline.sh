# Event logs -> per-device update timelines and monthly hotpatch compliance for the sample
# fleet (7 Windows 11 24H2 devices, triage layout). HP-WS-007 has a damaged chunk: exit 3
# (partial) with a warning naming the file and offset, every intact record kept.
mkdir -p "$DEMO_OUT/timeline"
set +e
hpforensics timeline samples/evtx -o "$DEMO_OUT/timeline" --jobs 2 2> "$DEMO_OUT/timeline/warnings.txt"
rc=$?
set -e
cat "$DEMO_OUT/timeline/warnings.txt"
if [ "$rc" -ne 3 ]; then
    echo "expected exit 3 (partial input) from the fleet with a damaged log, got $rc" >&2; exit 1
fi
# Installed per the logs vs live in memory, with a memory finding for HP-WS-001's last hotpatch.
python - "$DEMO_OUT/timeline/findings-HP-WS-001.json" <<'PY'
import json, sys
json.dump([{"source": "live:HP-WS-001", "module": "ntoskrnl.exe", "verdict": "hotpatch",
            "kb": "KB5089466", "patch_image": "hotpatch_KB5089466.sys", "sequence": 9}],
          open(sys.argv[1], "w"))
PY
hpforensics timeline samples/evtx/HP-WS-001 -o "$DEMO_OUT/timeline/HP-WS-001" --no-html
hpforensics correlate --timeline "$DEMO_OUT/timeline/HP-WS-001" \
    --findings "$DEMO_OUT/timeline/findings-HP-WS-001.json" | tee "$DEMO_OUT/timeline/correlate.txt"
# ETW traces (.etl) of one device (HP-ETW-01, three boot sessions): four compliant months.
hpforensics timeline samples/etl -o "$DEMO_OUT/timeline/etl" --no-html
echo "timeline -> $DEMO_OUT/timeline/ (open report.html)"
