# amends.sieve - file mail tagged by amends (Dovecot Pigeonhole / any RFC 5228 Sieve)
require ["fileinto", "mailbox"];

# Abuse goes to a manager's folder first.
if header :is "X-Amends-Escalate" "abuse" {
    fileinto :create "Support.Escalations";
    stop;
}
# A draft reply is waiting in Drafts for this one: keep the original beside it.
if exists "X-Amends-Draft" {
    fileinto :create "Support.Needs-Reply";
    stop;
}
if header :contains "X-Amends-Status" "categories=" {
    if header :contains "X-Amends-Status" "cancellation" {
        fileinto :create "Support.Cancellations";
    } elsif header :contains "X-Amends-Status" "refund" {
        fileinto :create "Support.Refunds";
    } else {
        fileinto :create "Support.Complaints";
    }
    stop;
}
