/*
 * warrenctl.c - warren's rabbitmqctl.
 *
 * warrenctl talks to a running broker over its control socket
 * (DATA_DIR/warren.sock, protocol in src/admin/ctl.h): it parses the
 * command line as rabbitmqctl 3.10 does, sends one JSON request, reads one
 * JSON reply and prints it in rabbitmqctl's formats, so that scripts
 * written for rabbitmqctl keep working.  The client is generic: the broker
 * decides what a command does, its columns, its info line and its errors;
 * the client knows only each command's arguments and flags (commands.c)
 * and how to print values (format.c).
 *
 * A run goes: parse argv (flags may come before or after the command) ->
 * check usage -> find the socket (--node, else --data-dir, else the
 * data_dir of --config or the broker's default) -> connect -> send ->
 * read the reply line -> print -> exit with rabbitmqctl's status (0, 64
 * usage, 65 data error, 69 unavailable, 70 software, 75 timeout, or
 * whatever the broker's refusal names).
 *
 * Output streams follow rabbitmqctl: the info line ("Listing queues for
 * vhost / ...") and results go to stdout, errors to stderr; --quiet drops
 * the info line, --silent also the table header, and the JSON formatter
 * prints results only.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "admin/ctl.h"
#include "core/config.h"
#include "core/version.h"

#include "commands.h"
#include "format.h"

/* rabbitmqctl's exit statuses (BSD sysexits). */
#define EXIT_USAGE       64
#define EXIT_DATAERR     65
#define EXIT_CANTCREAT   73
#define EXIT_UNAVAILABLE 69
#define EXIT_SOFTWARE    70
#define EXIT_TEMPFAIL    75
#define EXIT_CONFIG      78

#define DEFAULT_TIMEOUT_S 60.0
#define AWAIT_TIMEOUT_S   300.0

typedef struct ctl_opts {
    int argc;
    char **argv;
    const char *node;
    const char *config;
    const char *data_dir;
    const char *vhost;
    int quiet, silent, no_headers, json;
    int help, version;
    int timeout_given;
    double timeout_s; /* < 0: infinity */
    const char *cmdname;
    const wr_ctl_command_t *cmd;
    const char **args;
    int nargs;
    json_t *options;    /* the command's flags, for the request */
    char invalid[1024]; /* "--flag : value" lines of unknown flags */
    char problem[256];  /* another usage problem, or "" */
    char socket[sizeof(((struct sockaddr_un *)0)->sun_path) + 256];
} ctl_opts_t;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t timeout_ms(const ctl_opts_t *o)
{
    return o->timeout_s < 0 ? -1 : (int64_t)(o->timeout_s * 1000.0 + 0.5);
}

/* ---- usage errors -------------------------------------------------------- */

/* rabbitmqctl's argument error: the problem, the arguments as given, and
 * the command's usage, all on stderr.  Returns status for the caller to
 * exit with. */
static int usage_error(const ctl_opts_t *o, int status, const char *problem)
{
    fflush(stdout);
    fprintf(stderr, "Error (argument validation): %s\nArguments given:\n\t", problem);
    for (int i = 1; i < o->argc; i++) {
        fprintf(stderr, "%s%s", i > 1 ? " " : "", o->argv[i]);
    }
    fputc('\n', stderr);
    if (o->cmd) {
        wr_ctl_help_usage(stderr, o->cmd);
    } else {
        wr_ctl_help_general_usage(stderr);
    }
    return status;
}

/* ---- parsing -------------------------------------------------------------- */

enum { G_NONE, G_FLAG, G_VALUE };

/* Whether a long or short (c != 0) global flag exists, and its kind. */
static int global_kind(const char *name, char c)
{
    static const char *const values[] = {"node",    "vhost",  "formatter",
                                         "timeout", "config", "data-dir"};
    static const char *const flags[] = {
        "quiet", "silent", "no-table-headers", "longnames", "help", "version", NULL};
    if (c) {
        if (strchr("npt", c)) {
            return G_VALUE;
        }
        return strchr("qsl?", c) ? G_FLAG : G_NONE;
    }
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        if (strcmp(name, values[i]) == 0) {
            return G_VALUE;
        }
    }
    for (size_t i = 0; flags[i]; i++) {
        if (strcmp(name, flags[i]) == 0) {
            return G_FLAG;
        }
    }
    return G_NONE;
}

