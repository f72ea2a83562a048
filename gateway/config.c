/*
 * config.c - read porter.conf (a table of settings) and the plugins file (see config.h).
 *
 * porter.conf is "name = value" lines; '#' at the start of a line or of a word after a space
 * starts a comment; blank lines are ignored; only settings marked repeatable (listen) may
 * appear twice. Every setting is a row of the settings table below; defaults are written as
 * they would be in the file and go through the same parsers as the file's values. Every error
 * of a file is collected as "FILE:LINE: message".
 *
 * Interface: config_load, config_parse, config_free, config_settings, config_path, the value
 * parsers shared with plugin_args.c, and the plugins-file reader (plugin_lines_*).
 * Fatal: out of memory; a default in the table that its own parser refuses (an internal
 * inconsistency: abort). Memory: the caller owns what config_load/config_parse return.
 * config_parse and plugin_lines_parse are pure; config_load and plugin_lines_load read files,
 * and config_load may resolve the system's hostname.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#ifndef PORTER_CORE
#define PORTER_CORE
#endif
#include <porter/plugin.h>

#include "cidr.h"
#include "memory.h"
#include "store.h"
#include "tls.h"

#ifndef PORTER_PKGLIBDIR
#define PORTER_PKGLIBDIR "/usr/local/lib/porter"
#endif

#define FIELD(name) offsetof(struct porter_config, name)
#define CONFIG_STRINGIFY_TEXT(x) #x
#define CONFIG_STRINGIFY(x) CONFIG_STRINGIFY_TEXT(x)
#define LISTEN_ROLES "smtp|submission|submissions|milter|policy"

static const char *config_check_hostname(const char *value);
static const char *config_check_account(const char *value);
static const char *config_check_relay_host(const char *value);
static const char *config_check_retry_schedule(const char *value);
static const char *config_check_dns_servers(const char *value);
static const char *config_check_log(const char *value);
static const char *config_check_address(const char *value);
static const char *config_check_cidr_list(const char *value);
static const char *config_check_store(const char *value);

static const int log_level_values[] = {
    PORTER_LOG_ERR, PORTER_LOG_WARNING, PORTER_LOG_NOTICE, PORTER_LOG_INFO, PORTER_LOG_DEBUG,
};

#define LOG_FACILITIES "mail|daemon|user|local0|local1|local2|local3|local4|local5|local6|local7"
static const int log_facility_values[] = {
    LOG_MAIL,   LOG_DAEMON, LOG_USER,   LOG_LOCAL0, LOG_LOCAL1, LOG_LOCAL2,
    LOG_LOCAL3, LOG_LOCAL4, LOG_LOCAL5, LOG_LOCAL6, LOG_LOCAL7,
};

/* The settings, in the order `porter check` and the docs show them. */
static const struct config_setting config_table[] = {
    {.name = "hostname", .type = CONFIG_STRING, .offset = FIELD(hostname),
     .check = config_check_hostname,
     .description = "our name in the greeting, EHLO, Received headers and logs "
                    "(default: the system's fully qualified name)"},
    {.name = "listen", .type = CONFIG_LISTEN, .offset = FIELD(listen),
     .default_value = "127.0.0.1:2525 smtp", .maximum = 64, .repeatable = true,
     .description = "ADDRESS:PORT [smtp|submission|submissions] [proxy_protocol], [v6]:PORT "
                    "for IPv6; repeat for more sockets (any listen line replaces the default); "
                    "proxy_protocol: connections start with a PROXY v1/v2 header from one of "
                    "proxy_sources"},
    {.name = "user", .type = CONFIG_STRING, .offset = FIELD(user),
     .check = config_check_account,
     .description = "user to run as after binding the sockets (default: do not change user)"},
    {.name = "group", .type = CONFIG_STRING, .offset = FIELD(group),
     .check = config_check_account,
     .description = "group to run as (default: the user's group)"},
    {.name = "workers", .type = CONFIG_INTEGER, .offset = FIELD(workers), .default_value = "0",
     .minimum = 0, .maximum = 1024,
     .description = "worker processes; 0 = one per CPU core"},
    {.name = "plugin_dir", .type = CONFIG_STRING, .offset = FIELD(plugin_dir),
     .default_value = PORTER_PKGLIBDIR,
     .description = "colon-separated directories where NAME.so plugins are looked up"},
    {.name = "plugins_file", .type = CONFIG_STRING, .offset = FIELD(plugins_file),
     .default_value = "plugins",
     .description = "the plugin list (relative paths are in the config directory)"},
    {.name = "spool_dir", .type = CONFIG_STRING, .offset = FIELD(spool_dir),
     .default_value = "/var/spool/porter",
     .description = "where message bodies are kept while a transaction is open"},
    {.name = "plugin_timeout", .type = CONFIG_SECONDS, .offset = FIELD(plugin_timeout),
     .default_value = "30", .minimum = 0.001, .maximum = 86400,
     .description = "how long a plugin may take to answer before the hook says DENYSOFT"},
    {.name = "max_message_size", .type = CONFIG_SIZE, .offset = FIELD(max_message_size),
     .default_value = "10240000", .minimum = 1024, .maximum = 1099511627776.0,
     .description = "largest message accepted, in bytes (announced with EHLO SIZE)"},
    {.name = "max_command_line", .type = CONFIG_INTEGER, .offset = FIELD(max_command_line),
     .default_value = "2048", .minimum = 512, .maximum = 65536,
     .description = "longest command line, CRLF included (RFC 5321 minimum: 512)"},
    {.name = "max_data_line", .type = CONFIG_INTEGER, .offset = FIELD(max_data_line),
     .default_value = "65536", .minimum = 1000, .maximum = 16777216,
     .description = "longest line of message data, CRLF included (RFC 5321 minimum: 1000)"},
    {.name = "max_header_size", .type = CONFIG_INTEGER, .offset = FIELD(max_header_size),
     .default_value = "1048576", .minimum = 1024, .maximum = 67108864,
     .description = "largest header block, in bytes"},
    {.name = "max_header_count", .type = CONFIG_INTEGER, .offset = FIELD(max_header_count),
     .default_value = "1000", .minimum = 1, .maximum = 100000,
     .description = "most header fields in a message"},
    {.name = "max_recipients", .type = CONFIG_INTEGER, .offset = FIELD(max_recipients),
     .default_value = "1000", .minimum = 100, .maximum = 1000000,
     .description = "most recipients per message (RFC 5321 minimum: 100)"},
    {.name = "max_recipients_overshoot", .type = CONFIG_INTEGER,
     .offset = FIELD(max_recipients_overshoot), .default_value = "1000", .minimum = 0,
     .maximum = 1000000,
     .description = "recipients refused with 452 4.5.3 past max_recipients in one transaction "
                    "before each further one counts towards max_errors"},
    {.name = "max_messages_per_session", .type = CONFIG_INTEGER,
     .offset = FIELD(max_messages_per_session), .default_value = "1000", .minimum = 1,
     .maximum = 1000000, .description = "most messages in one connection"},
    {.name = "max_errors", .type = CONFIG_INTEGER, .offset = FIELD(max_errors),
     .default_value = "20", .minimum = 1, .maximum = 100000,
     .description = "4xx/5xx replies in one connection before 421 and disconnect"},
    {.name = "max_unrecognized", .type = CONFIG_INTEGER, .offset = FIELD(max_unrecognized),
     .default_value = "10", .minimum = 1, .maximum = 100000,
     .description = "unknown commands in one connection before 421 and disconnect"},
    {.name = "max_junk_commands", .type = CONFIG_INTEGER, .offset = FIELD(max_junk_commands),
     .default_value = "100", .minimum = 1, .maximum = 1000000,
     .description = "NOOP, RSET, VRFY and HELP commands since the last accepted message before "
                    "each further one counts towards max_errors"},
    {.name = "max_connections", .type = CONFIG_INTEGER, .offset = FIELD(max_connections),
     .default_value = "10000", .minimum = 1, .maximum = 1000000,
     .description = "simultaneous connections per worker process (an idle session costs "
                    "about 3 KiB; each needs a file descriptor)"},
    {.name = "max_connections_per_ip", .type = CONFIG_INTEGER,
     .offset = FIELD(max_connections_per_ip), .default_value = "50", .minimum = 1,
     .maximum = 1000000, .description = "simultaneous connections from one client address"},
    {.name = "stress_threshold", .type = CONFIG_INTEGER, .offset = FIELD(stress_threshold),
     .default_value = "80", .minimum = 0, .maximum = 100,
     .description = "percent of a worker's max_connections in use from which it is in stress "
                    "mode (stress_greeting_timeout and stress_command_timeout apply) until the "
                    "use falls 10 points below; 0: never"},
    {.name = "stress_greeting_timeout", .type = CONFIG_SECONDS,
     .offset = FIELD(stress_greeting_timeout), .default_value = "10", .minimum = 0.001,
     .maximum = 86400, .description = "greeting_timeout in stress mode"},
    {.name = "stress_command_timeout", .type = CONFIG_SECONDS,
     .offset = FIELD(stress_command_timeout), .default_value = "10", .minimum = 0.001,
     .maximum = 86400, .description = "command_timeout in stress mode"},
    {.name = "greeting_timeout", .type = CONFIG_SECONDS, .offset = FIELD(greeting_timeout),
     .default_value = "60", .minimum = 0.001, .maximum = 86400,
     .description = "time a client has to send its first command"},
    {.name = "command_timeout", .type = CONFIG_SECONDS, .offset = FIELD(command_timeout),
     .default_value = "300", .minimum = 0.001, .maximum = 86400,
     .description = "time a client has to send the next command (RFC 5321 4.5.3.2: 5m)"},
    {.name = "data_timeout", .type = CONFIG_SECONDS, .offset = FIELD(data_timeout),
     .default_value = "600", .minimum = 0.001, .maximum = 86400,
     .description = "time a client has to send the next data block or the final dot"},
    {.name = "command_deadline", .type = CONFIG_SECONDS, .offset = FIELD(command_deadline),
     .default_value = "30", .minimum = 0, .maximum = 86400,
     .description = "time from the first byte of a command line to its CRLF, however the bytes "
                    "trickle in (a deadline, not a silence); 0: none"},
    {.name = "data_min_rate", .type = CONFIG_SIZE, .offset = FIELD(data_min_rate),
     .default_value = "500", .minimum = 1, .maximum = 1073741824,
     .description = "bytes per second a client must send in DATA and BDAT, measured over each "
                    "data_rate_window"},
    {.name = "data_rate_window", .type = CONFIG_SECONDS, .offset = FIELD(data_rate_window),
     .default_value = "30", .minimum = 0, .maximum = 86400,
     .description = "the window over which data_min_rate is measured; 0: no minimum rate"},
    {.name = "milter_listener_timeout", .type = CONFIG_SECONDS,
     .offset = FIELD(milter_listener_timeout), .default_value = "600", .minimum = 0.001,
     .maximum = 86400, .description = "milter listeners: time the MTA has to send the next "
                                      "milter command (it waits for its SMTP client meanwhile)"},
    {.name = "milter_progress_interval", .type = CONFIG_SECONDS,
     .offset = FIELD(milter_progress_interval), .default_value = "10", .minimum = 0.01,
     .maximum = 3600, .description = "milter listeners: while a hook waits, tell the MTA every "
                                      "this often that the answer is coming (SMFIR_PROGRESS; "
                                      "keep it below the MTA's milter command timeout)"},
    {.name = "policy_listener_timeout", .type = CONFIG_SECONDS,
     .offset = FIELD(policy_listener_timeout), .default_value = "600", .minimum = 0.001,
     .maximum = 86400, .description = "policy listeners: time Postfix has to send the next "
                                      "request on an open connection"},
    {.name = "session_timeout", .type = CONFIG_SECONDS, .offset = FIELD(session_timeout),
     .default_value = "3600", .minimum = 0.001, .maximum = 604800,
     .description = "longest connection"},
    {.name = "shutdown_timeout", .type = CONFIG_SECONDS, .offset = FIELD(shutdown_timeout),
     .default_value = "30", .minimum = 0, .maximum = 86400,
     .description = "time open connections get to finish on SIGTERM and after a reload"},
    {.name = "reject_unauth_pipelining", .type = CONFIG_BOOL,
     .offset = FIELD(reject_unauth_pipelining), .default_value = "yes",
     .description = "input sent where RFC 2920 allows none (after a command that ends a "
                    "pipelining group such as EHLO or DATA, any pipelining without EHLO, or "
                    "before the greeting unless a plugin judges that) gets 554 5.5.0 and the "
                    "connection closes"},
    {.name = "proxy_sources", .type = CONFIG_STRING, .offset = FIELD(proxy_sources),
     .check = config_check_cidr_list,
     .description = "CIDR list of the load balancers that may send a PROXY header on a "
                    "proxy_protocol listener; anyone else is refused before the greeting"},
    {.name = "proxy_timeout", .type = CONFIG_SECONDS, .offset = FIELD(proxy_timeout),
     .default_value = "5", .minimum = 0.001, .maximum = 3600,
     .description = "time a load balancer has to send the whole PROXY header"},
    {.name = "xclient_clients", .type = CONFIG_STRING, .offset = FIELD(xclient_clients),
     .check = config_check_cidr_list,
     .description = "CIDR list of the clients that may send XCLIENT (Postfix's semantics) "
                    "to present another client; nobody else is offered it"},
    {.name = "drain_grace", .type = CONFIG_SECONDS, .offset = FIELD(drain_grace),
     .default_value = "0", .minimum = 0, .maximum = 3600,
     .description = "on SIGTERM, keep accepting this long but answer new connections 421 "
                    "(health checks fail, so a load balancer moves traffic away) before "
                    "draining; on a proxy_protocol listener proxied clients are still served "
                    "and only the balancer's own checks (LOCAL, or naming the balancer) get 421"},
    {.name = "received_header", .type = CONFIG_BOOL, .offset = FIELD(received_header),
     .default_value = "yes", .description = "add a Received header to every message"},
    {.name = "bare_lf", .type = CONFIG_CHOICE, .offset = FIELD(bare_lf),
     .default_value = "reject", .choices = "reject|normalize",
     .description = "a line ending in LF without CR: refuse it, or read it as CRLF"},
    {.name = "tls_cert", .type = CONFIG_STRING, .offset = FIELD(tls_cert),
     .description = "certificate files (PEM: certificate, then intermediates), separated by "
                    "spaces; the client's SNI picks the one whose names match, the first is the "
                    "default (default: no TLS)"},
    {.name = "tls_key", .type = CONFIG_STRING, .offset = FIELD(tls_key),
     .description = "private key files (PEM, without passphrase), one per tls_cert file in the "
                    "same order (default: each key is in its certificate file)"},
    {.name = "tls_chain", .type = CONFIG_STRING, .offset = FIELD(tls_chain),
     .description = "intermediate certificates (PEM) sent after every certificate"},
    {.name = "tls_protocols", .type = CONFIG_STRING, .offset = FIELD(tls_protocols),
     .default_value = "TLSv1.2 TLSv1.3", .check = tls_protocols_check,
     .description = "TLS versions offered, a contiguous range of TLSv1, TLSv1.1, TLSv1.2, TLSv1.3"},
    {.name = "tls_ciphers", .type = CONFIG_STRING, .offset = FIELD(tls_ciphers),
     .default_value = "HIGH:!aNULL:!MD5:!RC4:!3DES",
     .description = "OpenSSL cipher list for TLS 1.2 and older"},
    {.name = "tls_ciphersuites", .type = CONFIG_STRING, .offset = FIELD(tls_ciphersuites),
     .description = "TLS 1.3 cipher suites, colon-separated (default: OpenSSL's)"},
    {.name = "tls_ca_file", .type = CONFIG_STRING, .offset = FIELD(tls_ca_file),
     .description = "CA certificates (PEM) that client certificates are verified against"},
    {.name = "tls_verify_client", .type = CONFIG_CHOICE, .offset = FIELD(tls_verify_client),
     .default_value = "no", .choices = "no|ask|require",
     .description = "client certificates: not asked for; asked for (checked against "
                    "tls_ca_file, the session goes on without one); or required and verified"},
    {.name = "tls_relay_clientcerts", .type = CONFIG_STRING, .offset = FIELD(tls_relay_clientcerts),
     .description = "file of SHA-256 client certificate fingerprints, one per line: those "
                    "clients may relay (needs tls_verify_client = ask or require)"},
    {.name = "tls_session_cache_size", .type = CONFIG_INTEGER,
     .offset = FIELD(tls_session_cache_size), .default_value = "20480", .minimum = 0,
     .maximum = 10000000, .description = "TLS sessions each worker keeps for resumption by "
                                         "session id; 0 turns the cache off"},
    {.name = "tls_session_tickets", .type = CONFIG_BOOL, .offset = FIELD(tls_session_tickets),
     .default_value = "yes", .description = "resume TLS sessions with tickets (the keys are "
                                            "shared by the workers and new at every reload)"},
    {.name = "tls_session_timeout", .type = CONFIG_SECONDS, .offset = FIELD(tls_session_timeout),
     .default_value = "1h", .minimum = 1, .maximum = 604800,
     .description = "how long a TLS session may be resumed"},
    {.name = "auth_over_plaintext", .type = CONFIG_BOOL, .offset = FIELD(auth_over_plaintext),
     .default_value = "no", .description = "offer and accept AUTH without TLS (passwords in "
                                           "clear text: trusted networks only)"},
    {.name = "submission_requires_tls", .type = CONFIG_BOOL,
     .offset = FIELD(submission_requires_tls), .default_value = "yes",
     .description = "on submission listeners, STARTTLS must come before AUTH and MAIL"},
    {.name = "auth_max_failures", .type = CONFIG_INTEGER, .offset = FIELD(auth_max_failures),
     .default_value = "3", .minimum = 1, .maximum = 1000,
     .description = "failed AUTH attempts in one connection before 421 and disconnect"},
    {.name = "auth_failure_delay", .type = CONFIG_SECONDS, .offset = FIELD(auth_failure_delay),
     .default_value = "1", .minimum = 0, .maximum = 60,
     .description = "wait before answering a failed AUTH; doubles with each further failure "
                    "(at most 60 seconds)"},
    {.name = "received_header_auth", .type = CONFIG_BOOL, .offset = FIELD(received_header_auth),
     .default_value = "no",
     .description = "name the authenticated user in the Received header"},
    {.name = "log_level", .type = CONFIG_CHOICE, .offset = FIELD(log_level),
     .default_value = "info", .choices = "err|warning|notice|info|debug",
     .choice_values = log_level_values, .description = "least important messages logged"},
    {.name = "log", .type = CONFIG_STRING, .offset = FIELD(log), .check = config_check_log,
     .description = "where log lines go: syslog, stderr, or file:PATH (reopened on SIGUSR1, "
                    "for logrotate) (default: syslog; stderr for porter run -f)"},
    {.name = "log_facility", .type = CONFIG_CHOICE, .offset = FIELD(log_facility),
     .default_value = "mail", .choices = LOG_FACILITIES, .choice_values = log_facility_values,
     .description = "the syslog facility of log = syslog"},
    {.name = "log_format", .type = CONFIG_CHOICE, .offset = FIELD(log_format),
     .default_value = "text", .choices = "text|json",
     .description = "log lines as key=value text, or one JSON object per line with the same keys"},
    {.name = "pid_file", .type = CONFIG_STRING, .offset = FIELD(pid_file),
     .description = "file the master writes its process id to (default: porter.pid in "
                    "spool_dir)"},
    {.name = "metrics_listen", .type = CONFIG_STRING, .offset = FIELD(metrics_listen),
     .check = config_check_address,
     .description = "ADDRESS:PORT of the HTTP listener for Prometheus (/metrics) and the "
                    "live session view (/top), like 127.0.0.1:9125 (default: none)"},
    {.name = "dns_servers", .type = CONFIG_STRING, .offset = FIELD(dns_servers),
     .check = config_check_dns_servers,
     .description = "DNS servers for every check (SPF, DKIM, DMARC, plugins): IP[:PORT] words, "
                    "[IPV6]:PORT with a port (default: the nameservers of /etc/resolv.conf)"},
    {.name = "dns_timeout", .type = CONFIG_SECONDS, .offset = FIELD(dns_timeout),
     .default_value = "3", .minimum = 0.01, .maximum = 60,
     .description = "how long one DNS try waits for its server's answer"},
    {.name = "dns_retries", .type = CONFIG_INTEGER, .offset = FIELD(dns_retries),
     .default_value = "2", .minimum = 0, .maximum = 10,
     .description = "more rounds over the DNS servers after the first, before a lookup fails"},
    {.name = "dns_cache_size", .type = CONFIG_INTEGER, .offset = FIELD(dns_cache_size),
     .default_value = "10000", .minimum = 0, .maximum = 10000000,
     .description = "DNS answers cached per worker for their TTL; 0 turns the cache off"},
    {.name = "store", .type = CONFIG_STRING, .offset = FIELD(store), .default_value = "lmdb",
     .check = config_check_store,
     .description = "where plugins keep shared state (greylist, ratelimit): lmdb (in spool_dir, "
                    "shared by this daemon's workers), redis://HOST:PORT/DB or "
                    "redis+unix:///PATH (shared by every gateway that names it)"},
    {.name = "store_timeout", .type = CONFIG_SECONDS, .offset = FIELD(store_timeout),
     .default_value = "2", .minimum = 0.01, .maximum = 60,
     .description = "how long a Redis store request may take before it fails (the plugin's "
                    "on_store_error= decides)"},
    {.name = "store_size", .type = CONFIG_SIZE, .offset = FIELD(store_size),
     .default_value = "268435456", .minimum = 1048576, .maximum = 1099511627776.0,
     .description = "the largest the LMDB store may grow, bytes (address space reserved, not "
                    "memory)"},
    {.name = "store_sweep_interval", .type = CONFIG_SECONDS, .offset = FIELD(store_sweep_interval),
     .default_value = "60", .minimum = 0.1, .maximum = 86400,
     .description = "how often each worker removes expired keys from the LMDB store"},
    {.name = "delivery", .type = CONFIG_CHOICE, .offset = FIELD(delivery),
     .default_value = "auto", .choices = "auto|yes|no",
     .description = "run the spool's delivery process: auto = when queue_spool is in the "
                    "plugin chain"},
    {.name = "queue_dir", .type = CONFIG_STRING, .offset = FIELD(queue_dir),
     .default_value = "/var/spool/porter/queue",
     .description = "the spool queue of queue_spool and the delivery process (tmp/, active/, "
                    "hold/)"},
    {.name = "relay_host", .type = CONFIG_STRING, .offset = FIELD(relay_host),
     .check = config_check_relay_host,
     .description = "where the delivery process relays queued mail: HOST:PORT, [IPV6]:PORT or "
                    "unix:/PATH (required when the delivery process runs)"},
    {.name = "relay_protocol", .type = CONFIG_CHOICE, .offset = FIELD(relay_protocol),
     .default_value = "smtp", .choices = "smtp|lmtp",
     .description = "the delivery process talks SMTP or LMTP to relay_host"},
    {.name = "relay_tls", .type = CONFIG_CHOICE, .offset = FIELD(relay_tls),
     .default_value = "may", .choices = "none|may|encrypt|verify",
     .description = "STARTTLS to relay_host: never, when offered, required, or required with a "
                    "verified certificate"},
    {.name = "relay_tls_ca_file", .type = CONFIG_STRING, .offset = FIELD(relay_tls_ca_file),
     .description = "CA certificates (PEM) for relay_tls = verify (default: the system's)"},
    {.name = "relay_tls_server_name", .type = CONFIG_STRING,
     .offset = FIELD(relay_tls_server_name),
     .description = "the name relay_host's certificate must carry (default: relay_host's host)"},
    {.name = "relay_auth_user", .type = CONFIG_STRING, .offset = FIELD(relay_auth_user),
     .description = "AUTH PLAIN user at relay_host (default: no AUTH)"},
    {.name = "relay_auth_password_file", .type = CONFIG_STRING,
     .offset = FIELD(relay_auth_password_file),
     .description = "file whose first line is relay_auth_user's password"},
    {.name = "relay_identity", .type = CONFIG_CHOICE, .offset = FIELD(relay_identity),
     .default_value = "auto", .choices = "auto|xforward|xclient|none",
     .description = "pass the original client to relay_host with XFORWARD or XCLIENT when it "
                    "offers them (auto: XFORWARD, else XCLIENT, else the X-Porter-Client header)"},
    {.name = "relay_connect_timeout", .type = CONFIG_SECONDS,
     .offset = FIELD(relay_connect_timeout), .default_value = "30", .minimum = 0.1,
     .maximum = 3600, .description = "delivery: connecting to relay_host and its greeting"},
    {.name = "relay_command_timeout", .type = CONFIG_SECONDS,
     .offset = FIELD(relay_command_timeout), .default_value = "300", .minimum = 0.1,
     .maximum = 3600, .description = "delivery: each reply of relay_host, and each step of "
                                     "sending the message"},
    {.name = "relay_data_timeout", .type = CONFIG_SECONDS, .offset = FIELD(relay_data_timeout),
     .default_value = "600", .minimum = 0.1, .maximum = 3600,
     .description = "delivery: relay_host's final reply after the message"},
    {.name = "retry_schedule", .type = CONFIG_STRING, .offset = FIELD(retry_schedule),
     .default_value = "1m 5m 15m 1h 4h", .check = config_check_retry_schedule,
     .description = "waits between delivery attempts; the last one repeats until "
                    "max_queue_lifetime"},
    {.name = "max_queue_lifetime", .type = CONFIG_SECONDS, .offset = FIELD(max_queue_lifetime),
     .default_value = "5d", .minimum = 1, .maximum = 31536000,
     .description = "after this long in the queue a message is returned to its sender"},
    {.name = "delay_warning_time", .type = CONFIG_SECONDS, .offset = FIELD(delay_warning_time),
     .default_value = "0", .minimum = 0, .maximum = 31536000,
     .description = "send one delay notice after a message waited this long (0: never)"},
    {.name = "delivery_concurrency", .type = CONFIG_INTEGER,
     .offset = FIELD(delivery_concurrency), .default_value = "20", .minimum = 1,
     .maximum = 1000, .description = "messages the delivery process relays at once"},
    {.name = "dsn_return_limit", .type = CONFIG_SIZE, .offset = FIELD(dsn_return_limit),
     .default_value = "100k", .minimum = 0, .maximum = 1073741824.0,
     .description = "a bounce returns the whole message only up to this size, else its headers"},
};

