// The web UI's HTTP server over real loopback TCP: what it refuses and what it serves.
#include "web/server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace cw::web {
namespace {

const std::string kToken(64, 'a');

// A connected TCP socket to the server, from `from` (any 127/8 address), or -1.
int connectTo(std::uint16_t port, const char* from = "127.0.0.1") {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in src{};
  src.sin_family = AF_INET;
  inet_pton(AF_INET, from, &src.sin_addr);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0 ||
      ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Whether the server has ended the connection (EOF or reset) within `wait`.
bool endedWithin(int fd, std::chrono::milliseconds wait) {
  const auto until = std::chrono::steady_clock::now() + wait;
  char buf[4096];
  while (std::chrono::steady_clock::now() < until) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) > 0) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN)) return true;
    }
  }
  return false;
}

// One HTTP/1.1 request; what the server sends back until it closes (or `until` arrives).
std::string http(std::uint16_t port, const std::string& request, const std::string& until = "") {
  int fd = connectTo(port);
  if (fd < 0) return "<connect failed>";
  (void)::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((until.empty() || out.find(until) == std::string::npos) && (n = ::recv(fd, buf, sizeof buf, 0)) > 0)
    out.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  return out;
}

int statusOf(const std::string& response) {
  return response.size() > 12 ? std::atoi(response.c_str() + 9) : 0;
}

using namespace std::chrono_literals;

class WebServerTest : public ::testing::Test {
 protected:
  void SetUp() override { start([](ServerOptions&) {}); }
  // A server (and a hub: a server's end closes its hub for good) made anew.
  void start(const std::function<void(ServerOptions&)>& tune) {
    server.reset();
    hub_holder = std::make_unique<EventHub>();
    ServerOptions o;
    o.address = "127.0.0.1";
    o.port = 0;
    o.token = kToken;
    o.max_body = 1000;
    o.events = hub_holder.get();
    o.api = [this](const std::string& body, ApiReply reply) {
      std::lock_guard lock(mu);
      bodies.push_back(body);
      if (hold) held.push_back(std::move(reply));
      else reply(ApiResult{200, R"({"ok":true})"});
    };
    tune(o);
    auto s = Server::start(std::move(o));
    ASSERT_TRUE(s) << s.error().message;
    server = std::move(s.value());
    host = "127.0.0.1:" + std::to_string(server->port());
  }
  void TearDown() override { server.reset(); }

  std::string get(const std::string& target, const std::string& extra = "") {
    return http(server->port(), "GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\n" + extra +
                                    "Connection: close\r\n\r\n");
  }
  std::string post(const std::string& body, const std::string& headers) {
    return http(server->port(), "POST /api HTTP/1.1\r\nHost: " + host + "\r\n" + headers +
                                    "Content-Length: " + std::to_string(body.size()) +
                                    "\r\nConnection: close\r\n\r\n" + body);
  }

  std::string apiRequest() const {
    const std::string body = R"({"cmd":"status"})";
    return "POST /api HTTP/1.1\r\nHost: " + host + "\r\nContent-Type: application/json\r\nAuthorization: Bearer " +
           kToken + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
  }

  std::unique_ptr<EventHub> hub_holder;
  std::unique_ptr<Server> server;
  std::string host;
  std::mutex mu;
  std::vector<std::string> bodies;
  bool hold = false;  // keep the replies in `held` instead of answering at once
  std::vector<ApiReply> held;
};

TEST_F(WebServerTest, EverythingWithoutTheTokenIsRefused) {
  for (const char* path : {"/", "/index.html", "/app.js", "/app.css", "/events", "/nothing"}) {
    auto r = get(path);
    EXPECT_EQ(statusOf(r), 401) << path << "\n" << r;
    EXPECT_EQ(r.find("{{token}}"), std::string::npos);
    EXPECT_EQ(get(std::string(path) + "?token=" + std::string(64, 'b')).substr(0, 12), "HTTP/1.1 401") << path;
    EXPECT_EQ(statusOf(get(path, "Authorization: Bearer " + std::string(63, 'a') + "\r\n")), 401) << path;
  }
  EXPECT_EQ(statusOf(post(R"({"cmd":"status"})", "Content-Type: application/json\r\n")), 401);
  EXPECT_EQ(statusOf(post(R"({"cmd":"status"})", "Content-Type: application/json\r\nAuthorization: Basic " + kToken + "\r\n")), 401);
  EXPECT_TRUE(bodies.empty());
  EXPECT_GE(server->refused(), 20u);
}

