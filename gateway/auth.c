/*
 * auth.c - SMTP AUTH (RFC 4954): PLAIN (RFC 4616) and LOGIN, with the initial response, the
 * 334 exchange, '*' to cancel, and the auth hook that checks the credentials (see auth.h).
 *
 * Replies (Postfix's where it has one):
 *   235 2.7.0 Authentication successful
 *   334 ...   a continuation ("334 " for PLAIN, base64 "Username:" / "Password:" for LOGIN)
 *   501 5.5.4 Syntax: AUTH mechanism [initial-response]
 *   501 5.5.2 Cannot decode response (bad base64, or a malformed PLAIN or LOGIN answer)
 *   501 5.0.0 Authentication aborted (the client sent '*')
 *   503 5.5.1 Error: authentication not enabled / already authenticated / MAIL transaction
 *             in progress
 *   504 5.5.4 Unrecognized authentication type
 *   530 5.7.0 Must issue a STARTTLS command first
 *   535 5.7.8 Authentication credentials invalid (after the failure delay)
 *   454 4.7.0 Temporary authentication failure (a plugin's DENYSOFT)
 *   421 4.7.0 too many failed authentication attempts (then the connection closes)
 *
 * Interface: auth.h. Fatal: out of memory. Log lines name the mechanism and the identity,
 * never the password or the base64 that carried it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>

#include "auth.h"
#include "config.h"
#include "log.h"
#include "memory.h"
#include "plugin_host.h"
#include "reply.h"
#include "session.h"
#include "smtp_parse.h"

#define AUTH_DECODED_MAX (AUTH_LINE_MAX / 4 * 3)
#define AUTH_PROMPT_USERNAME "VXNlcm5hbWU6" /* base64 "Username:" */
#define AUTH_PROMPT_PASSWORD "UGFzc3dvcmQ6" /* base64 "Password:" */

struct auth_exchange {
    enum auth_stage stage;
    int mechanism;             /* of the exchange under way */
    int succeeded_mechanism;   /* of the successful exchange, -1 before */
    char *username;            /* authentication identity of the exchange */
    char *password;            /* wiped and freed when the verdict is in */
    unsigned failures;
    struct event *delay_timer;
    /* the reply a delayed failure gives */
    int delayed_code;
    char delayed_enhanced[16];
    char *delayed_text;
    bool delayed_close;
};

static const char *const mechanism_names[AUTH_MECHANISM_COUNT] = {"PLAIN", "LOGIN"};
static const char *const stage_names[AUTH_STAGE_COUNT] = {
    "idle", "plain", "username", "password", "hook", "delay",
};

const char *auth_mechanism_name(int mechanism)
{
    return mechanism >= 0 && mechanism < AUTH_MECHANISM_COUNT ? mechanism_names[mechanism]
                                                              : "invalid";
}

const char *auth_stage_name(int stage)
{
    return stage >= 0 && stage < AUTH_STAGE_COUNT ? stage_names[stage] : "invalid";
}

int auth_mechanism_from_name(const char *name, size_t length)
{
    for (int i = 0; i < AUTH_MECHANISM_COUNT; i++)
        if (strlen(mechanism_names[i]) == length &&
            strncasecmp(mechanism_names[i], name, length) == 0)
            return i;
    return -1;
}

/* ---------------------------------------------------------------- pure helpers */

/* auth_base64_value - the value of a base64 character, or -1 */
static int auth_base64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

