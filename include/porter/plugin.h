/*
 * porter/plugin.h - the one header a Porter plugin includes.
 *
 * A plugin is a shared object that defines one descriptor with PORTER_PLUGIN(...). The core
 * loads it with dlopen, checks its ABI version, calls init with the arguments from its line in
 * conf/plugins, and then calls its hooks in chain order. A plugin never links against core
 * symbols: every call below goes through a table of function pointers that the core hands to
 * the plugin at load time (the porter_api variable that PORTER_PLUGIN defines).
 *
 * Smallest plugin (conf/plugins line: "hello"):
 *
 *     #include <porter/plugin.h>
 *     static int hello_helo(porter_session *s, void *state)
 *     {
 *         return porter_reply(s, PORTER_OK, 250, "2.0.0", "Hello %s", porter_helo(s));
 *     }
 *     PORTER_PLUGIN(.name = "hello", .hooks[PORTER_HOOK_HELO] = hello_helo);
 *
 * Build out of tree: cc $(pkg-config --cflags --libs porter-plugin) -o hello.so hello.c
 *
 * Ownership: every pointer an accessor returns is owned by the core and stays valid until the
 * hook that obtained it has given its verdict (a PENDING hook keeps them valid until it is
 * resumed). Plugins never free them. Strings a plugin passes in are copied by the core.
 *
 * Threads: the API may be called only on the event loop thread (inside a hook, a timer or a
 * completion callback), except the functions marked "thread-safe".
 *
 * docs/plugins.md is the tutorial and the full reference.
 */
#ifndef PORTER_PLUGIN_H
#define PORTER_PLUGIN_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever struct porter_api or struct porter_plugin changes incompatibly. */
#define PORTER_PLUGIN_ABI 2

/* Verdicts a hook returns. */
enum porter_rc {
    PORTER_DECLINED = 0,          /* no opinion: the next plugin in the chain decides */
    PORTER_OK,                    /* accept this stage; the rest of the chain is skipped */
    PORTER_DENY,                  /* permanent refusal (5xx) */
    PORTER_DENYSOFT,              /* temporary refusal (4xx) */
    PORTER_DENY_DISCONNECT,       /* 5xx, then the connection is closed */
    PORTER_DENYSOFT_DISCONNECT,   /* 421, then the connection is closed */
    PORTER_DONE,                  /* the plugin set the reply itself with porter_reply() */
    PORTER_PENDING,               /* the verdict comes later (timer, run_blocking, resume) */
    PORTER_RC_COUNT
};

/* Hooks, in qpsmtpd's names. */
enum porter_hook {
    PORTER_HOOK_CONNECT = 0,
    PORTER_HOOK_HELO,
    PORTER_HOOK_EHLO,
    PORTER_HOOK_AUTH,
    PORTER_HOOK_MAIL,
    PORTER_HOOK_RCPT,
    PORTER_HOOK_DATA,
    PORTER_HOOK_DATA_POST,
    PORTER_HOOK_QUEUE,
    PORTER_HOOK_RESET_TRANSACTION,
    PORTER_HOOK_QUIT,
    PORTER_HOOK_DISCONNECT,
    PORTER_HOOK_UNRECOGNIZED_COMMAND,
    PORTER_HOOK_VRFY,
    PORTER_HOOK_NOOP,
    PORTER_HOOK_HELP,
    PORTER_HOOK_TLS,
    PORTER_HOOK_DENY,             /* notification: an earlier plugin refused; verdict ignored */
    PORTER_HOOK_COUNT
};

/* Log levels (syslog's). */
enum porter_log_level {
    PORTER_LOG_ERR = 3,
    PORTER_LOG_WARNING = 4,
    PORTER_LOG_NOTICE = 5,
    PORTER_LOG_INFO = 6,
    PORTER_LOG_DEBUG = 7
};

/* Where a note lives: until the connection ends, or until the transaction ends. */
enum porter_scope { PORTER_CONNECTION = 0, PORTER_TRANSACTION };

typedef struct porter_session porter_session; /* one SMTP connection; opaque */
typedef struct porter_args porter_args;       /* one plugin line's arguments; opaque */
typedef struct porter_cidr_list porter_cidr_list;
typedef struct porter_list porter_list;       /* domains, addresses, lines of words */

/* A handle names a waiting hook by session id and generation; copy it freely. */
typedef struct porter_handle {
    unsigned long long session_id;
    unsigned long long generation;
} porter_handle;

/*
 * The message as the queue plugin must deliver it: the current header block (the core's
 * Received header and every edit applied, each header ending in CRLF, without the empty
 * separator line) and the body bytes, which are read from body_fd at body_offset.
 * Valid until the hook's verdict.
 */
struct porter_message {
    const char *headers;
    size_t headers_length;
    int body_fd;
    off_t body_offset;
    off_t body_length;
};

/* The hook every plugin implements: state is what init returned. */
typedef int (*porter_hook_fn)(porter_session *s, void *state);
/* Runs on a worker thread; it must not call the API (except thread-safe functions). */
typedef int (*porter_work_fn)(void *arg);
/*
 * Runs on the event loop when a timer fires or blocking work ends, with the hook's session.
 * It returns the hook's verdict (may be PENDING again). When the session went away or the hook
 * timed out meanwhile, s is NULL: free arg and return anything.
 */
typedef int (*porter_done_fn)(porter_session *s, void *arg, int result);

/*
 * DNS. One resolver per worker answers every plugin: servers from dns_servers in porter.conf
 * (else /etc/resolv.conf), dns_timeout per try, dns_retries more rounds over the servers, and a
 * cache that honours TTLs (dns_cache_size answers). A CNAME chain in an answer is followed.
 */
enum porter_dns_status {
    PORTER_DNS_OK = 0,     /* records of the type asked for (count > 0) */
    PORTER_DNS_NXDOMAIN,   /* the name does not exist */
    PORTER_DNS_NODATA,     /* the name exists, without records of that type */
    PORTER_DNS_TEMPFAIL,   /* no usable answer: timeout, SERVFAIL, REFUSED, network error */
    PORTER_DNS_ERROR,      /* the question itself is wrong (bad name or type), or it was asked
                              where it may not be (porter_dns_query on the event loop) */
    PORTER_DNS_STATUS_COUNT
};

/* Record types: their DNS wire values (so not a dense enum; no _COUNT). */
enum porter_dns_type {
    PORTER_DNS_A = 1,
    PORTER_DNS_NS = 2,
    PORTER_DNS_CNAME = 5,
    PORTER_DNS_PTR = 12,
    PORTER_DNS_MX = 15,
    PORTER_DNS_TXT = 16,
    PORTER_DNS_AAAA = 28
};