static int looks_like_option(const char *a)
{
    /* "-" alone is an argument (standard input), and so is a negative
     * number such as a priority. */
    return a[0] == '-' && a[1] != '\0' && !(a[1] >= '0' && a[1] <= '9') && a[1] != '.';
}

/* Finds the command word: the first argument that is neither a flag nor
 * the value of a global flag.  Flags of the command itself may precede it;
 * since their kind is unknown until the command is, they count as
 * booleans here (rabbitmqctl's users put them after the command). */
static int find_command_index(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            return i + 1 < argc ? i + 1 : -1;
        }
        if (!looks_like_option(a)) {
            return i;
        }
        int kind;
        if (a[1] == '-') {
            char name[128];
            snprintf(name, sizeof name, "%s", a + 2);
            char *eq = strchr(name, '=');
            if (eq) {
                continue;
            }
            kind = global_kind(name, 0);
        } else {
            kind = a[2] == '\0' ? global_kind(NULL, a[1]) : G_NONE;
        }
        if (kind == G_VALUE) {
            i++;
        }
    }
    return -1;
}

static void add_invalid(ctl_opts_t *o, const char *flag, const char *value)
{
    size_t len = strlen(o->invalid);
    snprintf(o->invalid + len, sizeof o->invalid - len, "%s : %s\n", flag, value ? value : "");
}

static int set_global(ctl_opts_t *o, const char *name, char c, const char *value)
{
    if (c == 'n' || (name && strcmp(name, "node") == 0)) {
        o->node = value;
    } else if (c == 'p' || (name && strcmp(name, "vhost") == 0)) {
        o->vhost = value;
    } else if (c == 't' || (name && strcmp(name, "timeout") == 0)) {
        char *end;
        o->timeout_given = 1;
        if (strcmp(value, "infinity") == 0) {
            o->timeout_s = -1;
            return 0;
        }
        errno = 0;
        o->timeout_s = strtod(value, &end);
        if (errno || end == value || *end || o->timeout_s < 0) {
            snprintf(o->problem, sizeof o->problem,
                     "timeout must be a number of seconds or infinity, not \"%s\"", value);
        }
    } else if (c == 'q' || (name && strcmp(name, "quiet") == 0)) {
        o->quiet = 1;
    } else if (c == 's' || (name && strcmp(name, "silent") == 0)) {
        o->silent = 1;
    } else if (c == 'l' || (name && strcmp(name, "longnames") == 0)) {
        /* Erlang node names do not exist here; accepted for scripts. */
    } else if (c == '?' || (name && strcmp(name, "help") == 0)) {
        o->help = 1;
    } else if (name && strcmp(name, "version") == 0) {
        o->version = 1;
    } else if (name && strcmp(name, "no-table-headers") == 0) {
        o->no_headers = 1;
    } else if (name && strcmp(name, "config") == 0) {
        o->config = value;
    } else if (name && strcmp(name, "data-dir") == 0) {
        o->data_dir = value;
    } else if (name && strcmp(name, "formatter") == 0) {
        if (strcmp(value, "json") == 0) {
            o->json = 1;
        } else if (strcmp(value, "table") == 0 || strcmp(value, "pretty_table") == 0) {
            o->json = 0;
        } else {
            snprintf(o->problem, sizeof o->problem,
                     "formatter \"%s\" is not supported (use table, pretty_table or json)", value);
        }
    }
    return 0;
}

/* Parses argv into o.  Problems are recorded in o (invalid, problem) and
 * reported after the command is known, as rabbitmqctl does. */
