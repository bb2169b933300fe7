/* A stand-in for nccl-tests' all_reduce_perf where there is no GPU: the same flags
 * (-b -e -g -w -c -d -n -o; others are read and ignored) and the same text table,
 * measured with MPI_Allreduce over the MPI ranks, so a launch across nodes does real
 * work: every rank adds its own value (rank + 1) and the check counts wrong elements.
 * Built by the tests with mpicc (tests/fakecluster/mpi_standin.py). */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static double run(float *send, float *recv, size_t count, MPI_Op op, int in_place, int iters) {
    MPI_Barrier(MPI_COMM_WORLD);
    double start = MPI_Wtime();
    for (int i = 0; i < iters; i++)
        MPI_Allreduce(in_place ? MPI_IN_PLACE : send, recv, (int)count, MPI_FLOAT, op, MPI_COMM_WORLD);
    MPI_Barrier(MPI_COMM_WORLD);
    return (MPI_Wtime() - start) / iters;
}

static long wrong_after(float *send, float *recv, size_t count, MPI_Op op, int in_place, int rank, int world) {
    for (size_t i = 0; i < count; i++) { send[i] = (float)(rank + 1); recv[i] = in_place ? send[i] : -1.0f; }
    MPI_Allreduce(in_place ? MPI_IN_PLACE : send, recv, (int)count, MPI_FLOAT, op, MPI_COMM_WORLD);
    float expected = op == MPI_SUM ? (float)world * (world + 1) / 2 : op == MPI_MAX ? (float)world : 1.0f;
    long wrong = 0;
    for (size_t i = 0; i < count; i++) wrong += recv[i] != expected;
    long total = 0;
    MPI_Allreduce(&wrong, &total, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
    return total;
}

int main(int argc, char **argv) {
    size_t size = 8192; int iters = 20, warmup = 5, check = 1;
    const char *type = "float", *opname = "sum";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-b")) size = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "-n")) iters = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-w")) warmup = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-c")) check = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-d")) type = argv[i + 1];
        else if (!strcmp(argv[i], "-o")) opname = argv[i + 1];
    }
    MPI_Op op = !strcmp(opname, "max") ? MPI_MAX : !strcmp(opname, "min") ? MPI_MIN : MPI_SUM;
    MPI_Init(&argc, &argv);
    int rank, world;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    char host[256] = {0};
    const char *named = getenv("HOSTNAME");  /* a pod's name where it shares the host's hostname */
    if (named && *named) snprintf(host, sizeof host, "%s", named); else gethostname(host, sizeof host - 1);
    char *hosts = malloc(256 * (size_t)world);
    int *pids = malloc(sizeof(int) * (size_t)world);
    int pid = (int)getpid();
    MPI_Gather(host, 256, MPI_CHAR, hosts, 256, MPI_CHAR, 0, MPI_COMM_WORLD);
    MPI_Gather(&pid, 1, MPI_INT, pids, 1, MPI_INT, 0, MPI_COMM_WORLD);
    size_t count = size / sizeof(float) ? size / sizeof(float) : 1;
    float *send = malloc(count * sizeof(float)), *recv = malloc(count * sizeof(float));
    if (rank == 0) {
        printf("# nccl-tests version 2.20.0 (mpi stand-in) nccl-headers=0 nccl-library=0\n");
        printf("# Collective test starting: all_reduce_perf\n");
        printf("# nThread 1 nGpus 1 minBytes %zu maxBytes %zu step: 2(factor) warmup iters: %d iters: %d agg iters: 1 "
               "validation: %d graph: 0\n#\n# Using devices\n", size, size, warmup, iters, check);
        for (int r = 0; r < world; r++)
            printf("#  Rank %2d Group  0 Pid %6d on %10s device  0 [0000:00:00] MPI stand-in\n", r, pids[r], hosts + 256 * r);
        printf("#\n#%62s%35s\n", "out-of-place", "in-place");
        printf("#       size         count      type   redop    root     time   algbw   busbw  #wrong     time   algbw   busbw  #wrong\n");
        printf("#        (B)    (elements)                               (us)  (GB/s)  (GB/s)             (us)  (GB/s)  (GB/s)\n");
        printf("%12zu  %12zu  %8s  %6s  %6d", count * sizeof(float), count, type, opname, -1);
    }
    double factor = 2.0 * (world - 1) / world, busbw_sum = 0;
    long wrong_total = 0;
    for (int in_place = 0; in_place < 2; in_place++) {
        for (size_t i = 0; i < count; i++) send[i] = (float)(rank + 1);
        run(send, recv, count, op, in_place, warmup);
        double t = run(send, recv, count, op, in_place, iters);
        long wrong = check ? wrong_after(send, recv, count, op, in_place, rank, world) : 0;
        wrong_total += wrong;
        double algbw = (double)(count * sizeof(float)) / t / 1e9;
        busbw_sum += algbw * factor;
        if (rank == 0) printf("  %7.2f  %6.2f  %6.2f  %6ld", t * 1e6, algbw, algbw * factor, wrong);
    }
    if (rank == 0) {
        printf("\n# Out of bounds values : %ld %s\n# Avg bus bandwidth    : %g \n#\n\n", wrong_total,
               wrong_total ? "FAILED" : "OK", busbw_sum / 2);
        fflush(stdout);
    }
    MPI_Finalize();
    return wrong_total ? 1 : 0;
}