/* One record of an answer. */
struct porter_dns_record {
    const char *text;       /* A, AAAA: the address ("192.0.2.1", "2001:db8::1"); NS, CNAME,
                               PTR, MX: the name, without the final dot; TXT: the record's
                               character-strings joined without separator. NUL-terminated;
                               a TXT may hold NUL bytes: use length. */
    size_t length;          /* bytes of text, without the final NUL */
    unsigned preference;    /* MX only */
    unsigned ttl;           /* seconds, as the server said */
};

/* An answer. Records are those of the type asked for, at the end of any CNAME chain. */
struct porter_dns_answer {
    int status;             /* enum porter_dns_status */
    int type;               /* the type asked for */
    const char *name;       /* the name asked for (for PTR: the reverse name) */
    size_t count;           /* records (0 unless status is PORTER_DNS_OK) */
    const struct porter_dns_record *records;
    unsigned ttl;           /* seconds the answer may be kept: the least record TTL; for
                               NXDOMAIN / NODATA the SOA's negative TTL (0 if none) */
    const unsigned char *packet; /* the server's reply as received (for libraries that parse
                               DNS themselves), NULL when no server answered */
    size_t packet_length;
};

/*
 * Runs on the event loop with the answer to porter_dns_lookup. Like porter_done_fn, it returns
 * the hook's verdict (it may be PENDING again, after another lookup, timer or job). answer is
 * valid only during the call. When the session went away or the hook timed out meanwhile, s
 * and answer are NULL: free arg and return anything.
 */
typedef int (*porter_dns_fn)(porter_session *s, void *arg, const struct porter_dns_answer *answer);

/*
 * Runs on the event loop with the answer to porter_dns_background, with the session that
 * started the lookup (never NULL: a lookup whose session ends first is cancelled and its
 * callback never runs). It gives no verdict; answer is valid only during the call.
 */
typedef void (*porter_dns_background_fn)(porter_session *s, void *arg,
                                         const struct porter_dns_answer *answer);

/* The most porter_command captures of a program's output, bytes, with the final NUL. */
#define PORTER_COMMAND_OUTPUT_MAX 8192
/*
 * Runs on the event loop when a porter_command program has ended: status is its exit status
 * (0-255), or -1 when it could not run, was killed, or timed out; output is what it wrote on
 * standard output, NUL-terminated, cut at PORTER_COMMAND_OUTPUT_MAX - 1 bytes, valid during the
 * call. Returns the hook's verdict, like porter_done_fn. When the session went away or the
 * hook timed out meanwhile, s is NULL: free arg and return anything.
 */
typedef int (*porter_command_fn)(porter_session *s, void *arg, int status, const char *output);

/*
 * A message on its way into a queue plugin's store, as porter_deliver hands it to the plugin's
 * deliver function on a pool thread. Everything is the core's copy, unchanged and valid while
 * deliver runs, even when the client leaves meanwhile.
 */
struct porter_delivery {
    const char *queue_id;
    const char *mail_from;          /* the envelope sender; "" for the null sender */
    const char *const *recipients;  /* the envelope recipients, recipient_count of them */
    size_t recipient_count;
    const char *recipient_list;     /* the recipients joined with "," */
    const char *message_id;         /* the first Message-Id value, without surrounding white
                                       space; NULL when there is none */
    const char *quarantined;        /* the quarantine reason, or NULL */
    time_t received;                /* when the queue hook ran (the end of the data) */
    struct porter_message message;  /* the header block as delivered (Porter's Received and
                                       every edit) and the body's file: porter_message_write */
    const char *body;               /* the body in memory, NUL-terminated after body_length */
    size_t body_length;
    char error[512];                /* deliver writes why it failed here; the core logs it */
};
/*
 * A queue plugin's store function, for porter_deliver. It runs on a pool thread, never two at
 * a time for one plugin line in a worker (so its state, such as one database connection, needs
 * no lock), and calls only thread-safe API functions. It returns 0 once the message is stored
 * for good, or -1 after writing the reason into d->error.
 */
typedef int (*porter_deliver_fn)(void *state, struct porter_delivery *d);

/*
 * The store: shared state for plugins (greylisting triplets, rate counters), on LMDB in the
 * spool directory (store = lmdb, shared by the workers of one daemon) or on a Redis server
 * (store = redis://HOST:PORT/DB, shared by every gateway that names it).
 */
enum porter_store_status {
    PORTER_STORE_OK = 0,        /* done; for a get, the key was found */
    PORTER_STORE_NOT_FOUND,     /* get: no such key, or it expired */
    PORTER_STORE_ERROR,         /* the store could not answer (Redis down or slow, LMDB full):
                                   error says why; the plugin's on_store_error= decides */
    PORTER_STORE_STATUS_COUNT
};

/* The outcome of one store call. Valid only during the callback. */
struct porter_store_result {
    int status;                 /* enum porter_store_status */
    const char *value;          /* get: the value, NUL-terminated; NULL otherwise */
    size_t length;              /* bytes of value, without the NUL */
    long long count;            /* increment: the counter after it; delete: keys removed */
    double ttl;                 /* get, increment: seconds before the key expires; -1: never */
    const char *error;          /* PORTER_STORE_ERROR: why, fit for a log value */
};

/*
 * Runs on the event loop with the outcome of a porter_store_* call. Like porter_done_fn, it
 * returns the hook's verdict (it may be PENDING again, after another store call). When the
 * session went away or the hook timed out meanwhile, s and result are NULL: free arg and
 * return anything.
 */
typedef int (*porter_store_fn)(porter_session *s, void *arg, const struct porter_store_result *result);

/*
 * Runs on the event loop with the outcome of porter_store_increments_background, with the
 * session that started it (never NULL: when the session ends first, the callback is cancelled
 * and never runs). It gives no verdict; result is valid only during the call.
 */
typedef void (*porter_store_background_fn)(porter_session *s, void *arg,
                                           const struct porter_store_result *result);

/*
 * One counter of a porter_store_increments call: key, by and ttl go in (as for
 * porter_store_increment); status, count, ttl_left and error are filled before the callback
 * runs. The array is the plugin's and must live until the callback.
 */
struct porter_store_count {
    const char *key;            /* in: copied by the call */
    long long by;               /* in */
    double ttl;                 /* in: the expiry a new counter gets */
    int status;                 /* out: enum porter_store_status (OK or ERROR) */
    long long count;            /* out: the counter after it */
    double ttl_left;            /* out: seconds before the counter expires; -1: never */
    const char *error;          /* out: ERROR: why (valid during the callback only) */
};

