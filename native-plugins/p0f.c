/*
 * p0f - the client's operating system and network distance, from a running p0f 3 (passive
 * TCP fingerprinting) asked over its API socket.
 *
 * Hooks: connect, helo, ehlo, mail, data_post. At connect the plugin sends p0f the 21-byte
 * query for the client's address and reads the 232-byte answer on the worker's event loop
 * (daemon_talk.c). p0f reads packets a fraction of a second late (libpcap hands them over in
 * blocks), so a client it has never seen may still be unknown at connect: then the plugin asks
 * again at HELO/EHLO and at MAIL, until p0f knows it (no wait is added: by then the client's
 * SYN has usually been read).
 * What p0f knows becomes, for later plugins, the connection notes p0f_os_name ("Linux"),
 * p0f_os_flavor ("2.2.x-3.x"), p0f_distance (hops, "0") and p0f_link ("Ethernet or modem");
 * for the logs, one event=p0f line and the transaction line's p0f_os= and p0f_distance=
 * (porter_log_fact). A client whose OS is in deny_os= (a name as p0f gives it, "Windows", or
 * with its flavor, "Linux 2.2.x-3.x"; case does not matter) gets a 554 greeting (554 and the
 * end of the connection at HELO or MAIL when p0f knew the client only then).
 * header=yes adds "X-P0f: OS; distance=N" at data_post (any X-P0f the message brought is
 * removed first). An address p0f has not seen, or no OS match, leaves everything as it is.
 *
 * p0f absent, failing or slower than timeout=: the plugin declines (mail goes on without the
 * facts) and logs event=p0f result=error once, until p0f answers again.
 *
 * Arguments: socket=PATH (/run/p0f.sock; unix:/PATH also, or inet:HOST:PORT for a forwarded
 *            socket), timeout=SECONDS (2), deny_os=LIST (none), header=no|yes.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <porter/plugin.h>

#include "daemon_talk.h"

#define P0F_QUERY_MAGIC 0x50304601u    /* p0f's api.h, in host byte order */
#define P0F_ANSWER_MAGIC 0x50304602u
#define P0F_STATUS_OK 0x10
#define P0F_STATUS_NO_MATCH 0x20
#define P0F_ADDRESS_IPV4 4
#define P0F_ADDRESS_IPV6 6
#define P0F_QUERY_SIZE 21               /* magic, address type, 16 address bytes */
#define P0F_ANSWER_SIZE 232
#define P0F_TEXT_SIZE 32                /* each text field, NUL included */
#define P0F_DISTANCE_AT 36              /* offsets in the answer (p0f_api_response) */
#define P0F_OS_NAME_AT 40
#define P0F_OS_FLAVOR_AT 72
#define P0F_LINK_AT 168
#define P0F_DENY_MAX 1024

enum p0f_result { P0F_MATCH = 0, P0F_NO_MATCH, P0F_BAD_ANSWER, P0F_RESULT_COUNT };

struct p0f {
    struct socket_address address;
    double timeout;
    bool header;
    char deny_os[P0F_DENY_MAX];    /* ",Windows,Linux 2.2.x-3.x," or "" */
    bool failure_logged;           /* this worker said p0f failed; quiet until it answers */
};

/* What p0f knows of a host: texts cleaned for logs and headers. */
struct p0f_facts {
    int distance;                  /* hops; -1 unknown */
    char os_name[P0F_TEXT_SIZE], os_flavor[P0F_TEXT_SIZE], link[P0F_TEXT_SIZE];
};

/* One query; it may outlive the session, so it touches the plugin only while s exists. */
struct p0f_job {
    porter_handle handle;
    struct p0f *plugin;
    bool at_connect;               /* a refusal is the greeting, not a reply to a command */
    unsigned char query[P0F_QUERY_SIZE];
};

/* The plugin's porter_data while p0f did not know the client: ask again at the next command
 * (a marker, never freed; NULL otherwise). */
static char p0f_ask_again;

/* p0f_query_build - the query for an address ("192.0.2.1", "2001:db8::1"); 0 or -1 */
static int p0f_query_build(const char *ip, unsigned char query[P0F_QUERY_SIZE])
{
    uint32_t magic = P0F_QUERY_MAGIC;
    memset(query, 0, P0F_QUERY_SIZE);
    memcpy(query, &magic, sizeof magic);
    if (inet_pton(AF_INET, ip, query + 5) == 1)
        query[4] = P0F_ADDRESS_IPV4;
    else if (inet_pton(AF_INET6, ip, query + 5) == 1)
        query[4] = P0F_ADDRESS_IPV6;
    else
        return -1;
    return 0;
}

