# Hotpatch month: the files on disk are not what runs, so there is no --reference folder.
# The page-hash store (built from the update's images) is the reference: each module is
# identified by its mapped header, verified page by page, hotpatch redirects undone from the
# patch tables mapped beside it and re-hashed; the attacked page matches no known version.
OUT="$DEMO_OUT/store-reference"
rm -rf "$OUT" && mkdir -p "$OUT"
IMAGE=samples/win11-24h2-hotpatch.raw
[ -f "$IMAGE" ] || python samples/build_memimage.py
hpforensics store build samples/pe/*.dll samples/pe/*.sys --db "$OUT/pages.db" --kb KB5077212 -j 1
hpforensics dump analyze "$IMAGE" --symbols samples/symbols --store "$OUT/pages.db" \
    -o "$OUT/dump" -q
# which version (and KB) each sample module was verified as, and what its pages came to
python - "$OUT/dump/modules.csv" <<'PY' | tee "$OUT/modules-by-store.txt"
import csv, sys
for r in csv.DictReader(open(sys.argv[1])):
    if r["reference"].startswith("store:"):
        print(f'{r["pid"] or "kernel":>6} {r["module"]:<16} {r["reference"].split(":")[-1]:<36}'
              f' verified={r["pages_verified"]} hotpatched={r["pages_hotpatched"]}'
              f' unexplained={r["pages_unexplained"]}')
PY
# notepad.exe (pid 3128): genuine redirects hotpatch, the attacker's page unexplained as a whole
python - "$OUT/dump/findings.csv" <<'PY' | tee "$OUT/notepad-findings.csv"
import csv, sys
for r in csv.DictReader(open(sys.argv[1])):  # by column name: the schema is the dataclass's
    if r["pid"] == "3128" and r["verdict"] in ("hotpatch", "unexplained"):
        print(",".join((r["pid"], r["module"], r["rva"], r["size"], r["verdict"])))
PY
echo "dump analyze --store -> $OUT/"
