/* slack-oauth: the admin command. Never web-executable. */
#include "admin.h"

int
main(int argc, char **argv)
{
	return admin_main(argc, argv);
}
