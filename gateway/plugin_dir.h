/*
 * plugin_dir.h - where plugins live: the NAME.so files in the colon-separated folders of
 * plugin_dir (porter.conf), searched in order; the first folder that has NAME.so wins and the
 * same name in a later folder is shadowed.
 *
 * Interface: plugin_dir_find gives every file of one name, winner first (for the loader and
 * for the "shadowed" report of porter check); plugin_dir_names lists every plugin name found;
 * plugin_dir_open loads one file and checks its descriptor (the loader, `porter plugins`).
 * Relative folders are relative to the configuration directory (config_path). Nothing is
 * fatal but out of memory; a folder that cannot be read is skipped. Memory: the caller frees
 * the returned arrays with plugin_dir_list_free.
 */
#ifndef PORTER_PLUGIN_DIR_H
#define PORTER_PLUGIN_DIR_H

#include <stddef.h>

#include "config.h"

#ifndef PORTER_CORE
#define PORTER_CORE
#endif
#include <porter/plugin.h>

/* plugin_dir_find - every FOLDER/NAME.so (regular files) in plugin_dir order; *count of them;
 * NULL when there is none */
char **plugin_dir_find(const struct porter_config *config, const char *name, size_t *count);
/* plugin_dir_names - every NAME of a NAME.so in any plugin_dir folder, sorted, each once */
char **plugin_dir_names(const struct porter_config *config, size_t *count);
/* plugin_dir_open - dlopen path and return its descriptor after checking its ABI; NULL with
 * *error set (caller frees) when it does not load. *handle is for dlclose, which ends the
 * descriptor's life. init is not called. */
const struct porter_plugin *plugin_dir_open(const char *path, void **handle, char **error);
/* plugin_dir_describe - for a message: "" when every plugin_dir folder is absolute, else
 * " (looked in /abs/one, /abs/two: relative folders are relative to the configuration
 * directory DIR)"; caller frees */
char *plugin_dir_describe(const struct porter_config *config);
/* plugin_dir_list_free - free count strings and the array (NULL is fine) */
void plugin_dir_list_free(char **list, size_t count);

#endif
