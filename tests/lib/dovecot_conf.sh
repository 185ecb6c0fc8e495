# dovecot_conf.sh - the private Dovecot of the tests that append drafts over IMAP (POSIX sh: it is
# sourced by imap_dovecot.sh, a /bin/sh script, and by mtalib.sh).
#
# dovecot_conf_write FILE DIR LOG PORT LOGIN INTERNAL UID GID [SSL_CONF [IMAPS]]
#   writes FILE: IMAP only, on 127.0.0.1:PORT, run and state under DIR, the passwd-file
#   DIR/passwd, mailboxes DIR/mail/USER/Maildir owned by UID:GID, LOGIN and INTERNAL as
#   default_login_user and default_internal_user (as root, Dovecot refuses mail processes as
#   root: callers pass Debian's dovenull and dovecot, and nobody's uid). SSL_CONF (default: plain
#   text allowed, ssl = no) is pasted as is; IMAPS is the body of the imaps listener (default
#   "port = 0": none). POP3 and submission are off.
dovecot_conf_write() {
	_dc_ssl=${9:-"ssl = no
disable_plaintext_auth = no"}
	_dc_imaps=${10:-"port = 0"}
	cat >"$1" <<DCEOF
# written by tests/lib/dovecot_conf.sh: a private Dovecot for amends' tests
base_dir = $2/run
state_dir = $2/state
log_path = $3
instance_name = amends-test-$$
protocols = imap
listen = 127.0.0.1
$_dc_ssl
auth_mechanisms = plain login
auth_verbose = yes
default_login_user = $5
default_internal_user = $6
mail_location = maildir:~/Maildir
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $2/passwd
}
userdb {
  driver = static
  args = uid=$7 gid=$8 home=$2/mail/%u
}
namespace inbox {
  inbox = yes
  separator = .
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $4
  }
  inet_listener imaps {
    $_dc_imaps
  }
}
service pop3-login {
  inet_listener pop3 {
    port = 0
  }
}
service submission-login {
  inet_listener submission {
    port = 0
  }
}
DCEOF
}
