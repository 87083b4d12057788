/*
 * noflock.so - LD_PRELOAD shim for iptables in the test VM.
 *
 * The test kernel is built from tinyconfig without CONFIG_FILE_LOCKING, and
 * iptables-legacy refuses to run when flock() on /run/xtables.lock fails.
 * Nothing else runs iptables in the guest, so the lock is not needed.
 */
#include <sys/file.h>

int flock(int fd, int operation)
{
	(void)fd;
	(void)operation;
	return 0;
}
