/*
 * metrics_http.c - the metrics listener: libevent's evhttp on a socket the master bound
 * (metrics_listen), answering GET /metrics (Prometheus text) and the other pages the
 * master's handler knows (see metrics_http.h).
 *
 * Only GET and HEAD are allowed; requests and headers are bounded; a connection that says
 * nothing for METRICS_HTTP_TIMEOUT seconds is closed. Fatal: none.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "memory.h"
#include "metrics_http.h"

#define METRICS_HTTP_TIMEOUT 10
#define METRICS_HTTP_HEADERS_MAX 8192

struct metrics_http {
    struct evhttp *http;
    metrics_http_handler handler;
    void *arg;
};

/* metrics_http_request - one request: the handler's page, or 404 */
static void metrics_http_request(struct evhttp_request *request, void *arg)
{
    struct metrics_http *server = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(request);
    const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
    const char *content_type = "text/plain; charset=utf-8";
    char *page = server->handler(path != NULL ? path : "/", &content_type, server->arg);
    struct evbuffer *body = evbuffer_new();
    if (body == NULL) {
        free(page);
        evhttp_send_error(request, HTTP_INTERNAL, NULL);
        return;
    }
    struct evkeyvalq *headers = evhttp_request_get_output_headers(request);
    if (page == NULL) {
        evhttp_add_header(headers, "Content-Type", "text/plain; charset=utf-8");
        evbuffer_add_printf(body, "not found; try /metrics or /top\n");
        evhttp_send_reply(request, HTTP_NOTFOUND, "Not Found", body);
    } else {
        evhttp_add_header(headers, "Content-Type", content_type);
        evbuffer_add(body, page, strlen(page));
        evhttp_send_reply(request, HTTP_OK, "OK", body);
    }
    evbuffer_free(body);
    free(page);
}

struct metrics_http *metrics_http_start(struct event_base *base, int fd,
                                        metrics_http_handler handler, void *arg)
{
    struct metrics_http *server = xcalloc(1, sizeof *server);
    server->http = evhttp_new(base);
    if (server->http == NULL || evhttp_accept_socket_with_handle(server->http, fd) == NULL) {
        if (server->http != NULL)
            evhttp_free(server->http);
        free(server);
        return NULL;
    }
    server->handler = handler;
    server->arg = arg;
    evhttp_set_allowed_methods(server->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
    evhttp_set_timeout(server->http, METRICS_HTTP_TIMEOUT);
    evhttp_set_max_headers_size(server->http, METRICS_HTTP_HEADERS_MAX);
    evhttp_set_max_body_size(server->http, 0);
    evhttp_set_gencb(server->http, metrics_http_request, server);
    return server;
}

void metrics_http_free(struct metrics_http *server)
{
    if (server == NULL)
        return;
    evhttp_free(server->http); /* closes the listening socket and the connections */
    free(server);
}