/* The table of calls the core gives a plugin. Use the porter_* macros below, not this. */
struct porter_api {
    unsigned abi;
    /* replies and logging */
    int (*reply)(porter_session *s, int rc, int code, const char *enhanced, const char *format, va_list ap);
    void (*log)(porter_session *s, int level, const char *format, va_list ap);
    /* connection facts */
    const char *(*session_id)(porter_session *s);
    const char *(*hostname)(porter_session *s);
    const char *(*client_ip)(porter_session *s);
    int (*client_port)(porter_session *s);
    const char *(*client_name)(porter_session *s);
    const char *(*local_ip)(porter_session *s);
    int (*local_port)(porter_session *s);
    const char *(*helo)(porter_session *s);
    bool (*said_ehlo)(porter_session *s);
    bool (*relay_client)(porter_session *s);
    void (*relay_client_set)(porter_session *s, bool allowed);
    const char *(*auth_user)(porter_session *s);
    const char *(*listener_role)(porter_session *s);
    const char *(*tls_info)(porter_session *s, const char *key);
    size_t (*input_pending)(porter_session *s);
    /* the command being handled */
    const char *(*hook_argument)(porter_session *s);
    const char *(*hook_param)(porter_session *s, const char *keyword);
    /* the transaction */
    const char *(*queue_id)(porter_session *s);
    const char *(*mail_from)(porter_session *s);
    const char *(*mail_param)(porter_session *s, const char *keyword);
    int (*mail_from_set)(porter_session *s, const char *address, const char *params);
    size_t (*rcpt_count)(porter_session *s);
    const char *(*rcpt)(porter_session *s, size_t index);
    const char *(*rcpt_param)(porter_session *s, size_t index, const char *keyword);
    int (*rcpt_add)(porter_session *s, const char *address, const char *params);
    int (*rcpt_remove)(porter_session *s, const char *address);
    void (*quarantine)(porter_session *s, const char *reason);
    const char *(*quarantined)(porter_session *s);
    /* headers and body */
    size_t (*header_count)(porter_session *s, const char *name);
    const char *(*header_get)(porter_session *s, const char *name, size_t index);
    int (*header_add)(porter_session *s, const char *name, const char *value);
    int (*header_insert)(porter_session *s, size_t position, const char *name, const char *value);
    int (*header_change)(porter_session *s, const char *name, size_t index, const char *value);
    int (*header_remove)(porter_session *s, const char *name);
    off_t (*data_size)(porter_session *s);
    int (*message)(porter_session *s, struct porter_message *out);
    int (*body_replace)(porter_session *s, const char *body, size_t length);
    /* this plugin's own per-connection pointer */
    void *(*data_get)(porter_session *s);
    void (*data_set)(porter_session *s, void *data);
    /* notes */
    int (*note_set)(porter_session *s, int scope, const char *key, const char *value);
    const char *(*note_get)(porter_session *s, int scope, const char *key);
    /* asynchronous verdicts */
    int (*timer)(porter_session *s, double seconds, porter_done_fn done, void *arg);
    int (*run_blocking)(porter_session *s, porter_work_fn work, porter_done_fn done, void *arg);
    porter_handle (*suspend)(porter_session *s);
    int (*resume)(porter_handle handle, int rc, int code, const char *enhanced, const char *format, va_list ap);
    struct event_base *(*event_base)(porter_session *s);
    /* plugin arguments (only inside init) */
    const char *(*arg_string)(porter_args *a, const char *key, const char *fallback);
    const char *(*arg_path)(porter_args *a, const char *key, const char *fallback);
    long (*arg_integer)(porter_args *a, const char *key, long fallback, long minimum, long maximum);
    double (*arg_seconds)(porter_args *a, const char *key, double fallback);
    bool (*arg_bool)(porter_args *a, const char *key, bool fallback);
    int (*arg_choice)(porter_args *a, const char *key, const char *choices);
    porter_cidr_list *(*arg_cidr)(porter_args *a, const char *key);
    void (*arg_error)(porter_args *a, const char *format, va_list ap);
    const char *(*arg_positional)(porter_args *a, size_t index);
    /* utilities (thread-safe) */
    bool (*cidr_match)(const porter_cidr_list *list, const char *ip);
    void (*cidr_free)(porter_cidr_list *list);
    int (*message_write)(const struct porter_message *m, int fd);
    int (*run_command)(const char *const argv[], double timeout, char *output, size_t output_size);
    /* DNS */
    int (*dns_lookup)(porter_session *s, int type, const char *name, porter_dns_fn callback,
                      void *arg);
    struct porter_dns_answer *(*dns_query)(int type, const char *name);
    void (*dns_answer_free)(struct porter_dns_answer *answer);
    const char *(*dns_status_name)(int status);
    /* porter.conf settings (only inside init) */
    const char *(*setting)(porter_args *a, const char *name);
    /* AUTH: the credentials the auth hook checks */
    const char *(*auth_mechanism)(porter_session *s);
    const char *(*auth_username)(porter_session *s);
    const char *(*auth_password)(porter_session *s);
    /* programs, multi-line replies, dates, queue delivery, paths (what keeps plugins short) */
    int (*command)(porter_session *s, const char *const argv[], double timeout,
                   porter_command_fn done, void *arg);
    int (*reply_lines)(porter_session *s, int rc, const char *prefix, const char *text);
    time_t (*date_parse)(const char *text);
    int (*deliver)(porter_session *s, porter_deliver_fn deliver, void *state,
                   const char *accepted);
    const char *(*arg_resolve)(porter_args *a, const char *path);
    /* a waiting hook's deadline; dropping the message */
    int (*wait_extend)(porter_handle handle, double seconds);
    int (*discard)(porter_session *s, const char *reason);
    /* state kept across sessions (connection pools) */
    int (*at_loop_end)(porter_session *s, void (*fn)(void *arg), void *arg);
    /* the client's host name as DNS tells it */
    const char *(*client_ptr)(porter_session *s);
    int (*set_client_name)(porter_session *s, const char *name, const char *ptr);
    /* the store: shared state (greylist, ratelimit, ...); store in porter.conf */
    int (*store_get)(porter_session *s, const char *key, porter_store_fn done, void *arg);
    int (*store_set)(porter_session *s, const char *key, const char *value, double ttl,
                     porter_store_fn done, void *arg);
    int (*store_increment)(porter_session *s, const char *key, long long by, double ttl,
                           porter_store_fn done, void *arg);
    int (*store_delete)(porter_session *s, const char *key, porter_store_fn done, void *arg);
    const char *(*store_status_name)(int status);
    /* DNS lookups that do not hold up the chain (dnsbl, rhsbl: asked at connect, read at RCPT) */
    int (*dns_background)(porter_session *s, int type, const char *name,
                          porter_dns_background_fn callback, void *arg);
    /* list files (domains, addresses, tables) and address/domain helpers */
    porter_list *(*arg_list)(porter_args *a, const char *key, const char *fallback);
    porter_list *(*list_file)(porter_args *a, const char *path);
    size_t (*list_count)(const porter_list *list);
    const char *(*list_word)(const porter_list *list, size_t index, size_t word);
    size_t (*list_word_count)(const porter_list *list, size_t index);
    int (*list_line)(const porter_list *list, size_t index);
    const char *(*list_source)(const porter_list *list);
    bool (*list_match_domain)(const porter_list *list, const char *domain);
    bool (*list_match_address)(const porter_list *list, const char *address);
    void (*list_free)(porter_list *list);
    const char *(*address_domain)(const char *address);
    bool (*domain_equal)(const char *a, const char *b);
    bool (*domain_within)(const char *domain, const char *parent);
    /* a suspended hook's session, for plugins that wait on events of their own (clamd,
     * spamassassin, p0f) */
    porter_session *(*waiting_session)(porter_handle handle);
    /* facts a plugin adds to the connection's transaction log lines (p0f) */
    int (*log_fact)(porter_session *s, const char *key, const char *value);
    /* several counters at once, one round trip (ratelimit: connections and concurrent) */
    int (*store_increments)(porter_session *s, struct porter_store_count *counts, size_t count,
                            porter_store_fn done, void *arg);
    /* counters that do not hold up the chain (ratelimit: the counts of a client far from its
     * limits, made while the greeting or the RCPT's reply goes out) */
    int (*store_increments_background)(porter_session *s, struct porter_store_count *counts,
                                       size_t count, porter_store_background_fn callback,
                                       void *arg);
};