static void parse_args(ctl_opts_t *o, int argc, char **argv)
{
    memset(o, 0, sizeof *o);
    o->argc = argc;
    o->argv = argv;
    o->vhost = "/";
    o->timeout_s = DEFAULT_TIMEOUT_S;
    o->options = json_object();
    o->args = calloc((size_t)argc + 1, sizeof *o->args);
    if (!o->options || !o->args) {
        fprintf(stderr, "warrenctl: out of memory\n");
        exit(EXIT_SOFTWARE);
    }
    int ci = find_command_index(argc, argv);
    if (ci > 0) {
        o->cmdname = argv[ci];
        o->cmd = wr_ctl_command_find(o->cmdname);
    }
    int positional_only = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i == ci) {
            continue;
        }
        if (!positional_only && strcmp(a, "--") == 0) {
            positional_only = 1;
            continue;
        }
        if (positional_only || !looks_like_option(a)) {
            o->args[o->nargs++] = a;
            continue;
        }
        char name[128];
        const char *inline_value = NULL;
        char shortc = 0;
        if (a[1] == '-') {
            snprintf(name, sizeof name, "%s", a + 2);
            char *eq = strchr(name, '=');
            if (eq) {
                *eq = '\0';
                inline_value = strchr(a, '=') + 1;
            }
        } else if (a[2] == '\0') {
            shortc = a[1];
            name[0] = '\0';
        } else {
            add_invalid(o, a, NULL);
            continue;
        }
        int kind = global_kind(shortc ? NULL : name, shortc);
        int takes_value = 0;
        char longname[128];
        int is_cmd = 0;
        if (kind == G_NONE && o->cmd) {
            if (shortc) {
                is_cmd = wr_ctl_command_short_option(o->cmd, shortc, longname, sizeof longname,
                                                     &takes_value);
            } else {
                is_cmd = wr_ctl_command_long_option(o->cmd, name, &takes_value);
                snprintf(longname, sizeof longname, "%s", name);
            }
        }
        if (kind == G_NONE && !is_cmd) {
            add_invalid(o, a, inline_value);
            continue;
        }
        const char *value = inline_value;
        if ((kind == G_VALUE || (is_cmd && takes_value)) && !value) {
            if (i + 1 >= argc) {
                snprintf(o->problem, sizeof o->problem, "option %s requires a value", a);
                continue;
            }
            value = argv[++i];
        }
        if (kind != G_NONE) {
            set_global(o, shortc ? NULL : name, shortc, value);
        } else {
            json_object_set_new(o->options, longname, json_string(value ? value : "true"));
        }
    }
}

/* ---- the socket ----------------------------------------------------------- */

static int resolve_socket(ctl_opts_t *o)
{
    const char *dir = NULL;
    wr_config_t cfg;
    int have_cfg = 0;
    if (o->node) {
        struct stat st;
        if (stat(o->node, &st) == 0 && S_ISDIR(st.st_mode)) {
            dir = o->node;
        } else {
            snprintf(o->socket, sizeof o->socket, "%s", o->node);
            return 0;
        }
    } else if (o->data_dir) {
        dir = o->data_dir;
    } else if (o->config) {
        char err[512];
        wr_config_init(&cfg);
        have_cfg = 1;
        if (wr_config_load_file(&cfg, o->config, err, sizeof err) != 0) {
            fprintf(stderr, "Error:\n%s\n", err);
            wr_config_free(&cfg);
            return EXIT_CONFIG;
        }
        dir = cfg.data_dir;
    } else {
        dir = wr_config_default_data_dir();
    }
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/') {
        len--;
    }
    snprintf(o->socket, sizeof o->socket, "%.*s/%s", (int)len, dir, WR_CTL_SOCKET);
    if (have_cfg) {
        wr_config_free(&cfg);
    }
    return 0;
}

/* Connects to the socket; returns the descriptor, or -1 with errno set. */
static int ctl_connect(const char *path)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa.sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

enum { CALL_OK = 0, CALL_IO = -1, CALL_TIMEOUT = -2, CALL_EOF = -3 };

/* Waits for fd to be ready for events until deadline (-1: forever). */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int ms = -1;
        if (deadline >= 0) {
            int64_t left = deadline - now_ms();
            if (left <= 0) {
                return CALL_TIMEOUT;
            }
            ms = left > INT32_MAX ? INT32_MAX : (int)left;
        }
        struct pollfd p = {fd, events, 0};
        int r = poll(&p, 1, ms);
        if (r > 0) {
            return CALL_OK;
        }
        if (r == 0) {
            return CALL_TIMEOUT;
        }
        if (errno != EINTR) {
            return CALL_IO;
        }
    }
}

/* Sends one request line and reads one reply line (without the newline)
 * into *reply, which the caller frees.  Returns CALL_*. */
