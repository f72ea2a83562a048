/*
 * master.c - the process model: `porter run` (master and workers), `porter check`,
 * `porter stdio`.
 *
 * The master reads the configuration, checks that every plugin loads, binds the listeners,
 * and forks one worker per core. Workers drop privileges, load the plugins, and serve. The
 * master restarts a worker that dies (at most one restart per second per slot), reloads on
 * SIGHUP (a configuration that fails to load is refused and the old one keeps running; new
 * workers take new connections, old ones stop accepting and exit when their sessions end),
 * and on SIGTERM/SIGINT tells workers to drain and waits for them, killing stragglers after
 * shutdown_timeout plus a margin.
 *
 * When the spool queue is in use (delivery = yes, or auto with queue_spool in the plugin
 * chain) the master also runs the delivery process (deliver.c): started with the workers,
 * restarted when it dies (at most once a second), restarted with the new configuration on
 * SIGHUP, and stopped with the workers on SIGTERM. It dies with the master (PR_SET_PDEATHSIG).
 *
 * Operations: the master serves the control socket (control.c: status, reload, stop,
 * sessions), writes the pid file, serves the metrics listener (metrics_http.c) from the
 * workers' shared counters (metrics.c; each worker gets a slot at fork, folded into the
 * master's totals when it is reaped), and reopens a log file on SIGUSR1. Under systemd
 * (Type=notify) it tells the service manager READY (once the workers serve), RELOADING and
 * READY around each reload, STOPPING, and a STATUS line (libsystemd's sd_notify: nothing
 * happens without NOTIFY_SOCKET).
 *
 * Listening sockets passed by systemd (porter.socket, LISTEN_FDS) are taken by address
 * (service_manager.c). Upgrade in place: on SIGUSR2 the master runs the binary at its path as a
 * new master with the listeners passed the same way; when that one serves it sends SIGQUIT,
 * and the old master retires its workers (as after a reload) and exits when they are done.
 *
 * Interface: master.h. Fatal: configuration errors at start (exit 1), bind failures (exit 1).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <systemd/sd-daemon.h>

#include "config.h"
#include "control.h"
#include "deliver.h"
#include "ip_board.h"
#include "log.h"
#include "master.h"
#include "memory.h"
#include "metrics.h"
#include "metrics_http.h"
#include "plugin_dir.h"
#include "plugin_host.h"
#include "service_manager.h"
#include "spool.h"
#include "status.h"
#include "worker.h"

#define MASTER_MAX_WORKERS 256
#define MASTER_KILL_MARGIN 5 /* seconds after shutdown_timeout before SIGKILL */
#define MASTER_BACKLOG 1024
#define MASTER_READY_POLLS 500 /* 10 ms each: listen after 5 s even if a worker is not ready */
#define MASTER_QUEUE_SCAN_MAX 1000000 /* queue files a status or scrape reads at most */

struct master_slot {
    pid_t pid;
    unsigned generation;
    time_t started;
    int ip_record;                  /* the worker's record in the per-IP board */
};

/* A retired worker: replaced by a reload, finishing its sessions. */
struct master_retiree {
    pid_t pid;
    unsigned generation;
};

struct master {
    struct event_base *base;
    struct porter_config *config;
    struct worker_listener *listeners;
    char **listener_addresses;
    size_t listener_count;
    struct master_slot slots[MASTER_MAX_WORKERS];
    size_t slot_count;              /* workers of the current generation */
    struct master_retiree retired[MASTER_MAX_WORKERS * 4]; /* old generations still finishing */
    int retired_ip_records[MASTER_MAX_WORKERS * 4];          /* their per-IP board records */
    size_t retired_count;
    struct ip_board *ips;           /* connections per client IP across workers (ip_board.h) */
    unsigned generation;
    bool stopping;
    char *executable;               /* this binary's path at start: what an upgrade runs */
    pid_t upgrade_pid;              /* the new master of an upgrade in progress, 0: none */
    pid_t upgrade_from;             /* we are that new master: the old one, until we serve */
    struct event *restart_timer;
    struct event *kill_timer;
    struct event *ready_timer;      /* at start: listen once the workers are ready */
    int ready_polls;
    struct event *signals[7];
    pid_t delivery_pid;             /* the spool's delivery process, 0 when none runs */
    time_t delivery_started;
    bool delivery_restart;          /* a reload stopped it: start it again when it is gone */
    bool foreground;
    time_t started;
    uint64_t worker_restarts;
    struct control_server *control;
    char *pid_file;                 /* written at start, removed at exit; NULL: none */
    struct metrics_http *metrics_http;
    char *metrics_address;          /* what metrics_http listens on; NULL: off */
};

/* master_print_errors - every configuration error on its own line */
static void master_print_errors(const struct config_error_list *errors)
{
    for (size_t i = 0; i < errors->count; i++)
        log_message(PORTER_LOG_ERR, NULL, "event=config_error error=\"%s\"", errors->messages[i]);
}

/* master_delivery_wanted - whether this configuration runs the delivery process */
static bool master_delivery_wanted(const struct porter_config *config)
{
    if (config->delivery == CONFIG_DELIVERY_YES)
        return true;
    if (config->delivery == CONFIG_DELIVERY_NO)
        return false;
    struct plugin_line_list lines = {0};
    struct config_error_list errors = {0};
    bool found = false;
    if (config_plugin_lines(config, &lines, &errors) == 0)
        for (size_t i = 0; i < lines.count && !found; i++)
            found = strcmp(lines.items[i].name, "queue_spool") == 0;
    plugin_lines_clear(&lines);
    config_errors_clear(&errors);
    return found;
}

/* master_report_shadowed - a warning for each plugin line whose NAME.so is also in a later
 * plugin_dir folder: which file loads, which is hidden (a copy left behind, or a new build
 * that never loads) */
static void master_report_shadowed(const struct porter_config *config,
                                   const struct plugin_registry *registry, bool print)
{
    for (size_t i = 0; i < registry->count; i++) {
        const struct plugin_instance *instance = &registry->items[i];
        bool reported = false;
        for (size_t j = 0; j < i && !reported; j++)
            reported = strcmp(registry->items[j].name, instance->name) == 0;
        size_t count;
        char **paths = reported ? NULL : plugin_dir_find(config, instance->name, &count);
        for (size_t k = 1; paths != NULL && k < count; k++) {
            if (print)
                fprintf(stderr, "%s:%d: %s: warning: loaded %s; %s is shadowed (plugin_dir "
                        "looks there later)\n", instance->file, instance->line, instance->name,
                        paths[0], paths[k]);
            else
                log_message(PORTER_LOG_WARNING, NULL, "event=plugin_shadowed plugin=%s "
                            "loaded=%s shadowed=%s", instance->name, paths[0], paths[k]);
        }
        if (paths != NULL)
            plugin_dir_list_free(paths, count);
    }
}

/* master_user_ids - the workers' user (and group: group=, else the user's own), when there
 * is one to become (running as root, user= set): 1 with *pw and *gid set; 0 when there is
 * none; -1 with a log line when the user or group does not exist */
