/* Placeholder so the package builds while the C core is written; replaced by the real core. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static struct PyModuleDef moduledef = {PyModuleDef_HEAD_INIT, "_pagehash", NULL, -1, NULL};

PyMODINIT_FUNC PyInit__pagehash(void) { return PyModule_Create(&moduledef); }