#define CONFIG_TABLE_COUNT (sizeof config_table / sizeof config_table[0])

static const char *const config_type_names[CONFIG_TYPE_COUNT] = {
    "string", "integer", "size", "seconds", "bool", "choice", "listen",
};

static const char *const config_type_syntaxes[CONFIG_TYPE_COUNT] = {
    "text without control characters",
    "an integer (digits, optionally followed by k, m or g)",
    "a size (digits, optionally followed by k, m or g)",
    "a duration (like 30, 30s, 5m, 2h, 1d or 0.5)",
    "yes or no (yes, no, true, false, on, off, 1, 0)",
    "one of the listed words",
    "ADDRESS:PORT [ROLE]",
};

static const char *const config_bare_lf_names[CONFIG_BARE_LF_COUNT] = {"reject", "normalize"};

const struct config_setting *config_settings(size_t *count)
{
    *count = CONFIG_TABLE_COUNT;
    return config_table;
}

const char *config_type_name(int type)
{
    return type >= 0 && type < CONFIG_TYPE_COUNT ? config_type_names[type] : "invalid";
}

const char *config_type_syntax(int type)
{
    return type >= 0 && type < CONFIG_TYPE_COUNT ? config_type_syntaxes[type] : "invalid";
}

static const char *const config_delivery_names[CONFIG_DELIVERY_COUNT] = {"auto", "yes", "no"};

