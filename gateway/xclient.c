/*
 * xclient.c - the XCLIENT command received from a trusted front end (Postfix's semantics).
 * The contract is in xclient.h.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "config.h"
#include "log.h"
#include "memory.h"
#include "session.h"
#include "smtp_parse.h"
#include "xclient.h"

/* xclient_unavailable - Postfix's two words for "no value" */
static bool xclient_unavailable(const char *value)
{
    return strcasecmp(value, "[UNAVAILABLE]") == 0 || strcasecmp(value, "[TEMPUNAVAIL]") == 0;
}

/* xclient_address - an ADDR/DESTADDR value: IPv4, or IPv6 with or without "IPV6:" */
static bool xclient_address(const char *value, char *out, size_t size)
{
    unsigned char bytes[16];
    const char *text = strncasecmp(value, "IPV6:", 5) == 0 ? value + 5 : value;
    int family = strchr(text, ':') != NULL ? AF_INET6 : AF_INET;
    if ((family == AF_INET && text != value) || inet_pton(family, text, bytes) != 1)
        return false;
    return inet_ntop(family, bytes, out, (socklen_t)size) != NULL;
}

/* xclient_port - "0" to "65535"; -1 if bad */
static int xclient_port(const char *value)
{
    size_t length = strlen(value);
    if (length == 0 || length > 5 || strspn(value, "0123456789") != length)
        return -1;
    long port = strtol(value, NULL, 10);
    return port <= 65535 ? (int)port : -1;
}

/* xclient_attribute - one NAME=VALUE (value decoded); NULL, or the reply text's subject */
static const char *xclient_attribute(struct xclient_attributes *out, const char *name,
                                     const char *value)
{
    bool none = xclient_unavailable(value);
    if (strcasecmp(name, "NAME") == 0) {
        out->has_name = true;
        if (none)
            return NULL;
        if (!smtp_domain_valid(value, false) || strlen(value) >= sizeof out->name)
            return "NAME";
        snprintf(out->name, sizeof out->name, "%s", value);
    } else if (strcasecmp(name, "ADDR") == 0 || strcasecmp(name, "DESTADDR") == 0) {
        bool destination = strcasecmp(name, "DESTADDR") == 0;
        char *field = destination ? out->destaddr : out->addr;
        size_t size = destination ? sizeof out->destaddr : sizeof out->addr;
        *(destination ? &out->has_destaddr : &out->has_addr) = true;
        if (none)
            return NULL;
        if (!xclient_address(value, field, size))
            return destination ? "DESTADDR" : "ADDR";
    } else if (strcasecmp(name, "PORT") == 0 || strcasecmp(name, "DESTPORT") == 0) {
        bool destination = strcasecmp(name, "DESTPORT") == 0;
        *(destination ? &out->has_destport : &out->has_port) = true;
        int port = none ? 0 : xclient_port(value);
        if (port < 0)
            return destination ? "DESTPORT" : "PORT";
        *(destination ? &out->destport : &out->port) = port;
    } else if (strcasecmp(name, "PROTO") == 0) {
        out->has_proto = true;
        if (none)
            return NULL;
        if (strcasecmp(value, "ESMTP") != 0 && strcasecmp(value, "SMTP") != 0)
            return "PROTO";
        out->esmtp = strcasecmp(value, "ESMTP") == 0;
    } else if (strcasecmp(name, "HELO") == 0) {
        out->has_helo = true;
        if (none)
            return NULL;
        if (!smtp_domain_valid(value, false) || strlen(value) >= sizeof out->helo)
            return "HELO";
        snprintf(out->helo, sizeof out->helo, "%s", value);
    } else if (strcasecmp(name, "LOGIN") == 0) {
        out->has_login = true;
        if (none)
            return NULL;
        if (!auth_identity_valid(value, strlen(value)) || strlen(value) >= sizeof out->login)
            return "LOGIN";
        snprintf(out->login, sizeof out->login, "%s", value);
    } else {
        return "";
    }
    return NULL;
}