/*
 * One named argument a plugin takes, as `porter plugins NAME` prints it and docs/plugins.md
 * documents it. A plugin lists every key it reads; the list ends with an entry whose name is
 * NULL. fallback is the default as an administrator would write it ("5m", "yes", "127.0.0.1:25"),
 * NULL when the argument is required or has no default.
 */
struct porter_argument {
    const char *name;
    const char *fallback;
    const char *help;                              /* one or two sentences */
};

/* The argument list of a descriptor: .arguments = PORTER_ARGUMENTS({"black", "5m", "..."}, ...) */
#define PORTER_ARGUMENTS(...) ((const struct porter_argument[]){__VA_ARGS__, {NULL, NULL, NULL}})

/* What a plugin exports, under the symbol name "porter_plugin". */
struct porter_plugin {
    unsigned abi;                                  /* PORTER_PLUGIN_ABI */
    const char *name;                              /* as written in conf/plugins */
    void *(*init)(porter_args *args);              /* returns state (may be NULL); report errors
                                                      with porter_arg_error() */
    void (*fini)(void *state);                     /* frees state; called once at unload */
    porter_hook_fn hooks[PORTER_HOOK_COUNT];       /* NULL where the plugin does not listen */
    const struct porter_api **api;                 /* filled by the core before init */
    const char *description;                       /* what the plugin does, a few sentences */
    const struct porter_argument *arguments;       /* NULL-name terminated; NULL: none */
};

#ifndef PORTER_CORE
/* The core's call table for this plugin; set before init runs. */
extern const struct porter_api *porter_api __attribute__((visibility("hidden")));

/* Define the plugin: PORTER_PLUGIN(.name = "x", .init = x_init, .hooks[PORTER_HOOK_RCPT] = x_rcpt) */
#define PORTER_PLUGIN(...)                                                                        \
    const struct porter_api *porter_api __attribute__((visibility("hidden")));                   \
    __attribute__((visibility("default"))) const struct porter_plugin porter_plugin = {          \
        .abi = PORTER_PLUGIN_ABI, .api = &porter_api, __VA_ARGS__}

/*
 * porter_reply - set the reply that goes with verdict rc and return rc, so a hook can say
 *   return porter_reply(s, PORTER_DENY, 550, "5.7.1", "no thanks");
 * code 0 picks the stage's default code for rc; enhanced NULL picks the default enhanced code.
 * A text with '\n' becomes a multi-line reply, one line per '\n'-separated part.
 */
static inline int porter_reply(porter_session *s, int rc, int code, const char *enhanced,
                               const char *format, ...) __attribute__((format(printf, 5, 6)));
static inline int porter_reply(porter_session *s, int rc, int code, const char *enhanced,
                               const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    rc = porter_api->reply(s, rc, code, enhanced, format, ap);
    va_end(ap);
    return rc;
}

/* porter_log - one log line, prefixed with the session id and the plugin's name. */
static inline void porter_log(porter_session *s, int level, const char *format, ...)
    __attribute__((format(printf, 3, 4)));
static inline void porter_log(porter_session *s, int level, const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    porter_api->log(s, level, format, ap);
    va_end(ap);
}

/*
 * porter_resume - give the verdict of a hook that returned PENDING after porter_suspend().
 * Returns 0, or -1 when the hook is no longer waiting (answered already, timed out, or the
 * client left): the answer is then logged and dropped.
 */
static inline int porter_resume(porter_handle h, int rc, int code, const char *enhanced,
                                const char *format, ...) __attribute__((format(printf, 5, 6)));
static inline int porter_resume(porter_handle h, int rc, int code, const char *enhanced,
                                const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    int result = porter_api->resume(h, rc, code, enhanced, format, ap);
    va_end(ap);
    return result;
}

/* porter_arg_error - report a bad argument from init; the plugin fails to load. */
static inline void porter_arg_error(porter_args *a, const char *format, ...)
    __attribute__((format(printf, 2, 3)));
static inline void porter_arg_error(porter_args *a, const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    porter_api->arg_error(a, format, ap);
    va_end(ap);
}

