/*
 * dns_packet.c - build DNS queries and decode replies (see dns_packet.h). Pure functions: no
 * I/O, no globals, no clock; only out of memory is fatal. The decoder trusts nothing in a
 * packet: every count, length and compression pointer is checked against the packet's end.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns_packet.h"
#include "memory.h"

#define DNS_HEADER_SIZE 12
#define DNS_CLASS_IN 1
#define DNS_TYPE_SOA 6
#define DNS_TYPE_OPT 41
#define DNS_FLAG_QR 0x8000
#define DNS_FLAG_TC 0x0200
#define DNS_FLAG_RD 0x0100
#define DNS_RCODE_NOERROR 0
#define DNS_RCODE_NXDOMAIN 3
#define DNS_POINTER_JUMPS_MAX 64
#define DNS_TEXT_NAME_MAX (DNS_WIRE_NAME_MAX * 4 + 2) /* every byte as \DDD, plus NUL */

static const char *const dns_verdict_names[DNS_REPLY_VERDICT_COUNT] = {
    "answer", "truncated", "server_failure", "mismatch", "malformed",
};

static const char *const dns_status_names[PORTER_DNS_STATUS_COUNT] = {
    "ok", "nxdomain", "nodata", "tempfail", "error",
};

static const struct {
    int type;
    const char *name;
    bool supported;
} dns_types[] = {
    {PORTER_DNS_A, "A", true},       {PORTER_DNS_NS, "NS", true},
    {PORTER_DNS_CNAME, "CNAME", true}, {DNS_TYPE_SOA, "SOA", false},
    {PORTER_DNS_PTR, "PTR", true},   {PORTER_DNS_MX, "MX", true},
    {PORTER_DNS_TXT, "TXT", true},   {PORTER_DNS_AAAA, "AAAA", true},
    {DNS_TYPE_OPT, "OPT", false},
};

const char *dns_reply_verdict_name(int verdict)
{
    return verdict >= 0 && verdict < DNS_REPLY_VERDICT_COUNT ? dns_verdict_names[verdict]
                                                             : "invalid";
}

const char *dns_status_name(int status)
{
    return status >= 0 && status < PORTER_DNS_STATUS_COUNT ? dns_status_names[status] : "invalid";
}

const char *dns_type_name(int type)
{
    for (size_t i = 0; i < sizeof dns_types / sizeof dns_types[0]; i++)
        if (dns_types[i].type == type)
            return dns_types[i].name;
    return "?";
}

bool dns_type_supported(int type)
{
    for (size_t i = 0; i < sizeof dns_types / sizeof dns_types[0]; i++)
        if (dns_types[i].type == type)
            return dns_types[i].supported;
    return false;
}

/* ---- names ---- */

int dns_name_wire(const char *name, unsigned char out[DNS_WIRE_NAME_MAX])
{
    size_t length = strnlen(name, DNS_NAME_MAX + 2);
    if (length > 0 && name[length - 1] == '.')
        length--;
    if (length == 0 || length > DNS_NAME_MAX)
        return -1;
    size_t used = 0, start = 0;
    for (size_t i = 0; i <= length; i++) {
        if (i < length && name[i] != '.') {
            unsigned char c = (unsigned char)name[i];
            if (c < 0x21 || c > 0x7e)
                return -1;
            continue;
        }
        size_t label = i - start;
        if (label == 0 || label > 63)
            return -1;
        out[used++] = (unsigned char)label;
        memcpy(out + used, name + start, label);
        used += label;
        start = i + 1;
    }
    out[used++] = 0;
    return (int)used;
}

/* dns_wire_equal - two wire names, ASCII case-insensitively (length bytes are < 64, so
 * folding letters never changes them) */
static bool dns_wire_equal(const unsigned char *a, size_t a_length, const unsigned char *b,
                           size_t b_length)
{
    if (a_length != b_length)
        return false;
    for (size_t i = 0; i < a_length; i++) {
        unsigned char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z')
            x = (unsigned char)(x + 32);
        if (y >= 'A' && y <= 'Z')
            y = (unsigned char)(y + 32);
        if (x != y)
            return false;
    }
    return true;
}

