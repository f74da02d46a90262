/*
 * commands.c - warrenctl's command table and help texts.
 *
 * One row per command that warren's control socket answers, plus the
 * client's own help and version.  The usage lines keep rabbitmqctl 3.10's
 * syntax, so that scripts and habits carry over; the help layout (bold
 * headings, the command list by group, the per-command sections) follows
 * rabbitmqctl's too.  Rows are grouped as rabbitmqctl groups them, and
 * sorted by name within a group, because help prints them in table order.
 */
#include "commands.h"

#include <string.h>

#define G_HELP     "Help"
#define G_NODES    "Nodes"
#define G_USERS    "Users"
#define G_ACCESS   "Access Control"
#define G_MONITOR  "Monitoring, observability and health checks"
#define G_POLICIES "Policies"
#define G_VHOSTS   "Virtual hosts"
#define G_CONFIG   "Configuration and Environment"
#define G_DEFS     "Definitions"
#define G_OPS      "Operations"
#define G_QUEUES   "Queues"

#define VHOST_OPT "[--vhost <vhost>] "
#define LIST_DETAILS(what, cols)                                                                   \
    "<column>\n\tmust be one of " cols "\n\n"                                                      \
    "Without columns the broker prints its default columns for " what "."

static const wr_ctl_command_t commands[] = {
    {"help", G_HELP, "(<command> | [--list-commands])", "Displays usage information for a command",
     "<command>\n\tthe command to describe\n\n--list-commands\n\tprint the command names only, one "
     "a line",
     0, 1, "list-commands", CMD_LOCAL},
    {"version", G_HELP, "", "Displays CLI tools version", NULL, 0, 0, "", CMD_LOCAL},

    {"await_startup", G_NODES, "[--timeout <timeout>]",
     "Waits for the broker to start and answer on its control socket",
     "--timeout <timeout>\n\thow long to wait, in seconds (default 300)", 0, 0, "", 0},

    {"add_user", G_USERS, "<username> <password>",
     "Creates a new user in the internal database. This user will have no permissions for any "
     "virtual hosts by default",
     "<username>\n\tSelf-explanatory\n\n<password>\n\tPassword this user will authenticate with. "
     "Use a blank string to disable password-based authentication.",
     2, 2, "", 0},
    {"authenticate_user", G_USERS, "<username> <password>",
     "Attempts to authenticate a user. Exits with a non-zero code if authentication fails",
     "<username>\n\tthe user to check\n\n<password>\n\tthe password to try", 2, 2, "", 0},
    {"change_password", G_USERS, "<username> <password>", "Changes the user password",
     "<username>\n\tthe user whose password changes\n\n<password>\n\tthe new password", 2, 2, "",
     0},
    {"clear_password", G_USERS, "<username>",
     "Clears (resets) password and disables password login for a user",
     "<username>\n\tthe user whose password is cleared", 1, 1, "", 0},
    {"clear_user_limits", G_USERS, "<username> <limit_type> | all",
     "Clears user connection/channel limits",
     "<username>\n\tthe user\n\n<limit_type>\n\tmax-connections, max-channels, or all", 2, 2, "",
     0},
    {"delete_user", G_USERS, "<username>", "Removes a user from the internal database",
     "<username>\n\tthe user to delete", 1, 1, "", 0},
    {"list_user_limits", G_USERS, "[--user <username>]", "Displays configured user limits",
     "--user <username>\n\tthe user whose limits to show (default: every user with limits)", 0, 1,
     "user=", 0},
    {"list_users", G_USERS, "[--no-table-headers] [--timeout <timeout>]",
     "List user names and tags", NULL, 0, 0, "", CMD_LIST | CMD_WHOLE},
    {"set_user_limits", G_USERS, "<username> <definition>", "Sets user limits",
     "<username>\n\tthe user\n\n<definition>\n\ta JSON object of limits, e.g. "
     "'{\"max-connections\": 10, \"max-channels\": 20}'",
     2, 2, "", 0},
    {"set_user_tags", G_USERS, "<username> <tag> [...]", "Sets user tags",
     "<username>\n\tthe user\n\n<tag>\n\ta tag such as administrator, monitoring or management; "
     "no tags clears them",
     1, -1, "", 0},

    {"clear_permissions", G_ACCESS, VHOST_OPT "<username>", "Revokes user permissions for a vhost",
     "<username>\n\tthe user whose permissions in the virtual host are revoked", 1, 1, "", 0},
    {"clear_topic_permissions", G_ACCESS, VHOST_OPT "<username> [<exchange>]",
     "Clears user topic permissions for a vhost or exchange",
     "<username>\n\tthe user\n\n<exchange>\n\tonly this exchange's topic permissions (default: "
     "all)",
     1, 2, "", 0},
    {"list_permissions", G_ACCESS, VHOST_OPT "[--no-table-headers] [--timeout <timeout>]",
     "Lists user permissions in a virtual host", NULL, 0, 0, "", CMD_LIST | CMD_WHOLE},
    {"list_topic_permissions", G_ACCESS, VHOST_OPT "[--no-table-headers] [--timeout <timeout>]",
     "Lists topic permissions in a virtual host", NULL, 0, 0, "", CMD_LIST | CMD_WHOLE},
    {"list_user_permissions", G_ACCESS, "[--no-table-headers] <username> [--timeout <timeout>]",
     "Lists permissions of a user across all virtual hosts", "<username>\n\tthe user", 1, 1, "",
     CMD_LIST | CMD_WHOLE},
    {"list_vhosts", G_ACCESS, "[--no-table-headers] [<column> ...] [--timeout <timeout>]",
     "Lists virtual hosts", LIST_DETAILS("virtual hosts", "name, description, tags, tracing"), 0,
     -1, "", CMD_LIST | CMD_WHOLE | CMD_COLUMNS},
    {"set_permissions", G_ACCESS, VHOST_OPT "<username> <conf> <write> <read>",
     "Sets user permissions for a vhost",
     "<username>\n\tthe user\n\n<conf>\n\tconfiguration permission pattern (regular "
     "expression)\n\n<write>\n\twrite permission pattern\n\n<read>\n\tread permission pattern",
     4, 4, "", 0},
    {"set_topic_permissions", G_ACCESS, VHOST_OPT "<username> <exchange> <write> <read>",
     "Sets user topic permissions for an exchange",
     "<username>\n\tthe user\n\n<exchange>\n\tthe topic exchange\n\n<write>\n\twrite pattern for "
     "routing keys\n\n<read>\n\tread pattern for routing keys",
     4, 4, "", 0},

    {"list_bindings", G_MONITOR,
     VHOST_OPT "[--no-table-headers] [<column> ...] [--timeout <timeout>]",
     "Lists all bindings on a vhost",
     LIST_DETAILS("bindings", "arguments, destination_kind, destination_name, routing_key, "
                              "source_kind, source_name"),
     0, -1, "", CMD_LIST | CMD_COLUMNS},
    {"list_channels", G_MONITOR, "[--no-table-headers] [<column> ...]",
     "Lists all channels in the node",
     LIST_DETAILS("channels", "connection, consumer_count, messages_unacknowledged, name, "
                              "number, pid, prefetch_count, user, vhost, and more"),
     0, -1, "", CMD_LIST | CMD_COLUMNS},
    {"list_connections", G_MONITOR, "[--no-table-headers] [<column> ...] [--timeout <timeout>]",
     "Lists AMQP 0.9.1 connections for the node",
     LIST_DETAILS("connections", "channels, client_properties, name, peer_host, peer_port, "
                                 "state, user, vhost, and more"),
     0, -1, "", CMD_LIST | CMD_COLUMNS},
    {"list_consumers", G_MONITOR,
     VHOST_OPT "[--no-table-headers] [<column> ...] [--timeout <timeout>]",
     "Lists all consumers for a vhost",
     LIST_DETAILS("consumers", "ack_required, arguments, channel_pid, consumer_tag, "
                               "prefetch_count, queue_name, and more"),
     0, -1, "", CMD_LIST | CMD_COLUMNS},
    {"list_exchanges", G_MONITOR,
     VHOST_OPT "[--no-table-headers] [<column> ...] [--timeout <timeout>]", "Lists exchanges",
     LIST_DETAILS("exchanges", "arguments, auto_delete, durable, internal, name, policy, type"), 0,
     -1, "", CMD_LIST | CMD_COLUMNS},
    {"list_operator_policies", G_MONITOR, VHOST_OPT "[--no-table-headers] [--timeout <timeout>]",
     "Lists operator policy overrides for a virtual host", NULL, 0, 0, "", CMD_LIST | CMD_WHOLE},
    {"list_policies", G_MONITOR, VHOST_OPT "[--no-table-headers] [--timeout <timeout>]",
     "Lists all policies in a virtual host", NULL, 0, 0, "", CMD_LIST | CMD_WHOLE},
    {"list_queues", G_MONITOR,
     VHOST_OPT "[--online] [--offline] [--local] [--no-table-headers] [<column>, ...] "
               "[--timeout <timeout>]",
     "Lists queues and their properties",
     "<column>\n\tmust be one of arguments, auto_delete, consumers, durable, exclusive, "
     "messages, messages_ready, messages_unacknowledged, name, policy, type, and more; the "
     "broker names every column it knows when given an unknown one\n\n"
     "--online\n\tlists only queues on online (reachable) nodes\n\n"
     "--offline\n\tlists only queues on offline (unreachable) nodes\n\n"
     "--local\n\tonly return queues hosted on the target node",
     0, -1, "online offline local", CMD_LIST | CMD_COLUMNS | CMD_TIMEOUT_BANNER},
    {"ping", G_MONITOR, "[--timeout <timeout>]",
     "Checks that the broker is up and answers on its control socket", NULL, 0, 0, "", 0},
    {"status", G_MONITOR, "[--unit <unit>] [--timeout <timeout>]", "Displays status of a node",
     "--unit <unit>\n\tunit for memory and disk figures: bytes, kb, mb, gb", 0, 0, "unit=", 0},
    {"cluster_status", G_NODES, "[--timeout <timeout>]",
     "Displays all the nodes in the cluster grouped by node type, together with the currently "
     "running nodes",
     NULL, 0, 0, "", 0},
    {"forget_cluster_node", G_NODES, "<existing_cluster_member_node_to_remove>",
     "Removes a stopped node from the cluster: from the metadata group and from every quorum "
     "queue's members",
     "<existing_cluster_member_node_to_remove>\n\tname of the node (warren@HOST:PORT) to "
     "remove; it must be stopped, and must not be started again with its data directory",
     1, 1, "", 0},
    {"add_member", G_QUEUES, VHOST_OPT "<queue> <node>",
     "Adds a quorum queue member (replica) on the given node",
     "<queue>\n\tquorum queue name\n\n<node>\n\tnode name (warren@HOST:PORT) to place the "
     "replica on; it becomes a voting member",
     2, 2, "", 0},
    {"delete_member", G_QUEUES, VHOST_OPT "<queue> <node>",
     "Removes a quorum queue member (replica) on the given node",
     "<queue>\n\tquorum queue name\n\n<node>\n\tnode name of the member to remove; in warren "
     "its replica stays as a non-voting standby",
     2, 2, "", 0},
    {"grow", G_QUEUES,
     "<node> <all | even> [--vhost-pattern <pattern>] [--queue-pattern <pattern>] "
     "[--errors-only]",
     "Grows quorum queue clusters by adding a member (replica) on the specified node for all "
     "matching queues",
     "<node>\n\tnode name to place replicas on\n\n<all | even>\n\tadd a member to all "
     "matching queues or only to those with an even number of members\n\n--vhost-pattern "
     "<pattern>\n\tregular expression to match virtual host names\n\n--queue-pattern "
     "<pattern>\n\tregular expression to match queue names\n\n--errors-only\n\tonly list "
     "queues which reported an error",
     2, 2, "vhost-pattern= queue-pattern= errors-only", 0},
    {"shrink", G_QUEUES, "<node> [--errors-only]",
     "Shrinks quorum queue clusters by removing any members (replicas) on the given node",
     "<node>\n\tnode name to remove replicas from\n\n--errors-only\n\tonly list queues which "
     "reported an error",
     1, 1, "errors-only", 0},
    {"quorum_status", G_QUEUES, VHOST_OPT "<queue>",
     "Displays quorum status of a quorum queue (each member's Raft state)",
     "<queue>\n\tquorum queue name", 1, 1, "", 0},

    {"clear_operator_policy", G_POLICIES, VHOST_OPT "<name>", "Clears an operator policy",
     "<name>\n\tthe operator policy to remove", 1, 1, "", 0},
    {"clear_policy", G_POLICIES, VHOST_OPT "<name>", "Clears (removes) a policy",
     "<name>\n\tthe policy to remove", 1, 1, "", 0},
    {"set_operator_policy", G_POLICIES,
     VHOST_OPT "[--priority <priority>] [--apply-to <apply-to>] <name> <pattern> <definition>",
     "Sets an operator policy that overrides a subset of arguments in user policies",
     "<name>\n\toperator policy name (identifier)\n\n<pattern>\n\tregular expression matched "
     "against queue names\n\n<definition>\n\toperator policy definition (arguments). Must be a "
     "valid JSON document\n\n--priority <priority>\n\tpolicy priority\n\n"
     "--apply-to <queues | exchanges | all>\n\twhich entities the policy applies to",
     3, 3, "priority= apply-to=", 0},
    {"set_policy", G_POLICIES,
     VHOST_OPT "[--priority <priority>] [--apply-to <apply-to>] <name> <pattern> <definition>",
     "Sets or updates a policy",
     "<name>\n\tpolicy name (identifier)\n\n<pattern>\n\tregular expression pattern that will be "
     "used to match queues, exchanges, etc\n\n<definition>\n\tpolicy definition (arguments). "
     "Must be a valid JSON document\n\n--priority <priority>\n\tpolicy priority\n\n"
     "--apply-to <queues | exchanges | all>\n\tpolicy should only apply to queues, exchanges, or "
     "all entities (both of the above)",
     3, 3, "priority= apply-to=", 0},

    {"add_vhost", G_VHOSTS,
     "<vhost> [--description <description> --tags \"<tag1>,<tag2>,<...>\" --default-queue-type "
     "<quorum|classic|stream>]",
     "Creates a virtual host",
     "<vhost>\n\tvirtual host name\n\n--description <description>\n\tvirtual host "
     "description\n\n--tags <tags>\n\tcomma-separated list of virtual host tags\n\n"
     "--default-queue-type <type>\n\tqueue type used when a client does not name one",
     1, 1, "description= tags= default-queue-type=", 0},
    {"clear_vhost_limits", G_VHOSTS, VHOST_OPT, "Clears virtual host limits", NULL, 0, 0, "", 0},
    {"delete_vhost", G_VHOSTS, "<vhost>", "Deletes a virtual host",
     "<vhost>\n\tthe virtual host to delete, with everything in it", 1, 1, "", 0},
    {"list_vhost_limits", G_VHOSTS, VHOST_OPT "[--global]",
     "Displays configured virtual host limits", "--global\n\tlist the limits of every vhost", 0, 0,
     "global", 0},
    {"set_vhost_limits", G_VHOSTS, VHOST_OPT "<definition>", "Sets virtual host limits",
     "<definition>\n\ta JSON object of limits, e.g. '{\"max-connections\": 10, \"max-queues\": "
     "20}'; a negative value means no limit",
     1, 1, "", 0},

    {"set_vm_memory_high_watermark", G_CONFIG, "<fraction> | absolute <value>",
     "Sets the vm_memory_high_watermark setting",
     "<fraction>\n\tfraction of installed memory, e.g. 0.4\n\n"
     "absolute <value>\n\tan absolute limit in bytes, or with a unit such as 512MiB or 1GB",
     1, 2, "", 0},

    {"export_definitions", G_DEFS, "<file_path | \"-\"> [--format <json>] [--timeout <timeout>]",
     "Exports definitions in JSON",
     "<file_path>\n\tfile to write, or \"-\" for standard output\n\n--format <json>\n\tonly JSON "
     "is supported",
     1, 1, "format=", 0},
    {"import_definitions", G_DEFS,
     "<file_path | \"-\"> [--format <json>] [--skip-if-unchanged] [--timeout <timeout>]",
     "Imports definitions in JSON",
     "<file_path>\n\tfile to read, or \"-\" for standard input\n\n--format <json>\n\tonly JSON is "
     "supported\n\n--skip-if-unchanged\n\tdo nothing if the definitions are the ones last "
     "imported",
     1, 1, "format= skip-if-unchanged", 0},

    {"close_all_connections", G_OPS,
     "[--vhost <vhost> --limit <limit>] [-n <node> --global] [--per-connection-delay <delay>] "
     "<explanation>",
     "Instructs the broker to close all connections for the specified vhost or entire node",
     "<explanation>\n\treason given to the clients\n\n--global\n\tclose connections in every "
     "virtual host\n\n--limit <limit>\n\tclose at most this many connections\n\n"
     "--per-connection-delay <delay>\n\tmilliseconds to wait between closes",
     1, 1, "global limit= per-connection-delay=", 0},
    {"close_connection", G_OPS, "<connection name> <explanation>",
     "Instructs the broker to close the connection with this name (see list_connections name)",
     "<connection name>\n\tas list_connections prints it in the name column\n\n"
     "<explanation>\n\treason given to the client",
     2, 2, "", 0},

    {"delete_queue", G_QUEUES,
     "<queue_name> [--if-empty|-e] [--if-unused|-u] [--timeout <timeout>]", "Deletes a queue",
     "<queue_name>\n\tname of the queue to delete\n\n--if-empty\n\tdelete the queue only if it "
     "is empty (has no messages ready for delivery)\n\n--if-unused\n\tdelete the queue only if "
     "it has no consumers",
     1, 1, "if-empty|e if-unused|u", 0},
    {"purge_queue", G_QUEUES, "<queue> [--timeout <timeout>]",
     "Purges a queue (removes all messages in it)", "<queue>\n\tname of the queue to purge", 1, 1,
     "", 0},
    {"list_dead_letters", G_QUEUES, "<queue>",
     "Groups the dead-lettered messages in a queue by the queue they died in, reason and "
     "exchange (warren)",
     "<queue>\n\ta queue holding dead-lettered messages (a dead-letter queue)", 1, 1, "",
     CMD_LIST | CMD_WHOLE},
    {"replay_dead_letters", G_QUEUES,
     "<queue> [--count <n>] [--reason <reason>] [--from-queue <queue>] [--header <name=value>] "
     "[--to-queue <queue> | --to-exchange <exchange> [--routing-key <key>]]",
     "Republishes dead-lettered messages to the queue they died in, or to another queue or "
     "exchange (warren)",
     "<queue>\n\tthe dead-letter queue\n\n--count <n>\n\tat most n messages (default: all)\n\n"
     "--reason <reason>\n\tonly those with this x-first-death-reason (rejected, expired, "
     "maxlen, delivery_limit)\n\n--from-queue <queue>\n\tonly those that died in this queue\n\n"
     "--header <name=value>\n\tonly those with this header value\n\n--to-queue <queue>, "
     "--to-exchange <exchange>, --routing-key <key>\n\twhere to (default: back to the queue each "
     "died in)\n\nEach copy keeps its properties and headers and gets x-warren-replayed; the "
     "original goes once the copy is on disk.",
     1, 1, "count= reason= from-queue= header= to-queue= to-exchange= routing-key=", 0},
    {"move_messages", G_QUEUES, "<source queue> <destination queue> [--count <n>]",
     "Moves messages from one queue to another in the same vhost, in order (warren)",
     "<source queue>, <destination queue>\n\tboth in the vhost given with -p\n\n--count "
     "<n>\n\tat most n messages (default: all)",
     2, 2, "count=", 0},
};

