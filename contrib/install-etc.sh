#!/bin/sh
# install-etc.sh - install or uninstall one admin-editable file under /etc without ever
# overwriting an edited copy (used by "make install" / "make uninstall", see Makefile.am)
#
#   install-etc.sh install MODE SRC DEST    DEST missing: install SRC as DEST;
#                                           DEST the same as SRC: nothing to do;
#                                           DEST different (edited): leave it, install SRC as
#                                           DEST.dist and say so
#   install-etc.sh uninstall SRC DEST       remove DEST only when it is still the same as SRC
#                                           (an edited file stays), and DEST.dist
#
# The file is written under a temporary name and renamed, so an interrupted install leaves no
# half-written configuration. No other program is run on the files' contents.
set -eu

usage() {
	echo "usage: $0 install MODE SRC DEST | uninstall SRC DEST" >&2
	exit 2
}

put() {  # put MODE SRC DEST - atomic install of SRC as DEST
	tmp="$3.tmp.$$"
	cp "$2" "$tmp"
	chmod "$1" "$tmp"
	mv -f "$tmp" "$3"
}

[ $# -ge 1 ] || usage
case $1 in
install)
	[ $# -eq 4 ] || usage
	mode=$2 src=$3 dest=$4
	dir=$(dirname "$dest")
	[ -d "$dir" ] || mkdir -p "$dir"
	if [ ! -e "$dest" ]; then
		put "$mode" "$src" "$dest"
	elif cmp -s "$src" "$dest"; then
		:
	else
		put "$mode" "$src" "$dest.dist"
		echo "$dest differs from the shipped version: kept it, new version in $dest.dist"
	fi
	;;
uninstall)
	[ $# -eq 3 ] || usage
	src=$2 dest=$3
	if [ -f "$dest" ] && cmp -s "$src" "$dest"; then
		rm -f "$dest"
	elif [ -f "$dest" ]; then
		echo "$dest was edited: kept it"
	fi
	rm -f "$dest.dist"
	;;
*)
	usage
	;;
esac
