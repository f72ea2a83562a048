/*
 * spamassassin - score every message with SpamAssassin's spamd; add X-Spam-Status and
 * X-Spam-Score, and refuse at or above reject_score=.
 *
 * Hook: data_post. The message as it will be delivered (Porter's Received header first, then
 * the body from the spool) goes to spamd with "SYMBOLS SPAMC/1.5" on the worker's event loop
 * (daemon_talk.c: streamed as the socket drains, never the whole message in memory). SYMBOLS
 * gives the verdict line ("Spam: True ; 7.3 / 5.0") and the names of the rules that hit,
 * which is all the headers need; the message itself is not sent back (REPORT and PROCESS
 * would), so Porter keeps its own copy and edits only headers. spamd's answer decides:
 *   score >= reject_score=    550 5.7.1 Message refused as spam (score S)
 *   otherwise                 any X-Spam-Status, X-Spam-Score and X-Spam-Flag the message
 *                             brought are removed, then "X-Spam-Status: Yes|No, score=S
 *                             required=R tests=A,B" (folded at commas), "X-Spam-Score: S" and,
 *                             when spamd says spam, "X-Spam-Flag: YES" are added; DECLINED
 *   spamd down, an error answer, or no answer within timeout=: on_error=tempfail answers
 *                             451 4.7.1 (the client keeps the message); on_error=accept lets it
 *                             through without headers. Both are logged.
 * Without reject_score= nothing is refused: spamd's own required score only sets Yes/No.
 * A message larger than max_size= (spamc's 500k by default) is not scanned (logged).
 *
 * Log: event=spamassassin result=spam|ham|error|skipped score= required= tests= action=.
 * Note (transaction): "spam_score" = S.
 *
 * Arguments: socket=unix:/PATH|inet:HOST:PORT (inet:127.0.0.1:783), reject_score=SCORE (none),
 *            on_error=tempfail|accept, timeout=SECONDS (60), max_size=BYTES (500k),
 *            user=NAME (spamd's User:, whose preferences apply; none: spamd's own).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <porter/plugin.h>

#include "daemon_talk.h"

#define SPAMD_ANSWER_MAX 16384   /* status line, headers, and the rule names */
#define SPAMD_TESTS_MAX 2048     /* rule names kept for the header */
#define SPAMD_ERROR_MAX 256
#define SPAMD_LINE_MAX 256       /* one status or header line */
#define SPAMD_USER_MAX 128

struct spamd {
    struct socket_address address;
    int on_error;
    double timeout, reject_score; /* reject_score < 0: never refuse */
    long max_size;
    char user[SPAMD_USER_MAX];
};

/* What spamd said. */
struct spamd_result {
    bool spam;
    double score, required;
    char tests[SPAMD_TESTS_MAX]; /* "A,B,C": letters, digits, '_' and ',' only */
};

/* One scan; it may outlive the session and the plugin's state, so it copies what it needs. */
struct spamd_job {
    porter_handle handle;
    int on_error;
    double reject_score;
};

/* spamd_line - the next line of text[*at..length) into line (cut to size-1, CR dropped);
 * false at the end of the text */
static bool spamd_line(const char *text, size_t length, size_t *at, char *line, size_t size)
{
    if (*at >= length)
        return false;
    size_t used = 0, i = *at;
    for (; i < length && text[i] != '\n'; i++)
        if (text[i] != '\r' && used + 1 < size)
            line[used++] = text[i] == '\0' ? '?' : text[i];
    line[used] = '\0';
    *at = i < length ? i + 1 : length;
    return true;
}

/* spamd_clean - text for a log line: printable ASCII but quotes and backslashes */
static void spamd_clean(char *text)
{
    for (char *p = text; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f || *p == '"' || *p == '\\')
            *p = '?';
}

/* spamd_score_line - "True ; 7.3 / 5.0" (also Yes/No); 0 or -1 */
static int spamd_score_line(const char *value, struct spamd_result *r)
{
    while (*value == ' ')
        value++;
    if (strncasecmp(value, "True", 4) == 0 || strncasecmp(value, "Yes", 3) == 0)
        r->spam = true;
    else if (strncasecmp(value, "False", 5) == 0 || strncasecmp(value, "No", 2) == 0)
        r->spam = false;
    else
        return -1;
    const char *semicolon = strchr(value, ';');
    if (semicolon == NULL)
        return -1;
    char *end;
    r->score = strtod(semicolon + 1, &end);
    while (*end == ' ')
        end++;
    if (end == semicolon + 1 || *end != '/')
        return -1;
    const char *required = end + 1;
    r->required = strtod(required, &end);
    while (*end == ' ')
        end++;
    if (end == required || *end != '\0' || !(r->score > -1e6 && r->score < 1e6) ||
        !(r->required > -1e6 && r->required < 1e6))
        return -1;
    return 0;
}