static int ctl_call(int fd, const char *req, size_t len, int64_t deadline, char **reply)
{
    size_t off = 0;
    while (off < len) {
        int w = wait_fd(fd, POLLOUT, deadline);
        if (w != CALL_OK) {
            return w;
        }
        ssize_t n = send(fd, req + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                continue;
            }
            return CALL_IO;
        }
        off += (size_t)n;
    }
    size_t cap = 65536, used = 0;
    char *buf = malloc(cap);
    if (!buf) {
        return CALL_IO;
    }
    for (;;) {
        int w = wait_fd(fd, POLLIN, deadline);
        if (w != CALL_OK) {
            free(buf);
            return w;
        }
        if (cap - used < 4096) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                return CALL_IO;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t n = recv(fd, buf + used, cap - used - 1, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                continue;
            }
            free(buf);
            return CALL_IO;
        }
        if (n == 0) {
            free(buf);
            return CALL_EOF;
        }
        char *nl = memchr(buf + used, '\n', (size_t)n);
        used += (size_t)n;
        if (nl) {
            *nl = '\0';
            *reply = buf;
            return CALL_OK;
        }
    }
}

static void print_unreachable(const ctl_opts_t *o, int err)
{
    fflush(stdout);
    fprintf(stderr,
            "Error: unable to perform an operation on node '%s'. Please see diagnostics "
            "information and suggestions below.\n\n"
            "Most common reasons for this are:\n\n"
            " * Target node is not running\n"
            " * warrenctl looks for the control socket in the wrong place (see --node, "
            "--config, --data-dir and WARREN_DATA_DIR)\n"
            " * The control socket is only open to the user the broker runs as (and root)\n\n"
            "DIAGNOSTICS\n===========\n\n"
            "attempted to contact: %s\n\n"
            " * connect: %s\n"
            " * suggestion: start the broker, or point warrenctl at its socket with --node\n\n",
            o->socket, o->socket, strerror(err));
}

/* ---- printing replies ------------------------------------------------------ */

static void print_info(const ctl_opts_t *o, const char *info)
{
    if (!info || o->quiet || o->silent || o->json) {
        return;
    }
    if (o->cmd->flags & CMD_TIMEOUT_BANNER) {
        if (o->timeout_s < 0) {
            printf("Timeout: infinity seconds ...\n");
        } else {
            char num[40];
            wr_ctl_format_float(o->timeout_s, num, sizeof num);
            printf("Timeout: %s seconds ...\n", num);
        }
    }
    printf("%s\n", info);
}

static int print_listing(const ctl_opts_t *o, const json_t *reply)
{
    const json_t *cols = json_object_get(reply, "columns");
    const json_t *rows = json_object_get(reply, "rows");
    if (!json_is_array(cols) || !json_is_array(rows)) {
        fprintf(stderr, "Error:\nthe broker's reply to %s has no columns and rows\n", o->cmdname);
        return EXIT_SOFTWARE;
    }
    size_t ncols = json_array_size(cols);
    size_t nrows = json_array_size(rows);
    int whole = (o->cmd->flags & CMD_WHOLE) != 0;
    if (o->json) {
        if (nrows == 0) {
            printf(whole ? "[]\n" : "[\n]\n");
            return 0;
        }
        printf("[\n");
        for (size_t r = 0; r < nrows; r++) {
            const json_t *row = json_array_get(rows, r);
            fputs(r > 0 ? ",{" : "{", stdout);
            for (size_t c = 0; c < ncols; c++) {
                const json_t *name = json_array_get(cols, c);
                const json_t *v = json_array_get(row, c);
                if (c > 0) {
                    fputc(',', stdout);
                }
                wr_ctl_format_json(stdout, name);
                fputc(':', stdout);
                if (v) {
                    wr_ctl_format_json(stdout, v);
                } else {
                    fputs("null", stdout);
                }
            }
            fputs("}\n", stdout);
        }
        printf("]\n");
        return 0;
    }
    if (nrows == 0) {
        if (whole) {
            fputc('\n', stdout);
        }
        return 0;
    }
    if (!o->silent && !o->no_headers) {
        for (size_t c = 0; c < ncols; c++) {
            if (c > 0) {
                fputc('\t', stdout);
            }
            wr_ctl_format_cell(stdout, json_array_get(cols, c));
        }
        fputc('\n', stdout);
    }
    for (size_t r = 0; r < nrows; r++) {
        const json_t *row = json_array_get(rows, r);
        for (size_t c = 0; c < ncols; c++) {
            const json_t *v = json_array_get(row, c);
            if (c > 0) {
                fputc('\t', stdout);
            }
            if (v) {
                wr_ctl_format_cell(stdout, v);
            }
        }
        fputc('\n', stdout);
    }
    return 0;
}

