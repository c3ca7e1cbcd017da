/*
 * pseudogate.core._fastmac: the token construction's hot loop in C (optional accelerator).
 *
 * Tokens are key_id "_" base32(HMAC-SHA256(K_d, v)[0:20]) (docs/tokens.md). In Python the
 * per-value cost is dominated by interpreter overhead (hmac copy/update/digest, base32), not by
 * SHA-256. This module computes whole batches: the HMAC inner and outer states are computed
 * once per key, each value then costs two SHA-256 compressions (SHA-NI instructions when the
 * CPU has them, portable C otherwise), and each token string is built directly. It also checks
 * plain-ASCII NHS numbers, and runs the pg-fbf-v1 linkage encoding (encode_column, block_keys
 * below). Everything here has a pure-Python equivalent in tokens.py / normalise.py /
 * encoding.py, which is used when this module is absent; tests check both give equal results.
 *
 * Key state lives only inside HmacSha256 objects (not picklable; zeroed when freed).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#define HAVE_SHANI_BUILD 1
#include <cpuid.h>
#include <immintrin.h>
#endif

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

static const uint32_t IV256[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                  0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

typedef void (*compress_fn)(uint32_t state[8], const uint8_t *blocks, size_t n);

#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void compress_portable(uint32_t state[8], const uint8_t *p, size_t n) {
    uint32_t w[64];
    while (n--) {
        for (int i = 0; i < 16; i++)
            w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
                   (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
        for (int i = 16; i < 64; i++) {
            uint32_t s0 = ROTR(w[i - 15], 7) ^ ROTR(w[i - 15], 18) ^ (w[i - 15] >> 3);
            uint32_t s1 = ROTR(w[i - 2], 17) ^ ROTR(w[i - 2], 19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16] + s0 + w[i - 7] + s1;
        }
        uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
        uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
        for (int i = 0; i < 64; i++) {
            uint32_t t1 = h + (ROTR(e, 6) ^ ROTR(e, 11) ^ ROTR(e, 25)) + ((e & f) ^ (~e & g)) +
                          K256[i] + w[i];
            uint32_t t2 = (ROTR(a, 2) ^ ROTR(a, 13) ^ ROTR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
            h = g; g = f; f = e; e = d + t1;
            d = c; c = b; b = a; a = t1 + t2;
        }
        state[0] += a; state[1] += b; state[2] += c; state[3] += d;
        state[4] += e; state[5] += f; state[6] += g; state[7] += h;
        p += 64;
    }
}

#ifdef HAVE_SHANI_BUILD
/* SHA-256 with the x86 SHA extensions: 4 rounds per step, message schedule in 4 registers. */
__attribute__((target("sha,sse4.1,ssse3"))) static void
compress_shani(uint32_t state[8], const uint8_t *p, size_t n) {
    const __m128i mask = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i tmp = _mm_loadu_si128((const __m128i *)&state[0]);
    __m128i s1 = _mm_loadu_si128((const __m128i *)&state[4]);
    tmp = _mm_shuffle_epi32(tmp, 0xB1);         /* CDAB */
    s1 = _mm_shuffle_epi32(s1, 0x1B);           /* EFGH */
    __m128i s0 = _mm_alignr_epi8(tmp, s1, 8);   /* ABEF */
    s1 = _mm_blend_epi16(s1, tmp, 0xF0);        /* CDGH */
    while (n--) {
        __m128i abef = s0, cdgh = s1, m[4], msg;
        for (int g = 0; g < 16; g++) {
            if (g < 4)
                m[g] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * g)), mask);
            msg = _mm_add_epi32(m[g & 3], _mm_loadu_si128((const __m128i *)&K256[4 * g]));
            s1 = _mm_sha256rnds2_epu32(s1, s0, msg);
            if (g >= 3 && g <= 14) {
                __m128i t = _mm_alignr_epi8(m[g & 3], m[(g + 3) & 3], 4);
                m[(g + 1) & 3] = _mm_add_epi32(m[(g + 1) & 3], t);
                m[(g + 1) & 3] = _mm_sha256msg2_epu32(m[(g + 1) & 3], m[g & 3]);
            }
            msg = _mm_shuffle_epi32(msg, 0x0E);
            s0 = _mm_sha256rnds2_epu32(s0, s1, msg);
            if (g >= 1 && g <= 12)
                m[(g + 3) & 3] = _mm_sha256msg1_epu32(m[(g + 3) & 3], m[g & 3]);
        }
        s0 = _mm_add_epi32(s0, abef);
        s1 = _mm_add_epi32(s1, cdgh);
        p += 64;
    }
    tmp = _mm_shuffle_epi32(s0, 0x1B);          /* FEBA */
    s1 = _mm_shuffle_epi32(s1, 0xB1);           /* DCHG */
    s0 = _mm_blend_epi16(tmp, s1, 0xF0);        /* DCBA */
    s1 = _mm_alignr_epi8(s1, tmp, 8);           /* HGFE */
    _mm_storeu_si128((__m128i *)&state[0], s0);
    _mm_storeu_si128((__m128i *)&state[4], s1);
}

/* Two independent single-block compressions interleaved: sha256rnds2 has a long latency, so
 * two dependency chains side by side nearly double the throughput. */
__attribute__((target("sha,sse4.1,ssse3"))) static void
compress2_shani(uint32_t *state_a, const uint8_t *pa, uint32_t *state_b, const uint8_t *pb) {
    const __m128i mask = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    uint32_t *states[2] = {state_a, state_b};
    const uint8_t *blocks[2] = {pa, pb};
    __m128i s0[2], s1[2], abef[2], cdgh[2], m[2][4], msg[2];
    for (int k = 0; k < 2; k++) {
        __m128i tmp = _mm_loadu_si128((const __m128i *)&states[k][0]);
        s1[k] = _mm_loadu_si128((const __m128i *)&states[k][4]);
        tmp = _mm_shuffle_epi32(tmp, 0xB1);
        s1[k] = _mm_shuffle_epi32(s1[k], 0x1B);
        s0[k] = _mm_alignr_epi8(tmp, s1[k], 8);
        s1[k] = _mm_blend_epi16(s1[k], tmp, 0xF0);
        abef[k] = s0[k];
        cdgh[k] = s1[k];
    }
    for (int g = 0; g < 16; g++) {
        __m128i kc = _mm_loadu_si128((const __m128i *)&K256[4 * g]);
        for (int k = 0; k < 2; k++) {
            if (g < 4)
                m[k][g] = _mm_shuffle_epi8(
                    _mm_loadu_si128((const __m128i *)(blocks[k] + 16 * g)), mask);
            msg[k] = _mm_add_epi32(m[k][g & 3], kc);
            s1[k] = _mm_sha256rnds2_epu32(s1[k], s0[k], msg[k]);
        }
        for (int k = 0; k < 2; k++) {
            if (g >= 3 && g <= 14) {
                __m128i t = _mm_alignr_epi8(m[k][g & 3], m[k][(g + 3) & 3], 4);
                m[k][(g + 1) & 3] = _mm_add_epi32(m[k][(g + 1) & 3], t);
                m[k][(g + 1) & 3] = _mm_sha256msg2_epu32(m[k][(g + 1) & 3], m[k][g & 3]);
            }
            msg[k] = _mm_shuffle_epi32(msg[k], 0x0E);
            s0[k] = _mm_sha256rnds2_epu32(s0[k], s1[k], msg[k]);
            if (g >= 1 && g <= 12)
                m[k][(g + 3) & 3] = _mm_sha256msg1_epu32(m[k][(g + 3) & 3], m[k][g & 3]);
        }
    }
    for (int k = 0; k < 2; k++) {
        s0[k] = _mm_add_epi32(s0[k], abef[k]);
        s1[k] = _mm_add_epi32(s1[k], cdgh[k]);
        __m128i tmp = _mm_shuffle_epi32(s0[k], 0x1B);
        s1[k] = _mm_shuffle_epi32(s1[k], 0xB1);
        s0[k] = _mm_blend_epi16(tmp, s1[k], 0xF0);
        s1[k] = _mm_alignr_epi8(s1[k], tmp, 8);
        _mm_storeu_si128((__m128i *)&states[k][0], s0[k]);
        _mm_storeu_si128((__m128i *)&states[k][4], s1[k]);
    }
}

static int cpu_has_shani(void) {
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    if (!(c & bit_SSE4_1) || !(c & bit_SSSE3)) return 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    return (b >> 29) & 1;
}
#endif

static void compress2_portable(uint32_t *state_a, const uint8_t *pa, uint32_t *state_b,
                               const uint8_t *pb) {
    compress_portable(state_a, pa, 1);
    compress_portable(state_b, pb, 1);
}

typedef void (*compress2_fn)(uint32_t *, const uint8_t *, uint32_t *, const uint8_t *);

static compress_fn compress = compress_portable;
static compress2_fn compress2 = compress2_portable;
static const char *compress_name = "portable";

static void store_be32(uint8_t *out, uint32_t v) {
    out[0] = (uint8_t)(v >> 24); out[1] = (uint8_t)(v >> 16);
    out[2] = (uint8_t)(v >> 8); out[3] = (uint8_t)v;
}