/*
 * spamd_answer_parse - spamd's answer to SYMBOLS: "SPAMD/1.1 0 EX_OK", headers up to an empty
 * line (among them "Spam: True ; 7.3 / 5.0"), then the rule names separated by commas.
 * Returns 0 with r filled, or -1 with the reason in error (cleaned for a log line).
 */
static int spamd_answer_parse(const char *answer, size_t length, struct spamd_result *r,
                              char *error, size_t size)
{
    char line[SPAMD_LINE_MAX];
    size_t at = 0;
    int code = -1, consumed = 0;
    memset(r, 0, sizeof *r);
    snprintf(error, size, "%s", "");
    if (!spamd_line(answer, length, &at, line, sizeof line) ||
        sscanf(line, "SPAMD/%*u.%*u %d %n", &code, &consumed) != 1 || consumed == 0) {
        snprintf(error, size, "not a spamd answer: %.80s", line);
        spamd_clean(error);
        return -1;
    }
    if (code != 0) {
        snprintf(error, size, "spamd: %.80s", line);
        spamd_clean(error);
        return -1;
    }
    bool scored = false;
    while (spamd_line(answer, length, &at, line, sizeof line) && line[0] != '\0')
        if (strncasecmp(line, "Spam:", 5) == 0) {
            if (spamd_score_line(line + 5, r) != 0) {
                snprintf(error, size, "bad Spam: line: %.80s", line);
                spamd_clean(error);
                return -1;
            }
            scored = true;
        }
    if (!scored) {
        snprintf(error, size, "%s", "no Spam: line in the answer");
        return -1;
    }
    size_t used = 0; /* the rule names: the rest of the answer */
    for (size_t i = at; i < length && used + 1 < sizeof r->tests; i++) {
        char c = answer[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '_' || c == ',')
            r->tests[used++] = c;
    }
    r->tests[used] = '\0';
    return 0;
}

/* spamd_status - the X-Spam-Status value, folded at commas so that lines stay within 78
 * columns (a rule name longer than a line stays whole) */
static void spamd_status(const struct spamd_result *r, char *out, size_t size)
{
    int n = snprintf(out, size, "%s, score=%.1f required=%.1f tests=", r->spam ? "Yes" : "No",
                     r->score, r->required);
    size_t used = n > 0 && (size_t)n < size ? (size_t)n : 0;
    size_t column = used + sizeof "X-Spam-Status: " - 1;
    for (const char *p = r->tests[0] ? r->tests : "none"; *p && used + 4 < size; p++) {
        out[used++] = *p;
        column++;
        size_t next = strcspn(p + 1, ",");
        if (*p == ',' && column + next > 78 && used + 4 < size) {
            memcpy(out + used, "\r\n\t", 3);
            used += 3;
            column = 8;
        }
    }
    out[used] = '\0';
}

/* spamd_done - spamd answered (or did not): headers and the verdict */
static void spamd_done(void *arg, const char *failure, const char *answer, size_t length)
{
    struct spamd_job *job = arg;
    porter_session *s = porter_waiting_session(job->handle);
    struct spamd_result r;
    char error[SPAMD_ERROR_MAX];
    if (s == NULL) {
        free(job);
        return;
    }
    if (failure != NULL)
        snprintf(error, sizeof error, "%s", failure);
    if (failure != NULL || spamd_answer_parse(answer, length, &r, error, sizeof error) != 0) {
        daemon_talk_on_error(s, job->handle, job->on_error, "spamassassin", "Spam scanner",
                             error);
        free(job);
        return;
    }
    bool refuse = job->reject_score >= 0 && r.score >= job->reject_score;
    porter_log(s, PORTER_LOG_INFO, "event=spamassassin result=%s score=%.1f required=%.1f "
               "tests=%s action=%s", r.spam ? "spam" : "ham", r.score, r.required,
               r.tests[0] ? r.tests : "none", refuse ? "reject" : "accept");
    char value[SPAMD_TESTS_MAX + 256];
    snprintf(value, sizeof value, "%.1f", r.score);
    porter_note_set(s, PORTER_TRANSACTION, "spam_score", value);
    if (refuse) {
        porter_resume(job->handle, PORTER_DENY, 550, "5.7.1",
                      "Message refused as spam (score %.1f)", r.score);
    } else {
        porter_header_remove(s, "X-Spam-Flag");
        porter_header_remove(s, "X-Spam-Status");
        porter_header_remove(s, "X-Spam-Score");
        if (r.spam)
            porter_header_add(s, "X-Spam-Flag", "YES");
        porter_header_add(s, "X-Spam-Score", value);
        spamd_status(&r, value, sizeof value);
        porter_header_add(s, "X-Spam-Status", value);
        porter_resume(job->handle, PORTER_DECLINED, 0, NULL, "%s", "");
    }
    free(job);
}

