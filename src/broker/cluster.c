/*
 * cluster.c - this node among the others (see cluster.h).
 */
#include "broker/cluster.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "broker/cmeta.h"
#include "broker/conn.h"
#include "broker/ops.h"
#include "broker/quorum.h"
#include "broker/vhost.h"
#include "cluster/peer.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "core/loop.h"

typedef struct node {
    uint64_t id;
    char *name;        /* warren@host:port */
    char *addr;        /* host:port */
    uint8_t forgotten; /* removed by forget_cluster_node (the metadata log) */
} node_t;

static struct {
    int enabled;
    wr_rnet_t *net;
    wr_peers_t *peers;
    int stopping; /* links and listener closing (wr_cluster_stop) */
    uint64_t self_id;
    char *self_name;
    node_t *nodes;
    size_t n_nodes;
    wr_rgroup_member_t *members; /* the nodes not forgotten */
    size_t n_members;
    uint8_t secret[256];
    size_t secret_len;
} cl;

static void on_peer_msg(void *ud, uint64_t from, uint8_t kind, const uint8_t *p, size_t n);
static void on_peer_change(void *ud, uint64_t node, int up);

/* A node's id: the first 8 bytes of SHA-256 of its name (never 0). */
static uint64_t id_of(const char *name)
{
    uint8_t h[EVP_MAX_MD_SIZE];
    unsigned hn = 0;
    EVP_Digest(name, strlen(name), h, &hn, EVP_sha256(), NULL);
    uint64_t id = wr_get_u64(h);
    return id ? id : 1;
}

static int read_secret(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "cannot read cluster.secret_file '%s': %s", path, strerror(errno));
        return WR_EIO;
    }
    size_t n = fread(cl.secret, 1, sizeof cl.secret, f);
    int more = fgetc(f) != EOF;
    fclose(f);
    /* A trailing newline is not part of the secret (an Erlang cookie file
     * written by an editor has one). */
    while (n && (cl.secret[n - 1] == '\n' || cl.secret[n - 1] == '\r'))
        n--;
    if (more || n < 16) {
        snprintf(err, errlen,
                 "cluster.secret_file '%s' must hold 16 to 255 bytes (a random secret shared "
                 "by every node)",
                 path);
        return WR_EINVAL;
    }
    cl.secret_len = n;
    return 0;
}

int wr_cluster_start(const wr_config_t *cfg, char *err, size_t errlen)
{
    if (cfg->cluster_listener == NULL) {
        if (cfg->n_cluster_nodes) {
            snprintf(err, errlen, "cluster_formation.classic_config.nodes needs cluster.listener");
            return WR_EINVAL;
        }
        return 0;
    }
    if (cfg->cluster_secret_file == NULL) {
        snprintf(err, errlen, "cluster.listener needs cluster.secret_file");
        return WR_EINVAL;
    }
    int r = read_secret(cfg->cluster_secret_file, err, errlen);
    if (r != 0)
        return r;
    char self[300];
    snprintf(self, sizeof self, "warren@%s", cfg->cluster_listener);
    cl.self_name = wr_xstrndup(self, strlen(self));
    cl.self_id = id_of(self);
    /* The configured nodes, this one among them (added if the list is
     * empty: a cluster of one that others may join). */
    size_t n = cfg->n_cluster_nodes ? cfg->n_cluster_nodes : 1;
    cl.nodes = wr_xcalloc(n, sizeof *cl.nodes);
    int found = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name = cfg->n_cluster_nodes ? cfg->cluster_nodes[i] : self;
        uint64_t id = id_of(name);
        int dup = 0;
        for (size_t k = 0; k < cl.n_nodes; k++)
            dup |= cl.nodes[k].id == id;
        if (dup)
            continue;
        node_t *nd = &cl.nodes[cl.n_nodes++];
        nd->id = id;
        nd->name = wr_xstrndup(name, strlen(name));
        nd->addr = wr_xstrndup(name + 7, strlen(name + 7));
        found |= id == cl.self_id;
    }
    if (!found) {
        snprintf(err, errlen,
                 "this node (%s, from cluster.listener) is not among "
                 "cluster_formation.classic_config.nodes",
                 self);
        return WR_EINVAL;
    }
    cl.members = wr_xcalloc(cl.n_nodes, sizeof *cl.members);
    for (size_t i = 0; i < cl.n_nodes; i++)
        cl.members[i] = (wr_rgroup_member_t){cl.nodes[i].id, cl.nodes[i].addr, 0};
    cl.n_members = cl.n_nodes;
    r = wr_rnet_start(&cl.net, wr_loop, cfg->cluster_listener, cl.secret, cl.secret_len, err,
                      errlen);
    if (r != 0)
        return r;
    r = wr_peers_start(&cl.peers, cl.net, cl.self_id, on_peer_msg, on_peer_change, NULL);
    if (r != 0) {
        snprintf(err, errlen, "cannot start the node-to-node links: %s", wr_strerror(r));
        return r;
    }
    for (size_t i = 0; i < cl.n_nodes; i++)
        if (cl.nodes[i].id != cl.self_id)
            wr_peers_add(cl.peers, cl.nodes[i].id, cl.nodes[i].addr);
    cl.enabled = 1;
    wr_info("cluster: node %s, %zu configured node(s)", cl.self_name, cl.n_nodes);
    return 0;
}

