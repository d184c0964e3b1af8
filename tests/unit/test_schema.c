/* Unit tests for broker/schema.c: migration file names and the directory search. */
#include "../../broker/schema.c"

#include <unistd.h>

#include "test.h"

TEST(file_version_accepts_numbered_sql)
{
    int v = -1;
    CHECK_EQ_INT(schema_file_version("001_notifications.sql", &v), 0);
    CHECK_EQ_INT(v, 1);
    CHECK_EQ_INT(schema_file_version("12_x.sql", &v), 0);
    CHECK_EQ_INT(v, 12);
    CHECK_EQ_INT(schema_file_version("0002_a_b.c.sql", &v), 0);
    CHECK_EQ_INT(v, 2);
}

TEST(file_version_refuses_everything_else)
{
    int v = 77;
    const char *bad[] = { "", "notifications.sql", "_x.sql", "001.sql", "001_x.sql~",
                          "001_x.SQL", "001_x.txt", "001x.sql", "a001_x.sql",
                          "99999999999_x.sql", "001_.sq", "README.md", ".", ".." };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_EQ_INT(schema_file_version(bad[i], &v), -1);
    CHECK_EQ_INT(v, 77);   /* untouched on refusal */
}

TEST(find_dir_prefers_the_executables_tree)
{
    char tmpl[] = "/tmp/belfry-schema-XXXXXX";
    char path[512], out[512];
    CHECK(mkdtemp(tmpl) != NULL);
    snprintf(path, sizeof path, "%s/share", tmpl);
    CHECK(mkdir(path, 0700) == 0);
    snprintf(path, sizeof path, "%s/share/belfry", tmpl);
    CHECK(mkdir(path, 0700) == 0);
    snprintf(path, sizeof path, "%s/share/belfry/sql", tmpl);
    CHECK(mkdir(path, 0700) == 0);
    snprintf(path, sizeof path, "%s/bin", tmpl);
    CHECK(mkdir(path, 0700) == 0);
    CHECK_EQ_INT(schema_find_dir(path, out, sizeof out), 0);
    char want[512];
    snprintf(want, sizeof want, "%s/bin/../share/belfry/sql", tmpl);
    CHECK_EQ_STR(out, want);
    /* too small an output buffer is a refusal, not a truncation */
    char tiny[8];
    CHECK_EQ_INT(schema_find_dir(path, tiny, sizeof tiny), -1);
    snprintf(want, sizeof want, "%s/share/belfry/sql", tmpl); rmdir(want);
    snprintf(want, sizeof want, "%s/share/belfry", tmpl); rmdir(want);
    snprintf(want, sizeof want, "%s/share", tmpl); rmdir(want);
    rmdir(path);
    rmdir(tmpl);
}

TEST(apply_refuses_a_missing_dir_without_connecting)
{
    char err[256] = "";
    CHECK_EQ_INT(schema_apply("host=/nonexistent", "/nonexistent/belfry-sql", err, sizeof err), -1);
    CHECK(strstr(err, "/nonexistent/belfry-sql") != NULL);
}

TEST_MAIN(file_version_accepts_numbered_sql, file_version_refuses_everything_else,
          find_dir_prefers_the_executables_tree, apply_refuses_a_missing_dir_without_connecting)