/* Connection facts. */
#define porter_session_id(s) (porter_api->session_id(s))
#define porter_hostname(s) (porter_api->hostname(s))       /* our own name ("me") */
#define porter_client_ip(s) (porter_api->client_ip(s))
#define porter_client_port(s) (porter_api->client_port(s))
#define porter_client_name(s) (porter_api->client_name(s)) /* verified PTR name or "unknown" */
#define porter_local_ip(s) (porter_api->local_ip(s))
#define porter_local_port(s) (porter_api->local_port(s))
#define porter_helo(s) (porter_api->helo(s))               /* "" before HELO/EHLO */
#define porter_said_ehlo(s) (porter_api->said_ehlo(s))
#define porter_relay_client(s) (porter_api->relay_client(s))
#define porter_relay_client_set(s, allowed) (porter_api->relay_client_set((s), (allowed)))
#define porter_auth_user(s) (porter_api->auth_user(s))     /* NULL unless authenticated */
#define porter_listener_role(s) (porter_api->listener_role(s)) /* "smtp", "submission", ... */
/* porter_tls_info - a fact of the TLS connection, NULL without TLS or for an absent fact:
 * "version" ("TLSv1.3"), "cipher", "bits", "alg_bits", "sni" (the name the client asked for),
 * "resumed" ("yes"/"no"), and of a client certificate: "subject" and "issuer" ("/C=../CN=.."),
 * "subject_cn", "issuer_cn", "fingerprint" (SHA-256, "AB:CD:..."), "verified" ("yes" when it
 * verified against tls_ca_file), "verify_error". The tls hook runs after each handshake. */
#define porter_tls_info(s, key) (porter_api->tls_info((s), (key)))
#define porter_input_pending(s) (porter_api->input_pending(s)) /* bytes the client sent unasked */

/* The command being handled: the HELO name, the MAIL/RCPT address, the VRFY/HELP argument, the
 * whole line for unrecognized_command; and an ESMTP parameter of MAIL/RCPT (NULL if absent,
 * "" if it has no value). */
#define porter_hook_argument(s) (porter_api->hook_argument(s))
#define porter_hook_param(s, keyword) (porter_api->hook_param((s), (keyword)))

/* The transaction: the envelope (addresses without angle brackets; "" is the null sender).
 * porter_mail_from_set and porter_rcpt_add return -1 and change nothing unless the address and
 * the ESMTP parameters would pass as a client's MAIL FROM / RCPT TO argument (RFC 5321 syntax,
 * UTF-8 allowed): nothing a plugin or milter adds can smuggle bytes into a downstream command. */
#define porter_queue_id(s) (porter_api->queue_id(s))
#define porter_mail_from(s) (porter_api->mail_from(s))
#define porter_mail_param(s, keyword) (porter_api->mail_param((s), (keyword)))
#define porter_mail_from_set(s, address, params) (porter_api->mail_from_set((s), (address), (params)))
#define porter_rcpt_count(s) (porter_api->rcpt_count(s))
#define porter_rcpt(s, index) (porter_api->rcpt((s), (index)))
#define porter_rcpt_param(s, index, keyword) (porter_api->rcpt_param((s), (index), (keyword)))
#define porter_rcpt_add(s, address, params) (porter_api->rcpt_add((s), (address), (params)))
#define porter_rcpt_remove(s, address) (porter_api->rcpt_remove((s), (address)))
#define porter_quarantine(s, reason) (porter_api->quarantine((s), (reason)))
#define porter_quarantined(s) (porter_api->quarantined(s)) /* the reason, or NULL */

/* Headers (in data_post and queue): values are the raw text after "Name:", folding kept exact,
 * without the final CRLF. index counts headers of that name from 0 in message order. */
#define porter_header_count(s, name) (porter_api->header_count((s), (name)))
#define porter_header_get(s, name, index) (porter_api->header_get((s), (name), (index)))
#define porter_header_add(s, name, value) (porter_api->header_add((s), (name), (value)))
#define porter_header_insert(s, position, name, value) \
    (porter_api->header_insert((s), (position), (name), (value)))
#define porter_header_change(s, name, index, value) \
    (porter_api->header_change((s), (name), (index), (value))) /* value NULL deletes */
#define porter_header_remove(s, name) (porter_api->header_remove((s), (name)))
#define porter_data_size(s) (porter_api->data_size(s)) /* bytes received after DATA/BDAT */
#define porter_message(s, out) (porter_api->message((s), (out)))
#define porter_body_replace(s, body, length) (porter_api->body_replace((s), (body), (length)))

/* Notes: strings kept for the connection or the transaction, readable by later plugins. */
#define porter_note_set(s, scope, key, value) (porter_api->note_set((s), (scope), (key), (value)))
#define porter_note_get(s, scope, key) (porter_api->note_get((s), (scope), (key)))

/* The plugin's own pointer for this connection (NULL until set). The plugin frees what it
 * stored, at the latest in its disconnect hook, which always runs. */
#define porter_data_get(s) (porter_api->data_get(s))
#define porter_data_set(s, data) (porter_api->data_set((s), (data)))

/* Asynchronous verdicts. Each returns PORTER_PENDING, for "return porter_timer(...);". */
#define porter_timer(s, seconds, done, arg) (porter_api->timer((s), (seconds), (done), (arg)))
#define porter_run_blocking(s, work, done, arg) \
    (porter_api->run_blocking((s), (work), (done), (arg)))
#define porter_suspend(s) (porter_api->suspend(s))
#define porter_event_base(s) (porter_api->event_base(s))

/* Plugin arguments, read in init: "key=value" words after the plugin's name. A key that no
 * porter_arg_* call asks for is an error, so a typo never loads. Strings returned live until
 * init returns: copy what you keep. porter_arg_path resolves a relative path against the
 * configuration directory. */
#define porter_arg_string(a, key, fallback) (porter_api->arg_string((a), (key), (fallback)))
#define porter_arg_path(a, key, fallback) (porter_api->arg_path((a), (key), (fallback)))
#define porter_arg_integer(a, key, fallback, minimum, maximum) \
    (porter_api->arg_integer((a), (key), (fallback), (minimum), (maximum)))
#define porter_arg_seconds(a, key, fallback) (porter_api->arg_seconds((a), (key), (fallback)))
#define porter_arg_bool(a, key, fallback) (porter_api->arg_bool((a), (key), (fallback)))
#define porter_arg_choice(a, key, choices) (porter_api->arg_choice((a), (key), (choices)))
#define porter_arg_cidr(a, key) (porter_api->arg_cidr((a), (key)))
#define porter_arg_positional(a, index) (porter_api->arg_positional((a), (index)))

/* Utilities; thread-safe. */
#define porter_cidr_match(list, ip) (porter_api->cidr_match((list), (ip)))
#define porter_cidr_free(list) (porter_api->cidr_free(list))
#define porter_message_write(m, fd) (porter_api->message_write((m), (fd)))
#define porter_run_command(argv, timeout, output, size) \
    (porter_api->run_command((argv), (timeout), (output), (size)))

