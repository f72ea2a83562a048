/*
 * config.h - Porter's settings (conf/porter.conf) and its plugin list (conf/plugins).
 *
 * Interface: config_load reads DIR/porter.conf into a struct porter_config; config_parse does
 * the same from memory (pure: no I/O, no globals; used by config_load, tests and the fuzzer).
 * The settings are one table (config_settings) with a row per setting: name, type, field,
 * default, range and a one-line description. plugin_lines_load/plugin_lines_parse split the
 * plugins file into one struct plugin_line per plugin. The small value parsers (integers with
 * k/m/g suffixes, durations, yes/no, choices) are shared with plugin_args.c.
 *
 * Errors: every problem in a file is reported as "FILE:LINE: message" in a config_error_list;
 * the loaders collect all of them (up to CONFIG_ERRORS_MAX per file), not just the first, and
 * then return NULL / -1. A configuration error is fatal at start and refused on reload; that
 * decision belongs to the caller. Out of memory is fatal (memory.h).
 *
 * Memory: a struct porter_config and everything it points to belong to the caller, who frees
 * them with config_free. Error messages belong to the list (config_errors_clear). The
 * settings table is static and read-only.
 *
 * Note on the name: autoconf's header is porter_autoconf.h, which the build force-includes
 * (-include), so "config.h" is this file. Files outside gateway/ include "gateway/config.h".
 */
#ifndef PORTER_CONFIG_H
#define PORTER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

/* The most errors one file reports before the loader stops reading it. */
#define CONFIG_ERRORS_MAX 100
/* The largest porter.conf or plugins file read, in bytes. */
#define CONFIG_FILE_MAX (1024 * 1024)
/* The longest line of porter.conf, in bytes. */
#define CONFIG_LINE_MAX 4096

/* One "listen = ADDRESS [ROLE]" line. */
struct config_listen {
    char *address; /* "127.0.0.1:2525", "[::1]:2525": an IP literal and a port, as written;
                      "unix:/PATH" for the milter and policy roles */
    char *role;    /* "smtp" (default), "submission", "submissions", "milter", "policy" */
    bool proxy_protocol; /* connections start with a PROXY header (proxy_protocol.h) */
};

/* What a bare LF (a line ending without CR) in SMTP input does. */
enum config_bare_lf {
    CONFIG_BARE_LF_REJECT = 0, /* refuse the command or message */
    CONFIG_BARE_LF_NORMALIZE,  /* treat it as CRLF */
    CONFIG_BARE_LF_COUNT
};