long auth_base64_decode(const char *in, size_t length, unsigned char *out, size_t out_size)
{
    if (length % 4 != 0)
        return -1;
    size_t used = 0;
    for (size_t i = 0; i < length; i += 4) {
        int values[4];
        size_t padding = 0;
        for (size_t j = 0; j < 4; j++) {
            unsigned char c = (unsigned char)in[i + j];
            if (c == '=') {
                if (i + 4 != length || j < 2)
                    return -1;
                values[j] = 0;
                padding++;
            } else {
                if (padding > 0)
                    return -1;
                values[j] = auth_base64_value(c);
                if (values[j] < 0)
                    return -1;
            }
        }
        /* Canonical encodings only: the bits that padding leaves unused must be zero. */
        if ((padding == 1 && (values[2] & 3) != 0) || (padding == 2 && (values[1] & 15) != 0))
            return -1;
        unsigned long group = (unsigned long)values[0] << 18 | (unsigned long)values[1] << 12 |
                              (unsigned long)values[2] << 6 | (unsigned long)values[3];
        size_t octets = 3 - padding;
        if (octets > out_size - used)
            return -1;
        out[used++] = (unsigned char)(group >> 16);
        if (octets > 1)
            out[used++] = (unsigned char)(group >> 8 & 0xff);
        if (octets > 2)
            out[used++] = (unsigned char)(group & 0xff);
    }
    return (long)used;
}

bool auth_identity_valid(const char *text, size_t length)
{
    if (length == 0 || length > AUTH_IDENTITY_MAX)
        return false;
    for (size_t i = 0; i < length; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c < 0x20 || c == 0x7f || c == '"' || c == '\\')
            return false;
    }
    return smtp_utf8_valid(text, length);
}

int auth_plain_parse(const unsigned char *data, size_t length, struct auth_plain *out)
{
    const unsigned char *first = memchr(data, '\0', length);
    if (first == NULL)
        return -1;
    size_t first_at = (size_t)(first - data);
    const unsigned char *second = memchr(first + 1, '\0', length - first_at - 1);
    if (second == NULL)
        return -1;
    size_t second_at = (size_t)(second - data);
    if (memchr(second + 1, '\0', length - second_at - 1) != NULL)
        return -1;
    struct auth_plain plain = {
        .authzid = (const char *)data,
        .authzid_length = first_at,
        .authcid = (const char *)first + 1,
        .authcid_length = second_at - first_at - 1,
        .password = (const char *)second + 1,
        .password_length = length - second_at - 1,
    };
    if (plain.authzid_length > 0 && !auth_identity_valid(plain.authzid, plain.authzid_length))
        return -1;
    if (!auth_identity_valid(plain.authcid, plain.authcid_length))
        return -1;
    if (plain.password_length == 0 || plain.password_length > AUTH_PASSWORD_MAX)
        return -1;
    *out = plain;
    return 0;
}

/* ---------------------------------------------------------------- the exchange */

/* auth_wipe - overwrite a secret before it is freed */
static void auth_wipe(char *text)
{
    if (text != NULL)
        explicit_bzero(text, strlen(text));
}

/* auth_clear_credentials - wipe and free what the client sent in this exchange */
static void auth_clear_credentials(struct auth_exchange *a)
{
    auth_wipe(a->password);
    free(a->password);
    a->password = NULL;
    free(a->username);
    a->username = NULL;
}

void auth_exchange_free(struct auth_exchange *a)
{
    if (a == NULL)
        return;
    auth_clear_credentials(a);
    if (a->delay_timer != NULL)
        event_free(a->delay_timer);
    free(a->delayed_text);
    free(a);
}

/* auth_exchange - the session's exchange, made on first use */
static struct auth_exchange *auth_exchange(struct porter_session *s)
{
    if (s->auth == NULL) {
        s->auth = xcalloc(1, sizeof *s->auth);
        s->auth->mechanism = -1;
        s->auth->succeeded_mechanism = -1;
    }
    return s->auth;
}

/* auth_enabled - a plugin handles the auth hook */
static bool auth_enabled(const struct porter_session *s)
{
    return s->plugins != NULL && s->plugins->by_hook_count[PORTER_HOOK_AUTH] > 0;
}

/* auth_needs_tls - AUTH must wait for TLS here (no plaintext AUTH, or a submission port) */
static bool auth_needs_tls(const struct porter_session *s)
{
    if (s->flags & SESSION_FLAG_TLS)
        return false;
    bool submission = s->role != NULL && strcmp(s->role, "submission") == 0;
    if (submission && s->config->submission_requires_tls)
        return true;
    return !s->config->auth_over_plaintext;
}

