#!/usr/bin/env bash
# `cnbackup report --html` rendered as a browser renders it: a file store with three sets and a
# forged one, the page written, then headless Chromium (Debian's `chromium`) takes a screenshot
# (it must not be blank) and dumps the rendered DOM, which must show every set and every problem
# that `cnbackup list --json` reports, and no element the bucket's writer planted.
# Usage: scripts/check-report.sh [path/to/cnbackup]
set -euo pipefail
cd "$(dirname "$0")/.."
CNB=$(realpath "${1:-$(swift build --show-bin-path)/cnbackup}")
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
[ -n "$CHROMIUM" ] || { echo "check-report: chromium is not installed (apt-get install chromium; scripts/setup.sh does)" >&2; exit 1; }
W=$(mktemp -d /tmp/cnbackup-report.XXXXXX)
trap '[ -z "${KEEP_PNG:-}" ] || cp "$W/report.png" "$KEEP_PNG" 2>/dev/null; rm -rf "$W"' EXIT
R=$("$CNB" keys generate --out "$W/id" 2>/dev/null); S=$("$CNB" keys generate --signing --out "$W/sign" 2>/dev/null)
printf 'payload\n' >"$W/input"
for n in 1 2 3; do
  "$CNB" upload --store "file://$W/store" --node node-1 --kind generic --epoch 4/$((n / 3)) --component other="$W/input" \
    --recipient "$R" --signing-key "$W/sign" --captured-at "2026-12-0${n}T04:00:00Z" >/dev/null 2>"$W/upload.err" \
    || { cat "$W/upload.err"; echo "check-report: upload failed"; exit 1; }
done
# The writer plants a set whose manifest names a script.
forged="$W/store/node-1/migration-4/serial-0/20261130T040000Z-0badf00d"
mkdir -p "$forged"
printf '{"setId":"<script>alert(1)</script>"}' >"$forged/manifest-00000000000000aa.json"
"$CNB" report --store "file://$W/store" --signer "$S" --retention-period 30d --html "$W/report.html" 2>"$W/report.err" \
  || { cat "$W/report.err"; echo "check-report: report --html failed"; exit 1; }
"$CNB" list --store "file://$W/store" --signer "$S" --json >"$W/list.json" 2>/dev/null || true
chrome() { timeout 60 "$CHROMIUM" --headless=new --no-sandbox --disable-gpu --no-first-run --disable-extensions \
  --user-data-dir="$W/chrome" "$@" 2>>"$W/chrome.log"; }
chrome --screenshot="$W/report.png" --window-size=1400,1200 "file://$W/report.html" >/dev/null
chrome --dump-dom "file://$W/report.html" >"$W/dom.html"
python3 - "$W/report.png" "$W/dom.html" "$W/list.json" <<'PY'
import html, json, struct, sys, zlib
png, dom, listing = sys.argv[1:4]
data = open(png, "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
# Decode the PNG (8-bit RGB or RGBA, no interlace) and count distinct pixels: a blank page has one.
pos, chunks, width = 8, b"", 0
while pos < len(data):
    length, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + length]
    if kind == b"IHDR":
        width, height, depth, colour = struct.unpack(">IIBB", body[:10])
        channels = {2: 3, 6: 4}[colour]
    elif kind == b"IDAT":
        chunks += body
    pos += 12 + length
raw = zlib.decompress(chunks)
stride = width * channels + 1
colours = set()
for row in range(0, min(height, 600), 10):
    line = raw[row * stride + 1:(row + 1) * stride]   # filter byte skipped: distinctness survives filters
    colours.update(line[i:i + channels] for i in range(0, len(line), channels * 7))
assert len(colours) > 20, "the screenshot looks blank (%d colours)" % len(colours)
page = open(dom).read()
assert "<script" not in page.lower().replace("&lt;script", ""), "a script element in the rendered page"
text = html.unescape(page)
sets = json.load(open(listing))["sets"]
assert len(sets) >= 4, sets
for s in sets:
    assert s["id"] in text, "set %s is not on the page" % s["id"]
    for problem in s.get("problems", []):
        assert problem in text, "problem %r of %s is not on the page" % (problem, s["id"])
print("check-report: %d sets and their problems on the rendered page; screenshot %d bytes, %d colours sampled" % (len(sets), len(data), len(colours)))
PY
echo "check-report: ok"
