#!/bin/sh
# install-deps.sh - install every Debian package amends needs to build, run and test
# Usage: sudo contrib/install-deps.sh [--runtime-only]
set -eu
export DEBIAN_FRONTEND=noninteractive
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

BUILD="build-essential autoconf automake m4 pkg-config libmilter-dev libpcre2-dev libconfig-dev
 libgmime-3.0-dev libutf8proc-dev libxml2-dev libsqlite3-dev libhiredis-dev libetpan-dev
 libgnutls28-dev ca-certificates"
TEST="libcmocka-dev miltertest postfix swaks redis-server dovecot-imapd valgrind clang
 libclang-rt-14-dev sqlite3 python3 openssl systemd dpkg-dev binutils clang-tidy clang-tools"

# postfix asks debconf questions: answer "No configuration" (the tests bring their own config)
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
$SUDO apt-get update -qq
if [ "${1:-}" = "--runtime-only" ]; then
	$SUDO apt-get install -y -qq --no-install-recommends $BUILD
else
	$SUDO apt-get install -y -qq --no-install-recommends $BUILD $TEST
fi
