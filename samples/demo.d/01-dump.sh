# Memory image: a Windows 11 24H2 machine with hotpatched, hooked and forged images.
# Volatility recognises it unaided; hpforensics says which changed byte is a hotpatch and which is not.
mkdir -p "$DEMO_OUT/dump/vol-cache"
IMAGE=samples/win11-24h2-hotpatch.raw
[ -f "$IMAGE" ] || python samples/build_memimage.py      # deterministic, about a second
# a private Volatility cache: a shared one can lose our table to other runs (see session.py)
VOL=(vol -q --offline --cache-path "$DEMO_OUT/dump/vol-cache" -f "$IMAGE" -s samples/symbols)
"${VOL[@]}" windows.pslist 2>/dev/null | tee "$DEMO_OUT/dump/pslist.txt"
"${VOL[@]}" -p plugins windows.hotpatch.Images \
    --manifest samples/memimage-kb.json 2>/dev/null | tee "$DEMO_OUT/dump/hotpatch-images.txt"
hpforensics dump analyze "$IMAGE" --symbols samples/symbols --reference samples/pe \
    --manifest samples/memimage-kb.json --yara rules -o "$DEMO_OUT/dump"
# A truncated image is one line saying what is missing, exit 2.
head -c 4194304 "$IMAGE" > "$DEMO_OUT/dump/truncated.raw"
if hpforensics dump analyze "$DEMO_OUT/dump/truncated.raw" --symbols samples/symbols \
    -o "$DEMO_OUT/dump/truncated" 2> "$DEMO_OUT/dump/truncated.err"; then
    echo "expected an error for a truncated image" >&2; exit 1
fi
echo "A truncated copy of the image (expected: one line, exit 2):"
cat "$DEMO_OUT/dump/truncated.err"
rm -rf "$DEMO_OUT/dump/truncated.raw" "$DEMO_OUT/dump/vol-cache"
echo "dump analyze -> $DEMO_OUT/dump/"
