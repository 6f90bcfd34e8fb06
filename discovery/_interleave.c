/* discovery._interleave: a chunk's JSON lines from its columns' tokens, in one bytes object.
 *
 * interleave(rows, between, columns) -> bytes
 *
 *   rows     the number of lines (records);
 *   between  len(columns) + 1 bytes objects: between[i] is written before column i's token on
 *            every line, between[-1] after the last token (the line's end, e.g. b"}\n");
 *   columns  one tuple per column, either
 *              (data, sep)   data: a bytes-like buffer of `rows` tokens, each two separated by
 *                            the one ASCII byte `sep` (an int; it never occurs inside a token),
 *                            or
 *              (codes, table) codes: a 1-d C-contiguous int64 buffer of `rows` codes into
 *                            table, a list (or tuple) of bytes tokens; code -1 is the table's
 *                            last token.
 *
 * Line r is between[0] + token_0(r) + between[1] + ... + token_{n-1}(r) + between[n].
 *
 * Everything is checked before a byte is written (token counts equal to rows, codes in
 * range, buffer types and shapes, sizes that fit); a bad input raises ValueError. The output
 * size is computed exactly first, so the copy pass writes into one allocation and never reads
 * past a buffer: a joined column's tokens are found with memchr within its own buffer, whose
 * separator count the first pass checked.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

typedef struct {
    int coded;            /* 0: joined tokens, 1: codes into a table */
    Py_buffer view;       /* data (joined) or codes (coded) */
    int have_view;
    char sep;             /* joined */
    const char *cursor;   /* joined: the next token's start, in the copy pass */
    const char *end;      /* joined: one past the buffer */
    PyObject *table;      /* coded: a tuple of bytes (owned) */
    const char **tokens;  /* coded: each table entry's bytes */
    Py_ssize_t *lengths;  /* coded: each table entry's length */
    Py_ssize_t count;     /* coded: entries in the table */
} column_t;

static void
release_columns(column_t *columns, Py_ssize_t n)
{
    if (columns == NULL) {
        return;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (columns[i].have_view) {
            PyBuffer_Release(&columns[i].view);
        }
        Py_XDECREF(columns[i].table);
        PyMem_Free(columns[i].tokens);
        PyMem_Free(columns[i].lengths);
    }
    PyMem_Free(columns);
}

/* total += add, refusing an overflow of Py_ssize_t. */
static int
add_size(Py_ssize_t *total, Py_ssize_t add)
{
    if (add < 0 || *total > PY_SSIZE_T_MAX - add) {
        PyErr_SetString(PyExc_ValueError, "interleave: the output would be too large");
        return -1;
    }
    *total += add;
    return 0;
}

/* An int64 format as the buffer protocol spells it: 'q' or a native 8-byte 'l', optionally
 * with a native / little-endian byte-order mark. */
static int
is_int64_format(const char *format, Py_ssize_t itemsize)
{
    if (itemsize != 8 || format == NULL) {
        return 0;
    }
    if (format[0] == '@' || format[0] == '=') {
        format++;
    }
#if PY_LITTLE_ENDIAN
    else if (format[0] == '<') {
        format++;
    }
#else
    else if (format[0] == '>' || format[0] == '!') {
        format++;
    }
#endif
    return (format[0] == 'q' || format[0] == 'l') && format[1] == '\0';
}

/* Column i's (data, sep) into `column`; `*size` grows by its tokens' bytes. */
static int
parse_joined(Py_ssize_t i, PyObject *data, PyObject *sep_obj, Py_ssize_t rows, column_t *column,
             Py_ssize_t *size)
{
    long sep = PyLong_AsLong(sep_obj);
    if (sep == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "interleave: column %zd's separator is not an int", i);
        return -1;
    }
    if (sep < 0 || sep > 127) {
        PyErr_Format(PyExc_ValueError,
                     "interleave: column %zd's separator %ld is not one ASCII byte", i, sep);
        return -1;
    }
    if (PyObject_GetBuffer(data, &column->view, PyBUF_SIMPLE) < 0) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError,
                     "interleave: column %zd's tokens are not a contiguous bytes buffer "
                     "(got %.100s)",
                     i, Py_TYPE(data)->tp_name);
        return -1;
    }
    column->have_view = 1;
    column->sep = (char)sep;
    const char *start = (const char *)column->view.buf;
    Py_ssize_t length = column->view.len;
    column->cursor = start;
    column->end = start + length;
    /* rows tokens: rows - 1 separators; no rows: no bytes at all. */
    if (rows == 0) {
        if (length != 0) {
            PyErr_Format(PyExc_ValueError,
                         "interleave: column %zd has %zd bytes of tokens for 0 rows", i,
                         length);
            return -1;
        }
        return 0;
    }
    Py_ssize_t seps = 0;
    const char *at = start;
    const char *end = column->end;
    while (at < end) {
        const char *found = memchr(at, (unsigned char)sep, (size_t)(end - at));
        if (found == NULL) {
            break;
        }
        seps++;
        if (seps >= rows) {
            break; /* already too many: no need to count them all */
        }
        at = found + 1;
    }
    if (seps != rows - 1) {
        if (seps >= rows) {
            PyErr_Format(PyExc_ValueError,
                         "interleave: column %zd has more than %zd tokens (rows: %zd)", i, rows,
                         rows);
        }
        else {
            PyErr_Format(PyExc_ValueError,
                         "interleave: column %zd has %zd tokens, not one per row (rows: %zd)",
                         i, seps + 1, rows);
        }
        return -1;
    }
    return add_size(size, length - (rows - 1));
}