/*
 * DNS, asynchronous: inside a hook (or a continuation), start one lookup and return PENDING;
 * callback(s, arg, answer) runs on the loop when the answer is in (from the cache, at the
 * earliest on the next loop turn) and gives the hook's verdict. One lookup at a time per hook
 * call, like porter_timer; chain them from the callback. Each returns PORTER_PENDING (or
 * PORTER_DENYSOFT, logged, when used outside a hook), for "return porter_dns_txt(...);".
 * porter_dns_ptr takes an address ("192.0.2.1", "2001:db8::1") and asks for its reverse name.
 */
#define porter_dns_lookup(s, type, name, callback, arg) \
    (porter_api->dns_lookup((s), (type), (name), (callback), (arg)))
#define porter_dns_a(s, name, callback, arg) \
    porter_dns_lookup((s), PORTER_DNS_A, (name), (callback), (arg))
#define porter_dns_aaaa(s, name, callback, arg) \
    porter_dns_lookup((s), PORTER_DNS_AAAA, (name), (callback), (arg))
#define porter_dns_mx(s, name, callback, arg) \
    porter_dns_lookup((s), PORTER_DNS_MX, (name), (callback), (arg))
#define porter_dns_txt(s, name, callback, arg) \
    porter_dns_lookup((s), PORTER_DNS_TXT, (name), (callback), (arg))
#define porter_dns_ptr(s, address, callback, arg) \
    porter_dns_lookup((s), PORTER_DNS_PTR, (address), (callback), (arg))

/*
 * DNS, blocking; thread-safe: for libraries that resolve synchronously (libspf2, libopendkim),
 * called from porter_run_blocking work on a pool thread. It asks the same servers, with the
 * same timeout, retries and cache as the asynchronous lookups, and waits for the answer (at
 * most dns_timeout x servers x (dns_retries + 1) seconds, twice that when truncated replies
 * send every try on to TCP). Never NULL; free the answer with
 * porter_dns_answer_free. On the event loop thread it refuses to block: status
 * PORTER_DNS_ERROR and a log line. For PTR, name may be an address as above.
 */
#define porter_dns_query_sync(type, name) (porter_api->dns_query((type), (name)))
#define porter_dns_answer_free(answer) (porter_api->dns_answer_free(answer))
#define porter_dns_status_name(status) (porter_api->dns_status_name(status)) /* "ok", ... */

/*
 * porter_setting - inside init: the value of porter.conf setting NAME as text (as written, or
 * its default; numbers in plain digits, durations in seconds, yes/no, choices as their word),
 * NULL when the setting is unset or unknown. Read from the configuration directory's
 * porter.conf when called. Relative paths stay relative: resolve them with
 * porter_arg_path(a, "key", porter_setting(a, "queue_dir")). Valid until init returns.
 */
#define porter_setting(a, name) (porter_api->setting((a), (name)))

/*
 * AUTH (RFC 4954). The core runs the SASL exchange (PLAIN, LOGIN) and then the auth hook, whose
 * plugins check the credentials: OK authenticates the client (235; porter_auth_user is set from
 * then on and the client may relay), DENY refuses (535 5.7.8, after a delay that grows with each
 * failure), DENYSOFT is a temporary failure (454 4.7.0), DECLINED asks the next plugin (nobody
 * accepting is a 535). A plugin that checks slowly uses porter_run_blocking: copy the password
 * into its own memory first (worker threads may not call the API) and wipe it when done.
 *   porter_auth_mechanism(s)  in the auth hook: "PLAIN" or "LOGIN"; afterwards the mechanism
 *                             that authenticated the client ({auth_type}); NULL otherwise
 *   porter_auth_username(s)   in the auth hook: the authentication identity the client gave
 *                             (UTF-8, no control characters, quotes or backslashes); else NULL
 *   porter_auth_password(s)   in the auth hook only: the password (any octets but NUL); NULL
 *                             elsewhere. Never log it.
 */
#define porter_auth_mechanism(s) (porter_api->auth_mechanism(s))
#define porter_auth_username(s) (porter_api->auth_username(s))
#define porter_auth_password(s) (porter_api->auth_password(s))

/*
 * porter_command - in a hook: run argv[0] (a path; no shell, no PATH search; argv is copied) on
 * the worker's thread pool, standard input from /dev/null, standard output captured, killed
 * after timeout seconds; then done(s, arg, status, output) on the loop gives the verdict.
 * Returns PORTER_PENDING (PORTER_DENYSOFT, logged, outside a hook), for
 *   const char *argv[] = {"/usr/games/fortune", "-s", NULL};
 *   return porter_command(s, argv, 5.0, fortune_done, NULL);
 */
#define porter_command(s, argv, timeout, done, arg) \
    (porter_api->command((s), (argv), (timeout), (done), (arg)))

/*
 * porter_reply_lines - more lines for the reply porter_reply set in this call (when it set no
 * text, the lines are the whole text): each '\n'-separated line of text, prefix first, is one
 * more reply line. A final '\n' ends the last line, empty lines are kept, a CR before a LF is
 * dropped; lines past the reply's limits (64 lines, 8191 bytes) are left out. Returns rc:
 *   porter_reply(s, PORTER_DONE, 221, "2.0.0", "%s closing connection.", porter_hostname(s));
 *   return porter_reply_lines(s, PORTER_DONE, " / ", output);
 */
#define porter_reply_lines(s, rc, prefix, text) \
    (porter_api->reply_lines((s), (rc), (prefix), (text)))

/*
 * porter_date_parse - thread-safe: an RFC 5322 date-time ("Date:" values), obsolete forms
 * included (no weekday, no seconds, 2- and 3-digit years, UT/GMT/EST..PDT and military zones,
 * comments, folding), in seconds since the epoch; -1 when text is not one (or NULL). Text
 * after the zone is ignored; an unknown zone name, or none, is read as UTC.
 *   time_t when = porter_date_parse(porter_header_get(s, "Date", 0));
 */
#define porter_date_parse(text) (porter_api->date_parse(text))

/*
 * porter_deliver - a queue hook's whole job: the core copies the envelope and the header block,
 * takes the body's spool file from the transaction (porter_message fails after this), and on a
 * pool thread reads the body into memory (at most max_message_size bytes) and calls
 * fn(state, d). Deliveries of one plugin line run one at a time, in order, and a delivery
 * whose client left or whose hook timed out before its turn does not run. fn returning 0
 * answers "250 2.0.0 ACCEPTED QUEUEID" (accepted NULL: "Ok: queued as"); -1, or a body that
 * cannot be read, logs event=queue_failed with d->error and answers 451 4.3.0, so the client
 * keeps the message. Queue hook only; returns PORTER_PENDING (PORTER_DENYSOFT, logged, when
 * used elsewhere or without a message), for
 *   return porter_deliver(s, sql_deliver, state, "Queued!");
 */
