/*
 * google.protobuf.Struct wire format <-> Python dicts, for the gRPC edge (functions/runner.py).
 *
 * Setting a Struct's fields through the protobuf Python API costs a call per field, and
 * reading one a call per field and per oneof test: for a Kubernetes claim that was a third
 * of the function's time. Here a whole object is one call; upb parses or serialises the
 * bytes. Encoding writes back to front, so every length is known when its prefix is written.
 *
 * Struct    { map<string, Value> fields = 1; }   (entries: key = 1, value = 2)
 * Value     { null_value = 1 (varint); number_value = 2 (double); string_value = 3;
 *             bool_value = 4 (varint); struct_value = 5; list_value = 6; }   (a oneof)
 * ListValue { repeated Value values = 1; }
 *
 * Requests and responses are split and joined around the composed objects, so that upb
 * parses and serialises only the rest (see split_request and encode_resources):
 * RunFunctionRequest  { observed = 2 (State); ... }
 * RunFunctionResponse { desired = 2 (State); ... }
 * State    { composite = 1 (Resource); map<string, Resource> resources = 2; }
 * Resource { Struct resource = 1; connection_details = 2; ready = 3 (enum); }
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

enum {
    ENTRY = 0x0a,  /* Struct.fields and ListValue.values: field 1, length-delimited */
    KEY = 0x0a,    /* map entry key: field 1 */
    VALUE = 0x12,  /* map entry value: field 2 */
    NULL_VALUE = 0x08,
    NUMBER = 0x11,
    STRING = 0x1a,
    BOOL = 0x20,
    STRUCT = 0x2a,
    LIST = 0x32,
    STATE = 0x12,     /* RunFunctionRequest.observed, RunFunctionResponse.desired */
    RESOURCES = 0x12, /* State.resources */
    RESOURCE = 0x0a,  /* Resource.resource */
    READY = 0x18,     /* Resource.ready */
};

/* ---- encoding ---- */

typedef struct {
    char *buf;
    Py_ssize_t cap;
    Py_ssize_t pos; /* the bytes written so far are buf[pos:cap] */
} Writer;

static Py_ssize_t written(const Writer *w) { return w->cap - w->pos; }

