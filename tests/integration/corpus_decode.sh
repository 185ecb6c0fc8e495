#!/bin/sh
# corpus_decode.sh - every dev-corpus message decodes to its source text (subject, From display
# name, each text part, the customer's new text): tests/lib/corpus_decode.py over msgdump output.
# Exit 77 (skip) when python3 or the shared corpus is missing.
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
top_builddir=${top_builddir:-.}
PYTHON3=${PYTHON3:-python3}
corpus="$top_srcdir/../shared/corpus/dev"

if ! command -v "$PYTHON3" >/dev/null 2>&1; then
	echo "SKIP: python3 not found"
	exit 77
fi
if [ ! -f "$corpus/tools/sources.json" ]; then
	echo "SKIP: shared corpus not found at $corpus"
	exit 77
fi
if [ ! -x "$top_builddir/tests/tools/msgdump" ]; then
	echo "FAIL: $top_builddir/tests/tools/msgdump not built"
	exit 1
fi
exec "$PYTHON3" "$top_srcdir/tests/lib/corpus_decode.py" "$top_builddir/tests/tools/msgdump" "$corpus"