static int master_user_ids(const struct porter_config *config, struct passwd **pw, gid_t *gid)
{
    if (config->user == NULL || config->user[0] == '\0' || geteuid() != 0)
        return 0;
    *pw = getpwnam(config->user);
    if (*pw == NULL) {
        log_message(PORTER_LOG_ERR, NULL, "event=privilege_error user=%s error=\"no such user\"",
                    config->user);
        return -1;
    }
    *gid = (*pw)->pw_gid;
    if (config->group != NULL && config->group[0] != '\0') {
        struct group *gr = getgrnam(config->group);
        if (gr == NULL) {
            log_message(PORTER_LOG_ERR, NULL, "event=privilege_error group=%s error=\"no such group\"",
                        config->group);
            return -1;
        }
        *gid = gr->gr_gid;
    }
    return 1;
}

/* The master's own identity while it acts as the workers' user (master_act_as_user). */
struct master_identity {
    bool switched;
    int group_count;
    gid_t groups[256];
};

/* master_act_as_user - take the workers' user as effective identity (root stays the real
 * one), so that what the trial load of the plugins creates (a Maildir, a database) belongs to
 * them and what it reads is what they can read; master_act_as_root goes back */
static void master_act_as_user(const struct porter_config *config, struct master_identity *saved)
{
    struct passwd *pw = NULL;
    gid_t gid = 0;
    saved->switched = false;
    if (master_user_ids(config, &pw, &gid) <= 0)
        return;
    saved->group_count = getgroups(sizeof saved->groups / sizeof saved->groups[0], saved->groups);
    if (saved->group_count < 0)
        return;
    if (initgroups(pw->pw_name, gid) != 0 || setegid(gid) != 0 || seteuid(pw->pw_uid) != 0) {
        log_message(PORTER_LOG_WARNING, NULL, "event=privilege_warning user=%s error=\"%s\" "
                    "note=\"plugins checked as root\"", config->user, strerror(errno));
        if (seteuid(0) != 0 || setegid(0) != 0 ||
            setgroups((size_t)saved->group_count, saved->groups) != 0)
            abort(); /* root cannot become root again: nothing sane is left */
        return;
    }
    saved->switched = true;
}

static void master_act_as_root(const struct master_identity *saved)
{
    if (!saved->switched)
        return;
    if (seteuid(0) != 0 || setegid(0) != 0 ||
        setgroups((size_t)saved->group_count, saved->groups) != 0)
        abort(); /* the saved set-user-ID is root: this cannot fail but for a broken kernel */
}

/* master_load - configuration plus a trial load of the plugins; NULL on any error, each
 * printed (print), else logged, and copied to report when it is not NULL */
static struct porter_config *master_load(const char *directory, bool print,
                                         struct config_error_list *report)
{
    struct config_error_list errors = {0};
    struct porter_config *config = config_load(directory, &errors);
    /* the chain checked here is the chain the workers load, whatever the file holds later */
    if (config != NULL && config_plugins_snapshot(config, &errors) == 0) {
        struct master_identity identity;
        master_act_as_user(config, &identity);
        struct plugin_registry *registry = plugin_registry_load(config, &errors);
        if (registry != NULL) {
            master_report_shadowed(config, registry, print);
            plugin_registry_release(registry);
        }
        master_act_as_root(&identity);
    }
    for (size_t i = 0; report != NULL && i < errors.count; i++)
        config_error_add(report, "%s", errors.messages[i]);
    if (errors.count > 0) {
        if (print)
            for (size_t i = 0; i < errors.count; i++)
                fprintf(stderr, "%s\n", errors.messages[i]);
        else
            master_print_errors(&errors);
        config_free(config);
        config = NULL;
    }
    config_errors_clear(&errors);
    if (config != NULL) {
        /* Relative paths are relative to the configuration directory, for everyone. */
        char *spool = config_path(config, config->spool_dir);
        free(config->spool_dir);
        config->spool_dir = spool;
        char *queue = config_path(config, config->queue_dir);
        free(config->queue_dir);
        config->queue_dir = queue;
        if (master_delivery_wanted(config) && config->relay_host == NULL) {
            const char *message = "porter.conf: relay_host must be set: the spool's delivery "
                                  "process runs (queue_spool is in the plugin chain, or delivery = yes)";
            if (print)
                fprintf(stderr, "%s\n", message);
            else
                log_message(PORTER_LOG_ERR, NULL, "event=config_error error=\"%s\"", message);
            if (report != NULL)
                config_error_add(report, "%s", message);
            config_free(config);
            config = NULL;
        }
    }
    return config;
}

/* master_split_address - "host:port" or "[v6]:port" into host and port */
static int master_split_address(const char *address, char *host, size_t size, char *port,
                                size_t port_size)
{
    const char *colon;
    if (address[0] == '[') {
        const char *close = strchr(address, ']');
        if (close == NULL || close[1] != ':')
            return -1;
        snprintf(host, size, "%.*s", (int)(close - address - 1), address + 1);
        colon = close + 1;
    } else {
        colon = strrchr(address, ':');
        if (colon == NULL)
            return -1;
        snprintf(host, size, "%.*s", (int)(colon - address), address);
    }
    snprintf(port, port_size, "%s", colon + 1);
    return 0;
}

/* master_listen_unix - a unix socket for the milter and policy roles (the MTA's user must
 * reach it: mode 0666; a stale socket file from an earlier run is replaced) */
