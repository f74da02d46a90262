/* meta.c - the data directory's layout and broker.json (see meta.h). */
#define _XOPEN_SOURCE 700
#include "admin/meta.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin/json.h"
#include "admin/replica.h"
#include "broker/access.h"
#include "broker/conn.h"
#include "broker/persist.h"
#include "broker/policy.h"
#include "core/log.h"

static char *data_dir;
static const wr_config_t *config;
static uint64_t segment_size;
static uint32_t next_vhost_id = 1;

/* Deleted vhosts whose store had a sync in flight. */
static wr_vhost_t **graveyard;
static size_t n_graveyard;

const char *wr_meta_data_dir(void)
{
    return data_dir;
}

static void path_of(char *out, size_t outlen, const char *rel)
{
    snprintf(out, outlen, "%s/%s", data_dir, rel);
}

static void vhost_dir(char *out, size_t outlen, uint32_t id)
{
    snprintf(out, outlen, "%s/vhosts/%" PRIu32, data_dir, id);
}

static int exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static int sync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return -1;
    int r = fsync(fd);
    close(fd);
    return r;
}

/* Writes data to path atomically: a temporary file, fsync, rename, fsync
 * of the directory. */
static int write_atomic(const char *rel, const char *data, size_t len, char *err, size_t errlen)
{
    char path[4096], tmp[4200];
    path_of(path, sizeof path, rel);
    snprintf(tmp, sizeof tmp, "%s.new", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        goto fail;
    for (size_t off = 0; off < len;) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            close(fd);
            goto fail;
        }
        off += (size_t)n;
    }
    if (fsync(fd) != 0) {
        close(fd);
        goto fail;
    }
    close(fd);
    if (rename(tmp, path) != 0 || sync_dir(data_dir) != 0)
        goto fail;
    return 0;
fail:
    snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
    unlink(tmp);
    return -1;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path) != 0 && errno != ENOENT ? -1 : 0;
}

static int remove_tree(const char *path)
{
    if (!exists(path))
        return 0;
    return nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- format 1 -> 2 ---- */

static int upgrade_v1(const wr_config_t *cfg, char *err, size_t errlen)
{
    static const char *const moved[] = {"msgs", "meta.log.new", "meta.log", "clean-shutdown"};
    char vdir[4096], from[4096], to[4200];
    path_of(vdir, sizeof vdir, "vhosts");
    if (mkdir(vdir, 0750) != 0 && errno != EEXIST)
        goto fail;
    vhost_dir(vdir, sizeof vdir, 1);
    if (mkdir(vdir, 0750) != 0 && errno != EEXIST)
        goto fail;
    int any = 0;
    for (size_t i = 0; i < sizeof moved / sizeof moved[0]; i++) {
        path_of(from, sizeof from, moved[i]);
        if (!exists(from))
            continue;
        snprintf(to, sizeof to, "%s/%s", vdir, moved[i]);
        if (rename(from, to) != 0)
            goto fail;
        any = 1;
    }
    char top[4096];
    path_of(top, sizeof top, "vhosts");
    if (sync_dir(vdir) != 0 || sync_dir(top) != 0 || sync_dir(data_dir) != 0)
        goto fail;
    if (any)
        wr_info("upgraded the data directory to format %d: the store of vhost '%s' is now in "
                "vhosts/1",
                WR_META_FORMAT, cfg->default_vhost);
    return 0;
fail:
    snprintf(err, errlen, "cannot upgrade the data directory %s: %s", data_dir, strerror(errno));
    return -1;
}

/* ---- broker.json ---- */

static char *tags_from_json(const json_t *a)
{
    wr_buf_t b;
    wr_buf_init(&b);
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v)
    {
        if (!json_is_string(v))
            continue;
        if (b.len)
            wr_buf_put(&b, ",", 1);
        wr_buf_put(&b, json_string_value(v), json_string_length(v));
    }
    char *s = wr_xstrndup((const char *)b.p, b.len);
    wr_buf_free(&b);
    return s;
}

