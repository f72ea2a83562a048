/*
 * session.h - one SMTP connection: the state machine driven by the command table, the hook
 * chains it runs, and the transaction it holds.
 *
 * Interface: session_start takes an accepted connection (or stdin/stdout) and owns it until it
 * closes; the worker learns of the end through worker_session_closed. Everything a plugin sees
 * is reached through plugin_api.c, which reads this struct. A session is freed only when no
 * hook chain is running on it and no blocking job refers to it (session_release).
 * Fatal: out of memory. A misbehaving client gets a reply or a disconnect, never a crash.
 */
#ifndef PORTER_SESSION_H
#define PORTER_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/time.h>

#ifndef PORTER_CORE
#define PORTER_CORE
#endif
#include <porter/plugin.h>

#include "data.h"
#include "reply.h"
#include "smtp_parse.h"
#include "transaction.h"

struct bufferevent;
struct event;
struct worker;
struct porter_config;
struct plugin_registry;
struct plugin_instance;
struct hook_continuation;
struct tls_facts;
struct auth_exchange;

enum session_state {
    SESSION_STATE_CONNECT = 0, /* connect hooks running, no greeting yet */
    SESSION_STATE_GREETED,     /* waiting for HELO/EHLO */
    SESSION_STATE_READY,       /* HELO/EHLO done, no transaction */
    SESSION_STATE_MAIL,        /* MAIL accepted, waiting for RCPT */
    SESSION_STATE_RCPT,        /* at least one RCPT accepted */
    SESSION_STATE_DATA,        /* reading a DATA body */
    SESSION_STATE_BDAT,        /* reading BDAT chunks */
    SESSION_STATE_CLOSING,     /* final reply queued; closing when it is written */
    SESSION_STATE_COUNT
};
const char *session_state_name(enum session_state state);

/* Yes/no facts about a session. */
enum session_flag {
    SESSION_FLAG_EHLO = 1 << 0,         /* the client said EHLO */
    SESSION_FLAG_RELAY = 1 << 1,        /* relaying allowed (relay client, authenticated) */
    SESSION_FLAG_TLS = 1 << 2,
    SESSION_FLAG_DISCARD_LINE = 1 << 3, /* skipping the rest of an overlong command line */
    SESSION_FLAG_BDAT_FAILED = 1 << 4,  /* a BDAT chunk failed: the rest of them are discarded */
    SESSION_FLAG_TRACE = 1 << 5,        /* --trace: hooks and verdicts to stderr */
    SESSION_FLAG_DRAINING = 1 << 6,     /* the worker is shutting down: close when idle */
    SESSION_FLAG_TLS_PENDING = 1 << 7,  /* STARTTLS answered 220: switch once it is written */
    SESSION_FLAG_TLS_HANDSHAKE = 1 << 8, /* the TLS handshake runs: no input is read */
    SESSION_FLAG_EARLY_TALK_JUDGED = 1 << 9, /* a connect plugin looked at input before the
                                                greeting (porter_input_pending): it judges */
    SESSION_FLAG_PIPELINING_CHECKED = 1 << 10, /* a network client: reject_unauth_pipelining
                                                  applies (not `porter stdio` on a pipe) */
};

/* The hook chain currently running on the session (at most one). */
struct hook_run {
    bool active;
    bool waiting;                  /* a plugin returned PENDING */
    bool resumed;                  /* an answer arrived; resume_event will continue the chain */
    enum porter_hook hook;
    size_t position;               /* index into the registry's list for this hook */
    unsigned long long generation; /* names this wait; bumped when it ends */
    int resumed_rc;
    struct reply reply;            /* the reply attached to the deciding verdict */
    const struct plugin_instance *plugin; /* the plugin being called or waited for */
    const char *decider;           /* name of the plugin that decided, for the log line */
    void (*done)(struct porter_session *s, int rc);
    struct event *timeout_event;
    struct event *resume_event;
    struct timeval started;        /* for --trace */
    bool in_call;                  /* inside a plugin's hook or continuation: may go PENDING */
    struct hook_continuation *continuation; /* a timer or blocking job the wait depends on */
    struct hook_background *background;     /* porter_dns_background lookups still running */
};