/* Finish a SHA-256 whose state has already absorbed `done` bytes (a multiple of 64). */
static void sha256_finish(uint32_t st[8], uint64_t done, const uint8_t *msg, size_t len,
                          uint8_t out[32]) {
    size_t full = len / 64;
    if (full) compress(st, msg, full);
    uint8_t block[128];
    size_t rest = len - full * 64;
    memcpy(block, msg + full * 64, rest);
    block[rest] = 0x80;
    size_t total = (rest + 9 <= 64) ? 64 : 128;
    memset(block + rest + 1, 0, total - rest - 1);
    uint64_t bits = (done + len) * 8;
    for (int i = 0; i < 8; i++) block[total - 1 - i] = (uint8_t)(bits >> (8 * i));
    compress(st, block, total / 64);
    for (int i = 0; i < 8; i++) store_be32(out + 4 * i, st[i]);
}

static const char B32[] = "abcdefghijklmnopqrstuvwxyz234567";

/* 20 bytes -> 32 lowercase RFC 4648 base32 characters (no padding needed). */
static void base32_20(const uint8_t *in, char *out) {
    for (int g = 0; g < 4; g++) {
        const uint8_t *b = in + 5 * g;
        uint64_t v = (uint64_t)b[0] << 32 | (uint64_t)b[1] << 24 | (uint64_t)b[2] << 16 |
                     (uint64_t)b[3] << 8 | (uint64_t)b[4];
        for (int i = 0; i < 8; i++) out[8 * g + i] = B32[(v >> (35 - 5 * i)) & 31];
    }
}

/* ---- HmacSha256: a key's precomputed inner/outer states ------------------------------ */

typedef struct {
    PyObject_HEAD
    uint32_t inner[8];
    uint32_t outer[8];
} HmacObject;

static int Hmac_init(HmacObject *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"key", NULL};
    Py_buffer key;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*", kwlist, &key)) return -1;
    uint8_t k[64] = {0}, pad[64];
    if (key.len > 64) {
        uint32_t st[8];
        memcpy(st, IV256, sizeof st);
        sha256_finish(st, 0, key.buf, (size_t)key.len, k);
    } else {
        memcpy(k, key.buf, (size_t)key.len);
    }
    PyBuffer_Release(&key);
    for (int i = 0; i < 64; i++) pad[i] = k[i] ^ 0x36;
    memcpy(self->inner, IV256, sizeof self->inner);
    compress(self->inner, pad, 1);
    for (int i = 0; i < 64; i++) pad[i] = k[i] ^ 0x5c;
    memcpy(self->outer, IV256, sizeof self->outer);
    compress(self->outer, pad, 1);
    memset(k, 0, sizeof k);
    memset(pad, 0, sizeof pad);
    return 0;
}

static void Hmac_dealloc(HmacObject *self) {
    memset(self->inner, 0, sizeof self->inner);
    memset(self->outer, 0, sizeof self->outer);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static void hmac_token_chars(const HmacObject *h, const uint8_t *msg, size_t len, char *out) {
    uint32_t st[8];
    uint8_t inner[32], outer[32];
    memcpy(st, h->inner, sizeof st);
    sha256_finish(st, 64, msg, len, inner);
    memcpy(st, h->outer, sizeof st);
    sha256_finish(st, 64, inner, 32, outer);
    base32_20(outer, out);
}

/* One padded SHA-256 block for a message of at most 55 bytes after `done` absorbed bytes. */
static void one_block(uint8_t block[64], uint64_t done, const uint8_t *msg, size_t len) {
    memcpy(block, msg, len);
    block[len] = 0x80;
    memset(block + len + 1, 0, 55 - len);
    uint64_t bits = (done + len) * 8;
    for (int i = 0; i < 8; i++) block[63 - i] = (uint8_t)(bits >> (8 * i));
}

static void digest_be(const uint32_t st[8], uint8_t out[32]) {
    for (int i = 0; i < 8; i++) store_be32(out + 4 * i, st[i]);
}

/* Two digests at once (both messages at most 55 bytes): inner and outer hashes interleaved. */
static void hmac_digest2(const HmacObject *h, const uint8_t *ma, size_t la, const uint8_t *mb,
                         size_t lb, uint8_t da[32], uint8_t db[32]) {
    uint32_t sa[8], sb[8];
    uint8_t ba[64], bb[64];
    memcpy(sa, h->inner, sizeof sa);
    memcpy(sb, h->inner, sizeof sb);
    one_block(ba, 64, ma, la);
    one_block(bb, 64, mb, lb);
    compress2(sa, ba, sb, bb);
    digest_be(sa, da);
    digest_be(sb, db);
    memcpy(sa, h->outer, sizeof sa);
    memcpy(sb, h->outer, sizeof sb);
    one_block(ba, 64, da, 32);
    one_block(bb, 64, db, 32);
    compress2(sa, ba, sb, bb);
    digest_be(sa, da);
    digest_be(sb, db);
}

/* Two tokens at once (both messages at most 55 bytes). */
static void hmac_token_chars2(const HmacObject *h, const uint8_t *ma, size_t la,
                              const uint8_t *mb, size_t lb, char *outa, char *outb) {
    uint8_t da[32], db[32];
    hmac_digest2(h, ma, la, mb, lb, da, db);
    base32_20(da, outa);
    base32_20(db, outb);
}

static void hmac_token_batch(const HmacObject *h, Py_ssize_t n, const char **ptrs,
                             const Py_ssize_t *lens, char *chars) {
    Py_ssize_t i = 0;
    while (i < n) {
        if (i + 1 < n && lens[i] <= 55 && lens[i + 1] <= 55) {
            hmac_token_chars2(h, (const uint8_t *)ptrs[i], (size_t)lens[i],
                              (const uint8_t *)ptrs[i + 1], (size_t)lens[i + 1],
                              chars + 32 * i, chars + 32 * (i + 1));
            i += 2;
        } else {
            hmac_token_chars(h, (const uint8_t *)ptrs[i], (size_t)lens[i], chars + 32 * i);
            i += 1;
        }
    }
}

/* tokens(prefix: str, values: sequence of str) -> list[str]: prefix + base32(mac[:20]). */
static PyObject *Hmac_tokens(HmacObject *self, PyObject *args) {
    PyObject *prefix, *values;
    if (!PyArg_ParseTuple(args, "UO:tokens", &prefix, &values)) return NULL;
    if (!PyUnicode_IS_ASCII(prefix)) {
        PyErr_SetString(PyExc_ValueError, "token prefix must be ASCII");
        return NULL;
    }
    Py_ssize_t plen = PyUnicode_GET_LENGTH(prefix);
    const char *pdata = (const char *)PyUnicode_1BYTE_DATA(prefix);
    /* A tuple holds its own references, so the GIL can be released while hashing. */
    PyObject *items = PySequence_Tuple(values);
    if (items == NULL) return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(items);
    const char **ptrs = PyMem_Malloc(sizeof(char *) * (size_t)(n ? n : 1));
    Py_ssize_t *lens = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(n ? n : 1));
    char *chars = PyMem_Malloc((size_t)(n ? n : 1) * 32);
    PyObject *result = NULL;
    if (!ptrs || !lens || !chars) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = PyTuple_GET_ITEM(items, i);
        if (!PyUnicode_Check(v)) {
            PyErr_Format(PyExc_TypeError, "values[%zd] is not a str", i);
            goto done;
        }
        ptrs[i] = PyUnicode_AsUTF8AndSize(v, &lens[i]);
        if (ptrs[i] == NULL) goto done; /* e.g. lone surrogates */
    }
    if (n >= 256) {
        Py_BEGIN_ALLOW_THREADS
        hmac_token_batch(self, n, ptrs, lens, chars);
        Py_END_ALLOW_THREADS
    } else {
        hmac_token_batch(self, n, ptrs, lens, chars);
    }
    result = PyList_New(n);
    if (result == NULL) goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *s = PyUnicode_New(plen + 32, 127);
        if (s == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        char *d = (char *)PyUnicode_1BYTE_DATA(s);
        memcpy(d, pdata, (size_t)plen);
        memcpy(d + plen, chars + 32 * i, 32);
        PyList_SET_ITEM(result, i, s);
    }
done:
    PyMem_Free(ptrs);
    PyMem_Free(lens);
    PyMem_Free(chars);
    Py_DECREF(items);
    return result;
}

static PyObject *Hmac_reduce(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    PyErr_SetString(PyExc_TypeError, "HmacSha256 holds key material and cannot be pickled");
    return NULL;
}

static PyMethodDef Hmac_methods[] = {
    {"tokens", (PyCFunction)Hmac_tokens, METH_VARARGS,
     "tokens(prefix, values) -> [prefix + base32(HMAC-SHA256(key, utf8(v))[:20]).lower()]"},
    {"__reduce__", (PyCFunction)Hmac_reduce, METH_NOARGS, NULL},
    {"__reduce_ex__", (PyCFunction)Hmac_reduce, METH_O, NULL},
    {NULL, NULL, 0, NULL}};

static PyTypeObject HmacType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pseudogate.core._fastmac.HmacSha256",
    .tp_doc = "HMAC-SHA256 under one key, for batches of token values.",
    .tp_basicsize = sizeof(HmacObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Hmac_init,
    .tp_dealloc = (destructor)Hmac_dealloc,
    .tp_methods = Hmac_methods,
};