const char *config_delivery_name(int delivery)
{
    return delivery >= 0 && delivery < CONFIG_DELIVERY_COUNT ? config_delivery_names[delivery]
                                                             : "invalid";
}

const char *config_retry_schedule_parse(const char *text, double *steps, size_t max, size_t *count)
{
    size_t found = 0;
    const char *p = text;
    while (*p != '\0') {
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0')
            break;
        const char *start = p;
        while (*p != '\0' && *p != ' ' && *p != '\t')
            p++;
        char word[32];
        if ((size_t)(p - start) >= sizeof word)
            return "has a step that is not a duration";
        memcpy(word, start, (size_t)(p - start));
        word[p - start] = '\0';
        double seconds = 0;
        if (config_parse_seconds(word, &seconds) != 0)
            return "has a step that is not a duration (like 30s, 5m, 1h)";
        if (seconds <= 0)
            return "has a step of 0";
        if (found >= max)
            return "has too many steps";
        if (steps != NULL)
            steps[found] = seconds;
        found++;
    }
    if (found == 0)
        return "has no step";
    *count = found;
    return NULL;
}

static const char *config_check_retry_schedule(const char *value)
{
    size_t count = 0;
    return config_retry_schedule_parse(value, NULL, CONFIG_RETRY_STEPS_MAX, &count);
}

