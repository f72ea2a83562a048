/*
 * proxy_protocol.c - parse the PROXY protocol header (v1 text, v2 binary) a load balancer
 * sends first on a connection. Pure functions; the contract is in proxy_protocol.h.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

#include "proxy_protocol.h"

static const unsigned char proxy_v1_signature[] = "PROXY ";
#define PROXY_V1_SIGNATURE_LENGTH 6
static const unsigned char proxy_v2_signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                     0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* v2 constants (proxy-protocol.txt section 2.2) */
enum {
    PROXY_V2_COMMAND_LOCAL = 0x0,
    PROXY_V2_COMMAND_PROXY = 0x1,
    PROXY_V2_FAMILY_UNSPEC = 0x0,
    PROXY_V2_FAMILY_INET = 0x1,
    PROXY_V2_FAMILY_INET6 = 0x2,
    PROXY_V2_TRANSPORT_STREAM = 0x1,
    PROXY_V2_INET_LENGTH = 12,
    PROXY_V2_INET6_LENGTH = 36,
};

/* v2 TLV types */
enum {
    PP2_TYPE_ALPN = 0x01,
    PP2_TYPE_AUTHORITY = 0x02,
    PP2_TYPE_CRC32C = 0x03,
    PP2_TYPE_SSL = 0x20,
    PP2_SUBTYPE_SSL_VERSION = 0x21,
    PP2_SUBTYPE_SSL_CN = 0x22,
    PP2_SUBTYPE_SSL_CIPHER = 0x23,
    PP2_CLIENT_SSL = 0x01,
    PP2_CLIENT_CERT_CONN = 0x02,
    PP2_CLIENT_CERT_SESS = 0x04,
};

/* proxy_crc32c_update - CRC-32C over more bytes (reflected polynomial 0x82F63B78) */
static uint32_t proxy_crc32c_update(uint32_t crc, const unsigned char *bytes, size_t length)
{
    for (size_t i = 0; i < length; i++) {
        crc ^= bytes[i];
        for (int bit = 0; bit < 8; bit++)
            crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
    }
    return crc;
}

unsigned proxy_crc32c(const unsigned char *bytes, size_t length)
{
    return ~proxy_crc32c_update(0xFFFFFFFFu, bytes, length);
}

/* proxy_prefix_matches - the bytes we have agree with the start of signature */
static bool proxy_prefix_matches(const unsigned char *bytes, size_t length,
                                 const unsigned char *signature, size_t signature_length)
{
    size_t n = length < signature_length ? length : signature_length;
    return memcmp(bytes, signature, n) == 0;
}

/* proxy_copy_text - a TLV string into field when it is printable ASCII (no quotes or
 * backslashes: these facts go into log lines and headers) and fits; else field stays "" */
static void proxy_copy_text(char *field, size_t size, const unsigned char *value, size_t length)
{
    field[0] = '\0';
    if (length == 0 || length >= size)
        return;
    for (size_t i = 0; i < length; i++)
        if (value[i] < 0x20 || value[i] > 0x7e || value[i] == '"' || value[i] == '\\')
            return;
    memcpy(field, value, length);
    field[length] = '\0';
}

/* ---------------------------------------------------------------- v1 */

/* proxy_v1_port - "0" to "65535", no sign, no leading zero; -1 if bad */
static long proxy_v1_port(const char *text, size_t length)
{
    if (length == 0 || length > 5 || (text[0] == '0' && length > 1))
        return -1;
    long port = 0;
    for (size_t i = 0; i < length; i++) {
        if (text[i] < '0' || text[i] > '9')
            return -1;
        port = port * 10 + (text[i] - '0');
    }
    return port <= 65535 ? port : -1;
}

