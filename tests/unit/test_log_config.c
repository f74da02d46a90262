/* test_log_config.c - log levels and output format; rabbitmq.conf parsing,
 * every key, every kind of error, and the loopback_users rules. */
#include <stdlib.h>
#include <unistd.h>

#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "test.h"

/* ---- logging ----------------------------------------------------------- */

static void test_log_parse_level(void)
{
    CHECK_EQ(wr_log_parse_level("debug"), WR_LOG_DEBUG);
    CHECK_EQ(wr_log_parse_level("info"), WR_LOG_INFO);
    CHECK_EQ(wr_log_parse_level("warning"), WR_LOG_WARNING);
    CHECK_EQ(wr_log_parse_level("error"), WR_LOG_ERROR);
    CHECK_EQ(wr_log_parse_level("critical"), WR_LOG_ERROR);
    CHECK_EQ(wr_log_parse_level("none"), WR_LOG_NONE);
    /* RabbitMQ's other levels map to the nearest warren level that hides
     * what RabbitMQ would hide. */
    CHECK_EQ(wr_log_parse_level("notice"), WR_LOG_WARNING);
    CHECK_EQ(wr_log_parse_level("alert"), WR_LOG_ERROR);
    CHECK_EQ(wr_log_parse_level("emergency"), WR_LOG_ERROR);
    CHECK_EQ(wr_log_parse_level("INFO"), WR_LOG_INFO);
    CHECK_EQ(wr_log_parse_level("warn"), -1);
    CHECK_EQ(wr_log_parse_level(""), -1);
    CHECK_EQ(wr_log_parse_level("info "), -1);
    CHECK_EQ(wr_log_parse_level(NULL), -1);
    CHECK(WR_LOG_DEBUG < WR_LOG_INFO && WR_LOG_INFO < WR_LOG_WARNING &&
          WR_LOG_WARNING < WR_LOG_ERROR && WR_LOG_ERROR < WR_LOG_NONE);
    CHECK_STR(wr_log_level_name(WR_LOG_WARNING), "warning");
    CHECK_STR(wr_log_level_name(42), "?");
}

/* Runs with stderr redirected to a temporary file; returns what was
 * written (static buffer). */
static int cap_fd = -1, saved_stderr = -1;

static void capture_begin(void)
{
    char path[] = "/tmp/wr_logtest_XXXXXX";
    fflush(stderr);
    cap_fd = mkstemp(path);
    unlink(path);
    saved_stderr = dup(2);
    dup2(cap_fd, 2);
}

static const char *capture_end(void)
{
    static char out[4096];
    dup2(saved_stderr, 2);
    close(saved_stderr);
    off_t n = lseek(cap_fd, 0, SEEK_CUR);
    lseek(cap_fd, 0, SEEK_SET);
    ssize_t r = read(cap_fd, out, (size_t)n < sizeof out - 1 ? (size_t)n : sizeof out - 1);
    out[r > 0 ? r : 0] = '\0';
    close(cap_fd);
    return out;
}

static int is_digits(const char *p, int n)
{
    for (int i = 0; i < n; i++)
        if (p[i] < '0' || p[i] > '9')
            return 0;
    return 1;
}

static int evaluated;
static int side_effect(void)
{
    return ++evaluated;
}

