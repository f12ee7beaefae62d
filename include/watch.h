/* Whether files a long-lived process has read may have changed, without a
 * stat() of each per request: one inotify descriptor, read once a request
 * without blocking. A CGI run, or a process where inotify fails, checks
 * every time. */
#ifndef WATCH_H
#define WATCH_H

/* Starts watching (a FastCGI server, once, before its workers start).
 * The rest may be called from any worker at once. */
void watch_init(void);

/* Once per request: any event since the last call moves the generation. */
void watch_poll(void);

/* Watches path (a file that may not exist yet) and its directory. Call it
 * before reading the file, then note watch_gen(): while it is unchanged,
 * so is the file. Returns the generation, or 0 when path is not watched
 * (then check the file every time). */
unsigned long watch_file(const char *path);

/* The current generation; 0 when nothing is watched. */
unsigned long watch_gen(void);

/* What a cache notes of a file it checked: watch_note(w, gen) with what
 * watch_file returned, once the file was read; then watch_unchanged(w)
 * while inotify has told of nothing and the check is under a second old
 * (a network file system tells nothing: stat it once a second anyway). */
struct watched {
	unsigned long gen; /* 0: not watched */
	double at;         /* now_ms() then */
};
void watch_note(struct watched *, unsigned long gen);
int watch_unchanged(const struct watched *);

#endif