static int grow(Writer *w, Py_ssize_t need) {
    Py_ssize_t have = written(w);
    if (w->cap > (PY_SSIZE_T_MAX - need) / 2) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t cap = w->cap * 2 + need;
    char *buf = PyMem_Malloc(cap);
    if (buf == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(buf + cap - have, w->buf + w->pos, have);
    PyMem_Free(w->buf);
    w->buf = buf;
    w->cap = cap;
    w->pos = cap - have;
    return 0;
}

static inline int put(Writer *w, const void *data, Py_ssize_t n) {
    if (w->pos < n && grow(w, n) < 0) return -1;
    w->pos -= n;
    memcpy(w->buf + w->pos, data, n);
    return 0;
}

static inline int put_byte(Writer *w, uint8_t byte) { return put(w, &byte, 1); }

/* `v` as a varint into `out` (room for 10 bytes); returns how many bytes it took. */
static inline int varint(uint8_t *out, uint64_t v) {
    int n = 0;
    do {
        out[n] = v & 0x7f;
        v >>= 7;
        if (v) out[n] |= 0x80;
        n++;
    } while (v);
    return n;
}

static inline int put_varint(Writer *w, uint64_t v) {
    uint8_t tmp[10];
    return put(w, tmp, varint(tmp, v));
}

/* The tag and length of a length-delimited field whose bytes since `mark` are written. */
static inline int put_prefix(Writer *w, Py_ssize_t mark, uint8_t tag) {
    if (put_varint(w, (uint64_t)(written(w) - mark)) < 0) return -1;
    return put_byte(w, tag);
}

static int put_string(Writer *w, PyObject *s, uint8_t tag) {
    Py_ssize_t n;
    const char *utf8 = PyUnicode_AsUTF8AndSize(s, &n);
    if (utf8 == NULL || put(w, utf8, n) < 0 || put_varint(w, (uint64_t)n) < 0) return -1;
    return put_byte(w, tag);
}

static int put_number(Writer *w, double d) {
    uint64_t bits;
    uint8_t le[8];
    memcpy(&bits, &d, sizeof bits);
    for (int i = 0; i < 8; i++) le[i] = (uint8_t)(bits >> (8 * i));
    if (put(w, le, sizeof le) < 0) return -1;
    return put_byte(w, NUMBER);
}

static int put_value(Writer *w, PyObject *v, PyObject *plain);

static int put_struct(Writer *w, PyObject *dict, PyObject *plain) {
    /* Entries are written last first, so that the bytes keep the dict's order. */
    Py_ssize_t n = PyDict_GET_SIZE(dict), i = 0, pos = 0;
    PyObject *key, *value;
    PyObject **items = PyMem_Malloc(sizeof(PyObject *) * 2 * (n ? n : 1));
    if (items == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    while (PyDict_Next(dict, &pos, &key, &value) && i < 2 * n) {
        items[i++] = key;
        items[i++] = value;
    }
    int rc = 0;
    /* A value's conversion (`plain`) runs Python code: hold the items while it may. */
    for (Py_ssize_t j = 0; j < i; j++) Py_INCREF(items[j]);
    for (Py_ssize_t j = i - 2; j >= 0 && rc == 0; j -= 2) {
        key = items[j];
        value = items[j + 1];
        if (!PyUnicode_Check(key)) {
            PyErr_Format(PyExc_TypeError, "a Struct key must be a str, not %.100s",
                         Py_TYPE(key)->tp_name);
            rc = -1;
            break;
        }
        Py_ssize_t entry = written(w), mark = written(w);
        if (put_value(w, value, plain) < 0 || put_prefix(w, mark, VALUE) < 0 ||
            put_string(w, key, KEY) < 0 || put_prefix(w, entry, ENTRY) < 0)
            rc = -1;
    }
    for (Py_ssize_t j = 0; j < i; j++) Py_DECREF(items[j]);
    PyMem_Free(items);
    return rc;
}

static int put_list(Writer *w, PyObject *seq, PyObject *plain) {
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = n - 1; i >= 0; i--) {
        /* A list may change while `plain` runs Python code: read it again each time. */
        if (i >= PySequence_Fast_GET_SIZE(seq)) {
            PyErr_SetString(PyExc_RuntimeError, "list changed size during encoding");
            return -1;
        }
        PyObject *item = Py_NewRef(PySequence_Fast_GET_ITEM(seq, i));
        Py_ssize_t mark = written(w);
        int rc = put_value(w, item, plain);
        Py_DECREF(item);
        if (rc < 0 || put_prefix(w, mark, ENTRY) < 0) return -1;
    }
    return 0;
}

/* A Value's oneof field, tag included. Only exact JSON types are encoded here; anything
 * else (a mapping view, an enum) goes through `plain`, which returns its JSON value. */
static int put_value(Writer *w, PyObject *v, PyObject *plain) {
    PyTypeObject *type = Py_TYPE(v);
    if (type == &PyUnicode_Type) return put_string(w, v, STRING);
    if (type == &PyDict_Type || type == &PyList_Type || type == &PyTuple_Type) {
        if (Py_EnterRecursiveCall(" while encoding a Struct")) return -1;
        Py_ssize_t mark = written(w);
        int dict = type == &PyDict_Type;
        int rc = dict ? put_struct(w, v, plain) : put_list(w, v, plain);
        Py_LeaveRecursiveCall();
        if (rc < 0) return -1;
        return put_prefix(w, mark, dict ? STRUCT : LIST);
    }
    if (type == &PyBool_Type) {
        if (put_byte(w, v == Py_True) < 0) return -1;
        return put_byte(w, BOOL);
    }
    if (type == &PyLong_Type) {
        double d = PyLong_AsDouble(v);
        if (d == -1.0 && PyErr_Occurred()) return -1;
        return put_number(w, d);
    }
    if (type == &PyFloat_Type) return put_number(w, PyFloat_AS_DOUBLE(v));
    if (v == Py_None) {
        if (put_byte(w, 0) < 0) return -1;
        return put_byte(w, NULL_VALUE);
    }
    PyObject *json = PyObject_CallOneArg(plain, v);
    if (json == NULL) return -1;
    int rc;
    if (Py_TYPE(json) == type) { /* No progress: it would convert forever. */
        PyErr_Format(PyExc_TypeError, "cannot encode a %.100s", type->tp_name);
        rc = -1;
    } else if (Py_EnterRecursiveCall(" while encoding a converted value")) {
        rc = -1;
    } else {
        rc = put_value(w, json, plain);
        Py_LeaveRecursiveCall();
    }
    Py_DECREF(json);
    return rc;
}

static PyObject *encode(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyDict_CheckExact(args[0]) || !PyCallable_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "encode(data: dict, plain: callable)");
        return NULL;
    }
    Writer w = {PyMem_Malloc(4096), 4096, 4096};
    if (w.buf == NULL) return PyErr_NoMemory();
    PyObject *out = NULL;
    if (put_struct(&w, args[0], args[1]) == 0)
        out = PyBytes_FromStringAndSize(w.buf + w.pos, written(&w));
    PyMem_Free(w.buf);
    return out;
}