static void print_text(FILE *f, const char *s)
{
    size_t len = strlen(s);
    fputs(s, f);
    if (len == 0 || s[len - 1] != '\n') {
        fputc('\n', f);
    }
}

static int print_result(const ctl_opts_t *o, const json_t *reply)
{
    if ((o->cmd->flags & CMD_LIST) || json_object_get(reply, "columns")) {
        return print_listing(o, reply);
    }
    const json_t *js = json_object_get(reply, "json");
    const char *msg = json_string_value(json_object_get(reply, "message"));
    if (o->json) {
        if (js) {
            wr_ctl_format_json_plain(stdout, js);
            fputc('\n', stdout);
        } else if (msg) {
            fputs("{\"message\":", stdout);
            wr_ctl_format_json_plain(stdout, json_object_get(reply, "message"));
            fputs("}\n", stdout);
        }
    } else if (msg) {
        print_text(stdout, msg);
    } else if (js) {
        wr_ctl_format_json_plain(stdout, js);
        fputc('\n', stdout);
    }
    return 0;
}

/* A refusal: rabbitmqctl's text on stderr, and its status. */
static int print_refusal(const ctl_opts_t *o, const json_t *reply)
{
    const char *err = json_string_value(json_object_get(reply, "error"));
    const json_t *ex = json_object_get(reply, "exit");
    int status = EXIT_SOFTWARE;
    if (json_is_integer(ex) && json_integer_value(ex) > 0 && json_integer_value(ex) < 256) {
        status = (int)json_integer_value(ex);
    }
    if (!err) {
        err = "Error:\nthe broker refused the command without saying why";
    }
    /* An argument error (status 64) that is not already worded as one,
     * such as "Info key(s) x are not supported", gets rabbitmqctl's
     * argument-validation frame with the usage. */
    if (status == EXIT_USAGE && strncmp(err, "Error", 5) != 0) {
        return usage_error(o, status, err);
    }
    fflush(stdout);
    print_text(stderr, err);
    return status;
}

/* ---- running a command ------------------------------------------------------ */

static json_t *build_request(const ctl_opts_t *o, json_t *args)
{
    json_t *req = json_object();
    json_object_set_new(req, "command", json_string(o->cmdname));
    json_object_set_new(req, "vhost", json_string(o->vhost));
    json_object_set_new(req, "args", args);
    json_object_set(req, "options", o->options);
    return req;
}

static json_t *positional_args(const ctl_opts_t *o)
{
    json_t *args = json_array();
    for (int i = 0; i < o->nargs; i++) {
        if (!(o->cmd->flags & CMD_COLUMNS)) {
            json_array_append_new(args, json_string(o->args[i]));
            continue;
        }
        /* Columns may be written "name,messages" or "name, messages". */
        const char *p = o->args[i];
        while (*p) {
            size_t n = strcspn(p, ", \t");
            if (n > 0) {
                json_array_append_new(args, json_stringn(p, n));
            }
            p += n;
            p += strspn(p, ", \t");
        }
    }
    return args;
}

/* Sends req (which it takes) and parses the reply into *out.  On failure
 * prints the error and returns the exit status; 0 on success. */