/* Column i's (codes, table) into `column`; `*size` grows by its tokens' bytes. */
static int
parse_coded(Py_ssize_t i, PyObject *codes, PyObject *table, Py_ssize_t rows, column_t *column,
            Py_ssize_t *size)
{
    column->coded = 1;
    column->table = PySequence_Tuple(table); /* our own: nothing can change it under us */
    if (column->table == NULL) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "interleave: column %zd's table is not a sequence", i);
        return -1;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(column->table);
    column->count = count;
    column->tokens = PyMem_Malloc(sizeof(const char *) * (size_t)(count ? count : 1));
    column->lengths = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(count ? count : 1));
    if (column->tokens == NULL || column->lengths == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t t = 0; t < count; t++) {
        PyObject *token = PyTuple_GET_ITEM(column->table, t);
        if (!PyBytes_Check(token)) {
            PyErr_Format(PyExc_ValueError,
                         "interleave: column %zd's table entry %zd is not bytes (got %.100s)", i,
                         t, Py_TYPE(token)->tp_name);
            return -1;
        }
        column->tokens[t] = PyBytes_AS_STRING(token);
        column->lengths[t] = PyBytes_GET_SIZE(token);
    }
    if (PyObject_GetBuffer(codes, &column->view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError,
                     "interleave: column %zd's codes are not a C-contiguous buffer (got %.100s)",
                     i, Py_TYPE(codes)->tp_name);
        return -1;
    }
    column->have_view = 1;
    if (column->view.ndim != 1 || !is_int64_format(column->view.format, column->view.itemsize)) {
        PyErr_Format(PyExc_ValueError,
                     "interleave: column %zd's codes are not a 1-d int64 buffer "
                     "(format %.20s, itemsize %zd, %d dimensions)",
                     i, column->view.format ? column->view.format : "B",
                     column->view.itemsize, column->view.ndim);
        return -1;
    }
    Py_ssize_t length = column->view.shape[0];
    if (length != rows) {
        PyErr_Format(PyExc_ValueError,
                     "interleave: column %zd has %zd codes, not one per row (rows: %zd)", i,
                     length, rows);
        return -1;
    }
    const int64_t *code = (const int64_t *)column->view.buf;
    Py_ssize_t bytes = 0;
    for (Py_ssize_t r = 0; r < rows; r++) {
        int64_t c = code[r];
        if (c < -1 || c >= (int64_t)count) {
            PyErr_Format(PyExc_ValueError,
                         "interleave: column %zd's code %lld at row %zd is out of range for a "
                         "table of %zd",
                         i, (long long)c, r, count);
            return -1;
        }
        Py_ssize_t t = c < 0 ? count - 1 : (Py_ssize_t)c;
        if (add_size(&bytes, column->lengths[t]) < 0) {
            return -1;
        }
    }
    return add_size(size, bytes);
}

/* Copies `length` bytes to *write and moves it on, unless fewer than that remain before `stop`
   (-1: then nothing is copied). No Python API: called with the GIL released. */
static inline int
put(char **write, const char *stop, const char *from, Py_ssize_t length)
{
    if (length > stop - *write) {
        return -1;
    }
    memcpy(*write, from, (size_t)length);
    *write += length;
    return 0;
}