/* encode_resources(items, plain): the bytes of a RunFunctionResponse whose desired state
 * holds only `items`, (name, object, ready) each, and nothing for no items: upb reads them
 * as a merge into the response they are appended to. */
static PyObject *encode_resources(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyList_CheckExact(args[0]) || !PyCallable_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "encode_resources(items: list, plain: callable)");
        return NULL;
    }
    PyObject *items = args[0], *plain = args[1];
    if (PyList_GET_SIZE(items) == 0) return PyBytes_FromStringAndSize(NULL, 0);
    Writer w = {PyMem_Malloc(16384), 16384, 16384};
    if (w.buf == NULL) return PyErr_NoMemory();
    PyObject *out = NULL;
    for (Py_ssize_t i = PyList_GET_SIZE(items) - 1; i >= 0; i--) {
        if (i >= PyList_GET_SIZE(items)) {
            PyErr_SetString(PyExc_RuntimeError, "list changed size during encoding");
            goto done;
        }
        /* Held: converting `ready` or encoding may run Python code that changes the list. */
        PyObject *item = Py_NewRef(PyList_GET_ITEM(items, i)), *name, *body;
        int ready;
        if (!PyTuple_CheckExact(item) || !PyArg_ParseTuple(item, "UO!i", &name, &PyDict_Type,
                                                           &body, &ready)) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "an item is a (str, dict, int) tuple");
            Py_DECREF(item);
            goto done;
        }
        Py_INCREF(name);
        Py_INCREF(body);
        Py_DECREF(item);
        /* Written back to front: ready, then the object, then the entry's key. */
        Py_ssize_t entry = written(&w);
        int rc = put_varint(&w, (uint64_t)ready) < 0 || put_byte(&w, READY) < 0;
        Py_ssize_t object = written(&w);
        rc = rc || put_struct(&w, body, plain) < 0 || put_prefix(&w, object, RESOURCE) < 0 ||
             put_prefix(&w, entry, VALUE) < 0 || put_string(&w, name, KEY) < 0 ||
             put_prefix(&w, entry, RESOURCES) < 0;
        Py_DECREF(name);
        Py_DECREF(body);
        if (rc) goto done;
    }
    if (put_prefix(&w, 0, STATE) == 0) out = PyBytes_FromStringAndSize(w.buf + w.pos, written(&w));
done:
    PyMem_Free(w.buf);
    return out;
}

/* ---- decoding ---- */

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
} Reader;

