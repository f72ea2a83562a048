/*
 * test_milter.c - a milter on libmilter for Porter's integration tests; its behaviour is chosen
 * on the command line. Not for production.
 *
 * Usage: test_milter -s SOCKET [options]
 *   -s SOCKET      libmilter socket: inet:PORT@127.0.0.1, inet6:PORT@::1, unix:/PATH
 *   -a STAGE:ACTION[:ARG]   (repeatable) what to do at a stage: connect, helo, mail, rcpt,
 *                  data, header, eoh, body, eom, unknown. Actions:
 *                    continue | reject | tempfail | accept | discard | skip (body)
 *                    reply:CODE:XCODE:LINE[|LINE...]   (smfi_setreply / smfi_setmlreply;
 *                                                       write '%%' for a percent sign)
 *                    sleep:SECONDS       sleep, then continue
 *                    progress:SECONDS    (eom) sleep, sending SMFIR_PROGRESS every 0.5 s
 *                    exit                the process exits at once (exit status 3)
 *                    close               the session's socket is shut down, the milter lives on
 *                    garbage             text that is not a milter frame is written first
 *                    oversized           a frame header announcing 1 MiB is written first
 *                    badreply            a well-formed frame with the unknown reply 'Z' first
 *                    unexpected          an SMFIR_ADDHEADER (not allowed before end of
 *                                        message) is written first
 *   End-of-message edits (repeatable, applied in the order given):
 *   -H "Name:value"          smfi_addheader
 *   -I "INDEX:Name:value"    smfi_insheader
 *   -C "Name:INDEX:value"    smfi_chgheader (empty value deletes)
 *   -R ADDRESS               smfi_addrcpt
 *   -P "ADDRESS ARGS"        smfi_addrcpt_par
 *   -D ADDRESS               smfi_delrcpt
 *   -F "ADDRESS[ ARGS]"      smfi_chgfrom
 *   -B FILE                  smfi_replacebody with the file's bytes
 *   -Q REASON                smfi_quarantine
 *   -M STAGE:"MACROS"        smfi_setsymlist (stages connect helo mail rcpt data eoh eom)
 *   -p FLAG[,FLAG...]        protocol flags to ask for: noconnect nohelo nomail norcpt nobody
 *                            nohdrs noeoh nodata nounknown skip rcpt_rej hdr_leadspc nr_conn
 *                            nr_helo nr_mail nr_rcpt nr_data nr_unkn nr_eoh nr_body nr_hdr
 *   -m SUBSTRING             actions and edits at mail and later stages apply only to
 *                            messages whose sender contains SUBSTRING
 *   -n COUNT                 each -a action fires at most COUNT times (whole process)
 *   -l FILE                  append one line per event and the macros seen at each stage
 *   -b FILE                  write the body of each message (all chunks) to FILE at eom
 *
 * The process exits 0 on SIGTERM (libmilter's smfi_main returns), 2 on bad usage.
 * Memory: per-connection data is freed in the close callback. Fatal: bad arguments.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include <libmilter/mfapi.h>
#include <libmilter/mfdef.h>

enum tm_stage {
    TM_CONNECT, TM_HELO, TM_MAIL, TM_RCPT, TM_DATA, TM_HEADER, TM_EOH, TM_BODY, TM_EOM,
    TM_UNKNOWN, TM_STAGE_COUNT
};
static const char *const tm_stage_names[TM_STAGE_COUNT] = {
    "connect", "helo", "mail", "rcpt", "data", "header", "eoh", "body", "eom", "unknown",
};
/* The SMFIP_NR_* flag of each stage (0: none). */
static const unsigned long tm_stage_noreply[TM_STAGE_COUNT] = {
    SMFIP_NR_CONN, SMFIP_NR_HELO, SMFIP_NR_MAIL, SMFIP_NR_RCPT, SMFIP_NR_DATA, SMFIP_NR_HDR,
    SMFIP_NR_EOH, SMFIP_NR_BODY, 0, SMFIP_NR_UNKN,
};