/* dns_wire_text - a wire name in presentation form (no final dot; "." for the root); odd
 * bytes as \DDD and '.' or '\' inside a label escaped, so the text is unambiguous */
static void dns_wire_text(const unsigned char *wire, char out[DNS_TEXT_NAME_MAX])
{
    size_t used = 0, position = 0;
    if (wire[0] == 0) {
        memcpy(out, ".", 2);
        return;
    }
    while (wire[position] != 0) {
        unsigned label = wire[position++];
        if (used > 0)
            out[used++] = '.';
        for (unsigned i = 0; i < label; i++) {
            unsigned char c = wire[position++];
            if (c == '.' || c == '\\') {
                out[used++] = '\\';
                out[used++] = (char)c;
            } else if (c >= 0x21 && c <= 0x7e) {
                out[used++] = (char)c;
            } else {
                used += (size_t)snprintf(out + used, 5, "\\%03u", c);
            }
        }
    }
    out[used] = '\0';
}

/*
 * dns_read_name - the (possibly compressed) name at *offset, in wire form; *offset moves past
 * it. Pointers must point before themselves and the output is at most 255 bytes, so this
 * always ends. 0, or -1 when malformed.
 */
static int dns_read_name(const unsigned char *packet, size_t length, size_t *offset,
                         unsigned char out[DNS_WIRE_NAME_MAX], size_t *out_length)
{
    size_t position = *offset, used = 0, after = 0;
    bool jumped = false;
    int jumps = 0;
    for (;;) {
        if (position >= length)
            return -1;
        unsigned c = packet[position];
        if ((c & 0xc0) == 0xc0) {
            if (position + 1 >= length)
                return -1;
            size_t target = ((size_t)(c & 0x3f) << 8) | packet[position + 1];
            if (target >= position || ++jumps > DNS_POINTER_JUMPS_MAX)
                return -1;
            if (!jumped)
                after = position + 2;
            jumped = true;
            position = target;
            continue;
        }
        if ((c & 0xc0) != 0)
            return -1; /* extended label types are not used */
        if (c == 0) {
            if (used + 1 > DNS_WIRE_NAME_MAX)
                return -1;
            out[used++] = 0;
            position++;
            break;
        }
        if (position + 1 + c > length || used + 1 + c + 1 > DNS_WIRE_NAME_MAX)
            return -1;
        out[used++] = (unsigned char)c;
        memcpy(out + used, packet + position + 1, c);
        used += c;
        position += 1 + c;
    }
    *offset = jumped ? after : position;
    *out_length = used;
    return 0;
}

int dns_reverse_name(const char *address, char *out, size_t size)
{
    unsigned char bytes[16];
    int n = -1;
    if (size > 0)
        out[0] = '\0';
    if (inet_pton(AF_INET, address, bytes) == 1) {
        n = snprintf(out, size, "%u.%u.%u.%u.in-addr.arpa", bytes[3], bytes[2], bytes[1],
                     bytes[0]);
    } else if (inet_pton(AF_INET6, address, bytes) == 1) {
        static const char hex[] = "0123456789abcdef";
        char text[128];
        size_t used = 0;
        for (int i = 15; i >= 0; i--) {
            text[used++] = hex[bytes[i] & 15];
            text[used++] = '.';
            text[used++] = hex[bytes[i] >> 4];
            text[used++] = '.';
        }
        memcpy(text + used, "ip6.arpa", sizeof "ip6.arpa");
        n = snprintf(out, size, "%s", text);
    }
    if (n < 0 || (size_t)n >= size) {
        if (size > 0)
            out[0] = '\0';
        return -1;
    }
    return 0;
}

/* ---- queries ---- */