static int round_trip(const ctl_opts_t *o, json_t *req, json_t **out)
{
    char *text = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    if (!text) {
        fprintf(stderr, "Error:\ncannot encode the request (arguments must be UTF-8)\n");
        return EXIT_DATAERR;
    }
    size_t len = strlen(text);
    if (len + 1 > WR_CTL_MAX_LINE) {
        fprintf(stderr,
                "Error:\nthe request is larger than the control socket accepts (%u "
                "bytes)\n",
                WR_CTL_MAX_LINE);
        free(text);
        return EXIT_DATAERR;
    }
    text[len] = '\n';
    int64_t t = timeout_ms(o);
    int64_t deadline = t < 0 ? -1 : now_ms() + t;
    int fd = ctl_connect(o->socket);
    if (fd < 0) {
        print_unreachable(o, errno);
        free(text);
        return EXIT_UNAVAILABLE;
    }
    char *line = NULL;
    int r = ctl_call(fd, text, len + 1, deadline, &line);
    int err = errno;
    close(fd);
    free(text);
    if (r == CALL_TIMEOUT) {
        fprintf(stderr, "Error: operation %s on node %s timed out. Timeout value used: %lld\n",
                o->cmdname, o->socket, (long long)t);
        return EXIT_TEMPFAIL;
    }
    if (r == CALL_EOF) {
        fprintf(stderr,
                "Error:\nthe broker at %s closed the control connection without a "
                "reply\n",
                o->socket);
        return EXIT_SOFTWARE;
    }
    if (r != CALL_OK) {
        fprintf(stderr, "Error:\ncontrol connection to %s failed: %s\n", o->socket, strerror(err));
        return EXIT_UNAVAILABLE;
    }
    json_error_t jerr;
    json_t *reply = json_loads(line, 0, &jerr);
    free(line);
    if (!json_is_object(reply)) {
        fprintf(stderr, "Error:\nmalformed reply from the broker: %s\n",
                reply ? "not a JSON object" : jerr.text);
        json_decref(reply);
        return EXIT_SOFTWARE;
    }
    *out = reply;
    return 0;
}

static int run_generic(const ctl_opts_t *o)
{
    json_t *reply = NULL;
    int r = round_trip(o, build_request(o, positional_args(o)), &reply);
    if (r != 0) {
        return r;
    }
    print_info(o, json_string_value(json_object_get(reply, "info")));
    if (json_is_true(json_object_get(reply, "ok"))) {
        r = print_result(o, reply);
    } else {
        r = print_refusal(o, reply);
    }
    json_decref(reply);
    return r;
}

static int run_ping(const ctl_opts_t *o)
{
    int64_t t = timeout_ms(o);
    char tbuf[32];
    if (t < 0) {
        snprintf(tbuf, sizeof tbuf, "infinity");
    } else {
        snprintf(tbuf, sizeof tbuf, "%lld ms", (long long)t);
    }
    if (!o->quiet && !o->silent && !o->json) {
        printf("Will ping %s. This only checks if the broker is running and answers on its "
               "control socket. Timeout: %s.\n",
               o->socket, tbuf);
    }
    json_t *reply = NULL;
    int64_t deadline = t < 0 ? -1 : now_ms() + t;
    int fd = ctl_connect(o->socket);
    int ok = 0;
    if (fd >= 0) {
        json_t *req = build_request(o, json_array());
        char *text = json_dumps(req, JSON_COMPACT);
        json_decref(req);
        size_t len = text ? strlen(text) : 0;
        char *line = NULL;
        char *buf = text ? realloc(text, len + 2) : NULL;
        if (buf) {
            buf[len] = '\n';
            if (ctl_call(fd, buf, len + 1, deadline, &line) == CALL_OK) {
                reply = json_loads(line, 0, NULL);
                ok = json_is_true(json_object_get(reply, "ok"));
            }
        } else {
            free(text);
        }
        free(buf);
        free(line);
        close(fd);
    }
    json_decref(reply);
    if (!ok) {
        fflush(stdout);
        fprintf(stderr, "Error:\nFailed to connect and authenticate to %s in %s\n", o->socket,
                tbuf);
        return EXIT_UNAVAILABLE;
    }
    if (o->json) {
        printf("{\"message\":\"Ping succeeded\"}\n");
    } else {
        printf("Ping succeeded\n");
    }
    return 0;
}