#define porter_deliver(s, fn, state, accepted) (porter_api->deliver((s), (fn), (state), (accepted)))

/*
 * porter_arg_resolve - in init: path resolved against the configuration directory when it is
 * relative (for a path inside a value, as in db=sqlite:PATH, that porter_arg_path cannot see);
 * NULL stays NULL. Valid until init returns.
 */
#define porter_arg_resolve(a, path) (porter_api->arg_resolve((a), (path)))

/*
 * porter_wait_extend - restart the deadline of the waiting hook that handle names (from
 * porter_suspend): the core now gives up on it seconds from now (at most a day), whatever
 * hook_timeout or plugin_timeout said. For a plugin that talks to a peer with timeouts of its
 * own (a milter's command and content timeouts): call it each time the peer shows life, with
 * the peer's timeout plus a margin, so that the peer's timeout decides, not the core's. Called
 * in the hook (before it returns PENDING) or in its continuation, it sets the deadline the
 * wait starts with. Returns 0, or -1 when the hook is not waiting any more (answered, timed
 * out, the client left) or seconds is not above 0.
 *   porter_wait_extend(state->handle, content_timeout + 2);
 */
#define porter_wait_extend(h, seconds) (porter_api->wait_extend((h), (seconds)))

/*
 * porter_discard - drop the current message: at the end of the data the client gets
 * "250 2.0.0 Ok: discarded as QUEUEID", the queue hook does not run, nothing is delivered,
 * and the transaction's log line says discarded=REASON (REASON as given, blanks, quotes and
 * control characters as '_'; "discarded" when NULL or empty). Call it from MAIL to data_post;
 * the hook's verdict still counts (a refusal still refuses: decline after discarding at
 * MAIL or RCPT, so that the other plugins still check the command). Returns 0, or -1
 * without a transaction and in the queue hook (too late: the queue chain already runs).
 *   porter_discard(s, "milter:spamd");
 *   return PORTER_DECLINED;
 */
#define porter_discard(s, reason) (porter_api->discard((s), (reason)))

/*
 * porter_at_loop_end - fn(arg) runs once when the process that runs session s stops serving,
 * just before its event loop (porter_event_base(s)) is freed: the place to close connections
 * and free the libevent objects a plugin keeps across sessions (a pool of idle connections).
 * Register once per process (fini comes later, when the loop is already gone). Returns 0, or
 * -1 without a loop (s NULL).
 *   if (!pool->cleanup_registered && porter_at_loop_end(s, pool_free_all, pool) == 0)
 *       pool->cleanup_registered = true;
 */
#define porter_at_loop_end(s, fn, arg) (porter_api->at_loop_end((s), (fn), (arg)))

/*
 * porter_client_ptr - the client's host name as its address's PTR record gives it, not
 * checked against the name's own addresses; "unknown" when none is known. porter_client_name
 * is the verified name (a PTR name whose addresses include the client's) or "unknown".
 * Postfix's {client_ptr} and {client_name}.
 */
#define porter_client_ptr(s) (porter_api->client_ptr(s))

/*
 * porter_set_client_name - set the verified name and the PTR name (NULL: "unknown"), as a
 * lookup plugin does at connect (the client_name plugin); they then show in the Received
 * header, the logs, milter macros, XCLIENT/XFORWARD and the spool. Each must be a host name as
 * EHLO takes one: letters, digits, '-' (not first or last in a label), '_' and '.', labels of
 * 1 to 63 bytes, at most 253 bytes in all (a final dot is dropped), no address literal;
 * otherwise -1 and nothing changes. Returns 0.
 */
#define porter_set_client_name(s, name, ptr) (porter_api->set_client_name((s), (name), (ptr)))

/*
 * The store (store = in porter.conf; docs/plugins.md "Shared state"). Keys are text of at most
 * 400 bytes, values at most 65536 bytes; the core puts "PLUGIN:" in front of every key (a
 * plugin's keys never meet another plugin's; every gateway on one Redis shares them). ttl is
 * in seconds; 0 keeps the key until it is deleted.
 *   porter_store_get(s, key, done, arg)            the value (status NOT_FOUND when absent or
 *                                                  expired) and its ttl
 *   porter_store_set(s, key, value, ttl, done, arg) store value (a string) for ttl seconds
 *   porter_store_increment(s, key, by, ttl, done, arg)  add by (may be negative) to a counter
 *                                                  and give its new count; a key that did not
 *                                                  exist starts at 0 and expires ttl seconds
 *                                                  after that first increment (a fixed window:
 *                                                  later increments keep the expiry)
 *   porter_store_delete(s, key, done, arg)         remove the key (count: 1, or 0 if absent)
 * With done, the call is made inside a hook (or a continuation): it returns PORTER_PENDING and
 * done(s, arg, result) gives the verdict on the loop, at the earliest on the next loop turn,
 * like porter_dns_lookup (PORTER_DENYSOFT, logged, outside a hook). With done NULL, the call
 * is made in the background, in any hook (disconnect too): nobody waits for it, a failure is
 * logged, and it returns PORTER_DECLINED; on Redis it may wait up to 20 ms to travel with the
 * next request somebody waits for (other workers and gateways see it that much later). A store that cannot answer within store_timeout
 * gives status PORTER_STORE_ERROR: decide with the plugin's on_store_error= argument (by
 * default let the mail through and log it), never by answering 250 for mail that is lost.
 *   return porter_store_increment(s, key, 1, 3600, counted, state);
 */
#define porter_store_get(s, key, done, arg) (porter_api->store_get((s), (key), (done), (arg)))
#define porter_store_set(s, key, value, ttl, done, arg) \
    (porter_api->store_set((s), (key), (value), (ttl), (done), (arg)))
#define porter_store_increment(s, key, by, ttl, done, arg) \
    (porter_api->store_increment((s), (key), (by), (ttl), (done), (arg)))
#define porter_store_delete(s, key, done, arg) (porter_api->store_delete((s), (key), (done), (arg)))
#define porter_store_status_name(status) (porter_api->store_status_name(status)) /* "ok", ... */

/*
 * porter_store_increments - several counters at once, in one round trip to the store: each
 * counts[i] as porter_store_increment would (inside a hook, with done; PORTER_PENDING). When
 * all are in, each counts[i] has its status, count and ttl_left, and done(s, arg, result)
 * runs once: result->status is PORTER_STORE_ERROR if any counter failed (result->error says
 * why), else PORTER_STORE_OK; result->count is the number of counters. counts must live until
 * done (keep it in arg's memory).
 *   struct porter_store_count *counts = check->counts;   (key, by, ttl set)
 *   return porter_store_increments(s, counts, 2, counted, check);
 */
