/*
 * fuzz_spool.c - libFuzzer target for the queue file parser (spool_envelope_parse) and the
 * dot-stuffer (smtp_stuff_chunk / smtp_stuff_finish).
 *
 * Parser: any input either fails cleanly or gives an envelope that formats and parses back to
 * the same fields, with every recipient's state offset pointing at its state letter. Stuffer:
 * the input, split at a point taken from its first byte, is stuffed; undoing the stuffing of
 * the output must give the input back (plus the CRLF the end of data adds), and the stuffed
 * data must contain no CRLF.CRLF before its end. Aborts on any violation.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "memory.h"
#include "smtp_client.h"
#include "spool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_check(int condition)
{
    if (!condition)
        abort();
}

static void fuzz_parser(const char *text, size_t size)
{
    struct spool_envelope e;
    char error[128];
    if (spool_envelope_parse(text, size, &e, error, sizeof error) != 0)
        return;
    for (size_t i = 0; i < e.recipient_count; i++)
        fuzz_check(e.recipients[i].state_offset > 0 && (size_t)e.recipients[i].state_offset < size &&
                   strchr("PDF", text[e.recipients[i].state_offset]) != NULL);
    char *again = NULL;
    size_t length = 0;
    spool_envelope_format(&e, &again, &length);
    struct spool_envelope back;
    fuzz_check(spool_envelope_parse(again, length, &back, error, sizeof error) == 0);
    fuzz_check(strcmp(back.queue_id, e.queue_id) == 0 && strcmp(back.mail_from, e.mail_from) == 0 &&
               back.recipient_count == e.recipient_count && back.note_count == e.note_count &&
               back.attempts == e.attempts && back.next_attempt == e.next_attempt &&
               back.created == e.created && (size_t)back.message_offset == length);
    for (size_t i = 0; i < e.recipient_count; i++)
        fuzz_check(strcmp(back.recipients[i].address, e.recipients[i].address) == 0 &&
                   strcmp(back.recipients[i].params, e.recipients[i].params) == 0 &&
                   back.recipients[i].state == e.recipients[i].state);
    spool_envelope_clear(&back);
    spool_envelope_clear(&e);
    free(again);
}

static void fuzz_stuffer(const char *text, size_t size)
{
    size_t split = size > 0 ? (unsigned char)text[0] % (size + 1) : 0;
    char *out = xmalloc(2 * size + 8);
    struct smtp_stuff_state s = {.line_start = true};
    size_t used = smtp_stuff_chunk(&s, text, split, out);
    used += smtp_stuff_chunk(&s, text + split, size - split, out + used);
    used += smtp_stuff_finish(&s, out + used);
    /* the only end-of-data mark is the last one */
    for (size_t i = 0; i + 5 <= used; i++)
        if (memcmp(out + i, "\r\n.\r\n", 5) == 0)
            fuzz_check(i + 5 == used);
    fuzz_check(used >= 3 && memcmp(out + used - 3, ".\r\n", 3) == 0);
    /* undo: drop one leading dot of every line (a line starts after '\n') */
    char *plain = xmalloc(used + 1);
    size_t n = 0;
    int line_start = 1;
    for (size_t i = 0; i + 3 < used; i++) {
        if (line_start && out[i] == '.') {
            line_start = 0;
            continue;
        }
        plain[n++] = out[i];
        line_start = out[i] == '\n';
    }
    /* plain is the input plus the CRLF (or LF after a final CR) the end of data added */
    fuzz_check(n >= size && memcmp(plain, text, size) == 0);
    fuzz_check(n - size <= 2);
    free(plain);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_parser((const char *)data, size);
    fuzz_stuffer((const char *)data, size);
    return 0;
}