/* Pings until the broker answers or the timeout passes. */
static int run_await_startup(ctl_opts_t *o)
{
    if (!o->timeout_given) {
        o->timeout_s = AWAIT_TIMEOUT_S;
    }
    int64_t t = timeout_ms(o);
    int64_t deadline = t < 0 ? -1 : now_ms() + t;
    int last_err = ECONNREFUSED;
    for (;;) {
        int fd = ctl_connect(o->socket);
        if (fd >= 0) {
            static const char ping[] = "{\"command\":\"ping\",\"vhost\":\"/\",\"args\":[],"
                                       "\"options\":{}}\n";
            char *line = NULL;
            int64_t step = now_ms() + 5000;
            int r = ctl_call(fd, ping, sizeof ping - 1,
                             deadline >= 0 && deadline < step ? deadline : step, &line);
            close(fd);
            if (r == CALL_OK) {
                json_t *reply = json_loads(line, 0, NULL);
                int ok = json_is_true(json_object_get(reply, "ok"));
                json_decref(reply);
                free(line);
                if (ok) {
                    return 0;
                }
            }
            last_err = r == CALL_TIMEOUT ? ETIMEDOUT : EPROTO;
        } else {
            last_err = errno;
        }
        if (deadline >= 0 && now_ms() >= deadline) {
            print_unreachable(o, last_err);
            return EXIT_UNAVAILABLE;
        }
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

static int dir_exists(const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) {
        return 1;
    }
    if (slash == dir) {
        slash[1] = '\0';
    } else {
        *slash = '\0';
    }
    struct stat st;
    return stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
}

static int run_export(const ctl_opts_t *o)
{
    const char *path = o->args[0];
    int to_stdout = strcmp(path, "-") == 0;
    if (!to_stdout && !dir_exists(path)) {
        char problem[4200];
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash) {
            *slash = '\0';
        }
        snprintf(problem, sizeof problem, "Bad argument: Directory %s does not exist",
                 dir[0] ? dir : "/");
        return usage_error(o, EXIT_DATAERR, problem);
    }
    json_t *reply = NULL;
    json_t *args = json_array();
    json_array_append_new(args, json_string(path));
    int r = round_trip(o, build_request(o, args), &reply);
    if (r != 0) {
        return r;
    }
    if (!to_stdout && !o->quiet && !o->silent && !o->json) {
        printf("Exporting definitions in JSON to a file at \"%s\" ...\n", path);
    }
    if (!json_is_true(json_object_get(reply, "ok"))) {
        r = print_refusal(o, reply);
        json_decref(reply);
        return r;
    }
    const json_t *defs = json_object_get(reply, "definitions");
    if (!defs) {
        defs = json_object_get(reply, "message");
    }
    if (!defs) {
        fprintf(stderr, "Error:\nthe broker's reply to export_definitions has no definitions\n");
        json_decref(reply);
        return EXIT_SOFTWARE;
    }
    FILE *f = to_stdout ? stdout : fopen(path, "w");
    if (!f) {
        fprintf(stderr, "Error:\n%s: %s\n", path, strerror(errno));
        json_decref(reply);
        return EXIT_CANTCREAT;
    }
    /* RabbitMQ writes one compact line without a final newline. */
    if (json_is_string(defs)) {
        fwrite(json_string_value(defs), 1, json_string_length(defs), f);
    } else {
        wr_ctl_format_json_plain(f, defs);
    }
    int bad = ferror(f);
    if (!to_stdout) {
        bad |= fclose(f) != 0;
    } else {
        bad |= fflush(f) != 0;
    }
    json_decref(reply);
    if (bad) {
        fprintf(stderr, "Error:\n%s: %s\n", to_stdout ? "standard output" : path, strerror(errno));
        return EXIT_CANTCREAT;
    }
    return 0;
}

/* Reads all of f into a malloc'd, NUL-terminated buffer. */
static char *read_all(FILE *f, size_t *len)
{
    size_t cap = 65536, used = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t n = fread(buf + used, 1, cap - used - 1, f);
        used += n;
        if (n == 0) {
            break;
        }
        if (cap - used < 2) {
            char *nb = cap > WR_CTL_MAX_LINE ? NULL : realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                return NULL;
            }
            buf = nb;
            cap *= 2;
        }
    }
    if (buf) {
        buf[used] = '\0';
        *len = used;
    }
    return buf;
}

