/* Optional C kernels of the linkage engine (pseudogate.linkage._kernels).
 *
 * One function, scan(), walks the candidate pairs of a range of blocks of one kind of
 * blocking key (linkage/pairs.py builds the blocks) and, for each pair that this kind owns
 * (no earlier kind that also holds the pair compares it), computes its comparison levels
 * exactly as linkage/comparisons.py does, and then, by mode:
 *
 *   0  counts the pair's level pattern: hist[K][code] for every pair, hist[j][code] for
 *      every blocking key j the pair shares;
 *   1  counts the pair's match weight in a histogram of fine bins (+inf counted apart,
 *      -inf dropped), for the prior over all pairs;
 *   2  returns the pairs whose weight is at least a cut (left < right) and their weights;
 *   3  both 1 and 2.
 *
 * A Bloom field's level below its Dice levels is the first of its token levels (nickname
 * group, surname part, postcode district) whose slot codes agree, else "else".
 *
 * Weights are wtable[code] plus the term-frequency adjustment of exact name agreement plus
 * the NHS hard rules, added in the same order as engine.Scorer.weights, so results are
 * identical to the numpy path (linkage/pairs.py). The GIL is released while scanning.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FIELDS 16

typedef struct {
    Py_buffer order, starts, req, usable, keys, words, fieldoff, pc, present, dates, exact,
        mult, dice_t, tok, xoff, lvoff;
    int K, W, F, D, E, T;
    /* weights */
    Py_buffer nhs, tfcode, tfadj, tfon, wtable;
    int have_weights;
} Ctx;

static int get_buf(PyObject *tup, Py_ssize_t i, Py_buffer *view, int writable) {
    PyObject *o = PyTuple_GetItem(tup, i);
    if (o == NULL) return -1;
    return PyObject_GetBuffer(o, view, PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0));
}

static void release(Ctx *c) {
    Py_buffer *all[] = {&c->order, &c->starts, &c->req, &c->usable, &c->keys, &c->words,
                        &c->fieldoff, &c->pc, &c->present, &c->dates, &c->exact, &c->mult,
                        &c->dice_t, &c->tok, &c->xoff, &c->lvoff, &c->nhs, &c->tfcode,
                        &c->tfadj, &c->tfon, &c->wtable};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        if (all[i]->obj != NULL) PyBuffer_Release(all[i]);
}

/* table: (order, starts, req, usable, keys, words, fieldoff, pc, present, dates, exact, mult,
 *         dice_t, tok, xoff, lvoff, K, W, F, D, E, T)
 * tok: int32 (n, T) token codes (0 = none); Bloom field f has token levels xoff[f] ..
 * xoff[f + 1] - 1, and token level x compares the columns lvoff[x] .. lvoff[x + 1] - 1.
 * weights: (nhs, tfcode, tfadj, tfon, wtable) or None */
static int load(Ctx *c, PyObject *table, PyObject *weights) {
    memset(c, 0, sizeof(*c));
    if (!PyTuple_Check(table) || PyTuple_GET_SIZE(table) != 22) {
        PyErr_SetString(PyExc_TypeError, "table: a tuple of 22");
        return -1;
    }
    Py_buffer *bufs[] = {&c->order, &c->starts, &c->req, &c->usable, &c->keys, &c->words,
                         &c->fieldoff, &c->pc, &c->present, &c->dates, &c->exact, &c->mult,
                         &c->dice_t, &c->tok, &c->xoff, &c->lvoff};
    for (int i = 0; i < 16; i++)
        if (get_buf(table, i, bufs[i], 0) < 0) return -1;
    int *dims[] = {&c->K, &c->W, &c->F, &c->D, &c->E, &c->T};
    for (int i = 0; i < 6; i++) {
        long v = PyLong_AsLong(PyTuple_GET_ITEM(table, 16 + i));
        if (v == -1 && PyErr_Occurred()) return -1;
        *dims[i] = (int)v;
    }
    if (c->F > MAX_FIELDS || c->K > 32 || c->K < 1 || c->T < 0 || c->T > 64) {
        PyErr_SetString(PyExc_ValueError, "too many fields or keys");
        return -1;
    }
    if (weights != Py_None) {
        if (!PyTuple_Check(weights) || PyTuple_GET_SIZE(weights) != 5) {
            PyErr_SetString(PyExc_TypeError, "weights: a tuple of 5");
            return -1;
        }
        Py_buffer *wb[] = {&c->nhs, &c->tfcode, &c->tfadj, &c->tfon, &c->wtable};
        for (int i = 0; i < 5; i++)
            if (get_buf(weights, i, wb[i], 0) < 0) return -1;
        c->have_weights = 1;
    }
    return 0;
}