static void dns_put16(unsigned char *p, unsigned value)
{
    p[0] = (unsigned char)(value >> 8);
    p[1] = (unsigned char)value;
}

static unsigned dns_get16(const unsigned char *p)
{
    return ((unsigned)p[0] << 8) | p[1];
}

static uint32_t dns_get32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

ssize_t dns_query_encode(unsigned id, int type, const char *name, bool edns, unsigned char *out,
                         size_t size)
{
    unsigned char wire[DNS_WIRE_NAME_MAX];
    int wire_length = dns_name_wire(name, wire);
    if (wire_length < 0 || type <= 0 || type > 65535)
        return -1;
    size_t needed = DNS_HEADER_SIZE + (size_t)wire_length + 4 + (edns ? 11 : 0);
    if (needed > size)
        return -1;
    memset(out, 0, DNS_HEADER_SIZE);
    dns_put16(out, id & 0xffff);
    dns_put16(out + 2, DNS_FLAG_RD);
    dns_put16(out + 4, 1);
    dns_put16(out + 10, edns ? 1 : 0);
    size_t used = DNS_HEADER_SIZE;
    memcpy(out + used, wire, (size_t)wire_length);
    used += (size_t)wire_length;
    dns_put16(out + used, (unsigned)type);
    dns_put16(out + used + 2, DNS_CLASS_IN);
    used += 4;
    if (edns) {
        out[used] = 0;                               /* root owner */
        dns_put16(out + used + 1, DNS_TYPE_OPT);
        dns_put16(out + used + 3, DNS_EDNS_PAYLOAD); /* class: our UDP payload size */
        memset(out + used + 5, 0, 6);                /* extended rcode, version, flags, rdlen */
        used += 11;
    }
    return (ssize_t)used;
}

/* ---- answers ---- */

struct porter_dns_answer *dns_answer_new(int status, int type, const char *name,
                                         const struct porter_dns_record *records, size_t count,
                                         unsigned ttl, const unsigned char *packet,
                                         size_t packet_length)
{
    size_t name_size = strlen(name) + 1;
    size_t text_size = 0;
    for (size_t i = 0; i < count; i++)
        text_size += records[i].length + 1;
    size_t size = sizeof(struct porter_dns_answer) + count * sizeof(struct porter_dns_record) +
                  name_size + text_size + (packet != NULL ? packet_length : 0);
    char *block = xmalloc(size);
    struct porter_dns_answer *answer = (struct porter_dns_answer *)(void *)block;
    struct porter_dns_record *copies =
        (struct porter_dns_record *)(void *)(block + sizeof(struct porter_dns_answer));
    char *data = (char *)(copies + count);
    memcpy(data, name, name_size);
    answer->name = data;
    data += name_size;
    for (size_t i = 0; i < count; i++) {
        memcpy(data, records[i].text, records[i].length);
        data[records[i].length] = '\0';
        copies[i].text = data;
        copies[i].length = records[i].length;
        copies[i].preference = records[i].preference;
        copies[i].ttl = records[i].ttl;
        data += records[i].length + 1;
    }
    answer->status = status;
    answer->type = type;
    answer->count = count;
    answer->records = count > 0 ? copies : NULL;
    answer->ttl = ttl;
    answer->packet = NULL;
    answer->packet_length = 0;
    if (packet != NULL) {
        memcpy(data, packet, packet_length);
        answer->packet = (const unsigned char *)data;
        answer->packet_length = packet_length;
    }
    return answer;
}

struct porter_dns_answer *dns_answer_copy(const struct porter_dns_answer *a)
{
    return dns_answer_new(a->status, a->type, a->name, a->records, a->count, a->ttl, a->packet,
                          a->packet_length);
}

void dns_answer_free(struct porter_dns_answer *answer)
{
    free(answer);
}

/* ---- replies ---- */

/* One resource record of a reply, by position. */
struct dns_rr {
    size_t owner;      /* offset of the owner name */
    unsigned type;
    unsigned class;
    uint32_t ttl;
    size_t rdata;      /* offset of the data */
    size_t rdlength;
};

