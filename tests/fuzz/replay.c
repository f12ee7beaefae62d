/* Replays corpus files through a fuzz target without libFuzzer, for
 * `make test`: a plain build, each file once. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"

char *
fuzz_str(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (s == NULL)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

static char scratch[] = "/tmp/fuzz-slack-oauthXXXXXX";

static void
scratch_remove(void)
{
	static const char *const files[] = { "slack-oauth.conf",
		"slack-oauth.db", "slack-oauth.db-wal", "slack-oauth.db-shm",
		"slack-oauth.db-key", "slack-oauth.db-key.new",
		"slack-oauth.db-journal" };
	char path[64];
	size_t i;

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", scratch, files[i]);
		unlink(path);
	}
	rmdir(scratch);
}

void
fuzz_scratch(void)
{
	char path[64];
	FILE *f;

	if (mkdtemp(scratch) == NULL)
		abort();
	atexit(scratch_remove);
	snprintf(path, sizeof(path), "%s/slack-oauth.conf", scratch);
	if ((f = fopen(path, "w")) == NULL)
		abort();
	fclose(f);
	setenv("SLACK_OAUTH_CONFIG", path, 1);
	snprintf(path, sizeof(path), "%s/slack-oauth.db", scratch);
	setenv("SLACK_OAUTH_DB", path, 1);
}

#ifndef FUZZ_LIBFUZZER
static int
replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf = NULL;
	size_t n = 0, cap = 0, r;

	if (f == NULL)
		return -1;
	do {
		if (n == cap &&
		    (buf = realloc(buf, cap = cap ? cap * 2 : 4096)) == NULL)
			abort();
		r = fread(buf + n, 1, cap - n, f);
		n += r;
	} while (r > 0);
	fclose(f);
	LLVMFuzzerTestOneInput(buf, n);
	free(buf);
	return 0;
}

int
main(int argc, char **argv)
{
	struct dirent *e;
	char path[4096];
	DIR *d;
	int i, count = 0;

	for (i = 1; i < argc; i++) {
		if ((d = opendir(argv[i])) == NULL) {
			if (replay_file(argv[i]) == 0)
				count++;
			continue;
		}
		while ((e = readdir(d)) != NULL) {
			if (e->d_name[0] == '.')
				continue;
			snprintf(
			    path, sizeof(path), "%s/%s", argv[i], e->d_name);
			if (replay_file(path) == 0)
				count++;
		}
		closedir(d);
	}
	printf("replayed %d inputs\n", count);
	return count > 0 ? 0 : 1;
}
#endif