int xclient_parse(const char *argument, struct xclient_attributes *out, char *error, size_t size)
{
    memset(out, 0, sizeof *out);
    const char *p = argument;
    size_t count = 0;
    while (*p != '\0') {
        while (*p == ' ')
            p++;
        if (*p == '\0')
            break;
        const char *word = p;
        while (*p != '\0' && *p != ' ')
            p++;
        size_t length = (size_t)(p - word);
        const char *equals = memchr(word, '=', length);
        char name[16];
        size_t name_length = equals != NULL ? (size_t)(equals - word) : length;
        if (equals == NULL || name_length == 0 || name_length >= sizeof name) {
            snprintf(error, size, "Bad XCLIENT attribute syntax");
            return -1;
        }
        memcpy(name, word, name_length);
        name[name_length] = '\0';
        char encoded[512], value[512];
        size_t value_length = length - name_length - 1;
        if (value_length >= sizeof encoded) {
            snprintf(error, size, "Bad %s syntax", name);
            return -1;
        }
        memcpy(encoded, equals + 1, value_length);
        encoded[value_length] = '\0';
        const char *bad;
        if (smtp_xtext_decode(encoded, value, sizeof value) < 0)
            bad = name;
        else
            bad = xclient_attribute(out, name, value);
        if (bad != NULL && bad[0] == '\0') {
            /* only letters reach the reply: the name was not checked against anything else */
            bool letters = strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") ==
                           name_length;
            snprintf(error, size, "Bad XCLIENT attribute name: %s", letters ? name : "?");
            return -1;
        }
        if (bad != NULL) {
            snprintf(error, size, "Bad %s syntax", bad);
            return -1;
        }
        count++;
    }
    if (count == 0) {
        snprintf(error, size, "Syntax: XCLIENT attribute=value...");
        return -1;
    }
    return 0;
}

bool xclient_offered(const struct porter_session *s)
{
    return s->xclient_allowed;
}

int xclient_check(struct porter_session *s, const char *argument)
{
    if (!s->xclient_allowed) {
        log_message(PORTER_LOG_NOTICE, s->id_string, "event=xclient_refused client=%s "
                    "reason=not_in_xclient_clients", s->client_ip);
        session_reply(s, 550, "5.7.0", "Error: insufficient authorization");
        return -1;
    }
    if (s->transaction != NULL) {
        session_reply(s, 503, "5.5.1", "Error: MAIL transaction in progress");
        return -1;
    }
    struct xclient_attributes attributes;
    char error[128];
    if (xclient_parse(argument, &attributes, error, sizeof error) != 0) {
        session_reply(s, 501, "5.5.4", error);
        return -1;
    }
    return 0;
}

/* xclient_proceed - the old client leaves, the new one arrives: attributes, connect hook */
void xclient_proceed(struct porter_session *s, int rc)
{
    (void)rc;
    struct xclient_attributes a;
    char error[128];
    if (xclient_parse(s->command_argument, &a, error, sizeof error) != 0)
        abort(); /* xclient_check accepted this very argument */
    char previous[64];
    snprintf(previous, sizeof previous, "%s", s->client_ip);
    session_forget_client(s);
    if (a.has_name) {
        free(s->client_name);
        s->client_name = xstrdup(a.name[0] ? a.name : "unknown");
        free(s->client_ptr);
        s->client_ptr = xstrdup(s->client_name);
    }
    if (a.has_addr)
        snprintf(s->client_ip, sizeof s->client_ip, "%s", a.addr[0] ? a.addr : "unknown");
    if (a.has_port)
        s->client_port = a.port;
    if (a.has_destaddr)
        snprintf(s->local_ip, sizeof s->local_ip, "%s", a.destaddr[0] ? a.destaddr : "unknown");
    if (a.has_destport)
        s->local_port = a.destport;
    if (a.has_helo) {
        free(s->helo);
        s->helo = xstrdup(a.helo);
    }
    if (a.has_proto)
        session_set_ehlo(s, a.esmtp);
    if (a.login[0] != '\0')
        s->auth_user = xstrdup(a.login);
    log_message(PORTER_LOG_INFO, s->id_string, "event=xclient previous=%s client=%s port=%d "
                "name=%s helo=%s login=%s local=%s:%d", previous, s->client_ip, s->client_port,
                s->client_name, s->helo[0] ? s->helo : "-", s->auth_user ? s->auth_user : "-",
                s->local_ip, s->local_port);
    session_connect_again(s);
}
