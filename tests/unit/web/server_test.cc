// The web UI's HTTP server over real loopback TCP: what it refuses and what it serves.
#include "web/server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>

namespace cw::web {
namespace {

const std::string kToken(64, 'a');

// One HTTP/1.1 request; what the server sends back until it closes (or `until` arrives).
std::string http(std::uint16_t port, const std::string& request, const std::string& until = "") {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return "<connect failed>";
  }
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

class WebServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerOptions o;
    o.address = "127.0.0.1";
    o.port = 0;
    o.token = kToken;
    o.max_body = 1000;
    o.events = &hub;
    o.api = [this](const std::string& body) {
      std::lock_guard lock(mu);
      bodies.push_back(body);
      return ApiResult{200, R"({"ok":true})"};
    };
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

  EventHub hub;
  std::unique_ptr<Server> server;
  std::string host;
  std::mutex mu;
  std::vector<std::string> bodies;
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
  hub.state("prompts", R"({"prompts":[]})");
  auto r = http(server->port(), "GET /events?token=" + kToken + " HTTP/1.1\r\nHost: " + host + "\r\n\r\n",
                "{\"prompts\":[]}");
  EXPECT_EQ(statusOf(r), 200) << r;
  EXPECT_NE(r.find("Content-Type: text/event-stream"), std::string::npos) << r;
  EXPECT_NE(r.find("event: prompts\ndata: {\"prompts\":[]}"), std::string::npos) << r;
}

TEST(WebServer, ListensOnLoopbackOnly) {
  ServerOptions o;
  o.address = "0.0.0.0";
  o.port = 0;
  o.token = kToken;
  o.api = [](const std::string&) { return ApiResult{}; };
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