/* Text of the records being collected (grows; freed by the caller). */
struct dns_texts {
    struct porter_dns_record items[DNS_RECORDS_MAX];
    size_t offsets[DNS_RECORDS_MAX];
    size_t count;
    char *bytes;
    size_t used, capacity;
};

/* dns_ttl - a received TTL as we use it: RFC 2181 8 (top bit set: 0), capped */
static unsigned dns_ttl(uint32_t ttl)
{
    if (ttl > 0x7fffffffu)
        return 0;
    return ttl > DNS_TTL_MAX ? DNS_TTL_MAX : (unsigned)ttl;
}

/* dns_read_rr - one record at *offset; 0 or -1 (malformed) */
static int dns_read_rr(const unsigned char *packet, size_t length, size_t *offset,
                       struct dns_rr *rr)
{
    unsigned char wire[DNS_WIRE_NAME_MAX];
    size_t wire_length;
    rr->owner = *offset;
    if (dns_read_name(packet, length, offset, wire, &wire_length) != 0)
        return -1;
    if (*offset + 10 > length)
        return -1;
    const unsigned char *p = packet + *offset;
    rr->type = dns_get16(p);
    rr->class = dns_get16(p + 2);
    rr->ttl = dns_get32(p + 4);
    rr->rdlength = dns_get16(p + 8);
    rr->rdata = *offset + 10;
    if (rr->rdata + rr->rdlength > length)
        return -1;
    *offset = rr->rdata + rr->rdlength;
    return 0;
}

/* dns_rr_owner_is - is the record's owner this wire name? */
static bool dns_rr_owner_is(const unsigned char *packet, size_t length, const struct dns_rr *rr,
                            const unsigned char *wire, size_t wire_length)
{
    unsigned char owner[DNS_WIRE_NAME_MAX];
    size_t owner_length, offset = rr->owner;
    if (dns_read_name(packet, length, &offset, owner, &owner_length) != 0)
        return false;
    return dns_wire_equal(owner, owner_length, wire, wire_length);
}

/* dns_rdata_name - the name that is (or ends) a record's data, in wire form: it must end
 * exactly at the data's end, and nothing it reads may lie beyond it (pointers lead earlier) */
static int dns_rdata_name(const unsigned char *packet, size_t start, size_t end,
                          unsigned char wire[DNS_WIRE_NAME_MAX], size_t *wire_length)
{
    size_t offset = start;
    if (dns_read_name(packet, end, &offset, wire, wire_length) != 0 || offset != end)
        return -1;
    return 0;
}

/* dns_texts_add - one record's text (copied) */
static void dns_texts_add(struct dns_texts *t, const char *text, size_t text_length,
                          unsigned preference, unsigned ttl)
{
    if (t->used + text_length + 1 > t->capacity) {
        size_t capacity = t->capacity ? t->capacity : 1024;
        while (capacity < t->used + text_length + 1)
            capacity *= 2;
        t->bytes = xrealloc(t->bytes, capacity);
        t->capacity = capacity;
    }
    memcpy(t->bytes + t->used, text, text_length);
    t->bytes[t->used + text_length] = '\0';
    t->offsets[t->count] = t->used;
    t->items[t->count].length = text_length;
    t->items[t->count].preference = preference;
    t->items[t->count].ttl = ttl;
    t->count++;
    t->used += text_length + 1;
}