bool auth_offered(const struct porter_session *s)
{
    return auth_enabled(s) && !auth_needs_tls(s);
}

/* auth_set_stage - every transition in one place, logged at debug */
static void auth_set_stage(struct porter_session *s, enum auth_stage stage)
{
    struct auth_exchange *a = auth_exchange(s);
    if (a->stage != stage && log_enabled(PORTER_LOG_DEBUG))
        log_message(PORTER_LOG_DEBUG, s->id_string, "event=auth_stage from=%s to=%s",
                    auth_stage_name(a->stage), auth_stage_name(stage));
    a->stage = stage;
}

/* auth_end - the exchange is over without a verdict (cancel, bad answer) */
static void auth_end(struct porter_session *s)
{
    auth_clear_credentials(auth_exchange(s));
    auth_set_stage(s, AUTH_STAGE_IDLE);
}

/* auth_run_hook - the credentials are complete: ask the plugins */
static void auth_run_hook(struct porter_session *s)
{
    auth_set_stage(s, AUTH_STAGE_HOOK);
    hook_chain_run(s, PORTER_HOOK_AUTH, auth_proceed);
}

/* auth_deliver - give a failure's reply (now, or when its delay ends) */
static void auth_deliver(struct porter_session *s)
{
    struct auth_exchange *a = s->auth;
    auth_set_stage(s, AUTH_STAGE_IDLE);
    session_reply(s, a->delayed_code, a->delayed_enhanced, a->delayed_text ? a->delayed_text : "");
    free(a->delayed_text);
    a->delayed_text = NULL;
    if (a->delayed_close)
        session_finish_closing(s, "auth_failures");
}

/* auth_delay_fired - the failure delay is over: answer and read on */
static void auth_delay_fired(evutil_socket_t fd, short what, void *arg)
{
    struct porter_session *s = arg;
    if (s->closed || s->state == SESSION_STATE_CLOSING || s->auth == NULL ||
        s->auth->stage != AUTH_STAGE_DELAY)
        return;
    session_hold(s);
    auth_deliver(s);
    session_input_resume(s);
    session_unhold(s);
}

/*
 * auth_fail - a failed attempt: count it, log it, answer 535 (or 421 at the limit) after the
 * delay. given is the deciding plugin's reply (NULL for the core's own refusals).
 */
static void auth_fail(struct porter_session *s, int rc, const struct reply *given,
                      const char *decider, const char *reason)
{
    struct auth_exchange *a = auth_exchange(s);
    a->failures++;
    log_message(PORTER_LOG_NOTICE, s->id_string, "event=auth result=failed mechanism=%s "
                "user=\"%s\" failures=%u client=%s reason=%s plugin=%s",
                auth_mechanism_name(a->mechanism), a->username ? a->username : "",
                a->failures, s->client_ip, reason, decider ? decider : "-");
    a->delayed_code = 535;
    snprintf(a->delayed_enhanced, sizeof a->delayed_enhanced, "5.7.8");
    const char *text = "Authentication credentials invalid";
    if (given != NULL && given->code / 100 == 5)
        a->delayed_code = given->code;
    if (given != NULL && given->enhanced[0] == '5')
        snprintf(a->delayed_enhanced, sizeof a->delayed_enhanced, "%s", given->enhanced);
    if (given != NULL && given->text != NULL)
        text = given->text;
    a->delayed_close = rc == PORTER_DENY_DISCONNECT;
    free(a->delayed_text);
    if (a->failures >= (unsigned)s->config->auth_max_failures) {
        a->delayed_code = 421;
        snprintf(a->delayed_enhanced, sizeof a->delayed_enhanced, "4.7.0");
        a->delayed_text = xasprintf("%s Error: too many failed authentication attempts",
                                    s->config->hostname);
        a->delayed_close = true;
    } else {
        a->delayed_text = xstrdup(text);
    }
    auth_clear_credentials(a);
    double delay = s->config->auth_failure_delay;
    for (unsigned i = 1; i < a->failures && delay < AUTH_DELAY_MAX; i++)
        delay *= 2;
    if (delay > AUTH_DELAY_MAX)
        delay = AUTH_DELAY_MAX;
    if (delay <= 0) {
        auth_deliver(s);
        return;
    }
    if (a->delay_timer == NULL) {
        a->delay_timer = evtimer_new(s->base, auth_delay_fired, s);
        if (a->delay_timer == NULL)
            abort();
    }
    struct timeval tv = {(time_t)delay, (suseconds_t)((delay - (double)(time_t)delay) * 1e6)};
    auth_set_stage(s, AUTH_STAGE_DELAY);
    evtimer_add(a->delay_timer, &tv);
}

