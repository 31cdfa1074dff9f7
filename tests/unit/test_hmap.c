/*
 * common/hmap: put, get, replace, delete and clear; binary keys (NUL bytes,
 * the empty key, keys that are prefixes of each other); growth far past the
 * size hint with every entry still found; removal by predicate and a walk
 * over every value; values freed exactly once.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "hmap.h"
#include "sv_err.h"

static int freed;

static void
count_free(void *v)
{
	freed++;
	free(v);
}

static void
test_basic(void **state)
{
	struct hmap *m;
	int a = 1, b = 2, c = 3;

	assert_int_equal(hmap_new(0, &m), 0);
	assert_null(hmap_get(m, "web1", 4));
	assert_int_equal(hmap_put(m, "web1", 4, &a), 0);
	assert_int_equal(hmap_put(m, "web10", 5, &b), 0); /* "web1" is its prefix */
	assert_ptr_equal(hmap_get(m, "web1", 4), &a);
	assert_ptr_equal(hmap_get(m, "web10", 5), &b);
	assert_null(hmap_get(m, "web", 3));
	assert_int_equal(hmap_size(m), 2);
	assert_int_equal(hmap_put(m, "web1", 4, &c), 0); /* replaces */
	assert_ptr_equal(hmap_get(m, "web1", 4), &c);
	assert_int_equal(hmap_size(m), 2);
	assert_int_equal(hmap_put(m, "x", 1, NULL), SV_EINVAL);
	assert_null(hmap_get(m, "x", 1));
	/* Binary keys: NUL bytes count, and so does the empty key. */
	assert_int_equal(hmap_put(m, "a\0b", 3, &a), 0);
	assert_int_equal(hmap_put(m, "a\0c", 3, &b), 0);
	assert_int_equal(hmap_put(m, "", 0, &c), 0);
	assert_ptr_equal(hmap_get(m, "a\0b", 3), &a);
	assert_ptr_equal(hmap_get(m, "a\0c", 3), &b);
	assert_ptr_equal(hmap_get(m, "", 0), &c);
	assert_null(hmap_get(m, "a", 1));
	assert_ptr_equal(hmap_del(m, "a\0b", 3), &a);
	assert_null(hmap_del(m, "a\0b", 3));
	assert_null(hmap_get(m, "a\0b", 3));
	assert_ptr_equal(hmap_get(m, "a\0c", 3), &b);
	assert_int_equal(hmap_size(m), 4);
	hmap_clear(m, NULL);
	assert_int_equal(hmap_size(m), 0);
	assert_null(hmap_get(m, "web1", 4));
	assert_int_equal(hmap_put(m, "web1", 4, &a), 0); /* usable after a clear */
	assert_ptr_equal(hmap_get(m, "web1", 4), &a);
	hmap_free(m, NULL);
	hmap_free(NULL, NULL);
}

/* Entry i of a test map: key "k<i>", value a malloc'ed int i. */
static void
key_of(int i, char *k, size_t n)
{
	snprintf(k, n, "k%d", i);
}

static void
fill(struct hmap *m, int n)
{
	char k[32];
	int i, *v;

	for (i = 0; i < n; i++) {
		key_of(i, k, sizeof(k));
		assert_non_null(v = malloc(sizeof(*v)));
		*v = i;
		assert_int_equal(hmap_put(m, k, strlen(k), v), 0);
	}
}

static int *
value_of(struct hmap *m, int i)
{
	char k[32];

	key_of(i, k, sizeof(k));
	return hmap_get(m, k, strlen(k));
}

/* Entries 0..n-1 of a fill(): every gone-th one removed, the others intact. */
static void
expect_removed(struct hmap *m, int n, int gone)
{
	int i, *v;

	for (i = 0; i < n; i++) {
		v = value_of(m, i);
		if (i % gone == 0)
			assert_null(v);
		else
			assert_int_equal(*v, i);
	}
}

static int
is_even(void *val, void *arg)
{
	int *seen = arg;

	(*seen)++;
	return *(int *)val % 2 == 0;
}

static void
add_up(void *val, void *arg)
{
	*(int *)arg += *(int *)val;
}

/* hmap_remove_if: exactly the entries the predicate picks, each value freed once;
 * hmap_each: every value left, once. */
static void
test_remove_if(void **state)
{
	struct hmap *m;
	int seen = 0;

	assert_int_equal(hmap_new(4, &m), 0);
	fill(m, 1000);
	freed = 0;
	assert_int_equal(hmap_remove_if(m, is_even, &seen, count_free), 500);
	assert_int_equal(seen, 1000);
	assert_int_equal(freed, 500);
	assert_int_equal(hmap_size(m), 500);
	expect_removed(m, 1000, 2);
	assert_int_equal(hmap_remove_if(m, is_even, &seen, count_free), 0);
	seen = 0;
	hmap_each(m, add_up, &seen); /* every value once: the odd numbers below 1000 */
	assert_int_equal(seen, 250000);
	hmap_free(m, free);
}

/* 100,000 entries in a map sized for 1: all found, deletions exact, values freed once. */
static void
test_growth(void **state)
{
	struct hmap *m;
	char k[32];
	int i, *v;

	assert_int_equal(hmap_new(1, &m), 0);
	fill(m, 100000);
	assert_int_equal(hmap_size(m), 100000);
	for (i = 0; i < 100000; i++) {
		v = value_of(m, i);
		assert_non_null(v);
		assert_int_equal(*v, i);
		key_of(i, k, sizeof(k));
		if (i % 3 == 0)
			free(hmap_del(m, k, strlen(k)));
	}
	assert_int_equal(hmap_size(m), 100000 - 33334);
	expect_removed(m, 100000, 3);
	freed = 0;
	hmap_free(m, count_free);
	assert_int_equal(freed, 100000 - 33334);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic),
		cmocka_unit_test(test_growth),
		cmocka_unit_test(test_remove_if),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