static const char *bold_on = "\033[1m";
static const char *bold_off = "\033[0m";

void wr_ctl_help_set_bold(int on)
{
    bold_on = on ? "\033[1m" : "";
    bold_off = on ? "\033[0m" : "";
}

const wr_ctl_command_t *wr_ctl_commands(size_t *n)
{
    *n = sizeof commands / sizeof commands[0];
    return commands;
}

const wr_ctl_command_t *wr_ctl_command_find(const char *name)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(commands[i].name, name) == 0) {
            return &commands[i];
        }
    }
    return NULL;
}

/* Walks cmd's option spec; calls back with each token's long name (not
 * NUL-terminated: name, namelen), whether it takes a value, and its short
 * form (or 0).  Stops when match returns nonzero and returns that. */
typedef int (*option_match_fn)(const char *name, size_t namelen, int takes_value, char shortc,
                               void *ctx);

static int walk_options(const wr_ctl_command_t *cmd, option_match_fn match, void *ctx)
{
    const char *p = cmd->options;
    while (*p) {
        while (*p == ' ') {
            p++;
        }
        if (!*p) {
            break;
        }
        const char *start = p;
        while (*p && *p != ' ' && *p != '=' && *p != '|') {
            p++;
        }
        size_t len = (size_t)(p - start);
        int takes_value = 0;
        char shortc = 0;
        if (*p == '=') {
            takes_value = 1;
            p++;
        }
        if (*p == '|') {
            shortc = p[1];
            p += 2;
        }
        int r = match(start, len, takes_value, shortc, ctx);
        if (r) {
            return r;
        }
        while (*p && *p != ' ') {
            p++;
        }
    }
    return 0;
}