/* ---- NHS numbers ------------------------------------------------------------------------ */

enum { NHS_OK = 0, NHS_EMPTY = 1, NHS_BAD_FORMAT = 2, NHS_CHECK_DIGIT = 3, NHS_NOT_TEXT = 4,
       NHS_NOT_ASCII = 5 };

/* The members of normalise.SPACES + HYPHENS below U+0100 (tests check they agree): ASCII
 * whitespace, '-', NEL U+0085, no-break space U+00A0 and soft hyphen U+00AD. */
static int nhs_drop(unsigned char c) {
    return c == ' ' || c == '-' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f) ||
           c == 0x85 || c == 0xa0 || c == 0xad;
}

static int nhs_check(const char *d) {
    int total = 0;
    for (int i = 0; i < 9; i++) total += (d[i] - '0') * (10 - i);
    int check = 11 - total % 11;
    if (check == 11) check = 0;
    return check != 10 && check == d[9] - '0';
}

/* nhs_normalise(values) -> (normalised: list[str | None], problems: list[(index, code)]).
 * Codes: 1 empty, 2 bad_format, 3 invalid_check_digit, 4 not_text, 5 beyond Latin-1 (the
 * caller normalises those in Python, where every Unicode space and hyphen is known). */
static PyObject *nhs_normalise(PyObject *module, PyObject *values) {
    (void)module;
    PyObject *items = PySequence_Fast(values, "values must be a sequence");
    if (items == NULL) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(items);
    PyObject **src = PySequence_Fast_ITEMS(items);
    PyObject *out = PyList_New(n);
    PyObject *problems = PyList_New(0);
    if (out == NULL || problems == NULL) goto fail;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = src[i];
        int code;
        char digits[10];
        if (!PyUnicode_Check(v)) {
            code = NHS_NOT_TEXT;
        } else if (PyUnicode_KIND(v) != PyUnicode_1BYTE_KIND) {
            code = NHS_NOT_ASCII; /* beyond Latin-1: the caller decides in Python */
        } else {
            const unsigned char *s = PyUnicode_1BYTE_DATA(v);
            Py_ssize_t len = PyUnicode_GET_LENGTH(v), kept = 0;
            int clean = 1, seen = 0, bad = 0;
            for (Py_ssize_t j = 0; j < len; j++) {
                unsigned char c = s[j];
                if (nhs_drop(c)) {
                    clean = 0;
                    continue;
                }
                seen = 1;
                if (c < '0' || c > '9' || kept == 10) {
                    bad = 1;
                    break;
                }
                digits[kept++] = (char)c;
            }
            if (!seen) code = NHS_EMPTY;
            else if (bad || kept != 10) code = NHS_BAD_FORMAT;
            else if (!nhs_check(digits)) code = NHS_CHECK_DIGIT;
            else code = NHS_OK;
            if (code == NHS_OK) {
                PyObject *norm;
                if (clean) {
                    Py_INCREF(v);
                    norm = v;
                } else {
                    norm = PyUnicode_New(10, 127);
                    if (norm == NULL) goto fail;
                    memcpy(PyUnicode_1BYTE_DATA(norm), digits, 10);
                }
                PyList_SET_ITEM(out, i, norm);
                continue;
            }
        }
        Py_INCREF(Py_None);
        PyList_SET_ITEM(out, i, Py_None);
        PyObject *pair = Py_BuildValue("(ni)", i, code);
        if (pair == NULL || PyList_Append(problems, pair) < 0) {
            Py_XDECREF(pair);
            goto fail;
        }
        Py_DECREF(pair);
    }
    Py_DECREF(items);
    PyObject *result = PyTuple_Pack(2, out, problems);
    Py_DECREF(out);
    Py_DECREF(problems);
    return result;
fail:
    Py_DECREF(items);
    Py_XDECREF(out);
    Py_XDECREF(problems);
    return NULL;
}

/* ---- pg-fbf-v1 encoding kernels (core/encoding.py, docs/linkage.md) ----------------------
 *
 * encode_column() encodes one identity field of a batch: it finds the distinct values,
 * normalises each plain-ASCII value in C exactly as core/identity.py does (names, dates in the
 * fast forms, postcodes, addresses), asks the Python spec function (encoding._spec_*) for every
 * other value, then -- with the GIL released -- computes the HMAC tokens and the Bloom filter
 * of every distinct value and copies each record's segment into the output rows.
 * block_keys() computes the five blocking keys of every record the same way.
 * The pure-Python path in encoding.py computes the same bytes; tests check they agree. */

#define FBF_MAXTOK 8

typedef struct {
    char *p;
    size_t len, cap;
} Buf;