/* p0f_text - a NUL-padded field as printable text: no quotes, backslashes or controls */
static void p0f_text(char out[P0F_TEXT_SIZE], const unsigned char *field)
{
    size_t i = 0;
    for (; i < P0F_TEXT_SIZE - 1 && field[i] != '\0'; i++)
        out[i] = field[i] >= 0x20 && field[i] < 0x7f && field[i] != '"' && field[i] != '\\'
                     ? (char)field[i] : '?';
    out[i] = '\0';
}

/* p0f_answer_parse - p0f's answer (P0F_ANSWER_SIZE bytes): P0F_MATCH with facts filled,
 * P0F_NO_MATCH (p0f has not seen the address), or P0F_BAD_ANSWER */
static int p0f_answer_parse(const unsigned char *answer, size_t length, struct p0f_facts *f)
{
    uint32_t magic, status;
    int16_t distance;
    memset(f, 0, sizeof *f);
    f->distance = -1;
    if (length != P0F_ANSWER_SIZE)
        return P0F_BAD_ANSWER;
    memcpy(&magic, answer, sizeof magic);
    memcpy(&status, answer + 4, sizeof status);
    if (magic != P0F_ANSWER_MAGIC || (status != P0F_STATUS_OK && status != P0F_STATUS_NO_MATCH))
        return P0F_BAD_ANSWER;
    if (status == P0F_STATUS_NO_MATCH)
        return P0F_NO_MATCH;
    memcpy(&distance, answer + P0F_DISTANCE_AT, sizeof distance);
    f->distance = distance >= 0 && distance <= 255 ? distance : -1;
    p0f_text(f->os_name, answer + P0F_OS_NAME_AT);
    p0f_text(f->os_flavor, answer + P0F_OS_FLAVOR_AT);
    p0f_text(f->link, answer + P0F_LINK_AT);
    return P0F_MATCH;
}

/* p0f_denied - whether the OS ("Name" or "Name Flavor") is on deny_os */
static bool p0f_denied(const char *deny_os, const struct p0f_facts *f)
{
    char name[2 * P0F_TEXT_SIZE + 4];
    if (deny_os[0] == '\0' || f->os_name[0] == '\0')
        return false;
    const char *forms[2] = {f->os_name, name};
    snprintf(name, sizeof name, "%s %s", f->os_name, f->os_flavor);
    for (int i = 0; i < 2; i++)
        for (const char *p = deny_os; (p = strchr(p, ',')) != NULL && p[1] != '\0'; p++) {
            size_t length = strcspn(p + 1, ",");
            if (length == strlen(forms[i]) && strncasecmp(p + 1, forms[i], length) == 0)
                return true;
        }
    return false;
}

/* p0f_record - the facts as notes, log facts and a log line */
static void p0f_record(porter_session *s, const struct p0f_facts *f)
{
    char os[2 * P0F_TEXT_SIZE + 4], distance[16];
    snprintf(os, sizeof os, "%s%s%s", f->os_name[0] ? f->os_name : "unknown",
             f->os_flavor[0] ? " " : "", f->os_flavor);
    snprintf(distance, sizeof distance, "%d", f->distance);
    porter_note_set(s, PORTER_CONNECTION, "p0f_os_name", f->os_name);
    porter_note_set(s, PORTER_CONNECTION, "p0f_os_flavor", f->os_flavor);
    porter_note_set(s, PORTER_CONNECTION, "p0f_link", f->link);
    porter_note_set(s, PORTER_CONNECTION, "p0f_os", os);
    porter_log_fact(s, "p0f_os", os);
    if (f->distance >= 0) {
        porter_note_set(s, PORTER_CONNECTION, "p0f_distance", distance);
        porter_log_fact(s, "p0f_distance", distance);
    }
    porter_log(s, PORTER_LOG_INFO, "event=p0f result=match os=\"%s\" distance=%d link=\"%s\"", os,
               f->distance, f->link);
}

/* p0f_done - p0f answered (or did not): facts, and the deny_os verdict */
static void p0f_done(void *arg, const char *error, const char *answer, size_t length)
{
    struct p0f_job *job = arg;
    porter_session *s = porter_waiting_session(job->handle);
    if (s != NULL) {
        struct p0f *p = job->plugin;
        struct p0f_facts f;
        int result = error ? P0F_BAD_ANSWER
                           : p0f_answer_parse((const unsigned char *)answer, length, &f);
        if (result == P0F_BAD_ANSWER && !p->failure_logged)
            porter_log(s, PORTER_LOG_WARNING, "event=p0f result=error error=\"%s\" "
                       "action=decline (logged once until p0f answers)",
                       error ? error : "not a p0f 3 answer");
        p->failure_logged = result == P0F_BAD_ANSWER;
        if (result == P0F_NO_MATCH)
            porter_log(s, PORTER_LOG_INFO, "event=p0f result=unknown%s",
                       job->at_connect ? "" : " (asked again)");
        porter_data_set(s, result == P0F_NO_MATCH ? &p0f_ask_again : NULL);
        if (result == P0F_MATCH)
            p0f_record(s, &f);
        if (result == P0F_MATCH && p0f_denied(p->deny_os, &f))
            porter_resume(job->handle, job->at_connect ? PORTER_DENY : PORTER_DENY_DISCONNECT,
                          554, "5.7.1",
                          "Connections from %s%s%s systems are not accepted here", f.os_name,
                          f.os_flavor[0] ? " " : "", f.os_flavor);
        else
            porter_resume(job->handle, PORTER_DECLINED, 0, NULL, "%s", "");
    }
    free(job);
}

