/*
 * ip_board.c - connections per client IP across worker processes (see ip_board.h).
 *
 * Layout: the region is records_count records, each page-aligned: a header, then a hash table
 * (open addressing, linear probing, power-of-two size) of entries {address, count, used}. An
 * entry once used keeps its address (its count may drop to 0) until its owner compacts the
 * table, which it does when more than half of the entries are used. Only the owner writes its
 * record (the master writes it only while no process owns it); other processes read it with
 * atomic loads.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ip_board.h"
#include "log.h"
#include "memory.h"

struct ip_board_entry {
    uint8_t address[16]; /* IPv6, or IPv4 mapped into IPv6 */
    uint32_t count;      /* open connections (atomic) */
    uint32_t used;       /* 1 once address is set (atomic, release after address) */
};

struct ip_board_record {
    uint32_t in_use;  /* a live process owns it (atomic; the master sets and clears it) */
    uint32_t used;    /* entries used (owner only) */
    uint32_t warned;  /* the table was full once: logged */
    uint32_t padding;
    struct ip_board_entry entries[];
};

struct ip_board {
    unsigned char *region;
    size_t region_size;
    size_t records_count;
    size_t record_size; /* bytes, page-aligned */
    size_t entries;     /* per record, a power of two */
    bool shared;
};

/* ip_board_key - 16 bytes for an address string (one that does not parse is hashed) */
static void ip_board_key(const char *ip, uint8_t key[16])
{
    struct in_addr v4;
    memset(key, 0, 16);
    if (inet_pton(AF_INET6, ip, key) == 1)
        return;
    if (inet_pton(AF_INET, ip, &v4) == 1) {
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &v4, 4);
        return;
    }
    uint64_t hash = 1469598103934665603ULL;
    for (const char *p = ip; *p != '\0'; p++)
        hash = (hash ^ (unsigned char)*p) * 1099511628211ULL;
    key[0] = 0xfe; /* not a routable IPv6 prefix a client can have */
    memcpy(key + 8, &hash, sizeof hash);
}

static size_t ip_board_hash(const uint8_t key[16])
{
    uint64_t hash = 1469598103934665603ULL;
    for (int i = 0; i < 16; i++)
        hash = (hash ^ key[i]) * 1099511628211ULL;
    return (size_t)(hash ^ (hash >> 29));
}

static struct ip_board_record *ip_board_record_at(const struct ip_board *b, size_t index)
{
    return (struct ip_board_record *)(void *)(b->region + index * b->record_size);
}

/* ip_board_find - the entry of key in a record, or NULL */
static struct ip_board_entry *ip_board_find(const struct ip_board *b, struct ip_board_record *r,
                                            const uint8_t key[16])
{
    size_t mask = b->entries - 1;
    size_t start = ip_board_hash(key) & mask;
    for (size_t probe = 0; probe < b->entries; probe++) {
        struct ip_board_entry *e = &r->entries[(start + probe) & mask];
        if (!__atomic_load_n(&e->used, __ATOMIC_ACQUIRE))
            return NULL;
        if (memcmp(e->address, key, 16) == 0)
            return e;
    }
    return NULL;
}

/* ip_board_insert - a new entry for key (the caller checked that there is room) */
static struct ip_board_entry *ip_board_insert(const struct ip_board *b, struct ip_board_record *r,
                                              const uint8_t key[16], uint32_t count)
{
    size_t mask = b->entries - 1;
    size_t start = ip_board_hash(key) & mask;
    for (size_t probe = 0; probe < b->entries; probe++) {
        struct ip_board_entry *e = &r->entries[(start + probe) & mask];
        if (__atomic_load_n(&e->used, __ATOMIC_RELAXED))
            continue;
        memcpy(e->address, key, 16);
        __atomic_store_n(&e->count, count, __ATOMIC_RELAXED);
        __atomic_store_n(&e->used, 1, __ATOMIC_RELEASE);
        r->used++;
        return e;
    }
    return NULL;
}

/* ip_board_wipe - every entry of a record unused */
static void ip_board_wipe(const struct ip_board *b, struct ip_board_record *r)
{
    size_t bytes = b->entries * sizeof(struct ip_board_entry);
    memset(r->entries, 0, bytes);
    r->used = 0;
}

/* ip_board_compact - drop the entries whose count is 0 (owner only) */
static void ip_board_compact(const struct ip_board *b, struct ip_board_record *r)
{
    struct ip_board_entry *live = xcalloc(r->used + 1, sizeof *live);
    size_t count = 0;
    for (size_t i = 0; i < b->entries; i++) {
        struct ip_board_entry *e = &r->entries[i];
        if (e->used && e->count > 0)
            live[count++] = *e;
    }
    ip_board_wipe(b, r);
    for (size_t i = 0; i < count; i++)
        ip_board_insert(b, r, live[i].address, live[i].count);
    free(live);
}