static int buf_reserve(Buf *b, size_t extra) {
    if (extra > SIZE_MAX / 2 - b->len) return -1;
    size_t need = b->len + extra;
    if (need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < need) cap *= 2;
    char *p = PyMem_RawRealloc(b->p, cap);
    if (p == NULL) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

static int buf_add(Buf *b, const void *data, size_t len) {
    if (buf_reserve(b, len) < 0) return -1;
    if (len) memcpy(b->p + b->len, data, len);
    b->len += len;
    return 0;
}

/* What one distinct value contributes (the `_Spec` of encoding.py, as offsets into arenas):
 * token messages (UTF-8, in the byte arena; length -1 for an empty slot) and the code points
 * of its padded q-gram texts (in the code-point arena, texts separated by 0). */
typedef struct {
    int flags;
    int ntok;
    Py_ssize_t tok_off[FBF_MAXTOK];
    Py_ssize_t tok_len[FBF_MAXTOK];
    size_t cp_off, cp_len; /* in uint32 units */
} Spec;

typedef struct {
    Buf bytes;  /* token messages */
    Buf cps;    /* uint32 code points */
    Buf specs;  /* Spec[] */
} Arena;

static void arena_free(Arena *a) {
    PyMem_RawFree(a->bytes.p);
    PyMem_RawFree(a->cps.p);
    PyMem_RawFree(a->specs.p);
}

static Spec *spec_new(Arena *a) {
    Spec s;
    memset(&s, 0, sizeof s);
    s.cp_off = a->cps.len / 4;
    if (buf_add(&a->specs, &s, sizeof s) < 0) return NULL;
    return (Spec *)(a->specs.p + a->specs.len - sizeof s);
}

/* Token slot: prefix + text (text NULL and len -1: an empty slot). Specs move when the arena
 * grows, so they are addressed by index. */
static int spec_tok(Arena *a, size_t si, const char *prefix, const char *text, Py_ssize_t len) {
    Spec *s = (Spec *)a->specs.p + si;
    if (s->ntok >= FBF_MAXTOK) return -1;
    if (text == NULL) {
        s->tok_off[s->ntok] = 0;
        s->tok_len[s->ntok] = -1;
        s->ntok++;
        return 0;
    }
    size_t pl = strlen(prefix);
    size_t off = a->bytes.len;
    if (buf_add(&a->bytes, prefix, pl) < 0 || buf_add(&a->bytes, text, (size_t)len) < 0)
        return -1;
    s = (Spec *)a->specs.p + si;
    s->tok_off[s->ntok] = (Py_ssize_t)off;
    s->tok_len[s->ntok] = (Py_ssize_t)(pl + (size_t)len);
    s->ntok++;
    return 0;
}

/* "_" + text + "_" as code points (ASCII text), after a 0 separator when not the first. */
static int spec_text_ascii(Arena *a, size_t si, const char *text, size_t len) {
    Spec *s = (Spec *)a->specs.p + si;
    int first = s->cp_len == 0;
    if (buf_reserve(&a->cps, 4 * (len + 3)) < 0) return -1;
    uint32_t *d = (uint32_t *)(a->cps.p + a->cps.len);
    size_t k = 0;
    if (!first) d[k++] = 0;
    d[k++] = '_';
    for (size_t i = 0; i < len; i++) d[k++] = (unsigned char)text[i];
    d[k++] = '_';
    a->cps.len += 4 * k;
    s = (Spec *)a->specs.p + si;
    s->cp_len += k;
    return 0;
}

/* ASCII normalisation, exactly as identity.py's fast paths for ASCII values. */

static int fold_deleted(unsigned char c) { return c == '\'' || c == '`' || c == '.'; }
static unsigned char lower_ascii(unsigned char c) {
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

/* Runs of a-z (letters_only) or a-z0-9 of the folded value: written to `dst` (len bytes at
 * most) one after another; starts/lengths of the runs in `starts`/`lens` (len/2+1 at most). */
static size_t ascii_runs(const unsigned char *s, size_t len, int letters_only, char *dst,
                         size_t *starts, size_t *lens) {
    size_t nruns = 0, w = 0;
    int in = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = s[i];
        if (fold_deleted(c)) continue;
        c = lower_ascii(c);
        int keep = (c >= 'a' && c <= 'z') || (!letters_only && c >= '0' && c <= '9');
        if (keep) {
            if (!in) {
                starts[nruns] = w;
                lens[nruns] = 0;
                nruns++;
                in = 1;
            }
            dst[w++] = (char)c;
            lens[nruns - 1]++;
        } else {
            in = 0;
        }
    }
    return nruns;
}

static char soundex_code(char c) {
    switch (c) {
    case 'b': case 'f': case 'p': case 'v': return '1';
    case 'c': case 'g': case 'j': case 'k': case 'q': case 's': case 'x': case 'z': return '2';
    case 'd': case 't': return '3';
    case 'l': return '4';
    case 'm': case 'n': return '5';
    case 'r': return '6';
    default: return 0;
    }
}

/* Soundex of a non-empty run of a-z (identity.soundex). */
static void soundex_az(const char *p, size_t len, char out[4]) {
    size_t k = 0;
    out[k++] = (char)(p[0] - 32);
    char last = soundex_code(p[0]);
    for (size_t i = 1; i < len && k < 4; i++) {
        char code = soundex_code(p[i]);
        if (code && code != last) out[k++] = code;
        if (p[i] != 'h' && p[i] != 'w') last = code;
    }
    while (k < 4) out[k++] = '0';
}

static int all_az(const char *p, Py_ssize_t len) {
    if (len <= 0) return 0;
    for (Py_ssize_t i = 0; i < len; i++)
        if (p[i] < 'a' || p[i] > 'z') return 0;
    return 1;
}

enum { FBF_GIVEN = 0, FBF_FAMILY = 1, FBF_DOB = 2, FBF_SEX = 3, FBF_POSTCODE = 4,
       FBF_ADDRESS = 5 };

typedef struct {
    char *text;       /* scratch for runs */
    size_t *starts, *lens;
    size_t cap;
} Scratch;

static int scratch_fit(Scratch *sc, size_t len) {
    if (len + 2 <= sc->cap) return 0;
    if (len > SIZE_MAX / (8 * sizeof(size_t))) return -1;
    size_t cap = len + 2 > 256 ? len + 2 : 256;
    char *t = PyMem_RawRealloc(sc->text, cap + 8);
    if (t == NULL) return -1;
    sc->text = t;
    size_t *a = PyMem_RawRealloc(sc->starts, cap * sizeof(size_t));
    if (a == NULL) return -1;
    sc->starts = a;
    size_t *b = PyMem_RawRealloc(sc->lens, cap * sizeof(size_t));
    if (b == NULL) return -1;
    sc->lens = b;
    sc->cap = cap;
    return 0;
}

/* Return 1 when handled (spec appended, *comp set to a new reference), 0 to defer to the
 * Python spec function, -1 on error. */
static int c_name(Arena *a, Scratch *sc, int given, const unsigned char *s, size_t len,
                  PyObject *nicknames, PyObject **comp) {
    if (scratch_fit(sc, len) < 0) return -1;
    size_t n = ascii_runs(s, len, 1, sc->text, sc->starts, sc->lens);
    Spec *sp = spec_new(a);
    if (sp == NULL) return -1;
    size_t si = a->specs.len / sizeof(Spec) - 1;
    if (n == 0) { /* missing */
        *comp = Py_NewRef(Py_None);
        return 1;
    }
    const char *first = sc->text + sc->starts[0];
    size_t flen = sc->lens[0];
    char phon[4];
    if (given) {
        const char *nick = first;
        Py_ssize_t nlen = (Py_ssize_t)flen;
        PyObject *key = PyUnicode_FromStringAndSize(first, (Py_ssize_t)flen);
        if (key == NULL) return -1;
        PyObject *val = PyDict_GetItemWithError(nicknames, key); /* borrowed */
        Py_DECREF(key);
        if (val == NULL && PyErr_Occurred()) return -1;
        if (val != NULL) {
            if (!PyUnicode_Check(val) || !PyUnicode_IS_ASCII(val)) goto defer;
            nick = (const char *)PyUnicode_1BYTE_DATA(val);
            nlen = PyUnicode_GET_LENGTH(val);
            if (!all_az(nick, nlen)) goto defer;
        }
        soundex_az(nick, (size_t)nlen, phon);
        if (spec_tok(a, si, "first:", first, (Py_ssize_t)flen) < 0 ||
            spec_tok(a, si, "nick:", nick, nlen) < 0 || spec_tok(a, si, "phon:", phon, 4) < 0)
            return -1;
        ((Spec *)a->specs.p + si)->flags = 1;
    } else {
        int flags = 1;
        for (size_t i = 0; i < 3; i++) {
            if (i < n) {
                if (spec_tok(a, si, "part:", sc->text + sc->starts[i], (Py_ssize_t)sc->lens[i]) < 0)
                    return -1;
                flags |= 2 << i;
            } else if (spec_tok(a, si, "", NULL, -1) < 0) {
                return -1;
            }
        }
        soundex_az(first, flen, phon);
        if (spec_tok(a, si, "phon:", phon, 4) < 0) return -1;
        ((Spec *)a->specs.p + si)->flags = flags;
    }
    for (size_t i = 0; i < n; i++)
        if (spec_text_ascii(a, si, sc->text + sc->starts[i], sc->lens[i]) < 0) return -1;
    *comp = PyUnicode_FromStringAndSize(phon, 4);
    return *comp == NULL ? -1 : 1;
defer:
    a->specs.len -= sizeof(Spec);
    return 0;
}

static int two_digits(const unsigned char *p) {
    return p[0] >= '0' && p[0] <= '9' && p[1] >= '0' && p[1] <= '9';
}

/* identity._fast_date: YYYY-MM-DD, DD/MM/YYYY, YYYYMMDD with a plain month and day. */
static int c_date(Arena *a, const unsigned char *s, size_t len, PyObject **comp) {
    const unsigned char *y, *m, *d;
    if (len == 8) {
        y = s; m = s + 4; d = s + 6;
    } else if (len == 10 && s[4] == '-' && s[7] == '-') {
        y = s; m = s + 5; d = s + 8;
    } else if (len == 10 && s[2] == '/' && s[5] == '/') {
        y = s + 6; m = s + 3; d = s;
    } else {
        return 0;
    }
    if (!two_digits(y) || !two_digits(y + 2) || !two_digits(m) || !two_digits(d)) return 0;
    int year = (y[0] - '0') * 1000 + (y[1] - '0') * 100 + (y[2] - '0') * 10 + (y[3] - '0');
    int month = (m[0] - '0') * 10 + (m[1] - '0');
    int day = (d[0] - '0') * 10 + (d[1] - '0');
    if (!(year >= 1 && month >= 1 && month <= 12 && day >= 1 && day <= 31)) return 0;
    char text[10], num[3], dm[5];
    memcpy(text, y, 4);
    text[4] = '-';
    memcpy(text + 5, m, 2);
    text[7] = '-';
    memcpy(text + 8, d, 2);
    Spec *sp = spec_new(a);
    if (sp == NULL) return -1;
    size_t si = a->specs.len / sizeof(Spec) - 1;
    sp->flags = 3;
    if (spec_tok(a, si, "date:", text, 10) < 0 || spec_tok(a, si, "year:", text, 4) < 0)
        return -1;
    int nl = snprintf(num, sizeof num, "%d", month);
    if (spec_tok(a, si, "dm:", num, nl) < 0) return -1;
    nl = snprintf(num, sizeof num, "%d", day);
    if (spec_tok(a, si, "dm:", num, nl) < 0) return -1;
    if (month <= day) {
        memcpy(dm, text + 5, 2); dm[2] = '|'; memcpy(dm + 3, text + 8, 2);
    } else {
        memcpy(dm, text + 8, 2); dm[2] = '|'; memcpy(dm + 3, text + 5, 2);
    }
    PyObject *py = PyUnicode_FromStringAndSize(text, 4);
    PyObject *pdm = PyUnicode_FromStringAndSize(dm, 5);
    if (py == NULL || pdm == NULL) {
        Py_XDECREF(py);
        Py_XDECREF(pdm);
        return -1;
    }
    *comp = PyTuple_Pack(2, py, pdm);
    Py_DECREF(py);
    Py_DECREF(pdm);
    return *comp == NULL ? -1 : 1;
}

static int in_set(char c, const char *set) { return c != 0 && strchr(set, c) != NULL; }
static int is_upper(char c) { return c >= 'A' && c <= 'Z'; }
static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* normalise._POSTCODE_RE.fullmatch of an upper-cased compact value. */
static int postcode_valid(const char *p, size_t len) {
    if (len == 6 && memcmp(p, "GIR0AA", 6) == 0) return 1;
    if (len < 5 || len > 7) return 0;
    const char *in = p + len - 3;
    if (!is_digit(in[0])) return 0;
    static const char inward[] = "ABDEFGHJLNPQRSTUWXYZ";
    if (!in_set(in[1], inward) || !in_set(in[2], inward)) return 0;
    size_t ol = len - 3; /* the outward code: [A-PR-UWYZ](...) */
    if (!in_set(p[0], "ABCDEFGHIJKLMNOPRSTUWYZ")) return 0;
    const char *o = p + 1;
    size_t r = ol - 1;
    if ((r == 1 && is_digit(o[0])) || (r == 2 && is_digit(o[0]) && is_digit(o[1]))) return 1;
    if (r >= 2 && r <= 3 && in_set(o[0], "ABCDEFGHKLMNOPQRSTUVWXY") && is_digit(o[1]) &&
        (r == 2 || in_set(o[2], "0123456789ABEHMNPRVWXY")))
        return 1;
    if (r == 2 && is_digit(o[0]) && in_set(o[1], "ABCDEFGHJKPSTUW")) return 1;
    return 0;
}

/* identity._OUTWARD_RE: [A-Z]{1,2}[0-9][0-9A-Z]? */
static int outward_valid(const char *p, size_t len) {
    size_t i = 0;
    if (len < 2 || !is_upper(p[0])) return 0;
    i = 1;
    if (is_upper(p[1])) i = 2;
    if (i >= len || !is_digit(p[i])) {
        /* [A-Z]{1,2} is greedy but may back off: with two letters, one letter then a digit */
        return 0;
    }
    i++;
    if (i == len) return 1;
    if (i + 1 == len && (is_digit(p[i]) || is_upper(p[i]))) return 1;
    return 0;
}

static int c_postcode(Arena *a, Scratch *sc, const unsigned char *s, size_t len, PyObject **comp) {
    if (scratch_fit(sc, len) < 0) return -1;
    char *t = sc->text;
    size_t w = 0;
    for (size_t i = 0; i < len; i++) { /* the ASCII members of SPACES are dropped */
        unsigned char c = s[i];
        if (c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f)) continue;
        t[w++] = (char)((c >= 'a' && c <= 'z') ? c - 32 : c);
    }
    Spec *sp;
    size_t si;
    if (w > 0 && postcode_valid(t, w)) {
        char p[8];
        memcpy(p, t, w - 3);
        p[w - 3] = ' ';
        memcpy(p + w - 2, t + w - 3, 3);
        size_t pl = w + 1;
        sp = spec_new(a);
        if (sp == NULL) return -1;
        si = a->specs.len / sizeof(Spec) - 1;
        sp->flags = 7;
        if (spec_tok(a, si, "full:", p, (Py_ssize_t)pl) < 0 ||
            spec_tok(a, si, "sector:", p, (Py_ssize_t)pl - 2) < 0 ||
            spec_tok(a, si, "out:", p, (Py_ssize_t)pl - 4) < 0 ||
            spec_text_ascii(a, si, t, w) < 0)
            return -1;
        *comp = PyUnicode_FromStringAndSize(p, (Py_ssize_t)pl);
        return *comp == NULL ? -1 : 1;
    }
    w = 0; /* not a valid postcode: its ASCII letters and digits, upper-cased */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = s[i];
        if ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z')) t[w++] = (char)c;
        else if (c >= 'a' && c <= 'z') t[w++] = (char)(c - 32);
    }
    sp = spec_new(a);
    if (sp == NULL) return -1;
    si = a->specs.len / sizeof(Spec) - 1;
    if (w == 0) {
        *comp = Py_NewRef(Py_None);
        return 1;
    }
    int out = outward_valid(t, w);
    sp->flags = 1 | (out ? 4 : 0);
    if (spec_tok(a, si, "full:", t, (Py_ssize_t)w) < 0 || spec_tok(a, si, "", NULL, -1) < 0 ||
        spec_tok(a, si, "out:", out ? t : NULL, out ? (Py_ssize_t)w : -1) < 0 ||
        spec_text_ascii(a, si, t, w) < 0)
        return -1;
    *comp = PyUnicode_FromStringAndSize(t, (Py_ssize_t)w);
    return *comp == NULL ? -1 : 1;
}

