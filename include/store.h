/* The installation store: the only code that writes the SDK-compatible
 * installation tables. */
#ifndef STORE_H
#define STORE_H

struct db;
struct installation;

/* Appends the installation (and, when it has a bot token, its bot) as the
 * newest rows for client_id, in one transaction. Returns DB_OK, DB_ERR or
 * DB_BUSY; on failure nothing was written. */
int store_put(struct db *, const char *client_id, const struct installation *);

#include <stddef.h>
#include <stdint.h>

/* Which installation an admin means: an enterprise id (NULL: any, since a
 * team id is unique across Slack) and a team id ('' for org-wide). */
struct inst_key {
	const char *enterprise_id;
	const char *team_id;
};

/* Sets k from an id as an administrator types it: "E…" is the org-wide
 * installation of that enterprise, anything else a team id. */
void store_key(struct inst_key *k, const char *id);

/* Calls fn with the newest installation of each workspace and org of
 * client_id, stopping when fn returns non-zero. DB_OK or DB_ERR/DB_BUSY. */
int store_list(struct db *, const char *client_id,
    int (*fn)(void *, const struct installation *), void *arg);

/* Copies the newest bot token of k (user_id NULL) or user_id's token into
 * *token (caller frees with free_secret) and its expiry (0: none) into
 * *expires_at. Returns 1 found, 0 none, or DB_ERR/DB_BUSY. */
int store_token(struct db *, const char *client_id, const struct inst_key *k,
    const char *user_id, char **token, int64_t *expires_at);

/* A token that expires within the refresh window. */
struct due {
	char *enterprise_id, *team_id;
	char *user_id;       /* NULL: the bot token */
	char *refresh_token; /* as listed; a secret */
};

/* Lists the rotating tokens of client_id whose newest row expires at or
 * before deadline. DB_OK or DB_ERR/DB_BUSY. */
int store_due(struct db *, const char *client_id, int64_t deadline,
    struct due **list, size_t *n);
void store_due_free(struct due *, size_t n);

/* Re-reads the newest refresh token and expiry of d. 1 found, 0 none,
 * DB_ERR/DB_BUSY. */
int store_refresh_token(struct db *, const char *client_id, const struct due *d,
    char **refresh_token, int64_t *expires_at);

/* Appends the refreshed token as the newest rows (both tables for a bot
 * token), copying the rest of the newest row, in one transaction. scope may
 * be NULL (unchanged); json is Slack's answer, kept. */
int store_refreshed(struct db *, const char *client_id, const struct due *d,
    const char *token, const char *refresh_token, int64_t expires_at,
    const char *scope, const char *json);

/* A named lease in the database, so that concurrent processes (and hosts,
 * with a shared backend) refresh a token once. Returns 1 when taken, 0 when
 * another holder's lease has not expired, or DB_ERR/DB_BUSY. */
int store_lock(struct db *, const char *name, int64_t now, int64_t until);
int store_unlock(struct db *, const char *name);

/* Every distinct bot and user token of k that has not expired by now:
 * with rotation, up to two of a kind stay active. Caller frees with
 * store_tokens_free. DB_OK or DB_ERR/DB_BUSY. */
int store_tokens(struct db *, const char *client_id, const struct inst_key *k,
    int64_t now, char ***tokens, size_t *n);
void store_tokens_free(char **, size_t n);

/* Deletes every row of k in both tables, as the SDK's delete_all does.
 * Returns the number of rows deleted, or DB_ERR/DB_BUSY. */
long store_delete(struct db *, const char *client_id, const struct inst_key *k);

/* What a revocation takes from an installation, in one transaction, only
 * ever from rows installed before `before`: every row (the SDK's
 * delete_all), or the rows of some users (delete_installation(user_id=…))
 * and every bot token (delete_bot, and the bot columns of the other rows
 * set NULL, with oauth_response, Slack's answer, which holds the token). */
struct forget {
	int all;
	const char *const *users;
	size_t nusers;
	int bots;
	const char *before; /* UTC "YYYY-MM-DD HH:MM:SS"; NULL: any time */
	long deleted;       /* set: rows deleted, both tables */
	long cleared;       /* set: rows whose bot columns were cleared */
};

/* The steps of a revocation, each a backend statement (backend.h). */
enum forget_what {
	FORGET_BOTS,          /* slack_bots rows */
	FORGET_INSTALLATIONS, /* slack_installations rows */
	FORGET_USER,          /* one user's slack_installations rows */
	FORGET_BOT_COLUMNS,   /* the bot columns (and Slack's answer) of the
				 slack_installations rows that have them */
};

/* Applies f to k (whose enterprise id is then exact: '' for none). DB_OK,
 * or DB_ERR/DB_BUSY with nothing changed. */
int store_forget(struct db *, const char *client_id, const struct inst_key *k,
    struct forget *f);
/* For `slack-oauth copy`: see backend.h. */
int store_each(struct db *, int bots,
    int (*fn)(void *, const char *client_id, const struct installation *),
    void *arg);
int store_put_row(
    struct db *, int bots, const char *client_id, const struct installation *);
long store_rows(struct db *);
enum { TX_BEGIN, TX_COMMIT, TX_ROLLBACK };
int store_tx(struct db *, int op);

#endif
