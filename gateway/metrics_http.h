/*
 * metrics_http.h - the HTTP side of the metrics listener (metrics_listen): evhttp on a
 * listening socket the master opened; pages come from the master's handler.
 *
 * Interface: metrics_http_start takes the socket (closed by metrics_http_free, also in a
 * forked child that must not keep it). Fatal: none. Memory: handler pages are freed here.
 */
#ifndef PORTER_METRICS_HTTP_H
#define PORTER_METRICS_HTTP_H

struct event_base;
struct metrics_http;

/* metrics_http_handler - the page at path (caller frees), or NULL for 404; *content_type
 * may be changed (a static string) */
typedef char *(*metrics_http_handler)(const char *path, const char **content_type, void *arg);

/* metrics_http_start - serve on the listening socket fd; NULL on failure (fd not taken) */
struct metrics_http *metrics_http_start(struct event_base *base, int fd,
                                        metrics_http_handler handler, void *arg);
void metrics_http_free(struct metrics_http *server);

#endif