enum tm_action_kind {
    TM_CONTINUE, TM_REJECT, TM_TEMPFAIL, TM_ACCEPT, TM_DISCARD, TM_SKIP, TM_REPLY, TM_SLEEP,
    TM_PROGRESS, TM_EXIT, TM_CLOSE, TM_GARBAGE, TM_OVERSIZED, TM_BADREPLY, TM_UNEXPECTED,
    TM_ACTION_COUNT
};
static const char *const tm_action_names[TM_ACTION_COUNT] = {
    "continue", "reject", "tempfail", "accept", "discard", "skip", "reply", "sleep", "progress",
    "exit", "close", "garbage", "oversized", "badreply", "unexpected",
};

struct tm_action {
    enum tm_stage stage;
    enum tm_action_kind kind;
    char *arg;
    int fired;
};

enum tm_edit_kind { TM_ADDHEADER, TM_INSHEADER, TM_CHGHEADER, TM_ADDRCPT, TM_ADDRCPT_PAR,
                    TM_DELRCPT, TM_CHGFROM, TM_REPLBODY, TM_QUARANTINE };

struct tm_edit {
    enum tm_edit_kind kind;
    char *a, *b; /* name/address, value/args */
    int index;
};

/* Per connection. */
struct tm_conn {
    char *sender;
    unsigned char *body;
    size_t body_length;
    unsigned long protocol; /* what was negotiated */
};

static struct tm_action tm_actions[64];
static size_t tm_action_count;
static struct tm_edit tm_edits[64];
static size_t tm_edit_count;
static char *tm_symlists[7];
static unsigned long tm_protocol_wanted;
static const char *tm_match;
static int tm_limit = -1;
static const char *tm_log_path;
static const char *tm_body_path;
static pthread_mutex_t tm_lock = PTHREAD_MUTEX_INITIALIZER;

/* tm_die - usage error */
static void tm_die(const char *format, ...) __attribute__((format(printf, 1, 2), noreturn));
static void tm_die(const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    fprintf(stderr, "test_milter: ");
    vfprintf(stderr, format, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

/* tm_log - one line to the event log (thread-safe) */
static void tm_log(const char *format, ...) __attribute__((format(printf, 1, 2)));
static void tm_log(const char *format, ...)
{
    if (tm_log_path == NULL)
        return;
    pthread_mutex_lock(&tm_lock);
    FILE *f = fopen(tm_log_path, "a");
    if (f != NULL) {
        va_list ap;
        va_start(ap, format);
        vfprintf(f, format, ap);
        va_end(ap);
        fputc('\n', f);
        fclose(f);
    }
    pthread_mutex_unlock(&tm_lock);
}

/* tm_escape - a value on one line: CR, LF, TAB and backslash as \r \n \t \\ */
static char *tm_escape(const char *text)
{
    size_t length = strlen(text);
    char *out = malloc(2 * length + 1);
    size_t used = 0;
    if (out == NULL)
        abort();
    for (const char *p = text; *p; p++) {
        switch (*p) {
        case '\r': out[used++] = '\\'; out[used++] = 'r'; break;
        case '\n': out[used++] = '\\'; out[used++] = 'n'; break;
        case '\t': out[used++] = '\\'; out[used++] = 't'; break;
        case '\\': out[used++] = '\\'; out[used++] = '\\'; break;
        default: out[used++] = *p;
        }
    }
    out[used] = '\0';
    return out;
}

/* tm_log_macros - every macro the milter can see now, as "macro STAGE NAME=VALUE" */
static void tm_log_macros(SMFICTX *ctx, enum tm_stage stage)
{
    static const char *const known[] = {
        "j", "_", "v", "{daemon_name}", "{daemon_addr}", "{daemon_port}", "{client_addr}",
        "{client_port}", "{client_name}", "{client_ptr}", "{tls_version}", "{cipher}",
        "{cipher_bits}", "{cert_subject}", "{cert_issuer}", "i", "{auth_type}", "{auth_authen}",
        "{auth_author}", "{mail_addr}", "{mail_host}", "{mail_mailer}", "{rcpt_addr}",
        "{rcpt_host}", "{rcpt_mailer}",
    };
    if (tm_log_path == NULL)
        return;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        char *value = smfi_getsymval(ctx, (char *) known[i]);
        if (value != NULL) {
            char *escaped = tm_escape(value);
            tm_log("macro %s %s=%s", tm_stage_names[stage], known[i], escaped);
            free(escaped);
        }
    }
}

/* tm_socket - the session's socket. libmilter keeps it right after the thread id in its
 * private context struct (sendmail libmilter.h, struct smfi_str: ctx_id, ctx_sd); checked
 * with getsockopt before use. Test code only. */
static int tm_socket(SMFICTX *ctx)
{
    int fd;
    memcpy(&fd, (const char *) ctx + sizeof(pthread_t), sizeof fd);
    int type = 0;
    socklen_t length = sizeof type;
    if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) != 0 || type != SOCK_STREAM)
        return -1;
    return fd;
}

