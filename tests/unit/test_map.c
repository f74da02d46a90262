/* test_map.c - the string hash map, including deletion under collisions. */
#include <stdio.h>

#include "core/map.h"
#include "test.h"

static void test_map_put_get_del(void)
{
    wr_map_t m;
    wr_map_init(&m);
    int a = 1, b = 2;
    CHECK(wr_map_put(&m, WR_BYTES_LIT("a"), &a) == NULL);
    CHECK(wr_map_put(&m, WR_BYTES_LIT("b"), &b) == NULL);
    CHECK(wr_map_get(&m, WR_BYTES_LIT("a")) == &a);
    CHECK(wr_map_put(&m, WR_BYTES_LIT("a"), &b) == &a);
    CHECK(wr_map_get(&m, WR_BYTES_LIT("a")) == &b);
    CHECK(wr_map_del(&m, WR_BYTES_LIT("a")) == &b);
    CHECK(wr_map_get(&m, WR_BYTES_LIT("a")) == NULL);
    CHECK(wr_map_get(&m, WR_BYTES_LIT("")) == NULL);
    CHECK_EQ(m.count, 1);
    wr_map_free(&m);
}

static void test_map_many_with_deletes(void)
{
    wr_map_t m;
    wr_map_init(&m);
    char k[32];
    static int vals[20000];
    for (int i = 0; i < 20000; i++) {
        int n = snprintf(k, sizeof k, "key-%d", i);
        vals[i] = i;
        wr_map_put(&m, (wr_bytes_t){(uint8_t *)k, (size_t)n}, &vals[i]);
    }
    for (int i = 0; i < 20000; i += 2) {
        int n = snprintf(k, sizeof k, "key-%d", i);
        CHECK(wr_map_del(&m, (wr_bytes_t){(uint8_t *)k, (size_t)n}) == &vals[i]);
    }
    CHECK_EQ(m.count, 10000);
    for (int i = 0; i < 20000; i++) {
        int n = snprintf(k, sizeof k, "key-%d", i);
        void *v = wr_map_get(&m, (wr_bytes_t){(uint8_t *)k, (size_t)n});
        if (i % 2)
            CHECK(v == &vals[i]);
        else
            CHECK(v == NULL);
    }
    size_t it = 0, seen = 0;
    wr_map_slot_t *s;
    while (wr_map_next(&m, &it, &s))
        seen++;
    CHECK_EQ(seen, 10000);
    wr_map_free(&m);
}

WR_SUITE(map)
{
    RUN(test_map_put_get_del);
    RUN(test_map_many_with_deletes);
}
