// Which connections without the token the web server keeps (web/admission.h).
#include "web/admission.h"

#include <gtest/gtest.h>

namespace cw::web {
namespace {

using namespace std::chrono_literals;
using Ids = std::vector<Admission::Id>;

const Admission::Clock::time_point t0{};

TEST(Admission, AnOwnerOverItsCapLosesItsOwnOldestOnly) {
  Admission a({10s, 3, 100});
  EXPECT_EQ(a.admit(1, 65534, t0), Ids{});
  EXPECT_EQ(a.admit(2, 1000, t0), Ids{});
  EXPECT_EQ(a.admit(3, 65534, t0), Ids{});
  EXPECT_EQ(a.admit(4, 65534, t0), Ids{});
  EXPECT_EQ(a.admit(5, 65534, t0), Ids{1});  // never the new one: a browser always gets in
  EXPECT_EQ(a.admit(6, 65534, t0), Ids{3});
  EXPECT_EQ(a.unproven(65534), 3u);
  EXPECT_EQ(a.unproven(1000), 1u);
  EXPECT_EQ(a.unproven(), 4u);
}

TEST(Admission, ClientsWhoseOwnerIsNotKnownShareOneBucket) {
  Admission a({10s, 2, 100});
  EXPECT_EQ(a.admit(1, std::nullopt, t0), Ids{});
  EXPECT_EQ(a.admit(2, std::nullopt, t0), Ids{});
  EXPECT_EQ(a.admit(3, 0, t0), Ids{});
  EXPECT_EQ(a.admit(4, std::nullopt, t0), Ids{1});
  EXPECT_EQ(a.unproven(std::nullopt), 2u);
}

TEST(Admission, AllOwnersTogetherAreCappedOldestFirst) {
  Admission a({10s, 10, 4});
  for (Admission::Id id = 1; id <= 4; ++id) EXPECT_EQ(a.admit(id, static_cast<std::uint32_t>(id), t0), Ids{});
  EXPECT_EQ(a.admit(5, 77, t0), Ids{1});
  EXPECT_EQ(a.unproven(1), 0u);
  EXPECT_EQ(a.unproven(), 4u);
}

TEST(Admission, ProvenAndClosedConnectionsAreNoLongerCountedOrDropped) {
  Admission a({1s, 2, 100});
  (void)a.admit(1, 5, t0);
  (void)a.admit(2, 5, t0);
  a.proven(1);
  EXPECT_EQ(a.admit(3, 5, t0), Ids{});  // 1 showed the token: 2 and 3 are the two
  a.closed(2);
  EXPECT_EQ(a.unproven(5), 1u);
  EXPECT_EQ(a.expired(t0 + 5s), Ids{3});
  a.closed(3);  // closed after being dropped: nothing happens
  a.proven(42);  // never admitted: nothing happens
  EXPECT_EQ(a.unproven(), 0u);
}

TEST(Admission, HeaderDeadlineHoldsWhateverThePace) {
  Admission a({10s, 100, 100});
  EXPECT_FALSE(a.nextDeadline());
  (void)a.admit(1, 5, t0);
  (void)a.admit(2, 6, t0 + 3s);
  (void)a.admit(3, 5, t0 + 6s);
  ASSERT_TRUE(a.nextDeadline());
  EXPECT_EQ(*a.nextDeadline(), t0 + 10s);
  EXPECT_EQ(a.expired(t0 + 9s), Ids{});
  EXPECT_EQ(a.expired(t0 + 13s), (Ids{1, 2}));
  EXPECT_EQ(*a.nextDeadline(), t0 + 16s);
  EXPECT_EQ(a.unproven(5), 1u);
  EXPECT_EQ(a.expired(t0 + 16s), Ids{3});
  EXPECT_FALSE(a.nextDeadline());
}

}  // namespace
}  // namespace cw::web
