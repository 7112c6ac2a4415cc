/* replay.c - run a fuzz target over given files without libFuzzer.

   Linked with one of the fuzz targets (which define LLVMFuzzerTestOneInput), this main()
   feeds it each file named on the command line, and each file inside each directory
   named, once. So the regression inputs of fuzz/regressions/ run under any compiler and
   any checker: gcc with -fsanitize=address,undefined (make test-asan) or valgrind.
       cc -g -O1 -fsanitize=address,undefined -I. fuzz/replay.c fuzz/fuzz_safetensors.c \
          -o fuzz/safetensors-replay -lm -lpthread
       fuzz/safetensors-replay fuzz/regressions/safetensors
   Each input is copied into a buffer of exactly its size, as libFuzzer does, so a read
   one byte past the end is an error. Prints how many inputs ran; exit 0 if the target
   returned (a broken check in the target aborts). */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_ran;

/* Read one file into an exact-size buffer and run the target on it. */
static int replay_file(const char *path) {
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL, *nb;
    size_t n = 0, cap = 0, got;
    if (!f) { fprintf(stderr, "replay: cannot open %s\n", path); return 1; }
    for (;;) {
        if (n == cap) {
            cap = cap ? 2 * cap : 65536;
            nb = (unsigned char *)realloc(buf, cap);
            if (!nb) { fprintf(stderr, "replay: out of memory\n"); exit(1); }
            buf = nb;
        }
        got = fread(buf + n, 1, cap - n, f);
        if (!got) break;
        n += got;
    }
    fclose(f);
    /* the exact-size copy */
    nb = (unsigned char *)malloc(n ? n : 1);
    if (!nb) { fprintf(stderr, "replay: out of memory\n"); exit(1); }
    if (n) memcpy(nb, buf, n);
    free(buf);
    fprintf(stderr, "replay: %s (%lu bytes)\n", path, (unsigned long)n);
    LLVMFuzzerTestOneInput(nb, n);
    free(nb);
    replay_ran++;
    return 0;
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A directory: its regular files in name order (so runs are reproducible). */
static int replay_dir(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *de;
    char **names = NULL;
    size_t n = 0, cap = 0, i;
    int bad = 0;
    if (!d) { fprintf(stderr, "replay: cannot open directory %s\n", dir); return 1; }
    while ((de = readdir(d)) != NULL) {
        char *p;
        struct stat st;
        if (de->d_name[0] == '.') continue;
        p = (char *)malloc(strlen(dir) + strlen(de->d_name) + 2);
        if (!p) exit(1);
        sprintf(p, "%s/%s", dir, de->d_name);
        if (stat(p, &st) != 0 || !S_ISREG(st.st_mode)) { free(p); continue; }
        if (n == cap) {
            char **nn;
            cap = cap ? 2 * cap : 64;
            nn = (char **)realloc(names, cap * sizeof *names);
            if (!nn) exit(1);
            names = nn;
        }
        names[n++] = p;
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, cmp_names);
    for (i = 0; i < n; i++) {
        bad |= replay_file(names[i]);
        free(names[i]);
    }
    free(names);
    return bad;
}

int main(int argc, char **argv) {
    int i, bad = 0;
    LLVMFuzzerInitialize(&argc, &argv);
    for (i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) { fprintf(stderr, "replay: no such file %s\n", argv[i]); bad = 1; }
        else if (S_ISDIR(st.st_mode)) bad |= replay_dir(argv[i]);
        else bad |= replay_file(argv[i]);
    }
    fprintf(stderr, "replay: %d inputs ran\n", replay_ran);
    return bad;
}
