# Live scan (read-only): every running process's code against the files it maps, then a small
# program whose function the demo redirects into a library it loads (a user-space live patch)
# and one whose code the demo overwrites through /proc/PID/mem (unexplained).
mkdir -p "$DEMO_OUT/live"
hpforensics live -q -f json -o "$DEMO_OUT/live/host.json"
python - "$DEMO_OUT/live/host.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
ok = [p for p in doc["processes"] if p["status"] == "ok"]
pages = sum(p["pages_total"] for p in ok)
print(f"host: {len(ok)} processes read, {pages} code pages, "
      f"{sum(p['pages_skipped'] for p in ok)} vouched for by pagemap without reading, "
      f"{sum(p['unexplained'] for p in ok)} unexplained")
PY
if command -v gcc >/dev/null; then
    B="$DEMO_OUT/live/bin"; mkdir -p "$B"
    gcc -O1 -o "$B/hpf_target" tests/live/target.c -ldl
    gcc -O1 -shared -fPIC -o "$B/libhpfpatch.so" tests/live/patchlib.c
    coproc T { "$B/hpf_target"; }
    read -r _ <&"${T[0]}"                                   # ready
    echo p >&"${T[1]}"; read -r PID FUNC BUF <&"${T[0]}"
    echo "l $(cd "$B" && pwd)/libhpfpatch.so target_func_v2" >&"${T[1]}"
    read -r REPLY <&"${T[0]}"; echo "target_func now jumps to $REPLY"
    hpforensics live --pid "$PID" -q --yara rules/hooks.yar | tee "$DEMO_OUT/live/live-patch.txt"
    # an attacker's jmp into the program's anonymous RWX buffer, one page past the patch
    python - "$PID" "$FUNC" "$BUF" <<'PY'
import os, struct, sys
pid, func, buf = int(sys.argv[1]), int(sys.argv[2], 16), int(sys.argv[3], 16)
site = func + 0x20
fd = os.open(f"/proc/{pid}/mem", os.O_RDWR)
os.pwrite(fd, b"\xe9" + struct.pack("<i", buf - (site + 5)), site)
os.close(fd)
PY
    hpforensics live --pid "$PID" -q -f csv -o "$DEMO_OUT/live/changed.csv"
    hpforensics live --pid "$PID" -q | tee "$DEMO_OUT/live/changed.txt"
    echo q >&"${T[1]}"; wait "$T_PID" 2>/dev/null || true
fi
echo "live -> $DEMO_OUT/live/"