/* A transport other than SMTP on input/output (milter_listener.c, policy_listener.c): it owns
 * its connection and answers in its own protocol; session_reply says nothing on it. */
struct session_transport {
    void (*drain)(struct porter_session *s);  /* the worker stops: close when idle */
    void (*closed)(struct porter_session *s); /* session_close ran: forget the session */
};

struct porter_session {
    uint64_t id;
    char id_string[24];
    struct worker *worker;
    const struct porter_config *config;
    struct plugin_registry *plugins;
    struct event_base *base;
    struct bufferevent *input;   /* the client's bytes come from here */
    struct bufferevent *output;  /* replies go here (same as input except for stdio) */
    enum session_state state;
    unsigned flags;
    const char *role;            /* listener role: "smtp", "submission", "submissions" */
    unsigned listener;           /* index of the listener it came in on (metrics); UINT_MAX:
                                    none (stdio, sessions of the milter listener) */
    int view;                    /* its entry in the session view of porter top, or -1 */
    char client_ip[64];
    int client_port;
    char local_ip[64];
    int local_port;
    char *client_name;           /* verified host name; "unknown" unless a plugin sets it */
    char *client_ptr;            /* first PTR name, unverified; "unknown" likewise */
    char *helo;                  /* "" before HELO/EHLO */
    char *auth_user;             /* NULL unless authenticated */
    struct tls_facts *tls;       /* NULL until a TLS handshake completed (tls.h) */
    struct auth_exchange *auth;  /* AUTH state; NULL before the first AUTH (auth.h) */
    struct note_list notes;      /* connection notes */
    struct note_list log_facts;  /* key=value words plugins add to transaction lines
                                    (porter_log_fact) */
    void **plugin_data;          /* one pointer per plugin instance (porter_data_get/set) */
    struct transaction *transaction;
    /* the command being handled */
    const struct session_command *command;
    char *command_argument;
    struct smtp_path path;       /* MAIL/RCPT address, valid during their hooks */
    bool path_valid;
    /* DATA / BDAT */
    struct data_reader *reader;
    unsigned long long bdat_remaining;
    bool bdat_last;
    bool bdat_chunk;             /* a BDAT chunk's bytes are being read */
    bool smtputf8;               /* MAIL had SMTPUTF8 */
    /* counters and limits */
    unsigned messages;
    unsigned errors;
    unsigned unrecognized;
    unsigned junk;               /* NOOP, RSET, VRFY, HELP since the last accepted message */
    unsigned recipients_over_limit; /* RCPTs of this transaction refused by max_recipients */
    struct timeval connected_at;
    struct event *idle_timer;    /* greeting / command / data timeouts and the deadlines below */
    double line_started;         /* monotonic time of the first byte of a partial command line
                                    (command_deadline); 0: none */
    double data_window_start;    /* DATA/BDAT: monotonic start of the data_min_rate window */
    unsigned long long data_window_bytes; /* bytes received in that window */
    struct event *session_timer; /* the whole session */
    struct hook_run run;
    unsigned blocking_jobs;      /* run_blocking jobs still referring to this session */
    struct transaction *parked;  /* ended transactions a running job may still read */
    bool closed;                 /* the connection is gone; free when nothing refers to it */
    bool in_input;               /* session_process_input is on the stack */
    unsigned holds;              /* callers on the stack that still use the session */
    bool input_eof;              /* the client closed its side; close when the input is done */
    char *final_log;             /* reason for closing, for the last log line */
    /* Scale-out (proxy_protocol.h, XCLIENT) */
    char counted_ip[64];         /* the address the worker counted for max_connections_per_ip,
                                    "" when none (released when the session closes) */
    bool proxy_wait;             /* a PROXY header must come before anything else */
    char proxy_ip[64];           /* the load balancer that sent it; "" without one */
    bool xclient_allowed;        /* the client is on xclient_clients (decided at connect) */
    bool client_known;           /* the session got past its PROXY header (if any) and
                                    admission: plugins will see connect and disconnect */
    const struct session_transport *transport; /* NULL: SMTP on input/output */
    void *transport_data;        /* the transport's connection */
};

