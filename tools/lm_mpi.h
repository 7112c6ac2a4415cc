/* tools/lm_mpi.h - the MPI half of lm-mpi: the `lm` command line (tools/lm_cli.c) built
   with `mpicc -DLM_MPI` (make lm-mpi) runs as P processes that train one model together.
   lm.h knows nothing of MPI; this file is all the talking, included by lm_cli.c in the
   place of the one-process team_ functions (see "Training together" there).

       mpirun -np P ./lm-mpi train ... --accum A   is bit for bit   ./lm train ... --accum P*A

   What each function does for the P ranks:
     team_bcast        rank 0's bytes to every rank (the text, the weights at the start)
     team_allgather    a few floats from every rank to every rank, in rank order (the
                       micro-batches' losses, to agree on the step's loss and on failures)
     team_gather_runs  the validation losses of each rank's run of window groups, to rank 0
     team_chain        the gradient sum, in micro-batch order (below)
     team_signals      SIGINT/SIGTERM: rank 0 saves at once, from a thread of its own

   The gradient sum. A float sum depends on its order, and MPI_Allreduce fixes neither the
   order nor the grouping, so the ranks add in the order of one process: rank 0's partial
   sum (its micro-batches added in order) goes to rank 1, which adds its own micro-batches
   to it one by one, then to rank 2, and so on; the last rank has the whole sum and sends
   it back down the same line. Both passes run in chunks of up to 1 MB, pipelined:
   while rank 1 adds chunk c, rank 0 already sends chunk c+1, and the last rank sends each
   chunk of the whole sum back as soon as it has it. A rank in the middle sends (and
   receives) 2 x 4 bytes x parameters a step, up then down; the first and last ranks half
   that - as much as a ring all-reduce moves, without its freedom of order. With K chunks
   the exchange takes about 2K + 2P chunk times (K + 2 for two ranks, whose two directions
   overlap): bandwidth-bound, plus filling the line. */
#include <mpi.h>
#include <pthread.h>

#define LM_TOOL "lm-mpi"
#define TEAM_CHUNK 262144    /* floats per message at most (1 MB)                          */
#define TEAM_WINDOW 4        /* chunks of the running sum in flight towards each rank     */
enum { TEAM_TAG_UP = 11, TEAM_TAG_DOWN = 12 };

static int g_team_rank = 0, g_team_size = 1;
static double g_team_sent;      /* bytes this rank has sent in team_chain (lm bench train) */

static void team_lock(void);
/* An MPI call that failed: a process died or the network broke. Rank 0 may be saving
   after a signal: the lock waits for that to finish first. */
static void team_ok(int rc, const char *what) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (rc == MPI_SUCCESS) return;
    team_lock();
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) strcpy(msg, "unknown MPI error");
    die_here("%s failed: %s (did a process die?)", what, msg);
}

static void team_start(int *argc, char ***argv) {
    int provided;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "lm-mpi: MPI_Init failed\n");
        exit(EXIT_RUNTIME);
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &g_team_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_team_size);
    /* errors come back to team_ok (a message) instead of aborting the job unexplained */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    g_rank = g_team_rank;
    /* results are rank 0's: the others' stdout goes nowhere */
    if (g_team_rank != 0 && !freopen("/dev/null", "w", stdout)) exit(EXIT_RUNTIME);
}
static void team_end(void) { MPI_Finalize(); }
static double team_sent(void) { return g_team_sent; }
static double team_max(double x) {
    double y = x;
    team_ok(MPI_Allreduce(&x, &y, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce");
    return y;
}
static int team_rank(void) { return g_team_rank; }
static int team_size(void) { return g_team_size; }

/* The default --threads: this machine's cores shared among the ranks running on it. */
static int team_threads(void) {
    MPI_Comm local;
    int here = 1, cores = lm_num_cores();
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local) == MPI_SUCCESS) {
        MPI_Comm_size(local, &here);
        MPI_Comm_free(&local);
    }
    return cores / here > 1 ? cores / here : 1;
}