/* auth_set_username - keep a valid authentication identity; false if it is not one */
static bool auth_set_username(struct auth_exchange *a, const char *name, size_t length)
{
    if (!auth_identity_valid(name, length))
        return false;
    free(a->username);
    a->username = xstrndup(name, length);
    return true;
}

/* auth_set_password - keep the password; false for an empty one or one with NUL */
static bool auth_set_password(struct auth_exchange *a, const unsigned char *data, size_t length)
{
    if (length == 0 || length > AUTH_PASSWORD_MAX || memchr(data, '\0', length) != NULL)
        return false;
    auth_wipe(a->password);
    free(a->password);
    a->password = xstrndup((const char *)data, length);
    return true;
}

/*
 * auth_take_plain - a decoded PLAIN message: keep its identity and password; 0 run the hook,
 * -1 replied (malformed), 1 failed (an authorization identity we do not grant)
 */
static int auth_take_plain(struct porter_session *s, const unsigned char *data, size_t length)
{
    struct auth_exchange *a = auth_exchange(s);
    struct auth_plain plain;
    if (auth_plain_parse(data, length, &plain) != 0) {
        session_reply(s, 501, "5.5.2", "Cannot decode response");
        auth_end(s);
        return -1;
    }
    auth_set_username(a, plain.authcid, plain.authcid_length);
    auth_set_password(a, (const unsigned char *)plain.password, plain.password_length);
    bool same = plain.authzid_length == plain.authcid_length &&
                memcmp(plain.authzid, plain.authcid, plain.authcid_length) == 0;
    if (plain.authzid_length > 0 && !same) {
        auth_fail(s, PORTER_DENY, NULL, "core", "authorization_identity");
        return 1;
    }
    return 0;
}

/* auth_wipe_argument - the command argument may hold a password: replace it */
static void auth_wipe_argument(struct porter_session *s, const char *replacement)
{
    if (s->command_argument != NULL) {
        explicit_bzero(s->command_argument, strlen(s->command_argument));
        free(s->command_argument);
    }
    s->command_argument = xstrdup(replacement);
}

/* auth_refuse - a refusal of the AUTH command itself */
static int auth_refuse(struct porter_session *s, int code, const char *enhanced, const char *text)
{
    auth_wipe_argument(s, "");
    session_reply(s, code, enhanced, text);
    return -1;
}