/* tm_write_raw - bytes straight to the MTA, bypassing libmilter */
static void tm_write_raw(SMFICTX *ctx, const void *bytes, size_t length)
{
    int fd = tm_socket(ctx);
    if (fd < 0) {
        tm_log("error cannot find the session socket");
        return;
    }
    ssize_t n = write(fd, bytes, length);
    (void) n;
}

/* tm_sleep - seconds as a double */
static void tm_sleep(double seconds)
{
    struct timespec ts = {(time_t) seconds, (long) ((seconds - (double) (time_t) seconds) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* tm_matches - do actions apply to this connection's current message? */
static bool tm_matches(SMFICTX *ctx, enum tm_stage stage)
{
    if (tm_match == NULL || stage < TM_MAIL || stage == TM_UNKNOWN)
        return true;
    struct tm_conn *conn = smfi_getpriv(ctx);
    return conn != NULL && conn->sender != NULL && strstr(conn->sender, tm_match) != NULL;
}

/* tm_reply - smfi_setreply or smfi_setmlreply from "CODE:XCODE:LINE|LINE" */
static void tm_reply(SMFICTX *ctx, const char *arg)
{
    char *copy = strdup(arg ? arg : "550:5.7.1:rejected");
    char *code = copy, *xcode = strchr(copy, ':'), *text = NULL;
    if (xcode != NULL) {
        *xcode++ = '\0';
        text = strchr(xcode, ':');
        if (text != NULL)
            *text++ = '\0';
    }
    char *lines[8] = {NULL};
    int count = 0;
    for (char *line = text; line != NULL && count < 8;) {
        char *bar = strchr(line, '|');
        if (bar != NULL)
            *bar++ = '\0';
        lines[count++] = line;
        line = bar;
    }
    int rc;
    if (count <= 1)
        rc = smfi_setreply(ctx, code, xcode, count ? lines[0] : NULL);
    else
        rc = smfi_setmlreply(ctx, code, xcode, lines[0], lines[1], lines[2], lines[3], lines[4],
                             lines[5], lines[6], lines[7], (char *) NULL);
    if (rc != MI_SUCCESS)
        tm_log("error smfi_setreply refused %s", arg);
    free(copy);
}

/* tm_act - run the actions for a stage; returns the sfsistat to give */
static sfsistat tm_act(SMFICTX *ctx, enum tm_stage stage)
{
    struct tm_conn *conn = smfi_getpriv(ctx);
    bool noreply = conn != NULL && (conn->protocol & tm_stage_noreply[stage]) != 0;
    sfsistat result = SMFIS_CONTINUE;
    if (tm_matches(ctx, stage)) {
        for (size_t i = 0; i < tm_action_count; i++) {
            struct tm_action *a = &tm_actions[i];
            if (a->stage != stage)
                continue;
            pthread_mutex_lock(&tm_lock);
            bool fire = tm_limit < 0 || a->fired < tm_limit;
            if (fire)
                a->fired++;
            pthread_mutex_unlock(&tm_lock);
            if (!fire)
                continue;
            tm_log("action %s %s%s%s", tm_stage_names[stage], tm_action_names[a->kind],
                   a->arg ? " " : "", a->arg ? a->arg : "");
            switch (a->kind) {
            case TM_CONTINUE:
                break;
            case TM_REJECT:
                result = SMFIS_REJECT;
                break;
            case TM_TEMPFAIL:
                result = SMFIS_TEMPFAIL;
                break;
            case TM_ACCEPT:
                result = SMFIS_ACCEPT;
                break;
            case TM_DISCARD:
                result = SMFIS_DISCARD;
                break;
            case TM_SKIP:
                result = SMFIS_SKIP;
                break;
            case TM_REPLY:
                tm_reply(ctx, a->arg);
                result = a->arg && a->arg[0] == '4' ? SMFIS_TEMPFAIL : SMFIS_REJECT;
                break;
            case TM_SLEEP:
                tm_sleep(a->arg ? atof(a->arg) : 1);
                break;
            case TM_PROGRESS: {
                double total = a->arg ? atof(a->arg) : 1;
                for (double slept = 0; slept < total; slept += 0.5) {
                    smfi_progress(ctx);
                    tm_sleep(0.5);
                }
                break;
            }
            case TM_EXIT:
                tm_log("exit at %s", tm_stage_names[stage]);
                _exit(3);
            case TM_CLOSE: {
                int fd = tm_socket(ctx);
                if (fd >= 0)
                    shutdown(fd, SHUT_RDWR);
                break;
            }
            case TM_GARBAGE: {
                static const char garbage[] = "this is not a milter reply\r\n";
                tm_write_raw(ctx, garbage, sizeof garbage - 1);
                break;
            }
            case TM_OVERSIZED: {
                static const unsigned char big[] = {0x00, 0x10, 0x00, 0x00, 'c', 'x', 'x', 'x'};
                tm_write_raw(ctx, big, sizeof big);
                break;
            }
            case TM_BADREPLY: {
                static const unsigned char bad[] = {0x00, 0x00, 0x00, 0x01, 'Z'};
                tm_write_raw(ctx, bad, sizeof bad);
                break;
            }
            case TM_UNEXPECTED: {
                static const unsigned char add[] = {0x00, 0x00, 0x00, 0x07, 'h', 'X', 0, 'y', 0,
                                                    'z', 0};
                tm_write_raw(ctx, add, sizeof add);
                break;
            }
            case TM_ACTION_COUNT:
                break;
            }
        }
    }
    if (noreply)
        return SMFIS_NOREPLY;
    return result;
}

/* ---------------------------------------------------------------- callbacks */

static sfsistat tm_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2,
                             unsigned long f3, unsigned long *pf0, unsigned long *pf1,
                             unsigned long *pf2, unsigned long *pf3)
{
    unsigned long actions = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGBODY | SMFIF_ADDRCPT |
                            SMFIF_ADDRCPT_PAR | SMFIF_DELRCPT | SMFIF_QUARANTINE | SMFIF_CHGFROM;
    bool lists = false;
    for (int i = 0; i < 7; i++)
        lists = lists || tm_symlists[i] != NULL;
    if (lists)
        actions |= SMFIF_SETSYMLIST;
    *pf0 = f0 & actions;
    *pf1 = f1 & tm_protocol_wanted;
    *pf2 = 0;
    *pf3 = 0;
    struct tm_conn *conn = calloc(1, sizeof *conn);
    if (conn == NULL)
        abort();
    conn->protocol = *pf1;
    smfi_setpriv(ctx, conn);
    for (int i = 0; i < 7; i++)
        if (tm_symlists[i] != NULL && smfi_setsymlist(ctx, i, tm_symlists[i]) != MI_SUCCESS)
            tm_log("error smfi_setsymlist %d refused", i);
    tm_log("negotiate offered_actions=0x%lx offered_protocol=0x%lx actions=0x%lx protocol=0x%lx",
           f0, f1, *pf0, *pf1);
    return SMFIS_CONTINUE;
}

static sfsistat tm_connect(SMFICTX *ctx, char *hostname, _SOCK_ADDR *address)
{
    char text[INET6_ADDRSTRLEN] = "-";
    int port = 0;
    const char *family = "unknown";
    if (address != NULL && address->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *) address;
        inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
        port = ntohs(in->sin_port);
        family = "inet";
    } else if (address != NULL && address->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) address;
        inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
        port = ntohs(in6->sin6_port);
        family = "inet6";
    }
    tm_log("connect host=%s family=%s addr=%s port=%d", hostname, family, text, port);
    tm_log_macros(ctx, TM_CONNECT);
    return tm_act(ctx, TM_CONNECT);
}

