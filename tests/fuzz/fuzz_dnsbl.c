/*
 * fuzz_dnsbl.c - libFuzzer target for the pure parts of native-plugins/dnsbl_common.c, which
 * see what clients and DNS servers send: the HELO name and the sender's domain (query names),
 * an address (reversed names), TXT records (reply text), recipients (allow_rcpt), and the
 * zones= / match= syntax of conf/plugins.
 *
 * Input: three '\n'-separated parts: a domain, an address, a zones= value; the whole input is
 * also a TXT record and a recipient. The target aborts when:
 *   - a query name is built that is longer than 253 bytes, does not end in ".ZONE", or holds
 *     a byte outside letters, digits, '-', '_' and '.';
 *   - a cleaned TXT record holds a byte outside printable ASCII, a '"', or more than
 *     DNSBL_TXT_MAX bytes;
 *   - parsed zones hold a range whose first address is above its last, or no range.
 * Memory: zones are freed after each input; nothing is kept between inputs.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dnsbl_common.h"

#define DNSBL_FUZZ_MAX 2048

const struct porter_api *porter_api; /* unused here: the pure functions never call the API */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* check_name - a query name as the plugins send it */
static void check_name(const char *name, const char *zone)
{
    size_t length = strlen(name), zone_length = strlen(zone);
    if (length > 253 || length <= zone_length + 1 || name[length - zone_length - 1] != '.' ||
        strcmp(name + length - zone_length, zone) != 0)
        abort();
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || *p == '.'))
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > DNSBL_FUZZ_MAX)
        return 0;
    char text[DNSBL_FUZZ_MAX + 1];
    memcpy(text, data, size);
    text[size] = '\0';

    char txt[DNSBL_TXT_MAX + 1];
    dnsbl_txt_clean((const char *)data, size, txt, sizeof txt);
    if (strlen(txt) > DNSBL_TXT_MAX)
        abort();
    for (const char *p = txt; *p; p++)
        if (*p < 0x20 || *p > 0x7e || *p == '"')
            abort();
    (void)dnsbl_rcpt_allowed("postmaster,abuse,hostmaster@example.org", text);

    char *saveptr = NULL;
    char *domain = strtok_r(text, "\n", &saveptr);
    char *address = domain ? strtok_r(NULL, "\n", &saveptr) : NULL;
    char *zones_text = address ? strtok_r(NULL, "\n", &saveptr) : NULL;
    char name[256];
    if (domain != NULL && dnsbl_domain_name(domain, "dbl.example", name, sizeof name) == 0)
        check_name(name, "dbl.example");
    if (address != NULL && dnsbl_ip_name(address, "bl.example", name, sizeof name) == 0)
        check_name(name, "bl.example");
    struct dnsbl_zones zones;
    char error[300];
    if (zones_text != NULL &&
        dnsbl_zones_parse(zones_text, DNSBL_MATCH_DEFAULT, &zones, error, sizeof error) == 0) {
        for (size_t i = 0; i < zones.count; i++) {
            if (zones.items[i].range_count == 0)
                abort();
            for (size_t r = 0; r < zones.items[i].range_count; r++)
                if (zones.items[i].ranges[r].first > zones.items[i].ranges[r].last)
                    abort();
            if (domain != NULL &&
                dnsbl_domain_name(domain, zones.items[i].name, name, sizeof name) == 0)
                check_name(name, zones.items[i].name);
            (void)dnsbl_answer_kind(&zones.items[i], domain ? domain : "");
        }
        dnsbl_zones_free(&zones);
    }
    return 0;
}