json_t *wr_meta_state(int local)
{
    json_t *root = json_object();
    if (local) {
        json_object_set_new(root, "warren_format", json_integer(WR_META_FORMAT));
        json_object_set_new(root, "next_vhost_id", json_integer(next_vhost_id));
    }
    json_t *vhosts = json_array();
    size_t i = 0;
    for (wr_vhost_t *vh; (vh = wr_broker_vhost_next(&i));) {
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(vh->name));
        if (local)
            json_object_set_new(o, "id", json_integer(vh->id));
        json_object_set_new(o, "description", json_string(vh->description));
        json_object_set_new(o, "tags", wr_json_tags(vh->tags));
        json_t *lim = json_object();
        if (vh->max_connections >= 0)
            json_object_set_new(lim, "max-connections", json_integer(vh->max_connections));
        if (vh->max_queues >= 0)
            json_object_set_new(lim, "max-queues", json_integer(vh->max_queues));
        json_object_set_new(o, "limits", lim);
        json_array_append_new(vhosts, o);
    }
    json_object_set_new(root, "vhosts", vhosts);
    for (int op = 0; op < 2; op++) {
        json_t *pols = json_array();
        i = 0;
        for (wr_vhost_t *vh; (vh = wr_broker_vhost_next(&i));)
            for (const wr_policy_t *p = wr_policy_list(vh, op); p; p = p->next)
                json_array_append_new(pols,
                                      json_pack("{s:s, s:s, s:s, s:s, s:o, s:I}", "vhost", vh->name,
                                                "name", p->name, "pattern", p->pattern.src,
                                                "apply-to", wr_policy_apply_to_name(p->apply_to),
                                                "definition", json_loads(p->definition, 0, NULL),
                                                "priority", (json_int_t)p->priority));
        json_object_set_new(root, op ? "operator_policies" : "policies", pols);
    }
    json_t *users = json_array(), *perms = json_array(), *topic = json_array();
    i = 0;
    for (wr_user_t *u; (u = wr_access_user_next(&i));) {
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(u->name));
        json_object_set_new(o, "password_hash", json_string(u->hash ? u->hash : ""));
        json_object_set_new(o, "hashing_algorithm", json_string(wr_access_algo_name(u->algo)));
        json_object_set_new(o, "tags", wr_json_tags(u->tags));
        json_t *lim = json_object();
        if (u->max_connections >= 0)
            json_object_set_new(lim, "max-connections", json_integer(u->max_connections));
        if (u->max_channels >= 0)
            json_object_set_new(lim, "max-channels", json_integer(u->max_channels));
        json_object_set_new(o, "limits", lim);
        json_array_append_new(users, o);
        size_t k = 0;
        wr_map_slot_t *sl;
        while (wr_map_next(&u->perms, &k, &sl)) {
            const wr_perms_t *p = sl->value;
            json_array_append_new(perms, json_pack("{s:s, s:s, s:s, s:s, s:s}", "user", u->name,
                                                   "vhost", sl->key, "configure", p->p[0].src,
                                                   "write", p->p[1].src, "read", p->p[2].src));
        }
        k = 0;
        while (wr_map_next(&u->topic, &k, &sl))
            for (const wr_topic_perm_t *t = sl->value; t; t = t->next)
                json_array_append_new(topic, json_pack("{s:s, s:s, s:s, s:s, s:s}", "user", u->name,
                                                       "vhost", sl->key, "exchange", t->exchange,
                                                       "write", t->write_src, "read", t->read_src));
    }
    json_object_set_new(root, "users", users);
    json_object_set_new(root, "permissions", perms);
    json_object_set_new(root, "topic_permissions", topic);
    return root;
}

int wr_meta_save(char *err, size_t errlen)
{
    if (data_dir == NULL) {
        snprintf(err, errlen, "no data directory is open");
        return -1;
    }
    json_t *root = wr_meta_state(1);
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(root);
    size_t n = strlen(text);
    text = wr_xrealloc(text, n + 2);
    text[n++] = '\n';
    int r = write_atomic("broker.json", text, n, err, errlen);
    free(text);
    wr_replica_changed(); /* the cluster's nodes get what changed */
    return r;
}

/* Opens vh's store in its directory (created if new). */
static int open_store(wr_vhost_t *vh, char *err, size_t errlen)
{
    char dir[4096];
    vhost_dir(dir, sizeof dir, vh->id);
    if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
        return -1;
    }
    char e[512];
    if (wr_persist_open(vh, dir, segment_size, e, sizeof e) != 0) {
        snprintf(err, errlen, "vhost '%s': %s", vh->name, e);
        return -1;
    }
    return 0;
}