/* config_check_relay_host - HOST:PORT, [IPV6]:PORT or unix:/PATH */
static const char *config_check_relay_host(const char *value)
{
    if (strncmp(value, "unix:", 5) == 0)
        return value[5] == '/' && strlen(value) < 100 ? NULL : "is not unix:/ABSOLUTE/PATH";
    const char *colon;
    if (value[0] == '[') {
        const char *close = strchr(value, ']');
        if (close == NULL || close == value + 1 || close[1] != ':')
            return "is not [IPV6]:PORT";
        colon = close + 1;
    } else {
        colon = strrchr(value, ':');
        if (colon == NULL || colon == value || memchr(value, ':', (size_t)(colon - value)) != NULL)
            return "is not HOST:PORT (write IPv6 addresses as [IPV6]:PORT)";
    }
    const char *digits = colon + 1;
    size_t length = strlen(digits);
    if (length == 0 || length > 5 || strspn(digits, "0123456789") != length ||
        strtol(digits, NULL, 10) < 1 || strtol(digits, NULL, 10) > 65535)
        return "has a bad port";
    return NULL;
}

const char *config_bare_lf_name(int bare_lf)
{
    return bare_lf >= 0 && bare_lf < CONFIG_BARE_LF_COUNT ? config_bare_lf_names[bare_lf]
                                                          : "invalid";
}

/* ---- errors ---- */

void config_error_add(struct config_error_list *errors, const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    int length = vsnprintf(NULL, 0, format, ap);
    va_end(ap);
    char *message = xmalloc(length > 0 ? (size_t)length + 1 : 1);
    message[0] = '\0';
    if (length > 0) {
        va_start(ap, format);
        vsnprintf(message, (size_t)length + 1, format, ap);
        va_end(ap);
    }
    errors->messages = xrealloc(errors->messages, (errors->count + 1) * sizeof *errors->messages);
    errors->messages[errors->count++] = message;
}

void config_errors_clear(struct config_error_list *errors)
{
    if (errors == NULL)
        return;
    for (size_t i = 0; i < errors->count; i++)
        free(errors->messages[i]);
    free(errors->messages);
    errors->messages = NULL;
    errors->count = 0;
}

/* ---- shared value parsers ---- */

static bool config_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

int config_parse_integer(const char *text, long long *value)
{
    const char *p = text;
    bool negative = false;
    if (*p == '-') {
        negative = true;
        p++;
    }
    if (!config_is_digit(*p))
        return -1;
    unsigned long long number = 0;
    for (; config_is_digit(*p); p++) {
        unsigned digit = (unsigned)(*p - '0');
        if (number > (ULLONG_MAX - digit) / 10)
            return -1;
        number = number * 10 + digit;
    }
    unsigned long long multiplier = 1;
    switch (*p) {
    case 'k': case 'K': multiplier = 1024ULL; p++; break;
    case 'm': case 'M': multiplier = 1024ULL * 1024; p++; break;
    case 'g': case 'G': multiplier = 1024ULL * 1024 * 1024; p++; break;
    default: break;
    }
    if (*p != '\0' || number > ULLONG_MAX / multiplier)
        return -1;
    number *= multiplier;
    if (negative) {
        if (number > (unsigned long long)LLONG_MAX + 1)
            return -1;
        *value = number == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN : -(long long)number;
    } else {
        if (number > (unsigned long long)LLONG_MAX)
            return -1;
        *value = (long long)number;
    }
    return 0;
}

int config_parse_seconds(const char *text, double *value)
{
    const char *p = text;
    unsigned long long whole = 0, fraction = 0, fraction_scale = 1;
    int digits = 0;
    for (; config_is_digit(*p); p++) {
        if (++digits > 15)
            return -1;
        whole = whole * 10 + (unsigned)(*p - '0');
    }
    if (digits == 0)
        return -1;
    if (*p == '.') {
        p++;
        digits = 0;
        for (; config_is_digit(*p); p++) {
            if (++digits > 9)
                return -1;
            fraction = fraction * 10 + (unsigned)(*p - '0');
            fraction_scale *= 10;
        }
        if (digits == 0)
            return -1;
    }
    double unit = 1;
    switch (*p) {
    case 's': case 'S': unit = 1; p++; break;
    case 'm': case 'M': unit = 60; p++; break;
    case 'h': case 'H': unit = 3600; p++; break;
    case 'd': case 'D': unit = 86400; p++; break;
    default: break;
    }
    if (*p != '\0')
        return -1;
    *value = ((double)whole + (double)fraction / (double)fraction_scale) * unit;
    return 0;
}

int config_parse_bool(const char *text, bool *value)
{
    static const struct {
        const char *word;
        bool value;
    } words[] = {
        {"yes", true}, {"no", false}, {"true", true}, {"false", false},
        {"on", true},  {"off", false}, {"1", true},    {"0", false},
    };
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        if (strcasecmp(text, words[i].word) == 0) {
            *value = words[i].value;
            return 0;
        }
    }
    return -1;
}

int config_parse_choice(const char *text, const char *choices, int *index)
{
    if (choices == NULL || *text == '\0')
        return -1;
    size_t text_length = strlen(text);
    int i = 0;
    for (const char *word = choices;; i++) {
        const char *bar = strchr(word, '|');
        size_t length = bar != NULL ? (size_t)(bar - word) : strlen(word);
        if (length == text_length && strncasecmp(word, text, length) == 0) {
            *index = i;
            return 0;
        }
        if (bar == NULL)
            return -1;
        word = bar + 1;
    }
}

char *config_choices_list(const char *choices)
{
    if (choices == NULL)
        return xstrdup("");
    size_t bars = 0;
    for (const char *p = choices; *p != '\0'; p++)
        bars += *p == '|';
    char *list = xmalloc(strlen(choices) + bars + 1);
    char *out = list;
    for (const char *p = choices; *p != '\0'; p++) {
        if (*p == '|') {
            *out++ = ',';
            *out++ = ' ';
        } else {
            *out++ = *p;
        }
    }
    *out = '\0';
    return list;
}

char *config_quote(const char *text)
{
    enum { QUOTE_INPUT_MAX = 80 };
    char *out = xmalloc(QUOTE_INPUT_MAX * 4 + 8);
    size_t n = 0;
    out[n++] = '\'';
    size_t i = 0;
    for (; text[i] != '\0' && i < QUOTE_INPUT_MAX; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c >= 0x20 && c < 0x7f) {
            out[n++] = (char)c;
        } else {
            static const char hex[] = "0123456789abcdef";
            out[n++] = '\\';
            out[n++] = 'x';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 15];
        }
    }
    if (text[i] != '\0') {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n++] = '\'';
    out[n] = '\0';
    return out;
}

/* ---- paths and files ---- */

char *config_path_resolve(const char *directory, const char *path)
{
    if (path[0] == '/' || directory == NULL || directory[0] == '\0')
        return xstrdup(path);
    size_t length = strlen(directory);
    return xasprintf("%s%s%s", directory, directory[length - 1] == '/' ? "" : "/", path);
}

char *config_path(const struct porter_config *c, const char *path)
{
    return config_path_resolve(c != NULL ? c->directory : NULL, path);
}

int config_read_file(const char *path, size_t limit, char **text, size_t *length, char **error)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *error = xasprintf("%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        *error = xasprintf("%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        *error = xasprintf("%s: not a regular file", path);
        close(fd);
        return -1;
    }
    size_t capacity = 4096, used = 0;
    char *buffer = xmalloc(capacity);
    for (;;) {
        if (used == capacity) {
            if (capacity > limit) {
                *error = xasprintf("%s: larger than %zu bytes", path, limit);
                free(buffer);
                close(fd);
                return -1;
            }
            capacity *= 2;
            buffer = xrealloc(buffer, capacity);
        }
        ssize_t got = read(fd, buffer + used, capacity - used);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            *error = xasprintf("%s: cannot read: %s", path, strerror(errno));
            free(buffer);
            close(fd);
            return -1;
        }
        if (got == 0)
            break;
        used += (size_t)got;
    }
    close(fd);
    if (used > limit) {
        *error = xasprintf("%s: larger than %zu bytes", path, limit);
        free(buffer);
        return -1;
    }
    buffer = xrealloc(buffer, used + 1);
    buffer[used] = '\0';
    *text = buffer;
    *length = used;
    return 0;
}