static int master_listen_unix(const char *address)
{
    const char *path = address + strlen("unix:");
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sun.sun_path) {
        log_message(PORTER_LOG_ERR, NULL, "event=listen_error address=%s error=\"path too long\"",
                    address);
        return -1;
    }
    memcpy(sun.sun_path, path, strlen(path) + 1);
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof sun) != 0 || chmod(path, 0666) != 0 ||
        listen(fd, 1024) != 0) {
        log_message(PORTER_LOG_ERR, NULL, "event=listen_error address=%s error=\"%s\"", address,
                    strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    evutil_make_socket_nonblocking(fd);
    return fd;
}

/* master_listen - bind one socket, listening unless not yet (the first start listens once the
 * workers are forked: a client is never queued before a worker exists); -1 with a log line */
static int master_listen(const char *address, bool listening)
{
    if (strncmp(address, "unix:", 5) == 0) {
        int passed = service_manager_take(address, "", "");
        return passed >= 0 ? passed : master_listen_unix(address);
    }
    char host[256], port[16];
    if (master_split_address(address, host, sizeof host, port, sizeof port) != 0) {
        log_message(PORTER_LOG_ERR, NULL, "event=listen_error address=%s error=\"bad address\"", address);
        return -1;
    }
    int passed = service_manager_take(address, host, port); /* systemd's, or the old master's */
    if (passed >= 0) {
        evutil_make_socket_nonblocking(passed);
        return passed;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *result = NULL;
    int rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &result);
    if (rc != 0) {
        log_message(PORTER_LOG_ERR, NULL, "event=listen_error address=%s error=\"%s\"", address,
                    gai_strerror(rc));
        return -1;
    }
    int fd = socket(result->ai_family, SOCK_STREAM, 0);
    int one = 1;
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (result->ai_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    }
    if (fd < 0 || bind(fd, result->ai_addr, result->ai_addrlen) != 0 ||
        (listening && listen(fd, MASTER_BACKLOG) != 0)) {
        log_message(PORTER_LOG_ERR, NULL, "event=listen_error address=%s error=\"%s\"", address,
                    strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(result);
        return -1;
    }
    freeaddrinfo(result);
    evutil_make_socket_nonblocking(fd);
    return fd;
}

/* master_bind - listeners for config; already-open addresses are kept; -1 on failure */
static int master_bind(struct master *m, const struct porter_config *config, bool listening)
{
    struct worker_listener *listeners = xcalloc(config->listen_count + 1, sizeof *listeners);
    char **addresses = xcalloc(config->listen_count + 1, sizeof *addresses);
    bool *kept = xcalloc(m->listener_count + 1, sizeof *kept);
    for (size_t i = 0; i < config->listen_count; i++) {
        addresses[i] = xstrdup(config->listen[i].address);
        listeners[i].role = config->listen[i].role;
        listeners[i].proxy_protocol = config->listen[i].proxy_protocol;
        listeners[i].fd = -1;
        for (size_t j = 0; j < m->listener_count; j++) {
            if (!kept[j] && strcmp(m->listener_addresses[j], addresses[i]) == 0) {
                listeners[i].fd = m->listeners[j].fd;
                kept[j] = true;
            }
        }
        if (listeners[i].fd < 0)
            listeners[i].fd = master_listen(addresses[i], listening);
        if (listeners[i].fd < 0) {
            for (size_t k = 0; k <= i; k++) {
                bool reused = false;
                for (size_t j = 0; j < m->listener_count; j++)
                    reused |= listeners[k].fd == m->listeners[j].fd;
                if (!reused && listeners[k].fd >= 0)
                    close(listeners[k].fd);
                free(addresses[k]);
            }
            free(listeners);
            free(addresses);
            free(kept);
            return -1;
        }
    }
    for (size_t j = 0; j < m->listener_count; j++) {
        if (!kept[j])
            close(m->listeners[j].fd);
        free(m->listener_addresses[j]);
    }
    free(kept);
    free(m->listeners);
    free(m->listener_addresses);
    m->listeners = listeners;
    m->listener_addresses = addresses;
    m->listener_count = config->listen_count;
    return 0;
}

/* master_log_listeners - one line per listening socket: address, role, TLS, PROXY header */
static void master_log_listeners(const struct porter_config *config)
{
    for (size_t i = 0; i < config->listen_count; i++) {
        const struct config_listen *l = &config->listen[i];
        const char *tls = "none";
        if (strcmp(l->role, "submissions") == 0)
            tls = "implicit";
        else if (config->tls != NULL && (strcmp(l->role, "smtp") == 0 ||
                                         strcmp(l->role, "submission") == 0))
            tls = "starttls";
        log_message(PORTER_LOG_NOTICE, NULL, "event=listening address=%s role=%s tls=%s "
                    "proxy_protocol=%s", l->address, l->role, tls, l->proxy_protocol ? "yes" : "no");
    }
}

/* master_close_listeners - close every listening socket and forget them (at exit) */
static void master_close_listeners(struct master *m)
{
    for (size_t i = 0; i < m->listener_count; i++) {
        close(m->listeners[i].fd);
        free(m->listener_addresses[i]);
    }
    free(m->listeners);
    free(m->listener_addresses);
    m->listeners = NULL;
    m->listener_addresses = NULL;
    m->listener_count = 0;
}

/* master_drop_privileges - become the configured user; -1 with a log line */
static int master_drop_privileges(const struct porter_config *config)
{
    struct passwd *pw = NULL;
    gid_t gid = 0;
    int found = master_user_ids(config, &pw, &gid);
    if (found <= 0)
        return found;
    if (initgroups(pw->pw_name, gid) != 0 || setgid(gid) != 0 || setuid(pw->pw_uid) != 0) {
        log_message(PORTER_LOG_ERR, NULL, "event=privilege_error user=%s error=\"%s\"",
                    config->user, strerror(errno));
        return -1;
    }
    return 0;
}

/* master_prepare_spool - the spool directory exists and the workers' user owns it */
static int master_prepare_spool(const struct porter_config *config)
{
    char *path = xstrdup(config->spool_dir);
    for (char *p = path + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(path, 0755);
            *p = '/';
        }
    }
    int rc = mkdir(path, 0700);
    if (rc != 0 && errno != EEXIST) {
        log_message(PORTER_LOG_ERR, NULL, "event=spool_error dir=%s error=\"%s\"", path, strerror(errno));
        free(path);
        return -1;
    }
    if (config->user != NULL && config->user[0] && geteuid() == 0) {
        struct passwd *pw = getpwnam(config->user);
        if (pw != NULL && chown(path, pw->pw_uid, pw->pw_gid) != 0)
            log_message(PORTER_LOG_WARNING, NULL, "event=spool_warning dir=%s error=\"%s\"", path,
                        strerror(errno));
    }
    free(path);
    /* the spool queue (queue_spool, the delivery process, `porter queue`), when in use */
    if (!master_delivery_wanted(config))
        return 0;
    if (spool_prepare(config->queue_dir) != 0) {
        log_message(PORTER_LOG_ERR, NULL, "event=spool_error dir=%s error=\"%s\"",
                    config->queue_dir, strerror(errno));
        return -1;
    }
    if (config->user != NULL && config->user[0] && geteuid() == 0) {
        struct passwd *pw = getpwnam(config->user);
        static const char *const parts[] = {"", "/tmp", "/active", "/hold"};
        for (size_t i = 0; pw != NULL && i < 4; i++) {
            char *part = xasprintf("%s%s", config->queue_dir, parts[i]);
            if (chown(part, pw->pw_uid, pw->pw_gid) != 0)
                log_message(PORTER_LOG_WARNING, NULL, "event=spool_warning dir=%s error=\"%s\"",
                            part, strerror(errno));
            free(part);
        }
    }
    return 0;
}

/* master_worker_main - in the child: drop privileges, load plugins, serve */
static void master_worker_main(struct master *m, int ip_record)
{
    signal(SIGHUP, SIG_IGN);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGUSR1, SIG_DFL);
    if (master_drop_privileges(m->config) != 0)
        _exit(1);
    struct config_error_list errors = {0};
    struct plugin_registry *registry = plugin_registry_load(m->config, &errors);
    if (registry == NULL) {
        master_print_errors(&errors);
        _exit(1);
    }
    config_errors_clear(&errors);
    const char **plugin_labels = xcalloc(registry->count + 1, sizeof *plugin_labels);
    for (size_t i = 0; i < registry->count; i++)
        plugin_labels[i] = registry->items[i].label;
    const char **roles = xcalloc(m->listener_count + 1, sizeof *roles);
    for (size_t i = 0; i < m->listener_count; i++)
        roles[i] = m->listeners[i].role;
    metrics_worker_describe(plugin_labels, registry->count,
                            (const char *const *)m->listener_addresses, roles, m->listener_count);
    free(plugin_labels);
    free(roles);
    int rc = worker_run(m->config, registry, m->listeners, m->listener_count, m->ips,
                        ip_record);
    plugin_registry_release(registry);
    exit(rc); /* not _exit: LeakSanitizer checks the worker at exit */
}

