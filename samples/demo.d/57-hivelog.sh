# A dirty hive, as a live copy leaves it: HP-WS-002's SOFTWARE says AllowRebootlessUpdates = 0
# (sequence numbers 42 and 41), its .LOG2 / .LOG1 hold log entries 41 and 42 that set it to 1.
# The timeline replays the logs in memory (hpforensics/evtx/hive_log.py) and reads the result:
# enrolled, exit 0, each event saying which log entries were applied; the files stay as they are.
mkdir -p "$DEMO_OUT/hivelog"
python samples/build_hive.py --dirty "$DEMO_OUT/hivelog/kape"
hpforensics timeline "$DEMO_OUT/hivelog/kape" -o "$DEMO_OUT/hivelog/out" --no-html
grep -h "AllowRebootlessUpdates" "$DEMO_OUT/hivelog/out/events.csv" \
    | tee "$DEMO_OUT/hivelog/replayed.txt"
echo device,hotpatch_enrolment
python -c 'import csv, sys; [print(r["device"], r["hotpatch_enrolment"], sep=",") for r in csv.DictReader(open(sys.argv[1]))]' "$DEMO_OUT/hivelog/out/devices.csv"
echo "hivelog -> $DEMO_OUT/hivelog/"