typedef struct {
    const char *from, *to;
    Py_ssize_t flen, tlen;
} Abbrev;

static int c_address(Arena *a, Scratch *sc, const unsigned char *s, size_t len,
                     const Abbrev *abbrevs, Py_ssize_t nabbrev, PyObject **comp) {
    if (scratch_fit(sc, len) < 0) return -1;
    size_t n = ascii_runs(s, len, 0, sc->text, sc->starts, sc->lens);
    Spec *sp = spec_new(a);
    if (sp == NULL) return -1;
    size_t si = a->specs.len / sizeof(Spec) - 1;
    *comp = Py_NewRef(Py_None);
    if (n == 0) return 1;
    sp->flags = 1;
    /* "_" + words (abbreviations spelt out) joined by " " + "_" */
    size_t longest = 0;
    for (Py_ssize_t j = 0; j < nabbrev; j++)
        if ((size_t)abbrevs[j].tlen > longest) longest = (size_t)abbrevs[j].tlen;
    if (longest > 1024 || len > SIZE_MAX / (4 * (longest + 2)) - 4) return -1;
    if (buf_reserve(&a->cps, 4 * (n * (longest + 1) + len + 4)) < 0) return -1;
    uint32_t *d = (uint32_t *)(a->cps.p + a->cps.len);
    size_t k = 0;
    d[k++] = '_';
    for (size_t i = 0; i < n; i++) {
        const char *wd = sc->text + sc->starts[i];
        size_t wl = sc->lens[i];
        for (Py_ssize_t j = 0; j < nabbrev; j++) {
            if ((size_t)abbrevs[j].flen == wl && memcmp(abbrevs[j].from, wd, wl) == 0) {
                wd = abbrevs[j].to;
                wl = (size_t)abbrevs[j].tlen;
                break;
            }
        }
        if (i) d[k++] = ' ';
        for (size_t c = 0; c < wl; c++) d[k++] = (unsigned char)wd[c];
    }
    d[k++] = '_';
    a->cps.len += 4 * k;
    ((Spec *)a->specs.p + si)->cp_len = k;
    return 1;
}

/* A spec returned by the Python spec function: (flags, [padded text], [token or None], comp). */
static int py_spec(Arena *a, PyObject *spec, PyObject **comp) {
    if (!PyTuple_Check(spec) || PyTuple_GET_SIZE(spec) != 4) {
        PyErr_SetString(PyExc_TypeError, "spec function must return a 4-tuple");
        return -1;
    }
    Spec *sp = spec_new(a);
    if (sp == NULL) return -1;
    size_t si = a->specs.len / sizeof(Spec) - 1;
    long flags = PyLong_AsLong(PyTuple_GET_ITEM(spec, 0));
    if (flags == -1 && PyErr_Occurred()) return -1;
    if (flags < 0 || flags > 255) {
        PyErr_SetString(PyExc_ValueError, "spec flags out of range");
        return -1;
    }
    sp->flags = (int)flags;
    PyObject *texts = PyTuple_GET_ITEM(spec, 1), *toks = PyTuple_GET_ITEM(spec, 2);
    if (!PyList_Check(texts) || !PyList_Check(toks)) {
        PyErr_SetString(PyExc_TypeError, "spec texts and tokens must be lists");
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(toks); i++) {
        PyObject *t = PyList_GET_ITEM(toks, i);
        const char *u = NULL;
        Py_ssize_t ul = -1;
        if (t != Py_None) {
            if (!PyUnicode_Check(t)) {
                PyErr_SetString(PyExc_TypeError, "spec tokens must be str or None");
                return -1;
            }
            u = PyUnicode_AsUTF8AndSize(t, &ul);
            if (u == NULL) return -1;
        }
        if (spec_tok(a, si, "", u, ul) < 0) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "too many spec tokens");
            return -1;
        }
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(texts); i++) {
        PyObject *t = PyList_GET_ITEM(texts, i);
        if (!PyUnicode_Check(t)) {
            PyErr_SetString(PyExc_TypeError, "spec texts must be str");
            return -1;
        }
        Py_ssize_t tl = PyUnicode_GET_LENGTH(t);
        int kind = PyUnicode_KIND(t);
        const void *data = PyUnicode_DATA(t);
        if ((size_t)tl > (SIZE_MAX / 4) - 2 || buf_reserve(&a->cps, 4 * ((size_t)tl + 1)) < 0) {
            PyErr_NoMemory();
            return -1;
        }
        sp = (Spec *)a->specs.p + si;
        uint32_t *d = (uint32_t *)(a->cps.p + a->cps.len);
        size_t k = 0;
        if (sp->cp_len) d[k++] = 0;
        for (Py_ssize_t j = 0; j < tl; j++) {
            Py_UCS4 c = PyUnicode_READ(kind, data, j);
            if (c >= 0xD800 && c <= 0xDFFF) {
                PyErr_SetString(PyExc_UnicodeError, "q-gram text holds a lone surrogate");
                return -1;
            }
            d[k++] = c;
        }
        a->cps.len += 4 * k;
        sp->cp_len += k;
    }
    *comp = Py_NewRef(PyTuple_GET_ITEM(spec, 3));
    return 1;
}

/* ---- HMAC digests (raw bytes) in batches, without the GIL ---- */

static void hmac_digest1(const HmacObject *h, const uint8_t *msg, size_t len, uint8_t out[32]) {
    uint32_t st[8];
    uint8_t inner[32];
    memcpy(st, h->inner, sizeof st);
    sha256_finish(st, 64, msg, len, inner);
    memcpy(st, h->outer, sizeof st);
    sha256_finish(st, 64, inner, 32, out);
}


/* The first `keep` (<= 32) bytes of each message's HMAC, to out + keep * i. */
static void hmac_batch(const HmacObject *h, size_t n, const char *const *ptrs, const size_t *lens,
                       uint8_t *out, size_t keep) {
    uint8_t da[32], db[32];
    size_t i = 0;
    while (i < n) {
        if (i + 1 < n && lens[i] <= 55 && lens[i + 1] <= 55) {
            hmac_digest2(h, (const uint8_t *)ptrs[i], lens[i], (const uint8_t *)ptrs[i + 1],
                         lens[i + 1], da, db);
            memcpy(out + keep * i, da, keep);
            memcpy(out + keep * (i + 1), db, keep);
            i += 2;
        } else {
            hmac_digest1(h, (const uint8_t *)ptrs[i], lens[i], da);
            memcpy(out + keep * i, da, keep);
            i += 1;
        }
    }
}