static sfsistat tm_helo(SMFICTX *ctx, char *name)
{
    tm_log("helo %s", name);
    tm_log_macros(ctx, TM_HELO);
    return tm_act(ctx, TM_HELO);
}

/* tm_argv_line - "a b c" from a NULL-terminated argv */
static void tm_argv_line(char **argv, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; argv[i] != NULL && used < size; i++) {
        int n = snprintf(out + used, size - used, "%s%s", i ? " " : "", argv[i]);
        if (n < 0)
            break;
        used += (size_t) n;
    }
}

static sfsistat tm_envfrom(SMFICTX *ctx, char **argv)
{
    struct tm_conn *conn = smfi_getpriv(ctx);
    if (conn != NULL) {
        free(conn->sender);
        conn->sender = strdup(argv[0]);
        free(conn->body);
        conn->body = NULL;
        conn->body_length = 0;
    }
    char line[2048];
    tm_argv_line(argv, line, sizeof line);
    tm_log("mail %s", line);
    tm_log_macros(ctx, TM_MAIL);
    return tm_act(ctx, TM_MAIL);
}

static sfsistat tm_envrcpt(SMFICTX *ctx, char **argv)
{
    char line[2048];
    tm_argv_line(argv, line, sizeof line);
    tm_log("rcpt %s", line);
    tm_log_macros(ctx, TM_RCPT);
    return tm_act(ctx, TM_RCPT);
}

