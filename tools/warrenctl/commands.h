/*
 * commands.h - warrenctl's command table and help texts.
 *
 * warrenctl knows each command only as far as a client must: how many
 * positional arguments it takes, which --flags it accepts (and whether a
 * flag takes a value), how its reply is shaped, and what to print for
 * help.  Everything else (what the command does, its columns, its info
 * line and its errors) is decided by the broker (src/admin/ctl.c).
 */
#ifndef WR_CTL_COMMANDS_H
#define WR_CTL_COMMANDS_H

#include <stdio.h>

/* The reply carries "columns" and "rows", printed as a table or JSON. */
#define CMD_LIST 0x01u
/* A listing that rabbitmqctl builds in one piece rather than streaming:
 * when it is empty the table formatter prints an empty line and the JSON
 * formatter "[]" (a streamed listing prints nothing, or "[\n]"). */
#define CMD_WHOLE 0x02u
/* Positional arguments are column names, which may also be given
 * comma-separated ("name,messages"). */
#define CMD_COLUMNS 0x04u
/* rabbitmqctl prints "Timeout: N seconds ..." before the info line. */
#define CMD_TIMEOUT_BANNER 0x08u
/* Runs in the client alone (help, version). */
#define CMD_LOCAL 0x10u

typedef struct wr_ctl_command {
    const char *name;    /* rabbitmqctl's name */
    const char *group;   /* heading in "warrenctl help" */
    const char *usage;   /* what follows the name in the usage line */
    const char *summary; /* one line, no final full stop */
    const char *details; /* "Arguments and Options" text, or NULL */
    int min_args;
    int max_args; /* -1: no limit */
    /* The command's own --flags, space-separated: "name" is a boolean,
     * "name=" takes a value, and "name|c" adds the short form -c. */
    const char *options;
    unsigned flags; /* CMD_* */
} wr_ctl_command_t;

/* The command named name, or NULL.  The table is static: never freed. */
const wr_ctl_command_t *wr_ctl_command_find(const char *name);

/* The whole table, in help order; *n receives its length. */
const wr_ctl_command_t *wr_ctl_commands(size_t *n);

/* If cmd accepts the long flag name (without "--"), returns 1 and sets
 * *takes_value; else 0. */
int wr_ctl_command_long_option(const wr_ctl_command_t *cmd, const char *name, int *takes_value);

/* If cmd accepts the short flag -c, copies its long name into out (of
 * outlen bytes), sets *takes_value and returns 1; else 0. */
int wr_ctl_command_short_option(const wr_ctl_command_t *cmd, char c, char *out, size_t outlen,
                                int *takes_value);

/* Turns section headings bold (ANSI escapes, as rabbitmqctl 3.10 prints
 * them whether or not the output is a terminal) or plain. */
void wr_ctl_help_set_bold(int on);

/* "warrenctl help": every command by group, to f. */
void wr_ctl_help_all(FILE *f);

/* "warrenctl help CMD": the usage, description, arguments and general
 * options of one command, to f. */
void wr_ctl_help_command(FILE *f, const wr_ctl_command_t *cmd);

/* The usage block (heading and usage line) printed after an argument
 * error, to f. */
void wr_ctl_help_usage(FILE *f, const wr_ctl_command_t *cmd);

/* The general usage line and the heading before it, to f (for a missing
 * or unknown command, followed by the command list). */
void wr_ctl_help_general_usage(FILE *f);

#endif