TEST_F(WebServerTest, AnotherHostNameIsRefusedEvenWithTheToken) {
  // A page on a name that resolves to 127.0.0.1 (DNS rebinding) sends its own Host.
  auto r = http(server->port(), "GET /?token=" + kToken + " HTTP/1.1\r\nHost: evil.example:" +
                                    std::to_string(server->port()) + "\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(statusOf(r), 421) << r;
  r = http(server->port(), "GET /?token=" + kToken + " HTTP/1.1\r\nHost: 127.0.0.1:1\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(statusOf(r), 421);
}

TEST_F(WebServerTest, PageWithTokenHasItsAssetsLinkedWithTheTokenAndStrictHeaders) {
  auto r = get("/?token=" + kToken);
  ASSERT_EQ(statusOf(r), 200) << r;
  EXPECT_NE(r.find("Content-Security-Policy: default-src 'none'; script-src 'self'"), std::string::npos);
  EXPECT_NE(r.find("X-Frame-Options: DENY"), std::string::npos);
  EXPECT_NE(r.find("Cache-Control: no-store"), std::string::npos);
  EXPECT_NE(r.find("app.js?token=" + kToken), std::string::npos);
  EXPECT_EQ(r.find("{{token}}"), std::string::npos);
  EXPECT_EQ(r.find("http://"), std::string::npos) << "the page loads something from elsewhere";
  auto js = get("/app.js?token=" + kToken);
  EXPECT_EQ(statusOf(js), 200);
  EXPECT_NE(js.find("Content-Type: text/javascript"), std::string::npos);
  EXPECT_EQ(statusOf(get("/app.js", "Authorization: Bearer " + kToken + "\r\n")), 200);
  EXPECT_EQ(statusOf(get("/missing.js?token=" + kToken)), 404);
}

TEST_F(WebServerTest, ApiTakesJsonWithBearerTokenFromThisOriginOnly) {
  auto r = post(R"({"cmd":"status"})", "Content-Type: application/json\r\nAuthorization: Bearer " + kToken + "\r\n");
  ASSERT_EQ(statusOf(r), 200) << r;
  EXPECT_NE(r.find(R"({"ok":true})"), std::string::npos);
  {
    std::lock_guard lock(mu);
    ASSERT_EQ(bodies.size(), 1u);
    EXPECT_EQ(bodies[0], R"({"cmd":"status"})");
  }
  const std::string auth = "Authorization: Bearer " + kToken + "\r\n";
  // A form post (a page elsewhere can send one without asking) is not JSON.
  EXPECT_EQ(statusOf(post("cmd=status", "Content-Type: application/x-www-form-urlencoded\r\n" + auth)), 415);
  EXPECT_EQ(statusOf(post("{}", "Content-Type: application/json\r\nOrigin: http://evil.example\r\n" + auth)), 403);
  EXPECT_EQ(statusOf(post("{}", "Content-Type: application/json\r\nOrigin: http://" + host + "\r\n" + auth)), 200);
  EXPECT_EQ(statusOf(post(std::string(2000, ' '), "Content-Type: application/json\r\n" + auth)), 413);
  EXPECT_EQ(statusOf(http(server->port(), "PUT /api HTTP/1.1\r\nHost: " + host + "\r\n" + auth +
                                              "Content-Length: 0\r\nConnection: close\r\n\r\n")),
            405);
  std::lock_guard lock(mu);
  EXPECT_EQ(bodies.size(), 2u);
}

TEST_F(WebServerTest, EventStreamStartsWithTheSnapshot) {
  hub_holder->state("prompts", R"({"prompts":[]})");
  auto r = http(server->port(), "GET /events?token=" + kToken + " HTTP/1.1\r\nHost: " + host + "\r\n\r\n",
                "{\"prompts\":[]}");
  EXPECT_EQ(statusOf(r), 200) << r;
  EXPECT_NE(r.find("Content-Type: text/event-stream"), std::string::npos) << r;
  EXPECT_NE(r.find("event: prompts\ndata: {\"prompts\":[]}"), std::string::npos) << r;
}

TEST_F(WebServerTest, ARefusedRequestsConnectionIsClosed) {
  int fd = connectTo(server->port());
  ASSERT_GE(fd, 0);
  const std::string req = "GET / HTTP/1.1\r\nHost: " + host + "\r\n\r\n";  // keep-alive, no token
  ASSERT_EQ(::send(fd, req.data(), req.size(), MSG_NOSIGNAL), static_cast<ssize_t>(req.size()));
  EXPECT_TRUE(endedWithin(fd, 5s));
  ::close(fd);
}

TEST_F(WebServerTest, ACommandWaitingForItsAnswerHoldsUpNothingElse) {
  {
    std::lock_guard lock(mu);
    hold = true;
  }
  auto answer = std::async(std::launch::async, [this] { return http(server->port(), apiRequest()); });
  for (int i = 0; i < 500; ++i) {
    std::lock_guard lock(mu);
    if (!held.empty()) break;
    std::this_thread::sleep_for(10ms);
  }
  // Meanwhile the page, another command (answered at once) and the event stream are served.
  EXPECT_EQ(statusOf(get("/?token=" + kToken)), 200);
  {
    std::lock_guard lock(mu);
    ASSERT_EQ(held.size(), 1u);
    hold = false;
  }
  EXPECT_EQ(statusOf(http(server->port(), apiRequest())), 200);
  EXPECT_EQ(answer.wait_for(0s), std::future_status::timeout);
  // The answer comes from another thread, as the daemon's control thread gives it.
  std::thread([this] {
    std::lock_guard lock(mu);
    held[0](ApiResult{200, R"({"ok":true,"late":1})"});
  }).join();
  auto r = answer.get();
  EXPECT_EQ(statusOf(r), 200) << r;
  EXPECT_NE(r.find(R"("late":1)"), std::string::npos) << r;
}

TEST_F(WebServerTest, ACommandNeverAnsweredGets503AtItsDeadline) {
  start([](ServerOptions& o) { o.api_deadline = 300ms; });
  {
    std::lock_guard lock(mu);
    hold = true;
  }
  auto r = http(server->port(), apiRequest());
  EXPECT_EQ(statusOf(r), 503) << r;
  EXPECT_NE(r.find("did not answer"), std::string::npos) << r;
  std::lock_guard lock(mu);
  ASSERT_EQ(held.size(), 1u);
  held[0](ApiResult{200, "{}"});  // too late: does nothing
}

TEST_F(WebServerTest, EventStreamGetsLaterEventsAndKeepAlivesWhenQuiet) {
  start([](ServerOptions& o) { o.keep_alive = 200ms; });
  int fd = connectTo(server->port());
  ASSERT_GE(fd, 0);
  const std::string req = "GET /events?token=" + kToken + " HTTP/1.1\r\nHost: " + host + "\r\n\r\n";
  ASSERT_EQ(::send(fd, req.data(), req.size(), MSG_NOSIGNAL), static_cast<ssize_t>(req.size()));
  auto readUntil = [fd](const std::string& what) {
    std::string got;
    char buf[4096];
    ssize_t n;
    while (got.find(what) == std::string::npos && (n = ::recv(fd, buf, sizeof buf, 0)) > 0)
      got.append(buf, static_cast<std::size_t>(n));
    return got;
  };
  EXPECT_NE(readUntil("retry: 1000").find("200 OK"), std::string::npos);
  EXPECT_NE(readUntil(": keep-alive").find(": keep-alive"), std::string::npos);
  std::thread([this] { hub_holder->event("rules", R"({"app":"a"})"); }).join();
  EXPECT_NE(readUntil(R"({"app":"a"})").find("event: rules"), std::string::npos);
  ::close(fd);
}

// Slow clients without the token (from 127.0.0.2, which the fake says is uid 65534) are held to
// their uid's cap and to the header deadline; requests with the token are answered throughout.
TEST_F(WebServerTest, SlowClientsWithoutTheTokenCannotCrowdOutTheToken) {
  start([](ServerOptions& o) {
    o.admission = Admission::Limits{600ms, 4, 100};
    o.peer_uid = [](const ConnectionEnds& e) -> std::optional<std::uint32_t> {
      return e.client == *IpAddr::parse("127.0.0.2") ? 65534u : 0u;
    };
  });
  std::vector<int> slow;
  for (int i = 0; i < 40; ++i) {
    int fd = connectTo(server->port(), "127.0.0.2");
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::send(fd, "GET / HT", 8, MSG_NOSIGNAL), 8);
    slow.push_back(fd);
  }
  EXPECT_EQ(statusOf(get("/?token=" + kToken)), 200);
  EXPECT_EQ(statusOf(http(server->port(), apiRequest())), 200);
  // All but the newest 4 were closed at once; those 4 at the deadline.
  for (std::size_t i = 0; i + 4 < slow.size(); ++i) EXPECT_TRUE(endedWithin(slow[i], 2s)) << i;
  for (std::size_t i = slow.size() - 4; i < slow.size(); ++i) EXPECT_TRUE(endedWithin(slow[i], 5s)) << i;
  EXPECT_GE(server->dropped(), 40u);
  for (int fd : slow) ::close(fd);

  // A byte every 100 ms keeps an idle timeout happy, not the deadline.
  int trickle = connectTo(server->port(), "127.0.0.2");
  ASSERT_GE(trickle, 0);
  const std::string req = "GET /?token=" + kToken + " HTTP/1.1\r\nHost: " + host + "\r\n\r\n";
  bool ended = false;
  for (std::size_t i = 0; i < req.size() && !ended; ++i) {
    if (::send(trickle, &req[i], 1, MSG_NOSIGNAL) != 1) break;
    ended = endedWithin(trickle, 100ms);
  }
  EXPECT_TRUE(ended || endedWithin(trickle, 1s)) << "a trickling client outlived the header deadline";
  ::close(trickle);
  EXPECT_EQ(statusOf(get("/?token=" + kToken)), 200);
}

TEST(WebServer, ListensOnLoopbackOnly) {
  ServerOptions o;
  o.address = "0.0.0.0";
  o.port = 0;
  o.token = kToken;
  o.api = [](const std::string&, ApiReply reply) { reply(ApiResult{}); };
  auto s = Server::start(o);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("loopback"), std::string::npos);
  o.address = "10.1.2.3";
  EXPECT_FALSE(Server::start(o));
  o.address = "127.0.0.1";
  o.token = "short";
  EXPECT_FALSE(Server::start(o));
}

TEST(WebServer, HostHeaderForms) {
  EXPECT_TRUE(hostAllowed("127.0.0.1:7780", "127.0.0.1", 7780));
  EXPECT_TRUE(hostAllowed("localhost:7780", "127.0.0.1", 7780));
  EXPECT_TRUE(hostAllowed("[::1]:7780", "::1", 7780));
  EXPECT_FALSE(hostAllowed("127.0.0.1", "127.0.0.1", 7780));
  EXPECT_FALSE(hostAllowed("127.0.0.1:7781", "127.0.0.1", 7780));
  EXPECT_FALSE(hostAllowed("127.0.0.2:7780", "127.0.0.1", 7780));
  EXPECT_FALSE(hostAllowed("cellwall.example:7780", "127.0.0.1", 7780));
}

}  // namespace
}  // namespace cw::web