static void test_log_output(void)
{
    int old = wr_log_level();
    wr_log_set_level(WR_LOG_INFO);
    capture_begin();
    wr_debug("hidden %d", side_effect());
    wr_info("hello %s %d", "world", 42);
    wr_warn("line\nbreak\x7f");
    wr_error("trailing newline dropped\n");
    wr_log(WR_LOG_NONE, "never");
    const char *out = capture_end();
    wr_log_set_level(old);

    /* The disabled debug line did not even evaluate its arguments. */
    CHECK_EQ(evaluated, 0);
    /* "2026-11-21 12:00:00.123 [info] hello world 42" */
    CHECK(strlen(out) > 24);
    CHECK(is_digits(out, 4) && out[4] == '-' && is_digits(out + 5, 2) && out[7] == '-');
    CHECK(is_digits(out + 8, 2) && out[10] == ' ' && is_digits(out + 11, 2) && out[13] == ':');
    CHECK(is_digits(out + 14, 2) && out[16] == ':' && is_digits(out + 17, 2));
    CHECK(out[19] == '.' && is_digits(out + 20, 3) && out[23] == ' ');
    CHECK(strncmp(out + 24, "[info] hello world 42\n", 22) == 0);
    const char *l2 = strchr(out, '\n') + 1;
    CHECK(strncmp(l2 + 24, "[warning] line\\x0abreak\\x7f\n", 28) == 0);
    const char *l3 = strchr(l2, '\n') + 1;
    CHECK(strncmp(l3 + 24, "[error] trailing newline dropped\n", 33) == 0);
    CHECK(strchr(l3, '\n')[1] == '\0'); /* exactly three lines */

    /* Level none silences everything; debug shows everything. */
    wr_log_set_level(WR_LOG_NONE);
    capture_begin();
    wr_error("silenced");
    out = capture_end();
    CHECK_STR(out, "");
    wr_log_set_level(WR_LOG_DEBUG);
    capture_begin();
    wr_debug("shown %d", side_effect());
    out = capture_end();
    CHECK_EQ(evaluated, 1);
    CHECK(strstr(out, "[debug] shown 1\n") != NULL);

    /* Long messages are not truncated. */
    char big[3000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    capture_begin();
    wr_info("%s|end", big);
    out = capture_end();
    CHECK(strstr(out, "x|end\n") != NULL);
    CHECK_EQ(strlen(out), 24 + 7 + 2999 + 4 + 1);

    wr_log_set_level(99);
    CHECK_EQ(wr_log_level(), WR_LOG_NONE);
    wr_log_set_level(-5);
    CHECK_EQ(wr_log_level(), WR_LOG_DEBUG);
    wr_log_set_level(old);
}

/* ---- config ------------------------------------------------------------ */

static char conf_path[64];

static void write_conf(const char *text)
{
    strcpy(conf_path, "/tmp/wr_conftest_XXXXXX");
    int fd = mkstemp(conf_path);
    size_t n = strlen(text);
    if (write(fd, text, n) != (ssize_t)n)
        printf("  short write to %s\n", conf_path);
    close(fd);
}

static void test_config_defaults(void)
{
    wr_config_t c;
    wr_config_init(&c);
    CHECK_EQ(c.n_listeners, 1);
    CHECK_STR(c.listeners[0].name, "default");
    CHECK_STR(c.listeners[0].host, "127.0.0.1");
    CHECK_EQ(c.listeners[0].port, 5672);
    CHECK(c.product == NULL && c.product_version == NULL && c.cluster_name == NULL);
    CHECK_STR(c.default_user, "guest");
    CHECK_STR(c.default_pass, "guest");
    CHECK_STR(c.default_vhost, "/");
    CHECK_EQ(c.heartbeat, 60);
    CHECK_EQ(c.frame_max, 131072);
    CHECK_EQ(c.channel_max, 2047);
    CHECK_EQ(c.consumer_timeout_ms, 1800000);
    CHECK_EQ(c.n_loopback_users, 1);
    CHECK_STR(c.loopback_users[0], "guest");
    CHECK(wr_config_is_loopback_user(&c, WR_BYTES_LIT("guest")));
    CHECK(!wr_config_is_loopback_user(&c, WR_BYTES_LIT("gues")));
    CHECK_EQ(c.log_level, WR_LOG_INFO);
    CHECK(c.data_dir != NULL && c.data_dir[0] != '\0');
    wr_config_free(&c);
    CHECK(c.listeners == NULL && c.loopback_users == NULL);
}

static void test_config_default_data_dir(void)
{
    char *saved = getenv("WARREN_DATA_DIR") ? strdup(getenv("WARREN_DATA_DIR")) : NULL;
    setenv("WARREN_DATA_DIR", "/srv/warren-test", 1);
    CHECK_STR(wr_config_default_data_dir(), "/srv/warren-test");
    wr_config_t c;
    wr_config_init(&c);
    CHECK_STR(c.data_dir, "/srv/warren-test");
    wr_config_free(&c);

    /* Without it: /var/lib/warren when writable, else an XDG/HOME path. */
    unsetenv("WARREN_DATA_DIR");
    char *saved_home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
    char *saved_xdg = getenv("XDG_DATA_HOME") ? strdup(getenv("XDG_DATA_HOME")) : NULL;
    setenv("HOME", "/home/someone", 1);
    unsetenv("XDG_DATA_HOME");
    int system_ok =
        access("/var/lib/warren", W_OK | X_OK) == 0 || access("/var/lib", W_OK | X_OK) == 0;
    const char *d = wr_config_default_data_dir();
    if (system_ok) {
        CHECK_STR(d, "/var/lib/warren");
    } else {
        CHECK_STR(d, "/home/someone/.local/share/warren");
        setenv("XDG_DATA_HOME", "/xdg/data", 1);
        CHECK_STR(wr_config_default_data_dir(), "/xdg/data/warren");
        setenv("XDG_DATA_HOME", "relative/ignored", 1);
        CHECK_STR(wr_config_default_data_dir(), "/home/someone/.local/share/warren");
        unsetenv("XDG_DATA_HOME");
        unsetenv("HOME");
        CHECK_STR(wr_config_default_data_dir(), "./warren-data");
    }

    if (saved_home)
        setenv("HOME", saved_home, 1);
    else
        unsetenv("HOME");
    if (saved_xdg)
        setenv("XDG_DATA_HOME", saved_xdg, 1);
    if (saved)
        setenv("WARREN_DATA_DIR", saved, 1);
    free(saved);
    free(saved_home);
    free(saved_xdg);
}

static void test_config_file_every_key(void)
{
    write_conf("# warren test configuration\n"
               "\n"
               "listeners.tcp.default = 10.1.2.3:5673\n"
               "   default_user=admin   \n"
               "default_pass = 's3cr#t pass'   # quoted: '#' kept, comment after\n"
               "default_vhost = /prod # trailing comment\n"
               "\theartbeat\t=\t30\n"
               "frame_max = 256KB\r\n"
               "channel_max = 0\n"
               "consumer_timeout = 900000\n"
               "log.console = true\n"
               "log.console.level = warning\n"
               "log.file = false\n"
               "loopback_users.guest = false\n"
               "loopback_users.monitor = true\n"
               "data_dir = /var/tmp/warren data\n"
               "  # indented comment\n"
               "heartbeat = 15\n" /* later lines override earlier ones */
               "no_final_newline_next = x"
               "\n"
               "");
    /* The last line above is an unknown key: check it is reported, then
     * load a copy without it. */
    wr_config_t c;
    char err[256];
    wr_config_init(&c);
    CHECK_EQ(wr_config_load_file(&c, conf_path, err, sizeof err), WR_EINVAL);
    char expect[128];
    snprintf(expect, sizeof expect, "%s:19: unknown key 'no_final_newline_next'", conf_path);
    CHECK_STR(err, expect);
    unlink(conf_path);
    wr_config_free(&c);

    write_conf("listeners.tcp.default = 10.1.2.3:5673\n"
               "   default_user=admin   \n"
               "default_pass = 's3cr#t pass'   # quoted: '#' kept, comment after\n"
               "default_vhost = /prod # trailing comment\n"
               "\theartbeat\t=\t30\n"
               "frame_max = 256KB\r\n"
               "channel_max = 0\n"
               "consumer_timeout = 900000\n"
               "log.console = true\n"
               "log.console.level = warning\n"
               "log.file = false\n"
               "loopback_users.guest = false\n"
               "loopback_users.monitor = true\n"
               "data_dir = /var/tmp/warren data\n"
               "heartbeat = 15");
    wr_config_init(&c);
    int rc = wr_config_load_file(&c, conf_path, err, sizeof err);
    if (rc != 0)
        printf("  %s\n", err);
    CHECK_EQ(rc, 0);
    CHECK_EQ(c.n_listeners, 1);
    CHECK_STR(c.listeners[0].host, "10.1.2.3");
    CHECK_EQ(c.listeners[0].port, 5673);
    CHECK_STR(c.default_user, "admin");
    CHECK_STR(c.default_pass, "s3cr#t pass");
    CHECK_STR(c.default_vhost, "/prod");
    CHECK_EQ(c.heartbeat, 15);
    CHECK_EQ(c.frame_max, 262144);
    CHECK_EQ(c.channel_max, 0);
    CHECK_EQ(c.consumer_timeout_ms, 900000);
    CHECK_EQ(c.log_level, WR_LOG_WARNING);
    CHECK_EQ(c.n_loopback_users, 1);
    CHECK_STR(c.loopback_users[0], "monitor");
    CHECK_STR(c.data_dir, "/var/tmp/warren data");
    wr_config_free(&c);
    unlink(conf_path);
}

static void test_config_cluster(void)
{
    wr_config_t c;
    char err[256];
    wr_config_init(&c);
    CHECK(c.cluster_listener == NULL);
    CHECK_EQ(wr_config_set(&c, "cluster.listener", "127.0.0.1:25672", err, sizeof err), 0);
    CHECK_STR(c.cluster_listener, "127.0.0.1:25672");
    CHECK_EQ(wr_config_set(&c, "cluster.listener", "25672", err, sizeof err), WR_EINVAL);
    CHECK_EQ(wr_config_set(&c, "cluster.secret_file", "/etc/warren/secret", err, sizeof err), 0);
    CHECK_EQ(wr_config_set(&c, "cluster_formation.peer_discovery_backend", "classic_config", err,
                           sizeof err),
             0);
    CHECK_EQ(wr_config_set(&c, "cluster_formation.peer_discovery_backend", "dns", err, sizeof err),
             WR_EINVAL);
    CHECK_EQ(wr_config_set(&c, "cluster_formation.classic_config.nodes.1", "warren@127.0.0.1:25672",
                           err, sizeof err),
             0);
    CHECK_EQ(wr_config_set(&c, "cluster_formation.classic_config.nodes.2", "warren@127.0.0.1:25673",
                           err, sizeof err),
             0);
    CHECK_EQ(wr_config_set(&c, "cluster_formation.classic_config.nodes.3", "rabbit@host", err,
                           sizeof err),
             WR_EINVAL);
    CHECK_EQ(c.n_cluster_nodes, 2);
    CHECK_STR(c.cluster_nodes[1], "warren@127.0.0.1:25673");
    wr_config_free(&c);
}

static void test_config_listeners(void)
{
    static const struct {
        const char *value;
        const char *host;
        int port;
    } ok[] = {
        {"5672", NULL, 5672}, /* every interface, IPv6 and IPv4 */
        {"0", NULL, 0},
        {"127.0.0.1:5673", "127.0.0.1", 5673},
        {"::1:5674", "::1", 5674},
        {"[::1]:5675", "::1", 5675},
        {"[::]:5676", "::", 5676},
        {"fe80::1:2:5677", "fe80::1:2", 5677},
        {"0.0.0.0:65535", "0.0.0.0", 65535},
    };
    static const char *const bad[] = {
        "",
        "localhost:5672",
        "1.2.3.4",
        "65536",
        "1.2.3.4:65536",
        "1.2.3.4:",
        ":5672",
        "[::1]5672",
        "[::1]:",
        "[1.2.3.4]:5672",
        "1.2.3:5672",
        "-1",
        "1.2.3.4:56 72",
        "[]:5672",
        "127.0.0.1:+5",
    };
    char err[256];
    wr_config_t c;
    wr_config_init(&c);
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int rc = wr_config_set(&c, "listeners.tcp.default", ok[i].value, err, sizeof err);
        if (rc != 0)
            printf("  '%s': %s\n", ok[i].value, err);
        CHECK_EQ(rc, 0);
        CHECK_EQ(c.n_listeners, 1);
        if (ok[i].host)
            CHECK_STR(c.listeners[0].host, ok[i].host);
        else
            CHECK(c.listeners[0].host == NULL);
        CHECK_EQ(c.listeners[0].port, ok[i].port);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = wr_config_set(&c, "listeners.tcp.default", bad[i], err, sizeof err);
        if (rc != WR_EINVAL)
            printf("  '%s' accepted\n", bad[i]);
        CHECK_EQ(rc, WR_EINVAL);
        CHECK(strncmp(err, "listeners.tcp.default: '", 24) == 0);
    }
    /* A failed set leaves the previous value. */
    CHECK_EQ(c.n_listeners, 1);
    CHECK_STR(c.listeners[0].host, "0.0.0.0");
    CHECK_EQ(c.listeners[0].port, 65535);
    /* Several listeners, by name; setting a name again replaces it. */
    CHECK_EQ(wr_config_set(&c, "listeners.tcp.local_v6", "::1:5680", err, sizeof err), 0);
    CHECK_EQ(wr_config_set(&c, "listeners.tcp.2", "5681", err, sizeof err), 0);
    CHECK_EQ(wr_config_set(&c, "listeners.tcp.local_v6", "[::1]:5682", err, sizeof err), 0);
    CHECK_EQ(c.n_listeners, 3);
    CHECK_STR(c.listeners[1].name, "local_v6");
    CHECK_STR(c.listeners[1].host, "::1");
    CHECK_EQ(c.listeners[1].port, 5682);
    CHECK_STR(c.listeners[2].name, "2");
    CHECK(c.listeners[2].host == NULL);
    CHECK_EQ(wr_config_set(&c, "listeners.tcp", "none", err, sizeof err), 0);
    CHECK_EQ(c.n_listeners, 0);
    CHECK_EQ(wr_config_set(&c, "listeners.tcp", "5672", err, sizeof err), WR_EINVAL);
    wr_config_free(&c);

    /* The built-in 127.0.0.1:5672 is replaced by the first configured
     * listener, whatever its name, as RabbitMQ's default is. */
    wr_config_init(&c);
    CHECK_EQ(wr_config_set(&c, "listeners.tcp.1", "127.0.0.1:5690", err, sizeof err), 0);
    CHECK_EQ(c.n_listeners, 1);
    CHECK_STR(c.listeners[0].name, "1");
    CHECK_EQ(wr_config_set(&c, "listeners.tcp.default", "5691", err, sizeof err), 0);
    CHECK_EQ(c.n_listeners, 2);
    CHECK_EQ(wr_config_set(&c, "server_properties.product", "RabbitMQ", err, sizeof err), 0);
    CHECK_EQ(wr_config_set(&c, "server_properties.version", "3.10.8", err, sizeof err), 0);
    CHECK_EQ(wr_config_set(&c, "cluster_name", "rabbit@x", err, sizeof err), 0);
    CHECK_STR(c.product, "RabbitMQ");
    CHECK_STR(c.product_version, "3.10.8");
    CHECK_STR(c.cluster_name, "rabbit@x");
    CHECK_EQ(wr_config_set(&c, "server_properties.product", "", err, sizeof err), WR_EINVAL);
    wr_config_free(&c);
}

