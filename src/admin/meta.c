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

#include "broker/conn.h"
#include "broker/persist.h"
#include "core/log.h"

static char *data_dir;
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

static json_t *tags_to_json(const char *csv)
{
    json_t *a = json_array();
    for (const char *p = csv; *p;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n)
            json_array_append_new(a, json_stringn(p, n));
        p += n + (e ? 1 : 0);
    }
    return a;
}

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

int wr_meta_save(char *err, size_t errlen)
{
    json_t *root = json_object();
    json_object_set_new(root, "warren_format", json_integer(WR_META_FORMAT));
    json_object_set_new(root, "next_vhost_id", json_integer(next_vhost_id));
    json_t *vhosts = json_array();
    size_t i = 0;
    for (wr_vhost_t *vh; (vh = wr_broker_vhost_next(&i));) {
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(vh->name));
        json_object_set_new(o, "id", json_integer(vh->id));
        json_object_set_new(o, "description", json_string(vh->description));
        json_object_set_new(o, "tags", tags_to_json(vh->tags));
        json_array_append_new(vhosts, o);
    }
    json_object_set_new(root, "vhosts", vhosts);
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(root);
    size_t n = strlen(text);
    text = wr_xrealloc(text, n + 2);
    text[n++] = '\n';
    int r = write_atomic("broker.json", text, n, err, errlen);
    free(text);
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
        wr_broker_vhost_add(vh);
        if ((uint32_t)id >= next_vhost_id)
            next_vhost_id = (uint32_t)id + 1;
    }
    if (next > 0 && next <= UINT32_MAX && (uint32_t)next > next_vhost_id)
        next_vhost_id = (uint32_t)next;
    json_decref(root);
    return 0;
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
            /* A first start (or an upgrade): the default vhost. */
            wr_vhost_t *vh =
                vhost_make(cfg->default_vhost, next_vhost_id++, "Default virtual host", "");
            wr_broker_vhost_add(vh);
            if (wr_meta_save(err, errlen) != 0)
                return -1;
            wr_broker_vhost_remove(vh);
            wr_vhost_free(vh);
            next_vhost_id = 1;
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
    free(data_dir);
    data_dir = NULL;
}