static int run_import(const ctl_opts_t *o)
{
    const char *path = o->args[0];
    int from_stdin = strcmp(path, "-") == 0;
    FILE *f = from_stdin ? stdin : fopen(path, "r");
    if (!f) {
        char problem[4200];
        if (errno == ENOENT) {
            snprintf(problem, sizeof problem, "Bad argument: File %s does not exist", path);
        } else {
            snprintf(problem, sizeof problem, "Bad argument: File %s cannot be read: %s", path,
                     strerror(errno));
        }
        return usage_error(o, EXIT_DATAERR, problem);
    }
    size_t len = 0;
    char *content = read_all(f, &len);
    if (!from_stdin) {
        fclose(f);
    }
    if (!content) {
        fprintf(stderr, "Error:\n%s: cannot read the definitions (too large, or out of memory)\n",
                path);
        return EXIT_DATAERR;
    }
    json_t *args = json_array();
    json_array_append_new(args, json_stringn(content, len));
    free(content);
    if (json_array_size(args) != 1) {
        json_decref(args);
        fprintf(stderr, "Error:\n%s is not UTF-8 text\n", path);
        return EXIT_DATAERR;
    }
    json_t *reply = NULL;
    int r = round_trip(o, build_request(o, args), &reply);
    if (r != 0) {
        return r;
    }
    if (!o->quiet && !o->silent && !o->json) {
        if (from_stdin) {
            printf("Importing definitions in JSON from standard input ...\n");
        } else {
            printf("Importing definitions in JSON from a file at \"%s\" ...\n", path);
        }
    }
    if (json_is_true(json_object_get(reply, "ok"))) {
        r = print_result(o, reply);
    } else {
        r = print_refusal(o, reply);
    }
    json_decref(reply);
    return r;
}

static int run_help(const ctl_opts_t *o)
{
    if (json_object_get(o->options, "list-commands")) {
        size_t n;
        const wr_ctl_command_t *all = wr_ctl_commands(&n);
        for (size_t i = 0; i < n; i++) {
            printf("%s\n", all[i].name);
        }
        return 0;
    }
    if (o->nargs == 0) {
        wr_ctl_help_all(stdout);
        return 0;
    }
    const wr_ctl_command_t *c = wr_ctl_command_find(o->args[0]);
    if (!c) {
        fprintf(stderr, "Error:\n\nCommand '%s' not found.\n", o->args[0]);
        return EXIT_USAGE;
    }
    wr_ctl_help_command(stdout, c);
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    const char *no_color = getenv("NO_COLOR");
    wr_ctl_help_set_bold(!(no_color && no_color[0]));

    static ctl_opts_t o;
    parse_args(&o, argc, argv);

    if (!o.cmdname) {
        if (o.version) {
            printf("warrenctl %s\n", WARREN_VERSION);
            return 0;
        }
        if (o.help) {
            wr_ctl_help_all(stdout);
            return 0;
        }
        wr_ctl_help_all(stderr);
        return EXIT_USAGE;
    }
    if (!o.cmd) {
        fprintf(stderr, "\nCommand '%s' not found. \n", o.cmdname);
        wr_ctl_help_all(stderr);
        return EXIT_USAGE;
    }
    if (o.help) {
        wr_ctl_help_command(stdout, o.cmd);
        return 0;
    }
    if (o.invalid[0]) {
        char problem[1100];
        snprintf(problem, sizeof problem, "Invalid options for this command:\n%.*s",
                 (int)strlen(o.invalid) - 1, o.invalid);
        return usage_error(&o, EXIT_USAGE, problem);
    }
    if (o.problem[0]) {
        return usage_error(&o, EXIT_USAGE, o.problem);
    }
    if (o.nargs < o.cmd->min_args) {
        return usage_error(&o, EXIT_USAGE, "not enough arguments.");
    }
    if (o.cmd->max_args >= 0 && o.nargs > o.cmd->max_args) {
        return usage_error(&o, EXIT_USAGE, "too many arguments.");
    }
    if (strcmp(o.cmd->name, "help") == 0) {
        return run_help(&o);
    }
    if (strcmp(o.cmd->name, "version") == 0) {
        printf("%s\n", WARREN_VERSION);
        return 0;
    }
    int r = resolve_socket(&o);
    if (r != 0) {
        return r;
    }
    if (strcmp(o.cmd->name, "ping") == 0) {
        r = run_ping(&o);
    } else if (strcmp(o.cmd->name, "await_startup") == 0) {
        r = run_await_startup(&o);
    } else if (strcmp(o.cmd->name, "export_definitions") == 0) {
        r = run_export(&o);
    } else if (strcmp(o.cmd->name, "import_definitions") == 0) {
        r = run_import(&o);
    } else {
        r = run_generic(&o);
    }
    if (fflush(stdout) != 0 && r == 0) {
        r = EXIT_SOFTWARE;
    }
    json_decref(o.options);
    free(o.args);
    return r;
}
