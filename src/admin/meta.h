/*
 * meta.h - the data directory and the broker's metadata.
 *
 * Layout (format 2):
 *
 *   data_dir/FORMAT        "2\n": the layout version, written last
 *   data_dir/broker.json   vhosts (and, as they come, users, permissions,
 *                          policies, limits), rewritten whole on a change
 *   data_dir/vhosts/ID/    one message store per vhost (store/store.h)
 *
 * A vhost's directory is named by a number the registry gives it, never by
 * its name, so a vhost name of any bytes is safe on disk.  broker.json is
 * the truth: a directory it does not name is a vhost whose deletion a
 * crash interrupted, and is removed at start.  broker.json is replaced
 * atomically (write a temporary file, fsync, rename, fsync the directory),
 * so it is always the old or the new version.
 *
 * A directory without FORMAT but with meta.log or msgs/ at its top was
 * written before vhosts had their own stores (format 1): its files move
 * into the default vhost's directory on first start.  Each step is a
 * rename that is skipped when already done, and FORMAT is written last,
 * so an upgrade a crash interrupts resumes on the next start.
 */
#ifndef WR_META_H
#define WR_META_H

#include <stddef.h>

#include "broker/vhost.h"
#include "core/config.h"

#define WR_META_FORMAT 2

/* Brings data_dir (which exists) to the current layout, loads
 * broker.json (creating the default vhost on a first start), removes
 * the directories of deleted vhosts, and opens every vhost's store,
 * recovering its durable state, into the broker's vhost registry.
 * Returns 0, or -1 with err filled. */
int wr_meta_open(const wr_config_t *cfg, char *err, size_t errlen);

/* Rewrites broker.json from the registry.  Returns 0 or -1 with err. */
int wr_meta_save(char *err, size_t errlen);
/* The state broker.json holds, as a JSON object (the caller's reference):
 * vhosts, users, permissions, topic_permissions, policies,
 * operator_policies.  local: with what only this node's directory means
 * (vhost ids, the format); without: what every node of a cluster shares. */
struct json_t;
struct json_t *wr_meta_state(int local);

/* Creates a vhost: its directory and store, then broker.json; registered
 * only when all of it worked.  Returns the vhost, or NULL with err filled
 * (nothing left behind that a restart would keep). */
wr_vhost_t *wr_meta_vhost_create(const char *name, const char *description, const char *tags,
                                 char *err, size_t errlen);

/* Deletes a vhost: out of broker.json first (the point of no return),
 * then its connections are closed (320), and its store is closed and its
 * directory removed as soon as no sync is in flight.  Returns 0, or -1
 * with err if broker.json could not be written (nothing changed). */
int wr_meta_vhost_delete(wr_vhost_t *vh, char *err, size_t errlen);

/* Once a second: finishes deletions whose store was busy. */
void wr_meta_tick(void);

/* Clean shutdown: closes every store and frees every vhost. */
void wr_meta_close(void);

/* The data directory in use (for the control socket's path). */
const char *wr_meta_data_dir(void);

#endif