struct ip_board *ip_board_create(size_t records, size_t max_connections, bool shared)
{
    struct ip_board *b = xcalloc(1, sizeof *b);
    b->records_count = records > 0 ? records : 1;
    b->entries = 1024;
    while (b->entries < max_connections * 4 && b->entries < ((size_t)1 << 24))
        b->entries *= 2;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t bytes = sizeof(struct ip_board_record) + b->entries * sizeof(struct ip_board_entry);
    b->record_size = (bytes + page - 1) / page * page;
    b->region_size = b->record_size * b->records_count;
    b->shared = shared;
    void *region = mmap(NULL, b->region_size, PROT_READ | PROT_WRITE,
                        (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS, -1, 0);
    if (region == MAP_FAILED)
        abort();
    b->region = region;
    return b;
}

void ip_board_free(struct ip_board *b)
{
    if (b == NULL)
        return;
    munmap(b->region, b->region_size);
    free(b);
}

int ip_board_record_claim(struct ip_board *b)
{
    for (size_t i = 0; i < b->records_count; i++) {
        struct ip_board_record *r = ip_board_record_at(b, i);
        if (!__atomic_load_n(&r->in_use, __ATOMIC_ACQUIRE)) {
            /* its entries are zero: fresh from mmap, or wiped when released */
            r->used = 0;
            r->warned = 0;
            __atomic_store_n(&r->in_use, 1, __ATOMIC_RELEASE);
            return (int)i;
        }
    }
    return -1;
}

void ip_board_record_release(struct ip_board *b, int record)
{
    if (b == NULL || record < 0 || (size_t)record >= b->records_count)
        return;
    struct ip_board_record *r = ip_board_record_at(b, (size_t)record);
    __atomic_store_n(&r->in_use, 0, __ATOMIC_RELEASE); /* readers skip it from now on */
    ip_board_wipe(b, r);
    /* give the pages back; a later claim sees zeros either way */
    if (b->shared)
        madvise(r, b->record_size, MADV_REMOVE);
}

unsigned ip_board_count(const struct ip_board *b, const char *ip)
{
    if (b == NULL)
        return 0;
    uint8_t key[16];
    ip_board_key(ip, key);
    unsigned total = 0;
    for (size_t i = 0; i < b->records_count; i++) {
        struct ip_board_record *r = ip_board_record_at(b, i);
        if (!__atomic_load_n(&r->in_use, __ATOMIC_ACQUIRE))
            continue;
        struct ip_board_entry *e = ip_board_find(b, r, key);
        if (e != NULL)
            total += __atomic_load_n(&e->count, __ATOMIC_RELAXED);
    }
    return total;
}

bool ip_board_acquire(struct ip_board *b, int record, const char *ip, unsigned limit)
{
    if (ip_board_count(b, ip) >= limit)
        return false;
    if (b == NULL || record < 0 || (size_t)record >= b->records_count)
        return true;
    struct ip_board_record *r = ip_board_record_at(b, (size_t)record);
    uint8_t key[16];
    ip_board_key(ip, key);
    struct ip_board_entry *e = ip_board_find(b, r, key);
    if (e == NULL) {
        if (r->used + 1 > b->entries / 2)
            ip_board_compact(b, r);
        if (r->used + 1 <= b->entries / 4 * 3)
            e = ip_board_insert(b, r, key, 0);
    }
    if (e == NULL) {
        if (!r->warned)
            log_message(PORTER_LOG_WARNING, NULL, "event=ip_board_full entries=%zu error=\"more "
                        "client addresses than the per-IP table holds (sized for max_connections "
                        "at start): new ones are not counted until a restart\"", b->entries);
        r->warned = 1;
        return true;
    }
    __atomic_add_fetch(&e->count, 1, __ATOMIC_RELAXED);
    return true;
}

void ip_board_release(struct ip_board *b, int record, const char *ip)
{
    if (b == NULL || record < 0 || (size_t)record >= b->records_count)
        return;
    uint8_t key[16];
    ip_board_key(ip, key);
    struct ip_board_entry *e = ip_board_find(b, ip_board_record_at(b, (size_t)record), key);
    if (e != NULL && __atomic_load_n(&e->count, __ATOMIC_RELAXED) > 0)
        __atomic_sub_fetch(&e->count, 1, __ATOMIC_RELAXED);
}
