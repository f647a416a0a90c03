/*
 * escape-helper: the processes that tests/escapes.rs and tests/threads.rs need and no
 * shell can make. Built static (`gcc -static -pthread`) so that it also runs as the
 * only file of a FROM-scratch image.
 *
 *   escape-helper thread NSFILE [wait]
 *       A second thread enters the network namespace at NSFILE (setns) and stays there;
 *       the leader never does. With `wait`, the thread first reads one line from stdin.
 *   escape-helper leader-exit [NSFILE]
 *       A second thread (after entering NSFILE, if given) runs on while the leader ends
 *       with pthread_exit: the leader becomes a zombie whose namespace links
 *       are gone.
 *   escape-helper unshare-net
 *       The process leaves for a new network namespace of its own (unshare).
 *
 * Each prints "ready" once it is in place, then sleeps until killed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *nsfile;
static int wait_line;

static void die(const char *what)
{
	fprintf(stderr, "escape-helper: %s: %s\n", what, strerror(errno));
	fflush(stderr);
	exit(1);
}

static void ready(void)
{
	printf("ready\n");
	fflush(stdout);
}

static void enter(void)
{
	int fd = open(nsfile, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die(nsfile);
	if (setns(fd, CLONE_NEWNET) != 0)
		die("setns");
	close(fd);
}

static void sleep_forever(void)
{
	for (;;)
		pause();
}

static void *thread_main(void *arg)
{
	(void)arg;
	if (wait_line) {
		char line[64];
		if (!fgets(line, sizeof line, stdin))
			die("read stdin");
	}
	if (nsfile)
		enter();
	ready();
	sleep_forever();
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t t;
	const char *mode = argc > 1 ? argv[1] : "";
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (strcmp(mode, "thread") == 0 && argc >= 3) {
		nsfile = argv[2];
		wait_line = argc >= 4 && strcmp(argv[3], "wait") == 0;
		if (pthread_create(&t, NULL, thread_main, NULL) != 0)
			die("pthread_create");
		sleep_forever();
	}
	if (strcmp(mode, "leader-exit") == 0) {
		nsfile = argc >= 3 ? argv[2] : NULL;
		if (pthread_create(&t, NULL, thread_main, NULL) != 0)
			die("pthread_create");
		pthread_exit(NULL);
	}
	if (strcmp(mode, "unshare-net") == 0) {
		if (unshare(CLONE_NEWNET) != 0)
			die("unshare");
		ready();
		sleep_forever();
	}
	fprintf(stderr, "usage: escape-helper thread NSFILE [wait] | leader-exit [NSFILE] | unshare-net\n");
	return 2;
}