/* proxy_v1_address - one textual address of family into a socket address; false if bad */
static bool proxy_v1_address(int family, const char *text, size_t length, long port,
                             struct sockaddr_storage *out)
{
    char copy[INET6_ADDRSTRLEN + 1];
    if (length == 0 || length >= sizeof copy)
        return false;
    memcpy(copy, text, length);
    copy[length] = '\0';
    memset(out, 0, sizeof *out);
    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)out;
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        return inet_pton(AF_INET, copy, &in->sin_addr) == 1;
    }
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)port);
    return inet_pton(AF_INET6, copy, &in6->sin6_addr) == 1;
}

static enum proxy_parse_result proxy_v1_parse(const unsigned char *bytes, size_t length,
                                              struct proxy_header *header, const char **error)
{
    size_t limit = length < PROXY_V1_MAX ? length : PROXY_V1_MAX;
    size_t end = 0;
    while (end < limit && bytes[end] != '\n')
        end++;
    if (end == limit) {
        if (length >= PROXY_V1_MAX) {
            *error = "v1 line too long";
            return PROXY_PARSE_ERROR;
        }
        for (size_t i = 0; i < length; i++) {
            if (bytes[i] == '\r' && i + 1 < length) {
                *error = "v1 line has a bare CR";
                return PROXY_PARSE_ERROR;
            }
        }
        return PROXY_PARSE_INCOMPLETE;
    }
    if (end == 0 || bytes[end - 1] != '\r') {
        *error = "v1 line does not end with CRLF";
        return PROXY_PARSE_ERROR;
    }
    /* words of "PROXY PROTO SRC DST SPORT DPORT", single spaces */
    const char *line = (const char *)bytes;
    size_t line_length = end - 1;
    const char *words[7];
    size_t lengths[7];
    size_t count = 0;
    size_t start = 0;
    for (size_t i = 0; i <= line_length; i++) {
        if (i < line_length && line[i] != ' ')
            continue;
        if (count == 7) {
            *error = "v1 line has too many fields";
            return PROXY_PARSE_ERROR;
        }
        words[count] = line + start;
        lengths[count] = i - start;
        count++;
        start = i + 1;
    }
    for (size_t i = 0; i < line_length; i++) {
        unsigned char c = (unsigned char)line[i];
        if (c < 0x20 || c > 0x7e) {
            *error = "v1 line has a control character";
            return PROXY_PARSE_ERROR;
        }
    }
    header->version = 1;
    header->length = end + 1;
    if (count >= 2 && lengths[1] == 7 && memcmp(words[1], "UNKNOWN", 7) == 0) {
        header->local = true; /* the rest of the line is ignored (specification 2.1) */
        return PROXY_PARSE_DONE;
    }
    int family;
    if (count >= 2 && lengths[1] == 4 && memcmp(words[1], "TCP4", 4) == 0)
        family = AF_INET;
    else if (count >= 2 && lengths[1] == 4 && memcmp(words[1], "TCP6", 4) == 0)
        family = AF_INET6;
    else {
        *error = "v1 protocol is not TCP4, TCP6 or UNKNOWN";
        return PROXY_PARSE_ERROR;
    }
    if (count != 6) {
        *error = "v1 line does not have six fields";
        return PROXY_PARSE_ERROR;
    }
    long source_port = proxy_v1_port(words[4], lengths[4]);
    long destination_port = proxy_v1_port(words[5], lengths[5]);
    if (source_port < 0 || destination_port < 0) {
        *error = "v1 port is not a number from 0 to 65535";
        return PROXY_PARSE_ERROR;
    }
    if (!proxy_v1_address(family, words[2], lengths[2], source_port, &header->source) ||
        !proxy_v1_address(family, words[3], lengths[3], destination_port, &header->destination)) {
        *error = "v1 address is not of the named family";
        return PROXY_PARSE_ERROR;
    }
    return PROXY_PARSE_DONE;
}

/* ---------------------------------------------------------------- v2 */