static int malformed(void) {
    PyErr_SetString(PyExc_ValueError, "malformed google.protobuf.Struct bytes");
    return -1;
}

static int get_varint(Reader *r, uint64_t *out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64 && r->p < r->end; shift += 7) {
        uint8_t b = *r->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return malformed();
}

static int get_bytes(Reader *r, Reader *field) {
    uint64_t n;
    if (get_varint(r, &n) < 0) return -1;
    if (n > (uint64_t)(r->end - r->p)) return malformed();
    field->p = r->p;
    field->end = r->p + n;
    r->p += n;
    return 0;
}

static int skip_group(Reader *r, uint64_t number, int depth);

/* Past a field of any wire type, as protobuf parsers keep unknown fields. */
static int skip(Reader *r, uint64_t tag) {
    uint64_t ignored;
    Reader field;
    Py_ssize_t fixed = 0;
    switch (tag & 7) {
    case 0:
        return get_varint(r, &ignored);
    case 2:
        return get_bytes(r, &field);
    case 3:
        return skip_group(r, tag >> 3, 0);
    case 1:
        fixed = 8;
        break;
    case 5:
        fixed = 4;
        break;
    default:
        return malformed();
    }
    if (r->end - r->p < fixed) return malformed();
    r->p += fixed;
    return 0;
}

/* A group (wire types 3 and 4, deprecated but valid): up to its own end. */
#define MAX_GROUP_DEPTH 100
static int skip_group(Reader *r, uint64_t number, int depth) {
    if (depth > MAX_GROUP_DEPTH) return malformed();
    while (r->p < r->end) {
        uint64_t tag;
        if (get_varint(r, &tag) < 0 || (tag >> 3) == 0) return malformed();
        if ((tag & 7) == 4) return (tag >> 3) == number ? 0 : malformed();
        if ((tag & 7) == 3 ? skip_group(r, tag >> 3, depth + 1) < 0 : skip(r, tag) < 0)
            return -1;
    }
    return malformed();
}

/* Append the bytes of `field` to `*acc`, a bytes object of its own (new on first use). */
static int append(PyObject **acc, const Reader *field) {
    Py_ssize_t n = field->end - field->p, have = 0;
    if (*acc == NULL) {
        /* Made without its bytes, so that it is not CPython's shared one-byte object,
         * which cannot be resized. */
        *acc = PyBytes_FromStringAndSize(NULL, n);
        if (*acc == NULL) return -1;
    } else {
        have = PyBytes_GET_SIZE(*acc);
        if (_PyBytes_Resize(acc, have + n) < 0) return -1;
    }
    if (n) memcpy(PyBytes_AS_STRING(*acc) + have, field->p, n);
    return 0;
}

/* Short ASCII strings repeat (keys, condition types, "True"): reuse one object for each. */
#define INTERNED 1024
#define INTERN_MAX 40
static PyObject *interned[INTERNED];

static PyObject *get_str(const Reader *s) {
    Py_ssize_t n = s->end - s->p;
    if (n == 0) return PyUnicode_New(0, 0); /* also a missing key: s->p is NULL */
    if (n > INTERN_MAX) return PyUnicode_DecodeUTF8((const char *)s->p, n, NULL);
    uint32_t h = 2166136261u;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (s->p[i] & 0x80) return PyUnicode_DecodeUTF8((const char *)s->p, n, NULL);
        h = (h ^ s->p[i]) * 16777619u;
    }
    PyObject **slot = &interned[h % INTERNED];
    if (*slot != NULL && PyUnicode_GET_LENGTH(*slot) == n &&
        memcmp(PyUnicode_1BYTE_DATA(*slot), s->p, n) == 0)
        return Py_NewRef(*slot);
    PyObject *str = PyUnicode_FromStringAndSize((const char *)s->p, n);
    if (str != NULL) Py_XSETREF(*slot, Py_NewRef(str));
    return str;
}

static PyObject *get_value(Reader *r, int object);

static PyObject *METADATA, *MANAGED_FIELDS;