static wr_vhost_t *vhost_make(const char *name, uint32_t id, const char *description,
                              const char *tags)
{
    wr_vhost_t *vh = wr_vhost_new(name);
    vh->id = id;
    free(vh->description);
    vh->description = wr_xstrndup(description, strlen(description));
    free(vh->tags);
    vh->tags = wr_xstrndup(tags, strlen(tags));
    return vh;
}

static const char *str_of(const json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v ? v : "";
}

/* Users, permissions and topic permissions, in definitions' shape. */
static int load_access(const json_t *root, const char *path, char *err, size_t errlen)
{
    size_t i;
    json_t *o;
    char e[300];
    if (json_object_get(root, "users") == NULL) {
        /* Written before users were kept here: the default user, as on a
         * first start. */
        wr_user_t *u = wr_access_user_add(config->default_user, config->default_pass,
                                          config->default_user_tags);
        if (wr_access_set_perms(u, config->default_vhost, config->default_perms[0],
                                config->default_perms[1], config->default_perms[2], err,
                                errlen) != 0)
            return -1;
    }
    json_array_foreach(json_object_get(root, "users"), i, o)
    {
        char *tags = tags_from_json(json_object_get(o, "tags"));
        wr_user_t *u = wr_access_user_add_hashed(
            str_of(o, "name"), str_of(o, "password_hash"),
            json_string_value(json_object_get(o, "hashing_algorithm")), tags, e, sizeof e);
        free(tags);
        if (u == NULL) {
            snprintf(err, errlen, "%s: %s", path, e);
            return -1;
        }
        json_t *lim = json_object_get(o, "limits");
        json_t *v;
        if ((v = json_object_get(lim, "max-connections")))
            u->max_connections = json_integer_value(v);
        if ((v = json_object_get(lim, "max-channels")))
            u->max_channels = json_integer_value(v);
    }
    json_array_foreach(json_object_get(root, "permissions"), i, o)
    {
        wr_user_t *u = wr_access_user(wr_bytes_of(str_of(o, "user")));
        if (u == NULL ||
            wr_access_set_perms(u, str_of(o, "vhost"), str_of(o, "configure"), str_of(o, "write"),
                                str_of(o, "read"), e, sizeof e) != 0) {
            snprintf(err, errlen, "%s: permissions %zu: %s", path, i, u ? e : "no such user");
            return -1;
        }
    }
    json_array_foreach(json_object_get(root, "topic_permissions"), i, o)
    {
        wr_user_t *u = wr_access_user(wr_bytes_of(str_of(o, "user")));
        if (u == NULL ||
            wr_access_set_topic(u, str_of(o, "vhost"), str_of(o, "exchange"), str_of(o, "write"),
                                str_of(o, "read"), e, sizeof e) != 0) {
            snprintf(err, errlen, "%s: topic_permissions %zu: %s", path, i, u ? e : "no such user");
            return -1;
        }
    }
    return 0;
}

static int load(char *err, size_t errlen)
{
    char path[4096];
    path_of(path, sizeof path, "broker.json");
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL) {
        snprintf(err, errlen, "%s:%d: %s", path, je.line, je.text);
        return -1;
    }
    json_t *vhosts = json_object_get(root, "vhosts");
    json_int_t next = json_integer_value(json_object_get(root, "next_vhost_id"));
    if (!json_is_array(vhosts)) {
        snprintf(err, errlen, "%s: no \"vhosts\" array", path);
        json_decref(root);
        return -1;
    }
    size_t i;
    json_t *o;
    json_array_foreach(vhosts, i, o)
    {
        const char *name = json_string_value(json_object_get(o, "name"));
        json_int_t id = json_integer_value(json_object_get(o, "id"));
        if (name == NULL || id <= 0 || id > UINT32_MAX ||
            wr_broker_vhost(wr_bytes_of(name)) != NULL) {
            snprintf(err, errlen, "%s: vhost %zu has a bad or repeated name or id", path, i);
            json_decref(root);
            return -1;
        }
        const char *desc = json_string_value(json_object_get(o, "description"));
        char *tags = tags_from_json(json_object_get(o, "tags"));
        wr_vhost_t *vh = vhost_make(name, (uint32_t)id, desc ? desc : "", tags);
        free(tags);
        json_t *lim = json_object_get(o, "limits"), *v;
        if ((v = json_object_get(lim, "max-connections")))
            vh->max_connections = json_integer_value(v);
        if ((v = json_object_get(lim, "max-queues")))
            vh->max_queues = json_integer_value(v);
        wr_broker_vhost_add(vh);
        if ((uint32_t)id >= next_vhost_id)
            next_vhost_id = (uint32_t)id + 1;
    }
    if (next > 0 && next <= UINT32_MAX && (uint32_t)next > next_vhost_id)
        next_vhost_id = (uint32_t)next;
    int rc = load_access(root, path, err, errlen);
    for (int op = 0; op < 2 && rc == 0; op++) {
        json_array_foreach(json_object_get(root, op ? "operator_policies" : "policies"), i, o)
        {
            wr_vhost_t *vh = wr_broker_vhost(wr_bytes_of(str_of(o, "vhost")));
            char *def = json_dumps(json_object_get(o, "definition"), JSON_COMPACT);
            char e[400];
            if (vh == NULL || def == NULL ||
                wr_policy_set(vh, op, str_of(o, "name"), str_of(o, "pattern"), def,
                              json_integer_value(json_object_get(o, "priority")),
                              str_of(o, "apply-to"), e, sizeof e) != 0) {
                snprintf(err, errlen, "%s: policy '%s': %s", path, str_of(o, "name"),
                         vh ? e : "no such vhost");
                rc = -1;
            }
            free(def);
            if (rc)
                break;
        }
    }
    json_decref(root);
    return rc;
}