/* ---- checks of string settings ---- */

/* config_check_hostname - a domain name: dot-separated labels of letters, digits and '-' */
static const char *config_check_hostname(const char *value)
{
    size_t length = strlen(value);
    if (length == 0 || length > 253)
        return "is not a domain name (1 to 253 characters)";
    size_t label = 0;
    for (const char *p = value; *p != '\0'; p++) {
        char c = *p;
        if (c == '.') {
            if (label == 0)
                return "is not a domain name (empty label)";
            label = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || config_is_digit(c) ||
                   c == '-') {
            if (++label > 63)
                return "is not a domain name (a label is longer than 63 characters)";
        } else {
            return "is not a domain name (use letters, digits, '-' and '.')";
        }
    }
    if (label == 0)
        return "is not a domain name (empty label)";
    return NULL;
}

/* config_check_account - a user or group name (or number) */
static const char *config_check_account(const char *value)
{
    size_t length = strlen(value);
    if (length == 0 || length > 32 || value[0] == '-')
        return "is not a user or group name";
    for (const char *p = value; *p != '\0'; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || config_is_digit(c) ||
              c == '_' || c == '-' || c == '.'))
            return "is not a user or group name (use letters, digits, '_', '-' and '.')";
    }
    return NULL;
}

/* ---- dns_servers ---- */

/* config_dns_server_parse - one IPV4[:PORT], IPV6 or [IPV6][:PORT] word; NULL or why not */
static const char *config_dns_server_parse(const char *word, struct sockaddr_storage *out)
{
    char host[64];
    const char *port_text = NULL;
    size_t length = strlen(word);
    int family = AF_INET;
    if (word[0] == '[') {
        const char *close = strchr(word, ']');
        if (close == NULL || (close[1] != '\0' && close[1] != ':'))
            return "has a bad [IPV6]:PORT";
        length = (size_t)(close - word - 1);
        word++;
        port_text = close[1] == ':' ? close + 2 : NULL;
        family = AF_INET6;
    } else if (strchr(word, ':') != NULL && strchr(word, ':') != strrchr(word, ':')) {
        family = AF_INET6; /* a bare IPv6 address: no port */
    } else if (strchr(word, ':') != NULL) {
        port_text = strchr(word, ':') + 1;
        length = (size_t)(port_text - 1 - word);
    }
    if (length == 0 || length >= sizeof host)
        return "has a bad address";
    memcpy(host, word, length);
    host[length] = '\0';
    unsigned long port = 53;
    if (port_text != NULL) {
        size_t digits = 0;
        port = 0;
        for (; config_is_digit(port_text[digits]) && digits < 6; digits++)
            port = port * 10 + (unsigned)(port_text[digits] - '0');
        if (digits == 0 || port_text[digits] != '\0' || port < 1 || port > 65535)
            return "has a bad port (want 1 to 65535)";
    }
    struct sockaddr_storage address;
    memset(&address, 0, sizeof address);
    if (family == AF_INET) {
        struct sockaddr_in *v4 = (struct sockaddr_in *)(void *)&address;
        if (inet_pton(AF_INET, host, &v4->sin_addr) != 1)
            return "has a bad IPv4 address (a host name is not allowed here)";
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
    } else {
        struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)(void *)&address;
        if (inet_pton(AF_INET6, host, &v6->sin6_addr) != 1)
            return "has a bad IPv6 address";
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
    }
    if (out != NULL)
        *out = address;
    return NULL;
}

const char *config_dns_servers_parse(const char *text, struct sockaddr_storage *servers,
                                     size_t max, size_t *count)
{
    size_t found = 0;
    const char *p = text;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (*p == '\0')
            break;
        size_t length = strcspn(p, " \t,");
        char word[80];
        if (length >= sizeof word)
            return "has an address that is too long";
        memcpy(word, p, length);
        word[length] = '\0';
        p += length;
        if (found >= max)
            return "lists too many servers (at most " CONFIG_STRINGIFY(CONFIG_DNS_SERVERS_MAX) ")";
        const char *reason = config_dns_server_parse(word, servers != NULL ? &servers[found] : NULL);
        if (reason != NULL)
            return reason;
        found++;
    }
    if (found == 0)
        return "lists no server";
    *count = found;
    return NULL;
}

/* config_check_dns_servers - the dns_servers setting's check */
static const char *config_check_dns_servers(const char *value)
{
    size_t count;
    return config_dns_servers_parse(value, NULL, CONFIG_DNS_SERVERS_MAX, &count);
}

/* config_check_cidr_list - proxy_sources and xclient_clients: a CIDR list (cidr.h) */
static const char *config_check_cidr_list(const char *value)
{
    char *error = NULL;
    porter_cidr_list *list = cidr_parse(value, &error);
    cidr_free(list);
    if (error == NULL)
        return NULL;
    /* the check's contract is a static string; cidr's message names the entry: kept per
     * thread, as config_check_store does */
    static __thread char reason[256];
    snprintf(reason, sizeof reason, "is not a CIDR list: %s", error);
    free(error);
    return reason;
}

/* config_check_store - the store setting's check (store.c parses it) */
static const char *config_check_store(const char *value)
{
    static __thread char error[300];
    struct store_address address;
    return store_address_parse(value, &address, error, sizeof error) == 0 ? NULL : error;
}

/* ---- listen ---- */

struct listen_address {
    int family;
    unsigned char bytes[16];
    unsigned port;
};

/* listen_unix_check - "unix:/ABSOLUTE/PATH" for the milter and policy roles (the MTA's local
 * sockets); NULL, or why it is bad (static) */
static const char *listen_unix_check(const char *text, const char *role)
{
    if (role == NULL || (strcmp(role, "milter") != 0 && strcmp(role, "policy") != 0))
        return "is a unix socket: only the milter and policy roles listen on one";
    if (text[5] != '/' || strlen(text + 5) >= 100)
        return "is not unix:/ABSOLUTE/PATH (shorter than 100 bytes)";
    return NULL;
}

/* listen_address_parse - "a.b.c.d:port" or "[v6]:port"; NULL, or why it is bad (static) */
static const char *listen_address_parse(const char *text, struct listen_address *out)
{
    char host[64];
    const char *port_text;
    memset(out, 0, sizeof *out);
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL || close[1] != ':')
            return "is not [IPV6]:PORT";
        size_t length = (size_t)(close - text - 1);
        if (length == 0 || length >= sizeof host)
            return "has a bad IPv6 address";
        memcpy(host, text + 1, length);
        host[length] = '\0';
        if (inet_pton(AF_INET6, host, out->bytes) != 1)
            return "has a bad IPv6 address";
        out->family = AF_INET6;
        port_text = close + 2;
    } else {
        const char *colon = strrchr(text, ':');
        if (colon == NULL)
            return "is not ADDRESS:PORT (like 127.0.0.1:25 or [::1]:25)";
        if (memchr(text, ':', (size_t)(colon - text)) != NULL)
            return "has an IPv6 address without brackets (write [::1]:25)";
        size_t length = (size_t)(colon - text);
        if (length == 0 || length >= sizeof host)
            return "has a bad IPv4 address";
        memcpy(host, text, length);
        host[length] = '\0';
        if (inet_pton(AF_INET, host, out->bytes) != 1)
            return "has a bad IPv4 address (a host name is not allowed here)";
        out->family = AF_INET;
        port_text = colon + 1;
    }
    unsigned long port = 0;
    size_t digits = 0;
    for (; config_is_digit(port_text[digits]) && digits < 6; digits++)
        port = port * 10 + (unsigned)(port_text[digits] - '0');
    if (digits == 0 || port_text[digits] != '\0' || port < 1 || port > 65535)
        return "has a bad port (want 1 to 65535)";
    out->port = (unsigned)port;
    return NULL;
}

/* config_check_address - ADDRESS:PORT with an IP literal (metrics_listen) */
static const char *config_check_address(const char *value)
{
    struct listen_address address;
    return listen_address_parse(value, &address);
}

/* config_check_log - syslog, stderr or file:PATH */
static const char *config_check_log(const char *value)
{
    if (strcmp(value, "syslog") == 0 || strcmp(value, "stderr") == 0)
        return NULL;
    if (strncmp(value, "file:", 5) == 0 && value[5] != '\0')
        return NULL;
    return "is not syslog, stderr or file:PATH";
}

/* The most words of one listen line: the address, the role and options. */
#define LISTEN_WORDS_MAX 8