/* master_child_leave_loop - in a forked child: the master's loop, signals, control socket,
 * metrics listener and pid file are not the child's. The epoll instance is shared across
 * fork, so it is replaced (event_reinit) before freeing. */
static void master_child_leave_loop(struct master *m)
{
    event_reinit(m->base);
    for (size_t i = 0; i < sizeof m->signals / sizeof m->signals[0]; i++)
        event_free(m->signals[i]);
    event_free(m->restart_timer);
    event_free(m->kill_timer);
    if (m->ready_timer != NULL)
        event_free(m->ready_timer);
    control_server_free(m->control); /* closes; only the master unlinks */
    m->control = NULL;
    metrics_http_free(m->metrics_http);
    m->metrics_http = NULL;
    event_base_free(m->base);
    m->base = NULL;
}

/* master_spawn - fork the worker of one slot */
static void master_spawn(struct master *m, size_t slot)
{
    int ip_record = ip_board_record_claim(m->ips);
    int metrics_slot = metrics_slot_claim(m->generation);
    if (metrics_slot < 0)
        log_message(PORTER_LOG_WARNING, NULL, "event=metrics_error error=\"every metrics slot is "
                    "taken (old workers still finishing): this worker's counts are not shown\"");
    pid_t pid = fork();
    if (pid < 0) {
        metrics_slot_bind(metrics_slot, 0);
        log_message(PORTER_LOG_ERR, NULL, "event=fork_error error=\"%s\"", strerror(errno));
        ip_board_record_release(m->ips, ip_record);
        return;
    }
    if (pid == 0) {
        /* The worker gets a loop of its own: the master's events stay the master's. */
        master_child_leave_loop(m);
        metrics_worker_attach(metrics_slot);
        master_worker_main(m, ip_record);
    }
    metrics_slot_bind(metrics_slot, pid);
    m->slots[slot].pid = pid;
    m->slots[slot].ip_record = ip_record;
    m->slots[slot].generation = m->generation;
    m->slots[slot].started = time(NULL);
    log_message(PORTER_LOG_INFO, NULL, "event=worker_spawned pid=%ld slot=%zu generation=%u",
                (long)pid, slot, m->generation);
}

/* master_spawn_delivery - fork the spool's delivery process (when the config wants one) */
static void master_spawn_delivery(struct master *m)
{
    if (m->delivery_pid != 0 || m->stopping || !master_delivery_wanted(m->config))
        return;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        log_message(PORTER_LOG_ERR, NULL, "event=fork_error error=\"%s\"", strerror(errno));
        return;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(0); /* the master died while forking */
        master_child_leave_loop(m);
        for (size_t i = 0; i < m->listener_count; i++)
            close(m->listeners[i].fd); /* never holds the SMTP ports */
        signal(SIGHUP, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGUSR1, SIG_DFL);
        if (master_drop_privileges(m->config) != 0)
            _exit(1);
        exit(deliver_run(m->config)); /* not _exit: LeakSanitizer checks it at exit */
    }
    m->delivery_pid = pid;
    m->delivery_started = time(NULL);
    log_message(PORTER_LOG_INFO, NULL, "event=delivery_spawned pid=%ld", (long)pid);
}

/* master_worker_count - how many workers the config asks for */
static size_t master_worker_count(const struct porter_config *config)
{
    long count = config->workers > 0 ? config->workers : sysconf(_SC_NPROCESSORS_ONLN);
    if (count < 1)
        count = 1;
    if (count > MASTER_MAX_WORKERS)
        count = MASTER_MAX_WORKERS;
    return (size_t)count;
}

/* master_restart_due - respawn empty slots (rate-limited through restart_timer) */
static void master_restart_due(evutil_socket_t fd, short what, void *arg)
{
    struct master *m = arg;
    if (m->stopping)
        return;
    time_t now = time(NULL);
    bool again = false;
    for (size_t i = 0; i < m->slot_count; i++) {
        if (m->slots[i].pid != 0)
            continue;
        if (now - m->slots[i].started < 1) {
            again = true;
            continue;
        }
        master_spawn(m, i);
    }
    if (m->delivery_pid == 0 && master_delivery_wanted(m->config)) {
        if (now - m->delivery_started < 1)
            again = true;
        else
            master_spawn_delivery(m);
    }
    if (again) {
        struct timeval second = {1, 0};
        evtimer_add(m->restart_timer, &second);
    }
}

/* master_all_gone - no worker of any generation is left */
static bool master_all_gone(const struct master *m)
{
    for (size_t i = 0; i < m->slot_count; i++)
        if (m->slots[i].pid != 0)
            return false;
    return m->retired_count == 0 && m->delivery_pid == 0;
}

/* master_await_children - stopping: exit now if no child is left, else when the last one
 * goes, and SIGKILL what remains after the drain and shutdown times (the kill timer) */
static void master_await_children(struct master *m)
{
    if (master_all_gone(m)) {
        event_base_loopexit(m->base, NULL);
        return;
    }
    struct timeval deadline = {(time_t)(m->config->drain_grace + m->config->shutdown_timeout) +
                               MASTER_KILL_MARGIN, 0};
    evtimer_add(m->kill_timer, &deadline);
}

static void master_upgrade_failed(struct master *m, int status);

