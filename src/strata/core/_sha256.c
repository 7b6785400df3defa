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
 *   list_tree_hash(items) -> bytes          RFC 6962's Merkle Tree Hash of a list of bytes, as
 *                                           core/ordered_merkle.py's compute_tree_hash defines it
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

static PyObject *sha256(PyObject *module, PyObject *data) {
    SHA256_CTX ctx;
    SHA256_Init(&ctx);
    if (update_with(&ctx, data) < 0) {
        return NULL;
    }
    return new_digest(&ctx);
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

static PyObject *list_tree_hash(PyObject *module, PyObject *items) {
    PyObject *seq = PySequence_Fast(items, "list_tree_hash expects a sequence of bytes");
    if (seq == NULL) {
        return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    SHA256_CTX ctx;
    if (n == 0) {
        Py_DECREF(seq);
        SHA256_Init(&ctx);
        return new_digest(&ctx);
    }
    unsigned char *level = PyMem_Malloc((size_t)n * DIGEST);
    if (level == NULL) {
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    PyObject **objects = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        SHA256_Init(&ctx);
        SHA256_Update(&ctx, &LEAF, 1);
        if (update_with(&ctx, objects[i]) < 0) {
            PyMem_Free(level);
            Py_DECREF(seq);
            return NULL;
        }
        SHA256_Final(level + i * DIGEST, &ctx);
    }
    Py_DECREF(seq);
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

static PyMethodDef methods[] = {
    {"sha256", (PyCFunction)sha256, METH_O, "SHA-256 of a bytes-like object."},
    {"sha256_concat", (PyCFunction)(void (*)(void))sha256_concat, METH_FASTCALL,
     "SHA-256 of the concatenation of the arguments."},
    {"list_tree_hash", (PyCFunction)list_tree_hash, METH_O,
     "RFC 6962 Merkle Tree Hash of a sequence of bytes (without the length)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "strata.core._sha256", "SHA-256 through OpenSSL's one-context API.",
    0, methods,
};

PyMODINIT_FUNC PyInit__sha256(void) { return PyModuleDef_Init(&module_def); }