static void team_bcast(void *buf, size_t bytes) {
    size_t off = 0;
    while (off < bytes) {                       /* counts are ints: 1 GB at a time */
        size_t len = bytes - off < ((size_t)1 << 30) ? bytes - off : (size_t)1 << 30;
        team_ok(MPI_Bcast((char *)buf + off, (int)len, MPI_BYTE, 0, MPI_COMM_WORLD), "MPI_Bcast");
        off += len;
    }
}
static void team_barrier(void) { team_ok(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); }
static void team_allgather(const float *mine, int n, float *all) {
    team_ok(MPI_Allgather((void *)mine, n, MPI_FLOAT, all, n, MPI_FLOAT, MPI_COMM_WORLD),
            "MPI_Allgather");
}
/* buf (n floats): rank r holds the run [n r / P, n (r+1) / P); rank 0 gets them all. */
static void team_gather_runs(float *buf, long n) {
    int P = g_team_size, r, *counts = (int *)xmalloc((size_t)P * 2 * sizeof(int)), *displs = counts + P;
    long lo = n * g_team_rank / P;
    for (r = 0; r < P; r++) {
        displs[r] = (int)(n * r / P);
        counts[r] = (int)(n * (r + 1) / P - n * r / P);
    }
    team_ok(MPI_Gatherv(g_team_rank == 0 ? MPI_IN_PLACE : (void *)(buf + lo), counts[g_team_rank],
                        MPI_FLOAT, buf, counts, displs, MPI_FLOAT, 0, MPI_COMM_WORLD), "MPI_Gatherv");
    free(counts);
}

/* Send len floats of buf to rank `to`, counting the bytes. */
static void team_isend(const float *buf, int len, int to, int tag, MPI_Request *req) {
    g_team_sent += 4.0 * len;
    team_ok(MPI_Isend((void *)buf, len, MPI_FLOAT, to, tag, MPI_COMM_WORLD, req), "MPI_Isend");
}

/* Floats per message: 1 MB, or less so that the gradient goes in at least 8P messages -
   filling the line of P ranks (below) then takes a small part of the time - but never
   under 64 KB, where the cost of a message would start to tell. The same on every rank. */
static size_t team_chunk(size_t n, int P) {
    size_t ch = n / (8 * (size_t)P);
    ch = (ch + 16383) / 16384 * 16384;
    return ch < 16384 ? 16384 : ch > TEAM_CHUNK ? TEAM_CHUNK : ch;
}

/* The gradient sum of the P ranks, in micro-batch order. On entry rank 0's partial sum is
   in grad (its own micro-batches added in order), and rank r > 0 has its first nkeep
   gradients in keep[] and its last in grad. On return every rank has the whole sum in
   grad. Rank r, for each chunk c:
       up:   x = what rank r-1 sent; x += keep[0]; ...; x += grad;  send x to rank r+1
             (the last rank adds into grad instead - x + g is g + x exactly - and starts
             the chunk back down)
       down: grad = what rank r+1 sent; send it on to rank r-1.
   Messages between two ranks in one direction arrive in the order sent (MPI's
   non-overtaking rule), so the chunks need no numbers of their own. */
static void team_chain(float *grad, float *const *keep, int nkeep, size_t n) {
    static float *ring;                         /* TEAM_WINDOW chunks arriving from r-1 */
    /* up[c]: chunk c's send up; back[c]: its send down; in[c]: its receive, first of the
       partial sum coming up (into the ring), then of the whole sum coming down (into grad) */
    static MPI_Request *up, *in, *back;
    static size_t have;
    int r = g_team_rank, P = g_team_size, i;
    size_t ch = team_chunk(n, P), K = (n + ch - 1) / ch, c;
    if (P == 1) return;
    if (have < K) {
        free(up); free(in); free(back);
        up = (MPI_Request *)xmalloc(K * sizeof(MPI_Request));
        in = (MPI_Request *)xmalloc(K * sizeof(MPI_Request));
        back = (MPI_Request *)xmalloc(K * sizeof(MPI_Request));
        have = K;
    }
    if (!ring) ring = (float *)xmalloc((size_t)TEAM_WINDOW * TEAM_CHUNK * sizeof(float));
#define TEAM_LEN(c) ((int)(n - (c) * ch < ch ? n - (c) * ch : ch))
    if (r == 0) {
        for (c = 0; c < K; c++)
            team_isend(grad + c * ch, TEAM_LEN(c), 1, TEAM_TAG_UP, &up[c]);
        for (c = 0; c < K; c++) {               /* the sum comes back where it went from */
            team_ok(MPI_Wait(&up[c], MPI_STATUS_IGNORE), "MPI_Wait");
            team_ok(MPI_Irecv(grad + c * ch, TEAM_LEN(c), MPI_FLOAT, 1, TEAM_TAG_DOWN,
                              MPI_COMM_WORLD, &in[c]), "MPI_Irecv");
        }
        team_ok(MPI_Waitall((int)K, in, MPI_STATUSES_IGNORE), "MPI_Waitall");
        return;
    }
    for (c = 0; c < K && c < TEAM_WINDOW; c++)
        team_ok(MPI_Irecv(ring + c * ch, TEAM_LEN(c), MPI_FLOAT, r - 1, TEAM_TAG_UP,
                          MPI_COMM_WORLD, &in[c]), "MPI_Irecv");
    for (c = 0; c < K; c++) {
        float *x = ring + (c % TEAM_WINDOW) * ch, *g = grad + c * ch;
        size_t len = (size_t)TEAM_LEN(c);
        team_ok(MPI_Wait(&in[c], MPI_STATUS_IGNORE), "MPI_Wait");
        for (i = 0; i < nkeep; i++) lm_grad_accumulate(x, keep[i] + c * ch, len);
        if (r < P - 1) {
            lm_grad_accumulate(x, g, len);
            team_isend(x, (int)len, r + 1, TEAM_TAG_UP, &up[c]);
            team_ok(MPI_Irecv(g, (int)len, MPI_FLOAT, r + 1, TEAM_TAG_DOWN, MPI_COMM_WORLD,
                              &in[c]), "MPI_Irecv");
            if (c + TEAM_WINDOW < K) team_ok(MPI_Wait(&up[c], MPI_STATUS_IGNORE), "MPI_Wait");
        } else {
            lm_grad_accumulate(g, x, len);
            team_isend(g, (int)len, r - 1, TEAM_TAG_DOWN, &back[c]);
            in[c] = MPI_REQUEST_NULL;
        }
        if (c + TEAM_WINDOW < K)
            team_ok(MPI_Irecv(x, TEAM_LEN(c + TEAM_WINDOW), MPI_FLOAT, r - 1, TEAM_TAG_UP,
                              MPI_COMM_WORLD, &in[c + TEAM_WINDOW]), "MPI_Irecv");
    }
    if (r < P - 1) {
        for (c = 0; c < K; c++) {
            team_ok(MPI_Wait(&in[c], MPI_STATUS_IGNORE), "MPI_Wait");
            team_isend(grad + c * ch, TEAM_LEN(c), r - 1, TEAM_TAG_DOWN, &back[c]);
        }
        for (c = K > TEAM_WINDOW ? K - TEAM_WINDOW : 0; c < K; c++)
            team_ok(MPI_Wait(&up[c], MPI_STATUS_IGNORE), "MPI_Wait");
    }
    team_ok(MPI_Waitall((int)K, back, MPI_STATUSES_IGNORE), "MPI_Waitall");
#undef TEAM_LEN
}

