/*
 * execstorm: as many execs a second as this machine allows, for the --scan.events burst
 * test (tests/scan_events.rs) and benchmark (bench/events.sh).
 *
 *     execstorm MAX SECONDS THREADS RATE PROGRAM [ARG...]
 *     execstorm --sleep-us N
 *
 * THREADS threads each posix_spawn PROGRAM with its arguments and wait for it, until
 * MAX execs ran in all or SECONDS passed, whichever comes first (0: no such limit);
 * RATE > 0 paces the total to RATE execs a second. glibc's posix_spawn is a vfork
 * (clone with CLONE_VM|CLONE_VFORK): no page tables are copied. Children inherit the
 * caller's cgroups, so a caller placed in a container's cgroup makes every exec that
 * container's. With --sleep-us it is a PROGRAM itself: one that lives N microseconds.
 *
 * The cheapest PROGRAM is this same file built with -DEXECSTORM_NOP: a static binary
 * without libc whose only instruction is exit(0), so an exec costs the kernel's exec
 * and exit and nothing else (a static glibc binary halves the rate here). Such a
 * process is usually gone before anyone can read /proc/<pid>; one that lives a few
 * milliseconds (--sleep-us) is read.
 *
 *     cc -O2 -static -pthread -o execstorm execstorm.c
 *     cc -O2 -static -nostdlib -DEXECSTORM_NOP -o nop execstorm.c
 *
 * Prints one line: "execs=<n> failed=<n> seconds=<s> rate=<n/s>". Exit status 0 when
 * every spawn succeeded.
 */
#ifdef EXECSTORM_NOP
void _start(void)
{
#if defined(__x86_64__)
	__asm__ volatile("mov $60, %eax\n\txor %edi, %edi\n\tsyscall");
#elif defined(__aarch64__)
	__asm__ volatile("mov x8, #93\n\tmov x0, #0\n\tsvc #0");
#else
#error "EXECSTORM_NOP: exit(0) is written for x86_64 and aarch64 only"
#endif
	for (;;)
		;
}
#else
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static char **child_argv;
static long max_execs;
static double seconds, rate;
static struct timespec start;
static atomic_long started, done, failed;

static double since_start(void)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) / 1e9;
}

static void *storm(void *arg)
{
	(void)arg;
	for (;;) {
		long n = atomic_fetch_add(&started, 1);
		if ((max_execs > 0 && n >= max_execs) || (seconds > 0 && since_start() >= seconds))
			break;
		if (rate > 0) {
			/* The n-th exec is due at n / rate seconds. */
			double wait = n / rate - since_start();
			if (wait > 0) {
				struct timespec ts = { (time_t)wait, (long)((wait - (time_t)wait) * 1e9) };
				nanosleep(&ts, NULL);
			}
		}
		pid_t pid;
		int rc = posix_spawn(&pid, child_argv[0], NULL, NULL, child_argv, environ);
		if (rc != 0) {
			atomic_fetch_add(&failed, 1);
			continue;
		}
		int status;
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
			atomic_fetch_add(&done, 1);
		else
			atomic_fetch_add(&failed, 1);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--sleep-us") == 0) {
		usleep((useconds_t)atol(argv[2]));
		return 0;
	}
	if (argc < 6) {
		fprintf(stderr, "usage: execstorm MAX SECONDS THREADS RATE PROGRAM [ARG...]\n"
				"       execstorm --sleep-us N\n");
		return 2;
	}
	max_execs = atol(argv[1]);
	seconds = atof(argv[2]);
	int threads = atoi(argv[3]);
	rate = atof(argv[4]);
	child_argv = &argv[5];
	if (threads < 1 || threads > 64 || (seconds <= 0 && max_execs <= 0)) {
		fprintf(stderr, "execstorm: THREADS 1-64, and a limit: MAX or SECONDS\n");
		return 2;
	}
	clock_gettime(CLOCK_MONOTONIC, &start);
	pthread_t t[64];
	for (int i = 0; i < threads; i++)
		if (pthread_create(&t[i], NULL, storm, NULL) != 0) {
			perror("execstorm: pthread_create");
			return 1;
		}
	for (int i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	double s = since_start();
	printf("execs=%ld failed=%ld seconds=%.3f rate=%.0f\n", atomic_load(&done),
	       atomic_load(&failed), s, atomic_load(&done) / s);
	return atomic_load(&failed) == 0 ? 0 : 1;
}
#endif