/* config_set_listen - add one "ADDRESS [ROLE] [OPTION...]" listener; NULL or an error message */
static char *config_set_listen(struct porter_config *c, const struct config_setting *s,
                               const char *value)
{
    char *words[LISTEN_WORDS_MAX] = {NULL};
    size_t count = 0;
    const char *p = value;
    char *message = NULL;
    bool proxy_protocol = false;
    while (*p != '\0') {
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0')
            break;
        const char *start = p;
        while (*p != '\0' && *p != ' ' && *p != '\t')
            p++;
        if (count == LISTEN_WORDS_MAX) {
            message = xasprintf("%s: want ADDRESS:PORT [ROLE] [proxy_protocol], got more words",
                                s->name);
            goto done;
        }
        words[count++] = xstrndup(start, (size_t)(p - start));
    }
    struct listen_address address;
    const char *reason = strncmp(words[0], "unix:", 5) == 0 ? listen_unix_check(words[0], words[1])
                                                           : listen_address_parse(words[0], &address);
    if (reason != NULL) {
        char *quoted = config_quote(words[0]);
        message = xasprintf("%s: %s %s", s->name, quoted, reason);
        free(quoted);
        goto done;
    }
    int role = 0;
    if (count >= 2 && config_parse_choice(words[1], LISTEN_ROLES, &role) != 0) {
        char *quoted = config_quote(words[1]);
        char *list = config_choices_list(LISTEN_ROLES);
        message = xasprintf("%s: role %s is not one of %s", s->name, quoted, list);
        free(quoted);
        free(list);
        goto done;
    }
    for (size_t i = 2; i < count; i++) {
        if (strcmp(words[i], "proxy_protocol") == 0 && !proxy_protocol) {
            proxy_protocol = true;
            continue;
        }
        char *quoted = config_quote(words[i]);
        message = xasprintf("%s: option %s is not proxy_protocol (or is given twice)", s->name,
                            quoted);
        free(quoted);
        goto done;
    }
    for (size_t i = 0; i < c->listen_count; i++) {
        struct listen_address other;
        if (strncmp(words[0], "unix:", 5) == 0) {
            if (strcmp(words[0], c->listen[i].address) == 0) {
                char *quoted = config_quote(words[0]);
                message = xasprintf("%s: %s is listed twice", s->name, quoted);
                free(quoted);
                goto done;
            }
            continue;
        }
        if (listen_address_parse(c->listen[i].address, &other) == NULL &&
            other.family == address.family && other.port == address.port &&
            memcmp(other.bytes, address.bytes, sizeof other.bytes) == 0) {
            char *quoted = config_quote(words[0]);
            message = xasprintf("%s: %s is listed twice", s->name, quoted);
            free(quoted);
            goto done;
        }
    }
    if ((double)c->listen_count >= s->maximum) {
        message = xasprintf("%s: more than %.0f listen lines", s->name, s->maximum);
        goto done;
    }
    static const char *const role_names[] = {"smtp", "submission", "submissions", "milter",
                                             "policy"};
    c->listen = xrealloc(c->listen, (c->listen_count + 1) * sizeof *c->listen);
    c->listen[c->listen_count].address = words[0];
    c->listen[c->listen_count].role = xstrdup(role_names[role]);
    c->listen[c->listen_count].proxy_protocol = proxy_protocol;
    c->listen_count++;
    words[0] = NULL;
done:
    for (size_t i = 0; i < LISTEN_WORDS_MAX; i++)
        free(words[i]);
    return message;
}

/* ---- setting one value ---- */

/* config_set - parse value for setting s into c; NULL, or an error message (caller frees) */
static char *config_set(struct porter_config *c, const struct config_setting *s, const char *value)
{
    char *field = (char *)c + s->offset;
    char *quoted = config_quote(value);
    char *message = NULL;
    switch (s->type) {
    case CONFIG_STRING: {
        const char *reason = s->check != NULL ? s->check(value) : NULL;
        if (reason != NULL) {
            message = xasprintf("%s: %s %s", s->name, quoted, reason);
            break;
        }
        char **target = (char **)(void *)field;
        free(*target);
        *target = xstrdup(value);
        break;
    }
    case CONFIG_INTEGER:
    case CONFIG_SIZE: {
        long long number;
        if (config_parse_integer(value, &number) != 0) {
            message = xasprintf("%s: %s is not %s", s->name, quoted, config_type_syntax(s->type));
        } else if ((double)number < s->minimum || (double)number > s->maximum) {
            message = xasprintf("%s: %s is out of range (%.0f to %.0f)", s->name, quoted,
                                s->minimum, s->maximum);
        } else if (s->type == CONFIG_INTEGER) {
            *(long *)(void *)field = (long)number;
        } else {
            *(unsigned long long *)(void *)field = (unsigned long long)number;
        }
        break;
    }
    case CONFIG_SECONDS: {
        double seconds;
        if (config_parse_seconds(value, &seconds) != 0)
            message = xasprintf("%s: %s is not %s", s->name, quoted, config_type_syntax(s->type));
        else if (seconds < s->minimum || seconds > s->maximum)
            message = xasprintf("%s: %s is out of range (%g to %g seconds)", s->name, quoted,
                                s->minimum, s->maximum);
        else
            *(double *)(void *)field = seconds;
        break;
    }
    case CONFIG_BOOL: {
        bool flag;
        if (config_parse_bool(value, &flag) != 0)
            message = xasprintf("%s: %s is not %s", s->name, quoted, config_type_syntax(s->type));
        else
            *(bool *)(void *)field = flag;
        break;
    }
    case CONFIG_CHOICE: {
        int index;
        if (config_parse_choice(value, s->choices, &index) != 0) {
            char *list = config_choices_list(s->choices);
            message = xasprintf("%s: %s is not one of %s", s->name, quoted, list);
            free(list);
        } else {
            *(int *)(void *)field = s->choice_values != NULL ? s->choice_values[index] : index;
        }
        break;
    }
    case CONFIG_LISTEN:
        message = config_set_listen(c, s, value);
        break;
    case CONFIG_TYPE_COUNT:
        abort();
    }
    free(quoted);
    return message;
}

/* config_number_text - a whole number in the largest exact unit of units (factor, suffix) */
static char *config_number_text(unsigned long long number, const unsigned long long *factors,
                                const char *suffixes)
{
    for (size_t i = 0; suffixes[i] != '\0'; i++)
        if (number != 0 && number % factors[i] == 0)
            return xasprintf("%llu%c", number / factors[i], suffixes[i]);
    return xasprintf("%llu", number);
}

char *config_value_text(const struct porter_config *c, const struct config_setting *s)
{
    const char *field = (const char *)c + s->offset;
    switch (s->type) {
    case CONFIG_STRING: {
        const char *text = *(char *const *)(const void *)field;
        return text != NULL ? xstrdup(text) : NULL;
    }
    case CONFIG_INTEGER:
    case CONFIG_SIZE: {
        static const unsigned long long factors[] = {1024ULL * 1024 * 1024, 1024ULL * 1024, 1024};
        long long number = s->type == CONFIG_INTEGER
                               ? (long long)*(const long *)(const void *)field
                               : (long long)*(const unsigned long long *)(const void *)field;
        if (number < 0)
            return xasprintf("%lld", number);
        return config_number_text((unsigned long long)number, factors, "gmk");
    }
    case CONFIG_SECONDS: {
        double seconds = *(const double *)(const void *)field;
        static const unsigned long long factors[] = {86400, 3600, 60};
        if (seconds >= 1 && seconds < 1e15 && seconds == (double)(unsigned long long)seconds)
            return config_number_text((unsigned long long)seconds, factors, "dhm");
        return xasprintf("%.9g", seconds);
    }
    case CONFIG_BOOL:
        return xstrdup(*(const bool *)(const void *)field ? "yes" : "no");
    case CONFIG_CHOICE: {
        int value = *(const int *)(const void *)field;
        const char *word = s->choices;
        for (int i = 0; word != NULL; i++) {
            const char *bar = strchr(word, '|');
            int candidate = s->choice_values != NULL ? s->choice_values[i] : i;
            if (candidate == value)
                return bar != NULL ? xstrndup(word, (size_t)(bar - word)) : xstrdup(word);
            word = bar != NULL ? bar + 1 : NULL;
        }
        return xasprintf("%d", value);
    }
    case CONFIG_LISTEN: {
        char *text = NULL;
        size_t length = 0;
        FILE *out = open_memstream(&text, &length);
        if (out == NULL)
            abort();
        for (size_t i = 0; i < c->listen_count; i++)
            fprintf(out, "%s%s %s%s", i > 0 ? "\n" : "", c->listen[i].address, c->listen[i].role,
                    c->listen[i].proxy_protocol ? " proxy_protocol" : "");
        fclose(out);
        return text;
    }
    case CONFIG_TYPE_COUNT:
        break;
    }
    abort();
}

/* config_set_default - apply a row's default; a default its parser refuses is a bug */
static void config_set_default(struct porter_config *c, const struct config_setting *s)
{
    if (s->default_value == NULL)
        return;
    char *message = config_set(c, s, s->default_value);
    if (message != NULL) {
        fprintf(stderr, "porter: %s:%d: internal error: bad default: %s\n", __FILE__, __LINE__,
                message);
        abort();
    }
}

/* ---- reading porter.conf ---- */

/* config_edit_distance - Levenshtein distance; SIZE_MAX for names longer than 64 */
static size_t config_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return SIZE_MAX;
    size_t row[65];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diagonal = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t above = row[j];
            size_t best = diagonal + (a[i - 1] != b[j - 1]);
            if (above + 1 < best)
                best = above + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diagonal = above;
        }
    }
    return row[lb];
}

/* config_unknown - the message for an unknown name, with the nearest known one if close */
static char *config_unknown(const char *name)
{
    const char *nearest = NULL;
    size_t nearest_distance = 3;
    for (size_t i = 0; i < CONFIG_TABLE_COUNT; i++) {
        size_t distance = config_edit_distance(name, config_table[i].name);
        if (distance < nearest_distance) {
            nearest = config_table[i].name;
            nearest_distance = distance;
        }
    }
    char *quoted = config_quote(name);
    char *message = nearest != NULL
                        ? xasprintf("unknown setting %s (did you mean '%s'?)", quoted, nearest)
                        : xasprintf("unknown setting %s", quoted);
    free(quoted);
    return message;
}