/* master_child - SIGCHLD: reap, and respawn current-generation workers */
static void master_child(evutil_socket_t signal_number, short what, void *arg)
{
    struct master *m = arg;
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        bool found = false;
        if (pid == m->upgrade_pid) {
            found = true;
            master_upgrade_failed(m, status);
        }
        if (pid == m->delivery_pid) {
            found = true;
            m->delivery_pid = 0;
            if (!m->stopping) {
                if (!m->delivery_restart)
                    log_message(PORTER_LOG_WARNING, NULL, "event=delivery_died pid=%ld status=%s%d",
                                (long)pid, WIFSIGNALED(status) ? "signal " : "exit ",
                                WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
                m->delivery_restart = false;
                master_restart_due(-1, 0, m);
                if (m->delivery_pid == 0 && !evtimer_pending(m->restart_timer, NULL)) {
                    struct timeval second = {1, 0};
                    evtimer_add(m->restart_timer, &second);
                }
            }
        }
        for (size_t i = 0; i < m->retired_count && !found; i++) {
            if (m->retired[i].pid == pid) {
                metrics_slot_release(pid);
                /* its connections are gone with it */
                ip_board_record_release(m->ips, m->retired_ip_records[i]);
                m->retired_count--;
                m->retired[i] = m->retired[m->retired_count];
                m->retired_ip_records[i] = m->retired_ip_records[m->retired_count];
                found = true;
                log_message(PORTER_LOG_INFO, NULL, "event=worker_retired pid=%ld", (long)pid);
            }
        }
        for (size_t i = 0; i < m->slot_count && !found; i++) {
            if (m->slots[i].pid != pid)
                continue;
            found = true;
            m->slots[i].pid = 0;
            metrics_slot_release(pid);
            ip_board_record_release(m->ips, m->slots[i].ip_record); /* however it ended */
            m->slots[i].ip_record = -1;
            if (!m->stopping) {
                m->worker_restarts++;
                log_message(PORTER_LOG_WARNING, NULL, "event=worker_died pid=%ld slot=%zu "
                            "status=%s%d", (long)pid, i, WIFSIGNALED(status) ? "signal " : "exit ",
                            WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
                master_restart_due(-1, 0, m);
                if (m->slots[i].pid == 0 && !evtimer_pending(m->restart_timer, NULL)) {
                    struct timeval second = {1, 0};
                    evtimer_add(m->restart_timer, &second);
                }
            }
        }
    }
    if (m->stopping && master_all_gone(m))
        event_base_loopexit(m->base, NULL);
}

/* master_retire_current - current workers become old: they finish their sessions */
static void master_retire_current(struct master *m)
{
    for (size_t i = 0; i < m->slot_count; i++) {
        if (m->slots[i].pid == 0)
            continue;
        kill(m->slots[i].pid, SIGUSR1);
        if (m->retired_count < sizeof m->retired / sizeof m->retired[0]) {
            m->retired_ip_records[m->retired_count] = m->slots[i].ip_record;
            m->retired[m->retired_count++] =
                (struct master_retiree){m->slots[i].pid, m->slots[i].generation};
        }
        m->slots[i].pid = 0;
        m->slots[i].ip_record = -1;
    }
}

/* master_metrics_listen - the metrics listener's socket for config: the open one when the
 * address is unchanged (*fd -1), a new one, or none; 0, or -1 with why set */
static int master_metrics_listen(struct master *m, const struct porter_config *config, int *fd,
                                 char *why, size_t size)
{
    *fd = -1;
    if (config->metrics_listen == NULL || (m->metrics_address != NULL &&
                                           strcmp(m->metrics_address, config->metrics_listen) == 0))
        return 0;
    *fd = master_listen(config->metrics_listen, true);
    if (*fd < 0) {
        snprintf(why, size, "metrics_listen: cannot listen on %s: %s", config->metrics_listen,
                 strerror(errno));
        return -1;
    }
    return 0;
}

static char *master_http_page(const char *path, const char **content_type, void *arg);

/* master_metrics_switch - serve metrics on fd (from master_metrics_listen) per config */
static void master_metrics_switch(struct master *m, const struct porter_config *config, int fd)
{
    if (config->metrics_listen != NULL && fd < 0)
        return; /* unchanged */
    metrics_http_free(m->metrics_http);
    m->metrics_http = NULL;
    free(m->metrics_address);
    m->metrics_address = NULL;
    if (fd < 0)
        return;
    m->metrics_http = metrics_http_start(m->base, fd, master_http_page, m);
    if (m->metrics_http == NULL) {
        log_message(PORTER_LOG_ERR, NULL, "event=metrics_error address=%s error=\"cannot serve "
                    "HTTP\"", config->metrics_listen);
        close(fd);
        return;
    }
    m->metrics_address = xstrdup(config->metrics_listen);
    log_message(PORTER_LOG_INFO, NULL, "event=metrics_listening address=%s", m->metrics_address);
}

/* master_reload_now - load the configuration again; the answer for the control client:
 * "reloaded ..." or "refused: why" followed by every error (caller frees) */
static char *master_reload_now(struct master *m)
{
    if (m->stopping)
        return xstrdup("refused: the master is stopping\n");
    log_message(PORTER_LOG_NOTICE, NULL, "event=reload directory=%s", m->config->directory);
    sd_notify(0, "RELOADING=1\nSTATUS=reloading");
    struct config_error_list errors = {0};
    struct porter_config *config = master_load(m->config->directory, false, &errors);
    char why[1024] = "";
    int metrics_fd = -1;
    if (config == NULL) {
        snprintf(why, sizeof why, "the configuration has errors; the running one stays");
    } else if (master_metrics_listen(m, config, &metrics_fd, why, sizeof why) != 0) {
        /* why is set */
    } else if (log_configure(config->log, m->foreground, config->log_facility, config->log_format,
                             why, sizeof why) != 0) {
        /* why is set */
    } else if (master_bind(m, config, true) != 0) {
        snprintf(why, sizeof why, "cannot open a listener (see the listen_error line); the "
                 "running configuration stays");
    } else if (master_prepare_spool(config) != 0) {
        snprintf(why, sizeof why, "cannot prepare the spool (see the spool_error line); the "
                 "running configuration stays");
    }
    if (why[0] != '\0') {
        if (metrics_fd >= 0)
            close(metrics_fd);
        config_free(config);
        log_message(PORTER_LOG_ERR, NULL, "event=reload_refused error=\"%s\"", why);
        char *text = NULL;
        size_t length = 0;
        FILE *out = open_memstream(&text, &length);
        if (out == NULL)
            abort();
        fprintf(out, "refused: %s\n", why);
        sd_notifyf(0, "READY=1\nSTATUS=serving: %zu workers, configuration generation %u (the "
                   "last reload was refused: %s)", m->slot_count, m->generation + 1, why);
        for (size_t i = 0; i < errors.count; i++)
            fprintf(out, "error: %s\n", errors.messages[i]);
        fclose(out);
        config_errors_clear(&errors);
        return text;
    }
    config_errors_clear(&errors);
    master_retire_current(m);
    master_metrics_switch(m, config, metrics_fd);
    config_free(m->config);
    m->config = config;
    log_set_level(config->log_level);
    m->generation++;
    m->slot_count = master_worker_count(config);
    for (size_t i = 0; i < m->slot_count; i++)
        master_spawn(m, i);
    if (m->delivery_pid != 0) {
        /* the delivery process restarts with the new configuration once it has stopped */
        m->delivery_restart = true;
        kill(m->delivery_pid, SIGTERM);
    } else {
        master_spawn_delivery(m);
    }
    master_log_listeners(config);
    log_message(PORTER_LOG_NOTICE, NULL, "event=reloaded generation=%u workers=%zu listeners=%zu",
                m->generation, m->slot_count, config->listen_count);
    sd_notifyf(0, "READY=1\nSTATUS=serving: %zu workers, configuration generation %u",
               m->slot_count, m->generation + 1);
    return xasprintf("reloaded generation=%u workers=%zu\n", m->generation + 1, m->slot_count);
}

/* master_reload - SIGHUP: new config and plugins for new workers; old ones retire */
static void master_reload(evutil_socket_t signal_number, short what, void *arg)
{
    free(master_reload_now(arg));
}

/* master_reopen_log - SIGUSR1: reopen a log file (logrotate moved it away) */
static void master_reopen_log(evutil_socket_t signal_number, short what, void *arg)
{
    struct master *m = arg;
    if (log_reopen(m->config->user) != 0)
        log_message(PORTER_LOG_ERR, NULL, "event=log_reopen_error error=\"%s\"", strerror(errno));
    else
        log_message(PORTER_LOG_NOTICE, NULL, "event=log_reopened");
}

/* master_kill_stragglers - workers that outlived the drain deadline */
static void master_kill_stragglers(evutil_socket_t fd, short what, void *arg)
{
    struct master *m = arg;
    for (size_t i = 0; i < m->slot_count; i++)
        if (m->slots[i].pid != 0)
            kill(m->slots[i].pid, SIGKILL);
    for (size_t i = 0; i < m->retired_count; i++)
        kill(m->retired[i].pid, SIGKILL);
    if (m->delivery_pid != 0)
        kill(m->delivery_pid, SIGKILL);
}

/* master_stop - SIGTERM/SIGINT: workers drain, then we exit */
static void master_stop(evutil_socket_t signal_number, short what, void *arg)
{
    struct master *m = arg;
    if (m->stopping)
        return;
    m->stopping = true;
    log_message(PORTER_LOG_NOTICE, NULL, "event=stopping signal=%d", (int)signal_number);
    sd_notify(0, "STOPPING=1\nSTATUS=draining: sessions finish, new connections are refused");
    for (size_t i = 0; i < m->slot_count; i++)
        if (m->slots[i].pid != 0)
            kill(m->slots[i].pid, SIGTERM);
    for (size_t i = 0; i < m->retired_count; i++)
        kill(m->retired[i].pid, SIGTERM);
    if (m->delivery_pid != 0)
        kill(m->delivery_pid, SIGTERM);
    master_await_children(m);
}

/* master_daemonize - background: new session, stdio to /dev/null */
static int master_daemonize(void)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid > 0)
        _exit(0);
    setsid();
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
        if (null > 2)
            close(null);
    }
    return 0;
}