/* Removes vhosts/N directories that broker.json does not name. */
static void remove_orphans(void)
{
    char top[4096];
    path_of(top, sizeof top, "vhosts");
    DIR *d = opendir(top);
    if (d == NULL)
        return;
    uint32_t *gone = NULL;
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        char *end;
        unsigned long id = strtoul(e->d_name, &end, 10);
        if (*end || end == e->d_name || id == 0 || id > UINT32_MAX)
            continue;
        int named = 0;
        size_t i = 0;
        for (wr_vhost_t *vh; (vh = wr_broker_vhost_next(&i));)
            named |= vh->id == id;
        if (!named) {
            gone = wr_xrealloc(gone, (n + 1) * sizeof *gone);
            gone[n++] = (uint32_t)id;
        }
    }
    closedir(d);
    for (size_t i = 0; i < n; i++) {
        char dir[4096];
        vhost_dir(dir, sizeof dir, gone[i]);
        wr_info("removing %s, the data of a deleted vhost", dir);
        if (remove_tree(dir) != 0)
            wr_warn("cannot remove %s: %s", dir, strerror(errno));
    }
    free(gone);
    if (n)
        sync_dir(top);
}

int wr_meta_open(const wr_config_t *cfg, char *err, size_t errlen)
{
    free(data_dir);
    data_dir = wr_xstrndup(cfg->data_dir, strlen(cfg->data_dir));
    segment_size = cfg->segment_size;
    config = cfg;
    next_vhost_id = 1;

    char path[4096];
    path_of(path, sizeof path, "FORMAT");
    FILE *f = fopen(path, "r");
    int format = 0;
    if (f) {
        if (fscanf(f, "%d", &format) != 1)
            format = -1;
        fclose(f);
        if (format != WR_META_FORMAT) {
            snprintf(err, errlen, "%s: unknown data directory format (this warren reads %d)", path,
                     WR_META_FORMAT);
            return -1;
        }
    } else {
        char old[4096], old2[4096];
        path_of(old, sizeof old, "meta.log");
        path_of(old2, sizeof old2, "msgs");
        int v1 = exists(old) || exists(old2);
        char json[4096];
        path_of(json, sizeof json, "broker.json");
        if (v1 && upgrade_v1(cfg, err, errlen) != 0)
            return -1;
        if (!exists(json)) {
            /* A first start (or an upgrade): the default vhost and user,
             * as RabbitMQ creates them on its first boot only. */
            wr_vhost_t *vh =
                vhost_make(cfg->default_vhost, next_vhost_id++, "Default virtual host", "");
            wr_broker_vhost_add(vh);
            wr_user_t *u =
                wr_access_user_add(cfg->default_user, cfg->default_pass, cfg->default_user_tags);
            int rc = wr_access_set_perms(u, cfg->default_vhost, cfg->default_perms[0],
                                         cfg->default_perms[1], cfg->default_perms[2], err, errlen);
            if (rc == 0)
                rc = wr_meta_save(err, errlen);
            wr_broker_vhost_remove(vh);
            wr_vhost_free(vh);
            wr_access_reset();
            next_vhost_id = 1;
            if (rc != 0)
                return -1;
            wr_info("first start: created vhost '%s' and user '%s'", cfg->default_vhost,
                    cfg->default_user);
        }
        char text[8];
        int n = snprintf(text, sizeof text, "%d\n", WR_META_FORMAT);
        if (write_atomic("FORMAT", text, (size_t)n, err, errlen) != 0)
            return -1;
    }
    if (load(err, errlen) != 0)
        return -1;
    remove_orphans();
    char top[4096];
    path_of(top, sizeof top, "vhosts");
    if (mkdir(top, 0750) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", top, strerror(errno));
        return -1;
    }
    size_t i = 0;
    for (wr_vhost_t *vh; (vh = wr_broker_vhost_next(&i));)
        if (open_store(vh, err, errlen) != 0)
            return -1;
    return 0;
}