static size_t utf8_put(uint32_t c, uint8_t *o) {
    if (c < 0x80) { o[0] = (uint8_t)c; return 1; }
    if (c < 0x800) { o[0] = (uint8_t)(0xC0 | (c >> 6)); o[1] = (uint8_t)(0x80 | (c & 63)); return 2; }
    if (c < 0x10000) {
        o[0] = (uint8_t)(0xE0 | (c >> 12)); o[1] = (uint8_t)(0x80 | ((c >> 6) & 63));
        o[2] = (uint8_t)(0x80 | (c & 63));
        return 3;
    }
    o[0] = (uint8_t)(0xF0 | (c >> 18)); o[1] = (uint8_t)(0x80 | ((c >> 12) & 63));
    o[2] = (uint8_t)(0x80 | ((c >> 6) & 63)); o[3] = (uint8_t)(0x80 | (c & 63));
    return 4;
}

/* Bit positions of the bigram (a, b): big-endian 16-bit words of HMAC("q:" a b) mod m. ASCII
 * bigrams are cached per encoder in `cache` (128 * 128 words: bit 63 set, then k 16-bit
 * positions), read and written atomically so concurrent calls may share it. */
static void bigram_positions(const HmacObject *h, uint64_t *cache, uint32_t a, uint32_t b,
                             int m, int k, uint16_t pos[3]) {
    uint64_t *slot = NULL;
    if (cache != NULL && a < 128 && b < 128) {
        slot = &cache[a * 128 + b];
        uint64_t e = __atomic_load_n(slot, __ATOMIC_RELAXED);
        if (e >> 63) {
            int ok = 1;
            for (int j = 0; j < k; j++) {
                pos[j] = (uint16_t)(e >> (16 * j));
                ok &= pos[j] < m; /* never trust a cache filled for another layout */
            }
            if (ok) return;
        }
    }
    uint8_t msg[10], d[32];
    size_t len = 2;
    msg[0] = 'q';
    msg[1] = ':';
    len += utf8_put(a, msg + len);
    len += utf8_put(b, msg + len);
    hmac_digest1(h, msg, len, d);
    uint64_t e = (uint64_t)1 << 63;
    for (int j = 0; j < k; j++) {
        pos[j] = (uint16_t)((((unsigned)d[2 * j] << 8) | d[2 * j + 1]) % (unsigned)m);
        e |= (uint64_t)pos[j] << (16 * j);
    }
    if (slot != NULL) __atomic_store_n(slot, e, __ATOMIC_RELAXED);
}

typedef struct {
    Py_hash_t hash;
    PyObject *key; /* borrowed: the values sequence holds it */
    int32_t idx;
} Slot;

static Py_hash_t text_hash(PyObject *v) {
    if (PyUnicode_CheckExact(v)) return PyObject_Hash(v);
    /* a str subclass may define its own hash: hash the text instead (FNV-1a) */
    Py_ssize_t len = PyUnicode_GET_LENGTH(v) * PyUnicode_KIND(v);
    const unsigned char *p = PyUnicode_DATA(v);
    uint64_t x = 1469598103934665603ULL;
    for (Py_ssize_t i = 0; i < len; i++) x = (x ^ p[i]) * 1099511628211ULL;
    return (Py_hash_t)(x >> 1);
}

static int same_text(PyObject *a, PyObject *b) {
    if (a == b) return 1;
    Py_ssize_t la = PyUnicode_GET_LENGTH(a);
    if (la != PyUnicode_GET_LENGTH(b) || PyUnicode_KIND(a) != PyUnicode_KIND(b)) return 0;
    return memcmp(PyUnicode_DATA(a), PyUnicode_DATA(b), (size_t)la * PyUnicode_KIND(a)) == 0;
}

/* Phase 2 (no GIL): the segment of every distinct spec. Returns -1 when out of memory. */
static int fbf_segments(const HmacObject *h, const Arena *a, size_t nd, uint8_t *seg,
                        size_t seg_len, int m, int k, int width, uint64_t *cache) {
    const Spec *specs = (const Spec *)a->specs.p;
    size_t ntok = 0;
    for (size_t d = 0; d < nd; d++)
        for (int t = 0; t < specs[d].ntok; t++)
            if (specs[d].tok_len[t] >= 0) ntok++;
    const char **ptrs = PyMem_RawMalloc(sizeof(char *) * (ntok + 1));
    size_t *lens = PyMem_RawMalloc(sizeof(size_t) * (ntok + 1));
    uint8_t *macs = PyMem_RawMalloc(4 * (ntok + 1));
    if (ptrs == NULL || lens == NULL || macs == NULL) {
        PyMem_RawFree(ptrs);
        PyMem_RawFree(lens);
        PyMem_RawFree(macs);
        return -1;
    }
    size_t j = 0;
    for (size_t d = 0; d < nd; d++)
        for (int t = 0; t < specs[d].ntok; t++)
            if (specs[d].tok_len[t] >= 0) {
                ptrs[j] = a->bytes.p + specs[d].tok_off[t];
                lens[j] = (size_t)specs[d].tok_len[t];
                j++;
            }
    hmac_batch(h, ntok, ptrs, lens, macs, 4);
    const uint32_t *cps = (const uint32_t *)a->cps.p;
    size_t bf = (size_t)m / 8, tokcol = 1 + bf;
    j = 0;
    for (size_t d = 0; d < nd; d++) {
        uint8_t *row = seg + d * seg_len;
        const Spec *s = &specs[d];
        row[0] = (uint8_t)s->flags;
        for (int t = 0; t < s->ntok && t < width; t++)
            if (s->tok_len[t] >= 0) {
                memcpy(row + tokcol + 4 * (size_t)t, macs + 4 * j, 4);
                j++;
            }
        if (m) {
            const uint32_t *c = cps + s->cp_off;
            uint16_t pos[3];
            for (size_t i = 0; i + 1 < s->cp_len; i++) {
                if (c[i] == 0 || c[i + 1] == 0) continue;
                bigram_positions(h, cache, c[i], c[i + 1], m, k, pos);
                for (int q = 0; q < k; q++) row[1 + pos[q] / 8] |= (uint8_t)(1u << (pos[q] % 8));
            }
        }
    }
    PyMem_RawFree(ptrs);
    PyMem_RawFree(lens);
    PyMem_RawFree(macs);
    return 0;
}

/* encode_column(kind, values, mac, spec, out, record_bytes, offset, seg_len, m, k, cache,
 *               codes, nicknames, abbreviations) -> [component of each distinct value]
 * Writes the field's segment of every record into `out` (n * record_bytes bytes) and each
 * record's distinct-value index into `codes` (int32); distinct value 0 is "missing" (every
 * value that is not a str). */
