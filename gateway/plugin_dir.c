/*
 * plugin_dir.c - find plugin files in the plugin_dir folders (see plugin_dir.h).
 */
#include <dirent.h>
#include <dlfcn.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "memory.h"
#include "plugin_dir.h"

/* plugin_dir_append - add a copy of text to a growing list */
static void plugin_dir_append(char ***list, size_t *count, const char *text)
{
    *list = xrealloc(*list, (*count + 1) * sizeof **list);
    (*list)[(*count)++] = xstrdup(text);
}

/* plugin_dir_folders - the plugin_dir folders, each resolved against the config directory */
static char **plugin_dir_folders(const struct porter_config *config, size_t *count)
{
    char **folders = NULL;
    *count = 0;
    char *directories = xstrdup(config->plugin_dir != NULL ? config->plugin_dir : "");
    char *saveptr = NULL;
    for (char *dir = strtok_r(directories, ":", &saveptr); dir != NULL;
         dir = strtok_r(NULL, ":", &saveptr)) {
        char *resolved = config_path(config, dir);
        plugin_dir_append(&folders, count, resolved);
        free(resolved);
    }
    free(directories);
    return folders;
}

char **plugin_dir_find(const struct porter_config *config, const char *name, size_t *count)
{
    size_t folder_count;
    char **folders = plugin_dir_folders(config, &folder_count);
    char **found = NULL;
    *count = 0;
    for (size_t i = 0; i < folder_count; i++) {
        char *candidate = xasprintf("%s/%s.so", folders[i], name);
        struct stat st;
        if (stat(candidate, &st) == 0 && S_ISREG(st.st_mode))
            plugin_dir_append(&found, count, candidate);
        free(candidate);
    }
    plugin_dir_list_free(folders, folder_count);
    return found;
}

static int plugin_dir_compare(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char **plugin_dir_names(const struct porter_config *config, size_t *count)
{
    size_t folder_count;
    char **folders = plugin_dir_folders(config, &folder_count);
    char **names = NULL;
    *count = 0;
    for (size_t i = 0; i < folder_count; i++) {
        DIR *dir = opendir(folders[i]);
        if (dir == NULL)
            continue;
        struct dirent *entry;
        while ((entry = readdir(dir)) != NULL) {
            size_t length = strlen(entry->d_name);
            if (length <= 3 || strcmp(entry->d_name + length - 3, ".so") != 0)
                continue;
            char *name = xstrndup(entry->d_name, length - 3);
            bool seen = false;
            for (size_t j = 0; j < *count && !seen; j++)
                seen = strcmp(names[j], name) == 0;
            if (!seen)
                plugin_dir_append(&names, count, name);
            free(name);
        }
        closedir(dir);
    }
    plugin_dir_list_free(folders, folder_count);
    if (*count > 1)
        qsort(names, *count, sizeof *names, plugin_dir_compare);
    return names;
}

const struct porter_plugin *plugin_dir_open(const char *path, void **handle, char **error)
{
    *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (*handle == NULL) {
        *error = xasprintf("cannot load %s: %s", path, dlerror());
        return NULL;
    }
    const struct porter_plugin *descriptor = dlsym(*handle, "porter_plugin");
    if (descriptor == NULL || descriptor->api == NULL) {
        *error = xasprintf("%s defines no porter_plugin (use PORTER_PLUGIN(...))", path);
    } else if (descriptor->abi != PORTER_PLUGIN_ABI) {
        *error = xasprintf("%s was built for plugin ABI %u, this porter has ABI %d: rebuild it",
                           path, descriptor->abi, PORTER_PLUGIN_ABI);
    } else {
        return descriptor;
    }
    dlclose(*handle);
    *handle = NULL;
    return NULL;
}

char *plugin_dir_describe(const struct porter_config *config)
{
    bool relative = false;
    char *directories = xstrdup(config->plugin_dir != NULL ? config->plugin_dir : "");
    char *saveptr = NULL;
    for (char *dir = strtok_r(directories, ":", &saveptr); dir != NULL;
         dir = strtok_r(NULL, ":", &saveptr))
        relative |= dir[0] != '/';
    free(directories);
    if (!relative)
        return xstrdup("");
    size_t count;
    char **folders = plugin_dir_folders(config, &count);
    char *list = xjoin(folders, count, ", ");
    char *text = xasprintf(" (looked in %s: relative folders are relative to the configuration "
                           "directory %s)", list, config->directory ? config->directory : ".");
    free(list);
    plugin_dir_list_free(folders, count);
    return text;
}

void plugin_dir_list_free(char **list, size_t count)
{
    if (list == NULL)
        return;
    for (size_t i = 0; i < count; i++)
        free(list[i]);
    free(list);
}
