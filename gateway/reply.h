/*
 * reply.h - SMTP replies: formatting (multi-line, enhanced status codes, RFC 2034/3463) and
 * the default reply for each verdict at each hook.
 *
 * Interface: reply_write appends one complete reply to an evbuffer; reply_default names the
 * code, enhanced code and text Porter uses when a plugin gives a verdict without its own.
 * Pure except for the evbuffer append; nothing is allocated for the caller.
 */
#ifndef PORTER_REPLY_H
#define PORTER_REPLY_H

#ifndef PORTER_CORE
#define PORTER_CORE
#endif
#include <porter/plugin.h>

struct evbuffer;

#define REPLY_LINE_MAX 510 /* text per line, so that "CODE-X.Y.Z text\r\n" stays under 1000 */
#define REPLY_LINES_MAX 64

/* A reply a plugin attached to its verdict; code 0 means "the default for the verdict". */
struct reply {
    int code;
    char enhanced[16]; /* "" for the default */
    char *text;        /* owned; NULL for the default */
};

void reply_clear(struct reply *r);
void reply_set(struct reply *r, int code, const char *enhanced, const char *text);

/*
 * reply_write - append "code[-| ]enhanced text\r\n" lines; text lines are separated by '\n'.
 * enhanced may be NULL (greeting, HELO/EHLO replies). Its class digit is forced to match the
 * code's class. Control characters in text become spaces; long lines are cut at
 * REPLY_LINE_MAX.
 */
void reply_write(struct evbuffer *out, int code, const char *enhanced, const char *text);

/* reply_default - the reply for verdict rc at hook when the plugin gave none */
void reply_default(enum porter_hook hook, int rc, int *code, const char **enhanced,
                   const char **text);

/* reply_resolve - combine a plugin's reply with the defaults: fills code/enhanced/text */
void reply_resolve(const struct reply *given, enum porter_hook hook, int rc, int *code,
                   const char **enhanced, const char **text);

const char *porter_rc_name(int rc);
const char *porter_hook_name(int hook);
/* porter_hook_from_name - index of a hook by its qpsmtpd name, or -1 */
int porter_hook_from_name(const char *name);

#endif
