/* bin/slack-oauth: the admin command. */
#ifndef ADMIN_H
#define ADMIN_H

/* Runs the command in argv. Returns the exit status: 0 done, 1 a failure
 * it explained on stderr, 2 bad usage. */
int admin_main(int argc, char **argv);

#endif