static sfsistat tm_data(SMFICTX *ctx)
{
    tm_log("data");
    tm_log_macros(ctx, TM_DATA);
    return tm_act(ctx, TM_DATA);
}

static sfsistat tm_header(SMFICTX *ctx, char *name, char *value)
{
    char *escaped = tm_escape(value);
    tm_log("header %s:%s", name, escaped);
    free(escaped);
    return tm_act(ctx, TM_HEADER);
}

static sfsistat tm_eoh(SMFICTX *ctx)
{
    tm_log("eoh");
    tm_log_macros(ctx, TM_EOH);
    return tm_act(ctx, TM_EOH);
}

static sfsistat tm_body(SMFICTX *ctx, unsigned char *chunk, size_t length)
{
    struct tm_conn *conn = smfi_getpriv(ctx);
    tm_log("body %zu", length);
    if (conn != NULL) {
        unsigned char *grown = realloc(conn->body, conn->body_length + length);
        if (grown == NULL)
            abort();
        memcpy(grown + conn->body_length, chunk, length);
        conn->body = grown;
        conn->body_length += length;
    }
    return tm_act(ctx, TM_BODY);
}

/* tm_edits - the -H -I -C -R -P -D -F -B -Q modifications, in order */
static void tm_edits_apply(SMFICTX *ctx)
{
    for (size_t i = 0; i < tm_edit_count; i++) {
        struct tm_edit *e = &tm_edits[i];
        int rc = MI_SUCCESS;
        switch (e->kind) {
        case TM_ADDHEADER:
            rc = smfi_addheader(ctx, e->a, e->b);
            break;
        case TM_INSHEADER:
            rc = smfi_insheader(ctx, e->index, e->a, e->b);
            break;
        case TM_CHGHEADER:
            rc = smfi_chgheader(ctx, e->a, e->index, e->b[0] ? e->b : NULL);
            break;
        case TM_ADDRCPT:
            rc = smfi_addrcpt(ctx, e->a);
            break;
        case TM_ADDRCPT_PAR:
            rc = smfi_addrcpt_par(ctx, e->a, e->b);
            break;
        case TM_DELRCPT:
            rc = smfi_delrcpt(ctx, e->a);
            break;
        case TM_CHGFROM:
            rc = smfi_chgfrom(ctx, e->a, e->b);
            break;
        case TM_QUARANTINE:
            rc = smfi_quarantine(ctx, e->a);
            break;
        case TM_REPLBODY: {
            FILE *f = fopen(e->a, "rb");
            unsigned char buffer[300000];
            size_t n = f ? fread(buffer, 1, sizeof buffer, f) : 0;
            if (f)
                fclose(f);
            /* in pieces, as a milter that streams its new body would */
            for (size_t at = 0; at < n && rc == MI_SUCCESS; at += 40000) {
                size_t piece = n - at < 40000 ? n - at : 40000;
                rc = smfi_replacebody(ctx, buffer + at, (int) piece);
            }
            if (n == 0)
                rc = smfi_replacebody(ctx, (unsigned char *) "", 0);
            break;
        }
        }
        if (rc != MI_SUCCESS)
            tm_log("error edit %zu refused by libmilter", i);
    }
}