typedef struct {
    int mode;
    int64_t *hist;   /* mode 0: (K+1) x P */
    Py_ssize_t P;
    int64_t *wcnt;   /* mode 1: nbins */
    Py_ssize_t nbins;
    double wlo, wscale;
    int64_t sure;
    double wcut;     /* modes 2 and 3 */
    int64_t *ol, *orr;
    double *ow;
    Py_ssize_t on, ocap;
    int oom;
} Out;

static inline __attribute__((always_inline)) int code_of(const Ctx *c, int64_t a, int64_t b, int8_t *lv) {
    const uint64_t *words = (const uint64_t *)c->words.buf;
    const int32_t *off = (const int32_t *)c->fieldoff.buf;
    const int32_t *pc = (const int32_t *)c->pc.buf;
    const uint8_t *pres = (const uint8_t *)c->present.buf;
    const int16_t *dates = (const int16_t *)c->dates.buf;
    const int32_t *exact = (const int32_t *)c->exact.buf;
    const int32_t *mult = (const int32_t *)c->mult.buf;
    const double *dt = (const double *)c->dice_t.buf; /* thresholds of levels 1, 2, 3 */
    const int32_t *tok = (const int32_t *)c->tok.buf;
    const int32_t *xoff = (const int32_t *)c->xoff.buf;
    const int32_t *lvoff = (const int32_t *)c->lvoff.buf;
    const int W = c->W, F = c->F, D = c->D, E = c->E, T = c->T;
    int code = 0, col = 0;
    const uint64_t *wa = words + (size_t)a * W, *wb = words + (size_t)b * W;
    for (int f = 0; f < F; f++, col++) {
        int8_t l;
        if (!(pres[(size_t)a * F + f] && pres[(size_t)b * F + f])) {
            l = 0;
        } else {
            int64_t common = 0;
            for (int w = off[f]; w < off[f + 1]; w++) common += __builtin_popcountll(wa[w] & wb[w]);
            int64_t total = (int64_t)pc[(size_t)a * F + f] + pc[(size_t)b * F + f];
            double d = total > 0 ? (2.0 * (double)common) / (double)total : 0.0;
            if (d >= dt[2]) {
                l = 3;
                if (d >= dt[1]) l = 2;
                if (d >= dt[0]) l = 1;
            } else {
                /* the first token level whose slots agree, else "else": every slot is
                 * compared, without early exits (the loops' lengths are the same for every
                 * pair, so they predict well; the outcome is a conditional move) */
                const int32_t *ta = tok + (size_t)a * T, *tb = tok + (size_t)b * T;
                const int x0 = xoff[f], nx = xoff[f + 1] - x0;
                int lev = 4 + nx;
                for (int k = nx - 1; k >= 0; k--) {
                    const int s0 = lvoff[x0 + k], s1 = lvoff[x0 + k + 1];
                    int agree = 0;
                    for (int i = s0; i < s1; i++) {
                        const int32_t v = ta[i];
                        for (int j = s0; j < s1; j++) agree |= (v != 0) & (v == tb[j]);
                    }
                    lev = agree ? 4 + k : lev;
                }
                l = (int8_t)lev;
            }
        }
        lv[col] = l;
        code += l * mult[col];
    }
    for (int f = 0; f < D; f++, col++) {
        const int16_t *p = dates + ((size_t)a * D + f) * 3, *q = dates + ((size_t)b * D + f) * 3;
        int d1 = p[0], m1 = p[1], y1 = p[2], d2 = q[0], m2 = q[1], y2 = q[2];
        int missing = (d1 == 0 && m1 == 0 && y1 == 0) || (d2 == 0 && m2 == 0 && y2 == 0);
        int same = (d1 == d2) + (m1 == m2) + (y1 == y2);
        int swapped = (d1 == m2) && (m1 == d2) && (y1 == y2) && (d1 != m1);
        int8_t l = 4;
        if (same == 2) l = 3;
        if (swapped) l = 2;
        if (same == 3) l = 1;
        if (missing) l = 0;
        lv[col] = l;
        code += l * mult[col];
    }
    for (int f = 0; f < E; f++, col++) {
        int32_t x = exact[(size_t)a * E + f], y = exact[(size_t)b * E + f];
        int8_t l = (x < 0 || y < 0) ? 0 : (x == y ? 1 : 2);
        lv[col] = l;
        code += l * mult[col];
    }
    return code;
}

