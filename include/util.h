/* Small, strict helpers shared by every program. */
#ifndef UTIL_H
#define UTIL_H

#include <stddef.h>
#include <stdint.h>

struct buf;

/* Returns 1 if a and b hold the same bytes, else 0. Time depends only on
 * the lengths, never on where the strings differ. */
int ct_streq(const char *a, const char *b);

/* Fills p with n bytes from the kernel's CSPRNG (getrandom). 0 or -1. */
int rand_bytes(void *p, size_t n);

/* Writes the base64url form of n bytes, without padding, NUL-terminated,
 * into out, which holds at least B64URL_LEN(n) + 1 bytes. Returns its length. */
#define B64URL_LEN(n) (((n)*4 + 2) / 3)
size_t b64url_encode(const unsigned char *in, size_t n, char *out);

/* Decodes unpadded base64url s (untrusted). Returns the byte count, or -1
 * on a bad character, a bad length, non-zero trailing bits or more than
 * cap bytes. */
long b64url_decode(const char *s, unsigned char *out, size_t cap);

/* Writes v in decimal and a NUL into out, which holds 21 bytes. Returns
 * the length. */
size_t dec_str(unsigned long long v, char out[21]);

/* Parses s as a decimal integer in [min, max] with nothing around it.
 * Returns 0 and sets *out, or -1. */
int num_parse(const char *s, long long min, long long max, long long *out);

/* Decodes n bytes of form-encoded s (untrusted): %XX escapes, '+' as space.
 * Refuses bad escapes, NUL and control bytes (< 0x20, 0x7f), and results
 * longer than cap - 1 bytes. Returns the length (out NUL-terminated) or -1. */
long pct_decode(const char *s, size_t n, char *out, size_t cap);

/* Appends s percent-encoded (all but ALPHA DIGIT - . _ ~). 0 or -1. */
int pct_encode(struct buf *, const char *s);

/* Writes n bytes as 2n lowercase hex digits and a NUL into out. */
void hex_encode(const unsigned char *in, size_t n, char *out);

/* Decodes exactly 2n hex digits of s into out. 0, or -1 on anything else. */
int hex_decode(const char *s, unsigned char *out, size_t n);

/* Returns 1 if s holds a byte < 0x20 or 0x7f, else 0. */
int has_ctl(const char *s);

/* The length of the UTF-8 sequence that starts s, its code point in *cp;
 * 0 when the bytes there are not one (a stray byte, an overlong form, a
 * surrogate, past U+10FFFF, cut short). */
size_t utf8_seq(const char *s, unsigned long *cp);

/* Returns 1 if s is valid UTF-8 of 1..max characters, none of them a
 * control character (C0, DEL or C1). */
int is_utf8_text(const char *s, size_t max);

/* Appends s for a terminal: printable UTF-8 as it is; control characters,
 * backslashes and bytes that are not UTF-8 as \xNN. 0 or -1. */
int text_terminal(struct buf *, const char *s);

/* Appends s as valid UTF-8 without DEL or C1 controls: each of those, and
 * each byte that is not UTF-8, becomes U+FFFD. C0 controls stay, for a
 * JSON writer, which escapes them. 0 or -1. */
int text_json(struct buf *, const char *s);

/* Copies the first max characters of s (UTF-8, up to its first invalid
 * byte) into out, of cap bytes, with "…" after them when s had more. */
void utf8_cut(const char *s, size_t max, char *out, size_t cap);

/* Returns 1 if the JSON text p[0..n) holds no \u0000 escape (cJSON would
 * end the string there) and nests at most max levels (cJSON recurses). */
int json_is_plain(const char *p, size_t n, int max);

/* Returns 1 if every byte of s is printable ASCII (space included). */
int is_ascii(const char *s);

/* Returns 1 if every byte of s is printable ASCII other than space, and s
 * is 1..max bytes long. */
int is_token_ascii(const char *s, size_t max);

/* Unix seconds now; milliseconds of a monotonic clock. */
int64_t now_unix(void);
double now_ms(void);

/* Writes now in UTC as "YYYY-MM-DD HH:MM:SS.ffffff" into out[27]. */
void utc_stamp(char out[27]);

/* A function of a library loaded at run time: its name, where it goes. */
struct dl_sym {
	const char *name;
	void **fn;
};

/* dlopen()s lib and resolves every one of syms. Returns the handle, or
 * NULL with nothing kept loaded and *missing the function not found (NULL
 * when lib itself could not be loaded). */
void *dl_load(
    const char *lib, const struct dl_sym *syms, size_t n, const char **missing);

/* strdup that returns NULL for NULL; free after wiping, for secrets. */
char *xstrdup(const char *);
void free_secret(char *);

#endif