static sfsistat tm_eom(SMFICTX *ctx)
{
    struct tm_conn *conn = smfi_getpriv(ctx);
    tm_log("eom bodylength=%zu", conn ? conn->body_length : 0);
    tm_log_macros(ctx, TM_EOM);
    if (tm_body_path != NULL && conn != NULL) {
        FILE *f = fopen(tm_body_path, "wb");
        if (f != NULL) {
            if (conn->body_length > 0)
                fwrite(conn->body, 1, conn->body_length, f);
            fclose(f);
        }
    }
    if (tm_matches(ctx, TM_EOM))
        tm_edits_apply(ctx);
    if (conn != NULL) {
        free(conn->body);
        conn->body = NULL;
        conn->body_length = 0;
    }
    return tm_act(ctx, TM_EOM);
}

static sfsistat tm_abort(SMFICTX *ctx)
{
    tm_log("abort");
    return SMFIS_CONTINUE;
}

static sfsistat tm_close(SMFICTX *ctx)
{
    struct tm_conn *conn = smfi_getpriv(ctx);
    tm_log("close");
    if (conn != NULL) {
        free(conn->sender);
        free(conn->body);
        free(conn);
        smfi_setpriv(ctx, NULL);
    }
    return SMFIS_CONTINUE;
}

static sfsistat tm_unknown(SMFICTX *ctx, const char *line)
{
    tm_log("unknown %s", line);
    return tm_act(ctx, TM_UNKNOWN);
}

/* ---------------------------------------------------------------- arguments */

static int tm_stage_of(const char *name, size_t length)
{
    for (int i = 0; i < TM_STAGE_COUNT; i++)
        if (strlen(tm_stage_names[i]) == length && strncmp(tm_stage_names[i], name, length) == 0)
            return i;
    return -1;
}

static void tm_parse_action(const char *spec)
{
    const char *colon = strchr(spec, ':');
    if (colon == NULL || tm_action_count >= 64)
        tm_die("bad -a %s (want STAGE:ACTION[:ARG])", spec);
    int stage = tm_stage_of(spec, (size_t) (colon - spec));
    if (stage < 0)
        tm_die("unknown stage in -a %s", spec);
    const char *action = colon + 1;
    const char *arg = strchr(action, ':');
    size_t length = arg ? (size_t) (arg - action) : strlen(action);
    int kind = -1;
    for (int i = 0; i < TM_ACTION_COUNT; i++)
        if (strlen(tm_action_names[i]) == length && strncmp(tm_action_names[i], action, length) == 0)
            kind = i;
    if (kind < 0)
        tm_die("unknown action in -a %s", spec);
    struct tm_action *a = &tm_actions[tm_action_count++];
    a->stage = (enum tm_stage) stage;
    a->kind = (enum tm_action_kind) kind;
    a->arg = arg ? strdup(arg + 1) : NULL;
}