typedef struct option_query {
    const char *name; /* long name sought, or NULL */
    char shortc;      /* short form sought, or 0 */
    int takes_value;
    char *out;
    size_t outlen;
} option_query_t;

static int match_option(const char *name, size_t namelen, int takes_value, char shortc, void *ctx)
{
    option_query_t *q = ctx;
    int hit = q->name ? (strlen(q->name) == namelen && memcmp(q->name, name, namelen) == 0)
                      : (q->shortc != 0 && q->shortc == shortc);
    if (!hit) {
        return 0;
    }
    q->takes_value = takes_value;
    if (q->out && q->outlen > namelen) {
        memcpy(q->out, name, namelen);
        q->out[namelen] = '\0';
    }
    return 1;
}

int wr_ctl_command_long_option(const wr_ctl_command_t *cmd, const char *name, int *takes_value)
{
    option_query_t q = {name, 0, 0, NULL, 0};
    if (!walk_options(cmd, match_option, &q)) {
        return 0;
    }
    *takes_value = q.takes_value;
    return 1;
}

int wr_ctl_command_short_option(const wr_ctl_command_t *cmd, char c, char *out, size_t outlen,
                                int *takes_value)
{
    option_query_t q = {NULL, c, 0, out, outlen};
    if (!walk_options(cmd, match_option, &q)) {
        return 0;
    }
    *takes_value = q.takes_value;
    return 1;
}