/* master_raise_file_limit - thousands of sessions need thousands of descriptors */
static void master_raise_file_limit(void)
{
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &limit) != 0)
            log_message(PORTER_LOG_WARNING, NULL, "event=rlimit_warning error=\"%s\"", strerror(errno));
    }
}

/* master_facts - what only the master knows, for status and scrapes */
static void master_facts(const struct master *m, struct metrics_master_facts *facts)
{
    memset(facts, 0, sizeof *facts);
    facts->generation = m->generation + 1; /* 1 at start */
    facts->worker_restarts = m->worker_restarts;
    facts->workers = m->slot_count;
    facts->start_time = (double)m->started;
    facts->queue_depth = -1;
    if (!master_delivery_wanted(m->config))
        return;
    time_t oldest = 0, held_oldest = 0;
    if (spool_count(m->config->queue_dir, SPOOL_ACTIVE, MASTER_QUEUE_SCAN_MAX, &facts->queue_depth,
                    &oldest) != 0)
        facts->queue_depth = -1;
    if (spool_count(m->config->queue_dir, SPOOL_HOLD, MASTER_QUEUE_SCAN_MAX, &facts->queue_held,
                    &held_oldest) != 0)
        facts->queue_held = 0;
    facts->queue_oldest_seconds = oldest > 0 ? difftime(time(NULL), oldest) : 0;
}

/* master_status_answer - the text of `porter status` */
static char *master_status_answer(const struct master *m)
{
    struct status_worker workers[MASTER_MAX_WORKERS * 5];
    size_t count = 0;
    for (size_t i = 0; i < m->slot_count; i++)
        if (m->slots[i].pid != 0)
            workers[count++] = (struct status_worker){m->slots[i].pid, m->slots[i].generation + 1,
                                                      false};
    for (size_t i = 0; i < m->retired_count; i++)
        workers[count++] = (struct status_worker){m->retired[i].pid, m->retired[i].generation + 1,
                                                  true};
    struct metrics_master_facts facts;
    master_facts(m, &facts);
    struct status_facts status = {
        .pid = getpid(), .started = m->started, .directory = m->config->directory,
        .workers = workers, .worker_count = count, .delivery_pid = m->delivery_pid,
        .stopping = m->stopping, .metrics = &facts,
    };
    return status_text(&status);
}

/* master_control - one command from the control socket */
static char *master_control(const char *command, bool *keep_open, void *arg)
{
    struct master *m = arg;
    log_message(PORTER_LOG_INFO, NULL, "event=control command=%.32s", command);
    if (strcmp(command, "status") == 0)
        return master_status_answer(m);
    if (strcmp(command, "sessions") == 0)
        return status_sessions_text();
    if (strcmp(command, "reload") == 0)
        return master_reload_now(m);
    if (strcmp(command, "stop") == 0) {
        *keep_open = true; /* closed when the master exits: the client waits for the drain */
        master_stop(SIGTERM, 0, m);
        return xasprintf("stopping pid=%ld\n", (long)getpid());
    }
    return xstrdup("error: unknown command (status, sessions, reload, stop)\n");
}

/* master_http_page - the metrics listener's pages */
static char *master_http_page(const char *path, const char **content_type, void *arg)
{
    struct master *m = arg;
    if (strcmp(path, "/metrics") == 0) {
        struct metrics_master_facts facts;
        master_facts(m, &facts);
        struct metrics_sums *sums = metrics_collect();
        char *text = metrics_render(sums, &facts);
        metrics_sums_free(sums);
        *content_type = "text/plain; version=0.0.4; charset=utf-8";
        return text;
    }
    if (strcmp(path, "/top") == 0)
        return status_sessions_text();
    if (strcmp(path, "/status") == 0)
        return master_status_answer(m);
    if (strcmp(path, "/") == 0)
        return xstrdup("porter: /metrics (Prometheus), /status, /top (sessions and verdicts)\n");
    return NULL;
}

/* master_listen_when_ready - at start the listeners listen once every worker has loaded its
 * plugins (its metrics slot is described; privileges are dropped by then), or after
 * MASTER_READY_POLLS polls: a client connecting as soon as the port answers finds a worker
 * that serves (scripts and tests that start porter and connect at once) */
static void master_listen_when_ready(evutil_socket_t fd, short what, void *arg)
{
    struct master *m = arg;
    bool ready = true;
    for (size_t i = 0; i < m->slot_count && ready; i++) {
        const struct metrics_slot *slot = metrics_slot_of(m->slots[i].pid);
        ready = slot != NULL && __atomic_load_n(&slot->described, __ATOMIC_ACQUIRE);
    }
    if (!ready && !m->stopping && m->ready_polls++ < MASTER_READY_POLLS) {
        struct timeval poll = {0, 10000};
        evtimer_add(m->ready_timer, &poll);
        return;
    }
    for (size_t i = 0; i < m->listener_count; i++) {
        if (listen(m->listeners[i].fd, MASTER_BACKLOG) != 0) {
            log_message(PORTER_LOG_ERR, NULL, "event=listen_error address=%s error=\"%s\"",
                        m->listener_addresses[i], strerror(errno));
            master_stop(SIGTERM, 0, m);
            return;
        }
    }
    log_message(PORTER_LOG_INFO, NULL, "event=ready workers_ready=%s", ready ? "yes" : "no");
    if (m->upgrade_from != 0) {
        /* we serve: the old master's workers may finish their sessions and go */
        log_message(PORTER_LOG_NOTICE, NULL, "event=upgrade_took_over old_pid=%ld",
                    (long)m->upgrade_from);
        kill(m->upgrade_from, SIGQUIT);
        m->upgrade_from = 0;
    }
    sd_notifyf(0, "READY=1\nMAINPID=%lu\nSTATUS=serving: %zu workers, configuration generation "
               "%u", (unsigned long)getpid(), m->slot_count, m->generation + 1);
}