/* The settings; see config_settings() for defaults, ranges and descriptions. */
struct porter_config {
    char *directory;            /* the config dir (absolute after config_load) */
    char *hostname;             /* "me" in logs and replies; config_load fills in the system's
                                   name when unset (config_parse leaves it NULL) */
    struct config_listen *listen;
    size_t listen_count;        /* at least 1 after a successful load */
    char *user;                 /* NULL: do not change user */
    char *group;                /* NULL: the user's group (or no change) */
    long workers;               /* 0 = number of cores */
    char *plugin_dir;           /* colon-separated directories, each resolved with config_path */
    char *plugins_file;         /* resolve with config_path */
    char *spool_dir;            /* resolve with config_path */
    double plugin_timeout;      /* seconds */
    unsigned long long max_message_size;
    long max_command_line;
    long max_data_line;
    long max_header_size;
    long max_header_count;
    long max_recipients;
    long max_recipients_overshoot; /* 452s past max_recipients before each counts as an error */
    long max_messages_per_session;
    long max_errors;            /* 4xx/5xx replies per session, then 421 and disconnect */
    long max_unrecognized;      /* unknown commands per session, then 421 */
    long max_junk_commands;     /* NOOP/RSET/VRFY/HELP since the last message before each
                                   further one counts as an error (Postfix's junk limit) */
    long max_connections;       /* per worker process; stress mode near it */
    long max_connections_per_ip;
    long stress_threshold;      /* percent of max_connections: stress mode; 0: never */
    double stress_greeting_timeout;
    double stress_command_timeout;
    double greeting_timeout;    /* seconds until the first command */
    double command_timeout;
    double data_timeout;
    double command_deadline;    /* first byte of a command line to its CRLF; 0: none */
    unsigned long long data_min_rate; /* DATA/BDAT bytes per second over each data_rate_window */
    double data_rate_window;    /* seconds; 0: no minimum rate */
    double session_timeout;
    double milter_listener_timeout; /* milter listeners: the MTA's next command */
    double policy_listener_timeout; /* policy listeners: Postfix's next request */
    double milter_progress_interval; /* milter listeners: SMFIR_PROGRESS while a hook waits */
    double shutdown_timeout;    /* drain time on SIGTERM and for old workers after a reload */
    bool received_header;
    bool reject_unauth_pipelining; /* input where RFC 2920 allows none: 554 5.5.0 and close */
    /* Scale-out: PROXY protocol, XCLIENT, draining behind a load balancer */
    char *proxy_sources;        /* CIDR list text; NULL: nobody may send a PROXY header */
    double proxy_timeout;       /* seconds for the whole PROXY header */
    char *xclient_clients;      /* CIDR list text; NULL: nobody may send XCLIENT */
    double drain_grace;         /* seconds of 421 to new connections before draining */
    struct porter_cidr_list *proxy_sources_list;   /* parsed by config_parse; never NULL */
    struct porter_cidr_list *xclient_clients_list; /* likewise */
    int bare_lf;                /* enum config_bare_lf */
    int log_level;              /* enum porter_log_level (syslog level, 3 to 7) */
    /* Operations (log.c, control.c, metrics.c) */
    char *log;                  /* "syslog", "stderr", "file:PATH"; NULL: syslog (stderr for
                                   porter run -f) */
    int log_facility;           /* syslog facility (LOG_MAIL, ...) */
    int log_format;             /* enum log_format (log.h) */
    char *pid_file;             /* NULL: SPOOL_DIR/porter.pid; resolve with config_path */
    char *metrics_listen;       /* "127.0.0.1:9125"; NULL: no metrics listener */
    /* The spool queue and its delivery process (spool.c, deliver.c, queue_spool). */
    int delivery;               /* enum config_delivery */
    char *queue_dir;            /* resolve with config_path */
    char *relay_host;           /* "host:port", "[v6]:port", "unix:/path"; NULL: none */
    int relay_protocol;         /* enum config_relay_protocol */
    int relay_tls;              /* none|may|encrypt|verify (enum smtp_client_tls) */
    char *relay_tls_ca_file;    /* NULL: the system's CAs */
    char *relay_tls_server_name; /* NULL: the relay_host's host */
    char *relay_auth_user;      /* NULL: no AUTH */
    char *relay_auth_password_file; /* resolve with config_path */
    int relay_identity;         /* auto|xforward|xclient|none (enum smtp_client_identity) */
    double relay_connect_timeout;
    double relay_command_timeout;
    double relay_data_timeout;
    char *retry_schedule;       /* config_retry_schedule_parse */
    double max_queue_lifetime;
    double delay_warning_time;  /* 0: no delay notices */
    long delivery_concurrency;
    unsigned long long dsn_return_limit;
    /* DNS (dns.c) */
    char *dns_servers;          /* "IP[:PORT] ..." (config_dns_servers_parse); NULL: resolv.conf */
    double dns_timeout;         /* seconds per try */
    long dns_retries;           /* more rounds over the server list after the first */
    long dns_cache_size;        /* answers kept per worker; 0: no cache */
    /* the store plugins share (store.c) */
    char *store;                /* "lmdb" or a Redis URL (store_address_parse) */
    double store_timeout;       /* seconds a Redis request may take */
    unsigned long long store_size; /* LMDB map size, bytes */
    double store_sweep_interval; /* seconds between LMDB sweeps of expired keys */
    /* TLS and AUTH (tls.c, auth.c); TLS is off while tls_cert is NULL */
    char *tls_cert;             /* certificate files, space-separated; resolve with config_path */
    char *tls_key;              /* key files, one per certificate; NULL: in the certificate files */
    char *tls_chain;            /* extra intermediates sent with every certificate */
    char *tls_protocols;        /* "TLSv1.2 TLSv1.3" */
    char *tls_ciphers;          /* OpenSSL cipher list for TLS 1.2 and older */
    char *tls_ciphersuites;     /* TLS 1.3 suites; NULL: OpenSSL's */
    char *tls_ca_file;          /* CAs that client certificates verify against */
    int tls_verify_client;      /* enum tls_verify (tls.h) */
    char *tls_relay_clientcerts; /* file of client certificate fingerprints allowed to relay */
    long tls_session_cache_size; /* per worker; 0: off */
    bool tls_session_tickets;
    double tls_session_timeout;
    bool auth_over_plaintext;   /* AUTH without TLS */
    bool submission_requires_tls; /* submission listeners: STARTTLS before AUTH and MAIL */
    long auth_max_failures;     /* failed AUTH attempts, then 421 and disconnect */
    double auth_failure_delay;  /* before the first 535; doubles with each further failure */
    bool received_header_auth;  /* the authenticated user in the Received header */
    char *plugins_text;         /* the plugins file as the master read and checked it (NULL:
                                   read the file); workers load this, not what the file holds by
                                   the time they start (config_plugins_snapshot) */
    size_t plugins_length;
    struct tls_server *tls;     /* built by config_load from the tls_* settings (tls.h); NULL
                                   without TLS; freed by config_free */
};

