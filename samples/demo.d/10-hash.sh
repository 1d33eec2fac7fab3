# Per-page digests of the bundled sample PE files (C core: XXH3-128 / SHA-256 per 4 KiB page).
mkdir -p "$DEMO_OUT/hash"
shopt -s nullglob
pe_files=(samples/pe/*.dll samples/pe/*.sys)
if [ ${#pe_files[@]} -eq 0 ]; then
    pe_files=(samples/demo.sh)
fi
hpforensics hash "${pe_files[@]}" --algo sha256 --format csv -o "$DEMO_OUT/hash/pages-sha256.csv"
hpforensics hash "${pe_files[@]}" --format json -o "$DEMO_OUT/hash/pages-xxh128.json"
hpforensics hash "${pe_files[0]}" --page-size 1024
echo "$(($(wc -l < "$DEMO_OUT/hash/pages-sha256.csv") - 1)) pages hashed -> $DEMO_OUT/hash/"