/* master_upgrade_begin - at start: are we the new master of an upgrade in place (the old
 * master, our parent, started us with its listeners as LISTEN_FDS)? Also remember our path. */
static void master_upgrade_begin(struct master *m)
{
    char path[4096];
    ssize_t length = readlink("/proc/self/exe", path, sizeof path - 1);
    path[length > 0 ? length : 0] = '\0';
    m->executable = length > 0 ? xstrdup(path) : NULL;
    const char *from = getenv("PORTER_UPGRADE_FROM");
    if (from != NULL && strtol(from, NULL, 10) == (long)getppid())
        m->upgrade_from = getppid();
    unsetenv("PORTER_UPGRADE_FROM");
}

/* master_services_start - the control socket and the metrics listener (again, after an
 * upgrade that failed); -1 with a log line */
static int master_services_start(struct master *m)
{
    char *path = control_socket_path(m->config->spool_dir);
    char *error = NULL;
    m->control = control_server_start(m->base, path, master_control, m, &error);
    free(path);
    if (m->control == NULL) {
        log_message(PORTER_LOG_ERR, NULL, "event=control_error error=\"%s\"", error);
        free(error);
        return -1;
    }
    char why[1024] = "";
    int metrics_fd = -1;
    if (master_metrics_listen(m, m->config, &metrics_fd, why, sizeof why) != 0) {
        log_message(PORTER_LOG_ERR, NULL, "event=metrics_error error=\"%s\"", why);
        return -1;
    }
    master_metrics_switch(m, m->config, metrics_fd);
    return 0;
}

/* master_upgrade - SIGUSR2: run the binary installed at our path as a new master that takes
 * our listening sockets (LISTEN_FDS, as systemd passes them). Our workers keep serving until
 * the new master serves (it sends SIGQUIT: master_hand_over); connections wait in the
 * sockets' backlog meanwhile, none is refused. The control socket and the metrics listener
 * are the new master's: ours close now, and come back if the new master fails. */
static void master_upgrade(evutil_socket_t signal_number, short what, void *arg)
{
    struct master *m = arg;
    if (m->stopping || m->upgrade_pid != 0 || m->executable == NULL) {
        log_message(PORTER_LOG_WARNING, NULL, "event=upgrade_refused reason=\"%s\"",
                    m->stopping ? "stopping" : m->upgrade_pid != 0 ? "an upgrade runs"
                                                                   : "own path unknown");
        return;
    }
    control_server_free(m->control);
    m->control = NULL;
    metrics_http_free(m->metrics_http);
    m->metrics_http = NULL;
    free(m->metrics_address);
    m->metrics_address = NULL;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        log_message(PORTER_LOG_ERR, NULL, "event=fork_error error=\"%s\"", strerror(errno));
        master_services_start(m);
        return;
    }
    if (pid == 0) {
        int *fds = xcalloc(m->listener_count + 1, sizeof *fds);
        for (size_t i = 0; i < m->listener_count; i++)
            fds[i] = m->listeners[i].fd;
        char from[32];
        snprintf(from, sizeof from, "%ld", (long)parent);
        setenv("PORTER_UPGRADE_FROM", from, 1);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (service_manager_pass(fds, m->listener_count) == 0) {
            char *argv[] = {m->executable, "run", "-c", m->config->directory,
                            m->foreground ? "-f" : NULL, NULL};
            execv(m->executable, argv);
        }
        _exit(127);
    }
    m->upgrade_pid = pid;
    log_message(PORTER_LOG_NOTICE, NULL, "event=upgrade_started pid=%ld executable=%s", (long)pid,
                m->executable);
}

/* master_upgrade_failed - the new master of an upgrade is gone: before it took over, we
 * keep serving (and answer the control socket again); after, nothing to do */
static void master_upgrade_failed(struct master *m, int status)
{
    pid_t pid = m->upgrade_pid;
    m->upgrade_pid = 0;
    if (m->stopping)
        return;
    log_message(PORTER_LOG_ERR, NULL, "event=upgrade_failed pid=%ld status=%s%d "
                "warning=\"the running master stays\"", (long)pid,
                WIFSIGNALED(status) ? "signal " : "exit ",
                WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    master_services_start(m);
}

/* master_hand_over - SIGQUIT from the new master of an upgrade, which now serves: our
 * workers stop accepting and finish their sessions (as after a reload), the delivery process
 * stops, and we exit when they are all gone */
static void master_hand_over(evutil_socket_t signal_number, short what, void *arg)
{
    struct master *m = arg;
    if (m->upgrade_pid == 0 || m->stopping)
        return;
    log_message(PORTER_LOG_NOTICE, NULL, "event=handed_over new_pid=%ld", (long)m->upgrade_pid);
    m->upgrade_pid = 0; /* it is the master now; when we go, it is its own */
    master_retire_current(m);
    m->stopping = true;
    if (m->delivery_pid != 0)
        kill(m->delivery_pid, SIGTERM);
    master_close_listeners(m);
    master_await_children(m);
}

/* master_pid_file_write - the pid file (its path is kept for removal); -1 with a log line */
static int master_pid_file_write(struct master *m)
{
    m->pid_file = m->config->pid_file != NULL ? config_path(m->config, m->config->pid_file)
                                              : xasprintf("%s/porter.pid", m->config->spool_dir);
    char text[32];
    int length = snprintf(text, sizeof text, "%ld\n", (long)getpid());
    int fd = open(m->pid_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, text, (size_t)length) != length) {
        log_message(PORTER_LOG_ERR, NULL, "event=pid_file_error path=%s error=\"%s\"", m->pid_file,
                    strerror(errno));
        if (fd >= 0)
            close(fd);
        free(m->pid_file);
        m->pid_file = NULL;
        return -1;
    }
    close(fd);
    return 0;
}

/* master_pid_file_remove - at exit, when it still names us */
static void master_pid_file_remove(struct master *m)
{
    if (m->pid_file == NULL)
        return;
    char text[32] = "";
    int fd = open(m->pid_file, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t got = read(fd, text, sizeof text - 1);
        text[got > 0 ? got : 0] = '\0';
        close(fd);
        if (strtol(text, NULL, 10) == (long)getpid())
            unlink(m->pid_file);
    }
    free(m->pid_file);
    m->pid_file = NULL;
}

