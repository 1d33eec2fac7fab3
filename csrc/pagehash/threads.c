/* A fork-join helper: n tasks, n-1 worker threads plus the calling thread. Tasks own disjoint
 * output slices, so no locking is needed and results do not depend on the thread count. */
#include "pagehash.h"

#ifdef _WIN32
#include <windows.h>

typedef struct {
    ph_task_fn fn;
    void *arg;
} trampoline;

static DWORD WINAPI run_one(LPVOID p) {
    trampoline *t = (trampoline *)p;
    t->fn(t->arg);
    return 0;
}
#else
#include <pthread.h>
#include <stdlib.h>

typedef struct {
    ph_task_fn fn;
    void *arg;
} trampoline;

static void *run_one(void *p) {
    trampoline *t = (trampoline *)p;
    t->fn(t->arg);
    return NULL;
}
#endif

#include <stdlib.h>

int ph_run_parallel(ph_task_fn fn, void *base, size_t stride, int n) {
    if (n <= 1) {
        if (n == 1) fn(base);
        return PH_OK;
    }
    trampoline *tr = (trampoline *)calloc((size_t)n, sizeof *tr);
#ifdef _WIN32
    HANDLE *th = (HANDLE *)calloc((size_t)n, sizeof *th);
#else
    pthread_t *th = (pthread_t *)calloc((size_t)n, sizeof *th);
    char *started = (char *)calloc((size_t)n, 1);
#endif
    int rc = PH_OK, i;
#ifdef _WIN32
    if (!tr || !th) {
#else
    if (!tr || !th || !started) {
        free(started);
#endif
        free(tr);
        free(th);
        return PH_ENOMEM;
    }
    for (i = 0; i < n; i++) {
        tr[i].fn = fn;
        tr[i].arg = (char *)base + (size_t)i * stride;
    }
    /* tasks that could not get a thread run on the caller, so a thread failure only costs time */
    for (i = 1; i < n; i++) {
#ifdef _WIN32
        th[i] = CreateThread(NULL, 0, run_one, &tr[i], 0, NULL);
#else
        started[i] = pthread_create(&th[i], NULL, run_one, &tr[i]) == 0;
#endif
    }
    fn(tr[0].arg);
    for (i = 1; i < n; i++) {
#ifdef _WIN32
        if (th[i]) {
            WaitForSingleObject(th[i], INFINITE);
            CloseHandle(th[i]);
        } else {
            fn(tr[i].arg);
        }
#else
        if (started[i]) pthread_join(th[i], NULL);
        else fn(tr[i].arg);
#endif
    }
#ifndef _WIN32
    free(started);
#endif
    free(tr);
    free(th);
    return rc;
}