static inline __attribute__((always_inline)) double weight_of(const Ctx *c, int64_t a, int64_t b, int code, const int8_t *lv) {
    const double *wt = (const double *)c->wtable.buf;
    const int64_t *tfc = (const int64_t *)c->tfcode.buf;
    const double *tfa = (const double *)c->tfadj.buf;
    const uint8_t *on = (const uint8_t *)c->tfon.buf;
    const int64_t *nhs = (const int64_t *)c->nhs.buf;
    const int F = c->F;
    double w = wt[code];
    for (int f = 0; f < F; f++) {
        if (on[f] && lv[f] == 1 && tfc[(size_t)a * F + f] == tfc[(size_t)b * F + f])
            w += tfa[(size_t)a * F + f];
    }
    int64_t x = nhs[a], y = nhs[b];
    if (x >= 0 && y >= 0) w = (x == y) ? INFINITY : -INFINITY;
    return w;
}

static int push(Out *o, int64_t a, int64_t b, double w) {
    if (o->on == o->ocap) {
        Py_ssize_t cap = o->ocap ? o->ocap * 2 : 4096;
        int64_t *l = realloc(o->ol, cap * sizeof(int64_t));
        if (l) o->ol = l;
        int64_t *r = realloc(o->orr, cap * sizeof(int64_t));
        if (r) o->orr = r;
        double *ww = realloc(o->ow, cap * sizeof(double));
        if (ww) o->ow = ww;
        if (!l || !r || !ww) return -1;
        o->ocap = cap;
    }
    o->ol[o->on] = a < b ? a : b;
    o->orr[o->on] = a < b ? b : a;
    o->ow[o->on] = w;
    o->on++;
    return 0;
}

/* Ask for the records of the next block while this one is compared: the records of a block
 * are scattered over the table, and waiting for memory dominates small blocks otherwise. */
static inline __attribute__((always_inline)) void prefetch_block(const Ctx *c,
                                                                 const int64_t *order,
                                                                 int64_t s, int64_t e) {
    const char *words = (const char *)c->words.buf;
    const char *keys = (const char *)c->keys.buf;
    const size_t wrow = (size_t)c->W * 8, krow = (size_t)c->K * 8;
    for (int64_t i = s; i < e; i++) {
        size_t r = (size_t)order[i];
        for (size_t off = 0; off < wrow; off += 64) __builtin_prefetch(words + r * wrow + off);
        __builtin_prefetch(keys + r * krow);
        __builtin_prefetch((const char *)c->pc.buf + r * (size_t)c->F * 4);
        __builtin_prefetch((const char *)c->present.buf + r * (size_t)c->F);
        __builtin_prefetch((const char *)c->dates.buf + r * (size_t)c->D * 6);
        __builtin_prefetch((const char *)c->exact.buf + r * (size_t)c->E * 4);
        if (c->T) __builtin_prefetch((const char *)c->tok.buf + r * (size_t)c->T * 4);
        __builtin_prefetch((const char *)c->usable.buf + r * 4);
        if (c->have_weights) __builtin_prefetch((const char *)c->nhs.buf + r * 8);
    }
}

