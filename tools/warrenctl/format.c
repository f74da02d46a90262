/*
 * format.c - rabbitmqctl's shapes for JSON values (see format.h).
 *
 * Floats follow Erlang's shortest round-trip printing: find the fewest
 * significant digits that read back as the same double, then place the
 * decimal point, choosing exponent notation only when it is shorter than
 * writing the zeros out.  That is why rabbitmqctl prints 100.0 but 1.0e3.
 */
#include "format.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void wr_ctl_format_float(double d, char *out, size_t outlen)
{
    if (!isfinite(d)) {
        /* JSON has no infinities; a broker never sends one. */
        snprintf(out, outlen, "%s", isnan(d) ? "nan" : (d < 0 ? "-inf" : "inf"));
        return;
    }
    char sci[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(sci, sizeof sci, "%.*e", prec - 1, d);
        if (strtod(sci, NULL) == d) {
            break;
        }
    }
    /* sci is "[-]D[.DDD]e[+-]XX": collect the digits and the exponent. */
    const char *p = sci;
    int negative = 0;
    if (*p == '-') {
        negative = 1;
        p++;
    }
    char digits[24];
    size_t nd = 0;
    while (*p && *p != 'e' && nd < sizeof digits - 1) {
        if (*p != '.') {
            digits[nd++] = *p;
        }
        p++;
    }
    while (nd > 1 && digits[nd - 1] == '0') {
        nd--; /* %.*e pads with zeros the shortest form does not have */
    }
    digits[nd] = '\0';
    int exp10 = *p == 'e' ? atoi(p + 1) : 0;
    /* The value is 0.DIGITS * 10^place. */
    int place = digits[0] == '0' ? 1 : exp10 + 1;
    int len = (int)nd;

    char buf[64];
    size_t o = 0;
    if (negative) {
        buf[o++] = '-';
    }
    if (place > 0 && place < len) {
        memcpy(buf + o, digits, (size_t)place);
        o += (size_t)place;
        buf[o++] = '.';
        memcpy(buf + o, digits + place, (size_t)(len - place));
        o += (size_t)(len - place);
    } else {
        char expstr[16];
        snprintf(expstr, sizeof expstr, "%d", place - 1);
        int exp_cost = (int)strlen(expstr) + 1 + (len == 1 ? 2 : 1);
        int plain;
        if (place <= 0) {
            plain = 2 - place <= exp_cost;
        } else {
            plain = place - len + 2 <= exp_cost;
        }
        if (plain && place <= 0) {
            buf[o++] = '0';
            buf[o++] = '.';
            for (int i = 0; i < -place; i++) {
                buf[o++] = '0';
            }
            memcpy(buf + o, digits, (size_t)len);
            o += (size_t)len;
        } else if (plain) {
            memcpy(buf + o, digits, (size_t)len);
            o += (size_t)len;
            for (int i = 0; i < place - len; i++) {
                buf[o++] = '0';
            }
            buf[o++] = '.';
            buf[o++] = '0';
        } else {
            buf[o++] = digits[0];
            buf[o++] = '.';
            if (len == 1) {
                buf[o++] = '0';
            } else {
                memcpy(buf + o, digits + 1, (size_t)(len - 1));
                o += (size_t)(len - 1);
            }
            buf[o++] = 'e';
            memcpy(buf + o, expstr, strlen(expstr));
            o += strlen(expstr);
        }
    }
    buf[o] = '\0';
    snprintf(out, outlen, "%s", buf);
}

static void put_number(FILE *f, const json_t *v)
{
    if (json_is_integer(v)) {
        fprintf(f, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    } else {
        char num[40];
        wr_ctl_format_float(json_real_value(v), num, sizeof num);
        fputs(num, f);
    }
}

/* A string as Erlang's ~tp prints a charlist: quoted, with escapes; the
 * empty string is the empty list. */
static void put_erl_string(FILE *f, const char *s, size_t len)
{
    if (len == 0) {
        fputs("[]", f);
        return;
    }
    fputc('"', f);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"':
            fputs("\\\"", f);
            break;
        case '\\':
            fputs("\\\\", f);
            break;
        case '\n':
            fputs("\\n", f);
            break;
        case '\t':
            fputs("\\t", f);
            break;
        case '\r':
            fputs("\\r", f);
            break;
        case '\b':
            fputs("\\b", f);
            break;
        case '\f':
            fputs("\\f", f);
            break;
        case '\v':
            fputs("\\v", f);
            break;
        case 27:
            fputs("\\e", f);
            break;
        case 127:
            fputs("\\d", f);
            break;
        default:
            if (c < 32) {
                fprintf(f, "\\%03o", c);
            } else {
                fputc(c, f);
            }
        }
    }
    fputc('"', f);
}

