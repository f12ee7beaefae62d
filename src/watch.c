#include <sys/inotify.h>

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "util.h"
#include "watch.h"

/* Set by watch_init before the workers start, read-only after; the
 * generation is the one value every worker moves and reads. */
static int ifd = -1;
static atomic_ulong gen = 1;

void
watch_init(void)
{
	if (ifd == -1)
		ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
}

void
watch_poll(void)
{
	char ev[4096]
	    __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;

	if (ifd == -1)
		return;
	while (
	    (n = read(ifd, ev, sizeof(ev))) > 0 || (n == -1 && errno == EINTR))
		if (n > 0)
			atomic_fetch_add(&gen, 1);
}

unsigned long
watch_gen(void)
{
	return ifd == -1 ? 0 : atomic_load(&gen);
}

unsigned long
watch_file(const char *path)
{
	char dir[4096];
	const char *slash = strrchr(path, '/');
	size_t n = slash == NULL ? 1
	    : slash == path      ? 1
				 : (size_t)(slash - path);

	if (ifd == -1 || n >= sizeof(dir))
		return 0;
	memcpy(dir, slash == NULL ? "." : path, n);
	dir[n] = '\0';
	/* The directory: the file created, removed or renamed over; the file
	 * itself: written, its mode or links changed. Not the directory's
	 * writes, which come and go next to a database. */
	if (inotify_add_watch(ifd, dir,
		IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO |
		    IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR) == -1)
		return 0;
	if (inotify_add_watch(ifd, path,
		IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_DELETE_SELF |
		    IN_MOVE_SELF) == -1 &&
	    errno != ENOENT)
		return 0;
	return atomic_load(&gen);
}

void
watch_note(struct watched *w, unsigned long g)
{
	w->gen = g;
	w->at = now_ms();
}

int
watch_unchanged(const struct watched *w)
{
	return w->gen != 0 && w->gen == watch_gen() && now_ms() - w->at < 1000;
}
