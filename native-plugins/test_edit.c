/*
 * test_edit - a plugin for Porter's own tests of edits and refusals through every transport
 * (SMTP, the milter listener, the policy listener). Not for production.
 *
 * It acts on what the test puts in the message, so one instance covers every case:
 *   RCPT  a recipient whose local part starts with "reject-" gets 550 5.7.1 "test_edit
 *         refuses <address>"; "defer-" gets 451 4.7.1 likewise.
 *   MAIL  a sender whose local part starts with "reject-" gets 550 5.7.1 "test_edit refuses
 *         sender <address>".
 *   DATA_POST, by Subject:
 *         "deny-me"       554 5.7.1 "test_edit: message refused"
 *         "discard-me"    porter_discard
 *         "quarantine-me" porter_quarantine("test_edit")
 *         anything else:  X-Test-Edit-Top inserted first, X-Test-Edit-Tail appended,
 *                         Subject prefixed with "[edited] ", X-Remove-Me removed; with
 *                         "replace-body" in the Subject the body becomes "replaced body\r\n";
 *                         with "envelope" in the Subject the sender becomes
 *                         changed-sender@example.com, added@example.com is added and every
 *                         recipient starting with "drop-" removed.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <porter/plugin.h>

/* test_local_starts - the address's local part begins with prefix */
static int test_local_starts(const char *address, const char *prefix)
{
    return address != NULL && strncasecmp(address, prefix, strlen(prefix)) == 0;
}

static int test_edit_mail(porter_session *s, void *state)
{
    const char *sender = porter_hook_argument(s);
    if (test_local_starts(sender, "reject-"))
        return porter_reply(s, PORTER_DENY, 550, "5.7.1", "test_edit refuses sender <%s>", sender);
    return PORTER_DECLINED;
}

static int test_edit_rcpt(porter_session *s, void *state)
{
    const char *rcpt = porter_hook_argument(s);
    if (test_local_starts(rcpt, "reject-"))
        return porter_reply(s, PORTER_DENY, 550, "5.7.1", "test_edit refuses <%s>", rcpt);
    if (test_local_starts(rcpt, "defer-"))
        return porter_reply(s, PORTER_DENYSOFT, 451, "4.7.1", "test_edit defers <%s>", rcpt);
    return PORTER_DECLINED;
}

static int test_edit_data_post(porter_session *s, void *state)
{
    char subject[512]; /* a copy: the header's own string goes with the edit below */
    const char *value = porter_header_get(s, "Subject", 0);
    snprintf(subject, sizeof subject, "%s", value != NULL ? value : "");
    if (strstr(subject, "deny-me") != NULL)
        return porter_reply(s, PORTER_DENY, 554, "5.7.1", "test_edit: message refused");
    if (strstr(subject, "discard-me") != NULL) {
        porter_discard(s, "test_edit");
        return PORTER_DECLINED;
    }
    if (strstr(subject, "quarantine-me") != NULL) {
        porter_quarantine(s, "test_edit");
        return PORTER_DECLINED;
    }
    char edited[1024];
    snprintf(edited, sizeof edited, "[edited] %s", subject[0] == ' ' ? subject + 1 : subject);
    porter_header_insert(s, 0, "X-Test-Edit-Top", "inserted first");
    porter_header_add(s, "X-Test-Edit-Tail", "appended last");
    porter_header_change(s, "Subject", 0, edited);
    porter_header_remove(s, "X-Remove-Me");
    if (strstr(subject, "replace-body") != NULL)
        porter_body_replace(s, "replaced body\r\n", strlen("replaced body\r\n"));
    if (strstr(subject, "envelope") != NULL) {
        porter_mail_from_set(s, "changed-sender@example.com", NULL);
        porter_rcpt_add(s, "added@example.com", NULL);
        for (size_t i = porter_rcpt_count(s); i-- > 0;) {
            char address[512];
            snprintf(address, sizeof address, "%s", porter_rcpt(s, i));
            if (test_local_starts(address, "drop-"))
                porter_rcpt_remove(s, address);
        }
    }
    return PORTER_DECLINED;
}

PORTER_PLUGIN(.name = "test_edit",
              .description = "Porter's own tests: refusals and every kind of edit, chosen by "
                             "the message (not for production).",
              .hooks[PORTER_HOOK_MAIL] = test_edit_mail, .hooks[PORTER_HOOK_RCPT] = test_edit_rcpt,
              .hooks[PORTER_HOOK_DATA_POST] = test_edit_data_post);