/* A value inside an argument table, as an Erlang term. */
static void put_erl_term(FILE *f, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        put_erl_string(f, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
    case JSON_REAL:
        put_number(f, v);
        break;
    case JSON_TRUE:
        fputs("true", f);
        break;
    case JSON_FALSE:
        fputs("false", f);
        break;
    case JSON_NULL:
        fputs("undefined", f);
        break;
    case JSON_ARRAY: {
        fputc('[', f);
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            if (i > 0) {
                fputc(',', f);
            }
            put_erl_term(f, e);
        }
        fputc(']', f);
        break;
    }
    case JSON_OBJECT: {
        fputc('[', f);
        const char *k;
        json_t *e;
        int first = 1;
        json_object_foreach((json_t *)v, k, e)
        {
            if (!first) {
                fputc(',', f);
            }
            first = 0;
            fputc('{', f);
            put_erl_string(f, k, strlen(k));
            fputc(',', f);
            put_erl_term(f, e);
            fputc('}', f);
        }
        fputc(']', f);
        break;
    }
    }
}

void wr_ctl_format_cell(FILE *f, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        fwrite(json_string_value(v), 1, json_string_length(v), f);
        break;
    case JSON_INTEGER:
    case JSON_REAL:
        put_number(f, v);
        break;
    case JSON_TRUE:
        fputs("true", f);
        break;
    case JSON_FALSE:
        fputs("false", f);
        break;
    case JSON_NULL:
        break;
    case JSON_ARRAY: {
        /* rabbitmqctl joins the elements of a list (user tags, say) with
         * ", " and prints each one as a cell of its own. */
        fputc('[', f);
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            if (i > 0) {
                fputs(", ", f);
            }
            wr_ctl_format_cell(f, e);
        }
        fputc(']', f);
        break;
    }
    case JSON_OBJECT:
        put_erl_term(f, v);
        break;
    }
}

static void put_json_string(FILE *f, const char *s, size_t len)
{
    fputc('"', f);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"':
            fputs("\\\"", f);
            break;
        case '\\':
            fputs("\\\\", f);
            break;
        case '\n':
            fputs("\\n", f);
            break;
        case '\t':
            fputs("\\t", f);
            break;
        case '\r':
            fputs("\\r", f);
            break;
        case '\b':
            fputs("\\b", f);
            break;
        case '\f':
            fputs("\\f", f);
            break;
        default:
            if (c < 32) {
                fprintf(f, "\\u%04x", c);
            } else {
                fputc(c, f);
            }
        }
    }
    fputc('"', f);
}

/* The AMQP field type RabbitMQ would report for a value of this JSON
 * type. */
static const char *amqp_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        return "longstr";
    case JSON_INTEGER:
        return "long";
    case JSON_REAL:
        return "double";
    case JSON_TRUE:
    case JSON_FALSE:
        return "bool";
    case JSON_NULL:
        return "void";
    case JSON_ARRAY:
        return "array";
    case JSON_OBJECT:
        return "table";
    }
    return "void";
}

static void put_json(FILE *f, const json_t *v, int tables);

/* An AMQP array's elements in RabbitMQ's JSON: [type, value] pairs. */
static void put_json_amqp_array(FILE *f, const json_t *v)
{
    fputc('[', f);
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        if (i > 0) {
            fputc(',', f);
        }
        fputc('[', f);
        put_json_string(f, amqp_type_name(e), strlen(amqp_type_name(e)));
        fputc(',', f);
        if (json_is_array(e)) {
            put_json_amqp_array(f, e);
        } else {
            put_json(f, e, 1);
        }
        fputc(']', f);
    }
    fputc(']', f);
}

static void put_json(FILE *f, const json_t *v, int tables)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        put_json_string(f, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
    case JSON_REAL:
        put_number(f, v);
        break;
    case JSON_TRUE:
        fputs("true", f);
        break;
    case JSON_FALSE:
        fputs("false", f);
        break;
    case JSON_NULL:
        fputs("null", f);
        break;
    case JSON_ARRAY: {
        fputc('[', f);
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            if (i > 0) {
                fputc(',', f);
            }
            put_json(f, e, tables);
        }
        fputc(']', f);
        break;
    }
    case JSON_OBJECT: {
        const char *k;
        json_t *e;
        int first = 1;
        fputc(tables ? '[' : '{', f);
        json_object_foreach((json_t *)v, k, e)
        {
            if (!first) {
                fputc(',', f);
            }
            first = 0;
            if (tables) {
                fputc('[', f);
                put_json_string(f, k, strlen(k));
                fputc(',', f);
                put_json_string(f, amqp_type_name(e), strlen(amqp_type_name(e)));
                fputc(',', f);
                if (json_is_array(e)) {
                    put_json_amqp_array(f, e);
                } else {
                    put_json(f, e, 1);
                }
                fputc(']', f);
            } else {
                put_json_string(f, k, strlen(k));
                fputc(':', f);
                put_json(f, e, 0);
            }
        }
        fputc(tables ? ']' : '}', f);
        break;
    }
    }
}

void wr_ctl_format_json(FILE *f, const json_t *v)
{
    put_json(f, v, 1);
}

void wr_ctl_format_json_plain(FILE *f, const json_t *v)
{
    put_json(f, v, 0);
}