static PyObject *encode_column(PyObject *module, PyObject *args) {
    (void)module;
    int kind, m, k;
    Py_ssize_t record_bytes, offset, seg_len;
    PyObject *values, *mac, *specfn, *nicknames, *abbrev_dict, *cache_obj;
    Py_buffer out = {0}, codes = {0}, cache = {0};
    if (!PyArg_ParseTuple(args, "iOOOw*nnniiOw*O!O!:encode_column", &kind, &values, &mac,
                          &specfn, &out, &record_bytes, &offset, &seg_len, &m, &k, &cache_obj,
                          &codes, &PyDict_Type, &nicknames, &PyDict_Type, &abbrev_dict))
        return NULL;
    PyObject *items = NULL, *comps = NULL, *result = NULL, *abbrev_copy = NULL;
    Slot *table = NULL;
    Abbrev *abbrevs = NULL;
    uint8_t *seg = NULL;
    Arena arena;
    Scratch sc;
    memset(&arena, 0, sizeof arena);
    memset(&sc, 0, sizeof sc);
    int have_cache = 0;

    if (!PyObject_TypeCheck(mac, &HmacType)) {
        PyErr_SetString(PyExc_TypeError, "mac must be an HmacSha256");
        goto done;
    }
    if (cache_obj != Py_None) {
        if (PyObject_GetBuffer(cache_obj, &cache, PyBUF_WRITABLE) < 0) goto done;
        have_cache = 1;
        if (cache.len != 128 * 128 * 8 || ((uintptr_t)cache.buf & 7)) {
            PyErr_SetString(PyExc_ValueError, "cache must be 131072 bytes, 8-byte aligned");
            goto done;
        }
    }
    if (kind < FBF_GIVEN || kind > FBF_ADDRESS || m < 0 || m > 65536 || m % 8 || k < 0 ||
        k > 3 || (m == 0) != (k == 0) || record_bytes <= 0 || offset < 0 || seg_len < 1 ||
        offset > record_bytes - seg_len || seg_len - 1 - m / 8 < 0 ||
        (seg_len - 1 - m / 8) % 4 || (seg_len - 1 - m / 8) / 4 > FBF_MAXTOK) {
        PyErr_SetString(PyExc_ValueError, "bad encode_column layout");
        goto done;
    }
    int width = (int)((seg_len - 1 - m / 8) / 4);
    /* a tuple: its own references, unchanged by whatever the spec function does */
    items = PySequence_Tuple(values);
    if (items == NULL) goto done;
    Py_ssize_t n = PyTuple_GET_SIZE(items);
    if (n > INT32_MAX - 1 || out.len != n * record_bytes ||
        codes.len != n * (Py_ssize_t)sizeof(int32_t) || ((uintptr_t)codes.buf & 3)) {
        PyErr_SetString(PyExc_ValueError, "out or codes has the wrong size");
        goto done;
    }
    /* abbreviations as C pairs, pointing into a private copy of the dict (its strings stay
     * alive whatever the spec function does) */
    Py_ssize_t nabbrev = 0, pos = 0;
    PyObject *ak, *av;
    abbrev_copy = PyDict_Copy(abbrev_dict);
    if (abbrev_copy == NULL) goto done;
    abbrevs = PyMem_Malloc(sizeof(Abbrev) * (size_t)(PyDict_GET_SIZE(abbrev_copy) + 1));
    if (abbrevs == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    while (PyDict_Next(abbrev_copy, &pos, &ak, &av)) {
        if (!PyUnicode_Check(ak) || !PyUnicode_Check(av) || !PyUnicode_IS_ASCII(ak) ||
            !PyUnicode_IS_ASCII(av) ||
            !all_az((const char *)PyUnicode_1BYTE_DATA(ak), PyUnicode_GET_LENGTH(ak)) ||
            !all_az((const char *)PyUnicode_1BYTE_DATA(av), PyUnicode_GET_LENGTH(av))) {
            PyErr_SetString(PyExc_ValueError, "abbreviations must map a-z words to a-z words");
            goto done;
        }
        abbrevs[nabbrev].from = (const char *)PyUnicode_1BYTE_DATA(ak);
        abbrevs[nabbrev].flen = PyUnicode_GET_LENGTH(ak);
        abbrevs[nabbrev].to = (const char *)PyUnicode_1BYTE_DATA(av);
        abbrevs[nabbrev].tlen = PyUnicode_GET_LENGTH(av);
        nabbrev++;
    }

    /* Phase 1 (GIL held): the distinct values and their specs. */
    size_t cap = 16;
    while (cap < 2 * (size_t)n + 2) cap *= 2;
    table = PyMem_RawCalloc(cap, sizeof(Slot));
    comps = PyList_New(0);
    if (table == NULL || comps == NULL) {
        if (!PyErr_Occurred()) PyErr_NoMemory();
        goto done;
    }
    if (spec_new(&arena) == NULL) { /* distinct 0: missing */
        PyErr_NoMemory();
        goto done;
    }
    if (PyList_Append(comps, Py_None) < 0) goto done;
    int32_t *code_out = (int32_t *)codes.buf;
    PyObject **src = &PyTuple_GET_ITEM(items, 0);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = src[i];
        if (!PyUnicode_Check(v)) {
            code_out[i] = 0;
            continue;
        }
        Py_hash_t hsh = text_hash(v);
        if (hsh == -1 && PyErr_Occurred()) goto done;
        size_t j = (size_t)hsh & (cap - 1);
        Slot *s;
        for (;;) {
            s = &table[j];
            if (s->key == NULL || (s->hash == hsh && same_text(s->key, v))) break;
            j = (j + 1) & (cap - 1);
        }
        if (s->key == NULL) {
            Py_ssize_t d = PyList_GET_SIZE(comps);
            PyObject *comp = NULL;
            int r = 0;
            if (PyUnicode_IS_ASCII(v)) {
                const unsigned char *t = PyUnicode_1BYTE_DATA(v);
                size_t tl = (size_t)PyUnicode_GET_LENGTH(v);
                switch (kind) {
                case FBF_GIVEN: r = c_name(&arena, &sc, 1, t, tl, nicknames, &comp); break;
                case FBF_FAMILY: r = c_name(&arena, &sc, 0, t, tl, nicknames, &comp); break;
                case FBF_DOB: r = c_date(&arena, t, tl, &comp); break;
                case FBF_POSTCODE: r = c_postcode(&arena, &sc, t, tl, &comp); break;
                case FBF_ADDRESS:
                    r = c_address(&arena, &sc, t, tl, abbrevs, nabbrev, &comp);
                    break;
                default: r = 0; /* sex: a handful of distinct values, in Python */
                }
            }
            if (r == 0) {
                PyObject *spec = PyObject_CallOneArg(specfn, v);
                if (spec == NULL) goto done;
                r = py_spec(&arena, spec, &comp);
                Py_DECREF(spec);
            }
            if (r < 0) {
                if (!PyErr_Occurred()) PyErr_NoMemory();
                goto done;
            }
            int too_many = ((Spec *)arena.specs.p)[d].ntok > width;
            int app = PyList_Append(comps, comp);
            Py_DECREF(comp);
            if (app < 0) goto done;
            if (too_many) {
                PyErr_SetString(PyExc_ValueError, "a spec has more tokens than the layout");
                goto done;
            }
            s->key = v;
            s->hash = hsh;
            s->idx = (int32_t)d;
        }
        code_out[i] = s->idx;
    }
    size_t nd = (size_t)PyList_GET_SIZE(comps);
    if (nd != arena.specs.len / sizeof(Spec)) {
        PyErr_SetString(PyExc_SystemError, "encode_column: spec count mismatch");
        goto done;
    }
    seg = PyMem_RawCalloc(nd, (size_t)seg_len);
    if (seg == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    /* Phases 2 and 3 (GIL released: only C buffers are touched, and the buffers of `out`,
     * `codes` and `cache` are held, so they cannot be resized meanwhile). */
    int failed = 0;
    HmacObject *h = (HmacObject *)mac;
    uint64_t *cache_words = have_cache ? (uint64_t *)cache.buf : NULL;
    uint8_t *dst = (uint8_t *)out.buf;
    Py_BEGIN_ALLOW_THREADS
    if (fbf_segments(h, &arena, nd, seg, (size_t)seg_len, m, k, width, cache_words) < 0) {
        failed = 1;
    } else {
        for (Py_ssize_t i = 0; i < n; i++) {
            int32_t c = code_out[i];
            if (c < 0 || (size_t)c >= nd) c = 0;
            memcpy(dst + (size_t)i * (size_t)record_bytes + (size_t)offset,
                   seg + (size_t)c * (size_t)seg_len, (size_t)seg_len);
        }
    }
    Py_END_ALLOW_THREADS
    if (failed) {
        PyErr_NoMemory();
        goto done;
    }
    result = Py_NewRef(comps);
done:
    PyMem_Free(abbrevs);
    Py_XDECREF(abbrev_copy);
    PyMem_RawFree(table);
    PyMem_RawFree(sc.text);
    PyMem_RawFree(sc.starts);
    PyMem_RawFree(sc.lens);
    PyMem_RawFree(seg);
    arena_free(&arena);
    Py_XDECREF(items);
    Py_XDECREF(comps);
    PyBuffer_Release(&out);
    PyBuffer_Release(&codes);
    if (have_cache) PyBuffer_Release(&cache);
    return result;
}

/* block_keys(mac, out, record_bytes, offset, components) -> None
 * components: five items in the order G, F, Y, DM, P, each None (field absent) or
 * (codes, vocab): int32 codes (one per record) indexing vocab, a list of str or None.
 * Writes the blocking segment (flags byte + five 8-byte keys) of every record: slot i is
 * HMAC(mac, "<name>:" + components joined by "|")[:8] when all its components are present
 * (gf: the two Soundex codes in sorted order). */
typedef struct {
    const char **ptr; /* per vocab entry; NULL: missing */
    Py_ssize_t *len;
    const int32_t *codes;
} Comp;

static PyObject *block_keys(PyObject *module, PyObject *args) {
    (void)module;
    PyObject *mac, *components;
    Py_buffer out = {0};
    Py_ssize_t record_bytes, offset;
    if (!PyArg_ParseTuple(args, "Ow*nnO:block_keys", &mac, &out, &record_bytes, &offset,
                          &components))
        return NULL;
    Comp comp[5];
    Py_buffer bufs[5];
    PyObject *vocabs[5] = {NULL, NULL, NULL, NULL, NULL}; /* tuples: they keep the strings */
    int held[5] = {0, 0, 0, 0, 0};
    memset(comp, 0, sizeof comp);
    PyObject *result = NULL;
    char *msgs = NULL;
    const char **ptrs = NULL;
    size_t *lens = NULL;
    uint8_t *macs = NULL;
    int32_t *where = NULL;
    if (!PyObject_TypeCheck(mac, &HmacType)) {
        PyErr_SetString(PyExc_TypeError, "mac must be an HmacSha256");
        goto done;
    }
    if (!PyTuple_Check(components) || PyTuple_GET_SIZE(components) != 5) {
        PyErr_SetString(PyExc_TypeError, "components must be a 5-tuple");
        goto done;
    }
    if (record_bytes <= 0 || out.len % record_bytes || offset < 0 ||
        offset > record_bytes - 41) {
        PyErr_SetString(PyExc_ValueError, "bad block_keys layout");
        goto done;
    }
    Py_ssize_t n = out.len / record_bytes;
    for (int c = 0; c < 5; c++) {
        PyObject *item = PyTuple_GET_ITEM(components, c);
        if (item == Py_None) continue;
        PyObject *codes_obj, *vocab;
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2 ||
            !PyList_Check(vocab = PyTuple_GET_ITEM(item, 1))) {
            PyErr_SetString(PyExc_TypeError, "a component must be (codes, list)");
            goto done;
        }
        codes_obj = PyTuple_GET_ITEM(item, 0);
        if (PyObject_GetBuffer(codes_obj, &bufs[c], PyBUF_SIMPLE) < 0) goto done;
        held[c] = 1;
        if (bufs[c].len != n * (Py_ssize_t)sizeof(int32_t) || ((uintptr_t)bufs[c].buf & 3)) {
            PyErr_SetString(PyExc_ValueError, "component codes have the wrong size");
            goto done;
        }
        vocabs[c] = PyList_AsTuple(vocab);
        if (vocabs[c] == NULL) goto done;
        Py_ssize_t nv = PyTuple_GET_SIZE(vocabs[c]);
        comp[c].ptr = PyMem_Calloc((size_t)nv + 1, sizeof(char *));
        comp[c].len = PyMem_Calloc((size_t)nv + 1, sizeof(Py_ssize_t));
        if (comp[c].ptr == NULL || comp[c].len == NULL) {
            PyErr_NoMemory();
            goto done;
        }
        for (Py_ssize_t v = 0; v < nv; v++) {
            PyObject *s = PyTuple_GET_ITEM(vocabs[c], v);
            if (s == Py_None) continue;
            if (!PyUnicode_Check(s)) {
                PyErr_SetString(PyExc_TypeError, "a component must be str or None");
                goto done;
            }
            /* the UTF-8 form is cached in the str object, which the tuple keeps alive */
            comp[c].ptr[v] = PyUnicode_AsUTF8AndSize(s, &comp[c].len[v]);
            if (comp[c].ptr[v] == NULL) goto done;
        }
        comp[c].codes = (const int32_t *)bufs[c].buf;
        for (Py_ssize_t i = 0; i < n; i++) {
            if (comp[c].codes[i] < 0 || comp[c].codes[i] >= nv) {
                PyErr_SetString(PyExc_ValueError, "component code out of range");
                goto done;
            }
        }
    }
    /* Slots: fy (F, Y), gdm (G, DM), dob (Y, DM), gf (G, F sorted), pc (P). */
    static const char *names[5] = {"fy:", "gdm:", "dob:", "gf:", "pc:"};
    static const int uses[5][2] = {{1, 2}, {0, 3}, {2, 3}, {0, 1}, {4, -1}};
    enum { CHUNK = 4096 };
    ptrs = PyMem_Malloc(sizeof(char *) * 5 * CHUNK);
    lens = PyMem_Malloc(sizeof(size_t) * 5 * CHUNK);
    macs = PyMem_Malloc(8 * 5 * CHUNK);
    where = PyMem_Malloc(sizeof(int32_t) * 5 * CHUNK);
    if (ptrs == NULL || lens == NULL || macs == NULL || where == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    int failed = 0;
    HmacObject *h = (HmacObject *)mac;
    uint8_t *dst = (uint8_t *)out.buf;
    size_t msgs_cap = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t lo = 0; lo < n && !failed; lo += CHUNK) {
        Py_ssize_t hi = lo + CHUNK < n ? lo + CHUNK : n;
        /* size of this chunk's messages */
        size_t need = 0;
        for (Py_ssize_t i = lo; i < hi; i++)
            for (int s = 0; s < 5; s++) {
                size_t l = 5;
                for (int u = 0; u < 2 && uses[s][u] >= 0; u++) {
                    const Comp *cp = &comp[uses[s][u]];
                    if (cp->codes != NULL) l += (size_t)cp->len[cp->codes[i]] + 1;
                }
                need += l;
            }
        if (need > msgs_cap) {
            char *p = PyMem_RawRealloc(msgs, need);
            if (p == NULL) {
                failed = 1;
                break;
            }
            msgs = p;
            msgs_cap = need;
        }
        size_t w = 0, nm = 0;
        for (Py_ssize_t i = lo; i < hi; i++) {
            uint8_t *row = dst + (size_t)i * (size_t)record_bytes + (size_t)offset;
            for (int s = 0; s < 5; s++) {
                const char *part[2] = {NULL, NULL};
                size_t plen[2] = {0, 0};
                int ok = 1, np = 0;
                for (int u = 0; u < 2 && uses[s][u] >= 0; u++) {
                    const Comp *cp = &comp[uses[s][u]];
                    if (cp->codes == NULL || cp->ptr[cp->codes[i]] == NULL) {
                        ok = 0;
                        break;
                    }
                    part[u] = cp->ptr[cp->codes[i]];
                    plen[u] = (size_t)cp->len[cp->codes[i]];
                    np++;
                }
                if (!ok) continue;
                if (s == 3) { /* gf: sorted (UTF-8 byte order is code point order) */
                    size_t ml = plen[0] < plen[1] ? plen[0] : plen[1];
                    int cmp = memcmp(part[0], part[1], ml);
                    if (cmp > 0 || (cmp == 0 && plen[0] > plen[1])) {
                        const char *tp = part[0]; part[0] = part[1]; part[1] = tp;
                        size_t tl = plen[0]; plen[0] = plen[1]; plen[1] = tl;
                    }
                }
                char *mstart = msgs + w;
                size_t nl = strlen(names[s]);
                memcpy(msgs + w, names[s], nl);
                w += nl;
                for (int u = 0; u < np; u++) {
                    if (u) msgs[w++] = '|';
                    memcpy(msgs + w, part[u], plen[u]);
                    w += plen[u];
                }
                ptrs[nm] = mstart;
                lens[nm] = (size_t)(msgs + w - mstart);
                where[nm] = (int32_t)((i - lo) * 5 + s);
                nm++;
                row[0] |= (uint8_t)(1u << s);
            }
        }
        hmac_batch(h, nm, ptrs, lens, macs, 8);
        for (size_t q = 0; q < nm; q++) {
            Py_ssize_t i = lo + where[q] / 5;
            int s = where[q] % 5;
            memcpy(dst + (size_t)i * (size_t)record_bytes + (size_t)offset + 1 + 8 * (size_t)s,
                   macs + 8 * q, 8);
        }
    }
    Py_END_ALLOW_THREADS
    if (failed) {
        PyErr_NoMemory();
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    for (int c = 0; c < 5; c++) {
        PyMem_Free(comp[c].ptr);
        PyMem_Free(comp[c].len);
        Py_XDECREF(vocabs[c]);
        if (held[c]) PyBuffer_Release(&bufs[c]);
    }
    PyMem_RawFree(msgs);
    PyMem_Free(ptrs);
    PyMem_Free(lens);
    PyMem_Free(macs);
    PyMem_Free(where);
    PyBuffer_Release(&out);
    return result;
}

static PyObject *sha256_backend(PyObject *module, PyObject *unused) {
    (void)module;
    (void)unused;
    return PyUnicode_FromString(compress_name);
}

/* Tests only: switch to the portable compression (so both paths are checked on one CPU). */
static PyObject *use_portable_sha256(PyObject *module, PyObject *flag) {
    (void)module;
    int on = PyObject_IsTrue(flag);
    if (on < 0) return NULL;
    if (on) {
        compress = compress_portable;
        compress2 = compress2_portable;
        compress_name = "portable";
    }
#ifdef HAVE_SHANI_BUILD
    else if (cpu_has_shani()) {
        compress = compress_shani;
        compress2 = compress2_shani;
        compress_name = "sha-ni";
    }
#endif
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"nhs_normalise", nhs_normalise, METH_O,
     "nhs_normalise(values) -> (normalised or None, [(index, code)])"},
    {"encode_column", encode_column, METH_VARARGS,
     "encode_column(kind, values, mac, spec, out, record_bytes, offset, seg_len, m, k, cache, "
     "codes, nicknames, abbreviations) -> components (pg-fbf-v1, one field of a batch)"},
    {"block_keys", block_keys, METH_VARARGS,
     "block_keys(mac, out, record_bytes, offset, components) -> None (pg-fbf-v1 blocking)"},
    {"sha256_backend", sha256_backend, METH_NOARGS, "'sha-ni' or 'portable'"},
    {"use_portable_sha256", use_portable_sha256, METH_O, "tests only: force portable SHA-256"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef fastmac_module = {
    PyModuleDef_HEAD_INIT, "pseudogate.core._fastmac",
    "Batched HMAC-SHA256 tokens and NHS number checks (optional C accelerator).", -1,
    module_methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__fastmac(void) {
#ifdef HAVE_SHANI_BUILD
    if (cpu_has_shani()) {
        compress = compress_shani;
        compress2 = compress2_shani;
        compress_name = "sha-ni";
    }
#endif
    if (PyType_Ready(&HmacType) < 0) return NULL;
    PyObject *m = PyModule_Create(&fastmac_module);
    if (m == NULL) return NULL;
    Py_INCREF(&HmacType);
    if (PyModule_AddObject(m, "HmacSha256", (PyObject *)&HmacType) < 0) {
        Py_DECREF(&HmacType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
