/*
 * plugin_info.h - `porter plugins [NAME]`: what each plugin says about itself.
 *
 * Interface: plugin_info_main lists the plugins found in the plugin_dir of a configuration
 * (one line each: name and the first sentence of its description), or prints one plugin's
 * section; plugin_info_section formats that section from a descriptor. The section is the
 * format of docs/plugins.md, which tests/integration/plugin_docs.test holds to it:
 *
 *     ### NAME
 *
 *     DESCRIPTION, wrapped at 100 columns
 *
 *     - `KEY=DEFAULT`: HELP, wrapped, continued with two spaces
 *     - `KEY`: HELP (an argument without a default)
 *
 * Nothing is fatal but out of memory. Memory: plugin_info_section's text is the caller's.
 */
#ifndef PORTER_PLUGIN_INFO_H
#define PORTER_PLUGIN_INFO_H

#ifndef PORTER_CORE
#define PORTER_CORE
#endif
#include <porter/plugin.h>

/* plugin_info_section - the docs/plugins.md section of one plugin; caller frees */
char *plugin_info_section(const struct porter_plugin *descriptor);
/* plugin_info_main - `porter plugins`: name NULL lists every plugin; exit status 0, 1 (a
 * plugin that does not load, or no such plugin) */
int plugin_info_main(const char *directory, const char *name);

#endif