/* Scan blocks [b0, b1) of kind `kind`; returns owned pairs, or -1 when out of memory. */
static inline __attribute__((always_inline)) int64_t run_impl(const Ctx *c, int kind, Py_ssize_t b0, Py_ssize_t b1, Out *o) {
    const int64_t *order = (const int64_t *)c->order.buf;
    const int64_t *starts = (const int64_t *)c->starts.buf;
    const uint32_t *req = (const uint32_t *)c->req.buf;
    const uint32_t *usable = (const uint32_t *)c->usable.buf;
    const uint64_t *keys = (const uint64_t *)c->keys.buf;
    const int K = c->K;
    int8_t lv[64];
    int64_t pairs = 0;
    for (Py_ssize_t blk = b0; blk < b1; blk++) {
        int64_t s = starts[blk], e = starts[blk + 1];
        if (blk + 1 < b1) prefetch_block(c, order, starts[blk + 1], starts[blk + 2]);
        for (int64_t i = s; i < e; i++) {
            int64_t a = order[i];
            const uint64_t *ka = keys + (size_t)a * K;
            uint32_t ua = usable[a];
            for (int64_t j = i + 1; j < e; j++) {
                int64_t b = order[j];
                const uint64_t *kb = keys + (size_t)b * K;
                uint32_t share = 0;
                for (int k = 0; k < K; k++)
                    share |= (uint32_t)(ka[k] == kb[k] && ka[k] != 0) << k;
                /* a pair of one block shares its kind's keys, bar a clash of their mix */
                int owned = (share & req[kind]) == req[kind];
                for (int k2 = 0; owned && k2 < kind; k2++) {
                    if (((share & req[k2]) == req[k2]) && ((ua >> k2) & 1u)) {
                        owned = 0;
                        break;
                    }
                }
                if (!owned) continue;
                pairs++;
                int code = code_of(c, a, b, lv);
                if (o->mode == 0) {
                    o->hist[(size_t)K * o->P + code]++;
                    for (int k = 0; k < K; k++)
                        if ((share >> k) & 1u) o->hist[(size_t)k * o->P + code]++;
                } else {
                    double w = weight_of(c, a, b, code, lv);
                    if (o->mode & 1) {
                        if (isinf(w)) {
                            if (w > 0) o->sure++;
                        } else {
                            double x = floor((w - o->wlo) * o->wscale);
                            Py_ssize_t bin = x < 0 ? 0 : (x >= (double)o->nbins ? o->nbins - 1 : (Py_ssize_t)x);
                            o->wcnt[bin]++;
                        }
                    }
                    if ((o->mode & 2) && w >= o->wcut) {
                        if (push(o, a, b, w) < 0) return -1;
                    }
                }
            }
        }
    }
    return pairs;
}

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
/* the same walk compiled with the POPCNT instruction, used where the CPU has it */
__attribute__((target("popcnt"))) static int64_t run_popcnt(const Ctx *c, int kind, Py_ssize_t b0,
                                                            Py_ssize_t b1, Out *o) {
    return run_impl(c, kind, b0, b1, o);
}
#define HAVE_POPCNT_VARIANT 1
#endif

static int64_t run_generic(const Ctx *c, int kind, Py_ssize_t b0, Py_ssize_t b1, Out *o) {
    return run_impl(c, kind, b0, b1, o);
}

static int64_t run(const Ctx *c, int kind, Py_ssize_t b0, Py_ssize_t b1, Out *o) {
#ifdef HAVE_POPCNT_VARIANT
    if (__builtin_cpu_supports("popcnt")) return run_popcnt(c, kind, b0, b1, o);
#endif
    return run_generic(c, kind, b0, b1, o);
}

/* The buffers agree with each other (sizes, record indices, the largest pattern code), so a
 * walk never reads or writes outside them. */
static Py_ssize_t max_code(const Ctx *c) {
    const int32_t *mult = (const int32_t *)c->mult.buf;
    const int32_t *xoff = (const int32_t *)c->xoff.buf;
    Py_ssize_t m = 0;
    for (int i = 0; i < c->F; i++) m += (Py_ssize_t)(4 + xoff[i + 1] - xoff[i]) * mult[i];
    for (int i = c->F; i < c->F + c->D; i++) m += (Py_ssize_t)4 * mult[i];
    for (int i = 0; i < c->E; i++) m += (Py_ssize_t)2 * mult[c->F + c->D + i];
    return m;
}

static int check(const Ctx *c, int kind) {
    Py_ssize_t n = c->usable.len / 4;
    const int32_t *off = (const int32_t *)c->fieldoff.buf;
    int ok = c->keys.len == n * c->K * 8 && c->words.len == n * c->W * 8 &&
             c->pc.len == n * c->F * 4 && c->present.len == n * c->F &&
             c->dates.len == n * c->D * 6 && c->exact.len == n * c->E * 4 &&
             c->fieldoff.len == (Py_ssize_t)(c->F + 1) * 4 &&
             c->mult.len == (Py_ssize_t)(c->F + c->D + c->E) * 4 && c->dice_t.len == 24 &&
             kind >= 0 && c->req.len >= (Py_ssize_t)(kind + 1) * 4 && c->starts.len >= 8 &&
             c->order.len % 8 == 0 && c->tok.len == n * c->T * 4 &&
             c->xoff.len == (Py_ssize_t)(c->F + 1) * 4;
    for (int f = 0; ok && f < c->F; f++) ok = off[f] >= 0 && off[f] <= off[f + 1] && off[f + 1] <= c->W;
    const int32_t *xoff = (const int32_t *)c->xoff.buf;
    const int32_t *lvoff = (const int32_t *)c->lvoff.buf;
    ok = ok && xoff[0] == 0;
    for (int f = 0; ok && f < c->F; f++) ok = xoff[f] <= xoff[f + 1] && xoff[f + 1] - xoff[f] <= 8;
    ok = ok && c->lvoff.len == (Py_ssize_t)(xoff[c->F] + 1) * 4 && lvoff[0] == 0;
    for (int x = 0; ok && x < xoff[c->F]; x++) ok = lvoff[x] <= lvoff[x + 1] && lvoff[x + 1] <= c->T;
    if (ok && c->have_weights)
        ok = c->nhs.len == n * 8 && c->tfcode.len == n * c->F * 8 &&
             c->tfadj.len == n * c->F * 8 && c->tfon.len == c->F &&
             c->wtable.len > max_code(c) * 8;
    const int64_t *order = (const int64_t *)c->order.buf;
    const int64_t *starts = (const int64_t *)c->starts.buf;
    Py_ssize_t no = c->order.len / 8, ns = c->starts.len / 8;
    for (Py_ssize_t i = 0; ok && i < no; i++) ok = order[i] >= 0 && order[i] < n;
    for (Py_ssize_t i = 0; ok && i < ns; i++)
        ok = starts[i] >= 0 && starts[i] <= no && (i == 0 || starts[i] >= starts[i - 1]);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "scan: inconsistent buffers");
        return -1;
    }
    return 0;
}