#define porter_store_increments(s, counts, count, done, arg) \
    (porter_api->store_increments((s), (counts), (count), (done), (arg)))

/*
 * porter_store_increments_background - the counters of porter_store_increments, without
 * holding up the chain: the hook goes on (it need not return PENDING), the requests travel
 * with the worker's next request to the store (a remote store: within 20 ms, or as soon as a
 * hook waits, since porter_suspend sends them; so a busy worker's counts share writes), and
 * when all are in, each counts[i] has its status, count and ttl_left and
 * callback(s, arg, result) runs on the loop, as porter_dns_background's callback does: as if inside this plugin, outside
 * any hook (no verdict, no PENDING helper; it may porter_resume a hook of this plugin that
 * waits for it with porter_suspend, log, and change porter_data). When the session ends
 * first, the callback is cancelled before the disconnect hook runs and never runs (counts and
 * arg may live in the per-connection data freed there), but the counts are made all the
 * same: a count started is a count made (give back at disconnect what must be given back).
 * In a hook (disconnect aside) or a background callback; returns 0, or -1 (logged) without a
 * store, counters or callback.
 *   porter_store_increments_background(s, check->counts, 2, counted_later, check);
 */
#define porter_store_increments_background(s, counts, count, callback, arg) \
    (porter_api->store_increments_background((s), (counts), (count), (callback), (arg)))

/*
 * porter_dns_background - start a DNS lookup that does not hold up the chain: the hook goes
 * on (it need not return PENDING), and callback(s, arg, answer) runs later on the loop, as if
 * inside this plugin (porter_log names it, porter_data_get is its data), but outside any hook:
 * it may not return a verdict or start PENDING helpers; it may start more background lookups
 * and porter_resume a hook of this plugin that waits for the answers (porter_suspend). Any
 * number may run at once. When the session ends first, its lookups are cancelled before the
 * disconnect hook runs and their callbacks never run, so arg may live in the plugin's
 * per-connection data freed there. Answers come from the same cache and servers as
 * porter_dns_lookup. In a hook or a callback; returns 0, or -1 (logged) without a resolver.
 *   porter_dns_background(s, PORTER_DNS_A, "2.0.0.127.bl.example.net", listed_done, check);
 */
#define porter_dns_background(s, type, name, callback, arg) \
    (porter_api->dns_background((s), (type), (name), (callback), (arg)))

/*
 * Lists an administrator gives a plugin: domains, addresses, or lines of words (a key table).
 * In init:
 *   porter_arg_list(a, key, fallback)  the value (fallback when absent; NULL: none) as a list:
 *                                      a file when it starts with "/", "./", "../" or names a
 *                                      file in the configuration directory, else inline words
 *                                      separated by commas or blanks (zones=a.example,b.example)
 *   porter_list_file(a, path)          the file at path (relative: in the configuration
 *                                      directory)
 * Both return NULL after porter_arg_error when a file cannot be read; the plugin owns the list
 * and frees it in fini with porter_list_free (NULL is fine). In a file, '#' starts a comment,
 * blank lines are skipped, and each line is an entry of one or more blank-separated words.
 * Thread-safe afterwards:
 *   porter_list_count(l), porter_list_word(l, i, w) (word w of entry i, NULL past the end),
 *   porter_list_word_count(l, i), porter_list_line(l, i) (its line, for error messages),
 *   porter_list_source(l) (the file's path, or "inline")
 *   porter_list_match_domain(l, domain)   an entry "example.com" is that domain,
 *                                         ".example.com" its subdomains (first words only;
 *                                         no case, a final dot ignored)
 *   porter_list_match_address(l, address) the address itself ("user@example.com"), "@domain"
 *                                         for exactly that domain, or its domain as above
 * And for addresses and domains (thread-safe, pure):
 *   porter_address_domain(address)    what follows the last '@' (a pointer into address), or
 *                                     NULL ("postmaster", "")
 *   porter_domain_equal(a, b)         the same domain, without case, final dots ignored
 *   porter_domain_within(d, parent)   d is parent or one of its subdomains
 */
#define porter_arg_list(a, key, fallback) (porter_api->arg_list((a), (key), (fallback)))
#define porter_list_file(a, path) (porter_api->list_file((a), (path)))
#define porter_list_count(list) (porter_api->list_count(list))
#define porter_list_word(list, index, word) (porter_api->list_word((list), (index), (word)))
#define porter_list_word_count(list, index) (porter_api->list_word_count((list), (index)))
#define porter_list_line(list, index) (porter_api->list_line((list), (index)))
#define porter_list_source(list) (porter_api->list_source(list))
#define porter_list_match_domain(list, domain) (porter_api->list_match_domain((list), (domain)))
#define porter_list_match_address(list, address) \
    (porter_api->list_match_address((list), (address)))
#define porter_list_free(list) (porter_api->list_free(list))
#define porter_address_domain(address) (porter_api->address_domain(address))
#define porter_domain_equal(a, b) (porter_api->domain_equal((a), (b)))
#define porter_domain_within(domain, parent) (porter_api->domain_within((domain), (parent)))

/*
 * porter_waiting_session - the session whose hook handle (from porter_suspend) names, while
 * that hook still waits for its answer; NULL once it was answered, timed out, or the client
 * left. For a plugin that waits on events of its own (a socket on porter_event_base): in its
 * libevent callback it reads and edits the session (headers, notes, porter_log) through this
 * pointer, then gives the verdict with porter_resume. Valid until the callback returns.
 *   porter_session *s = porter_waiting_session(job->handle);
 *   if (s == NULL) { job_free(job); return; }   (nobody waits any more)
 */
#define porter_waiting_session(handle) (porter_api->waiting_session(handle))

/*
 * porter_log_fact - a fact about the connection that every later event=transaction log line
 * of the session carries as " key=value" after the core's fields (the client's OS from p0f):
 * key is lower-case letters, digits and '_' (at most 32; prefix it with the plugin's name),
 * value is quoted as logs quote. Setting a key again replaces its value; at most 16 keys.
 * Returns 0, or -1 for a bad key or past the limit.
 *   porter_log_fact(s, "p0f_os", "Linux 2.2.x-3.x");
 */
#define porter_log_fact(s, key, value) (porter_api->log_fact((s), (key), (value)))

#endif /* PORTER_CORE */

#ifdef __cplusplus
}
#endif
#endif /* PORTER_PLUGIN_H */
