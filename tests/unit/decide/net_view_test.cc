// ViewHolder's readers: a reader keeps the view it last read until refresh() or renew(), and
// renew() hands that view back so the caller decides where it dies (daemon.cc retireView).
#include "decide/net_view.h"

#include <gtest/gtest.h>

namespace cw::decide {
namespace {

std::shared_ptr<const NetView> viewOf(std::uint64_t generation) {
  auto v = std::make_shared<NetView>();
  v->generation = generation;
  return v;
}

TEST(ViewReader, KeepsItsViewUntilRefreshedOrRenewed) {
  ViewHolder holder;
  holder.publish(viewOf(1));
  ViewHolder::Reader reader(holder);
  EXPECT_EQ(reader.refresh().generation, 1u);

  auto second = viewOf(2);
  std::weak_ptr<const NetView> first = holder.current();
  holder.publish(second);
  EXPECT_FALSE(first.expired());  // the reader still holds generation 1: nothing read since

  auto old = reader.renew();
  EXPECT_EQ(old->generation, 1u);  // handed back...
  EXPECT_EQ(reader.refresh().generation, 2u);  // ...and the reader is on the current view
  old.reset();
  EXPECT_TRUE(first.expired());  // the caller let go of it last

  // Renewing when nothing changed hands back the current view itself.
  auto same = reader.renew();
  EXPECT_EQ(same.get(), second.get());
}

}  // namespace
}  // namespace cw::decide