static bool config_is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* config_line - one line of porter.conf (without its LF); NULL, or an error message */
static char *config_line(struct porter_config *c, const char *text, size_t length, int line,
                         int *first_line)
{
    if (length > 0 && text[length - 1] == '\r')
        length--;
    if (length > CONFIG_LINE_MAX)
        return xasprintf("line longer than %d bytes", CONFIG_LINE_MAX);
    if (memchr(text, '\0', length) != NULL)
        return xstrdup("NUL byte in line");
    char buffer[CONFIG_LINE_MAX + 1];
    memcpy(buffer, text, length);
    buffer[length] = '\0';
    for (size_t i = 0; i < length; i++) {
        if (buffer[i] == '#' && (i == 0 || config_is_blank(buffer[i - 1]))) {
            buffer[i] = '\0';
            length = i;
            break;
        }
    }
    for (size_t i = 0; i < length; i++) {
        unsigned char byte = (unsigned char)buffer[i];
        if ((byte < 0x20 && byte != '\t') || byte == 0x7f)
            return xasprintf("control character \\x%02x in line", byte);
    }
    char *start = buffer;
    while (config_is_blank(*start))
        start++;
    while (length > 0 && config_is_blank(buffer[length - 1]))
        buffer[--length] = '\0';
    if (*start == '\0')
        return NULL;
    char *equals = strchr(start, '=');
    if (equals == NULL)
        return xstrdup("expected 'name = value'");
    char *value = equals + 1;
    while (config_is_blank(*value))
        value++;
    char *name_end = equals;
    while (name_end > start && config_is_blank(name_end[-1]))
        name_end--;
    *name_end = '\0';
    if (*start == '\0')
        return xstrdup("expected 'name = value' (no name before '=')");
    const struct config_setting *s = NULL;
    size_t index = 0;
    for (; index < CONFIG_TABLE_COUNT; index++) {
        if (strcmp(config_table[index].name, start) == 0) {
            s = &config_table[index];
            break;
        }
    }
    if (s == NULL)
        return config_unknown(start);
    if (first_line[index] != 0 && !s->repeatable)
        return xasprintf("'%s' is already set on line %d", s->name, first_line[index]);
    if (first_line[index] == 0)
        first_line[index] = line;
    if (*value == '\0')
        return xasprintf("%s: missing value", s->name);
    return config_set(c, s, value);
}

/* config_scale_out_check - build the proxy_sources and xclient_clients lists (their syntax
 * was checked when set) and refuse a proxy_protocol listener nobody may use; the errors */
static size_t config_scale_out_check(struct porter_config *c, const char *file_name,
                                     struct config_error_list *errors)
{
    char *error = NULL;
    c->proxy_sources_list = cidr_parse(c->proxy_sources, &error);
    free(error);
    error = NULL;
    c->xclient_clients_list = cidr_parse(c->xclient_clients, &error);
    free(error);
    if (c->proxy_sources_list == NULL || c->xclient_clients_list == NULL) {
        config_error_add(errors, "%s: internal error: a checked CIDR list did not parse",
                         file_name);
        return 1;
    }
    size_t found = 0;
    for (size_t i = 0; i < c->listen_count; i++) {
        if (c->listen[i].proxy_protocol && cidr_count(c->proxy_sources_list) == 0) {
            config_error_add(errors, "%s: listen %s has proxy_protocol but proxy_sources lists "
                             "no load balancer", file_name, c->listen[i].address);
            found++;
        }
    }
    return found;
}

struct porter_config *config_parse(const char *directory, const char *file_name, const char *text,
                                   size_t length, struct config_error_list *errors)
{
    struct porter_config *c = xcalloc(1, sizeof *c);
    c->directory = xstrdup(directory != NULL ? directory : ".");
    for (size_t i = 0; i < CONFIG_TABLE_COUNT; i++)
        if (config_table[i].type != CONFIG_LISTEN)
            config_set_default(c, &config_table[i]);

    int first_line[CONFIG_TABLE_COUNT] = {0};
    size_t error_count = 0;
    size_t position = 0;
    int line = 0;
    while (position < length) {
        line++;
        const char *start = text + position;
        const char *newline = memchr(start, '\n', length - position);
        size_t line_length = newline != NULL ? (size_t)(newline - start) : length - position;
        position += line_length + (newline != NULL);
        char *message = config_line(c, start, line_length, line, first_line);
        if (message == NULL)
            continue;
        config_error_add(errors, "%s:%d: %s", file_name, line, message);
        free(message);
        if (++error_count >= CONFIG_ERRORS_MAX) {
            config_error_add(errors, "%s:%d: too many errors, stopped reading", file_name, line);
            break;
        }
    }
    if (c->listen_count == 0)
        for (size_t i = 0; i < CONFIG_TABLE_COUNT; i++)
            if (config_table[i].type == CONFIG_LISTEN)
                config_set_default(c, &config_table[i]);
    if (error_count == 0)
        error_count += config_scale_out_check(c, file_name, errors);
    if (error_count > 0) {
        config_free(c);
        return NULL;
    }
    return c;
}

char *config_system_hostname(void)
{
    char name[256];
    if (gethostname(name, sizeof name) != 0)
        return xstrdup("localhost");
    name[sizeof name - 1] = '\0';
    if (strchr(name, '.') == NULL) {
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_flags = AI_CANONNAME};
        struct addrinfo *result = NULL;
        if (getaddrinfo(name, NULL, &hints, &result) == 0) {
            char *canonical = NULL;
            if (result != NULL && result->ai_canonname != NULL &&
                strchr(result->ai_canonname, '.') != NULL)
                canonical = xstrdup(result->ai_canonname);
            freeaddrinfo(result);
            if (canonical != NULL)
                return canonical;
        }
    }
    return xstrdup(name);
}

/* config_keep_only - text reduced to the lines that set one of names (caller frees) */
static char *config_keep_only(const char *text, size_t length, const char *const *names,
                              size_t *kept_length)
{
    char *kept = xcalloc(length + 1, 1);
    size_t used = 0;
    for (const char *line = text; line < text + length;) {
        const char *end = memchr(line, '\n', (size_t)(text + length - line));
        size_t size = end != NULL ? (size_t)(end - line) + 1 : (size_t)(text + length - line);
        const char *word = line;
        while (word < line + size && config_is_blank(*word))
            word++;
        for (size_t i = 0; names[i] != NULL; i++) {
            size_t n = strlen(names[i]);
            if ((size_t)(line + size - word) > n && strncmp(word, names[i], n) == 0 &&
                (config_is_blank(word[n]) || word[n] == '=')) {
                memcpy(kept + used, line, size);
                used += size;
                break;
            }
        }
        line += size;
    }
    *kept_length = used;
    return kept;
}

struct porter_config *config_read_settings(const char *directory, const char *const *only,
                                           struct config_error_list *errors)
{
    char *absolute = realpath(directory, NULL);
    char *path = config_path_resolve(absolute ? absolute : directory, "porter.conf");
    char *text = NULL, *error = NULL;
    size_t length = 0;
    struct porter_config *config = NULL;
    if (config_read_file(path, CONFIG_FILE_MAX, &text, &length, &error) != 0) {
        config_error_add(errors, "%s", error);
        free(error);
    } else {
        if (only != NULL) {
            size_t kept_length;
            char *kept = config_keep_only(text, length, only, &kept_length);
            free(text);
            text = kept;
            length = kept_length;
        }
        config = config_parse(absolute ? absolute : directory, path, text, length, errors);
    }
    free(text);
    free(path);
    free(absolute);
    return config;
}

struct porter_config *config_load(const char *directory, struct config_error_list *errors)
{
    char *absolute = realpath(directory, NULL);
    if (absolute == NULL) {
        config_error_add(errors, "%s: %s", directory, strerror(errno));
        return NULL;
    }
    struct porter_config *c = config_read_settings(absolute, NULL, errors);
    free(absolute);
    if (c == NULL)
        return NULL;
    char *path = config_path_resolve(c->directory, "porter.conf");
    if (c->hostname == NULL) {
        char *name = config_system_hostname();
        const char *reason = config_check_hostname(name);
        if (reason != NULL) {
            char *quoted = config_quote(name);
            config_error_add(errors, "%s: hostname is not set and the system's name %s %s: set "
                                     "hostname", path, quoted, reason);
            free(quoted);
            free(name);
            config_free(c);
            c = NULL;
        } else {
            c->hostname = name;
        }
    }
    if (c != NULL && tls_config_load(c, path, errors) != 0) {
        config_free(c);
        c = NULL;
    }
    free(path);
    return c;
}

int config_plugins_snapshot(struct porter_config *c, struct config_error_list *errors)
{
    char *path = config_path(c, c->plugins_file);
    char *text = NULL, *error = NULL;
    size_t length = 0;
    int rc = config_read_file(path, CONFIG_FILE_MAX, &text, &length, &error);
    if (rc != 0) {
        config_error_add(errors, "%s", error);
        free(error);
    } else {
        free(c->plugins_text);
        c->plugins_text = text;
        c->plugins_length = length;
    }
    free(path);
    return rc;
}

int config_plugin_lines(const struct porter_config *c, struct plugin_line_list *out,
                        struct config_error_list *errors)
{
    char *path = config_path(c, c->plugins_file);
    int rc = c->plugins_text != NULL
                 ? plugin_lines_parse(path, c->plugins_text, c->plugins_length, out, errors)
                 : plugin_lines_load(path, out, errors);
    free(path);
    return rc;
}