static PyObject *scan(PyObject *self, PyObject *args) {
    int mode, kind;
    Py_ssize_t b0, b1;
    PyObject *table, *weights, *out_obj;
    double wlo, wscale, wcut;
    if (!PyArg_ParseTuple(args, "iinnOOOddd", &mode, &kind, &b0, &b1, &table, &weights, &out_obj,
                          &wlo, &wscale, &wcut))
        return NULL;
    Ctx c;
    Out o;
    memset(&o, 0, sizeof(o));
    o.mode = mode;
    Py_buffer ob;
    memset(&ob, 0, sizeof(ob));
    PyObject *result = NULL;
    if (load(&c, table, weights) < 0) goto done;
    if (c.F + c.D + c.E > 64) {
        PyErr_SetString(PyExc_ValueError, "too many comparisons");
        goto done;
    }
    Py_ssize_t nblocks = c.starts.len / (Py_ssize_t)sizeof(int64_t) - 1;
    if (b0 < 0 || b1 > nblocks || b0 > b1) {
        PyErr_SetString(PyExc_ValueError, "block range out of bounds");
        goto done;
    }
    if (check(&c, kind) < 0) goto done;
    if (mode != 0 && !c.have_weights) {
        PyErr_SetString(PyExc_ValueError, "weights are needed");
        goto done;
    }
    if (mode < 0 || mode > 3) {
        PyErr_SetString(PyExc_ValueError, "mode is 0, 1, 2 or 3");
        goto done;
    }
    if (mode == 0 || mode == 1 || mode == 3) {
        if (PyObject_GetBuffer(out_obj, &ob, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0) goto done;
        if (mode == 0) {
            o.hist = (int64_t *)ob.buf;
            o.P = ob.len / (Py_ssize_t)sizeof(int64_t) / (c.K + 1);
            if (o.P <= max_code(&c)) {
                PyErr_SetString(PyExc_ValueError, "scan: too few pattern counts");
                goto done;
            }
        } else {
            o.wcnt = (int64_t *)ob.buf;
            o.nbins = ob.len / (Py_ssize_t)sizeof(int64_t);
            if (o.nbins < 1) {
                PyErr_SetString(PyExc_ValueError, "no bins");
                goto done;
            }
            o.wlo = wlo;
            o.wscale = wscale;
        }
    }
    o.wcut = wcut;
    int64_t pairs;
    Py_BEGIN_ALLOW_THREADS
    pairs = run(&c, kind, b0, b1, &o);
    Py_END_ALLOW_THREADS
    if (pairs < 0) {
        PyErr_NoMemory();
        goto done;
    }
    if (mode == 0) {
        result = Py_BuildValue("L", (long long)pairs);
    } else if (mode == 1) {
        result = Py_BuildValue("LL", (long long)pairs, (long long)o.sure);
    } else {
        result = Py_BuildValue("LLy#y#y#", (long long)pairs, (long long)o.sure,
                               (const char *)o.ol, o.on * (Py_ssize_t)sizeof(int64_t),
                               (const char *)o.orr, o.on * (Py_ssize_t)sizeof(int64_t),
                               (const char *)o.ow, o.on * (Py_ssize_t)sizeof(double));
    }
done:
    if (ob.obj != NULL) PyBuffer_Release(&ob);
    release(&c);
    free(o.ol);
    free(o.orr);
    free(o.ow);
    return result;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS,
     "scan(mode, kind, b0, b1, table, weights, out, wlo, wscale, wcut): see linkage/pairs.py"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernels",
                                    "C kernels of the linkage engine (optional).", -1, methods};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&module); }
