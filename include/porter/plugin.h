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

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever struct porter_api or struct porter_plugin changes incompatibly. */
#define PORTER_PLUGIN_ABI 1

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
};

/* What a plugin exports, under the symbol name "porter_plugin". */
struct porter_plugin {
    unsigned abi;                                  /* PORTER_PLUGIN_ABI */
    const char *name;                              /* as written in conf/plugins */
    void *(*init)(porter_args *args);              /* returns state (may be NULL); report errors
                                                      with porter_arg_error() */
    void (*fini)(void *state);                     /* frees state; called once at unload */
    porter_hook_fn hooks[PORTER_HOOK_COUNT];       /* NULL where the plugin does not listen */
    const struct porter_api **api;                 /* filled by the core before init */
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
#define porter_tls_info(s, key) (porter_api->tls_info((s), (key))) /* NULL without TLS */
#define porter_input_pending(s) (porter_api->input_pending(s)) /* bytes the client sent unasked */

/* The command being handled: the HELO name, the MAIL/RCPT address, the VRFY/HELP argument, the
 * whole line for unrecognized_command; and an ESMTP parameter of MAIL/RCPT (NULL if absent,
 * "" if it has no value). */
#define porter_hook_argument(s) (porter_api->hook_argument(s))
#define porter_hook_param(s, keyword) (porter_api->hook_param((s), (keyword)))

/* The transaction: the envelope (addresses without angle brackets; "" is the null sender). */
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
#endif /* PORTER_CORE */

#ifdef __cplusplus
}
#endif
#endif /* PORTER_PLUGIN_H */