static void test_config_bad_values(void)
{
    static const struct {
        const char *line;
        const char *msg; /* expected text after "PATH:3: " */
    } cases[] = {
        {"foo = 1", "unknown key 'foo'"},
        {"heartbeat", "expected 'key = value', found no '='"},
        {"= 5", "missing key before '='"},
        {"heartbeat =", "heartbeat: missing value after '='"},
        {"heartbeat = # nothing", "heartbeat: missing value after '='"},
        {"heartbeat = abc", "heartbeat: 'abc' is not a non-negative integer (seconds)"},
        {"heartbeat = -1", "heartbeat: '-1' is not a non-negative integer (seconds)"},
        {"heartbeat = 70000",
         "heartbeat: must be between 0 (disabled) and 65535 seconds, got 70000"},
        {"frame_max = 100", "frame_max: must be 0 (no limit) or between 4096 and 4294967295 bytes, "
                            "got 100"},
        {"frame_max = 4GB", "frame_max: must be 0 (no limit) or between 4096 and 4294967295 bytes, "
                            "got 4GB"},
        {"frame_max = lots", "frame_max: 'lots' is not a non-negative integer (bytes, optionally "
                             "with KB, MB or GB)"},
        {"channel_max = 65536", "channel_max: must be between 0 (no limit) and 65535, got 65536"},
        {"channel_max = 1.5", "channel_max: '1.5' is not a non-negative integer"},
        {"consumer_timeout = 0", "consumer_timeout: '0' is not a positive integer (milliseconds)"},
        {"consumer_timeout = false", "consumer_timeout: 'false' is not a positive integer "
                                     "(milliseconds)"},
        {"consumer_timeout = 99999999999999999999999", "consumer_timeout: "
                                                       "'99999999999999999999999' is not a "
                                                       "positive integer (milliseconds)"},
        {"log.console.level = loud", "log.console.level: 'loud' is not one of debug, info, notice, "
                                     "warning, error, critical, alert, emergency, none"},
        {"log.console = yes", "log.console: 'yes' is not true or false"},
        {"log.file = /var/log/warren.log", "log.file: logging to a file is not supported (warren "
                                           "logs to stderr); only 'false' is accepted"},
        {"loopback_users = guest", "loopback_users: 'guest' is not 'none' (use "
                                   "loopback_users.USER = true|false for one user)"},
        {"loopback_users.guest = maybe", "loopback_users.guest: 'maybe' is not true or false"},
        {"default_user = ''", "default_user: must not be empty"},
        {"default_vhost = 'unterminated", "default_vhost: unterminated quoted value"},
        {"default_pass = 'a' b", "default_pass: unexpected text after the quoted value"},
        {"bad key = 1", "invalid key 'bad key' (keys are dot-separated words of letters, digits, "
                        "'_' and '-')"},
        {"a..b = 1", "invalid key 'a..b' (keys are dot-separated words of letters, digits, '_' "
                     "and '-')"},
        {"include /etc/other.conf", "include directives are not supported"},
        {"listeners.ssl.default = x", "listeners.ssl.default: 'x' is not a port or IP:port (e.g. "
                                      "5671, 127.0.0.1:5671, [::1]:5671)"},
        {"ssl_options.versions.1 = tlsv1.1",
         "ssl_options.versions.1: 'tlsv1.1' is not tlsv1.2 or tlsv1.3 (older versions are not "
         "offered)"},
        {"auth_mechanisms.1 = CRAM-MD5",
         "auth_mechanisms.1: 'CRAM-MD5' is not PLAIN, AMQPLAIN or EXTERNAL"},
        {"ssl_listeners.default = 5671", "unknown key 'ssl_listeners.default'"},
    };
    char err[512], expect[512], text[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(text, sizeof text, "# comment\n\n%s\nheartbeat = 1\n", cases[i].line);
        write_conf(text);
        wr_config_t c;
        wr_config_init(&c);
        int rc = wr_config_load_file(&c, conf_path, err, sizeof err);
        snprintf(expect, sizeof expect, "%s:3: %s", conf_path, cases[i].msg);
        if (rc != WR_EINVAL || strcmp(err, expect) != 0)
            printf("  line '%s': rc %d, err '%s'\n", cases[i].line, rc, err);
        CHECK_EQ(rc, WR_EINVAL);
        CHECK_STR(err, expect);
        /* Loading stops at the bad line. */
        CHECK_EQ(c.heartbeat, 60);
        wr_config_free(&c);
        unlink(conf_path);
    }
}