wr_vhost_t *wr_meta_vhost_create(const char *name, const char *description, const char *tags,
                                 char *err, size_t errlen)
{
    if (data_dir == NULL) {
        snprintf(err, errlen, "no data directory is open");
        return NULL;
    }
    wr_vhost_t *vh = vhost_make(name, next_vhost_id++, description, tags);
    char dir[4096];
    vhost_dir(dir, sizeof dir, vh->id);
    if (open_store(vh, err, errlen) != 0) {
        wr_persist_close(vh);
        wr_vhost_free(vh);
        remove_tree(dir);
        return NULL;
    }
    wr_broker_vhost_add(vh);
    if (wr_meta_save(err, errlen) != 0) {
        wr_broker_vhost_remove(vh);
        wr_store_close(vh->store, 0);
        vh->store = NULL;
        wr_vhost_free(vh);
        remove_tree(dir);
        return NULL;
    }
    wr_info("created vhost '%s' (data in %s)", name, dir);
    return vh;
}

/* Closes a deleted vhost's store, frees it and removes its directory, if
 * its store has no sync in flight; 0 if that has to wait. */
static int bury(wr_vhost_t *vh)
{
    if (vh->store && wr_store_busy(vh->store))
        return 0;
    if (vh->store)
        wr_store_close(vh->store, 0);
    vh->store = NULL;
    char dir[4096];
    vhost_dir(dir, sizeof dir, vh->id);
    wr_vhost_free(vh);
    if (remove_tree(dir) != 0)
        wr_warn("cannot remove %s: %s (it goes at the next start)", dir, strerror(errno));
    return 1;
}

int wr_meta_vhost_delete(wr_vhost_t *vh, char *err, size_t errlen)
{
    wr_broker_vhost_remove(vh);
    if (wr_meta_save(err, errlen) != 0) {
        wr_broker_vhost_add(vh);
        return -1;
    }
    /* Its permissions go with it. */
    wr_access_forget_vhost(vh->name);
    if (wr_meta_save(err, errlen) != 0)
        wr_warn("vhost '%s' deleted, but its permissions stay in broker.json until the next "
                "change: %s",
                vh->name, err);
    char text[300];
    snprintf(text, sizeof text, "vhost '%s' is deleted", vh->name);
    size_t n = wr_conn_close_vhost(vh, WR_AMQP_CONNECTION_FORCED, text);
    wr_info("deleted vhost '%s' (%zu connections closed)", vh->name, n);
    if (!bury(vh)) {
        graveyard = wr_xrealloc(graveyard, (n_graveyard + 1) * sizeof *graveyard);
        graveyard[n_graveyard++] = vh;
    }
    return 0;
}

void wr_meta_tick(void)
{
    size_t k = 0;
    for (size_t i = 0; i < n_graveyard; i++)
        if (!bury(graveyard[i]))
            graveyard[k++] = graveyard[i];
    n_graveyard = k;
}

void wr_meta_close(void)
{
    for (size_t i = 0; i < n_graveyard; i++) {
        wr_vhost_t *vh = graveyard[i];
        if (vh->store)
            wr_store_close(vh->store, 0); /* waits for its sync */
        vh->store = NULL;
        bury(vh);
    }
    free(graveyard);
    graveyard = NULL;
    n_graveyard = 0;
    for (size_t i = 0; wr_broker.vhosts.count;) {
        i = 0;
        wr_vhost_t *vh = wr_broker_vhost_next(&i);
        wr_broker_vhost_remove(vh);
        wr_persist_close(vh);
        wr_vhost_free(vh);
    }
    wr_access_reset();
    free(data_dir);
    data_dir = NULL;
}