static int spamd_data_post(porter_session *s, void *state)
{
    struct spamd *p = state;
    struct porter_message m;
    if (porter_message(s, &m) != 0)
        return porter_reply(s, PORTER_DENYSOFT, 451, "4.3.0", "Temporary local problem");
    off_t size = daemon_talk_message_length(&m);
    if (size > p->max_size) {
        porter_log(s, PORTER_LOG_NOTICE, "event=spamassassin result=skipped size=%lld "
                   "max_size=%ld", (long long)size, p->max_size);
        return PORTER_DECLINED;
    }
    char head[256 + SPAMD_USER_MAX];
    int length = snprintf(head, sizeof head, "SYMBOLS SPAMC/1.5\r\nContent-length: %lld\r\n%s%s%s\r\n",
                          (long long)size, p->user[0] ? "User: " : "", p->user,
                          p->user[0] ? "\r\n" : "");
    struct spamd_job *job = calloc(1, sizeof *job);
    if (job == NULL || length <= 0 || (size_t)length >= sizeof head)
        abort();
    job->on_error = p->on_error;
    job->reject_score = p->reject_score;
    const struct daemon_talk_request request = {
        .address = &p->address, .timeout = p->timeout, .head = head,
        .head_length = (size_t)length, .message = &m, .answer_max = SPAMD_ANSWER_MAX, .owner = p,
    };
    return daemon_talk_hook(s, &request, &job->handle, spamd_done, job);
}

static void *spamd_init(porter_args *a)
{
    struct spamd *p = calloc(1, sizeof *p);
    if (p == NULL)
        abort();
    daemon_talk_address(a, "inet:127.0.0.1:783", &p->address);
    const char *reject = porter_arg_string(a, "reject_score", NULL);
    const char *user = porter_arg_string(a, "user", "");
    p->on_error = porter_arg_choice(a, "on_error", "tempfail|accept");
    p->timeout = porter_arg_seconds(a, "timeout", 60.0);
    p->max_size = porter_arg_integer(a, "max_size", 500L * 1024, 1, 1024L * 1024 * 1024);
    char *end = NULL;
    p->reject_score = reject != NULL ? strtod(reject, &end) : -1;
    if (reject != NULL && (end == reject || *end != '\0' || !(p->reject_score >= 0) ||
                           p->reject_score > 1e6))
        porter_arg_error(a, "reject_score: '%s' is not a score of 0 or more", reject);
    if (strlen(user) >= sizeof p->user || strcspn(user, " \t\r\n:") != strlen(user))
        porter_arg_error(a, "user: '%s' is not a user name", user);
    else
        snprintf(p->user, sizeof p->user, "%s", user);
    return p;
}

PORTER_PLUGIN(.name = "spamassassin",
              .description = "Scores each message with SpamAssassin's spamd (SYMBOLS, streamed "
                             "on the event loop); adds X-Spam-Status and X-Spam-Score (and "
                             "X-Spam-Flag: YES for spam), refuses with 550 5.7.1 at or above "
                             "reject_score=; spamd down or slow follows on_error=.",
              .arguments = PORTER_ARGUMENTS(
                  {"socket", "inet:127.0.0.1:783",
                   "Where spamd listens: unix:/PATH or inet:HOST:PORT."},
                  {"reject_score", NULL,
                   "Refuse a message whose score is at or above this; without it nothing is "
                   "refused, the headers only say what spamd thinks."},
                  {"on_error", "tempfail",
                   "When spamd cannot be reached, fails or is slow: tempfail (451 4.7.1) or "
                   "accept (let the message through without headers); logged either way."},
                  {"timeout", "60s", "The longest a check may take, connection included."},
                  {"max_size", "500k", "Larger messages are not checked (logged), as spamc does."},
                  {"user", NULL, "The user whose preferences spamd applies (spamd's User:)."}),
              .init = spamd_init, .fini = daemon_talk_fini,
              .hooks[PORTER_HOOK_DATA_POST] = spamd_data_post);