/* Whether the master runs the spool's delivery process. */
enum config_delivery {
    CONFIG_DELIVERY_AUTO = 0, /* when queue_spool is in the plugin chain */
    CONFIG_DELIVERY_YES,
    CONFIG_DELIVERY_NO,
    CONFIG_DELIVERY_COUNT
};
const char *config_delivery_name(int delivery);

/* The downstream protocol of the delivery process. */
enum config_relay_protocol { CONFIG_RELAY_SMTP = 0, CONFIG_RELAY_LMTP, CONFIG_RELAY_PROTOCOL_COUNT };

/* The most steps a retry_schedule may have. */
#define CONFIG_RETRY_STEPS_MAX 32
/* config_retry_schedule_parse - "1m 5m 15m 1h 4h": durations separated by blanks, each above
 * 0, at most max of them into steps (may be NULL to only check). NULL with *count set, or why
 * the value is bad (a static string). Pure. */
const char *config_retry_schedule_parse(const char *text, double *steps, size_t max, size_t *count);

/* Setting types. */
enum config_type {
    CONFIG_STRING = 0, /* text without control characters */
    CONFIG_INTEGER,    /* long; "10k" = 10240, "10m" = 10485760, "1g" = 1073741824 */
    CONFIG_SIZE,       /* unsigned long long; same syntax as CONFIG_INTEGER */
    CONFIG_SECONDS,    /* double; "300", "300s", "5m", "2h", "1d", "0.5" */
    CONFIG_BOOL,       /* bool; yes/no, true/false, on/off, 1/0 */
    CONFIG_CHOICE,     /* int; one word of choices */
    CONFIG_LISTEN,     /* struct config_listen list; repeatable */
    CONFIG_TYPE_COUNT
};

/* One row of the settings table. */
struct config_setting {
    const char *name;
    enum config_type type;
    size_t offset;                          /* offsetof(struct porter_config, field) */
    const char *default_value;              /* as written in the file; NULL: unset (NULL or
                                               computed, see description) */
    double minimum, maximum;                /* numbers: the allowed range (inclusive);
                                               listen: maximum is the most lines allowed */
    bool repeatable;
    const char *choices;                    /* CONFIG_CHOICE: "word|word|..." */
    const int *choice_values;               /* CONFIG_CHOICE: value per word; NULL: its index */
    const char *(*check)(const char *value); /* CONFIG_STRING: NULL, or why value is bad */
    const char *description;                /* one line, for `porter check` and the docs */
};

/* Errors as "FILE:LINE: message" strings, in the order found. Start from {0}. */
struct config_error_list {
    char **messages;
    size_t count;
};

/* config_load - read DIRECTORY/porter.conf; a config (caller frees with config_free), or NULL
 * with the errors appended to *errors. Fills in the system's hostname when it is not set, and
 * loads the TLS certificates, keys and CA files the tls_* settings name (tls_config_load). */
struct porter_config *config_load(const char *directory, struct config_error_list *errors);

/* config_read_settings - DIRECTORY/porter.conf through config_parse only: no certificates
 * loaded, no host name looked up (the tools that only need paths and settings: porter queue,
 * porter status, porter config). only: NULL, or a NULL-terminated list of the settings to
 * read (the other lines are skipped, errors in them too). NULL with the errors appended.
 * Caller frees. config_load is this plus the host name and the certificates. */
struct porter_config *config_read_settings(const char *directory, const char *const *only,
                                           struct config_error_list *errors);

/* config_parse - the same from memory (length bytes of text; NUL bytes are errors). Pure.
 * file_name is used in messages; directory is stored as given. */
struct porter_config *config_parse(const char *directory, const char *file_name, const char *text,
                                   size_t length, struct config_error_list *errors);

void config_free(struct porter_config *c);

/* config_settings - the settings table and its row count */
const struct config_setting *config_settings(size_t *count);

/* config_value_text - the value of setting s in c as porter.conf would write it (sizes and
 * durations in their largest exact unit; listen: one "ADDRESS ROLE [OPTION]" per line,
 * separated by newlines); NULL for an unset string. Caller frees. */
char *config_value_text(const struct porter_config *c, const struct config_setting *s);
const char *config_type_name(int type);
/* config_type_syntax - what a value of the type looks like, for messages: "a duration (like
 * 30, 30s, 5m, 2h, 1d or 0.5)" reads well after "'VALUE' is not " */
const char *config_type_syntax(int type);
const char *config_bare_lf_name(int bare_lf);