/* proxy_v2_ssl - the SSL TLV: client flags, verify result, sub-TLVs; false if malformed */
static bool proxy_v2_ssl(const unsigned char *value, size_t length, struct proxy_header *header)
{
    if (length < 5)
        return false;
    unsigned client = value[0];
    uint32_t verify = (uint32_t)value[1] << 24 | (uint32_t)value[2] << 16 |
                      (uint32_t)value[3] << 8 | value[4];
    header->tls = (client & PP2_CLIENT_SSL) != 0;
    header->client_certificate = (client & (PP2_CLIENT_CERT_CONN | PP2_CLIENT_CERT_SESS)) != 0;
    header->certificate_verified = header->client_certificate && verify == 0;
    size_t position = 5;
    while (position < length) {
        if (length - position < 3)
            return false;
        unsigned type = value[position];
        size_t sub_length = (size_t)value[position + 1] << 8 | value[position + 2];
        position += 3;
        if (sub_length > length - position)
            return false;
        const unsigned char *sub = value + position;
        if (type == PP2_SUBTYPE_SSL_VERSION)
            proxy_copy_text(header->tls_version, sizeof header->tls_version, sub, sub_length);
        else if (type == PP2_SUBTYPE_SSL_CIPHER)
            proxy_copy_text(header->tls_cipher, sizeof header->tls_cipher, sub, sub_length);
        else if (type == PP2_SUBTYPE_SSL_CN)
            proxy_copy_text(header->tls_cn, sizeof header->tls_cn, sub, sub_length);
        position += sub_length;
    }
    return true;
}

/* proxy_v2_tlvs - the TLVs of bytes[start..total); NULL, or why they are bad */
static const char *proxy_v2_tlvs(const unsigned char *bytes, size_t start, size_t total,
                                 struct proxy_header *header)
{
    size_t position = start;
    while (position < total) {
        if (total - position < 3)
            return "v2 TLV runs past the header";
        unsigned type = bytes[position];
        size_t length = (size_t)bytes[position + 1] << 8 | bytes[position + 2];
        size_t value_at = position + 3;
        if (length > total - value_at)
            return "v2 TLV runs past the header";
        const unsigned char *value = bytes + value_at;
        switch (type) {
        case PP2_TYPE_ALPN:
            proxy_copy_text(header->alpn, sizeof header->alpn, value, length);
            break;
        case PP2_TYPE_AUTHORITY:
            proxy_copy_text(header->sni, sizeof header->sni, value, length);
            break;
        case PP2_TYPE_CRC32C: {
            if (length != 4)
                return "v2 CRC32C TLV is not 4 bytes";
            static const unsigned char zeros[4] = {0, 0, 0, 0};
            uint32_t crc = proxy_crc32c_update(0xFFFFFFFFu, bytes, value_at);
            crc = proxy_crc32c_update(crc, zeros, 4);
            crc = ~proxy_crc32c_update(crc, bytes + value_at + 4, total - value_at - 4);
            uint32_t sent = (uint32_t)value[0] << 24 | (uint32_t)value[1] << 16 |
                            (uint32_t)value[2] << 8 | value[3];
            if (crc != sent)
                return "v2 CRC32C does not match";
            break;
        }
        case PP2_TYPE_SSL:
            if (!proxy_v2_ssl(value, length, header))
                return "v2 SSL TLV is malformed";
            break;
        default: /* NOOP, UNIQUE_ID, NETNS, custom: skipped */
            break;
        }
        position = value_at + length;
    }
    return NULL;
}