int auth_check(struct porter_session *s, const char *argument)
{
    struct auth_exchange *a = auth_exchange(s);
    if (!auth_enabled(s))
        return auth_refuse(s, 503, "5.5.1", "Error: authentication not enabled");
    if (auth_needs_tls(s)) {
        if (s->config->tls != NULL && s->input == s->output)
            return auth_refuse(s, 530, "5.7.0", "Must issue a STARTTLS command first");
        return auth_refuse(s, 503, "5.5.1", "Error: authentication not enabled");
    }
    if (s->auth_user != NULL)
        return auth_refuse(s, 503, "5.5.1", "Error: already authenticated");
    if (s->transaction != NULL)
        return auth_refuse(s, 503, "5.5.1", "Error: MAIL transaction in progress");
    /* "MECHANISM [initial-response]" */
    size_t name_length = strcspn(argument, " ");
    const char *response = argument + name_length;
    while (*response == ' ')
        response++;
    size_t response_length = strlen(response);
    if (name_length == 0 || strchr(response, ' ') != NULL)
        return auth_refuse(s, 501, "5.5.4", "Syntax: AUTH mechanism [initial-response]");
    int mechanism = auth_mechanism_from_name(argument, name_length);
    if (mechanism < 0)
        return auth_refuse(s, 504, "5.5.4", "Unrecognized authentication type");
    auth_clear_credentials(a);
    a->mechanism = mechanism;
    unsigned char decoded[AUTH_DECODED_MAX];
    long decoded_length = 0;
    bool initial = response_length > 0;
    if (initial && !(response_length == 1 && response[0] == '=')) {
        decoded_length = auth_base64_decode(response, response_length, decoded, sizeof decoded);
        if (decoded_length < 0) {
            auth_set_stage(s, AUTH_STAGE_IDLE);
            return auth_refuse(s, 501, "5.5.2", "Cannot decode response");
        }
    }
    auth_wipe_argument(s, auth_mechanism_name(mechanism));
    int result;
    if (mechanism == AUTH_MECHANISM_PLAIN) {
        if (!initial) {
            auth_set_stage(s, AUTH_STAGE_PLAIN);
            session_reply(s, 334, NULL, "");
            result = 1;
        } else {
            int taken = auth_take_plain(s, decoded, (size_t)decoded_length);
            result = taken == 0 ? 0 : taken < 0 ? -1 : 1;
        }
    } else if (!initial) {
        auth_set_stage(s, AUTH_STAGE_USERNAME);
        session_reply(s, 334, NULL, AUTH_PROMPT_USERNAME);
        result = 1;
    } else if (!auth_set_username(a, (const char *)decoded, (size_t)decoded_length)) {
        session_reply(s, 501, "5.5.2", "Cannot decode response");
        auth_end(s);
        result = -1;
    } else {
        auth_set_stage(s, AUTH_STAGE_PASSWORD);
        session_reply(s, 334, NULL, AUTH_PROMPT_PASSWORD);
        result = 1;
    }
    explicit_bzero(decoded, sizeof decoded);
    if (result == 0)
        auth_set_stage(s, AUTH_STAGE_HOOK);
    return result;
}

bool auth_wants_line(const struct porter_session *s)
{
    if (s->auth == NULL)
        return false;
    enum auth_stage stage = s->auth->stage;
    return stage == AUTH_STAGE_PLAIN || stage == AUTH_STAGE_USERNAME ||
           stage == AUTH_STAGE_PASSWORD;
}

void auth_line(struct porter_session *s, char *line, size_t length)
{
    struct auth_exchange *a = auth_exchange(s);
    unsigned char decoded[AUTH_DECODED_MAX];
    if (length == 1 && line[0] == '*') {
        session_reply(s, 501, "5.0.0", "Authentication aborted");
        auth_end(s);
        return;
    }
    long decoded_length = auth_base64_decode(line, length, decoded, sizeof decoded);
    explicit_bzero(line, length);
    if (decoded_length < 0) {
        session_reply(s, 501, "5.5.2", "Cannot decode response");
        auth_end(s);
        return;
    }
    switch (a->stage) {
    case AUTH_STAGE_PLAIN:
        if (auth_take_plain(s, decoded, (size_t)decoded_length) == 0)
            auth_run_hook(s);
        break;
    case AUTH_STAGE_USERNAME:
        if (!auth_set_username(a, (const char *)decoded, (size_t)decoded_length)) {
            session_reply(s, 501, "5.5.2", "Cannot decode response");
            auth_end(s);
            break;
        }
        auth_set_stage(s, AUTH_STAGE_PASSWORD);
        session_reply(s, 334, NULL, AUTH_PROMPT_PASSWORD);
        break;
    case AUTH_STAGE_PASSWORD:
        if (!auth_set_password(a, decoded, (size_t)decoded_length)) {
            session_reply(s, 501, "5.5.2", "Cannot decode response");
            auth_end(s);
            break;
        }
        auth_run_hook(s);
        break;
    default:
        log_message(PORTER_LOG_ERR, s->id_string, "event=internal_error error=\"AUTH line in "
                    "stage %s\" file=%s line=%d", auth_stage_name(a->stage), __FILE__, __LINE__);
        abort();
    }
    explicit_bzero(decoded, sizeof decoded);
}