/* dns_rdata_text - one record's data as text (see struct porter_dns_record); 0 or -1 */
static int dns_rdata_text(const unsigned char *packet, size_t length, const struct dns_rr *rr,
                          struct dns_texts *t)
{
    const unsigned char *data = packet + rr->rdata;
    size_t end = rr->rdata + rr->rdlength;
    unsigned ttl = dns_ttl(rr->ttl);
    char text[INET6_ADDRSTRLEN > DNS_TEXT_NAME_MAX ? INET6_ADDRSTRLEN : DNS_TEXT_NAME_MAX];
    unsigned char wire[DNS_WIRE_NAME_MAX];
    size_t wire_length;
    switch (rr->type) {
    case PORTER_DNS_A:
    case PORTER_DNS_AAAA:
        if (rr->rdlength != (rr->type == PORTER_DNS_A ? 4u : 16u))
            return -1;
        inet_ntop(rr->type == PORTER_DNS_A ? AF_INET : AF_INET6, data, text, sizeof text);
        dns_texts_add(t, text, strlen(text), 0, ttl);
        return 0;
    case PORTER_DNS_NS:
    case PORTER_DNS_CNAME:
    case PORTER_DNS_PTR:
        if (dns_rdata_name(packet, rr->rdata, end, wire, &wire_length) != 0)
            return -1;
        dns_wire_text(wire, text);
        dns_texts_add(t, text, strlen(text), 0, ttl);
        return 0;
    case PORTER_DNS_MX:
        if (rr->rdlength < 3 ||
            dns_rdata_name(packet, rr->rdata + 2, end, wire, &wire_length) != 0)
            return -1;
        dns_wire_text(wire, text);
        dns_texts_add(t, text, strlen(text), dns_get16(data), ttl);
        return 0;
    case PORTER_DNS_TXT: {
        if (rr->rdlength == 0)
            return -1;
        char *joined = xmalloc(rr->rdlength);
        size_t used = 0;
        for (size_t position = 0; position < rr->rdlength;) {
            size_t piece = data[position++];
            if (position + piece > rr->rdlength) {
                free(joined);
                return -1;
            }
            memcpy(joined + used, data + position, piece);
            used += piece;
            position += piece;
        }
        dns_texts_add(t, joined, used, 0, ttl);
        free(joined);
        return 0;
    }
    default:
        return -1;
    }
}

enum dns_reply_verdict dns_reply_decode(const unsigned char *packet, size_t length, unsigned id,
                                        int type, const char *name,
                                        struct porter_dns_answer **answer)
{
    *answer = NULL;
    unsigned char asked[DNS_WIRE_NAME_MAX];
    int asked_length = dns_name_wire(name, asked);
    if (asked_length < 0 || length < DNS_HEADER_SIZE)
        return DNS_REPLY_MISMATCH;
    unsigned flags = dns_get16(packet + 2);
    unsigned questions = dns_get16(packet + 4);
    unsigned answers = dns_get16(packet + 6);
    unsigned authorities = dns_get16(packet + 8);
    unsigned rcode = flags & 15;
    if (dns_get16(packet) != (id & 0xffff) || !(flags & DNS_FLAG_QR) || ((flags >> 11) & 15) != 0)
        return DNS_REPLY_MISMATCH;
    if (questions == 0 && rcode != DNS_RCODE_NOERROR && rcode != DNS_RCODE_NXDOMAIN) {
        /* FORMERR and friends may come without the question: still ours (the id matches) */
        *answer = dns_answer_new(PORTER_DNS_TEMPFAIL, type, name, NULL, 0, 0, packet, length);
        return DNS_REPLY_SERVER_FAILURE;
    }
    if (questions != 1)
        return DNS_REPLY_MISMATCH;
    size_t offset = DNS_HEADER_SIZE;
    unsigned char question[DNS_WIRE_NAME_MAX];
    size_t question_length;
    if (dns_read_name(packet, length, &offset, question, &question_length) != 0 ||
        offset + 4 > length)
        return DNS_REPLY_MISMATCH;
    if (!dns_wire_equal(question, question_length, asked, (size_t)asked_length) ||
        dns_get16(packet + offset) != (unsigned)type ||
        dns_get16(packet + offset + 2) != DNS_CLASS_IN)
        return DNS_REPLY_MISMATCH;
    offset += 4;
    if (flags & DNS_FLAG_TC)
        return DNS_REPLY_TRUNCATED;
    if (rcode != DNS_RCODE_NOERROR && rcode != DNS_RCODE_NXDOMAIN) {
        *answer = dns_answer_new(PORTER_DNS_TEMPFAIL, type, name, NULL, 0, 0, packet, length);
        return DNS_REPLY_SERVER_FAILURE;
    }

