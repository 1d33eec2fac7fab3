# Reference data: release calendar, KB manifests, page-hash store.
mkdir -p "$DEMO_OUT/kb"
export HPF_DATA_DIR="$DEMO_OUT/kb/userdata"   # keep the demo's calendar update out of $HOME
hpforensics calendar --product windows11-24h2 --from 2025-10 --to 2026-12 | tee "$DEMO_OUT/kb/calendar-24h2.txt"
hpforensics calendar --format csv > "$DEMO_OUT/kb/calendar.csv"
printf 'product,month,kb,build,kind,date,note\nwindows11-24h2,2026-08,KB5999001,26100.9200,hotpatch,2026-08-11,demo row\n' \
    > "$DEMO_OUT/kb/my-rows.csv"
hpforensics calendar update "$DEMO_OUT/kb/my-rows.csv"
# Manifests: Microsoft's file-information CSV, and a folder of binaries (hotpatch images included).
hpforensics manifest import samples/kb/KB5052105-file-information.csv -o "$DEMO_OUT/kb/KB5052105-csv.json"
rm -rf "$DEMO_OUT/kb/update" && mkdir -p "$DEMO_OUT/kb/update"
cp samples/pe/*.dll samples/pe/*.sys samples/kb/servicing/* "$DEMO_OUT/kb/update/"
hpforensics manifest import "$DEMO_OUT/kb/update" --kb KB5077212 -o "$DEMO_OUT/kb/KB5077212.json" -j 1
hpforensics manifest show "$DEMO_OUT/kb/KB5077212.json" | tee "$DEMO_OUT/kb/KB5077212.txt"
# A CSV with broken rows: the good rows are kept, each bad one is named by line (exit 3).
hpforensics manifest import samples/kb/bad-row.csv --kb KB5051987 -o "$DEMO_OUT/kb/bad-row.json" \
    2> "$DEMO_OUT/kb/bad-row.err" || [ $? -eq 3 ]
cat "$DEMO_OUT/kb/bad-row.err"
# Page-hash store: build it from the sample images, then identify modules dumped from the sample
# memory image (mapped at 0x7ffb12340000): the clean one matches exactly; in the hotpatched one
# the page with the hotpatch redirect matches no stored page.
rm -f "$DEMO_OUT/kb/pages.db"*
hpforensics store build samples/pe/*.dll samples/pe/*.sys --db "$DEMO_OUT/kb/pages.db" --kb KB5077212 -j 1
hpforensics store lookup "samples/pe/mem/clean.hpbase.dll@7ffb12340000.bin" --name hpbase.dll \
    --base 0x7ffb12340000 --db "$DEMO_OUT/kb/pages.db" | tee "$DEMO_OUT/kb/lookup-clean.txt"
hpforensics store lookup "samples/pe/mem/hp1.hpbase.dll@7ffb12340000.bin" --name hpbase.dll \
    --base 0x7ffb12340000 --db "$DEMO_OUT/kb/pages.db" -f csv | tee "$DEMO_OUT/kb/lookup-hp1.csv"
rm -rf "$DEMO_OUT/kb/update"
echo "calendar, manifests, page-hash store -> $DEMO_OUT/kb/"