void auth_cancel(struct porter_session *s)
{
    if (auth_wants_line(s))
        auth_end(s);
}

bool auth_paused(const struct porter_session *s)
{
    return s->auth != NULL && s->auth->stage == AUTH_STAGE_DELAY;
}

void auth_proceed(struct porter_session *s, int rc)
{
    struct auth_exchange *a = auth_exchange(s);
    const char *decider = s->run.decider ? s->run.decider : "-";
    int code;
    const char *enhanced, *text;
    switch (rc) {
    case PORTER_OK:
        free(s->auth_user);
        s->auth_user = xstrdup(a->username ? a->username : "");
        a->succeeded_mechanism = a->mechanism;
        log_message(PORTER_LOG_INFO, s->id_string, "event=auth result=ok mechanism=%s "
                    "user=\"%s\" client=%s plugin=%s", auth_mechanism_name(a->mechanism),
                    s->auth_user, s->client_ip, decider);
        session_reply(s, 235, "2.7.0", s->run.reply.text ? s->run.reply.text
                                                        : "Authentication successful");
        auth_end(s);
        break;
    case PORTER_DONE:
        reply_resolve(&s->run.reply, PORTER_HOOK_AUTH, rc, &code, &enhanced, &text);
        session_reply(s, code, enhanced, text);
        auth_end(s);
        break;
    case PORTER_DENYSOFT:
    case PORTER_DENYSOFT_DISCONNECT:
        log_message(PORTER_LOG_NOTICE, s->id_string, "event=auth result=tempfail mechanism=%s "
                    "user=\"%s\" client=%s plugin=%s", auth_mechanism_name(a->mechanism),
                    a->username ? a->username : "", s->client_ip, decider);
        if (rc == PORTER_DENYSOFT_DISCONNECT) {
            char closing[300];
            snprintf(closing, sizeof closing, "%s %s", s->config->hostname,
                     s->run.reply.text ? s->run.reply.text : "Try again later, closing connection");
            session_reply(s, 421, "4.7.0", closing);
            auth_end(s);
            session_finish_closing(s, "auth_tempfail");
            return;
        }
        session_reply(s, s->run.reply.code / 100 == 4 ? s->run.reply.code : 454,
                      s->run.reply.enhanced[0] == '4' ? s->run.reply.enhanced : "4.7.0",
                      s->run.reply.text ? s->run.reply.text : "Temporary authentication failure");
        auth_end(s);
        break;
    default: /* DECLINED (nobody accepted), DENY, DENY_DISCONNECT */
        auth_fail(s, rc, rc == PORTER_DECLINED ? NULL : &s->run.reply, decider,
                  rc == PORTER_DECLINED ? "no_plugin_accepted" : "denied");
        break;
    }
    if (!auth_paused(s))
        session_input_resume(s);
}

void auth_forget(struct porter_session *s)
{
    free(s->auth_user);
    s->auth_user = NULL;
    if (s->auth == NULL)
        return;
    s->auth->succeeded_mechanism = -1;
    if (s->auth->stage != AUTH_STAGE_DELAY)
        auth_end(s);
}

const char *auth_mechanism_current(const struct porter_session *s)
{
    if (s->auth == NULL)
        return NULL;
    if (s->auth->stage == AUTH_STAGE_HOOK)
        return auth_mechanism_name(s->auth->mechanism);
    if (s->auth_user != NULL && s->auth->succeeded_mechanism >= 0)
        return auth_mechanism_name(s->auth->succeeded_mechanism);
    return NULL;
}

const char *auth_username_current(const struct porter_session *s)
{
    return s->auth != NULL && s->auth->stage == AUTH_STAGE_HOOK ? s->auth->username : NULL;
}

const char *auth_password_current(const struct porter_session *s)
{
    if (s->auth == NULL || s->auth->stage != AUTH_STAGE_HOOK || !s->run.active ||
        s->run.hook != PORTER_HOOK_AUTH)
        return NULL;
    return s->auth->password;
}
