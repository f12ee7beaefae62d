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

#endif
