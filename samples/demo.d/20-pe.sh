# PE metadata: which images are hotpatch images, what they patch, and a hotpatch-capable base.
mkdir -p "$DEMO_OUT/pe"
hpforensics pe info samples/pe/hpbase.dll samples/pe/hpbase_hp1.dll samples/pe/hpbase_hp2.dll \
    samples/pe/forged_hp.dll samples/pe/hpkern.sys samples/pe/hpkern_hp1.sys | tee "$DEMO_OUT/pe/info.txt"
hpforensics pe info samples/pe/*.dll samples/pe/*.sys --format json > "$DEMO_OUT/pe/info.json"
# A malformed image is one line naming the file and offset, exit 2.
head -c 2000 samples/pe/hpbase.dll > "$DEMO_OUT/pe/truncated.dll"
if hpforensics pe info "$DEMO_OUT/pe/truncated.dll" 2> "$DEMO_OUT/pe/truncated.err"; then
    echo "expected an error for a truncated image" >&2; exit 1
fi
echo "A truncated PE (expected: one line naming file and offset, exit 2):"
cat "$DEMO_OUT/pe/truncated.err"
echo "pe info -> $DEMO_OUT/pe/"
