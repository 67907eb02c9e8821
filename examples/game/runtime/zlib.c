/*
 * The game's own libz.so.1: the "runtime" copy a game ships (as Steam Runtime or Flatpak
 * do), built differently from the host's zlib so that which copy a caller got shows.
 *
 * It implements exactly what the game uses (compress, compressBound, crc32, adler32,
 * zlibVersion) and nothing the host's GL stack needs, with stored (uncompressed) deflate
 * blocks: the streams are valid zlib, so the game's PNGs stay valid, but they are larger
 * than real zlib's and zlibVersion() says RUNTIME_ZLIB_VERSION. Mesa's driver loaded
 * against this copy fails (its libxml2 and LLVM need symbols and versions it lacks):
 * that is the clash capsule exists to prevent.
 */
#include <string.h>
#include <zlib.h>

#define RUNTIME_ZLIB_VERSION "1.2.13-capsule-demo-runtime"

/* Deflate's stored blocks hold at most 65535 bytes each. */
enum { STORED_MAX = 65535, ADLER_BASE = 65521 };

const char *zlibVersion(void) { return RUNTIME_ZLIB_VERSION; }

uLong adler32(uLong adler, const Bytef *buf, uInt len) {
    if (!buf)
        return 1;
    uLong a = adler & 0xffff, b = (adler >> 16) & 0xffff;
    for (uInt i = 0; i < len; i++) {
        a = (a + buf[i]) % ADLER_BASE;
        b = (b + a) % ADLER_BASE;
    }
    return b << 16 | a;
}

static uLong crc_table[256];

/* Filled before anything can call crc32, so no caller races to fill it. */
__attribute__((constructor)) static void fill_crc_table(void) {
    for (uLong n = 0; n < 256; n++) {
        uLong c = n;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xedb88320UL ^ (c >> 1) : c >> 1;
        crc_table[n] = c;
    }
}

uLong crc32(uLong crc, const Bytef *buf, uInt len) {
    if (!buf)
        return 0;
    crc = ~crc & 0xffffffffUL;
    for (uInt i = 0; i < len; i++)
        crc = crc_table[(crc ^ buf[i]) & 0xff] ^ (crc >> 8);
    return ~crc & 0xffffffffUL;
}

/* 2 bytes of zlib header, 5 bytes per stored block (an empty input still needs one), 4
 * bytes of Adler-32. */
uLong compressBound(uLong source_len) {
    uLong blocks = source_len / STORED_MAX + 1;
    return 2 + source_len + 5 * blocks + 4;
}

int compress(Bytef *dest, uLongf *dest_len, const Bytef *source, uLong source_len) {
    if (*dest_len < compressBound(source_len))
        return Z_BUF_ERROR;
    Bytef *out = dest;
    /* CMF: deflate with a 32 KiB window; FLG: fastest level, check bits making the pair a
     * multiple of 31. */
    *out++ = 0x78;
    *out++ = 0x01;
    uLong left = source_len;
    const Bytef *in = source;
    do {
        uLong n = left < STORED_MAX ? left : STORED_MAX;
        *out++ = n == left; /* BFINAL on the last block; BTYPE 00, stored */
        *out++ = n & 0xff;
        *out++ = n >> 8;
        *out++ = ~n & 0xff;
        *out++ = (~n >> 8) & 0xff;
        memcpy(out, in, n);
        out += n;
        in += n;
        left -= n;
    } while (left);
    uLong check = adler32(adler32(0, NULL, 0), source, source_len);
    *out++ = check >> 24;
    *out++ = check >> 16;
    *out++ = check >> 8;
    *out++ = check;
    *dest_len = out - dest;
    return Z_OK;
}
