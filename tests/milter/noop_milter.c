/*
 * noop_milter.c - the smallest libmilter milter: it registers no callback, so libmilter tells
 * the MTA in negotiation that it wants no stage (every SMFIP_NO* flag) and answers end of
 * message with continue. bench/milter.py measures what such a milter costs Porter.
 *
 * Usage: noop_milter SOCKET   (libmilter socket: unix:/PATH, inet:PORT@127.0.0.1)
 * Exits 0 on SIGTERM (smfi_main returns), 2 on bad usage, 1 when it cannot listen.
 * Memory: nothing is allocated per connection.
 */
#include <stdbool.h>
#include <stdio.h>

#include <libmilter/mfapi.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: noop_milter SOCKET\n");
        return 2;
    }
    struct smfiDesc description = {
        .xxfi_name = "noop",
        .xxfi_version = SMFI_VERSION,
    };
    if (smfi_setconn(argv[1]) != MI_SUCCESS || smfi_register(description) != MI_SUCCESS ||
        smfi_opensocket(true) != MI_SUCCESS) {
        fprintf(stderr, "noop_milter: cannot listen on %s\n", argv[1]);
        return 1;
    }
    return smfi_main() == MI_SUCCESS ? 0 : 1;
}