static void usage_line(FILE *f, const wr_ctl_command_t *cmd)
{
    fprintf(f, "warrenctl [--node <node>] [--longnames] [--quiet] %s%s%s\n", cmd->name,
            cmd->usage[0] ? " " : "", cmd->usage);
}

void wr_ctl_help_general_usage(FILE *f)
{
    fprintf(f,
            "\n%sUsage%s\n\n"
            "warrenctl [--node <node>] [--timeout <timeout>] [--longnames] [--quiet] <command> "
            "[<command options>]\n",
            bold_on, bold_off);
}

void wr_ctl_help_all(FILE *f)
{
    size_t width = 0;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        size_t len = strlen(commands[i].name);
        width = len > width ? len : width;
    }
    width += 2;
    wr_ctl_help_general_usage(f);
    fprintf(f, "\nAvailable commands:\n");
    const char *group = NULL;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        const wr_ctl_command_t *c = &commands[i];
        if (!group || strcmp(group, c->group) != 0) {
            group = c->group;
            fprintf(f, "\n%s%s%s:\n\n", bold_on, group, bold_off);
        }
        fprintf(f, "   %-*s%s\n", (int)width, c->name, c->summary);
    }
    fprintf(f, "\nUse 'warrenctl help <command>' to learn more about a specific command\n");
}