static void test_config_file_errors(void)
{
    wr_config_t c;
    char err[256];
    wr_config_init(&c);
    CHECK_EQ(wr_config_load_file(&c, "/nonexistent/warren.conf", err, sizeof err), WR_EIO);
    CHECK_STR(err, "/nonexistent/warren.conf: No such file or directory");
    /* An empty file and a comments-only file are fine. */
    write_conf("");
    CHECK_EQ(wr_config_load_file(&c, conf_path, err, sizeof err), 0);
    unlink(conf_path);
    write_conf("# nothing\n   \n\t\n");
    CHECK_EQ(wr_config_load_file(&c, conf_path, err, sizeof err), 0);
    unlink(conf_path);
    CHECK_EQ(c.heartbeat, 60);
    /* err may be NULL. */
    CHECK_EQ(wr_config_set(&c, "nope", "1", NULL, 0), WR_EINVAL);
    wr_config_free(&c);
}

static void test_config_loopback_users(void)
{
    wr_config_t c;
    char err[256];
    wr_config_init(&c);
    /* NAME = true adds (once), NAME = false removes. */
    CHECK_EQ(wr_config_set(&c, "loopback_users.alice", "true", err, sizeof err), 0);
    CHECK_EQ(wr_config_set(&c, "loopback_users.alice", "true", err, sizeof err), 0);
    CHECK_EQ(c.n_loopback_users, 2);
    CHECK_STR(c.loopback_users[0], "guest");
    CHECK_STR(c.loopback_users[1], "alice");
    CHECK_EQ(wr_config_set(&c, "loopback_users.guest", "false", err, sizeof err), 0);
    CHECK_EQ(c.n_loopback_users, 1);
    CHECK_STR(c.loopback_users[0], "alice");
    CHECK(!wr_config_is_loopback_user(&c, WR_BYTES_LIT("guest")));
    CHECK_EQ(wr_config_set(&c, "loopback_users.nobody", "false", err, sizeof err), 0);
    CHECK_EQ(c.n_loopback_users, 1);
    /* none clears; later additions apply after it. */
    CHECK_EQ(wr_config_set(&c, "loopback_users", "none", err, sizeof err), 0);
    CHECK_EQ(c.n_loopback_users, 0);
    CHECK(!wr_config_is_loopback_user(&c, WR_BYTES_LIT("alice")));
    CHECK_EQ(wr_config_set(&c, "loopback_users.bob", "true", err, sizeof err), 0);
    CHECK_EQ(c.n_loopback_users, 1);
    CHECK(wr_config_is_loopback_user(&c, WR_BYTES_LIT("bob")));
    /* A user name with a dot is written with "\." in the key. */
    CHECK_EQ(wr_config_set(&c, "loopback_users.ops\\.team", "true", err, sizeof err), 0);
    CHECK(wr_config_is_loopback_user(&c, WR_BYTES_LIT("ops.team")));
    CHECK_EQ(wr_config_set(&c, "loopback_users.a.b", "true", err, sizeof err), WR_EINVAL);
    CHECK_STR(err, "unknown key 'loopback_users.a.b'");
    wr_config_free(&c);
}

