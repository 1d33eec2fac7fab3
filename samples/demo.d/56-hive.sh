# Hotpatch enrolment straight from registry hives: a KAPE-style collection of HP-WS-001
# (samples/kape/, written by samples/build_hive.py) holds its SOFTWARE and SYSTEM hives; the
# timeline reads AllowRebootlessUpdates and HotPatchTableSize (ControlSet002, the set
# Select\Current names) from them, alone and beside the device's event logs.
mkdir -p "$DEMO_OUT/hive"
hpforensics timeline samples/kape -o "$DEMO_OUT/hive/hives-only" --no-html
grep -h "Registry" "$DEMO_OUT/hive/hives-only/timeline.csv" | cut -d, -f1 | tee "$DEMO_OUT/hive/enrolment.txt"
echo device,hotpatch_enrolment
python -c 'import csv, sys; [print(r["device"], r["hotpatch_enrolment"], sep=",") for r in csv.DictReader(open(sys.argv[1]))]' "$DEMO_OUT/hive/hives-only/devices.csv"
hpforensics timeline samples/kape samples/evtx/HP-WS-001 -o "$DEMO_OUT/hive/with-logs" --no-html
echo "hive -> $DEMO_OUT/hive/"
