/* strata.core._sha256: SHA-256 through OpenSSL's SHA256_Init/Update/Final, for core/hashing.py.
 *
 * The same function as hashlib.sha256, without its per-call cost: OpenSSL 3's EVP interface, which
 * hashlib uses, allocates and frees two digest contexts per digest (the object and the copy that
 * digest() finalizes), and on a 65-byte Merkle node that costs about five times the hashing
 * itself. Here the context lives on the stack. It is built by `strata compile` beside ring 0
 * (src/strata/compiled.py); without it core/hashing.py uses hashlib, and the tests compare both
 * (tests/differential/test_hashing.py).
 *
 *   sha256(data) -> bytes                   SHA256(data)
 *   sha256_concat(*parts) -> bytes          SHA256(parts[0] || parts[1] || ...)
 *   list_leaf_hash(item) -> bytes           SHA256(0x00 || item): an item's leaf in that tree
 *   list_tree_hash(items) -> bytes          RFC 6962's Merkle Tree Hash of a list of bytes, as
 *                                           core/ordered_merkle.py's compute_tree_hash defines it
 *   list_tree_hash_of_leaves(leaves)        the same from the items' leaf hashes (32 bytes each;
 *       -> bytes                            ValueError on any other length)
 *   sparse_root(pairs) -> bytes             the root of core/merkle.py's sparse tree over an
 *                                           iterable of (key, value) pairs, as its
 *                                           compute_root_from_pairs defines it (ValueError on a
 *                                           repeated key)
 *
 * Arguments are bytes-like objects; anything else raises TypeError.
 */
#define PY_SSIZE_T_CLEAN
#define OPENSSL_SUPPRESS_DEPRECATED /* SHA256_Init & co.: deprecated in 3.0, not removed */
#include <Python.h>
#include <openssl/sha.h>
#include <string.h>

#define DIGEST 32