static PyObject *
interleave(PyObject *Py_UNUSED(module), PyObject *args)
{
    Py_ssize_t rows;
    PyObject *between_obj, *columns_obj;
    if (!PyArg_ParseTuple(args, "nOO:interleave", &rows, &between_obj, &columns_obj)) {
        return NULL;
    }
    if (rows < 0) {
        PyErr_Format(PyExc_ValueError, "interleave: rows must not be negative (got %zd)", rows);
        return NULL;
    }
    PyObject *between = NULL, *listed = NULL, *out = NULL;
    column_t *columns = NULL;
    Py_ssize_t n = 0;

    between = PySequence_Tuple(between_obj);
    listed = PySequence_Tuple(columns_obj);
    if (between == NULL || listed == NULL) {
        PyErr_Clear();
        PyErr_SetString(PyExc_ValueError,
                        "interleave: between and columns must be sequences");
        goto done;
    }
    n = PyTuple_GET_SIZE(listed);
    if (PyTuple_GET_SIZE(between) != n + 1) {
        PyErr_Format(PyExc_ValueError,
                     "interleave: %zd columns need %zd between texts, got %zd", n, n + 1,
                     PyTuple_GET_SIZE(between));
        goto done;
    }
    Py_ssize_t per_line = 0; /* the between texts' bytes on every line */
    for (Py_ssize_t i = 0; i <= n; i++) {
        PyObject *text = PyTuple_GET_ITEM(between, i);
        if (!PyBytes_Check(text)) {
            PyErr_Format(PyExc_ValueError, "interleave: between[%zd] is not bytes (got %.100s)",
                         i, Py_TYPE(text)->tp_name);
            goto done;
        }
        if (add_size(&per_line, PyBytes_GET_SIZE(text)) < 0) {
            goto done;
        }
    }
    Py_ssize_t size = 0;
    if (rows > 0 && per_line > PY_SSIZE_T_MAX / rows) {
        PyErr_SetString(PyExc_ValueError, "interleave: the output would be too large");
        goto done;
    }
    size = per_line * rows;

    columns = PyMem_Calloc((size_t)(n ? n : 1), sizeof(column_t));
    if (columns == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *spec = PyTuple_GET_ITEM(listed, i);
        if (!PyTuple_Check(spec) || PyTuple_GET_SIZE(spec) != 2) {
            PyErr_Format(PyExc_ValueError,
                         "interleave: column %zd is not a (data, sep) or (codes, table) pair",
                         i);
            goto done;
        }
        PyObject *first = PyTuple_GET_ITEM(spec, 0);
        PyObject *second = PyTuple_GET_ITEM(spec, 1);
        int ok = PyLong_Check(second)
                     ? parse_joined(i, first, second, rows, &columns[i], &size)
                     : parse_coded(i, first, second, rows, &columns[i], &size);
        if (ok < 0) {
            goto done;
        }
    }

    out = PyBytes_FromStringAndSize(NULL, size);
    if (out == NULL) {
        goto done;
    }
    char *write = PyBytes_AS_STRING(out);
    char *const stop = write + size;
    const char **lead = PyMem_Malloc(sizeof(const char *) * (size_t)(n + 1));
    Py_ssize_t *lead_length = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(n + 1));
    if (lead == NULL || lead_length == NULL) {
        PyMem_Free(lead);
        PyMem_Free(lead_length);
        Py_CLEAR(out);
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i <= n; i++) {
        lead[i] = PyBytes_AS_STRING(PyTuple_GET_ITEM(between, i));
        lead_length[i] = PyBytes_GET_SIZE(PyTuple_GET_ITEM(between, i));
    }
    /* The copy touches no Python object: the bytes are immutable and held by `between` and
       `listed`, the codes by their buffer views. So other threads run meanwhile (the writer,
       the drawdown). A code buffer is writable, though: one changed by another thread since it
       was sized is caught here (range and room are checked again), never copied past the end. */
    int changed = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r = 0; r < rows; r++) {
        for (Py_ssize_t i = 0; i < n; i++) {
            column_t *column = &columns[i];
            if (put(&write, stop, lead[i], lead_length[i]) < 0) {
                goto refused;
            }
            if (column->coded) {
                int64_t c = ((const int64_t *)column->view.buf)[r];
                if (c < -1 || c >= (int64_t)column->count) {
                    goto refused;
                }
                Py_ssize_t t = c < 0 ? column->count - 1 : (Py_ssize_t)c;
                if (put(&write, stop, column->tokens[t], column->lengths[t]) < 0) {
                    goto refused;
                }
            }
            else {
                const char *from = column->cursor;
                const char *next = memchr(from, (unsigned char)column->sep,
                                          (size_t)(column->end - from));
                const char *token_end = next == NULL ? column->end : next;
                if (put(&write, stop, from, token_end - from) < 0) {
                    goto refused;
                }
                column->cursor = next == NULL ? column->end : next + 1;
            }
        }
        if (put(&write, stop, lead[n], lead_length[n]) < 0) {
            goto refused;
        }
    }
    goto copied;
refused:
    changed = 1;
copied:
    Py_END_ALLOW_THREADS
    PyMem_Free(lead);
    PyMem_Free(lead_length);
    if (changed || write != stop) { /* only when a code buffer changed while it was copied */
        Py_CLEAR(out);
        PyErr_SetString(PyExc_ValueError, "interleave: the codes changed while they were read");
    }

done:
    release_columns(columns, n);
    Py_XDECREF(between);
    Py_XDECREF(listed);
    return out;
}

static PyMethodDef methods[] = {
    {"interleave", interleave, METH_VARARGS,
     "interleave(rows, between, columns) -> bytes\n\n"
     "A chunk's JSON lines: line r is between[0] + token_0(r) + between[1] + ... + "
     "between[n].\nEach column is (data, sep): `rows` tokens separated by the ASCII byte "
     "`sep`, or (codes, table): int64 codes into a list of bytes tokens (-1: the last).\n"
     "Raises ValueError on a token count other than `rows`, a code out of range, or a "
     "buffer of the wrong kind."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "discovery._interleave",
    "The JSON-lines interleave of discovery.json_lines, compiled (see that module).",
    -1,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__interleave(void)
{
    return PyModule_Create(&module);
}