/* A Struct as a dict. `object`: the top level of a Kubernetes object, whose metadata is
 * read without managedFields: nothing reads them, and they are much of an object. */
static PyObject *get_struct(Reader *r, int object, PyObject *omit, PyObject *keep) {
    PyObject *dict = PyDict_New(), *joined = NULL;
    if (dict == NULL) return NULL;
    while (r->p < r->end) {
        uint64_t tag;
        Reader entry, key = {NULL, NULL}, value = {NULL, NULL}, piece;
        Py_CLEAR(joined);
        if (get_varint(r, &tag) < 0) goto fail;
        if (tag != ENTRY) {
            if (skip(r, tag) < 0) goto fail;
            continue;
        }
        if (get_bytes(r, &entry) < 0) goto fail;
        while (entry.p < entry.end) {
            if (get_varint(&entry, &tag) < 0) goto fail;
            if (tag == KEY) {
                if (get_bytes(&entry, &key) < 0) goto fail;
            } else if (tag == VALUE) {
                if (get_bytes(&entry, &piece) < 0) goto fail;
                if (value.p == NULL) {
                    value = piece;
                    continue;
                }
                /* A value repeated: protobuf merges them, as it reads them joined. */
                if ((joined == NULL && append(&joined, &value) < 0) || append(&joined, &piece) < 0)
                    goto fail;
                value.p = (const uint8_t *)PyBytes_AS_STRING(joined);
                value.end = value.p + PyBytes_GET_SIZE(joined);
            } else if (skip(&entry, tag) < 0) {
                goto fail;
            }
        }
        PyObject *k = get_str(&key);
        if (k == NULL) goto fail;
        if (omit != NULL && PyUnicode_Compare(k, omit) == 0) {
            Py_DECREF(k);
            continue;
        }
        if (keep != NULL) {
            int kept = PySet_Contains(keep, k);
            if (kept <= 0) {
                Py_DECREF(k);
                if (kept < 0) goto fail;
                continue;
            }
        }
        int metadata = object && PyUnicode_Compare(k, METADATA) == 0;
        PyObject *v = value.p == NULL ? Py_NewRef(Py_None) : get_value(&value, metadata);
        int rc = v == NULL ? -1 : PyDict_SetItem(dict, k, v);
        Py_DECREF(k);
        Py_XDECREF(v);
        if (rc < 0) goto fail;
    }
    Py_XDECREF(joined);
    return dict;
fail:
    Py_XDECREF(joined);
    Py_DECREF(dict);
    return NULL;
}

static PyObject *get_list(Reader *r) {
    PyObject *list = PyList_New(0);
    if (list == NULL) return NULL;
    while (r->p < r->end) {
        uint64_t tag;
        Reader item;
        if (get_varint(r, &tag) < 0) goto fail;
        if (tag != ENTRY) {
            if (skip(r, tag) < 0) goto fail;
            continue;
        }
        if (get_bytes(r, &item) < 0) goto fail;
        PyObject *v = get_value(&item, 0);
        int rc = v == NULL ? -1 : PyList_Append(list, v);
        Py_XDECREF(v);
        if (rc < 0) goto fail;
    }
    return list;
fail:
    Py_DECREF(list);
    return NULL;
}

/* A Value: None when no field is set; the last field set wins, and a struct or list set
 * twice in a row merges, as protobuf parsers do.
 * `metadata`: the value is an object's metadata (read without managedFields). */
