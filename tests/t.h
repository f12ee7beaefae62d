/* A tiny test harness: CHECK records a failure and goes on; each test
 * function is one named case. */
#ifndef T_H
#define T_H

#include <stdio.h>
#include <string.h>

static int t_pass, t_fail, t_case_failed;
static const char *t_case;

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond)) {                                                 \
			printf("  %s:%d: %s: CHECK(%s) failed\n", __FILE__,    \
			    __LINE__, t_case, #cond);                          \
			t_case_failed = 1;                                     \
		}                                                              \
	} while (0)

#define CHECK_STR(a, b)                                                        \
	do {                                                                   \
		const char *a_ = (a), *b_ = (b);                               \
		if (a_ == NULL || b_ == NULL ? a_ != b_ : strcmp(a_, b_)) {    \
			printf("  %s:%d: %s: \"%s\" != \"%s\"\n", __FILE__,    \
			    __LINE__, t_case, a_ ? a_ : "(null)",              \
			    b_ ? b_ : "(null)");                               \
			t_case_failed = 1;                                     \
		}                                                              \
	} while (0)

#define RUN(fn)                                                                \
	do {                                                                   \
		t_case = #fn;                                                  \
		t_case_failed = 0;                                             \
		fn();                                                          \
		if (t_case_failed)                                             \
			t_fail++, printf("FAIL - %s\n", #fn);                  \
		else                                                           \
			t_pass++, printf("ok - %s\n", #fn);                    \
	} while (0)

#endif
