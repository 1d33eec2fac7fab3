# Hardening: damaged evidence gives one line naming file and offset and a documented exit code
# (2 nothing usable, 3 partial), never a traceback; every report carries its chain of custody.
OUT="$DEMO_OUT/hardening"
mkdir -p "$OUT"
python tests/corrupt/corrupt_corpus.py "$OUT/corpus" > /dev/null   # damaged copies of the samples
for f in pe_reloc_block_zero pe_hotpatch_selfref pe_size_of_image_huge; do
    hpforensics pe diff --disk "$OUT/corpus/$f.dll" --base 0x7ffb12340000 \
        --memory "samples/pe/mem/clean.hpbase.dll@7ffb12340000.bin" 2>&1 | tee -a "$OUT/errors.txt" || true
done
# a log cut inside its second chunk: the first chunk' records are all kept, exit 3
head -c 102400 samples/evtx/HP-WS-001/C/Windows/System32/winevt/Logs/System.evtx > "$OUT/cut.evtx"
rc=0; hpforensics timeline "$OUT/cut.evtx" -o "$OUT/timeline" --no-html 2>> "$OUT/errors.txt" || rc=$?
echo "timeline on a cut log: exit $rc" | tee -a "$OUT/errors.txt"
[ "$rc" -eq 3 ] || [ "$rc" -eq 2 ]
hpforensics hash -q -f csv -o "$OUT/hash.csv" samples/pe/hpbase.dll
echo "custody: $(grep -c sha256 "$OUT/hash.csv.custody.json") input(s) in $OUT/hash.csv.custody.json"
rm -rf "$OUT/corpus"
echo "hardening -> $OUT/"