static struct tm_edit *tm_new_edit(enum tm_edit_kind kind)
{
    if (tm_edit_count >= 64)
        tm_die("too many edits");
    struct tm_edit *e = &tm_edits[tm_edit_count++];
    e->kind = kind;
    return e;
}

/* tm_split - "A<sep>B" -> a, b (copies); b may be required */
static void tm_split(const char *spec, char sep, char **a, char **b, bool need_b)
{
    const char *at = strchr(spec, sep);
    if (at == NULL) {
        if (need_b)
            tm_die("bad argument '%s'", spec);
        *a = strdup(spec);
        *b = NULL;
        return;
    }
    *a = strndup(spec, (size_t) (at - spec));
    *b = strdup(at + 1);
}

static void tm_parse_protocol(const char *list)
{
    static const struct {
        const char *name;
        unsigned long flag;
    } flags[] = {
        {"noconnect", SMFIP_NOCONNECT}, {"nohelo", SMFIP_NOHELO}, {"nomail", SMFIP_NOMAIL},
        {"norcpt", SMFIP_NORCPT}, {"nobody", SMFIP_NOBODY}, {"nohdrs", SMFIP_NOHDRS},
        {"noeoh", SMFIP_NOEOH}, {"nodata", SMFIP_NODATA}, {"nounknown", SMFIP_NOUNKNOWN},
        {"skip", SMFIP_SKIP}, {"rcpt_rej", SMFIP_RCPT_REJ}, {"hdr_leadspc", SMFIP_HDR_LEADSPC},
        {"nr_conn", SMFIP_NR_CONN}, {"nr_helo", SMFIP_NR_HELO}, {"nr_mail", SMFIP_NR_MAIL},
        {"nr_rcpt", SMFIP_NR_RCPT}, {"nr_data", SMFIP_NR_DATA}, {"nr_unkn", SMFIP_NR_UNKN},
        {"nr_eoh", SMFIP_NR_EOH}, {"nr_body", SMFIP_NR_BODY}, {"nr_hdr", SMFIP_NR_HDR},
    };
    char *copy = strdup(list);
    char *saveptr = NULL;
    for (char *word = strtok_r(copy, ",", &saveptr); word; word = strtok_r(NULL, ",", &saveptr)) {
        bool found = false;
        for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
            if (strcmp(flags[i].name, word) == 0) {
                tm_protocol_wanted |= flags[i].flag;
                found = true;
            }
        if (!found)
            tm_die("unknown protocol flag %s", word);
    }
    free(copy);
}

static void tm_parse_symlist(const char *spec)
{
    static const char *const stages[7] = {"connect", "helo", "mail", "rcpt", "data", "eom", "eoh"};
    const char *colon = strchr(spec, ':');
    if (colon == NULL)
        tm_die("bad -M %s", spec);
    for (int i = 0; i < 7; i++)
        if (strlen(stages[i]) == (size_t) (colon - spec) &&
            strncmp(stages[i], spec, (size_t) (colon - spec)) == 0) {
            tm_symlists[i] = strdup(colon + 1);
            return;
        }
    tm_die("unknown stage in -M %s", spec);
}

