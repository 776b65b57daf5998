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
  __u64 start_ns;  // the process's start (boot-time clock): with tgid, names the process
  __u64 exec_id;   // how many execs the process has made: its program changes with it
};

// What the programs read of the kernel's task: its offset found at load time from the
// kernel's BTF (CO-RE), so no kernel headers are needed.
struct task_struct {
  struct task_struct *group_leader;
  __u64 start_boottime;
  __u64 self_exec_id;
} __attribute__((preserve_access_index));

// A connection as its cell sees it: addresses in network order, ports in host order.
struct cw_conn_key {
  __u64 cgroup_id;
  __u32 local;
  __u32 remote;
  __u16 local_port;
  __u16 remote_port;
  __u8 proto;
  __u8 pad[3];
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

// cw_conn_owner: a connection's 4-tuple (and the cell's cgroup) -> the process that opened it:
// an outgoing TCP connection when its SYN is about to leave (sockops, TCP_CONNECT_CB: the
// local port is chosen by then), a UDP flow as its datagrams leave. cellwalld finds a new
// connection's owner with this one lookup; the socket lookup (sock_diag) is the fallback.
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, struct cw_conn_key);
  __type(value, struct cw_owner);
} cw_conn_owner SEC(".maps");

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
  struct task_struct *t = bpf_get_current_task_btf();
  o->start_ns = t->group_leader->start_boottime;
  o->exec_id = t->group_leader->self_exec_id;
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
  struct cw_owner copy = *o;
  struct cw_owner *known = bpf_map_lookup_elem(&cw_port_owner, &k);
  if (!known || known->tgid != o->tgid) bpf_map_update_elem(&cw_port_owner, &k, &copy, BPF_ANY);
  // The datagram's own addresses (an unconnected socket has no remote end of its own).
  __u8 ip[20];
  if (bpf_skb_load_bytes(skb, 0, ip, sizeof ip) != 0 || (ip[0] >> 4) != 4 || ip[9] != IPPROTO_UDP) return 1;
  __u8 ports[4];
  if (bpf_skb_load_bytes(skb, (ip[0] & 0xf) * 4, ports, sizeof ports) != 0) return 1;
  struct cw_conn_key c = {};
  c.cgroup_id = o->cgroup_id;
  __builtin_memcpy(&c.local, &ip[12], 4);
  __builtin_memcpy(&c.remote, &ip[16], 4);
  c.local_port = (__u16)(ports[0] << 8 | ports[1]);
  c.remote_port = (__u16)(ports[2] << 8 | ports[3]);
  c.proto = IPPROTO_UDP;
  known = bpf_map_lookup_elem(&cw_conn_owner, &c);
  if (!known || known->tgid != o->tgid) bpf_map_update_elem(&cw_conn_owner, &c, &copy, BPF_ANY);
  return 1;
}

SEC("sockops")
int cw_sockops(struct bpf_sock_ops *ops) {
  if (ops->op != BPF_SOCK_OPS_TCP_CONNECT_CB || ops->family != CW_AF_INET) return 1;
  __u64 cookie = bpf_get_socket_cookie(ops);
  struct cw_owner *o = bpf_map_lookup_elem(&cw_owner, &cookie);
  if (!o) return 1;
  struct cw_conn_key c = {};
  c.cgroup_id = o->cgroup_id;
  c.local = ops->local_ip4;
  c.remote = ops->remote_ip4;
  c.local_port = (__u16)ops->local_port;
  // remote_port holds the port in network order, in the upper half on little-endian kernels.
  __u32 rp = ops->remote_port;
  if (rp > 0xffff) rp >>= 16;
  c.remote_port = (__u16)((rp & 0xff) << 8 | (rp >> 8 & 0xff));
  c.proto = IPPROTO_TCP;
  struct cw_owner copy = *o;
  bpf_map_update_elem(&cw_conn_owner, &c, &copy, BPF_ANY);
  return 1;
}

char LICENSE[] SEC("license") = "GPL";