static void net_stopped(void *ud)
{
    (void)ud;
    cl.stopping = 0;
}

static void peers_stopped(void *ud)
{
    (void)ud;
    /* The listener goes once the links are gone (rnet insists). */
    if (cl.net)
        wr_rnet_stop(cl.net, net_stopped, NULL);
    else
        cl.stopping = 0;
    cl.net = NULL;
}

void wr_cluster_stop(void)
{
    cl.stopping = 1;
    if (cl.peers) {
        wr_peers_t *ps = cl.peers;
        cl.peers = NULL;
        wr_peers_stop(ps, peers_stopped, NULL);
    } else {
        peers_stopped(NULL);
    }
    for (size_t i = 0; i < cl.n_nodes; i++) {
        free(cl.nodes[i].name);
        free(cl.nodes[i].addr);
    }
    free(cl.nodes);
    free(cl.members);
    free(cl.self_name);
    cl.nodes = NULL;
    cl.members = NULL;
    cl.self_name = NULL;
    cl.n_nodes = 0;
    cl.enabled = 0;
}

int wr_cluster_enabled(void)
{
    return cl.enabled;
}

int wr_cluster_net(wr_rnet_t **out, char *err, size_t errlen)
{
    if (cl.net == NULL) {
        /* A node alone: its groups have one member, so the listener only
         * needs to exist (an ephemeral loopback port) and its secret to be
         * private. */
        if (RAND_bytes(cl.secret, 32) != 1) {
            snprintf(err, errlen, "no random bytes for the cluster secret");
            return WR_EIO;
        }
        cl.secret_len = 32;
        int r =
            wr_rnet_start(&cl.net, wr_loop, "127.0.0.1:0", cl.secret, cl.secret_len, err, errlen);
        if (r != 0)
            return r;
        cl.self_id = 1;
        cl.nodes = wr_xcalloc(1, sizeof *cl.nodes);
        cl.nodes[0].id = 1;
        cl.nodes[0].addr = wr_xstrndup(wr_rnet_addr(cl.net), strlen(wr_rnet_addr(cl.net)));
        cl.n_nodes = 1;
        cl.members = wr_xcalloc(1, sizeof *cl.members);
        cl.members[0] = (wr_rgroup_member_t){1, cl.nodes[0].addr, 0};
        cl.n_members = 1;
    }
    *out = cl.net;
    return 0;
}

uint64_t wr_cluster_self_id(void)
{
    return cl.self_id;
}