int main(int argc, char **argv)
{
    const char *socket_spec = NULL;
    int option;
    while ((option = getopt(argc, argv, "s:a:H:I:C:R:P:D:F:B:Q:M:p:m:n:l:b:")) != -1) {
        struct tm_edit *e;
        char *rest;
        switch (option) {
        case 's':
            socket_spec = optarg;
            break;
        case 'a':
            tm_parse_action(optarg);
            break;
        case 'H':
            e = tm_new_edit(TM_ADDHEADER);
            tm_split(optarg, ':', &e->a, &e->b, true);
            break;
        case 'I':
            e = tm_new_edit(TM_INSHEADER);
            e->index = atoi(optarg);
            rest = strchr(optarg, ':');
            if (rest == NULL)
                tm_die("bad -I %s", optarg);
            tm_split(rest + 1, ':', &e->a, &e->b, true);
            break;
        case 'C': {
            e = tm_new_edit(TM_CHGHEADER);
            char *index_and_value;
            tm_split(optarg, ':', &e->a, &index_and_value, true);
            e->index = atoi(index_and_value);
            rest = strchr(index_and_value, ':');
            e->b = strdup(rest ? rest + 1 : "");
            free(index_and_value);
            break;
        }
        case 'R':
            e = tm_new_edit(TM_ADDRCPT);
            e->a = strdup(optarg);
            break;
        case 'P':
            e = tm_new_edit(TM_ADDRCPT_PAR);
            tm_split(optarg, ' ', &e->a, &e->b, true);
            break;
        case 'D':
            e = tm_new_edit(TM_DELRCPT);
            e->a = strdup(optarg);
            break;
        case 'F':
            e = tm_new_edit(TM_CHGFROM);
            tm_split(optarg, ' ', &e->a, &e->b, false);
            break;
        case 'B':
            e = tm_new_edit(TM_REPLBODY);
            e->a = strdup(optarg);
            break;
        case 'Q':
            e = tm_new_edit(TM_QUARANTINE);
            e->a = strdup(optarg);
            break;
        case 'M':
            tm_parse_symlist(optarg);
            break;
        case 'p':
            tm_parse_protocol(optarg);
            break;
        case 'm':
            tm_match = optarg;
            break;
        case 'n':
            tm_limit = atoi(optarg);
            break;
        case 'l':
            tm_log_path = optarg;
            break;
        case 'b':
            tm_body_path = optarg;
            break;
        default:
            tm_die("usage: test_milter -s SOCKET [-a STAGE:ACTION[:ARG]] ... (see the source)");
        }
    }
    if (socket_spec == NULL)
        tm_die("-s SOCKET is required");
    for (size_t i = 0; i < tm_action_count; i++)
        if (tm_actions[i].kind == TM_SKIP)
            tm_protocol_wanted |= SMFIP_SKIP;

    struct smfiDesc description = {
        .xxfi_name = (char *) "test_milter",
        .xxfi_version = SMFI_VERSION,
        .xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGBODY | SMFIF_ADDRCPT |
                      SMFIF_ADDRCPT_PAR | SMFIF_DELRCPT | SMFIF_QUARANTINE | SMFIF_CHGFROM |
                      SMFIF_SETSYMLIST,
        .xxfi_connect = tm_connect,
        .xxfi_helo = tm_helo,
        .xxfi_envfrom = tm_envfrom,
        .xxfi_envrcpt = tm_envrcpt,
        .xxfi_header = tm_header,
        .xxfi_eoh = tm_eoh,
        .xxfi_body = tm_body,
        .xxfi_eom = tm_eom,
        .xxfi_abort = tm_abort,
        .xxfi_close = tm_close,
        .xxfi_unknown = tm_unknown,
        .xxfi_data = tm_data,
        .xxfi_negotiate = tm_negotiate,
    };
    if (smfi_setconn((char *) socket_spec) != MI_SUCCESS)
        tm_die("smfi_setconn %s failed", socket_spec);
    if (smfi_register(description) != MI_SUCCESS)
        tm_die("smfi_register failed");
    if (smfi_opensocket(true) != MI_SUCCESS)
        tm_die("cannot listen on %s", socket_spec);
    tm_log("listening %s", socket_spec);
    int rc = smfi_main();
    tm_log("stopped rc=%d", rc);
    return rc == MI_SUCCESS ? 0 : 1;
}
