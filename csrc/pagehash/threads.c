/* A fork-join helper: n tasks, n-1 worker threads plus the calling thread. Tasks own disjoint
 * output slices, so no locking is needed and results do not depend on the thread count. */
#include <stdlib.h>

#include "pagehash.h"

#ifdef _WIN32
#include <windows.h>
typedef HANDLE thread_t;
#else
#include <pthread.h>
typedef pthread_t thread_t;
#endif

typedef struct {
    ph_task_fn fn;
    void *arg;
    thread_t th;
    int started;
} worker;

#ifdef _WIN32
static DWORD WINAPI run_worker(LPVOID p) {
    worker *w = (worker *)p;
    w->fn(w->arg);
    return 0;
}

static int start(worker *w) {
    w->th = CreateThread(NULL, 0, run_worker, w, 0, NULL);
    return w->th != NULL;
}

static void join(worker *w) {
    WaitForSingleObject(w->th, INFINITE);
    CloseHandle(w->th);
}
#else
static void *run_worker(void *p) {
    worker *w = (worker *)p;
    w->fn(w->arg);
    return NULL;
}

static int start(worker *w) { return pthread_create(&w->th, NULL, run_worker, w) == 0; }

static void join(worker *w) { pthread_join(w->th, NULL); }
#endif

int ph_run_parallel(ph_task_fn fn, void *base, size_t stride, int n) {
    if (n <= 1) {
        if (n == 1) fn(base);
        return PH_OK;
    }
    worker *ws = (worker *)calloc((size_t)n, sizeof *ws);
    if (!ws) return PH_ENOMEM;
    for (int i = 0; i < n; i++) {
        ws[i].fn = fn;
        ws[i].arg = (char *)base + (size_t)i * stride;
    }
    for (int i = 1; i < n; i++) ws[i].started = start(&ws[i]);
    fn(ws[0].arg);
    /* a task that could not get a thread runs here: a thread failure only costs time */
    for (int i = 1; i < n; i++) {
        if (ws[i].started) join(&ws[i]);
        else fn(ws[i].arg);
    }
    free(ws);
    return PH_OK;
}