/* config_path - path if absolute, else c->directory/path; caller frees */
char *config_path(const struct porter_config *c, const char *path);
/* config_path_resolve - path if absolute or directory is NULL, else directory/path; caller frees */
char *config_path_resolve(const char *directory, const char *path);

/* config_system_hostname - the system's fully qualified name (gethostname, then the canonical
 * name from getaddrinfo when it has no dot); caller frees. May block on DNS. */
char *config_system_hostname(void);

/* config_error_add - append one formatted message to errors (copied) */
void config_error_add(struct config_error_list *errors, const char *format, ...)
    __attribute__((format(printf, 2, 3)));
/* config_errors_clear - free every message; the list is empty afterwards */
void config_errors_clear(struct config_error_list *errors);

/*
 * Value parsers shared by porter.conf and plugin arguments. Each reads the whole of text (no
 * surrounding spaces allowed) and returns 0 with *value set, or -1 leaving *value alone.
 */
/* The most DNS servers dns_servers may list. */
#define CONFIG_DNS_SERVERS_MAX 8
struct sockaddr_storage;
/* config_dns_servers_parse - a dns_servers value: addresses separated by blanks or commas,
 * each IPV4[:PORT], IPV6 or [IPV6][:PORT] (port 53 when absent); at most max of them into
 * servers (may be NULL to only check). NULL with *count set, or why the value is bad (a
 * static string). Pure. */
const char *config_dns_servers_parse(const char *text, struct sockaddr_storage *servers,
                                     size_t max, size_t *count);

/* config_parse_integer - optional '-', decimal digits, optional k/m/g (x1024, case-insensitive) */
int config_parse_integer(const char *text, long long *value);
/* config_parse_seconds - digits with an optional fraction, optional s/m/h/d unit; >= 0 */
int config_parse_seconds(const char *text, double *value);
/* config_parse_bool - yes/no, true/false, on/off, 1/0 (case-insensitive) */
int config_parse_bool(const char *text, bool *value);
/* config_parse_choice - the index of text among "a|b|c" (case-insensitive) */
int config_parse_choice(const char *text, const char *choices, int *index);
/* config_choices_list - "a|b|c" as "a, b, c"; caller frees */
char *config_choices_list(const char *choices);
/* config_quote - text for an error message: at most 80 bytes, unprintable bytes as \xNN,
 * "..." when cut; caller frees */
char *config_quote(const char *text);

/* One line of the plugins file: "name [args...]". */
struct plugin_line {
    char *file;  /* the file name it came from */
    int line;    /* the line its name is on */
    char *name;  /* [a-z0-9_]+ */
    int argc;
    char **argv; /* the words after the name, unquoted; argv[argc] is NULL */
};

struct plugin_line_list {
    struct plugin_line *items;
    size_t count;
};

/* Limits of the plugins file. */
#define PLUGIN_LINES_MAX 1000   /* plugins */
#define PLUGIN_WORDS_MAX 256    /* words on one line, the name included */
#define PLUGIN_WORD_MAX 65536   /* bytes in one word */
#define PLUGIN_NAME_MAX 64      /* bytes in a plugin name */

/*
 * plugin_lines_parse - split a plugins file into lines. Words are separated by spaces or tabs;
 * "..." groups a word with spaces (inside quotes \" and \\ are escapes, any other backslash is
 * literal) and may be part of a word (key="a b"); a # at the start of a word comments out the
 * rest of the line; a backslash at the end of a line continues the line on the next one.
 * out must be empty on entry. Returns 0 with the lines in out, or -1 with out empty and every
 * error appended to errors. Pure.
 */
int plugin_lines_parse(const char *file_name, const char *text, size_t length,
                       struct plugin_line_list *out, struct config_error_list *errors);
/* plugin_lines_load - plugin_lines_parse on the file at path */
int plugin_lines_load(const char *path, struct plugin_line_list *out,
                      struct config_error_list *errors);
/* config_plugins_snapshot - keep the plugins file's text in c (plugins_text); 0, or -1 with
 * the error appended */
int config_plugins_snapshot(struct porter_config *c, struct config_error_list *errors);
/* config_plugin_lines - the plugin lines of c: of its snapshot when it has one, else of the
 * file (plugin_lines_load); 0 or -1 as plugin_lines_parse */
int config_plugin_lines(const struct porter_config *c, struct plugin_line_list *out,
                        struct config_error_list *errors);

/* plugin_lines_clear - free every line; the list is empty afterwards */
void plugin_lines_clear(struct plugin_line_list *list);

/* config_read_file - the whole regular file at path (at most limit bytes, NUL-terminated);
 * 0, or -1 with *error set to "PATH: reason" (caller frees). Caller frees *text. */
int config_read_file(const char *path, size_t limit, char **text, size_t *length, char **error);

#endif