int master_run(const char *directory, bool foreground)
{
    log_open("porter", LOG_TARGET_STDERR, PORTER_LOG_INFO);
    service_manager_collect(); /* sockets from systemd (porter.socket) or from an upgrade */
    master_raise_file_limit();
    struct master m = {.foreground = foreground, .started = time(NULL)};
    m.config = master_load(directory, true, NULL);
    if (m.config == NULL)
        return 1;
    log_set_level(m.config->log_level);
    char *control_path = control_socket_path(m.config->spool_dir);
    pid_t running = control_socket_owner(control_path);
    if (running != 0) {
        fprintf(stderr, "porter: a master already runs on %s (pid %ld)\n", control_path,
                (long)running);
        free(control_path);
        config_free(m.config);
        return 1;
    }
    char why[1024] = "";
    int metrics_fd = -1;
    if (master_metrics_listen(&m, m.config, &metrics_fd, why, sizeof why) != 0 ||
        log_configure(m.config->log, foreground, m.config->log_facility, m.config->log_format,
                      why, sizeof why) != 0) {
        fprintf(stderr, "porter: %s\n", why);
        free(control_path);
        config_free(m.config);
        return 1;
    }
    log_reopen(m.config->user); /* a log file belongs to the workers' user too */
    int bound = master_bind(&m, m.config, false);
    service_manager_close_unused();
    if (bound != 0 || master_prepare_spool(m.config) != 0 || metrics_shared_create() != 0) {
        master_close_listeners(&m);
        config_free(m.config);
        return 1;
    }
    if (geteuid() == 0 && (m.config->user == NULL || m.config->user[0] == '\0'))
        log_message(PORTER_LOG_WARNING, NULL, "event=running_as_root warning=\"set user = in "
                    "porter.conf so that workers drop privileges\"");
    master_upgrade_begin(&m);
    if (!foreground && m.upgrade_from == 0 && master_daemonize() != 0)
        return 1;
    m.base = event_base_new();
    if (m.base == NULL)
        return 1;
    char *error = NULL;
    m.control = control_server_start(m.base, control_path, master_control, &m, &error);
    free(control_path);
    if (m.control == NULL) {
        log_message(PORTER_LOG_ERR, NULL, "event=control_error error=\"%s\"", error);
        free(error);
        return 1;
    }
    if (master_pid_file_write(&m) != 0)
        return 1;
    master_metrics_switch(&m, m.config, metrics_fd);
    signal(SIGPIPE, SIG_IGN);
    m.signals[0] = evsignal_new(m.base, SIGCHLD, master_child, &m);
    m.signals[1] = evsignal_new(m.base, SIGHUP, master_reload, &m);
    m.signals[2] = evsignal_new(m.base, SIGTERM, master_stop, &m);
    m.signals[3] = evsignal_new(m.base, SIGINT, master_stop, &m);
    m.signals[4] = evsignal_new(m.base, SIGUSR1, master_reopen_log, &m);
    m.signals[5] = evsignal_new(m.base, SIGUSR2, master_upgrade, &m);
    m.signals[6] = evsignal_new(m.base, SIGQUIT, master_hand_over, &m);
    for (size_t i = 0; i < sizeof m.signals / sizeof m.signals[0]; i++)
        evsignal_add(m.signals[i], NULL);
    m.restart_timer = evtimer_new(m.base, master_restart_due, &m);
    m.kill_timer = evtimer_new(m.base, master_kill_stragglers, &m);
    m.slot_count = master_worker_count(m.config);
    /* records for the workers of this generation and of a few still finishing after reloads */
    m.ips = ip_board_create(m.slot_count * 4 + 8, (size_t)m.config->max_connections, true);
    for (size_t i = 0; i < m.slot_count; i++)
        master_spawn(&m, i);
    m.ready_timer = evtimer_new(m.base, master_listen_when_ready, &m);
    master_listen_when_ready(-1, 0, &m);
    master_spawn_delivery(&m);
    master_log_listeners(m.config);
    log_message(PORTER_LOG_NOTICE, NULL, "event=started pid=%ld workers=%zu listeners=%zu",
                (long)getpid(), m.slot_count, m.config->listen_count);
    event_base_dispatch(m.base);
    master_pid_file_remove(&m);
    control_server_free(m.control); /* a waiting `porter stop` learns that we are done */
    metrics_http_free(m.metrics_http);
    free(m.metrics_address);
    for (size_t i = 0; i < sizeof m.signals / sizeof m.signals[0]; i++)
        event_free(m.signals[i]);
    event_free(m.restart_timer);
    event_free(m.kill_timer);
    event_free(m.ready_timer);
    event_base_free(m.base);
    master_close_listeners(&m);
    ip_board_free(m.ips);
    log_message(PORTER_LOG_NOTICE, NULL, "event=stopped");
    free(m.executable);
    config_free(m.config);
    return 0;
}

int master_check(const char *directory)
{
    log_open("porter", LOG_TARGET_STDERR, PORTER_LOG_WARNING);
    struct porter_config *config = master_load(directory, true, NULL);
    if (config == NULL) {
        fprintf(stderr, "porter check: configuration in %s has errors\n", directory);
        return 1;
    }
    printf("porter check: %s is valid\n", config->directory);
    config_free(config);
    return 0;
}

int master_stdio(const char *directory, const char *client_ip, bool trace)
{
    log_open("porter", LOG_TARGET_STDERR, PORTER_LOG_WARNING);
    struct config_error_list errors = {0};
    struct porter_config *config = config_load(directory, &errors);
    if (config == NULL) {
        for (size_t i = 0; i < errors.count; i++)
            fprintf(stderr, "%s\n", errors.messages[i]);
        config_errors_clear(&errors);
        return 1;
    }
    char *spool = config_path(config, config->spool_dir);
    free(config->spool_dir);
    config->spool_dir = spool;
    char *queue = config_path(config, config->queue_dir);
    free(config->queue_dir);
    config->queue_dir = queue;
    log_set_level(trace ? PORTER_LOG_INFO : config->log_level < PORTER_LOG_WARNING
                                                ? config->log_level : PORTER_LOG_WARNING);
    /* stdout is the SMTP session and stderr may be the client's too (inetd): log lines go
     * there only when asked for (--trace, or a log setting); by default to syslog */
    char why[1024];
    if (log_configure(config->log, trace, config->log_facility, config->log_format, why,
                      sizeof why) != 0) {
        fprintf(stderr, "porter: %s\n", why);
        config_free(config);
        return 1;
    }
    if (master_prepare_spool(config) != 0 || master_drop_privileges(config) != 0) {
        config_free(config);
        return 1;
    }
    struct plugin_registry *registry = plugin_registry_load(config, &errors);
    if (registry == NULL) {
        for (size_t i = 0; i < errors.count; i++)
            fprintf(stderr, "%s\n", errors.messages[i]);
        config_errors_clear(&errors);
        config_free(config);
        return 1;
    }
    int rc = worker_run_stdio(config, registry, client_ip, trace);
    plugin_registry_release(registry);
    config_free(config);
    return rc;
}