static enum proxy_parse_result proxy_v2_parse(const unsigned char *bytes, size_t length,
                                              struct proxy_header *header, const char **error)
{
    if (length < 16)
        return PROXY_PARSE_INCOMPLETE;
    unsigned version = bytes[12] >> 4, command = bytes[12] & 0x0F;
    unsigned family = bytes[13] >> 4, transport = bytes[13] & 0x0F;
    size_t payload = (size_t)bytes[14] << 8 | bytes[15];
    if (version != 2) {
        *error = "v2 version is not 2";
        return PROXY_PARSE_ERROR;
    }
    if (command != PROXY_V2_COMMAND_LOCAL && command != PROXY_V2_COMMAND_PROXY) {
        *error = "v2 command is not LOCAL or PROXY";
        return PROXY_PARSE_ERROR;
    }
    if (payload > PROXY_V2_PAYLOAD_MAX) {
        *error = "v2 header too long";
        return PROXY_PARSE_ERROR;
    }
    if (length < 16 + payload)
        return PROXY_PARSE_INCOMPLETE;
    header->version = 2;
    header->length = 16 + payload;
    if (command == PROXY_V2_COMMAND_LOCAL || family == PROXY_V2_FAMILY_UNSPEC) {
        /* the balancer's own connection: the address block and TLVs are discarded */
        header->local = true;
        return PROXY_PARSE_DONE;
    }
    if (family != PROXY_V2_FAMILY_INET && family != PROXY_V2_FAMILY_INET6) {
        *error = "v2 family is not INET or INET6";
        return PROXY_PARSE_ERROR;
    }
    if (transport != PROXY_V2_TRANSPORT_STREAM) {
        *error = "v2 transport is not STREAM";
        return PROXY_PARSE_ERROR;
    }
    const unsigned char *block = bytes + 16;
    size_t needed = family == PROXY_V2_FAMILY_INET ? PROXY_V2_INET_LENGTH : PROXY_V2_INET6_LENGTH;
    if (payload < needed) {
        *error = "v2 address block too short";
        return PROXY_PARSE_ERROR;
    }
    memset(&header->source, 0, sizeof header->source);
    memset(&header->destination, 0, sizeof header->destination);
    if (family == PROXY_V2_FAMILY_INET) {
        struct sockaddr_in *source = (struct sockaddr_in *)&header->source;
        struct sockaddr_in *destination = (struct sockaddr_in *)&header->destination;
        source->sin_family = destination->sin_family = AF_INET;
        memcpy(&source->sin_addr, block, 4);
        memcpy(&destination->sin_addr, block + 4, 4);
        memcpy(&source->sin_port, block + 8, 2);
        memcpy(&destination->sin_port, block + 10, 2);
    } else {
        struct sockaddr_in6 *source = (struct sockaddr_in6 *)&header->source;
        struct sockaddr_in6 *destination = (struct sockaddr_in6 *)&header->destination;
        source->sin6_family = destination->sin6_family = AF_INET6;
        memcpy(&source->sin6_addr, block, 16);
        memcpy(&destination->sin6_addr, block + 16, 16);
        memcpy(&source->sin6_port, block + 32, 2);
        memcpy(&destination->sin6_port, block + 34, 2);
    }
    const char *problem = proxy_v2_tlvs(bytes, 16 + needed, 16 + payload, header);
    if (problem != NULL) {
        *error = problem;
        return PROXY_PARSE_ERROR;
    }
    return PROXY_PARSE_DONE;
}

enum proxy_parse_result proxy_header_parse(const unsigned char *bytes, size_t length,
                                           struct proxy_header *header, const char **error)
{
    memset(header, 0, sizeof *header);
    *error = NULL;
    if (length == 0)
        return PROXY_PARSE_INCOMPLETE;
    if (proxy_prefix_matches(bytes, length, proxy_v2_signature, sizeof proxy_v2_signature)) {
        if (length < sizeof proxy_v2_signature)
            return PROXY_PARSE_INCOMPLETE;
        return proxy_v2_parse(bytes, length, header, error);
    }
    if (proxy_prefix_matches(bytes, length, proxy_v1_signature, PROXY_V1_SIGNATURE_LENGTH)) {
        if (length < PROXY_V1_SIGNATURE_LENGTH)
            return PROXY_PARSE_INCOMPLETE;
        return proxy_v1_parse(bytes, length, header, error);
    }
    *error = bytes[0] == 0x0D ? "bad v2 signature" : "not a PROXY protocol header";
    return PROXY_PARSE_ERROR;
}