/* p0f_ask - ask p0f about the client (PENDING until it answers) */
static int p0f_ask(porter_session *s, struct p0f *p, bool at_connect)
{
    struct p0f_job *job = calloc(1, sizeof *job);
    if (job == NULL)
        abort();
    job->plugin = p;
    job->at_connect = at_connect;
    if (p0f_query_build(porter_client_ip(s), job->query) != 0) {
        free(job); /* not an IP client (porter stdio without --client-ip) */
        return PORTER_DECLINED;
    }
    const struct daemon_talk_request request = {
        .address = &job->plugin->address, .timeout = job->plugin->timeout,
        .head = (const char *)job->query, .head_length = sizeof job->query,
        .answer_max = P0F_ANSWER_SIZE, .answer_exact = true, .owner = job->plugin,
    };
    return daemon_talk_hook(s, &request, &job->handle, p0f_done, job);
}

static int p0f_connect(porter_session *s, void *state)
{
    return p0f_ask(s, state, true);
}

/* p0f_later - HELO/EHLO and MAIL: ask again while p0f did not know the client */
static int p0f_later(porter_session *s, void *state)
{
    return porter_data_get(s) == &p0f_ask_again ? p0f_ask(s, state, false) : PORTER_DECLINED;
}

static int p0f_data_post(porter_session *s, void *state)
{
    const struct p0f *p = state;
    const char *os = porter_note_get(s, PORTER_CONNECTION, "p0f_os");
    const char *distance = porter_note_get(s, PORTER_CONNECTION, "p0f_distance");
    if (!p->header || os == NULL)
        return PORTER_DECLINED;
    char value[128];
    snprintf(value, sizeof value, "%s; distance=%s", os, distance ? distance : "unknown");
    porter_header_remove(s, "X-P0f");
    porter_header_add(s, "X-P0f", value);
    return PORTER_DECLINED;
}

static void *p0f_init(porter_args *a)
{
    struct p0f *p = calloc(1, sizeof *p);
    if (p == NULL)
        abort();
    daemon_talk_address(a, "/run/p0f.sock", &p->address);
    p->timeout = porter_arg_seconds(a, "timeout", 2.0);
    p->header = porter_arg_bool(a, "header", false);
    const char *deny = porter_arg_string(a, "deny_os", "");
    if (strlen(deny) + 3 > sizeof p->deny_os)
        porter_arg_error(a, "deny_os: longer than %d bytes", P0F_DENY_MAX - 3);
    else if (deny[0] != '\0')
        snprintf(p->deny_os, sizeof p->deny_os, ",%s,", deny);
    return p;
}

PORTER_PLUGIN(.name = "p0f",
              .description = "The client's operating system and network distance from a running "
                             "p0f 3, asked over its API socket at connect: connection notes for "
                             "later plugins, p0f_os= and p0f_distance= on the transaction log "
                             "line, optionally an X-P0f header, and a 554 greeting for a client "
                             "whose OS is in deny_os=. A client p0f has not seen yet at connect "
                             "is asked about again at HELO and MAIL. p0f absent is logged once "
                             "and the plugin declines.",
              .arguments = PORTER_ARGUMENTS(
                  {"socket", "/run/p0f.sock",
                   "p0f's API socket (p0f -s PATH); unix:/PATH and inet:HOST:PORT also work."},
                  {"timeout", "2s", "The longest a query may take; then the plugin declines."},
                  {"deny_os", NULL,
                   "Comma-separated OS names as p0f gives them (Windows) or with their flavor "
                   "(\"Linux 2.2.x-3.x\"), any case: such clients get a 554 greeting (or 554 "
                   "and the end of the connection at HELO or MAIL, if p0f knew them only "
                   "then)."},
                  {"header", "no", "yes adds \"X-P0f: OS; distance=N\" to each message."}),
              .init = p0f_init, .fini = daemon_talk_fini,
              .hooks[PORTER_HOOK_CONNECT] = p0f_connect,
              .hooks[PORTER_HOOK_HELO] = p0f_later,
              .hooks[PORTER_HOOK_EHLO] = p0f_later,
              .hooks[PORTER_HOOK_MAIL] = p0f_later,
              .hooks[PORTER_HOOK_DATA_POST] = p0f_data_post);