/* session_start - begin a session on an accepted socket (fd owned by the session). */
struct porter_session *session_start(struct worker *worker, int fd, const struct sockaddr *peer,
                                     socklen_t peer_length, const char *role);
/* session_start_stdio - begin a session on stdin/stdout; client_ip as given (or "127.0.0.1") */
struct porter_session *session_start_stdio(struct worker *worker, const char *client_ip,
                                           bool trace);
/* session_attach - give a started session its config and plugins and send it on its way */
void session_attach(struct porter_session *s, const struct porter_config *config,
                    struct plugin_registry *plugins);
/* session_address_string - numeric host (IPv4-mapped shown as IPv4) and port */
void session_address_string(const struct sockaddr *sa, char *host, size_t size, int *port);
/* For other transports: session_new makes a session without a connection (input/output
 * NULL, role "smtp" until the caller sets it); session_bind gives it config and plugins;
 * the caller enters it in the worker's table (worker_add_session) and drives the hooks. */
struct porter_session *session_new(struct worker *worker);
void session_bind(struct porter_session *s, const struct porter_config *config,
                  struct plugin_registry *plugins);
/* session_reset_transaction - end the transaction (reset_transaction hook, spool back); end
 * names why for its log line ("rset", "quit", ...; NULL: logged already) */
void session_reset_transaction(struct porter_session *s, const char *end);
/* session_open_message - spool file and data reader for the transaction; 0 or -1 (logged) */
int session_open_message(struct porter_session *s);
/* session_message_complete - finish the reader, check limits, move its headers into the
 * transaction; DATA_OK or the error to answer */
enum data_error session_message_complete(struct porter_session *s);
/* session_log_transaction - the one log line per transaction; end is "data" (code, enhanced,
 * text and decider give the reply), "mail" (MAIL refused) or why it ended without a message */
void session_log_transaction(struct porter_session *s, const char *end, int code,
                             const char *enhanced, const char *text, const char *decider);

/* session_drain - the worker stops: close an idle session now (421), a busy one when idle */
void session_drain(struct porter_session *s);
/* session_close - drop the connection now (after flushing what can be flushed) */
void session_close(struct porter_session *s, const char *reason);
/* session_finish_closing - stop reading, flush the replies queued, then close */
void session_finish_closing(struct porter_session *s, const char *reason);

/* The hook runner (plugin_host.c) calls back into the session through these. */
void session_reply(struct porter_session *s, int code, const char *enhanced, const char *text);
void session_log_verdict(struct porter_session *s, enum porter_hook hook, int rc);
/* session_release - free the session if it is closed and nothing refers to it */
void session_release(struct porter_session *s);
/* session_blocking_done - a blocking job ended (its count was taken when it started); the
 * transactions parked for it are freed with the last one */
void session_blocking_done(struct porter_session *s);
/* session_hold / session_unhold - keep the session alive across a call that may close it;
 * session_unhold frees it if it closed meanwhile (so do not use s after it) */
void session_hold(struct porter_session *s);
void session_unhold(struct porter_session *s);
/* session_timers_changed - the worker entered or left stress mode: arm the timer again */
void session_timers_changed(struct porter_session *s);
/* session_forget_client - XCLIENT: as at a disconnect, cancel what still runs for the client
 * so far (hook_chain_cancel: background lookups, late answers) and send the disconnect
 * notification; then forget its transaction, notes, HELO/EHLO, authentication, relay
 * permission and names */
void session_forget_client(struct porter_session *s);
/* session_connect_again - XCLIENT: the new client's connect hook and greeting */
void session_connect_again(struct porter_session *s);
/* session_set_ehlo - whether the client counts as having said EHLO (XCLIENT PROTO=) */
void session_set_ehlo(struct porter_session *s, bool ehlo);
/* session_input_resume - after a hook chain ends: go on reading pipelined commands */
void session_input_resume(struct porter_session *s);

#endif
