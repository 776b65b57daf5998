// cellwall's socket-owner recorder (docs/attribution.md, step 2): cgroup-BPF programs attached
// to cellwall's cgroup, so to every cell's cgroup below it. They only observe: every program
// returns 1, which lets the socket call go on as if they were not there.
//
// cw_owner: socket cookie -> the process that made it, or that connected, sent or bound with
// it last (after a fork or an fd passed over a Unix socket, the one using it).
// cw_port_owner: (cgroup, protocol, local port) -> the last process that sent or bound from
// that port: found even after the socket was closed (a one-shot UDP query); UDP ports are
// recorded as datagrams leave (cgroup_skb/egress).
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>

// Not in the kernel's uapi headers (they come from the C library's socket.h).
#define CW_AF_INET 2
#define CW_AF_INET6 10

struct cw_owner {
  __u32 tgid;
  __u32 tid;
  __u32 uid;
  __u32 gid;
  __u64 cgroup_id;
  __u64 when_ns;
  char comm[16];
};

struct cw_port_key {
  __u64 cgroup_id;
  __u16 port;  // host order
  __u8 proto;
  __u8 pad[5];
};

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, __u64);
  __type(value, struct cw_owner);
} cw_owner SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 16384);
  __type(key, struct cw_port_key);
  __type(value, struct cw_owner);
} cw_port_owner SEC(".maps");

static __always_inline void fill(struct cw_owner *o) {
  __u64 pt = bpf_get_current_pid_tgid();
  __u64 ug = bpf_get_current_uid_gid();
  o->tgid = pt >> 32;
  o->tid = (__u32)pt;
  o->uid = (__u32)ug;
  o->gid = ug >> 32;
  o->cgroup_id = bpf_get_current_cgroup_id();
  o->when_ns = bpf_ktime_get_ns();
  bpf_get_current_comm(o->comm, sizeof o->comm);
}

static __always_inline int inet(__u32 family, __u32 protocol) {
  return (family == CW_AF_INET || family == CW_AF_INET6) && (protocol == IPPROTO_TCP || protocol == IPPROTO_UDP);
}

static __always_inline void byPort(const struct cw_owner *o, __u32 protocol, __u32 port) {
  if (port == 0) return;
  struct cw_port_key k = {};
  k.cgroup_id = o->cgroup_id;
  k.port = (__u16)port;
  k.proto = (__u8)protocol;
  bpf_map_update_elem(&cw_port_owner, &k, o, BPF_ANY);
}

SEC("cgroup/sock_create")
int cw_sock_create(struct bpf_sock *sk) {
  if (!inet(sk->family, sk->protocol)) return 1;
  struct cw_owner o = {};
  fill(&o);
  __u64 cookie = bpf_get_socket_cookie(sk);
  bpf_map_update_elem(&cw_owner, &cookie, &o, BPF_ANY);
  return 1;
}

SEC("cgroup/sock_release")
int cw_sock_release(struct bpf_sock *sk) {
  if (!inet(sk->family, sk->protocol)) return 1;
  __u64 cookie = bpf_get_socket_cookie(sk);
  bpf_map_delete_elem(&cw_owner, &cookie);
  return 1;
}

SEC("cgroup/post_bind4")
int cw_post_bind4(struct bpf_sock *sk) {
  if (!inet(sk->family, sk->protocol)) return 1;
  struct cw_owner o = {};
  fill(&o);
  __u64 cookie = bpf_get_socket_cookie(sk);
  bpf_map_update_elem(&cw_owner, &cookie, &o, BPF_ANY);
  byPort(&o, sk->protocol, sk->src_port);
  return 1;
}

SEC("cgroup/connect4")
int cw_connect4(struct bpf_sock_addr *ctx) {
  struct cw_owner o = {};
  fill(&o);
  __u64 cookie = bpf_get_socket_cookie(ctx);
  bpf_map_update_elem(&cw_owner, &cookie, &o, BPF_ANY);
  return 1;
}

SEC("cgroup/sendmsg4")
int cw_sendmsg4(struct bpf_sock_addr *ctx) {
  struct cw_owner o = {};
  fill(&o);
  __u64 cookie = bpf_get_socket_cookie(ctx);
  bpf_map_update_elem(&cw_owner, &cookie, &o, BPF_ANY);
  struct bpf_sock *sk = ctx->sk;
  if (sk) byPort(&o, sk->protocol, sk->src_port);
  return 1;
}

// A UDP datagram leaving a cell: its socket now has its local port (an unbound socket gets one
// only after cgroup/sendmsg4 has run), so the port is recorded here, from the socket's owner.
// Then a one-shot sender that closed its socket before cellwalld looked is still found by the
// datagram's source port. One hash lookup per datagram; the map is written only when the
// port's owner changes.
SEC("cgroup_skb/egress")
int cw_egress(struct __sk_buff *skb) {
  struct bpf_sock *sk = skb->sk;
  if (!sk) return 1;
  sk = bpf_sk_fullsock(sk);
  if (!sk || sk->protocol != IPPROTO_UDP || sk->family != CW_AF_INET) return 1;
  __u64 cookie = bpf_get_socket_cookie(skb);
  struct cw_owner *o = bpf_map_lookup_elem(&cw_owner, &cookie);
  if (!o) return 1;
  struct cw_port_key k = {};
  k.cgroup_id = o->cgroup_id;
  k.port = (__u16)sk->src_port;
  k.proto = IPPROTO_UDP;
  struct cw_owner *known = bpf_map_lookup_elem(&cw_port_owner, &k);
  if (known && known->tgid == o->tgid) return 1;
  struct cw_owner copy = *o;
  bpf_map_update_elem(&cw_port_owner, &k, &copy, BPF_ANY);
  return 1;
}

char LICENSE[] SEC("license") = "GPL";