    /* Every answer and authority record, by position (each takes at least 11 bytes). */
    size_t total = (size_t)answers + authorities;
    if (total > (length - offset) / 11)
        return DNS_REPLY_MALFORMED;
    struct dns_rr *rrs = xcalloc(total + 1, sizeof *rrs);
    for (size_t i = 0; i < total; i++) {
        if (dns_read_rr(packet, length, &offset, &rrs[i]) != 0) {
            free(rrs);
            return DNS_REPLY_MALFORMED;
        }
    }

    /* Follow the CNAME chain from the name asked for. */
    unsigned char target[DNS_WIRE_NAME_MAX];
    size_t target_length = (size_t)asked_length;
    memcpy(target, asked, target_length);
    unsigned ttl = DNS_TTL_MAX;
    for (int links = 0; type != PORTER_DNS_CNAME; links++) {
        size_t i = 0;
        for (; i < answers; i++)
            if (rrs[i].type == PORTER_DNS_CNAME && rrs[i].class == DNS_CLASS_IN &&
                dns_rr_owner_is(packet, length, &rrs[i], target, target_length))
                break;
        if (i == answers)
            break;
        if (links == DNS_CNAME_MAX ||
            dns_rdata_name(packet, rrs[i].rdata, rrs[i].rdata + rrs[i].rdlength, target,
                           &target_length) != 0) {
            free(rrs);
            return DNS_REPLY_MALFORMED;
        }
        if (dns_ttl(rrs[i].ttl) < ttl)
            ttl = dns_ttl(rrs[i].ttl);
    }

    /* The records of the type asked for, owned by the end of the chain. */
    struct dns_texts *texts = xcalloc(1, sizeof *texts);
    int status = PORTER_DNS_NODATA;
    if (rcode == DNS_RCODE_NXDOMAIN) {
        status = PORTER_DNS_NXDOMAIN;
    } else {
        for (size_t i = 0; i < answers; i++) {
            if (rrs[i].type != (unsigned)type || rrs[i].class != DNS_CLASS_IN ||
                !dns_rr_owner_is(packet, length, &rrs[i], target, target_length))
                continue;
            if (texts->count == DNS_RECORDS_MAX ||
                dns_rdata_text(packet, length, &rrs[i], texts) != 0) {
                free(texts->bytes);
                free(texts);
                free(rrs);
                return DNS_REPLY_MALFORMED;
            }
            if (texts->items[texts->count - 1].ttl < ttl)
                ttl = texts->items[texts->count - 1].ttl;
        }
        if (texts->count > 0)
            status = PORTER_DNS_OK;
    }
    if (status != PORTER_DNS_OK) {
        /* RFC 2308 5: a negative answer lives min(SOA TTL, SOA MINIMUM) */
        ttl = 0;
        for (size_t i = answers; i < total; i++) {
            const struct dns_rr *rr = &rrs[i];
            if (rr->type != DNS_TYPE_SOA || rr->class != DNS_CLASS_IN || rr->rdlength < 22)
                continue;
            unsigned minimum = dns_ttl(dns_get32(packet + rr->rdata + rr->rdlength - 4));
            unsigned soa_ttl = dns_ttl(rr->ttl);
            ttl = minimum < soa_ttl ? minimum : soa_ttl;
            break;
        }
    }
    for (size_t i = 0; i < texts->count; i++)
        texts->items[i].text = texts->bytes + texts->offsets[i];
    *answer = dns_answer_new(status, type, name, texts->items, texts->count, ttl, packet, length);
    free(texts->bytes);
    free(texts);
    free(rrs);
    return DNS_REPLY_ANSWER;
}
