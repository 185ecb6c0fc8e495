#!/bin/bash
# demo.sh - the main job on the embedded defaults: bring amends-milter up on a local socket with
# the bundled configuration, pass the bundled sample messages through it over the milter
# protocol, show how each was tagged and which drafts were written, and print the lines that
# attach it to Postfix and Sendmail.
# Usage: contrib/demo.sh [BUILD_DIR]   (run from anywhere; BUILD_DIR defaults to ./_build)
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$src/_build}" && pwd)
demo="$build/demo"
milter="$build/src/amends-milter"
client="$build/tests/milterclient"

[ -x "$milter" ] || { echo "demo: build first (make in $build)" >&2; exit 1; }
make -C "$build" -s tests/milterclient >/dev/null
rm -rf "$demo" && mkdir -p "$demo"

# The bundled configuration, with its paths pointed at this checkout and a private state dir.
sed -e "s|^state_dir = .*|state_dir = \"$demo/state\";|" \
    -e "s|dir = \"../rules\";|dir = \"$src/rules\";|" \
    -e "s|templates_dir = \"templates\";|templates_dir = \"$src/conf/templates\";|" \
    -e "s|longstanding_file = \"longstanding.txt\";|longstanding_file = \"$src/conf/longstanding.txt\";|" \
    "$src/conf/amends.conf" > "$demo/amends.conf"
mkdir -p "$demo/state"
sock="$demo/amends.sock"

"$milter" -c "$demo/amends.conf" -f -p "unix:$sock" 2> "$demo/amends.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
[ -S "$sock" ] || { echo "demo: the daemon did not start:" >&2; cat "$demo/amends.log" >&2; exit 1; }
echo "amends-milter is up (pid $pid) on unix:$sock with $demo/amends.conf"
echo

for f in "$src"/contrib/samples/*.eml; do
	echo "--- $(basename "$f"): $(grep -m1 '^Subject:' "$f" | cut -c1-70)"
	"$client" -s "unix:$sock" "$f" | sed 's/^/    /'
done

echo
echo "--- drafts written for review (Maildir $demo/state/Maildir/.Drafts), headers decoded:"
found=0
for d in "$demo"/state/Maildir/.Drafts/cur/*; do
	[ -f "$d" ] || continue
	found=1
	echo "  $(basename "$d")"
	if command -v python3 >/dev/null; then
		python3 - "$d" <<'PY' | sed 's/^/      /'
import sys
from email import message_from_binary_file
from email.header import decode_header, make_header
with open(sys.argv[1], 'rb') as f:
    m = message_from_binary_file(f)
# decode_header joins adjacent encoded words as RFC 2047 6.2 says (policy.default's address
# parser keeps the folding space between them: CPython gh-128110).
for h in ('X-Amends-Draft-Kind', 'From', 'To', 'Subject', 'In-Reply-To', 'Content-Language'):
    print(f'{h}: {make_header(decode_header(m[h] or ""))}')
body = m.get_payload(decode=True).decode('utf-8').strip().splitlines()
print('|', '\n| '.join(body[:4]))
print('| ...')
PY
	else
		grep -E '^(To|Subject|X-Amends-Draft-Kind|In-Reply-To):' "$d" | sed 's/^/      /'
	fi
done
[ "$found" = 1 ] || echo "  (none)"
echo
echo "--- log (last lines of $demo/amends.log):"
tail -n 8 "$demo/amends.log" | sed 's/^/    /'

cat <<EOT

--- attach to Postfix (/etc/postfix/main.cf), then: postfix reload
smtpd_milters = { unix:/run/amends/amends.sock, default_action=accept, connect_timeout=10s, command_timeout=10s, content_timeout=30s }
non_smtpd_milters =
milter_protocol = 6
milter_default_action = accept

--- attach to Sendmail (sendmail.mc; no F= flag, so mail passes if amends is down), then rebuild sendmail.cf
INPUT_MAIL_FILTER(\`amends', \`S=local:/run/amends/amends.sock, T=C:10s;S:10s;R:20s;E:1m')
EOT
