# pe diff: the verification engine on a module carved from memory (bundled samples/pe).
# hpbase.dll as it sits in the "attacked" sample process: two genuine hotpatch redirects into
# hpbase_hp1.dll, an inline hook, a fake EB F9 redirect, a redirect into a forged patch image
# and an IAT hook. Patch images are laid out at their bases; the HPAT and the attacker's
# private region are raw memory; the other modules are declared so IAT/CFG targets are checked.
set -euo pipefail
out="$DEMO_OUT/pe-diff"
mkdir -p "$out"
pe=samples/pe
args=(pe diff --disk "$pe/hpbase.dll" --memory "$pe/mem/attacked.hpbase.dll@7ffb12340000.bin"
      --base 0x7ffb12340000
      --patch "$pe/hpbase_hp1.dll@0x7ffb12400000" --patch "$pe/forged_hp.dll@0x7ffb12500000"
      --region "$pe/mem/attacked.hpat@7ffb12346000.bin"
      --region "$pe/mem/attacked.private@7ffb12600000.bin"
      --module kernel32.dll@0x7ffb2a3b0000:0xc2000 --module ntdll.dll@0x7ffb2c4f0000:0x1f8000)
hpforensics "${args[@]}" -o "$out/attacked.txt"
hpforensics "${args[@]}" --format json -o "$out/attacked.json"
hpforensics "${args[@]}" --format csv --all -o "$out/attacked-all.csv"
hpforensics pe diff --disk "$pe/hpbase.dll" --memory "$pe/mem/hp2.hpbase.dll@7ffb12340000.bin" \
    --base 0x7ffb12340000 --patch "$pe/hpbase_hp1.dll@0x7ffb12400000" \
    --patch "$pe/hpbase_hp2.dll@0x7ffb12480000" --region "$pe/mem/hp2.hpat@7ffb12346000.bin" \
    -o "$out/hp2.txt"
cat "$out/attacked.txt"