static int update_with(SHA256_CTX *ctx, PyObject *part) {
    if (PyBytes_CheckExact(part)) {
        SHA256_Update(ctx, PyBytes_AS_STRING(part), (size_t)PyBytes_GET_SIZE(part));
        return 0;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(part, &view, PyBUF_SIMPLE) < 0) {
        return -1;
    }
    SHA256_Update(ctx, view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    return 0;
}

static PyObject *new_digest(SHA256_CTX *ctx) {
    PyObject *out = PyBytes_FromStringAndSize(NULL, DIGEST);
    if (out != NULL) {
        SHA256_Final((unsigned char *)PyBytes_AS_STRING(out), ctx);
    }
    return out;
}

/* SHA256(prefix || data) into out (32 bytes; prefix_len may be 0); -1 with an exception if
 * data is not bytes-like. */
static int hash_into(const unsigned char *prefix, size_t prefix_len, PyObject *data,
                     unsigned char *out) {
    SHA256_CTX ctx;
    SHA256_Init(&ctx);
    if (prefix_len) {
        SHA256_Update(&ctx, prefix, prefix_len);
    }
    if (update_with(&ctx, data) < 0) {
        return -1;
    }
    SHA256_Final(out, &ctx);
    return 0;
}

/* hash_into's digest as a new bytes object. */
static PyObject *digest_of(const unsigned char *prefix, size_t prefix_len, PyObject *data) {
    unsigned char digest[DIGEST];
    if (hash_into(prefix, prefix_len, data, digest) < 0) {
        return NULL;
    }
    return PyBytes_FromStringAndSize((const char *)digest, DIGEST);
}

static PyObject *sha256(PyObject *module, PyObject *data) {
    return digest_of(NULL, 0, data);
}

static PyObject *sha256_concat(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    SHA256_CTX ctx;
    SHA256_Init(&ctx);
    for (Py_ssize_t i = 0; i < nargs; i++) {
        if (update_with(&ctx, args[i]) < 0) {
            return NULL;
        }
    }
    return new_digest(&ctx);
}

static const unsigned char LEAF = 0x00;
static const unsigned char NODE = 0x01;

static PyObject *list_leaf_hash(PyObject *module, PyObject *item) {
    return digest_of(&LEAF, 1, item);  /* SHA256(0x00 || item) */
}

/* The tree hash of the n >= 1 leaf hashes in `level` (n * 32 bytes, overwritten), freed here. */
static PyObject *tree_hash_from_level(unsigned char *level, Py_ssize_t n) {
    SHA256_CTX ctx;
    /* Pair neighbours; a lone last node goes up unchanged. In place: node i of the next level
     * is written over node i of this one, after nodes 2i and 2i+1 were read. */
    while (n > 1) {
        Py_ssize_t pairs = n / 2;
        for (Py_ssize_t i = 0; i < pairs; i++) {
            SHA256_Init(&ctx);
            SHA256_Update(&ctx, &NODE, 1);
            SHA256_Update(&ctx, level + 2 * i * DIGEST, 2 * DIGEST);
            SHA256_Final(level + i * DIGEST, &ctx);
        }
        if (n & 1) {
            memmove(level + pairs * DIGEST, level + (n - 1) * DIGEST, DIGEST);
        }
        n = pairs + (n & 1);
    }
    PyObject *root = PyBytes_FromStringAndSize((const char *)level, DIGEST);
    PyMem_Free(level);
    return root;
}

/* The items' leaf hashes (leaves = 0) or the leaf hashes themselves (leaves = 1), n >= 1 of
 * them, into a new level array; NULL with an exception on a wrong item. */
static unsigned char *first_level(PyObject **objects, Py_ssize_t n, int leaves) {
    unsigned char *level = PyMem_Malloc((size_t)n * DIGEST);
    if (level == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (leaves) {
            if (!PyBytes_CheckExact(objects[i]) || PyBytes_GET_SIZE(objects[i]) != DIGEST) {
                PyMem_Free(level);
                PyErr_SetString(PyExc_ValueError, "a leaf hash is 32 bytes");
                return NULL;
            }
            memcpy(level + i * DIGEST, PyBytes_AS_STRING(objects[i]), DIGEST);
            continue;
        }
        if (hash_into(&LEAF, 1, objects[i], level + i * DIGEST) < 0) {
            PyMem_Free(level);
            return NULL;
        }
    }
    return level;
}

static PyObject *tree_hash(PyObject *items, int leaves) {
    PyObject *seq = PySequence_Fast(items, "the tree hash expects a sequence of bytes");
    if (seq == NULL) {
        return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n == 0) {
        Py_DECREF(seq);
        SHA256_CTX ctx;
        SHA256_Init(&ctx);
        return new_digest(&ctx);
    }
    unsigned char *level = first_level(PySequence_Fast_ITEMS(seq), n, leaves);
    Py_DECREF(seq);
    return level == NULL ? NULL : tree_hash_from_level(level, n);
}

static PyObject *list_tree_hash(PyObject *module, PyObject *items) {
    return tree_hash(items, 0);
}

static PyObject *list_tree_hash_of_leaves(PyObject *module, PyObject *leaves) {
    return tree_hash(leaves, 1);
}

/* --- the sparse tree of core/merkle.py: compute_root_from_pairs --- */

typedef struct {
    unsigned char path[DIGEST];
    unsigned char value_hash[DIGEST];
} leaf_t;

static int compare_leaves(const void *a, const void *b) {
    return memcmp(((const leaf_t *)a)->path, ((const leaf_t *)b)->path, DIGEST);
}

static int path_bit(const unsigned char *path, int depth) {
    return (path[depth >> 3] >> (7 - (depth & 7))) & 1;
}

/* The hash of the subtree at `depth` holding leaves[lo:hi], which share `depth` path bits. */
static void subtree_hash(const leaf_t *leaves, Py_ssize_t lo, Py_ssize_t hi, int depth,
                         unsigned char *out) {
    SHA256_CTX ctx;
    if (hi - lo == 0) {
        memset(out, 0, DIGEST); /* EMPTY */
        return;
    }
    if (hi - lo == 1) {
        SHA256_Init(&ctx);
        SHA256_Update(&ctx, &LEAF, 1);
        SHA256_Update(&ctx, leaves[lo].path, DIGEST);
        SHA256_Update(&ctx, leaves[lo].value_hash, DIGEST);
        SHA256_Final(out, &ctx);
        return;
    }
    /* Bit `depth` reads 0...0 1...1 across the range: the first 1 by binary search. Two distinct
     * paths differ below bit 256, so the recursion ends before it. */
    Py_ssize_t a = lo, b = hi;
    while (a < b) {
        Py_ssize_t m = a + (b - a) / 2;
        if (path_bit(leaves[m].path, depth)) {
            b = m;
        } else {
            a = m + 1;
        }
    }
    unsigned char children[2 * DIGEST];
    subtree_hash(leaves, lo, a, depth + 1, children);
    subtree_hash(leaves, a, hi, depth + 1, children + DIGEST);
    SHA256_Init(&ctx);
    SHA256_Update(&ctx, &NODE, 1);
    SHA256_Update(&ctx, children, 2 * DIGEST);
    SHA256_Final(out, &ctx);
}

/* One (key, value) pair into a leaf: path = SHA256(key), value_hash = SHA256(value). */
static int make_leaf(PyObject *pair, leaf_t *leaf) {
    PyObject *seq = PySequence_Fast(pair, "a pair must be a (key, value) sequence");
    if (seq == NULL) {
        return -1;
    }
    int ok = -1;
    if (PySequence_Fast_GET_SIZE(seq) != 2) {
        PyErr_SetString(PyExc_TypeError, "a pair must have exactly two items");
    } else if (hash_into(NULL, 0, PySequence_Fast_GET_ITEM(seq, 0), leaf->path) == 0 &&
               hash_into(NULL, 0, PySequence_Fast_GET_ITEM(seq, 1), leaf->value_hash) == 0) {
        ok = 0;
    }
    Py_DECREF(seq);
    return ok;
}

static PyObject *sparse_root(PyObject *module, PyObject *pairs) {
    PyObject *iterator = PyObject_GetIter(pairs);
    if (iterator == NULL) {
        return NULL;
    }
    Py_ssize_t count = 0, capacity = 1024;
    leaf_t *leaves = PyMem_Malloc(capacity * sizeof(leaf_t));
    if (leaves == NULL) {
        Py_DECREF(iterator);
        return PyErr_NoMemory();
    }
    PyObject *pair;
    while ((pair = PyIter_Next(iterator)) != NULL) {
        if (count == capacity) {
            capacity *= 2;
            leaf_t *grown = PyMem_Realloc(leaves, capacity * sizeof(leaf_t));
            if (grown == NULL) {
                Py_DECREF(pair);
                goto fail_memory;
            }
            leaves = grown;
        }
        int made = make_leaf(pair, &leaves[count]);
        Py_DECREF(pair);
        if (made < 0) {
            goto fail;
        }
        count++;
    }
    if (PyErr_Occurred()) {
        goto fail;
    }
    Py_DECREF(iterator);
    qsort(leaves, (size_t)count, sizeof(leaf_t), compare_leaves);
    for (Py_ssize_t i = 1; i < count; i++) {
        if (memcmp(leaves[i - 1].path, leaves[i].path, DIGEST) == 0) {
            PyObject *path = PyBytes_FromStringAndSize((const char *)leaves[i].path, DIGEST);
            PyMem_Free(leaves);
            PyObject *hex = path == NULL ? NULL : PyObject_CallMethod(path, "hex", NULL);
            Py_XDECREF(path);
            if (hex != NULL) {
                PyErr_Format(PyExc_ValueError, "duplicate key: two pairs share the path %U", hex);
                Py_DECREF(hex);
            }
            return NULL;
        }
    }
    unsigned char root[DIGEST];
    subtree_hash(leaves, 0, count, 0, root);
    PyMem_Free(leaves);
    return PyBytes_FromStringAndSize((const char *)root, DIGEST);

fail_memory:
    PyErr_NoMemory();
fail:
    Py_DECREF(iterator);
    PyMem_Free(leaves);
    return NULL;
}

static PyMethodDef methods[] = {
    {"sha256", (PyCFunction)sha256, METH_O, "SHA-256 of a bytes-like object."},
    {"sha256_concat", (PyCFunction)(void (*)(void))sha256_concat, METH_FASTCALL,
     "SHA-256 of the concatenation of the arguments."},
    {"list_leaf_hash", (PyCFunction)list_leaf_hash, METH_O, "SHA-256 of 0x00 || item."},
    {"list_tree_hash", (PyCFunction)list_tree_hash, METH_O,
     "RFC 6962 Merkle Tree Hash of a sequence of bytes (without the length)."},
    {"list_tree_hash_of_leaves", (PyCFunction)list_tree_hash_of_leaves, METH_O,
     "RFC 6962 Merkle Tree Hash from the items' leaf hashes (32 bytes each)."},
    {"sparse_root", (PyCFunction)sparse_root, METH_O,
     "Root of the sparse Merkle tree of core/merkle.py over (key, value) pairs."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "strata.core._sha256", "SHA-256 through OpenSSL's one-context API.",
    0, methods,
};

PyMODINIT_FUNC PyInit__sha256(void) { return PyModuleDef_Init(&module_def); }