/* SIGINT and SIGTERM. Given either, mpirun sends SIGTERM to every rank a second later and
   SIGKILL a second after that (OpenMPI's odls_base_sigkill_timeout), too soon to finish a
   step and then save. So rank 0 saves at once, from a thread of its own, while the step in
   flight goes on (a signal sent to rank 0 itself works the same, with no deadline): the handler wakes the thread through a pipe; the thread takes the lock that the
   training loop holds from each update to the end of that step's bookkeeping, and calls
   stop(sig), which saves the weights of the last whole step and ends the process. The
   save only reads the parameters, which the step in flight does not change (it writes
   the gradients and its own work memory), and touches no state lm.h shares between
   threads but the error message. The other ranks ignore the signals: they have nothing
   to save, and mpirun ends them once rank 0 has gone. */
static pthread_mutex_t g_team_mutex = PTHREAD_MUTEX_INITIALIZER;
static int g_team_pipe[2] = { -1, -1 };
static int g_team_locked;                /* the training loop holds the lock           */
static volatile sig_atomic_t g_team_sig;
static void (*g_team_stop)(int sig);

static void team_on_signal(int sig) {
    char b = 1;
    g_team_sig = sig;
    if (write(g_team_pipe[1], &b, 1) < 0) { /* the pipe is full: a wake-up is pending */ }
}
static void *team_saver(void *arg) {
    char b;
    (void)arg;
    while (read(g_team_pipe[0], &b, 1) != 1) {}
    pthread_mutex_lock(&g_team_mutex);
    g_team_stop(g_team_sig);                     /* does not return */
    return NULL;
}
/* Returns 1: the signals are taken care of (the caller installs no handler of its own). */
static int team_signals(void (*stop)(int sig)) {
    struct sigaction sa;
    pthread_t t;
    pthread_attr_t at;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    if (g_team_rank != 0) {
        sa.sa_handler = SIG_IGN;
    } else {
        g_team_stop = stop;
        if (pipe(g_team_pipe) != 0) die_here("cannot make a pipe: %s", strerror(errno));
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &at, team_saver, NULL) != 0) die_here("cannot start a thread");
        pthread_attr_destroy(&at);
        sa.sa_handler = team_on_signal;
        sa.sa_flags = SA_RESTART;
    }
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    return 1;
}
/* The training loop's lock (only rank 0 has a saver to keep out; taking it twice is
   taking it once). */
static void team_lock(void) {
    if (g_team_pipe[0] < 0 || g_team_locked) return;
    pthread_mutex_lock(&g_team_mutex);
    g_team_locked = 1;
}
static void team_unlock(void) {
    if (g_team_pipe[0] < 0 || !g_team_locked) return;
    g_team_locked = 0;
    pthread_mutex_unlock(&g_team_mutex);
}