static void test_config_set_kv(void)
{
    wr_config_t c;
    char err[256];
    wr_config_init(&c);
    CHECK_EQ(wr_config_set_kv(&c, "heartbeat=5", err, sizeof err), 0);
    CHECK_EQ(c.heartbeat, 5);
    CHECK_EQ(wr_config_set_kv(&c, " default_pass = a=b#c", err, sizeof err), 0);
    /* --set takes the value literally: no trimming of the key's blanks
     * into the value, no comment or quote processing. */
    CHECK_STR(c.default_pass, " a=b#c");
    CHECK_EQ(wr_config_set_kv(&c, "log.console.level=debug", err, sizeof err), 0);
    CHECK_EQ(c.log_level, WR_LOG_DEBUG);
    CHECK_EQ(wr_config_set_kv(&c, "heartbeat", err, sizeof err), WR_EINVAL);
    CHECK_STR(err, "'heartbeat': expected KEY=VALUE");
    CHECK_EQ(wr_config_set_kv(&c, "bogus=1", err, sizeof err), WR_EINVAL);
    CHECK_STR(err, "unknown key 'bogus'");
    wr_config_free(&c);
}

WR_SUITE(log_config)
{
    RUN(test_log_parse_level);
    RUN(test_log_output);
    RUN(test_config_defaults);
    RUN(test_config_default_data_dir);
    RUN(test_config_file_every_key);
    RUN(test_config_listeners);
    RUN(test_config_cluster);
    RUN(test_config_bad_values);
    RUN(test_config_file_errors);
    RUN(test_config_loopback_users);
    RUN(test_config_set_kv);
}