const char *wr_cluster_self_name(void)
{
    return cl.self_name;
}

size_t wr_cluster_members(const wr_rgroup_member_t **out)
{
    *out = cl.members;
    return cl.n_members;
}

void wr_cluster_forget(uint64_t id)
{
    size_t k = 0;
    for (size_t i = 0; i < cl.n_nodes; i++) {
        if (cl.nodes[i].id == id && !cl.nodes[i].forgotten) {
            cl.nodes[i].forgotten = 1;
            wr_info("cluster: node %s is forgotten", cl.nodes[i].name);
        }
        if (!cl.nodes[i].forgotten)
            cl.members[k++] = (wr_rgroup_member_t){cl.nodes[i].id, cl.nodes[i].addr, 0};
    }
    cl.n_members = k;
}

size_t wr_cluster_forgotten(uint64_t *ids, size_t max)
{
    size_t k = 0;
    for (size_t i = 0; i < cl.n_nodes && k < max; i++)
        if (cl.nodes[i].forgotten)
            ids[k++] = cl.nodes[i].id;
    return k;
}

int wr_cluster_send(uint64_t node, uint8_t kind, const void *p, size_t n)
{
    if (cl.peers == NULL)
        return WR_EAGAIN;
    int r = wr_peers_send(cl.peers, node, kind, p, n);
    return r == 0 ? 0 : WR_EAGAIN;
}

int wr_cluster_node_up(uint64_t node)
{
    return node == cl.self_id || (cl.peers && wr_peers_up(cl.peers, node));
}

size_t wr_cluster_running(uint64_t *ids, size_t max)
{
    size_t k = 0;
    for (size_t i = 0; i < cl.n_nodes && k < max; i++)
        if (!cl.nodes[i].forgotten && wr_cluster_node_up(cl.nodes[i].id))
            ids[k++] = cl.nodes[i].id;
    return k;
}

size_t wr_cluster_closing(void)
{
    return wr_cmeta_closing();
}

int wr_cluster_stopping(void)
{
    return cl.stopping;
}

/* ---- node-to-node messages ---- */

static void on_peer_msg(void *ud, uint64_t from, uint8_t kind, const uint8_t *p, size_t n)
{
    (void)ud;
    switch (kind) {
    case WR_CLUSTER_QQ_PROPOSE:
    case WR_CLUSTER_QQ_RESULT:
    case WR_CLUSTER_QQ_ADMIN:
    case WR_CLUSTER_QQ_ADMIN_RESULT:
        wr_quorum_on_msg(from, kind, p, n);
        break;
    case WR_CLUSTER_META_PROPOSE:
        wr_cmeta_on_propose(from, p, n);
        break;
    default:
        break;
    }
}

static void on_peer_change(void *ud, uint64_t node, int up)
{
    (void)ud;
    wr_info("cluster: node %s is %s", wr_cluster_node_name(node) ? wr_cluster_node_name(node) : "?",
            up ? "up" : "down");
    if (!up) {
        wr_quorum_peer_down(node);
        return;
    }
    wr_quorum_peer_up(node);
    /* Metadata commands kept while the metadata leader was unreachable
     * (a node that just restarted) go now. */
    wr_cmeta_peer_up(node);
}

const char *wr_cluster_node_addr(uint64_t id)
{
    for (size_t i = 0; i < cl.n_nodes; i++)
        if (cl.nodes[i].id == id)
            return cl.nodes[i].addr;
    return NULL;
}

uint64_t wr_cluster_node_id(const char *name)
{
    for (size_t i = 0; i < cl.n_nodes; i++)
        if (strcmp(cl.nodes[i].name, name) == 0)
            return cl.nodes[i].id;
    return 0;
}

const char *wr_cluster_node_name(uint64_t id)
{
    for (size_t i = 0; i < cl.n_nodes; i++)
        if (cl.nodes[i].id == id)
            return cl.nodes[i].name;
    return NULL;
}
