/*
 * pseudogate.core._fastmac: the token construction's hot loop in C (optional accelerator).
 *
 * Tokens are key_id "_" base32(HMAC-SHA256(K_d, v)[0:20]) (docs/tokens.md). In Python the
 * per-value cost is dominated by interpreter overhead (hmac copy/update/digest, base32), not by
 * SHA-256. This module computes whole batches: the HMAC inner and outer states are computed
 * once per key, each value then costs two SHA-256 compressions (SHA-NI instructions when the
 * CPU has them, portable C otherwise), and each token string is built directly. It also checks
 * plain-ASCII NHS numbers. Everything here has a pure-Python equivalent in tokens.py /
 * normalise.py, which is used when this module is absent; tests check both give equal results.
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

/* Two tokens at once (both messages at most 55 bytes): inner and outer hashes interleaved. */
static void hmac_token_chars2(const HmacObject *h, const uint8_t *ma, size_t la,
                              const uint8_t *mb, size_t lb, char *outa, char *outb) {
    uint32_t sa[8], sb[8];
    uint8_t ba[64], bb[64], da[32], db[32];
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