void config_free(struct porter_config *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < CONFIG_TABLE_COUNT; i++)
        if (config_table[i].type == CONFIG_STRING)
            free(*(char **)(void *)((char *)c + config_table[i].offset));
    for (size_t i = 0; i < c->listen_count; i++) {
        free(c->listen[i].address);
        free(c->listen[i].role);
    }
    free(c->listen);
    free(c->plugins_text);
    free(c->directory);
    cidr_free(c->proxy_sources_list);
    cidr_free(c->xclient_clients_list);
    tls_server_free(c->tls);
    free(c);
}

/* ---- the plugins file ---- */

struct plugin_lexer {
    const char *text;
    size_t length;
    size_t position;
    int line;
};

struct plugin_words {
    char **items;
    size_t count;
    int line;        /* the line of the first word */
    char *word;      /* the word being read */
    size_t word_length;
    size_t word_capacity;
    bool in_word;
};

/* plugin_lexer_newline - the length of the line end at position (1 for LF, 2 for CRLF), or 0 */
static size_t plugin_lexer_newline(const struct plugin_lexer *lx, size_t position)
{
    if (position < lx->length && lx->text[position] == '\n')
        return 1;
    if (position + 1 < lx->length && lx->text[position] == '\r' && lx->text[position + 1] == '\n')
        return 2;
    return 0;
}

/* plugin_lexer_skip_line - skip to the end of the logical line (after an error) */
static void plugin_lexer_skip_line(struct plugin_lexer *lx)
{
    while (lx->position < lx->length) {
        char c = lx->text[lx->position];
        if (c == '\n') {
            lx->position++;
            lx->line++;
            return;
        }
        size_t end = c == '\\' ? plugin_lexer_newline(lx, lx->position + 1) : 0;
        if (end > 0) {
            lx->position += 1 + end;
            lx->line++;
            continue;
        }
        lx->position++;
    }
}

static void plugin_words_clear(struct plugin_words *w)
{
    for (size_t i = 0; i < w->count; i++)
        free(w->items[i]);
    free(w->items);
    free(w->word);
    memset(w, 0, sizeof *w);
}

/* plugin_words_begin - a word starts (or continues) at the lexer's line */
static void plugin_words_begin(struct plugin_words *w, int line)
{
    if (w->count == 0 && !w->in_word)
        w->line = line;
    w->in_word = true;
}

/* plugin_words_append - one byte to the current word; NULL or an error message (static) */
static const char *plugin_words_append(struct plugin_words *w, char c)
{
    unsigned char byte = (unsigned char)c;
    if ((byte < 0x20 && c != '\t') || byte == 0x7f)
        return "control character in line";
    if (w->word_length >= PLUGIN_WORD_MAX)
        return "word longer than " CONFIG_STRINGIFY(PLUGIN_WORD_MAX) " bytes";
    if (w->word_length + 1 >= w->word_capacity) {
        w->word_capacity = w->word_capacity == 0 ? 64 : w->word_capacity * 2;
        w->word = xrealloc(w->word, w->word_capacity);
    }
    w->word[w->word_length++] = c;
    return NULL;
}

/* plugin_words_finish - end the current word, if any; NULL or an error message (static) */
static const char *plugin_words_finish(struct plugin_words *w)
{
    if (!w->in_word)
        return NULL;
    w->in_word = false;
    if (w->count >= PLUGIN_WORDS_MAX)
        return "more than " CONFIG_STRINGIFY(PLUGIN_WORDS_MAX) " words on one line";
    w->items = xrealloc(w->items, (w->count + 1) * sizeof *w->items);
    w->items[w->count++] = xstrndup(w->word != NULL ? w->word : "", w->word_length);
    w->word_length = 0;
    return NULL;
}

/* plugin_lexer_quoted - read a "..." part of a word (the lexer is on the opening quote) */
static const char *plugin_lexer_quoted(struct plugin_lexer *lx, struct plugin_words *w)
{
    lx->position++;
    for (;;) {
        if (lx->position >= lx->length || lx->text[lx->position] == '\n')
            return "unterminated quote";
        char c = lx->text[lx->position];
        if (c == '"') {
            lx->position++;
            return NULL;
        }
        if (c == '\0')
            return "NUL byte in line";
        if (c == '\\' && lx->position + 1 < lx->length &&
            (lx->text[lx->position + 1] == '"' || lx->text[lx->position + 1] == '\\')) {
            c = lx->text[lx->position + 1];
            lx->position++;
        }
        const char *error = plugin_words_append(w, c);
        if (error != NULL)
            return error;
        lx->position++;
    }
}

/*
 * plugin_lexer_line - read the words of one logical line into w (none for a blank or comment
 * line); NULL, or an error message (static) with *error_line set and the line skipped
 */
static const char *plugin_lexer_line(struct plugin_lexer *lx, struct plugin_words *w,
                                     int *error_line)
{
    const char *error = NULL;
    while (lx->position < lx->length && error == NULL) {
        char c = lx->text[lx->position];
        if (c == '\n') {
            error = plugin_words_finish(w);
            if (error == NULL) {
                lx->position++;
                lx->line++;
            }
            break;
        }
        if (c == '\0') {
            error = "NUL byte in line";
        } else if (c == '\\' && plugin_lexer_newline(lx, lx->position + 1) > 0) {
            error = plugin_words_finish(w);
            lx->position += 1 + plugin_lexer_newline(lx, lx->position + 1);
            lx->line++;
        } else if (c == '\\' && lx->position + 1 == lx->length) {
            lx->position++; /* a continuation at the end of the file continues to nothing */
        } else if (c == ' ' || c == '\t' || c == '\r') {
            error = plugin_words_finish(w);
            lx->position++;
        } else if (c == '#' && !w->in_word) {
            while (lx->position < lx->length && lx->text[lx->position] != '\n')
                lx->position++;
        } else if (c == '"') {
            plugin_words_begin(w, lx->line);
            error = plugin_lexer_quoted(lx, w);
        } else {
            plugin_words_begin(w, lx->line);
            error = plugin_words_append(w, c);
            lx->position++;
        }
    }
    if (error == NULL)
        error = plugin_words_finish(w);
    if (error != NULL) {
        *error_line = lx->line;
        plugin_lexer_skip_line(lx);
    }
    return error;
}

/* plugin_name_valid - [a-z0-9_]+, at most PLUGIN_NAME_MAX bytes */
static bool plugin_name_valid(const char *name)
{
    size_t length = strlen(name);
    if (length == 0 || length > PLUGIN_NAME_MAX)
        return false;
    for (const char *p = name; *p != '\0'; p++)
        if (!((*p >= 'a' && *p <= 'z') || config_is_digit(*p) || *p == '_'))
            return false;
    return true;
}

int plugin_lines_parse(const char *file_name, const char *text, size_t length,
                       struct plugin_line_list *out, struct config_error_list *errors)
{
    struct plugin_lexer lx = {.text = text, .length = length, .position = 0, .line = 1};
    size_t error_count = 0;
    while (lx.position < lx.length) {
        struct plugin_words w = {0};
        int error_line = 0;
        const char *error = plugin_lexer_line(&lx, &w, &error_line);
        if (error != NULL) {
            config_error_add(errors, "%s:%d: %s", file_name, error_line, error);
            error_count++;
        } else if (w.count > 0 && !plugin_name_valid(w.items[0])) {
            char *quoted = config_quote(w.items[0]);
            config_error_add(errors, "%s:%d: bad plugin name %s (use a-z, 0-9 and _, at most "
                                     "%d characters)", file_name, w.line, quoted, PLUGIN_NAME_MAX);
            free(quoted);
            error_count++;
        } else if (w.count > 0 && out->count >= PLUGIN_LINES_MAX) {
            config_error_add(errors, "%s:%d: more than %d plugins, stopped reading", file_name,
                             w.line, PLUGIN_LINES_MAX);
            plugin_words_clear(&w);
            error_count++;
            break;
        } else if (w.count > 0) {
            out->items = xrealloc(out->items, (out->count + 1) * sizeof *out->items);
            struct plugin_line *p = &out->items[out->count++];
            p->file = xstrdup(file_name);
            p->line = w.line;
            p->name = w.items[0];
            p->argc = (int)(w.count - 1);
            p->argv = xcalloc(w.count, sizeof *p->argv);
            for (size_t i = 1; i < w.count; i++)
                p->argv[i - 1] = w.items[i];
            w.count = 0; /* the words now belong to the line */
        }
        plugin_words_clear(&w);
        if (error_count >= CONFIG_ERRORS_MAX) {
            config_error_add(errors, "%s:%d: too many errors, stopped reading", file_name,
                             lx.line);
            break;
        }
    }
    if (error_count > 0) {
        plugin_lines_clear(out);
        return -1;
    }
    return 0;
}

int plugin_lines_load(const char *path, struct plugin_line_list *out,
                      struct config_error_list *errors)
{
    char *text = NULL, *error = NULL;
    size_t length = 0;
    if (config_read_file(path, CONFIG_FILE_MAX, &text, &length, &error) != 0) {
        config_error_add(errors, "%s", error);
        free(error);
        return -1;
    }
    int result = plugin_lines_parse(path, text, length, out, errors);
    free(text);
    return result;
}

void plugin_lines_clear(struct plugin_line_list *list)
{
    if (list == NULL)
        return;
    for (size_t i = 0; i < list->count; i++) {
        struct plugin_line *p = &list->items[i];
        free(p->file);
        free(p->name);
        for (int j = 0; j < p->argc; j++)
            free(p->argv[j]);
        free(p->argv);
    }
    free(list->items);
    list->items = NULL;
    list->count = 0;
}