void wr_ctl_help_usage(FILE *f, const wr_ctl_command_t *cmd)
{
    fprintf(f, "\n%sUsage%s\n\n", bold_on, bold_off);
    usage_line(f, cmd);
}

void wr_ctl_help_command(FILE *f, const wr_ctl_command_t *cmd)
{
    wr_ctl_help_usage(f, cmd);
    fprintf(f, "\n%s.\n\n", cmd->summary);
    if (cmd->details) {
        fprintf(f, "\n%sArguments and Options%s\n\n%s\n\n", bold_on, bold_off, cmd->details);
    }
    fprintf(f, "\n%sGeneral Options%s\n\n", bold_on, bold_off);
    fprintf(f, "The following options are accepted by most or all commands.\n\n"
               "short            | long               | description\n"
               "-----------------|--------------------|--------------------------------\n"
               "-?               | --help             | displays command help\n"
               "-n <node>        | --node <node>      | control socket to use, or the data\n"
               "                 |                    | directory that holds warren.sock\n"
               "                 | --config <file>    | find the socket through this config\n"
               "                 |                    | file's data_dir\n"
               "                 | --data-dir <dir>   | the broker's data directory\n"
               "-l               | --longnames        | accepted and ignored\n"
               "-t               | --timeout <n>      | operation timeout in seconds\n"
               "-q               | --quiet            | suppress informational messages\n"
               "-s               | --silent           | suppress informational messages\n"
               "                                      | and table header row\n"
               "-p               | --vhost            | for commands that are scoped to a virtual "
               "host,\n"
               "                 |                    | virtual host to use\n"
               "                 | --formatter        | alternative result formatter to use:\n"
               "                 |                    | table (default), pretty_table, json\n"
               "                 | --no-table-headers | do not print the table header row\n\n");
}