static PyObject *get_value(Reader *r, int metadata) {
    PyObject *out = Py_NewRef(Py_None);
    uint64_t last = 0;
    while (r->p < r->end) {
        uint64_t tag, n;
        Reader field;
        PyObject *v;
        if (get_varint(r, &tag) < 0) goto fail;
        switch (tag) {
        case NULL_VALUE:
            if (get_varint(r, &n) < 0) goto fail;
            v = Py_NewRef(Py_None);
            break;
        case NUMBER: {
            if (r->end - r->p < 8) {
                malformed();
                goto fail;
            }
            uint64_t bits = 0;
            double d;
            for (int i = 0; i < 8; i++) bits |= (uint64_t)r->p[i] << (8 * i);
            r->p += 8;
            memcpy(&d, &bits, sizeof d);
            v = PyFloat_FromDouble(d);
            break;
        }
        case STRING:
            if (get_bytes(r, &field) < 0) goto fail;
            v = get_str(&field);
            break;
        case BOOL:
            if (get_varint(r, &n) < 0) goto fail;
            v = PyBool_FromLong(n != 0);
            break;
        case STRUCT:
        case LIST:
            if (get_bytes(r, &field) < 0) goto fail;
            if (Py_EnterRecursiveCall(" while decoding a Struct")) goto fail;
            v = tag == LIST ? get_list(&field)
                            : get_struct(&field, 0, metadata ? MANAGED_FIELDS : NULL, NULL);
            Py_LeaveRecursiveCall();
            break;
        default:
            if (skip(r, tag) < 0) goto fail;
            continue;
        }
        if (v == NULL) goto fail;
        if (tag == last && (tag == STRUCT || tag == LIST)) {
            /* The same message field again: merged into the one before. */
            int rc = tag == STRUCT ? PyDict_Update(out, v)
                                   : PyList_SetSlice(out, PY_SSIZE_T_MAX, PY_SSIZE_T_MAX, v);
            Py_DECREF(v);
            if (rc < 0) goto fail;
            continue;
        }
        Py_SETREF(out, v);
        last = tag;
    }
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

static PyObject *decode(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    PyObject *keep = nargs == 2 && args[1] != Py_None ? args[1] : NULL;
    if (nargs < 1 || nargs > 2 || (keep != NULL && !PyFrozenSet_CheckExact(keep))) {
        PyErr_SetString(PyExc_TypeError, "decode(data, keep: frozenset | None = None)");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) return NULL;
    Reader r = {view.buf, (const uint8_t *)view.buf + view.len};
    PyObject *out = get_struct(&r, 1, NULL, keep);
    PyBuffer_Release(&view);
    return out;
}

/* ---- requests ---- */

static int bad_request(void) {
    PyErr_SetString(PyExc_ValueError, "malformed RunFunctionRequest bytes");
    return -1;
}

/* An unknown field of the request's own messages; field number 0 is refused, as upb does. */
static int skip_field(Reader *r, uint64_t tag) {
    return (tag >> 3) == 0 || skip(r, tag) < 0 ? bad_request() : 0;
}

/* One observed.resources entry: its name and its Resource's object, the Struct's bytes
 * (repeated fields concatenated, which upb reads as a merge), left for decode to read
 * when a service reads them. The last entry of a name wins, as in any protobuf map. */
static int split_entry(Reader entry, PyObject *objects) {
    Reader key = {NULL, NULL}, value, field;
    PyObject *object = NULL;
    while (entry.p < entry.end) {
        uint64_t tag;
        if (get_varint(&entry, &tag) < 0) goto bad;
        if (tag == KEY) {
            if (get_bytes(&entry, &key) < 0) goto bad;
        } else if (tag == VALUE) {
            if (get_bytes(&entry, &value) < 0) goto bad;
            while (value.p < value.end) {
                if (get_varint(&value, &tag) < 0) goto bad;
                if (tag == RESOURCE) {
                    if (get_bytes(&value, &field) < 0) goto bad;
                    if (append(&object, &field) < 0) goto fail;
                } else if (skip_field(&value, tag) < 0) {
                    goto fail;
                }
            }
        } else if (skip_field(&entry, tag) < 0) {
            goto fail;
        }
    }
    if (object == NULL && (object = PyBytes_FromStringAndSize(NULL, 0)) == NULL) return -1;
    PyObject *name = key.p == NULL ? PyUnicode_New(0, 0)
                                   : PyUnicode_DecodeUTF8((const char *)key.p,
                                                          key.end - key.p, NULL);
    int rc = name == NULL ? -1 : PyDict_SetItem(objects, name, object);
    Py_XDECREF(name);
    Py_DECREF(object);
    return rc;
bad:
    bad_request();
fail:
    Py_XDECREF(object);
    return -1;
}

/* split_request(data): (the request without its observed composed objects, {name: the
 * object's Struct bytes}). */
static PyObject *split_request(PyObject *module, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    Reader r = {view.buf, (const uint8_t *)view.buf + view.len}, field, entry;
    PyObject *objects = PyDict_New(), *rest = NULL, *state = NULL, *out = NULL;
    int observed = 0;
    uint64_t tag;
    if (objects == NULL) goto done;
    while (r.p < r.end) {
        const uint8_t *start = r.p;
        if (get_varint(&r, &tag) < 0) goto bad;
        if (tag != STATE) {
            if (skip_field(&r, tag) < 0) goto done;
            Reader whole = {start, r.p};
            if (append(&rest, &whole) < 0) goto done;
            continue;
        }
        if (get_bytes(&r, &field) < 0) goto bad;
        observed = 1;
        /* The observed state: its composite (and anything else) stays for upb to parse. */
        while (field.p < field.end) {
            const uint8_t *at = field.p;
            if (get_varint(&field, &tag) < 0) goto bad;
            if (tag == RESOURCES) {
                if (get_bytes(&field, &entry) < 0) goto bad;
                if (split_entry(entry, objects) < 0) goto done;
                continue;
            }
            if (skip_field(&field, tag) < 0) goto done;
            Reader kept = {at, field.p};
            if (append(&state, &kept) < 0) goto done;
        }
    }
    if (observed) {
        /* Re-framed as one observed field after the rest: upb merges repeated fields. */
        uint8_t prefix[11] = {STATE};
        Py_ssize_t n = state == NULL ? 0 : PyBytes_GET_SIZE(state);
        Reader framing = {prefix, prefix + 1 + varint(prefix + 1, (uint64_t)n)};
        if (append(&rest, &framing) < 0) goto done;
        if (state != NULL) {
            Reader body = {(const uint8_t *)PyBytes_AS_STRING(state),
                           (const uint8_t *)PyBytes_AS_STRING(state) + n};
            if (append(&rest, &body) < 0) goto done;
        }
    }
    if (rest == NULL && (rest = PyBytes_FromStringAndSize(NULL, 0)) == NULL) goto done;
    out = PyTuple_Pack(2, rest, objects);
    goto done;
bad:
    bad_request();
done:
    PyBuffer_Release(&view);
    Py_XDECREF(objects);
    Py_XDECREF(rest);
    Py_XDECREF(state);
    return out;
}

static PyMethodDef methods[] = {
    {"encode", (PyCFunction)(void (*)(void))encode, METH_FASTCALL,
     "encode(data, plain): the Struct of `data` as wire bytes; `plain` converts values of "
     "other than the JSON types."},
    {"decode", (PyCFunction)(void (*)(void))decode, METH_FASTCALL,
     "decode(data, keep=None): a Kubernetes object from Struct wire bytes, without "
     "metadata.managedFields; only the top-level fields in `keep` when given."},
    {"encode_resources", (PyCFunction)(void (*)(void))encode_resources, METH_FASTCALL,
     "encode_resources(items, plain): a RunFunctionResponse whose desired state holds the "
     "(name, object, ready) items."},
    {"split_request", split_request, METH_O,
     "split_request(data): the RunFunctionRequest without its observed composed objects, "
     "and those objects' Struct bytes by name."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, .m_name = "_wire", .m_size = -1, .m_methods = methods,
};

PyMODINIT_FUNC PyInit__wire(void) {
    METADATA = PyUnicode_InternFromString("metadata");
    MANAGED_FIELDS = PyUnicode_InternFromString("managedFields");
    if (METADATA == NULL || MANAGED_FIELDS == NULL) return NULL;
    return PyModule_Create(&module);
}
