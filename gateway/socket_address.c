/*
 * socket_address.c - socket= values into connectable addresses (see socket_address.h).
 */
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "socket_address.h"

/* address_error - format an error message for socket_address_parse */
static int address_error(char *error, size_t size, const char *format, ...)
    __attribute__((format(printf, 3, 4)));
static int address_error(char *error, size_t size, const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    if (size > 0)
        vsnprintf(error, size, format, ap);
    va_end(ap);
    return -1;
}

/* address_resolve - host and port into out->sockaddr (family AF_INET, AF_INET6 or either) */
static int address_resolve(const char *host, const char *port, int family,
                           struct socket_address *out, char *error, size_t error_size)
{
    char *end = NULL;
    long number = strtol(port, &end, 10);
    if (port[0] == '\0' || *end != '\0' || number < 1 || number > 65535)
        return address_error(error, error_size, "bad port '%s'", port);
    struct addrinfo hints = {0}, *result = NULL;
    hints.ai_family = family;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    int rc = getaddrinfo(host, port, &hints, &result);
    if (rc != 0 || result == NULL)
        return address_error(error, error_size, "cannot resolve '%s': %s", host,
                             rc != 0 ? gai_strerror(rc) : "no address");
    if (result->ai_addrlen > sizeof out->sockaddr) {
        freeaddrinfo(result);
        return address_error(error, error_size, "address of '%s' too long", host);
    }
    memcpy(&out->sockaddr, result->ai_addr, result->ai_addrlen);
    out->length = (socklen_t) result->ai_addrlen;
    freeaddrinfo(result);
    return 0;
}

/* address_parse_inet - "PORT@HOST", "HOST:PORT" or "[ADDR]:PORT" */
static int address_parse_inet(const char *rest, int family, struct socket_address *out,
                              char *error, size_t error_size)
{
    char host[SOCKET_ADDRESS_TEXT_MAX], port[16];
    const char *at = strchr(rest, '@');
    if (at != NULL) {
        if ((size_t) (at - rest) >= sizeof port)
            return address_error(error, error_size, "bad port in '%s'", rest);
        memcpy(port, rest, (size_t) (at - rest));
        port[at - rest] = '\0';
        snprintf(host, sizeof host, "%s", at + 1);
    } else if (rest[0] == '[') {
        const char *close = strchr(rest, ']');
        if (close == NULL || close[1] != ':')
            return address_error(error, error_size, "expected [ADDRESS]:PORT, got '%s'", rest);
        if ((size_t) (close - rest - 1) >= sizeof host || strlen(close + 2) >= sizeof port)
            return address_error(error, error_size, "address too long: '%s'", rest);
        memcpy(host, rest + 1, (size_t) (close - rest - 1));
        host[close - rest - 1] = '\0';
        snprintf(port, sizeof port, "%s", close + 2);
    } else {
        const char *colon = strrchr(rest, ':');
        if (colon == NULL)
            return address_error(error, error_size, "expected PORT@HOST or HOST:PORT, got '%s'",
                                 rest);
        if ((size_t) (colon - rest) >= sizeof host || strlen(colon + 1) >= sizeof port)
            return address_error(error, error_size, "address too long: '%s'", rest);
        memcpy(host, rest, (size_t) (colon - rest));
        host[colon - rest] = '\0';
        snprintf(port, sizeof port, "%s", colon + 1);
    }
    if (host[0] == '\0')
        return address_error(error, error_size, "missing host in '%s'", rest);
    return address_resolve(host, port, family, out, error, error_size);
}

int socket_address_parse(const char *text, struct socket_address *out, char *error,
                         size_t error_size)
{
    memset(out, 0, sizeof *out);
    if (text == NULL || text[0] == '\0')
        return address_error(error, error_size, "empty socket address");
    if (strlen(text) >= sizeof out->text)
        return address_error(error, error_size, "socket address too long");
    snprintf(out->text, sizeof out->text, "%s", text);
    const char *path = NULL;
    if (strncmp(text, "unix:", 5) == 0)
        path = text + 5;
    else if (strncmp(text, "local:", 6) == 0)
        path = text + 6;
    else if (text[0] == '/')
        path = text;
    if (path != NULL) {
        struct sockaddr_un *un = (struct sockaddr_un *) &out->sockaddr;
        if (path[0] == '\0')
            return address_error(error, error_size, "empty socket path");
        if (strlen(path) >= sizeof un->sun_path)
            return address_error(error, error_size, "socket path too long: %s", path);
        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, path, strlen(path) + 1);
        out->length = (socklen_t) sizeof *un;
        return 0;
    }
    if (strncmp(text, "inet:", 5) == 0)
        return address_parse_inet(text + 5, AF_INET, out, error, error_size);
    if (strncmp(text, "inet6:", 6) == 0)
        return address_parse_inet(text + 6, AF_INET6, out, error, error_size);
    return address_error(error, error_size,
                         "socket must be unix:/PATH, inet:PORT@HOST, inet:HOST:PORT or "
                         "inet6:[ADDRESS]:PORT, got '%s'", text);
}

