/*
 * plugin_args.h - a plugin's arguments (the words after its name in conf/plugins), read by the
 * plugin's init through the porter_arg_* calls of the plugin API.
 *
 * Interface: plugin_args_new wraps one plugin_line; the getters below have exactly the types
 * of struct porter_api's arg_* members, so the core puts them straight into the table;
 * plugin_args_finish (after init) turns every key nobody asked for into an error, so a typo
 * never loads; plugin_args_error_count/plugin_args_error give the errors, in the order found,
 * as "FILE:LINE: PLUGIN: message".
 *
 * Words of the form key=value, where key is [A-Za-z0-9_-]+, are named arguments; all other
 * words are positional. A value is parsed when a getter asks for it, with the parsers
 * porter.conf uses (config.h), so "10m" and "5m" mean the same in both places.
 *
 * Nothing is fatal but out of memory; a bad argument is an error in the list. Memory: the
 * strings the getters return are borrowed from the args and valid until plugin_args_free (the
 * core frees the args when init returns, so plugins copy what they keep); a
 * list from plugin_args_cidr belongs to the plugin (porter_cidr_free). plugin_args_new copies
 * what it needs from the line and the directory.
 */
#ifndef PORTER_PLUGIN_ARGS_H
#define PORTER_PLUGIN_ARGS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h" /* gateway/config.h: struct plugin_line, struct config_error_list */

#ifndef PORTER_CORE
#define PORTER_CORE
#endif
#include <porter/plugin.h>

/* One key=value word. */
struct plugin_argument {
    char *key;
    char *value;
    bool asked;     /* a getter asked for this key */
    bool duplicate; /* an earlier word has the same key (already reported) */
};

struct porter_args {
    char *file;
    int line;
    char *plugin;                     /* the plugin's name, for messages */
    char *directory;                  /* the config directory; NULL: paths stay relative */
    struct plugin_argument *named;
    size_t named_count;
    char **positional;
    size_t positional_count;
    size_t positional_asked;          /* 1 + the highest index asked for; 0: none */
    char **paths;                     /* what plugin_args_path returned, freed with the args */
    size_t path_count;
    char **relative;                  /* "KEY=VALUE is RESOLVED" of each relative path resolved */
    size_t relative_count;
    char **known;                     /* every key asked for, once, in asking order */
    size_t known_count;
    struct config_error_list errors;  /* "FILE:LINE: PLUGIN: message" */
    bool finished;
};

/* plugin_args_new - the arguments of line; config_directory resolves relative paths (may be
 * NULL). A key given twice is reported here. Free with plugin_args_free. */
struct porter_args *plugin_args_new(const struct plugin_line *line, const char *config_directory);
void plugin_args_free(struct porter_args *a);

/* The porter_api getters (see include/porter/plugin.h for what plugins are promised). */
/* plugin_args_string - the value, or fallback when the key is absent */
const char *plugin_args_string(porter_args *a, const char *key, const char *fallback);
/* plugin_args_path - the value or fallback (NULL stays NULL), resolved against the config
 * directory when relative */
const char *plugin_args_path(porter_args *a, const char *key, const char *fallback);
/* plugin_args_integer - the value (k/m/g suffixes allowed) within [minimum, maximum], or
 * fallback when absent or bad ("KEY: 'VALUE' is not an integer between MIN and MAX") */
long plugin_args_integer(porter_args *a, const char *key, long fallback, long minimum,
                         long maximum);
/* plugin_args_seconds - a duration ("30", "30s", "5m", "2h", "1d", "0.5"), or fallback */
double plugin_args_seconds(porter_args *a, const char *key, double fallback);
/* plugin_args_bool - yes/no, true/false, on/off, 1/0, or fallback */
bool plugin_args_bool(porter_args *a, const char *key, bool fallback);
/* plugin_args_choice - the index of the value among choices ("denysoft|deny|log"); 0 (the
 * first choice) when absent or bad */
int plugin_args_choice(porter_args *a, const char *key, const char *choices);
/* plugin_args_cidr - the value as a network list: a readable file (absolute, or relative to
 * the config directory; a value starting with "/", "./" or "../" is always a file), else the
 * list itself ("10.0.0.0/8,192.0.2.1"). NULL when absent or bad. The caller frees the list. */
porter_cidr_list *plugin_args_cidr(porter_args *a, const char *key);
/* plugin_args_list - the value (or fallback when the key is absent) as a list (list_file.h):
 * a readable file, as for plugin_args_cidr, else inline entries separated by commas or
 * blanks; NULL for neither key nor fallback, or after reporting an unreadable file. The
 * caller owns the list (porter_list_free). */
porter_list *plugin_args_list(porter_args *a, const char *key, const char *fallback);
/* plugin_args_list_file - the list file at path (relative to the configuration directory);
 * NULL after reporting why it cannot be read */
porter_list *plugin_args_list_file(porter_args *a, const char *path);
/* plugin_args_verror - record an error a plugin reports (porter_arg_error); a message is cut
 * at 1023 bytes */
void plugin_args_verror(porter_args *a, const char *format, va_list ap)
    __attribute__((format(printf, 2, 0)));
/* plugin_args_positional - the index-th positional word, or NULL */
const char *plugin_args_positional(porter_args *a, size_t index);

/*
 * plugin_args_finish - after init: every named key no getter asked for becomes "unknown
 * argument 'KEY' (known: a, b, c)", and every positional word past the last index asked for
 * becomes "unexpected argument 'WORD'". When there are errors and a relative path was
 * resolved, one more line says what each became and from where ("note: relative paths are
 * relative to the configuration directory DIR: path=../var/maildir is DIR/../var/maildir"),
 * for a configuration copied elsewhere. Runs once (later calls change nothing). Returns the
 * number of errors.
 */
size_t plugin_args_finish(struct porter_args *a);
/*
 * plugin_args_check_declared - after init, for a plugin that documents itself (a description
 * or .arguments in its descriptor): every key it asked for must be in declared (NULL-name
 * terminated; NULL: none), hook_timeout aside, else "reads argument 'KEY' that its descriptor
 * does not declare": a plugin bug, since `porter plugins` and docs/plugins.md would not show
 * it. Returns the number of errors.
 */
size_t plugin_args_check_declared(struct porter_args *a, const struct porter_argument *declared);
size_t plugin_args_error_count(const struct porter_args *a);
/* plugin_args_error - the index-th error, "FILE:LINE: PLUGIN: message"; NULL past the end */
const char *plugin_args_error(const struct porter_args *a, size_t index);
/* plugin_args_keep_path - path resolved against the config directory (NULL stays NULL), kept
 * with the args; key (may be NULL) names it in the note a failed load gets for a relative
 * path (see plugin_args_finish). porter_arg_path and porter_arg_resolve use it. */
const char *plugin_args_keep_path(porter_args *a, const char *key, const char *path);
/* plugin_args_resolve_path - path relative to the config directory; caller frees */
char *plugin_args_resolve_path(const struct porter_args *a, const char *path);

#endif
